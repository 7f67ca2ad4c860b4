/* SPDX-License-Identifier: Apache-2.0 */
/* The reducers of Services, EndpointSlices, Pods and Namespaces, and the
 * field helpers route.c shares; see reduce.h. */
#include "reduce.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "errbuf.h"
#include "grant.h"
#include "parse.h"
#include "route.h"
#include "settings.h"
#include "spiffe.h"
#include "xalloc.h"

#define OPAQUE_PORTS_ANNOTATION SETTINGS_OPAQUE_PORTS_ANNOTATION
#define STATUS_ANNOTATION SETTINGS_STATUS_ANNOTATION
#define SERVICE_NAME_LABEL "kubernetes.io/service-name"       /* an EndpointSlice's Service */

static const struct {
    const char *api_version, *kind;
    const char *also; /* another apiVersion of the same schema */
} kinds[REDUCE_KINDS] = {
    [REDUCE_SERVICE] = {"v1", "Service"},
    [REDUCE_SLICE] = {"discovery.k8s.io/v1", "EndpointSlice"},
    [REDUCE_POD] = {"v1", "Pod"},
    [REDUCE_NAMESPACE] = {"v1", "Namespace"},
    [REDUCE_HTTPROUTE] = {"gateway.networking.k8s.io/v1", "HTTPRoute"},
    [REDUCE_GRPCROUTE] = {"gateway.networking.k8s.io/v1", "GRPCRoute"},
    /* Stored as v1beta1 and served as both by the pinned release (v1.6.3);
     * older releases serve v1beta1 only, so that is the version watched. */
    [REDUCE_REFGRANT] = {"gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "gateway.networking.k8s.io/v1"},
};

const char *reduce_kind_name(enum reduce_kind kind)
{
    return kind < REDUCE_KINDS ? kinds[kind].kind : "?";
}

int reduce_kind_of(json_t *obj, enum reduce_kind *kind, char *err, size_t errlen)
{
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *k = json_string_value(json_object_get(obj, "kind"));
    if (!json_is_object(obj) || !av || !k) {
        errbuf_set(err, errlen, "not a Kubernetes object (apiVersion and kind are required)");
        return -EINVAL;
    }
    for (int i = 0; i < REDUCE_KINDS; i++) {
        if (strcmp(k, kinds[i].kind) == 0 &&
            (strcmp(av, kinds[i].api_version) == 0 || (kinds[i].also && strcmp(av, kinds[i].also) == 0))) {
            *kind = (enum reduce_kind)i;
            return 0;
        }
    }
    errbuf_set(err, errlen, "%s %s is not watched by weft-discovery", av, k);
    return -ENOTSUP;
}

int reduce_key(json_t *obj, enum reduce_kind kind, char *key, size_t keylen, char *err, size_t errlen)
{
    json_t *meta = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    if (name && kind == REDUCE_NAMESPACE && !spiffe_valid_namespace(name, strlen(name))) {
        errbuf_set(err, errlen, "Namespace: metadata.name: expected a DNS-1123 label of at most %d characters",
                   SPIFFE_MAX_NAMESPACE);
        return -EINVAL;
    }
    if (!name || !spiffe_valid_sa(name, strlen(name))) {
        errbuf_set(err, errlen, "%s: metadata.name: expected a DNS-1123 name of at most %d characters",
                   reduce_kind_name(kind), REDUCE_MAX_NAME);
        return -EINVAL;
    }
    if (kind == REDUCE_NAMESPACE) {
        snprintf(key, keylen, "%s", name);
        return 0;
    }
    if (!ns || !spiffe_valid_namespace(ns, strlen(ns))) {
        errbuf_set(err, errlen, "%s %s: metadata.namespace: %s", reduce_kind_name(kind), name,
                   ns ? "expected a DNS-1123 label of at most 63 characters" : "is missing");
        return -EINVAL;
    }
    snprintf(key, keylen, "%s/%s", ns, name);
    return 0;
}

/* ---- field helpers ---- */

int reduce_string(json_t *o, const char *key, size_t max, int required, const char **out, const char *path,
                  char *err, size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = NULL;
    /* As in the API, an optional string that is empty is unset. */
    if (!v || json_is_null(v) || (!required && json_is_string(v) && json_string_length(v) == 0)) {
        if (!required)
            return 0;
        errbuf_set(err, errlen, "%s.%s: is missing", path, key);
        return -EINVAL;
    }
    size_t n = json_string_length(v);
    if (!json_is_string(v) || n == 0 || n > max || strlen(json_string_value(v)) != n) {
        errbuf_set(err, errlen, "%s.%s: expected a string of 1-%zu bytes", path, key, max);
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

int reduce_int(json_t *o, const char *key, long long min, long long max, int required, long long dflt,
               long long *out, const char *path, char *err, size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = dflt;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        errbuf_set(err, errlen, "%s.%s: is missing", path, key);
        return -EINVAL;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        errbuf_set(err, errlen, "%s.%s: expected an integer %lld-%lld", path, key, min, max);
        return -EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

int reduce_array(json_t *o, const char *key, size_t max, json_t **out, const char *path, char *err,
                 size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > max) {
        errbuf_set(err, errlen, "%s.%s: expected a list of at most %zu items", path, key, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int reduce_enum(json_t *o, const char *key, const char *const *options, const char *dflt, const char **out,
                const char *path, char *err, size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = dflt;
    if (!v || json_is_null(v)) {
        if (dflt)
            return 0;
        errbuf_set(err, errlen, "%s.%s: is missing", path, key);
        return -EINVAL;
    }
    for (const char *const *p = options; json_is_string(v) && *p; p++) {
        if (strcmp(json_string_value(v), *p) == 0) {
            *out = *p;
            return 0;
        }
    }
    char list[256] = "";
    size_t used = 0;
    for (const char *const *p = options; *p && used < sizeof list; p++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", p == options ? "" : ", ", *p);
    errbuf_set(err, errlen, "%s.%s: expected one of %s", path, key, list);
    return -EINVAL;
}

/* An object of at most max entries, or NULL; -EINVAL when present and not an object. */
static int object_field(json_t *o, const char *key, size_t max, json_t **out, const char *path, char *err,
                        size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > max) {
        errbuf_set(err, errlen, "%s.%s: expected an object of at most %zu entries", path, key, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int reduce_duration_ms(const char *s, unsigned long long *ms)
{
    int groups = 0;
    unsigned long long total = 0;
    while (*s) {
        int digits = 0;
        unsigned long long v = 0;
        while (*s >= '0' && *s <= '9' && digits <= 5)
            v = v * 10 + (unsigned)(*s++ - '0'), digits++;
        if (digits == 0 || digits > 5)
            return -EINVAL;
        if (s[0] == 'm' && s[1] == 's')
            s += 2;
        else if (*s == 'h')
            v *= 3600000ULL, s++;
        else if (*s == 'm')
            v *= 60000ULL, s++;
        else if (*s == 's')
            v *= 1000ULL, s++;
        else
            return -EINVAL;
        if (++groups > 4)
            return -EINVAL;
        total += v; /* at most 4 x 99999h: no overflow */
    }
    if (!groups)
        return -EINVAL;
    *ms = total;
    return 0;
}

/* ---- shared pieces of objects ---- */

/* The weft.dev/ annotations of metadata, copied (new reference). */
static int weft_annotations(json_t *meta, json_t **out, char *err, size_t errlen)
{
    json_t *all = json_object_get(meta, "annotations"), *val;
    const char *key;
    const size_t plen = strlen(SETTINGS_ANNOTATION_PREFIX);
    *out = json_object();
    if (all && !json_is_object(all) && !json_is_null(all)) {
        errbuf_set(err, errlen, "metadata.annotations: expected an object");
        return -EINVAL;
    }
    json_object_foreach(all, key, val) {
        if (strncmp(key, SETTINGS_ANNOTATION_PREFIX, plen) != 0)
            continue;
        if (json_object_size(*out) == REDUCE_MAX_WEFT_ANNOTATIONS) {
            errbuf_set(err, errlen, "metadata.annotations: more than %d weft.dev/ annotations",
                       REDUCE_MAX_WEFT_ANNOTATIONS);
            return -EINVAL;
        }
        if (!json_is_string(val) || json_string_length(val) > REDUCE_MAX_ANNOTATION_VALUE) {
            errbuf_set(err, errlen, "metadata.annotations: %s: expected a string of at most %d bytes", key,
                       REDUCE_MAX_ANNOTATION_VALUE);
            return -EINVAL;
        }
        json_object_set(*out, key, val);
    }
    return 0;
}

/* weft.dev/opaque-ports of the kept annotations as a sorted array of ports (new reference). */
static int opaque_ports(json_t *annotations, json_t **out, char *err, size_t errlen)
{
    const char *text = json_string_value(json_object_get(annotations, OPAQUE_PORTS_ANNOTATION));
    uint16_t ports[PARSE_MAX_LIST];
    size_t n = 0;
    *out = json_array();
    if (!text)
        return 0;
    if (parse_port_list(text, ports, &n) < 0) {
        errbuf_set(err, errlen, "metadata.annotations: %s \"%s\": expected a comma-separated list of at most %d ports",
                   OPAQUE_PORTS_ANNOTATION, text, PARSE_MAX_LIST);
        return -EINVAL;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: at most 64 */
        for (size_t j = i; j > 0 && ports[j - 1] > ports[j]; j--) {
            uint16_t t = ports[j];
            ports[j] = ports[j - 1];
            ports[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ports[i] != ports[i - 1])
            json_array_append_new(*out, json_integer(ports[i]));
    return 0;
}

/* The Service's timeout annotations into *timeouts (NULL when none is set
 * well) and *errors (NULL when none is bad); new references. min is 0 for
 * the request and response-header timeouts (0s: none, as the proxy's
 * settings) and 1 ms for the idle timeout (a connection is always let go). */
static void service_timeouts(json_t *annotations, json_t **timeouts, json_t **errors)
{
    static const struct {
        const char *annotation, *field;
        unsigned long long min;
    } keys[] = {
        {REDUCE_REQUEST_TIMEOUT_ANNOTATION, "requestMs", 0},
        {REDUCE_HEADER_TIMEOUT_ANNOTATION, "responseHeaderMs", 0},
        {REDUCE_IDLE_TIMEOUT_ANNOTATION, "idleMs", 1},
    };
    *timeouts = *errors = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *text = json_string_value(json_object_get(annotations, keys[i].annotation));
        unsigned long long ms;
        if (!text)
            continue;
        if (reduce_duration_ms(text, &ms) == 0 && ms >= keys[i].min && ms <= REDUCE_MAX_TIMEOUT_MS) {
            if (!*timeouts)
                *timeouts = json_object();
            json_object_set_new(*timeouts, keys[i].field, json_integer((json_int_t)ms));
            continue;
        }
        char msg[256];
        /* The value is at most 4,096 bytes (weft_annotations): shown cut,
         * at a character boundary so the message stays UTF-8. */
        size_t len = strlen(text), cut = len > 64 ? 64 : len;
        while (cut > 0 && cut < len && ((unsigned char)text[cut] & 0xc0) == 0x80)
            cut--;
        snprintf(msg, sizeof msg, "metadata.annotations: %s \"%.*s%s\": expected a duration %s-24h such as 5s, "
                 "250ms or 1m30s; the default applies", keys[i].annotation, (int)cut, text, cut < len ? "..." : "",
                 keys[i].min ? "1ms" : "0s");
        if (!*errors)
            *errors = json_array();
        json_array_append_new(*errors, json_string(msg));
    }
}

/* Appends the canonical form of the IP text v to ips; err names path. */
static int append_ip(json_t *ips, json_t *v, const char *path, char *err, size_t errlen)
{
    char canon[ADDR_MAX_TEXT];
    int family;
    if (!json_is_string(v) || addr_canon_ip(json_string_value(v), canon, &family) < 0) {
        char *shown = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        errbuf_set(err, errlen, "%s: %s is not an IP address", path, shown ? shown : "?");
        free(shown);
        return -EINVAL;
    }
    json_array_append_new(ips, json_string(canon));
    return 0;
}

static json_t *meta_copy(json_t *meta, int namespaced)
{
    json_t *o = json_object();
    if (namespaced)
        json_object_set(o, "namespace", json_object_get(meta, "namespace"));
    json_object_set(o, "name", json_object_get(meta, "name"));
    return o;
}

/* ---- Service ---- */

static int reduce_service_port(json_t *p, size_t i, json_t *ports, char *err, size_t errlen)
{
    static const char *const protocols[] = {"TCP", "UDP", "SCTP", NULL};
    char path[64];
    const char *name, *protocol, *app;
    long long port;
    snprintf(path, sizeof path, "spec.ports[%zu]", i);
    if (!json_is_object(p)) {
        errbuf_set(err, errlen, "%s: expected an object", path);
        return -EINVAL;
    }
    if (reduce_string(p, "name", SPIFFE_MAX_NAMESPACE, 0, &name, path, err, errlen) < 0 ||
        reduce_int(p, "port", 1, 65535, 1, 0, &port, path, err, errlen) < 0 ||
        reduce_enum(p, "protocol", protocols, "TCP", &protocol, path, err, errlen) < 0 ||
        reduce_string(p, "appProtocol", REDUCE_MAX_LABEL_KEY, 0, &app, path, err, errlen) < 0)
        return -EINVAL;
    json_t *target = json_object_get(p, "targetPort"), *out = json_object();
    if (!target || json_is_null(target)) {
        target = json_integer(port);
    } else if (json_is_integer(target) && json_integer_value(target) >= 1 && json_integer_value(target) <= 65535) {
        json_incref(target);
    } else if (json_is_string(target) && json_string_length(target) >= 1 && json_string_length(target) <= 15) {
        json_incref(target);
    } else {
        errbuf_set(err, errlen, "%s.targetPort: expected a port 1-65535 or a port name of at most 15 characters",
                   path);
        json_decref(out);
        return -EINVAL;
    }
    json_object_set_new(out, "name", json_string(name ? name : ""));
    json_object_set_new(out, "port", json_integer(port));
    json_object_set_new(out, "protocol", json_string(protocol));
    json_object_set_new(out, "targetPort", target); /* steals target */
    if (app)
        json_object_set_new(out, "appProtocol", json_string(app));
    json_array_append_new(ports, out);
    return 0;
}

static int reduce_service(json_t *obj, json_t **out, char *err, size_t errlen)
{
    static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName", NULL};
    json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    json_t *ann = NULL, *opaque = NULL, *ips = json_array(), *ports = json_array(), *list, *v;
    const char *type, *cip;
    size_t i;
    int rc = -EINVAL;
    if (!json_is_object(spec)) {
        errbuf_set(err, errlen, "spec: is missing");
        goto out;
    }
    if (weft_annotations(meta, &ann, err, errlen) < 0 || opaque_ports(ann, &opaque, err, errlen) < 0 ||
        reduce_enum(spec, "type", types, "ClusterIP", &type, "spec", err, errlen) < 0 ||
        reduce_string(spec, "clusterIP", ADDR_MAX_TEXT, 0, &cip, "spec", err, errlen) < 0 ||
        reduce_array(spec, "clusterIPs", REDUCE_MAX_IPS, &list, "spec", err, errlen) < 0 ||
        reduce_array(spec, "ports", REDUCE_MAX_SERVICE_PORTS, &v, "spec", err, errlen) < 0)
        goto out;
    /* clusterIPs, when set, lists clusterIP first; "None" is a headless Service. */
    int headless = cip && strcmp(cip, "None") == 0;
    if (list && json_array_size(list) && !headless) {
        json_array_foreach(list, i, v) {
            char path[64];
            snprintf(path, sizeof path, "spec.clusterIPs[%zu]", i);
            if (append_ip(ips, v, path, err, errlen) < 0)
                goto out;
        }
    } else if (cip && !headless && append_ip(ips, json_object_get(spec, "clusterIP"), "spec.clusterIP", err, errlen) < 0) {
        goto out;
    }
    json_array_foreach(json_object_get(spec, "ports"), i, v) {
        if (reduce_service_port(v, i, ports, err, errlen) < 0)
            goto out;
    }
    *out = meta_copy(meta, 1);
    json_object_set_new(*out, "type", json_string(type));
    json_object_set_new(*out, "clusterIPs", ips); /* steals: set to NULL below */
    json_object_set_new(*out, "ports", ports);
    json_object_set_new(*out, "opaquePorts", opaque);
    ips = ports = opaque = NULL;
    json_t *timeouts, *errors;
    service_timeouts(ann, &timeouts, &errors);
    if (timeouts)
        json_object_set_new(*out, "timeouts", timeouts);
    if (errors)
        json_object_set_new(*out, "annotationErrors", errors);
    rc = 0;
out:
    json_decref(ann);
    json_decref(opaque);
    json_decref(ips);
    json_decref(ports);
    return rc;
}

/* ---- EndpointSlice ---- */

/* A condition: true, false, or (null/absent) dflt. */
static int condition(json_t *conds, const char *key, int dflt, size_t i, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(conds, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        errbuf_set(err, errlen, "endpoints[%zu].conditions.%s: expected true or false", i, key);
        return -EINVAL;
    }
    *out = json_is_true(v);
    return 0;
}

static int reduce_endpoint(json_t *e, size_t i, int family, const char *slice_ns, json_t *eps, char *err,
                           size_t errlen)
{
    char path[48];
    json_t *addrs, *conds, *ref;
    const char *node, *zone, *ref_kind, *ref_ns, *ref_name;
    char canon[ADDR_MAX_TEXT];
    int fam, ready, serving, terminating;
    snprintf(path, sizeof path, "endpoints[%zu]", i);
    if (!json_is_object(e)) {
        errbuf_set(err, errlen, "%s: expected an object", path);
        return -EINVAL;
    }
    if (reduce_array(e, "addresses", REDUCE_MAX_SLICE_ADDRESSES, &addrs, path, err, errlen) < 0 ||
        object_field(e, "conditions", 8, &conds, path, err, errlen) < 0 ||
        object_field(e, "targetRef", 16, &ref, path, err, errlen) < 0 ||
        reduce_string(e, "nodeName", REDUCE_MAX_NAME, 0, &node, path, err, errlen) < 0 ||
        reduce_string(e, "zone", REDUCE_MAX_NAME, 0, &zone, path, err, errlen) < 0)
        return -EINVAL;
    /* The API allows up to 100 addresses; consumers use the first. */
    json_t *first = addrs ? json_array_get(addrs, 0) : NULL;
    if (!json_is_string(first) || addr_canon_ip(json_string_value(first), canon, &fam) < 0 || fam != family) {
        errbuf_set(err, errlen, "%s.addresses[0]: expected an %s address", path, family == AF_INET ? "IPv4" : "IPv6");
        return -EINVAL;
    }
    /* Unknown readiness counts as ready; serving defaults to ready; terminating to false. */
    if (condition(conds, "ready", 1, i, &ready, err, errlen) < 0 ||
        condition(conds, "serving", ready, i, &serving, err, errlen) < 0 ||
        condition(conds, "terminating", 0, i, &terminating, err, errlen) < 0)
        return -EINVAL;
    snprintf(path, sizeof path, "endpoints[%zu].targetRef", i);
    if (reduce_string(ref, "kind", 63, 0, &ref_kind, path, err, errlen) < 0 ||
        reduce_string(ref, "namespace", SPIFFE_MAX_NAMESPACE, 0, &ref_ns, path, err, errlen) < 0 ||
        reduce_string(ref, "name", REDUCE_MAX_NAME, 0, &ref_name, path, err, errlen) < 0)
        return -EINVAL;
    json_t *out = json_pack("{s:s, s:b, s:b, s:b}", "address", canon, "ready", ready, "serving", serving,
                            "terminating", terminating);
    if (node)
        json_object_set_new(out, "node", json_string(node));
    if (zone)
        json_object_set_new(out, "zone", json_string(zone));
    if (ref_kind && strcmp(ref_kind, "Pod") == 0 && ref_name) {
        char *key = xasprintf("%s/%s", ref_ns ? ref_ns : slice_ns, ref_name);
        json_object_set_new(out, "pod", json_string(key));
        free(key);
    }
    json_array_append_new(eps, out);
    return 0;
}

static int reduce_slice(json_t *obj, json_t **out, char *err, size_t errlen)
{
    static const char *const types[] = {"IPv4", "IPv6", "FQDN", NULL};
    static const char *const protocols[] = {"TCP", "UDP", "SCTP", NULL};
    json_t *meta = json_object_get(obj, "metadata"), *list, *v;
    json_t *ports = json_array(), *eps = json_array();
    const char *type, *service = json_string_value(json_object_get(json_object_get(meta, "labels"), SERVICE_NAME_LABEL));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    size_t i;
    int rc = -EINVAL;
    *out = NULL;
    if (reduce_enum(obj, "addressType", types, NULL, &type, "EndpointSlice", err, errlen) < 0)
        goto out;
    if (strcmp(type, "FQDN") == 0 || !service) {
        rc = 0; /* no IPs, or no Service: nothing discovery answers with */
        goto out;
    }
    if (!spiffe_valid_namespace(service, strlen(service))) {
        errbuf_set(err, errlen, "metadata.labels: %s \"%.64s\": expected a Service name", SERVICE_NAME_LABEL, service);
        goto out;
    }
    if (reduce_array(obj, "ports", REDUCE_MAX_SLICE_PORTS, &list, "EndpointSlice", err, errlen) < 0)
        goto out;
    json_array_foreach(list, i, v) {
        char path[32];
        const char *name, *protocol, *app;
        long long port;
        snprintf(path, sizeof path, "ports[%zu]", i);
        if (!json_is_object(v)) {
            errbuf_set(err, errlen, "%s: expected an object", path);
            goto out;
        }
        /* A port without a number means "all ports" in the API; discovery
         * cannot dial that, so it is kept as 0 and never answered. */
        if (reduce_string(v, "name", SPIFFE_MAX_NAMESPACE, 0, &name, path, err, errlen) < 0 ||
            reduce_int(v, "port", 1, 65535, 0, 0, &port, path, err, errlen) < 0 ||
            reduce_enum(v, "protocol", protocols, "TCP", &protocol, path, err, errlen) < 0 ||
            reduce_string(v, "appProtocol", REDUCE_MAX_LABEL_KEY, 0, &app, path, err, errlen) < 0)
            goto out;
        json_t *p = json_pack("{s:s, s:I, s:s}", "name", name ? name : "", "port", (json_int_t)port, "protocol", protocol);
        if (app)
            json_object_set_new(p, "appProtocol", json_string(app));
        json_array_append_new(ports, p);
    }
    if (reduce_array(obj, "endpoints", REDUCE_MAX_SLICE_ENDPOINTS, &list, "EndpointSlice", err, errlen) < 0)
        goto out;
    int family = strcmp(type, "IPv4") == 0 ? AF_INET : AF_INET6;
    json_array_foreach(list, i, v) {
        if (reduce_endpoint(v, i, family, ns, eps, err, errlen) < 0)
            goto out;
    }
    *out = meta_copy(meta, 1);
    json_object_set_new(*out, "service", json_string(service));
    json_object_set_new(*out, "addressType", json_string(type));
    json_object_set_new(*out, "ports", ports);
    json_object_set_new(*out, "endpoints", eps);
    ports = eps = NULL;
    rc = 0;
out:
    json_decref(ports);
    json_decref(eps);
    return rc;
}

/* ---- Pod ---- */

static int reduce_pod(json_t *obj, json_t **out, char *err, size_t errlen)
{
    json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    json_t *status = json_object_get(obj, "status"), *list, *v;
    json_t *ann = NULL, *opaque = NULL, *ips = json_array();
    const char *phase, *sa, *node, *ip;
    size_t i;
    int rc = -EINVAL;
    *out = NULL;
    if (reduce_string(status, "phase", 32, 0, &phase, "status", err, errlen) < 0)
        goto out;
    if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
        rc = 0; /* finished: its IP may already be another pod's */
        goto out;
    }
    if (reduce_string(spec, "serviceAccountName", SPIFFE_MAX_SA, 0, &sa, "spec", err, errlen) < 0 ||
        reduce_string(spec, "nodeName", REDUCE_MAX_NAME, 0, &node, "spec", err, errlen) < 0 ||
        reduce_string(status, "podIP", ADDR_MAX_TEXT, 0, &ip, "status", err, errlen) < 0 ||
        reduce_array(status, "podIPs", REDUCE_MAX_IPS, &list, "status", err, errlen) < 0 ||
        weft_annotations(meta, &ann, err, errlen) < 0 ||
        opaque_ports(ann, &opaque, err, errlen) < 0)
        goto out;
    if (!sa)
        sa = "default";
    if (!spiffe_valid_sa(sa, strlen(sa))) {
        errbuf_set(err, errlen, "spec.serviceAccountName \"%s\": expected a DNS-1123 name", sa);
        goto out;
    }
    json_t *host = json_object_get(spec, "hostNetwork");
    if (host && !json_is_boolean(host)) {
        errbuf_set(err, errlen, "spec.hostNetwork: expected true or false");
        goto out;
    }
    /* podIPs, when set, lists podIP first. */
    if (list && json_array_size(list)) {
        json_array_foreach(list, i, v) {
            char path[64];
            snprintf(path, sizeof path, "status.podIPs[%zu].ip", i);
            if (append_ip(ips, json_object_get(v, "ip"), path, err, errlen) < 0)
                goto out;
        }
    } else if (ip && append_ip(ips, json_object_get(status, "podIP"), "status.podIP", err, errlen) < 0) {
        goto out;
    }
    /* Pods are most of the store (10,000 in issue 13's cluster): what no
     * answer reads is not kept (labels), and what is false or empty is left
     * out (readers take a missing hostNetwork or meshed as false, missing
     * annotations or opaquePorts as none): 1 KiB less a pod in jansson. */
    *out = meta_copy(meta, 1);
    json_object_set_new(*out, "serviceAccount", json_string(sa));
    if (node)
        json_object_set_new(*out, "node", json_string(node));
    if (json_is_true(host))
        json_object_set_new(*out, "hostNetwork", json_true());
    json_object_set_new(*out, "ips", ips);
    /* Meshed: the webhook injected it (its status annotation is there). */
    if (json_object_get(ann, STATUS_ANNOTATION))
        json_object_set_new(*out, "meshed", json_true());
    json_object_del(ann, STATUS_ANNOTATION); /* large, and only its presence matters */
    if (json_object_size(ann))
        json_object_set(*out, "annotations", ann);
    if (json_array_size(opaque))
        json_object_set(*out, "opaquePorts", opaque);
    ips = NULL;
    rc = 0;
out:
    json_decref(ips);
    json_decref(ann);
    json_decref(opaque);
    return rc;
}

/* ---- Namespace ---- */

static int reduce_namespace(json_t *obj, json_t **out, char *err, size_t errlen)
{
    json_t *meta = json_object_get(obj, "metadata"), *ann;
    if (weft_annotations(meta, &ann, err, errlen) < 0) {
        json_decref(ann);
        return -EINVAL;
    }
    *out = meta_copy(meta, 0);
    json_object_set_new(*out, "annotations", ann);
    return 0;
}

int reduce_object(enum reduce_kind kind, json_t *obj, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (kind) {
    case REDUCE_SERVICE: return reduce_service(obj, out, err, errlen);
    case REDUCE_SLICE: return reduce_slice(obj, out, err, errlen);
    case REDUCE_POD: return reduce_pod(obj, out, err, errlen);
    case REDUCE_NAMESPACE: return reduce_namespace(obj, out, err, errlen);
    case REDUCE_HTTPROUTE: return route_reduce(ROUTE_HTTP, obj, out, err, errlen);
    case REDUCE_GRPCROUTE: return route_reduce(ROUTE_GRPC, obj, out, err, errlen);
    case REDUCE_REFGRANT: return grant_reduce(obj, out, err, errlen);
    case REDUCE_KINDS: break;
    }
    errbuf_set(err, errlen, "unknown kind");
    return -EINVAL;
}
