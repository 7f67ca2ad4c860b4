/* SPDX-License-Identifier: Apache-2.0 */
/* Gateway API ReferenceGrants (gateway.networking.k8s.io v1beta1, the
 * standard channel's stored version; v1 has the same schema), reduced to what
 * a route's cross-namespace backendRef needs: a grant in the backend's
 * namespace that trusts HTTPRoutes or GRPCRoutes of the route's namespace
 * (from) to reference Services (to), all of them or one by name. Entries of
 * other kinds (Gateways, Secrets, other groups) are checked as the CRD's
 * schema checks them, then dropped; a grant left with no usable from or to
 * is forgotten, as a route with no Service parent is. Pure: no I/O. */
#ifndef WEFT_DISCOVERY_GRANT_H
#define WEFT_DISCOVERY_GRANT_H
#include <jansson.h>
#include <stddef.h>

#define GRANT_MAX_FROM 16 /* the CRD's maxItems */
#define GRANT_MAX_TO 16

/* 0 with *out the reduced grant (new reference): {namespace, name,
 * from: [{kind, namespace}], to: [{name?}]}; 0 with *out NULL when no entry
 * concerns routes and Services; -EINVAL with the field in err. obj borrowed. */
int grant_reduce(json_t *obj, json_t **out, char *err, size_t errlen);

/* Whether the reduced grant (borrowed, of the backend's namespace) lets a
 * route of route_kind ("HTTPRoute", "GRPCRoute") in route_ns reference the
 * Service named service. */
int grant_permits(json_t *grant, const char *route_kind, const char *route_ns, const char *service);

#endif
