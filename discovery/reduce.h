/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes objects in, the few fields discovery keeps out ("reduced on
 * receipt"): memory grows with the fields kept, not with the objects the API
 * server sends. Each reducer validates what it keeps and bounds every list
 * and string; an object that does not pass is refused with the field, the
 * value and the limit. Reduced objects are jansson objects (documented in
 * docs/discovery.md#the-store); the store owns them. Pure: no I/O. */
#ifndef WEFT_DISCOVERY_REDUCE_H
#define WEFT_DISCOVERY_REDUCE_H
#include <jansson.h>
#include <stddef.h>

/* Limits of one object; the API's own where it has one. */
#define REDUCE_MAX_NAME 253           /* object names (DNS-1123 subdomain) */
#define REDUCE_MAX_LABEL_KEY 317      /* a qualified name: prefix (253) + '/' + name (63) */
#define REDUCE_MAX_WEFT_ANNOTATIONS 32 /* weft.dev/ annotations kept per object */
#define REDUCE_MAX_ANNOTATION_VALUE 4096
#define REDUCE_MAX_IPS 2              /* a pod's or Service's IPs: one per family */
#define REDUCE_MAX_SERVICE_PORTS 128
#define REDUCE_MAX_SLICE_PORTS 100    /* EndpointSlice API limit */
#define REDUCE_MAX_SLICE_ENDPOINTS 1000 /* EndpointSlice API limit */
#define REDUCE_MAX_SLICE_ADDRESSES 100  /* per endpoint, API limit (only the first is used) */

/* A Service's HTTP timeouts (weft.dev/ annotations, Gateway API durations),
 * kept as "timeouts": {"requestMs", "responseHeaderMs", "idleMs"}. A value
 * that does not parse or is out of range does not refuse the Service: it is
 * left out (the proxy keeps its default) and its message goes into the
 * reduced object's "annotationErrors" list, which the answer carries. */
#define REDUCE_REQUEST_TIMEOUT_ANNOTATION "weft.dev/request-timeout"
#define REDUCE_HEADER_TIMEOUT_ANNOTATION "weft.dev/response-header-timeout"
#define REDUCE_IDLE_TIMEOUT_ANNOTATION "weft.dev/idle-timeout"
#define REDUCE_MAX_TIMEOUT_MS 86400000ULL /* 24h: the proxy's own settings' maximum */

enum reduce_kind {
    REDUCE_SERVICE,
    REDUCE_SLICE,      /* discovery.k8s.io/v1 EndpointSlice */
    REDUCE_POD,
    REDUCE_NAMESPACE,
    REDUCE_HTTPROUTE,  /* gateway.networking.k8s.io/v1 */
    REDUCE_GRPCROUTE,  /* gateway.networking.k8s.io/v1 */
    REDUCE_REFGRANT,   /* gateway.networking.k8s.io/v1beta1 ReferenceGrant (v1 too) */
    REDUCE_KINDS,
};

/* "Service", "EndpointSlice", ... */
const char *reduce_kind_name(enum reduce_kind kind);
/* Which kind obj is, from apiVersion and kind: 0, -ENOTSUP for a kind
 * discovery does not watch, -EINVAL (err) when they are missing. */
int reduce_kind_of(json_t *obj, enum reduce_kind *kind, char *err, size_t errlen);
/* The store key: "<namespace>/<name>", or "<name>" for a Namespace. 0, or
 * -EINVAL (err) when metadata.name or metadata.namespace is missing or not a
 * valid name. */
int reduce_key(json_t *obj, enum reduce_kind kind, char *key, size_t keylen, char *err, size_t errlen);
/* 0 with *out a new reduced object, 0 with *out NULL when the object is of
 * no interest (a pod that has finished, an EndpointSlice of FQDNs or of no
 * Service, a route with no Service parent: the store forgets it), or -EINVAL
 * with the field and value in err. obj is borrowed. */
int reduce_object(enum reduce_kind kind, json_t *obj, json_t **out, char *err, size_t errlen);

/* Field helpers shared with route.c. Each reads key of o (an object, or NULL
 * for "absent"), checks it and writes "<path>.<key>: ..." into err. */
/* A string of 1..max bytes (no NUL inside); *out NULL when absent, or empty,
 * and not required. */
int reduce_string(json_t *o, const char *key, size_t max, int required, const char **out, const char *path,
                  char *err, size_t errlen);
/* An integer in [min, max]; *out = dflt when absent and not required. */
int reduce_int(json_t *o, const char *key, long long min, long long max, int required, long long dflt,
               long long *out, const char *path, char *err, size_t errlen);
/* An array of at most max items (*out NULL when absent). */
int reduce_array(json_t *o, const char *key, size_t max, json_t **out, const char *path, char *err,
                 size_t errlen);
/* A Gateway API Duration (GEP-2257: 1-4 groups of 1-5 digits, each with h,
 * m, s or ms, e.g. "10s", "250ms", "1m30s") in milliseconds: 0 or -EINVAL. */
int reduce_duration_ms(const char *s, unsigned long long *ms);
/* A string that is one of the NULL-terminated options; dflt when absent. */
int reduce_enum(json_t *o, const char *key, const char *const *options, const char *dflt, const char **out,
                const char *path, char *err, size_t errlen);

#endif
