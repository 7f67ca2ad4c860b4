/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/settings.c: mesh defaults, precedence of namespace
 * and pod annotations, and every kind of invalid override. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "settings.h"
#include "yamljson.h"

static json_t *mesh_values(void)
{
    char err[512];
    json_t *mesh = yamljson_load_file("templates/mesh.yaml", err, sizeof err);
    if (!mesh)
        fail_msg("%s", err);
    json_t *v = settings_from_mesh(mesh, err, sizeof err);
    if (!v)
        fail_msg("%s", err);
    json_decref(mesh);
    return v;
}

static void test_mesh_defaults(void **state)
{
    (void)state;
    json_t *v = mesh_values();
    assert_string_equal(json_string_value(json_object_get(v, "mtls_mode")), "STRICT");
    assert_string_equal(json_string_value(json_object_get(v, "inbound_policy")), "same-namespace");
    assert_int_equal(json_integer_value(json_object_get(v, "proxy_uid")), 15100);
    assert_true(json_is_true(json_object_get(v, "native_sidecar")));
    assert_string_equal(json_string_value(json_object_get(v, "cpu_limit")), "1");
    json_decref(v);
}

static void test_mesh_errors(void **state)
{
    (void)state;
    char err[512];
    json_t *mesh = yamljson_load_file("templates/mesh.yaml", err, sizeof err);
    json_object_set_new(json_object_get(mesh, "ports"), "admin", json_integer(70000));
    assert_null(settings_from_mesh(mesh, err, sizeof err));
    assert_non_null(strstr(err, "ports.admin: invalid value 70000"));
    json_object_del(mesh, "trustDomain");
    json_object_set_new(json_object_get(mesh, "ports"), "admin", json_integer(15020));
    assert_null(settings_from_mesh(mesh, err, sizeof err));
    assert_non_null(strstr(err, "trustDomain is missing"));
    json_decref(mesh);
}

static void test_precedence(void **state)
{
    (void)state;
    char err[512];
    json_t *base = mesh_values();
    json_t *ns = json_pack("{s:s, s:s}", "weft.dev/mtls-mode", "PERMISSIVE", "weft.dev/allow-from", " ops/monitor , ops/* ");
    json_t *pod = json_pack("{s:s, s:s}", "weft.dev/mtls-mode", "STRICT", "weft.dev/skip-inbound-ports", "9100, 9200");
    json_t *v = settings_resolve(base, ns, "shop", pod, err, sizeof err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "mtls_mode")), "STRICT");
    assert_string_equal(json_string_value(json_object_get(v, "allow_from")), "ops/monitor,ops/*");
    assert_string_equal(json_string_value(json_object_get(v, "skip_inbound_ports")), "9100,9200");
    /* The base is not changed by a resolve. */
    assert_string_equal(json_string_value(json_object_get(base, "mtls_mode")), "STRICT");
    json_decref(v);
    json_decref(ns);
    json_decref(pod);
    json_decref(base);
}

static void expect_refused(const char *key, const char *value, const char *needle)
{
    char err[512];
    json_t *base = mesh_values();
    json_t *pod = json_pack("{s:s}", key, value);
    json_t *v = settings_resolve(base, NULL, "shop", pod, err, sizeof err);
    if (v || !strstr(err, needle))
        fail_msg("%s=%s: got \"%s\", want \"%s\"", key, value, v ? "accepted" : err, needle);
    json_decref(pod);
    json_decref(base);
}

static void test_invalid_overrides(void **state)
{
    (void)state;
    expect_refused("weft.dev/skip-inbound-ports", "http", "invalid weft.dev/skip-inbound-ports \"http\" on the pod");
    expect_refused("weft.dev/skip-outbound-ports", "0", "weft.dev/skip-outbound-ports \"0\"");
    expect_refused("weft.dev/skip-outbound-cidrs", "10.0.0.0/33", "weft.dev/skip-outbound-cidrs \"10.0.0.0/33\"");
    expect_refused("weft.dev/proxy-cpu-request", "lots", "weft.dev/proxy-cpu-request \"lots\"");
    expect_refused("weft.dev/proxy-memory-limit", "-64Mi", "weft.dev/proxy-memory-limit \"-64Mi\"");
    expect_refused("weft.dev/mtls-mode", "strict", "STRICT or PERMISSIVE");
    expect_refused("weft.dev/inbound-policy", "all", "same-namespace, mesh, deny or allow-all");
    expect_refused("weft.dev/allow-from", "ops", "weft.dev/allow-from \"ops\"");
    expect_refused("weft.dev/allow-from", "ops/monitor,", "weft.dev/allow-from");
    expect_refused("weft.dev/native-sidecar", "1", "true or false");
    expect_refused("weft.dev/rewrite-probes", "no", "true or false");
    expect_refused("weft.dev/proxy-log-level", "trace", "debug, info, warn or error");
    expect_refused("weft.dev/proxy-image", "bad image", "weft.dev/proxy-image \"bad image\"");
    expect_refused("weft.dev/mtls_mode", "STRICT", "unknown annotation weft.dev/mtls_mode");
    expect_refused("weft.dev/opaque-ports", "mysql", "invalid weft.dev/opaque-ports \"mysql\" on the pod");
}

/* weft.dev/opaque-ports is no injection setting but a known annotation. */
static void test_opaque_ports_known(void **state)
{
    (void)state;
    char err[512];
    json_t *base = mesh_values();
    json_t *pod = json_pack("{s:s, s:s}", "weft.dev/opaque-ports", "3306, 5432", "weft.dev/status", "{}");
    json_t *v = settings_resolve(base, NULL, "shop", pod, err, sizeof err);
    assert_non_null(v);
    assert_null(json_object_get(v, "opaque_ports"));
    json_decref(v);
    json_decref(pod);
    json_decref(base);
}

static void test_port_list_limit(void **state)
{
    (void)state;
    char err[512], list[1024] = "";
    json_t *base = mesh_values();
    for (int i = 1; i <= 64; i++) {
        char item[8];
        snprintf(item, sizeof item, "%s%d", i > 1 ? "," : "", i);
        strcat(list, item);
    }
    json_t *pod = json_pack("{s:s}", "weft.dev/skip-inbound-ports", list);
    json_t *v = settings_resolve(base, NULL, "shop", pod, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
    json_decref(pod);
    strcat(list, ",65");
    pod = json_pack("{s:s}", "weft.dev/skip-inbound-ports", list);
    assert_null(settings_resolve(base, NULL, "shop", pod, err, sizeof err));
    json_decref(pod);
    json_decref(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mesh_defaults),
        cmocka_unit_test(test_mesh_errors),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_invalid_overrides),
        cmocka_unit_test(test_port_list_limit),
        cmocka_unit_test(test_opaque_ports_known),
    };
    return cmocka_run_group_tests_name("lib/settings", tests, NULL, NULL);
}
