/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of discovery/route.c: GAMMA parents (group "" and kind
 * Service) kept and Gateway parents dropped, the API's defaults, its rules
 * (CEL validations) and every limit of the v1 schema at the limit and one
 * past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "fixtures.h"
#include "route.h"

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

static json_t *spec_of(json_t *route)
{
    return json_object_get(route, "spec");
}

static json_t *rule0(json_t *route)
{
    return json_array_get(json_object_get(spec_of(route), "rules"), 0);
}

static json_t *stored(const char *key)
{
    return store_get(s, REDUCE_HTTPROUTE, key);
}

static void test_parents(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "r", "web", "web");
    json_t *parents = json_object_get(spec_of(r), "parentRefs");
    /* Defaults: a parent without group and kind is a Gateway; namespace is the route's. */
    json_array_append_new(parents, json_pack("{s:s}", "name", "gw"));
    json_array_append_new(parents, json_pack("{s:s, s:s, s:s}", "group", "core", "kind", "Service", "name", "x"));
    json_array_append_new(parents, json_pack("{s:s, s:s, s:s, s:s, s:i}", "group", "", "kind", "Service", "name",
                                             "api", "namespace", "other", "port", 8080));
    TAKEN(s, json_deep_copy(r));
    json_t *got = json_object_get(stored("shop/r"), "parents");
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "namespace")), "shop");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "namespace")), "other");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 1), "port")), 8080);
    /* A route of Gateways only is not the mesh's: forgotten, even if stored before. */
    json_array_clear(parents);
    json_array_append_new(parents, json_pack("{s:s}", "name", "gw"));
    TAKEN(s, json_deep_copy(r));
    assert_null(stored("shop/r"));
    json_array_clear(parents);
    for (int i = 0; i < ROUTE_MAX_PARENTS; i++)
        json_array_append_new(parents, json_pack("{s:s, s:s, s:s}", "group", "", "kind", "Service", "name", "web"));
    TAKEN(s, json_deep_copy(r));
    json_array_append_new(parents, json_pack("{s:s}", "name", "gw"));
    REFUSED(s, r, "spec.parentRefs: expected a list of at most 32 items");
}

static void test_defaults(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "d", "web", "web");
    json_object_del(spec_of(r), "rules");
    TAKEN(s, json_deep_copy(r));
    json_t *rule = json_array_get(json_object_get(stored("shop/d"), "rules"), 0);
    json_t *m = json_array_get(json_object_get(rule, "matches"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "path"), "type")), "PathPrefix");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "path"), "value")), "/");
    assert_int_equal(json_array_size(json_object_get(rule, "backends")), 0);
    json_decref(r);
    r = http_route("shop", "d", "web", "web");
    TAKEN(s, r);
    json_t *b = json_array_get(json_object_get(json_array_get(json_object_get(stored("shop/d"), "rules"), 0), "backends"), 0);
    assert_int_equal(json_integer_value(json_object_get(b, "weight")), 1);
    assert_string_equal(json_string_value(json_object_get(b, "kind")), "Service");
    assert_string_equal(json_string_value(json_object_get(b, "namespace")), "shop");
}

static void test_rule_limits(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "l", "web", "web");
    json_t *rules = json_object_get(spec_of(r), "rules");
    for (int i = 1; i < ROUTE_MAX_RULES; i++)
        json_array_append(rules, json_array_get(rules, 0));
    TAKEN(s, json_deep_copy(r));
    json_array_append(rules, json_array_get(rules, 0));
    REFUSED(s, json_deep_copy(r), "spec.rules: expected a list of at most 16 items");
    json_array_clear(rules);
    json_t *rule = json_pack("{s:[], s:[], s:[]}", "matches", "filters", "backendRefs");
    json_array_append_new(rules, rule);
    for (int i = 0; i < ROUTE_MAX_MATCHES; i++)
        json_array_append_new(json_object_get(rule, "matches"), json_pack("{s:{s:s}}", "path", "value", "/a"));
    for (int i = 0; i < ROUTE_MAX_FILTERS; i++)
        json_array_append_new(json_object_get(rule, "filters"),
                              json_pack("{s:s, s:{s:{s:s}}}", "type", "RequestMirror", "requestMirror", "backendRef",
                                        "name", "mirror"));
    for (int i = 0; i < ROUTE_MAX_BACKENDS; i++)
        json_array_append_new(json_object_get(rule, "backendRefs"), json_pack("{s:s, s:i}", "name", "web", "port", 80));
    TAKEN(s, json_deep_copy(r));
    json_array_append_new(json_object_get(rule, "matches"), json_pack("{s:{s:s}}", "path", "value", "/b"));
    REFUSED(s, json_deep_copy(r), "spec.rules[0].matches: expected a list of at most 64 items");
    json_array_remove(json_object_get(rule, "matches"), 0);
    json_array_append_new(json_object_get(rule, "filters"), json_pack("{s:s, s:{}}", "type", "RequestMirror", "requestMirror"));
    REFUSED(s, json_deep_copy(r), "spec.rules[0].filters: expected a list of at most 16 items");
    json_array_remove(json_object_get(rule, "filters"), 0);
    json_array_append_new(json_object_get(rule, "backendRefs"), json_pack("{s:s, s:i}", "name", "web", "port", 80));
    REFUSED(s, json_deep_copy(r), "spec.rules[0].backendRefs: expected a list of at most 16 items");
    json_array_remove(json_object_get(rule, "backendRefs"), 0);
    /* 128 matches over all rules, not 129. */
    json_array_append(rules, rule); /* 64 + 64 */
    TAKEN(s, json_deep_copy(r));
    json_t *third = json_pack("{s:[{s:{s:s}}]}", "matches", "path", "value", "/c");
    json_array_append_new(rules, third);
    REFUSED(s, r, "more than 128 matches over all rules");
}

static void test_match_limits(void **state)
{
    (void)state;
    char path[ROUTE_MAX_PATH + 2] = "/";
    json_t *r = http_route("shop", "m", "web", "web");
    json_t *match = json_pack("{s:{s:s, s:s}, s:[], s:[]}", "path", "type", "Exact", "value", "/", "headers", "queryParams");
    json_object_set_new(rule0(r), "matches", json_pack("[O]", match));
    json_decref(match);
    match = json_array_get(json_object_get(rule0(r), "matches"), 0);
    memset(path + 1, 'p', ROUTE_MAX_PATH - 1);
    path[ROUTE_MAX_PATH] = '\0';
    json_object_set_new(json_object_get(match, "path"), "value", json_string(path));
    for (int i = 0; i < ROUTE_MAX_HEADER_MATCHES; i++)
        json_array_append_new(json_object_get(match, "headers"),
                              json_pack("{s:s, s:s}", "name", repeat('h', ROUTE_MAX_HEADER_NAME), "value", "v"));
    for (int i = 0; i < ROUTE_MAX_QUERY_MATCHES; i++)
        json_array_append_new(json_object_get(match, "queryParams"), json_pack("{s:s, s:s}", "name", "q", "value", "v"));
    TAKEN(s, json_deep_copy(r));
    path[ROUTE_MAX_PATH] = 'p';
    path[ROUTE_MAX_PATH + 1] = '\0';
    json_object_set_new(json_object_get(match, "path"), "value", json_string(path));
    REFUSED(s, json_deep_copy(r), "spec.rules[0].matches[0].path.value: expected a string of 1-1024 bytes");
    json_object_set_new(json_object_get(match, "path"), "value", json_string("no-slash"));
    REFUSED(s, json_deep_copy(r), "expected an absolute path");
    json_object_set_new(json_object_get(match, "path"), "value", json_string("/ok"));
    json_array_append_new(json_object_get(match, "headers"), json_pack("{s:s, s:s}", "name", "x", "value", "v"));
    REFUSED(s, json_deep_copy(r), "headers: expected a list of at most 16 items");
    json_array_remove(json_object_get(match, "headers"), 0);
    json_array_append_new(json_object_get(match, "queryParams"), json_pack("{s:s, s:s}", "name", "x", "value", "v"));
    REFUSED(s, json_deep_copy(r), "queryParams: expected a list of at most 16 items");
    json_array_remove(json_object_get(match, "queryParams"), 0);
    json_t *h = json_array_get(json_object_get(match, "headers"), 0);
    json_object_set_new(h, "name", json_string(repeat('h', ROUTE_MAX_HEADER_NAME + 1)));
    REFUSED(s, json_deep_copy(r), "headers[0].name: expected a string of 1-256 bytes");
    json_object_set_new(h, "name", json_string("bad header"));
    REFUSED(s, json_deep_copy(r), "expected a header name");
    json_object_set_new(h, "name", json_string("x-ok"));
    json_object_set_new(h, "value", json_string(repeat('v', ROUTE_MAX_HEADER_VALUE)));
    TAKEN(s, json_deep_copy(r));
    json_object_set_new(h, "value", json_string(repeat('v', ROUTE_MAX_HEADER_VALUE + 1)));
    REFUSED(s, json_deep_copy(r), "headers[0].value: expected a string of 1-4096 bytes");
    json_object_set_new(h, "value", json_string("a\r\nb"));
    REFUSED(s, json_deep_copy(r), "printable value");
    json_object_set_new(h, "value", json_string("v"));
    json_object_set_new(match, "method", json_string("FETCH"));
    REFUSED(s, r, "method: expected one of GET, HEAD, POST");
}

static void test_backends_and_filters(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "b", "web", "web");
    json_t *b = json_array_get(json_object_get(rule0(r), "backendRefs"), 0);
    json_object_set_new(b, "weight", json_integer(ROUTE_MAX_WEIGHT));
    TAKEN(s, json_deep_copy(r));
    json_object_set_new(b, "weight", json_integer(ROUTE_MAX_WEIGHT + 1));
    REFUSED(s, json_deep_copy(r), "backendRefs[0].weight: expected an integer 0-1000000");
    json_object_set_new(b, "weight", json_integer(0));
    json_object_del(b, "port");
    REFUSED(s, json_deep_copy(r), "backendRefs[0].port: is missing");
    json_object_set_new(b, "group", json_string("example.com"));
    json_object_set_new(b, "kind", json_string("Bucket"));
    TAKEN(s, json_deep_copy(r)); /* kept, and answered as an invalid kind */
    json_object_set_new(b, "group", json_string(""));
    json_object_set_new(b, "kind", json_string("Service"));
    json_object_set_new(b, "port", json_integer(80));

    json_t *filters = json_array();
    json_object_set_new(rule0(r), "filters", filters);
    json_array_append_new(filters, json_pack("{s:s, s:{s:[{s:s, s:s}], s:[s]}}", "type", "RequestHeaderModifier",
                                             "requestHeaderModifier", "add", "name", "x-a", "value", "1", "remove", "x-b"));
    TAKEN(s, json_deep_copy(r));
    json_array_append(filters, json_array_get(filters, 0));
    REFUSED(s, json_deep_copy(r), "filters[1]: RequestHeaderModifier filter cannot be repeated");
    json_array_remove(filters, 1);
    json_array_append_new(filters, json_pack("{s:s}", "type", "URLRewrite"));
    REFUSED(s, json_deep_copy(r), "filters[1].urlRewrite: is required when type is URLRewrite");
    json_object_set_new(json_array_get(filters, 1), "urlRewrite", json_pack("{s:s}", "hostname", "x.example"));
    TAKEN(s, json_deep_copy(r));
    json_array_append_new(filters, json_pack("{s:s, s:{}}", "type", "RequestRedirect", "requestRedirect"));
    REFUSED(s, json_deep_copy(r), "may specify either RequestRedirect or URLRewrite, but not both");
    json_array_remove(filters, 2);
    json_array_append_new(filters, json_pack("{s:s, s:{}}", "type", "Teleport", "teleport"));
    REFUSED(s, json_deep_copy(r), "filters[2].type \"Teleport\": not a filter of a HTTPRoute");
    json_array_remove(filters, 2);
    json_object_set_new(json_array_get(filters, 0), "requestHeaderModifier",
                        json_pack("{s:[{s:s, s:s}]}", "set", "name", "x:y", "value", "1"));
    REFUSED(s, json_deep_copy(r), "requestHeaderModifier.set[0]: expected a header name");
    json_array_remove(filters, 0);
    json_object_set_new(rule0(r), "timeouts", json_pack("{s:s, s:s}", "request", "1m30s", "backendRequest", "500ms"));
    TAKEN(s, json_deep_copy(r));
    json_object_set_new(rule0(r), "timeouts", json_pack("{s:s}", "request", "10 seconds"));
    REFUSED(s, json_deep_copy(r), "timeouts.request \"10 seconds\": expected a duration");
    json_object_del(rule0(r), "timeouts");
    json_object_set_new(rule0(r), "name", json_string("a"));
    json_array_append(json_object_get(spec_of(r), "rules"), rule0(r));
    REFUSED(s, json_deep_copy(r), "spec.rules[1].name \"a\": rule names must be unique within the route");
    json_decref(r);
}

static void test_hostnames(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "h", "web", "web");
    json_t *hosts = json_array();
    json_object_set_new(spec_of(r), "hostnames", hosts);
    for (int i = 0; i < ROUTE_MAX_HOSTNAMES; i++)
        json_array_append_new(hosts, json_string(i ? "*.example.com" : "web.shop.svc.cluster.local"));
    TAKEN(s, json_deep_copy(r));
    json_array_append_new(hosts, json_string("one.more"));
    REFUSED(s, json_deep_copy(r), "spec.hostnames: expected a list of at most 16 items");
    json_array_clear(hosts);
    json_array_append_new(hosts, json_string("Web.Example.com"));
    REFUSED(s, json_deep_copy(r), "spec.hostnames[0]: expected a lower-case DNS name");
    json_array_clear(hosts);
    json_array_append_new(hosts, json_string("a.*.example.com"));
    REFUSED(s, r, "spec.hostnames[0]");
}

static void test_grpc(void **state)
{
    (void)state;
    json_t *r = http_route("shop", "g", "web", "web");
    json_object_set_new(r, "kind", json_string("GRPCRoute"));
    json_object_set_new(rule0(r), "matches", json_pack("[{s:{s:s, s:s}}]", "method", "service", "shop.v1.Cart", "method", "Get"));
    TAKEN(s, json_deep_copy(r));
    json_t *m = json_array_get(json_object_get(json_array_get(json_object_get(store_get(s, REDUCE_GRPCROUTE, "shop/g"),
                                                                              "rules"), 0), "matches"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "method"), "type")), "Exact");
    json_object_set_new(rule0(r), "matches", json_pack("[{s:{s:s}}]", "method", "service", "shop/v1"));
    REFUSED(s, json_deep_copy(r), "an Exact match names a gRPC service");
    json_object_set_new(rule0(r), "matches", json_pack("[{s:{s:s, s:s}}]", "method", "type", "RegularExpression", "service", "shop/.*"));
    TAKEN(s, json_deep_copy(r));
    json_object_del(rule0(r), "matches");
    json_object_set_new(rule0(r), "filters", json_pack("[{s:s, s:{}}]", "type", "URLRewrite", "urlRewrite"));
    REFUSED(s, r, "not a filter of a GRPCRoute");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backends_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostnames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpc, setup, teardown),
    };
    return cmocka_run_group_tests_name("discovery/route", tests, NULL, NULL);
}
