/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure parts of lib/k8s.c: the HTTP/1.1 response reader
 * over lib/http1 (fed whole and byte by byte), the request head writer,
 * Status messages and token files. The I/O is tested against a fake API server in
 * tests/integration/test_k8s.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k8s.h"

/* Feeds text whole, then byte by byte; both must agree. Returns the final rc. */
static int feed(const char *text, size_t max_body, struct k8s_http_response *out)
{
    size_t len = strlen(text);
    struct k8s_http_response a;
    k8s_http_response_init(&a, max_body);
    size_t used = 0;
    int rc_whole = k8s_http_response_feed(&a, text, len, &used);

    k8s_http_response_init(out, max_body);
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        size_t u = 0;
        rc = k8s_http_response_feed(out, text + i, 1, &u);
        if (rc != 0)
            break;
    }
    assert_int_equal(rc, rc_whole);
    if (rc == 1) {
        assert_int_equal(a.status, out->status);
        assert_int_equal(a.body.len, out->body.len);
        if (a.body.len)
            assert_memory_equal(a.body.data, out->body.data, a.body.len);
    }
    k8s_http_response_free(&a);
    return rc;
}

static void test_content_length(void **state)
{
    (void)state;
    struct k8s_http_response r;
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
    assert_int_equal(feed(t, 1024, &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 7);
    assert_string_equal(r.body.data, "{\"a\":1}");
    assert_string_equal(r.content_type, "application/json");
    assert_true(r.keep_alive);
    k8s_http_response_free(&r);
}

static void test_extra_bytes_not_consumed(void **state)
{
    (void)state;
    struct k8s_http_response r;
    const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
    k8s_http_response_init(&r, 1024);
    size_t used = 0;
    assert_int_equal(k8s_http_response_feed(&r, t, strlen(t), &used), 1);
    assert_int_equal(used, strlen(t) - strlen("HTTP/1.1"));
    k8s_http_response_free(&r);
}

static void test_chunked(void **state)
{
    (void)state;
    struct k8s_http_response r;
    const char *t = "HTTP/1.1 404 Not Found\r\ntransfer-encoding: Chunked\r\n\r\n"
                    "4\r\n{\"ki\r\nA;ext=1\r\nnd\":\"Statu\r\n2\r\ns\"\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n";
    assert_int_equal(feed(t, 1024, &r), 1);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body.data, "{\"kind\":\"Status\"}");
    k8s_http_response_free(&r);
}

static void test_connection_close_and_eof_body(void **state)
{
    (void)state;
    struct k8s_http_response r;
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 10, &r), 1);
    assert_false(r.keep_alive);
    k8s_http_response_free(&r);

    assert_int_equal(feed("HTTP/1.0 200 OK\r\n\r\n{}", 10, &r), 0);
    assert_int_equal(r.state, K8S_HTTP_BODY_EOF);
    assert_int_equal(k8s_http_response_eof(&r), 1);
    assert_string_equal(r.body.data, "{}");
    assert_false(r.keep_alive);
    k8s_http_response_free(&r);

    /* Truncated Content-Length body: EOF is an error. */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", 10, &r), 0);
    assert_int_equal(k8s_http_response_eof(&r), -EBADMSG);
    k8s_http_response_free(&r);
}

static void test_informational_and_no_body(void **state)
{
    (void)state;
    struct k8s_http_response r;
    assert_int_equal(feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 10, &r), 1);
    assert_int_equal(r.status, 201);
    k8s_http_response_free(&r);
    assert_int_equal(feed("HTTP/1.1 204 No Content\r\n\r\n", 10, &r), 1);
    assert_int_equal(r.body.len, 0);
    k8s_http_response_free(&r);
}

static void test_limits(void **state)
{
    (void)state;
    struct k8s_http_response r;
    /* Content-Length at the limit, and one over it. */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", 4, &r), 1);
    k8s_http_response_free(&r);
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde", 4, &r), -EFBIG);
    k8s_http_response_free(&r);
    /* Chunks adding up past the limit. */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 4, &r),
                     -EFBIG);
    k8s_http_response_free(&r);
    /* Body until EOF past the limit. */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\n\r\nabcde", 4, &r), -EFBIG);
    k8s_http_response_free(&r);
    /* A head that never ends. */
    size_t n = K8S_MAX_HEAD + 100;
    char *big = malloc(n + 1);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', n - 20);
    big[n] = '\0';
    k8s_http_response_init(&r, 10);
    size_t used;
    assert_int_equal(k8s_http_response_feed(&r, big, n, &used), -EFBIG);
    k8s_http_response_free(&r);
    free(big);
    /* More header fields than lib/http1's default allows. */
    struct buf many;
    buf_init(&many, 1 << 20);
    buf_appendf(&many, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
    for (int i = 1; i < HTTP1_MAX_FIELDS_DEFAULT; i++)
        buf_appendf(&many, "X-%d: v\r\n", i);
    buf_appendf(&many, "\r\n");
    assert_int_equal(feed(buf_cstr(&many), 4, &r), 1); /* at the limit */
    k8s_http_response_free(&r);
    many.len -= 2;
    buf_appendf(&many, "X-last: v\r\n\r\n");
    assert_int_equal(feed(buf_cstr(&many), 4, &r), -EFBIG); /* one past */
    k8s_http_response_free(&r);
    buf_free(&many);
    /* A huge chunk size. */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 4, &r), -EFBIG);
    k8s_http_response_free(&r);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Odd\r\n\r\n",
        "HTTP/1.1 600 Odd\r\n\r\n",
        "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n", /* a bare CR (a bare LF ends a response line, RFC 9112 2.2) */
        "\r\n",
        "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01" "b\r\n\r\n",
        /* Refused since lib/http1 reads these answers. */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;=x\r\na\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT : x\r\n\r\n",
        "HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct k8s_http_response r;
        int rc = feed(bad[i], 1000, &r);
        if (rc != -EBADMSG && rc != -EFBIG)
            fail_msg("case %zu accepted (rc %d): %s", i, rc, bad[i]);
        k8s_http_response_free(&r);
    }
}

static void test_request_head(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(k8s_http_request_head(&b, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", "10.96.0.1",
                                           "443", "tok.en-1", 1, 12),
                     0);
    assert_non_null(strstr(b.data, "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\n"));
    assert_non_null(strstr(b.data, "\r\nHost: 10.96.0.1:443\r\n"));
    assert_non_null(strstr(b.data, "\r\nAuthorization: Bearer tok.en-1\r\n"));
    assert_non_null(strstr(b.data, "\r\nContent-Length: 12\r\n"));
    assert_non_null(strstr(b.data, "\r\nContent-Type: application/json\r\n"));
    assert_int_equal(memcmp(b.data + b.len - 4, "\r\n\r\n", 4), 0);
    buf_reset(&b);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/api/v1/namespaces/a", "fd00::1", "6443", NULL, 0, 0), 0);
    assert_non_null(strstr(b.data, "Host: [fd00::1]:6443\r\n"));
    assert_null(strstr(b.data, "Authorization"));
    assert_null(strstr(b.data, "Content-Length"));

    /* Anything that could smuggle a header or a second request. */
    buf_reset(&b);
    assert_int_equal(k8s_http_request_head(&b, "get", "/", "h", "1", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "x", "h", "1", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/a b", "h", "1", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/a\r\nX: y", "h", "1", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/", "h\r\n", "1", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/", "h", "0", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/", "h", "65536", NULL, 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/", "h", "1", "a\nb", 0, 0), -EINVAL);
    assert_int_equal(k8s_http_request_head(&b, "GET", "/", "h", "1", "", 0, 0), -EINVAL);
    buf_free(&b);
}

static void test_status_message(void **state)
{
    (void)state;
    char m[256];
    json_t *s = json_pack("{s:s, s:s, s:s, s:i}", "kind", "Status", "message", "namespaces \"x\" not found",
                          "reason", "NotFound", "code", 404);
    k8s_status_message(s, 404, m, sizeof m);
    assert_string_equal(m, "HTTP 404: namespaces \"x\" not found (reason NotFound)");
    json_decref(s);
    s = json_pack("{s:s}", "kind", "Namespace");
    k8s_status_message(s, 500, m, sizeof m);
    assert_string_equal(m, "HTTP 500");
    json_decref(s);
    k8s_status_message(NULL, 502, m, sizeof m);
    assert_string_equal(m, "HTTP 502");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_read_token(void **state)
{
    (void)state;
    char dir[] = "/tmp/weft-k8s-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/token", dir);
    char err[256];
    char *tok = NULL;

    write_file(path, "  eyJhbGciOi.x-y_z\n", 19);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), 0);
    assert_string_equal(tok, "eyJhbGciOi.x-y_z");
    free(tok);

    write_file(path, "\n\n", 2);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), -EINVAL);
    write_file(path, "a b", 3);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), -EINVAL);

    /* At the limit, and one byte over. */
    char *big = malloc(K8S_MAX_TOKEN + 1);
    memset(big, 'a', K8S_MAX_TOKEN + 1);
    write_file(path, big, K8S_MAX_TOKEN);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), 0);
    assert_int_equal(strlen(tok), K8S_MAX_TOKEN);
    free(tok);
    write_file(path, big, K8S_MAX_TOKEN + 1);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), -EFBIG);
    free(big);

    unlink(path);
    assert_int_equal(k8s_read_token(path, &tok, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, path));
    rmdir(dir);
}

static void test_client_errors(void **state)
{
    (void)state;
    char err[256];
    assert_null(k8s_client_new("bad host", "443", "/nonexistent", NULL, err, sizeof err));
    assert_null(k8s_client_new("h", "443", "/nonexistent/ca.crt", NULL, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/ca.crt"));
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_null(k8s_client_in_cluster(err, sizeof err));
    assert_non_null(strstr(err, "not running in a Kubernetes cluster"));
}

/* The recheck of a resource that is not installed: within [3/4, 5/4] of
 * the base, both ends reached in spirit (spread over the range), never out. */
static void test_recheck_delay(void **state)
{
    (void)state;
    struct k8s_backoff b;
    k8s_backoff_init(&b, 800, 30000, 42);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint32_t v = k8s_recheck_delay(&b, 30000);
        assert_true(v >= 22500 && v <= 37500);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo < 23000 && hi > 37000); /* jittered over the whole range, not a constant */
    assert_int_equal(k8s_recheck_delay(&b, 1), 1);
    assert_true(k8s_recheck_delay(&b, UINT32_MAX / 2) >= UINT32_MAX / 2 - UINT32_MAX / 8);
}

static void test_backoff(void **state)
{
    (void)state;
    struct k8s_backoff b;
    k8s_backoff_init(&b, 100, 800, 42);
    const uint32_t d[] = {100, 200, 400, 800, 800, 800};
    uint32_t first[6];
    for (int i = 0; i < 6; i++) {
        uint32_t v = k8s_backoff_next(&b);
        first[i] = v;
        assert_true(v >= d[i] / 2 && v <= d[i]);
    }
    /* Another seed draws other delays in the same bounds: the jitter. */
    struct k8s_backoff b2;
    k8s_backoff_init(&b2, 100, 800, 7);
    int differ = 0;
    for (int i = 0; i < 6; i++)
        differ += k8s_backoff_next(&b2) != first[i];
    assert_true(differ > 0);
    k8s_backoff_reset(&b);
    assert_true(k8s_backoff_next(&b) <= 100);
    /* max below initial: initial is the max; huge max: no overflow. */
    k8s_backoff_init(&b, 500, 10, 1);
    for (int i = 0; i < 4; i++)
        assert_true(k8s_backoff_next(&b) <= 500);
    k8s_backoff_init(&b, 1u << 30, UINT32_MAX, 1);
    for (int i = 0; i < 8; i++)
        assert_true(k8s_backoff_next(&b) >= 1u << 29);
}

static void test_watch_parse_event(void **state)
{
    (void)state;
    enum k8s_watch_kind kind;
    json_t *obj = NULL;
    const char *rv = NULL;
    long code = 0;
    char err[256];
    const char *ok = "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"17\"}}}";
    assert_int_equal(k8s_watch_parse_event(ok, strlen(ok), &kind, &obj, &rv, &code, err, sizeof err), 0);
    assert_int_equal(kind, K8S_WATCH_MODIFIED);
    assert_string_equal(rv, "17");
    json_decref(obj);
    const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}";
    assert_int_equal(k8s_watch_parse_event(bm, strlen(bm), &kind, &obj, &rv, &code, err, sizeof err), 0);
    assert_int_equal(kind, K8S_WATCH_BOOKMARK);
    json_decref(obj);
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\","
                       "\"message\":\"too old resource version: 1 (5)\"}}";
    assert_int_equal(k8s_watch_parse_event(gone, strlen(gone), &kind, &obj, &rv, &code, err, sizeof err), -EPROTO);
    assert_int_equal(code, 410);
    assert_non_null(strstr(err, "too old resource version"));
    json_decref(obj);
    const char *bad[] = {"", "[]", "{\"type\":\"ADDED\"}", "{\"type\":\"ADDED\",\"object\":{}}",
                         "{\"type\":\"SOMETHING\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}",
                         "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"\"}}}",
                         "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        obj = NULL;
        assert_int_equal(k8s_watch_parse_event(bad[i], strlen(bad[i]), &kind, &obj, &rv, &code, err, sizeof err),
                         -EINVAL);
        assert_null(obj);
    }
}

static void test_staleness(void **state)
{
    (void)state;
    struct k8s_watch_stats st;
    memset(&st, 0, sizeof st);
    atomic_store(&st.started_ms, 1000);
    assert_true(k8s_watch_staleness_seconds(&st, 3500) == 2.5); /* never synced: since the start */
    atomic_store(&st.last_ok_ms, 3000);
    assert_true(k8s_watch_staleness_seconds(&st, 3500) == 0.5);
    atomic_store(&st.connected, 1);
    assert_true(k8s_watch_staleness_seconds(&st, 9000) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_extra_bytes_not_consumed),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_connection_close_and_eof_body),
        cmocka_unit_test(test_informational_and_no_body),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_request_head),
        cmocka_unit_test(test_status_message),
        cmocka_unit_test(test_read_token),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_recheck_delay),
        cmocka_unit_test(test_watch_parse_event),
        cmocka_unit_test(test_staleness),
    };
    return cmocka_run_group_tests_name("k8s", tests, NULL, NULL);
}
