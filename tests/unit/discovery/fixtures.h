/* SPDX-License-Identifier: Apache-2.0 */
/* Builders of the Kubernetes objects the discovery unit tests feed the store,
 * and checks that an object is taken or refused with a given message. Each
 * builder returns a new reference. */
#ifndef WEFT_TEST_DISCOVERY_FIXTURES_H
#define WEFT_TEST_DISCOVERY_FIXTURES_H
#include <stdio.h>
#include <string.h>

#include "store.h"

static inline json_t *service(const char *ns, const char *name, const char *ip)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:i, s:i}]}}", "apiVersion", "v1", "kind", "Service",
                     "metadata", "namespace", ns, "name", name, "spec", "clusterIP", ip, "ports", "name", "http",
                     "port", 80, "targetPort", 8080);
}

static inline json_t *pod(const char *ns, const char *name, const char *sa, const char *ip, int meshed)
{
    json_t *p = json_pack("{s:s, s:s, s:{s:s, s:s, s:{}}, s:{s:s, s:s}, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                          "Pod", "metadata", "namespace", ns, "name", name, "annotations", "spec",
                          "serviceAccountName", sa, "nodeName", "node-a", "status", "phase", "Running", "podIP", ip);
    if (meshed)
        json_object_set_new(json_object_get(json_object_get(p, "metadata"), "annotations"), "weft.dev/status",
                            json_string("{}"));
    return p;
}

static inline json_t *namespace_obj(const char *name)
{
    return json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", name);
}

/* An EndpointSlice of Service svc with one port "http" 8080 and no endpoints. */
static inline json_t *slice(const char *ns, const char *name, const char *svc)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:s, s:i}], s:[]}", "apiVersion",
                     "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata", "namespace", ns, "name", name,
                     "labels", "kubernetes.io/service-name", svc, "addressType", "IPv4", "ports", "name", "http",
                     "port", 8080, "endpoints");
}

static inline json_t *endpoint(const char *ip, const char *pod_name)
{
    json_t *e = json_pack("{s:[s], s:{s:b}}", "addresses", ip, "conditions", "ready", 1);
    if (pod_name)
        json_object_set_new(e, "targetRef", json_pack("{s:s, s:s}", "kind", "Pod", "name", pod_name));
    return e;
}

/* An HTTPRoute of Service parent (in ns) with one rule sending to backend:80. */
static inline json_t *http_route(const char *ns, const char *name, const char *parent, const char *backend)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:s, s:s}], s:[{s:[{s:s, s:i}]}]}}", "apiVersion",
                     "gateway.networking.k8s.io/v1", "kind", "HTTPRoute", "metadata", "namespace", ns, "name", name,
                     "spec", "parentRefs", "group", "", "kind", "Service", "name", parent, "rules", "backendRefs",
                     "name", backend, "port", 80);
}

/* Applies obj (stolen) as ADDED and expects rc; with a message, err must contain it. */
static inline void expect_apply(struct store *s, json_t *obj, int rc, const char *needle, const char *what)
{
    char err[1024] = "";
    int got = store_apply(s, STORE_ADDED, obj, err, sizeof err);
    json_decref(obj);
    if (got != rc || (needle && !strstr(err, needle)))
        fail_msg("%s: rc %d (want %d), err \"%s\" (want \"%s\")", what, got, rc, err, needle ? needle : "");
}
#define TAKEN(s, obj) expect_apply((s), (obj), 0, NULL, #obj)
#define REFUSED(s, obj, needle) expect_apply((s), (obj), -EINVAL, (needle), #obj)

/* A string of n copies of c (static buffer, one at a time). */
static inline const char *repeat(char c, size_t n)
{
    static char b[8192];
    if (n >= sizeof b)
        n = sizeof b - 1;
    memset(b, c, n);
    b[n] = '\0';
    return b;
}

#endif
