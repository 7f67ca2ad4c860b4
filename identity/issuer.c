/* SPDX-License-Identifier: Apache-2.0 */
/* Issuer loading and leaf signing with OpenSSL; see issuer.h. */
#include "errbuf.h"
#include "issuer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "xalloc.h"

struct ident_issuer {
    atomic_int refs;
    X509 *cert;               /* signs the leaves */
    EVP_PKEY *key;
    time_t not_before, not_after;
    char **chain_pem;         /* sent to clients: the issuer and further intermediates */
    size_t chain_len;
};

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

int ident_lifetime(time_t now, long ttl, long backdate, time_t issuer_nb, time_t issuer_na, time_t *nb, time_t *na)
{
    if (ttl <= 0 || backdate < 0 || issuer_nb > now || issuer_na <= now)
        return -ERANGE;
    time_t b = now - backdate;
    time_t a = now + ttl;
    if (b < issuer_nb)
        b = issuer_nb;
    if (a > issuer_na)
        a = issuer_na;
    if (a - now < 1)
        return -ERANGE;
    *nb = b;
    *na = a;
    return 0;
}

static char *cert_to_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_X509(bio, x) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        out = xstrndup(data, (size_t)n);
    }
    BIO_free(bio);
    return out;
}

struct ident_issuer *ident_issuer_from(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain)
{
    struct ident_issuer *is = xcalloc(1, sizeof *is);
    atomic_init(&is->refs, 1);
    X509_up_ref(cert);
    EVP_PKEY_up_ref(key);
    is->cert = cert;
    is->key = key;
    is->not_before = asn1_to_time(X509_get0_notBefore(cert));
    is->not_after = asn1_to_time(X509_get0_notAfter(cert));
    int n = chain ? sk_X509_num(chain) : 0;
    is->chain_pem = xcalloc((size_t)n + 1, sizeof *is->chain_pem);
    if (!chain || n == 0 || sk_X509_value(chain, 0) != cert) {
        if (X509_self_signed(cert, 0) != 1)
            is->chain_pem[is->chain_len++] = cert_to_pem(cert);
    }
    for (int i = 0; i < n; i++) {
        X509 *c = sk_X509_value(chain, i);
        if (X509_self_signed(c, 0) == 1)
            continue; /* a trust anchor: the client has it */
        is->chain_pem = xrealloc(is->chain_pem, (is->chain_len + 2) * sizeof *is->chain_pem);
        is->chain_pem[is->chain_len++] = cert_to_pem(c);
    }
    ERR_clear_error();
    return is;
}

void ident_issuer_ref(struct ident_issuer *is)
{
    atomic_fetch_add(&is->refs, 1);
}

void ident_issuer_unref(struct ident_issuer *is)
{
    if (!is || atomic_fetch_sub(&is->refs, 1) != 1)
        return;
    X509_free(is->cert);
    EVP_PKEY_free(is->key);
    for (size_t i = 0; i < is->chain_len; i++)
        free(is->chain_pem[i]);
    free(is->chain_pem);
    free(is);
}

time_t ident_issuer_not_after(const struct ident_issuer *is)
{
    return is->not_after;
}

size_t ident_issuer_chain_len(const struct ident_issuer *is)
{
    return is->chain_len;
}

const char *ident_issuer_chain_pem(const struct ident_issuer *is, size_t i)
{
    return i < is->chain_len ? is->chain_pem[i] : NULL;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static BIO *open_bounded(const char *path, char *err, size_t errlen, int *rc)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rc = -errno;
        errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(IDENT_MAX_ISSUER_PEM + 1);
    size_t n = fread(data, 1, IDENT_MAX_ISSUER_PEM + 1, f);
    fclose(f);
    if (n > IDENT_MAX_ISSUER_PEM) {
        free(data);
        *rc = -EFBIG;
        errbuf_set(err, errlen, "%s: larger than %d bytes", path, IDENT_MAX_ISSUER_PEM);
        return NULL;
    }
    BIO *bio = BIO_new(BIO_s_mem());
    BIO_write(bio, data, (int)n);
    OPENSSL_cleanse(data, n);
    free(data);
    return bio;
}

int ident_issuer_load(const char *cert_file, const char *key_file, const char *bundle_file,
                      struct ident_issuer **out, char *err, size_t errlen)
{
    int rc = 0;
    BIO *bio = NULL;
    STACK_OF(X509) *certs = sk_X509_new_null();
    EVP_PKEY *key = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *vctx = NULL;
    *out = NULL;

    if (!(bio = open_bounded(cert_file, err, errlen, &rc)))
        goto out;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL)
        sk_X509_push(certs, x);
    ERR_clear_error();
    BIO_free(bio);
    bio = NULL;
    if (sk_X509_num(certs) == 0) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "%s: no PEM certificate", cert_file);
        goto out;
    }
    if (!(bio = open_bounded(key_file, err, errlen, &rc)))
        goto out;
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!key) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "%s: no unencrypted PEM private key (%s)", key_file, ossl_reason());
        goto out;
    }
    X509 *cert = sk_X509_value(certs, 0);
    if (X509_check_private_key(cert, key) != 1) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "%s does not match the first certificate of %s", key_file, cert_file);
        goto out;
    }
    if (X509_check_ca(cert) < 1 || !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "%s: the first certificate is not a CA allowed to sign certificates", cert_file);
        goto out;
    }
    time_t now = time(NULL);
    time_t nb = asn1_to_time(X509_get0_notBefore(cert)), na = asn1_to_time(X509_get0_notAfter(cert));
    if (nb > now || na <= now) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "%s: the issuer certificate is %s", cert_file, nb > now ? "not yet valid" : "expired");
        goto out;
    }
    if (bundle_file) {
        store = X509_STORE_new();
        if (X509_STORE_load_file(store, bundle_file) != 1) {
            rc = -EINVAL;
            errbuf_set(err, errlen, "%s: cannot load trust bundle (%s)", bundle_file, ossl_reason());
            goto out;
        }
        vctx = X509_STORE_CTX_new();
        X509_STORE_CTX_init(vctx, store, cert, certs);
        if (X509_verify_cert(vctx) != 1) {
            rc = -EINVAL;
            errbuf_set(err, errlen, "%s does not chain to %s: %s", cert_file, bundle_file,
                   X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
            goto out;
        }
    }
    *out = ident_issuer_from(cert, key, certs);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    BIO_free(bio);
    return rc;
}

static const EVP_MD *digest_for(EVP_PKEY *key)
{
    int id = EVP_PKEY_get_base_id(key);
    if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448)
        return NULL;
    int bits = EVP_PKEY_get_bits(key);
    if (id == EVP_PKEY_EC && bits > 384)
        return EVP_sha512();
    if (id == EVP_PKEY_EC && bits > 256)
        return EVP_sha384();
    return EVP_sha256();
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* Copies the SubjectPublicKeyInfo field by field. X509_set_pubkey would
 * re-encode and re-decode the key through OpenSSL 3's decoders, which costs
 * more than the signature itself. */
static int copy_pubkey(X509 *x, const X509_PUBKEY *pub)
{
    ASN1_OBJECT *alg = NULL;
    const unsigned char *bits = NULL;
    int nbits = 0, ptype = V_ASN1_UNDEF;
    X509_ALGOR *algor = NULL;
    const void *pval = NULL;
    const ASN1_OBJECT *aobj = NULL;
    if (X509_PUBKEY_get0_param(&alg, &bits, &nbits, &algor, pub) != 1)
        return 0;
    X509_ALGOR_get0(&aobj, &ptype, &pval, algor);
    void *param = NULL;
    if (ptype == V_ASN1_OBJECT)
        param = OBJ_dup(pval);
    else if (ptype == V_ASN1_SEQUENCE)
        param = ASN1_STRING_dup(pval);
    else if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
        return 0;
    unsigned char *copy = OPENSSL_memdup(bits, (size_t)nbits);
    ASN1_OBJECT *oid = OBJ_dup(aobj);
    if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && !param)
        goto fail;
    if (!copy || !oid || X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), oid, ptype, param, copy, nbits) != 1)
        goto fail;
    return 1;
fail:
    OPENSSL_free(copy);
    ASN1_OBJECT_free(oid);
    if (ptype == V_ASN1_OBJECT)
        ASN1_OBJECT_free(param);
    else
        ASN1_STRING_free(param);
    return 0;
}

int ident_issuer_sign(struct ident_issuer *is, const X509_PUBKEY *pub, const char *spiffe_uri, time_t now, long ttl,
                      long backdate, struct ident_leaf *out, char *err, size_t errlen)
{
    int rc = -EINVAL;
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    GENERAL_NAMES *sans = NULL;
    char *hex = NULL;
    time_t nb, na;
    memset(out, 0, sizeof *out);

    if (ident_lifetime(now, ttl, backdate, is->not_before, is->not_after, &nb, &na) < 0) {
        errbuf_set(err, errlen, "the issuer certificate is not valid now");
        return -ERANGE;
    }
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) {
        errbuf_set(err, errlen, "no random serial: %s", ossl_reason());
        goto out;
    }
    serial[0] &= 0x7f; /* positive */
    serial[0] |= 0x40; /* and 16 bytes long */
    x = X509_new();
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (!x || !bn || X509_set_version(x, X509_VERSION_3) != 1 ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        X509_set_issuer_name(x, X509_get_subject_name(is->cert)) != 1 || !copy_pubkey(x, pub) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), nb) || !ASN1_TIME_set(X509_getm_notAfter(x), na)) {
        errbuf_set(err, errlen, "cannot build the certificate: %s", ossl_reason());
        goto out;
    }
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, is->cert, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always")) {
        errbuf_set(err, errlen, "cannot add extensions: %s", ossl_reason());
        goto out;
    }
    /* The subject is empty, so the SAN is critical (RFC 5280 4.2.1.6). Built
     * directly, not from a config string, so no character of the URI is
     * interpreted. */
    sans = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    if (!sans || !gn || !ia5 || ASN1_STRING_set(ia5, spiffe_uri, (int)strlen(spiffe_uri)) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(ia5);
        errbuf_set(err, errlen, "cannot build the SAN");
        goto out;
    }
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    sk_GENERAL_NAME_push(sans, gn);
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 1, X509V3_ADD_DEFAULT) != 1 ||
        X509_sign(x, is->key, digest_for(is->key)) <= 0) {
        errbuf_set(err, errlen, "cannot sign: %s", ossl_reason());
        goto out;
    }
    out->pem = cert_to_pem(x);
    hex = BN_bn2hex(bn);
    if (!out->pem || !hex) {
        errbuf_set(err, errlen, "cannot encode the certificate");
        goto out;
    }
    snprintf(out->serial, sizeof out->serial, "%s", hex);
    out->not_before = nb;
    out->not_after = na;
    rc = 0;
out:
    if (rc < 0) {
        free(out->pem);
        out->pem = NULL;
    }
    ERR_clear_error();
    OPENSSL_free(hex);
    GENERAL_NAMES_free(sans);
    BN_free(bn);
    X509_free(x);
    return rc;
}

void ident_leaf_free(struct ident_leaf *leaf)
{
    free(leaf->pem);
    leaf->pem = NULL;
}
