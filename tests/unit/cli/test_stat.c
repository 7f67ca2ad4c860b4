/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of cli/stat.c's Prometheus text parser and sums: labels with
 * escapes, timestamps, comments, a line at the limit and one byte over, and
 * all-or-nothing sums (a proxy whose text breaks halfway adds nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stat.h"

struct seen {
    int n;
    char last[256];
    double sum;
};

static void collect(void *arg, const char *name, const struct prom_label *l, size_t n, double v)
{
    struct seen *s = arg;
    s->n++;
    s->sum += v;
    int off = snprintf(s->last, sizeof s->last, "%s", name);
    for (size_t i = 0; i < n && off < (int)sizeof s->last; i++)
        off += snprintf(s->last + off, sizeof s->last - (size_t)off, "|%s=%s", l[i].name, l[i].value);
}

static int parse(const char *text, struct seen *s)
{
    char err[128];
    memset(s, 0, sizeof *s);
    return prom_parse(text, strlen(text), collect, s, err, sizeof err);
}

static void test_samples(void **state)
{
    (void)state;
    struct seen s;
    assert_int_equal(parse("# HELP x y\n# TYPE x counter\nx 1\n\nx_total{a=\"b\",c=\"d\"} 2.5 1700000000000\r\n", &s), 0);
    assert_int_equal(s.n, 2);
    assert_true(s.sum == 3.5);
    assert_string_equal(s.last, "x_total|a=b|c=d");
    assert_int_equal(parse("m{peer=\"a\\\"b\\\\c\\nd\"} 7", &s), 0);
    assert_string_equal(s.last, "m|peer=a\"b\\c\nd");
    assert_int_equal(parse("m{} 1\nm{a=\"x\",} 2\n", &s), 0); /* empty braces, a trailing comma */
    assert_int_equal(s.n, 2);
    static const char *const bad[] = {
        "1m 1", "m", "m ", "m x", "m{a=b} 1", "m{a=\"b} 1", "m{a=\"\\q\"} 1", "m{=\"b\"} 1", "m{a=\"b\"}1",
        "m 1 x", "m 1e999", "m{a=\"b\" c=\"d\"} 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (parse(bad[i], &s) == 0)
            fail_msg("accepted: %s", bad[i]);
}

static void test_line_limit(void **state)
{
    (void)state;
    struct seen s;
    char *text = malloc(STAT_MAX_LINE + 8);
    /* "m{a="...."} 1": exactly STAT_MAX_LINE bytes, then one more */
    for (int extra = 0; extra <= 1; extra++) {
        size_t fill = STAT_MAX_LINE - strlen("m{a=\"\"} 1") + (size_t)extra;
        char *p = text;
        memcpy(p, "m{a=\"", 5);
        p += 5;
        memset(p, 'v', fill);
        p += fill;
        memcpy(p, "\"} 1\n", 6); /* with its NUL */
        assert_int_equal(strlen(text), STAT_MAX_LINE + (size_t)extra + 1);
        assert_int_equal(parse(text, &s), extra ? -1 : 0);
    }
    free(text);
}

static void test_sums_all_or_nothing(void **state)
{
    (void)state;
    struct stat_row r = {0};
    char err[128];
    const char *good = "weft_proxy_connections_opened_total{direction=\"inbound\",tls=\"true\",authz=\"denied\",peer=\"x\"} 3\n"
                       "weft_proxy_connections_opened_total{direction=\"outbound\",tls=\"false\",authz=\"none\",peer=\"y\"} 1\n"
                       "weft_proxy_ready 1\nweft_proxy_certificate_expiry_timestamp_seconds 500\n";
    assert_int_equal(stat_add_metrics(&r, good, strlen(good), err, sizeof err), 0);
    assert_true(r.opened[0] == 3 && r.opened[1] == 1 && r.mtls[0] == 3 && r.mtls[1] == 0 && r.denied == 3);
    assert_int_equal(r.ready, 1);
    assert_int_equal(r.scraped, 1);
    const char *half = "weft_proxy_connections_opened_total{direction=\"inbound\",tls=\"true\",authz=\"allowed\",peer=\"x\"} 9\n"
                       "weft_proxy_ready one\n";
    assert_int_equal(stat_add_metrics(&r, half, strlen(half), err, sizeof err), -1);
    assert_string_equal(err, "line 2 is not a Prometheus sample");
    assert_true(r.opened[0] == 3); /* the first line of the broken text was not added */
    assert_int_equal(r.scraped, 1);
    const char *sooner = "weft_proxy_certificate_expiry_timestamp_seconds 400\n";
    assert_int_equal(stat_add_metrics(&r, sooner, strlen(sooner), err, sizeof err), 0);
    assert_true(r.cert_expiry == 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_sums_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
