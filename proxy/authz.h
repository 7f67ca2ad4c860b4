/* SPDX-License-Identifier: Apache-2.0 */
/* Inbound authorization: a pure decision over the caller's verified SPIFFE
 * ID, the pod's namespace, the policy and the WEFT_ALLOW_FROM pairs. No I/O;
 * table-driven unit tests cover every branch. */
#ifndef WEFT_PROXY_AUTHZ_H
#define WEFT_PROXY_AUTHZ_H
#include <stddef.h>

#include "spiffe.h"

#define AUTHZ_MAX_RULES 64

enum authz_policy {
    AUTHZ_SAME_NAMESPACE, /* default: callers of the pod's own namespace */
    AUTHZ_MESH,           /* any identity of the trust domain */
    AUTHZ_DENY,           /* nobody, except WEFT_ALLOW_FROM */
    AUTHZ_ALLOW_ALL,      /* any verified identity */
};

struct authz_rule {
    char ns[SPIFFE_MAX_NAMESPACE + 1];
    char sa[SPIFFE_MAX_SA + 1]; /* "*" means every service account of ns */
};

struct authz {
    enum authz_policy policy;
    char trust_domain[SPIFFE_MAX_TRUST_DOMAIN + 1];
    char ns[SPIFFE_MAX_NAMESPACE + 1]; /* the pod's namespace */
    struct authz_rule rules[AUTHZ_MAX_RULES];
    size_t nrules;
};

struct authz_decision {
    int allowed;
    const char *reason; /* static string: policy or rule that decided */
};

/* "same-namespace" | "mesh" | "deny" | "allow-all"; 0 or -EINVAL. */
int authz_parse_policy(const char *s, enum authz_policy *out);
const char *authz_policy_name(enum authz_policy p);
/* "ns/sa, ns/<any>" (a literal star for any): 0 or -EINVAL with the offending item in err. */
int authz_parse_allow_from(const char *s, struct authz_rule *rules, size_t *count, char *err, size_t errlen);
struct authz_decision authz_check(const struct authz *a, const struct spiffe_id *peer);

#endif
