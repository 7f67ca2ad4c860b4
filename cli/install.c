/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl install's rendering; see install.h. mesh.yaml is changed as data
 * (lib/yamljson in, lib/yamlout out, lib/settings to check the result), so
 * a --set value is judged exactly as weft-webhook would judge it. */
#include "install.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "buf.h"
#include "errbuf.h"
#include "settings.h"
#include "xalloc.h"
#include "yamljson.h"
#include "yamlout.h"

#define NS "weft-system"

void install_settings_init(struct install_settings *s)
{
    s->days = INSTALL_DEFAULT_DAYS;
    s->cert_manager = 0;
    s->webhook_replicas = -1;
    s->mesh = json_object();
}

void install_settings_free(struct install_settings *s)
{
    json_decref(s->mesh);
    s->mesh = NULL;
}

static int parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    if (!*v || *v == '-' || *v == '+')
        return -1;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int install_set(struct install_settings *s, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        errbuf_set(err, errlen, "--set \"%s\": expected key=value", kv);
        return -EINVAL;
    }
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    const char *v = eq + 1;
    long n;
    if (strcmp(key, "certificates.days") == 0) {
        if (parse_long(v, 1, INSTALL_MAX_DAYS, &n) < 0) {
            errbuf_set(err, errlen, "--set certificates.days=%s: expected a whole number of days from 1 to %d", v,
                       INSTALL_MAX_DAYS);
            return -EINVAL;
        }
        s->days = (int)n;
    } else if (strcmp(key, "certManager") == 0) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            errbuf_set(err, errlen, "--set certManager=%s: expected true or false", v);
            return -EINVAL;
        }
        s->cert_manager = strcmp(v, "true") == 0;
    } else if (strcmp(key, "webhook.replicas") == 0) {
        if (parse_long(v, 1, 100, &n) < 0) {
            errbuf_set(err, errlen, "--set webhook.replicas=%s: expected a number from 1 to 100", v);
            return -EINVAL;
        }
        s->webhook_replicas = n;
    } else if (strncmp(key, "mesh.", 5) == 0 && key[5]) {
        /* typed as a YAML plain scalar would be in mesh.yaml: 8, true, STRICT */
        char perr[256];
        json_t *val = yamljson_parse(v, strlen(v), "value", perr, sizeof perr);
        if (!val || json_is_object(val) || json_is_array(val)) {
            json_decref(val);
            errbuf_set(err, errlen, "--set %s=%s: expected a single value", key, v);
            return -EINVAL;
        }
        json_object_set_new(s->mesh, key + 5, val); /* steals val */
    } else {
        errbuf_set(err, errlen,
                   "--set %s: unknown key (known: certificates.days, certManager, webhook.replicas, "
                   "mesh.<a key of mesh.yaml, dotted>)", key);
        return -EINVAL;
    }
    return 0;
}

static const char *str_at(json_t *v, const char *a, const char *b)
{
    json_t *x = json_object_get(v, a);
    return json_string_value(b ? json_object_get(x, b) : x);
}

/* The document of kind and name (weft-system's when namespaced), or NULL. */
static json_t *find(json_t *docs, const char *kind, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        const char *k = str_at(d, "kind", NULL), *n = str_at(d, "metadata", "name");
        if (k && n && strcmp(k, kind) == 0 && strcmp(n, name) == 0)
            return d;
    }
    return NULL;
}

static json_t *tls_secret(const char *name, const char *crt, const char *key)
{
    char *c64 = b64_encode(crt, strlen(crt)), *k64 = b64_encode(key, strlen(key));
    json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                          "Secret", "metadata", "name", name, "namespace", NS, "labels", "app.kubernetes.io/part-of",
                          "weft", "type", "kubernetes.io/tls", "data", "tls.crt", c64, "tls.key", k64);
    explicit_bzero(k64, strlen(k64));
    free(c64);
    free(k64);
    return s;
}

/* Sets path (dotted) in mesh to value; the key must exist already, so a typo
 * is an error rather than a setting nobody reads. */
static int mesh_set(json_t *mesh, const char *path, json_t *value, char *err, size_t errlen)
{
    char *copy = xstrdup(path), *p = copy;
    json_t *cur = mesh;
    int rc = -EINVAL;
    for (;;) {
        char *dot = strchr(p, '.');
        if (dot)
            *dot = '\0';
        if (!json_is_object(cur) || !json_object_get(cur, p)) {
            errbuf_set(err, errlen, "--set mesh.%s: mesh.yaml has no %s", path, path);
            goto out;
        }
        if (!dot) {
            if (json_is_object(json_object_get(cur, p)) || json_is_array(json_object_get(cur, p))) {
                errbuf_set(err, errlen, "--set mesh.%s: not a single value in mesh.yaml", path);
                goto out;
            }
            /* mesh.yaml keeps strings quoted where a number would read otherwise ("1") */
            json_t *old = json_object_get(cur, p);
            if (json_is_string(old) && !json_is_string(value)) {
                char *text = json_dumps(value, JSON_ENCODE_ANY);
                json_object_set_new(cur, p, json_string(text)); /* steals the string */
                free(text);
            } else {
                json_object_set(cur, p, value); /* borrows value */
            }
            rc = 0;
            goto out;
        }
        cur = json_object_get(cur, p);
        p = dot + 1;
    }
out:
    free(copy);
    return rc;
}

static int render_mesh(json_t *out, const struct install_settings *s, char *err, size_t errlen)
{
    if (json_object_size(s->mesh) == 0)
        return 0;
    json_t *cm = find(out, "ConfigMap", "weft-config");
    const char *text = str_at(json_object_get(cm, "data"), "mesh.yaml", NULL);
    char perr[1024];
    int rc = -EINVAL;
    json_t *mesh = NULL, *vals = NULL, *docs = NULL;
    struct buf b;
    buf_init(&b, YAMLJSON_MAX_BYTES);
    if (!text) {
        errbuf_set(err, errlen, "the manifests have no ConfigMap weft-config with mesh.yaml");
        goto out;
    }
    if (!(mesh = yamljson_parse(text, strlen(text), "weft-config mesh.yaml", err, errlen)))
        goto out;
    const char *key;
    json_t *v;
    json_object_foreach(s->mesh, key, v) if (mesh_set(mesh, key, v, err, errlen) < 0) goto out;
    if (!(vals = settings_from_mesh(mesh, perr, sizeof perr))) {
        errbuf_set(err, errlen, "--set: %s", perr);
        goto out;
    }
    docs = json_pack("[O]", mesh);
    if (yamlout_write(docs, &b, err, errlen) < 0)
        goto out;
    json_object_set_new(json_object_get(cm, "data"), "mesh.yaml", json_string(buf_cstr(&b)));
    /* weft-identity and weft-discovery take the trust domain as a flag: keep it in step */
    const char *td = json_string_value(json_object_get(vals, "trust_domain"));
    static const char *const takes_td[] = {"weft-identity", "weft-discovery"};
    for (size_t d = 0; d < sizeof takes_td / sizeof *takes_td; d++) {
        json_t *dep = find(out, "Deployment", takes_td[d]);
        json_t *args = json_object_get(json_array_get(json_object_get(json_object_get(json_object_get(
                                                          json_object_get(dep, "spec"), "template"), "spec"),
                                                      "containers"), 0), "args");
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a) {
            const char *t = json_string_value(a);
            if (t && td && strncmp(t, "--trust-domain=", 15) == 0) {
                char *flag = xasprintf("--trust-domain=%s", td);
                json_array_set_new(args, i, json_string(flag));
                free(flag);
            }
        }
    }
    rc = 0;
out:
    buf_free(&b);
    json_decref(docs);
    json_decref(vals);
    json_decref(mesh);
    return rc;
}

json_t *install_render(json_t *docs, const struct install_certs *c, const struct install_settings *s, char *err,
                       size_t errlen)
{
    json_t *out = json_deep_copy(docs);
    json_t *tb = find(out, "ConfigMap", "weft-trust-bundle");
    json_t *mwc = find(out, "MutatingWebhookConfiguration", "weft-webhook");
    if (!json_is_array(out) || !find(out, "Namespace", NS) || !tb || !mwc) {
        errbuf_set(err, errlen, "the manifests lack Namespace %s, ConfigMap weft-trust-bundle or "
                   "MutatingWebhookConfiguration weft-webhook: not the output of manifests/", NS);
        goto fail;
    }
    if (!json_is_object(json_object_get(tb, "data")))
        json_object_set_new(tb, "data", json_object());
    json_object_set_new(json_object_get(tb, "data"), "ca.crt", json_string(c->root));
    if (!s->cert_manager) {
        char *ca64 = b64_encode(c->webhook_ca, strlen(c->webhook_ca));
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(mwc, "webhooks"), i, h) {
            json_t *cc = json_object_get(h, "clientConfig");
            if (json_is_object(cc))
                json_object_set_new(cc, "caBundle", json_string(ca64));
        }
        free(ca64);
    }
    if (s->webhook_replicas > 0) {
        json_t *dep = find(out, "Deployment", "weft-webhook");
        if (!dep) {
            errbuf_set(err, errlen, "--set webhook.replicas: the manifests have no Deployment weft-webhook");
            goto fail;
        }
        json_object_set_new(json_object_get(dep, "spec"), "replicas", json_integer(s->webhook_replicas));
    }
    if (render_mesh(out, s, err, errlen) < 0)
        goto fail;
    /* after the Namespace (first in kustomize's order), so one apply creates them in it */
    json_array_append_new(out, tls_secret("weft-identity-issuer", c->issuer_crt, c->issuer_key));
    json_array_append_new(out, tls_secret("weft-identity-tls", c->identity_crt, c->identity_key));
    if (!s->cert_manager)
        json_array_append_new(out, tls_secret("weft-webhook-tls", c->webhook_crt, c->webhook_key));
    /* only where the manifests run weft-discovery (a manifests/ from before it has none to serve) */
    if (find(out, "Deployment", "weft-discovery")) {
        if (!c->discovery_crt || !c->discovery_key) {
            errbuf_set(err, errlen, "the manifests run weft-discovery but no certificate was given for it");
            goto fail;
        }
        json_array_append_new(out, tls_secret("weft-discovery-tls", c->discovery_crt, c->discovery_key));
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}
