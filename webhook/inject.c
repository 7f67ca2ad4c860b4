/* SPDX-License-Identifier: Apache-2.0 */
/* Pod -> injected pod -> JSON Patch; see inject.h. The patch is the diff of
 * the pod as received and the pod as it should be, so whatever the pod's
 * shape the API server ends with exactly the pod built here. */
#include "inject.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "patch.h"
#include "settings.h"
#include "xalloc.h"
#include "yamljson.h"

static const char *const injected_containers[] = {"weft-init", "weft-proxy", NULL};

struct probe_kind {
    const char *field; /* container field */
    const char *kind;  /* path segment of /app-health/<container>/<kind> */
};

static const struct probe_kind probe_kinds[] = {
    {"livenessProbe", "livez"},
    {"readinessProbe", "readyz"},
    {"startupProbe", "startupz"},
};

int inject_config_load(const char *mesh_path, const struct templates *t, struct inject_config *out, char *err,
                       size_t errlen)
{
    struct inject_config c = {0};
    json_t *mesh = yamljson_load_file(mesh_path, err, errlen);
    int rc = -EINVAL;
    if (!mesh)
        return rc;
    c.templates = t;
    if (!(c.base_values = settings_from_mesh(mesh, err, errlen)))
        goto out;
    /* Every name the templates use must be one each pod's values will have:
     * checked here, so a bad template fails to load (at start, or a reload
     * keeps the last good one) instead of refusing every pod. The names are
     * the settings' and those injected_pod() derives. */
    static const char *const derived[] = {"app_probes", "has_app_probes", "post_start_hook",
                                          "sidecar_restart_policy"};
    json_t *names = json_copy(c.base_values);
    for (size_t k = 0; k < sizeof derived / sizeof *derived; k++)
        json_object_set_new(names, derived[k], json_null()); /* steals the null */
    int bad = template_check(t->init_container, names, "init-container.yaml", err, errlen) < 0 ||
              template_check(t->proxy_container, names, "proxy-container.yaml", err, errlen) < 0 ||
              template_check(t->volumes, names, "volumes.yaml", err, errlen) < 0;
    json_decref(names);
    if (bad)
        goto out;
    json_t *ignored = json_object_get(mesh, "ignoredNamespaces");
    if (ignored && !json_is_array(ignored)) {
        snprintf(err, errlen, "mesh.yaml: ignoredNamespaces must be a list of namespace names");
        goto out;
    }
    size_t n = json_array_size(ignored), i;
    json_t *item;
    c.ignored_namespaces = xcalloc(n + 1, sizeof(char *));
    json_array_foreach(ignored, i, item) {
        if (!json_is_string(item)) {
            snprintf(err, errlen, "mesh.yaml: ignoredNamespaces[%zu] must be a namespace name", i);
            goto out;
        }
        c.ignored_namespaces[i] = xstrdup(json_string_value(item));
    }
    *out = c;
    memset(&c, 0, sizeof c);
    rc = 0;
out:
    inject_config_free(&c);
    json_decref(mesh);
    return rc;
}

void inject_config_free(struct inject_config *c)
{
    json_decref(c->base_values);
    for (char **p = c->ignored_namespaces; p && *p; p++)
        free(*p);
    free(c->ignored_namespaces);
    memset(c, 0, sizeof *c);
}

int inject_namespace_ignored(const struct inject_config *c, const char *ns)
{
    for (char **p = c->ignored_namespaces; p && *p; p++)
        if (strcmp(*p, ns) == 0)
            return 1;
    return 0;
}

static const char *string_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int is_injected_name(const char *name)
{
    for (const char *const *p = injected_containers; *p; p++)
        if (name && strcmp(name, *p) == 0)
            return 1;
    return 0;
}

json_t *inject_recorded_probes(json_t *spec)
{
    const char *lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i, j;
        json_t *c, *env;
        json_array_foreach(json_object_get(spec, lists[l]), i, c) {
            const char *cname = string_at(c, "name");
            if (!cname || strcmp(cname, "weft-proxy") != 0)
                continue;
            json_array_foreach(json_object_get(c, "env"), j, env) {
                const char *name = string_at(env, "name");
                const char *value = string_at(env, "value");
                if (name && value && strcmp(name, "WEFT_APP_PROBES") == 0)
                    return json_loads(value, 0, NULL);
            }
        }
    }
    return NULL;
}

/* Removes the items of spec[list] whose name is in names (or in the volumes
 * template when names is NULL). */
static void remove_named(json_t *spec, const char *list, const char *const *names, json_t *volume_tmpl)
{
    json_t *arr = json_object_get(spec, list);
    if (!json_is_array(arr))
        return;
    for (size_t i = json_array_size(arr); i-- > 0;) {
        const char *name = string_at(json_array_get(arr, i), "name");
        int hit = 0;
        if (!name)
            continue;
        if (names) {
            for (const char *const *p = names; *p && !hit; p++)
                hit = strcmp(name, *p) == 0;
        } else {
            size_t j;
            json_t *v;
            json_array_foreach(volume_tmpl, j, v)
                if (string_at(v, "name") && strcmp(string_at(v, "name"), name) == 0)
                    hit = 1;
        }
        if (hit)
            json_array_remove(arr, i);
    }
}

/* The number a probe's port names, resolving a named port against the
 * container's ports; -1 when it names nothing. */
static long probe_port(json_t *container, json_t *port)
{
    if (json_is_integer(port))
        return json_integer_value(port) >= 1 && json_integer_value(port) <= 65535 ? (long)json_integer_value(port)
                                                                                  : -1;
    if (!json_is_string(port))
        return -1;
    unsigned long v;
    if (parse_uint(json_string_value(port), 1, 65535, &v) == 0)
        return (long)v;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(container, "ports"), i, p) {
        const char *name = string_at(p, "name");
        if (name && strcmp(name, json_string_value(port)) == 0 && json_is_integer(json_object_get(p, "containerPort")))
            return (long)json_integer_value(json_object_get(p, "containerPort"));
    }
    return -1;
}

/* weft-proxy's limits for the health service name it sends (proxy/grpc_health.h):
 * a name it would refuse would stop the proxy from starting, so the pod is
 * refused here instead. */
#define GRPC_SERVICE_MAX 1024

static int grpc_service_ok(const json_t *service)
{
    if (!service)
        return 1;
    const char *s = json_string_value(service);
    if (!s || strlen(s) > GRPC_SERVICE_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 32 || *p == 127)
            return 0;
    return 1;
}

/* Rewrites one probe to the proxy's /app-health and records the original in
 * app_probes. 0, or -EINVAL with a message for a port that names nothing. */
static int rewrite_probe(json_t *container, const char *cname, const struct probe_kind *pk, long admin_port,
                         json_t *prior, json_t *app_probes, char *err, size_t errlen)
{
    json_t *probe = json_object_get(container, pk->field);
    if (!json_is_object(probe))
        return 0;
    char key[512], path[600];
    snprintf(key, sizeof key, "%s/%s", cname, pk->kind);
    snprintf(path, sizeof path, "/app-health/%s", key);
    json_t *http = json_object_get(probe, "httpGet");
    json_t *tcp = json_object_get(probe, "tcpSocket");
    json_t *grpc = json_object_get(probe, "grpc");

    if (json_is_object(http) && json_integer_value(json_object_get(http, "port")) == admin_port &&
        string_at(http, "path") && strcmp(string_at(http, "path"), path) == 0) {
        json_t *orig = prior ? json_object_get(prior, key) : NULL;
        if (orig)
            json_object_set(app_probes, key, orig); /* borrows orig */
        return 0;
    }
    json_t *action = json_is_object(http) ? http : json_is_object(tcp) ? tcp : json_is_object(grpc) ? grpc : NULL;
    /* exec probes run inside the container, where no capture rule applies;
     * a probe aimed at another host is not this pod's traffic. */
    if (!action || (string_at(action, "host") && *string_at(action, "host")))
        return 0;
    long port = probe_port(container, json_object_get(action, "port"));
    if (port < 0) {
        char *shown = json_dumps(json_object_get(action, "port"), JSON_ENCODE_ANY);
        snprintf(err, errlen, "container %s %s port %s is not a port of the container", cname, pk->field,
                 shown ? shown : "(missing)");
        free(shown);
        return -EINVAL;
    }
    if (action == grpc && !grpc_service_ok(json_object_get(grpc, "service"))) {
        snprintf(err, errlen, "container %s %s grpc.service must be at most %d bytes without control characters",
                 cname, pk->field, GRPC_SERVICE_MAX);
        return -EINVAL;
    }
    json_t *timeout = json_object_get(probe, "timeoutSeconds");
    json_t *orig = json_object();
    if (action == http) {
        json_t *h = json_pack("{s:s, s:i, s:s}", "path", string_at(http, "path") ? string_at(http, "path") : "/",
                              "port", (int)port, "scheme",
                              string_at(http, "scheme") ? string_at(http, "scheme") : "HTTP");
        if (json_object_get(http, "httpHeaders"))
            json_object_set(h, "httpHeaders", json_object_get(http, "httpHeaders"));
        json_object_set_new(orig, "httpGet", h);
    } else if (action == tcp) {
        json_object_set_new(orig, "tcpSocket", json_pack("{s:i}", "port", (int)port));
    } else {
        json_t *g = json_pack("{s:i}", "port", (int)port);
        if (json_is_string(json_object_get(grpc, "service")))
            json_object_set(g, "service", json_object_get(grpc, "service"));
        json_object_set_new(orig, "grpc", g);
    }
    json_object_set_new(orig, "timeoutSeconds", json_integer(json_is_integer(timeout) ? json_integer_value(timeout) : 1));
    json_object_set_new(app_probes, key, orig); /* steals orig */

    json_object_del(probe, "tcpSocket");
    json_object_del(probe, "grpc");
    json_object_set_new(probe, "httpGet", json_pack("{s:s, s:I, s:s}", "path", path, "port", (json_int_t)admin_port,
                                                    "scheme", "HTTP"));
    return 0;
}

static int rewrite_probes(json_t *spec, long admin_port, json_t *prior, json_t *app_probes, char *err,
                          size_t errlen)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        const char *name = string_at(c, "name");
        if (!name || is_injected_name(name))
            continue;
        for (size_t k = 0; k < sizeof probe_kinds / sizeof *probe_kinds; k++)
            if (rewrite_probe(c, name, &probe_kinds[k], admin_port, prior, app_probes, err, errlen) < 0)
                return -EINVAL;
    }
    return 0;
}

static json_t *ensure_array(json_t *obj, const char *key)
{
    json_t *arr = json_object_get(obj, key);
    if (!json_is_array(arr)) {
        arr = json_array();
        json_object_set_new(obj, key, arr); /* steals arr; still borrowed by us */
    }
    return arr;
}

static json_t *status_annotation(const struct templates *t, int native, json_t *volumes)
{
    json_t *st = json_pack("{s:s, s:[s], s:[], s:[]}", "version", t->version, "initContainers", "weft-init",
                           "containers", "volumes");
    json_array_append_new(json_object_get(st, native ? "initContainers" : "containers"), json_string("weft-proxy"));
    size_t i;
    json_t *v;
    json_array_foreach(volumes, i, v)
        json_array_append(json_object_get(st, "volumes"), json_object_get(v, "name"));
    char *text = json_dumps(st, JSON_COMPACT);
    json_t *out = json_string(text);
    free(text);
    json_decref(st);
    return out;
}

/* Builds the injected pod from a copy of pod; NULL with a message on a refusal. */
static json_t *injected_pod(const struct inject_config *c, json_t *pod, json_t *values, char *err, size_t errlen)
{
    const struct templates *t = c->templates;
    json_t *p = json_deep_copy(pod);
    json_t *spec = json_object_get(p, "spec");
    json_t *prior = inject_recorded_probes(spec);
    json_t *app_probes = json_object();
    json_t *init = NULL, *proxy = NULL, *volumes = NULL;
    int native = json_is_true(json_object_get(values, "native_sidecar"));

    remove_named(spec, "initContainers", injected_containers, NULL);
    remove_named(spec, "containers", injected_containers, NULL);
    remove_named(spec, "volumes", NULL, t->volumes);

    if (json_is_true(json_object_get(values, "rewrite_probes")) &&
        rewrite_probes(spec, (long)json_integer_value(json_object_get(values, "admin_port")), prior, app_probes,
                       err, errlen) < 0)
        goto fail;

    char *probes_text = json_dumps(app_probes, JSON_COMPACT | JSON_SORT_KEYS);
    json_object_set_new(values, "app_probes", json_string(probes_text));
    free(probes_text);
    json_object_set_new(values, "has_app_probes", json_boolean(json_object_size(app_probes) > 0));
    json_object_set_new(values, "post_start_hook", json_boolean(!native));
    json_object_set_new(values, "sidecar_restart_policy", native ? json_string("Always") : json_null());

    if (!(init = template_render(t->init_container, values, "init-container.yaml", err, errlen)) ||
        !(proxy = template_render(t->proxy_container, values, "proxy-container.yaml", err, errlen)) ||
        !(volumes = template_render(t->volumes, values, "volumes.yaml", err, errlen)))
        goto fail;

    json_t *inits = ensure_array(spec, "initContainers");
    json_array_insert(inits, 0, init);
    if (native)
        json_array_insert(inits, 1, proxy);
    else
        json_array_insert(ensure_array(spec, "containers"), 0, proxy);
    json_array_extend(ensure_array(spec, "volumes"), volumes);

    json_t *meta = json_object_get(p, "metadata");
    json_t *ann = json_object_get(meta, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(meta, "annotations", ann); /* steals ann */
    }
    json_object_set_new(ann, INJECT_STATUS_ANNOTATION, status_annotation(t, native, volumes));
    /* kubectl logs/exec would otherwise pick the proxy, now the first container. */
    json_t *app = json_array_get(json_object_get(spec, "containers"), native ? 0 : 1);
    if (!native && app && !json_object_get(ann, "kubectl.kubernetes.io/default-container"))
        json_object_set(ann, "kubectl.kubernetes.io/default-container", json_object_get(app, "name"));

    json_decref(init);
    json_decref(proxy);
    json_decref(volumes);
    json_decref(prior);
    json_decref(app_probes);
    return p;
fail:
    json_decref(init);
    json_decref(proxy);
    json_decref(volumes);
    json_decref(prior);
    json_decref(app_probes);
    json_decref(p);
    return NULL;
}

/* weft.dev/inject from an annotation or a label: 1 disabled, 0 not, -1 invalid. */
static int opted_out(json_t *meta, char *err, size_t errlen)
{
    const char *where[] = {"annotations", "labels"};
    int out = 0;
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(json_object_get(meta, where[i]), INJECT_ANNOTATION);
        if (!v)
            continue;
        const char *s = json_string_value(v);
        if (s && strcmp(s, "disabled") == 0)
            out = 1;
        else if (!s || strcmp(s, "enabled") != 0) {
            char *shown = json_dumps(v, JSON_ENCODE_ANY);
            snprintf(err, errlen, "invalid %s %s in the pod's %s: expected enabled or disabled", INJECT_ANNOTATION,
                     shown ? shown : "?", where[i]);
            free(shown);
            return -1;
        }
    }
    return out;
}

int inject_screen(const struct inject_config *c, const char *ns, json_t *pod, struct inject_result *out)
{
    json_t *meta = json_object_get(pod, "metadata");
    json_t *spec = json_object_get(pod, "spec");
    char *msg = out->message;
    const size_t len = sizeof out->message;

    memset(out, 0, sizeof *out);
    out->outcome = INJECT_SKIPPED;
    if (!json_is_object(meta) || !json_is_object(spec)) {
        snprintf(msg, len, "the pod has no metadata or spec");
        out->outcome = INJECT_DENIED;
        out->reason = "invalid-pod";
        return 1;
    }
    if (inject_namespace_ignored(c, ns)) {
        snprintf(msg, len, "namespace %s is ignored by the mesh", ns);
        out->reason = "ignored-namespace";
        return 1;
    }
    int off = opted_out(meta, msg, len);
    if (off < 0) {
        out->outcome = INJECT_DENIED;
        out->reason = "invalid-override";
        return 1;
    }
    if (off) {
        snprintf(msg, len, "the pod opts out with %s: disabled", INJECT_ANNOTATION);
        out->reason = "opted-out";
        return 1;
    }
    if (json_is_true(json_object_get(spec, "hostNetwork"))) {
        snprintf(msg, len, "the pod uses the host network");
        out->reason = "host-network";
        return 1;
    }
    return 0;
}

json_t *inject_pod_build(const struct inject_config *c, const char *ns, json_t *pod, json_t *ns_annotations,
                         struct inject_result *out)
{
    if (inject_screen(c, ns, pod, out))
        return NULL;
    char *msg = out->message;
    const size_t len = sizeof out->message;
    json_t *values = settings_resolve(c->base_values, ns_annotations, ns,
                                      json_object_get(json_object_get(pod, "metadata"), "annotations"), msg,
                                      len);
    if (!values) {
        out->outcome = INJECT_DENIED;
        out->reason = "invalid-override";
        return NULL;
    }
    json_t *injected = injected_pod(c, pod, values, msg, len);
    json_decref(values);
    if (!injected) {
        out->outcome = INJECT_DENIED;
        out->reason = "invalid-pod";
        return NULL;
    }
    snprintf(msg, len, "injected");
    out->outcome = INJECT_INJECTED;
    out->reason = "injected";
    return injected;
}

void inject_pod(const struct inject_config *c, const char *ns, json_t *pod, json_t *ns_annotations,
                struct inject_result *out)
{
    json_t *injected = inject_pod_build(c, ns, pod, ns_annotations, out);
    if (injected)
        out->patch = patch_diff(pod, injected);
    json_decref(injected);
}
