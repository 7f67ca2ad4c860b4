/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate signing requests as weft-identity accepts them: one PEM block
 * "CERTIFICATE REQUEST" holding a PKCS#10 v1 request, an ECDSA P-256 key
 * (uncompressed point), a valid self-signature, and exactly one
 * subjectAltName, the URI of the caller's SPIFFE ID. Only the public key is
 * taken from a CSR; its subject and other extensions are ignored, never
 * copied. Pure: no I/O, no globals.
 *
 * The request is decoded with this file's own ASN.1 templates rather than
 * d2i_X509_REQ: OpenSSL 3.0 decodes the public key of an X509_REQ through
 * its provider decoders, which cost more than the whole signature check. */
#ifndef WEFT_IDENTITY_CSR_H
#define WEFT_IDENTITY_CSR_H
#include <stddef.h>

#include <openssl/x509.h>

#include "reason.h"

#define IDENT_MAX_CSR_PEM (32 * 1024)

struct ident_csr {
    X509_PUBKEY *pubkey;                /* the SubjectPublicKeyInfo as sent */
    STACK_OF(X509_EXTENSION) *exts;     /* from the extensionRequest attribute; may be NULL */
};

/* Parses pem (len bytes, need not be NUL-terminated) and checks the key type
 * and signature. IDENT_ISSUED with a new request in *out, or the reason
 * (IDENT_CSR_NOT_PEM, IDENT_NOT_CSR, IDENT_CSR_KEY_TYPE,
 * IDENT_CSR_BAD_SIGNATURE) with a message for the caller. */
enum ident_reason ident_csr_parse(const char *pem, size_t len, struct ident_csr **out, char *msg, size_t msglen);
void ident_csr_free(struct ident_csr *csr);

/* Checks the SANs: IDENT_ISSUED when the only one is URI spiffe_uri;
 * IDENT_SAN_MISMATCH when a URI names something else or there is none;
 * IDENT_SAN_EXTRA when there are others beside it. */
enum ident_reason ident_csr_check_identity(const struct ident_csr *csr, const char *spiffe_uri, char *msg,
                                           size_t msglen);

#endif
