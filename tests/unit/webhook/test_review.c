/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of webhook/review.c: the envelope, and answers that stay valid
 * JSON whatever bytes the request put into their messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shipped_conf.h"
#include "review.h"


static json_t *handle(const char *body, size_t len, int status)
{
    struct review_result r;
    review_handle(&cfg, body, len, NULL, NULL, &r);
    assert_int_equal(r.http_status, status);
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    if (!doc)
        fail_msg("answer is not JSON: %s", r.body);
    free(r.body);
    return doc;
}

static void test_invalid_utf8_in_error(void **state)
{
    (void)state;
    const char body[] = "{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \xc3\x28 }";
    json_t *doc = handle(body, sizeof body - 1, 400);
    assert_non_null(json_string_value(json_object_get(doc, "error")));
    json_decref(doc);
}

static void test_long_multibyte_override_is_refused_as_json(void **state)
{
    (void)state;
    /* A value of 600 two-byte characters: the message is cut mid-character. */
    char value[1300] = "";
    for (int i = 0; i < 600; i++)
        strcat(value, "\xc3\xa9");
    char body[4096];
    int n = snprintf(body, sizeof body,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u1\","
                     "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},\"namespace\":\"shop\","
                     "\"operation\":\"CREATE\",\"object\":{\"metadata\":{\"name\":\"p\",\"annotations\":"
                     "{\"weft.dev/mtls-mode\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"a\"}]}}}}",
                     value);
    json_t *doc = handle(body, (size_t)n, 200);
    json_t *resp = json_object_get(doc, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "uid")), "u1");
    assert_true(json_is_false(json_object_get(resp, "allowed")));
    const char *msg = json_string_value(json_object_get(json_object_get(resp, "status"), "message"));
    assert_non_null(strstr(msg, "invalid weft.dev/mtls-mode"));
    json_decref(doc);
}

static void test_envelope(void **state)
{
    (void)state;
    const char body[] = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":"
                        "\"u\\\"2\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Service\"}}}";
    json_t *doc = handle(body, sizeof body - 1, 200);
    assert_string_equal(json_string_value(json_object_get(doc, "apiVersion")), "admission.k8s.io/v1");
    json_t *resp = json_object_get(doc, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "uid")), "u\"2");
    assert_true(json_is_true(json_object_get(resp, "allowed")));
    assert_null(json_object_get(resp, "patch"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_utf8_in_error),
        cmocka_unit_test(test_long_multibyte_override_is_refused_as_json),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests_name("webhook/review", tests, setup, teardown);
}
