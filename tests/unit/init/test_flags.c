/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of init/flags.c: defaults, both getopt spellings, empty lists,
 * deduplication, every rejection naming its flag and value, list limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "../../../init/flags.h"

#define ARGV(...) ((char *[]){"weft-init", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"weft-init", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) flags_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err, sizeof err)

static void test_defaults(void **state)
{
    (void)state;
    struct init_config c;
    char err[256];
    char *argv[] = {"weft-init", NULL};
    assert_int_equal(flags_parse(1, argv, &c, err, sizeof err), 0);
    assert_int_equal(c.proxy_uid, 15100);
    assert_int_equal(c.proxy_gid, 15100);
    assert_int_equal(c.inbound_port, 15006);
    assert_int_equal(c.outbound_port, 15001);
    assert_int_equal(c.nskip_in, 1);
    assert_int_equal(c.skip_in[0], FLAGS_ADMIN_PORT);
    assert_int_equal(c.nskip_out, 0);
    assert_int_equal(c.nskip_cidrs, 0);
    assert_int_equal(c.ipv6, FLAGS_IPV6_AUTO);
    assert_int_equal(c.mode, FLAGS_MODE_AUTO);
    assert_false(c.dry_run || c.cleanup || c.help);
}

static void test_webhook_args_with_empty_lists(void **state)
{
    (void)state;
    struct init_config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--proxy-uid", "15100", "--proxy-gid", "15100", "--inbound-port",
                           "15006", "--outbound-port", "15001", "--skip-inbound-ports", "",
                           "--skip-outbound-ports", "", "--skip-outbound-cidrs", "", "--ipv6", "auto",
                           "--mode", "auto"),
                     0);
    assert_int_equal(c.nskip_in, 1);
    assert_int_equal(c.nskip_out, 0);
    assert_int_equal(c.nskip_cidrs, 0);
}

static void test_equals_and_values(void **state)
{
    (void)state;
    struct init_config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--proxy-uid=1", "--proxy-gid=4294967294", "--inbound-port=1",
                           "--outbound-port=65535", "--skip-inbound-ports=22, 15020 ,22,8080",
                           "--skip-outbound-ports=", "--skip-outbound-cidrs=fd00::/8,10.0.0.0/8,fd00::/8",
                           "--ipv6=false", "--mode=legacy", "--dry-run", "--cleanup"),
                     0);
    assert_int_equal(c.proxy_uid, 1);
    assert_int_equal(c.proxy_gid, 4294967294UL);
    assert_int_equal(c.inbound_port, 1);
    assert_int_equal(c.outbound_port, 65535);
    assert_int_equal(c.nskip_in, 3); /* 15020 first, then 22, 8080 */
    assert_int_equal(c.skip_in[0], 15020);
    assert_int_equal(c.skip_in[1], 22);
    assert_int_equal(c.skip_in[2], 8080);
    assert_int_equal(c.nskip_cidrs, 2);
    assert_int_equal(c.skip_cidrs[0].family, AF_INET6);
    assert_string_equal(c.skip_cidrs[1].text, "10.0.0.0/8");
    assert_int_equal(c.ipv6, FLAGS_IPV6_FALSE);
    assert_int_equal(c.mode, FLAGS_MODE_LEGACY);
    assert_true(c.dry_run && c.cleanup);

    /* getopt state is reset: a second parse sees its own argv only. */
    assert_int_equal(PARSE(&c, err, "--ipv6", "true", "--mode", "nft"), 0);
    assert_int_equal(c.ipv6, FLAGS_IPV6_TRUE);
    assert_int_equal(c.mode, FLAGS_MODE_NFT);
    assert_int_equal(c.nskip_in, 1);
    assert_false(c.dry_run);
}

/* Each bad value fails with -EINVAL and a message naming flag and value. */
static void expect_bad(const char *flag, const char *value)
{
    struct init_config c;
    char err[256], arg[128];
    snprintf(arg, sizeof arg, "--%s=%s", flag, value);
    char *argv[] = {"weft-init", "--dry-run", arg, NULL};
    assert_int_equal(flags_parse(3, argv, &c, err, sizeof err), -EINVAL);
    char want_flag[64], want_value[160];
    snprintf(want_flag, sizeof want_flag, "--%s", flag);
    snprintf(want_value, sizeof want_value, "\"%s\"", value);
    if (!strstr(err, want_flag) || !strstr(err, want_value))
        fail_msg("message \"%s\" does not name %s and %s", err, want_flag, want_value);
}

static void test_rejections(void **state)
{
    (void)state;
    expect_bad("proxy-uid", "0");
    expect_bad("proxy-uid", "4294967295");
    expect_bad("proxy-uid", "-1");
    expect_bad("proxy-uid", "");
    expect_bad("proxy-gid", "0");
    expect_bad("proxy-gid", "15100x");
    expect_bad("inbound-port", "0");
    expect_bad("inbound-port", "65536");
    expect_bad("outbound-port", "+1");
    expect_bad("skip-inbound-ports", "80,abc");
    expect_bad("skip-inbound-ports", "80,");
    expect_bad("skip-inbound-ports", ",80");
    expect_bad("skip-outbound-ports", "65536");
    expect_bad("skip-outbound-ports", "*");
    expect_bad("skip-outbound-cidrs", "10.0.0.1/8");
    expect_bad("skip-outbound-cidrs", "10.0.0.0/33");
    expect_bad("skip-outbound-cidrs", "fd00::/129");
    expect_bad("skip-outbound-cidrs", "10.0.0.0/8,,fd00::/8");
    expect_bad("skip-outbound-cidrs", "example.com");
    expect_bad("ipv6", "yes");
    expect_bad("ipv6", "");
    expect_bad("mode", "iptables");
}

static void test_other_errors(void **state)
{
    (void)state;
    struct init_config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--nope"), -EINVAL);
    assert_non_null(strstr(err, "--nope"));
    assert_int_equal(PARSE(&c, err, "--proxy-uid"), -EINVAL);
    assert_non_null(strstr(err, "--proxy-uid"));
    assert_int_equal(PARSE(&c, err, "--dry-run", "stray"), -EINVAL);
    assert_non_null(strstr(err, "stray"));
    assert_int_equal(PARSE(&c, err, "-x"), -EINVAL);
    assert_int_equal(PARSE(&c, err, "--inbound-port", "15001"), -EINVAL);
    assert_non_null(strstr(err, "15001"));
    assert_int_equal(PARSE(&c, err, "--dry"), -EINVAL); /* no abbreviations */
    assert_non_null(strstr(err, "--dry"));
    assert_int_equal(PARSE(&c, err, "--proxy-u", "1"), -EINVAL);
    assert_int_equal(PARSE(&c, err, "--proxy-u=1"), -EINVAL);
    assert_int_equal(PARSE(&c, err, "--proxy-uid", "--proxy-uid"), -EINVAL); /* value is not a number */
    assert_int_equal(PARSE(&c, err, "--help"), 0);
    assert_int_equal(PARSE(&c, err, "-h"), 0);
    assert_true(c.help);
}

static void test_list_limits(void **state)
{
    (void)state;
    struct init_config c;
    char err[256], list[PARSE_MAX_LIST * 8 + 16] = "", arg[sizeof list + 32];
    for (int i = 0; i < PARSE_MAX_LIST; i++) {
        char item[8];
        snprintf(item, sizeof item, i ? ",%d" : "%d", 1000 + i);
        strcat(list, item);
    }
    snprintf(arg, sizeof arg, "--skip-inbound-ports=%s", list);
    char *argv[] = {"weft-init", arg, NULL};
    assert_int_equal(flags_parse(2, argv, &c, err, sizeof err), 0);
    assert_int_equal(c.nskip_in, PARSE_MAX_LIST + 1); /* plus the admin port */
    strcat(list, ",2000");
    snprintf(arg, sizeof arg, "--skip-outbound-ports=%s", list);
    assert_int_equal(flags_parse(2, argv, &c, err, sizeof err), -EINVAL);
    if (!strstr(err, "more than 64"))
        fail_msg("%s", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_webhook_args_with_empty_lists),
        cmocka_unit_test(test_equals_and_values), cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_other_errors),  cmocka_unit_test(test_list_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
