/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of webhook/patch.c: pointer escaping and diffs that, applied,
 * give exactly the target document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(patch_escape_token("weft.dev/status", out, sizeof out), 0);
    assert_string_equal(out, "weft.dev~1status");
    assert_int_equal(patch_escape_token("a~b/c", out, sizeof out), 0);
    assert_string_equal(out, "a~0b~1c");
    assert_int_equal(patch_escape_token("", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(patch_escape_token("abc", out, 4), 0);
    assert_int_equal(patch_escape_token("abcd", out, 4), -ENOSPC);
    assert_int_equal(patch_escape_token("a/", out, 4), 0);
    assert_int_equal(patch_escape_token("ab/", out, 4), -ENOSPC);
}

/* Diffs from -> to and compares the operations with the expected JSON text. */
static void expect_diff(const char *from, const char *to, const char *ops)
{
    json_t *f = json_loads(from, 0, NULL), *t = json_loads(to, 0, NULL), *want = json_loads(ops, 0, NULL);
    json_t *got = patch_diff(f, t);
    char *text = json_dumps(got, JSON_COMPACT);
    if (!json_equal(got, want))
        fail_msg("diff %s -> %s gave %s, want %s", from, to, text, ops);
    free(text);
    json_decref(f);
    json_decref(t);
    json_decref(want);
    json_decref(got);
}

static void test_diff_objects(void **state)
{
    (void)state;
    expect_diff("{\"a\":1}", "{\"a\":1}", "[]");
    expect_diff("{\"a\":1}", "{\"a\":2}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
    expect_diff("{\"a\":1,\"b\":2}", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]");
    expect_diff("{\"m\":{}}", "{\"m\":{\"weft.dev/status\":\"x\"}}",
                "[{\"op\":\"add\",\"path\":\"/m/weft.dev~1status\",\"value\":\"x\"}]");
    expect_diff("{\"a\":[1]}", "{\"a\":{\"b\":1}}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"b\":1}}]");
}

static void test_diff_arrays(void **state)
{
    (void)state;
    /* Insertions in front keep the user's items, by index. */
    expect_diff("{\"l\":[\"u1\",\"u2\"]}", "{\"l\":[\"w1\",\"w2\",\"u1\",\"u2\"]}",
                "[{\"op\":\"add\",\"path\":\"/l/0\",\"value\":\"w1\"},{\"op\":\"add\",\"path\":\"/l/1\",\"value\":\"w2\"}]");
    expect_diff("{\"l\":[1]}", "{\"l\":[1,2,3]}",
                "[{\"op\":\"add\",\"path\":\"/l/1\",\"value\":2},{\"op\":\"add\",\"path\":\"/l/2\",\"value\":3}]");
    expect_diff("{\"l\":[1,2,3,4]}", "{\"l\":[1,4]}",
                "[{\"op\":\"remove\",\"path\":\"/l/1\"},{\"op\":\"remove\",\"path\":\"/l/1\"}]");
    expect_diff("{\"l\":[1,2]}", "{\"l\":[3,4,5]}", "[{\"op\":\"replace\",\"path\":\"/l\",\"value\":[3,4,5]}]");
    expect_diff("{\"l\":[{\"a\":1}]}", "{\"l\":[{\"a\":2}]}",
                "[{\"op\":\"replace\",\"path\":\"/l/0/a\",\"value\":2}]");
    expect_diff("[1]", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_diff_objects),
        cmocka_unit_test(test_diff_arrays),
    };
    return cmocka_run_group_tests_name("webhook/patch", tests, NULL, NULL);
}
