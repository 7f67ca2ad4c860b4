/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/certificates, independent of the HTTP server: from the
 * Authorization header and the body to a status code and a JSON answer.
 * The TokenReview call and the clock come in from the caller, so the unit
 * tests and the fuzzer drive the whole decision without a network.
 *
 * Request:  {"csr": "<PEM CERTIFICATE REQUEST>", "ttlSeconds": 3600}  (ttlSeconds optional)
 * Answer:   {"spiffeId", "certificate" (PEM), "chain" ([PEM...], issuer first,
 *            trust anchor excluded), "notBefore", "notAfter" (RFC 3339),
 *            "serialNumber" (hex)}
 * Error:    {"error": {"code": 403, "reason": "san_mismatch", "message": "..."}} */
#ifndef WEFT_IDENTITY_REQUEST_H
#define WEFT_IDENTITY_REQUEST_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "issuer.h"
#include "reason.h"
#include "spiffe.h"

#define IDENT_MAX_BODY (64 * 1024)
#define IDENT_MAX_BEARER (16 * 1024)
#define IDENT_RETRY_AFTER_REVIEW 5  /* seconds, on 503 from TokenReview */
#define IDENT_RETRY_AFTER_ISSUER 30 /* seconds, on 503 without an issuer */

struct ident_config {
    const char *trust_domain;
    const char *audience;     /* the token's audience, "weft-identity" */
    long ttl;                 /* seconds: the lifetime given, and the most a request may ask */
    long backdate;            /* seconds of clock-skew allowance before now */
};

/* The TokenReview call: sends request (borrowed), fills *status and *body
 * (new reference or NULL) like k8s_request. 0, or -errno when the API server
 * could not be reached. */
typedef int (*ident_review_fn)(void *ctx, json_t *request, long *status, json_t **body, char *err,
                               size_t errlen);

struct ident_request {
    const char *authorization; /* the header's value, or NULL */
    const char *body;
    size_t len;
    int too_large;             /* the body was cut at IDENT_MAX_BODY */
};

struct ident_response {
    int status;
    enum ident_reason reason;
    char *body;                /* JSON text; free() it */
    int retry_after;           /* seconds for a Retry-After header, 0 for none */
    uint64_t review_ns;        /* time in the TokenReview call */
    uint64_t sign_ns;          /* time to build and sign the certificate */
    char spiffe_id[SPIFFE_MAX_ID]; /* the caller's identity once known, for logs */
    char message[512];         /* also in the body; never holds token or key bytes */
};

/* issuer may be NULL (none loaded: 503). */
void ident_handle(const struct ident_config *cfg, ident_review_fn review, void *review_ctx,
                  struct ident_issuer *issuer, time_t now, const struct ident_request *req,
                  struct ident_response *out);
void ident_response_free(struct ident_response *out);

/* "Bearer <token>" (scheme case-insensitive): 0 and the token's start and
 * length, or -EINVAL. */
int ident_parse_bearer(const char *header, const char **token, size_t *len);

/* Durations for flags: "90", "90s", "30m", "24h", "7d". 0 or -EINVAL. */
int ident_parse_duration(const char *s, long *seconds);

#endif
