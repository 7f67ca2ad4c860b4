/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of discovery/store.c: watch events as the API server streams
 * them, the informers' rules for ADDED/MODIFIED/DELETED, a refused event
 * keeping the last good object, BOOKMARK and ERROR, and the store's limits
 * (objects per kind, bytes per event) at the limit and one past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "fixtures.h"
#include "xalloc.h"

/* Wraps obj (stolen) in a watch event of type and applies it. */
static int event(struct store *s, const char *type, json_t *obj, char *err, size_t errlen)
{
    json_t *ev = json_pack("{s:s, s:o}", "type", type, "object", obj);
    char *text = json_dumps(ev, JSON_COMPACT);
    int rc = store_apply_event(s, text, strlen(text), err, errlen);
    free(text);
    json_decref(ev);
    return rc;
}

static void test_event_types(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    unsigned long rev = store_revision(s);
    /* MODIFIED of an unknown object adds it; ADDED of a known one replaces it. */
    assert_int_equal(event(s, "MODIFIED", service("shop", "web", "10.96.0.10"), err, sizeof err), 0);
    assert_non_null(store_get(s, REDUCE_SERVICE, "shop/web"));
    assert_int_equal(event(s, "ADDED", service("shop", "web", "10.96.0.11"), err, sizeof err), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(store_get(s, REDUCE_SERVICE, "shop/web"),
                                                                         "clusterIPs"), 0)), "10.96.0.11");
    assert_true(store_revision(s) == rev + 2);
    /* DELETED needs only the metadata; of an unknown object it changes nothing. */
    json_t *gone = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion", "v1", "kind", "Service", "metadata",
                             "namespace", "shop", "name", "web", "resourceVersion", "77");
    assert_int_equal(event(s, "DELETED", json_deep_copy(gone), err, sizeof err), 0);
    assert_null(store_get(s, REDUCE_SERVICE, "shop/web"));
    assert_string_equal(store_resource_version(s, REDUCE_SERVICE), "77");
    rev = store_revision(s);
    assert_int_equal(event(s, "DELETED", gone, err, sizeof err), 0);
    assert_true(store_revision(s) == rev);
    store_free(s);
}

static void test_refused_keeps_last_good(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    assert_int_equal(event(s, "ADDED", service("shop", "web", "10.96.0.10"), err, sizeof err), 0);
    json_t *bad = service("shop", "web", "10.96.0.99");
    json_object_set_new(json_array_get(json_object_get(json_object_get(bad, "spec"), "ports"), 0), "port",
                        json_integer(0));
    assert_int_equal(event(s, "MODIFIED", bad, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "Service shop/web: spec.ports[0].port: expected an integer 1-65535"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(store_get(s, REDUCE_SERVICE, "shop/web"),
                                                                         "clusterIPs"), 0)), "10.96.0.10");
    store_free(s);
}

static void test_bookmark_and_errors(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    const char *bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
                           "\"metadata\":{\"resourceVersion\":\"12345\"}}}";
    assert_int_equal(store_apply_event(s, bookmark, strlen(bookmark), err, sizeof err), 0);
    assert_string_equal(store_resource_version(s, REDUCE_POD), "12345");
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                       "\"message\":\"too old resource version: 1 (12345)\",\"reason\":\"Expired\",\"code\":410}}";
    assert_int_equal(store_apply_event(s, gone, strlen(gone), err, sizeof err), -ESTALE);
    assert_non_null(strstr(err, "watch error 410: too old resource version"));
    const char *other = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,\"message\":\"boom\"}}";
    assert_int_equal(store_apply_event(s, other, strlen(other), err, sizeof err), -EPROTO);
    const char *cases[] = {"", "[]", "{}", "{\"type\":\"ADDED\"}", "{\"type\":\"ADDED\",\"object\":[]}",
                           "{\"type\":\"ADDED\",\"object\":{}}", "{\"type\":1,\"object\":{}}",
                           "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}", "{\"type\":\"ADDED\",\"object\":{\"a\":"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(store_apply_event(s, cases[i], strlen(cases[i]), err, sizeof err), -EINVAL);
    const char *deployment = "{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
                             "\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"}}}";
    assert_int_equal(store_apply_event(s, deployment, strlen(deployment), err, sizeof err), -ENOTSUP);
    store_free(s);
}

static void test_object_limit(void **state)
{
    (void)state;
    char err[512];
    struct store_limits l;
    store_default_limits(&l);
    l.max_objects[REDUCE_POD] = 3;
    struct store *s = store_new(&l);
    expect_apply(s, pod("a", "p1", "sa", "10.0.0.1", 1), 0, NULL, "p1");
    json_t *p2 = pod("a", "p2", "sa", "10.0.0.2", 1), *p3 = pod("a", "p3", "sa", "10.0.0.3", 1);
    json_t *p4 = pod("a", "p4", "sa", "10.0.0.4", 1);
    assert_int_equal(store_apply(s, STORE_ADDED, p2, err, sizeof err), 0);
    assert_int_equal(store_apply(s, STORE_ADDED, p3, err, sizeof err), 0); /* at the limit */
    assert_int_equal(store_apply(s, STORE_ADDED, p4, err, sizeof err), -ENOSPC); /* one past */
    assert_non_null(strstr(err, "Pod a/p4: refused: the store holds at most 3 objects of kind Pod"));
    /* Replacing at the limit is fine; other kinds have their own limit. */
    assert_int_equal(store_apply(s, STORE_MODIFIED, p3, err, sizeof err), 0);
    expect_apply(s, service("a", "svc", "10.96.0.1"), 0, NULL, "svc");
    /* A deletion makes room. */
    assert_int_equal(store_apply(s, STORE_DELETED, p2, err, sizeof err), 0);
    assert_int_equal(store_apply(s, STORE_ADDED, p4, err, sizeof err), 0);
    assert_int_equal(json_object_size(store_objects(s, REDUCE_POD)), 3);
    json_decref(p2);
    json_decref(p3);
    json_decref(p4);
    store_free(s);
}

/* A BOOKMARK event padded with blanks to exactly n bytes. */
static char *padded_event(size_t n)
{
    const char *head = "{\"type\":\"BOOKMARK\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{}}";
    size_t hl = strlen(head);
    char *b = xmalloc(n + 1);
    memcpy(b, head, hl);
    memset(b + hl, ' ', n - hl - 1);
    b[n - 1] = '}';
    b[n] = '\0';
    return b;
}

static void test_event_size_limit(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    char *ev = padded_event(STORE_MAX_EVENT_BYTES);
    assert_int_equal(store_apply_event(s, ev, STORE_MAX_EVENT_BYTES, err, sizeof err), 0);
    free(ev);
    ev = padded_event(STORE_MAX_EVENT_BYTES + 1);
    assert_int_equal(store_apply_event(s, ev, STORE_MAX_EVENT_BYTES + 1, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "larger than 3145728 bytes"));
    free(ev);
    store_free(s);
}

/* The indexes follow every change: an IP a Service left finds nothing, its
 * new one finds it, a deleted key leaves every set. */
static void test_indexes_follow_changes(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    assert_null(store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.10"));
    assert_int_equal(event(s, "ADDED", service("shop", "web", "10.96.0.10"), err, sizeof err), 0);
    assert_non_null(json_object_get(store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.10"), "shop/web"));
    assert_int_equal(event(s, "MODIFIED", service("shop", "web", "10.96.0.11"), err, sizeof err), 0);
    assert_null(store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.10"));
    assert_non_null(json_object_get(store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.11"), "shop/web"));
    assert_int_equal(event(s, "ADDED", service("ops", "web", "10.96.0.11"), err, sizeof err), 0);
    assert_int_equal(json_object_size(store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.11")), 2);
    assert_int_equal(store_delete_key(s, REDUCE_SERVICE, "shop/web"), 1);
    assert_int_equal(store_delete_key(s, REDUCE_SERVICE, "shop/web"), 0);
    json_t *left = store_index(s, STORE_INDEX_SERVICE_IP, "10.96.0.11");
    assert_int_equal(json_object_size(left), 1);
    assert_non_null(json_object_get(left, "ops/web"));
    store_free(s);
}

/* Every index set of s that the lookups below can reach equals, as a set,
 * the one a store built afresh from the same objects has. */
static void expect_indexes_as_rebuilt(struct store *s, const char *when)
{
    static const struct {
        enum store_index which;
        const char *by;
    } probes[] = {
        {STORE_INDEX_SERVICE_IP, "10.96.0.10"}, {STORE_INDEX_SERVICE_IP, "10.96.0.11"},
        {STORE_INDEX_POD_IP, "10.1.0.1"},       {STORE_INDEX_POD_IP, "10.1.0.2"},
        {STORE_INDEX_SLICE_SERVICE, "shop/web"}, {STORE_INDEX_SLICE_SERVICE, "shop/api"},
        {STORE_INDEX_HTTPROUTE_PARENT, "shop/web"}, {STORE_INDEX_HTTPROUTE_PARENT, "shop/api"},
    };
    struct store *fresh = store_new(NULL);
    store_sync(fresh, s);
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        json_t *got = store_index(s, probes[i].which, probes[i].by);
        json_t *want = store_index(fresh, probes[i].which, probes[i].by);
        if (!got != !want || (got && !json_equal(got, want))) {
            char *g = got ? json_dumps(got, JSON_COMPACT) : NULL, *w = want ? json_dumps(want, JSON_COMPACT) : NULL;
            fail_msg("%s: index %d \"%s\": %s, rebuilt %s", when, (int)probes[i].which, probes[i].by,
                     g ? g : "(none)", w ? w : "(none)");
        }
    }
    store_free(fresh);
}

/* The indexes, built once, are kept current change by change (no rebuild
 * over every table per change): after each kind of change they are what a
 * rebuild gives. */
static void test_indexes_kept_current(void **state)
{
    (void)state;
    char err[512];
    struct store *s = store_new(NULL);
    expect_indexes_as_rebuilt(s, "empty"); /* built here, on an empty store */
    assert_int_equal(event(s, "ADDED", service("shop", "web", "10.96.0.10"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a Service added");
    assert_int_equal(event(s, "ADDED", service("shop", "api", "10.96.0.10"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a second Service on the IP");
    assert_int_equal(event(s, "MODIFIED", service("shop", "web", "10.96.0.11"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a Service moved to another IP");
    assert_int_equal(event(s, "ADDED", pod("shop", "web-1", "web", "10.1.0.1", 1), err, sizeof err), 0);
    assert_int_equal(event(s, "ADDED", pod("shop", "web-2", "web", "10.1.0.1", 1), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "two pods on one IP");
    assert_int_equal(event(s, "MODIFIED", pod("shop", "web-2", "web", "10.1.0.2", 1), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a pod moved");
    json_t *sl = slice("shop", "web-abc", "web");
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.0.1", "web-1"));
    assert_int_equal(event(s, "ADDED", sl, err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a slice added");
    assert_int_equal(event(s, "MODIFIED", slice("shop", "web-abc", "api"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a slice moved to another Service");
    assert_int_equal(event(s, "ADDED", http_route("shop", "r1", "web", "api"), err, sizeof err), 0);
    assert_int_equal(event(s, "ADDED", http_route("shop", "r2", "web", "web"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "routes added");
    assert_int_equal(event(s, "MODIFIED", http_route("shop", "r1", "api", "api"), err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a route moved to another parent");
    json_t *gone = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "gateway.networking.k8s.io/v1", "kind",
                             "HTTPRoute", "metadata", "namespace", "shop", "name", "r2");
    assert_int_equal(event(s, "DELETED", gone, err, sizeof err), 0);
    expect_indexes_as_rebuilt(s, "a route deleted");
    assert_int_equal(store_delete_key(s, REDUCE_POD, "shop/web-1"), 1);
    expect_indexes_as_rebuilt(s, "a pod deleted by key");
    /* A whole other store synced in (a re-read directory). */
    struct store *other = store_new(NULL);
    assert_int_equal(event(other, "ADDED", service("shop", "web", "10.96.0.10"), err, sizeof err), 0);
    assert_int_equal(event(other, "ADDED", pod("shop", "web-3", "web", "10.1.0.2", 1), err, sizeof err), 0);
    store_sync(s, other);
    expect_indexes_as_rebuilt(s, "a store synced in");
    assert_null(store_index(s, STORE_INDEX_SLICE_SERVICE, "shop/api"));
    store_free(other);
    store_free(s);
}

/* Pods and endpoints of one namespace, service account and node share one
 * string each, and strings no object holds any more are let go. */
static void test_strings_shared(void **state)
{
    (void)state;
    struct store *s = store_new(NULL);
    TAKEN(s, pod("shop", "web-1", "web", "10.1.1.10", 1));
    TAKEN(s, pod("shop", "web-2", "web", "10.1.1.11", 1));
    json_t *sl = slice("shop", "web-abc", "web"), *e = endpoint("10.1.1.10", "web-1");
    json_object_set_new(e, "nodeName", json_string("node-a"));
    json_array_append_new(json_object_get(sl, "endpoints"), e);
    TAKEN(s, sl);
    json_t *p1 = store_get(s, REDUCE_POD, "shop/web-1"), *p2 = store_get(s, REDUCE_POD, "shop/web-2");
    json_t *ep = json_array_get(json_object_get(store_get(s, REDUCE_SLICE, "shop/web-abc"), "endpoints"), 0);
    assert_ptr_equal(json_object_get(p1, "namespace"), json_object_get(p2, "namespace"));
    assert_ptr_equal(json_object_get(p1, "serviceAccount"), json_object_get(p2, "serviceAccount"));
    assert_ptr_equal(json_object_get(p1, "node"), json_object_get(p2, "node"));
    assert_ptr_equal(json_object_get(p1, "node"), json_object_get(ep, "node"));
    assert_string_equal(json_string_value(json_object_get(ep, "node")), "node-a");
    /* A node no pod is on any more: its string goes at the next prune (the
     * table at 1,024 strings), the others stay. */
    json_t *p = pod("shop", "lone", "web", "10.1.2.1", 1);
    json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string("node-gone"));
    TAKEN(s, p);
    assert_int_equal(store_shared_strings(s), 4); /* shop, web, node-a, node-gone */
    assert_int_equal(store_delete_key(s, REDUCE_POD, "shop/lone"), 1);
    assert_int_equal(store_shared_strings(s), 4);
    char name[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(name, sizeof name, "n-%d", i);
        p = pod("other", name, "sa", "10.2.0.1", 1);
        json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(name));
        TAKEN(s, p);
    }
    assert_int_equal(store_shared_strings(s), 3 + 2 + 1100); /* node-gone pruned; other, sa */
    /* What objects still hold stays shared. */
    TAKEN(s, pod("shop", "web-3", "web", "10.1.1.12", 1));
    assert_ptr_equal(json_object_get(store_get(s, REDUCE_POD, "shop/web-3"), "node"), json_object_get(p1, "node"));
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_types),
        cmocka_unit_test(test_indexes_kept_current),
        cmocka_unit_test(test_refused_keeps_last_good),
        cmocka_unit_test(test_bookmark_and_errors),
        cmocka_unit_test(test_object_limit),
        cmocka_unit_test(test_event_size_limit),
        cmocka_unit_test(test_indexes_follow_changes),
        cmocka_unit_test(test_strings_shared),
    };
    return cmocka_run_group_tests_name("discovery/store", tests, NULL, NULL);
}
