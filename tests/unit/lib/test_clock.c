/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/clock.c: milliseconds agree with nanoseconds, the clock
 * does not go back, and a deadline is normalized and lies ms ahead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static void test_clock(void **state)
{
    (void)state;
    uint64_t ns = clock_mono_ns(), ms = clock_mono_ms();
    assert_true(ms >= ns / 1000000u);
    assert_true(ms - ns / 1000000u < 1000);
    usleep(20 * 1000);
    uint64_t later = clock_mono_ms();
    assert_true(later >= ms + 20);
}

static void test_deadline(void **state)
{
    (void)state;
    long cases[] = {0, 1, 999, 1000, 1999, 86400000L, -5};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t before = clock_mono_ns();
        struct timespec d = clock_mono_deadline(cases[i]);
        uint64_t after = clock_mono_ns();
        assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        uint64_t at = (uint64_t)d.tv_sec * 1000000000u + (uint64_t)d.tv_nsec;
        uint64_t want = (uint64_t)(cases[i] < 0 ? 0 : cases[i]) * 1000000u;
        assert_true(at >= before + want);
        assert_true(at <= after + want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests_name("lib/clock", tests, NULL, NULL);
}
