/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of webhook/inject.c: the decision table and the properties of
 * the injected pod that matter most (order, idempotence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "shipped_conf.h"
#include "inject.h"


static json_t *pod(const char *meta, const char *spec)
{
    char text[4096];
    snprintf(text, sizeof text, "{\"metadata\":%s,\"spec\":%s}", meta, spec);
    json_t *p = json_loads(text, 0, NULL);
    if (!p)
        fail_msg("bad test pod %s", text);
    return p;
}

static const char *APP = "{\"containers\":[{\"name\":\"app\",\"image\":\"a\"}]}";

static void expect(const char *ns, const char *meta, const char *spec, enum inject_outcome outcome,
                   const char *reason)
{
    struct inject_result r;
    json_t *p = pod(meta, spec);
    inject_pod(&cfg, ns, p, NULL, &r);
    if (r.outcome != outcome || strcmp(r.reason, reason) != 0)
        fail_msg("%s %s: got %d/%s (%s), want %d/%s", meta, spec, r.outcome, r.reason, r.message, outcome, reason);
    json_decref(r.patch);
    json_decref(p);
}

static void test_decisions(void **state)
{
    (void)state;
    expect("shop", "{\"name\":\"p\"}", APP, INJECT_INJECTED, "injected");
    expect("kube-system", "{\"name\":\"p\"}", APP, INJECT_SKIPPED, "ignored-namespace");
    expect("shop", "{\"annotations\":{\"weft.dev/inject\":\"disabled\"}}", APP, INJECT_SKIPPED, "opted-out");
    expect("shop", "{\"labels\":{\"weft.dev/inject\":\"disabled\"}}", APP, INJECT_SKIPPED, "opted-out");
    expect("shop", "{\"labels\":{\"weft.dev/inject\":\"enabled\"}}", APP, INJECT_INJECTED, "injected");
    expect("shop", "{\"labels\":{\"weft.dev/inject\":\"off\"}}", APP, INJECT_DENIED, "invalid-override");
    expect("shop", "{}", "{\"hostNetwork\":true,\"containers\":[]}", INJECT_SKIPPED, "host-network");
    expect("shop", "{\"annotations\":{\"weft.dev/mtls-mode\":\"OFF\"}}", APP, INJECT_DENIED, "invalid-override");
    expect("shop", "{}",
           "{\"containers\":[{\"name\":\"a\",\"readinessProbe\":{\"httpGet\":{\"port\":\"nope\"}}}]}",
           INJECT_DENIED, "invalid-pod");
    expect("shop", "[]", APP, INJECT_DENIED, "invalid-pod");
}

static void test_namespace_annotations_apply(void **state)
{
    (void)state;
    struct inject_result r;
    json_t *p = pod("{}", APP);
    json_t *ns = json_pack("{s:s}", "weft.dev/inbound-policy", "bogus");
    inject_pod(&cfg, "shop", p, ns, &r);
    assert_int_equal(r.outcome, INJECT_DENIED);
    assert_non_null(strstr(r.message, "on namespace shop"));
    json_decref(ns);
    json_decref(p);
}

static void test_patch_orders_and_reinjects(void **state)
{
    (void)state;
    struct inject_result r;
    json_t *p = pod("{\"name\":\"p\"}", "{\"initContainers\":[{\"name\":\"user-init\"}],\"containers\":[{\"name\":\"app\"}]}");
    inject_pod(&cfg, "shop", p, NULL, &r);
    assert_int_equal(r.outcome, INJECT_INJECTED);
    /* The injected containers go in front of the user's init container. */
    json_t *ops = r.patch;
    size_t i;
    json_t *op;
    int saw_init = 0, saw_proxy = 0;
    json_array_foreach(ops, i, op) {
        const char *path = json_string_value(json_object_get(op, "path"));
        const char *name = json_string_value(json_object_get(json_object_get(op, "value"), "name"));
        if (strcmp(path, "/spec/initContainers/0") == 0 && name && strcmp(name, "weft-init") == 0)
            saw_init = 1;
        if (strcmp(path, "/spec/initContainers/1") == 0 && name && strcmp(name, "weft-proxy") == 0)
            saw_proxy = 1;
    }
    assert_true(saw_init && saw_proxy);
    json_decref(r.patch);
    json_decref(p);
}

/* The health service name of a gRPC probe: weft-proxy sends at most 1,024
 * bytes, so the webhook refuses one byte more instead of injecting a proxy
 * that would not start. */
static void test_grpc_probe_service_limit(void **state)
{
    (void)state;
    char name[1026];
    for (size_t len = 1024; len <= 1025; len++) {
        memset(name, 's', len);
        name[len] = '\0';
        json_t *p = json_pack("{s:{s:s}, s:{s:[{s:s, s:s, s:{s:{s:i, s:s}}}]}}", "metadata", "name", "g", "spec",
                              "containers", "name", "app", "image", "a", "readinessProbe", "grpc", "port", 9090,
                              "service", name);
        struct inject_result r;
        inject_pod(&cfg, "shop", p, NULL, &r);
        if (len == 1024) {
            assert_int_equal(r.outcome, INJECT_INJECTED);
        } else {
            assert_int_not_equal(r.outcome, INJECT_INJECTED);
            assert_non_null(strstr(r.message, "readinessProbe grpc.service must be at most 1024 bytes"));
        }
        json_decref(r.patch);
        json_decref(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_namespace_annotations_apply),
        cmocka_unit_test(test_patch_orders_and_reinjects),
        cmocka_unit_test(test_grpc_probe_service_limit),
    };
    return cmocka_run_group_tests_name("webhook/inject", tests, setup, teardown);
}
