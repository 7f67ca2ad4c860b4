/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/spiffe.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "spiffe.h"

static int parse(const char *s, struct spiffe_id *id)
{
    return spiffe_parse(s, strlen(s), id);
}

static void test_parse_good(void **state)
{
    (void)state;
    struct spiffe_id id;
    assert_int_equal(parse("spiffe://cluster.local/ns/shop/sa/backend", &id), 0);
    assert_string_equal(id.trust_domain, "cluster.local");
    assert_string_equal(id.ns, "shop");
    assert_string_equal(id.sa, "backend");
    assert_int_equal(parse("spiffe://td/ns/a-1/sa/x.y-z", &id), 0);
}

static void test_parse_bad(void **state)
{
    (void)state;
    struct spiffe_id id;
    const char *bad[] = {
        "", "spiffe://", "https://cluster.local/ns/a/sa/b", "spiffe://cluster.local",
        "spiffe://cluster.local/ns/a", "spiffe://cluster.local/ns/a/sa/", "spiffe://cluster.local/ns//sa/b",
        "spiffe://Cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/A/sa/b",
        "spiffe://cluster.local/ns/a/sa/b/extra", "spiffe://cluster.local/ns/-a/sa/b",
        "spiffe://cluster.local/sa/b/ns/a", "spiffe://cluster.local/ns/a/sa/b?x=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_not_equal(parse(bad[i], &id), 0);
}

static void test_namespace_limits(void **state)
{
    (void)state;
    char ns[80];
    memset(ns, 'a', sizeof ns);
    assert_true(spiffe_valid_namespace(ns, 63));
    assert_false(spiffe_valid_namespace(ns, 64));
}

static void test_format_and_username(void **state)
{
    (void)state;
    char out[SPIFFE_MAX_ID];
    assert_int_equal(spiffe_format("cluster.local", "ops", "monitor", out, sizeof out), 0);
    assert_string_equal(out, "spiffe://cluster.local/ns/ops/sa/monitor");
    assert_int_not_equal(spiffe_format("cluster.local", "Ops", "monitor", out, sizeof out), 0);
    assert_int_equal(spiffe_format("cluster.local", "ops", "monitor", out, 10), -ENOSPC);

    struct spiffe_id id;
    assert_int_equal(spiffe_from_k8s_username("system:serviceaccount:shop:default", "cluster.local", &id), 0);
    assert_string_equal(id.ns, "shop");
    assert_string_equal(id.sa, "default");
    assert_int_not_equal(spiffe_from_k8s_username("system:node:shop", "cluster.local", &id), 0);
    assert_int_not_equal(spiffe_from_k8s_username("system:serviceaccount:shop", "cluster.local", &id), 0);
    assert_int_not_equal(spiffe_from_k8s_username("system:serviceaccount:shop:a:b", "cluster.local", &id), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_namespace_limits),
        cmocka_unit_test(test_format_and_username),
    };
    return cmocka_run_group_tests_name("lib/spiffe", tests, NULL, NULL);
}
