/* SPDX-License-Identifier: Apache-2.0 */
/* Pure SPIFFE ID parsing and formatting shared by the proxy (authorization)
 * and the identity service (CSR checks). */
#include "spiffe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int spiffe_valid_namespace(const char *s, size_t len)
{
    if (len == 0 || len > SPIFFE_MAX_NAMESPACE)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return 0;
    return is_lower_alnum(s[0]) && is_lower_alnum(s[len - 1]);
}

int spiffe_valid_sa(const char *s, size_t len)
{
    if (len == 0 || len > SPIFFE_MAX_SA)
        return 0;
    /* A DNS-1123 subdomain: dot-separated labels. */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!spiffe_valid_namespace(s + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

int spiffe_valid_trust_domain(const char *s, size_t len)
{
    if (len == 0 || len > SPIFFE_MAX_TRUST_DOMAIN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return 0;
    return 1;
}

/* Copies the segment [s, s+len) into out after checking it with valid(). */
static int take(const char *s, size_t len, int (*valid)(const char *, size_t), char *out, size_t outlen)
{
    if (!valid(s, len) || len >= outlen)
        return -EINVAL;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int spiffe_parse(const char *uri, size_t len, struct spiffe_id *out)
{
    static const char scheme[] = "spiffe://";
    const size_t slen = sizeof scheme - 1;
    if (len > SPIFFE_MAX_ID || len <= slen || memcmp(uri, scheme, slen) != 0)
        return -EINVAL;
    const char *p = uri + slen, *end = uri + len;
    const char *td_end = memchr(p, '/', (size_t)(end - p));
    if (!td_end || take(p, (size_t)(td_end - p), spiffe_valid_trust_domain, out->trust_domain,
                        sizeof out->trust_domain) < 0)
        return -EINVAL;
    p = td_end;
    if ((size_t)(end - p) < 4 || memcmp(p, "/ns/", 4) != 0)
        return -EINVAL;
    p += 4;
    const char *ns_end = memchr(p, '/', (size_t)(end - p));
    if (!ns_end || take(p, (size_t)(ns_end - p), spiffe_valid_namespace, out->ns, sizeof out->ns) < 0)
        return -EINVAL;
    p = ns_end;
    if ((size_t)(end - p) < 4 || memcmp(p, "/sa/", 4) != 0)
        return -EINVAL;
    p += 4;
    return take(p, (size_t)(end - p), spiffe_valid_sa, out->sa, sizeof out->sa);
}

int spiffe_format(const char *trust_domain, const char *ns, const char *sa, char *out, size_t outlen)
{
    if (!spiffe_valid_trust_domain(trust_domain, strlen(trust_domain)) ||
        !spiffe_valid_namespace(ns, strlen(ns)) || !spiffe_valid_sa(sa, strlen(sa)))
        return -EINVAL;
    int n = snprintf(out, outlen, "spiffe://%s/ns/%s/sa/%s", trust_domain, ns, sa);
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

int spiffe_from_k8s_username(const char *username, const char *trust_domain, struct spiffe_id *out)
{
    static const char prefix[] = "system:serviceaccount:";
    const size_t plen = sizeof prefix - 1;
    if (strncmp(username, prefix, plen) != 0)
        return -EINVAL;
    const char *ns = username + plen;
    const char *colon = strchr(ns, ':');
    if (!colon)
        return -EINVAL;
    if (take(ns, (size_t)(colon - ns), spiffe_valid_namespace, out->ns, sizeof out->ns) < 0 ||
        take(colon + 1, strlen(colon + 1), spiffe_valid_sa, out->sa, sizeof out->sa) < 0 ||
        take(trust_domain, strlen(trust_domain), spiffe_valid_trust_domain, out->trust_domain,
             sizeof out->trust_domain) < 0)
        return -EINVAL;
    return 0;
}
