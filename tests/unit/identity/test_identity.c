/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of weft-identity's core: CSR validation, identity mapping from
 * TokenReview answers, lifetime clamping, leaf contents, and the whole
 * request decision with a stubbed TokenReview and an in-memory CA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "csr.h"
#include "issuer.h"
#include "request.h"
#include "review.h"
#include "server.h"

#define ID "spiffe://cluster.local/ns/shop/sa/backend"

/* ---------- helpers ---------- */

static EVP_PKEY *key_ec(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static EVP_PKEY *key_rsa(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static EVP_PKEY *key_ed25519(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

/* A PEM CSR for key with the given SAN extension values (NULL: no SAN);
 * corrupt flips a bit of the signature. Caller frees. */
static char *make_csr(EVP_PKEY *key, const char *san, const char *san2, int corrupt)
{
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_version(req, 0);
    X509_REQ_set_pubkey(req, key);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (san)
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san));
    if (san2)
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san2));
    if (sk_X509_EXTENSION_num(exts))
        X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    int id = EVP_PKEY_get_base_id(key);
    assert_true(X509_REQ_sign(req, key, id == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0);
    if (corrupt) {
        const ASN1_BIT_STRING *sig;
        X509_REQ_get0_signature(req, &sig, NULL);
        unsigned char *d = (unsigned char *)ASN1_STRING_get0_data(sig);
        d[ASN1_STRING_length(sig) / 2] ^= 0x01;
        /* Make OpenSSL re-encode instead of using its cached DER. */
    }
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(bio, req);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    X509_REQ_free(req);
    return out;
}

static X509 *make_ca_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long nb_off,
                          long na_off)
{
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    X509_gmtime_adj(X509_getm_notBefore(x), nb_off);
    X509_gmtime_adj(X509_getm_notAfter(x), na_off);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    return x;
}

struct ca {
    EVP_PKEY *root_key, *int_key;
    X509 *root, *inter;
    struct ident_issuer *issuer;
};

static void ca_make(struct ca *ca, long int_na_off)
{
    ca->root_key = key_ec("P-256");
    ca->int_key = key_ec("P-256");
    ca->root = make_ca_cert(ca->root_key, "root", NULL, NULL, -3600, 10 * 86400);
    ca->inter = make_ca_cert(ca->int_key, "intermediate", ca->root, ca->root_key, -3600, int_na_off);
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, ca->inter);
    sk_X509_push(chain, ca->root);
    ca->issuer = ident_issuer_from(ca->inter, ca->int_key, chain);
    sk_X509_free(chain);
}

static void ca_free(struct ca *ca)
{
    ident_issuer_unref(ca->issuer);
    X509_free(ca->root);
    X509_free(ca->inter);
    EVP_PKEY_free(ca->root_key);
    EVP_PKEY_free(ca->int_key);
}

static enum ident_reason parse_csr(const char *pem, struct ident_csr **req)
{
    char msg[256];
    return ident_csr_parse(pem, strlen(pem), req, msg, sizeof msg);
}

/* ---------- CSR validation ---------- */

static void test_csr_good(void **state)
{
    (void)state;
    EVP_PKEY *k = key_ec("P-256");
    char *pem = make_csr(k, "URI:" ID, NULL, 0);
    struct ident_csr *req = NULL;
    char msg[256];
    assert_int_equal(parse_csr(pem, &req), IDENT_ISSUED);
    assert_non_null(req);
    assert_int_equal(ident_csr_check_identity(req, ID, msg, sizeof msg), IDENT_ISSUED);
    assert_int_equal(ident_csr_check_identity(req, "spiffe://cluster.local/ns/shop/sa/other", msg, sizeof msg),
                     IDENT_SAN_MISMATCH);
    ident_csr_free(req);
    free(pem);
    EVP_PKEY_free(k);
}

static void test_csr_key_types(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {key_rsa(), key_ec("P-384"), key_ed25519(), key_ec("secp256k1")};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *pem = make_csr(keys[i], "URI:" ID, NULL, 0);
        struct ident_csr *req = NULL;
        assert_int_equal(parse_csr(pem, &req), IDENT_CSR_KEY_TYPE);
        assert_null(req);
        free(pem);
        EVP_PKEY_free(keys[i]);
    }
}

static void test_csr_bad_signature(void **state)
{
    (void)state;
    EVP_PKEY *k = key_ec("P-256");
    char *pem = make_csr(k, "URI:" ID, NULL, 1);
    struct ident_csr *req = NULL;
    assert_int_equal(parse_csr(pem, &req), IDENT_CSR_BAD_SIGNATURE);
    free(pem);
    /* Signed by another key than the one it carries. */
    EVP_PKEY *other = key_ec("P-256");
    X509_REQ *r = X509_REQ_new();
    X509_REQ_set_pubkey(r, k);
    X509_REQ_sign(r, other, EVP_sha256());
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(bio, r);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)n);
    assert_int_equal(parse_csr(pem, &req), IDENT_CSR_BAD_SIGNATURE);
    free(pem);
    BIO_free(bio);
    X509_REQ_free(r);
    EVP_PKEY_free(other);
    EVP_PKEY_free(k);
}

static void test_csr_not_pem_not_csr(void **state)
{
    (void)state;
    struct ident_csr *req = NULL;
    assert_int_equal(parse_csr("", &req), IDENT_CSR_NOT_PEM);
    assert_int_equal(parse_csr("hello", &req), IDENT_CSR_NOT_PEM);
    assert_int_equal(parse_csr("-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n", &req),
                     IDENT_CSR_NOT_PEM);
    /* Valid base64, but not a CSR. */
    assert_int_equal(parse_csr("-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE REQUEST-----\n",
                               &req),
                     IDENT_NOT_CSR);
    /* A certificate is not a request. */
    struct ca ca;
    ca_make(&ca, 86400);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, ca.root);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)n);
    assert_int_equal(parse_csr(pem, &req), IDENT_NOT_CSR);
    free(pem);
    BIO_free(bio);
    ca_free(&ca);
    /* Garbage after a good block, and whitespace after it. */
    EVP_PKEY *k = key_ec("P-256");
    char *good = make_csr(k, "URI:" ID, NULL, 0);
    size_t gl = strlen(good);
    char *more = malloc(gl + 16);
    snprintf(more, gl + 16, "%sjunk", good);
    assert_int_equal(parse_csr(more, &req), IDENT_CSR_NOT_PEM);
    snprintf(more, gl + 16, "%s\n\n  ", good);
    assert_int_equal(parse_csr(more, &req), IDENT_ISSUED);
    ident_csr_free(req);
    /* Two requests in one. */
    char *two = malloc(2 * gl + 1);
    snprintf(two, 2 * gl + 1, "%s%s", good, good);
    req = NULL;
    assert_int_equal(parse_csr(two, &req), IDENT_CSR_NOT_PEM);
    free(two);
    free(more);
    free(good);
    EVP_PKEY_free(k);
}

static void test_csr_size_limit(void **state)
{
    (void)state;
    size_t n = IDENT_MAX_CSR_PEM + 1;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[n] = '\0';
    struct ident_csr *req = NULL;
    char msg[128];
    assert_int_equal(ident_csr_parse(big, n, &req, msg, sizeof msg), IDENT_CSR_NOT_PEM);
    assert_non_null(strstr(msg, "larger"));
    free(big);
}

static void test_csr_sans(void **state)
{
    (void)state;
    EVP_PKEY *k = key_ec("P-256");
    struct {
        const char *san, *san2;
        enum ident_reason want;
    } cases[] = {
        {NULL, NULL, IDENT_SAN_MISMATCH},
        {"DNS:backend.shop.svc", NULL, IDENT_SAN_MISMATCH},
        {"URI:spiffe://cluster.local/ns/shop/sa/admin", NULL, IDENT_SAN_MISMATCH},
        {"URI:spiffe://evil.example/ns/shop/sa/backend", NULL, IDENT_SAN_MISMATCH},
        {"URI:" ID "/x", NULL, IDENT_SAN_MISMATCH},
        {"URI:" ID ",URI:spiffe://cluster.local/ns/shop/sa/admin", NULL, IDENT_SAN_MISMATCH},
        {"URI:" ID ",DNS:backend.shop.svc", NULL, IDENT_SAN_EXTRA},
        {"URI:" ID ",IP:10.0.0.1", NULL, IDENT_SAN_EXTRA},
        {"URI:" ID ",email:a@b.c", NULL, IDENT_SAN_EXTRA},
        {"URI:" ID ",URI:" ID, NULL, IDENT_SAN_EXTRA},
        {"URI:" ID, "DNS:x", IDENT_SAN_EXTRA},
        {"URI:" ID, NULL, IDENT_ISSUED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *pem = make_csr(k, cases[i].san, cases[i].san2, 0);
        struct ident_csr *req = NULL;
        char msg[256];
        assert_int_equal(parse_csr(pem, &req), IDENT_ISSUED);
        enum ident_reason r = ident_csr_check_identity(req, ID, msg, sizeof msg);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got %s want %s", i, cases[i].san ? cases[i].san : "none",
                     ident_reason_name(r), ident_reason_name(cases[i].want));
        ident_csr_free(req);
        free(pem);
    }
    EVP_PKEY_free(k);
}

/* ---------- identity mapping ---------- */

static enum ident_reason review(const char *json, long status, struct spiffe_id *id)
{
    json_error_t e;
    json_t *body = json ? json_loads(json, 0, &e) : NULL;
    char msg[256];
    enum ident_reason r = ident_review_result(status, body, "weft-identity", "cluster.local", id, msg, sizeof msg);
    json_decref(body);
    return r;
}

static void test_review_mapping(void **state)
{
    (void)state;
    struct spiffe_id id;
    const char *ok = "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\",\"status\":{"
                     "\"authenticated\":true,\"user\":{\"username\":\"system:serviceaccount:shop:backend\","
                     "\"groups\":[\"system:serviceaccounts\"]},\"audiences\":[\"weft-identity\"]}}";
    assert_int_equal(review(ok, 201, &id), IDENT_ISSUED);
    assert_string_equal(id.ns, "shop");
    assert_string_equal(id.sa, "backend");
    assert_string_equal(id.trust_domain, "cluster.local");
    assert_int_equal(review(ok, 200, &id), IDENT_ISSUED);

    /* An audience-unaware answer (no status.audiences) is not trusted. */
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":"
                            "\"system:serviceaccount:shop:backend\"}}}",
                            201, &id),
                     IDENT_TOKEN_AUDIENCE);
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":"
                            "\"system:serviceaccount:shop:backend\"},\"audiences\":[\"other\"]}}",
                            201, &id),
                     IDENT_TOKEN_AUDIENCE);
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"user\":{},\"error\":\"[invalid bearer token, "
                            "token audiences [\\\"api\\\"] is invalid for the target audiences "
                            "[\\\"weft-identity\\\"]]\"}}",
                            201, &id),
                     IDENT_TOKEN_AUDIENCE);
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"user\":{},\"error\":\"[invalid bearer token, "
                            "service account token has expired]\"}}",
                            201, &id),
                     IDENT_TOKEN_EXPIRED);
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"user\":{},\"error\":\"[invalid bearer token, "
                            "square/go-jose: error in cryptographic primitive]\"}}",
                            201, &id),
                     IDENT_TOKEN_INVALID);
    assert_int_equal(review("{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":false,\"user\":{}}}", 201, &id),
                     IDENT_TOKEN_INVALID);
    /* Authenticated, but not a service account. */
    const char *users[] = {"kubernetes-admin", "system:node:worker-1", "system:serviceaccount:shop",
                           "system:serviceaccount:Shop:backend", "system:serviceaccount:shop:back:end",
                           "system:serviceaccount::backend"};
    for (size_t i = 0; i < sizeof users / sizeof *users; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":\"%s\"},"
                 "\"audiences\":[\"weft-identity\"]}}",
                 users[i]);
        assert_int_equal(review(json, 201, &id), IDENT_NOT_SERVICE_ACCOUNT);
    }
    /* The API server did not review: our side's problem, retry later. */
    assert_int_equal(review("{\"kind\":\"Status\",\"code\":403,\"message\":\"forbidden\"}", 403, &id),
                     IDENT_TOKENREVIEW_UNAVAILABLE);
    assert_int_equal(review(NULL, 500, &id), IDENT_TOKENREVIEW_UNAVAILABLE);
    assert_int_equal(review("{\"kind\":\"Namespace\"}", 200, &id), IDENT_TOKENREVIEW_UNAVAILABLE);
    assert_int_equal(review(NULL, 201, &id), IDENT_TOKENREVIEW_UNAVAILABLE);
}

static void test_review_body(void **state)
{
    (void)state;
    json_t *b = ident_review_body("tok", "weft-identity");
    char *s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{"
                           "\"audiences\":[\"weft-identity\"],\"token\":\"tok\"}}");
    free(s);
    json_decref(b);
}

/* ---------- lifetime ---------- */

static void test_lifetime(void **state)
{
    (void)state;
    time_t nb, na;
    const time_t now = 1800000000;
    /* Plain: 24 h, 60 s backdate. */
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 86400, now + 365 * 86400, &nb, &na), 0);
    assert_int_equal(nb, now - 60);
    assert_int_equal(na, now + 86400);
    /* Never outlives the issuer. */
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 86400, now + 3600, &nb, &na), 0);
    assert_int_equal(na, now + 3600);
    /* Never starts before the issuer. */
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 10, now + 365 * 86400, &nb, &na), 0);
    assert_int_equal(nb, now - 10);
    /* Issuer expired, not yet valid, expiring this second. */
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 86400, now - 1, &nb, &na), -ERANGE);
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 86400, now, &nb, &na), -ERANGE);
    assert_int_equal(ident_lifetime(now, 86400, 60, now + 1, now + 86400, &nb, &na), -ERANGE);
    /* One second left is still a certificate. */
    assert_int_equal(ident_lifetime(now, 86400, 60, now - 86400, now + 1, &nb, &na), 0);
    assert_int_equal(na, now + 1);
    /* Nonsense inputs. */
    assert_int_equal(ident_lifetime(now, 0, 60, now - 86400, now + 86400, &nb, &na), -ERANGE);
    assert_int_equal(ident_lifetime(now, 10, -1, now - 86400, now + 86400, &nb, &na), -ERANGE);
}

static void test_durations(void **state)
{
    (void)state;
    long s;
    assert_int_equal(ident_parse_duration("90", &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(ident_parse_duration("90s", &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(ident_parse_duration("30m", &s), 0);
    assert_int_equal(s, 1800);
    assert_int_equal(ident_parse_duration("24h", &s), 0);
    assert_int_equal(s, 86400);
    assert_int_equal(ident_parse_duration("7d", &s), 0);
    assert_int_equal(s, 7 * 86400);
    const char *bad[] = {"", "h", "-1h", "1.5h", "1w", "1hh", " 1h", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ident_parse_duration(bad[i], &s), -EINVAL);
}

static void test_bearer_and_hostport(void **state)
{
    (void)state;
    const char *t;
    size_t n;
    assert_int_equal(ident_parse_bearer("Bearer abc.def", &t, &n), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(t, "abc.def", 7);
    assert_int_equal(ident_parse_bearer("bearer   abc ", &t, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ident_parse_bearer(NULL, &t, &n), -EINVAL);
    assert_int_equal(ident_parse_bearer("Basic abc", &t, &n), -EINVAL);
    assert_int_equal(ident_parse_bearer("Bearer ", &t, &n), -EINVAL);
    assert_int_equal(ident_parse_bearer("Bearer a b", &t, &n), -EINVAL);
    assert_int_equal(ident_parse_bearer("Bearerabc", &t, &n), -EINVAL);

    char h[64], p[8];
    assert_int_equal(ident_split_hostport(":8444", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "");
    assert_string_equal(p, "8444");
    assert_int_equal(ident_split_hostport("127.0.0.1:1", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(ident_split_hostport("[::1]:9090", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(ident_split_hostport("::1:9090", h, sizeof h, p, sizeof p), -EINVAL);
    assert_int_equal(ident_split_hostport("host", h, sizeof h, p, sizeof p), -EINVAL);
    assert_int_equal(ident_split_hostport("host:", h, sizeof h, p, sizeof p), -EINVAL);
    assert_int_equal(ident_split_hostport("host:x1", h, sizeof h, p, sizeof p), -EINVAL);
    assert_int_equal(ident_split_hostport("host:65536", h, sizeof h, p, sizeof p), -EINVAL);
}

/* ---------- signing ---------- */

static void test_sign_leaf(void **state)
{
    (void)state;
    struct ca ca;
    ca_make(&ca, 30 * 86400);
    assert_int_equal(ident_issuer_chain_len(ca.issuer), 1); /* the root is not sent */
    EVP_PKEY *k = key_ec("P-256");
    X509_PUBKEY *xk = NULL;
    assert_int_equal(X509_PUBKEY_set(&xk, k), 1);
    struct ident_leaf leaf;
    char err[256];
    time_t now = time(NULL);
    assert_int_equal(ident_issuer_sign(ca.issuer, xk, ID, now, 86400, 60, &leaf, err, sizeof err), 0);
    assert_int_equal(leaf.not_after, now + 86400);
    assert_int_equal(strlen(leaf.serial), 32);

    BIO *bio = BIO_new_mem_buf(leaf.pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(x);
    assert_int_equal(X509_verify(x, ca.int_key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    int crit = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    assert_int_equal(crit, 1);
    assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, 0);
    assert_int_equal(gn->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), ID);
    GENERAL_NAMES_free(sans);
    assert_non_null(X509_get0_authority_key_id(x));
    assert_non_null(X509_get0_subject_key_id(x));
    /* It chains: root as anchor, intermediate as the sent chain. */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.root);
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    sk_X509_push(untrusted, ca.inter);
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(vctx, store, x, untrusted);
    X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_CLIENT);
    assert_int_equal(X509_verify_cert(vctx), 1);
    X509_STORE_CTX_free(vctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    X509_free(x);
    ident_leaf_free(&leaf);

    /* Clamped to the issuer's notAfter, and refused once it has passed. */
    time_t na = ident_issuer_not_after(ca.issuer);
    assert_int_equal(ident_issuer_sign(ca.issuer, xk, ID, na - 100, 86400, 60, &leaf, err, sizeof err), 0);
    assert_int_equal(leaf.not_after, na);
    ident_leaf_free(&leaf);
    assert_int_equal(ident_issuer_sign(ca.issuer, xk, ID, na, 86400, 60, &leaf, err, sizeof err), -ERANGE);
    X509_PUBKEY_free(xk);
    EVP_PKEY_free(k);
    ca_free(&ca);
}

/* ---------- the whole request ---------- */

struct stub {
    int rc;
    long status;
    const char *answer;
    int calls;
};

static int stub_review(void *ctx, json_t *request, long *status, json_t **body, char *err, size_t errlen)
{
    struct stub *s = ctx;
    s->calls++;
    assert_string_equal(json_string_value(json_object_get(json_object_get(request, "spec"), "token")), "tok");
    if (s->rc < 0) {
        snprintf(err, errlen, "connect: Connection refused");
        return s->rc;
    }
    *status = s->status;
    json_error_t e;
    *body = s->answer ? json_loads(s->answer, 0, &e) : NULL;
    return 0;
}

static const char *answer_for(const char *user)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\",\"status\":{\"authenticated\":"
             "true,\"user\":{\"username\":\"%s\"},\"audiences\":[\"weft-identity\"]}}",
             user);
    return buf;
}

static char *body_for(const char *csr, const char *extra)
{
    json_t *o = json_pack("{s:s}", "csr", csr);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (extra) {
        size_t n = strlen(s) + strlen(extra) + 2;
        char *t = malloc(n);
        snprintf(t, n, "%.*s,%s}", (int)strlen(s) - 1, s, extra);
        free(s);
        s = t;
    }
    return s;
}

static struct ident_response handle(struct ca *ca, struct stub *stub, const char *auth, const char *body)
{
    struct ident_config cfg = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = 86400,
                               .backdate = 60};
    struct ident_request req = {.authorization = auth, .body = body, .len = body ? strlen(body) : 0};
    struct ident_response out;
    ident_handle(&cfg, stub_review, stub, ca ? ca->issuer : NULL, time(NULL), &req, &out);
    return out;
}

static void test_handle_issue(void **state)
{
    (void)state;
    struct ca ca;
    ca_make(&ca, 30 * 86400);
    EVP_PKEY *k = key_ec("P-256");
    char *csr = make_csr(k, "URI:" ID, NULL, 0);
    char *body = body_for(csr, NULL);
    struct stub stub = {.status = 201, .answer = answer_for("system:serviceaccount:shop:backend")};
    struct ident_response out = handle(&ca, &stub, "Bearer tok", body);
    assert_int_equal(out.status, 200);
    assert_int_equal(out.reason, IDENT_ISSUED);
    assert_string_equal(out.spiffe_id, ID);
    json_error_t e;
    json_t *doc = json_loads(out.body, 0, &e);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "spiffeId")), ID);
    assert_non_null(strstr(json_string_value(json_object_get(doc, "certificate")), "BEGIN CERTIFICATE"));
    assert_int_equal(json_array_size(json_object_get(doc, "chain")), 1);
    assert_non_null(json_string_value(json_object_get(doc, "notAfter")));
    json_decref(doc);
    ident_response_free(&out);
    free(body);

    /* ttlSeconds shortens the lifetime; bad values are refused. */
    body = body_for(csr, "\"ttlSeconds\":5");
    out = handle(&ca, &stub, "Bearer tok", body);
    assert_int_equal(out.status, 200);
    doc = json_loads(out.body, 0, &e);
    const char *nb = json_string_value(json_object_get(doc, "notBefore"));
    const char *na = json_string_value(json_object_get(doc, "notAfter"));
    struct tm tb = {0}, ta = {0};
    strptime(nb, "%Y-%m-%dT%H:%M:%SZ", &tb);
    strptime(na, "%Y-%m-%dT%H:%M:%SZ", &ta);
    assert_int_equal(timegm(&ta) - timegm(&tb), 65); /* 60 s backdate + 5 s */
    json_decref(doc);
    ident_response_free(&out);
    free(body);
    const char *bad_ttl[] = {"\"ttlSeconds\":0", "\"ttlSeconds\":-5", "\"ttlSeconds\":\"60\"", "\"ttlSeconds\":1.5",
                             "\"ttlSeconds\":604801"};
    for (size_t i = 0; i < sizeof bad_ttl / sizeof *bad_ttl; i++) {
        body = body_for(csr, bad_ttl[i]);
        out = handle(&ca, &stub, "Bearer tok", body);
        assert_int_equal(out.status, 400);
        assert_int_equal(out.reason, IDENT_BAD_TTL);
        ident_response_free(&out);
        free(body);
    }

    /* At the maximum: with --cert-ttl 7d, ttlSeconds 604800 gets all of it;
     * with 24 h, it is lowered to 24 h. One more is refused above. */
    body = body_for(csr, "\"ttlSeconds\":604800");
    for (long ttl = IDENT_MAX_TTL; ttl >= IDENT_DEFAULT_TTL; ttl -= IDENT_MAX_TTL - IDENT_DEFAULT_TTL) {
        struct ident_config cfg = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = ttl};
        struct ident_request req = {.authorization = "Bearer tok", .body = body, .len = strlen(body)};
        ident_handle(&cfg, stub_review, &stub, ca.issuer, time(NULL), &req, &out);
        assert_int_equal(out.status, 200);
        doc = json_loads(out.body, 0, &e);
        memset(&tb, 0, sizeof tb);
        memset(&ta, 0, sizeof ta);
        strptime(json_string_value(json_object_get(doc, "notBefore")), "%Y-%m-%dT%H:%M:%SZ", &tb);
        strptime(json_string_value(json_object_get(doc, "notAfter")), "%Y-%m-%dT%H:%M:%SZ", &ta);
        assert_int_equal(timegm(&ta) - timegm(&tb), ttl); /* no backdate here */
        json_decref(doc);
        ident_response_free(&out);
    }
    free(body);
    free(csr);
    EVP_PKEY_free(k);
    ca_free(&ca);
}

static void test_handle_denials(void **state)
{
    (void)state;
    struct ca ca;
    ca_make(&ca, 30 * 86400);
    EVP_PKEY *k = key_ec("P-256");
    EVP_PKEY *rsa = key_rsa();
    char *good = make_csr(k, "URI:" ID, NULL, 0);
    char *other = make_csr(k, "URI:spiffe://cluster.local/ns/shop/sa/admin", NULL, 0);
    char *extra = make_csr(k, "URI:" ID ",DNS:x.example", NULL, 0);
    char *badsig = make_csr(k, "URI:" ID, NULL, 1);
    char *rsacsr = make_csr(rsa, "URI:" ID, NULL, 0);
    char *b_good = body_for(good, NULL), *b_other = body_for(other, NULL), *b_extra = body_for(extra, NULL);
    char *b_badsig = body_for(badsig, NULL), *b_rsa = body_for(rsacsr, NULL);
    char *sa = strdup(answer_for("system:serviceaccount:shop:backend"));
    char *alice = strdup(answer_for("alice"));
    struct {
        const char *auth, *body;
        struct stub stub;
        struct ident_issuer *issuer;
        int status;
        enum ident_reason reason;
        int review_called;
    } cases[] = {
        {NULL, b_good, {.status = 201, .answer = sa}, ca.issuer, 401, IDENT_TOKEN_MISSING, 0},
        {"Basic x", b_good, {.status = 201, .answer = sa}, ca.issuer, 401, IDENT_TOKEN_MISSING, 0},
        {"Bearer tok", "{", {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_BAD_JSON, 0},
        {"Bearer tok", "[]", {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_BAD_JSON, 0},
        {"Bearer tok", "{\"csr\":1}", {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_BAD_JSON, 0},
        {"Bearer tok", "{\"csr\":\"a\",\"csr\":\"b\"}", {.status = 201, .answer = sa}, ca.issuer, 400,
         IDENT_BAD_JSON, 0},
        {"Bearer tok", "{\"csr\":\"hello\"}", {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_CSR_NOT_PEM, 0},
        {"Bearer tok", b_badsig, {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_CSR_BAD_SIGNATURE, 0},
        {"Bearer tok", b_rsa, {.status = 201, .answer = sa}, ca.issuer, 400, IDENT_CSR_KEY_TYPE, 0},
        {"Bearer tok", b_good, {.rc = -ECONNREFUSED}, ca.issuer, 503, IDENT_TOKENREVIEW_UNAVAILABLE, 1},
        {"Bearer tok", b_good, {.status = 500}, ca.issuer, 503, IDENT_TOKENREVIEW_UNAVAILABLE, 1},
        {"Bearer tok", b_good,
         {.status = 201, .answer = "{\"kind\":\"TokenReview\",\"status\":{\"user\":{},\"error\":\"bad\"}}"},
         ca.issuer, 401, IDENT_TOKEN_INVALID, 1},
        {"Bearer tok", b_good, {.status = 201, .answer = alice}, ca.issuer, 403,
         IDENT_NOT_SERVICE_ACCOUNT, 1},
        {"Bearer tok", b_other, {.status = 201, .answer = sa}, ca.issuer, 403, IDENT_SAN_MISMATCH, 1},
        {"Bearer tok", b_extra, {.status = 201, .answer = sa}, ca.issuer, 403, IDENT_SAN_EXTRA, 1},
        {"Bearer tok", b_good, {.status = 201, .answer = sa}, NULL, 503, IDENT_ISSUER_UNAVAILABLE, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ident_config cfg = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = 86400,
                                   .backdate = 60};
        struct ident_request req = {.authorization = cases[i].auth, .body = cases[i].body,
                                    .len = strlen(cases[i].body)};
        struct ident_response out;
        ident_handle(&cfg, stub_review, &cases[i].stub, cases[i].issuer, time(NULL), &req, &out);
        if (out.status != cases[i].status || out.reason != cases[i].reason ||
            cases[i].stub.calls != cases[i].review_called)
            fail_msg("case %zu: got %d %s (review called %d), want %d %s", i, out.status,
                     ident_reason_name(out.reason), cases[i].stub.calls, cases[i].status,
                     ident_reason_name(cases[i].reason));
        json_error_t e;
        json_t *doc = json_loads(out.body, 0, &e);
        assert_non_null(doc);
        json_t *err = json_object_get(doc, "error");
        assert_int_equal(json_integer_value(json_object_get(err, "code")), cases[i].status);
        assert_string_equal(json_string_value(json_object_get(err, "reason")), ident_reason_name(cases[i].reason));
        assert_true(strlen(json_string_value(json_object_get(err, "message"))) > 0);
        assert_null(strstr(out.body, "tok\"")); /* the token never comes back */
        if (cases[i].status == 503)
            assert_true(out.retry_after > 0);
        json_decref(doc);
        ident_response_free(&out);
    }
    /* Too large, whatever else is wrong. */
    struct stub stub = {0};
    struct ident_config cfg = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = 86400};
    struct ident_request req = {.authorization = NULL, .body = "", .len = 0, .too_large = 1};
    struct ident_response out;
    ident_handle(&cfg, stub_review, &stub, ca.issuer, time(NULL), &req, &out);
    assert_int_equal(out.status, 413);
    ident_response_free(&out);

    free(sa), free(alice);
    free(b_good), free(b_other), free(b_extra), free(b_badsig), free(b_rsa);
    free(good), free(other), free(extra), free(badsig), free(rsacsr);
    EVP_PKEY_free(k);
    EVP_PKEY_free(rsa);
    ca_free(&ca);
}

static void test_reasons_table(void **state)
{
    (void)state;
    for (int i = 0; i < IDENT_REASON_COUNT; i++) {
        assert_non_null(ident_reason_name((enum ident_reason)i));
        assert_true(ident_reason_status((enum ident_reason)i) >= 200);
    }
    assert_int_equal(ident_reason_status(IDENT_BODY_TOO_LARGE), 413);
    assert_int_equal(ident_reason_status(IDENT_TOKENREVIEW_UNAVAILABLE), 503);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_good),
        cmocka_unit_test(test_csr_key_types),
        cmocka_unit_test(test_csr_bad_signature),
        cmocka_unit_test(test_csr_not_pem_not_csr),
        cmocka_unit_test(test_csr_size_limit),
        cmocka_unit_test(test_csr_sans),
        cmocka_unit_test(test_review_mapping),
        cmocka_unit_test(test_review_body),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bearer_and_hostport),
        cmocka_unit_test(test_sign_leaf),
        cmocka_unit_test(test_handle_issue),
        cmocka_unit_test(test_handle_denials),
        cmocka_unit_test(test_reasons_table),
    };
    return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
