/* SPDX-License-Identifier: Apache-2.0 */
/* weft-identity's servers and reload loop; see server.h.
 *
 * Threads: libmicrohttpd runs one thread per connection for :8444 (each
 * request may wait on a TokenReview, so no request waits behind another's)
 * and one internal thread for the metrics port. The main thread only waits
 * for signals and re-checks the certificate files. Shared state is the
 * current issuer and the current serving credentials, each swapped under a
 * mutex; requests hold a reference to the issuer they started with. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "buf.h"
#include "certwatch.h"
#include "errbuf.h"
#include "filestamp.h"
#include "hostport.h"
#include "k8s.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"
#include "review.h"
#include "xalloc.h"

#define DISCARD_MAX (1024 * 1024) /* body bytes read and dropped before a 413 */

/* ---------- metrics ---------- */

static struct metrics_counter reason_counters[IDENT_REASON_COUNT];
static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1, 2.5, 5};
static struct metrics_histogram sign_hist = {.bounds = latency_bounds, .nbounds = 15};
static struct metrics_histogram review_hist = {.bounds = latency_bounds, .nbounds = 15};
static struct metrics_histogram request_hist = {.bounds = latency_bounds, .nbounds = 15};
static struct metrics_counter reload_counters[4] = {
    {.labels = "what=\"issuer\",result=\"ok\""},
    {.labels = "what=\"issuer\",result=\"error\""},
    {.labels = "what=\"serving\",result=\"ok\""},
    {.labels = "what=\"serving\",result=\"error\""},
};

static void metrics_init_labels(void)
{
    for (int i = 0; i < IDENT_REASON_COUNT; i++)
        reason_counters[i].labels = xasprintf("reason=\"%s\"", ident_reason_name((enum ident_reason)i));
}

/* ---------- issuer ---------- */

static pthread_mutex_t issuer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ident_issuer *issuer_current;

static struct ident_issuer *issuer_get(void)
{
    pthread_mutex_lock(&issuer_lock);
    struct ident_issuer *is = issuer_current;
    if (is)
        ident_issuer_ref(is);
    pthread_mutex_unlock(&issuer_lock);
    return is;
}

static void issuer_install(struct ident_issuer *is)
{
    pthread_mutex_lock(&issuer_lock);
    struct ident_issuer *old = issuer_current;
    issuer_current = is;
    pthread_mutex_unlock(&issuer_lock);
    ident_issuer_unref(old);
}

/* ---------- reload ---------- */

struct reloader {
    const struct ident_server_config *cfg;
    struct file_stamp issuer_sig[3];  /* cert, key, bundle */
};

static int reload_issuer(struct reloader *r, int force)
{
    struct file_stamp sig[3];
    file_stamp_read(r->cfg->issuer_cert, &sig[0]);
    file_stamp_read(r->cfg->issuer_key, &sig[1]);
    file_stamp_read(r->cfg->trust_bundle, &sig[2]);
    if (!force && file_stamp_equal(&sig[0], &r->issuer_sig[0]) && file_stamp_equal(&sig[1], &r->issuer_sig[1]) &&
        file_stamp_equal(&sig[2], &r->issuer_sig[2]))
        return 0;
    char err[512];
    struct ident_issuer *is = NULL;
    int rc = ident_issuer_load(r->cfg->issuer_cert, r->cfg->issuer_key, r->cfg->trust_bundle, &is, err, sizeof err);
    if (rc < 0) {
        metrics_inc(&reload_counters[1]);
        pthread_mutex_lock(&issuer_lock);
        int have_one = issuer_current != NULL; /* none at start: nothing is kept */
        pthread_mutex_unlock(&issuer_lock);
        log_error(have_one ? "issuer not loaded, keeping the previous one" : "issuer not loaded", "error=\"%s\"",
                  err);
        /* Remember the signature anyway: a half-written pair is retried when it changes again. */
        memcpy(r->issuer_sig, sig, sizeof sig);
        return rc;
    }
    memcpy(r->issuer_sig, sig, sizeof sig);
    issuer_install(is);
    metrics_inc(&reload_counters[0]);
    log_info("issuer loaded", "cert=%s not_after=%lld chain=%zu", r->cfg->issuer_cert,
             (long long)ident_issuer_not_after(is), ident_issuer_chain_len(is));
    return 1;
}

/* The serving certificate is also re-checked on every handshake (lib/certwatch);
 * this periodic check logs and counts the outcome. */
static int reload_serving(void)
{
    char err[512];
    int rc = certwatch_refresh(err, sizeof err);
    if (rc < 0) {
        metrics_inc(&reload_counters[3]);
        log_error("serving certificate not loaded, keeping the previous one", "error=\"%s\"", err);
    } else if (rc > 0) {
        metrics_inc(&reload_counters[2]);
        log_info("serving certificate loaded", "not_after=%lld", certwatch_not_after());
    }
    return rc;
}

/* ---------- HTTP handlers ---------- */

struct server_state {
    const struct ident_server_config *cfg;
    struct k8s_client *kube;
};

struct conn_state {
    struct buf body;              /* at most IDENT_MAX_BODY bytes */
    unsigned long long received;  /* body bytes read, kept or dropped */
    int too_large;
    int started;                  /* answered */
    enum ident_reason early;      /* 404 or 405 decided from the head, or IDENT_ISSUED */
};

static int review_call(void *ctx, json_t *request, long *status, json_t **body, char *err, size_t errlen)
{
    struct server_state *st = ctx;
    return k8s_request(st->kube, "POST", IDENT_TOKENREVIEW_PATH, request, status, body, err, errlen);
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                                 size_t len, enum MHD_ResponseMemoryMode mode, int retry_after)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void log_outcome(const struct ident_response *out, struct MHD_Connection *conn)
{
    enum log_level level = out->reason == IDENT_ISSUED ? LOG_INFO : out->status >= 500 ? LOG_WARN : LOG_INFO;
    if (!log_enabled(level))
        return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[64] = "-";
    if (ci && ci->client_addr)
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                    peer, sizeof peer, NULL, 0, NI_NUMERICHOST);
    if (out->reason == IDENT_ISSUED)
        log_info("certificate issued", "spiffe_id=%s peer=%s detail=\"%s\"", out->spiffe_id, peer, out->message);
    else
        log_event(level, "certificate denied", "status=%d reason=%s spiffe_id=%s peer=%s detail=\"%s\"",
                  out->status, ident_reason_name(out->reason), *out->spiffe_id ? out->spiffe_id : "-", peer,
                  out->message);
}

/* Answers a request decided without the core (404, 405, 413 up front). */
static enum MHD_Result deny_early(struct MHD_Connection *conn, enum ident_reason r, const char *message)
{
    struct ident_response out = {0};
    metrics_inc(&reason_counters[r]);
    json_t *body = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", ident_reason_status(r), "reason",
                             ident_reason_name(r), "message", message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    out.status = ident_reason_status(r);
    out.reason = r;
    snprintf(out.message, sizeof out.message, "%s", message);
    log_outcome(&out, conn);
    return send_text(conn, (unsigned)out.status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct server_state *st = cls;
    struct conn_state *cs = *con_cls;
    if (!cs) {
        cs = xcalloc(1, sizeof *cs);
        buf_init(&cs->body, IDENT_MAX_BODY);
        *con_cls = cs;
        /* Refusals are answered once the body has been read (and dropped), so
         * clients that send it whole still see the answer; only a body too
         * large to be worth reading is refused at once, closing the connection. */
        if (strcmp(url, "/v1/certificates") != 0)
            cs->early = IDENT_NOT_FOUND;
        else if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            cs->early = IDENT_METHOD_NOT_ALLOWED;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long len = cl && strlen(cl) <= 18 ? strtoull(cl, NULL, 10) : ULLONG_MAX;
        if (cl && len > IDENT_MAX_BODY) {
            cs->too_large = 1;
            if (len > DISCARD_MAX)
                return deny_early(conn, cs->early ? cs->early : IDENT_BODY_TOO_LARGE,
                                  "request body is larger than 65536 bytes");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        cs->received += *upload_data_size;
        if (cs->received > DISCARD_MAX)
            return MHD_NO; /* a client streaming without end: drop the connection */
        if (!cs->too_large && buf_append(&cs->body, upload_data, *upload_data_size) < 0)
            cs->too_large = 1; /* keep reading, answer 413 at the end */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cs->started)
        return MHD_YES;
    cs->started = 1;
    if (cs->early == IDENT_NOT_FOUND)
        return deny_early(conn, IDENT_NOT_FOUND, "no such path; POST /v1/certificates");
    if (cs->early == IDENT_METHOD_NOT_ALLOWED)
        return deny_early(conn, IDENT_METHOD_NOT_ALLOWED, "only POST is allowed");

    uint64_t t0 = metrics_now_ns();
    struct ident_request req = {
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .body = cs->body.data,
        .len = cs->body.len,
        .too_large = cs->too_large,
    };
    struct ident_response out;
    struct ident_issuer *is = issuer_get();
    ident_handle(&st->cfg->core, review_call, st, is, time(NULL), &req, &out);
    ident_issuer_unref(is);
    metrics_inc(&reason_counters[out.reason]);
    if (out.review_ns)
        metrics_observe_ns(&review_hist, out.review_ns);
    if (out.sign_ns && out.reason == IDENT_ISSUED)
        metrics_observe_ns(&sign_hist, out.sign_ns);
    log_outcome(&out, conn);
    char *body = out.body;
    out.body = NULL;
    enum MHD_Result r =
        send_text(conn, (unsigned)out.status, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE,
                  out.retry_after);
    metrics_observe_ns(&request_hist, metrics_now_ns() - t0);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct conn_state *cs = *con_cls;
    if (!cs)
        return;
    if (cs->body.data)
        explicit_bzero(cs->body.data, cs->body.len);
    buf_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

static int ready(char *why, size_t whylen)
{
    struct ident_issuer *is = issuer_get();
    int ok = 1;
    if (!is) {
        errbuf_set(why, whylen, "no issuer loaded\n");
        ok = 0;
    } else if (ident_issuer_not_after(is) <= time(NULL)) {
        errbuf_set(why, whylen, "issuer expired\n");
        ok = 0;
    }
    ident_issuer_unref(is);
    if (ok)
        errbuf_set(why, whylen, "ok\n");
    return ok;
}

static void render_metrics(struct buf *out)
{
    /* reason_counters[IDENT_ISSUED] is the issued count, rendered without a label. */
    metrics_header(out, "weft_identity_certificates_issued_total", "counter", "Certificates issued.");
    buf_appendf(out, "weft_identity_certificates_issued_total %llu\n",
                (unsigned long long)atomic_load(&reason_counters[IDENT_ISSUED].value));
    metrics_counters(out, "weft_identity_requests_denied_total",
                     "Certificate requests refused, by reason (nothing was issued).", &reason_counters[1],
                     IDENT_REASON_COUNT - 1);
    metrics_histogram_render(out, "weft_identity_signing_duration_seconds",
                             "Time to build and sign one certificate.", &sign_hist);
    metrics_histogram_render(out, "weft_identity_tokenreview_duration_seconds",
                             "Time of the TokenReview call to the API server.", &review_hist);
    metrics_histogram_render(out, "weft_identity_request_duration_seconds",
                             "Time from a complete request body to the queued answer.", &request_hist);
    metrics_counters(out, "weft_identity_reloads_total", "Loads of the issuer and serving certificate files.",
                     reload_counters, 4);
    struct ident_issuer *is = issuer_get();
    metrics_header(out, "weft_identity_issuer_not_after_timestamp_seconds", "gauge",
                   "Expiry of the loaded issuer certificate (0: none).");
    metrics_gauge(out, "weft_identity_issuer_not_after_timestamp_seconds", "",
                  is ? (double)ident_issuer_not_after(is) : 0);
    ident_issuer_unref(is);
    double serving_na = (double)certwatch_not_after();
    metrics_header(out, "weft_identity_serving_not_after_timestamp_seconds", "gauge",
                   "Expiry of the loaded serving certificate (0: none).");
    metrics_gauge(out, "weft_identity_serving_not_after_timestamp_seconds", "", serving_na);
    publish_render_metrics(out);
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = conn; /* any non-NULL marker: answer on the second call */
        return MHD_YES;
    }
    *upload_data_size = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char m[] = "method not allowed\n";
        return send_text(conn, 405, "text/plain", m, sizeof m - 1, MHD_RESPMEM_PERSISTENT, 0);
    }
    if (strcmp(url, "/metrics") == 0) {
        struct buf b;
        buf_init(&b, 1024 * 1024);
        render_metrics(&b);
        size_t len = 0;
        char *text = buf_steal(&b, &len);
        return send_text(conn, 200, "text/plain; version=0.0.4", text ? text : xstrdup(""), len,
                         MHD_RESPMEM_MUST_FREE, 0);
    }
    if (strcmp(url, "/healthz") == 0) {
        static char ok[] = "ok\n";
        return send_text(conn, 200, "text/plain", ok, sizeof ok - 1, MHD_RESPMEM_PERSISTENT, 0);
    }
    if (strcmp(url, "/readyz") == 0) {
        char why[128];
        int ok = ready(why, sizeof why);
        return send_text(conn, ok ? 200 : 503, "text/plain", xstrdup(why), strlen(why), MHD_RESPMEM_MUST_FREE, 0);
    }
    static char nf[] = "not found\n";
    return send_text(conn, 404, "text/plain", nf, sizeof nf - 1, MHD_RESPMEM_PERSISTENT, 0);
}

/* ---------- startup ---------- */

int ident_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    return hostport_split(s, host, hostlen, port, portlen);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '"')
            *p = '\'';
    log_debug("libmicrohttpd", "detail=\"%s\"", text);
}

static struct MHD_Daemon *start_daemon(const char *listen, int tls, unsigned max_conn, MHD_AccessHandlerCallback h,
                                       void *cls, char *err, size_t errlen)
{
    char host[256], port[8];
    if (ident_split_hostport(listen, host, sizeof host, port, sizeof port) < 0) {
        errbuf_set(err, errlen, "bad listen address %s (want host:port, [v6]:port or :port)", listen);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    flags |= tls ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_TLS : MHD_USE_AUTO;
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    if (*host) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
        if (getaddrinfo(host, port, &hints, &ai) != 0) {
            errbuf_set(err, errlen, "bad listen address %s (host must be an IP address)", listen);
            return NULL;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        freeaddrinfo(ai);
    } else {
        flags |= MHD_USE_DUAL_STACK;
    }
    struct MHD_OptionItem opts[12];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conn, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL};
    /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: on Linux its 1 adds SO_REUSEPORT,
     * which let a second weft-identity listen on a port already served and
     * share its connections. libmicrohttpd's default, SO_REUSEADDR alone,
     * still binds at once after a restart (TIME_WAIT), and a port in use is
     * an error at start. */
    if (*host)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, certwatch_mhd_callback()};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_STACK_SIZE, 512 * 1024, NULL};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)strtoul(port, NULL, 10), NULL, NULL, h, cls,
                                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d)
        errbuf_set(err, errlen, "cannot listen on %s%s", listen, tls ? " (HTTPS)" : "");
    return d;
}

int ident_server_run(const struct ident_server_config *cfg)
{
    int code = 1;
    char err[512];
    struct server_state st = {.cfg = cfg};
    struct reloader rl = {.cfg = cfg};
    struct MHD_Daemon *api = NULL, *mon = NULL;
    metrics_init_labels();

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);

    if (cfg->kube_api) {
        char host[256], port[8];
        if (ident_split_hostport(cfg->kube_api, host, sizeof host, port, sizeof port) < 0 || !*host) {
            log_error("bad --kube-api", "value=%s", cfg->kube_api);
            goto out;
        }
        st.kube = k8s_client_new(host, port, cfg->kube_ca, cfg->kube_token, err, sizeof err);
    } else {
        st.kube = k8s_client_in_cluster(err, sizeof err);
    }
    if (!st.kube) {
        log_error("no Kubernetes API client", "error=\"%s\"", err);
        goto out;
    }
    k8s_client_set_timeouts(st.kube, (int)(cfg->kube_timeout * 1000 / 2), (int)(cfg->kube_timeout * 1000));

    /* Both must load at start; later failures keep the previous ones. */
    if (reload_issuer(&rl, 1) < 0)
        goto out;
    if (certwatch_init(cfg->tls_cert, cfg->tls_key, err, sizeof err) < 0) {
        metrics_inc(&reload_counters[3]);
        log_error("serving certificate not loaded", "error=\"%s\"", err);
        goto out;
    }
    metrics_inc(&reload_counters[2]);

    api = start_daemon(cfg->listen, 1, cfg->max_connections, on_request, &st, err, sizeof err);
    if (api)
        mon = start_daemon(cfg->metrics_listen, 0, 64, on_metrics, NULL, err, sizeof err);
    if (!api || !mon) {
        log_error("cannot start", "error=\"%s\"", err);
        goto out;
    }
    if (cfg->publish_selector && publish_start(st.kube, cfg->trust_bundle, cfg->publish_selector,
                                               cfg->publish_interval) < 0) {
        log_error("cannot start the trust bundle publisher", "selector=\"%s\"", cfg->publish_selector);
        goto out;
    }
    log_info("weft-identity started", "listen=%s metrics=%s trust_domain=%s audience=%s ttl=%ld", cfg->listen,
             cfg->metrics_listen, cfg->core.trust_domain, cfg->core.audience, cfg->core.ttl);

    time_t next_check = time(NULL) + cfg->reload_interval;
    for (;;) {
        struct timespec wait = {.tv_sec = 1};
        int sig = sigtimedwait(&sigs, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("weft-identity stopping", "signal=%d", sig);
            break;
        }
        if (sig == SIGHUP || time(NULL) >= next_check) {
            reload_issuer(&rl, sig == SIGHUP);
            reload_serving();
            next_check = time(NULL) + cfg->reload_interval;
        }
    }
    code = 0;
out:
    if (api)
        MHD_stop_daemon(api);
    if (mon)
        MHD_stop_daemon(mon);
    publish_stop();
    k8s_client_free(st.kube);
    issuer_install(NULL);
    certwatch_shutdown();
    for (int i = 0; i < IDENT_REASON_COUNT; i++) {
        free((char *)reason_counters[i].labels);
        reason_counters[i].labels = NULL;
    }
    return code;
}
