/* SPDX-License-Identifier: Apache-2.0 */
/* Rendering and peer interning of the proxy's metrics (see pmetrics.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_msg.h"
#include "metrics.h"
#include "pmetrics.h"
#include "xalloc.h"

_Static_assert(PM_HTTP_NCAUSES == HTTP_CAUSE_COUNT, "pm http_errors is indexed by enum http_cause");

static const char *pm_dir_names[PM_NDIR] = {"inbound", "outbound"};
static const char *pm_authz_names[PM_NAUTHZ] = {"none", "allowed", "denied"};
static const char *pm_side_names[PM_NSIDE] = {"server", "client"};
static const char *pm_refused_names[PM_NREFUSED] = {"plaintext", "other_tls"};
static const char *pm_skip_names[PM_NSKIP] = {"opaque_port", "mesh", "discovery_opaque", "app_protocol"};
/* From a client that writes at once (microseconds) to the 1 s default
 * timeout and beyond, where a slow client would be cut short. */
static const double pm_detect_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

void pm_init(struct proxy_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->peers_mu, NULL);
    m->detect_time.bounds = pm_detect_bounds;
    m->detect_time.nbounds = sizeof pm_detect_bounds / sizeof *pm_detect_bounds;
    m->peers[0] = xstrdup("");
    m->peers[PM_MAX_PEERS - 1] = xstrdup("other");
    atomic_store(&m->npeers, 1);
}

void pm_destroy(struct proxy_metrics *m)
{
    for (int i = 0; i < PM_MAX_PEERS; i++)
        free(m->peers[i]);
    pthread_mutex_destroy(&m->peers_mu);
}

int pm_peer_slot(struct proxy_metrics *m, const char *uri)
{
    if (!uri || !*uri)
        return 0;
    pthread_mutex_lock(&m->peers_mu);
    int n = atomic_load(&m->npeers), slot = PM_MAX_PEERS - 1;
    for (int i = 1; i < n; i++)
        if (strcmp(m->peers[i], uri) == 0) {
            slot = i;
            goto out;
        }
    if (n < PM_MAX_PEERS - 1) {
        m->peers[n] = xstrdup(uri);
        atomic_store(&m->npeers, n + 1);
        slot = n;
    }
out:
    pthread_mutex_unlock(&m->peers_mu);
    return slot;
}

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static int pm_render_conns(struct proxy_metrics *m, struct buf *out, const char *name, const char *help, int which)
{
    int rc = metrics_header(out, name, which == 4 ? "gauge" : "counter", help);
    for (int d = 0; d < PM_NDIR; d++)
        for (int t = 0; t < 2; t++)
            for (int a = 0; a < PM_NAUTHZ; a++)
                for (int p = 0; p < PM_MAX_PEERS && rc == 0; p++) {
                    struct pm_series *s = &m->conns[d][t][a][p];
                    unsigned long long opened = LOAD(s->opened), v;
                    if (!opened)
                        continue;
                    switch (which) {
                    case 0: v = opened; break;
                    case 1: v = LOAD(s->closed); break;
                    case 2: v = LOAD(s->bytes_in); break;
                    case 3: v = LOAD(s->bytes_out); break;
                    default: {
                        unsigned long long c = LOAD(s->closed);
                        v = opened > c ? opened - c : 0;
                    }
                    }
                    const char *peer = m->peers[p] ? m->peers[p] : "other";
                    rc = buf_appendf(out, "%s{direction=\"%s\",tls=\"%s\",authz=\"%s\",peer=\"%s\"} %llu\n", name,
                                     pm_dir_names[d], t ? "true" : "false", pm_authz_names[a], peer, v);
                }
    return rc;
}

static int pm_render_pool(struct proxy_metrics *m, struct buf *out, const char *name, const char *help, int open)
{
    int rc = metrics_header(out, name, open ? "gauge" : "counter", help);
    for (int d = 0; d < PM_NDIR; d++)
        for (int t = 0; t < 2; t++)
            for (int p = 0; p < PM_MAX_PEERS && rc == 0; p++) {
                unsigned long long opened = LOAD(m->pool[d][t][p].opened), closed = LOAD(m->pool[d][t][p].closed);
                if (!opened)
                    continue;
                rc = buf_appendf(out, "%s{direction=\"%s\",tls=\"%s\",peer=\"%s\"} %llu\n", name, pm_dir_names[d],
                                 t ? "true" : "false", m->peers[p] ? m->peers[p] : "other",
                                 open ? (opened > closed ? opened - closed : 0) : opened);
            }
    return rc;
}

int pm_render(struct proxy_metrics *m, const struct pm_state *st, struct buf *out)
{
    int rc = 0;
    /* Peer names are only appended under the lock; readers see a prefix. */
    pthread_mutex_lock(&m->peers_mu);
    rc |= pm_render_conns(m, out, "weft_proxy_connections_opened_total", "Connections accepted, by labels.", 0);
    rc |= pm_render_conns(m, out, "weft_proxy_connections_closed_total", "Connections closed, by labels.", 1);
    rc |= pm_render_conns(m, out, "weft_proxy_connections_open", "Connections open now.", 4);
    rc |= pm_render_conns(m, out, "weft_proxy_received_bytes_total", "Bytes from the downstream (caller) side.", 2);
    rc |= pm_render_conns(m, out, "weft_proxy_sent_bytes_total", "Bytes to the downstream (caller) side.", 3);
    rc |= pm_render_pool(m, out, "weft_proxy_pool_connections_opened_total",
                         "Pooled HTTP/2 upstream connections opened (peer: the SPIFFE ID the server presented).", 0);
    rc |= pm_render_pool(m, out, "weft_proxy_pool_connections_open", "Pooled HTTP/2 upstream connections open now.",
                         1);
    pthread_mutex_unlock(&m->peers_mu);

    rc |= metrics_header(out, "weft_proxy_tls_handshakes_total", "counter",
                         "mTLS handshakes by side, result and failure reason.");
    for (int s = 0; s < PM_NSIDE; s++)
        for (int f = 0; f < CREDS_FAIL_COUNT; f++) {
            unsigned long long v = LOAD(m->handshakes[s][f]);
            /* Success and the common refusals always appear, so SLO ratios
             * have both series from the start. */
            if (!v && f != CREDS_FAIL_NONE && f != CREDS_FAIL_NO_PEER_CERT && f != CREDS_FAIL_UNKNOWN_CA &&
                f != CREDS_FAIL_EXPIRED)
                continue;
            rc |= buf_appendf(out, "weft_proxy_tls_handshakes_total{side=\"%s\",result=\"%s\",reason=\"%s\"} %llu\n",
                              pm_side_names[s], f == CREDS_FAIL_NONE ? "success" : "failure",
                              f == CREDS_FAIL_NONE ? "" : creds_fail_name((enum creds_fail)f), v);
        }
    rc |= metrics_header(out, "weft_proxy_inbound_refused_total", "counter",
                         "Inbound connections refused under STRICT because they were not weft mTLS.");
    for (int k = 0; k < PM_NREFUSED; k++)
        rc |= buf_appendf(out, "weft_proxy_inbound_refused_total{kind=\"%s\"} %llu\n", pm_refused_names[k],
                          LOAD(m->refused[k]));
    rc |= metrics_header(out, "weft_proxy_connect_failures_total", "counter", "Upstream connects that failed.");
    for (int d = 0; d < PM_NDIR; d++)
        rc |= buf_appendf(out, "weft_proxy_connect_failures_total{direction=\"%s\"} %llu\n", pm_dir_names[d],
                          LOAD(m->connect_failures[d]));
    rc |= metrics_header(out, "weft_proxy_timeouts_total", "counter",
                         "Connections closed by a connect, handshake or idle timeout.");
    for (int d = 0; d < PM_NDIR; d++)
        rc |= buf_appendf(out, "weft_proxy_timeouts_total{direction=\"%s\"} %llu\n", pm_dir_names[d],
                          LOAD(m->timeouts[d]));
    rc |= metrics_header(out, "weft_proxy_protocol_detections_total", "counter",
                         "Connections by what their first bytes were (timeout: none decided in time; relayed as TCP).");
    for (int d = 0; d < PM_NDIR; d++)
        for (int r = DETECT_HTTP1; r < DETECT_NRESULTS; r++)
            rc |= buf_appendf(out, "weft_proxy_protocol_detections_total{direction=\"%s\",result=\"%s\"} %llu\n",
                              pm_dir_names[d], detect_name((enum detect_result)r), LOAD(m->detections[d][r]));
    rc |= metrics_header(out, "weft_proxy_protocol_detection_skipped_total", "counter",
                         "Connections relayed as TCP without protocol detection, by reason.");
    for (int d = 0; d < PM_NDIR; d++)
        for (int k = 0; k < PM_NSKIP; k++)
            rc |= buf_appendf(out, "weft_proxy_protocol_detection_skipped_total{direction=\"%s\",reason=\"%s\"} %llu\n",
                              pm_dir_names[d], pm_skip_names[k], LOAD(m->detect_skipped[d][k]));
    rc |= metrics_histogram_render(out, "weft_proxy_protocol_detect_seconds",
                                   "Time from accept to a protocol decided from the first bytes.", &m->detect_time);
    rc |= metrics_header(out, "weft_proxy_http_upstream_errors_total", "counter",
                         "HTTP requests the proxy answered itself (502, 503, 504), by the cause named in the body.");
    for (int d = 0; d < PM_NDIR; d++)
        for (int c = HTTP_CAUSE_REFUSED; c <= HTTP_CAUSE_DRAINING; c++)
            rc |= buf_appendf(out, "weft_proxy_http_upstream_errors_total{direction=\"%s\",cause=\"%s\"} %llu\n",
                              pm_dir_names[d], http_cause_name((enum http_cause)c), LOAD(m->http_errors[d][c]));
    rc |= metrics_header(out, "weft_proxy_http_bad_requests_total", "counter",
                         "HTTP/1 requests refused with 4xx/5xx by the strict parser, then closed (smuggling defences, limits).");
    for (int d = 0; d < PM_NDIR; d++)
        rc |= buf_appendf(out, "weft_proxy_http_bad_requests_total{direction=\"%s\"} %llu\n", pm_dir_names[d],
                          LOAD(m->http_bad_requests[d]));
    rc |= metrics_header(out, "weft_proxy_accept_overload_total", "counter",
                         "Accepted connections closed at once because the worker was full.");
    rc |= buf_appendf(out, "weft_proxy_accept_overload_total %llu\n", LOAD(m->accept_overload));
    rc |= metrics_header(out, "weft_proxy_certificate_expiry_timestamp_seconds", "gauge",
                         "notAfter of the proxy's certificate (0: none loaded).");
    rc |= metrics_gauge(out, "weft_proxy_certificate_expiry_timestamp_seconds", "", (double)st->cert_not_after);
    rc |= metrics_header(out, "weft_proxy_ready", "gauge", "1 when listeners are up and a valid certificate is loaded.");
    rc |= metrics_gauge(out, "weft_proxy_ready", "", st->ready ? 1 : 0);
    rc |= metrics_header(out, "weft_proxy_draining", "gauge", "1 after SIGTERM or /shutdown.");
    rc |= metrics_gauge(out, "weft_proxy_draining", "", st->draining ? 1 : 0);
    rc |= metrics_header(out, "weft_proxy_config_generation", "gauge",
                         "Configuration snapshot new connections get: 1 at start, +1 per reload (SIGHUP).");
    rc |= metrics_gauge(out, "weft_proxy_config_generation", "", (double)st->config_generation);
    rc |= metrics_header(out, "weft_proxy_heap_bytes", "gauge",
                         "malloc heap: bytes in use and bytes held from the system.");
    rc |= buf_appendf(out, "weft_proxy_heap_bytes{kind=\"in_use\"} %zu\nweft_proxy_heap_bytes{kind=\"held\"} %zu\n",
                      st->heap_inuse, st->heap_mapped);
    return rc ? -E2BIG : 0;
}
