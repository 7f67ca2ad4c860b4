/* SPDX-License-Identifier: Apache-2.0 */
/* The request filter chain and the exchange's flow between its two sides
 * (proxy/http_msg.h). The order is fixed here, as design.md asks: the
 * caller's authorization stays per connection and ran before any request
 * (a denied connection never gets one), so the chain starts at
 *   timeout -> metrics -> (the upstream side)
 * and route, retry and breaker slot in between when they come. Request
 * hooks run in this order, response hooks backwards. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dest.h"
#include "http_filter.h"
#include "http_metrics.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

/* ---- timeout: the request and response-header deadlines ---- */

static void http_timeout_disarm(struct http_exchange *x, long long *t)
{
    if (*t)
        ae_timer_del(x->w->loop, *t);
    *t = 0;
}

static long http_timeout_fire(struct http_exchange *x, long long *t, enum http_cause cause)
{
    *t = 0;
    http_exchange_local_reply(x, cause, 0, NULL);
    return -1;
}

static long http_timeout_request(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_exchange *x = data;
    return http_timeout_fire(x, &x->req_timer, HTTP_CAUSE_REQUEST_TIMEOUT);
}

static long http_timeout_header(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_exchange *x = data;
    return http_timeout_fire(x, &x->hdr_timer, HTTP_CAUSE_HEADER_TIMEOUT);
}

/* The timeouts of one exchange, picked once at its request head: for an
 * outbound request to a Service discovery answered for, each timeout that
 * Service's annotations set (weft.dev/request-timeout, ...-response-header-,
 * ...-idle-; docs/discovery.md), else the proxy's settings. x->dst is the
 * original destination, the key of discovery's answers. HTTPRoute timeouts
 * will override here too. */
static void http_timeout_for(struct http_exchange *x)
{
    x->timeout_req_ms = x->cfg->http_request_timeout_ms;
    x->timeout_hdr_ms = x->cfg->http_header_timeout_ms;
    x->timeout_idle_ms = x->cfg->http_idle_timeout_ms;
    struct dest_store *st = x->w->px->dest;
    struct sockaddr_storage dst;
    struct dest_timeouts t;
    if (x->dir != PM_OUTBOUND || !st || !x->dst || dest_parse_addr(x->dst, &dst) < 0 ||
        !dest_store_timeouts(st, &dst, &t))
        return;
    if (t.request_ms >= 0)
        x->timeout_req_ms = (unsigned)t.request_ms;
    if (t.header_ms >= 0)
        x->timeout_hdr_ms = (unsigned)t.header_ms;
    if (t.idle_ms > 0)
        x->timeout_idle_ms = (unsigned)t.idle_ms;
}

unsigned http_exchange_idle_ms(const struct http_exchange *x)
{
    return x->begun && x->timeout_idle_ms ? x->timeout_idle_ms : x->cfg->http_idle_timeout_ms;
}

static enum http_filter_rc http_timeout_request_head(struct http_exchange *x, struct http_head *h)
{
    http_timeout_for(x);
    if (x->timeout_req_ms)
        x->req_timer = ae_timer_add(x->w->loop, (long)x->timeout_req_ms, http_timeout_request, x);
    /* The response-header clock starts once the request is sent whole, so
     * an upload's own time does not count against it. */
    if (x->timeout_hdr_ms && h->end_stream)
        x->hdr_timer = ae_timer_add(x->w->loop, (long)x->timeout_hdr_ms, http_timeout_header, x);
    return HTTP_FILTER_CONTINUE;
}

static enum http_filter_rc http_timeout_data(struct http_exchange *x, int to_upstream, const char *p, size_t len,
                                             int end_stream)
{
    (void)p;
    (void)len;
    if (to_upstream && end_stream && x->timeout_hdr_ms && !x->hdr_timer && !x->resp_head_sent)
        x->hdr_timer = ae_timer_add(x->w->loop, (long)x->timeout_hdr_ms, http_timeout_header, x);
    return HTTP_FILTER_CONTINUE;
}

static enum http_filter_rc http_timeout_response_head(struct http_exchange *x, struct http_head *h)
{
    if (h->status >= 200 || h->status == 101)
        http_timeout_disarm(x, &x->hdr_timer);
    if (h->status == 101 || (h->status >= 200 && h->status < 300 && http_name_is(x->method, strlen(x->method),
                                                                                   "CONNECT")))
        http_timeout_disarm(x, &x->req_timer); /* a tunnel has no end to wait for */
    return HTTP_FILTER_CONTINUE;
}

static void http_timeout_done(struct http_exchange *x)
{
    http_timeout_disarm(x, &x->req_timer);
    http_timeout_disarm(x, &x->hdr_timer);
}

static const struct http_filter http_filter_timeout = {
    .name = "timeout",
    .request_head = http_timeout_request_head,
    .response_head = http_timeout_response_head,
    .data = http_timeout_data,
    .done = http_timeout_done,
};

/* ---- metrics: RED per request, the access log line ---- */

/* One JSON object a line (lib/log.c log_json). No header, no query string
 * (x->path was cut at '?'), no body: none of them may reach a log. Every
 * string goes through log_json_str, so no byte of a request can break the
 * line or make it invalid JSON; the buffers hold each field's worst case,
 * so nothing is cut either. */
static void http_access_log(const struct http_exchange *x)
{
    const char *peer = x->peer ? x->peer : "", *dst = x->dst ? x->dst : "";
    size_t peer_len = strnlen(peer, SPIFFE_MAX_ID), dst_len = strnlen(dst, 128);
    char method[LOG_JSON_STR_MAX(sizeof x->method)], authority[LOG_JSON_STR_MAX(sizeof x->authority)];
    char path[LOG_JSON_STR_MAX(sizeof x->path)], jpeer[LOG_JSON_STR_MAX(SPIFFE_MAX_ID)];
    char jdst[LOG_JSON_STR_MAX(128)];
    char line[sizeof method + sizeof authority + sizeof path + sizeof jpeer + sizeof jdst + 512];
    log_json_str(method, sizeof method, x->method, strlen(x->method));
    log_json_str(authority, sizeof authority, x->authority, strlen(x->authority));
    log_json_str(path, sizeof path, x->path, strlen(x->path));
    log_json_str(jpeer, sizeof jpeer, peer, peer_len);
    log_json_str(jdst, sizeof jdst, dst, dst_len);
    uint64_t hdr_us = x->head_ns ? (x->head_ns - x->start_ns) / 1000 : 0;
    uint64_t total_us = (x->end_ns - x->start_ns) / 1000;
    int n = snprintf(line, sizeof line,
                     "\"direction\":\"%s\",\"method\":%s,\"authority\":%s,\"path\":%s,\"status\":%d,"
                     "\"cause\":\"%s\",\"proxy_error\":%s,\"headers_us\":%" PRIu64 ",\"total_us\":%" PRIu64
                     ",\"request_bytes\":%" PRIu64 ",\"response_bytes\":%" PRIu64 ",\"peer\":%s,\"dst\":%s",
                     x->dir == PM_INBOUND ? "inbound" : "outbound", method, authority, path, x->status,
                     http_cause_name(x->cause), x->proxy_error ? "true" : "false", hdr_us, total_us, x->req_bytes,
                     x->resp_bytes, jpeer, jdst);
    if (n < 0 || (size_t)n >= sizeof line)
        return; /* cannot happen: line holds every field's worst case */
    log_json(LOG_INFO, "http request", line, (size_t)n);
}

static void http_metrics_done(struct http_exchange *x)
{
    struct http_outcome o = {
        .dir = x->dir,
        .peer = x->peer ? x->peer : "",
        .peer_len = x->peer ? strlen(x->peer) : 0,
        .dst = x->dst ? x->dst : "",
        .dst_len = x->dst ? strlen(x->dst) : 0,
        .method = x->method,
        .method_len = strlen(x->method),
        .status = x->status,
        .grpc_status = x->grpc ? x->grpc_status : -1,
        .proxy_error = x->proxy_error,
        .headers_ns = x->head_ns ? x->head_ns - x->start_ns : 0,
        .total_ns = x->end_ns - x->start_ns,
    };
    struct proxy *px = x->w->px;
    if (px->http)
        http_metrics_record(px->http, &o);
    if (x->cfg->access_log)
        http_access_log(x);
}

static const struct http_filter http_filter_metrics = {
    .name = "metrics",
    .done = http_metrics_done,
};

static const struct http_filter *const http_chain[] = {
    &http_filter_timeout,
    &http_filter_metrics,
};
#define HTTP_NFILTERS (sizeof http_chain / sizeof *http_chain)

/* ---- the exchange's flow ---- */

void http_exchange_begin(struct http_exchange *x)
{
    x->start_ns = metrics_now_ns();
    x->begun = 1;
}

static void http_exchange_note_request(struct http_exchange *x, const struct http_head *h)
{
    size_t n = h->method.len < HTTP_MSG_METHOD_MAX ? h->method.len : HTTP_MSG_METHOD_MAX;
    if (n)
        memcpy(x->method, h->method.p, n);
    x->method[n] = '\0';
    n = h->authority.len < sizeof x->authority - 1 ? h->authority.len : sizeof x->authority - 1;
    if (n)
        memcpy(x->authority, h->authority.p, n);
    x->authority[n] = '\0';
    http_path_no_query(h->path.p ? h->path.p : "", h->path.len, x->path, sizeof x->path);
}

enum http_rc http_exchange_request_head(struct http_exchange *x, struct http_head *h)
{
    http_exchange_note_request(x, h);
    if (h->end_stream)
        x->req_done = 1;
    for (size_t i = 0; i < HTTP_NFILTERS; i++)
        if (http_chain[i]->request_head && http_chain[i]->request_head(x, h) == HTTP_FILTER_STOP)
            return HTTP_OK;
    if (x->finished)
        return HTTP_OK;
    return x->up_ops->head(x, h);
}

static int http_exchange_filter_data(struct http_exchange *x, int to_upstream, const char *p, size_t len, int end)
{
    if (to_upstream) {
        for (size_t i = 0; i < HTTP_NFILTERS; i++)
            if (http_chain[i]->data && http_chain[i]->data(x, 1, p, len, end) == HTTP_FILTER_STOP)
                return 1;
    } else {
        for (size_t i = HTTP_NFILTERS; i-- > 0;)
            if (http_chain[i]->data && http_chain[i]->data(x, 0, p, len, end) == HTTP_FILTER_STOP)
                return 1;
    }
    return 0;
}

enum http_rc http_exchange_request_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    if (x->finished)
        return HTTP_OK;
    x->req_bytes += len;
    if (end_stream)
        x->req_done = 1;
    if (http_exchange_filter_data(x, 1, p, len, end_stream))
        return HTTP_OK;
    return x->up_ops->data(x, p, len, end_stream);
}

enum http_rc http_exchange_request_trailers(struct http_exchange *x, struct http_head *t)
{
    if (x->finished)
        return HTTP_OK;
    x->req_done = 1;
    if (http_exchange_filter_data(x, 1, NULL, 0, 1))
        return HTTP_OK;
    return x->up_ops->trailers(x, t);
}

enum http_rc http_exchange_response_head(struct http_exchange *x, struct http_head *h)
{
    if (x->finished)
        return HTTP_OK;
    for (size_t i = HTTP_NFILTERS; i-- > 0;)
        if (http_chain[i]->response_head && http_chain[i]->response_head(x, h) == HTTP_FILTER_STOP)
            return HTTP_OK;
    if (x->finished)
        return HTTP_OK;
    int final = h->status >= 200 || h->status == 101;
    if (final) {
        x->status = h->status;
        x->head_ns = metrics_now_ns();
        x->resp_head_sent = 1;
        if (h->end_stream)
            x->resp_done = 1;
    }
    return x->down_ops->head(x, h);
}

enum http_rc http_exchange_response_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    if (x->finished)
        return HTTP_OK;
    x->resp_bytes += len;
    if (end_stream)
        x->resp_done = 1;
    if (http_exchange_filter_data(x, 0, p, len, end_stream))
        return HTTP_OK;
    return x->down_ops->data(x, p, len, end_stream);
}

enum http_rc http_exchange_response_trailers(struct http_exchange *x, struct http_head *t)
{
    if (x->finished)
        return HTTP_OK;
    x->resp_done = 1;
    if (http_exchange_filter_data(x, 0, NULL, 0, 1))
        return HTTP_OK;
    return x->down_ops->trailers(x, t);
}

void http_exchange_resume_upstream(struct http_exchange *x)
{
    if (!x->finished && x->down_ops->resume)
        x->down_ops->resume(x);
}

void http_exchange_resume_downstream(struct http_exchange *x)
{
    if (!x->finished && x->up_ops->resume)
        x->up_ops->resume(x);
}

static void http_exchange_finish(struct http_exchange *x)
{
    if (x->finished)
        return;
    x->finished = 1;
    x->end_ns = metrics_now_ns();
    for (size_t i = 0; i < HTTP_NFILTERS; i++)
        if (http_chain[i]->done)
            http_chain[i]->done(x);
}

void http_exchange_maybe_done(struct http_exchange *x)
{
    if (x->begun && ((x->req_done && x->resp_done) || x->tunnel))
        http_exchange_finish(x);
}

static void http_exchange_count(struct http_exchange *x, enum http_cause cause)
{
    if (cause >= HTTP_CAUSE_REFUSED && cause <= HTTP_CAUSE_DRAINING)
        pm_add(&x->w->px->metrics.http_errors[x->dir][cause], 1);
    else if (cause == HTTP_CAUSE_BAD_REQUEST)
        pm_add(&x->w->px->metrics.http_bad_requests[x->dir], 1);
}

void http_exchange_local_reply(struct http_exchange *x, enum http_cause cause, int status, const char *detail)
{
    if (x->finished)
        return;
    x->cause = cause;
    x->proxy_error = 1;
    http_exchange_count(x, cause);
    if (x->up_ops && x->up_ops->abort)
        x->up_ops->abort(x, cause);
    if (x->resp_head_sent) {
        /* Part of a response went out already: it cannot be replaced, only cut. */
        x->down_ops->abort(x, cause);
    } else {
        char body[256];
        if (!status)
            status = http_cause_status(cause);
        int n = snprintf(body, sizeof body, "weft-proxy: %s%s%s\n", http_cause_name(cause), detail ? ": " : "",
                         detail ? detail : "");
        if (n < 0 || (size_t)n >= sizeof body)
            n = (int)sizeof body - 1;
        struct http_field ct = {{"content-type", 12}, {"text/plain", 10}};
        struct http_head h = {.status = status, .fields = &ct, .nfields = 1, .content_length = n};
        x->status = status;
        x->head_ns = metrics_now_ns();
        x->resp_head_sent = 1;
        x->down_ops->head(x, &h);
        x->down_ops->data(x, body, (size_t)n, 1);
    }
    x->req_done = x->resp_done = 1;
    http_exchange_finish(x);
}

enum http_rc http_refusing_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    (void)x, (void)p, (void)len, (void)end_stream;
    return HTTP_FAIL;
}

enum http_rc http_refusing_trailers(struct http_exchange *x, const struct http_head *t)
{
    (void)x, (void)t;
    return HTTP_FAIL;
}

void http_refusing_resume(struct http_exchange *x)
{
    (void)x;
}

void http_refusing_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)x, (void)cause;
}

void http_exchange_abort(struct http_exchange *x, enum http_cause cause, int from_upstream)
{
    if (x->finished)
        return;
    x->cause = cause;
    if (from_upstream)
        x->down_ops->abort(x, cause);
    else if (x->up_ops && x->up_ops->abort)
        x->up_ops->abort(x, cause);
    x->req_done = x->resp_done = 1;
    http_exchange_finish(x);
}

void http_exchange_release(struct http_exchange *x)
{
    http_timeout_disarm(x, &x->req_timer);
    http_timeout_disarm(x, &x->hdr_timer);
    if (x->up_ops && x->up_ops->release)
        x->up_ops->release(x);
    if (x->down_ops && x->down_ops->release)
        x->down_ops->release(x);
}

const char *http_filter_name(size_t i)
{
    return i < HTTP_NFILTERS ? http_chain[i]->name : NULL;
}
