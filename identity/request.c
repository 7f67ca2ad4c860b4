/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate request decision; see request.h. Cheap local checks come
 * first (size, token present, JSON, CSR), so garbage never costs a
 * TokenReview; the identity checks need the review's answer. */
#include "request.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include "csr.h"
#include "metrics.h"
#include "parse.h"
#include "review.h"
#include "xalloc.h"

int ident_parse_bearer(const char *header, const char **token, size_t *len)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return -EINVAL;
    const char *p = header + 7;
    while (*p == ' ')
        p++;
    const char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == p || (size_t)(end - p) > IDENT_MAX_BEARER)
        return -EINVAL;
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -EINVAL;
    *token = p;
    *len = (size_t)(end - p);
    return 0;
}

int ident_parse_duration(const char *s, long *seconds)
{
    char num[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof num)
        return -EINVAL;
    unsigned long mult = 1;
    char last = s[n - 1];
    if (!isdigit((unsigned char)last)) {
        switch (last) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return -EINVAL;
        }
        n--;
    }
    memcpy(num, s, n);
    num[n] = '\0';
    unsigned long v;
    if (parse_uint(num, 0, 100UL * 365 * 86400 / mult, &v) < 0)
        return -EINVAL;
    *seconds = (long)(v * mult);
    return 0;
}

static void rfc3339(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fail(struct ident_response *out, enum ident_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct ident_response *out, enum ident_reason r, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out->message, sizeof out->message, fmt, ap);
        va_end(ap);
    }
    out->reason = r;
    out->status = ident_reason_status(r);
    if (r == IDENT_TOKENREVIEW_UNAVAILABLE)
        out->retry_after = IDENT_RETRY_AFTER_REVIEW;
    else if (r == IDENT_ISSUER_UNAVAILABLE)
        out->retry_after = IDENT_RETRY_AFTER_ISSUER;
    /* json_pack copies; the new object owns its members. */
    json_t *body = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", out->status, "reason", ident_reason_name(r),
                             "message", out->message);
    out->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
}

void ident_handle(const struct ident_config *cfg, ident_review_fn review, void *review_ctx,
                  struct ident_issuer *issuer, time_t now, const struct ident_request *req,
                  struct ident_response *out)
{
    json_t *doc = NULL, *rreq = NULL, *rresp = NULL, *answer = NULL;
    struct ident_csr *csr = NULL;
    char *token = NULL;
    struct ident_leaf leaf = {0};
    memset(out, 0, sizeof *out);

    if (req->too_large || req->len > IDENT_MAX_BODY) {
        fail(out, IDENT_BODY_TOO_LARGE, "request body is larger than %d bytes", IDENT_MAX_BODY);
        goto out;
    }
    const char *tok;
    size_t toklen;
    if (ident_parse_bearer(req->authorization, &tok, &toklen) < 0) {
        fail(out, IDENT_TOKEN_MISSING, "no \"Authorization: Bearer <service account token>\" header");
        goto out;
    }
    json_error_t jerr;
    doc = json_loadb(req->body ? req->body : "", req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fail(out, IDENT_BAD_JSON, "body is not JSON: %s (line %d column %d)", jerr.text, jerr.line, jerr.column);
        goto out;
    }
    json_t *jcsr = json_object_get(doc, "csr");
    if (!json_is_object(doc) || !json_is_string(jcsr)) {
        fail(out, IDENT_BAD_JSON, "body must be a JSON object with a string \"csr\"");
        goto out;
    }
    long ttl = cfg->ttl;
    json_t *jttl = json_object_get(doc, "ttlSeconds");
    if (jttl) {
        json_int_t v = json_is_integer(jttl) ? json_integer_value(jttl) : 0;
        if (v <= 0 || v > IDENT_MAX_TTL) {
            fail(out, IDENT_BAD_TTL, "ttlSeconds must be an integer from 1 to %d", IDENT_MAX_TTL);
            goto out;
        }
        if (v < ttl)
            ttl = (long)v;
    }
    enum ident_reason r =
        ident_csr_parse(json_string_value(jcsr), json_string_length(jcsr), &csr, out->message, sizeof out->message);
    if (r != IDENT_ISSUED) {
        fail(out, r, NULL);
        goto out;
    }

    token = xstrndup(tok, toklen);
    rreq = ident_review_body(token, cfg->audience);
    long status = 0;
    char err[512];
    uint64_t t0 = metrics_now_ns();
    int rc = review(review_ctx, rreq, &status, &rresp, err, sizeof err);
    out->review_ns = metrics_now_ns() - t0;
    if (rc < 0) {
        fail(out, IDENT_TOKENREVIEW_UNAVAILABLE, "TokenReview unavailable: %s", err);
        goto out;
    }
    struct spiffe_id id;
    r = ident_review_result(status, rresp, cfg->audience, cfg->trust_domain, &id, out->message, sizeof out->message);
    if (r != IDENT_ISSUED) {
        fail(out, r, NULL);
        goto out;
    }
    if (spiffe_format(id.trust_domain, id.ns, id.sa, out->spiffe_id, sizeof out->spiffe_id) < 0) {
        fail(out, IDENT_NOT_SERVICE_ACCOUNT, "token's service account is not a valid SPIFFE identity");
        goto out;
    }
    r = ident_csr_check_identity(csr, out->spiffe_id, out->message, sizeof out->message);
    if (r != IDENT_ISSUED) {
        fail(out, r, NULL);
        goto out;
    }
    if (!issuer) {
        fail(out, IDENT_ISSUER_UNAVAILABLE, "no valid issuer is loaded");
        goto out;
    }
    t0 = metrics_now_ns();
    rc = ident_issuer_sign(issuer, csr->pubkey, out->spiffe_id, now, ttl, cfg->backdate, &leaf, err,
                           sizeof err);
    out->sign_ns = metrics_now_ns() - t0;
    if (rc < 0) {
        fail(out, rc == -ERANGE ? IDENT_ISSUER_UNAVAILABLE : IDENT_SIGNING_FAILED, "cannot issue: %s", err);
        goto out;
    }
    char nb[32], na[32];
    rfc3339(leaf.not_before, nb, sizeof nb);
    rfc3339(leaf.not_after, na, sizeof na);
    json_t *chain = json_array();
    for (size_t i = 0; i < ident_issuer_chain_len(issuer); i++)
        json_array_append_new(chain, json_string(ident_issuer_chain_pem(issuer, i)));
    /* "o" steals chain. */
    answer = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "spiffeId", out->spiffe_id, "certificate", leaf.pem,
                       "chain", chain, "notBefore", nb, "notAfter", na, "serialNumber", leaf.serial);
    out->body = json_dumps(answer, JSON_COMPACT);
    out->status = 200;
    out->reason = IDENT_ISSUED;
    snprintf(out->message, sizeof out->message, "issued, serial %s, expires %s", leaf.serial, na);
out:
    if (token) {
        explicit_bzero(token, toklen);
        free(token);
    }
    /* The review request and answer hold the token too. */
    json_decref(rreq);
    json_decref(rresp);
    json_decref(doc);
    json_decref(answer);
    ident_csr_free(csr);
    ident_leaf_free(&leaf);
}

void ident_response_free(struct ident_response *out)
{
    free(out->body);
    out->body = NULL;
}
