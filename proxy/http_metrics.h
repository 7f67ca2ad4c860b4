/* SPDX-License-Identifier: Apache-2.0 */
/* Per-request RED metrics (rate, errors, duration) of the HTTP stages, on
 * both directions. Every worker records finished requests; the admin thread
 * renders them in Prometheus text after the connection metrics.
 *
 * Where it is: weft-proxy makes one store at start (struct proxy's `http`,
 * budget WEFT_HTTP_METRICS_BUDGET), so a worker records with
 *     http_metrics_record(w->px->http, &o);
 * once per request, when its response has ended or the request failed.
 * Lock-free on that path (atomic counters); only the first request of a new
 * label set takes a mutex to add it.
 *
 * The label sets are bounded by a budget per proxy (docs/proxy.md): once the
 * table of label sets is full, a request whose labels have none yet is
 * counted in its direction's overflow set, whose peer/dst, method, status
 * and grpc_status read "overflow" while direction, classification and
 * origin stay true (so rates and success rates stay right), so no request
 * goes uncounted and memory stays fixed.
 *
 * Classification, as Linkerd's proxies do it: a request is a failure when
 * the proxy answered it (proxy_error), when no response head reached the
 * client (status 0), when it carried a gRPC status other than 0 (OK), or,
 * without a gRPC status, when the status is 5xx. Everything else, 4xx
 * included, is a success. */
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

#define HTTP_METRICS_NMETHODS 10         /* GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH other */
#define HTTP_METRICS_TARGET_MAX 256      /* bytes of peer/dst kept in a label; longer ones are cut */
#define HTTP_METRICS_MAX_BUDGET 256      /* label sets; its rendering fits the admin server's body limit */

struct http_metrics;

/* The bounded method set: the index of an exact (case-sensitive, RFC 9110)
 * match, else HTTP_METRICS_NMETHODS - 1 ("other"). */
int http_metrics_method(const char *m, size_t len);
const char *http_metrics_method_name(int i);
/* 1 when the outcome is a failure (the rules above). */
int http_metrics_failure(const struct http_outcome *o);

/* max_series: the budget of label sets (each renders as one requests line
 * at most, one responses line and two histograms), at most
 * HTTP_METRICS_MAX_BUDGET (more is cut to it); 0 counts everything in the
 * overflow sets. */
struct http_metrics *http_metrics_new(size_t max_series);
void http_metrics_free(struct http_metrics *hm);
/* Any worker thread; hm NULL records nothing (unit tests of the stages). */
void http_metrics_record(struct http_metrics *hm, const struct http_outcome *o);
/* Label sets in the table now (not counting the overflow sets). */
size_t http_metrics_label_sets(struct http_metrics *hm);
/* Admin thread: appends the weft_proxy_http_* families; 0 or -E2BIG. */
int http_metrics_render(struct http_metrics *hm, struct buf *out);

#endif
