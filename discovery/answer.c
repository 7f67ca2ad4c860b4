/* SPDX-License-Identifier: Apache-2.0 */
/* Destination, policy and authorization answers; see answer.h. Lookups go
 * through the store's indexes and store_get only, never a table of their
 * own: the server records those reads to know which answers a change
 * touches (store.h). Ties are broken by key, so an answer never depends on
 * the order events arrived in. */
#include "answer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "grant.h"
#include "settings.h"
#include "spiffe.h"
#include "xalloc.h"

static int has_string(json_t *array, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    return 0;
}

static int has_port(json_t *array, long long port)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (json_integer_value(v) == port)
            return 1;
    return 0;
}

static json_t *answer_new(const char *kind, const struct addr_dest *dest)
{
    json_t *a = json_pack("{s:i, s:s}", "version", ANSWER_FORMAT_VERSION, "kind", kind);
    if (dest) {
        char text[ADDR_MAX_DEST];
        snprintf(text, sizeof text, dest->family == AF_INET6 ? "[%s]:%u" : "%s:%u", dest->ip, dest->port);
        json_object_set_new(a, "destination", json_string(text));
    }
    return a;
}

static json_t *unknown(const struct addr_dest *dest, const char *reason)
{
    json_t *a = answer_new("unknown", dest);
    json_object_set_new(a, "reason", json_string(reason));
    return a;
}

/* The pod (borrowed) with ip among its own IPs, not host-network; ties by key. */
static json_t *pod_by_ip(const struct store *s, const char *ip, const char **key_out)
{
    const char *key, *best_key = NULL;
    json_t *pod, *best = NULL, *v;
    json_object_foreach(store_index(s, STORE_INDEX_POD_IP, ip), key, v) {
        pod = store_get(s, REDUCE_POD, key);
        if (!pod || json_is_true(json_object_get(pod, "hostNetwork")) || !has_string(json_object_get(pod, "ips"), ip))
            continue;
        if (!best || strcmp(key, best_key) < 0)
            best = pod, best_key = key;
    }
    if (key_out)
        *key_out = best_key;
    return best;
}

static char *identity_of(const char *trust_domain, json_t *pod)
{
    char id[SPIFFE_MAX_ID];
    if (spiffe_format(trust_domain, json_string_value(json_object_get(pod, "namespace")),
                      json_string_value(json_object_get(pod, "serviceAccount")), id, sizeof id) < 0)
        return NULL;
    return xstrdup(id);
}

/* ---- endpoints ---- */

static int endpoint_order(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = addr_compare(json_string_value(json_object_get(x, "address")), json_string_value(json_object_get(y, "address")));
    if (c)
        return c;
    json_int_t px = json_integer_value(json_object_get(x, "port")), py = json_integer_value(json_object_get(y, "port"));
    return px < py ? -1 : px > py;
}

/* Sorts an array of objects with cmp, in place. */
static void sort_array(json_t *array, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(array);
    if (n < 2)
        return;
    json_t **items = xmalloc(n * sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(array, i));
    qsort(items, n, sizeof *items, cmp);
    json_array_clear(array);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(array, items[i]); /* steals the reference taken above */
    free(items);
}

/* The endpoints of Service port svc_port (reduced Service port), from every
 * EndpointSlice of the Service in the destination's address family. */
static json_t *endpoints(const struct store *s, const char *trust_domain, json_t *svc, json_t *svc_port, int family)
{
    const char *ns = json_string_value(json_object_get(svc, "namespace"));
    const char *name = json_string_value(json_object_get(svc, "name"));
    const char *port_name = json_string_value(json_object_get(svc_port, "name"));
    const char *protocol = json_string_value(json_object_get(svc_port, "protocol"));
    const char *want_type = family == AF_INET ? "IPv4" : "IPv6";
    json_t *out = json_array(), *slice, *p, *e, *v;
    const char *key;
    size_t i;
    char by[SPIFFE_MAX_NAMESPACE + REDUCE_MAX_NAME + 2];
    snprintf(by, sizeof by, "%s/%s", ns, name);
    json_object_foreach(store_index(s, STORE_INDEX_SLICE_SERVICE, by), key, v) {
        if (!(slice = store_get(s, REDUCE_SLICE, key)))
            continue;
        if (strcmp(json_string_value(json_object_get(slice, "namespace")), ns) != 0 ||
            strcmp(json_string_value(json_object_get(slice, "service")), name) != 0 ||
            strcmp(json_string_value(json_object_get(slice, "addressType")), want_type) != 0)
            continue;
        /* Slices name their ports after the Service's. */
        json_int_t port = 0;
        json_array_foreach(json_object_get(slice, "ports"), i, p) {
            if (strcmp(json_string_value(json_object_get(p, "name")), port_name) == 0 &&
                strcmp(json_string_value(json_object_get(p, "protocol")), protocol) == 0)
                port = json_integer_value(json_object_get(p, "port"));
        }
        if (!port)
            continue;
        json_array_foreach(json_object_get(slice, "endpoints"), i, e) {
            const char *addr = json_string_value(json_object_get(e, "address"));
            const char *pod_key = json_string_value(json_object_get(e, "pod"));
            json_t *pod = pod_key ? store_get(s, REDUCE_POD, pod_key) : pod_by_ip(s, addr, &pod_key);
            int meshed = pod && json_is_true(json_object_get(pod, "meshed"));
            int duplicate = 0;
            size_t j;
            json_t *seen;
            json_array_foreach(out, j, seen) /* the same endpoint in two slices, while they change */
                if (strcmp(json_string_value(json_object_get(seen, "address")), addr) == 0 &&
                    json_integer_value(json_object_get(seen, "port")) == port)
                    duplicate = 1;
            if (duplicate)
                continue;
            /* Opaque by the pod's own weft.dev/opaque-ports (the Service's is the answer's "opaque"). */
            int opaque = pod && has_port(json_object_get(pod, "opaquePorts"), port);
            json_t *ep = json_pack("{s:s, s:I, s:O, s:O, s:O, s:b, s:b}", "address", addr, "port", port, "ready",
                                   json_object_get(e, "ready"), "serving", json_object_get(e, "serving"),
                                   "terminating", json_object_get(e, "terminating"), "meshed", meshed, "opaque",
                                   opaque);
            if (meshed) {
                char *id = identity_of(trust_domain, pod);
                if (id)
                    json_object_set_new(ep, "identity", json_string(id));
                free(id);
            }
            if (pod_key)
                json_object_set_new(ep, "pod", json_string(pod_key));
            if (json_object_get(e, "node"))
                json_object_set(ep, "node", json_object_get(e, "node"));
            if (json_object_get(e, "zone"))
                json_object_set(ep, "zone", json_object_get(e, "zone"));
            json_array_append_new(out, ep);
        }
    }
    sort_array(out, endpoint_order);
    return out;
}

/* ---- routes ---- */

static int route_order(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *cx = json_string_value(json_object_get(x, "created"));
    const char *cy = json_string_value(json_object_get(y, "created"));
    /* The Gateway API's precedence: the oldest route first, then by
     * "<namespace>/<name>". RFC 3339 UTC times order as text. */
    if (cx && cy && strcmp(cx, cy) != 0)
        return strcmp(cx, cy);
    if (!cx != !cy)
        return cx ? -1 : 1;
    int c = strcmp(json_string_value(json_object_get(x, "namespace")), json_string_value(json_object_get(y, "namespace")));
    return c ? c : strcmp(json_string_value(json_object_get(x, "name")), json_string_value(json_object_get(y, "name")));
}

/* Whether a ReferenceGrant in ns lets a route of kind in route_ns reference
 * Service ns/service: the Gateway API's rule for a cross-namespace backendRef. */
static int granted(const struct store *s, const char *ns, enum reduce_kind kind, const char *route_ns,
                   const char *service)
{
    const char *key;
    json_t *v, *grant;
    json_object_foreach(store_index(s, STORE_INDEX_GRANT_NAMESPACE, ns), key, v) {
        if ((grant = store_get(s, REDUCE_REFGRANT, key)) &&
            grant_permits(grant, reduce_kind_name(kind), route_ns, service))
            return 1;
    }
    return 0;
}

/* Marks each backend resolved or why not, and gives a resolved one's address. */
static void resolve_backends(const struct store *s, json_t *route, enum reduce_kind kind, int family)
{
    const char *route_ns = json_string_value(json_object_get(route, "namespace"));
    size_t i, j, k;
    json_t *rule, *b, *p, *ip;
    json_array_foreach(json_object_get(route, "rules"), i, rule) {
        json_array_foreach(json_object_get(rule, "backends"), j, b) {
            const char *ns = json_string_value(json_object_get(b, "namespace"));
            const char *reason = NULL;
            json_t *svc = NULL;
            if (json_string_length(json_object_get(b, "group")) || strcmp(json_string_value(json_object_get(b, "kind")), "Service"))
                reason = "InvalidKind";
            else if (strcmp(ns, route_ns) != 0 &&
                     !granted(s, ns, kind, route_ns, json_string_value(json_object_get(b, "name"))))
                reason = "RefNotPermitted";
            else {
                char key[SPIFFE_MAX_NAMESPACE + REDUCE_MAX_NAME + 2];
                snprintf(key, sizeof key, "%s/%s", ns, json_string_value(json_object_get(b, "name")));
                svc = store_get(s, REDUCE_SERVICE, key);
                int found = 0;
                json_array_foreach(svc ? json_object_get(svc, "ports") : NULL, k, p)
                    if (json_integer_value(json_object_get(p, "port")) == json_integer_value(json_object_get(b, "port")))
                        found = 1;
                if (!found)
                    reason = "BackendNotFound";
            }
            json_object_set_new(b, "resolved", json_boolean(!reason));
            if (reason) {
                json_object_set_new(b, "reason", json_string(reason));
                continue;
            }
            json_array_foreach(json_object_get(svc, "clusterIPs"), k, ip) {
                if (addr_family(json_string_value(ip)) != family)
                    continue;
                char text[ADDR_MAX_DEST];
                snprintf(text, sizeof text, family == AF_INET6 ? "[%s]:%lld" : "%s:%lld", json_string_value(ip),
                         (long long)json_integer_value(json_object_get(b, "port")));
                json_object_set_new(b, "destination", json_string(text));
                break;
            }
        }
    }
}

/* The routes of kind whose parents include the Service on port (copies). */
static json_t *routes(const struct store *s, enum reduce_kind kind, json_t *svc, long long port, int family)
{
    const char *ns = json_string_value(json_object_get(svc, "namespace"));
    const char *name = json_string_value(json_object_get(svc, "name"));
    json_t *out = json_array(), *route, *parent, *v;
    const char *key;
    size_t i;
    char by[SPIFFE_MAX_NAMESPACE + REDUCE_MAX_NAME + 2];
    snprintf(by, sizeof by, "%s/%s", ns, name);
    enum store_index index = kind == REDUCE_HTTPROUTE ? STORE_INDEX_HTTPROUTE_PARENT : STORE_INDEX_GRPCROUTE_PARENT;
    json_object_foreach(store_index(s, index, by), key, v) {
        int attached = 0;
        if (!(route = store_get(s, kind, key)))
            continue;
        json_array_foreach(json_object_get(route, "parents"), i, parent) {
            json_int_t pp = json_integer_value(json_object_get(parent, "port"));
            if (strcmp(json_string_value(json_object_get(parent, "namespace")), ns) == 0 &&
                strcmp(json_string_value(json_object_get(parent, "name")), name) == 0 && (pp == 0 || pp == port))
                attached = 1;
        }
        if (!attached)
            continue;
        json_t *r = json_deep_copy(route);
        json_object_del(r, "parents");
        resolve_backends(s, r, kind, family);
        json_array_append_new(out, r);
    }
    sort_array(out, route_order);
    for (i = 0; i < json_array_size(out); i++) /* ordering done: the proxy needs no timestamps */
        json_object_del(json_array_get(out, i), "created");
    return out;
}

/* ---- destinations ---- */

static json_t *service_answer(const struct store *s, const char *trust_domain, const struct addr_dest *dest,
                              json_t *svc)
{
    json_t *p, *port = NULL;
    size_t i;
    json_array_foreach(json_object_get(svc, "ports"), i, p) {
        if (json_integer_value(json_object_get(p, "port")) == dest->port &&
            strcmp(json_string_value(json_object_get(p, "protocol")), "TCP") == 0)
            port = p;
    }
    if (!port)
        return unknown(dest, "no-such-port");
    json_t *a = answer_new("service", dest);
    json_t *out = json_pack("{s:O, s:O, s:O, s:b}", "namespace", json_object_get(svc, "namespace"), "name",
                            json_object_get(svc, "name"), "port", port, "opaque",
                            has_port(json_object_get(svc, "opaquePorts"), dest->port));
    /* The Service's annotations, for every port: only the well-formed
     * timeouts; the bad ones are named so an operator sees why a default
     * applies (fields added within version 1: older proxies ignore them). */
    if (json_object_get(svc, "timeouts"))
        json_object_set(out, "timeouts", json_object_get(svc, "timeouts"));
    if (json_object_get(svc, "annotationErrors"))
        json_object_set(out, "annotationErrors", json_object_get(svc, "annotationErrors"));
    json_object_set_new(out, "endpoints", endpoints(s, trust_domain, svc, port, dest->family));
    json_object_set_new(out, "httpRoutes", routes(s, REDUCE_HTTPROUTE, svc, dest->port, dest->family));
    json_object_set_new(out, "grpcRoutes", routes(s, REDUCE_GRPCROUTE, svc, dest->port, dest->family));
    json_object_set_new(a, "service", out);
    return a;
}

json_t *answer_destination(const struct store *s, const char *trust_domain, const struct addr_dest *dest)
{
    const char *key, *best_key = NULL;
    json_t *svc, *best = NULL, *v;
    json_object_foreach(store_index(s, STORE_INDEX_SERVICE_IP, dest->ip), key, v) {
        if (!(svc = store_get(s, REDUCE_SERVICE, key)))
            continue;
        if (has_string(json_object_get(svc, "clusterIPs"), dest->ip) && (!best || strcmp(key, best_key) < 0))
            best = svc, best_key = key;
    }
    if (best)
        return service_answer(s, trust_domain, dest, best);
    json_t *pod = pod_by_ip(s, dest->ip, NULL);
    if (!pod)
        return unknown(dest, "not-found");
    if (!json_is_true(json_object_get(pod, "meshed")))
        return unknown(dest, "not-meshed");
    json_t *a = answer_new("pod", dest);
    char *id = identity_of(trust_domain, pod);
    json_t *out = json_pack("{s:O, s:O, s:O, s:s?, s:b}", "namespace", json_object_get(pod, "namespace"), "name",
                            json_object_get(pod, "name"), "serviceAccount", json_object_get(pod, "serviceAccount"),
                            "identity", id, "opaque", has_port(json_object_get(pod, "opaquePorts"), dest->port));
    free(id);
    if (json_object_get(pod, "node"))
        json_object_set(out, "node", json_object_get(pod, "node"));
    json_object_set_new(a, "pod", out);
    return a;
}

/* ---- policy ---- */

static json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_answer(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *a = answer_new("error", NULL);
    json_object_set_new(a, "error", json_string(msg));
    return a;
}

int answer_pod_policy(const struct store *s, json_t *mesh_values, const char *trust_domain, const char *ns,
                      const char *name, json_t **out)
{
    char key[SPIFFE_MAX_NAMESPACE + REDUCE_MAX_NAME + 2], err[1024];
    snprintf(key, sizeof key, "%s/%s", ns, name);
    json_t *pod = store_get(s, REDUCE_POD, key);
    json_t *namespace = store_get(s, REDUCE_NAMESPACE, ns);
    if (!pod) {
        *out = error_answer("pod %s is not known", key);
        return -ENOENT;
    }
    if (!namespace) {
        /* Not "no annotations": the namespace's may be stricter than the mesh's. */
        *out = error_answer("namespace %s of pod %s is not known", ns, key);
        return -ENOENT;
    }
    json_t *values = settings_resolve(mesh_values, json_object_get(namespace, "annotations"), ns,
                                      json_object_get(pod, "annotations"), err, sizeof err);
    if (!values) {
        *out = error_answer("pod %s: %s", key, err);
        return -EINVAL;
    }
    json_t *allow = json_array();
    const char *list = json_string_value(json_object_get(values, "allow_from")); /* normalized: comma list, no blanks */
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        json_array_append_new(allow, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    char *id = identity_of(trust_domain, pod);
    *out = answer_new("policy", NULL);
    json_object_set_new(*out, "pod", json_pack("{s:s, s:s, s:O, s:s?, s:O}", "namespace", ns, "name", name,
                                               "serviceAccount", json_object_get(pod, "serviceAccount"), "identity",
                                               id, "ips", json_object_get(pod, "ips")));
    json_object_set(*out, "mtlsMode", json_object_get(values, "mtls_mode"));
    json_object_set(*out, "inboundPolicy", json_object_get(values, "inbound_policy"));
    json_object_set_new(*out, "allowFrom", allow);
    free(id);
    json_decref(values);
    return 0;
}

int answer_authorize_policy(const struct store *s, const char *trust_domain, const char *caller_id,
                            const char *caller_ip, const char *ns, const char *name, char *err, size_t errlen)
{
    struct spiffe_id id;
    char key[SPIFFE_MAX_NAMESPACE + REDUCE_MAX_NAME + 2], ip[ADDR_MAX_TEXT];
    int family;
    if (!caller_id || spiffe_parse(caller_id, strlen(caller_id), &id) < 0) {
        errbuf_set(err, errlen, "caller identity is not a Weft SPIFFE ID");
        return -EACCES;
    }
    if (strcmp(id.trust_domain, trust_domain) != 0) {
        errbuf_set(err, errlen, "caller %s is not of trust domain %s", caller_id, trust_domain);
        return -EACCES;
    }
    if (strcmp(id.ns, ns) != 0) {
        errbuf_set(err, errlen, "caller %s may not ask about pods of namespace %s", caller_id, ns);
        return -EACCES;
    }
    snprintf(key, sizeof key, "%s/%s", ns, name);
    json_t *pod = store_get(s, REDUCE_POD, key);
    if (!pod) {
        errbuf_set(err, errlen, "pod %s is not known", key);
        return -EACCES;
    }
    if (strcmp(json_string_value(json_object_get(pod, "serviceAccount")), id.sa) != 0) {
        errbuf_set(err, errlen, "caller %s is not the service account of pod %s", caller_id, key);
        return -EACCES;
    }
    /* A host-network pod's IP is its node's, shared by every such pod there. */
    if (!caller_ip || addr_canon_ip(caller_ip, ip, &family) < 0 || json_is_true(json_object_get(pod, "hostNetwork")) ||
        !has_string(json_object_get(pod, "ips"), ip)) {
        errbuf_set(err, errlen, "caller address %s is not an IP of pod %s", caller_ip ? caller_ip : "(none)", key);
        return -EACCES;
    }
    return 0;
}
