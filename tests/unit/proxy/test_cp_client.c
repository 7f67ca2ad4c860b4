/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the discovery client's pure parts (proxy/cp_client.c): the
 * response body split into lines (fed whole and byte by byte, "\r" dropped,
 * the size limit at the limit and one past), the client messages as the
 * server's parser reads them (a nack's reason escaped and cut to the
 * server's 1,024 bytes), the policy overlay; and the settings it reads
 * (proxy/config.c: WEFT_DISCOVERY_* values and their errors, config_copy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_client.h"

struct got {
    char lines[8][64];
    size_t n;
};

static int collect(void *arg, const char *line, size_t len)
{
    struct got *g = arg;
    assert_true(g->n < 8);
    assert_true(len < sizeof g->lines[0]);
    memcpy(g->lines[g->n], line, len);
    g->lines[g->n][len] = '\0';
    g->n++;
    return 0;
}

static void test_lines(void **state)
{
    (void)state;
    const char *in = "{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\"";
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        struct cpc_lines l;
        struct got g = {0};
        cpc_lines_init(&l, 16);
        if (bytewise)
            for (size_t i = 0; i < strlen(in); i++)
                assert_int_equal(cpc_lines_feed(&l, in + i, 1, collect, &g), 0);
        else
            assert_int_equal(cpc_lines_feed(&l, in, strlen(in), collect, &g), 0);
        assert_int_equal(g.n, 3);
        assert_string_equal(g.lines[0], "{\"a\":1}");
        assert_string_equal(g.lines[1], "");
        assert_string_equal(g.lines[2], "{\"b\":2}");
        assert_int_equal(cpc_lines_feed(&l, ":3}\n", 4, collect, &g), 0);
        assert_int_equal(g.n, 4);
        assert_string_equal(g.lines[3], "{\"c\":3}");
        cpc_lines_free(&l);
    }
}

/* A line of max bytes is delivered (also with a "\r" after it), one of
 * max + 1 breaks the stream. */
static void test_lines_limit(void **state)
{
    (void)state;
    char line[40];
    for (int extra = 0; extra <= 1; extra++)
        for (int cr = 0; cr <= 1; cr++)
            for (int bytewise = 0; bytewise <= 1; bytewise++) {
                size_t n = 16 + (size_t)extra;
                memset(line, 'x', n);
                memcpy(line + n, cr ? "\r\n" : "\n", cr ? 2 : 1);
                size_t total = n + (cr ? 2 : 1);
                struct cpc_lines l;
                struct got g = {0};
                int r = 0;
                cpc_lines_init(&l, 16);
                if (bytewise) {
                    for (size_t i = 0; i < total && r == 0; i++)
                        r = cpc_lines_feed(&l, line + i, 1, collect, &g);
                } else {
                    r = cpc_lines_feed(&l, line, total, collect, &g);
                }
                if (extra) {
                    assert_int_equal(r, -E2BIG);
                    assert_int_equal(g.n, 0);
                } else {
                    assert_int_equal(r, 0);
                    assert_int_equal(g.n, 1);
                    assert_int_equal(strlen(g.lines[0]), 16);
                }
                cpc_lines_free(&l);
            }
}

static json_t *only_line(struct buf *b)
{
    assert_true(b->len > 0);
    assert_int_equal(b->data[b->len - 1], '\n');
    assert_null(memchr(b->data, '\n', b->len - 1));
    json_t *o = json_loadb(b->data, b->len - 1, 0, NULL);
    assert_non_null(o);
    buf_reset(b);
    return o;
}

static void test_messages(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(cpc_msg_subscribe(&b, "subscribe", "destination:10.96.0.1:443"), 0);
    json_t *o = only_line(&b);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "subscribe");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "destination:10.96.0.1:443");
    json_decref(o);
    assert_int_equal(cpc_msg_ack(&b, "policy:shop/web-1", 12345678901ULL), 0);
    o = only_line(&b);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "ack");
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 12345678901LL);
    json_decref(o);
    /* A reason with quotes and a newline stays one line; a long one is cut
     * to the server's limit; an empty one is replaced. */
    assert_int_equal(cpc_msg_nack(&b, "destination:10.0.0.1:80", 7, "answer.kind: \"x\"\nmore"), 0);
    o = only_line(&b);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "answer.kind: \"x\"\nmore");
    json_decref(o);
    char longr[3000];
    memset(longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = '\0';
    assert_int_equal(cpc_msg_nack(&b, "destination:10.0.0.1:80", 7, longr), 0);
    o = only_line(&b);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "reason"))), 1024);
    json_decref(o);
    assert_int_equal(cpc_msg_nack(&b, "destination:10.0.0.1:80", 7, ""), 0);
    o = only_line(&b);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "rejected");
    json_decref(o);
    /* The queue's own limit. */
    struct buf small;
    buf_init(&small, 20);
    assert_int_equal(cpc_msg_subscribe(&small, "subscribe", "destination:10.96.0.1:443"), -E2BIG);
    buf_free(&small);
    buf_free(&b);
}

static const char *env_get(void *ctx, const char *name)
{
    const char *const *kv = ctx;
    size_t l = strlen(name);
    for (size_t i = 0; kv[i]; i++)
        if (strncmp(kv[i], name, l) == 0 && kv[i][l] == '=')
            return kv[i] + l + 1;
    return NULL;
}

static int load(struct proxy_config *cfg, const char *extra, char *err, size_t errlen)
{
    const char *kv[] = {"WEFT_POD_NAMESPACE=shop", "WEFT_CERT=/c", "WEFT_KEY=/k", "WEFT_ALLOW_FROM=dev/*",
                        "WEFT_APP_PROBES={\"app/livez\":{\"tcpSocket\":{\"port\":8080}}}", extra, NULL};
    char *argv[] = {"weft-proxy", NULL};
    int help;
    return config_load(cfg, 1, argv, env_get, kv, &help, err, errlen);
}

static void test_settings(void **state)
{
    (void)state;
    struct proxy_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, "WEFT_LOG_LEVEL=info", err, sizeof err), 0);
    assert_string_equal(cfg.discovery_addr, "");
    assert_string_equal(cfg.discovery_server_name, "weft-discovery.weft-system.svc");
    assert_int_equal(cfg.discovery_wait_ms, 1000);
    assert_int_equal(cfg.discovery_idle_s, 600);
    config_free(&cfg);
    assert_int_equal(load(&cfg, "WEFT_DISCOVERY_ADDR=[fd00::1]:8445", err, sizeof err), 0);
    assert_string_equal(cfg.discovery_addr, "[fd00::1]:8445");
    config_free(&cfg);
    static const struct {
        const char *kv, *want;
    } bad[] = {
        {"WEFT_DISCOVERY_ADDR=weft-discovery", "WEFT_DISCOVERY_ADDR=\"weft-discovery\": must be host:port"},
        {"WEFT_DISCOVERY_ADDR=:8445", "WEFT_DISCOVERY_ADDR"},
        {"WEFT_DISCOVERY_ADDR=host:0", "WEFT_DISCOVERY_ADDR"},
        {"WEFT_DISCOVERY_WAIT_MS=5001", "WEFT_DISCOVERY_WAIT_MS=\"5001\": must be an integer 0-5000"},
        {"WEFT_DISCOVERY_IDLE_SECONDS=0", "WEFT_DISCOVERY_IDLE_SECONDS=\"0\": must be an integer 1-86400"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(load(&cfg, bad[i].kv, err, sizeof err), -EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("%s: got \"%s\"", bad[i].kv, err);
    }
    assert_int_equal(load(&cfg, "WEFT_DISCOVERY_WAIT_MS=5000", err, sizeof err), 0);
    config_free(&cfg);
    assert_int_equal(load(&cfg, "WEFT_DISCOVERY_WAIT_MS=0", err, sizeof err), 0);
    config_free(&cfg);
}

/* A copy owns its own strings and probes (the sanitizer builds catch a
 * double free or a leak); the overlay changes the policy only. */
static void test_copy_and_overlay(void **state)
{
    (void)state;
    struct proxy_config a, b;
    char err[256];
    assert_int_equal(load(&a, "WEFT_DISCOVERY_ADDR=198.18.0.1:8445", err, sizeof err), 0);
    assert_int_equal(config_copy(&b, &a, err, sizeof err), 0);
    assert_ptr_not_equal(a.pod_namespace, b.pod_namespace);
    assert_string_equal(b.pod_namespace, "shop");
    assert_string_equal(b.discovery_addr, "198.18.0.1:8445");
    assert_int_equal(b.probes.n, 1);
    struct dest_policy p = {.mtls_mode = MTLS_PERMISSIVE, .policy = AUTHZ_MESH, .nrules = 1};
    snprintf(p.rules[0].ns, sizeof p.rules[0].ns, "ops");
    snprintf(p.rules[0].sa, sizeof p.rules[0].sa, "monitor");
    assert_false(cpc_policy_same(&b, &p));
    cpc_policy_overlay(&b, &p);
    assert_true(cpc_policy_same(&b, &p));
    assert_int_equal(b.mtls_mode, MTLS_PERMISSIVE);
    assert_int_equal(b.authz.nrules, 1);
    assert_string_equal(b.authz.rules[0].sa, "monitor");
    assert_string_equal(b.authz.ns, "shop"); /* the pod's namespace stays */
    assert_int_equal(a.authz.nrules, 1);
    assert_string_equal(a.authz.rules[0].ns, "dev");
    config_free(&a);
    assert_string_equal(b.pod_namespace, "shop");
    config_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_lines_limit),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_copy_and_overlay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
