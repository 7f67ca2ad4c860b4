/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for weft-identity's request handling: the first byte picks
 * what the rest is fed to.
 *   0: a request body through ident_handle (JSON, CSR, TokenReview stubbed to
 *      accept shop/backend, signing with an in-memory CA)
 *   1: a PEM CSR to ident_csr_parse + ident_csr_check_identity
 *   2: DER bytes wrapped as a PEM CSR (reaches the ASN.1 parser directly)
 *   3: a TokenReview answer to ident_review_result
 * Seeds: fuzz/corpus/fuzz_identity_request/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "csr.h"
#include "issuer.h"
#include "request.h"
#include "review.h"

#define ID "spiffe://cluster.local/ns/shop/sa/backend"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ident_issuer *issuer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ca = X509_new();
    X509_set_version(ca, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(ca), 1);
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz CA", -1, -1, 0);
    X509_set_subject_name(ca, name);
    X509_set_issuer_name(ca, name);
    X509_NAME_free(name);
    X509_set_pubkey(ca, key);
    X509_gmtime_adj(X509_getm_notBefore(ca), -3600);
    X509_gmtime_adj(X509_getm_notAfter(ca), 365L * 86400);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca, ca, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(ca, e, -1);
    X509_EXTENSION_free(e);
    X509_sign(ca, key, EVP_sha256());
    issuer = ident_issuer_from(ca, key, NULL);
    X509_free(ca);
    EVP_PKEY_free(key);
    return 0;
}

static int review_ok(void *ctx, json_t *request, long *status, json_t **body, char *err, size_t errlen)
{
    (void)ctx;
    (void)request;
    (void)err;
    (void)errlen;
    *status = 201;
    *body = json_pack("{s:s, s:{s:b, s:{s:s}, s:[s]}}", "kind", "TokenReview", "status", "authenticated", 1, "user",
                      "username", "system:serviceaccount:shop:backend", "audiences", "weft-identity");
    return 0;
}

static void csr(const char *pem, size_t len)
{
    struct ident_csr *req = NULL;
    char msg[256];
    if (ident_csr_parse(pem, len, &req, msg, sizeof msg) == IDENT_ISSUED) {
        ident_csr_check_identity(req, ID, msg, sizeof msg);
        ident_csr_free(req);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2 * IDENT_MAX_BODY)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] & 3) {
    case 0: {
        struct ident_config cfg = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = 86400,
                                   .backdate = 60};
        struct ident_request req = {.authorization = "Bearer fuzz", .body = rest, .len = len};
        struct ident_response out;
        ident_handle(&cfg, review_ok, NULL, issuer, time(NULL), &req, &out);
        if (!out.body || out.status < 200 || out.status > 599)
            abort();
        ident_response_free(&out);
        break;
    }
    case 1:
        csr(rest, len);
        break;
    case 2: {
        BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio(bio, "CERTIFICATE REQUEST", "", (const unsigned char *)rest, (long)len);
        char *pem;
        long n = BIO_get_mem_data(bio, &pem);
        csr(pem, (size_t)n);
        BIO_free(bio);
        break;
    }
    case 3: {
        json_error_t e;
        json_t *body = json_loadb(rest, len, 0, &e);
        struct spiffe_id id;
        char msg[256];
        ident_review_result(201, body, "weft-identity", "cluster.local", &id, msg, sizeof msg);
        json_decref(body);
        break;
    }
    }
    return 0;
}
