/* SPDX-License-Identifier: Apache-2.0 */
/* HTTPRoute and GRPCRoute reduction and validation; see route.h. Errors name
 * the field as its path in the route ("spec.rules[0].matches[1].path.type"). */
#include "route.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "reduce.h"
#include "spiffe.h"

#define GATEWAY_GROUP "gateway.networking.k8s.io"
#define PATH_LEN 256 /* a field's path, for errors; parents are cut at 160 */

static const char *const http_methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};
static const char *const match_types[] = {"Exact", "RegularExpression", NULL};
static const char *const path_types[] = {"Exact", "PathPrefix", "RegularExpression", NULL};

/* The filters of each route type and the field that holds each one's settings. */
struct filter_kind {
    const char *type, *field;
    int once;  /* may appear at most once per rule */
};
static const struct filter_kind http_filters[] = {
    {"RequestHeaderModifier", "requestHeaderModifier", 1},
    {"ResponseHeaderModifier", "responseHeaderModifier", 1},
    {"RequestMirror", "requestMirror", 0},
    {"RequestRedirect", "requestRedirect", 1},
    {"URLRewrite", "urlRewrite", 1},
    {"CORS", "cors", 1},
    {"ExtensionRef", "extensionRef", 0},
    {NULL, NULL, 0},
};
static const struct filter_kind grpc_filters[] = {
    {"RequestHeaderModifier", "requestHeaderModifier", 1},
    {"ResponseHeaderModifier", "responseHeaderModifier", 1},
    {"RequestMirror", "requestMirror", 0},
    {"ExtensionRef", "extensionRef", 0},
    {NULL, NULL, 0},
};

/* RFC 1123 host name, lower case, optionally "*." first (the API's pattern). */
static int valid_hostname(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return 0;
    if (s[0] == '*' && s[1] == '.')
        s += 2;
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-' || *start == '-')
                return 0;
            if (*p == '\0')
                return 1;
            label = 0;
            start = p + 1;
            continue;
        }
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return 0;
        label++;
    }
}

/* An HTTP header name: an RFC 7230 token. */
static int valid_header_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

/* A header or query value: printable, no CR/LF (it travels in a header). */
static int valid_value(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int valid_duration(const char *s)
{
    unsigned long long ms;
    return reduce_duration_ms(s, &ms) == 0;
}

/* gRPC service ("pkg.Service") or method ("Method") names of an Exact match. */
static int valid_grpc_name(const char *s, int dots)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !(dots && *s == '.'))
            return 0;
    return 1;
}

/* headers or queryParams of a match: [{type, name, value}]. */
static int reduce_name_values(json_t *m, const char *key, size_t max_items, size_t max_value, json_t *out,
                              const char *path, char *err, size_t errlen)
{
    json_t *list, *v;
    size_t i;
    char p[PATH_LEN];
    if (reduce_array(m, key, max_items, &list, path, err, errlen) < 0)
        return -EINVAL;
    json_t *items = json_array();
    json_array_foreach(list, i, v) {
        const char *type, *name, *value;
        snprintf(p, sizeof p, "%.160s.%s[%zu]", path, key, i);
        if (!json_is_object(v)) {
            errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        if (reduce_enum(v, "type", match_types, "Exact", &type, p, err, errlen) < 0 ||
            reduce_string(v, "name", ROUTE_MAX_HEADER_NAME, 1, &name, p, err, errlen) < 0 ||
            reduce_string(v, "value", max_value, 1, &value, p, err, errlen) < 0)
            goto fail;
        if (!valid_header_name(name) || !valid_value(value)) {
            errbuf_set(err, errlen, "%s: \"%.64s\": expected a header name (RFC 7230 token) and a printable value", p,
                       name);
            goto fail;
        }
        json_array_append_new(items, json_pack("{s:s, s:s, s:s}", "type", type, "name", name, "value", value));
    }
    if (json_array_size(items))
        json_object_set_new(out, key, items);
    else
        json_decref(items);
    return 0;
fail:
    json_decref(items);
    return -EINVAL;
}

static json_t *http_match(json_t *m, const char *path, char *err, size_t errlen)
{
    char p[PATH_LEN];
    const char *type, *value, *method;
    json_t *pathobj = json_object_get(m, "path"), *out = json_object();
    snprintf(p, sizeof p, "%.160s.path", path);
    if (pathobj && !json_is_object(pathobj)) {
        errbuf_set(err, errlen, "%s: expected an object", p);
        goto fail;
    }
    if (reduce_enum(pathobj, "type", path_types, "PathPrefix", &type, p, err, errlen) < 0 ||
        reduce_string(pathobj, "value", ROUTE_MAX_PATH, 0, &value, p, err, errlen) < 0)
        goto fail;
    if (!value)
        value = "/";
    if ((strcmp(type, "RegularExpression") != 0 && value[0] != '/') || !valid_value(value) || strchr(value, ' ')) {
        errbuf_set(err, errlen, "%s.value \"%.64s\": expected an absolute path (starting with /)", p, value);
        goto fail;
    }
    json_object_set_new(out, "path", json_pack("{s:s, s:s}", "type", type, "value", value));
    if (reduce_name_values(m, "headers", ROUTE_MAX_HEADER_MATCHES, ROUTE_MAX_HEADER_VALUE, out, path, err, errlen) < 0 ||
        reduce_name_values(m, "queryParams", ROUTE_MAX_QUERY_MATCHES, ROUTE_MAX_PATH, out, path, err, errlen) < 0 ||
        reduce_enum(m, "method", http_methods, "", &method, path, err, errlen) < 0)
        goto fail;
    if (*method)
        json_object_set_new(out, "method", json_string(method));
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *grpc_match(json_t *m, const char *path, char *err, size_t errlen)
{
    char p[PATH_LEN];
    const char *type, *service, *method;
    json_t *mobj = json_object_get(m, "method"), *out = json_object();
    snprintf(p, sizeof p, "%.160s.method", path);
    if (mobj && !json_is_null(mobj)) {
        if (!json_is_object(mobj)) {
            errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        if (reduce_enum(mobj, "type", match_types, "Exact", &type, p, err, errlen) < 0 ||
            reduce_string(mobj, "service", ROUTE_MAX_PATH, 0, &service, p, err, errlen) < 0 ||
            reduce_string(mobj, "method", ROUTE_MAX_PATH, 0, &method, p, err, errlen) < 0)
            goto fail;
        if (!service && !method) {
            errbuf_set(err, errlen, "%s: one or both of service and method are required", p);
            goto fail;
        }
        if (strcmp(type, "Exact") == 0 &&
            ((service && !valid_grpc_name(service, 1)) || (method && !valid_grpc_name(method, 0)))) {
            errbuf_set(err, errlen, "%s: an Exact match names a gRPC service (pkg.Service) and method (Method)", p);
            goto fail;
        }
        json_t *mo = json_pack("{s:s}", "type", type);
        if (service)
            json_object_set_new(mo, "service", json_string(service));
        if (method)
            json_object_set_new(mo, "method", json_string(method));
        json_object_set_new(out, "method", mo);
    }
    if (reduce_name_values(m, "headers", ROUTE_MAX_HEADER_MATCHES, ROUTE_MAX_HEADER_VALUE, out, path, err, errlen) < 0)
        goto fail;
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* A header modifier's set/add ([{name, value}]) and remove ([name]). */
static int valid_header_modifier(json_t *mod, const char *path, char *err, size_t errlen)
{
    static const char *const lists[] = {"set", "add", "remove", NULL};
    char p[PATH_LEN];
    for (const char *const *l = lists; *l; l++) {
        json_t *list, *v;
        size_t i;
        if (reduce_array(mod, *l, ROUTE_MAX_HEADER_MATCHES, &list, path, err, errlen) < 0)
            return -EINVAL;
        json_array_foreach(list, i, v) {
            const char *name = NULL, *value = NULL;
            snprintf(p, sizeof p, "%.160s.%s[%zu]", path, *l, i);
            if (strcmp(*l, "remove") == 0) {
                if (!json_is_string(v) || json_string_length(v) > ROUTE_MAX_HEADER_NAME ||
                    !valid_header_name(json_string_value(v))) {
                    errbuf_set(err, errlen, "%s: expected a header name", p);
                    return -EINVAL;
                }
                continue;
            }
            if (!json_is_object(v) || reduce_string(v, "name", ROUTE_MAX_HEADER_NAME, 1, &name, p, err, errlen) < 0 ||
                reduce_string(v, "value", ROUTE_MAX_HEADER_VALUE, 1, &value, p, err, errlen) < 0 ||
                !valid_header_name(name) || !valid_value(value)) {
                if (!json_is_object(v) || (name && value))
                    errbuf_set(err, errlen, "%s: expected a header name and a printable value", p);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* The filters of a rule or of one backend: checked, then carried as
 * {type, <its settings field>}. *redirect is set when one redirects. */
static json_t *reduce_filters(enum route_type rt, json_t *o, const char *path, int *redirect, char *err,
                              size_t errlen)
{
    const struct filter_kind *kinds = rt == ROUTE_HTTP ? http_filters : grpc_filters;
    json_t *list, *v, *out = json_array();
    unsigned seen = 0; /* bit per kind */
    size_t i;
    char p[PATH_LEN];
    *redirect = 0;
    if (reduce_array(o, "filters", ROUTE_MAX_FILTERS, &list, path, err, errlen) < 0)
        goto fail;
    json_array_foreach(list, i, v) {
        const char *type;
        const struct filter_kind *k;
        snprintf(p, sizeof p, "%.160s.filters[%zu]", path, i);
        if (!json_is_object(v) || reduce_string(v, "type", 64, 1, &type, p, err, errlen) < 0) {
            if (!json_is_object(v))
                errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        for (k = kinds; k->type && strcmp(k->type, type) != 0; k++)
            ;
        if (!k->type) {
            errbuf_set(err, errlen, "%s.type \"%.64s\": not a filter of a %s", p, type,
                       rt == ROUTE_HTTP ? "HTTPRoute" : "GRPCRoute");
            goto fail;
        }
        unsigned bit = 1u << (k - kinds);
        if (k->once && (seen & bit)) {
            errbuf_set(err, errlen, "%s: %s filter cannot be repeated", p, type);
            goto fail;
        }
        seen |= bit;
        json_t *conf = json_object_get(v, k->field);
        if (!json_is_object(conf)) {
            errbuf_set(err, errlen, "%s.%s: is required when type is %s", p, k->field, type);
            goto fail;
        }
        char cp[PATH_LEN];
        snprintf(cp, sizeof cp, "%.160s.%s", p, k->field);
        if (strstr(type, "HeaderModifier") && valid_header_modifier(conf, cp, err, errlen) < 0)
            goto fail;
        if (strcmp(type, "RequestRedirect") == 0)
            *redirect |= 1;
        if (strcmp(type, "URLRewrite") == 0)
            *redirect |= 2;
        json_array_append_new(out, json_pack("{s:s, s:O}", "type", type, k->field, conf));
    }
    if (*redirect == 3) {
        errbuf_set(err, errlen, "%s.filters: may specify either RequestRedirect or URLRewrite, but not both", path);
        goto fail;
    }
    *redirect &= 1;
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *reduce_backend(enum route_type rt, json_t *b, const char *route_ns, const char *path, char *err,
                              size_t errlen)
{
    const char *group, *kind, *name, *ns;
    long long port, weight;
    int redirect;
    json_t *filters = NULL;
    if (!json_is_object(b)) {
        errbuf_set(err, errlen, "%s: expected an object", path);
        return NULL;
    }
    if (reduce_string(b, "kind", 63, 0, &kind, path, err, errlen) < 0 ||
        reduce_string(b, "name", REDUCE_MAX_NAME, 1, &name, path, err, errlen) < 0 ||
        reduce_string(b, "namespace", SPIFFE_MAX_NAMESPACE, 0, &ns, path, err, errlen) < 0 ||
        reduce_int(b, "weight", 0, ROUTE_MAX_WEIGHT, 0, 1, &weight, path, err, errlen) < 0)
        return NULL;
    json_t *g = json_object_get(b, "group");
    if (g && !json_is_string(g)) {
        errbuf_set(err, errlen, "%s.group: expected a string", path);
        return NULL;
    }
    group = g ? json_string_value(g) : "";
    if (!kind)
        kind = "Service";
    int service = group[0] == '\0' && strcmp(kind, "Service") == 0;
    /* The port is required when the backend is a Service. */
    if (reduce_int(b, "port", 1, 65535, service, 0, &port, path, err, errlen) < 0)
        return NULL;
    if (ns && !spiffe_valid_namespace(ns, strlen(ns))) {
        errbuf_set(err, errlen, "%s.namespace \"%s\": expected a namespace name", path, ns);
        return NULL;
    }
    if (rt == ROUTE_HTTP && !(filters = reduce_filters(rt, b, path, &redirect, err, errlen)))
        return NULL;
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:I}", "group", group, "kind", kind, "namespace",
                            ns ? ns : route_ns, "name", name, "weight", (json_int_t)weight);
    if (port)
        json_object_set_new(out, "port", json_integer(port));
    if (filters && json_array_size(filters))
        json_object_set(out, "filters", filters);
    json_decref(filters);
    return out;
}

static json_t *reduce_rule(enum route_type rt, json_t *r, const char *route_ns, size_t ri, size_t *total_matches,
                           char *err, size_t errlen)
{
    char path[PATH_LEN], p[PATH_LEN];
    const char *name;
    json_t *list, *v, *out = json_object(), *matches = json_array(), *backends = json_array(), *filters = NULL;
    size_t i;
    int redirect;
    snprintf(path, sizeof path, "spec.rules[%zu]", ri);
    if (!json_is_object(r)) {
        errbuf_set(err, errlen, "%s: expected an object", path);
        goto fail;
    }
    if (reduce_string(r, "name", REDUCE_MAX_NAME, 0, &name, path, err, errlen) < 0 ||
        reduce_array(r, "matches", ROUTE_MAX_MATCHES, &list, path, err, errlen) < 0)
        goto fail;
    if (name)
        json_object_set_new(out, "name", json_string(name));
    if (rt == ROUTE_HTTP && (!list || json_array_size(list) == 0)) {
        /* The API's default: every request (a PathPrefix match on "/"). */
        json_array_append_new(matches, json_pack("{s:{s:s, s:s}}", "path", "type", "PathPrefix", "value", "/"));
    }
    json_array_foreach(list, i, v) {
        snprintf(p, sizeof p, "%.160s.matches[%zu]", path, i);
        json_t *m = !json_is_object(v) ? NULL : rt == ROUTE_HTTP ? http_match(v, p, err, errlen) : grpc_match(v, p, err, errlen);
        if (!m) {
            if (!json_is_object(v))
                errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        json_array_append_new(matches, m);
    }
    *total_matches += list ? json_array_size(list) : 0;
    if (*total_matches > ROUTE_MAX_MATCHES_TOTAL) {
        errbuf_set(err, errlen, "spec.rules: more than %d matches over all rules", ROUTE_MAX_MATCHES_TOTAL);
        goto fail;
    }
    json_object_set(out, "matches", matches);
    if (!(filters = reduce_filters(rt, r, path, &redirect, err, errlen)))
        goto fail;
    json_object_set(out, "filters", filters);
    if (reduce_array(r, "backendRefs", ROUTE_MAX_BACKENDS, &list, path, err, errlen) < 0)
        goto fail;
    if (redirect && list && json_array_size(list)) {
        errbuf_set(err, errlen, "%s: RequestRedirect filter must not be used together with backendRefs", path);
        goto fail;
    }
    json_array_foreach(list, i, v) {
        snprintf(p, sizeof p, "%.160s.backendRefs[%zu]", path, i);
        json_t *b = reduce_backend(rt, v, route_ns, p, err, errlen);
        if (!b)
            goto fail;
        json_array_append_new(backends, b);
    }
    json_object_set(out, "backends", backends);
    json_t *timeouts = json_object_get(r, "timeouts");
    if (rt == ROUTE_HTTP && timeouts && !json_is_null(timeouts)) {
        static const char *const keys[] = {"request", "backendRequest", NULL};
        json_t *t = json_object();
        json_object_set_new(out, "timeouts", t);
        snprintf(p, sizeof p, "%.160s.timeouts", path);
        if (!json_is_object(timeouts)) {
            errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        for (const char *const *k = keys; *k; k++) {
            const char *d;
            if (reduce_string(timeouts, *k, 32, 0, &d, p, err, errlen) < 0)
                goto fail;
            if (d && !valid_duration(d)) {
                errbuf_set(err, errlen, "%s.%s \"%s\": expected a duration such as 10s, 500ms or 1m30s", p, *k, d);
                goto fail;
            }
            if (d)
                json_object_set_new(t, *k, json_string(d));
        }
    }
    json_decref(matches);
    json_decref(backends);
    json_decref(filters);
    return out;
fail:
    json_decref(matches);
    json_decref(backends);
    json_decref(filters);
    json_decref(out);
    return NULL;
}

/* The Service parents of the route (others dropped): a new array, maybe empty. */
static json_t *service_parents(json_t *spec, const char *route_ns, char *err, size_t errlen)
{
    json_t *list, *v, *out = json_array();
    size_t i;
    char p[PATH_LEN];
    if (reduce_array(spec, "parentRefs", ROUTE_MAX_PARENTS, &list, "spec", err, errlen) < 0)
        goto fail;
    json_array_foreach(list, i, v) {
        const char *kind, *name, *ns, *section;
        long long port;
        snprintf(p, sizeof p, "spec.parentRefs[%zu]", i);
        if (!json_is_object(v)) {
            errbuf_set(err, errlen, "%s: expected an object", p);
            goto fail;
        }
        json_t *g = json_object_get(v, "group");
        if (g && !json_is_string(g)) {
            errbuf_set(err, errlen, "%s.group: expected a string", p);
            goto fail;
        }
        if (reduce_string(v, "kind", 63, 0, &kind, p, err, errlen) < 0 ||
            reduce_string(v, "name", REDUCE_MAX_NAME, 1, &name, p, err, errlen) < 0 ||
            reduce_string(v, "namespace", SPIFFE_MAX_NAMESPACE, 0, &ns, p, err, errlen) < 0 ||
            reduce_string(v, "sectionName", REDUCE_MAX_NAME, 0, &section, p, err, errlen) < 0 ||
            reduce_int(v, "port", 1, 65535, 0, 0, &port, p, err, errlen) < 0)
            goto fail;
        /* Unset group means gateway.networking.k8s.io and unset kind Gateway:
         * a Service parent must say group "" and kind Service. */
        const char *group = g ? json_string_value(g) : GATEWAY_GROUP;
        if (group[0] != '\0' || !kind || strcmp(kind, "Service") != 0)
            continue;
        if (ns && !spiffe_valid_namespace(ns, strlen(ns))) {
            errbuf_set(err, errlen, "%s.namespace \"%s\": expected a namespace name", p, ns);
            goto fail;
        }
        json_t *parent = json_pack("{s:s, s:s}", "namespace", ns ? ns : route_ns, "name", name);
        if (port)
            json_object_set_new(parent, "port", json_integer(port));
        if (section)
            json_object_set_new(parent, "sectionName", json_string(section));
        json_array_append_new(out, parent);
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

int route_reduce(enum route_type type, json_t *obj, json_t **out, char *err, size_t errlen)
{
    json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *created;
    json_t *parents = NULL, *hostnames = json_array(), *rules = json_array(), *list, *v;
    size_t i, total = 0;
    int rc = -EINVAL;
    *out = NULL;
    if (!json_is_object(spec)) {
        errbuf_set(err, errlen, "spec: is missing");
        goto out;
    }
    if (reduce_string(meta, "creationTimestamp", 64, 0, &created, "metadata", err, errlen) < 0 ||
        !(parents = service_parents(spec, ns, err, errlen)))
        goto out;
    if (json_array_size(parents) == 0) {
        rc = 0; /* a route of Gateways only: not the mesh's */
        goto out;
    }
    if (reduce_array(spec, "hostnames", ROUTE_MAX_HOSTNAMES, &list, "spec", err, errlen) < 0)
        goto out;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v) || !valid_hostname(json_string_value(v))) {
            errbuf_set(err, errlen, "spec.hostnames[%zu]: expected a lower-case DNS name, optionally starting with *.", i);
            goto out;
        }
        json_array_append(hostnames, v);
    }
    if (reduce_array(spec, "rules", ROUTE_MAX_RULES, &list, "spec", err, errlen) < 0)
        goto out;
    if (!list || json_array_size(list) == 0) {
        /* The API's default is one rule that matches everything (and, with
         * no backends, answers every request with an error). */
        json_t *empty = json_object();
        json_t *r = reduce_rule(type, empty, ns, 0, &total, err, errlen);
        json_decref(empty);
        if (!r)
            goto out;
        json_array_append_new(rules, r);
    }
    json_array_foreach(list, i, v) {
        json_t *r = reduce_rule(type, v, ns, i, &total, err, errlen);
        if (!r)
            goto out;
        const char *name = json_string_value(json_object_get(r, "name"));
        for (size_t j = 0; name && j < json_array_size(rules); j++) {
            const char *other = json_string_value(json_object_get(json_array_get(rules, j), "name"));
            if (other && strcmp(other, name) == 0) {
                errbuf_set(err, errlen, "spec.rules[%zu].name \"%s\": rule names must be unique within the route", i, name);
                json_decref(r);
                goto out;
            }
        }
        json_array_append_new(rules, r);
    }
    *out = json_pack("{s:s, s:O}", "namespace", ns, "name", json_object_get(meta, "name"));
    if (created)
        json_object_set_new(*out, "created", json_string(created));
    json_object_set(*out, "parents", parents);
    json_object_set(*out, "hostnames", hostnames);
    json_object_set(*out, "rules", rules);
    rc = 0;
out:
    json_decref(parents);
    json_decref(hostnames);
    json_decref(rules);
    return rc;
}
