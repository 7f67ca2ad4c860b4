/* SPDX-License-Identifier: Apache-2.0 */
/* CSR parsing and validation; see csr.h. */
#include "errbuf.h"
#include "csr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "xalloc.h"

static int only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)p[i]))
            return 0;
    return 1;
}

/* PKCS#10 (RFC 2986) as ASN.1 templates. The request info keeps its
 * received encoding (ASN1_SEQUENCE_enc), which is what the signature covers. */
struct csr_spki {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *key;
};

struct csr_info {
    ASN1_ENCODING enc;
    ASN1_INTEGER *version;
    ASN1_TYPE *subject;                    /* any: never read */
    struct csr_spki *spki;
    STACK_OF(X509_ATTRIBUTE) *attributes;
};

struct csr_req {
    struct csr_info *info;
    X509_ALGOR *sig_alg;
    ASN1_BIT_STRING *signature;
};

typedef struct csr_spki CSR_SPKI;
typedef struct csr_info CSR_INFO;
typedef struct csr_req CSR_REQ;

ASN1_SEQUENCE(CSR_SPKI) = {
    ASN1_SIMPLE(CSR_SPKI, algor, X509_ALGOR),
    ASN1_SIMPLE(CSR_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_SPKI)

ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
    ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
    ASN1_SIMPLE(CSR_INFO, subject, ASN1_ANY),
    ASN1_SIMPLE(CSR_INFO, spki, CSR_SPKI),
    ASN1_IMP_SET_OF_OPT(CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR_REQ) = {
    ASN1_SIMPLE(CSR_REQ, info, CSR_INFO),
    ASN1_SIMPLE(CSR_REQ, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(CSR_REQ, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_REQ)

/* The P-256 key of spki as an EVP_PKEY (the import puts the point on the
 * curve), or a key-type reason. */
static enum ident_reason spki_p256(const CSR_SPKI *spki, EVP_PKEY **out, char *msg, size_t msglen)
{
    const ASN1_OBJECT *alg = NULL;
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(&alg, &ptype, &pval, spki->algor);
    int nid = OBJ_obj2nid(alg);
    if (nid != NID_X9_62_id_ecPublicKey) {
        char name[80];
        OBJ_obj2txt(name, sizeof name, alg, 0);
        errbuf_set(msg, msglen, "csr key is %s, want ECDSA P-256", name);
        return IDENT_CSR_KEY_TYPE;
    }
    if (ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_X9_62_prime256v1) {
        char name[80] = "explicit parameters";
        if (ptype == V_ASN1_OBJECT)
            OBJ_obj2txt(name, sizeof name, pval, 0);
        errbuf_set(msg, msglen, "csr key is EC on %s, want P-256 (prime256v1)", name);
        return IDENT_CSR_KEY_TYPE;
    }
    const unsigned char *pt = ASN1_STRING_get0_data(spki->key);
    int ptlen = ASN1_STRING_length(spki->key);
    if (ptlen != 65 || pt[0] != 0x04) {
        errbuf_set(msg, msglen, "csr P-256 key must be an uncompressed point");
        return IDENT_CSR_KEY_TYPE;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, (size_t)ptlen),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    int ok = ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
             EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (ok) {
        /* P-256's cofactor is 1: on the curve and not infinity is valid. */
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        ok = ctx && EVP_PKEY_public_check_quick(ctx) == 1;
        EVP_PKEY_CTX_free(ctx);
    }
    if (!ok) {
        EVP_PKEY_free(pkey);
        errbuf_set(msg, msglen, "csr public key is not a valid P-256 point");
        return IDENT_CSR_KEY_TYPE;
    }
    *out = pkey;
    return IDENT_ISSUED;
}

/* The extensions of the extensionRequest attribute (NULL when none). */
static int csr_extensions(const CSR_INFO *info, STACK_OF(X509_EXTENSION) **out)
{
    *out = NULL;
    for (int i = 0; i < sk_X509_ATTRIBUTE_num(info->attributes); i++) {
        X509_ATTRIBUTE *attr = sk_X509_ATTRIBUTE_value(info->attributes, i);
        int nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr));
        if (nid != NID_ext_req && nid != NID_ms_ext_req)
            continue;
        if (*out || X509_ATTRIBUTE_count(attr) != 1)
            return -1;
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(attr, 0);
        if (!t || t->type != V_ASN1_SEQUENCE)
            return -1;
        const unsigned char *p = t->value.sequence->data;
        long n = t->value.sequence->length;
        *out = d2i_X509_EXTENSIONS(NULL, &p, n);
        if (!*out || p != t->value.sequence->data + n)
            return -1;
    }
    return 0;
}

void ident_csr_free(struct ident_csr *csr)
{
    if (!csr)
        return;
    X509_PUBKEY_free(csr->pubkey);
    sk_X509_EXTENSION_pop_free(csr->exts, X509_EXTENSION_free);
    free(csr);
}

enum ident_reason ident_csr_parse(const char *pem, size_t len, struct ident_csr **out, char *msg, size_t msglen)
{
    enum ident_reason r = IDENT_ISSUED;
    BIO *bio = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    CSR_REQ *req = NULL;
    EVP_PKEY *pkey = NULL;
    struct ident_csr *csr = NULL;
    *out = NULL;

    if (len > IDENT_MAX_CSR_PEM) {
        r = IDENT_CSR_NOT_PEM;
        errbuf_set(msg, msglen, "csr is larger than %d bytes", IDENT_MAX_CSR_PEM);
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio || PEM_read_bio(bio, &name, &header, &der, &derlen) != 1) {
        r = IDENT_CSR_NOT_PEM;
        errbuf_set(msg, msglen, "csr is not PEM");
        goto out;
    }
    /* Nothing but whitespace may follow the one block. */
    char *rest = NULL;
    long restlen = BIO_get_mem_data(bio, &rest);
    if (restlen > 0 && !only_space(rest, (size_t)restlen)) {
        r = IDENT_CSR_NOT_PEM;
        errbuf_set(msg, msglen, "csr has data after its PEM block");
        goto out;
    }
    if (strcmp(name, "CERTIFICATE REQUEST") != 0 && strcmp(name, "NEW CERTIFICATE REQUEST") != 0) {
        r = IDENT_NOT_CSR;
        errbuf_set(msg, msglen, "csr PEM block is \"%.40s\", not \"CERTIFICATE REQUEST\"", name);
        goto out;
    }
    if (header && *header) {
        r = IDENT_NOT_CSR;
        errbuf_set(msg, msglen, "csr PEM block has headers");
        goto out;
    }
    const unsigned char *p = der;
    req = (CSR_REQ *)ASN1_item_d2i(NULL, &p, derlen, ASN1_ITEM_rptr(CSR_REQ));
    if (!req || p != der + derlen || ASN1_INTEGER_get(req->info->version) != 0) {
        r = IDENT_NOT_CSR;
        errbuf_set(msg, msglen, "csr is not a PKCS#10 v1 certificate request");
        goto out;
    }
    csr = xcalloc(1, sizeof *csr);
    if (csr_extensions(req->info, &csr->exts) < 0) {
        r = IDENT_NOT_CSR;
        errbuf_set(msg, msglen, "csr extensionRequest attribute does not parse");
        goto out;
    }
    r = spki_p256(req->info->spki, &pkey, msg, msglen);
    if (r != IDENT_ISSUED)
        goto out;
    if (ASN1_item_verify(ASN1_ITEM_rptr(CSR_INFO), req->sig_alg, req->signature, req->info, pkey) != 1) {
        r = IDENT_CSR_BAD_SIGNATURE;
        errbuf_set(msg, msglen, "csr signature does not verify");
        goto out;
    }
    /* Keep the SubjectPublicKeyInfo as received, without decoding it again. */
    const ASN1_OBJECT *alg, *curve;
    int ptype;
    const void *pval;
    X509_ALGOR_get0(&alg, &ptype, &pval, req->info->spki->algor);
    curve = pval;
    unsigned char *bits = OPENSSL_memdup(ASN1_STRING_get0_data(req->info->spki->key),
                                         (size_t)ASN1_STRING_length(req->info->spki->key));
    ASN1_OBJECT *alg_copy = OBJ_dup(alg), *curve_copy = OBJ_dup(curve);
    csr->pubkey = X509_PUBKEY_new();
    if (!bits || !alg_copy || !curve_copy || !csr->pubkey ||
        X509_PUBKEY_set0_param(csr->pubkey, alg_copy, V_ASN1_OBJECT, curve_copy, bits,
                               ASN1_STRING_length(req->info->spki->key)) != 1) {
        OPENSSL_free(bits);
        ASN1_OBJECT_free(alg_copy);
        ASN1_OBJECT_free(curve_copy);
        r = IDENT_NOT_CSR;
        errbuf_set(msg, msglen, "csr public key cannot be copied");
        goto out;
    }
    *out = csr;
    csr = NULL;
out:
    ERR_clear_error();
    ident_csr_free(csr);
    EVP_PKEY_free(pkey);
    ASN1_item_free((ASN1_VALUE *)req, ASN1_ITEM_rptr(CSR_REQ));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return r;
}

enum ident_reason ident_csr_check_identity(const struct ident_csr *csr, const char *spiffe_uri, char *msg,
                                           size_t msglen)
{
    enum ident_reason r = IDENT_ISSUED;
    STACK_OF(X509_EXTENSION) *exts = csr->exts;
    int nsan_ext = 0, nnames = 0, match = 0, other_uri = 0;
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
            continue;
        nsan_ext++;
        GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
        if (!names) {
            r = IDENT_SAN_MISMATCH;
            errbuf_set(msg, msglen, "csr subjectAltName does not parse");
            goto out;
        }
        for (int j = 0; j < sk_GENERAL_NAME_num(names); j++) {
            GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, j);
            nnames++;
            if (gn->type != GEN_URI)
                continue;
            const ASN1_IA5STRING *uri = gn->d.uniformResourceIdentifier;
            size_t ulen = (size_t)ASN1_STRING_length(uri);
            if (ulen == strlen(spiffe_uri) && memcmp(ASN1_STRING_get0_data(uri), spiffe_uri, ulen) == 0)
                match++;
            else
                other_uri++;
        }
        GENERAL_NAMES_free(names);
    }
    if (other_uri || !match) {
        r = IDENT_SAN_MISMATCH;
        errbuf_set(msg, msglen, "csr must name exactly %s as its URI SAN%s", spiffe_uri,
               other_uri ? "; it names another URI" : "; it names none");
    } else if (nnames > 1 || nsan_ext > 1) {
        r = IDENT_SAN_EXTRA;
        errbuf_set(msg, msglen, "csr has %d subjectAltNames; only the URI %s is allowed", nnames, spiffe_uri);
    }
out:
    ERR_clear_error();
    return r;
}
