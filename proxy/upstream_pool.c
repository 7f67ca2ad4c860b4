/* SPDX-License-Identifier: Apache-2.0 */
/* The per-worker upstream pool (see upstream_pool.h): plain dials, and
 * pooled HTTP/2 connections (weft/h2 mTLS or h2c) whose streams carry
 * requests. Each pooled connection is driven on the worker's loop by its own
 * file events; frames go in and out through proxy/http_h2.c. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"
#include "http_h2.h"
#include "http_h2_map.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "upstream_pool.h"
#include "xalloc.h"

void upstream_pool_init(struct upstream_pool *p)
{
    memset(p, 0, sizeof *p);
}

int upstream_pool_acquire(struct upstream_pool *p, const struct upstream_req *req, struct conn *c)
{
    int fam = req->dst.ss_family, one = 1, r;
    socklen_t len = fam == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    c->fd = -1;
    if (fam != AF_INET && fam != AF_INET6) {
        r = -EAFNOSUPPORT;
        goto fail;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (req->passthrough && handoff_bind(fd, fam) < 0) {
        close(fd);
        r = -EADDRNOTAVAIL;
        goto fail;
    }
    p->dials++;
    r = conn_tcp_connect(c, fd, (const struct sockaddr *)&req->dst, len);
    return r; /* on failure the conn holds the fd: its owner closes it */
fail:
    p->dial_failures++;
    c->state = CONN_FAILED;
    c->last_err = r;
    return r;
}

void upstream_pool_release(struct upstream_pool *p, struct conn *c, int reusable)
{
    (void)reusable;
    if (c->fd >= 0)
        p->released++;
    conn_close(c);
}

/* ---------- pooled HTTP/2 connections ---------- */

enum uph2_state { UPH2_CONNECTING, UPH2_HANDSHAKING, UPH2_OPEN };

struct upst;

struct uph2 {
    struct upstream_pool *p;
    struct worker *w;
    struct sockaddr_storage dst;   /* the key: where, and how */
    unsigned tls : 1, passthrough : 1;
    unsigned goaway : 1;           /* no new streams: GOAWAY either way */
    int peer_slot;                 /* its metrics series once open, else -1 */
    char expect[SPIFFE_MAX_ID];    /* "" when any identity of the trust domain will do */
    struct conn c;
    struct creds_peer peer;
    h2_conn *h;
    enum uph2_state state;
    long long timer;               /* the dial's deadline, then the idle close */
    struct upst *streams;
    unsigned nstreams;
    struct uph2 *prev, *next;
};

/* One request's upstream side. Freed once both the exchange released it
 * and its stream is gone (closed, or never opened). */
struct upst {
    struct worker *w;
    struct http_exchange *x;       /* NULL once released */
    struct uph2 *c;                /* NULL before the head and after the stream closed */
    h2_stream *st;
    struct sockaddr_storage dst;
    unsigned tls : 1, passthrough : 1;
    unsigned aborted : 1, resp_ended : 1;
    const char *proto;             /* weft-proto (upstream_pool_h2_attach's, not copied) */
    size_t withheld;               /* response bytes received, not yet given back (PAUSE) */
    struct upst *prev, *next;      /* the connection's streams */
    /* Sized to the ID, not to SPIFFE_MAX_ID: one is allocated per request,
     * and zeroing 2 KiB each time was a twentieth of the client proxy's
     * instructions for a request (bench/RESULTS.md). */
    char expect[];
};

static _Thread_local struct h2map_out uph2_out;
static _Thread_local struct http_field uph2_fields[HTTP_MSG_MAX_FIELDS];

static void uph2_pump(struct uph2 *c);
static void uph2_close(struct uph2 *c, enum http_cause cause, const char *detail);

static void uph2_set_mask(struct uph2 *c, int mask);

static void uph2_io(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct uph2 *c = data;
    c->c.ready |= mask;
    uph2_pump(c);
}

static void uph2_set_mask(struct uph2 *c, int mask)
{
    conn_set_mask(&c->c, c->w->loop, mask, uph2_io, c);
}

/* Frames were queued: have the loop call back to send them (never from
 * inside nghttp2's callbacks, which may not send). */
static void uph2_kick(struct uph2 *c)
{
    if (c->state == UPH2_OPEN)
        uph2_set_mask(c, c->c.mask | AE_WRITABLE);
}

static void upst_free_if_done(struct upst *u)
{
    if (!u->x && !u->st)
        free(u);
}

static void upst_unlink(struct upst *u)
{
    struct uph2 *c = u->c;
    if (!c)
        return;
    if (u->prev)
        u->prev->next = u->next;
    else
        c->streams = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
    u->c = NULL;
    c->nstreams--;
}

/* The upstream failed this request: a local reply while no response head
 * went downstream, else the response is cut. */
static void upst_fail(struct upst *u, enum http_cause cause, const char *detail)
{
    struct http_exchange *x = u->x;
    if (!x || x->finished || u->aborted)
        return;
    if (!x->resp_head_sent)
        http_exchange_local_reply(x, cause, 0, detail);
    else
        http_exchange_abort(x, cause, 1);
}

static long uph2_idle(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct uph2 *c = data;
    c->timer = 0;
    uph2_close(c, HTTP_CAUSE_RESET, "idle");
    return -1;
}

static long uph2_deadline(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct uph2 *c = data;
    c->timer = 0;
    struct proxy_metrics *m = &c->w->px->metrics;
    if (c->state == UPH2_HANDSHAKING)
        pm_add(&m->handshakes[PM_CLIENT][CREDS_FAIL_TIMEOUT], 1);
    pm_add(&m->connect_failures[c->passthrough ? PM_INBOUND : PM_OUTBOUND], 1);
    uph2_close(c, HTTP_CAUSE_CONNECT_TIMEOUT, "no connection within the connect timeout");
    return -1;
}

static void uph2_unlink(struct uph2 *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->p->h2 == c)
        c->p->h2 = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static struct pm_pool_series *uph2_series(const struct uph2 *c)
{
    return &c->w->px->metrics.pool[c->passthrough ? PM_INBOUND : PM_OUTBOUND][c->tls][c->peer_slot];
}

static void uph2_free(struct uph2 *c, int call_back, enum http_cause cause, const char *detail)
{
    while (c->streams) {
        struct upst *u = c->streams;
        upst_unlink(u);
        u->st = NULL; /* h2_free drops it */
        if (call_back)
            upst_fail(u, cause, detail);
        upst_free_if_done(u);
    }
    if (call_back) {
        ae_timer_del(c->w->loop, c->timer);
        uph2_set_mask(c, AE_NONE);
    }
    if (c->peer_slot >= 0)
        pm_add(&uph2_series(c)->closed, 1);
    c->w->closed_since_trim++; /* its TLS and HTTP/2 state go back as a session's do */
    h2_free(c->h);
    conn_close(&c->c);
    free(c);
}

/* Ends the connection now: its requests fail with cause. */
static void uph2_close(struct uph2 *c, enum http_cause cause, const char *detail)
{
    if (log_enabled(LOG_DEBUG) || c->nstreams) {
        char dst[80];
        log_event(c->nstreams ? LOG_INFO : LOG_DEBUG, "pooled http2 connection closed",
                  "dst=%s tls=%d streams=%u cause=%s detail=\"%s\"", session_addr(&c->dst, dst, sizeof dst), c->tls,
                  c->nstreams, http_cause_name(cause), detail);
    }
    uph2_unlink(c);
    uph2_free(c, 1, cause, detail);
}

/* The h2 session's frames out to the socket: 0, or -1 on a write error. */
static int uph2_flush(struct uph2 *c)
{
    for (;;) {
        if (conn_out_pending(&c->c)) {
            int r = conn_flush(&c->c);
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
        ssize_t wr = conn_can_write(&c->c) ? conn_write(&c->c, p, n) : -EAGAIN;
        if (wr == -EAGAIN)
            return 0;
        if (wr < 0)
            return -1;
        h2_sent(c->h, (size_t)wr);
    }
}

static int uph2_out_waiting(struct uph2 *c)
{
    const uint8_t *p;
    size_t n = 0;
    return conn_out_pending(&c->c) || (h2_output(c->h, &p, &n) == 0 && n > 0);
}

static int uph2_tls_setup(SSL *ssl, void *arg)
{
    struct uph2 *c = arg;
    static const unsigned char alpn[] = "\x07" CREDS_ALPN_H2;
    if (creds_ssl_attach(ssl, &c->peer) < 0)
        return -1;
    return SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1) == 0 ? 0 : -1;
}

/* Connect, handshake: 0 when open (or still on the way), -1 when closed. */
/* Open now: the dial's deadline gives way to the idle close when no
 * request is left on it (its first one may have failed meanwhile). */
static void uph2_opened(struct uph2 *c)
{
    char uri[SPIFFE_MAX_ID] = "";
    if (c->tls)
        spiffe_format(c->peer.id.trust_domain, c->peer.id.ns, c->peer.id.sa, uri, sizeof uri);
    c->peer_slot = pm_peer_slot(&c->w->px->metrics, uri);
    pm_add(&uph2_series(c)->opened, 1);
    c->state = UPH2_OPEN;
    ae_timer_del(c->w->loop, c->timer);
    c->timer = c->nstreams ? 0 : ae_timer_add(c->w->loop, UPSTREAM_H2_IDLE_MS, uph2_idle, c);
}

static int uph2_establish(struct uph2 *c)
{
    struct proxy *px = c->w->px;
    int r;
    if (c->state == UPH2_CONNECTING) {
        r = conn_tcp_connected(&c->c);
        if (r == -EAGAIN)
            return 0;
        if (r < 0) {
            pm_add(&px->metrics.connect_failures[c->passthrough ? PM_INBOUND : PM_OUTBOUND], 1);
            uph2_close(c, r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH ? HTTP_CAUSE_REFUSED
                                                                                        : HTTP_CAUSE_RESET,
                       strerror(-r));
            return -1;
        }
        if (!c->tls) {
            uph2_opened(c);
            return 0;
        }
        SSL_CTX *ctx = creds_client_ctx(px->creds);
        if (!ctx) {
            pm_add(&px->metrics.handshakes[PM_CLIENT][CREDS_FAIL_NOT_READY], 1);
            uph2_close(c, HTTP_CAUSE_TLS, "no credentials");
            return -1;
        }
        c->peer.expect_id = c->expect[0] ? c->expect : NULL;
        r = conn_tls_connect(&c->c, ctx, uph2_tls_setup, c);
        SSL_CTX_free(ctx); /* the SSL holds its own reference */
        if (r < 0) {
            uph2_close(c, HTTP_CAUSE_TLS, "ssl setup");
            return -1;
        }
        c->state = UPH2_HANDSHAKING;
    }
    if (c->state == UPH2_HANDSHAKING) {
        r = conn_handshake(&c->c);
        if (r == -EAGAIN) {
            uph2_set_mask(c, conn_handshake_interest(&c->c));
            return 0;
        }
        const struct proxy_config *cfg = &c->w->snap->cfg;
        if (r < 0 || creds_peer_finish(conn_ssl(&c->c), &c->peer, cfg->trust_domain) < 0 ||
            !creds_alpn_is_h2(conn_ssl(&c->c))) {
            if (r >= 0)
                c->c.ssl_err = SSL_ERROR_SSL;
            enum creds_fail f = r >= 0 && c->peer.fail == CREDS_FAIL_NONE
                                    ? CREDS_FAIL_ALPN
                                    : creds_classify_failure(conn_ssl(&c->c), &c->peer, c->c.ssl_err);
            char dst[80];
            pm_add(&px->metrics.handshakes[PM_CLIENT][f], 1);
            log_info("tls handshake failed", "side=client dst=%s reason=%s alpn=%s",
                     session_addr(&c->dst, dst, sizeof dst), creds_fail_name(f), CREDS_ALPN_H2);
            uph2_close(c, HTTP_CAUSE_TLS, creds_fail_name(f));
            return -1;
        }
        pm_add(&px->metrics.handshakes[PM_CLIENT][CREDS_FAIL_NONE], 1);
        uph2_opened(c);
    }
    return 0;
}

static void uph2_pump(struct uph2 *c)
{
    if (c->state != UPH2_OPEN) {
        if (uph2_establish(c) < 0)
            return;
        if (c->state != UPH2_OPEN)
            return;
    }
    char *scratch = c->w->scratch;
    if (uph2_flush(c) < 0) {
        uph2_close(c, HTTP_CAUSE_RESET, "write failed");
        return;
    }
    /* Read while what we answer can go out (PING and SETTINGS acks,
     * WINDOW_UPDATEs): a peer that does not read stops being read. */
    while (conn_can_read(&c->c) && !conn_out_pending(&c->c)) {
        ssize_t n = conn_read(&c->c, scratch, PROXY_SCRATCH);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            uph2_close(c, HTTP_CAUSE_RESET, n == 0 ? "closed by the peer" : "read failed");
            return;
        }
        int r = h2_input(c->h, (const uint8_t *)scratch, (size_t)n);
        if (uph2_flush(c) < 0 || r < 0) {
            uph2_close(c, HTTP_CAUSE_BAD_RESPONSE, r < 0 ? h2_strerror(r) : "write failed");
            return;
        }
        if (c->c.type == &conn_plain && (size_t)n < PROXY_SCRATCH)
            break; /* drained: the loop tells when there is more */
    }
    if (h2_done(c->h) || (c->goaway && c->nstreams == 0)) {
        uph2_close(c, HTTP_CAUSE_RESET, "connection finished");
        return;
    }
    int mask = c->c.rd_wait ? c->c.rd_wait : AE_READABLE;
    if (uph2_out_waiting(c))
        mask |= AE_WRITABLE;
    uph2_set_mask(c, mask);
}

/* ---- the connection's events: the response side of each request ---- */

static void uph2_on_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n,
                            int end)
{
    struct uph2 *c = ctx;
    struct upst *u = h2_stream_user(st);
    struct http_head h;
    if (!u || !u->x || u->aborted)
        return;
    struct http_exchange *x = u->x;
    if (h2map_head_from(f, n, 0, &h, uph2_fields, HTTP_MSG_MAX_FIELDS, NULL) < 0 ||
        (kind != H2_BLOCK_TRAILERS && h.status == 0)) {
        h2_reset(c->h, st, H2_PROTOCOL_ERROR);
        uph2_kick(c);
        upst_fail(u, HTTP_CAUSE_BAD_RESPONSE, "the upstream's response head did not map");
        return;
    }
    if (kind == H2_BLOCK_INFO) {
        if (h.status == 100 || h.status == 103)
            http_exchange_response_head(x, &h);
        return;
    }
    if (kind == H2_BLOCK_TRAILERS || end) {
        int g = h2map_grpc_status(&h);
        if (g >= 0) {
            x->grpc_status = g;
            x->grpc = 1;
        }
    }
    if (end)
        u->resp_ended = 1;
    if (kind == H2_BLOCK_TRAILERS) {
        u->resp_ended = 1;
        http_exchange_response_trailers(x, &h);
        return;
    }
    h.end_stream = end ? 1 : 0;
    http_exchange_response_head(x, &h);
}

static void uph2_on_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    struct uph2 *c = ctx;
    struct upst *u = h2_stream_user(st);
    if (!u || !u->x || u->aborted) {
        h2_consume(c->h, st, len);
        return;
    }
    if (http_exchange_response_data(u->x, (const char *)p, len, 0) == HTTP_PAUSE && u->x)
        u->withheld += len; /* the window comes back on resume */
    else
        h2_consume(c->h, st, len);
}

static void uph2_on_end(void *ctx, h2_stream *st)
{
    (void)ctx;
    struct upst *u = h2_stream_user(st);
    if (!u || !u->x || u->aborted || u->resp_ended)
        return;
    u->resp_ended = 1;
    http_exchange_response_data(u->x, NULL, 0, 1);
}

static void uph2_on_close(void *ctx, h2_stream *st, uint32_t code)
{
    struct uph2 *c = ctx;
    struct upst *u = h2_stream_user(st);
    if (!u)
        return;
    upst_unlink(u);
    u->st = NULL;
    if (!u->resp_ended) {
        char why[64];
        snprintf(why, sizeof why, "stream reset by the upstream (HTTP/2 error %u)", code);
        upst_fail(u, code == H2_REFUSED_STREAM ? HTTP_CAUSE_REFUSED : HTTP_CAUSE_RESET, why);
    }
    upst_free_if_done(u);
    if (c->nstreams == 0 && !c->timer && c->state == UPH2_OPEN)
        c->timer = ae_timer_add(c->w->loop, UPSTREAM_H2_IDLE_MS, uph2_idle, c);
}

static void uph2_on_writable(void *ctx, h2_stream *st)
{
    (void)ctx;
    struct upst *u = h2_stream_user(st);
    if (u && u->x && !u->aborted)
        http_exchange_resume_upstream(u->x);
}

static void uph2_on_goaway(void *ctx, int32_t last, uint32_t code)
{
    (void)last;
    (void)code;
    struct uph2 *c = ctx;
    c->goaway = 1; /* streams in flight finish; new requests get another connection */
}

static const struct h2_events uph2_events = {uph2_on_headers, uph2_on_data, uph2_on_end,
                                            uph2_on_close,   uph2_on_writable, uph2_on_goaway};

static int uph2_same(const struct uph2 *c, const struct upst *u)
{
    if (c->tls != u->tls || c->passthrough != u->passthrough || strcmp(c->expect, u->expect) != 0 ||
        c->dst.ss_family != u->dst.ss_family)
        return 0;
    size_t l = c->dst.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return memcmp(&c->dst, &u->dst, l) == 0;
}

/* A pooled connection for u with room for one more stream, or a new one:
 * NULL (with *err) when the dial could not start. */
static struct uph2 *uph2_pick(struct upstream_pool *p, struct upst *u, int *err)
{
    for (struct uph2 *c = p->h2; c; c = c->next) {
        if (c->goaway || !uph2_same(c, u))
            continue;
        /* Before its SETTINGS came, count on the protocol's default of 100. */
        if (c->state == UPH2_OPEN ? h2_can_open(c->h) : c->nstreams < H2_DEFAULT_MAX_STREAMS)
            return c;
    }
    struct uph2 *c = xcalloc(1, sizeof *c);
    struct upstream_req req = {.dst = u->dst, .passthrough = u->passthrough};
    c->p = p;
    c->w = u->w;
    c->peer_slot = -1;
    c->dst = u->dst;
    c->tls = u->tls;
    c->passthrough = u->passthrough;
    memcpy(c->expect, u->expect, strlen(u->expect) + 1);
    c->c.fd = -1;
    c->c.owner = c;
    int r = upstream_pool_acquire(p, &req, &c->c);
    if (r < 0) {
        *err = r;
        conn_close(&c->c);
        free(c);
        return NULL;
    }
    c->h = h2_new(H2_CLIENT, NULL, &uph2_events, c);
    c->state = UPH2_CONNECTING;
    const struct proxy_config *cfg = &u->w->snap->cfg;
    c->timer = ae_timer_add(u->w->loop, (long)cfg->connect_timeout_ms + (c->tls ? (long)cfg->handshake_timeout_ms : 0),
                            uph2_deadline, c);
    uph2_set_mask(c, AE_WRITABLE);
    c->next = p->h2;
    if (p->h2)
        p->h2->prev = c;
    p->h2 = c;
    p->h2_conns++;
    return c;
}

/* ---- the upstream side's ops: the request travels on a stream ---- */

static enum http_rc upst_head(struct http_exchange *x, const struct http_head *h)
{
    struct upst *u = x->up;
    struct upstream_pool *p = &u->w->pool;
    int err = 0;
    if (atomic_load(&u->w->px->draining)) {
        http_exchange_local_reply(x, HTTP_CAUSE_DRAINING, 0, "the proxy is shutting down");
        return HTTP_FAIL;
    }
    if (h2map_block(h, 1, u->tls ? u->proto : NULL, &uph2_out) < 0) {
        http_exchange_local_reply(x, HTTP_CAUSE_BAD_REQUEST, 431, "request head too large for HTTP/2");
        return HTTP_FAIL;
    }
    struct uph2 *c = uph2_pick(p, u, &err);
    if (!c) {
        http_exchange_local_reply(x, HTTP_CAUSE_NO_UPSTREAM, 0, strerror(-err));
        return HTTP_FAIL;
    }
    u->st = h2_submit_request(c->h, uph2_out.f, uph2_out.n, h->end_stream, u, &err);
    if (!u->st) {
        http_exchange_local_reply(x, HTTP_CAUSE_NO_UPSTREAM, 0, "no stream on the pooled connection");
        return HTTP_FAIL;
    }
    u->c = c;
    u->next = c->streams;
    if (c->streams)
        c->streams->prev = u;
    c->streams = u;
    c->nstreams++;
    p->h2_streams++;
    if (c->timer && c->state == UPH2_OPEN) { /* the idle close */
        ae_timer_del(c->w->loop, c->timer);
        c->timer = 0;
    }
    uph2_kick(c);
    return HTTP_OK;
}

static enum http_rc upst_data(struct http_exchange *x, const char *p, size_t len, int end_stream)
{
    struct upst *u = x->up;
    if (!u->st || !u->c)
        return HTTP_FAIL;
    if (h2_submit_data(u->c->h, u->st, p, len, end_stream) < 0) {
        h2_reset(u->c->h, u->st, H2_INTERNAL_ERROR);
        uph2_kick(u->c);
        return HTTP_FAIL;
    }
    uph2_kick(u->c);
    return h2_stream_queued(u->st) >= H2_STREAM_OUT_HIGH ? HTTP_PAUSE : HTTP_OK;
}

static enum http_rc upst_trailers(struct http_exchange *x, const struct http_head *t)
{
    struct upst *u = x->up;
    if (!u->st || !u->c)
        return HTTP_FAIL;
    if (h2map_block(t, 0, NULL, &uph2_out) < 0 || h2_submit_trailers(u->c->h, u->st, uph2_out.f, uph2_out.n) < 0) {
        h2_reset(u->c->h, u->st, H2_INTERNAL_ERROR);
        uph2_kick(u->c);
        return HTTP_FAIL;
    }
    uph2_kick(u->c);
    return HTTP_OK;
}

static void upst_resume(struct http_exchange *x)
{
    struct upst *u = x->up;
    if (u->st && u->c && u->withheld) {
        h2_consume(u->c->h, u->st, u->withheld);
        u->withheld = 0;
        uph2_kick(u->c);
    }
}

static void upst_abort(struct http_exchange *x, enum http_cause cause)
{
    (void)cause;
    struct upst *u = x->up;
    if (!u || u->aborted)
        return;
    u->aborted = 1;
    if (u->st && u->c) {
        h2_reset(u->c->h, u->st, H2_CANCEL);
        uph2_kick(u->c);
    }
}

static void upst_release(struct http_exchange *x)
{
    struct upst *u = x->up;
    if (!u)
        return;
    x->up = NULL;
    if (u->st && u->c && !u->resp_ended && !u->aborted) {
        /* Let go mid-response: nobody reads the rest. */
        h2_reset(u->c->h, u->st, H2_CANCEL);
        uph2_kick(u->c);
    }
    u->x = NULL;
    upst_free_if_done(u);
}

static const struct http_side_ops upst_ops = {
    .name = "h2-client",
    .head = upst_head,
    .data = upst_data,
    .trailers = upst_trailers,
    .resume = upst_resume,
    .abort = upst_abort,
    .release = upst_release,
};

void upstream_pool_h2_attach(struct worker *w, const struct upstream_req *req, const char *proto,
                             struct http_exchange *x)
{
    size_t idlen = req->expect_id ? strnlen(req->expect_id, SPIFFE_MAX_ID - 1) : 0;
    struct upst *u = xcalloc(1, sizeof *u + idlen + 1);
    u->w = w;
    u->x = x;
    u->dst = req->dst;
    u->tls = req->tls;
    u->passthrough = req->passthrough;
    if (idlen)
        memcpy(u->expect, req->expect_id, idlen);
    u->proto = proto ? proto : "h1";
    x->up_ops = &upst_ops;
    x->up = u;
}

unsigned upstream_pool_h2_count(const struct upstream_pool *p, unsigned *streams)
{
    unsigned n = 0, s = 0;
    for (const struct uph2 *c = p->h2; c; c = c->next) {
        n++;
        s += c->nstreams;
    }
    if (streams)
        *streams = s;
    return n;
}

void upstream_pool_free(struct upstream_pool *p)
{
    while (p->h2) {
        struct uph2 *c = p->h2;
        uph2_unlink(c);
        uph2_free(c, 0, HTTP_CAUSE_RESET, NULL);
    }
}
