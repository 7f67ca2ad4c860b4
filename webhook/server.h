/* SPDX-License-Identifier: Apache-2.0 */
/* The webhook's two HTTP servers (libmicrohttpd): HTTPS on --listen with
 * POST /inject, GET /healthz and /readyz; plain HTTP on --metrics-listen with
 * /metrics, /healthz and /readyz. A thin shell around review_handle(). */
#ifndef WEFT_WEBHOOK_SERVER_H
#define WEFT_WEBHOOK_SERVER_H
#include <stddef.h>

#include "confstore.h"
#include "review.h"

#define SERVER_MAX_CONNECTIONS 1024
/* Scrapers and probes only: a few at once; more wait in the backlog. */
#define SERVER_METRICS_MAX_CONNECTIONS 64

struct server_options {
    const char *listen;          /* "host:port", "[v6]:port"; port 0 picks one */
    const char *metrics_listen;
    unsigned threads;
    unsigned idle_timeout_s;     /* a stalled or idle client is dropped after this */
    struct confstore *configs;   /* each request uses the snapshot current when it ends */
    review_ns_lookup lookup;     /* NULL: namespace annotations are not read */
    void *lookup_ctx;
};

struct server;

/* Starts both servers (the TLS credentials come from certwatch). NULL with
 * the reason in err. */
struct server *server_start(const struct server_options *o, char *err, size_t errlen);
/* The bound ports, useful when 0 was asked for. */
unsigned server_port(const struct server *s);
unsigned server_metrics_port(const struct server *s);
void server_stop(struct server *s);
/* Counts a configuration reload in /metrics. */
void server_count_reload(int ok);

#endif
