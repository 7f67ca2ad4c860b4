/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of init/run.c with /bin/sh as the child: stdin delivered in
 * full (larger than a pipe), stdout and stderr collected and bounded, exit
 * status, a missing program, and the timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../init/run.h"

static void test_roundtrip(void **state)
{
    (void)state;
    /* 1 MiB in, echoed back on stdout, while stderr is written too: both
     * pipes fill up while stdin is still being fed. */
    size_t n = 1 << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('a' + i % 26);
    struct buf out, err;
    buf_init(&out, 2 << 20);
    buf_init(&err, 64);
    char *argv[] = {"sh", "-c", "head -c 100000 /dev/zero >&2; cat; echo bye >&2; exit 3", NULL};
    assert_int_equal(run_command(argv, in, n, &out, &err, 10000), 3);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, in, n);
    assert_int_equal(err.len, 64); /* bounded: the rest was dropped */
    buf_free(&out);
    buf_free(&err);
    free(in);
}

static void test_stdin_not_read(void **state)
{
    (void)state;
    /* A child that exits without reading: no SIGPIPE, its status returned. */
    static char big[256 * 1024];
    char *argv[] = {"sh", "-c", "exit 0", NULL};
    assert_int_equal(run_command(argv, big, sizeof big, NULL, NULL, 10000), 0);
}

static void test_missing_and_signals(void **state)
{
    (void)state;
    char *missing[] = {"weft-init-no-such-program", NULL};
    assert_int_equal(run_command(missing, NULL, 0, NULL, NULL, 1000), -ENOENT);
    assert_false(run_in_path("weft-init-no-such-program"));
    assert_true(run_in_path("sh"));

    char *killed[] = {"sh", "-c", "kill -9 $$", NULL};
    assert_int_equal(run_command(killed, NULL, 0, NULL, NULL, 10000), 128 + 9);

    char *slow[] = {"sleep", "10", NULL};
    assert_int_equal(run_command(slow, NULL, 0, NULL, NULL, 200), -ETIMEDOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_stdin_not_read),
        cmocka_unit_test(test_missing_and_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
