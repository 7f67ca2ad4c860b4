/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/creds.c, the in-memory API the identity client feeds
 * and the file loader: what is refused (and that the previous credentials
 * stay), generations, contexts kept by holders, reload on change, and real
 * TLS 1.3 handshakes over memory BIOs with the verify callback's reasons.
 * Certificates are made here with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "creds.h"

static EVP_PKEY *mk_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* issuer NULL: self-signed CA. uri NULL: no SAN. Validity in seconds from now. */
static X509 *mk_cert(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *key, const char *uri, long from, long to)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)(issuer ? "leaf" : "ca"), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    if (!issuer) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
        if (uri) {
            char san[300];
            snprintf(san, sizeof san, "URI:%s", uri);
            add_ext(x, issuer, NID_subject_alt_name, san);
        }
    }
    assert_true(X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static char *pem_of(X509 *x, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

struct pki {
    EVP_PKEY *ca_key, *other_key;
    X509 *ca, *other;
};

static struct pki pki;

static int setup(void **state)
{
    (void)state;
    pki.ca_key = mk_key();
    pki.other_key = mk_key();
    pki.ca = mk_cert(NULL, NULL, pki.ca_key, NULL, -3600, 86400);
    pki.other = mk_cert(NULL, NULL, pki.other_key, NULL, -3600, 86400);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(pki.ca);
    X509_free(pki.other);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.other_key);
    return 0;
}

/* Installs a leaf for uri signed by (ca, ca_key); returns the creds_set_identity_pem result. */
static int set_leaf(struct creds *c, X509 *ca, EVP_PKEY *ca_key, const char *uri, long from, long to, int wrong_key,
                    char *err)
{
    EVP_PKEY *k = mk_key(), *other = wrong_key ? mk_key() : NULL;
    X509 *x = mk_cert(ca, ca_key, k, uri, from, to);
    size_t len;
    char *pem = pem_of(x, &len);
    int r = creds_set_identity_pem(c, pem, len, other ? other : k, err, 256);
    free(pem);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    return r;
}

static void set_trust(struct creds *c, X509 *ca)
{
    size_t len;
    char *pem = pem_of(ca, &len), err[256];
    assert_int_equal(creds_set_trust_pem(c, pem, len, err, sizeof err), 0);
    free(pem);
}

static void test_memory_api(void **state)
{
    (void)state;
    char err[256];
    struct creds *c = creds_new("cluster.local");
    assert_false(creds_ready(c));
    assert_null(creds_server_ctx(c));
    assert_int_equal(creds_not_after(c), 0);
    assert_int_equal(creds_set_trust_pem(c, "junk", 4, err, sizeof err), -EINVAL);
    set_trust(c, pki.ca);
    assert_false(creds_ready(c)); /* no identity yet */
    assert_int_equal(set_leaf(c, pki.ca, pki.ca_key, "spiffe://cluster.local/ns/shop/sa/a", -60, 3600, 0, err), 0);
    assert_true(creds_ready(c));
    assert_int_equal(creds_generation(c), 1);
    time_t na = creds_not_after(c);
    assert_true(na > time(NULL) + 3000 && na <= time(NULL) + 3700);
    struct spiffe_id id;
    assert_int_equal(creds_local_id(c, &id), 0);
    assert_string_equal(id.sa, "a");
    SSL_CTX *held = creds_server_ctx(c);
    assert_non_null(held);

    /* Each refusal leaves generation 1 in force and says why, without PEM. */
    struct {
        const char *uri;
        long from, to;
        int wrong_key;
        const char *why;
    } bad[] = {
        {"spiffe://cluster.local/ns/shop/sa/b", -60, 3600, 1, "does not match"},
        {"spiffe://cluster.local/ns/shop/sa/b", -7200, -3600, 0, "expired"},
        {"spiffe://cluster.local/ns/shop/sa/b", 3600, 7200, 0, "not valid yet"},
        {"spiffe://other.domain/ns/shop/sa/b", -60, 3600, 0, "trust domain"},
        {NULL, -60, 3600, 0, "SPIFFE"},
        {"https://shop.example/b", -60, 3600, 0, "SPIFFE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(set_leaf(c, pki.ca, pki.ca_key, bad[i].uri, bad[i].from, bad[i].to, bad[i].wrong_key, err),
                         -EINVAL);
        if (!strstr(err, bad[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].why);
        assert_null(strstr(err, "BEGIN"));
        assert_int_equal(creds_generation(c), 1);
        assert_true(creds_ready(c));
    }
    EVP_PKEY *k = mk_key();
    assert_int_equal(creds_set_identity_pem(c, "not pem", 7, k, err, sizeof err), -EINVAL);
    EVP_PKEY_free(k);

    /* A new identity: a new context; the held one stays usable. */
    assert_int_equal(set_leaf(c, pki.ca, pki.ca_key, "spiffe://cluster.local/ns/shop/sa/c", -60, 3600, 0, err), 0);
    assert_int_equal(creds_generation(c), 2);
    SSL_CTX *now = creds_server_ctx(c);
    assert_ptr_not_equal(now, held);
    SSL *ssl = SSL_new(held);
    assert_non_null(ssl);
    SSL_free(ssl);
    SSL_CTX_free(held);
    SSL_CTX_free(now);
    creds_free(c);
}

/* Runs a handshake between a server and a client store over memory BIOs. */
static int handshake(struct creds *server, struct creds *client, const char *expect, struct creds_peer *sp,
                     struct creds_peer *cp)
{
    SSL_CTX *sctx = creds_server_ctx(server), *cctx = creds_client_ctx(client);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *sb, *cb;
    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    memset(sp, 0, sizeof *sp); /* expect_id is the caller's to set */
    memset(cp, 0, sizeof *cp);
    creds_ssl_attach(s, sp);
    creds_ssl_attach(c, cp);
    cp->expect_id = expect;
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int sr = 0, cr = 0, se = 0;
    for (int i = 0; i < 20 && (sr != 1 || cr != 1); i++) {
        if (cr != 1) {
            cr = SSL_do_handshake(c);
            if (cr != 1 && SSL_get_error(c, cr) != SSL_ERROR_WANT_READ)
                break;
        }
        if (sr != 1) {
            sr = SSL_do_handshake(s);
            if (sr != 1 && (se = SSL_get_error(s, sr)) != SSL_ERROR_WANT_READ)
                break;
        }
    }
    int ok = sr == 1 && cr == 1 && creds_peer_finish(s, sp, "cluster.local") == 0 &&
             creds_peer_finish(c, cp, "cluster.local") == 0;
    if (sr != 1 && sp->fail == CREDS_FAIL_NONE)
        sp->fail = creds_classify_failure(s, sp, se);
    if (cr != 1 && cp->fail == CREDS_FAIL_NONE)
        cp->fail = creds_classify_failure(c, cp, SSL_get_error(c, cr));
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return ok;
}

static void test_handshakes(void **state)
{
    (void)state;
    char err[256];
    struct creds *srv = creds_new("cluster.local"), *cli = creds_new("cluster.local");
    set_trust(srv, pki.ca);
    set_trust(cli, pki.ca);
    assert_int_equal(set_leaf(srv, pki.ca, pki.ca_key, "spiffe://cluster.local/ns/shop/sa/back", -60, 3600, 0, err), 0);
    assert_int_equal(set_leaf(cli, pki.ca, pki.ca_key, "spiffe://cluster.local/ns/shop/sa/front", -60, 3600, 0, err), 0);
    struct creds_peer sp, cp;
    assert_true(handshake(srv, cli, NULL, &sp, &cp));
    assert_string_equal(sp.id.sa, "front");
    assert_string_equal(cp.id.sa, "back");
    /* The client pins the server's identity. */
    assert_true(handshake(srv, cli, "spiffe://cluster.local/ns/shop/sa/back", &sp, &cp));
    assert_false(handshake(srv, cli, "spiffe://cluster.local/ns/shop/sa/db", &sp, &cp));
    assert_int_equal(cp.fail, CREDS_FAIL_WRONG_ID);
    /* A client whose certificate comes from another CA. */
    struct creds *stranger = creds_new("cluster.local");
    set_trust(stranger, pki.ca);
    assert_int_equal(set_leaf(stranger, pki.other, pki.other_key, "spiffe://cluster.local/ns/shop/sa/front", -60, 3600,
                              0, err),
                     0); /* the store does not check its own chain: peers do */
    assert_false(handshake(srv, stranger, NULL, &sp, &cp));
    assert_int_equal(sp.fail, CREDS_FAIL_UNKNOWN_CA);
    assert_string_equal(creds_fail_name(sp.fail), "unknown_ca");
    creds_free(stranger);
    creds_free(srv);
    creds_free(cli);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_identity(const char *dir, const char *sa)
{
    char path[512], uri[128];
    EVP_PKEY *k = mk_key();
    snprintf(uri, sizeof uri, "spiffe://cluster.local/ns/shop/sa/%s", sa);
    X509 *x = mk_cert(pki.ca, pki.ca_key, k, uri, -60, 3600);
    size_t len;
    char *pem = pem_of(x, &len);
    snprintf(path, sizeof path, "%s/tls.crt.tmp", dir);
    write_file(path, pem, len);
    free(pem);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *kp;
    long kl = BIO_get_mem_data(b, &kp);
    snprintf(path, sizeof path, "%s/tls.key.tmp", dir);
    write_file(path, kp, (size_t)kl);
    BIO_free(b);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/tls.key.tmp", dir);
    snprintf(to, sizeof to, "%s/tls.key", dir);
    assert_int_equal(rename(from, to), 0);
    snprintf(from, sizeof from, "%s/tls.crt.tmp", dir);
    snprintf(to, sizeof to, "%s/tls.crt", dir);
    assert_int_equal(rename(from, to), 0);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_files_and_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/weft-creds-XXXXXX", crt[600], key[600], ca[600], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(crt, sizeof crt, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    size_t len;
    char *pem = pem_of(pki.ca, &len);
    write_file(ca, pem, len);
    free(pem);
    write_identity(dir, "one");
    struct creds *c = creds_new("cluster.local");
    assert_int_equal(creds_load_files(c, crt, key, ca, err, sizeof err), 0);
    assert_true(creds_ready(c));
    assert_int_equal(creds_reload_if_changed(c, err, sizeof err), 0);
    write_identity(dir, "two");
    assert_int_equal(creds_reload_if_changed(c, err, sizeof err), 1);
    struct spiffe_id id;
    creds_local_id(c, &id);
    assert_string_equal(id.sa, "two");
    /* A broken file is reported and the old identity stays. */
    write_file(crt, "garbage", 7);
    assert_true(creds_reload_if_changed(c, err, sizeof err) < 0);
    assert_non_null(strstr(err, crt));
    creds_local_id(c, &id);
    assert_string_equal(id.sa, "two");
    /* Missing files at load name the file. */
    struct creds *d = creds_new("cluster.local");
    assert_true(creds_load_files(d, "/nonexistent/x", key, ca, err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent/x"));
    creds_free(d);
    creds_free(c);
    unlink(crt);
    unlink(key);
    unlink(ca);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_api),
        cmocka_unit_test(test_handshakes),
        cmocka_unit_test(test_files_and_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
