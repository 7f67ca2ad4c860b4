/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure parts of proxy/identity_client.c: renewal timing,
 * backoff, the CSR it sends (accepted by weft-identity's own checks is
 * tested end to end in tests/integration/test_identity_client.py), the answer
 * it reads, addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "identity_client.h"

#define ID "spiffe://cluster.local/ns/shop/sa/backend"

static void test_renew_delay(void **state)
{
    (void)state;
    const time_t t = 1800000000;
    /* 24 h lifetime: between 12 h and 16.8 h. */
    assert_int_equal(idc_renew_delay_ms(t, t, t + 86400, 0.0), 43200L * 1000);
    assert_int_equal(idc_renew_delay_ms(t, t, t + 86400, 0.5), 51840L * 1000);
    long hi = idc_renew_delay_ms(t, t, t + 86400, 0.999999);
    assert_true(hi > 60000L * 1000 && hi <= 60480L * 1000);
    /* Later calls count from issue time, not from now. */
    assert_int_equal(idc_renew_delay_ms(t + 3600, t, t + 86400, 0.0), (43200L - 3600) * 1000);
    /* Every r in range lands in [50 %, 70 %]. */
    for (int i = 0; i < 100; i++) {
        long d = idc_renew_delay_ms(t, t, t + 10, i / 100.0);
        assert_true(d >= 5000 && d <= 7000);
    }
    /* Past due, tiny or backwards lifetimes: the minimum, never 0 or negative. */
    assert_int_equal(idc_renew_delay_ms(t + 100, t, t + 10, 0.3), IDC_MIN_DELAY_MS);
    assert_int_equal(idc_renew_delay_ms(t, t, t, 0.3), IDC_MIN_DELAY_MS);
    assert_int_equal(idc_renew_delay_ms(t, t, t - 5, 0.3), IDC_MIN_DELAY_MS);
    /* Out-of-range r is treated as 0. */
    assert_int_equal(idc_renew_delay_ms(t, t, t + 100, 7.0), 50000);
}

static void test_backoff(void **state)
{
    (void)state;
    const time_t t = 1800000000;
    assert_int_equal(idc_backoff_ms(1, 0.5, t, 0), IDC_BACKOFF_FIRST_MS);
    assert_int_equal(idc_backoff_ms(2, 0.5, t, 0), 2 * IDC_BACKOFF_FIRST_MS);
    assert_int_equal(idc_backoff_ms(3, 0.5, t, 0), 4 * IDC_BACKOFF_FIRST_MS);
    assert_int_equal(idc_backoff_ms(50, 0.5, t, 0), IDC_BACKOFF_MAX_MS);
    assert_int_equal(idc_backoff_ms(4000000000u, 0.5, t, 0), IDC_BACKOFF_MAX_MS);
    /* Jitter: 0.8 .. 1.2 times. */
    assert_int_equal(idc_backoff_ms(50, 0.0, t, 0), IDC_BACKOFF_MAX_MS * 8 / 10);
    assert_true(idc_backoff_ms(50, 0.9999, t, 0) <= IDC_BACKOFF_MAX_MS * 12 / 10);
    /* Never sleeps past half of what is left of the current certificate. */
    assert_int_equal(idc_backoff_ms(50, 0.5, t, t + 20), 10000);
    assert_int_equal(idc_backoff_ms(50, 0.5, t, t), IDC_MIN_DELAY_MS);
}

static X509_REQ *read_csr(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return req;
}

static void test_make_csr(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *pem = NULL;
    char err[128];
    assert_int_equal(idc_make_csr(key, ID, &pem, err, sizeof err), 0);
    X509_REQ *req = read_csr(pem);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
    GENERAL_NAMES *sans = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, 0));
    assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, 0);
    assert_int_equal(gn->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), ID);
    /* No private key material in what is sent. */
    assert_null(strstr(pem, "PRIVATE"));
    GENERAL_NAMES_free(sans);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    free(pem);
    EVP_PKEY_free(key);
}

static void test_parse_answer(void **state)
{
    (void)state;
    json_error_t e;
    json_t *a = json_loads("{\"spiffeId\":\"" ID "\",\"certificate\":\"-----BEGIN CERTIFICATE-----\\nAA\\n"
                           "-----END CERTIFICATE-----\",\"chain\":[\"-----BEGIN CERTIFICATE-----\\nBB\\n"
                           "-----END CERTIFICATE-----\\n\"],\"notBefore\":\"2026-11-26T10:00:00Z\","
                           "\"notAfter\":\"2026-11-27T10:00:00Z\",\"serialNumber\":\"01\"}",
                           0, &e);
    assert_non_null(a);
    char *pem = NULL;
    size_t len = 0;
    time_t na = 0;
    char err[256];
    assert_int_equal(idc_parse_answer(a, ID, &pem, &len, &na, err, sizeof err), 0);
    assert_int_equal(len, strlen(pem));
    assert_string_equal(pem, "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
                             "-----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n");
    assert_int_equal(na, 1795773600); /* 2026-11-27T10:00:00Z */
    free(pem);
    /* Another identity than ours is refused. */
    assert_int_equal(idc_parse_answer(a, "spiffe://cluster.local/ns/shop/sa/other", &pem, &len, &na, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "not spiffe://cluster.local/ns/shop/sa/other"));
    json_object_set_new(a, "notAfter", json_string("tomorrow"));
    assert_int_equal(idc_parse_answer(a, ID, &pem, &len, &na, err, sizeof err), -EINVAL);
    json_object_set_new(a, "notAfter", json_string("2026-11-27T10:00:00Z"));
    json_object_set_new(a, "chain", json_pack("[i]", 1));
    assert_int_equal(idc_parse_answer(a, ID, &pem, &len, &na, err, sizeof err), -EINVAL);
    json_object_del(a, "certificate");
    assert_int_equal(idc_parse_answer(a, ID, &pem, &len, &na, err, sizeof err), -EINVAL);
    json_decref(a);
}

static void test_split_addr(void **state)
{
    (void)state;
    char h[64], p[8];
    assert_int_equal(idc_split_addr("weft-identity.weft-system.svc:8444", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "weft-identity.weft-system.svc");
    assert_string_equal(p, "8444");
    assert_int_equal(idc_split_addr("[fd00::1]:8444", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "fd00::1");
    const char *bad[] = {"", "host", ":8444", "host:", "host:0", "host:65536", "host:8x", "fd00::1:8444", "[fd00::1]8444"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(idc_split_addr(bad[i], h, sizeof h, p, sizeof p), -EINVAL);
}

static void test_metrics_render(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(identity_client_render_metrics(&b), 0);
    assert_non_null(strstr(b.data, "weft_proxy_identity_renewals_total{result=\"success\"} 0\n"));
    assert_non_null(strstr(b.data, "weft_proxy_identity_renewals_total{result=\"failure\"} 0\n"));
    buf_free(&b);
    identity_client_stop(); /* never started: a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renew_delay),   cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_make_csr),      cmocka_unit_test(test_parse_answer),
        cmocka_unit_test(test_split_addr),    cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests_name("identity_client", tests, NULL, NULL);
}
