/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the HTTP/1 head rewriting (proxy/http_h1.c), the pure
 * helpers of the exchange model (proxy/http_msg.c) and the exchange's flow
 * through the filter chain (proxy/http_filter.c) with two recording sides:
 * hop-by-hop fields dropped (RFC 9110 7.6.1) and framing rewritten, every
 * response framing case, local replies before and after a response head,
 * the response-header timeout on a real ae loop, and the done hooks once. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ae.h"
#include "http1.h"
#include "http_filter.h"
#include "http_h1.h"
#include "http_msg.h"
#include "proxy.h"

/* Parses one head of the given kind from s; the parser stays for the spans. */
static void parse_head(struct http1_parser *p, enum http1_kind kind, const char *s)
{
    size_t used = 0;
    http1_init(p, kind, NULL);
    assert_int_equal(http1_parse(p, s, strlen(s), &used, NULL, NULL), HTTP1_HEAD);
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    const char *hop[] = {"Connection", "keep-alive", "PROXY-CONNECTION", "TE", "Transfer-Encoding", "upgrade"};
    for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
        assert_true(http_field_is_hop_by_hop(hop[i], strlen(hop[i]), NULL, 0));
    const char *conn = "close, X-Secret ,x-other";
    assert_true(http_field_is_hop_by_hop("x-secret", 8, conn, strlen(conn)));
    assert_true(http_field_is_hop_by_hop("X-Other", 7, conn, strlen(conn)));
    assert_false(http_field_is_hop_by_hop("X-Secre", 7, conn, strlen(conn)));
    assert_false(http_field_is_hop_by_hop("X-Secrets", 9, conn, strlen(conn)));
    assert_false(http_field_is_hop_by_hop("Content-Type", 12, conn, strlen(conn)));
    assert_false(http_field_is_hop_by_hop("Trailer", 7, NULL, 0));
}

static void test_path_and_causes(void **state)
{
    (void)state;
    char out[8];
    http_path_no_query("/a/b?token=s", 12, out, sizeof out);
    assert_string_equal(out, "/a/b");
    http_path_no_query("/x#frag", 7, out, sizeof out);
    assert_string_equal(out, "/x");
    http_path_no_query("/abcdefghij", 11, out, sizeof out);
    assert_string_equal(out, "/abcdef"); /* cut to the buffer */
    assert_int_equal(http_cause_status(HTTP_CAUSE_REFUSED), 502);
    assert_int_equal(http_cause_status(HTTP_CAUSE_DRAINING), 503);
    assert_int_equal(http_cause_status(HTTP_CAUSE_HEADER_TIMEOUT), 504);
    assert_int_equal(http_cause_status(HTTP_CAUSE_CONNECT_TIMEOUT), 504);
    assert_string_equal(http_cause_name(HTTP_CAUSE_RESET), "reset");
    assert_string_equal(http_cause_name(HTTP_CAUSE_COUNT), "?");
    assert_string_equal(http_filter_name(0), "timeout");
    assert_string_equal(http_filter_name(1), "metrics");
    assert_null(http_filter_name(2));
}

static void test_request_rewrite(void **state)
{
    (void)state;
    struct http1_parser p;
    struct http_head h;
    struct http_field *f = NULL;
    size_t cap = 0;
    struct buf out;
    parse_head(&p, HTTP1_REQUEST,
               "POST /up?q=1 HTTP/1.1\r\nHost: svc:80\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
               "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\nTransfer-Encoding: chunked\r\n"
               "Upgrade: h2c\r\nX-End: kept\r\nExpect: 100-continue\r\n\r\n");
    http_h1_head_from(&p, &h, &f, &cap);
    assert_int_equal(h.nfields, 2); /* X-End and Expect */
    assert_int_equal(h.content_length, -1);
    assert_false(h.end_stream);
    assert_true(h.expect_continue);
    assert_null(h.upgrade.p); /* Upgrade without "Connection: upgrade" asks for nothing */
    buf_init(&out, 4096);
    assert_int_equal(http_h1_write_request(&out, &h), 1);
    assert_string_equal(buf_cstr(&out), "POST /up?q=1 HTTP/1.1\r\nHost: svc:80\r\nX-End: kept\r\nExpect: 100-continue\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n");
    buf_free(&out);
    http1_free(&p);

    /* An upgrade keeps its Upgrade and gets a Connection of our own; a
     * length is re-written from the parsed value. */
    parse_head(&p, HTTP1_REQUEST,
               "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n");
    http_h1_head_from(&p, &h, &f, &cap);
    buf_init(&out, 4096);
    assert_int_equal(http_h1_write_request(&out, &h), 0);
    assert_string_equal(buf_cstr(&out), "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                                        "Content-Length: 0\r\n\r\n");
    buf_free(&out);
    http1_free(&p);

    /* CONNECT: the authority is the target; no framing. */
    parse_head(&p, HTTP1_REQUEST, "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
    http_h1_head_from(&p, &h, &f, &cap);
    assert_true(h.end_stream);
    buf_init(&out, 4096);
    assert_int_equal(http_h1_write_request(&out, &h), 0);
    assert_string_equal(buf_cstr(&out), "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
    buf_free(&out);
    assert_true(http_h1_request_ok(&h));
    struct http_head bad = h;
    bad.authority = (struct http_span){">>db:5432", 9}; /* lib/http1 reads it; no Host may hold it */
    assert_false(http_h1_request_ok(&bad));
    /* Past the buffer's bound: -E2BIG, not a cut head. */
    buf_init(&out, 20);
    assert_int_equal(http_h1_write_request(&out, &h), -E2BIG);
    buf_free(&out);
    http1_free(&p);
    free(f);
}

static const char *resp(const char *status_and_fields, int minor, int keep_alive, int bodiless, int *close_after,
                        int *chunked, struct buf *out)
{
    struct http1_parser p;
    struct http_head h;
    struct http_field *f = NULL;
    size_t cap = 0;
    parse_head(&p, HTTP1_RESPONSE, status_and_fields);
    http_h1_head_from(&p, &h, &f, &cap);
    buf_reset(out);
    *chunked = http_h1_write_response(out, &h, minor, keep_alive, bodiless, close_after);
    http1_free(&p);
    free(f);
    return buf_cstr(out);
}

static void test_response_framing(void **state)
{
    (void)state;
    struct buf out;
    int close_after = 0, chunked = 0;
    buf_init(&out, 4096);
    /* Unknown length: chunked to HTTP/1.1, close-delimited to HTTP/1.0. */
    assert_string_equal(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\nX-A: b\r\n\r\n", 1,
                             1, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 200 OK\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(chunked, 1);
    assert_int_equal(close_after, 0);
    assert_string_equal(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 1, 0, &close_after,
                             &chunked, &out),
                        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    assert_int_equal(chunked, 0);
    assert_int_equal(close_after, 1);
    /* A length stays; an HTTP/1.0 keep-alive client is told it is kept. */
    close_after = 0;
    assert_string_equal(resp("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", 0, 1, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n");
    /* HEAD shows the length, 204 none, 304 its own. */
    assert_string_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", 1, 1, 1, &close_after, &chunked, &out),
                        "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n");
    assert_string_equal(resp("HTTP/1.1 204 No Content\r\n\r\n", 1, 1, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 204 No Content\r\n\r\n");
    assert_string_equal(resp("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n", 1, 1, 0, &close_after, &chunked,
                             &out),
                        "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n");
    /* Interim and switching responses. */
    assert_string_equal(resp("HTTP/1.1 100 Continue\r\n\r\n", 1, 1, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 100 Continue\r\n\r\n");
    assert_string_equal(resp("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                             1, 1, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    /* Close asked for by the caller is said. */
    close_after = 1;
    assert_string_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 0, 0, &close_after, &chunked, &out),
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    /* Chunks and the last chunk with trailers. */
    buf_reset(&out);
    assert_int_equal(http_h1_write_chunk(&out, "hello", 5), 0);
    assert_int_equal(http_h1_write_chunk(&out, "", 0), 0); /* never a premature last chunk */
    struct http_field t = {{"X-Sum", 5}, {"7", 1}};
    struct http_head tr = {.fields = &t, .nfields = 1};
    assert_int_equal(http_h1_write_last_chunk(&out, &tr), 0);
    assert_string_equal(buf_cstr(&out), "5\r\nhello\r\n0\r\nX-Sum: 7\r\n\r\n");
    buf_free(&out);
}

/* ---- the exchange through the chain, with two recording sides ---- */

struct rec {
    char log[1024];
    struct buf body;
};

static struct rec rec_up, rec_down;

static void rec_add(struct rec *r, const char *what, int v)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s(%d)", what, v);
}

static enum http_rc up_head(struct http_exchange *x, const struct http_head *h)
{
    (void)x;
    rec_add(&rec_up, "head", h->end_stream);
    return HTTP_OK;
}
static enum http_rc up_data(struct http_exchange *x, const char *p, size_t len, int end)
{
    (void)x;
    buf_append(&rec_up.body, p, len);
    rec_add(&rec_up, "data", end);
    return HTTP_OK;
}
static enum http_rc up_trailers(struct http_exchange *x, const struct http_head *t)
{
    (void)x;
    rec_add(&rec_up, "trailers", (int)t->nfields);
    return HTTP_OK;
}
static void up_abort(struct http_exchange *x, enum http_cause c)
{
    (void)x;
    rec_add(&rec_up, "abort", c);
}
static enum http_rc down_head(struct http_exchange *x, const struct http_head *h)
{
    (void)x;
    rec_add(&rec_down, "head", h->status);
    return HTTP_OK;
}
static enum http_rc down_data(struct http_exchange *x, const char *p, size_t len, int end)
{
    (void)x;
    buf_append(&rec_down.body, p, len);
    rec_add(&rec_down, "data", end);
    return HTTP_OK;
}
static void down_abort(struct http_exchange *x, enum http_cause c)
{
    (void)x;
    rec_add(&rec_down, "abort", c);
}

static const struct http_side_ops ops_up = {"up", up_head, up_data, up_trailers, NULL, up_abort, NULL};
static const struct http_side_ops ops_down = {"down", down_head, down_data, NULL, NULL, down_abort, NULL};

struct fixture {
    struct proxy px;
    struct worker w;
    struct proxy_config cfg;
    struct http_exchange x;
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    memset(&rec_up, 0, sizeof rec_up);
    memset(&rec_down, 0, sizeof rec_down);
    buf_init(&rec_up.body, 4096);
    buf_init(&rec_down.body, 4096);
    pm_init(&f->px.metrics);
    f->w.px = &f->px;
    f->w.loop = ae_loop_new(64);
    assert_non_null(f->w.loop);
    f->x.w = &f->w;
    f->x.cfg = &f->cfg;
    f->x.dir = PM_OUTBOUND;
    f->x.up_ops = &ops_up;
    f->x.down_ops = &ops_down;
    f->x.peer = "";
    f->x.dst = "198.18.1.1:80";
}

static void fixture_free(struct fixture *f)
{
    http_exchange_release(&f->x);
    ae_loop_free(f->w.loop);
    pm_destroy(&f->px.metrics);
    buf_free(&rec_up.body);
    buf_free(&rec_down.body);
}

static struct http_head req_head(int end_stream)
{
    struct http_head h = {.method = {"POST", 4}, .authority = {"a", 1}, .path = {"/p?secret=1", 11},
                          .content_length = -1, .end_stream = end_stream ? 1 : 0};
    return h;
}

static void test_exchange_flow(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    http_exchange_begin(&f.x);
    struct http_head h = req_head(0);
    http_exchange_request_head(&f.x, &h);
    http_exchange_request_data(&f.x, "abc", 3, 0);
    struct http_field tf = {{"x", 1}, {"y", 1}};
    struct http_head t = {.fields = &tf, .nfields = 1};
    http_exchange_request_trailers(&f.x, &t);
    assert_string_equal(rec_up.log, "head(0)data(0)trailers(1)");
    assert_string_equal(f.x.method, "POST");
    assert_string_equal(f.x.path, "/p"); /* the query never reaches metrics or the log */
    assert_true(f.x.req_done);
    struct http_head r100 = {.status = 100};
    http_exchange_response_head(&f.x, &r100);
    assert_int_equal(f.x.status, 0); /* interim: not the exchange's status */
    struct http_head r = {.status = 201, .content_length = 2};
    http_exchange_response_head(&f.x, &r);
    http_exchange_response_data(&f.x, "ok", 2, 1);
    assert_string_equal(rec_down.log, "head(100)head(201)data(1)");
    assert_false(f.x.finished);
    http_exchange_maybe_done(&f.x);
    assert_true(f.x.finished);
    assert_int_equal(f.x.status, 201);
    assert_int_equal(f.x.req_bytes, 3);
    assert_int_equal(f.x.resp_bytes, 2);
    assert_false(f.x.proxy_error);
    /* After done nothing more goes through. */
    http_exchange_response_data(&f.x, "zz", 2, 1);
    assert_string_equal(rec_down.log, "head(100)head(201)data(1)");
    fixture_free(&f);
}

static void test_local_reply_before_and_after_head(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    http_exchange_begin(&f.x);
    struct http_head h = req_head(1);
    http_exchange_request_head(&f.x, &h);
    http_exchange_local_reply(&f.x, HTTP_CAUSE_REFUSED, 0, "Connection refused");
    assert_string_equal(rec_up.log, "head(1)abort(1)");
    assert_string_equal(rec_down.log, "head(502)data(1)");
    assert_string_equal(buf_cstr(&rec_down.body), "weft-proxy: refused: Connection refused\n");
    assert_true(f.x.finished && f.x.proxy_error);
    assert_int_equal(f.x.status, 502);
    assert_int_equal(f.px.metrics.http_errors[PM_OUTBOUND][HTTP_CAUSE_REFUSED], 1);
    /* A second reply changes nothing. */
    http_exchange_local_reply(&f.x, HTTP_CAUSE_RESET, 0, NULL);
    assert_int_equal(f.px.metrics.http_errors[PM_OUTBOUND][HTTP_CAUSE_RESET], 0);
    fixture_free(&f);

    fixture_init(&f);
    http_exchange_begin(&f.x);
    h = req_head(1);
    http_exchange_request_head(&f.x, &h);
    struct http_head r = {.status = 200, .content_length = 10};
    http_exchange_response_head(&f.x, &r);
    http_exchange_local_reply(&f.x, HTTP_CAUSE_REQUEST_TIMEOUT, 0, NULL);
    /* The head went out: the response is cut, not replaced. */
    assert_string_equal(rec_down.log, "head(200)abort(6)"); /* 6: HTTP_CAUSE_REQUEST_TIMEOUT */
    assert_int_equal(f.x.status, 200);
    assert_int_equal(f.px.metrics.http_errors[PM_OUTBOUND][HTTP_CAUSE_REQUEST_TIMEOUT], 1);
    fixture_free(&f);

    /* A bad request is counted apart and answered with the parser's status. */
    fixture_init(&f);
    http_exchange_begin(&f.x);
    http_exchange_local_reply(&f.x, HTTP_CAUSE_BAD_REQUEST, 431, "too many fields");
    assert_string_equal(rec_down.log, "head(431)data(1)");
    assert_int_equal(f.px.metrics.http_bad_requests[PM_OUTBOUND], 1);
    fixture_free(&f);
}

static long stop_loop(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    (void)data;
    ae_stop(loop);
    return -1;
}

static void test_header_timeout_on_the_loop(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.cfg.http_header_timeout_ms = 20;
    http_exchange_begin(&f.x);
    struct http_head h = req_head(0);
    http_exchange_request_head(&f.x, &h);
    assert_int_equal(f.x.hdr_timer, 0); /* the clock starts once the request is sent whole */
    http_exchange_request_data(&f.x, "x", 1, 1);
    assert_true(f.x.hdr_timer != 0);
    ae_timer_add(f.w.loop, 100, stop_loop, NULL); /* the 20 ms deadline fires first */
    ae_run(f.w.loop);
    assert_true(f.x.finished);
    assert_int_equal(f.x.status, 504);
    assert_int_equal(f.x.cause, HTTP_CAUSE_HEADER_TIMEOUT);
    assert_string_equal(buf_cstr(&rec_down.body), "weft-proxy: response_header_timeout\n");
    assert_int_equal(f.x.hdr_timer, 0);
    fixture_free(&f);

    /* A response head in time disarms it. */
    fixture_init(&f);
    f.cfg.http_header_timeout_ms = 20;
    f.cfg.http_request_timeout_ms = 30;
    http_exchange_begin(&f.x);
    h = req_head(1);
    http_exchange_request_head(&f.x, &h);
    assert_true(f.x.hdr_timer != 0 && f.x.req_timer != 0);
    struct http_head r = {.status = 200, .content_length = 0, .end_stream = 1};
    http_exchange_response_head(&f.x, &r);
    assert_int_equal(f.x.hdr_timer, 0);
    assert_true(f.x.req_timer != 0); /* the whole response is still to come */
    http_exchange_maybe_done(&f.x);
    assert_true(f.x.finished);
    assert_int_equal(f.x.req_timer, 0);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_path_and_causes),
        cmocka_unit_test(test_request_rewrite),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_exchange_flow),
        cmocka_unit_test(test_local_reply_before_and_after_head),
        cmocka_unit_test(test_header_timeout_on_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
