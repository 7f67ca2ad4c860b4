/* SPDX-License-Identifier: Apache-2.0 */
/* TokenReview request and answer; see review.h. */
#include "errbuf.h"
#include "review.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "k8s.h"

json_t *ident_review_body(const char *token, const char *audience)
{
    /* json_pack's "s" copies the strings; the object owns everything. */
    return json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "apiVersion", "authentication.k8s.io/v1", "kind", "TokenReview",
                     "spec", "token", token, "audiences", audience);
}

enum ident_reason ident_review_result(long status, const json_t *body, const char *audience,
                                      const char *trust_domain, struct spiffe_id *id, char *msg, size_t msglen)
{
    if (status != 200 && status != 201) {
        char text[256];
        k8s_status_message(body, status, text, sizeof text);
        errbuf_set(msg, msglen, "TokenReview failed: %s", text);
        return IDENT_TOKENREVIEW_UNAVAILABLE;
    }
    const char *kind = json_string_value(json_object_get(body, "kind"));
    const json_t *st = json_object_get(body, "status");
    if (!kind || strcmp(kind, "TokenReview") != 0 || !json_is_object(st)) {
        errbuf_set(msg, msglen, "TokenReview failed: the API server's answer is not a TokenReview");
        return IDENT_TOKENREVIEW_UNAVAILABLE;
    }
    if (!json_is_true(json_object_get(st, "authenticated"))) {
        const char *e = json_string_value(json_object_get(st, "error"));
        if (!e)
            e = "";
        /* The authenticators' texts: "... token has expired", "... is expired
         * (exp)", "token audiences [...] is invalid for the target audiences". */
        if (strstr(e, "expired")) {
            errbuf_set(msg, msglen, "token is expired");
            return IDENT_TOKEN_EXPIRED;
        }
        if (strstr(e, "audience")) {
            errbuf_set(msg, msglen, "token is not for audience %s", audience);
            return IDENT_TOKEN_AUDIENCE;
        }
        errbuf_set(msg, msglen, "token is not valid");
        return IDENT_TOKEN_INVALID;
    }
    /* An audience-aware API server says which of our audiences matched. */
    const json_t *auds = json_object_get(st, "audiences");
    int found = 0;
    size_t i;
    const json_t *a;
    json_array_foreach(auds, i, a)
    {
        const char *s = json_string_value(a);
        if (s && strcmp(s, audience) == 0)
            found = 1;
    }
    if (!found) {
        errbuf_set(msg, msglen, "token is not for audience %s", audience);
        return IDENT_TOKEN_AUDIENCE;
    }
    const char *user = json_string_value(json_object_get(json_object_get(st, "user"), "username"));
    if (!user || spiffe_from_k8s_username(user, trust_domain, id) != 0) {
        errbuf_set(msg, msglen, "token is not a service account's");
        return IDENT_NOT_SERVICE_ACCOUNT;
    }
    return IDENT_ISSUED;
}
