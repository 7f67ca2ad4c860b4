/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/parse.c: every limit at the edge and one past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>

#include "parse.h"

static void test_port(void **state)
{
    (void)state;
    uint16_t p;
    assert_int_equal(parse_port("1", &p), 0);
    assert_int_equal(p, 1);
    assert_int_equal(parse_port("65535", &p), 0);
    assert_int_equal(p, 65535);
    assert_int_not_equal(parse_port("0", &p), 0);
    assert_int_not_equal(parse_port("65536", &p), 0);
    assert_int_not_equal(parse_port("http", &p), 0);
    assert_int_not_equal(parse_port("+80", &p), 0);
    assert_int_not_equal(parse_port("80 ", &p), 0);
    assert_int_not_equal(parse_port("", &p), 0);
    assert_int_not_equal(parse_port("99999999999999999999999", &p), 0);
}

static void test_port_list(void **state)
{
    (void)state;
    uint16_t ports[PARSE_MAX_LIST];
    size_t n = 99;
    assert_int_equal(parse_port_list("", ports, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(parse_port_list("80, 443 ,8080", ports, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ports[2], 8080);
    assert_int_not_equal(parse_port_list("80,", ports, &n), 0);
    assert_int_not_equal(parse_port_list("80,,81", ports, &n), 0);
    assert_int_not_equal(parse_port_list("http", ports, &n), 0);

    char list[PARSE_MAX_LIST * 6 + 8] = "";
    for (int i = 0; i < PARSE_MAX_LIST; i++)
        strcat(list, i ? ",1" : "1");
    assert_int_equal(parse_port_list(list, ports, &n), 0);
    assert_int_equal(n, PARSE_MAX_LIST);
    strcat(list, ",1");
    assert_int_not_equal(parse_port_list(list, ports, &n), 0);
}

static void test_cidr(void **state)
{
    (void)state;
    struct parse_cidr c;
    assert_int_equal(parse_cidr("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_string_equal(c.text, "10.0.0.0/8");
    assert_int_equal(parse_cidr("198.18.0.1", &c), 0);
    assert_string_equal(c.text, "198.18.0.1/32");
    assert_int_equal(parse_cidr("fd00::/8", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_not_equal(parse_cidr("10.0.0.1/8", &c), 0);
    assert_int_not_equal(parse_cidr("10.0.0.0/33", &c), 0);
    assert_int_not_equal(parse_cidr("10.0.0/8", &c), 0);
    assert_int_not_equal(parse_cidr("/8", &c), 0);
    assert_int_not_equal(parse_cidr("fd00::/129", &c), 0);

    unsigned char in[4] = {198, 19, 255, 1}, out[4] = {198, 20, 0, 1};
    assert_int_equal(parse_cidr("198.18.0.0/15", &c), 0);
    assert_true(parse_cidr_contains(&c, AF_INET, in));
    assert_false(parse_cidr_contains(&c, AF_INET, out));
}

static void test_quantity(void **state)
{
    (void)state;
    const char *good[] = {"100m", "0.5", "2", "64Mi", "1G", "128974848", "1e3", "1.5Gi"};
    const char *bad[] = {"lots", "", "-1", "1.5.5", "Mi", "10mb", "1e", "1 Gi"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(parse_k8s_quantity(good[i]), 0);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_not_equal(parse_k8s_quantity(bad[i]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_port_list),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_quantity),
    };
    return cmocka_run_group_tests_name("lib/parse", tests, NULL, NULL);
}
