/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of discovery/reduce.c through the store: what is kept of each
 * kind, what is dropped as of no interest, and every per-object limit at the
 * limit and one past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "reduce.h"

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

static void test_pod_reduced(void **state)
{
    (void)state;
    json_t *p = pod("shop", "web-1", "web", "10.1.1.10", 1);
    json_t *meta = json_object_get(p, "metadata");
    json_object_set_new(meta, "labels", json_pack("{s:s}", "app", "web"));
    json_object_set_new(json_object_get(meta, "annotations"), "prometheus.io/scrape", json_string("true"));
    json_object_set_new(json_object_get(meta, "annotations"), "weft.dev/opaque-ports", json_string("9000, 3306,3306"));
    json_object_set_new(meta, "managedFields", json_pack("[{s:s}]", "manager", "kubelet"));
    json_object_set_new(json_object_get(p, "status"), "podIPs", json_pack("[{s:s}, {s:s}]", "ip", "10.1.1.10", "ip", "fd00:0:0::a"));
    TAKEN(s, p);
    json_t *r = store_get(s, REDUCE_POD, "shop/web-1");
    assert_non_null(r);
    assert_true(json_is_true(json_object_get(r, "meshed")));
    assert_string_equal(json_string_value(json_object_get(r, "serviceAccount")), "web");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "ips"), 1)), "fd00::a");
    /* Only weft.dev/ annotations are kept, and not the status itself. */
    assert_int_equal(json_object_size(json_object_get(r, "annotations")), 1);
    assert_int_equal(json_array_size(json_object_get(r, "opaquePorts")), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(r, "opaquePorts"), 0)), 3306);
    assert_null(json_object_get(r, "managedFields"));
    /* Not kept: labels (no answer reads them), a false hostNetwork. */
    assert_null(json_object_get(r, "labels"));
    assert_null(json_object_get(r, "hostNetwork"));
    /* The default service account; a finished pod is forgotten. */
    p = pod("shop", "job", "x", "10.1.1.11", 0);
    json_object_del(json_object_get(p, "spec"), "serviceAccountName");
    TAKEN(s, p);
    assert_string_equal(json_string_value(json_object_get(store_get(s, REDUCE_POD, "shop/job"), "serviceAccount")),
                        "default");
    p = pod("shop", "job", "default", "10.1.1.11", 0);
    json_object_set_new(json_object_get(p, "status"), "phase", json_string("Succeeded"));
    TAKEN(s, p);
    assert_null(store_get(s, REDUCE_POD, "shop/job"));
}

static void test_names(void **state)
{
    (void)state;
    char name[300];
    /* 253 characters: labels of 63, 63, 63 and 61 with dots between. */
    memset(name, 'a', REDUCE_MAX_NAME);
    name[63] = name[127] = name[191] = '.';
    name[REDUCE_MAX_NAME] = '\0';
    TAKEN(s, pod("shop", name, "web", "10.1.1.12", 0));
    name[REDUCE_MAX_NAME] = 'a';
    name[REDUCE_MAX_NAME + 1] = '\0';
    REFUSED(s, pod("shop", name, "web", "10.1.1.12", 0), "metadata.name");
    TAKEN(s, pod(repeat('n', 63), "p", "web", "10.1.1.12", 0));
    REFUSED(s, pod(repeat('n', 64), "p", "web", "10.1.1.12", 0), "metadata.namespace");
    REFUSED(s, pod("Shop", "p", "web", "10.1.1.12", 0), "metadata.namespace");
    REFUSED(s, pod("shop", "p", "Web", "10.1.1.12", 0), "spec.serviceAccountName \"Web\"");
    REFUSED(s, pod("shop", "p", "web", "10.1.1.", 0), "status.podIP: \"10.1.1.\" is not an IP address");
    TAKEN(s, namespace_obj(repeat('n', 63)));
    REFUSED(s, namespace_obj(repeat('n', 64)), "DNS-1123 label");
    json_t *nons = service("shop", "web", "10.96.0.10");
    json_object_del(json_object_get(nons, "metadata"), "namespace");
    REFUSED(s, nons, "Service web: metadata.namespace: is missing");
}

static void test_kinds(void **state)
{
    (void)state;
    char err[256];
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "apps/v1", "kind", "Deployment", "metadata",
                          "namespace", "shop", "name", "web");
    assert_int_equal(store_apply(s, STORE_ADDED, o, err, sizeof err), -ENOTSUP);
    json_object_set_new(o, "apiVersion", json_string("discovery.k8s.io/v1beta1"));
    json_object_set_new(o, "kind", json_string("EndpointSlice"));
    assert_int_equal(store_apply(s, STORE_ADDED, o, err, sizeof err), -ENOTSUP);
    json_object_del(o, "kind");
    assert_int_equal(store_apply(s, STORE_ADDED, o, err, sizeof err), -EINVAL);
    json_decref(o);
}

static void test_labels_and_annotations_limits(void **state)
{
    (void)state;
    char key[400];
    json_t *p = pod("shop", "l", "web", "10.1.1.13", 0), *labels = json_object();
    /* Labels are not kept (no answer reads them), so none is refused: 129
     * of them, and a key and a value past the API's lengths. */
    for (int i = 0; i < 129; i++) {
        snprintf(key, sizeof key, "l%d", i);
        json_object_set_new(labels, key, json_string("v"));
    }
    json_object_set_new(labels, repeat('k', REDUCE_MAX_LABEL_KEY + 1), json_string(repeat('v', 64)));
    json_object_set_new(json_object_get(p, "metadata"), "labels", labels);
    TAKEN(s, json_deep_copy(p));
    assert_null(json_object_get(store_get(s, REDUCE_POD, "shop/l"), "labels"));
    json_object_clear(labels);

    json_t *ann = json_object_get(json_object_get(p, "metadata"), "annotations");
    for (int i = 0; i < REDUCE_MAX_WEFT_ANNOTATIONS; i++) {
        snprintf(key, sizeof key, "weft.dev/x%d", i);
        json_object_set_new(ann, key, json_string("v"));
    }
    json_object_set_new(ann, "other.example/a", json_string("not counted"));
    TAKEN(s, json_deep_copy(p));
    json_object_set_new(ann, "weft.dev/one-more", json_string("v"));
    REFUSED(s, json_deep_copy(p), "more than 32 weft.dev/ annotations");
    json_object_clear(ann);
    json_object_set_new(ann, "weft.dev/allow-from", json_string(repeat('a', REDUCE_MAX_ANNOTATION_VALUE)));
    TAKEN(s, json_deep_copy(p));
    json_object_set_new(ann, "weft.dev/allow-from", json_string(repeat('a', REDUCE_MAX_ANNOTATION_VALUE + 1)));
    REFUSED(s, json_deep_copy(p), "weft.dev/allow-from: expected a string of at most 4096 bytes");
    json_decref(p);
}

static void test_opaque_ports_limit(void **state)
{
    (void)state;
    char list[512] = "";
    size_t used = 0;
    for (int i = 1; i <= 64; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", i > 1 ? "," : "", 1000 + i);
    json_t *svc = service("shop", "db", "10.96.0.20");
    json_object_set_new(json_object_get(svc, "metadata"), "annotations", json_pack("{s:s}", "weft.dev/opaque-ports", list));
    TAKEN(s, json_deep_copy(svc));
    assert_int_equal(json_array_size(json_object_get(store_get(s, REDUCE_SERVICE, "shop/db"), "opaquePorts")), 64);
    snprintf(list + used, sizeof list - used, ",2000");
    json_object_set_new(json_object_get(svc, "metadata"), "annotations", json_pack("{s:s}", "weft.dev/opaque-ports", list));
    REFUSED(s, svc, "weft.dev/opaque-ports");
}

static void test_ips_limit(void **state)
{
    (void)state;
    json_t *p = pod("shop", "ips", "web", "10.1.1.14", 0);
    json_object_set_new(json_object_get(p, "status"), "podIPs", json_pack("[{s:s}, {s:s}]", "ip", "10.1.1.14", "ip", "fd00::14"));
    TAKEN(s, json_deep_copy(p));
    json_array_append_new(json_object_get(json_object_get(p, "status"), "podIPs"), json_pack("{s:s}", "ip", "10.1.1.15"));
    REFUSED(s, p, "status.podIPs: expected a list of at most 2 items");
    json_t *svc = service("shop", "dual", "10.96.0.30");
    json_object_set_new(json_object_get(svc, "spec"), "clusterIPs", json_pack("[s, s]", "10.96.0.30", "fd00::30"));
    TAKEN(s, json_deep_copy(svc));
    json_array_append_new(json_object_get(json_object_get(svc, "spec"), "clusterIPs"), json_string("10.96.0.31"));
    REFUSED(s, svc, "spec.clusterIPs: expected a list of at most 2 items");
}

static void test_service_ports(void **state)
{
    (void)state;
    json_t *svc = service("shop", "many", "10.96.0.40");
    json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports");
    json_array_clear(ports);
    for (int i = 0; i < REDUCE_MAX_SERVICE_PORTS; i++)
        json_array_append_new(ports, json_pack("{s:i}", "port", 1000 + i));
    TAKEN(s, json_deep_copy(svc));
    json_t *r = json_array_get(json_object_get(store_get(s, REDUCE_SERVICE, "shop/many"), "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "targetPort")), 1000); /* defaults to the port */
    assert_string_equal(json_string_value(json_object_get(r, "protocol")), "TCP");
    json_array_append_new(ports, json_pack("{s:i}", "port", 9999));
    REFUSED(s, json_deep_copy(svc), "spec.ports: expected a list of at most 128 items");
    json_array_clear(ports);
    json_array_append_new(ports, json_pack("{s:i, s:s}", "port", 80, "protocol", "HTTP"));
    REFUSED(s, json_deep_copy(svc), "spec.ports[0].protocol: expected one of TCP, UDP, SCTP");
    json_array_clear(ports);
    json_array_append_new(ports, json_pack("{s:i, s:s}", "port", 80, "targetPort", repeat('p', 15)));
    TAKEN(s, json_deep_copy(svc));
    json_array_clear(ports);
    json_array_append_new(ports, json_pack("{s:i, s:s}", "port", 80, "targetPort", repeat('p', 16)));
    REFUSED(s, json_deep_copy(svc), "spec.ports[0].targetPort");
    json_array_clear(ports);
    json_array_append_new(ports, json_pack("{s:i}", "port", 0));
    REFUSED(s, svc, "spec.ports[0].port: expected an integer 1-65535");
    /* Headless and ExternalName Services have no ClusterIP to answer for. */
    json_t *headless = service("shop", "hl", "None");
    TAKEN(s, headless);
    assert_int_equal(json_array_size(json_object_get(store_get(s, REDUCE_SERVICE, "shop/hl"), "clusterIPs")), 0);
}

static void test_durations(void **state)
{
    (void)state;
    unsigned long long ms;
    static const struct {
        const char *in;
        unsigned long long ms;
    } good[] = {{"0s", 0}, {"250ms", 250}, {"5s", 5000}, {"1m30s", 90000}, {"24h", 86400000ULL},
                {"99999h", 99999ULL * 3600000}, {"1h1m1s1ms", 3661001}, {"99999h99999h99999h99999h", 4ULL * 99999 * 3600000}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(reduce_duration_ms(good[i].in, &ms), 0);
        assert_true(ms == good[i].ms);
    }
    static const char *const bad[] = {"", "5", "s", "5x", "-5s", "1.5s", "5 s", "100000s", "1h1h1h1h1h", "5S", "5us",
                                      "5sms"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(reduce_duration_ms(bad[i], &ms), -EINVAL);
}

/* Applies svc (stolen) with one annotation: the Service is always taken in;
 * a bad value is named in err and the reduced annotationErrors, counted. */
static json_t *service_with(const char *key, const char *value, const char *want_err)
{
    json_t *svc = service("shop", "t", "10.96.0.50");
    json_object_set_new(json_object_get(svc, "metadata"), "annotations", json_pack("{s:s}", key, value));
    char err[1024] = "";
    unsigned long before = store_warnings(s);
    assert_int_equal(store_apply(s, STORE_ADDED, svc, err, sizeof err), 0);
    json_decref(svc);
    json_t *r = store_get(s, REDUCE_SERVICE, "shop/t");
    assert_non_null(r);
    if (want_err) {
        assert_non_null(strstr(err, want_err));
        assert_non_null(strstr(json_string_value(json_array_get(json_object_get(r, "annotationErrors"), 0)),
                               want_err));
        assert_int_equal(store_warnings(s), before + 1);
        assert_null(json_object_get(r, "timeouts"));
    } else {
        assert_string_equal(err, "");
        assert_null(json_object_get(r, "annotationErrors"));
        assert_int_equal(store_warnings(s), before);
    }
    return json_object_get(r, "timeouts");
}

static void test_service_timeouts(void **state)
{
    (void)state;
    json_t *t = service_with("weft.dev/request-timeout", "24h", NULL); /* the limit */
    assert_int_equal(json_integer_value(json_object_get(t, "requestMs")), 86400000);
    service_with("weft.dev/request-timeout", "24h1ms", "weft.dev/request-timeout \"24h1ms\": expected a duration "
                 "0s-24h"); /* one past */
    t = service_with("weft.dev/request-timeout", "0s", NULL);
    assert_int_equal(json_integer_value(json_object_get(t, "requestMs")), 0);
    service_with("weft.dev/response-header-timeout", "86400000ms", "\"86400000ms\""); /* 8 digits: not a Gateway API duration */
    t = service_with("weft.dev/response-header-timeout", "1440m", NULL);
    assert_int_equal(json_integer_value(json_object_get(t, "responseHeaderMs")), 86400000);
    service_with("weft.dev/response-header-timeout", "1440m1ms", "weft.dev/response-header-timeout");
    t = service_with("weft.dev/idle-timeout", "1ms", NULL);
    assert_int_equal(json_integer_value(json_object_get(t, "idleMs")), 1);
    service_with("weft.dev/idle-timeout", "0ms", "weft.dev/idle-timeout \"0ms\": expected a duration 1ms-24h");
    service_with("weft.dev/idle-timeout", "soon", "the default applies");
    /* A long value is shown cut at a character boundary, still UTF-8. */
    char v[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(v, "\xc3\xa9");
    service_with("weft.dev/request-timeout", v, "...\"");
}

static void test_slice_limits(void **state)
{
    (void)state;
    json_t *sl = slice("shop", "web-1", "web");
    json_t *eps = json_object_get(sl, "endpoints"), *ports = json_object_get(sl, "ports");
    char ip[32];
    for (int i = 0; i < REDUCE_MAX_SLICE_ENDPOINTS; i++) {
        snprintf(ip, sizeof ip, "10.2.%d.%d", i / 250, i % 250 + 1);
        json_array_append_new(eps, endpoint(ip, NULL));
    }
    TAKEN(s, json_deep_copy(sl));
    assert_int_equal(json_array_size(json_object_get(store_get(s, REDUCE_SLICE, "shop/web-1"), "endpoints")),
                     REDUCE_MAX_SLICE_ENDPOINTS);
    json_array_append_new(eps, endpoint("10.3.0.1", NULL));
    REFUSED(s, json_deep_copy(sl), "endpoints: expected a list of at most 1000 items");
    json_array_clear(eps);
    json_t *e = endpoint("10.3.0.1", "p");
    for (int i = 1; i < REDUCE_MAX_SLICE_ADDRESSES; i++)
        json_array_append_new(json_object_get(e, "addresses"), json_string("10.3.0.2"));
    json_array_append_new(eps, e);
    TAKEN(s, json_deep_copy(sl));
    json_array_append_new(json_object_get(e, "addresses"), json_string("10.3.0.3"));
    REFUSED(s, json_deep_copy(sl), "endpoints[0].addresses: expected a list of at most 100 items");
    json_array_clear(eps);
    for (int i = 1; i < REDUCE_MAX_SLICE_PORTS; i++)
        json_array_append_new(ports, json_pack("{s:s, s:i}", "name", "p", "port", 9000 + i));
    TAKEN(s, json_deep_copy(sl));
    json_array_append_new(ports, json_pack("{s:s, s:i}", "name", "q", "port", 9999));
    REFUSED(s, json_deep_copy(sl), "ports: expected a list of at most 100 items");
    json_array_clear(ports);
    json_array_append_new(eps, json_pack("{s:[s], s:{s:s}}", "addresses", "10.3.0.1", "conditions", "ready", "yes"));
    REFUSED(s, json_deep_copy(sl), "endpoints[0].conditions.ready: expected true or false");
    json_decref(sl);
    /* Of no interest: FQDN slices and slices of no Service. */
    sl = slice("shop", "ext", "web");
    json_object_set_new(sl, "addressType", json_string("FQDN"));
    TAKEN(s, sl);
    assert_null(store_get(s, REDUCE_SLICE, "shop/ext"));
    sl = slice("shop", "orphan", "web");
    json_object_del(json_object_get(sl, "metadata"), "labels");
    TAKEN(s, sl);
    assert_null(store_get(s, REDUCE_SLICE, "shop/orphan"));
}

static void test_slice_conditions(void **state)
{
    (void)state;
    json_t *sl = slice("shop", "conds", "web");
    json_t *eps = json_object_get(sl, "endpoints");
    json_array_append_new(eps, json_pack("{s:[s]}", "addresses", "10.4.0.1"));
    json_array_append_new(eps, json_pack("{s:[s], s:{s:b, s:b}}", "addresses", "10.4.0.2", "conditions", "ready", 0,
                                         "terminating", 1));
    TAKEN(s, sl);
    json_t *got = json_object_get(store_get(s, REDUCE_SLICE, "shop/conds"), "endpoints");
    /* Unknown readiness is ready; serving follows ready; terminating defaults to false. */
    assert_true(json_is_true(json_object_get(json_array_get(got, 0), "ready")));
    assert_true(json_is_true(json_object_get(json_array_get(got, 0), "serving")));
    assert_true(json_is_false(json_object_get(json_array_get(got, 0), "terminating")));
    assert_true(json_is_false(json_object_get(json_array_get(got, 1), "serving")));
    assert_true(json_is_true(json_object_get(json_array_get(got, 1), "terminating")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pod_reduced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_and_annotations_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opaque_ports_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ips_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slice_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slice_conditions, setup, teardown),
    };
    return cmocka_run_group_tests_name("discovery/reduce", tests, NULL, NULL);
}
