/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 in a session (see http_h1.h): the server side on the caller's
 * connection, the client side on the upstream connection, both framed by
 * lib/http1 and joined by one struct http_exchange at a time. Everything
 * runs on the worker's loop; the pump is called on any event of either
 * connection and on the exchange's timers. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "http_h1.h"
#include "log.h"
#include "session.h"
#include "xalloc.h"

#define H1_IN_MAX (64 * 1024)       /* unparsed input held per side before reading stops */
#define H1_OUT_HIGH (64 * 1024)     /* output waiting for a socket before the other side stops being read */
#define H1_OUT_MAX (4 * 1024 * 1024) /* safety net: output can exceed HIGH by one read and its framing only */
#define H1_LINGER_MS 1000           /* after our last byte, how long unread input is drained before close */

/* ---------- the pure head rewriting ---------- */

void http_h1_head_from(const struct http1_parser *p, struct http_head *h, struct http_field **fields, size_t *cap)
{
    const struct http1_msg *m = &p->msg;
    size_t conn_len = 0, up_len = 0;
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
    (void)up_len;
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
        r |= buf_appendf(out, "Content-Length: %" PRId64 "\r\n", h->content_length);
    else if (!h->end_stream) {
        r |= buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
        chunked = 1;
    }
    r |= buf_append(out, "\r\n", 2);
    return r ? -E2BIG : chunked;
}

static const char *h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : "";
    }
}

int http_h1_write_response(struct buf *out, const struct http_head *h, int minor, int keep_alive_10,
                           int bodiless, int *close_after)
{
    int chunked = 0, r = 0, st = h->status;
    const char *reason = h1_reason(st);
    r |= buf_appendf(out, "HTTP/1.1 %d %s\r\n", st, reason);
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
            r |= buf_appendf(out, "Content-Length: %" PRId64 "\r\n", h->content_length);
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
    int r = buf_appendf(out, "%zx\r\n", len);
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

/* ---------- the session's HTTP/1 state ---------- */

struct h1_io {          /* bytes with a read offset: input not yet parsed, output not yet sent */
    struct buf b;
    size_t off;
};

enum h1_up_state { H1_UP_NONE, H1_UP_CONNECTING, H1_UP_OPEN };

struct http_h1 {
    struct session *s;
    struct http1_parser rq, rs;        /* requests from the caller, responses from the upstream */
    struct h1_io in_down, in_up, out_down, out_up;
    struct http_exchange x;
    struct http_field *fields;         /* the head being handed over */
    size_t fields_cap;
    enum h1_up_state up_state;
    long long idle_timer, connect_timer, linger_timer;
    long long kick_timer;              /* a pump soon, for changes made outside it (timers) */
    char dst[80];
    int minor;                         /* the current request's HTTP/1.minor */
    unsigned x_live : 1;               /* an exchange is under way */
    unsigned req_parsed : 1;           /* the parser saw the whole request */
    unsigned resp_parsed : 1;          /* the parser saw the whole final response */
    unsigned up_head_sent : 1;         /* the request head is in out_up: responses may be parsed */
    unsigned req_chunked : 1, resp_chunked : 1;
    unsigned keep_alive : 1;           /* the caller allows another request */
    unsigned up_reusable : 1;          /* the upstream allows another request */
    unsigned down_close : 1;           /* close the caller's connection once the output is out */
    unsigned down_eof : 1, up_eof : 1;
    unsigned bad_request : 1;          /* the parser refused the request: no more parsing */
    unsigned lingering : 1;            /* our side is shut: drain input until EOF or the linger timer */
    unsigned fatal : 1;                /* close now */
    unsigned switch_tunnel : 1;        /* continue as a TCP relay */
};

static void h1_io_free(struct h1_io *io)
{
    buf_free(&io->b);
    io->off = 0;
}

static size_t h1_io_len(const struct h1_io *io)
{
    return io->b.len - io->off;
}

/* Parsed input: advanced first, freed once nothing points into it. */
static void h1_io_advance(struct h1_io *io, size_t n)
{
    io->off += n;
}

static void h1_io_settle(struct h1_io *io)
{
    if (io->off == io->b.len)
        h1_io_free(io); /* idle connections hold no buffers */
}

static void h1_io_consumed(struct h1_io *io, size_t n)
{
    h1_io_advance(io, n);
    h1_io_settle(io);
}

static struct http_h1 *h1_of(struct http_exchange *x)
{
    return x->down;
}

static void h1_set_masks(struct http_h1 *h);

/* ---------- the upstream connection ---------- */

static void h1_up_close(struct http_h1 *h)
{
    struct session *s = h->s;
    ae_timer_del(s->w->loop, h->connect_timer);
    h->connect_timer = 0;
    if (s->up.fd >= 0) {
        session_set_mask(s, &s->up, AE_NONE);
        upstream_pool_release(&s->w->pool, &s->up, 0);
    }
    s->up.mask = s->up.ready = s->up.rd_wait = s->up.wr_wait = 0;
    s->up.eof = s->up.shut_wr = 0;
    s->up.state = CONN_NONE;
    h->up_state = H1_UP_NONE;
    h->up_eof = 0;
    h->up_head_sent = 0;
    h1_io_free(&h->in_up);
    h1_io_free(&h->out_up);
    http1_free(&h->rs);
    http1_init(&h->rs, HTTP1_RESPONSE, NULL);
}

static enum http_cause h1_cause_of(int err)
{
    switch (-err) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EADDRNOTAVAIL:
        return HTTP_CAUSE_REFUSED;
    default:
        return HTTP_CAUSE_RESET;
    }
}

static void h1_up_failed(struct http_h1 *h, enum http_cause cause, const char *detail)
{
    struct session *s = h->s;
    char dst[80];
    log_info("upstream request failed", "direction=%s dst=%s cause=%s error=\"%s\"", session_dir_name(s),
             session_addr(&s->dst, dst, sizeof dst), http_cause_name(cause), detail);
    h1_up_close(h);
    if (h->x_live && !h->x.finished)
        http_exchange_local_reply(&h->x, cause, 0, detail);
}

static long h1_connect_timeout(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_h1 *h = data;
    h->connect_timer = 0;
    pm_add(&h->s->w->px->metrics.connect_failures[h->s->dir], 1);
    h1_up_failed(h, HTTP_CAUSE_CONNECT_TIMEOUT, "no connection within the connect timeout");
    session_step(h->s);
    return -1;
}

/* 0 with a dial under way, or -1 when the exchange was answered instead. */
static int h1_up_dial(struct http_h1 *h)
{
    struct session *s = h->s;
    if (atomic_load(&s->w->px->draining)) {
        http_exchange_local_reply(&h->x, HTTP_CAUSE_DRAINING, 0, "the proxy is shutting down");
        return -1;
    }
    struct upstream_req req = {.dst = s->dst, .passthrough = s->dir == PM_INBOUND};
    int r = upstream_pool_acquire(&s->w->pool, &req, &s->up);
    s->up.owner = s;
    if (r < 0) {
        if (s->up.fd >= 0)
            pm_add(&s->w->px->metrics.connect_failures[s->dir], 1);
        enum http_cause c = s->up.fd < 0 ? HTTP_CAUSE_NO_UPSTREAM : h1_cause_of(r);
        h1_up_failed(h, c, strerror(-r));
        return -1;
    }
    h->up_state = H1_UP_CONNECTING;
    h->connect_timer = ae_timer_add(s->w->loop, (long)s->cfg->connect_timeout_ms, h1_connect_timeout, h);
    return 0;
}

/* ---------- the upstream side's ops: the request travels to the app ---------- */

static enum http_rc h1_out(struct http_h1 *h, struct h1_io *io, int r)
{
    if (r < 0) {
        h->fatal = 1; /* past H1_OUT_MAX: the other side ignored backpressure */
        return HTTP_FAIL;
    }
    h1_set_masks(h);
    return h1_io_len(io) > H1_OUT_HIGH ? HTTP_PAUSE : HTTP_OK;
}

static enum http_rc h1_up_head(struct http_exchange *x, const struct http_head *hd)
{
    struct http_h1 *h = h1_of(x);
    struct http_head with_host;
    if (h->up_state == H1_UP_NONE && h1_up_dial(h) < 0)
        return HTTP_FAIL;
    if (!hd->authority.len) {
        /* HTTP/1.0 without Host: HTTP/1.1 needs one, and the original
         * destination is what the caller dialled. */
        with_host = *hd;
        with_host.authority = (struct http_span){h->dst, strlen(h->dst)};
        hd = &with_host;
    }
    int r = http_h1_write_request(&h->out_up.b, hd);
    h->req_chunked = r == 1;
    h->up_head_sent = 1;
    /* The method decides the response's framing (HEAD, CONNECT). */
    http1_response_to(&h->rs, hd->method.p, hd->method.len);
    return h1_out(h, &h->out_up, r < 0 ? r : 0);
}

static enum http_rc h1_up_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    struct http_h1 *h = h1_of(x);
    int r = 0;
    if (h->up_state == H1_UP_NONE)
        return HTTP_FAIL;
    if (h->req_chunked) {
        r = http_h1_write_chunk(&h->out_up.b, p, len);
        if (end_stream && r == 0)
            r = http_h1_write_last_chunk(&h->out_up.b, NULL);
    } else if (len) {
        r = buf_append(&h->out_up.b, p, len);
    }
    return h1_out(h, &h->out_up, r);
}

static enum http_rc h1_up_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct http_h1 *h = h1_of(x);
    if (h->up_state == H1_UP_NONE)
        return HTTP_FAIL;
    /* Without chunked framing there is nowhere to put trailers: dropped (RFC 9110 6.5.1 allows it). */
    int r = h->req_chunked ? http_h1_write_last_chunk(&h->out_up.b, t) : 0;
    return h1_out(h, &h->out_up, r);
}

static void h1_up_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    h1_up_close(h1_of(x)); /* half an exchange on it: never reusable */
}

static void h1_resume(struct http_exchange *x)
{
    h1_set_masks(h1_of(x));
}

static const struct http_side_ops h1_upstream_ops = {
    .name = "h1-client",
    .head = h1_up_head,
    .data = h1_up_data,
    .trailers = h1_up_trailers,
    .resume = h1_resume,
    .abort = h1_up_abort,
};

/* ---------- the downstream side's ops: the response travels to the caller ---------- */

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
    int bodiless = h1_request_was_head(h) ? 1 : 0;
    if (st >= 200 && st < 300 && strcmp(x->method, "CONNECT") == 0)
        bodiless = 2;
    int close_after = 0;
    if (st >= 200 || st == 101) {
        if (!h->keep_alive || h->bad_request || atomic_load(&h->s->w->px->draining))
            h->down_close = 1;
        close_after = h->down_close;
    }
    int r = http_h1_write_response(&h->out_down.b, hd, h->minor, h->keep_alive, bodiless, &close_after);
    if (close_after)
        h->down_close = 1;
    h->resp_chunked = r == 1;
    return h1_out(h, &h->out_down, r < 0 ? r : 0);
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
    return h1_out(h, &h->out_down, r);
}

static enum http_rc h1_down_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct http_h1 *h = h1_of(x);
    int r = h->resp_chunked ? http_h1_write_last_chunk(&h->out_down.b, t) : 0;
    return h1_out(h, &h->out_down, r);
}

static long h1_kick(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct http_h1 *h = data;
    h->kick_timer = 0;
    session_step(h->s);
    return -1;
}

static void h1_down_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    struct http_h1 *h = h1_of(x);
    /* The response was cut: the caller must see the connection end. This
     * may run inside the pump or from a timer, so the close is the pump's
     * (soon), never here. */
    h->down_close = 1;
    h->fatal = 1;
    if (!h->kick_timer)
        h->kick_timer = ae_timer_add(h->s->w->loop, 0, h1_kick, h);
}

static const struct http_side_ops h1_downstream_ops = {
    .name = "h1-server",
    .head = h1_down_head,
    .data = h1_down_data,
    .trailers = h1_down_trailers,
    .resume = h1_resume,
    .abort = h1_down_abort,
};

/* ---------- exchanges ---------- */

static long h1_idle_timeout(struct ae_loop *loop, long long id, void *data);

static void h1_exchange_new(struct http_h1 *h)
{
    struct session *s = h->s;
    ae_timer_del(s->w->loop, h->idle_timer);
    h->idle_timer = 0;
    memset(&h->x, 0, sizeof h->x);
    h->x.w = s->w;
    h->x.cfg = s->cfg;
    h->x.dir = s->dir;
    h->x.down_ops = &h1_downstream_ops;
    h->x.up_ops = &h1_upstream_ops;
    h->x.down = h->x.up = h;
    h->x.peer = "";
    h->x.dst = h->dst;
    h->x_live = 1;
    h->req_parsed = h->resp_parsed = 0;
    h->req_chunked = h->resp_chunked = 0;
    http_exchange_begin(&h->x);
}

/* Both halves are through (or it was answered or cut): what the two
 * connections do next. */
static void h1_exchange_end(struct http_h1 *h)
{
    struct session *s = h->s;
    http_exchange_release(&h->x);
    h->x_live = 0;
    if (!h->req_parsed)
        h->down_close = 1; /* the rest of the request's body is unread: the framing is lost */
    if (h->up_state != H1_UP_NONE && (!h->resp_parsed || !h->up_reusable || !h->req_parsed))
        h1_up_close(h);
    h->up_head_sent = 0;
    if (!h->keep_alive || atomic_load(&s->w->px->draining))
        h->down_close = 1;
    if (!h->down_close && !h->idle_timer)
        h->idle_timer = ae_timer_add(s->w->loop, (long)s->cfg->http_idle_timeout_ms, h1_idle_timeout, h);
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

static void h1_bad_request(struct http_h1 *h)
{
    enum http1_error e = h->rq.error;
    h->bad_request = 1;
    h->down_close = 1;
    if (!h->x_live)
        h1_exchange_new(h);
    if (log_enabled(LOG_DEBUG)) {
        char src[80];
        log_debug("http request refused", "direction=%s src=%s error=%s", session_dir_name(h->s),
                  session_addr(&h->s->src, src, sizeof src), http1_error_name(e));
    }
    http_exchange_local_reply(&h->x, HTTP_CAUSE_BAD_REQUEST, http1_error_status(e), http1_strerror(e));
}

/* Feeds what the caller sent to the request parser, one exchange at a time. */
static void h1_parse_down(struct http_h1 *h)
{
    while (!h->bad_request && !h->fatal && !h->switch_tunnel && !(h->x_live && h->req_parsed) &&
           h1_io_len(&h->out_up) <= H1_OUT_HIGH) {
        if (h->x_live && h->x.finished)
            return; /* answered before it was read whole: h1_exchange_end decides */
        const char *in = h->in_down.b.data ? h->in_down.b.data + h->in_down.off : "";
        size_t len = h1_io_len(&h->in_down), used = 0, blen = 0;
        const char *body = NULL;
        if (!len && !h->x_live)
            return; /* between requests: nothing to parse */
        enum http1_event ev = http1_parse(&h->rq, in, len, &used, &body, &blen);
        /* body points into in_down: it is consumed (maybe freed) after use */
        h1_io_advance(&h->in_down, used);
        switch (ev) {
        case HTTP1_NEED_MORE: h1_io_settle(&h->in_down); return;
        case HTTP1_HEAD: {
            struct http_head hd;
            h1_exchange_new(h);
            h->minor = h->rq.msg.version_minor;
            h->keep_alive = h->rq.msg.keep_alive;
            http_h1_head_from(&h->rq, &hd, &h->fields, &h->fields_cap);
            http_exchange_request_head(&h->x, &hd);
            break;
        }
        case HTTP1_BODY: http_exchange_request_data(&h->x, body, blen, 0); break;
        default: break;
        }
        h1_io_settle(&h->in_down);
        switch (ev) {
        case HTTP1_DONE:
            h->req_parsed = 1;
            if (h->rq.ntrailers) {
                struct http_head t = {0};
                size_t n = 0;
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
                t.fields = h->fields;
                t.nfields = n;
                http_exchange_request_trailers(&h->x, &t);
            } else if (!h->rq.msg.no_body) {
                http_exchange_request_data(&h->x, NULL, 0, 1);
            }
            return; /* the next request waits for this response */
        case HTTP1_ERROR:
            if (h->x_live && h->x.resp_head_sent)
                http_exchange_abort(&h->x, HTTP_CAUSE_BAD_REQUEST, 0);
            else
                h1_bad_request(h);
            return;
        default: break;
        }
    }
}

static void h1_response_done(struct http_h1 *h)
{
    const struct http1_msg *m = &h->rs.msg;
    h->resp_parsed = 1;
    h->up_reusable = m->keep_alive;
    int st = m->status;
    if (st == 101 || (st >= 200 && st < 300 && strcmp(h->x.method, "CONNECT") == 0)) {
        h->switch_tunnel = 1;
        h->x.tunnel = 1;
        http_exchange_maybe_done(&h->x);
    }
}

/* Feeds what the upstream sent to the response parser. */
static void h1_parse_up(struct http_h1 *h)
{
    while (h->x_live && h->up_head_sent && !h->resp_parsed && !h->x.finished && !h->fatal &&
           h1_io_len(&h->out_down) <= H1_OUT_HIGH) {
        const char *in = h->in_up.b.data ? h->in_up.b.data + h->in_up.off : "";
        size_t len = h1_io_len(&h->in_up), used = 0, blen = 0;
        const char *body = NULL;
        enum http1_event ev = http1_parse(&h->rs, in, len, &used, &body, &blen);
        h1_io_advance(&h->in_up, used);
        if (ev == HTTP1_BODY)
            http_exchange_response_data(&h->x, body, blen, 0);
        h1_io_settle(&h->in_up);
        switch (ev) {
        case HTTP1_NEED_MORE: return;
        case HTTP1_HEAD: {
            struct http_head hd;
            http_h1_head_from(&h->rs, &hd, &h->fields, &h->fields_cap);
            http_exchange_response_head(&h->x, &hd);
            break;
        }
        case HTTP1_BODY: break;
        case HTTP1_DONE: {
            const struct http1_msg *m = &h->rs.msg;
            if (m->status < 200 && m->status != 101)
                break; /* an interim response: the final one follows */
            if (h->rs.ntrailers) {
                struct http_head t = {0};
                size_t n = 0;
                for (size_t i = 0;; i++) {
                    const char *name, *value;
                    size_t nl, vl;
                    if (http1_trailer(&h->rs, i, &name, &nl, &value, &vl) < 0)
                        break;
                    if (n == h->fields_cap) {
                        h->fields_cap = h->fields_cap ? h->fields_cap * 2 : 16;
                        h->fields = xrealloc(h->fields, h->fields_cap * sizeof *h->fields);
                    }
                    h->fields[n++] = (struct http_field){{name, nl}, {value, vl}};
                }
                t.fields = h->fields;
                t.nfields = n;
                http_exchange_response_trailers(&h->x, &t);
            } else if (!m->no_body) {
                http_exchange_response_data(&h->x, NULL, 0, 1);
            }
            h1_response_done(h);
            return;
        }
        case HTTP1_ERROR: {
            const char *why = http1_strerror(h->rs.error);
            h->up_reusable = 0;
            if (h->x.resp_head_sent) {
                h1_up_close(h);
                http_exchange_abort(&h->x, HTTP_CAUSE_BAD_RESPONSE, 1);
            } else {
                h1_up_failed(h, HTTP_CAUSE_BAD_RESPONSE, why);
            }
            return;
        }
        case HTTP1_CLOSED: return;
        }
    }
}

/* The upstream finished sending (or failed reading, err < 0). */
static void h1_up_ended(struct http_h1 *h, int err)
{
    if (!h->x_live || !h->up_head_sent || h->resp_parsed || h->x.finished) {
        h1_up_close(h); /* an idle keep-alive connection closed by the app: the next request dials */
        return;
    }
    enum http1_event ev = err ? HTTP1_ERROR : http1_finish(&h->rs);
    if (ev == HTTP1_DONE) {
        http_exchange_response_data(&h->x, NULL, 0, 1);
        h1_response_done(h);
        h->up_reusable = 0;
        h1_up_close(h);
        return;
    }
    const char *why = err ? strerror(-err) : "the upstream closed before the response ended";
    if (h->x.resp_head_sent) {
        h1_up_close(h);
        http_exchange_abort(&h->x, HTTP_CAUSE_RESET, 1);
    } else {
        h1_up_failed(h, HTTP_CAUSE_RESET, why);
    }
}

/* ---------- I/O ---------- */

/* Reads what c has into io, up to H1_IN_MAX held: 0, or the error (EOF: 1). */
static int h1_read(struct http_h1 *h, struct conn *c, struct h1_io *io, atomic_uint_fast64_t *counter)
{
    char *scratch = h->s->w->scratch;
    while (conn_can_read(c) && h1_io_len(io) < H1_IN_MAX) {
        ssize_t n = conn_read(c, scratch, PROXY_SCRATCH);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 1;
        h->s->last_active_ms = ae_now_ms(h->s->w->loop);
        pm_add(counter, (uint64_t)n);
        if (io->off && io->off == io->b.len)
            h1_io_free(io);
        if (io->off > H1_IN_MAX) { /* compact what was parsed */
            size_t left = h1_io_len(io);
            memmove(io->b.data, io->b.data + io->off, left);
            io->b.len = left;
            io->off = 0;
        }
        if (buf_append(&io->b, scratch, (size_t)n) < 0)
            return -E2BIG;
    }
    return 0;
}

/* Writes what io holds to c: 1 when bytes went out (the parser that
 * stopped at H1_OUT_HIGH may go on), 0 (nothing out or blocked), -errno. */
static int h1_flush(struct conn *c, struct h1_io *io)
{
    size_t before = h1_io_len(io);
    if (conn_out_pending(c)) {
        int r = conn_flush(c);
        if (r < 0 && r != -EAGAIN)
            return r;
    }
    while (h1_io_len(io) && conn_can_write(c)) {
        ssize_t n = conn_write(c, io->b.data + io->off, h1_io_len(io));
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        h1_io_consumed(io, (size_t)n);
    }
    return h1_io_len(io) != before;
}

static void h1_set_masks(struct http_h1 *h)
{
    struct session *s = h->s;
    int dm = 0, um = 0;
    if (!h->down_eof && (h->lingering || (h1_io_len(&h->in_down) < H1_IN_MAX && h1_io_len(&h->out_up) <= H1_OUT_HIGH)))
        dm |= s->down.rd_wait ? s->down.rd_wait : AE_READABLE;
    if (h1_io_len(&h->out_down) || conn_out_pending(&s->down))
        dm |= s->down.wr_wait ? s->down.wr_wait : AE_WRITABLE;
    session_set_mask(s, &s->down, dm);
    if (s->up.fd < 0)
        return;
    if (h->up_state == H1_UP_CONNECTING) {
        um = AE_WRITABLE;
    } else {
        if (!h->up_eof && h1_io_len(&h->in_up) < H1_IN_MAX && h1_io_len(&h->out_down) <= H1_OUT_HIGH)
            um |= s->up.rd_wait ? s->up.rd_wait : AE_READABLE;
        if (h1_io_len(&h->out_up) || conn_out_pending(&s->up))
            um |= s->up.wr_wait ? s->up.wr_wait : AE_WRITABLE;
    }
    session_set_mask(s, &s->up, um);
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

/* Hands the bytes in flight to the TCP relay: ours first, then what was
 * read past the last HTTP message. */
static void h1_to_tunnel(struct http_h1 *h)
{
    struct session *s = h->s;
    struct { struct pending *p; struct h1_io *a, *b; } moves[2] = {
        {&s->to_down, &h->out_down, &h->in_up},
        {&s->to_up, &h->out_up, &h->in_down},
    };
    for (int i = 0; i < 2; i++) {
        size_t la = h1_io_len(moves[i].a), lb = h1_io_len(moves[i].b);
        if (!la && !lb)
            continue;
        struct pending *p = moves[i].p;
        p->data = xmalloc(la + lb);
        if (la)
            memcpy(p->data, moves[i].a->b.data + moves[i].a->off, la);
        if (lb)
            memcpy(p->data + la, moves[i].b->b.data + moves[i].b->off, lb);
        p->off = 0;
        p->len = la + lb;
    }
    h1_free(s);
    session_start_relay(s);
}

static int proto_h1_pump(struct session *s)
{
    struct http_h1 *h = s->h1;
    struct pm_series *ser = s->series;
    for (int round = 0; round < 8; round++) {
        int progress = 0;
        /* The upstream connection first: its connect, then its bytes. */
        if (h->up_state == H1_UP_CONNECTING) {
            int r = conn_tcp_connected(&s->up);
            if (r == 0) {
                h->up_state = H1_UP_OPEN;
                ae_timer_del(s->w->loop, h->connect_timer);
                h->connect_timer = 0;
                progress = 1;
            } else if (r != -EAGAIN) {
                pm_add(&s->w->px->metrics.connect_failures[s->dir], 1);
                h1_up_failed(h, h1_cause_of(r), strerror(-r));
                progress = 1;
            }
        }
        if (h->up_state == H1_UP_OPEN) {
            int r = h1_flush(&s->up, &h->out_up);
            if (r < 0)
                h1_up_ended(h, r);
            if (r != 0)
                progress = 1;
        }
        if (h->up_state == H1_UP_OPEN && !h->up_eof) {
            size_t before = h1_io_len(&h->in_up);
            int r = h1_read(h, &s->up, &h->in_up, &ser->bytes_out);
            if (h1_io_len(&h->in_up) != before)
                progress = 1;
            h1_parse_up(h);
            if (r != 0 && !h->switch_tunnel) {
                h->up_eof = 1;
                h1_parse_up(h); /* what came before the end */
                if (!h->switch_tunnel)
                    h1_up_ended(h, r < 0 ? r : 0);
                progress = 1;
            }
        } else {
            h1_parse_up(h);
        }
        if (h->switch_tunnel) {
            h1_to_tunnel(h); /* h is gone */
            return 0;
        }
        /* The caller's side. */
        int fr = h1_flush(&s->down, &h->out_down);
        if (fr < 0)
            return -1;
        if (fr > 0)
            progress = 1;
        if (!h->down_eof) {
            size_t before = h1_io_len(&h->in_down);
            int r = h1_read(h, &s->down, &h->in_down, &ser->bytes_in);
            if (h1_io_len(&h->in_down) != before)
                progress = 1;
            if (r < 0 && r != -E2BIG)
                return -1;
            if (r == 1) {
                h->down_eof = 1;
                progress = 1;
            }
        }
        if (h->lingering) {
            h1_io_free(&h->in_down); /* drained, never parsed */
            if (h->down_eof)
                return 1;
            h1_set_masks(h);
            return 0;
        }
        size_t pending = h1_io_len(&h->in_down);
        int had_x = h->x_live;
        h1_parse_down(h);
        if (h1_io_len(&h->in_down) != pending || h->x_live != had_x)
            progress = 1;
        if (h->down_eof && !h1_io_len(&h->in_down) && !h->bad_request) {
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
        if (h->x_live && h->resp_parsed && !h->x.finished) {
            /* The final response is complete: the exchange is over even if
             * the caller never sends the rest of its body (a 417 to an
             * Expect, an early error); h1_exchange_end then closes. */
            h->x.req_done = 1;
            http_exchange_maybe_done(&h->x);
        }
        if (h->x_live && h->x.finished && (h->resp_parsed || h->x.proxy_error || !h->up_head_sent ||
                                           h->up_state == H1_UP_NONE)) {
            h1_exchange_end(h);
            progress = 1;
        }
        if (!h->x_live && h->down_close && !h1_io_len(&h->out_down) && !conn_out_pending(&s->down)) {
            if (h->down_eof)
                return 1;
            /* Shut our side, then drain what the caller still sends, so
             * the kernel does not answer it with a reset that could
             * destroy the response before the caller read it. */
            if (conn_shutdown_write(&s->down) < 0)
                return 1;
            h1_up_close(h);
            h->lingering = 1;
            h->linger_timer = ae_timer_add(s->w->loop, H1_LINGER_MS, h1_linger_timeout, h);
            progress = 1;
        }
        if (!progress)
            break;
        if (round == 7 && !h->kick_timer) /* fair to other sessions: go on next round, not on an event */
            h->kick_timer = ae_timer_add(s->w->loop, 0, h1_kick, h);
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
    ae_timer_del(s->w->loop, h->connect_timer);
    ae_timer_del(s->w->loop, h->linger_timer);
    ae_timer_del(s->w->loop, h->kick_timer);
    http1_free(&h->rq);
    http1_free(&h->rs);
    h1_io_free(&h->in_down);
    h1_io_free(&h->in_up);
    h1_io_free(&h->out_down);
    h1_io_free(&h->out_up);
    free(h->fields);
    free(h);
    s->h1 = NULL;
}

const struct proxy_proto proto_h1 = {"http1", proto_h1_pump, h1_free};

void http_h1_start(struct session *s)
{
    struct http_h1 *h = xcalloc(1, sizeof *h);
    struct http1_limits lim = {.max_head = s->cfg->http_max_head, .max_fields = s->cfg->http_max_fields};
    h->s = s;
    http1_init(&h->rq, HTTP1_REQUEST, &lim);
    http1_init(&h->rs, HTTP1_RESPONSE, NULL);
    buf_init(&h->in_down.b, H1_OUT_MAX);
    buf_init(&h->in_up.b, H1_OUT_MAX);
    buf_init(&h->out_down.b, H1_OUT_MAX);
    buf_init(&h->out_up.b, H1_OUT_MAX);
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
