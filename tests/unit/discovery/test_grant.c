/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of discovery/grant.c and its use by the answers: ReferenceGrants
 * reduced to their route-to-Service entries, the CRD's schema (required
 * fields, patterns, lists of 1-16 at the limit and one past), the
 * permission rule (from kind and namespace, to the Service by name or all,
 * entries combined with OR), and a cross-namespace backend resolved only
 * while a grant in its namespace permits it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "answer.h"
#include "fixtures.h"
#include "grant.h"

static struct store *s;

static int setup(void **state)
{
    (void)state;
    s = store_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_free(s);
    return 0;
}

/* A grant in ns trusting HTTPRoutes of from_ns with Services (name NULL: all). */
static json_t *to0(json_t *g);
static json_t *grant(const char *ns, const char *name, const char *from_ns, const char *to_name)
{
    json_t *g = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:s, s:s}], s:[{s:s, s:s}]}}", "apiVersion",
                          "gateway.networking.k8s.io/v1beta1", "kind", "ReferenceGrant", "metadata", "namespace", ns,
                          "name", name, "spec", "from", "group", "gateway.networking.k8s.io", "kind", "HTTPRoute",
                          "namespace", from_ns, "to", "group", "", "kind", "Service");
    if (to_name)
        json_object_set_new(to0(g), "name", json_string(to_name));
    return g;
}

static json_t *from0(json_t *g)
{
    return json_array_get(json_object_get(json_object_get(g, "spec"), "from"), 0);
}

static json_t *to0(json_t *g)
{
    return json_array_get(json_object_get(json_object_get(g, "spec"), "to"), 0);
}

static void test_reduced(void **state)
{
    (void)state;
    json_t *g = grant("store", "g", "shop", NULL);
    json_t *from = json_object_get(json_object_get(g, "spec"), "from");
    json_t *to = json_object_get(json_object_get(g, "spec"), "to");
    /* A Gateway's trust in Secrets is not the mesh's: checked, then dropped. */
    json_array_append_new(from, json_pack("{s:s, s:s, s:s}", "group", "gateway.networking.k8s.io", "kind", "Gateway",
                                          "namespace", "edge"));
    json_array_append_new(to, json_pack("{s:s, s:s}", "group", "", "kind", "Secret"));
    json_array_append_new(to, json_pack("{s:s, s:s, s:s}", "group", "", "kind", "Service", "name", "back"));
    TAKEN(s, json_deep_copy(g));
    json_t *got = store_get(s, REDUCE_REFGRANT, "store/g");
    assert_non_null(got);
    char *text = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"from\":[{\"kind\":\"HTTPRoute\",\"namespace\":\"shop\"}],\"name\":\"g\","
                              "\"namespace\":\"store\",\"to\":[{},{\"name\":\"back\"}]}");
    free(text);
    /* v1 is the same schema, read the same. */
    json_object_set_new(g, "apiVersion", json_string("gateway.networking.k8s.io/v1"));
    json_object_set_new(json_object_get(g, "metadata"), "name", json_string("g1"));
    TAKEN(s, json_deep_copy(g));
    assert_non_null(store_get(s, REDUCE_REFGRANT, "store/g1"));
    /* Nothing for routes and Services: forgotten, and a MODIFIED that makes
     * it so deletes the grant held. */
    json_object_set_new(from0(g), "kind", json_string("Gateway"));
    json_object_set_new(json_object_get(g, "metadata"), "name", json_string("g"));
    char err[256];
    assert_int_equal(store_apply(s, STORE_MODIFIED, g, err, sizeof err), 0);
    assert_null(store_get(s, REDUCE_REFGRANT, "store/g"));
    json_decref(g);
    g = grant("store", "g2", "shop", NULL);
    json_object_set_new(to0(g), "kind", json_string("Secret"));
    TAKEN(s, g);
    assert_null(store_get(s, REDUCE_REFGRANT, "store/g2"));
}

static void test_schema(void **state)
{
    (void)state;
    json_t *g = grant("store", "g", "shop", NULL);
    json_t *spec = json_object_get(g, "spec");
    json_t *bad = json_deep_copy(g);
    json_object_del(bad, "spec");
    REFUSED(s, bad, "spec: is missing");
    bad = json_deep_copy(g);
    json_object_del(json_object_get(bad, "spec"), "from");
    REFUSED(s, bad, "spec.from: expected a list of 1-16 items");
    bad = json_deep_copy(g);
    json_object_set_new(json_object_get(bad, "spec"), "to", json_array());
    REFUSED(s, bad, "spec.to: expected a list of 1-16 items");
    /* 16 entries each is the CRD's maxItems; 17 is refused. */
    json_t *from = json_object_get(spec, "from"), *to = json_object_get(spec, "to");
    for (int i = 1; i < GRANT_MAX_FROM; i++)
        json_array_append(from, json_array_get(from, 0));
    for (int i = 1; i < GRANT_MAX_TO; i++)
        json_array_append(to, json_array_get(to, 0));
    TAKEN(s, json_deep_copy(g));
    bad = json_deep_copy(g);
    json_array_append(json_object_get(json_object_get(bad, "spec"), "from"), from0(g));
    REFUSED(s, bad, "spec.from: expected a list of at most 16 items");
    bad = json_deep_copy(g);
    json_array_append(json_object_get(json_object_get(bad, "spec"), "to"), to0(g));
    REFUSED(s, bad, "spec.to: expected a list of at most 16 items");
    json_decref(g);

    struct {
        const char *field, *value; /* NULL value: removed */
        int in_to;
        const char *error;         /* NULL: taken */
    } cases[] = {
        {"group", NULL, 0, "spec.from[0].group: is missing"},
        {"group", NULL, 1, "spec.to[0].group: is missing"},
        {"group", "Gateway.Networking", 0, "spec.from[0].group: expected \"\" or a DNS subdomain"},
        {"group", "example..com", 1, "spec.to[0].group: expected \"\" or a DNS subdomain"},
        {"group", "-example.com", 1, "spec.to[0].group: expected"},
        {"group", "example.com-", 1, "spec.to[0].group: expected"},
        {"group", "a-b.c0", 1, NULL},
        {"kind", NULL, 0, "spec.from[0].kind: is missing"},
        {"kind", "", 1, "spec.to[0].kind: expected a kind name"},
        {"kind", "9Route", 0, "spec.from[0].kind: expected a kind name"},
        {"kind", "Route-", 1, "spec.to[0].kind: expected a kind name"},
        {"kind", "Http_Route", 0, "spec.from[0].kind: expected a kind name"},
        {"kind", "x-Y9", 0, NULL},
        {"namespace", NULL, 0, "spec.from[0].namespace: is missing"},
        {"namespace", "Shop", 0, "spec.from[0].namespace \"Shop\": expected a namespace name"},
        {"name", "", 1, "spec.to[0].name: expected a string of 1-253 bytes"},
        {"name", "Any Name", 1, NULL}, /* the CRD has no pattern for it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        g = grant("store", "g", "shop", NULL);
        json_t *e = cases[i].in_to ? to0(g) : from0(g);
        if (cases[i].value)
            json_object_set_new(e, cases[i].field, json_string(cases[i].value));
        else
            json_object_del(e, cases[i].field);
        if (cases[i].error)
            REFUSED(s, g, cases[i].error);
        else
            expect_apply(s, g, 0, NULL, cases[i].value);
    }
    /* Limits at and one past: group 253, kind 63, namespace 63, name 253. */
    struct {
        const char *field;
        size_t max;
        int in_to;
    } limits[] = {{"group", 253, 0}, {"kind", 63, 0}, {"namespace", 63, 0}, {"name", 253, 1}};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        for (size_t n = limits[i].max; n <= limits[i].max + 1; n++) {
            g = grant("store", "g", "shop", NULL);
            json_t *e = limits[i].in_to ? to0(g) : from0(g);
            json_object_set_new(e, limits[i].field, json_string(repeat('a', n)));
            char err[512] = "";
            int rc = store_apply(s, STORE_ADDED, g, err, sizeof err);
            json_decref(g);
            if ((n == limits[i].max) != (rc == 0))
                fail_msg("%s of %zu: rc %d: %s", limits[i].field, n, rc, err);
        }
    }
}

static void test_permits(void **state)
{
    (void)state;
    json_t *g = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[{s:s}, {s:s}]}", "namespace", "store", "name",
                          "g", "from", "kind", "HTTPRoute", "namespace", "shop", "kind", "GRPCRoute", "namespace", "ops",
                          "to", "name", "back", "name", "side");
    assert_true(grant_permits(g, "HTTPRoute", "shop", "back"));
    assert_true(grant_permits(g, "HTTPRoute", "shop", "side"));
    assert_true(grant_permits(g, "GRPCRoute", "ops", "back"));
    assert_false(grant_permits(g, "GRPCRoute", "shop", "back")); /* kind and namespace of one entry */
    assert_false(grant_permits(g, "HTTPRoute", "ops", "back"));
    assert_false(grant_permits(g, "HTTPRoute", "shop", "other"));
    json_array_append_new(json_object_get(g, "to"), json_object()); /* all Services */
    assert_true(grant_permits(g, "HTTPRoute", "shop", "other"));
    json_decref(g);
}

/* The first backend of the first rule of the first HTTPRoute of dest's answer. */
static json_t *backend_of(json_t *answer)
{
    json_t *r = json_array_get(json_object_get(json_object_get(answer, "service"), "httpRoutes"), 0);
    return json_array_get(json_object_get(json_array_get(json_object_get(r, "rules"), 0), "backends"), 0);
}

static void expect_backend(const char *dest, int resolved, const char *reason, const char *where)
{
    struct addr_dest d;
    assert_int_equal(addr_parse_dest(dest, &d), 0);
    json_t *a = answer_destination(s, "cluster.local", &d);
    json_t *b = backend_of(a);
    const char *got = json_string_value(json_object_get(b, "reason"));
    if (json_is_true(json_object_get(b, "resolved")) != resolved || (reason && (!got || strcmp(got, reason))) ||
        (resolved != (json_object_get(b, "destination") != NULL)))
        fail_msg("%s: %s", where, json_dumps(b, JSON_COMPACT));
    json_decref(a);
}

static void test_cross_namespace_backend(void **state)
{
    (void)state;
    char err[256];
    TAKEN(s, service("shop", "front", "10.96.40.1"));
    TAKEN(s, service("store", "back", "10.96.40.2"));
    json_t *r = http_route("shop", "front", "front", "back");
    json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(json_object_get(r, "spec"),
                                                                                      "rules"), 0), "backendRefs"), 0),
                        "namespace", json_string("store"));
    TAKEN(s, r);
    expect_backend("10.96.40.1:80", 0, "RefNotPermitted", "no grant");
    TAKEN(s, grant("shop", "wrong-side", "shop", NULL)); /* in the route's namespace: no use */
    expect_backend("10.96.40.1:80", 0, "RefNotPermitted", "grant in the route's namespace");
    TAKEN(s, grant("store", "other-name", "shop", "side"));
    expect_backend("10.96.40.1:80", 0, "RefNotPermitted", "grant of another Service");
    TAKEN(s, grant("store", "by-name", "shop", "back"));
    expect_backend("10.96.40.1:80", 1, NULL, "granted by name");
    json_t *g = grant("store", "by-name", "shop", "back");
    assert_int_equal(store_apply(s, STORE_DELETED, g, err, sizeof err), 0);
    json_decref(g);
    expect_backend("10.96.40.1:80", 0, "RefNotPermitted", "grant deleted");
    TAKEN(s, grant("store", "all", "shop", NULL));
    expect_backend("10.96.40.1:80", 1, NULL, "all Services granted");
    /* Granted, but the Service is not there: the grant does not hide that. */
    g = service("store", "back", "10.96.40.2");
    assert_int_equal(store_apply(s, STORE_DELETED, g, err, sizeof err), 0);
    json_decref(g);
    expect_backend("10.96.40.1:80", 0, "BackendNotFound", "granted, no Service");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reduced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_namespace_backend, setup, teardown),
    };
    return cmocka_run_group_tests_name("discovery/grant", tests, NULL, NULL);
}
