/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 client side of an exchange (see http_h1.h): one connection
 * of its own per exchange, registered in the worker's loop with its own
 * callback (it belongs to no session, so an HTTP/2 stream can use it as
 * well as the HTTP/1 server), kept idle after a complete keep-alive
 * exchange for the next one to the same destination. The request is framed
 * by http_h1_write_request, the response parsed by lib/http1 and handed to
 * the exchange, which takes it through the filters to the downstream side.
 * Worker thread only; the idle list is the thread's. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http_h1.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "xalloc.h"

enum h1c_state { H1C_NONE, H1C_CONNECTING, H1C_OPEN, H1C_CLOSED };

struct h1c {
    struct worker *w;
    struct http_exchange *x;          /* NULL while idle */
    struct conn c;
    struct sockaddr_storage dst;
    enum h1c_state state;
    struct http1_parser rs;
    struct http_h1_io in, out;
    struct http_field *fields;
    size_t fields_cap;
    long long connect_timer, idle_timer, kick_timer;
    struct h1c *next;                 /* the idle list */
    unsigned passthrough : 1;
    unsigned head_sent : 1, req_chunked : 1, req_end : 1;
    unsigned resp_done : 1, keep_alive : 1;
    unsigned paused : 1;              /* the downstream said HTTP_PAUSE */
    unsigned out_paused : 1;          /* we said HTTP_PAUSE to the downstream */
    unsigned eof : 1, tunnel : 1, in_pump : 1, released : 1, reused : 1;
};

static _Thread_local struct h1c *h1c_idle;
static _Thread_local unsigned h1c_nidle;

static void h1c_pump(struct h1c *k);

static void h1c_set_mask(struct h1c *k);

static void h1c_io(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct h1c *k = data;
    k->c.ready |= mask;
    h1c_pump(k);
}

static void h1c_set_mask(struct h1c *k)
{
    int m = 0;
    if (k->c.fd < 0)
        return;
    if (k->state == H1C_CONNECTING) {
        m = AE_WRITABLE;
    } else if (k->state == H1C_OPEN) {
        if (!k->eof && !k->paused && !k->tunnel && http_h1_io_len(&k->in) < HTTP_H1_IN_MAX)
            m |= k->c.rd_wait ? k->c.rd_wait : AE_READABLE;
        if (http_h1_io_len(&k->out) || conn_out_pending(&k->c))
            m |= k->c.wr_wait ? k->c.wr_wait : AE_WRITABLE;
    }
    conn_set_mask(&k->c, k->w->loop, m, h1c_io, k);
}

static long h1c_kick_fire(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct h1c *k = data;
    k->kick_timer = 0;
    h1c_pump(k);
    return -1;
}

static void h1c_kick(struct h1c *k)
{
    if (!k->kick_timer)
        k->kick_timer = ae_timer_add(k->w->loop, 0, h1c_kick_fire, k);
}

static void h1c_close_conn(struct h1c *k)
{
    ae_timer_del(k->w->loop, k->connect_timer);
    k->connect_timer = 0;
    if (k->c.fd >= 0) {
        if (k->c.mask)
            ae_file_set(k->w->loop, k->c.fd, AE_NONE, h1c_io, k);
        k->c.mask = 0;
        upstream_pool_release(&k->w->pool, &k->c, 0);
    }
    k->state = H1C_CLOSED;
}

static void h1c_free(struct h1c *k)
{
    h1c_close_conn(k);
    ae_timer_del(k->w->loop, k->idle_timer);
    ae_timer_del(k->w->loop, k->kick_timer);
    http1_free(&k->rs);
    http_h1_io_free(&k->in);
    http_h1_io_free(&k->out);
    free(k->fields);
    free(k);
}

static void h1c_idle_remove(struct h1c *k)
{
    for (struct h1c **p = &h1c_idle; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            k->next = NULL;
            h1c_nidle--;
            return;
        }
}

static long h1c_idle_expired(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct h1c *k = data;
    k->idle_timer = 0;
    h1c_idle_remove(k);
    h1c_free(k);
    return -1;
}

static int h1c_same_dst(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* ---------- failures ---------- */

static enum http_cause h1c_cause_of(int err)
{
    switch (-err) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return HTTP_CAUSE_REFUSED;
    default:
        return HTTP_CAUSE_RESET;
    }
}

/* The connection failed or broke: the exchange is answered (before a
 * response head) or cut (after one). */
static void h1c_fail(struct h1c *k, enum http_cause cause, const char *detail)
{
    struct http_exchange *x = k->x;
    h1c_close_conn(k);
    if (!x || x->finished)
        return;
    char dst[80];
    struct sockaddr_storage d = k->dst;
    log_info("upstream request failed", "direction=%s dst=%s cause=%s error=\"%s\"",
             x->dir == PM_INBOUND ? "inbound" : "outbound", session_addr(&d, dst, sizeof dst),
             http_cause_name(cause), detail);
    if (x->resp_head_sent)
        http_exchange_abort(x, cause, 1);
    else
        http_exchange_local_reply(x, cause, 0, detail);
}

static long h1c_connect_timeout(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct h1c *k = data;
    k->connect_timer = 0;
    if (k->x)
        pm_add(&k->w->px->metrics.connect_failures[k->x->dir], 1);
    h1c_fail(k, HTTP_CAUSE_CONNECT_TIMEOUT, "no connection within the connect timeout");
    return -1;
}

/* 0 with a dial under way, -1 when the exchange was answered instead. */
static int h1c_dial(struct h1c *k)
{
    struct http_exchange *x = k->x;
    struct upstream_req req = {.dst = k->dst, .passthrough = k->passthrough};
    int r = upstream_pool_acquire(&k->w->pool, &req, &k->c);
    if (r < 0) {
        int had_fd = k->c.fd >= 0;
        if (had_fd)
            pm_add(&k->w->px->metrics.connect_failures[x->dir], 1);
        h1c_fail(k, had_fd ? h1c_cause_of(r) : HTTP_CAUSE_NO_UPSTREAM, strerror(-r));
        return -1;
    }
    k->state = H1C_CONNECTING;
    k->connect_timer = ae_timer_add(k->w->loop, (long)x->cfg->connect_timeout_ms, h1c_connect_timeout, k);
    h1c_set_mask(k);
    return 0;
}

/* ---------- the side's ops: the request travels to the server ---------- */

static enum http_rc h1c_out(struct h1c *k, int r)
{
    if (r < 0) {
        h1c_fail(k, HTTP_CAUSE_RESET, "request larger than the output bound");
        return HTTP_FAIL;
    }
    h1c_set_mask(k);
    if (http_h1_io_len(&k->out) > HTTP_H1_OUT_HIGH) {
        k->out_paused = 1;
        return HTTP_PAUSE;
    }
    return HTTP_OK;
}

static enum http_rc h1c_head(struct http_exchange *x, const struct http_head *hd)
{
    struct h1c *k = x->up;
    struct http_head with_host;
    char host[80];
    if (k->state == H1C_CLOSED)
        return HTTP_FAIL;
    if (k->state == H1C_NONE && h1c_dial(k) < 0)
        return HTTP_FAIL;
    if (!hd->authority.len) {
        /* HTTP/1.0 without Host: HTTP/1.1 needs one, and the original
         * destination is what the caller dialled. */
        struct sockaddr_storage d = k->dst;
        session_addr(&d, host, sizeof host);
        with_host = *hd;
        with_host.authority = (struct http_span){host, strlen(host)};
        hd = &with_host;
    }
    int r = http_h1_write_request(&k->out.b, hd);
    k->req_chunked = r == 1;
    k->head_sent = 1;
    k->req_end = hd->end_stream;
    /* The method decides the response's framing (HEAD, CONNECT). */
    http1_response_to(&k->rs, hd->method.p, hd->method.len);
    return h1c_out(k, r < 0 ? r : 0);
}

static enum http_rc h1c_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    struct h1c *k = x->up;
    int r = 0;
    if (k->state == H1C_CLOSED)
        return HTTP_FAIL;
    if (k->req_chunked) {
        r = http_h1_write_chunk(&k->out.b, p, len);
        if (end_stream && r == 0)
            r = http_h1_write_last_chunk(&k->out.b, NULL);
    } else if (len) {
        r = buf_append(&k->out.b, p, len);
    }
    if (end_stream)
        k->req_end = 1;
    return h1c_out(k, r);
}

static enum http_rc h1c_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct h1c *k = x->up;
    if (k->state == H1C_CLOSED)
        return HTTP_FAIL;
    k->req_end = 1;
    /* Without chunked framing there is nowhere to put trailers: dropped (RFC 9110 6.5.1 allows it). */
    return h1c_out(k, k->req_chunked ? http_h1_write_last_chunk(&k->out.b, t) : 0);
}

static void h1c_resume(struct http_exchange *x)
{
    struct h1c *k = x->up;
    if (!k->paused)
        return;
    k->paused = 0;
    h1c_set_mask(k);
    h1c_kick(k); /* input may wait parsed-less in k->in */
}

static void h1c_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    h1c_close_conn(x->up); /* half an exchange on it: never reusable */
}

/* The exchange lets go: the connection is kept for the next request to the
 * same place when the exchange ended cleanly on both sides. */
static void h1c_release(struct http_exchange *x)
{
    struct h1c *k = x->up;
    k->x = NULL;
    x->up = NULL;
    if (k->in_pump) {
        k->released = 1; /* h1c_pump finishes, then decides */
        return;
    }
    int keep = k->state == H1C_OPEN && k->resp_done && k->req_end && k->keep_alive && !k->eof && !k->tunnel &&
               !http_h1_io_len(&k->in) && !http_h1_io_len(&k->out) && !conn_out_pending(&k->c) &&
               !atomic_load(&k->w->px->draining) && h1c_nidle < HTTP_H1_CLIENT_IDLE_MAX;
    if (!keep) {
        h1c_free(k);
        return;
    }
    k->head_sent = k->req_chunked = k->req_end = k->resp_done = k->keep_alive = 0;
    k->paused = k->out_paused = 0;
    k->next = h1c_idle; /* k->rs is past its HTTP1_DONE: the next bytes start the next response */
    h1c_idle = k;
    h1c_nidle++;
    k->idle_timer = ae_timer_add(k->w->loop, HTTP_H1_CLIENT_IDLE_MS, h1c_idle_expired, k);
    h1c_set_mask(k); /* readable: a close (or stray bytes) ends it */
}

static const struct http_side_ops h1c_ops = {
    .name = "h1-client",
    .head = h1c_head,
    .data = h1c_data,
    .trailers = h1c_trailers,
    .resume = h1c_resume,
    .abort = h1c_abort,
    .release = h1c_release,
};

void http_h1_client_attach(struct worker *w, const struct upstream_req *req, struct http_exchange *x)
{
    struct h1c *k = NULL;
    for (struct h1c *i = h1c_idle; i; i = i->next)
        if (i->passthrough == req->passthrough && h1c_same_dst(&i->dst, &req->dst)) {
            k = i;
            break;
        }
    if (k) {
        h1c_idle_remove(k);
        ae_timer_del(w->loop, k->idle_timer);
        k->idle_timer = 0;
        k->reused = 1;
    } else {
        k = xcalloc(1, sizeof *k);
        k->w = w;
        k->dst = req->dst;
        k->passthrough = req->passthrough;
        k->c.fd = -1;
        http1_init(&k->rs, HTTP1_RESPONSE, NULL);
        buf_init(&k->in.b, HTTP_H1_OUT_MAX);
        buf_init(&k->out.b, HTTP_H1_OUT_MAX);
    }
    k->x = x;
    x->up = k;
    x->up_ops = &h1c_ops;
}

int http_h1_client_take_tunnel(struct http_exchange *x, struct conn *into, struct pending *rest)
{
    struct h1c *k = x->up;
    if (!k || k->state != H1C_OPEN)
        return -1;
    if (k->c.mask)
        ae_file_set(k->w->loop, k->c.fd, AE_NONE, h1c_io, k);
    *into = k->c;
    into->mask = 0;
    size_t n = http_h1_io_len(&k->in);
    rest->data = n ? xmalloc(n) : NULL;
    if (n)
        memcpy(rest->data, k->in.b.data + k->in.off, n);
    rest->off = 0;
    rest->len = n;
    http_h1_io_free(&k->in);
    memset(&k->c, 0, sizeof k->c);
    k->c.fd = -1;
    k->state = H1C_CLOSED;
    return 0;
}

void http_h1_client_thread_cleanup(void)
{
    while (h1c_idle) {
        struct h1c *k = h1c_idle;
        h1c_idle = k->next;
        h1c_nidle--;
        h1c_free(k);
    }
}

unsigned http_h1_client_idle_count(void)
{
    return h1c_nidle;
}

/* ---------- the response ---------- */

static void h1c_trailers_in(struct h1c *k, struct http_head *t)
{
    size_t n = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0;; i++) {
        const char *name, *value;
        size_t nl, vl;
        if (http1_trailer(&k->rs, i, &name, &nl, &value, &vl) < 0)
            break;
        if (n == k->fields_cap) {
            k->fields_cap = k->fields_cap ? k->fields_cap * 2 : 16;
            k->fields = xrealloc(k->fields, k->fields_cap * sizeof *k->fields);
        }
        k->fields[n++] = (struct http_field){{name, nl}, {value, vl}};
    }
    t->fields = k->fields;
    t->nfields = n;
    t->end_stream = 1;
}

static void h1c_response_done(struct h1c *k)
{
    const struct http1_msg *m = &k->rs.msg;
    k->resp_done = 1;
    k->keep_alive = m->keep_alive;
    if (m->status == 101 || (m->status >= 200 && m->status < 300 && k->x && strcmp(k->x->method, "CONNECT") == 0))
        k->tunnel = 1; /* what follows is not HTTP: the downstream side takes the connection */
}

static void h1c_parse(struct h1c *k)
{
    while (k->x && k->head_sent && !k->resp_done && !k->paused && k->state == H1C_OPEN) {
        struct http_exchange *x = k->x;
        if (x->finished)
            return;
        const char *in = k->in.b.data ? k->in.b.data + k->in.off : "";
        size_t len = http_h1_io_len(&k->in), used = 0, blen = 0;
        const char *body = NULL;
        enum http1_event ev = http1_parse(&k->rs, in, len, &used, &body, &blen);
        k->in.off += used;
        enum http_rc rc = HTTP_OK;
        switch (ev) {
        case HTTP1_NEED_MORE: http_h1_io_settle(&k->in); return;
        case HTTP1_HEAD: {
            struct http_head hd;
            http_h1_head_from(&k->rs, &hd, &k->fields, &k->fields_cap);
            rc = http_exchange_response_head(x, &hd);
            break;
        }
        case HTTP1_BODY: rc = http_exchange_response_data(x, body, blen, 0); break;
        case HTTP1_DONE: {
            const struct http1_msg *m = &k->rs.msg;
            if (m->status < 200 && m->status != 101)
                break; /* an interim response: the final one follows */
            h1c_response_done(k);
            if (k->rs.ntrailers) {
                struct http_head t;
                h1c_trailers_in(k, &t);
                rc = http_exchange_response_trailers(x, &t);
            } else if (!m->no_body) {
                rc = http_exchange_response_data(x, NULL, 0, 1);
            }
            break;
        }
        case HTTP1_ERROR:
            http_h1_io_settle(&k->in);
            h1c_fail(k, HTTP_CAUSE_BAD_RESPONSE, http1_strerror(k->rs.error));
            return;
        default: break;
        }
        http_h1_io_settle(&k->in); /* after the event: body pointed into it */
        if (rc == HTTP_PAUSE)
            k->paused = 1;
    }
}

/* The server finished sending (err 0) or the read failed (err < 0). */
static void h1c_ended(struct h1c *k, int err)
{
    struct http_exchange *x = k->x;
    if (!x || !k->head_sent || k->resp_done || x->finished) {
        h1c_close_conn(k); /* idle, or between exchanges: nothing to answer */
        return;
    }
    enum http1_event ev = err ? HTTP1_ERROR : http1_finish(&k->rs);
    if (ev == HTTP1_DONE) { /* a body read until the close */
        h1c_response_done(k);
        k->keep_alive = 0;
        h1c_close_conn(k);
        http_exchange_response_data(x, NULL, 0, 1);
        return;
    }
    if (k->reused && !x->resp_head_sent && !http_h1_io_len(&k->in))
        log_debug("reused upstream connection closed under a request", "error=\"%s\"",
                  err ? strerror(-err) : "eof");
    h1c_fail(k, HTTP_CAUSE_RESET, err ? strerror(-err) : "the upstream closed before the response ended");
}

static void h1c_pump(struct h1c *k)
{
    k->in_pump = 1;
    if (k->state == H1C_CONNECTING) {
        int r = conn_tcp_connected(&k->c);
        if (r == 0) {
            k->state = H1C_OPEN;
            ae_timer_del(k->w->loop, k->connect_timer);
            k->connect_timer = 0;
        } else if (r != -EAGAIN) {
            if (k->x)
                pm_add(&k->w->px->metrics.connect_failures[k->x->dir], 1);
            h1c_fail(k, h1c_cause_of(r), strerror(-r));
        }
    }
    if (k->state == H1C_OPEN && !k->x) {
        /* Idle: a close or stray bytes end it. */
        char b[1];
        ssize_t n = conn_read(&k->c, b, sizeof b);
        if (n != -EAGAIN) {
            h1c_idle_remove(k);
            k->in_pump = 0;
            h1c_free(k);
            return;
        }
    }
    if (k->state == H1C_OPEN && k->x) {
        if (conn_out_pending(&k->c)) {
            int r = conn_flush(&k->c);
            if (r < 0 && r != -EAGAIN)
                h1c_fail(k, HTTP_CAUSE_RESET, strerror(-r));
        }
        while (k->state == H1C_OPEN && http_h1_io_len(&k->out) && conn_can_write(&k->c)) {
            ssize_t n = conn_write(&k->c, k->out.b.data + k->out.off, http_h1_io_len(&k->out));
            if (n == -EAGAIN)
                break;
            if (n < 0) {
                h1c_fail(k, HTTP_CAUSE_RESET, strerror((int)-n));
                break;
            }
            k->out.off += (size_t)n;
            http_h1_io_settle(&k->out);
        }
        if (k->out_paused && k->x && http_h1_io_len(&k->out) <= HTTP_H1_OUT_HIGH) {
            k->out_paused = 0;
            http_exchange_resume_upstream(k->x);
        }
    }
    char *scratch = k->w->scratch;
    while (k->state == H1C_OPEN && k->x && !k->eof && !k->paused && !k->tunnel && conn_can_read(&k->c) &&
           http_h1_io_len(&k->in) < HTTP_H1_IN_MAX) {
        ssize_t n = conn_read(&k->c, scratch, PROXY_SCRATCH);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            k->eof = 1;
            h1c_parse(k); /* what came before the end */
            if (k->x && !k->tunnel)
                h1c_ended(k, n < 0 ? (int)n : 0);
            break;
        }
        if (buf_append(&k->in.b, scratch, (size_t)n) < 0) {
            h1c_fail(k, HTTP_CAUSE_BAD_RESPONSE, "response input over its bound");
            break;
        }
        h1c_parse(k);
    }
    h1c_parse(k); /* after a resume: what waits in k->in */
    k->in_pump = 0;
    if (k->released) {
        k->released = 0;
        struct http_exchange fake = {.up = k};
        k->x = NULL;
        h1c_release(&fake);
        return;
    }
    h1c_set_mask(k);
}
