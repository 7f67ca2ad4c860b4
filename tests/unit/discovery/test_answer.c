/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of discovery/answer.c: destination answers (Service, meshed
 * pod, unknown and why), endpoints and their identities, routes attached by
 * port and ordered, the pod policy merged pod > namespace > mesh as the
 * webhook merges it, and who may ask for a pod's policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "answer.h"
#include "fixtures.h"
#include "settings.h"
#include "yamljson.h"

static struct store *s;
static json_t *mesh;

static int setup(void **state)
{
    (void)state;
    char err[512];
    json_t *doc = yamljson_load_file("templates/mesh.yaml", err, sizeof err);
    if (!doc || !(mesh = settings_from_mesh(doc, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    json_decref(doc);
    s = store_new(NULL);
    TAKEN(s, namespace_obj("shop"));
    TAKEN(s, service("shop", "web", "10.96.0.10"));
    TAKEN(s, pod("shop", "web-1", "web", "10.1.0.1", 1));
    TAKEN(s, pod("shop", "plain", "default", "10.1.0.2", 0));
    json_t *sl = slice("shop", "web-a", "web");
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.0.2", NULL));  /* found by IP */
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.0.1", "web-1"));
    TAKEN(s, sl);
    /* The same endpoint again in a second slice, as while slices change. */
    sl = slice("shop", "web-b", "web");
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.0.1", "web-1"));
    TAKEN(s, sl);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_free(s);
    json_decref(mesh);
    return 0;
}

static json_t *ask(const char *dest)
{
    struct addr_dest d;
    assert_int_equal(addr_parse_dest(dest, &d), 0);
    return answer_destination(s, "cluster.local", &d);
}

static const char *str(json_t *o, const char *path)
{
    char key[64];
    while (o && strchr(path, '.')) {
        size_t n = (size_t)(strchr(path, '.') - path);
        memcpy(key, path, n);
        key[n] = '\0';
        o = isdigit((unsigned char)key[0]) ? json_array_get(o, (size_t)strtoul(key, NULL, 10)) : json_object_get(o, key);
        path += n + 1;
    }
    return json_string_value(json_object_get(o, path));
}

static void test_addresses(void **state)
{
    (void)state;
    struct addr_dest d;
    assert_int_equal(addr_parse_dest("[fd00:0::1]:443", &d), 0);
    assert_string_equal(d.ip, "fd00::1");
    assert_int_equal(d.port, 443);
    const char *bad[] = {"10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "fd00::1:80", "[10.0.0.1]:80",
                         "[fd00::1]80", "10.0.0.1:80x", ":80", "[]:80", "host:80", "10.0.0.256:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (addr_parse_dest(bad[i], &d) == 0)
            fail_msg("%s parsed", bad[i]);
    assert_true(addr_compare("10.0.0.9", "10.0.0.10") < 0);
    assert_true(addr_compare("10.0.0.10", "fd00::1") < 0);
}

static void test_service(void **state)
{
    (void)state;
    json_t *a = ask("10.96.0.10:80");
    assert_string_equal(str(a, "kind"), "service");
    json_t *eps = json_object_get(json_object_get(a, "service"), "endpoints");
    assert_int_equal(json_array_size(eps), 2); /* the duplicate is dropped; sorted by address */
    assert_string_equal(str(eps, "0.address"), "10.1.0.1");
    assert_string_equal(str(eps, "0.identity"), "spiffe://cluster.local/ns/shop/sa/web");
    assert_true(json_is_true(json_object_get(json_array_get(eps, 0), "meshed")));
    assert_string_equal(str(eps, "1.pod"), "shop/plain");
    assert_true(json_is_false(json_object_get(json_array_get(eps, 1), "meshed")));
    assert_null(json_object_get(json_array_get(eps, 1), "identity"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(eps, 0), "port")), 8080);
    assert_true(json_is_false(json_object_get(json_array_get(eps, 0), "opaque")));
    json_decref(a);
    /* A pod's weft.dev/opaque-ports marks its endpoint on that port opaque. */
    json_t *p = pod("shop", "web-1", "web", "10.1.0.1", 1);
    json_object_set_new(json_object_get(json_object_get(p, "metadata"), "annotations"), "weft.dev/opaque-ports",
                        json_string("8080"));
    TAKEN(s, p);
    a = ask("10.96.0.10:80");
    eps = json_object_get(json_object_get(a, "service"), "endpoints");
    assert_true(json_is_true(json_object_get(json_array_get(eps, 0), "opaque")));
    assert_true(json_is_false(json_object_get(json_array_get(eps, 1), "opaque")));
    assert_true(json_is_false(json_object_get(json_object_get(a, "service"), "opaque")));
    json_decref(a);
    /* An IPv6 question gets only IPv6 endpoints: none here. */
    json_t *svc6 = service("shop", "web", "10.96.0.10");
    json_object_set_new(json_object_get(svc6, "spec"), "clusterIPs", json_pack("[s, s]", "10.96.0.10", "fd00::10"));
    TAKEN(s, svc6);
    a = ask("[fd00::10]:80");
    assert_string_equal(str(a, "destination"), "[fd00::10]:80");
    assert_int_equal(json_array_size(json_object_get(json_object_get(a, "service"), "endpoints")), 0);
    json_decref(a);
}

static void test_unknown(void **state)
{
    (void)state;
    json_t *a = ask("10.96.0.10:81");
    assert_string_equal(str(a, "reason"), "no-such-port");
    json_decref(a);
    a = ask("10.1.0.2:8080");
    assert_string_equal(str(a, "kind"), "unknown");
    assert_string_equal(str(a, "reason"), "not-meshed");
    json_decref(a);
    a = ask("192.0.2.1:443");
    assert_string_equal(str(a, "reason"), "not-found");
    json_decref(a);
    a = ask("10.1.0.1:8080");
    assert_string_equal(str(a, "kind"), "pod");
    assert_string_equal(str(a, "pod.identity"), "spiffe://cluster.local/ns/shop/sa/web");
    json_decref(a);
}

static void test_ties_do_not_depend_on_order(void **state)
{
    (void)state;
    /* Two running pods claiming one IP (a stale one not yet deleted): the
     * answer is the first by key, whichever arrived first. */
    TAKEN(s, pod("shop", "z-new", "other", "10.1.0.9", 1));
    TAKEN(s, pod("shop", "a-old", "web", "10.1.0.9", 1));
    json_t *a = ask("10.1.0.9:80");
    assert_string_equal(str(a, "pod.name"), "a-old");
    json_decref(a);
}

static void test_routes(void **state)
{
    (void)state;
    TAKEN(s, service("shop", "canary", "10.96.0.11"));
    json_t *r = http_route("shop", "b-route", "web", "canary");
    TAKEN(s, r);
    r = http_route("shop", "a-route", "web", "missing");
    TAKEN(s, r);
    r = http_route("shop", "old", "web", "web");
    json_object_set_new(json_object_get(r, "metadata"), "creationTimestamp", json_string("2020-01-01T00:00:00Z"));
    TAKEN(s, r);
    r = http_route("shop", "other-port", "web", "web");
    json_object_set_new(json_array_get(json_object_get(json_object_get(r, "spec"), "parentRefs"), 0), "port",
                        json_integer(9090));
    TAKEN(s, r);
    json_t *a = ask("10.96.0.10:80");
    json_t *routes = json_object_get(json_object_get(a, "service"), "httpRoutes");
    assert_int_equal(json_array_size(routes), 3);
    assert_string_equal(str(routes, "0.name"), "old");
    assert_string_equal(str(routes, "1.name"), "a-route");
    assert_string_equal(str(routes, "1.rules.0.backends.0.reason"), "BackendNotFound");
    assert_string_equal(str(routes, "2.rules.0.backends.0.destination"), "10.96.0.11:80");
    assert_null(json_object_get(json_array_get(routes, 0), "created"));
    json_decref(a);
}

static void test_policy_merge(void **state)
{
    (void)state;
    json_t *a;
    assert_int_equal(answer_pod_policy(s, mesh, "cluster.local", "shop", "web-1", &a), 0);
    assert_string_equal(str(a, "mtlsMode"), "STRICT");
    assert_string_equal(str(a, "inboundPolicy"), "same-namespace");
    assert_int_equal(json_array_size(json_object_get(a, "allowFrom")), 0);
    json_decref(a);
    json_t *ns = namespace_obj("shop");
    json_object_set_new(json_object_get(ns, "metadata"), "annotations",
                        json_pack("{s:s, s:s, s:s}", "weft.dev/mtls-mode", "PERMISSIVE", "weft.dev/inbound-policy",
                                  "mesh", "weft.dev/allow-from", "ops/a, ops/*"));
    TAKEN(s, ns);
    json_t *p = pod("shop", "web-1", "web", "10.1.0.1", 1);
    json_object_set_new(json_object_get(json_object_get(p, "metadata"), "annotations"), "weft.dev/mtls-mode",
                        json_string("STRICT"));
    TAKEN(s, p);
    assert_int_equal(answer_pod_policy(s, mesh, "cluster.local", "shop", "web-1", &a), 0);
    assert_string_equal(str(a, "mtlsMode"), "STRICT");      /* the pod's */
    assert_string_equal(str(a, "inboundPolicy"), "mesh");   /* the namespace's */
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "allowFrom"), 1)), "ops/*");
    json_decref(a);
    ns = namespace_obj("shop");
    json_object_set_new(json_object_get(ns, "metadata"), "annotations", json_pack("{s:s}", "weft.dev/allow-from", "ops"));
    TAKEN(s, ns);
    assert_int_equal(answer_pod_policy(s, mesh, "cluster.local", "shop", "web-1", &a), -EINVAL);
    assert_string_equal(str(a, "kind"), "error");
    assert_non_null(strstr(str(a, "error"), "invalid weft.dev/allow-from \"ops\" on namespace shop"));
    json_decref(a);
    assert_int_equal(answer_pod_policy(s, mesh, "cluster.local", "shop", "nope", &a), -ENOENT);
    json_decref(a);
    TAKEN(s, pod("ghost", "p", "default", "10.1.0.3", 1));
    assert_int_equal(answer_pod_policy(s, mesh, "cluster.local", "ghost", "p", &a), -ENOENT);
    assert_non_null(strstr(str(a, "error"), "namespace ghost of pod ghost/p is not known"));
    json_decref(a);
}

static void test_authorize(void **state)
{
    (void)state;
    char err[256];
    const char *me = "spiffe://cluster.local/ns/shop/sa/web";
    assert_int_equal(answer_authorize_policy(s, "cluster.local", me, "10.1.0.1", "shop", "web-1", err, sizeof err), 0);
    struct {
        const char *id, *ip, *ns, *name, *why;
    } no[] = {
        {"spiffe://cluster.local/ns/shop/sa/db", "10.1.0.1", "shop", "web-1", "not the service account"},
        {"spiffe://cluster.local/ns/ops/sa/web", "10.1.0.1", "shop", "web-1", "may not ask about pods of namespace shop"},
        {"spiffe://other.example/ns/shop/sa/web", "10.1.0.1", "shop", "web-1", "is not of trust domain"},
        {me, "10.1.0.2", "shop", "web-1", "is not an IP of pod shop/web-1"},
        {me, "not-an-ip", "shop", "web-1", "is not an IP of pod"},
        {me, NULL, "shop", "web-1", "(none)"},
        {me, "10.1.0.1", "shop", "web-2", "pod shop/web-2 is not known"},
        {"spiffe://cluster.local/ns/shop/sa/web/extra", "10.1.0.1", "shop", "web-1", "not a Weft SPIFFE ID"},
        {"https://cluster.local/ns/shop/sa/web", "10.1.0.1", "shop", "web-1", "not a Weft SPIFFE ID"},
        {NULL, "10.1.0.1", "shop", "web-1", "not a Weft SPIFFE ID"},
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        err[0] = '\0';
        int rc = answer_authorize_policy(s, "cluster.local", no[i].id, no[i].ip, no[i].ns, no[i].name, err, sizeof err);
        if (rc != -EACCES || !strstr(err, no[i].why))
            fail_msg("case %zu: rc %d err \"%s\", want \"%s\"", i, rc, err, no[i].why);
    }
    /* A host-network pod's IP is the node's: never proof of being that pod. */
    json_t *p = pod("shop", "host", "web", "192.0.2.5", 1);
    json_object_set_new(json_object_get(p, "spec"), "hostNetwork", json_true());
    TAKEN(s, p);
    assert_int_equal(answer_authorize_policy(s, "cluster.local", me, "192.0.2.5", "shop", "host", err, sizeof err),
                     -EACCES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test_setup_teardown(test_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ties_do_not_depend_on_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorize, setup, teardown),
    };
    return cmocka_run_group_tests_name("discovery/answer", tests, NULL, NULL);
}
