/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/http_h2_map.c: HTTP/2 blocks to heads (pseudo-headers,
 * content-length, weft-proto stripped, connection-specific fields dropped,
 * Host as the authority, the model's bounds at the limit and one past) and
 * heads to blocks (lower-cased names, the length, te: trailers for gRPC,
 * weft-proto, CONNECT's form), and gRPC status parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http_h2_map.h"

#define F(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static int span_is(struct http_span s, const char *v)
{
    return s.len == strlen(v) && memcmp(s.p, v, s.len) == 0;
}

static const struct h2_field *out_find(const struct h2map_out *o, const char *name)
{
    return h2_field_find(o->f, o->n, name);
}

static void test_request_from_block(void **state)
{
    (void)state;
    struct h2_field f[] = {
        F(":method", "POST"), F(":scheme", "http"), F(":authority", "svc:8080"), F(":path", "/a?b=1"),
        F("content-type", "text/plain"), F("content-length", "12"), F("weft-proto", "h1"), F("te", "trailers"),
        F("connection", "x-drop"), F("keep-alive", "5"), F("transfer-encoding", "chunked"), F("upgrade", "ws"),
        F("x-drop", "named by connection"), F("x-keep", "1"),
    };
    struct http_field out[8];
    struct http_head h;
    struct http_span proto;
    assert_int_equal(h2map_head_from(f, sizeof f / sizeof *f, 1, &h, out, 8, &proto), 0);
    assert_true(span_is(h.method, "POST"));
    assert_true(span_is(h.scheme, "http"));
    assert_true(span_is(h.authority, "svc:8080"));
    assert_true(span_is(h.path, "/a?b=1"));
    assert_int_equal(h.content_length, 12);
    assert_true(span_is(proto, "h1"));
    assert_int_equal(h.nfields, 2);
    assert_true(span_is(h.fields[0].name, "content-type"));
    assert_true(span_is(h.fields[1].name, "x-keep"));

    /* Host is the authority when :authority is absent. */
    struct h2_field g[] = {F(":method", "GET"), F(":scheme", "http"), F(":path", "/"), F("host", "h.example")};
    assert_int_equal(h2map_head_from(g, 4, 1, &h, out, 8, NULL), 0);
    assert_true(span_is(h.authority, "h.example"));
    assert_int_equal(h.nfields, 0);
    assert_int_equal(h.content_length, -1);

    struct h2_field bad[] = {F(":method", "GET"), F("content-length", "1x")};
    assert_int_equal(h2map_head_from(bad, 2, 1, &h, out, 8, NULL), -EINVAL);
    struct h2_field st[] = {F(":status", "99")};
    assert_int_equal(h2map_head_from(st, 1, 0, &h, out, 8, NULL), -EINVAL);
    struct h2_field ok[] = {F(":status", "204"), F("grpc-status", "14")};
    assert_int_equal(h2map_head_from(ok, 2, 0, &h, out, 8, NULL), 0);
    assert_int_equal(h.status, 204);
    assert_int_equal(h2map_grpc_status(&h), 14);
}

/* The exchange model's bounds: HTTP_MSG_MAX_FIELDS regular fields and
 * HTTP_MSG_MAX_HEAD bytes of names and values, each at and one past. */
static void test_bounds(void **state)
{
    (void)state;
    static struct h2_field f[HTTP_MSG_MAX_FIELDS + 2];
    static struct http_field out[HTTP_MSG_MAX_FIELDS];
    struct http_head h;
    f[0] = (struct h2_field)F(":method", "GET");
    for (int i = 1; i <= HTTP_MSG_MAX_FIELDS + 1; i++)
        f[i] = (struct h2_field)F("x-a", "1");
    assert_int_equal(h2map_head_from(f, HTTP_MSG_MAX_FIELDS + 1, 1, &h, out, HTTP_MSG_MAX_FIELDS, NULL), 0);
    assert_int_equal(h.nfields, HTTP_MSG_MAX_FIELDS);
    assert_int_equal(h2map_head_from(f, HTTP_MSG_MAX_FIELDS + 2, 1, &h, out, HTTP_MSG_MAX_FIELDS, NULL), -E2BIG);

    static char big[HTTP_MSG_MAX_HEAD + 1];
    memset(big, 'v', sizeof big);
    /* ":method" + "GET" = 10, "x-big" = 5: the value takes the rest. */
    struct h2_field g[] = {F(":method", "GET"), {"x-big", 5, big, HTTP_MSG_MAX_HEAD - 15}};
    assert_int_equal(h2map_head_from(g, 2, 1, &h, out, 4, NULL), 0);
    g[1].valuelen++;
    assert_int_equal(h2map_head_from(g, 2, 1, &h, out, 4, NULL), -E2BIG);
}

static void test_block_from_head(void **state)
{
    (void)state;
    static struct h2map_out o;
    struct http_field fl[] = {{{"Content-Type", 12}, {"application/grpc+proto", 22}},
                              {{"X-Mixed-Case", 12}, {"V", 1}},
                              {{"TE", 2}, {"gzip", 4}}};
    struct http_head h = {.method = {"POST", 4}, .scheme = {"http", 4}, .authority = {"svc", 3},
                          .path = {"/pkg.Svc/M", 10}, .fields = fl, .nfields = 3, .content_length = 5};
    assert_int_equal(h2map_block(&h, 1, "h2", &o), 0);
    assert_true(o.f[0].namelen == 7 && memcmp(o.f[0].name, ":method", 7) == 0); /* pseudo-headers first */
    const struct h2_field *x = out_find(&o, "x-mixed-case");
    assert_non_null(x);
    assert_int_equal(x->valuelen, 1);
    assert_non_null(out_find(&o, "content-type"));
    assert_null(out_find(&o, "X-Mixed-Case"));
    x = out_find(&o, "content-length");
    assert_true(x && x->valuelen == 1 && x->value[0] == '5');
    x = out_find(&o, "te");
    assert_true(x && x->valuelen == 8 && memcmp(x->value, "trailers", 8) == 0); /* gRPC's, not the caller's */
    x = out_find(&o, "weft-proto");
    assert_true(x && x->valuelen == 2);

    struct http_head c = {.method = {"CONNECT", 7}, .authority = {"db:5432", 7}, .content_length = -1};
    assert_int_equal(h2map_block(&c, 1, NULL, &o), 0);
    assert_int_equal(o.n, 2);
    assert_null(out_find(&o, ":path"));
    assert_null(out_find(&o, ":scheme"));

    struct http_head r = {.status = 503, .content_length = 0};
    assert_int_equal(h2map_block(&r, 0, NULL, &o), 0);
    assert_true(o.f[0].namelen == 7 && memcmp(o.f[0].name, ":status", 7) == 0);
    assert_int_equal(o.f[0].valuelen, 3);
    struct http_field tf[] = {{{"Grpc-Status", 11}, {"0", 1}}};
    struct http_head t = {.fields = tf, .nfields = 1, .content_length = -1};
    assert_int_equal(h2map_block(&t, 0, NULL, &o), 0);
    assert_int_equal(o.n, 1);
    assert_int_equal(h2map_grpc_status(&t), 0);

    static struct http_field many[H2MAP_MAX_OUT + 1];
    for (size_t i = 0; i < H2MAP_MAX_OUT + 1; i++)
        many[i] = (struct http_field){{"x", 1}, {"1", 1}};
    struct http_head m = {.status = 200, .fields = many, .nfields = H2MAP_MAX_OUT - 1, .content_length = -1};
    assert_int_equal(h2map_block(&m, 0, NULL, &o), 0); /* :status + MAX - 1 */
    m.nfields++;
    assert_int_equal(h2map_block(&m, 0, NULL, &o), -E2BIG);
}

static void test_grpc_status(void **state)
{
    (void)state;
    struct http_field f[1];
    struct http_head h = {.fields = f, .nfields = 1};
    const char *vals[] = {"0", "16", "99", "100", "", "1a", "-1"};
    int want[] = {0, 16, 99, -1, -1, -1, -1};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        f[0] = (struct http_field){{"grpc-status", 11}, {vals[i], strlen(vals[i])}};
        assert_int_equal(h2map_grpc_status(&h), want[i]);
    }
    h.nfields = 0;
    assert_int_equal(h2map_grpc_status(&h), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_from_block),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_block_from_head),
        cmocka_unit_test(test_grpc_status),
    };
    return cmocka_run_group_tests_name("proxy/http_h2_map", tests, NULL, NULL);
}
