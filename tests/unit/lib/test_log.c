/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/log.c: level parsing and cleaning request values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests_name("lib/log", tests, NULL, NULL);
}
