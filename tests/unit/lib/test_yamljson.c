/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/yamljson.c's multi-document parse: documents in order,
 * empty ones left out, errors with the line, and one document still one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "yamljson.h"

static void test_all_documents(void **state)
{
    (void)state;
    char err[256];
    const char *text = "a: 1\n---\n---\nb: [x, \"2\"]\n...\n---\n- 3\n";
    json_t *docs = yamljson_parse_all(text, strlen(text), "t.yaml", err, sizeof err);
    assert_non_null(docs);
    assert_int_equal(json_array_size(docs), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(docs, 0), "a")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(docs, 1), "b"), 1)), "2");
    assert_true(json_is_array(json_array_get(docs, 2)));
    json_decref(docs);
}

static void test_empty_stream(void **state)
{
    (void)state;
    char err[256];
    json_t *docs = yamljson_parse_all("", 0, "e.yaml", err, sizeof err);
    assert_non_null(docs);
    assert_int_equal(json_array_size(docs), 0);
    json_decref(docs);
}

static void test_error_names_line(void **state)
{
    (void)state;
    char err[256];
    const char *text = "a: 1\n---\nb: [\n";
    assert_null(yamljson_parse_all(text, strlen(text), "bad.yaml", err, sizeof err));
    assert_non_null(strstr(err, "bad.yaml:"));
    text = "a: 1\n---\nb: 2\nb: 3\n";
    assert_null(yamljson_parse_all(text, strlen(text), "dup.yaml", err, sizeof err));
    assert_non_null(strstr(err, "dup.yaml:4:"));
    assert_non_null(strstr(err, "duplicate key \"b\""));
}

static void test_single_still_single(void **state)
{
    (void)state;
    char err[256];
    const char *text = "a: 1\n---\nb: 2\n";
    assert_null(yamljson_parse(text, strlen(text), "one.yaml", err, sizeof err));
    assert_non_null(strstr(err, "only one YAML document"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_documents),
        cmocka_unit_test(test_empty_stream),
        cmocka_unit_test(test_error_names_line),
        cmocka_unit_test(test_single_still_single),
    };
    return cmocka_run_group_tests_name("lib/yamljson", tests, NULL, NULL);
}
