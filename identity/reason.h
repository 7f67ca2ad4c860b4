/* SPDX-License-Identifier: Apache-2.0 */
/* Why weft-identity answered what it did: one bounded set of reasons, each
 * with its HTTP status and a stable label for the metrics and the JSON error
 * body. Adding a reason adds a metrics series, nothing else. */
#ifndef WEFT_IDENTITY_REASON_H
#define WEFT_IDENTITY_REASON_H

enum ident_reason {
    IDENT_ISSUED,                  /* 200 */
    IDENT_BODY_TOO_LARGE,          /* 413 body over 64 KiB */
    IDENT_BAD_JSON,                /* 400 not JSON, not an object, no "csr" string */
    IDENT_BAD_TTL,                 /* 400 ttlSeconds not a positive integer */
    IDENT_CSR_NOT_PEM,             /* 400 */
    IDENT_NOT_CSR,                 /* 400 PEM, but not a certificate request */
    IDENT_CSR_BAD_SIGNATURE,       /* 400 */
    IDENT_CSR_KEY_TYPE,            /* 400 not ECDSA P-256 */
    IDENT_TOKEN_MISSING,           /* 401 no "Authorization: Bearer" */
    IDENT_TOKEN_INVALID,           /* 401 */
    IDENT_TOKEN_EXPIRED,           /* 401 */
    IDENT_TOKEN_AUDIENCE,          /* 401 not for audience weft-identity */
    IDENT_NOT_SERVICE_ACCOUNT,     /* 403 authenticated, but not system:serviceaccount:<ns>:<sa> */
    IDENT_SAN_MISMATCH,            /* 403 the CSR names another identity, or none */
    IDENT_SAN_EXTRA,               /* 403 more SANs than the one identity */
    IDENT_TOKENREVIEW_UNAVAILABLE, /* 503 API server unreachable or failing, Retry-After */
    IDENT_ISSUER_UNAVAILABLE,      /* 503 no valid issuer loaded, Retry-After */
    IDENT_SIGNING_FAILED,          /* 500 */
    IDENT_METHOD_NOT_ALLOWED,      /* 405 */
    IDENT_NOT_FOUND,               /* 404 */
    IDENT_REASON_COUNT
};

/* "issued", "body_too_large", ... (label values). */
const char *ident_reason_name(enum ident_reason r);
int ident_reason_status(enum ident_reason r);

#endif
