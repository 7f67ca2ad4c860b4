/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/log.c: level parsing and cleaning request values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "log.h"

static void test_levels(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_parse_level("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_not_equal(log_parse_level("verbose", &l), 0);
    assert_int_not_equal(log_parse_level("", &l), 0);
}

static void test_clean(void **state)
{
    (void)state;
    char s[] = "shop/a\nts=forged level=error \"x\\y\x7f";
    assert_string_equal(log_clean(s), "shop/a?ts=forged level=error ?x?y?");
}

static void check_json(const char *in, size_t len, const char *want)
{
    char out[LOG_JSON_STR_MAX(64)];
    assert_true(len <= 64);
    size_t n = log_json_str(out, sizeof out, in, len);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_json_str(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json("/a b", 4, "\"/a b\"");
    check_json("\"\\\n\r\t\x01\x1f\x7f", 8, "\"\\\"\\\\\\n\\r\\t\\u0001\\u001f\\u007f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    /* valid UTF-8 beyond ASCII: escaped, so the line stays ASCII */
    check_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\\u00e9\\u20ac\\ud83d\\ude00\"");
    check_json("\xc2\x85", 2, "\"\\u0085\"");           /* a C1 control */
    check_json("\xf4\x8f\xbf\xbf", 4, "\"\\udbff\\udfff\""); /* U+10FFFF, the last */
    /* not UTF-8: each byte that starts no valid sequence is U+FFFD */
    check_json("\xff\xfe", 2, "\"\\ufffd\\ufffd\"");
    check_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");          /* overlong '/' */
    check_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* a surrogate */
    check_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
    check_json("a\xe2\x82", 3, "\"a\\ufffd\\ufffd\"");        /* cut at the end */
    check_json("\xe2\x82z", 3, "\"\\ufffd\\ufffdz\"");
    /* the worst case fits LOG_JSON_STR_MAX exactly */
    char in[64], out[LOG_JSON_STR_MAX(64)];
    memset(in, 0x01, sizeof in);
    assert_int_equal(log_json_str(out, sizeof out, in, sizeof in), sizeof out - 1);
    /* one byte short of it: cut at a whole escape, still closed */
    size_t n = log_json_str(out, sizeof out - 1, in, sizeof in);
    assert_int_equal(n, 2 + 6 * 63);
    assert_int_equal(out[n - 1], '"');
    assert_int_equal(out[n - 2], '1');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_json_str),
    };
    return cmocka_run_group_tests_name("lib/log", tests, NULL, NULL);
}
