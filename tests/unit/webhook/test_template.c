/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of webhook/template.c: typed and text substitution, removal by
 * null and by _if, unknown names (at render and, in every branch, at load),
 * and the shipped templates rendering. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "yamljson.h"

static json_t *yaml(const char *text)
{
    char err[256];
    json_t *doc = yamljson_parse(text, strlen(text), "test", err, sizeof err);
    if (!doc)
        fail_msg("%s", err);
    return doc;
}

static void expect_render(const char *tmpl, const char *values, const char *want)
{
    char err[256];
    json_t *t = yaml(tmpl), *v = json_loads(values, 0, NULL), *w = json_loads(want, JSON_DECODE_ANY, NULL);
    json_t *got = template_render(t, v, "test", err, sizeof err);
    char *text = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!got || !json_equal(got, w))
        fail_msg("render gave %s (%s), want %s", text ? text : "NULL", got ? "" : err, want);
    free(text);
    json_decref(t);
    json_decref(v);
    json_decref(w);
    json_decref(got);
}

static void test_substitution(void **state)
{
    (void)state;
    expect_render("uid: ${u}", "{\"u\":15100}", "{\"uid\":15100}");
    expect_render("arg: --uid=${u}", "{\"u\":15100}", "{\"arg\":\"--uid=15100\"}");
    expect_render("x: \"${s}\"", "{\"s\":\"a b\"}", "{\"x\":\"a b\"}");
    expect_render("b: ${t}", "{\"t\":true}", "{\"b\":true}");
    expect_render("l: [a, '${p}-${q}', c]", "{\"p\":\"x\",\"q\":1}", "{\"l\":[\"a\",\"x-1\",\"c\"]}");
    expect_render("plain: 10m\nquoted: \"1\"\nnum: 1", "{}", "{\"plain\":\"10m\",\"quoted\":\"1\",\"num\":1}");
}

static void test_removal(void **state)
{
    (void)state;
    expect_render("a: 1\nr: ${n}", "{\"n\":null}", "{\"a\":1}");
    expect_render("l: [1, '${n}', 3]", "{\"n\":null}", "{\"l\":[1,3]}");
    expect_render("p:\n  _if: on\n  x: 1\nq: 2", "{\"on\":false}", "{\"q\":2}");
    expect_render("p:\n  _if: on\n  x: 1", "{\"on\":true}", "{\"p\":{\"x\":1}}");
    expect_render("l:\n  - _if: on\n    x: 1\n  - y: 2", "{\"on\":false}", "{\"l\":[{\"y\":2}]}");
}

static void test_errors(void **state)
{
    (void)state;
    char err[256];
    json_t *t = yaml("x: ${missing}"), *v = json_object();
    assert_null(template_render(t, v, "proxy.yaml", err, sizeof err));
    assert_string_equal(err, "template proxy.yaml: unknown value ${missing}");
    json_decref(t);
    t = yaml("x: a${open");
    assert_null(template_render(t, v, "proxy.yaml", err, sizeof err));
    assert_non_null(strstr(err, "unterminated"));
    json_decref(t);
    json_decref(v);

    const char *anchors = "a: &x 1\nb: *x", *dup = "a: 1\na: 2";
    assert_null(yamljson_parse(anchors, strlen(anchors), "anchors.yaml", err, sizeof err));
    assert_non_null(strstr(err, "anchors are not supported"));
    assert_null(yamljson_parse(dup, strlen(dup), "dup.yaml", err, sizeof err));
    assert_non_null(strstr(err, "duplicate key \"a\""));
}

static void test_depth_limit(void **state)
{
    (void)state;
    char err[256], text[4 * (YAMLJSON_MAX_DEPTH + 2) + 8];
    size_t n = 0;
    for (int i = 0; i < YAMLJSON_MAX_DEPTH; i++)
        text[n++] = '[';
    for (int i = 0; i < YAMLJSON_MAX_DEPTH; i++)
        text[n++] = ']';
    json_t *ok = yamljson_parse(text, n, "deep", err, sizeof err);
    assert_non_null(ok);
    json_decref(ok);
    memmove(text + 1, text, n);
    text[0] = '[';
    text[n + 1] = ']';
    assert_null(yamljson_parse(text, n + 2, "deep", err, sizeof err));
    assert_non_null(strstr(err, "nested deeper"));
}

static void test_shipped_templates_load(void **state)
{
    (void)state;
    char err[512];
    struct templates t;
    assert_int_equal(templates_load("templates", &t, err, sizeof err), 0);
    assert_int_equal(strlen(t.version), 16);
    assert_true(json_is_array(t.volumes));
    templates_free(&t);
    assert_int_not_equal(templates_load("/nonexistent", &t, err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/init-container.yaml"));
}

/* template_check sees every name, in branches a render would drop too. */
static void test_check_names_in_every_branch(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl, *err;
    } cases[] = {
        {"a: ${known}\nb: \"x-${known}-y\"\nc: {_if: flag, d: 1}\n", NULL},
        {"a: ${nope}\n", "template test: unknown value ${nope}"},
        {"a: \"x-${known}-${nope}\"\n", "template test: unknown value ${nope}"},
        {"c: {_if: flag, d: \"${nope}\"}\n", "template test: unknown value ${nope}"}, /* flag is false */
        {"c: {_if: nope, d: 1}\n", "template test: unknown value ${nope}"},
        {"c: {_if: 3, d: 1}\n", "template test: _if needs a value name"},
        {"l: [1, {e: \"${nope}\"}]\n", "template test: unknown value ${nope}"},
        {"a: \"x-${known\"\n", "template test: unterminated ${ in \"x-${known\""},
    };
    json_t *names = json_pack("{s:s, s:b}", "known", "v", "flag", 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        json_t *t = yaml(cases[i].tmpl);
        int rc = template_check(t, names, "test", err, sizeof err);
        if (cases[i].err ? rc != -EINVAL || strcmp(err, cases[i].err) != 0 : rc != 0)
            fail_msg("case %zu: rc %d err \"%s\"", i, rc, err);
        json_decref(t);
    }
    json_decref(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_substitution),
        cmocka_unit_test(test_removal),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_shipped_templates_load),
        cmocka_unit_test(test_check_names_in_every_branch),
    };
    return cmocka_run_group_tests_name("webhook/template", tests, NULL, NULL);
}
