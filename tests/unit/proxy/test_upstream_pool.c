/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/upstream_pool.c and the plain connect of proxy/conn.c
 * on loopback: a dial that completes, one refused by a closed port, a family
 * the pool cannot dial, and the counts the pool keeps. Then the pooled
 * HTTP/2 streams (h2c) on a real ae loop against an h2 server thread (the
 * adapter's server role on blocking sockets): requests share one
 * connection, a full connection (the peer's max concurrent streams) makes
 * the pool dial another, a GOAWAY retires one, a refused dial is answered
 * 502 refused, and a reset passes on to the downstream side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "ae.h"
#include "http_h2.h"
#include "http_msg.h"
#include "listen.h"
#include "proxy.h"
#include "upstream_pool.h"
#include "xalloc.h"

static struct upstream_req loopback(uint16_t port)
{
    struct upstream_req r;
    memset(&r, 0, sizeof r);
    struct sockaddr_in *a = (struct sockaddr_in *)&r.dst;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return r;
}

/* Waits for the dial's end as the loop would, then asks the conn. */
static int finish(struct conn *c)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
    assert_int_equal(poll(&pf, 1, 2000), 1);
    c->ready |= AE_WRITABLE;
    return conn_tcp_connected(c);
}

static void test_dial_completes(void **state)
{
    (void)state;
    struct upstream_pool p;
    upstream_pool_init(&p);
    int l = listen_port(AF_INET, 0, 0, 8);
    assert_true(l >= 0);
    struct upstream_req req = loopback(listen_bound_port(l));
    struct conn c = {.fd = -1};
    assert_int_equal(upstream_pool_acquire(&p, &req, &c), 0);
    assert_int_equal(c.state, CONN_CONNECTING);
    c.ready = 0;
    assert_int_equal(conn_tcp_connected(&c), -EAGAIN); /* no AE_WRITABLE seen yet */
    assert_int_equal(finish(&c), 0);
    assert_int_equal(c.state, CONN_OPEN);
    int s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    assert_int_equal(conn_write(&c, "hi", 2), 2);
    char b[2];
    assert_int_equal(read(s, b, 2), 2);
    upstream_pool_release(&p, &c, 1);
    assert_int_equal(c.fd, -1);
    assert_int_equal(c.state, CONN_CLOSED);
    assert_int_equal(read(s, b, 1), 0); /* released closes, for now */
    assert_int_equal(p.dials, 1);
    assert_int_equal(p.released, 1);
    close(s);
    close(l);
    upstream_pool_free(&p);
}

static void test_dial_refused(void **state)
{
    (void)state;
    struct upstream_pool p;
    upstream_pool_init(&p);
    int l = listen_port(AF_INET, 0, 0, 8);
    uint16_t port = listen_bound_port(l);
    close(l); /* nobody listens there now */
    struct upstream_req req = loopback(port);
    struct conn c = {.fd = -1};
    int r = upstream_pool_acquire(&p, &req, &c);
    if (r == 0)
        r = finish(&c);
    assert_int_equal(r, -ECONNREFUSED);
    assert_int_equal(c.state, CONN_FAILED);
    assert_int_equal(c.last_err, -ECONNREFUSED);
    upstream_pool_release(&p, &c, 0);

    struct upstream_req bad;
    memset(&bad, 0, sizeof bad);
    bad.dst.ss_family = AF_UNIX;
    struct conn d = {.fd = -1};
    assert_int_equal(upstream_pool_acquire(&p, &bad, &d), -EAFNOSUPPORT);
    assert_int_equal(d.fd, -1);
    assert_int_equal(p.dials, 1);
    assert_int_equal(p.dial_failures, 1);
    upstream_pool_free(&p);
}

/* ---- pooled HTTP/2 ---- */

#define SRV_CONNS 8

struct srv {                 /* an h2c server on its own thread */
    int lfd;
    unsigned max_streams;
    atomic_int hold;         /* answer nothing while set */
    atomic_int goaway;       /* drain every connection once set */
    atomic_int stop;
    atomic_int accepted;
    atomic_int max_open;     /* most streams open at once on one connection */
    pthread_t thread;
    struct {
        int fd;
        h2_conn *h;
        int drained;
    } c[SRV_CONNS];
    h2_stream *waiting[64];  /* ended requests not answered yet (hold) */
    int nwaiting;
    h2_conn *waiting_h[64];
};

static void srv_answer(h2_conn *h, h2_stream *st)
{
    const char *path = h2_stream_user(st);
    if (path && strcmp(path, "/rst") == 0) {
        struct h2_field f[] = {{":status", 7, "200", 3}};
        h2_submit_response(h, st, f, 1, 0);
        h2_submit_data(h, st, "cut", 3, 0);
        h2_reset_flushed(h, st, H2_INTERNAL_ERROR);
        return;
    }
    struct h2_field f[] = {{":status", 7, "200", 3}};
    h2_submit_response(h, st, f, 1, 0);
    h2_submit_data(h, st, "ok", 2, 1);
}

static void srv_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n, int end)
{
    (void)end;
    struct srv *sv = ctx;
    (void)sv;
    const struct h2_field *p = h2_field_find(f, n, ":path");
    if (kind == H2_BLOCK_HEAD && p)
        h2_stream_set_user(st, xstrndup(p->value, p->valuelen));
}

static void srv_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    (void)ctx;
    (void)st;
    (void)p;
    (void)len;
}

static h2_conn *srv_cur; /* the connection whose events run (server thread only) */

static void srv_end(void *ctx, h2_stream *st)
{
    struct srv *sv = ctx;
    if ((int)h2_open_streams(srv_cur) > atomic_load(&sv->max_open))
        atomic_store(&sv->max_open, (int)h2_open_streams(srv_cur));
    if (atomic_load(&sv->hold) && sv->nwaiting < 64) {
        sv->waiting_h[sv->nwaiting] = srv_cur;
        sv->waiting[sv->nwaiting++] = st;
        return;
    }
    srv_answer(srv_cur, st);
}

static void srv_close(void *ctx, h2_stream *st, uint32_t code)
{
    struct srv *sv = ctx;
    (void)code;
    for (int i = 0; i < sv->nwaiting; i++)
        if (sv->waiting[i] == st)
            sv->waiting[i] = NULL;
    free(h2_stream_user(st));
}

static void srv_nop_w(void *ctx, h2_stream *st)
{
    (void)ctx;
    (void)st;
}

static void srv_nop_g(void *ctx, int32_t last, uint32_t code)
{
    (void)ctx;
    (void)last;
    (void)code;
}

static const struct h2_events srv_events = {srv_headers, srv_data, srv_end, srv_close, srv_nop_w, srv_nop_g};

static void srv_flush(int fd, h2_conn *h)
{
    const uint8_t *p;
    size_t n;
    while (h2_output(h, &p, &n) == 0 && n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        h2_sent(h, (size_t)w);
    }
}

static void *srv_main(void *arg)
{
    struct srv *sv = arg;
    struct h2_limits lim;
    h2_limits_default(&lim);
    lim.max_streams = sv->max_streams;
    while (!atomic_load(&sv->stop)) {
        struct pollfd pf[SRV_CONNS + 1];
        pf[0] = (struct pollfd){.fd = sv->lfd, .events = POLLIN};
        for (int i = 0; i < SRV_CONNS; i++)
            pf[i + 1] = (struct pollfd){.fd = sv->c[i].fd, .events = POLLIN};
        poll(pf, SRV_CONNS + 1, 5);
        if (pf[0].revents & POLLIN) {
            int fd = accept(sv->lfd, NULL, NULL);
            for (int i = 0; i < SRV_CONNS && fd >= 0; i++)
                if (sv->c[i].fd < 0) {
                    sv->c[i].fd = fd;
                    sv->c[i].h = h2_new(H2_SERVER, &lim, &srv_events, sv);
                    sv->c[i].drained = 0;
                    srv_flush(fd, sv->c[i].h);
                    atomic_fetch_add(&sv->accepted, 1);
                    fd = -1;
                }
            if (fd >= 0)
                close(fd);
        }
        for (int i = 0; i < SRV_CONNS; i++) {
            if (sv->c[i].fd < 0)
                continue;
            srv_cur = sv->c[i].h;
            if (pf[i + 1].revents & (POLLIN | POLLHUP)) {
                uint8_t b[16384];
                ssize_t r = recv(sv->c[i].fd, b, sizeof b, 0);
                if (r <= 0 || h2_input(sv->c[i].h, b, (size_t)r) < 0) {
                    h2_free(sv->c[i].h);
                    close(sv->c[i].fd);
                    sv->c[i].fd = -1;
                    continue;
                }
            }
            if (atomic_load(&sv->goaway) && !sv->c[i].drained) {
                sv->c[i].drained = 1;
                h2_drain(sv->c[i].h);
            }
            srv_flush(sv->c[i].fd, sv->c[i].h);
        }
        if (!atomic_load(&sv->hold) && sv->nwaiting) {
            for (int i = 0; i < sv->nwaiting; i++)
                if (sv->waiting[i]) {
                    srv_answer(sv->waiting_h[i], sv->waiting[i]);
                    for (int k = 0; k < SRV_CONNS; k++)
                        if (sv->c[k].h == sv->waiting_h[i])
                            srv_flush(sv->c[k].fd, sv->c[k].h);
                }
            sv->nwaiting = 0;
        }
    }
    for (int i = 0; i < SRV_CONNS; i++)
        if (sv->c[i].fd >= 0) {
            h2_free(sv->c[i].h);
            close(sv->c[i].fd);
        }
    return NULL;
}

static void srv_start(struct srv *sv, unsigned max_streams)
{
    memset(sv, 0, sizeof *sv);
    sv->max_streams = max_streams;
    for (int i = 0; i < SRV_CONNS; i++)
        sv->c[i].fd = -1;
    sv->lfd = listen_port(AF_INET, 0, 0, 16);
    assert_true(sv->lfd >= 0);
    assert_int_equal(pthread_create(&sv->thread, NULL, srv_main, sv), 0);
}

static void srv_stop(struct srv *sv)
{
    atomic_store(&sv->stop, 1);
    pthread_join(sv->thread, NULL);
    close(sv->lfd);
}

/* The worker the pool runs on: a loop, a scratch buffer, a snapshot. */
static struct proxy tpx;
static struct worker tw;
static struct cfgsnap tsnap;

static void worker_up(void)
{
    memset(&tpx, 0, sizeof tpx);
    memset(&tw, 0, sizeof tw);
    memset(&tsnap, 0, sizeof tsnap);
    pm_init(&tpx.metrics);
    tsnap.cfg.connect_timeout_ms = 2000;
    tsnap.cfg.handshake_timeout_ms = 2000;
    tw.px = &tpx;
    tw.loop = ae_loop_new(1024);
    assert_non_null(tw.loop);
    tw.scratch = xmalloc(PROXY_SCRATCH);
    tw.snap = &tsnap;
    upstream_pool_init(&tw.pool);
}

static void worker_down(void)
{
    upstream_pool_free(&tw.pool);
    ae_loop_free(tw.loop);
    free(tw.scratch);
    pm_destroy(&tpx.metrics);
}

/* One request as a downstream side would make it, and what came back. */
struct treq {
    struct http_exchange x;
    int status, ended, aborted, reply;
    char body[64];
    size_t blen;
    enum http_cause cause;
};

static enum http_rc t_head(struct http_exchange *x, const struct http_head *h)
{
    struct treq *t = x->down;
    t->status = h->status;
    if (h->end_stream)
        t->ended = 1;
    return HTTP_OK;
}

static enum http_rc t_data(struct http_exchange *x, const char *p, size_t len, int end)
{
    struct treq *t = x->down;
    if (len && t->blen + len < sizeof t->body) {
        memcpy(t->body + t->blen, p, len);
        t->blen += len;
    }
    if (end)
        t->ended = 1;
    return HTTP_OK;
}

static enum http_rc t_trailers(struct http_exchange *x, const struct http_head *h)
{
    (void)h;
    ((struct treq *)x->down)->ended = 1;
    return HTTP_OK;
}

static void t_abort(struct http_exchange *x, enum http_cause cause)
{
    struct treq *t = x->down;
    t->aborted = 1;
    t->cause = cause;
}

static const struct http_side_ops t_ops = {"test", t_head, t_data, t_trailers, NULL, t_abort, NULL};

static void treq_send(struct treq *t, uint16_t port, const char *path)
{
    memset(t, 0, sizeof *t);
    struct upstream_req req = loopback(port);
    t->x.w = &tw;
    t->x.cfg = &tsnap.cfg;
    t->x.dir = PM_OUTBOUND;
    t->x.down_ops = &t_ops;
    t->x.down = t;
    t->x.peer = "";
    t->x.dst = "test";
    upstream_pool_h2_attach(&tw, &req, "h2", &t->x);
    http_exchange_begin(&t->x);
    struct http_head h = {.method = {"GET", 3}, .scheme = {"http", 4}, .authority = {"svc", 3},
                          .path = {path, strlen(path)}, .content_length = -1, .end_stream = 1};
    http_exchange_request_head(&t->x, &h);
}

static int (*run_cond)(void);

static long run_check(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    int *expired = data;
    if (run_cond() || *expired)
        ae_stop(loop);
    return 5;
}

static long run_expire(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    *(int *)data = 1;
    return -1;
}

/* Runs the worker's loop until cond() holds (or 3 s pass): cond(). */
static int run_until(int (*cond)(void))
{
    int expired = 0;
    run_cond = cond;
    long long a = ae_timer_add(tw.loop, 5, run_check, &expired);
    long long b = ae_timer_add(tw.loop, 3000, run_expire, &expired);
    ae_run(tw.loop);
    ae_timer_del(tw.loop, a);
    ae_timer_del(tw.loop, b);
    return cond();
}

static struct treq reqs[8];
static int nreqs_wanted;
static struct srv sv;

static int all_ended(void)
{
    for (int i = 0; i < nreqs_wanted; i++)
        if (!reqs[i].ended && !reqs[i].aborted && !reqs[i].x.finished)
            return 0;
    return 1;
}

static int three_at_server(void)
{
    unsigned streams;
    upstream_pool_h2_count(&tw.pool, &streams);
    return sv.nwaiting == 3;
}

static int pool_empty(void)
{
    return upstream_pool_h2_count(&tw.pool, NULL) == 0;
}

static void release_all(void)
{
    for (int i = 0; i < nreqs_wanted; i++)
        http_exchange_release(&reqs[i].x);
}

static void test_h2_streams_share_then_spill(void **state)
{
    (void)state;
    worker_up();
    srv_start(&sv, 2);
    uint16_t port = listen_bound_port(sv.lfd);
    /* One request: a connection, whose SETTINGS (2 streams) the pool learns. */
    nreqs_wanted = 1;
    treq_send(&reqs[0], port, "/first");
    assert_true(run_until(all_ended));
    assert_int_equal(reqs[0].status, 200);
    assert_memory_equal(reqs[0].body, "ok", 2);
    release_all();
    assert_int_equal(tw.pool.h2_conns, 1);
    /* Three at once against a limit of two: two on it, a second connection. */
    atomic_store(&sv.hold, 1);
    nreqs_wanted = 3;
    for (int i = 0; i < 3; i++)
        treq_send(&reqs[i], port, "/held");
    assert_true(run_until(three_at_server));
    unsigned streams;
    assert_int_equal(upstream_pool_h2_count(&tw.pool, &streams), 2);
    assert_int_equal(streams, 3);
    assert_int_equal(tw.pool.h2_conns, 2);
    assert_int_equal(atomic_load(&sv.accepted), 2);
    assert_true(atomic_load(&sv.max_open) <= 2);
    atomic_store(&sv.hold, 0);
    assert_true(run_until(all_ended));
    for (int i = 0; i < 3; i++)
        assert_int_equal(reqs[i].status, 200);
    release_all();
    assert_int_equal(tw.pool.h2_streams, 4);
    /* A GOAWAY retires both: the next request dials a third. */
    atomic_store(&sv.goaway, 1);
    assert_true(run_until(pool_empty)); /* idle and told to go: closed */
    nreqs_wanted = 1;
    treq_send(&reqs[0], port, "/after-goaway");
    run_until(all_ended);
    release_all();
    assert_int_equal(reqs[0].status, 200);
    assert_int_equal(tw.pool.h2_conns, 3);
    srv_stop(&sv);
    worker_down();
}

static void test_h2_refused_and_reset(void **state)
{
    (void)state;
    worker_up();
    int l = listen_port(AF_INET, 0, 0, 8);
    uint16_t closed = listen_bound_port(l);
    close(l);
    nreqs_wanted = 1;
    treq_send(&reqs[0], closed, "/nobody");
    assert_true(run_until(all_ended));
    assert_int_equal(reqs[0].status, 502); /* the local reply: no response head came */
    assert_int_equal(reqs[0].x.cause, HTTP_CAUSE_REFUSED);
    assert_non_null(strstr(reqs[0].body, "refused"));
    release_all();
    assert_int_equal(upstream_pool_h2_count(&tw.pool, NULL), 0);

    srv_start(&sv, 100);
    treq_send(&reqs[0], listen_bound_port(sv.lfd), "/rst");
    assert_true(run_until(all_ended));
    assert_int_equal(reqs[0].status, 200); /* the head and the body before the reset came through */
    assert_memory_equal(reqs[0].body, "cut", 3);
    assert_int_equal(reqs[0].aborted, 1);
    assert_int_equal(reqs[0].cause, HTTP_CAUSE_RESET);
    release_all();
    srv_stop(&sv);
    worker_down();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_completes),
        cmocka_unit_test(test_dial_refused),
        cmocka_unit_test(test_h2_streams_share_then_spill),
        cmocka_unit_test(test_h2_refused_and_reset),
    };
    return cmocka_run_group_tests_name("proxy/upstream_pool", tests, NULL, NULL);
}
