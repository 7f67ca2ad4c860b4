/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/hostport.c: the forms an address takes, each part's
 * buffer at its size and one byte short, the port at 65535 and 65536. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "hostport.h"

static void test_forms(void **state)
{
    (void)state;
    char h[16], p[6];
    assert_int_equal(hostport_split("127.0.0.1:8444", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_string_equal(p, "8444");
    assert_int_equal(hostport_split(":8444", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "");
    assert_int_equal(hostport_split("[::1]:9090", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "9090");
    assert_int_equal(hostport_split("[]:1", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "");
    assert_int_equal(hostport_split("a:65535", h, sizeof h, p, sizeof p), 0);
    assert_int_equal(hostport_split("a:0", h, sizeof h, p, sizeof p), 0);
}

static void test_refused(void **state)
{
    (void)state;
    char h[16], p[6];
    const char *bad[] = {"::1:9090", "host", "host:", "host:x1", "host:65536", "host:-1", "host: 1",
                         "[::1]9090", "[::1", "[::1]:", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(hostport_split(bad[i], h, sizeof h, p, sizeof p), -EINVAL);
}

static void test_buffer_limits(void **state)
{
    (void)state;
    char h[4], p[6];
    assert_int_equal(hostport_split("abc:1", h, sizeof h, p, sizeof p), 0); /* 3 + NUL fills h */
    assert_int_equal(hostport_split("abcd:1", h, sizeof h, p, sizeof p), -EINVAL);
    assert_int_equal(hostport_split("[abc]:1", h, sizeof h, p, sizeof p), 0);
    assert_int_equal(hostport_split("[abcd]:1", h, sizeof h, p, sizeof p), -EINVAL);
    char p2[3];
    assert_int_equal(hostport_split("a:12", h, sizeof h, p2, sizeof p2), 0);
    assert_int_equal(hostport_split("a:123", h, sizeof h, p2, sizeof p2), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_buffer_limits),
    };
    return cmocka_run_group_tests_name("lib/hostport", tests, NULL, NULL);
}
