/* SPDX-License-Identifier: Apache-2.0 */
/* The issuer: an intermediate CA certificate (with any further intermediates
 * after it in the same PEM file) and its private key, loaded from files and
 * replaced whole when they change. Requests hold a reference to the issuer
 * they started with, so a reload never pulls a key out from under a signing.
 *
 * ident_lifetime() is the pure rule for a leaf's validity window. */
#ifndef WEFT_IDENTITY_ISSUER_H
#define WEFT_IDENTITY_ISSUER_H
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define IDENT_DEFAULT_TTL (24 * 3600)
#define IDENT_MAX_TTL (7 * 24 * 3600)
#define IDENT_DEFAULT_BACKDATE 60
#define IDENT_MAX_BACKDATE 600
#define IDENT_MAX_ISSUER_PEM (1024 * 1024)

struct ident_issuer;

/* Loads and checks the issuer: the key matches the first certificate, which
 * is a CA allowed to sign certificates and valid now; with bundle_file, the
 * chain must verify to one of its anchors. The chain sent to clients is every
 * certificate of cert_file that is not self-signed (the trust anchor never
 * travels). 0, or -errno with err naming the file and the problem. */
int ident_issuer_load(const char *cert_file, const char *key_file, const char *bundle_file,
                      struct ident_issuer **out, char *err, size_t errlen);
void ident_issuer_ref(struct ident_issuer *is);
void ident_issuer_unref(struct ident_issuer *is);
time_t ident_issuer_not_after(const struct ident_issuer *is);
/* The chain as PEM certificates (NUL-terminated), first = the issuer. */
size_t ident_issuer_chain_len(const struct ident_issuer *is);
const char *ident_issuer_chain_pem(const struct ident_issuer *is, size_t i);
/* For tests and the fuzzer: an issuer made in memory. Takes references. */
struct ident_issuer *ident_issuer_from(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain);

/* Validity of a leaf issued at now: notBefore = now - backdate (never before
 * the issuer's notBefore), notAfter = now + ttl (never after the issuer's
 * notAfter). 0, or -ERANGE when the issuer is not valid at now or less than a
 * second of the window would remain. */
int ident_lifetime(time_t now, long ttl, long backdate, time_t issuer_nb, time_t issuer_na, time_t *nb,
                   time_t *na);

struct ident_leaf {
    char *pem;            /* the certificate; free() it */
    time_t not_before;
    time_t not_after;
    char serial[41];      /* hex */
};

/* Signs a leaf for pub (the CSR's SubjectPublicKeyInfo, copied as it is) naming spiffe_uri (critical URI SAN, empty subject),
 * KU digitalSignature, EKU serverAuth+clientAuth, CA:FALSE, SKI/AKI. 0 or
 * -errno (-ERANGE: issuer expired) with err. */
int ident_issuer_sign(struct ident_issuer *is, const X509_PUBKEY *pub, const char *spiffe_uri, time_t now, long ttl,
                      long backdate, struct ident_leaf *out, char *err, size_t errlen);
void ident_leaf_free(struct ident_leaf *leaf);

#endif
