/* SPDX-License-Identifier: Apache-2.0 */
/* ReferenceGrant reduction and the permission check; see grant.h. Errors
 * name the field as its path in the grant ("spec.from[0].namespace"). */
#include "grant.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "reduce.h"
#include "spiffe.h"

#define GATEWAY_GROUP "gateway.networking.k8s.io"
#define GRANT_MAX_KIND 63
#define GRANT_MAX_GROUP 253

/* The CRD's kind pattern: ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$ */
static int grant_valid_kind(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > GRANT_MAX_KIND || !isalpha((unsigned char)s[0]) || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return 0;
    return 1;
}

/* The CRD's group pattern, "" aside: dot-separated labels of [a-z0-9-],
 * each starting and ending alphanumeric (no length per label). */
static int grant_valid_group(const char *s)
{
    size_t n = strlen(s), start = 0;
    if (n == 0 || n > GRANT_MAX_GROUP)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
                return 0;
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return 0;
        start = i + 1;
    }
    return 1;
}

/* group and kind of one entry: both required; group may be "" (the core API
 * group) or a DNS subdomain. */
static int grant_group_kind(json_t *e, const char *path, const char **group, const char **kind, char *err,
                            size_t errlen)
{
    json_t *g = json_object_get(e, "group"), *k = json_object_get(e, "kind");
    if (!g) {
        errbuf_set(err, errlen, "%s.group: is missing (\"\" is the core API group)", path);
        return -EINVAL;
    }
    *group = json_string_value(g);
    if (!*group || json_string_length(g) > GRANT_MAX_GROUP || strlen(*group) != json_string_length(g) ||
        (**group && !grant_valid_group(*group))) {
        errbuf_set(err, errlen, "%s.group: expected \"\" or a DNS subdomain of at most %d characters", path,
                   GRANT_MAX_GROUP);
        return -EINVAL;
    }
    if (!k) {
        errbuf_set(err, errlen, "%s.kind: is missing", path);
        return -EINVAL;
    }
    *kind = json_string_value(k);
    if (!*kind || strlen(*kind) != json_string_length(k) || !grant_valid_kind(*kind)) {
        errbuf_set(err, errlen, "%s.kind: expected a kind name of 1-%d letters, digits and '-'", path,
                   GRANT_MAX_KIND);
        return -EINVAL;
    }
    return 0;
}

static int grant_list(json_t *spec, const char *key, size_t max, json_t **list, char *err, size_t errlen)
{
    if (reduce_array(spec, key, max, list, "spec", err, errlen) < 0)
        return -EINVAL;
    if (!*list || json_array_size(*list) == 0) {
        errbuf_set(err, errlen, "spec.%s: expected a list of 1-%zu items", key, max);
        return -EINVAL;
    }
    return 0;
}

int grant_reduce(json_t *obj, json_t **out, char *err, size_t errlen)
{
    json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    json_t *from = json_array(), *to = json_array(), *list, *e;
    char path[64];
    size_t i;
    int rc = -EINVAL;
    *out = NULL;
    if (!json_is_object(spec)) {
        errbuf_set(err, errlen, "spec: is missing");
        goto out;
    }
    if (grant_list(spec, "from", GRANT_MAX_FROM, &list, err, errlen) < 0)
        goto out;
    json_array_foreach(list, i, e) {
        const char *group, *kind, *ns;
        snprintf(path, sizeof path, "spec.from[%zu]", i);
        if (!json_is_object(e)) {
            errbuf_set(err, errlen, "%s: expected an object", path);
            goto out;
        }
        if (grant_group_kind(e, path, &group, &kind, err, errlen) < 0 ||
            reduce_string(e, "namespace", SPIFFE_MAX_NAMESPACE, 1, &ns, path, err, errlen) < 0)
            goto out;
        if (!spiffe_valid_namespace(ns, strlen(ns))) {
            errbuf_set(err, errlen, "%s.namespace \"%s\": expected a namespace name", path, ns);
            goto out;
        }
        /* Only routes reference Services; a Gateway's trust (Secrets) is not Weft's. */
        if (strcmp(group, GATEWAY_GROUP) == 0 && (strcmp(kind, "HTTPRoute") == 0 || strcmp(kind, "GRPCRoute") == 0))
            json_array_append_new(from, json_pack("{s:s, s:s}", "kind", kind, "namespace", ns));
    }
    if (grant_list(spec, "to", GRANT_MAX_TO, &list, err, errlen) < 0)
        goto out;
    json_array_foreach(list, i, e) {
        const char *group, *kind, *name = NULL;
        snprintf(path, sizeof path, "spec.to[%zu]", i);
        if (!json_is_object(e)) {
            errbuf_set(err, errlen, "%s: expected an object", path);
            goto out;
        }
        if (grant_group_kind(e, path, &group, &kind, err, errlen) < 0)
            goto out;
        /* name is optional, but when given it is 1-253 bytes (an empty one
         * would not pass the API server, nor grant "all" here). */
        json_t *n = json_object_get(e, "name");
        if (n && !json_is_null(n)) {
            name = json_string_value(n);
            if (!name || json_string_length(n) == 0 || json_string_length(n) > REDUCE_MAX_NAME ||
                strlen(name) != json_string_length(n)) {
                errbuf_set(err, errlen, "%s.name: expected a string of 1-%d bytes", path, REDUCE_MAX_NAME);
                goto out;
            }
        }
        if (group[0] == '\0' && strcmp(kind, "Service") == 0)
            json_array_append_new(to, name ? json_pack("{s:s}", "name", name) : json_object());
    }
    rc = 0;
    if (json_array_size(from) == 0 || json_array_size(to) == 0)
        goto out; /* grants nothing a route of the mesh could use */
    *out = json_pack("{s:O, s:O, s:O, s:O}", "namespace", json_object_get(meta, "namespace"), "name",
                     json_object_get(meta, "name"), "from", from, "to", to);
out:
    json_decref(from);
    json_decref(to);
    return rc;
}

int grant_permits(json_t *grant, const char *route_kind, const char *route_ns, const char *service)
{
    size_t i;
    json_t *e;
    int from = 0, to = 0;
    /* Entries combine with OR within from and within to; a grant permits
     * when one of each matches. */
    json_array_foreach(json_object_get(grant, "from"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "kind")), route_kind) == 0 &&
            strcmp(json_string_value(json_object_get(e, "namespace")), route_ns) == 0)
            from = 1;
    }
    json_array_foreach(json_object_get(grant, "to"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || strcmp(name, service) == 0)
            to = 1;
    }
    return from && to;
}
