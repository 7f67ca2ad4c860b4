/* SPDX-License-Identifier: Apache-2.0 */
/* Weft's SPIFFE IDs: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
 * Parsing is strict: a URI that is not exactly this shape is not a Weft
 * identity, whatever else it may be. */
#ifndef WEFT_SPIFFE_H
#define WEFT_SPIFFE_H
#include <stddef.h>

#define SPIFFE_MAX_TRUST_DOMAIN 255
#define SPIFFE_MAX_NAMESPACE 63   /* DNS-1123 label */
#define SPIFFE_MAX_SA 253         /* DNS-1123 subdomain */
#define SPIFFE_MAX_ID 2048        /* SPIFFE's limit on a whole ID */

struct spiffe_id {
    char trust_domain[SPIFFE_MAX_TRUST_DOMAIN + 1];
    char ns[SPIFFE_MAX_NAMESPACE + 1];
    char sa[SPIFFE_MAX_SA + 1];
};

/* 0 or -EINVAL; len is the length of uri (it need not be NUL-terminated). */
int spiffe_parse(const char *uri, size_t len, struct spiffe_id *out);
/* Writes the canonical URI; 0, or -EINVAL when a part is not a valid name,
 * or -ENOSPC when out is too small. */
int spiffe_format(const char *trust_domain, const char *ns, const char *sa, char *out, size_t outlen);
/* "system:serviceaccount:<ns>:<sa>" -> ns and sa (the TokenReview username). */
int spiffe_from_k8s_username(const char *username, const char *trust_domain, struct spiffe_id *out);
/* Kubernetes name rules. */
int spiffe_valid_namespace(const char *s, size_t len);
int spiffe_valid_sa(const char *s, size_t len);
int spiffe_valid_trust_domain(const char *s, size_t len);

#endif
