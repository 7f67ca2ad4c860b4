/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/jsondrop.c: the member dropped wherever it is (first,
 * last, only, nested, in arrays), everything else kept as jansson reads it,
 * text that is not well-formed JSON refused, the nesting limit at its value
 * and one past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jsondrop.h"

static char *drop(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1);
    ssize_t w = jsondrop_member(in, n, "managedFields", out);
    if (w < 0) {
        free(out);
        return NULL;
    }
    out[w] = '\0';
    return out;
}

static void expect(const char *in, const char *want)
{
    char *got = drop(in);
    assert_non_null(got);
    assert_string_equal(got, want);
    json_t *j = json_loads(got, JSON_DECODE_ANY, NULL);
    assert_non_null(j); /* what is written parses */
    json_decref(j);
    free(got);
}

static void test_dropped(void **state)
{
    (void)state;
    expect("{\"managedFields\":[{\"f:a\":{}}],\"name\":\"x\"}", "{\"name\":\"x\"}");
    expect("{\"name\":\"x\",\"managedFields\":[1,2]}", "{\"name\":\"x\"}");
    expect("{\"managedFields\":{}}", "{}");
    expect("{\"a\":1,\"managedFields\":null,\"b\":2}", "{\"a\":1,\"b\":2}");
    expect(" { \"items\" : [ { \"metadata\" : { \"name\" : \"p\" , \"managedFields\" : [ { \"x\" : \"}]\" } ] } } ] } ",
           "{\"items\":[{\"metadata\":{\"name\":\"p\"}}]}");
    /* Every occurrence, at any depth; the name as a value or a longer key stays. */
    expect("[{\"managedFields\":1},{\"k\":{\"managedFields\":2,\"v\":\"managedFields\"}},{\"managedFieldsX\":3}]",
           "[{},{\"k\":{\"v\":\"managedFields\"}},{\"managedFieldsX\":3}]");
}

static void test_kept(void **state)
{
    (void)state;
    expect("{\"s\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\xc3\xa9\",\"n\":-1.5e+10,\"z\":0,\"t\":true,\"f\":false,\"u\":null}",
           "{\"s\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\xc3\xa9\",\"n\":-1.5e+10,\"z\":0,\"t\":true,\"f\":false,\"u\":null}");
    expect("\"managedFields\"", "\"managedFields\"");
    expect("[]", "[]");
    expect("12", "12");
    /* An escaped spelling of the key is not the name: kept. */
    expect("{\"managed\\u0046ields\":1}", "{\"managed\\u0046ields\":1}");
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", " ", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{a:1}", "[01]", "[1.]", "[-]", "[1e]",
                         "[tru]", "[\"\x01\"]", "[\"\\q\"]", "[\"\\u12\"]", "[\"\\ud800\"]", "[\"\\udc00\"]",
                         "[\"\\u0000\"]", "[\"\xc3\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf5\x80\x80\x80\"]",
                         "{} {}", "[1] x", "{\"managedFields\":[1,}", "{\"managedFields\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *got = drop(bad[i]);
        if (got)
            fail_msg("taken: case %zu \"%s\" -> \"%s\"", i, bad[i], got);
    }
}

static void test_depth(void **state)
{
    (void)state;
    /* JSONDROP_MAX_DEPTH nested arrays holding a scalar are one past its limit
     * (the scalar is a value too); one fewer is taken. */
    for (int extra = 0; extra < 2; extra++) {
        int depth = JSONDROP_MAX_DEPTH - 1 + extra;
        char *in = malloc((size_t)depth * 2 + 2);
        memset(in, '[', (size_t)depth);
        in[depth] = '1';
        memset(in + depth + 1, ']', (size_t)depth);
        in[2 * depth + 1] = '\0';
        char *got = drop(in);
        if (extra == 0) {
            assert_non_null(got);
            assert_string_equal(got, in);
        } else {
            assert_null(got);
        }
        free(got);
        free(in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropped),
        cmocka_unit_test(test_kept),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests_name("lib/jsondrop", tests, NULL, NULL);
}
