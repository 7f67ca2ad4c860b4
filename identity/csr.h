/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate signing requests as weft-identity accepts them: one PEM block
 * "CERTIFICATE REQUEST", an ECDSA P-256 key, a valid self-signature, and
 * exactly one subjectAltName, the URI of the caller's SPIFFE ID. Only the
 * public key is taken from a CSR; its subject and other extensions are
 * ignored, never copied. Pure: no I/O, no globals. */
#ifndef WEFT_IDENTITY_CSR_H
#define WEFT_IDENTITY_CSR_H
#include <stddef.h>

#include <openssl/x509.h>

#include "reason.h"

#define IDENT_MAX_CSR_PEM (32 * 1024)

/* Parses pem (len bytes, need not be NUL-terminated) and checks the key type
 * and signature. IDENT_ISSUED with a new X509_REQ in *out, or the reason
 * (IDENT_CSR_NOT_PEM, IDENT_NOT_CSR, IDENT_CSR_KEY_TYPE,
 * IDENT_CSR_BAD_SIGNATURE) with a message for the caller. */
enum ident_reason ident_csr_parse(const char *pem, size_t len, X509_REQ **out, char *msg, size_t msglen);

/* Checks the SANs: IDENT_ISSUED when the only one is URI spiffe_uri;
 * IDENT_SAN_MISMATCH when a URI names something else or there is none;
 * IDENT_SAN_EXTRA when there are others beside it. */
enum ident_reason ident_csr_check_identity(X509_REQ *req, const char *spiffe_uri, char *msg, size_t msglen);

#endif
