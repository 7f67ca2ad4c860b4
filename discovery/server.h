/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy-facing server (docs/discovery.md#the-protocol): TLS 1.3 only,
 * a client certificate required and verified against the trust bundle,
 * HTTP/2 (nghttp2) over it. One long-lived stream per proxy
 * (POST or PUT /v1/stream, newline-delimited JSON both ways) with lazy
 * subscriptions, and one-shot GET /v1/answer?id=... for curl. The caller's
 * SPIFFE ID decides what it may learn. Runs on one ae loop; answers are
 * recomputed from the store after each change and pushed when they differ. */
#ifndef WEFT_DISCOVERY_SERVER_H
#define WEFT_DISCOVERY_SERVER_H
#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ae.h"
#include "buf.h"
#include "metrics.h"
#include "store.h"

struct server_opts {
    const char *addr, *port;          /* listen address ("::" for all) and port */
    const char *cert, *key;           /* the server's certificate (chain) and key, PEM */
    const char *trust_bundle;         /* CAs a client certificate must chain to */
    const char *trust_domain;
    json_t *mesh_values;              /* settings_from_mesh(), borrowed for the server's life */
    size_t max_subscriptions;         /* per stream */
    size_t max_message;               /* one client message, newline excluded */
    size_t max_connections;
    size_t max_pending;               /* unsent bytes per stream before it is reset as too slow */
    int handshake_ms;                 /* a TLS handshake must finish within this */
    int coalesce_ms;                  /* changes within this window are pushed together */
    int ping_interval_ms;             /* a connection that sent nothing for this long gets a PING */
    int ping_timeout_ms;              /* and is closed when its ACK has not come within this */
};

enum server_refusal {
    SERVER_REFUSE_MALFORMED,
    SERVER_REFUSE_TOO_LARGE,
    SERVER_REFUSE_TOO_MANY,
    SERVER_REFUSE_FORBIDDEN,
    SERVER_REFUSE_UNKNOWN_SUB,
    SERVER_REFUSE_BAD_VERSION,
    SERVER_REFUSE_BAD_REQUEST,        /* an HTTP request the server does not serve */
    SERVER_REFUSE_SLOW,               /* a stream reset because it did not read its answers */
    SERVER_REFUSALS,
};

enum server_tls_fail {
    SERVER_TLS_NO_CERT,
    SERVER_TLS_UNKNOWN_CA,
    SERVER_TLS_NO_SPIFFE_ID,
    SERVER_TLS_TRUST_DOMAIN,
    SERVER_TLS_NO_H2,
    SERVER_TLS_OTHER,
    SERVER_TLS_TIMEOUT,
    SERVER_TLS_FAILS,
};

/* Read by /metrics on another thread. */
struct server_metrics {
    atomic_long connections, streams, subscriptions;
    struct metrics_counter accepted, over_limit;
    struct metrics_counter tls_fail[SERVER_TLS_FAILS];
    struct metrics_counter refused[SERVER_REFUSALS];
    struct metrics_counter pushes, acks, acks_stale, nacks, oneshot;
    struct metrics_counter pings, ping_timeouts; /* PINGs sent; connections closed for no ACK */
    struct metrics_counter computed;             /* answers computed (cache misses) */
    struct metrics_histogram push_latency; /* store change received -> answer queued */
    struct metrics_histogram ack_latency;  /* answer queued -> its ack received */
};

struct server;

/* Listens and loads the credentials; NULL with err on failure. store is
 * borrowed and may be replaced with server_set_store. */
struct server *server_new(struct ae_loop *loop, const struct server_opts *o, struct store *store, char *err,
                          size_t errlen);
void server_free(struct server *s);
/* The store moved (events applied) or was replaced; received_ns: when the
 * first change of this batch arrived (for the push latency). */
void server_store_changed(struct server *s, struct store *store, uint64_t received_ns);
/* Rebuilds the TLS context when the certificate, key or bundle files changed. */
void server_reload_tls(struct server *s);
struct server_metrics *server_metrics(struct server *s);
int server_port(const struct server *s);
/* Refusal and TLS failure names, as in the metrics' reason label. */
const char *server_refusal_name(enum server_refusal r);
const char *server_tls_fail_name(enum server_tls_fail f);

#endif
