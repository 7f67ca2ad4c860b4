/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's metrics: atomic counters that every worker updates and the
 * admin thread renders. Label sets are bounded by construction: direction x
 * tls x authorization result x peer identity, where peer identities are
 * interned into a fixed table (PM_MAX_PEERS, then "other"). */
#ifndef WEFT_PROXY_PMETRICS_H
#define WEFT_PROXY_PMETRICS_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "creds.h"
#include "detect.h"
#include "metrics.h"

#define PM_MAX_PEERS 64 /* slot 0 is "no identity", the last one "other" */
#define PM_HTTP_NCAUSES 13 /* enum http_cause (proxy/http_msg.h); checked there */

enum pm_dir { PM_INBOUND, PM_OUTBOUND, PM_NDIR };
enum pm_authz { PM_AUTHZ_NONE, PM_AUTHZ_ALLOWED, PM_AUTHZ_DENIED, PM_NAUTHZ };
enum pm_side { PM_SERVER, PM_CLIENT, PM_NSIDE };
enum pm_refused { PM_REFUSED_PLAINTEXT, PM_REFUSED_OTHER_TLS, PM_NREFUSED };
/* Why a connection was relayed as TCP without protocol detection. */
enum pm_skip {
    PM_SKIP_OPAQUE_PORT, /* its destination port is in WEFT_OPAQUE_PORTS */
    PM_SKIP_MESH,        /* inbound over ALPN weft/1, opaque TCP by contract */
    PM_SKIP_DISCOVERY_OPAQUE, /* outbound: discovery marks the port opaque (weft.dev/opaque-ports) */
    PM_SKIP_APP_PROTOCOL,     /* outbound: the Service port's appProtocol decides (http, h2c/grpc, else opaque) */
    PM_NSKIP
};

struct pm_series {
    atomic_uint_fast64_t opened, closed, bytes_in, bytes_out; /* in: from the downstream (caller) */
};

struct proxy_metrics {
    struct pm_series conns[PM_NDIR][2][PM_NAUTHZ][PM_MAX_PEERS];
    pthread_mutex_t peers_mu;
    char *peers[PM_MAX_PEERS]; /* interned SPIFFE URIs; [0] = "", [PM_MAX_PEERS-1] = "other" */
    atomic_int npeers;
    atomic_uint_fast64_t handshakes[PM_NSIDE][CREDS_FAIL_COUNT]; /* [..][CREDS_FAIL_NONE] = success */
    atomic_uint_fast64_t refused[PM_NREFUSED];
    atomic_uint_fast64_t connect_failures[PM_NDIR];
    atomic_uint_fast64_t timeouts[PM_NDIR];
    atomic_uint_fast64_t accept_overload;
    atomic_uint_fast64_t detections[PM_NDIR][DETECT_NRESULTS]; /* [..][DETECT_NEED_MORE] unused */
    atomic_uint_fast64_t detect_skipped[PM_NDIR][PM_NSKIP];
    struct metrics_histogram detect_time; /* accept to a decision from bytes (not timeouts) */
    atomic_uint_fast64_t http_errors[PM_NDIR][PM_HTTP_NCAUSES]; /* requests the proxy answered, by cause */
    atomic_uint_fast64_t http_bad_requests[PM_NDIR];            /* requests refused by the HTTP/1 parser */
    /* Pooled HTTP/2 upstream connections: outbound to an endpoint (weft/h2 to
     * its proxy, peer = the SPIFFE ID it presented; h2c to one outside the
     * mesh), inbound to the app (h2c). Counted once open, not per request. */
    struct pm_pool_series {
        atomic_uint_fast64_t opened, closed;
    } pool[PM_NDIR][2][PM_MAX_PEERS];
};

void pm_init(struct proxy_metrics *m);
void pm_destroy(struct proxy_metrics *m);
/* Peer slot of a SPIFFE URI ("" for none): interned on first sight. */
int pm_peer_slot(struct proxy_metrics *m, const char *uri);
static inline struct pm_series *pm_series(struct proxy_metrics *m, enum pm_dir d, int tls, enum pm_authz a, int peer)
{
    return &m->conns[d][tls ? 1 : 0][a][peer];
}
static inline void pm_add(atomic_uint_fast64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

struct pm_state {            /* values sampled at render time */
    time_t cert_not_after;   /* 0: none */
    int ready;
    int draining;
    size_t heap_inuse;       /* malloc'd bytes in use (mallinfo2), 0 if unknown */
    size_t heap_mapped;      /* bytes malloc holds from the system */
    uint64_t config_generation; /* of the snapshot new connections get */
};
/* Prometheus text of everything; 0 or -E2BIG. Series never used are left out. */
int pm_render(struct proxy_metrics *m, const struct pm_state *st, struct buf *out);

#endif
