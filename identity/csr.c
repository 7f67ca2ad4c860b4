/* SPDX-License-Identifier: Apache-2.0 */
/* CSR parsing and validation; see csr.h. */
#include "csr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static void setmsg(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void setmsg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || !msglen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static int only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)p[i]))
            return 0;
    return 1;
}

enum ident_reason ident_csr_parse(const char *pem, size_t len, X509_REQ **out, char *msg, size_t msglen)
{
    enum ident_reason r = IDENT_ISSUED;
    BIO *bio = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    X509_REQ *req = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    *out = NULL;

    if (len > IDENT_MAX_CSR_PEM) {
        r = IDENT_CSR_NOT_PEM;
        setmsg(msg, msglen, "csr is larger than %d bytes", IDENT_MAX_CSR_PEM);
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio || PEM_read_bio(bio, &name, &header, &der, &derlen) != 1) {
        r = IDENT_CSR_NOT_PEM;
        setmsg(msg, msglen, "csr is not PEM");
        goto out;
    }
    /* Nothing but whitespace may follow the one block. */
    char *rest = NULL;
    long restlen = BIO_get_mem_data(bio, &rest);
    if (restlen > 0 && !only_space(rest, (size_t)restlen)) {
        r = IDENT_CSR_NOT_PEM;
        setmsg(msg, msglen, "csr has data after its PEM block");
        goto out;
    }
    if (strcmp(name, "CERTIFICATE REQUEST") != 0 && strcmp(name, "NEW CERTIFICATE REQUEST") != 0) {
        r = IDENT_NOT_CSR;
        setmsg(msg, msglen, "csr PEM block is \"%.40s\", not \"CERTIFICATE REQUEST\"", name);
        goto out;
    }
    if (header && *header) {
        r = IDENT_NOT_CSR;
        setmsg(msg, msglen, "csr PEM block has headers");
        goto out;
    }
    const unsigned char *p = der;
    req = d2i_X509_REQ(NULL, &p, derlen);
    if (!req || p != der + derlen) {
        r = IDENT_NOT_CSR;
        setmsg(msg, msglen, "csr is not a PKCS#10 certificate request");
        goto out;
    }
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    char group[64] = "";
    size_t glen = 0;
    if (!pub || EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        r = IDENT_CSR_KEY_TYPE;
        setmsg(msg, msglen, "csr key is %s%s%s, want ECDSA P-256", pub ? EVP_PKEY_get0_type_name(pub) : "missing",
               *group ? " " : "", group);
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
    if (!pctx || EVP_PKEY_public_check(pctx) != 1) {
        r = IDENT_CSR_KEY_TYPE;
        setmsg(msg, msglen, "csr public key is not a valid P-256 point");
        goto out;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        r = IDENT_CSR_BAD_SIGNATURE;
        setmsg(msg, msglen, "csr signature does not verify");
        goto out;
    }
    *out = req;
    req = NULL;
out:
    ERR_clear_error();
    EVP_PKEY_CTX_free(pctx);
    X509_REQ_free(req);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return r;
}

enum ident_reason ident_csr_check_identity(X509_REQ *req, const char *spiffe_uri, char *msg, size_t msglen)
{
    enum ident_reason r = IDENT_ISSUED;
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    int nsan_ext = 0, nnames = 0, match = 0, other_uri = 0;
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
            continue;
        nsan_ext++;
        GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
        if (!names) {
            r = IDENT_SAN_MISMATCH;
            setmsg(msg, msglen, "csr subjectAltName does not parse");
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
        setmsg(msg, msglen, "csr must name exactly %s as its URI SAN%s", spiffe_uri,
               other_uri ? "; it names another URI" : "; it names none");
    } else if (nnames > 1 || nsan_ext > 1) {
        r = IDENT_SAN_EXTRA;
        setmsg(msg, msglen, "csr has %d subjectAltNames; only the URI %s is allowed", nnames, spiffe_uri);
    }
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return r;
}
