/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/buf.c: the maximum at the limit and one byte past it,
 * for appends, numbers and whole files. */
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

/* uint_text writes what printf's %llu and %llx write, at the ends of the
 * range too; buf_append_uint keeps the maximum like any append. */
static void test_uint_text(void **state)
{
    (void)state;
    const unsigned long long vs[] = {0, 1, 9, 10, 15, 16, 200, 599, 1024, 4294967295ULL, 4294967296ULL,
                                     9223372036854775807ULL, 18446744073709551615ULL};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char got[UINT_TEXT_MAX + 1], want[32];
        got[uint_text(got, vs[i], 10)] = '\0';
        snprintf(want, sizeof want, "%llu", vs[i]);
        assert_string_equal(got, want);
        got[uint_text(got, vs[i], 16)] = '\0';
        snprintf(want, sizeof want, "%llx", vs[i]);
        assert_string_equal(got, want);
    }
    struct buf b;
    buf_init(&b, 6);
    assert_int_equal(buf_append(&b, "x:", 2), 0);
    assert_int_equal(buf_append_uint(&b, 1234, 10), 0); /* at the limit */
    assert_int_equal(buf_append_uint(&b, 5, 10), -E2BIG);
    assert_string_equal(buf_cstr(&b), "x:1234");
    buf_reset(&b);
    assert_int_equal(buf_append_uint(&b, 0x1ab2c3dULL, 16), -E2BIG); /* one past */
    assert_int_equal(b.len, 0);
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
        cmocka_unit_test(test_uint_text),
    };
    return cmocka_run_group_tests_name("lib/buf", tests, NULL, NULL);
}
