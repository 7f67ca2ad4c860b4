/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/filestamp.c on real files: a rewrite of the same size,
 * a symlink swapped to another file (how Kubernetes updates a ConfigMap
 * volume), a file removed and one coming back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filestamp.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/weft-filestamp-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_changes(void **state)
{
    (void)state;
    char path[128], a[128], b[128];
    struct file_stamp s0, s1;
    snprintf(path, sizeof path, "%s/link", dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    write_file("a", "one");
    write_file("b", "two");
    assert_int_equal(symlink(a, path), 0);
    assert_int_equal(file_stamp_read(path, &s0), 0);
    assert_int_equal(file_stamp_read(path, &s1), 0);
    assert_true(file_stamp_equal(&s0, &s1));

    /* Same size, same second: the nanoseconds or the ctime still differ. */
    struct timespec keep[2] = {s0.mtime, s0.mtime};
    write_file("a", "uno");
    assert_int_equal(utimensat(AT_FDCWD, a, keep, 0), 0);
    assert_int_equal(file_stamp_read(path, &s1), 0);
    assert_false(file_stamp_equal(&s0, &s1)); /* ctime moved */

    /* The link now names another file (a new inode). */
    assert_int_equal(file_stamp_read(path, &s0), 0);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/link.new", dir);
    assert_int_equal(symlink(b, tmp), 0);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(file_stamp_read(path, &s1), 0);
    assert_false(file_stamp_equal(&s0, &s1));
    assert_int_not_equal(s0.ino, s1.ino);

    /* Gone: an error and a zero stamp; back: a change. */
    assert_int_equal(unlink(b), 0);
    assert_int_equal(file_stamp_read(path, &s0), -ENOENT);
    struct file_stamp zero;
    memset(&zero, 0, sizeof zero);
    assert_true(file_stamp_equal(&s0, &zero));
    write_file("b", "two");
    assert_int_equal(file_stamp_read(path, &s1), 0);
    assert_false(file_stamp_equal(&s0, &s1));
    assert_int_equal(file_stamp_read(NULL, &s1), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
    };
    return cmocka_run_group_tests_name("lib/filestamp", tests, NULL, NULL);
}
