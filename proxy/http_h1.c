/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 in a session (see http_h1.h): the pure head rewriting both sides
 * use, and the server side on the caller's connection, parsed by lib/http1,
 * one struct http_exchange at a time whose upstream side is the HTTP/1.1
 * client (proxy/http_h1_client.c). Everything runs on the worker's loop;
 * the pump runs on the caller connection's events and, for what changes
 * outside it (the client's callbacks, timers), from a zero-delay timer. */
#include <errno.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http_h1.h"
#include "http_route.h"
#include "log.h"
#include "session.h"
#include "xalloc.h"

#define H1_LINGER_MS 1000           /* after our last byte, how long unread input is drained before close */

/* ---------- the pure head rewriting ---------- */

void http_h1_head_from(const struct http1_parser *p, struct http_head *h, struct http_field **fields, size_t *cap)
{
    const struct http1_msg *m = &p->msg;
    size_t conn_len = 0;
    const char *conn = http1_get(p, "connection", &conn_len);
    memset(h, 0, sizeof *h);
    size_t n = 0;
    for (size_t i = 0;; i++) {
        const char *name, *value;
        size_t nl, vl;
        if (http1_field(p, i, &name, &nl, &value, &vl) < 0)
            break;
        if (http_name_is(name, nl, "host")) {
            h->authority = (struct http_span){value, vl};
            continue;
        }
        if (http_name_is(name, nl, "upgrade") && !h->upgrade.p) {
            h->upgrade = (struct http_span){value, vl};
            continue;
        }
        if (http_name_is(name, nl, "content-length") || http_field_is_hop_by_hop(name, nl, conn, conn_len))
            continue;
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *fields = xrealloc(*fields, *cap * sizeof **fields);
        }
        (*fields)[n++] = (struct http_field){{name, nl}, {value, vl}};
    }
    h->fields = *fields;
    h->nfields = n;
    /* A lone Upgrade (no "Connection: upgrade") asks for nothing: drop it. */
    if (!m->upgrade)
        h->upgrade = (struct http_span){NULL, 0};
    h->content_length = m->chunked ? -1 : m->content_length;
    h->end_stream = m->no_body;
    if (p->kind == HTTP1_REQUEST) {
        h->method = (struct http_span){m->method, m->method_len};
        h->scheme = (struct http_span){"http", 4};
        h->expect_continue = m->expect_continue;
        if (m->method_len == 7 && memcmp(m->method, "CONNECT", 7) == 0)
            h->authority = (struct http_span){m->target, m->target_len};
        else
            h->path = (struct http_span){m->target, m->target_len};
    } else {
        h->status = m->status;
        if (m->status >= 100 && m->status < 200 && m->status != 101)
            h->end_stream = 0; /* an interim head: the final one follows */
    }
}

int http_h1_request_ok(const struct http_head *h)
{
    if (!(h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0))
        return 1;
    /* lib/http1 takes any authority-form host but "/?#@"; it is written
     * again as Host, so it must be what a Host may hold (RFC 3986 reg-name,
     * IP-literal), or the next parser reads another request. */
    for (size_t i = 0; i < h->authority.len; i++) {
        unsigned char c = (unsigned char)h->authority.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~%!$&'()*+,;=:[]", c)))
            return 0;
    }
    return 1;
}

static int h1_put(struct buf *b, const struct http_span *s)
{
    return s->len ? buf_append(b, s->p, s->len) : 0;
}

static int h1_put_fields(struct buf *out, const struct http_field *f, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        r |= h1_put(out, &f[i].name);
        r |= buf_append(out, ": ", 2);
        r |= h1_put(out, &f[i].value);
        r |= buf_append(out, "\r\n", 2);
    }
    return r;
}

static int h1_put_content_length(struct buf *out, int64_t len)
{
    int r = buf_append(out, "Content-Length: ", 16);
    r |= buf_append_uint(out, (unsigned long long)len, 10);
    return r | buf_append(out, "\r\n", 2);
}

int http_h1_write_request(struct buf *out, const struct http_head *h)
{
    int chunked = 0, r = 0;
    int connect = h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0;
    r |= h1_put(out, &h->method);
    r |= buf_append(out, " ", 1);
    if (connect)
        r |= h1_put(out, &h->authority);
    else if (h->path.len)
        r |= h1_put(out, &h->path);
    else
        r |= buf_append(out, "/", 1);
    r |= buf_append(out, " HTTP/1.1\r\n", 11);
    if (h->authority.len) {
        r |= buf_append(out, "Host: ", 6);
        r |= h1_put(out, &h->authority);
        r |= buf_append(out, "\r\n", 2);
    }
    r |= h1_put_fields(out, h->fields, h->nfields);
    if (h->upgrade.len) {
        r |= buf_append(out, "Connection: upgrade\r\nUpgrade: ", 30);
        r |= h1_put(out, &h->upgrade);
        r |= buf_append(out, "\r\n", 2);
    }
    if (h->content_length >= 0 && !(connect && h->content_length == 0))
        r |= h1_put_content_length(out, h->content_length);
    else if (!h->end_stream) {
        r |= buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
        chunked = 1;
    }
    r |= buf_append(out, "\r\n", 2);
    return r ? -E2BIG : chunked;
}

int http_h1_write_response(struct buf *out, const struct http_head *h, int minor, int keep_alive_10,
                           int bodiless, int *close_after)
{
    int chunked = 0, r = 0, st = h->status;
    const char *reason = http1_reason(st);
    r |= buf_append(out, "HTTP/1.1 ", 9);
    r |= buf_append_uint(out, (unsigned)st, 10); /* 100-599: the codec and h2map refuse others */
    r |= buf_append(out, " ", 1);
    r |= buf_append(out, reason, strlen(reason));
    r |= buf_append(out, "\r\n", 2);
    r |= h1_put_fields(out, h->fields, h->nfields);
    if (st >= 100 && st < 200 && st != 101) {
        r |= buf_append(out, "\r\n", 2);
        return r ? -E2BIG : 0;
    }
    if (st == 101) {
        r |= buf_append(out, "Connection: upgrade\r\nUpgrade: ", 30);
        r |= h1_put(out, &h->upgrade);
        r |= buf_append(out, "\r\n\r\n", 4);
        return r ? -E2BIG : 0;
    }
    if (st == 204 || (st >= 200 && st < 300 && bodiless == 2)) {
        /* 204 and a tunnel's 2xx carry no length (RFC 9110 8.6) */
    } else if (bodiless || st == 304 || h->content_length >= 0) {
        if (h->content_length >= 0)
            r |= h1_put_content_length(out, h->content_length);
    } else if (h->end_stream) {
        r |= buf_append(out, "Content-Length: 0\r\n", 19);
    } else if (minor >= 1) {
        r |= buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
        chunked = 1;
    } else {
        *close_after = 1; /* an HTTP/1.0 client learns the end from the close */
    }
    if (*close_after)
        r |= buf_append(out, "Connection: close\r\n", 19);
    else if (minor == 0 && keep_alive_10)
        r |= buf_append(out, "Connection: keep-alive\r\n", 24);
    r |= buf_append(out, "\r\n", 2);
    return r ? -E2BIG : chunked;
}

int http_h1_write_chunk(struct buf *out, const char *p, size_t len)
{
    if (!len)
        return 0;
    int r = buf_append_uint(out, len, 16);
    r |= buf_append(out, "\r\n", 2);
    r |= buf_append(out, p, len);
    r |= buf_append(out, "\r\n", 2);
    return r ? -E2BIG : 0;
}

int http_h1_write_last_chunk(struct buf *out, const struct http_head *t)
{
    int r = buf_append(out, "0\r\n", 3);
    if (t)
        r |= h1_put_fields(out, t->fields, t->nfields);
    r |= buf_append(out, "\r\n", 2);
    return r ? -E2BIG : 0;
}

/* ---------- the session's HTTP/1 server side ---------- */

struct http_h1 {
    struct session *s;
    struct http1_parser rq;            /* requests from the caller */
    struct http_h1_io in_down, out_down;
    struct http_exchange x;
    struct http_field *fields;         /* the head being handed over */
    size_t fields_cap;
    long long idle_timer, linger_timer;
    long long kick_timer;              /* a pump soon, for changes made outside it */
    char dst[80];
    int minor;                         /* the current request's HTTP/1.minor */
    unsigned x_live : 1;               /* an exchange is under way */
    unsigned req_parsed : 1;           /* the parser saw the whole request */
    unsigned up_paused : 1;            /* the upstream side said HTTP_PAUSE to the request */
    unsigned resp_chunked : 1;
    unsigned keep_alive : 1;           /* the caller allows another request */
    unsigned down_close : 1;           /* close the caller's connection once the output is out */
    unsigned down_eof : 1;
    unsigned bad_request : 1;          /* the parser refused the request: no more parsing */
    unsigned lingering : 1;            /* our side is shut: drain input until EOF or the linger timer */
    unsigned fatal : 1;                /* close now */
    unsigned switch_tunnel : 1;        /* continue as a TCP relay */
    unsigned switch_weft1 : 1;         /* continue as the opaque weft/1 relay (h1_weft1_head) */
};

static struct http_h1 *h1_of(struct http_exchange *x)
{
    return x->down;
}

static void h1_set_masks(struct http_h1 *h);

static long h1_kick(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_h1 *h = data;
    h->kick_timer = 0;
    session_step(h->s);
    return -1;
}

/* Changes made outside the pump (the client side's callbacks, timers) are
 * acted on by the pump, soon, never where they happen. */
static void h1_kick_later(struct http_h1 *h)
{
    if (!h->kick_timer)
        h->kick_timer = ae_timer_add(h->s->w->loop, 0, h1_kick, h);
}

/* ---------- the downstream side's ops: the response travels to the caller ---------- */

static enum http_rc h1_out(struct http_h1 *h, int r)
{
    if (r < 0) {
        h->fatal = 1; /* past HTTP_H1_OUT_MAX: the other side ignored backpressure */
        h1_kick_later(h);
        return HTTP_FAIL;
    }
    h1_set_masks(h);
    return http_h1_io_len(&h->out_down) > HTTP_H1_OUT_HIGH ? HTTP_PAUSE : HTTP_OK;
}

static int h1_request_was_head(const struct http_h1 *h)
{
    return strcmp(h->x.method, "HEAD") == 0;
}

static enum http_rc h1_down_head(struct http_exchange *x, const struct http_head *hd)
{
    struct http_h1 *h = h1_of(x);
    int st = hd->status;
    if (st >= 100 && st < 200 && st != 101 && h->minor == 0)
        return HTTP_OK; /* no interim responses to an HTTP/1.0 client (RFC 9110 15.2) */
    int connect_ok = st >= 200 && st < 300 && strcmp(x->method, "CONNECT") == 0;
    int bodiless = connect_ok ? 2 : h1_request_was_head(h) ? 1 : 0;
    int close_after = 0;
    if (st >= 200 || st == 101) {
        if (!h->keep_alive || h->bad_request || atomic_load(&h->s->w->px->draining))
            h->down_close = 1;
        close_after = h->down_close && !connect_ok && st != 101;
        if ((st == 101 || connect_ok) && !x->proxy_error)
            h->switch_tunnel = 1; /* the pump hands both connections to the TCP relay */
    }
    int r = http_h1_write_response(&h->out_down.b, hd, h->minor, h->keep_alive, bodiless, &close_after);
    if (close_after)
        h->down_close = 1;
    h->resp_chunked = r == 1;
    return h1_out(h, r < 0 ? r : 0);
}

static enum http_rc h1_down_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    struct http_h1 *h = h1_of(x);
    int r = 0;
    if (h1_request_was_head(h))
        return HTTP_OK; /* a local reply's body, to a HEAD */
    if (h->resp_chunked) {
        r = http_h1_write_chunk(&h->out_down.b, p, len);
        if (end_stream && r == 0)
            r = http_h1_write_last_chunk(&h->out_down.b, NULL);
    } else if (len) {
        r = buf_append(&h->out_down.b, p, len);
    }
    if (end_stream)
        h1_kick_later(h); /* the exchange may be over */
    return h1_out(h, r);
}

static enum http_rc h1_down_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct http_h1 *h = h1_of(x);
    int r = h->resp_chunked ? http_h1_write_last_chunk(&h->out_down.b, t) : 0;
    h1_kick_later(h);
    return h1_out(h, r);
}

static void h1_down_resume(struct http_exchange *x)
{
    struct http_h1 *h = h1_of(x);
    h->up_paused = 0;
    h1_kick_later(h);
}

static void h1_down_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    struct http_h1 *h = h1_of(x);
    /* The response was cut: the caller must see the connection end. This
     * may run inside the pump or from a callback, so the close is the
     * pump's (soon), never here. */
    h->down_close = 1;
    h->fatal = 1;
    h1_kick_later(h);
}

static const struct http_side_ops h1_downstream_ops = {
    .name = "h1-server",
    .head = h1_down_head,
    .data = h1_down_data,
    .trailers = h1_down_trailers,
    .resume = h1_down_resume,
    .abort = h1_down_abort,
};

/* ---------- exchanges ---------- */

static long h1_idle_timeout(struct ae_loop *loop, long long id, void *data);

/* Outbound over mTLS to the destination's proxy (WEFT_MESH_NETWORKS), or
 * with discovery, whose answer may say so for any request. */
static int h1_meshed(const struct session *s)
{
    return s->dir == PM_OUTBOUND && (s->tls_up || s->w->px->dest);
}

/* An Upgrade (a WebSocket) or a CONNECT continues as bytes after its
 * response, which a weft/h2 stream cannot carry as HTTP/1 does: such a
 * request to a meshed destination gets a weft/1 connection of its own. */
static int h1_needs_own_conn(const struct http_head *hd)
{
    return hd->upgrade.len || (hd->method.len == 7 && memcmp(hd->method.p, "CONNECT", 7) == 0);
}

/* hd: the request head the exchange is for (its upstream side is chosen by
 * it), NULL when the proxy answers without one. */
static void h1_exchange_new(struct http_h1 *h, const struct http_head *hd)
{
    struct session *s = h->s;
    ae_timer_del(s->w->loop, h->idle_timer);
    h->idle_timer = 0;
    memset(&h->x, 0, sizeof h->x);
    h->x.w = s->w;
    h->x.cfg = s->cfg;
    h->x.dir = s->dir;
    h->x.down_ops = &h1_downstream_ops;
    h->x.down = h;
    h->x.peer = "";
    h->x.dst = h->dst;
    if (s->dir == PM_OUTBOUND && hd) {
        /* Each request on its own: towards a meshed destination a stream of
         * the pooled weft/h2 connection to its proxy, which hands the app
         * HTTP/1.1 again; with discovery to the endpoint its answer picks. */
        http_route_outbound(s, 0, &h->x);
    } else {
        struct upstream_req req = {.dst = s->dst, .passthrough = s->dir == PM_INBOUND};
        http_h1_client_attach(s->w, &req, &h->x);
    }
    h->x_live = 1;
    h->req_parsed = h->up_paused = h->resp_chunked = 0;
    http_exchange_begin(&h->x);
}

/* Both halves are through (or it was answered or cut): what the caller's
 * connection does next. */
static void h1_exchange_end(struct http_h1 *h)
{
    struct session *s = h->s;
    http_exchange_release(&h->x); /* the client side keeps or closes its connection */
    h->x_live = 0;
    if (!h->req_parsed)
        h->down_close = 1; /* the rest of the request's body is unread: the framing is lost */
    if (!h->keep_alive || atomic_load(&s->w->px->draining))
        h->down_close = 1;
    if (!h->down_close && !h->idle_timer) /* the last request's Service's idle timeout, else the setting */
        h->idle_timer = ae_timer_add(s->w->loop, (long)http_exchange_idle_ms(&h->x), h1_idle_timeout, h);
}

static long h1_idle_timeout(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_h1 *h = data;
    struct session *s = h->s;
    h->idle_timer = 0;
    if (h->x_live)
        return -1; /* a request is under way: its own clocks run */
    /* Also a head that never completes (slowloris): the clock runs until a
     * request's head is whole. */
    pm_add(&s->w->px->metrics.timeouts[s->dir], 1);
    session_close(s, "http idle timeout");
    return -1;
}

/* ---------- parsing ---------- */

static void h1_refuse(struct http_h1 *h, int status, const char *name, const char *why)
{
    h->bad_request = 1;
    h->down_close = 1;
    if (!h->x_live)
        h1_exchange_new(h, NULL);
    if (log_enabled(LOG_DEBUG)) {
        char src[80];
        log_debug("http request refused", "direction=%s src=%s error=%s", session_dir_name(h->s),
                  session_addr(&h->s->src, src, sizeof src), name);
    }
    http_exchange_local_reply(&h->x, HTTP_CAUSE_BAD_REQUEST, status, why);
}

static void h1_bad_request(struct http_h1 *h)
{
    enum http1_error e = h->rq.error;
    h1_refuse(h, http1_error_status(e), http1_error_name(e), http1_strerror(e));
}

static void h1_trailers_in(struct http_h1 *h, struct http_head *t)
{
    size_t n = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0;; i++) {
        const char *name, *value;
        size_t nl, vl;
        if (http1_trailer(&h->rq, i, &name, &nl, &value, &vl) < 0)
            break;
        if (n == h->fields_cap) {
            h->fields_cap = h->fields_cap ? h->fields_cap * 2 : 16;
            h->fields = xrealloc(h->fields, h->fields_cap * sizeof *h->fields);
        }
        h->fields[n++] = (struct http_field){{name, nl}, {value, vl}};
    }
    t->fields = h->fields;
    t->nfields = n;
    t->end_stream = 1;
}

/* An Upgrade or CONNECT to a meshed destination (h1_needs_own_conn): the
 * rewritten head and what the caller sent after it become the first bytes
 * of a weft/1 connection of its own (session_connect dials it, as for
 * opaque TCP); the server proxy relays them to the app, whose answer (a
 * 101, a 2xx to CONNECT, or any other response) comes back as bytes. The
 * caller's connection stays that relay to its end, as after any tunnel. */
static void h1_weft1_head(struct http_h1 *h, const struct http_head *hd)
{
    struct session *s = h->s;
    struct buf b;
    buf_init(&b, HTTP_H1_OUT_MAX);
    size_t rest = http_h1_io_len(&h->in_down);
    if (http_h1_write_request(&b, hd) < 0 || (rest && buf_append(&b, h->in_down.b.data + h->in_down.off, rest) < 0)) {
        buf_free(&b);
        h->fatal = 1;
        return;
    }
    h->in_down.off += rest;
    s->to_up.data = buf_steal(&b, &s->to_up.len);
    s->to_up.off = 0;
    h->switch_weft1 = 1;
}

/* Feeds what the caller sent to the request parser, one exchange at a time. */
static void h1_parse_down(struct http_h1 *h)
{
    while (!h->bad_request && !h->fatal && !h->switch_tunnel && !h->switch_weft1 && !(h->x_live && h->req_parsed) &&
           !h->up_paused) {
        /* Answered before it was read whole: h1_exchange_end decides. A
         * request without a body is whole once its DONE is parsed (next
         * round), which keeps the connection for the next request. */
        if (h->x_live && h->x.finished && !h->rq.msg.no_body)
            return;
        const char *in = h->in_down.b.data ? h->in_down.b.data + h->in_down.off : "";
        size_t len = http_h1_io_len(&h->in_down), used = 0, blen = 0;
        const char *body = NULL;
        if (!len && !h->x_live)
            return; /* between requests: nothing to parse */
        enum http1_event ev = http1_parse(&h->rq, in, len, &used, &body, &blen);
        h->in_down.off += used; /* body points into in_down: settled after use */
        enum http_rc rc = HTTP_OK;
        switch (ev) {
        case HTTP1_NEED_MORE: http_h1_io_settle(&h->in_down); return;
        case HTTP1_HEAD: {
            struct http_head hd;
            http_h1_head_from(&h->rq, &hd, &h->fields, &h->fields_cap);
            h->minor = h->rq.msg.version_minor;
            h->keep_alive = h->rq.msg.keep_alive;
            if (!http_h1_request_ok(&hd)) {
                http_h1_io_settle(&h->in_down); /* h1_refuse opens the exchange it answers */
                h1_refuse(h, 400, "CONNECT_TARGET", "CONNECT target is not a host:port a Host field may hold");
                return;
            }
            char host[80];
            if (h1_meshed(h->s) && !hd.authority.len) {
                /* HTTP/1.0 without Host: HTTP/2 needs an authority (and so
                 * does the app's HTTP/1.1), the destination the caller
                 * dialled, as the HTTP/1.1 client side writes it. */
                session_addr(&h->s->dst, host, sizeof host);
                hd.authority = (struct http_span){host, strlen(host)};
            }
            if (h1_meshed(h->s) && h1_needs_own_conn(&hd)) {
                h1_weft1_head(h, &hd); /* the pump hands the session to a weft/1 connection */
                return;
            }
            h1_exchange_new(h, &hd);
            rc = http_exchange_request_head(&h->x, &hd);
            break;
        }
        case HTTP1_BODY: rc = http_exchange_request_data(&h->x, body, blen, 0); break;
        case HTTP1_DONE:
            h->req_parsed = 1;
            if (h->rq.ntrailers) {
                struct http_head t;
                h1_trailers_in(h, &t);
                http_exchange_request_trailers(&h->x, &t);
            } else if (!h->rq.msg.no_body) {
                http_exchange_request_data(&h->x, NULL, 0, 1);
            }
            http_h1_io_settle(&h->in_down);
            return; /* the next request waits for this response */
        case HTTP1_ERROR:
            http_h1_io_settle(&h->in_down);
            if (h->x_live && h->x.resp_head_sent)
                http_exchange_abort(&h->x, HTTP_CAUSE_BAD_REQUEST, 0);
            else
                h1_bad_request(h);
            return;
        default: break;
        }
        http_h1_io_settle(&h->in_down);
        if (rc == HTTP_PAUSE)
            h->up_paused = 1; /* until the upstream side's resume */
    }
}

/* ---------- I/O ---------- */

/* Reads what the caller sent, up to HTTP_H1_IN_MAX held: 0, 1 at EOF, -errno. */
static int h1_read(struct http_h1 *h)
{
    struct session *s = h->s;
    struct http_h1_io *io = &h->in_down;
    char *scratch = s->w->scratch;
    while (conn_can_read(&s->down) && http_h1_io_len(io) < HTTP_H1_IN_MAX) {
        ssize_t n = conn_read(&s->down, scratch, PROXY_SCRATCH);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 1;
        s->last_active_ms = ae_now_ms(s->w->loop);
        pm_add(&s->series->bytes_in, (uint64_t)n);
        if (h->lingering)
            continue; /* drained, never parsed */
        if (io->off > HTTP_H1_IN_MAX) { /* compact what was parsed */
            size_t left = http_h1_io_len(io);
            memmove(io->b.data, io->b.data + io->off, left);
            io->b.len = left;
            io->off = 0;
        }
        if (buf_append(&io->b, scratch, (size_t)n) < 0)
            return -E2BIG;
    }
    return 0;
}

/* Writes the response bytes: 1 when some went out, 0, or -errno. */
static int h1_flush(struct http_h1 *h)
{
    struct conn *c = &h->s->down;
    struct http_h1_io *io = &h->out_down;
    size_t before = http_h1_io_len(io);
    if (conn_out_pending(c)) {
        int r = conn_flush(c);
        if (r < 0 && r != -EAGAIN)
            return r;
    }
    while (http_h1_io_len(io) && conn_can_write(c)) {
        ssize_t n = conn_write(c, io->b.data + io->off, http_h1_io_len(io));
        if (n == -EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        pm_add(&h->s->series->bytes_out, (uint64_t)n);
        io->off += (size_t)n;
        http_h1_io_settle(io);
    }
    return http_h1_io_len(io) != before;
}

static void h1_set_masks(struct http_h1 *h)
{
    struct session *s = h->s;
    int dm = 0;
    if (!h->down_eof && (h->lingering || (http_h1_io_len(&h->in_down) < HTTP_H1_IN_MAX && !h->up_paused)))
        dm |= s->down.rd_wait ? s->down.rd_wait : AE_READABLE;
    if (http_h1_io_len(&h->out_down) || conn_out_pending(&s->down))
        dm |= s->down.wr_wait ? s->down.wr_wait : AE_WRITABLE;
    session_set_mask(s, &s->down, dm);
}

static long h1_linger_timeout(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_h1 *h = data;
    h->linger_timer = 0;
    session_close(h->s, "http close");
    return -1;
}

static void h1_free(struct session *s);

/* Hands both connections to the TCP relay with the bytes in flight: ours
 * first, then what was read past the last HTTP message. 0, or -1 when the
 * upstream connection is gone. */
static int h1_to_tunnel(struct http_h1 *h)
{
    struct session *s = h->s;
    struct pending rest = {0};
    if (http_h1_client_take_tunnel(&h->x, &s->up, &rest) < 0)
        return -1;
    s->up.owner = s;
    h->x.tunnel = 1;
    http_exchange_maybe_done(&h->x);
    struct { struct pending *p; struct http_h1_io *a; struct pending *b; } moves[2] = {
        {&s->to_down, &h->out_down, &rest},
        {&s->to_up, &h->in_down, NULL},
    };
    for (int i = 0; i < 2; i++) {
        size_t la = http_h1_io_len(moves[i].a), lb = moves[i].b ? moves[i].b->len : 0;
        if (!la && !lb)
            continue;
        struct pending *p = moves[i].p;
        p->data = xmalloc(la + lb);
        if (la)
            memcpy(p->data, moves[i].a->b.data + moves[i].a->off, la);
        if (lb)
            memcpy(p->data + la, moves[i].b->data, lb);
        p->off = 0;
        p->len = la + lb;
    }
    free(rest.data);
    h1_free(s);
    session_start_relay(s);
    return 0;
}

static int proto_h1_pump(struct session *s)
{
    struct http_h1 *h = s->h1;
    for (int round = 0; round < 8; round++) {
        int progress = 0;
        int fr = h1_flush(h);
        if (fr < 0)
            return -1;
        if (fr > 0)
            progress = 1;
        if (h->x_live && !h->x.finished && http_h1_io_len(&h->out_down) <= HTTP_H1_OUT_HIGH)
            http_exchange_resume_downstream(&h->x); /* the client side may read the response again */
        if (h->switch_tunnel && h->x_live && !h->fatal) {
            if (h1_to_tunnel(h) == 0)
                return 0; /* h is gone; the relay runs */
            return -1;
        }
        if (!h->down_eof) {
            size_t before = http_h1_io_len(&h->in_down);
            int r = h1_read(h);
            if (http_h1_io_len(&h->in_down) != before)
                progress = 1;
            if (r < 0)
                return -1;
            if (r == 1) {
                h->down_eof = 1;
                progress = 1;
            }
        }
        if (h->lingering) {
            if (h->down_eof)
                return 1;
            h1_set_masks(h);
            return 0;
        }
        size_t pending = http_h1_io_len(&h->in_down);
        int had_x = h->x_live;
        h1_parse_down(h);
        if (h->switch_weft1) {
            h1_free(s);
            s->proto = NULL;
            session_connect(s);
            return 0; /* h is gone; the session dials */
        }
        if (http_h1_io_len(&h->in_down) != pending || h->x_live != had_x)
            progress = 1;
        if (h->down_eof && !http_h1_io_len(&h->in_down) && !h->bad_request) {
            if (h->x_live && !h->req_parsed && !h->x.finished) {
                enum http1_event ev = http1_finish(&h->rq);
                if (ev != HTTP1_DONE) {
                    http_exchange_abort(&h->x, HTTP_CAUSE_DOWNSTREAM_GONE, 0);
                    return 1;
                }
            }
            h->down_close = 1; /* answer what was asked, then close */
        }
        if (h->fatal)
            return -1;
        if (h->x_live && !h->x.finished) {
            if (h->x.resp_done && !h->x.req_done)
                /* The response is complete: the exchange is over even if
                 * the caller never sends the rest of its body (a 417 to an
                 * Expect, an early error); h1_exchange_end then closes. */
                h->x.req_done = 1;
            http_exchange_maybe_done(&h->x);
        }
        if (h->x_live && h->x.finished) {
            h1_exchange_end(h);
            progress = 1;
        }
        if (!h->x_live && h->down_close && !http_h1_io_len(&h->out_down) && !conn_out_pending(&s->down)) {
            if (h->down_eof)
                return 1;
            /* Shut our side, then drain what the caller still sends, so
             * the kernel does not answer it with a reset that could
             * destroy the response before the caller read it. */
            if (conn_shutdown_write(&s->down) < 0)
                return 1;
            h->lingering = 1;
            http_h1_io_free(&h->in_down);
            h->linger_timer = ae_timer_add(s->w->loop, H1_LINGER_MS, h1_linger_timeout, h);
            progress = 1;
        }
        if (!progress)
            break;
        if (round == 7) /* fair to other sessions: go on next round, not on an event */
            h1_kick_later(h);
    }
    h1_set_masks(h);
    return 0;
}

static void h1_free(struct session *s)
{
    struct http_h1 *h = s->h1;
    if (!h)
        return;
    if (h->x_live) {
        if (!h->x.finished)
            http_exchange_abort(&h->x, HTTP_CAUSE_DOWNSTREAM_GONE, 0);
        http_exchange_release(&h->x);
    }
    ae_timer_del(s->w->loop, h->idle_timer);
    ae_timer_del(s->w->loop, h->linger_timer);
    ae_timer_del(s->w->loop, h->kick_timer);
    http1_free(&h->rq);
    http_h1_io_free(&h->in_down);
    http_h1_io_free(&h->out_down);
    free(h->fields);
    free(h);
    s->h1 = NULL;
}

const struct proxy_proto proto_h1 = {"http1", proto_h1_pump, h1_free};

void http_h1_drain(struct worker *w)
{
    struct session *next;
    for (struct session *s = w->sessions; s; s = next) {
        next = s->next;
        struct http_h1 *h = s->h1;
        if (s->proto != &proto_h1 || !h || h->x_live || http_h1_io_len(&h->in_down) ||
            http_h1_io_len(&h->out_down) || conn_out_pending(&s->down))
            continue;
        session_close(s, "drain"); /* between requests: nothing is lost */
    }
}

void http_h1_start(struct session *s)
{
    struct http_h1 *h = xcalloc(1, sizeof *h);
    struct http1_limits lim = {.max_head = s->cfg->http_max_head, .max_fields = s->cfg->http_max_fields};
    h->s = s;
    http1_init(&h->rq, HTTP1_REQUEST, &lim);
    buf_init(&h->in_down.b, HTTP_H1_OUT_MAX);
    buf_init(&h->out_down.b, HTTP_H1_OUT_MAX);
    session_addr(&s->dst, h->dst, sizeof h->dst);
    /* The session's own timer becomes the connection's idle check (as in
     * the TCP relay: WEFT_IDLE_TIMEOUT_SECONDS since the last bytes read),
     * the backstop under the exchange's clocks, which are all optional. */
    session_deadline(s, (unsigned long)s->cfg->idle_timeout_s * 1000u);
    h->idle_timer = ae_timer_add(s->w->loop, (long)s->cfg->http_idle_timeout_ms, h1_idle_timeout, h);
    if (s->dir == PM_OUTBOUND)
        session_count(s, 0, PM_AUTHZ_NONE, 0);
    s->h1 = h;
    s->stage = STAGE_RELAY;
    s->proto = &proto_h1;
    s->last_active_ms = ae_now_ms(s->w->loop);
    s->down.rd_wait = s->down.wr_wait = 0;
    session_step(s);
}
