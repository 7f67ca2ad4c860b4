/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the trust bundle publisher's pure parts: the ConfigMap it
 * sends (new, or an existing one updated in place), the currency check, the
 * query escaping and the bundle check that keeps keys and junk out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "publish.h"

static EVP_PKEY *key;

/* What a memory BIO holds, as a string; frees the BIO. */
static char *bio_text(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

/* A self-signed certificate and its key, PEM. */
static char *pem_cert(void)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"root", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    X509_free(x);
    return bio_text(b);
}

static char *pem_key(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    return bio_text(b);
}

static int setup(void **state)
{
    (void)state;
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return key ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    return 0;
}

static void test_new_configmap(void **state)
{
    (void)state;
    json_t *cm = publish_configmap(NULL, "shop", "PEM");
    char *text = json_dumps(cm, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"apiVersion\":\"v1\",\"data\":{\"ca.crt\":\"PEM\"},\"kind\":\"ConfigMap\","
                              "\"metadata\":{\"labels\":{\"app.kubernetes.io/managed-by\":\"weft-identity\"},"
                              "\"name\":\"weft-trust-bundle\",\"namespace\":\"shop\"}}");
    assert_true(publish_is_current(cm, "PEM"));
    assert_false(publish_is_current(cm, "PEM2"));
    free(text);
    json_decref(cm);
}

static void test_update_keeps_what_else_is_there(void **state)
{
    (void)state;
    json_t *have = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"weft-trust-bundle\","
                              "\"namespace\":\"shop\",\"resourceVersion\":\"42\",\"labels\":{\"team\":\"a\"}},"
                              "\"data\":{\"ca.crt\":\"OLD\",\"extra\":\"x\"}}",
                              0, NULL);
    assert_false(publish_is_current(have, "NEW"));
    json_t *cm = publish_configmap(have, "shop", "NEW");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cm, "data"), "ca.crt")), "NEW");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cm, "data"), "extra")), "x");
    json_t *meta = json_object_get(cm, "metadata");
    assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "42"); /* conditional PUT */
    assert_string_equal(json_string_value(json_object_get(json_object_get(meta, "labels"), "team")), "a");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(meta, "labels"), "app.kubernetes.io/managed-by")),
        "weft-identity");
    /* The API's object is left as it was. */
    assert_string_equal(json_string_value(json_object_get(json_object_get(have, "data"), "ca.crt")), "OLD");
    json_decref(cm);
    /* No data at all (someone emptied it): added. */
    json_object_del(have, "data");
    assert_false(publish_is_current(have, "NEW"));
    cm = publish_configmap(have, "shop", "NEW");
    assert_true(publish_is_current(cm, "NEW"));
    json_decref(cm);
    json_decref(have);
}

static void test_query_escape(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(publish_query_escape(&b, "weft.dev/inject=enabled,tier in (a b)"), 0);
    assert_string_equal(buf_cstr(&b), "weft.dev%2Finject%3Denabled%2Ctier%20in%20%28a%20b%29");
    buf_reset(&b);
    char big[80];
    memset(big, '/', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(publish_query_escape(&b, big), -E2BIG);
    buf_free(&b);
}

static void test_check_bundle(void **state)
{
    (void)state;
    char err[256];
    char *cert = pem_cert(), *k = pem_key();
    size_t n = strlen(cert);
    char two[8192], with_key[8192], junk_tail[8192];
    snprintf(two, sizeof two, "# anchors\n%s%s", cert, cert);
    snprintf(with_key, sizeof with_key, "%s%s", cert, k);
    snprintf(junk_tail, sizeof junk_tail, "%s-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", cert);

    assert_int_equal(publish_check_bundle(cert, n, err, sizeof err), 0);
    assert_int_equal(publish_check_bundle(two, strlen(two), err, sizeof err), 0); /* text between blocks is fine */

    assert_int_equal(publish_check_bundle(with_key, strlen(with_key), err, sizeof err), -EINVAL);
    assert_string_equal(err, "PEM block 2 is a PRIVATE KEY, not a CERTIFICATE");
    assert_int_equal(publish_check_bundle(junk_tail, strlen(junk_tail), err, sizeof err), -EINVAL);
    assert_string_equal(err, "PEM block 2 is malformed");
    assert_int_equal(publish_check_bundle("hello\n", 6, err, sizeof err), -EINVAL);
    assert_string_equal(err, "no PEM certificate in it");
    assert_int_equal(publish_check_bundle("", 0, err, sizeof err), -EINVAL);
    assert_int_equal(publish_check_bundle(cert, n + 1, err, sizeof err), -EINVAL); /* the NUL counted in */
    assert_string_equal(err, "contains a NUL byte");

    /* A DER body that is not a certificate, in a CERTIFICATE block. */
    char bad[512];
    snprintf(bad, sizeof bad, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert_int_equal(publish_check_bundle(bad, strlen(bad), err, sizeof err), -EINVAL);
    assert_string_equal(err, "certificate 1 does not parse");

    /* The size limit, at it and one past it (padding after the block is ignored text). */
    char *big = malloc(PUBLISH_MAX_BUNDLE + 2);
    memset(big, '\n', PUBLISH_MAX_BUNDLE + 1);
    memcpy(big, cert, n);
    big[PUBLISH_MAX_BUNDLE] = '\0';
    assert_int_equal(publish_check_bundle(big, PUBLISH_MAX_BUNDLE, err, sizeof err), 0);
    big[PUBLISH_MAX_BUNDLE] = '\n';
    big[PUBLISH_MAX_BUNDLE + 1] = '\0';
    assert_int_equal(publish_check_bundle(big, PUBLISH_MAX_BUNDLE + 1, err, sizeof err), -EINVAL);
    free(big);
    free(cert);
    free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_configmap),
        cmocka_unit_test(test_update_keeps_what_else_is_there),
        cmocka_unit_test(test_query_escape),
        cmocka_unit_test(test_check_bundle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
