/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of webhook/nscache.c: the cache over a source and a clock the
 * test controls, so the 10 s fresh and 300 s stale bounds are checked to the
 * nanosecond on each side without waiting, and the 4,096-entry cap at the
 * limit and one past it; and the pure reading of the API's answers (200,
 * 401, 403, 404, 500, a 200 that is not the Namespace). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "nscache.h"

#define SECOND 1000000000ull

static uint64_t now; /* the clock the cache reads */
static uint64_t clock_now(void)
{
    return now;
}

/* The API as a table: every namespace has annotation "n" = its name; while
 * failing, every read fails like an API server that is down. */
struct source {
    int failing;
    unsigned fetches;
    char last[64];
};

static int source_fetch(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    struct source *s = ctx;
    s->fetches++;
    snprintf(s->last, sizeof s->last, "%s", ns);
    if (s->failing) {
        snprintf(err, errlen, "connect 10.96.0.1:443: Connection refused");
        return -ECONNREFUSED;
    }
    *annotations = json_pack("{s:s}", "n", ns);
    return 0;
}

/* One lookup: its return code; the annotation "n" it gave, in got. */
static int lookup(struct nscache *c, const char *ns, char *got, size_t gotlen, char *err, size_t errlen)
{
    json_t *ann = NULL;
    int rc = nscache_lookup(c, ns, &ann, err, errlen);
    snprintf(got, gotlen, "%s", ann ? json_string_value(json_object_get(ann, "n")) : "");
    json_decref(ann);
    return rc;
}

static void assert_served(struct nscache *c, const char *ns)
{
    char got[64], err[256];
    assert_int_equal(lookup(c, ns, got, sizeof got, err, sizeof err), 0);
    assert_string_equal(got, ns);
}

static int quiet(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR); /* the stale path warns on every lookup */
    now = 1000 * SECOND;
    return 0;
}

static void test_fresh_for_exactly_ten_seconds(void **state)
{
    (void)state;
    struct source src = {0};
    struct nscache *c = nscache_new_source(source_fetch, &src, clock_now);
    uint64_t t0 = now;
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 1);
    now = t0 + NSCACHE_FRESH_SECONDS * SECOND - 1; /* still fresh: no read */
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 1);
    now = t0 + NSCACHE_FRESH_SECONDS * SECOND; /* stale: read again */
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 2);
    now += NSCACHE_FRESH_SECONDS * SECOND - 1; /* fresh from the second read */
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 2);
    nscache_free(c);
}

static void test_stale_served_for_exactly_300_seconds_when_the_api_fails(void **state)
{
    (void)state;
    struct source src = {0};
    struct nscache *c = nscache_new_source(source_fetch, &src, clock_now);
    char got[64], err[256];
    uint64_t t0 = now;
    assert_served(c, "shop");
    src.failing = 1;
    now = t0 + NSCACHE_FRESH_SECONDS * SECOND; /* read fails: the cached answer serves */
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 2);
    now = t0 + NSCACHE_STALE_SECONDS * SECOND - 1; /* the last moment it may */
    assert_served(c, "shop");
    assert_int_equal(src.fetches, 3);
    now = t0 + NSCACHE_STALE_SECONDS * SECOND; /* too old: the lookup fails with the API's error */
    assert_int_equal(lookup(c, "shop", got, sizeof got, err, sizeof err), -ECONNREFUSED);
    assert_string_equal(got, "");
    assert_string_equal(err, "connect 10.96.0.1:443: Connection refused");
    /* The API back: read and fresh again. */
    src.failing = 0;
    assert_served(c, "shop");
    now += NSCACHE_FRESH_SECONDS * SECOND - 1;
    unsigned fetches = src.fetches;
    assert_served(c, "shop");
    assert_int_equal(src.fetches, fetches);
    nscache_free(c);
}

static void test_a_failed_read_is_not_cached(void **state)
{
    (void)state;
    struct source src = {.failing = 1};
    struct nscache *c = nscache_new_source(source_fetch, &src, clock_now);
    char got[64], err[256];
    assert_int_equal(lookup(c, "never-read", got, sizeof got, err, sizeof err), -ECONNREFUSED);
    assert_int_equal(lookup(c, "never-read", got, sizeof got, err, sizeof err), -ECONNREFUSED);
    assert_int_equal(src.fetches, 2); /* each pod asks again: no negative caching */
    src.failing = 0;
    assert_served(c, "never-read");
    nscache_free(c);
}

static void test_not_a_namespace_name_is_not_read(void **state)
{
    (void)state;
    struct source src = {0};
    struct nscache *c = nscache_new_source(source_fetch, &src, clock_now);
    char got[64], err[256];
    assert_int_equal(lookup(c, "Not_A/Namespace", got, sizeof got, err, sizeof err), -EINVAL);
    assert_string_equal(err, "\"Not_A/Namespace\" is not a namespace name");
    assert_int_equal(src.fetches, 0);
    nscache_free(c);
}

static void test_size_cap_at_the_limit_and_one_past(void **state)
{
    (void)state;
    struct source src = {0};
    struct nscache *c = nscache_new_source(source_fetch, &src, clock_now);
    char ns[32];
    /* 4,096 namespaces, each read one nanosecond after the last: all kept. */
    for (unsigned i = 0; i < NSCACHE_MAX_ENTRIES; i++) {
        snprintf(ns, sizeof ns, "ns-%u", i);
        assert_served(c, ns);
        now++;
    }
    assert_int_equal(src.fetches, NSCACHE_MAX_ENTRIES);
    for (unsigned i = 0; i < NSCACHE_MAX_ENTRIES; i++) {
        snprintf(ns, sizeof ns, "ns-%u", i);
        assert_served(c, ns);
    }
    assert_int_equal(src.fetches, NSCACHE_MAX_ENTRIES); /* every one from the cache */
    /* One more: it is kept, and only the one read longest ago (ns-0) goes. */
    snprintf(ns, sizeof ns, "ns-%u", NSCACHE_MAX_ENTRIES);
    assert_served(c, ns);
    assert_int_equal(src.fetches, NSCACHE_MAX_ENTRIES + 1);
    for (unsigned i = 1; i <= NSCACHE_MAX_ENTRIES; i++) {
        snprintf(ns, sizeof ns, "ns-%u", i);
        assert_served(c, ns);
    }
    assert_int_equal(src.fetches, NSCACHE_MAX_ENTRIES + 1);
    assert_served(c, "ns-0"); /* read again */
    assert_int_equal(src.fetches, NSCACHE_MAX_ENTRIES + 2);
    assert_string_equal(src.last, "ns-0");
    nscache_free(c);
}

/* --- the API's answers ---------------------------------------------- */

static int parse(long status, const char *body, const char *api_err, json_t **ann, char *err, size_t errlen)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    if (body)
        assert_non_null(doc);
    int rc = nscache_parse_namespace("shop", status, doc, api_err, ann, err, errlen);
    json_decref(doc);
    return rc;
}

static void test_parse_a_namespace(void **state)
{
    (void)state;
    json_t *ann = NULL;
    char err[256] = "";
    assert_int_equal(parse(200, "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"shop\","
                                "\"annotations\":{\"weft.dev/mtls-mode\":\"PERMISSIVE\"}}}", "", &ann, err, sizeof err),
                     0);
    assert_string_equal(json_string_value(json_object_get(ann, "weft.dev/mtls-mode")), "PERMISSIVE");
    json_decref(ann);
    assert_int_equal(parse(200, "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}", "", &ann, err, sizeof err), 0);
    assert_null(ann); /* no annotations: the mesh defaults apply */
}

static void test_parse_refusals_and_errors(void **state)
{
    (void)state;
    static const struct {
        long status;
        const char *body, *api_err;
        int rc;
        const char *err;
    } cases[] = {
        {401, "{\"kind\":\"Status\",\"code\":401}", "HTTP 401: Unauthorized (reason Unauthorized)", -EIO,
         "HTTP 401: Unauthorized (reason Unauthorized)"},
        {403, "{\"kind\":\"Status\",\"code\":403}",
         "HTTP 403: namespaces \"shop\" is forbidden (reason Forbidden)", -EIO,
         "HTTP 403: namespaces \"shop\" is forbidden (reason Forbidden)"},
        {500, "{\"kind\":\"Status\",\"code\":500}", "HTTP 500: etcdserver: request timed out (reason InternalError)",
         -EIO, "HTTP 500: etcdserver: request timed out (reason InternalError)"},
        {404, "{\"kind\":\"Status\",\"code\":404}", "HTTP 404: namespaces \"shop\" not found (reason NotFound)",
         -ENOENT, "namespace shop not found"},
        {302, NULL, "", -EIO, "HTTP 302: not a Namespace"},
        /* A 200 that is not the Namespace must not pass as one without annotations. */
        {200, NULL, "HTTP 200: response body is not JSON: '[' or '{' expected near '<'", -EIO,
         "HTTP 200: response body is not JSON: '[' or '{' expected near '<'"},
        {200, NULL, "", -EIO, "HTTP 200: response body is not JSON"},
        {200, "[]", "", -EIO, "HTTP 200: response body is not JSON"},
        {200, "{\"kind\":\"Status\",\"status\":\"Success\"}", "", -EIO, "HTTP 200: the answer is not Namespace shop"},
        {200, "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"other\"}}", "", -EIO,
         "HTTP 200: the answer is not Namespace shop"},
        {200, "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\",\"annotations\":[]}}", "", -EIO,
         "HTTP 200: Namespace shop has metadata.annotations that is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *ann = (json_t *)1;
        char err[256] = "";
        int rc = parse(cases[i].status, cases[i].body, cases[i].api_err, &ann, err, sizeof err);
        if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu (HTTP %ld): rc %d err \"%s\"", i, cases[i].status, rc, err);
        assert_null(ann);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fresh_for_exactly_ten_seconds, quiet),
        cmocka_unit_test_setup(test_stale_served_for_exactly_300_seconds_when_the_api_fails, quiet),
        cmocka_unit_test_setup(test_a_failed_read_is_not_cached, quiet),
        cmocka_unit_test_setup(test_not_a_namespace_name_is_not_read, quiet),
        cmocka_unit_test_setup(test_size_cap_at_the_limit_and_one_past, quiet),
        cmocka_unit_test(test_parse_a_namespace),
        cmocka_unit_test(test_parse_refusals_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
