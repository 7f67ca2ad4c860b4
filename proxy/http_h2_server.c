/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 server stage of a session (see http_h2_server.h): bytes of the
 * downstream connection through proxy/http_h2.c, each stream an exchange
 * with its downstream side here and its upstream side in the pool. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_h1.h"
#include "http_h2.h"
#include "http_h2_map.h"
#include "http_h2_server.h"
#include "http_msg.h"
#include "http_route.h"
#include "log.h"
#include "session.h"
#include "xalloc.h"

#define H2S_TICK_MS 250 /* how soon a drain is noticed; an idle timeout re-arms it to end on time */

struct h2s_stream;

struct http_h2s {
    struct session *s;
    h2_conn *h;
    struct h2s_stream *streams;
    char dst[80];
    char peer[SPIFFE_MAX_ID];   /* inbound: the caller's SPIFFE ID */
    const char *denied;         /* inbound: the caller is not authorized (authz's static reason): 403 each */
    long long tick;
    uint64_t idle_since_ms;     /* no stream open since; 0 while some are */
    unsigned idle_ms;           /* the idle timeout in force: the last stream's Service's, else the setting */
    unsigned drained : 1;
};

struct h2s_stream {
    struct http_h2s *c;
    h2_stream *st;
    struct http_exchange x;
    size_t withheld;            /* request bytes received, not yet given back (PAUSE) */
    unsigned x_live : 1, req_ended : 1, resp_started : 1;
    struct h2s_stream *prev, *next;
};

static _Thread_local struct h2map_out h2s_out;
static _Thread_local struct http_field h2s_fields[HTTP_MSG_MAX_FIELDS];

static struct h2s_stream *h2s_of(struct http_exchange *x)
{
    return x->down;
}

/* Frames were queued: the loop calls back to send them. */
static void h2s_kick(struct http_h2s *c)
{
    struct session *s = c->s;
    session_set_mask(s, &s->down, s->down.mask | AE_WRITABLE);
}

/* ---- the downstream side's ops: the response travels to the caller ---- */

static enum http_rc h2s_down_head(struct http_exchange *x, const struct http_head *h)
{
    struct h2s_stream *ss = h2s_of(x);
    if (!ss->st)
        return HTTP_FAIL;
    if (h->status < 200 && h->status != 100 && h->status != 103)
        return HTTP_OK; /* 101 and other interim answers have no HTTP/2 form */
    if (h2map_block(h, 0, NULL, &h2s_out) < 0 ||
        h2_submit_response(ss->c->h, ss->st, h2s_out.f, h2s_out.n, h->end_stream) < 0) {
        h2_reset(ss->c->h, ss->st, H2_INTERNAL_ERROR);
        h2s_kick(ss->c);
        return HTTP_FAIL;
    }
    if (h->status >= 200)
        ss->resp_started = 1;
    h2s_kick(ss->c);
    return HTTP_OK;
}

static enum http_rc h2s_down_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    struct h2s_stream *ss = h2s_of(x);
    if (!ss->st || h2_submit_data(ss->c->h, ss->st, p, len, end_stream) < 0)
        return HTTP_FAIL;
    h2s_kick(ss->c);
    return h2_stream_queued(ss->st) >= H2_STREAM_OUT_HIGH ? HTTP_PAUSE : HTTP_OK;
}

static enum http_rc h2s_down_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct h2s_stream *ss = h2s_of(x);
    if (!ss->st)
        return HTTP_FAIL;
    if (h2map_block(t, 0, NULL, &h2s_out) < 0 || h2_submit_trailers(ss->c->h, ss->st, h2s_out.f, h2s_out.n) < 0) {
        h2_reset(ss->c->h, ss->st, H2_INTERNAL_ERROR);
        h2s_kick(ss->c);
        return HTTP_FAIL;
    }
    h2s_kick(ss->c);
    return HTTP_OK;
}

static void h2s_down_resume(struct http_exchange *x)
{
    struct h2s_stream *ss = h2s_of(x);
    if (ss->st && ss->withheld) {
        h2_consume(ss->c->h, ss->st, ss->withheld);
        ss->withheld = 0;
        h2s_kick(ss->c);
    }
}

static void h2s_down_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    struct h2s_stream *ss = h2s_of(x);
    if (ss->st) {
        /* The upstream reset or failed mid-response: so does this stream,
         * after what came before it. */
        h2_reset_flushed(ss->c->h, ss->st, H2_INTERNAL_ERROR);
        h2s_kick(ss->c);
    }
}

static const struct http_side_ops h2s_down_ops = {
    .name = "h2-server",
    .head = h2s_down_head,
    .data = h2s_down_data,
    .trailers = h2s_down_trailers,
    .resume = h2s_down_resume,
    .abort = h2s_down_abort,
};

/* ---- the connection's events: the request side of each stream ---- */

static void h2s_refuse(struct http_h2s *c, h2_stream *st, int status, const char *why)
{
    char body[SPIFFE_MAX_ID + 160];
    char num[8];
    int n = snprintf(body, sizeof body, "weft-proxy: %s\n", why);
    if (n < 0 || (size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    snprintf(num, sizeof num, "%d", status);
    struct h2_field f[] = {{":status", 7, num, strlen(num)}, {"content-type", 12, "text/plain", 10}};
    if (h2_submit_response(c->h, st, f, 2, 0) == 0)
        h2_submit_data(c->h, st, body, (size_t)n, 1);
    h2s_kick(c);
}

static long h2s_tick(struct ae_loop *loop, long long id, void *data);

static struct h2s_stream *h2s_stream_new(struct http_h2s *c, h2_stream *st)
{
    struct session *s = c->s;
    struct h2s_stream *ss = xcalloc(1, sizeof *ss);
    ss->c = c;
    ss->st = st;
    ss->x.w = s->w;
    ss->x.cfg = s->cfg;
    ss->x.dir = s->dir;
    ss->x.down_ops = &h2s_down_ops;
    ss->x.down = ss;
    ss->x.peer = c->peer;
    ss->x.dst = c->dst;
    ss->next = c->streams;
    if (c->streams)
        c->streams->prev = ss;
    c->streams = ss;
    h2_stream_set_user(st, ss);
    c->idle_since_ms = 0;
    return ss;
}

static void h2s_stream_free(struct h2s_stream *ss)
{
    struct http_h2s *c = ss->c;
    if (ss->x_live) {
        /* Every stream of the connection goes to its one original
         * destination, so to one Service: the last stream's answer holds
         * its idle timeout as discovery has it now (as for HTTP/1.1). */
        c->idle_ms = http_exchange_idle_ms(&ss->x);
        /* Both halves through: done, not gone (an HTTP/1.1 client side then
         * keeps its connection to the app for the next stream). */
        http_exchange_maybe_done(&ss->x);
        if (!ss->x.finished)
            http_exchange_abort(&ss->x, HTTP_CAUSE_DOWNSTREAM_GONE, 0);
        http_exchange_release(&ss->x);
    }
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        c->streams = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    if (ss->st)
        h2_stream_set_user(ss->st, NULL);
    free(ss);
    if (!c->streams) {
        struct ae_loop *loop = c->s->w->loop;
        c->idle_since_ms = ae_now_ms(loop);
        if (c->tick && c->idle_ms && c->idle_ms < H2S_TICK_MS) { /* an idle timeout below the tick ends on time */
            ae_timer_del(loop, c->tick);
            c->tick = ae_timer_add(loop, (long)c->idle_ms, h2s_tick, c);
        }
    }
}

/* Where the request goes, by direction and what the client proxy said. */
static int h2s_route(struct http_h2s *c, struct h2s_stream *ss, const struct http_span *proto)
{
    struct session *s = c->s;
    struct upstream_req req = {.dst = s->dst};
    if (s->dir == PM_OUTBOUND) {
        http_route_outbound(s, 1, &ss->x);
        return 0;
    }
    /* Inbound: the app, from the passthrough source, in the version the
     * client proxy says the caller spoke (weft-proto); a plaintext h2c
     * caller (PERMISSIVE) spoke h2. */
    req.passthrough = 1;
    if (!s->tls_down || (proto->len == 2 && memcmp(proto->p, "h2", 2) == 0)) {
        upstream_pool_h2_attach(s->w, &req, NULL, &ss->x);
        return 0;
    }
    if (proto->len == 2 && memcmp(proto->p, "h1", 2) == 0) {
        http_h1_client_attach(s->w, &req, &ss->x); /* proxy/http_h1_client.c */
        return 0;
    }
    return -1;
}

/* The upstream side of a denied caller's request: 403 at its head. */
static enum http_rc h2s_denied_head(struct http_exchange *x, const struct http_head *h)
{
    (void)h;
    struct h2s_stream *ss = x->down;
    char why[SPIFFE_MAX_ID + 128];
    snprintf(why, sizeof why, "caller %s not allowed: %s", ss->c->peer, ss->c->denied);
    http_exchange_local_reply(x, HTTP_CAUSE_DENIED, 0, why);
    return HTTP_FAIL;
}

static const struct http_side_ops h2s_denied_ops = {
    .name = "denied",
    .head = h2s_denied_head,
    .data = http_refusing_data,
    .trailers = http_refusing_trailers,
    .resume = http_refusing_resume,
    .abort = http_refusing_abort,
};

static void h2s_on_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n, int end)
{
    struct http_h2s *c = ctx;
    struct h2s_stream *ss = h2_stream_user(st);
    struct http_head h;
    struct http_span proto;
    if (kind == H2_BLOCK_TRAILERS) {
        if (!ss || !ss->x_live || ss->req_ended)
            return;
        if (h2map_head_from(f, n, 0, &h, h2s_fields, HTTP_MSG_MAX_FIELDS, NULL) < 0) {
            h2_reset(c->h, st, H2_PROTOCOL_ERROR);
            h2s_kick(c);
            return;
        }
        ss->req_ended = 1;
        http_exchange_request_trailers(&ss->x, &h);
        return;
    }
    if (kind != H2_BLOCK_HEAD || ss)
        return;
    if (c->s->dir == PM_INBOUND && c->s->tls_down) {
        /* The handshake's verdict holds for its policy only: a pooled
         * connection outlives a policy change (an allow-from granted or
         * revoked), so a newer policy decides again, per request. */
        const struct cfgsnap *now = worker_snapshot(c->s->w);
        if (now != c->s->snap) {
            struct authz_decision d = authz_check(&now->cfg.authz, &c->s->peer.id);
            if (!d.allowed && !c->denied)
                log_warn("request denied", "caller=%s policy=%s reason=%s (policy changed)", c->peer,
                         authz_policy_name(now->cfg.authz.policy), d.reason);
            c->denied = d.allowed ? NULL : d.reason;
        }
    }
    int r = h2map_head_from(f, n, 1, &h, h2s_fields, HTTP_MSG_MAX_FIELDS, &proto);
    if (r < 0) {
        h2s_refuse(c, st, r == -E2BIG ? 431 : 400, r == -E2BIG ? "request head too large" : "bad request head");
        return;
    }
    ss = h2s_stream_new(c, st);
    if (c->denied) { /* answered as an exchange, so its metrics and access log line show the 403 */
        ss->x.up_ops = &h2s_denied_ops;
    } else if (h2s_route(c, ss, &proto) < 0) {
        h2s_stream_free(ss);
        h2s_refuse(c, st, 400, "weft-proto missing or not h1 or h2");
        return;
    }
    h.end_stream = end ? 1 : 0;
    ss->req_ended = h.end_stream;
    ss->x_live = 1;
    http_exchange_begin(&ss->x);
    http_exchange_request_head(&ss->x, &h);
}

static void h2s_on_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    struct http_h2s *c = ctx;
    struct h2s_stream *ss = h2_stream_user(st);
    if (!ss || !ss->x_live || ss->x.finished) {
        h2_consume(c->h, st, len);
        return;
    }
    if (http_exchange_request_data(&ss->x, (const char *)p, len, 0) == HTTP_PAUSE)
        ss->withheld += len;
    else
        h2_consume(c->h, st, len);
}

static void h2s_on_end(void *ctx, h2_stream *st)
{
    (void)ctx;
    struct h2s_stream *ss = h2_stream_user(st);
    if (!ss || !ss->x_live || ss->req_ended)
        return;
    ss->req_ended = 1;
    http_exchange_request_data(&ss->x, NULL, 0, 1);
}

static void h2s_on_close(void *ctx, h2_stream *st, uint32_t code)
{
    (void)ctx;
    (void)code;
    struct h2s_stream *ss = h2_stream_user(st);
    if (!ss)
        return;
    ss->st = NULL;
    h2s_stream_free(ss); /* a reset by the caller aborts the exchange, which resets upstream */
}

static void h2s_on_writable(void *ctx, h2_stream *st)
{
    (void)ctx;
    struct h2s_stream *ss = h2_stream_user(st);
    if (ss && ss->x_live)
        http_exchange_resume_downstream(&ss->x);
}

static void h2s_on_goaway(void *ctx, int32_t last, uint32_t code)
{
    (void)ctx;
    (void)last;
    (void)code;
}

static const struct h2_events h2s_events = {h2s_on_headers, h2s_on_data,     h2s_on_end,
                                           h2s_on_close,   h2s_on_writable, h2s_on_goaway};

/* ---- the session's I/O ---- */

static int h2s_out_waiting(struct http_h2s *c)
{
    const uint8_t *p;
    size_t n = 0;
    return conn_out_pending(&c->s->down) || (h2_output(c->h, &p, &n) == 0 && n > 0);
}

static int h2s_flush(struct http_h2s *c)
{
    struct conn *d = &c->s->down;
    for (;;) {
        if (conn_out_pending(d)) {
            int r = conn_flush(d);
            if (r == -EAGAIN)
                return 0;
            if (r < 0)
                return -1;
        }
        const uint8_t *p;
        size_t n;
        if (h2_output(c->h, &p, &n) < 0)
            return -1;
        if (n == 0)
            return 0;
        ssize_t wr = conn_can_write(d) ? conn_write(d, p, n) : -EAGAIN;
        if (wr == -EAGAIN)
            return 0;
        if (wr < 0)
            return -1;
        pm_add(&c->s->series->bytes_out, (uint64_t)wr);
        h2_sent(c->h, (size_t)wr);
    }
}

static int proto_h2_pump(struct session *s)
{
    struct http_h2s *c = s->h2;
    struct conn *d = &s->down;
    if (h2s_flush(c) < 0)
        return -1;
    while (h2_wants_input(c->h) && conn_can_read(d) && !conn_out_pending(d)) {
        ssize_t n = conn_read(d, s->w->scratch, PROXY_SCRATCH);
        if (n == -EAGAIN)
            break;
        if (n <= 0)
            return n == 0 && !c->streams ? 1 : -1; /* the caller left: streams in flight die with it */
        s->last_active_ms = ae_now_ms(s->w->loop);
        pm_add(&s->series->bytes_in, (uint64_t)n);
        int r = h2_input(c->h, (const uint8_t *)s->w->scratch, (size_t)n);
        if (h2s_flush(c) < 0)
            return -1;
        if (r < 0) {
            char src[80];
            log_info("http2 connection error", "direction=%s src=%s error=\"%s\"", session_dir_name(s),
                     session_addr(&s->src, src, sizeof src), h2_strerror(r));
            return -1;
        }
        if (d->type == &conn_plain && (size_t)n < PROXY_SCRATCH)
            break;
    }
    if (h2_done(c->h) && !conn_out_pending(d))
        return 1;
    int mask = 0;
    if (h2_wants_input(c->h) && !conn_out_pending(d))
        mask |= d->rd_wait ? d->rd_wait : AE_READABLE;
    if (h2s_out_waiting(c))
        mask |= AE_WRITABLE;
    session_set_mask(s, d, mask);
    return 0;
}

static long h2s_tick(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct http_h2s *c = data;
    struct session *s = c->s;
    uint64_t now = ae_now_ms(loop);
    int drain = atomic_load(&s->w->px->draining);
    if (!drain && !c->drained && c->idle_since_ms && c->idle_ms && now - c->idle_since_ms >= c->idle_ms) {
        drain = 1;
        pm_add(&s->w->px->metrics.timeouts[s->dir], 1); /* as an HTTP/1.1 idle close */
        if (log_enabled(LOG_DEBUG)) {
            char src[80];
            log_debug("http2 idle, draining", "direction=%s src=%s dst=%s idle_ms=%u", session_dir_name(s),
                      session_addr(&s->src, src, sizeof src), c->dst, c->idle_ms);
        }
    }
    if (drain && !c->drained) {
        c->drained = 1;
        h2_drain(c->h); /* GOAWAY: streams in flight finish */
        h2s_kick(c);
    }
    /* The idle timeout ends on time, not at the next tick. */
    uint64_t quiet = c->idle_since_ms ? now - c->idle_since_ms : 0;
    if (!c->drained && c->idle_since_ms && c->idle_ms && c->idle_ms - quiet < H2S_TICK_MS)
        return (long)(c->idle_ms - quiet);
    return H2S_TICK_MS;
}

static void proto_h2_close(struct session *s)
{
    struct http_h2s *c = s->h2;
    if (!c)
        return;
    ae_timer_del(s->w->loop, c->tick);
    c->tick = 0; /* the streams' free below must not arm it again */
    while (c->streams)
        h2s_stream_free(c->streams);
    h2_free(c->h);
    free(c);
    s->h2 = NULL;
}

const struct proxy_proto proto_h2 = {"h2", proto_h2_pump, proto_h2_close};

static void h2s_start(struct session *s, const char *denied);

void http_h2_start(struct session *s)
{
    h2s_start(s, NULL);
}

void http_h2_start_denied(struct session *s, const char *reason)
{
    h2s_start(s, reason);
}

static void h2s_start(struct session *s, const char *denied)
{
    struct http_h2s *c = xcalloc(1, sizeof *c);
    struct h2_limits lim;
    h2_limits_default(&lim);
    /* The model's bounds (http_msg.h), in HTTP/2's accounting: names and
     * values plus 32 per field, pseudo-headers included. */
    lim.max_header_list = HTTP_MSG_MAX_HEAD + 32 * (HTTP_MSG_MAX_FIELDS + 8);
    c->s = s;
    c->denied = denied;
    c->h = h2_new(H2_SERVER, &lim, &h2s_events, c);
    session_addr(&s->dst, c->dst, sizeof c->dst);
    if (s->dir == PM_INBOUND && s->tls_down)
        spiffe_format(s->peer.id.trust_domain, s->peer.id.ns, s->peer.id.sa, c->peer, sizeof c->peer);
    ae_timer_del(s->w->loop, s->timer); /* the stage's deadline: the streams' clocks take over */
    s->timer = 0;
    if (s->dir == PM_OUTBOUND)
        session_count(s, 0, PM_AUTHZ_NONE, 0);
    c->idle_since_ms = ae_now_ms(s->w->loop);
    c->idle_ms = s->cfg->http_idle_timeout_ms; /* until a stream names its Service's */
    c->tick = ae_timer_add(s->w->loop, H2S_TICK_MS, h2s_tick, c);
    s->h2 = c;
    s->stage = STAGE_RELAY;
    s->proto = &proto_h2;
    s->last_active_ms = ae_now_ms(s->w->loop);
    s->down.rd_wait = s->down.wr_wait = 0;
    session_step(s);
}
