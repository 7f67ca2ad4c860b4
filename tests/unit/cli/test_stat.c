/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of cli/stat.c's Prometheus text parser and sums: labels with
 * escapes, timestamps, comments, a line at the limit and one byte over, and
 * all-or-nothing sums (a proxy whose text breaks halfway adds nothing);
 * quantiles from buckets as Prometheus' histogram_quantile() computes them
 * (no requests, one bucket, +Inf, non-monotonic counts, the bound limit),
 * the request sums (inbound only, overflow set, success), the per-pod text
 * built from Prometheus answers, and --prometheus URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
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


static struct stat_hist hist(const double *le, const double *cum, size_t n)
{
    struct stat_hist h = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(stat_hist_add(&h, le[i], cum[i]), 0);
    return h;
}

static void test_quantiles(void **state)
{
    (void)state;
    const double le[] = {0.05, 0.25, 0.5, INFINITY};
    /* 90 at or under 0.05, 10 in (0.25, 0.5]: test_proxy_red's load. */
    const double cum[] = {90, 90, 100, 100};
    struct stat_hist h = hist(le, cum, 4);
    assert_true(fabs(stat_quantile(&h, 0.99) - 0.475) < 1e-12);   /* 0.25 + 0.25 * 9/10 */
    assert_true(fabs(stat_quantile(&h, 0.5) - 0.05 * 50 / 90) < 1e-12); /* first bucket starts at 0 */
    assert_true(fabs(stat_quantile(&h, 0.9) - 0.05) < 1e-12);
    assert_true(fabs(stat_quantile(&h, 1) - 0.5) < 1e-12);
    assert_true(stat_quantile(&h, 0) == 0);
    assert_true(isnan(stat_quantile(&h, 1.5)) && isnan(stat_quantile(&h, -0.1)));
    /* No requests: no quantile. */
    const double zero[] = {0, 0, 0, 0};
    h = hist(le, zero, 4);
    assert_true(isnan(stat_quantile(&h, 0.5)));
    /* Observations past the last finite bound: that bound. */
    const double high[] = {0, 0, 0, 10};
    h = hist(le, high, 4);
    assert_true(stat_quantile(&h, 0.5) == 0.5);
    /* Without a +Inf bucket, or with only one bucket: none (as Prometheus). */
    h = hist(le, cum, 3);
    assert_true(isnan(stat_quantile(&h, 0.5)));
    h = hist(&le[3], &cum[3], 1);
    assert_true(isnan(stat_quantile(&h, 0.5)));
    /* Counts that fall with the bound are evened out upward first. */
    const double bumpy[] = {90, 80, 100, 100};
    h = hist(le, bumpy, 4);
    assert_true(fabs(stat_quantile(&h, 0.95) - 0.375) < 1e-12);
    /* Series merge by bound, in any order. */
    struct stat_hist m = {0};
    stat_hist_add(&m, INFINITY, 3);
    stat_hist_add(&m, 0.1, 1);
    stat_hist_add(&m, 0.1, 1);
    stat_hist_add(&m, INFINITY, 1);
    assert_int_equal(m.n, 2);
    assert_true(m.le[0] == 0.1 && m.count[0] == 2 && m.count[1] == 4);
    /* STAT_MAX_BUCKETS bounds fit; one more is refused and marks the row. */
    struct stat_hist big = {0};
    for (int i = 0; i < STAT_MAX_BUCKETS; i++)
        assert_int_equal(stat_hist_add(&big, i + 1, i), 0);
    assert_int_equal(stat_hist_add(&big, 1000, 1), -1);
    assert_true(big.overflow && isnan(stat_quantile(&big, 0.5)));
}

static void test_request_sums(void **state)
{
    (void)state;
    struct stat_row r = {0};
    char err[128];
    const char *text =
        "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"spiffe://cluster.local/ns/a/sa/b\",method=\"GET\"} 6\n"
        "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"\",method=\"GET\"} 2\n"
        "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"overflow\",method=\"overflow\"} 4\n"
        "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"x:80\",method=\"GET\"} 100\n"
        "weft_proxy_http_responses_total{direction=\"inbound\",peer=\"\",method=\"GET\",status=\"200\",grpc_status=\"\","
        "classification=\"success\",origin=\"upstream\"} 7\n"
        "weft_proxy_http_responses_total{direction=\"inbound\",peer=\"\",method=\"GET\",status=\"503\",grpc_status=\"\","
        "classification=\"failure\",origin=\"proxy\"} 3\n"
        "weft_proxy_http_request_duration_seconds_bucket{direction=\"inbound\",le=\"0.1\"} 5\n"
        "weft_proxy_http_request_duration_seconds_bucket{direction=\"inbound\",le=\"+Inf\"} 10\n"
        "weft_proxy_http_request_duration_seconds_bucket{direction=\"inbound\",le=\"bogus\"} 10\n"
        "weft_proxy_http_request_duration_seconds_bucket{direction=\"outbound\",le=\"0.1\"} 99\n";
    assert_int_equal(stat_add_metrics(&r, text, strlen(text), err, sizeof err), 0);
    assert_true(r.requests == 12 && r.req_mtls == 6 && r.req_overflow == 4 && r.success == 7);
    assert_int_equal(r.latency.n, 2); /* the bogus bound and the outbound series are left out */
    assert_true(r.latency.count[0] == 5 && r.latency.count[1] == 10);
}

static void test_prom_text(void **state)
{
    (void)state;
    json_t *texts = json_object();
    char err[512] = "", q[1024];
    stat_prom_query(9, 60, q, sizeof q);
    assert_string_equal(q, "sum by (namespace, pod, le) (increase(weft_proxy_http_request_duration_seconds_bucket"
                           "{direction=\"inbound\"}[60s]))");
    json_t *a = json_loads("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                           "{\"metric\":{\"namespace\":\"shop\",\"pod\":\"web-0\",\"peer\":\"a\\\"b\"},\"value\":[1,\"2.5\"]},"
                           "{\"metric\":{\"namespace\":\"shop\",\"pod\":\"web-0\",\"peer\":\"\"},\"value\":[1,\"NaN\"]},"
                           "{\"metric\":{\"namespace\":\"shop\",\"pod\":\"db-0\",\"peer\":\"overflow\"},\"value\":[1,\"1\"]}]}}",
                           0, NULL);
    assert_int_equal(stat_prom_text(7, a, texts, err, sizeof err), 0);
    assert_string_equal(json_string_value(json_object_get(texts, "shop/web-0")),
                        "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"a\\\"b\"} 2.5\n"
                        "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"\"} NaN\n");
    /* What it built reads back through the sums: NaN is left out. */
    struct stat_row r = {0};
    const char *t = json_string_value(json_object_get(texts, "shop/web-0"));
    assert_int_equal(stat_add_metrics(&r, t, strlen(t), err, sizeof err), 0);
    assert_true(r.requests == 2.5 && r.req_mtls == 2.5);
    json_decref(a);
    static const struct {
        const char *answer, *must;
    } bad[] = {
        {"{\"status\":\"error\",\"error\":\"parse error\"}", "Prometheus answered error: parse error"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}", "not an instant vector"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"pod\":\"x\"},"
         "\"value\":[1,\"1\"]}]}}", "no namespace and pod labels"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"pod\":\"x\","
         "\"namespace\":\"y\"},\"value\":[1,\"one\"]}]}}", "for y/x has no numeric value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *b = json_loads(bad[i].answer, 0, NULL);
        err[0] = '\0';
        assert_int_equal(stat_prom_text(7, b, texts, err, sizeof err), -1);
        if (!strstr(err, bad[i].must))
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].answer, err, bad[i].must);
        json_decref(b);
    }
    assert_int_equal(stat_prom_text(STAT_NQUERIES, NULL, texts, err, sizeof err), -1);
    json_decref(texts);
}

static void test_prom_url(void **state)
{
    (void)state;
    char host[256], port[8], prefix[64], err[256];
    int tls = -1;
    assert_int_equal(stat_prom_url("http://127.0.0.1:9090", &tls, host, sizeof host, port, sizeof port, prefix,
                                   sizeof prefix, err, sizeof err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "9090");
    assert_string_equal(prefix, "");
    assert_int_equal(stat_prom_url("http://prom.monitoring/prometheus/", &tls, host, sizeof host, port, sizeof port, prefix,
                                   sizeof prefix, err, sizeof err), 0);
    assert_string_equal(host, "prom.monitoring");
    assert_string_equal(port, "80");
    assert_string_equal(prefix, "/prometheus");
    assert_int_equal(stat_prom_url("http://[::1]:9090/", &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix,
                                   err, sizeof err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(stat_prom_url("http://[::1]", &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix, err,
                                   sizeof err), 0);
    assert_string_equal(port, "80");
    assert_int_equal(tls, 0);
    assert_int_equal(stat_prom_url("https://prom.monitoring/prometheus", &tls, host, sizeof host, port, sizeof port,
                                   prefix, sizeof prefix, err, sizeof err), 0);
    assert_int_equal(tls, 1);
    assert_string_equal(host, "prom.monitoring");
    assert_string_equal(port, "443");
    assert_string_equal(prefix, "/prometheus");
    assert_int_equal(stat_prom_url("https://[::1]:9443", &tls, host, sizeof host, port, sizeof port, prefix,
                                   sizeof prefix, err, sizeof err), 0);
    assert_int_equal(tls, 1);
    assert_string_equal(port, "9443");
    static const char *const bad[] = {"ftp://p", "p:9090", "http://", "https://", "http://p:0", "https://p:0",
                                      "http://p:65536", "http://p:9090/?q", "http://u@p:9090", "https://u@p",
                                      "http://p:x", "HTTPS://p"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (stat_prom_url(bad[i], &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
    /* The prefix at its limit (63 bytes) and one past it. */
    char url[128];
    snprintf(url, sizeof url, "http://p/%062d", 0);
    assert_int_equal(stat_prom_url(url, &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix, err, sizeof err), 0);
    snprintf(url, sizeof url, "http://p/%063d", 0);
    assert_int_equal(stat_prom_url(url, &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_sums_all_or_nothing),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_request_sums),
        cmocka_unit_test(test_prom_text),
        cmocka_unit_test(test_prom_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
