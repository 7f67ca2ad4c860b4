/* SPDX-License-Identifier: Apache-2.0 */
/* Names and HTTP statuses of the reasons in reason.h. */
#include "reason.h"

static const struct {
    const char *name;
    int status;
} reasons[IDENT_REASON_COUNT] = {
    [IDENT_ISSUED] = {"issued", 200},
    [IDENT_BODY_TOO_LARGE] = {"body_too_large", 413},
    [IDENT_BAD_JSON] = {"bad_json", 400},
    [IDENT_BAD_TTL] = {"bad_ttl", 400},
    [IDENT_CSR_NOT_PEM] = {"csr_not_pem", 400},
    [IDENT_NOT_CSR] = {"not_csr", 400},
    [IDENT_CSR_BAD_SIGNATURE] = {"csr_bad_signature", 400},
    [IDENT_CSR_KEY_TYPE] = {"csr_key_type", 400},
    [IDENT_TOKEN_MISSING] = {"token_missing", 401},
    [IDENT_TOKEN_INVALID] = {"token_invalid", 401},
    [IDENT_TOKEN_EXPIRED] = {"token_expired", 401},
    [IDENT_TOKEN_AUDIENCE] = {"token_audience", 401},
    [IDENT_NOT_SERVICE_ACCOUNT] = {"not_service_account", 403},
    [IDENT_SAN_MISMATCH] = {"san_mismatch", 403},
    [IDENT_SAN_EXTRA] = {"san_extra", 403},
    [IDENT_TOKENREVIEW_UNAVAILABLE] = {"tokenreview_unavailable", 503},
    [IDENT_ISSUER_UNAVAILABLE] = {"issuer_unavailable", 503},
    [IDENT_SIGNING_FAILED] = {"signing_failed", 500},
    [IDENT_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405},
    [IDENT_NOT_FOUND] = {"not_found", 404},
};

const char *ident_reason_name(enum ident_reason r)
{
    return (unsigned)r < IDENT_REASON_COUNT ? reasons[r].name : "unknown";
}

int ident_reason_status(enum ident_reason r)
{
    return (unsigned)r < IDENT_REASON_COUNT ? reasons[r].status : 500;
}
