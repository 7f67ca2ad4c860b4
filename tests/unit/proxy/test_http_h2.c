/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/http_h2.c: a client and a server session wired back
 * to back in memory (each one's output is the other's input), with small
 * consumers that record what they heard. Many streams, flow control with a
 * small window and the send queue's backpressure, trailers, RST_STREAM both
 * ways, the graceful GOAWAY drain with streams in flight, and the limits at
 * and one past: concurrent streams, header list size, the stream window.
 * With WEFT_H2_SEED_DIR set, the client's first flight is written there as
 * a seed for fuzz/fuzz_proxy_h2.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_h2.h"

#define MAXS 1200

struct rec {                 /* what one stream's consumer heard */
    int used;
    h2_stream *st;
    int32_t id;
    char head_status[4];
    char path[64];
    int heads, infos, trailers, ended, closed, writable, head_end;
    size_t head_fields, trailer_fields; /* in the last block of each kind */
    char pad_end;                       /* the last byte of x-pad, 0 without one */
    uint32_t close_code;
    char grpc_status[8];
    unsigned char *body;
    size_t blen, bcap, consumed;
};

struct side {
    const char *name;
    h2_conn *h;
    struct rec recs[MAXS];
    int nrecs;
    int auto_consume;        /* give the window back at once */
    int auto_respond;        /* server: answer each request at its end with "r:<path>" */
    int respond_trailers;    /* ... and grpc-status trailers */
    int32_t goaway_last;
    uint32_t goaway_code;
    int goaways;
    unsigned max_open;
};

static struct side cli, srv;

static struct rec *rec_of(struct side *sd, h2_stream *st)
{
    struct rec *r = h2_stream_user(st);
    if (r)
        return r;
    assert_true(sd->nrecs < MAXS);
    r = &sd->recs[sd->nrecs++];
    r->used = 1;
    r->st = st;
    r->id = h2_stream_id(st);
    h2_stream_set_user(st, r);
    return r;
}

static void copy_field(char *dst, size_t cap, const struct h2_field *f)
{
    size_t n = f->valuelen < cap - 1 ? f->valuelen : cap - 1;
    memcpy(dst, f->value, n);
    dst[n] = 0;
}

static void ev_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n,
                       int end)
{
    struct side *sd = ctx;
    struct rec *r = rec_of(sd, st);
    const struct h2_field *x;
    r->head_end += end;
    if (kind == H2_BLOCK_INFO) {
        r->infos++;
        return;
    }
    if (kind == H2_BLOCK_TRAILERS) {
        r->trailers++;
        r->trailer_fields = n;
    } else {
        r->heads++;
        r->head_fields = n;
    }
    r->pad_end = (x = h2_field_find(f, n, "x-pad")) && x->valuelen ? x->value[x->valuelen - 1] : 0;
    if ((x = h2_field_find(f, n, ":status")))
        copy_field(r->head_status, sizeof r->head_status, x);
    if ((x = h2_field_find(f, n, ":path")))
        copy_field(r->path, sizeof r->path, x);
    if ((x = h2_field_find(f, n, "grpc-status")))
        copy_field(r->grpc_status, sizeof r->grpc_status, x);
    if (h2_open_streams(sd->h) > sd->max_open)
        sd->max_open = h2_open_streams(sd->h);
}

static void ev_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    struct side *sd = ctx;
    struct rec *r = rec_of(sd, st);
    if (r->blen + len > r->bcap) {
        r->bcap = (r->blen + len) * 2;
        r->body = realloc(r->body, r->bcap);
        assert_non_null(r->body);
    }
    memcpy(r->body + r->blen, p, len);
    r->blen += len;
    if (sd->auto_consume) {
        h2_consume(sd->h, st, len);
        r->consumed += len;
    }
}

static void ev_end(void *ctx, h2_stream *st)
{
    struct side *sd = ctx;
    struct rec *r = rec_of(sd, st);
    r->ended++;
    if (sd->auto_respond) {
        char body[80];
        int n = snprintf(body, sizeof body, "r:%s", r->path);
        struct h2_field f[] = {{":status", 7, "200", 3}, {"content-type", 12, "text/plain", 10}};
        assert_int_equal(h2_submit_response(sd->h, st, f, 2, 0), 0);
        assert_int_equal(h2_submit_data(sd->h, st, body, (size_t)n, !sd->respond_trailers), 0);
        if (sd->respond_trailers) {
            struct h2_field t[] = {{"grpc-status", 11, "0", 1}, {"grpc-message", 12, "ok", 2}};
            assert_int_equal(h2_submit_trailers(sd->h, st, t, 2), 0);
        }
    }
}

static void ev_close(void *ctx, h2_stream *st, uint32_t code)
{
    struct side *sd = ctx;
    struct rec *r = rec_of(sd, st);
    r->closed++;
    r->close_code = code;
    r->st = NULL;
}

static void ev_writable(void *ctx, h2_stream *st)
{
    rec_of(ctx, st)->writable++;
}

static void ev_goaway(void *ctx, int32_t last, uint32_t code)
{
    struct side *sd = ctx;
    sd->goaways++;
    sd->goaway_last = last;
    sd->goaway_code = code;
}

static const struct h2_events events = {ev_headers, ev_data, ev_end, ev_close, ev_writable, ev_goaway};

static void pair(const struct h2_limits *cl, const struct h2_limits *sl)
{
    memset(&cli, 0, sizeof cli);
    memset(&srv, 0, sizeof srv);
    cli.name = "client";
    srv.name = "server";
    cli.auto_consume = srv.auto_consume = 1;
    srv.auto_respond = 1;
    cli.h = h2_new(H2_CLIENT, cl, &events, &cli);
    srv.h = h2_new(H2_SERVER, sl, &events, &srv);
}

static void unpair(void)
{
    h2_free(cli.h);
    h2_free(srv.h);
    for (int i = 0; i < MAXS; i++) {
        free(cli.recs[i].body);
        free(srv.recs[i].body);
    }
}

/* Gives back the window of what r received so far. */
static void consume_all(struct side *sd, struct rec *r)
{
    h2_consume(sd->h, r->st, r->blen - r->consumed);
    r->consumed = r->blen;
}

/* Moves a's output into b: the bytes moved, or -1 on a fatal error. */
static long move(struct side *a, struct side *b)
{
    long total = 0;
    for (;;) {
        const uint8_t *p;
        size_t n;
        if (h2_output(a->h, &p, &n) < 0)
            return -1;
        if (n == 0)
            return total;
        int r = h2_input(b->h, p, n);
        h2_sent(a->h, n);
        if (r < 0)
            return -1;
        total += (long)n;
    }
}

/* Until neither side has anything to send (bounded). */
static void pump(void)
{
    for (int i = 0; i < 10000; i++) {
        long a = move(&cli, &srv), b = move(&srv, &cli);
        assert_true(a >= 0 && b >= 0);
        if (a == 0 && b == 0)
            return;
    }
    fail_msg("pump did not settle");
}

static h2_stream *get(const char *path, int end, void *user)
{
    struct h2_field f[] = {
        {":method", 7, end ? "GET" : "POST", end ? 3 : 4},
        {":scheme", 7, "http", 4},
        {":authority", 10, "svc", 3},
        {":path", 5, path, strlen(path)},
    };
    int err;
    h2_stream *st = h2_submit_request(cli.h, f, 4, end, user, &err);
    if (st)
        rec_of(&cli, st);
    return st;
}

/* The client's first flight, as a fuzz seed, when asked for. */
static void seed(const char *name)
{
    const char *dir = getenv("WEFT_H2_SEED_DIR");
    if (!dir)
        return;
    const uint8_t *p;
    size_t n;
    assert_int_equal(h2_output(cli.h, &p, &n), 0);
    char f[512];
    snprintf(f, sizeof f, "%s/%s", dir, name);
    FILE *fp = fopen(f, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite("\x03", 1, 1, fp), 1); /* the fuzzer's chunk size byte */
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static struct rec *find(struct side *sd, const char *path)
{
    for (int i = 0; i < sd->nrecs; i++)
        if (strcmp(sd->recs[i].path, path) == 0)
            return &sd->recs[i];
    return NULL;
}

/* One connection holds the block being received, for every stream in
 * turn: heads of different sizes back to back (one past the memory it
 * keeps between blocks), answered with trailers in between, each arrive
 * with their own fields only. */
static void test_blocks_in_turn(void **state)
{
    (void)state;
    pair(NULL, NULL);
    srv.respond_trailers = 1;
    pump();
    static char pad[6000];
    const size_t pads[] = {3000, 0, 5000, 0, 10};
    const char *paths[] = {"/a", "/b", "/c", "/d", "/e"};
    for (size_t i = 0; i < 5; i++) {
        memset(pad, 'a' + (int)i, pads[i]);
        struct h2_field f[] = {
            {":method", 7, "GET", 3}, {":scheme", 7, "http", 4}, {":authority", 10, "svc", 3},
            {":path", 5, paths[i], 2}, {"x-pad", 5, pad, pads[i]},
        };
        int err;
        h2_stream *st = h2_submit_request(cli.h, f, pads[i] ? 5 : 4, 1, NULL, &err);
        assert_non_null(st);
        rec_of(&cli, st);
    }
    pump();
    for (size_t i = 0; i < 5; i++) {
        struct rec *r = find(&srv, paths[i]);
        assert_non_null(r);
        assert_int_equal(r->head_fields, pads[i] ? 5 : 4);
        assert_int_equal(r->pad_end, pads[i] ? 'a' + (int)i : 0);
        struct rec *c = &cli.recs[i];
        assert_string_equal(c->head_status, "200");
        assert_int_equal(c->head_fields, 2);
        assert_int_equal(c->trailer_fields, 2);
        assert_string_equal(c->grpc_status, "0");
    }
    assert_int_equal(h2_get_stats(srv.h)->too_large, 0);
    unpair();
}

static void test_many_streams(void **state)
{
    (void)state;
    pair(NULL, NULL);
    char path[32];
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "/s/%d", i);
        assert_non_null(get(path, 1, NULL));
    }
    seed("many-requests"); /* preface, SETTINGS, WINDOW_UPDATE, 100 HEADERS */
    pump();
    assert_int_equal(cli.nrecs, 300);
    for (int i = 0; i < 300; i++) {
        struct rec *r = &cli.recs[i];
        char want[40];
        snprintf(want, sizeof want, "r:/s/%d", i);
        assert_string_equal(r->head_status, "200");
        assert_int_equal(r->blen, strlen(want));
        assert_memory_equal(r->body, want, r->blen);
        assert_int_equal(r->ended, 1);
        assert_int_equal(r->closed, 1);
        assert_int_equal(r->close_code, H2_NO_ERROR);
    }
    /* The client kept to the server's 100 concurrent streams. */
    assert_true(srv.max_open <= H2_DEFAULT_MAX_STREAMS);
    assert_int_equal(h2_get_stats(srv.h)->streams, 300);
    assert_int_equal(h2_get_stats(srv.h)->refused, 0);
    assert_int_equal(h2_open_streams(cli.h), 0);
    assert_int_equal(h2_open_streams(srv.h), 0);
    unpair();
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 31u + seed) & 0xff);
}

/* The server's consumer gives no window back: the client's body stops at
 * exactly one window (at the limit: W arrive; one past: not one byte more)
 * until it consumes, then flows on. The client's send queue refuses past
 * its maximum and says when it drained. */
static void test_flow_control(void **state)
{
    (void)state;
    struct h2_limits sl;
    h2_limits_default(&sl);
    sl.window = 4096;
    pair(NULL, &sl);
    srv.auto_consume = 0;
    srv.auto_respond = 0;
    static unsigned char body[3 * H2_STREAM_OUT_MAX / 2];
    fill(body, sizeof body, 7);
    pump(); /* SETTINGS both ways first, so the client knows the window */

    h2_stream *a = get("/exact", 0, NULL);
    assert_non_null(a);
    assert_int_equal(h2_submit_data(cli.h, a, body, 4096, 0), 0);
    pump();
    struct rec *ra = find(&srv, "/exact");
    assert_non_null(ra);
    assert_int_equal(ra->blen, 4096); /* the whole window */
    assert_int_equal(h2_submit_data(cli.h, a, body + 4096, 1, 1), 0);
    pump();
    assert_int_equal(ra->blen, 4096); /* one past: held by the client */
    assert_int_equal(h2_stream_queued(a), 1);
    assert_int_equal(ra->ended, 0);
    consume_all(&srv, ra);
    pump();
    assert_int_equal(ra->blen, 4097);
    assert_int_equal(ra->ended, 1);
    assert_memory_equal(ra->body, body, 4097);

    /* A large body: queue refuses past H2_STREAM_OUT_MAX, says writable. */
    h2_stream *b = get("/big", 0, NULL);
    assert_non_null(b);
    assert_int_equal(h2_submit_data(cli.h, b, body, H2_STREAM_OUT_MAX, 0), 0);
    assert_int_equal(h2_submit_data(cli.h, b, body, 1, 0), -ENOBUFS);
    pump();
    struct rec *rb = find(&srv, "/big");
    struct rec *cb = h2_stream_user(b);
    assert_int_equal(rb->blen, 4096);
    assert_int_equal(cb->writable, 0);
    size_t sent = H2_STREAM_OUT_MAX;
    int resumed = 0;
    for (int i = 0; i < 1000 && rb->blen < sizeof body; i++) {
        consume_all(&srv, rb);
        pump();
        if (cb->writable) { /* a producer stops at the high mark and resumes when told */
            resumed++;
            cb->writable = 0;
        }
        while (resumed && sent < sizeof body && h2_stream_queued(b) < H2_STREAM_OUT_HIGH) {
            size_t n = sizeof body - sent;
            if (n > 8192)
                n = 8192;
            assert_int_equal(h2_submit_data(cli.h, b, body + sent, n, sent + n == sizeof body), 0);
            sent += n;
        }
    }
    assert_true(resumed >= 1);
    assert_int_equal(rb->blen, sizeof body);
    assert_memory_equal(rb->body, body, sizeof body);
    assert_int_equal(rb->ended, 1);
    assert_true(h2_stream_queued(b) == 0);
    unpair();
}

/* A stalled stream holds its own window only: another stream on the same
 * connection still flows. */
static void test_stalled_stream_does_not_block(void **state)
{
    (void)state;
    struct h2_limits sl;
    h2_limits_default(&sl);
    sl.window = 16384;
    pair(NULL, &sl);
    srv.auto_consume = 0;
    srv.auto_respond = 0;
    static unsigned char body[64 * 1024];
    fill(body, sizeof body, 3);
    pump();
    h2_stream *slow = get("/slow", 0, NULL);
    assert_int_equal(h2_submit_data(cli.h, slow, body, sizeof body, 1), 0);
    pump();
    struct rec *rs = find(&srv, "/slow");
    assert_int_equal(rs->blen, 16384);
    h2_stream *fast = get("/fast", 0, NULL);
    for (size_t off = 0; off < sizeof body; off += 8192) {
        assert_int_equal(h2_submit_data(cli.h, fast, body + off, 8192, off + 8192 == sizeof body), 0);
        pump();
        consume_all(&srv, find(&srv, "/fast"));
    }
    pump();
    struct rec *rf = find(&srv, "/fast");
    assert_int_equal(rf->blen, sizeof body);
    assert_int_equal(rf->ended, 1);
    assert_int_equal(rs->blen, 16384);
    unpair();
}

static void test_trailers(void **state)
{
    (void)state;
    pair(NULL, NULL);
    srv.respond_trailers = 1;
    get("/grpc.Svc/Call", 1, NULL);
    pump();
    struct rec *r = find(&cli, "");
    assert_non_null(r);
    assert_string_equal(r->head_status, "200");
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->trailers, 1);
    assert_string_equal(r->grpc_status, "0");
    assert_int_equal(r->blen, strlen("r:/grpc.Svc/Call"));
    assert_int_equal(r->ended, 1);
    assert_int_equal(r->close_code, H2_NO_ERROR);

    /* A trailers-only response (gRPC errors): one head with END_STREAM;
     * and request trailers from the client. */
    srv.auto_respond = 0;
    unpair();
    pair(NULL, NULL);
    srv.auto_respond = 0;
    h2_stream *st = get("/t", 0, NULL);
    assert_int_equal(h2_submit_data(cli.h, st, "abc", 3, 0), 0);
    struct h2_field rt[] = {{"x-sum", 5, "6", 1}};
    assert_int_equal(h2_submit_trailers(cli.h, st, rt, 1), 0);
    seed("post-with-trailers");
    assert_int_equal(h2_submit_data(cli.h, st, "x", 1, 0), -EPIPE); /* ended by the trailers */
    pump();
    struct rec *sr = find(&srv, "/t");
    assert_int_equal(sr->trailers, 1);
    assert_int_equal(sr->blen, 3);
    assert_int_equal(sr->ended, 1);
    struct h2_field only[] = {{":status", 7, "200", 3}, {"grpc-status", 11, "14", 2}};
    assert_int_equal(h2_submit_response(srv.h, sr->st, only, 2, 1), 0);
    pump();
    struct rec *c2 = NULL;
    for (int i = 0; i < cli.nrecs; i++)
        if (cli.recs[i].id == sr->id)
            c2 = &cli.recs[i];
    assert_non_null(c2);
    assert_string_equal(c2->grpc_status, "14");
    assert_int_equal(c2->head_end, 1); /* trailers-only: the head carried END_STREAM */
    assert_int_equal(c2->trailers, 0);
    assert_int_equal(c2->ended, 1);
    unpair();
}

static void test_reset(void **state)
{
    (void)state;
    pair(NULL, NULL);
    srv.auto_respond = 0;
    h2_stream *a = get("/a", 1, NULL);
    get("/b", 1, NULL);
    pump();
    struct rec *sa = find(&srv, "/a"), *sb = find(&srv, "/b");
    struct h2_field f[] = {{":status", 7, "200", 3}};
    assert_int_equal(h2_submit_response(srv.h, sa->st, f, 1, 0), 0);
    assert_int_equal(h2_submit_response(srv.h, sb->st, f, 1, 0), 0);
    assert_int_equal(h2_submit_data(srv.h, sa->st, "part", 4, 0), 0);
    pump();
    /* The client gives up on /a: the server hears CANCEL, /b goes on. */
    assert_int_equal(h2_reset(cli.h, a, H2_CANCEL), 0);
    pump();
    assert_int_equal(sa->closed, 1);
    assert_int_equal(sa->close_code, H2_CANCEL);
    assert_null(sa->st);
    assert_int_equal(h2_submit_data(srv.h, sb->st, "done", 4, 1), 0);
    pump();
    struct rec *cb = NULL, *ca = NULL;
    for (int i = 0; i < cli.nrecs; i++) {
        if (cli.recs[i].id == sb->id)
            cb = &cli.recs[i];
        if (cli.recs[i].id == sa->id)
            ca = &cli.recs[i];
    }
    assert_int_equal(cb->blen, 4);
    assert_int_equal(cb->close_code, H2_NO_ERROR);
    assert_int_equal(ca->close_code, H2_CANCEL);
    assert_int_equal(h2_get_stats(cli.h)->resets_sent, 1);
    assert_int_equal(h2_get_stats(srv.h)->resets_recv, 1);

    /* The server resets one: the client hears its code. */
    get("/c", 1, NULL);
    pump();
    struct rec *sc = find(&srv, "/c");
    assert_int_equal(h2_reset(srv.h, sc->st, H2_INTERNAL_ERROR), 0);
    pump();
    struct rec *cc = NULL;
    for (int i = 0; i < cli.nrecs; i++)
        if (cli.recs[i].id == sc->id)
            cc = &cli.recs[i];
    assert_int_equal(cc->closed, 1);
    assert_int_equal(cc->close_code, H2_INTERNAL_ERROR);
    assert_int_equal(h2_open_streams(cli.h), 0);

    /* A reset passed on from an upstream: what was queued before it goes
     * out first (an immediate reset would drop the head and the body). */
    get("/d", 1, NULL);
    pump();
    struct rec *sd = find(&srv, "/d");
    assert_int_equal(h2_submit_response(srv.h, sd->st, f, 1, 0), 0);
    assert_int_equal(h2_submit_data(srv.h, sd->st, "before", 6, 0), 0);
    assert_int_equal(h2_reset_flushed(srv.h, sd->st, H2_INTERNAL_ERROR), 0);
    assert_int_equal(h2_submit_data(srv.h, sd->st, "x", 1, 0), -EPIPE);
    pump();
    struct rec *cd = NULL;
    for (int i = 0; i < cli.nrecs; i++)
        if (cli.recs[i].id == sd->id)
            cd = &cli.recs[i];
    assert_string_equal(cd->head_status, "200");
    assert_int_equal(cd->blen, 6);
    assert_memory_equal(cd->body, "before", 6);
    assert_int_equal(cd->ended, 0);
    assert_int_equal(cd->close_code, H2_INTERNAL_ERROR);
    /* ... and with only the head queued. */
    get("/e", 1, NULL);
    pump();
    struct rec *se = find(&srv, "/e");
    assert_int_equal(h2_submit_response(srv.h, se->st, f, 1, 0), 0);
    assert_int_equal(h2_reset_flushed(srv.h, se->st, H2_CANCEL), 0);
    pump();
    struct rec *ce = NULL;
    for (int i = 0; i < cli.nrecs; i++)
        if (cli.recs[i].id == se->id)
            ce = &cli.recs[i];
    assert_string_equal(ce->head_status, "200");
    assert_int_equal(ce->close_code, H2_CANCEL);
    unpair();
}

/* The server drains with two streams in flight and a third request on its
 * way (sent before the client saw the notice): all three finish, the final
 * GOAWAY names the last one, new requests are refused, both sides end. */
static void test_goaway_drain(void **state)
{
    (void)state;
    pair(NULL, NULL);
    srv.auto_respond = 0;
    get("/1", 1, NULL);
    get("/2", 1, NULL);
    pump();
    h2_drain(srv.h);
    get("/3", 1, NULL);
    assert_true(move(&cli, &srv) > 0); /* /3 reaches the server before the notice reaches the client */
    assert_int_equal(h2_done(srv.h), 0);
    pump();
    assert_int_equal(cli.goaways, 2); /* the notice, then the final one */
    assert_int_equal(cli.goaway_code, H2_NO_ERROR);
    struct rec *s3 = find(&srv, "/3");
    assert_non_null(s3);
    assert_int_equal(cli.goaway_last, s3->id);
    assert_false(h2_can_open(cli.h));
    int err;
    struct h2_field f[] = {{":method", 7, "GET", 3}, {":scheme", 7, "http", 4}, {":path", 5, "/4", 2}};
    assert_null(h2_submit_request(cli.h, f, 3, 1, NULL, &err));
    assert_int_equal(err, -EPIPE);
    assert_int_equal(h2_done(srv.h), 0); /* three streams in flight */
    struct h2_field ok[] = {{":status", 7, "204", 3}};
    const char *paths[] = {"/1", "/2", "/3"};
    for (int i = 0; i < 3; i++) {
        struct rec *r = find(&srv, paths[i]);
        assert_int_equal(h2_submit_response(srv.h, r->st, ok, 1, 1), 0);
        pump();
    }
    for (int i = 0; i < cli.nrecs; i++) {
        assert_string_equal(cli.recs[i].head_status, "204");
        assert_int_equal(cli.recs[i].close_code, H2_NO_ERROR);
    }
    assert_int_equal(cli.nrecs, 3);
    assert_true(h2_done(srv.h));
    assert_true(h2_done(cli.h));
    unpair();
}

/* A GOAWAY that arrives while a request is queued but not sent: the
 * request closes as REFUSED_STREAM (safe to retry elsewhere). */
static void test_goaway_refuses_queued(void **state)
{
    (void)state;
    struct h2_limits sl;
    h2_limits_default(&sl);
    sl.max_streams = 1;
    pair(NULL, &sl);
    srv.auto_respond = 0;
    pump();
    get("/a", 1, NULL);
    h2_stream *b = get("/b", 1, NULL); /* waits: one stream at a time */
    struct rec *cb = h2_stream_user(b);
    pump();
    assert_int_equal(h2_open_streams(srv.h), 1);
    h2_terminate(srv.h, H2_NO_ERROR);
    pump();
    assert_int_equal(cb->closed, 1);
    assert_int_equal(cb->close_code, H2_REFUSED_STREAM);
    assert_int_equal(h2_open_streams(cli.h), 1); /* /a, processed: ends with the connection */
    assert_false(h2_can_open(cli.h));
    unpair();
}

/* Max concurrent streams N = 4: four requests sent before the client saw
 * the SETTINGS are served, the fifth is refused with REFUSED_STREAM; a
 * client that knows the limit queues the fifth and all five finish. */
static void test_max_streams(void **state)
{
    (void)state;
    struct h2_limits sl;
    h2_limits_default(&sl);
    sl.max_streams = 4;
    pair(NULL, &sl);
    char path[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "/%d", i);
        get(path, 1, NULL);
    }
    pump();
    int ok = 0, refused = 0;
    for (int i = 0; i < cli.nrecs; i++) {
        if (cli.recs[i].close_code == H2_REFUSED_STREAM)
            refused++;
        else if (strcmp(cli.recs[i].head_status, "200") == 0)
            ok++;
    }
    assert_int_equal(ok, 4);
    assert_int_equal(refused, 1);
    assert_int_equal(h2_get_stats(srv.h)->refused, 1);
    assert_int_equal(h2_peer_max_streams(cli.h), 4);
    unpair();

    pair(NULL, &sl);
    srv.auto_respond = 0;
    pump();
    for (int i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "/%d", i);
        get(path, 1, NULL);
        assert_int_equal(h2_can_open(cli.h), i < 4);
    }
    pump();
    assert_int_equal(h2_open_streams(srv.h), 4);
    struct h2_field f[] = {{":status", 7, "200", 3}};
    for (int i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "/%d", i);
        struct rec *r = find(&srv, path);
        assert_non_null(r);
        assert_int_equal(h2_submit_response(srv.h, r->st, f, 1, 1), 0);
        pump();
    }
    assert_int_equal(srv.max_open, 4);
    assert_int_equal(h2_get_stats(srv.h)->refused, 0);
    for (int i = 0; i < cli.nrecs; i++)
        assert_string_equal(cli.recs[i].head_status, "200");
    unpair();
}

/* A request whose fields take exactly max_header_list bytes (RFC 9113
 * 6.5.2: name + value + 32 each) is served; one byte more is answered 431
 * without the consumer hearing of it. Too large a response resets. */
static void test_header_list_size(void **state)
{
    (void)state;
    struct h2_limits sl;
    h2_limits_default(&sl);
    sl.max_header_list = 1000;
    pair(NULL, &sl);
    pump();
    /* :method POST 7+4, :scheme http 7+4, :authority svc 10+3, :path /x 5+2,
     * x-pad 5+v, each + 32: 47 + v + 32 * 5 = 1000 for v = 793. */
    static char pad[2000];
    memset(pad, 'p', sizeof pad);
    for (int extra = 0; extra <= 1; extra++) {
        struct h2_field f[] = {
            {":method", 7, "POST", 4}, {":scheme", 7, "http", 4}, {":authority", 10, "svc", 3},
            {":path", 5, extra ? "/y" : "/x", 2}, {"x-pad", 5, pad, 793 + (size_t)extra},
        };
        int err;
        h2_stream *st = h2_submit_request(cli.h, f, 5, 0, NULL, &err);
        assert_non_null(st);
        struct rec *r = rec_of(&cli, st);
        assert_int_equal(h2_submit_data(cli.h, st, "body", 4, 1), 0);
        pump();
        if (!extra) {
            assert_non_null(find(&srv, "/x"));
            assert_string_equal(r->head_status, "200");
        } else {
            assert_null(find(&srv, "/y"));
            assert_string_equal(r->head_status, "431");
            assert_int_equal(r->ended, 1);
        }
    }
    assert_int_equal(h2_get_stats(srv.h)->too_large, 1);
    assert_int_equal(srv.nrecs, 1);
    assert_int_equal(h2_open_streams(srv.h), 0);
    unpair();

    /* Field count: H2_MAX_FIELDS fit, one more does not. */
    pair(NULL, NULL);
    pump();
    static struct h2_field many[H2_MAX_FIELDS + 1];
    many[0] = (struct h2_field){":method", 7, "GET", 3};
    many[1] = (struct h2_field){":scheme", 7, "http", 4};
    many[2] = (struct h2_field){":path", 5, "/m", 2};
    many[3] = (struct h2_field){":authority", 10, "svc", 3};
    for (int i = 4; i <= H2_MAX_FIELDS; i++)
        many[i] = (struct h2_field){"x-a", 3, "1", 1};
    int err;
    h2_stream *ok = h2_submit_request(cli.h, many, H2_MAX_FIELDS, 1, NULL, &err);
    h2_stream *over = h2_submit_request(cli.h, many, H2_MAX_FIELDS + 1, 1, NULL, &err);
    struct rec *rok = rec_of(&cli, ok), *rover = rec_of(&cli, over);
    pump();
    assert_string_equal(rok->head_status, "200");
    assert_string_equal(rover->head_status, "431");
    unpair();

    /* The client's limit on a response head: the stream is reset. */
    struct h2_limits cl;
    h2_limits_default(&cl);
    cl.max_header_list = 200;
    pair(&cl, NULL);
    srv.auto_respond = 0;
    pump();
    h2_stream *st = get("/big-head", 1, NULL);
    struct rec *cr = h2_stream_user(st);
    pump();
    struct rec *sr = find(&srv, "/big-head");
    struct h2_field big[] = {{":status", 7, "200", 3}, {"x-pad", 5, pad, 200}};
    assert_int_equal(h2_submit_response(srv.h, sr->st, big, 2, 1), 0);
    pump();
    assert_int_equal(cr->heads, 0);
    assert_int_equal(cr->closed, 1);
    assert_int_equal(cr->close_code, H2_INTERNAL_ERROR);
    assert_int_equal(h2_get_stats(cli.h)->too_large, 1);
    unpair();
}

/* Rapid reset (CVE-2023-44487): a client that opens and resets streams
 * gets H2_RESET_BURST of them (plus the little the rate refills while the
 * test runs), then libnghttp2's limit ends the connection. */
static void test_rapid_reset(void **state)
{
    (void)state;
    pair(NULL, NULL);
    srv.auto_respond = 0;
    pump();
    int n = 0;
    for (; n < H2_RESET_BURST + 100 && cli.goaways == 0; n++) {
        h2_stream *st = get("/r", 1, NULL);
        assert_non_null(st);
        pump(); /* the HEADERS went out: a reset now reaches the server */
        assert_int_equal(h2_reset(cli.h, st, H2_CANCEL), 0);
        pump();
    }
    assert_int_equal(cli.goaways, 1);
    assert_int_equal(cli.goaway_code, H2_INTERNAL_ERROR);
    assert_true(n > H2_RESET_BURST);
    assert_true(n < H2_RESET_BURST + 100);
    assert_true(h2_done(srv.h));
    unpair();
}

static void test_bad_input(void **state)
{
    (void)state;
    pair(NULL, NULL);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(h2_input(srv.h, (const uint8_t *)junk, sizeof junk - 1) < 0);
    const uint8_t *p;
    size_t n;
    h2_output(srv.h, &p, &n);
    h2_sent(srv.h, n);
    assert_true(h2_done(srv.h));
    unpair();

    /* A valid preface, then a DATA frame on stream 0: a connection error,
     * which nghttp2 answers with GOAWAY(PROTOCOL_ERROR), then done. */
    pair(NULL, NULL);
    pump();
    static const uint8_t bad[] = {0, 0, 1, 0x0, 0x0, 0, 0, 0, 0, 'x'};
    assert_int_equal(h2_input(srv.h, bad, sizeof bad), 0);
    assert_true(move(&srv, &cli) > 0);
    assert_int_equal(cli.goaways, 1);
    assert_int_equal(cli.goaway_code, H2_PROTOCOL_ERROR);
    assert_true(h2_done(srv.h));
    unpair();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_streams),
        cmocka_unit_test(test_flow_control),
        cmocka_unit_test(test_stalled_stream_does_not_block),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_goaway_drain),
        cmocka_unit_test(test_goaway_refuses_queued),
        cmocka_unit_test(test_max_streams),
        cmocka_unit_test(test_header_list_size),
        cmocka_unit_test(test_blocks_in_turn),
        cmocka_unit_test(test_rapid_reset),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("proxy/http_h2", tests, NULL, NULL);
}
