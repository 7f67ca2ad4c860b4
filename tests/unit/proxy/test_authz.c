/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/authz.c: table-driven decisions over every policy,
 * allow-from rules and trust domains, and the allow-from parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "authz.h"

struct authz_case {
    const char *policy;
    const char *allow_from;
    const char *peer; /* SPIFFE URI */
    int allowed;
    const char *reason;
};

static const struct authz_case cases[] = {
    {"same-namespace", "", "spiffe://cluster.local/ns/shop/sa/front", 1, "same-namespace"},
    {"same-namespace", "", "spiffe://cluster.local/ns/ops/sa/monitor", 0, "cross-namespace"},
    {"same-namespace", "ops/monitor", "spiffe://cluster.local/ns/ops/sa/monitor", 1, "allow-from"},
    {"same-namespace", "ops/monitor", "spiffe://cluster.local/ns/ops/sa/other", 0, "cross-namespace"},
    {"same-namespace", "ops/*", "spiffe://cluster.local/ns/ops/sa/other", 1, "allow-from"},
    {"same-namespace", "ops/*", "spiffe://cluster.local/ns/opsx/sa/other", 0, "cross-namespace"},
    {"same-namespace", "a/b, ops/*", "spiffe://cluster.local/ns/ops/sa/x", 1, "allow-from"},
    {"same-namespace", "", "spiffe://other.domain/ns/shop/sa/front", 0, "foreign-trust-domain"},
    {"same-namespace", "shop/*", "spiffe://other.domain/ns/shop/sa/front", 0, "foreign-trust-domain"},
    {"mesh", "", "spiffe://cluster.local/ns/ops/sa/monitor", 1, "mesh"},
    {"mesh", "", "spiffe://other.domain/ns/ops/sa/monitor", 0, "foreign-trust-domain"},
    {"deny", "", "spiffe://cluster.local/ns/shop/sa/front", 0, "policy-deny"},
    {"deny", "shop/front", "spiffe://cluster.local/ns/shop/sa/front", 1, "allow-from"},
    {"deny", "shop/front", "spiffe://cluster.local/ns/shop/sa/back", 0, "policy-deny"},
    {"allow-all", "", "spiffe://cluster.local/ns/anything/sa/x", 1, "allow-all"},
    {"allow-all", "", "spiffe://evil.example/ns/shop/sa/x", 0, "foreign-trust-domain"},
};

static void test_decisions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct authz_case *c = &cases[i];
        struct authz a;
        struct spiffe_id peer;
        char err[128];
        memset(&a, 0, sizeof a);
        snprintf(a.trust_domain, sizeof a.trust_domain, "cluster.local");
        snprintf(a.ns, sizeof a.ns, "shop");
        assert_int_equal(authz_parse_policy(c->policy, &a.policy), 0);
        assert_int_equal(authz_parse_allow_from(c->allow_from, a.rules, &a.nrules, err, sizeof err), 0);
        assert_int_equal(spiffe_parse(c->peer, strlen(c->peer), &peer), 0);
        struct authz_decision d = authz_check(&a, &peer);
        if (d.allowed != c->allowed || strcmp(d.reason, c->reason) != 0)
            fail_msg("case %zu (%s, %s, %s): got %d %s", i, c->policy, c->allow_from, c->peer, d.allowed, d.reason);
    }
}

static void test_parse_policy(void **state)
{
    (void)state;
    enum authz_policy p;
    assert_int_equal(authz_parse_policy("mesh", &p), 0);
    assert_int_equal(p, AUTHZ_MESH);
    assert_string_equal(authz_policy_name(AUTHZ_ALLOW_ALL), "allow-all");
    assert_int_not_equal(authz_parse_policy("Mesh", &p), 0);
    assert_int_not_equal(authz_parse_policy("", &p), 0);
    assert_int_not_equal(authz_parse_policy("allow_all", &p), 0);
}

static void test_parse_allow_from(void **state)
{
    (void)state;
    struct authz_rule rules[AUTHZ_MAX_RULES];
    size_t n;
    char err[128];
    assert_int_equal(authz_parse_allow_from("", rules, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(authz_parse_allow_from(" a/b ,c/*", rules, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rules[0].ns, "a");
    assert_string_equal(rules[0].sa, "b");
    assert_string_equal(rules[1].sa, "*");
    const char *bad[] = {"a", "a/", "/b", "a/b,", ",a/b", "a/b,,c/d", "A/b", "a/b/c", "*/b", "a/b*", "a b/c"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (authz_parse_allow_from(bad[i], rules, &n, err, sizeof err) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* At the limit and one over. */
    char big[AUTHZ_MAX_RULES * 8 + 16] = "";
    size_t off = 0;
    for (int i = 0; i < AUTHZ_MAX_RULES; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "%sn%d/s", i ? "," : "", i);
    assert_int_equal(authz_parse_allow_from(big, rules, &n, err, sizeof err), 0);
    assert_int_equal(n, AUTHZ_MAX_RULES);
    snprintf(big + off, sizeof big - off, ",x/y");
    assert_int_not_equal(authz_parse_allow_from(big, rules, &n, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_parse_policy),
        cmocka_unit_test(test_parse_allow_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
