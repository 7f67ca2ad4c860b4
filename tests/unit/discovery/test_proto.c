/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy protocol's pure part: subscription ids, client messages and the
 * line framer, with its size limit at the limit and one past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int parse(const char *line, struct proto_msg *m, char *err, size_t errlen)
{
    return proto_parse(line, strlen(line), m, err, errlen);
}

static void test_ids(void **state)
{
    (void)state;
    struct proto_msg m;
    char err[256];
    assert_int_equal(proto_parse_id("destination:10.96.0.1:443", 25, &m, err, sizeof err), 0);
    assert_int_equal(m.sub, PROTO_SUB_DESTINATION);
    assert_string_equal(m.id, "destination:10.96.0.1:443");
    const char *v6 = "destination:[fd00:96:0::10]:80";
    assert_int_equal(proto_parse_id(v6, strlen(v6), &m, err, sizeof err), 0);
    assert_string_equal(m.id, "destination:[fd00:96::10]:80"); /* canonical */
    assert_int_equal(proto_parse_id("policy:shop/web-1", 17, &m, err, sizeof err), 0);
    assert_int_equal(m.sub, PROTO_SUB_POLICY);
    assert_string_equal(m.ns, "shop");
    assert_string_equal(m.name, "web-1");
    const char *bad[] = {"", "destination:", "destination:10.96.0.1", "destination:10.96.0.1:0",
                         "destination:fd00::1:80", "policy:shop", "policy:/x", "policy:Shop/x", "policy:shop/",
                         "service:shop/web", "destination:10.96.0.1:443 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(proto_parse_id(bad[i], strlen(bad[i]), &m, err, sizeof err), -EINVAL);
    char nul[] = "policy:shop/a\0b";
    assert_int_equal(proto_parse_id(nul, sizeof nul - 1, &m, err, sizeof err), -EINVAL);
    char longid[PROTO_MAX_ID + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(proto_parse_id(longid, strlen(longid), &m, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
}

static void test_messages(void **state)
{
    (void)state;
    struct proto_msg m;
    char err[256];
    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":\"destination:10.0.0.1:80\",\"future\":1}", &m, err,
                           sizeof err), 0);
    assert_int_equal(m.type, PROTO_SUBSCRIBE);
    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"id\":\"policy:a/b\"}", &m, err, sizeof err), 0);
    assert_int_equal(m.type, PROTO_UNSUBSCRIBE);
    assert_int_equal(parse("{\"type\":\"ack\",\"id\":\"policy:a/b\",\"version\":7}", &m, err, sizeof err), 0);
    assert_int_equal(m.version, 7);
    assert_int_equal(parse("{\"type\":\"nack\",\"id\":\"policy:a/b\",\"version\":7,\"reason\":\"bad route\"}", &m,
                           err, sizeof err), 0);
    assert_string_equal(m.reason, "bad route");
    static const struct {
        const char *line, *why;
    } bad[] = {
        {"", "not JSON"},
        {"[1]", "expected a JSON object"},
        {"{\"id\":\"policy:a/b\"}", "type:"},
        {"{\"type\":\"SUBSCRIBE\",\"id\":\"policy:a/b\"}", "type:"},
        {"{\"type\":\"subscribe\"}", "id:"},
        {"{\"type\":\"subscribe\",\"id\":5}", "id:"},
        {"{\"type\":\"subscribe\",\"id\":\"policy:a\"}", "expected policy:NAMESPACE/POD"},
        {"{\"type\":\"ack\",\"id\":\"policy:a/b\"}", "version:"},
        {"{\"type\":\"ack\",\"id\":\"policy:a/b\",\"version\":0}", "version:"},
        {"{\"type\":\"ack\",\"id\":\"policy:a/b\",\"version\":\"1\"}", "version:"},
        {"{\"type\":\"nack\",\"id\":\"policy:a/b\",\"version\":1}", "reason:"},
        {"{\"type\":\"nack\",\"id\":\"policy:a/b\",\"version\":1,\"reason\":\"\"}", "reason:"},
        {"{\"type\":\"subscribe\",\"type\":\"ack\",\"id\":\"policy:a/b\"}", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i].line, &m, err, sizeof err), -EINVAL);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: %s (expected %s)", bad[i].line, err, bad[i].why);
    }
    /* the reason at its limit and one past */
    char line[PROTO_MAX_REASON + 200];
    char reason[PROTO_MAX_REASON + 2];
    memset(reason, 'r', PROTO_MAX_REASON);
    reason[PROTO_MAX_REASON] = '\0';
    snprintf(line, sizeof line, "{\"type\":\"nack\",\"id\":\"policy:a/b\",\"version\":1,\"reason\":\"%s\"}", reason);
    assert_int_equal(parse(line, &m, err, sizeof err), 0);
    reason[PROTO_MAX_REASON] = 'r';
    reason[PROTO_MAX_REASON + 1] = '\0';
    snprintf(line, sizeof line, "{\"type\":\"nack\",\"id\":\"policy:a/b\",\"version\":1,\"reason\":\"%s\"}", reason);
    assert_int_equal(parse(line, &m, err, sizeof err), -EINVAL);
}

struct seen {
    char lines[16][64];
    size_t lens[16];
    int large[16];
    int n;
};

static int collect(void *arg, const char *line, size_t len, int too_large)
{
    struct seen *s = arg;
    if (s->n < 16) {
        s->large[s->n] = too_large;
        s->lens[s->n] = len;
        snprintf(s->lines[s->n], sizeof s->lines[s->n], "%.*s", line ? (int)(len < 63 ? len : 63) : 0,
                 line ? line : "");
    }
    s->n++;
    return 0;
}

/* Feeds text whole and byte by byte: both must split it the same way. */
static void frame(const char *text, size_t max, struct seen *out, int finish)
{
    struct proto_framer f;
    struct seen bytewise = {0};
    memset(out, 0, sizeof *out);
    proto_framer_init(&f, max);
    proto_framer_feed(&f, text, strlen(text), collect, out);
    if (finish)
        proto_framer_finish(&f, collect, out);
    proto_framer_free(&f);
    proto_framer_init(&f, max);
    for (size_t i = 0; text[i]; i++)
        proto_framer_feed(&f, text + i, 1, collect, &bytewise);
    if (finish)
        proto_framer_finish(&f, collect, &bytewise);
    proto_framer_free(&f);
    assert_int_equal(out->n, bytewise.n);
    for (int i = 0; i < out->n && i < 16; i++) {
        assert_int_equal(out->large[i], bytewise.large[i]);
        assert_string_equal(out->lines[i], bytewise.lines[i]);
        if (!out->large[i])
            assert_int_equal(out->lens[i], bytewise.lens[i]);
    }
}

static void test_framer(void **state)
{
    (void)state;
    struct seen s;
    frame("a\nbb\r\n\nccc", 8, &s, 0);
    assert_int_equal(s.n, 3); /* "ccc" waits for its newline */
    assert_string_equal(s.lines[0], "a");
    assert_string_equal(s.lines[1], "bb");
    assert_int_equal(s.lens[2], 0);
    frame("a\nccc", 8, &s, 1);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.lines[1], "ccc"); /* finish delivers the last line */
    /* max 4: "abcd" is at the limit, "abcde" one past; the stream goes on after it */
    frame("abcd\nabcde\nok\n", 4, &s, 1);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.lines[0], "abcd");
    assert_int_equal(s.large[1], 1);
    assert_string_equal(s.lines[2], "ok");
    /* a long line is reported once, however it arrives, and never delivered */
    frame("0123456789012345678901234567890123456789\nz\n", 4, &s, 1);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.large[0], 1);
    assert_string_equal(s.lines[1], "z");
    /* an oversize last line without newline is dropped at the end */
    frame("x\n0123456789", 4, &s, 1);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.large[1], 1);
}

static int stop_at_first(void *arg, const char *line, size_t len, int too_large)
{
    (void)line, (void)len, (void)too_large;
    (*(int *)arg)++;
    return 7;
}

static void test_framer_stop(void **state)
{
    (void)state;
    struct proto_framer f;
    int calls = 0;
    proto_framer_init(&f, 16);
    assert_int_equal(proto_framer_feed(&f, "a\nb\nc\n", 6, stop_at_first, &calls), 7);
    assert_int_equal(calls, 1);
    proto_framer_free(&f);
}

static void test_line(void **state)
{
    (void)state;
    char *l = proto_line(json_pack("{s:s, s:i}", "type", "hello", "protocol", 1));
    assert_string_equal(l, "{\"protocol\":1,\"type\":\"hello\"}\n");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),         cmocka_unit_test(test_messages),
        cmocka_unit_test(test_framer),      cmocka_unit_test(test_framer_stop),
        cmocka_unit_test(test_line),
    };
    return cmocka_run_group_tests_name("discovery proto", tests, NULL, NULL);
}
