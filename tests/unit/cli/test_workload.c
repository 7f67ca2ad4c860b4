/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of cli/workload.c: which pod each kind holds, pass-through of
 * other kinds, refusals naming the object, and inject then uninject giving
 * the object back (the golden cases hold the full outputs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../webhook/shipped_conf.h"
#include "workload.h"

static const char *POD_SPEC = "{\"containers\":[{\"name\":\"app\",\"image\":\"a\"}]}";

/* fmt with its one "%s" replaced by spec (not printf: the fixtures are data). */
static json_t *load(const char *fmt, const char *spec)
{
    char text[4096];
    const char *at = strstr(fmt, "%s");
    if (at)
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - fmt), fmt, spec, at + 2);
    else
        snprintf(text, sizeof text, "%s", fmt);
    json_t *d = json_loads(text, 0, NULL);
    if (!d)
        fail_msg("bad test JSON %s", text);
    return d;
}

/* The pod spec of doc at the path the kind keeps it. */
static json_t *spec_at(json_t *doc, const char *const *path)
{
    json_t *v = doc;
    for (size_t i = 0; path[i]; i++)
        v = json_object_get(v, path[i]);
    return v;
}

static int has_proxy(json_t *spec)
{
    json_t *lists[] = {json_object_get(spec, "initContainers"), json_object_get(spec, "containers")};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *c;
        json_array_foreach(lists[l], i, c) if (strcmp(json_string_value(json_object_get(c, "name")), "weft-proxy") == 0) return 1;
    }
    return 0;
}

static void test_kinds(void **state)
{
    (void)state;
    static const char *const pod[] = {"spec", NULL};
    static const char *const tmpl[] = {"spec", "template", "spec", NULL};
    static const char *const cron[] = {"spec", "jobTemplate", "spec", "template", "spec", NULL};
    static const struct {
        const char *fmt;
        const char *const *path;
    } cases[] = {
        {"{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":%s}", pod},
        {"{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\"},\"spec\":{\"template\":{\"spec\":%s}}}", tmpl},
        {"{\"kind\":\"StatefulSet\",\"spec\":{\"template\":{\"spec\":%s}}}", tmpl},
        {"{\"kind\":\"DaemonSet\",\"spec\":{\"template\":{\"spec\":%s}}}", tmpl},
        {"{\"kind\":\"Job\",\"spec\":{\"template\":{\"spec\":%s}}}", tmpl},
        {"{\"kind\":\"CronJob\",\"spec\":{\"jobTemplate\":{\"spec\":{\"template\":{\"spec\":%s}}}}}", cron},
    };
    struct workload_ctx w = {.conf = &cfg};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024];
        json_t *in = load(cases[i].fmt, POD_SPEC);
        json_t *out = workload_inject(&w, in, "t", err, sizeof err);
        if (!out)
            fail_msg("%s: %s", cases[i].fmt, err);
        if (!has_proxy(spec_at(out, cases[i].path)))
            fail_msg("%s: no weft-proxy in the pod", cases[i].fmt);
        json_t *back = workload_uninject(&w, out, "t", err, sizeof err);
        if (!back || !json_equal(back, in))
            fail_msg("%s: uninject does not give the original back", cases[i].fmt);
        json_decref(back);
        json_decref(out);
        json_decref(in);
    }
}

static void test_pass_through_and_list(void **state)
{
    (void)state;
    struct workload_ctx w = {.conf = &cfg};
    char err[1024];
    json_t *svc = load("{\"kind\":\"Service\",\"spec\":%s}", "{\"ports\":[{\"port\":80}]}");
    json_t *out = workload_inject(&w, svc, "t", err, sizeof err);
    assert_non_null(out);
    assert_true(json_equal(out, svc));
    json_decref(out);
    json_decref(svc);
    json_t *list = load("{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\",\"spec\":%s},{\"kind\":\"ConfigMap\"}]}", POD_SPEC);
    out = workload_inject(&w, list, "t", err, sizeof err);
    assert_non_null(out);
    assert_true(has_proxy(json_object_get(json_array_get(json_object_get(out, "items"), 0), "spec")));
    assert_true(json_equal(json_array_get(json_object_get(out, "items"), 1), json_array_get(json_object_get(list, "items"), 1)));
    json_decref(out);
    json_decref(list);
}

static void test_refusal_names_object(void **state)
{
    (void)state;
    struct workload_ctx w = {.conf = &cfg};
    char err[1024];
    json_t *bad = load("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\","
                       "\"annotations\":{}},\"spec\":{\"template\":{\"metadata\":{\"annotations\":"
                       "{\"weft.dev/mtls-mode\":\"OFF\"}},\"spec\":%s}}}", POD_SPEC);
    assert_null(workload_inject(&w, bad, "in.yaml: document 3", err, sizeof err));
    if (!strstr(err, "in.yaml: document 3") || !strstr(err, "shop/web") || !strstr(err, "mtls-mode"))
        fail_msg("message: %s", err);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_pass_through_and_list),
        cmocka_unit_test(test_refusal_names_object),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
