/* SPDX-License-Identifier: Apache-2.0 */
/* The settings table and its validators; see settings.h. */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "parse.h"
#include "spiffe.h"

enum kind {
    K_IMAGE,     /* container image reference */
    K_PULL,      /* Always | IfNotPresent | Never */
    K_QUANTITY,  /* Kubernetes resource quantity */
    K_LOGLEVEL,  /* debug | info | warn | error */
    K_PORTS,     /* comma list of ports, may be empty */
    K_CIDRS,     /* comma list of CIDRs, may be empty */
    K_MTLS,      /* STRICT | PERMISSIVE */
    K_POLICY,    /* same-namespace | mesh | deny | allow-all */
    K_ALLOW,     /* comma list of ns/sa or ns/(any) */
    K_BOOL,      /* true | false */
    K_ID,        /* uid or gid, never 0 */
    K_PORT,      /* one port */
    K_DOMAIN,    /* SPIFFE trust domain */
    K_ADDR,      /* host:port */
    K_ADDR_OPT,  /* host:port, or empty (also when missing) for none */
};

struct setting {
    const char *value;       /* name used in the templates */
    const char *mesh_path;   /* dotted path in mesh.yaml */
    const char *annotation;  /* weft.dev/<this> overrides it; NULL when not overridable */
    enum kind kind;
};

static const struct setting settings[] = {
    {"proxy_image", "images.proxy", "proxy-image", K_IMAGE},
    {"init_image", "images.init", NULL, K_IMAGE},
    {"image_pull_policy", "imagePullPolicy", NULL, K_PULL},
    {"proxy_uid", "proxyUID", NULL, K_ID},
    {"proxy_gid", "proxyGID", NULL, K_ID},
    {"outbound_port", "ports.outbound", NULL, K_PORT},
    {"inbound_port", "ports.inbound", NULL, K_PORT},
    {"admin_port", "ports.admin", NULL, K_PORT},
    {"cpu_request", "resources.cpuRequest", "proxy-cpu-request", K_QUANTITY},
    {"cpu_limit", "resources.cpuLimit", "proxy-cpu-limit", K_QUANTITY},
    {"memory_request", "resources.memoryRequest", "proxy-memory-request", K_QUANTITY},
    {"memory_limit", "resources.memoryLimit", "proxy-memory-limit", K_QUANTITY},
    {"mtls_mode", "defaults.mtlsMode", "mtls-mode", K_MTLS},
    {"inbound_policy", "defaults.inboundPolicy", "inbound-policy", K_POLICY},
    {"allow_from", "defaults.allowFrom", "allow-from", K_ALLOW},
    {"native_sidecar", "defaults.nativeSidecar", "native-sidecar", K_BOOL},
    {"rewrite_probes", "defaults.rewriteProbes", "rewrite-probes", K_BOOL},
    {"log_level", "defaults.logLevel", "proxy-log-level", K_LOGLEVEL},
    {"skip_inbound_ports", "defaults.skipInboundPorts", "skip-inbound-ports", K_PORTS},
    {"skip_outbound_ports", "defaults.skipOutboundPorts", "skip-outbound-ports", K_PORTS},
    {"skip_outbound_cidrs", "defaults.skipOutboundCIDRs", "skip-outbound-cidrs", K_CIDRS},
    {"trust_domain", "trustDomain", NULL, K_DOMAIN},
    {"identity_addr", "identity.address", NULL, K_ADDR},
    {"discovery_addr", "discovery.address", NULL, K_ADDR_OPT},
    {"mesh_networks", "meshNetworks", NULL, K_CIDRS},
};
#define NSETTINGS (sizeof settings / sizeof *settings)

/* Annotations under weft.dev/ that are not injection settings but are
 * understood: inject (opt in/out), status (written by the webhook) and
 * opaque-ports (read by weft-discovery from pods and Services). */
static const char *const other_annotations[] = {"inject", "status", "opaque-ports", NULL};

static int one_of(const char *s, const char *const *options)
{
    for (; *options; options++)
        if (strcmp(s, *options) == 0)
            return 1;
    return 0;
}

static int valid_image(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 512)
        return 0;
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return 0;
    return 1;
}

static int valid_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    uint16_t port;
    return colon && colon != s && parse_port(colon + 1, &port) == 0;
}

/* Trims the items of an allow list ("ns/sa, ns2/(star)"); 0 or -EINVAL. */
static int normalize_allow(const char *s, struct buf *out)
{
    const char *p = s;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        const char *b = stop;
        while (b > p && isspace((unsigned char)b[-1]))
            b--;
        const char *slash = memchr(p, '/', (size_t)(b - p));
        if (!slash || !spiffe_valid_namespace(p, (size_t)(slash - p)))
            return -EINVAL;
        size_t salen = (size_t)(b - slash - 1);
        if (!(salen == 1 && slash[1] == '*') && !spiffe_valid_sa(slash + 1, salen))
            return -EINVAL;
        if (out->len)
            buf_append(out, ",", 1);
        buf_append(out, p, (size_t)(b - p));
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return -EINVAL;
    }
    return 0;
}

static const char *expectation(enum kind kind)
{
    switch (kind) {
    case K_IMAGE: return "a container image reference without spaces";
    case K_PULL: return "Always, IfNotPresent or Never";
    case K_QUANTITY: return "a Kubernetes quantity such as 100m, 0.5, 64Mi or 1G";
    case K_LOGLEVEL: return "debug, info, warn or error";
    case K_PORTS: return "a comma-separated list of ports 1-65535";
    case K_CIDRS: return "a comma-separated list of CIDRs such as 10.0.0.0/8";
    case K_MTLS: return "STRICT or PERMISSIVE";
    case K_POLICY: return "same-namespace, mesh, deny or allow-all";
    case K_ALLOW: return "a comma-separated list of namespace/serviceaccount or namespace/*";
    case K_BOOL: return "true or false";
    case K_ID: return "a user or group id 1-2147483647";
    case K_PORT: return "a port 1-65535";
    case K_DOMAIN: return "a trust domain of lower-case letters, digits, '.', '-' and '_'";
    case K_ADDR: return "host:port";
    case K_ADDR_OPT: return "host:port or empty";
    }
    return "a valid value";
}

/* Checks text against kind and returns the typed, normalized JSON value (new
 * reference), or NULL when it does not parse. */
static json_t *normalize(enum kind kind, const char *text)
{
    static const char *const pulls[] = {"Always", "IfNotPresent", "Never", NULL};
    static const char *const mtls[] = {"STRICT", "PERMISSIVE", NULL};
    static const char *const policies[] = {"same-namespace", "mesh", "deny", "allow-all", NULL};
    enum log_level level;
    unsigned long v;
    int b;
    size_t n;
    json_t *out = NULL;
    struct buf canon;
    buf_init(&canon, 4096);

    switch (kind) {
    case K_IMAGE: out = valid_image(text) ? json_string(text) : NULL; break;
    case K_PULL: out = one_of(text, pulls) ? json_string(text) : NULL; break;
    case K_QUANTITY: out = parse_k8s_quantity(text) == 0 ? json_string(text) : NULL; break;
    case K_LOGLEVEL: out = log_parse_level(text, &level) == 0 ? json_string(text) : NULL; break;
    case K_MTLS: out = one_of(text, mtls) ? json_string(text) : NULL; break;
    case K_POLICY: out = one_of(text, policies) ? json_string(text) : NULL; break;
    case K_BOOL: out = parse_bool(text, &b) == 0 ? json_boolean(b) : NULL; break;
    case K_ID: out = parse_uint(text, 1, 2147483647, &v) == 0 ? json_integer((json_int_t)v) : NULL; break;
    case K_PORT: out = parse_uint(text, 1, 65535, &v) == 0 ? json_integer((json_int_t)v) : NULL; break;
    case K_DOMAIN: out = spiffe_valid_trust_domain(text, strlen(text)) ? json_string(text) : NULL; break;
    case K_ADDR: out = valid_addr(text) ? json_string(text) : NULL; break;
    case K_ADDR_OPT: out = !*text || valid_addr(text) ? json_string(text) : NULL; break;
    case K_PORTS: {
        uint16_t ports[PARSE_MAX_LIST];
        if (parse_port_list(text, ports, &n) < 0)
            break;
        for (size_t i = 0; i < n; i++)
            buf_appendf(&canon, "%s%u", i ? "," : "", ports[i]);
        out = json_string(canon.len ? buf_cstr(&canon) : "");
        break;
    }
    case K_CIDRS: {
        struct parse_cidr cidrs[PARSE_MAX_LIST];
        if (parse_cidr_list(text, cidrs, &n) < 0)
            break;
        for (size_t i = 0; i < n; i++)
            buf_appendf(&canon, "%s%s", i ? "," : "", cidrs[i].text);
        out = json_string(canon.len ? buf_cstr(&canon) : "");
        break;
    }
    case K_ALLOW:
        if (normalize_allow(text, &canon) == 0)
            out = json_string(canon.len ? buf_cstr(&canon) : "");
        break;
    }
    buf_free(&canon);
    return out;
}

/* Follows a dotted path through nested objects. */
static json_t *lookup_path(json_t *doc, const char *path)
{
    char key[64];
    while (doc && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof key || !json_is_object(doc))
            return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        doc = json_object_get(doc, key);
        path += len + (dot ? 1 : 0);
    }
    return doc;
}

/* YAML scalars arrive typed; settings are checked as the text a user wrote. */
static int scalar_text(json_t *v, char *out, size_t outlen)
{
    if (json_is_string(v))
        return snprintf(out, outlen, "%s", json_string_value(v)) < (int)outlen ? 0 : -E2BIG;
    if (json_is_integer(v))
        return snprintf(out, outlen, "%lld", (long long)json_integer_value(v)) < (int)outlen ? 0 : -E2BIG;
    if (json_is_boolean(v))
        return snprintf(out, outlen, "%s", json_is_true(v) ? "true" : "false") < (int)outlen ? 0 : -E2BIG;
    return -EINVAL;
}

json_t *settings_from_mesh(json_t *mesh, char *err, size_t errlen)
{
    json_t *values = json_object();
    char text[4096];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        json_t *raw = lookup_path(mesh, s->mesh_path);
        if (!raw && s->kind == K_ADDR_OPT) {
            /* Optional: a mesh config written before the key existed means none. */
            json_object_set_new(values, s->value, json_string("")); /* steals the string */
            continue;
        }
        if (!raw) {
            snprintf(err, errlen, "mesh.yaml: %s is missing (%s)", s->mesh_path, expectation(s->kind));
            goto fail;
        }
        json_t *v = scalar_text(raw, text, sizeof text) == 0 ? normalize(s->kind, text) : NULL;
        if (!v) {
            char *shown = json_dumps(raw, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(err, errlen, "mesh.yaml: %s: invalid value %s: expected %s", s->mesh_path,
                     shown ? shown : "?", expectation(s->kind));
            free(shown);
            goto fail;
        }
        json_object_set_new(values, s->value, v); /* steals v */
    }
    return values;
fail:
    json_decref(values);
    return NULL;
}

static const struct setting *by_annotation(const char *suffix)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].annotation && strcmp(settings[i].annotation, suffix) == 0)
            return &settings[i];
    return NULL;
}

static int apply_annotations(json_t *values, json_t *annotations, const char *where, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    const size_t plen = strlen(SETTINGS_ANNOTATION_PREFIX);
    json_object_foreach(annotations, key, val) {
        if (strncmp(key, SETTINGS_ANNOTATION_PREFIX, plen) != 0)
            continue;
        const char *suffix = key + plen;
        const struct setting *s = by_annotation(suffix);
        if (!s && strcmp(suffix, "opaque-ports") == 0) {
            /* Not an injection setting, but refused here as well when it
             * does not parse: the pod would otherwise run half-configured. */
            json_t *ports = json_is_string(val) ? normalize(K_PORTS, json_string_value(val)) : NULL;
            if (!ports) {
                char *shown = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
                snprintf(err, errlen, "invalid %s %s on %s: expected %s", key, shown ? shown : "?", where,
                         expectation(K_PORTS));
                free(shown);
                return -EINVAL;
            }
            json_decref(ports);
            continue;
        }
        if (!s) {
            if (one_of(suffix, other_annotations))
                continue; /* handled elsewhere */
            /* Refused so that a typo never silently does nothing. */
            snprintf(err, errlen, "unknown annotation %s on %s", key, where);
            return -EINVAL;
        }
        json_t *v = json_is_string(val) ? normalize(s->kind, json_string_value(val)) : NULL;
        if (!v) {
            char *shown = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(err, errlen, "invalid %s %s on %s: expected %s", key, shown ? shown : "?", where,
                     expectation(s->kind));
            free(shown);
            return -EINVAL;
        }
        json_object_set_new(values, s->value, v); /* steals v */
    }
    return 0;
}

json_t *settings_resolve(json_t *base, json_t *ns_annotations, const char *ns_name, json_t *pod_annotations,
                         char *err, size_t errlen)
{
    json_t *values = json_deep_copy(base);
    char where[128];
    snprintf(where, sizeof where, "namespace %s", ns_name);
    if ((ns_annotations && apply_annotations(values, ns_annotations, where, err, errlen) < 0) ||
        (pod_annotations && apply_annotations(values, pod_annotations, "the pod", err, errlen) < 0)) {
        json_decref(values);
        return NULL;
    }
    return values;
}
