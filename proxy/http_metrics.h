/* SPDX-License-Identifier: Apache-2.0 */
/* Per-request RED metrics (rate, errors, duration) of the HTTP stages, on
 * both directions. Every worker records finished requests; the admin thread
 * renders them in Prometheus text after the connection metrics.
 *
 * The label sets are bounded by a budget per proxy (docs/proxy.md): once the
 * table of series is full, a request whose labels have no series yet is
 * counted in the direction's overflow series, whose label values are all
 * "overflow", so no request goes uncounted and memory stays fixed. */
#ifndef WEFT_PROXY_HTTP_METRICS_H
#define WEFT_PROXY_HTTP_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pmetrics.h"

/* One finished request, as the HTTP stage saw it. Strings need not be
 * NUL-terminated; they are copied (or interned) when a series is made. */
struct http_outcome {
    enum pm_dir dir;
    const char *peer;      /* inbound: the caller's SPIFFE ID; "" when none (plaintext) */
    size_t peer_len;
    const char *dst;       /* outbound: the destination (Service host:port, else ip:port) */
    size_t dst_len;
    const char *method;    /* as received; methods outside the bounded set count as "other" */
    size_t method_len;
    int status;            /* the response status; 0 when no response head reached the client */
    int grpc_status;       /* from grpc-status (trailers or a trailers-only response); -1 when not gRPC */
    int proxy_error;       /* 1 when the proxy itself answered (502/503/504) */
    uint64_t headers_ns;   /* request start to the response head */
    uint64_t total_ns;     /* request start to the end of the response */
};

struct http_metrics;

struct http_metrics *http_metrics_new(size_t max_series);
void http_metrics_free(struct http_metrics *hm);
/* Any worker thread. */
void http_metrics_record(struct http_metrics *hm, const struct http_outcome *o);
/* Admin thread: appends the weft_proxy_http_* families; 0 or -E2BIG. */
int http_metrics_render(struct http_metrics *hm, struct buf *out);

#endif
