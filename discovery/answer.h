/* SPDX-License-Identifier: Apache-2.0 */
/* What discovery tells a proxy, as pure functions over the store: where a
 * destination address leads (a Service with its endpoints and routes, a
 * meshed pod, or unknown: outside the mesh, plain TCP), the inbound policy in
 * force for a proxy's own pod (merged exactly as weft-webhook merges it, with
 * lib/settings), and whether a caller may ask for that policy at all. Answers
 * are JSON of the versioned format in docs/discovery.md. */
#ifndef WEFT_DISCOVERY_ANSWER_H
#define WEFT_DISCOVERY_ANSWER_H
#include <jansson.h>
#include <stddef.h>

#include "addr.h"
#include "store.h"

#define ANSWER_FORMAT_VERSION 1

/* The answer for dest (a new object, never NULL). */
json_t *answer_destination(const struct store *s, const char *trust_domain, const struct addr_dest *dest);
/* The inbound policy of pod ns/name: 0 with *out the answer, or -ENOENT (the
 * pod or its namespace is not known) or -EINVAL (an annotation does not
 * parse) with *out an answer of kind "error" that says why. mesh_values is
 * settings_from_mesh()'s (the mesh defaults). */
int answer_pod_policy(const struct store *s, json_t *mesh_values, const char *trust_domain, const char *ns,
                      const char *name, json_t **out);
/* Whether the caller, whose verified certificate names caller_id and whose
 * connection comes from caller_ip, may learn the inbound policy of pod
 * ns/name: only its own pod (same trust domain, namespace and service
 * account, and caller_ip is one of the pod's IPs). 0, or -EACCES with why. */
int answer_authorize_policy(const struct store *s, const char *trust_domain, const char *caller_id,
                            const char *caller_ip, const char *ns, const char *name, char *err, size_t errlen);

#endif
