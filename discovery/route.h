/* SPDX-License-Identifier: Apache-2.0 */
/* Gateway API v1 HTTPRoute and GRPCRoute, reduced to what a proxy needs when
 * the route's parentRefs name a Service (GAMMA: group "" and kind Service):
 * the Service parents, hostnames, and each rule's matches, filters, backends
 * (weights and ports) and timeouts, with the API's defaults filled in and its
 * limits and rules checked (the CRD's schema and CEL rules, so a route that
 * did not come through the API server is held to the same). Parents that are
 * Gateways are not Weft's and are dropped. Pure: no I/O. */
#ifndef WEFT_DISCOVERY_ROUTE_H
#define WEFT_DISCOVERY_ROUTE_H
#include <jansson.h>
#include <stddef.h>

/* The API's limits (gateway.networking.k8s.io/v1, standard channel). */
#define ROUTE_MAX_PARENTS 32
#define ROUTE_MAX_HOSTNAMES 16
#define ROUTE_MAX_RULES 16
#define ROUTE_MAX_MATCHES 64        /* per rule */
#define ROUTE_MAX_MATCHES_TOTAL 128 /* over all rules of a route */
#define ROUTE_MAX_FILTERS 16
#define ROUTE_MAX_BACKENDS 16
#define ROUTE_MAX_HEADER_MATCHES 16
#define ROUTE_MAX_QUERY_MATCHES 16
#define ROUTE_MAX_PATH 1024
#define ROUTE_MAX_HEADER_NAME 256
#define ROUTE_MAX_HEADER_VALUE 4096
#define ROUTE_MAX_WEIGHT 1000000

enum route_type {
    ROUTE_HTTP,
    ROUTE_GRPC,
};

/* 0 with *out the reduced route (new reference), 0 with *out NULL when no
 * parentRef is a Service, or -EINVAL with the field in err. obj is borrowed. */
int route_reduce(enum route_type type, json_t *obj, json_t **out, char *err, size_t errlen);

#endif
