/* SPDX-License-Identifier: Apache-2.0 */
/* Inbound authorization decisions (pure). Order: a foreign trust domain is
 * always denied; then an explicit WEFT_ALLOW_FROM pair allows; then the
 * policy decides. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "authz.h"
#include "errbuf.h"

int authz_parse_policy(const char *s, enum authz_policy *out)
{
    static const struct {
        const char *name;
        enum authz_policy p;
    } t[] = {{"same-namespace", AUTHZ_SAME_NAMESPACE}, {"mesh", AUTHZ_MESH}, {"deny", AUTHZ_DENY},
             {"allow-all", AUTHZ_ALLOW_ALL}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(s, t[i].name) == 0) {
            *out = t[i].p;
            return 0;
        }
    return -EINVAL;
}

const char *authz_policy_name(enum authz_policy p)
{
    switch (p) {
    case AUTHZ_SAME_NAMESPACE: return "same-namespace";
    case AUTHZ_MESH: return "mesh";
    case AUTHZ_DENY: return "deny";
    case AUTHZ_ALLOW_ALL: return "allow-all";
    }
    return "?";
}

static int authz_parse_item(const char *s, size_t len, struct authz_rule *r)
{
    const char *slash = memchr(s, '/', len);
    if (!slash)
        return -EINVAL;
    size_t nl = (size_t)(slash - s), sl = len - nl - 1;
    if (!spiffe_valid_namespace(s, nl))
        return -EINVAL;
    if (!(sl == 1 && slash[1] == '*') && !spiffe_valid_sa(slash + 1, sl))
        return -EINVAL;
    memcpy(r->ns, s, nl);
    r->ns[nl] = '\0';
    memcpy(r->sa, slash + 1, sl);
    r->sa[sl] = '\0';
    return 0;
}

int authz_parse_allow_from(const char *s, struct authz_rule *rules, size_t *count, char *err, size_t errlen)
{
    *count = 0;
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b || *count >= AUTHZ_MAX_RULES || authz_parse_item(a, (size_t)(b - a), &rules[*count]) < 0) {
            errbuf_set(err, errlen, "%s item \"%.*s\"", *count >= AUTHZ_MAX_RULES ? "too many items at" : "bad",
                     (int)(b - a > 200 ? 200 : b - a), a);
            return -EINVAL;
        }
        (*count)++;
        if (!end)
            break;
        p = end + 1;
        if (!*p) { /* trailing comma: an empty item */
            errbuf_set(err, errlen, "empty item");
            return -EINVAL;
        }
    }
    return 0;
}

struct authz_decision authz_check(const struct authz *a, const struct spiffe_id *peer)
{
    struct authz_decision d = {0, "policy-deny"};
    if (strcmp(peer->trust_domain, a->trust_domain) != 0) {
        d.reason = "foreign-trust-domain";
        return d;
    }
    for (size_t i = 0; i < a->nrules; i++) {
        const struct authz_rule *r = &a->rules[i];
        if (strcmp(r->ns, peer->ns) == 0 && (strcmp(r->sa, "*") == 0 || strcmp(r->sa, peer->sa) == 0)) {
            d.allowed = 1;
            d.reason = "allow-from";
            return d;
        }
    }
    switch (a->policy) {
    case AUTHZ_SAME_NAMESPACE:
        if (strcmp(peer->ns, a->ns) == 0) {
            d.allowed = 1;
            d.reason = "same-namespace";
        } else {
            d.reason = "cross-namespace";
        }
        break;
    case AUTHZ_MESH:
        d.allowed = 1;
        d.reason = "mesh";
        break;
    case AUTHZ_ALLOW_ALL:
        d.allowed = 1;
        d.reason = "allow-all";
        break;
    case AUTHZ_DENY:
        d.reason = "policy-deny";
        break;
    }
    return d;
}
