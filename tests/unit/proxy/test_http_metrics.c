/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/http_metrics.c: exact counts and buckets of the
 * rendered families, the bounded method set, classification, the budget at
 * its limit and one past it (overflow sets), label sanitizing, concurrent
 * recording from threads, and the size of a full table's rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_metrics.h"

#define MS 1000000ULL

static struct http_outcome oc(enum pm_dir dir, const char *target, const char *method, int status, int grpc)
{
    struct http_outcome o = {.dir = dir, .method = method, .method_len = method ? strlen(method) : 0,
                             .status = status, .grpc_status = grpc};
    if (dir == PM_INBOUND) {
        o.peer = target;
        o.peer_len = strlen(target);
    } else {
        o.dst = target;
        o.dst_len = strlen(target);
    }
    return o;
}

static char *render(struct http_metrics *hm)
{
    struct buf out;
    buf_init(&out, 16 << 20);
    assert_int_equal(http_metrics_render(hm, &out), 0);
    size_t len;
    buf_cstr(&out);
    return buf_steal(&out, &len);
}

static void must_have(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing line: %s\n--- rendered:\n%s", line, text);
}

/* Sum of the values of every sample line that starts with `prefix` and
 * contains `has` (NULL: any). */
static unsigned long long sum_where(const char *text, const char *prefix, const char *has)
{
    unsigned long long sum = 0;
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p), *h = has ? strstr(p, has) : p;
        if (strncmp(p, prefix, pl) == 0 && h && h < end) {
            const char *sp = end;
            while (sp > p && sp[-1] != ' ')
                sp--;
            sum += strtoull(sp, NULL, 10);
        }
        p = nl ? nl + 1 : NULL;
    }
    return sum;
}

static unsigned long long sum_of(const char *text, const char *prefix)
{
    return sum_where(text, prefix, NULL);
}

static void test_methods(void **state)
{
    (void)state;
    const char *known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(http_metrics_method(known[i], strlen(known[i])), i);
        assert_string_equal(http_metrics_method_name(i), known[i]);
    }
    /* Methods are case-sensitive (RFC 9110 9.1); prefixes are not matches. */
    const char *other[] = {"get", "GETS", "GE", "", "PROPFIND", "BREW"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        assert_int_equal(http_metrics_method(other[i], strlen(other[i])), HTTP_METRICS_NMETHODS - 1);
    assert_string_equal(http_metrics_method_name(HTTP_METRICS_NMETHODS - 1), "other");
    assert_string_equal(http_metrics_method_name(-1), "other");
    assert_string_equal(http_metrics_method_name(99), "other");
    /* A length shorter than the string: only those bytes count. */
    assert_int_equal(http_metrics_method("GETX", 3), 0);

    struct http_metrics *hm = http_metrics_new(16);
    struct http_outcome o = oc(PM_OUTBOUND, "web:80", "MKCOL", 201, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "web:80", "BREW", 201, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "web:80", NULL, 201, -1);
    http_metrics_record(hm, &o);
    assert_int_equal(http_metrics_label_sets(hm), 1); /* all three are "other" */
    char *t = render(hm);
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"web:80\",method=\"other\"} 3\n");
    free(t);
    http_metrics_free(hm);
}

static void test_classification(void **state)
{
    (void)state;
    static const struct {
        int status, grpc, proxy_error, failure;
    } cases[] = {
        {200, -1, 0, 0}, {204, -1, 0, 0}, {302, -1, 0, 0}, {404, -1, 0, 0}, {499, -1, 0, 0},
        {500, -1, 0, 1}, {503, -1, 0, 1}, {599, -1, 0, 1},
        {0, -1, 0, 1},                      /* no response head reached the client */
        {502, -1, 1, 1}, {504, -1, 1, 1},   /* the proxy answered: by the status as well */
        {403, -1, 1, 0}, {400, -1, 1, 0},   /* a denied caller, a malformed request */
        {200, 0, 0, 0},                     /* gRPC OK */
        {200, 5, 0, 1}, {200, 14, 0, 1}, {200, 16, 0, 1}, /* gRPC NOT_FOUND, UNAVAILABLE, UNAUTHENTICATED */
        {500, 0, 0, 0},                     /* the gRPC status decides, as Linkerd's classifier */
        {0, 0, 0, 1},                       /* but no response is a failure still */
        {200, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_outcome o = {.status = cases[i].status, .grpc_status = cases[i].grpc,
                                 .proxy_error = cases[i].proxy_error};
        if (http_metrics_failure(&o) != cases[i].failure)
            fail_msg("case %zu: status %d grpc %d proxy_error %d: want failure=%d", i, cases[i].status,
                     cases[i].grpc, cases[i].proxy_error, cases[i].failure);
    }
}

static void test_exact_counts_and_buckets(void **state)
{
    (void)state;
    struct http_metrics *hm = http_metrics_new(16);
    const char *peer = "spiffe://cluster.local/ns/shop/sa/front";
    /* 3 fast GETs: headers 0.3 ms (<= 0.0005), end 0.7 ms (<= 0.001). */
    for (int i = 0; i < 3; i++) {
        struct http_outcome o = oc(PM_INBOUND, peer, "GET", 200, -1);
        o.headers_ns = 300000;
        o.total_ns = 700000;
        http_metrics_record(hm, &o);
    }
    /* 2 slow ones: 60 ms to headers (0.05 < x <= 0.1), 300 ms to the end (<= 0.5). */
    for (int i = 0; i < 2; i++) {
        struct http_outcome o = oc(PM_INBOUND, peer, "GET", 200, -1);
        o.headers_ns = 60 * MS;
        o.total_ns = 300 * MS;
        http_metrics_record(hm, &o);
    }
    /* One 503 by the app, one 504 by the proxy, one request without answer. */
    struct http_outcome o = oc(PM_INBOUND, peer, "GET", 503, -1);
    o.headers_ns = o.total_ns = 2 * MS;
    http_metrics_record(hm, &o);
    o = oc(PM_INBOUND, peer, "GET", 504, -1);
    o.proxy_error = 1;
    o.headers_ns = o.total_ns = 10 * MS; /* exactly on a bound: le is inclusive */
    http_metrics_record(hm, &o);
    o = oc(PM_INBOUND, peer, "GET", 0, -1);
    o.headers_ns = o.total_ns = 5 * MS;
    http_metrics_record(hm, &o);
    /* Plaintext inbound (no identity) and a gRPC call outbound. */
    o = oc(PM_INBOUND, "", "POST", 201, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "catalog.shop.svc:9000", "POST", 200, 14);
    o.headers_ns = 1 * MS;
    o.total_ns = 20 * MS;
    http_metrics_record(hm, &o);
    /* An out-of-range gRPC status is UNKNOWN (2). */
    o = oc(PM_OUTBOUND, "catalog.shop.svc:9000", "POST", 200, 99);
    http_metrics_record(hm, &o);
    assert_int_equal(http_metrics_label_sets(hm), 7);

    char *t = render(hm);
#define IN "direction=\"inbound\",peer=\"spiffe://cluster.local/ns/shop/sa/front\",method=\"GET\""
    must_have(t, "# TYPE weft_proxy_http_requests_total counter\n");
    must_have(t, "weft_proxy_http_requests_total{" IN "} 8\n");
    must_have(t, "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"\",method=\"POST\"} 1\n");
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"catalog.shop.svc:9000\",method=\"POST\"} 2\n");
    must_have(t, "# TYPE weft_proxy_http_responses_total counter\n");
#define OK200 IN ",status=\"200\",grpc_status=\"\",classification=\"success\",origin=\"upstream\""
    must_have(t, "weft_proxy_http_responses_total{" OK200 "} 5\n");
    must_have(t, "weft_proxy_http_responses_total{" IN
                 ",status=\"503\",grpc_status=\"\",classification=\"failure\",origin=\"upstream\"} 1\n");
    must_have(t, "weft_proxy_http_responses_total{" IN
                 ",status=\"504\",grpc_status=\"\",classification=\"failure\",origin=\"proxy\"} 1\n");
    must_have(t, "weft_proxy_http_responses_total{direction=\"outbound\",dst=\"catalog.shop.svc:9000\",method=\"POST\","
                 "status=\"200\",grpc_status=\"14\",classification=\"failure\",origin=\"upstream\"} 1\n");
    must_have(t, "grpc_status=\"2\",classification=\"failure\"");
    assert_null(strstr(t, "status=\"0\"")); /* no response: a request, not a response */
    assert_null(strstr(t, "grpc_status=\"99\""));
    must_have(t, "# TYPE weft_proxy_http_response_headers_seconds histogram\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_bucket{" OK200 ",le=\"0.0005\"} 3\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_bucket{" OK200 ",le=\"0.05\"} 3\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_bucket{" OK200 ",le=\"0.1\"} 5\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_bucket{" OK200 ",le=\"+Inf\"} 5\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_sum{" OK200 "} 0.120900000\n");
    must_have(t, "weft_proxy_http_response_headers_seconds_count{" OK200 "} 5\n");
    must_have(t, "# TYPE weft_proxy_http_request_duration_seconds histogram\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" OK200 ",le=\"0.0005\"} 0\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" OK200 ",le=\"0.001\"} 3\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" OK200 ",le=\"0.25\"} 3\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" OK200 ",le=\"0.5\"} 5\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_sum{" OK200 "} 0.602100000\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" IN
                 ",status=\"504\",grpc_status=\"\",classification=\"failure\",origin=\"proxy\",le=\"0.005\"} 0\n");
    must_have(t, "weft_proxy_http_request_duration_seconds_bucket{" IN
                 ",status=\"504\",grpc_status=\"\",classification=\"failure\",origin=\"proxy\",le=\"0.01\"} 1\n");
    must_have(t, "weft_proxy_http_label_sets{kind=\"used\"} 7\nweft_proxy_http_label_sets{kind=\"budget\"} 16\n");
    /* 14 bounds + +Inf per histogram series. */
    const char *series = "weft_proxy_http_response_headers_seconds_bucket{" OK200 ",le=";
    char *b = strstr(t, series);
    int nb = 0;
    for (; b && strncmp(b, series, strlen(series)) == 0; nb++)
        b = strchr(b, '\n') + 1;
    assert_int_equal(nb, 15);
    /* No overflow set was needed. */
    assert_null(strstr(t, "overflow\""));
    free(t);
    http_metrics_free(hm);
#undef IN
#undef OK200
}

static void test_budget_limit_and_overflow(void **state)
{
    (void)state;
    enum { BUDGET = 5 };
    struct http_metrics *hm = http_metrics_new(BUDGET);
    char dst[32];
    /* At the limit: five label sets, each its own series. */
    for (int i = 0; i < BUDGET; i++) {
        snprintf(dst, sizeof dst, "svc%d:80", i);
        struct http_outcome o = oc(PM_OUTBOUND, dst, "GET", 200, -1);
        http_metrics_record(hm, &o);
        http_metrics_record(hm, &o);
    }
    assert_int_equal(http_metrics_label_sets(hm), BUDGET);
    char *t = render(hm);
    assert_null(strstr(t, "overflow\""));
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"svc4:80\",method=\"GET\"} 2\n");
    free(t);
    /* One past it: the sixth goes to the overflow set, with its class and
     * origin kept; known sets keep counting in their own series. */
    struct http_outcome o = oc(PM_OUTBOUND, "svc5:80", "GET", 200, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "svc6:80", "PUT", 500, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "svc6:80", "PUT", 0, -1); /* no response: a request only */
    http_metrics_record(hm, &o);
    o = oc(PM_INBOUND, "spiffe://cluster.local/ns/a/sa/b", "GET", 503, -1);
    o.proxy_error = 1;
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, "svc0:80", "GET", 200, -1);
    http_metrics_record(hm, &o);
    assert_int_equal(http_metrics_label_sets(hm), BUDGET);
    t = render(hm);
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"svc0:80\",method=\"GET\"} 3\n");
    assert_null(strstr(t, "svc5"));
    assert_null(strstr(t, "svc6"));
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"overflow\",method=\"overflow\"} 3\n");
    must_have(t, "weft_proxy_http_requests_total{direction=\"inbound\",peer=\"overflow\",method=\"overflow\"} 1\n");
    must_have(t, "weft_proxy_http_responses_total{direction=\"outbound\",dst=\"overflow\",method=\"overflow\","
                 "status=\"overflow\",grpc_status=\"overflow\",classification=\"success\",origin=\"upstream\"} 1\n");
    must_have(t, "weft_proxy_http_responses_total{direction=\"outbound\",dst=\"overflow\",method=\"overflow\","
                 "status=\"overflow\",grpc_status=\"overflow\",classification=\"failure\",origin=\"upstream\"} 1\n");
    must_have(t, "weft_proxy_http_responses_total{direction=\"inbound\",peer=\"overflow\",method=\"overflow\","
                 "status=\"overflow\",grpc_status=\"overflow\",classification=\"failure\",origin=\"proxy\"} 1\n");
    must_have(t, "weft_proxy_http_label_sets{kind=\"used\"} 5\n");
    /* Nothing is lost: every request is in exactly one requests line. */
    assert_int_equal(sum_of(t, "weft_proxy_http_requests_total{"), 2 * BUDGET + 5);
    free(t);
    http_metrics_free(hm);

    /* Budget 0: everything in the overflow sets. */
    hm = http_metrics_new(0);
    o = oc(PM_OUTBOUND, "svc0:80", "GET", 200, -1);
    http_metrics_record(hm, &o);
    assert_int_equal(http_metrics_label_sets(hm), 0);
    t = render(hm);
    must_have(t, "weft_proxy_http_requests_total{direction=\"outbound\",dst=\"overflow\",method=\"overflow\"} 1\n");
    free(t);
    http_metrics_free(hm);

    /* A budget past the maximum is cut to it. */
    hm = http_metrics_new(HTTP_METRICS_MAX_BUDGET + 1);
    for (int i = 0; i < HTTP_METRICS_MAX_BUDGET + 1; i++) {
        snprintf(dst, sizeof dst, "svc%d:80", i);
        o = oc(PM_OUTBOUND, dst, "GET", 200, -1);
        http_metrics_record(hm, &o);
    }
    assert_int_equal(http_metrics_label_sets(hm), HTTP_METRICS_MAX_BUDGET);
    http_metrics_free(hm);
    http_metrics_record(NULL, &o); /* no store: nothing, no crash */
}

static void test_labels_sanitized_and_bounded(void **state)
{
    (void)state;
    struct http_metrics *hm = http_metrics_new(8);
    struct http_outcome o = oc(PM_OUTBOUND, "a\"b\\c\nd\xff:80", "GET", 200, -1);
    http_metrics_record(hm, &o);
    /* Two targets equal in their first HTTP_METRICS_TARGET_MAX bytes are one set. */
    char a[HTTP_METRICS_TARGET_MAX + 20], b[HTTP_METRICS_TARGET_MAX + 20];
    memset(a, 'x', sizeof a);
    memcpy(b, a, sizeof b);
    a[sizeof a - 1] = b[sizeof b - 1] = '\0';
    b[HTTP_METRICS_TARGET_MAX + 5] = 'y';
    o = oc(PM_OUTBOUND, a, "GET", 200, -1);
    http_metrics_record(hm, &o);
    o = oc(PM_OUTBOUND, b, "GET", 200, -1);
    http_metrics_record(hm, &o);
    /* At the limit exactly: kept whole; one byte shorter differs. */
    a[HTTP_METRICS_TARGET_MAX] = '\0';
    o = oc(PM_OUTBOUND, a, "GET", 200, -1);
    http_metrics_record(hm, &o);
    a[HTTP_METRICS_TARGET_MAX - 1] = '\0';
    o = oc(PM_OUTBOUND, a, "GET", 200, -1);
    http_metrics_record(hm, &o);
    assert_int_equal(http_metrics_label_sets(hm), 3);
    char *t = render(hm);
    must_have(t, "dst=\"a\\\"b\\\\c?d?:80\"");
    char want[HTTP_METRICS_TARGET_MAX + 100];
    snprintf(want, sizeof want, "dst=\"%.*s\",method=\"GET\"} 3\n", HTTP_METRICS_TARGET_MAX, b);
    must_have(t, want);
    free(t);
    http_metrics_free(hm);
}

struct worker_arg {
    struct http_metrics *hm;
    int id;
};

#define THREADS 8
#define PER_THREAD 20000
#define TARGETS 48

static void *recorder(void *p)
{
    struct worker_arg *a = p;
    char dst[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(dst, sizeof dst, "svc%d:80", (i + a->id) % TARGETS);
        struct http_outcome o = oc(PM_OUTBOUND, dst, i % 2 ? "GET" : "POST", i % 10 ? 200 : 503, -1);
        o.headers_ns = (uint64_t)(i % 7) * MS;
        o.total_ns = o.headers_ns + MS;
        http_metrics_record(a->hm, &o);
    }
    return NULL;
}

static void test_concurrent_recording(void **state)
{
    (void)state;
    /* 48 targets x 2 methods x 2 statuses = 192 possible sets for a budget of
     * 100: the table fills while threads race to add, and the rest overflow. */
    struct http_metrics *hm = http_metrics_new(100);
    pthread_t th[THREADS];
    struct worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){hm, i};
        assert_int_equal(pthread_create(&th[i], NULL, recorder, &args[i]), 0);
    }
    /* Renders while the workers record: never torn, never failing. */
    for (int r = 0; r < 20; r++)
        free(render(hm));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(http_metrics_label_sets(hm), 100);
    char *t = render(hm);
    assert_int_equal(sum_of(t, "weft_proxy_http_requests_total{"), THREADS * PER_THREAD);
    assert_int_equal(sum_of(t, "weft_proxy_http_responses_total{"), THREADS * PER_THREAD);
    assert_int_equal(sum_of(t, "weft_proxy_http_request_duration_seconds_count{"), THREADS * PER_THREAD);
    /* Every tenth request of each thread was a 503. */
    assert_int_equal(sum_where(t, "weft_proxy_http_responses_total{", "classification=\"failure\""),
                     THREADS * (PER_THREAD / 10));
    must_have(t, "dst=\"overflow\"");
    free(t);
    http_metrics_free(hm);
}

static void test_full_table_render_size(void **state)
{
    (void)state;
    /* The worst case of docs/proxy.md: the maximum budget, every label set
     * with a target of the maximum length and both directions' overflow
     * sets in use. It must fit the admin server's 8 MiB body with the
     * connection metrics' worst case (about 0.6 MiB) beside it. */
    struct http_metrics *hm = http_metrics_new(HTTP_METRICS_MAX_BUDGET);
    char t[HTTP_METRICS_TARGET_MAX + 1];
    memset(t, 'p', HTTP_METRICS_TARGET_MAX);
    t[HTTP_METRICS_TARGET_MAX] = '\0';
    for (int i = 0; i < HTTP_METRICS_MAX_BUDGET; i++) {
        snprintf(t, 8, "%05d", i);
        t[5] = 'p';
        struct http_outcome o = oc(i % 2 ? PM_INBOUND : PM_OUTBOUND, t, "OPTIONS", 503, 16);
        o.headers_ns = o.total_ns = 12345678901ULL; /* widest sums */
        http_metrics_record(hm, &o);
    }
    for (int d = 0; d < PM_NDIR; d++)
        for (int e = 0; e < 2; e++) {
            struct http_outcome o = oc((enum pm_dir)d, "late:1", "GET", e ? 200 : 500, -1);
            o.proxy_error = e;
            http_metrics_record(hm, &o);
            o.proxy_error = !e;
            http_metrics_record(hm, &o);
        }
    struct buf out;
    buf_init(&out, 16 << 20);
    assert_int_equal(http_metrics_render(hm, &out), 0);
    print_message("full table: %d label sets of %d-byte targets render as %zu bytes\n", HTTP_METRICS_MAX_BUDGET,
                  HTTP_METRICS_TARGET_MAX, out.len);
    assert_true(out.len <= (size_t)(7 << 20) - (640 << 10));
    buf_free(&out);
    /* A render that does not fit fails cleanly. */
    buf_init(&out, 4096);
    assert_int_equal(http_metrics_render(hm, &out), -E2BIG);
    buf_free(&out);
    http_metrics_free(hm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_exact_counts_and_buckets),
        cmocka_unit_test(test_budget_limit_and_overflow),
        cmocka_unit_test(test_labels_sanitized_and_bounded),
        cmocka_unit_test(test_concurrent_recording),
        cmocka_unit_test(test_full_table_render_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
