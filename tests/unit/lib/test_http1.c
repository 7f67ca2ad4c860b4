/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/http1.c: requests, responses and each body framing, fed
 * whole and a byte at a time (both must agree); every error code from the
 * smallest input that makes it; each limit (head bytes, field count, body,
 * chunk line, Content-Length and chunk-size range) at the limit and one past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http1.h"

/* What a whole connection parsed to: the last message's head is kept in
 * the parser; bodies of all messages are concatenated, messages counted. */
struct run {
    struct http1_parser p;
    struct buf body;
    int heads, dones;
    enum http1_event last;
};

static void run_free(struct run *r)
{
    http1_free(&r->p);
    buf_free(&r->body);
}

/* Parses in steps of step bytes (0: whole); close: call http1_finish at the end. */
static enum http1_error run_step(struct run *r, enum http1_kind kind, const char *method,
                                 const struct http1_limits *lim, const char *in, size_t n, size_t step, int close)
{
    size_t off = 0;
    memset(r, 0, sizeof *r);
    http1_init(&r->p, kind, lim);
    buf_init(&r->body, 1u << 24);
    if (method)
        http1_response_to(&r->p, method, strlen(method));
    for (;;) {
        size_t take = n - off;
        if (step && take > step)
            take = step;
        const char *b;
        size_t used, bl;
        /* Even with no bytes left a DONE may be waiting; then the close. */
        enum http1_event ev = http1_parse(&r->p, in + off, take, &used, &b, &bl);
        int closed = 0;
        if (ev == HTTP1_NEED_MORE && take == 0) {
            if (!close) {
                r->last = HTTP1_NEED_MORE;
                break;
            }
            ev = http1_finish(&r->p);
            closed = 1;
        }
        assert_true(used <= take);
        off += used;
        r->last = ev;
        if (ev == HTTP1_HEAD)
            r->heads++;
        else if (ev == HTTP1_BODY)
            assert_int_equal(buf_append(&r->body, b, bl), 0);
        else if (ev == HTTP1_DONE)
            r->dones++;
        if (ev == HTTP1_ERROR || ev == HTTP1_CLOSED || (ev == HTTP1_DONE && closed))
            break;
        if (ev == HTTP1_DONE && (r->p.msg.status == 101 || (method && !strcmp(method, "CONNECT"))))
            break;
    }
    return r->p.error;
}

/* Both readings must agree; r holds the byte-at-a-time one. */
static enum http1_error run_lim(struct run *r, enum http1_kind kind, const char *method,
                                const struct http1_limits *lim, const char *in, size_t n, int close)
{
    struct run whole;
    enum http1_error e = run_step(&whole, kind, method, lim, in, n, 0, close);
    enum http1_error e1 = run_step(r, kind, method, lim, in, n, 1, close);
    assert_int_equal(e, e1);
    assert_int_equal(whole.heads, r->heads);
    assert_int_equal(whole.dones, r->dones);
    assert_int_equal(whole.last, r->last);
    assert_int_equal(whole.body.len, r->body.len);
    if (r->body.len)
        assert_memory_equal(whole.body.data, r->body.data, r->body.len);
    run_free(&whole);
    return e;
}

static enum http1_error req(struct run *r, const char *text)
{
    return run_lim(r, HTTP1_REQUEST, NULL, NULL, text, strlen(text), 1);
}

static enum http1_error resp(struct run *r, const char *method, const char *text)
{
    return run_lim(r, HTTP1_RESPONSE, method, NULL, text, strlen(text), 1);
}

/* The error of a request (or, with kind RESPONSE, a response), freed. */
static enum http1_error req_err(const char *text)
{
    struct run r;
    enum http1_error e = req(&r, text);
    run_free(&r);
    return e;
}

static enum http1_error resp_err(const char *text)
{
    struct run r;
    enum http1_error e = resp(&r, "GET", text);
    run_free(&r);
    return e;
}

static void assert_field(const struct http1_parser *p, const char *name, const char *value)
{
    size_t vl;
    const char *v = http1_get(p, name, &vl);
    assert_non_null(v);
    assert_int_equal(vl, strlen(value));
    assert_memory_equal(v, value, vl);
}

static void test_request_get(void **state)
{
    (void)state;
    struct run r;
    assert_int_equal(req(&r, "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Pad:  v  w \t\r\nEmpty:\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_int_equal(r.last, HTTP1_CLOSED);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.dones, 1);
    const struct http1_msg *m = &r.p.msg;
    assert_int_equal(m->method_len, 3);
    assert_memory_equal(m->method, "GET", 3);
    assert_int_equal(m->target_len, 6);
    assert_memory_equal(m->target, "/a?b=c", 6);
    assert_int_equal(m->version_minor, 1);
    assert_true(m->keep_alive);
    assert_true(m->no_body);
    assert_int_equal(m->content_length, -1);
    assert_field(&r.p, "host", "example.com");
    assert_field(&r.p, "X-PAD", "v  w");
    assert_field(&r.p, "empty", "");
    assert_null(http1_get(&r.p, "missing", NULL));
    const char *n, *v;
    size_t nl, vl;
    assert_int_equal(http1_field(&r.p, 1, &n, &nl, &v, &vl), 0);
    assert_int_equal(nl, 5);
    assert_memory_equal(n, "X-Pad", 5);
    assert_int_equal(http1_field(&r.p, 3, &n, &nl, &v, &vl), -1);
    run_free(&r);
}

static void test_request_bodies(void **state)
{
    (void)state;
    struct run r;
    assert_int_equal(req(&r, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), HTTP1_E_NONE);
    assert_string_equal(buf_cstr(&r.body), "hello");
    assert_int_equal(r.p.msg.content_length, 5);
    run_free(&r);

    assert_int_equal(req(&r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                             "4;a=b;c=\"d\\\"e\" ; f\r\nWiki\r\n00005\r\npedia\r\n0\r\nExpires: x\r\nT2: y\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_string_equal(buf_cstr(&r.body), "Wikipedia");
    assert_true(r.p.msg.chunked);
    const char *n, *v;
    size_t nl, vl;
    assert_int_equal(http1_trailer(&r.p, 1, &n, &nl, &v, &vl), 0);
    assert_memory_equal(n, "T2", 2);
    assert_memory_equal(v, "y", 1);
    assert_int_equal(http1_trailer(&r.p, 2, &n, &nl, &v, &vl), -1);
    run_free(&r);

    /* Truncated body: an error at the close, not a short message. */
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhell"), HTTP1_E_TRUNCATED);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
                     HTTP1_E_TRUNCATED);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\n"), HTTP1_E_TRUNCATED);
    assert_int_equal(req_err("\r"), HTTP1_E_TRUNCATED);
}

static void test_request_pipelined_and_keepalive(void **state)
{
    (void)state;
    struct run r;
    assert_int_equal(req(&r, "\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\n"
                             "Content-Length: 2\r\n\r\nokGET /3 HTTP/1.0\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_int_equal(r.heads, 3);
    assert_int_equal(r.dones, 3);
    assert_string_equal(buf_cstr(&r.body), "ok");
    assert_int_equal(r.p.msg.version_minor, 0);
    assert_false(r.p.msg.keep_alive);
    run_free(&r);

    assert_int_equal(req(&r, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), HTTP1_E_NONE);
    assert_true(r.p.msg.keep_alive);
    run_free(&r);
    assert_int_equal(req(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"), HTTP1_E_NONE);
    assert_false(r.p.msg.keep_alive);
    run_free(&r);
    /* HTTP/1.2 reads as 1.1 (RFC 9110 2.5). */
    assert_int_equal(req(&r, "GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(r.p.msg.version_minor, 1);
    run_free(&r);
    assert_int_equal(req(&r, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                             "Upgrade: websocket\r\nExpect: 100-Continue\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_true(r.p.msg.upgrade);
    assert_true(r.p.msg.expect_continue);
    run_free(&r);
}

static void test_request_targets(void **state)
{
    (void)state;
    assert_int_equal(req_err("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("CONNECT a.b HTTP/1.1\r\nHost: a.b\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
    assert_int_equal(req_err("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_TARGET);
}

static void test_request_line_errors(void **state)
{
    (void)state;
    assert_int_equal(req_err("GET\r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err("GET /\r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err(" GET / HTTP/1.1\r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err("GET  / HTTP/1.1\r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err("GET / HTTP/1.1 \r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err("GET / HTTP/1.1 x\r\n\r\n"), HTTP1_E_REQUEST_LINE);
    assert_int_equal(req_err("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_METHOD);
    assert_int_equal(req_err("GET / HTTP/1\r\n\r\n"), HTTP1_E_VERSION);
    assert_int_equal(req_err("GET / http/1.1\r\n\r\n"), HTTP1_E_VERSION);
    assert_int_equal(req_err("GET / HTTP/1.x\r\n\r\n"), HTTP1_E_VERSION);
    assert_int_equal(req_err("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HTTP1_E_VERSION_UNSUPPORTED);
    assert_int_equal(req_err("GET / HTTP/0.9\r\n\r\n"), HTTP1_E_VERSION_UNSUPPORTED);
}

static void test_line_endings(void **state)
{
    (void)state;
    assert_int_equal(req_err("GET / HTTP/1.1\nHost: a\r\n\r\n"), HTTP1_E_BARE_LF);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\n\n"), HTTP1_E_BARE_LF);
    assert_int_equal(req_err("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP1_E_BARE_LF);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), HTTP1_E_BARE_CR);
    assert_int_equal(req_err("GET / HTTP/1.1\r\r\n"), HTTP1_E_BARE_CR);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\n"), HTTP1_E_BARE_LF);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\rx"), HTTP1_E_BARE_CR);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n"),
                     HTTP1_E_BARE_LF);
    /* Chunk data must be followed by exactly CRLF. */
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"),
                     HTTP1_E_CHUNK_CRLF);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\rx"),
                     HTTP1_E_CHUNK_CRLF);
    /* CR and LF bytes in chunk data are data. */
    struct run r;
    assert_int_equal(req(&r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\r\r\r\n0\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_string_equal(buf_cstr(&r.body), "\r\r");
    run_free(&r);
}

static void test_field_errors(void **state)
{
    (void)state;
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n"), HTTP1_E_OBS_FOLD);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tfolded\r\n\r\n"), HTTP1_E_OBS_FOLD);
    assert_int_equal(req_err("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP1_E_OBS_FOLD);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP1_E_SPACE_BEFORE_COLON);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP1_E_SPACE_BEFORE_COLON);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n"), HTTP1_E_NO_COLON);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n"), HTTP1_E_FIELD_NAME);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n"), HTTP1_E_FIELD_NAME);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX\"Y: 1\r\n\r\n"), HTTP1_E_FIELD_NAME);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\n\xc3\xa9: 1\r\n\r\n"), HTTP1_E_FIELD_NAME);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), HTTP1_E_FIELD_VALUE);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), HTTP1_E_FIELD_VALUE);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    struct run r;
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, NULL, nul, sizeof nul - 1, 1), HTTP1_E_FIELD_VALUE);
    run_free(&r);
    /* obs-text in a value is allowed, like a tab inside it. */
    assert_int_equal(req(&r, "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\tau lait\r\n\r\n"), HTTP1_E_NONE);
    assert_field(&r.p, "x", "caf\xc3\xa9\tau lait");
    run_free(&r);
    /* Trailers are checked the same way. */
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT : 1\r\n\r\n"),
                     HTTP1_E_SPACE_BEFORE_COLON);
    assert_int_equal(req_err("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n x\r\n\r\n"),
                     HTTP1_E_OBS_FOLD);
}

static void test_host(void **state)
{
    (void)state;
    assert_int_equal(req_err("GET / HTTP/1.1\r\n\r\n"), HTTP1_E_HOST);
    assert_int_equal(req_err("GET / HTTP/1.0\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), HTTP1_E_HOST);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP1_E_HOST);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HTTP1_E_HOST);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost:\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(req_err("GET / HTTP/1.1\r\nHost: [fd00::1]:8080\r\n\r\n"), HTTP1_E_NONE);
    /* Responses may carry a Host field; it means nothing there. */
    assert_int_equal(resp_err("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"), HTTP1_E_NONE);
}

static void test_content_length(void **state)
{
    (void)state;
    const char *pre = "POST / HTTP/1.1\r\nHost: a\r\n";
    char t[256];
    snprintf(t, sizeof t, "%sContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH_DUP);
    snprintf(t, sizeof t, "%sContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH_DUP);
    snprintf(t, sizeof t, "%sContent-Length: 3, 3\r\n\r\nabc", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH_DUP);
    snprintf(t, sizeof t, "%sContent-Length: -1\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    snprintf(t, sizeof t, "%sContent-Length: +1\r\n\r\nx", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    snprintf(t, sizeof t, "%sContent-Length: 0x1\r\n\r\nx", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    snprintf(t, sizeof t, "%sContent-Length: 1 2\r\n\r\nx", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    snprintf(t, sizeof t, "%sContent-Length:\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    /* 2^63-1 is the largest length (then truncated here: no body follows); 2^63 is refused. */
    snprintf(t, sizeof t, "%sContent-Length: 9223372036854775807\r\n\r\n", pre);
    struct run r;
    assert_int_equal(req(&r, t), HTTP1_E_TRUNCATED);
    assert_int_equal(r.p.msg.content_length, INT64_MAX);
    run_free(&r);
    snprintf(t, sizeof t, "%sContent-Length: 9223372036854775808\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CONTENT_LENGTH);
    snprintf(t, sizeof t, "%sContent-Length: 0009\r\n\r\n123456789", pre);
    assert_int_equal(req(&r, t), HTTP1_E_NONE);
    assert_string_equal(buf_cstr(&r.body), "123456789");
    run_free(&r);
}

static void test_transfer_encoding(void **state)
{
    (void)state;
    const char *pre = "POST / HTTP/1.1\r\nHost: a\r\n";
    char t[256];
    snprintf(t, sizeof t, "%sContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CL_AND_TE);
    snprintf(t, sizeof t, "%sTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CL_AND_TE);
    snprintf(t, sizeof t, "%sTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_UNSUPPORTED);
    assert_int_equal(http1_error_status(HTTP1_E_TE_UNSUPPORTED), 501);
    snprintf(t, sizeof t, "%sTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_UNSUPPORTED);
    snprintf(t, sizeof t, "%sTransfer-Encoding: chunked, gzip\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_NOT_CHUNKED);
    snprintf(t, sizeof t, "%sTransfer-Encoding: gzip\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_NOT_CHUNKED);
    snprintf(t, sizeof t, "%sTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_NOT_CHUNKED);
    snprintf(t, sizeof t, "%sTransfer-Encoding:\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TE_NOT_CHUNKED);
    snprintf(t, sizeof t, "%sTransfer-Encoding: ,chunked, \r\n\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_NONE);
    assert_int_equal(req_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), HTTP1_E_TE_HTTP10);
    assert_int_equal(resp_err("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), HTTP1_E_TE_HTTP10);
    assert_int_equal(resp_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n"),
                     HTTP1_E_CL_AND_TE);
}

static void test_chunk_lines(void **state)
{
    (void)state;
    const char *pre = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    char t[8192];
    snprintf(t, sizeof t, "%s\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_SIZE);
    snprintf(t, sizeof t, "%sg\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_SIZE);
    snprintf(t, sizeof t, "%s-1\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_SIZE);
    snprintf(t, sizeof t, "%s0x1\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_SIZE);
    snprintf(t, sizeof t, "%s1;\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_EXT);
    snprintf(t, sizeof t, "%s1;a=\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_EXT);
    snprintf(t, sizeof t, "%s1;a=\"open\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_EXT);
    snprintf(t, sizeof t, "%s1;a b\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_EXT);
    snprintf(t, sizeof t, "%s1 ; a = b \r\nx\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_NONE);
    /* 7fffffffffffffff is the largest chunk (truncated here), 8000000000000000 overflows. */
    snprintf(t, sizeof t, "%s7fffffffffffffff\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_TRUNCATED);
    snprintf(t, sizeof t, "%s8000000000000000\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_SIZE_OVERFLOW);
    snprintf(t, sizeof t, "%s000000000000000000000001\r\nx\r\n0\r\n\r\n", pre);
    assert_int_equal(req_err(t), HTTP1_E_NONE);
    /* The chunk line limit counts the CRLF: at the limit, and one past. */
    int n = snprintf(t, sizeof t, "%s1;e=", pre);
    size_t ext = HTTP1_MAX_CHUNK_LINE - 6; /* "1;e=" + value + CRLF */
    memset(t + n, 'v', ext);
    snprintf(t + n + ext, sizeof t - (size_t)n - ext, "\r\nx\r\n0\r\n\r\n");
    assert_int_equal(req_err(t), HTTP1_E_NONE);
    memset(t + n, 'v', ext + 1);
    snprintf(t + n + ext + 1, sizeof t - (size_t)n - ext - 1, "\r\nx\r\n0\r\n\r\n");
    assert_int_equal(req_err(t), HTTP1_E_CHUNK_LINE_TOO_LONG);
}

/* A request head of exactly total bytes with nfields fields. */
static size_t make_head(char *out, size_t cap, size_t total, int nfields)
{
    size_t off = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 2; i < nfields; i++) /* Host, these, and P */
        off += (size_t)snprintf(out + off, cap - off, "X%d: v\r\n", i);
    /* Pad with one field "P: ppp" so that the head (with the empty line) is total bytes. */
    size_t pad = total - off - 2 - 5; /* "P: " + CRLF */
    off += (size_t)snprintf(out + off, cap - off, "P: ");
    memset(out + off, 'p', pad);
    off += pad;
    off += (size_t)snprintf(out + off, cap - off, "\r\n\r\n");
    assert_int_equal(off, total);
    return off;
}

static void test_head_limit(void **state)
{
    (void)state;
    static char t[4096];
    struct http1_limits lim = {.max_head = 1000, .max_fields = 10};
    struct run r;
    size_t n = make_head(t, sizeof t, 1000, 2);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, n, 1), HTTP1_E_NONE);
    assert_int_equal(r.dones, 1);
    run_free(&r);
    n = make_head(t, sizeof t, 1001, 2);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, n, 1), HTTP1_E_HEAD_TOO_LARGE);
    assert_int_equal(http1_error_status(r.p.error), 431);
    run_free(&r);
    /* Found at the byte past the limit, without waiting for the end. */
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, 1001, 0), HTTP1_E_HEAD_TOO_LARGE);
    run_free(&r);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, 1000, 0), HTTP1_E_NONE);
    assert_int_equal(r.last, HTTP1_NEED_MORE);
    run_free(&r);
    /* Inside the request line it is a 414. */
    memcpy(t, "GET /", 5);
    memset(t + 5, 'a', 1100);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, 1100, 0), HTTP1_E_REQUEST_LINE_TOO_LONG);
    assert_int_equal(http1_error_status(r.p.error), 414);
    run_free(&r);
    /* Empty lines before the request line count. */
    memset(t, 0, sizeof t);
    for (int i = 0; i < 500; i++)
        memcpy(t + 2 * i, "\r\n", 2);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, 1000, 1), HTTP1_E_NONE);
    assert_int_equal(r.last, HTTP1_CLOSED);
    run_free(&r);
    memcpy(t + 1000, "G", 1);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, 1001, 0), HTTP1_E_REQUEST_LINE_TOO_LONG);
    run_free(&r);
    /* Default limit. */
    n = make_head(t, sizeof t, 4000, 2);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, NULL, t, n, 1), HTTP1_E_NONE);
    run_free(&r);
}

/* The memory of one message's head stays for the next unless the head grew
 * it past HTTP1_KEEP: buf doubles from 256, so a head of KEEP - 1 bytes (and
 * its NUL) fills KEEP exactly and one byte more takes twice as much. */
static void test_memory_between_messages(void **state)
{
    (void)state;
    static char t[2 * HTTP1_KEEP];
    struct http1_limits lim = {.max_head = 2 * HTTP1_KEEP};
    const char *next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t head = HTTP1_KEEP - 1; head <= HTTP1_KEEP; head++) {
        struct http1_parser p;
        size_t n = make_head(t, sizeof t, head, 2), used;
        http1_init(&p, HTTP1_REQUEST, &lim);
        assert_int_equal(http1_parse(&p, t, n, &used, NULL, NULL), HTTP1_HEAD);
        assert_int_equal(http1_parse(&p, t + used, n - used, &used, NULL, NULL), HTTP1_DONE);
        assert_int_equal(p.head.cap, head < HTTP1_KEEP ? HTTP1_KEEP : 2 * HTTP1_KEEP);
        const char *mem = p.head.data;
        assert_int_equal(http1_parse(&p, next, strlen(next), &used, NULL, NULL), HTTP1_HEAD);
        if (head < HTTP1_KEEP) {
            assert_ptr_equal(p.head.data, mem);
            assert_int_equal(p.head.cap, HTTP1_KEEP);
        } else {
            assert_int_equal(p.head.cap, 256);
        }
        assert_int_equal(p.msg.target_len, 5);
        assert_memory_equal(p.msg.target, "/next", 5);
        http1_free(&p);
    }
}

static void test_field_count_limit(void **state)
{
    (void)state;
    static char t[4096];
    struct http1_limits lim = {.max_head = 4096, .max_fields = 10};
    struct run r;
    size_t n = make_head(t, sizeof t, 400, 10);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, n, 1), HTTP1_E_NONE);
    assert_int_equal(r.p.nfields, 10);
    run_free(&r);
    n = make_head(t, sizeof t, 400, 11);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, n, 1), HTTP1_E_TOO_MANY_FIELDS);
    assert_int_equal(http1_error_status(r.p.error), 431);
    run_free(&r);
    /* Trailers have their own budget of the same size. */
    size_t off = (size_t)snprintf(t, sizeof t, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i < 10; i++)
        off += (size_t)snprintf(t + off, sizeof t - off, "T%d: v\r\n", i);
    memcpy(t + off, "\r\n", 3);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, off + 2, 1), HTTP1_E_NONE);
    assert_int_equal(r.p.ntrailers, 10);
    run_free(&r);
    off += (size_t)snprintf(t + off, sizeof t - off, "T10: v\r\n\r\n");
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, t, off, 1), HTTP1_E_TOO_MANY_FIELDS);
    run_free(&r);
    /* Trailer bytes: at the limit and one past. */
    struct http1_limits small = {.max_head = 100, .max_fields = 10};
    char tt[512];
    int pre = snprintf(tt, sizeof tt, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    memcpy(tt + pre, "T: ", 3);
    memset(tt + pre + 3, 'v', 100 - 3 - 4);
    memcpy(tt + pre + 96, "\r\n\r\n", 4);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &small, tt, (size_t)pre + 100, 1), HTTP1_E_NONE);
    run_free(&r);
    memcpy(tt + pre + 3, "vv", 2);
    memset(tt + pre + 3, 'v', 100 - 3 - 4 + 1);
    memcpy(tt + pre + 97, "\r\n\r\n", 4);
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &small, tt, (size_t)pre + 101, 1), HTTP1_E_HEAD_TOO_LARGE);
    run_free(&r);
}

static void test_body_limit(void **state)
{
    (void)state;
    struct http1_limits lim = {.max_body = 10};
    struct run r;
    const char *at = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, at, strlen(at), 1), HTTP1_E_NONE);
    run_free(&r);
    const char *past = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n0123456789a";
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, past, strlen(past), 1), HTTP1_E_BODY_TOO_LARGE);
    assert_int_equal(r.heads, 0); /* refused at the head: a server answers 413 before reading */
    assert_int_equal(http1_error_status(r.p.error), 413);
    run_free(&r);
    const char *ch = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n";
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, ch, strlen(ch), 1), HTTP1_E_NONE);
    assert_string_equal(buf_cstr(&r.body), "0123456789");
    run_free(&r);
    const char *chp = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n";
    assert_int_equal(run_lim(&r, HTTP1_REQUEST, NULL, &lim, chp, strlen(chp), 1), HTTP1_E_BODY_TOO_LARGE);
    assert_string_equal(buf_cstr(&r.body), "012345");
    run_free(&r);
    const char *uc = "HTTP/1.1 200 OK\r\n\r\n0123456789";
    assert_int_equal(run_lim(&r, HTTP1_RESPONSE, "GET", &lim, uc, strlen(uc), 1), HTTP1_E_NONE);
    assert_int_equal(r.body.len, 10);
    run_free(&r);
    const char *ucp = "HTTP/1.1 200 OK\r\n\r\n0123456789a";
    assert_int_equal(run_lim(&r, HTTP1_RESPONSE, "GET", &lim, ucp, strlen(ucp), 1), HTTP1_E_BODY_TOO_LARGE);
    assert_int_equal(r.body.len, 10);
    run_free(&r);
}

static void test_responses(void **state)
{
    (void)state;
    struct run r;
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
                     HTTP1_E_NONE);
    assert_int_equal(r.p.msg.status, 200);
    assert_int_equal(r.p.msg.reason_len, 2);
    assert_memory_equal(r.p.msg.reason, "OK", 2);
    assert_true(r.p.msg.keep_alive);
    assert_string_equal(buf_cstr(&r.body), "{}");
    run_free(&r);

    /* A response's lines may end with a bare LF (busybox httpd passes a CGI's
     * "Content-Type: text/plain\n\n" through after its own CRLF status line). */
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\n\ndone\n"), HTTP1_E_NONE);
    assert_int_equal(r.p.msg.status, 200);
    assert_int_equal(r.p.msg.reason_len, 2);
    assert_field(&r.p, "content-type", "text/plain");
    assert_true(r.p.msg.until_close);
    assert_string_equal(buf_cstr(&r.body), "done\n");
    run_free(&r);
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 404 Not Found\nContent-Length: 1\nX: a\r\n\nz"), HTTP1_E_NONE);
    assert_int_equal(r.p.msg.reason_len, 9);
    assert_memory_equal(r.p.msg.reason, "Not Found", 9);
    assert_field(&r.p, "x", "a");
    assert_field(&r.p, "content-length", "1");
    assert_string_equal(buf_cstr(&r.body), "z");
    run_free(&r);
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\r\nq\r\n0\r\nT: 1\n\n"),
                     HTTP1_E_NONE);
    assert_int_equal(r.p.ntrailers, 1);
    assert_string_equal(buf_cstr(&r.body), "q");
    run_free(&r);

    /* Until close: ends at the close, the connection is not kept. */
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 200 OK\r\n\r\nuntil the end"), HTTP1_E_NONE);
    assert_true(r.p.msg.until_close);
    assert_false(r.p.msg.keep_alive);
    assert_int_equal(r.last, HTTP1_DONE);
    assert_string_equal(buf_cstr(&r.body), "until the end");
    run_free(&r);

    /* 1xx, 204 and 304 have no body whatever they say; the final answer follows a 100. */
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
                                      "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
                     HTTP1_E_NONE);
    assert_int_equal(r.heads, 3);
    assert_int_equal(r.dones, 3);
    assert_int_equal(r.body.len, 0);
    assert_int_equal(r.p.msg.status, 304);
    run_free(&r);

    /* HEAD: no body even with a length; the second answer is to a GET. */
    assert_int_equal(resp(&r, "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(r.dones, 1);
    assert_int_equal(r.p.msg.content_length, 5);
    run_free(&r);

    /* Pipelined answers to HEAD then GET: the method is named after each DONE. */
    {
        struct http1_parser p;
        const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        size_t off = 0, used, bl;
        const char *b;
        http1_init(&p, HTTP1_RESPONSE, NULL);
        http1_response_to(&p, "HEAD", 4);
        assert_int_equal(http1_parse(&p, two, strlen(two), &used, &b, &bl), HTTP1_HEAD);
        off += used;
        assert_int_equal(http1_parse(&p, two + off, strlen(two) - off, &used, &b, &bl), HTTP1_DONE);
        http1_response_to(&p, "HEAD", 4);
        assert_int_equal(http1_parse(&p, two + off, strlen(two) - off, &used, &b, &bl), HTTP1_HEAD);
        off += used;
        assert_true(p.msg.no_body);
        assert_int_equal(http1_parse(&p, two + off, strlen(two) - off, &used, &b, &bl), HTTP1_DONE);
        http1_response_to(&p, "GET", 3); /* "abc" is a third answer's start, not a body */
        assert_int_equal(http1_parse(&p, two + off, strlen(two) - off, &used, &b, &bl), HTTP1_NEED_MORE);
        assert_int_equal(http1_finish(&p), HTTP1_ERROR);
        assert_int_equal(p.error, HTTP1_E_TRUNCATED);
        http1_free(&p);
    }

    /* CONNECT 2xx: no body, the rest is the tunnel. 101 likewise. */
    const char *c = "HTTP/1.1 200 OK\r\n\r\ntunnel";
    assert_int_equal(run_step(&r, HTTP1_RESPONSE, "CONNECT", NULL, c, strlen(c), 0, 0), HTTP1_E_NONE);
    assert_int_equal(r.last, HTTP1_DONE);
    assert_int_equal(r.body.len, 0);
    run_free(&r);
    const char *u = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframes";
    assert_int_equal(run_step(&r, HTTP1_RESPONSE, "GET", NULL, u, strlen(u), 0, 0), HTTP1_E_NONE);
    assert_int_equal(r.last, HTTP1_DONE);
    assert_true(r.p.msg.upgrade);
    run_free(&r);

    assert_int_equal(resp(&r, "GET", "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n"), HTTP1_E_NONE);
    assert_int_equal(r.p.msg.reason_len, 0);
    run_free(&r);
    assert_int_equal(resp(&r, "GET", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), HTTP1_E_NONE);
    assert_false(r.p.msg.keep_alive);
    run_free(&r);
    assert_int_equal(resp(&r, "GET", "HTTP/1.1 200 caf\xc3\xa9\tok\r\nContent-Length: 0\r\n\r\n"), HTTP1_E_NONE);
    run_free(&r);
    assert_int_equal(resp_err(""), HTTP1_E_NONE); /* closed before anything: HTTP1_CLOSED */
    assert_int_equal(resp_err("HTTP/1.1 100 Continue\r\n\r\n"), HTTP1_E_TRUNCATED); /* no final answer */
}

static void test_response_errors(void **state)
{
    (void)state;
    assert_int_equal(resp_err("\r\nHTTP/1.1 200 OK\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.1 99 Low\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.1 099 Low\r\n\r\n"), HTTP1_E_STATUS);
    assert_int_equal(resp_err("HTTP/1.1 600 High\r\n\r\n"), HTTP1_E_STATUS);
    assert_int_equal(resp_err("HTTP/1.1 2000 OK\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.1  200 OK\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.1\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.\r\n\r\n"), HTTP1_E_VERSION);
    assert_int_equal(resp_err("HTTP/x.1 200 OK\r\n\r\n"), HTTP1_E_VERSION);
    assert_int_equal(resp_err("HTTP/2.0 200 OK\r\n\r\n"), HTTP1_E_VERSION_UNSUPPORTED);
    assert_int_equal(resp_err("ICY 200 OK\r\n\r\n"), HTTP1_E_STATUS_LINE);
    assert_int_equal(resp_err("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP1_E_REASON);
    assert_int_equal(resp_err("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), HTTP1_E_TRUNCATED);
    /* A bare LF ends a response's head and trailer lines, not its chunk lines; a bare CR ends nothing. */
    assert_int_equal(resp_err("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\nq\r\n0\r\n\r\n"), HTTP1_E_BARE_LF);
    assert_int_equal(resp_err("HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n"), HTTP1_E_BARE_CR);
    assert_int_equal(resp_err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"),
                     HTTP1_E_CONTENT_LENGTH_DUP);
}

static void test_errors_have_texts(void **state)
{
    (void)state;
    for (int e = 0; e < HTTP1_E_COUNT; e++) {
        assert_non_null(http1_error_name((enum http1_error)e));
        assert_non_null(http1_strerror((enum http1_error)e));
        assert_true(strncmp(http1_error_name((enum http1_error)e), "HTTP1_E_", 8) == 0);
        for (int f = 0; f < e; f++)
            assert_string_not_equal(http1_error_name((enum http1_error)e), http1_error_name((enum http1_error)f));
        int st = http1_error_status((enum http1_error)e);
        assert_true(e == HTTP1_E_NONE ? st == 200 : st >= 400 && st < 600);
    }
    assert_string_equal(http1_error_name(HTTP1_E_COUNT), "HTTP1_E_UNKNOWN");
    assert_int_equal(http1_error_status(HTTP1_E_OBS_FOLD), 400);
    assert_int_equal(http1_error_status(HTTP1_E_VERSION_UNSUPPORTED), 505);
}

/* After an error the parser stays in error; after DONE a new message starts. */
static void test_states(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t used;
    const char *b;
    size_t bl;
    http1_init(&p, HTTP1_REQUEST, NULL);
    assert_int_equal(http1_parse(&p, "GET / HTTP/1.1\r\nHost : a\r\n", 26, &used, &b, &bl), HTTP1_ERROR);
    assert_int_equal(http1_parse(&p, "GET", 3, &used, &b, &bl), HTTP1_ERROR);
    assert_int_equal(http1_finish(&p), HTTP1_ERROR);
    assert_int_equal(p.error, HTTP1_E_SPACE_BEFORE_COLON);
    http1_free(&p);

    http1_init(&p, HTTP1_REQUEST, NULL);
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(http1_parse(&p, two, strlen(two), &used, &b, &bl), HTTP1_HEAD);
    assert_int_equal(used, 28);
    assert_memory_equal(p.msg.target, "/1", 2);
    assert_int_equal(http1_parse(&p, two + used, 0, &used, &b, &bl), HTTP1_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(http1_parse(&p, two + 28, strlen(two) - 28, &used, &b, &bl), HTTP1_HEAD);
    assert_memory_equal(p.msg.target, "/2", 2);
    assert_int_equal(http1_parse(&p, "", 0, &used, &b, &bl), HTTP1_DONE);
    assert_int_equal(http1_parse(&p, "", 0, &used, &b, &bl), HTTP1_NEED_MORE);
    assert_int_equal(http1_finish(&p), HTTP1_CLOSED);
    http1_free(&p);

    /* Body bytes point into the input, in as few events as the input allows. */
    http1_init(&p, HTTP1_REQUEST, NULL);
    const char *post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
    size_t off = 0;
    assert_int_equal(http1_parse(&p, post, strlen(post), &used, &b, &bl), HTTP1_HEAD);
    off += used;
    assert_int_equal(http1_parse(&p, post + off, strlen(post) - off, &used, &b, &bl), HTTP1_BODY);
    assert_ptr_equal(b, post + off);
    assert_int_equal(bl, 4);
    off += used;
    assert_int_equal(http1_parse(&p, post + off, strlen(post) - off, &used, &b, &bl), HTTP1_DONE);
    assert_int_equal(used, 0);
    assert_string_equal(post + off, "EXTRA");
    http1_free(&p);
}

static void test_is_token(void **state)
{
    (void)state;
    assert_true(http1_is_token("GET", 3));
    assert_true(http1_is_token("X-Custom_1.~!#$%&'*+^`|", 23));
    assert_false(http1_is_token("", 0));
    assert_false(http1_is_token("G T", 3));
    assert_false(http1_is_token("GET:", 4));
    assert_false(http1_is_token("G\x80", 2));
    assert_false(http1_is_token("G\0T", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_get),
        cmocka_unit_test(test_request_bodies),
        cmocka_unit_test(test_request_pipelined_and_keepalive),
        cmocka_unit_test(test_request_targets),
        cmocka_unit_test(test_request_line_errors),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_chunk_lines),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_memory_between_messages),
        cmocka_unit_test(test_field_count_limit),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_errors_have_texts),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_is_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
