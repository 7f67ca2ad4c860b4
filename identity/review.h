/* SPDX-License-Identifier: Apache-2.0 */
/* TokenReview (authentication.k8s.io/v1): the request body weft-identity
 * sends and the reading of the API server's answer. Pure; the call itself is
 * made through lib/k8s by the server. */
#ifndef WEFT_IDENTITY_REVIEW_H
#define WEFT_IDENTITY_REVIEW_H
#include <jansson.h>
#include <stddef.h>

#include "reason.h"
#include "spiffe.h"

#define IDENT_TOKENREVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"

/* A new TokenReview object asking about token for audience. */
json_t *ident_review_body(const char *token, const char *audience);

/* Reads the answer of the API server (HTTP status and body, body may be
 * NULL). IDENT_ISSUED with *id filled (its trust domain = trust_domain) when
 * the token is authenticated, the answer's status.audiences holds audience and
 * the user is a service account; otherwise IDENT_TOKEN_INVALID,
 * IDENT_TOKEN_EXPIRED, IDENT_TOKEN_AUDIENCE, IDENT_NOT_SERVICE_ACCOUNT, or
 * IDENT_TOKENREVIEW_UNAVAILABLE when the API server did not give a review
 * (5xx, 429, our own credentials refused, not a TokenReview). msg says why. */
enum ident_reason ident_review_result(long status, const json_t *body, const char *audience,
                                      const char *trust_domain, struct spiffe_id *id, char *msg, size_t msglen);

#endif
