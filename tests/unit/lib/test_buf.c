/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/buf.c: the maximum at the limit and one byte past it,
 * for appends and for whole files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

static void test_append_limit(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "12345678", 8), 0);
    assert_int_equal(buf_append(&b, "9", 1), -E2BIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_cstr(&b), "12345678");
    buf_reset(&b);
    assert_int_equal(buf_appendf(&b, "%d-%s", 42, "abcde"), 0);
    assert_int_equal(buf_appendf(&b, "x"), -E2BIG);
    assert_string_equal(buf_cstr(&b), "42-abcde");
    buf_free(&b);
}

static void write_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    fclose(f);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/weft-test-buf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct buf b;
    buf_init(&b, 20000);
    write_file(path, 20000);
    assert_int_equal(buf_read_file(&b, path), 0);
    assert_int_equal(b.len, 20000);
    buf_reset(&b);
    write_file(path, 20001);
    assert_int_equal(buf_read_file(&b, path), -E2BIG);
    buf_reset(&b);
    unlink(path);
    assert_int_equal(buf_read_file(&b, path), -ENOENT);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_limit),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests_name("lib/buf", tests, NULL, NULL);
}
