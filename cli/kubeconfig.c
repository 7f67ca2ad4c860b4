/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig; see kubeconfig.h. The resolver works on parsed documents only
 * (it is what the fuzzer drives); files and the exec plugin are read by the
 * two shell functions at the end. */
#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "buf.h"
#include "errbuf.h"
#include "k8s.h"
#include "xalloc.h"
#include "yamljson.h"

extern char **environ;

#define EXEC_V1 "client.authentication.k8s.io/v1"
#define EXEC_V1BETA1 "client.authentication.k8s.io/v1beta1"

/* ---------- pure resolver ---------- */

/* Where an entry was found: its file (for messages and relative paths). */
struct found {
    json_t *entry;    /* the inner object ("cluster", "user", "context"); borrowed */
    const char *path; /* the file */
    size_t index;     /* in the file's list, for messages */
};

/* "dir of path" + "/" + rel, or rel when absolute. */
static char *resolve_path(const char *file, const char *rel)
{
    if (rel[0] == '/')
        return xstrdup(rel);
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    const char *slash = strrchr(file, '/');
    if (!slash)
        return xstrdup(rel);
    return xasprintf("%.*s/%s", (int)(slash - file), file, rel);
}

/* A string member or NULL; -EINVAL when present and not a string. */
static int get_string(json_t *obj, const char *key, const char **out, const char *where, char *err,
                      size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        errbuf_set(err, errlen, "%s: %s: expected a string", where, key);
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

/* The first entry named name in list `list` ("clusters", "users", "contexts")
 * of any file, whose inner object is under `inner`. 1 found, 0 not, -EINVAL
 * for a malformed list (a later duplicate is ignored, as kubectl does). */
static int find_named(const struct kubeconfig_file *files, size_t n, const char *list, const char *inner,
                      const char *name, struct found *out, char *err, size_t errlen)
{
    for (size_t f = 0; f < n; f++) {
        if (!files[f].doc)
            continue;
        json_t *arr = json_object_get(files[f].doc, list);
        if (!arr || json_is_null(arr))
            continue;
        if (!json_is_array(arr)) {
            errbuf_set(err, errlen, "%s: %s: expected a list", files[f].path, list);
            return -EINVAL;
        }
        size_t i;
        json_t *item;
        json_array_foreach(arr, i, item) {
            json_t *nm = json_object_get(item, "name");
            if (!json_is_object(item) || !json_is_string(nm)) {
                errbuf_set(err, errlen, "%s: %s[%zu]: expected an object with a name", files[f].path, list, i);
                return -EINVAL;
            }
            if (strcmp(json_string_value(nm), name) != 0)
                continue;
            json_t *in = json_object_get(item, inner);
            if (in && !json_is_null(in) && !json_is_object(in)) {
                errbuf_set(err, errlen, "%s: %s[%zu] (\"%s\"): %s: expected an object", files[f].path, list, i,
                           name, inner);
                return -EINVAL;
            }
            out->entry = json_is_object(in) ? in : NULL;
            out->path = files[f].path;
            out->index = i;
            return 1;
        }
    }
    return 0;
}

/* The names in list of every file, for a "not found" message. */
static void list_names(const struct kubeconfig_file *files, size_t n, const char *list, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b, outlen > 16 ? outlen - 16 : 0);
    for (size_t f = 0; f < n; f++) {
        json_t *arr = files[f].doc ? json_object_get(files[f].doc, list) : NULL;
        size_t i;
        json_t *item;
        json_array_foreach(arr, i, item) {
            const char *nm = json_string_value(json_object_get(item, "name"));
            if (nm && buf_appendf(&b, "%s\"%s\"", b.len ? ", " : "", nm) < 0)
                goto done;
        }
    }
done:
    snprintf(out, outlen, "%s", b.len ? buf_cstr(&b) : "none");
    buf_free(&b);
}

/* https://host[:port][/prefix] into the target; IPv6 literals in brackets. */
static int parse_server(struct kube_target *t, const char *where, char *err, size_t errlen)
{
    const char *s = t->server;
    if (strncmp(s, "https://", 8) != 0) {
        errbuf_set(err, errlen, "%s: server \"%s\": only https:// servers are supported", where, s);
        return -EINVAL;
    }
    s += 8;
    const char *end = s + strcspn(s, "/?#");
    const char *hend, *portp = NULL;
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb || rb == s + 1)
            goto bad;
        hend = rb;
        s++;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                goto bad;
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        hend = colon ? colon : end;
        if (colon)
            portp = colon + 1;
    }
    size_t hlen = (size_t)(hend - s);
    if (hlen == 0 || hlen >= sizeof t->host)
        goto bad;
    memcpy(t->host, s, hlen);
    t->host[hlen] = '\0';
    for (size_t i = 0; i < hlen; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:_", t->host[i]))
            goto bad;
    if (portp) {
        size_t plen = (size_t)(end - portp);
        unsigned long v = 0;
        if (plen == 0 || plen > 5)
            goto bad;
        for (const char *p = portp; p < end; p++) {
            if (*p < '0' || *p > '9')
                goto bad;
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v < 1 || v > 65535)
            goto bad;
        snprintf(t->port, sizeof t->port, "%lu", v);
    } else {
        snprintf(t->port, sizeof t->port, "443");
    }
    if (*end && *end != '/')
        goto bad; /* a query or fragment has no meaning here */
    size_t plen = strlen(end);
    while (plen > 0 && end[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)end[i] <= 0x20 || (unsigned char)end[i] >= 0x7f || strchr("?#", end[i]))
            goto bad;
    t->path_prefix = xstrndup(end, plen);
    return 0;
bad:
    errbuf_set(err, errlen, "%s: server \"%s\": not a URL of the form https://host[:port][/path]", where,
               t->server);
    return -EINVAL;
}

/* A "<name>-data" (base64) or "<name>" (file) pair into b. Inline data wins,
 * as in kubectl. */
static int get_blob(json_t *obj, const char *file_key, const char *data_key, const char *path,
                    struct kube_blob *b, const char *where, char *err, size_t errlen)
{
    const char *file, *data;
    if (get_string(obj, file_key, &file, where, err, errlen) < 0 ||
        get_string(obj, data_key, &data, where, err, errlen) < 0)
        return -EINVAL;
    if (data && *data) {
        if (!(b->data = b64_decode(data, strlen(data), &b->len)) || b->len == 0) {
            free(b->data);
            b->data = NULL;
            errbuf_set(err, errlen, "%s: %s: not base64", where, data_key);
            return -EINVAL;
        }
    } else if (file && *file) {
        b->file = resolve_path(path, file);
    }
    return 0;
}

static char **string_list(json_t *arr, const char *first, const char *where, const char *key, char *err,
                          size_t errlen)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0, k = 0;
    if (arr && !json_is_null(arr) && !json_is_array(arr)) {
        errbuf_set(err, errlen, "%s: %s: expected a list", where, key);
        return NULL;
    }
    char **out = xcalloc(n + 2, sizeof *out);
    if (first)
        out[k++] = xstrdup(first);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v)) {
            errbuf_set(err, errlen, "%s: %s[%zu]: expected a string", where, key, i);
            goto bad;
        }
        out[k++] = xstrdup(json_string_value(v));
    }
    return out;
bad:
    for (size_t i = 0; i < k; i++)
        free(out[i]);
    free(out);
    return NULL;
}

static int parse_exec(struct kube_target *t, json_t *exec, const char *path, const char *where, char *err,
                      size_t errlen)
{
    const char *api, *cmd, *mode;
    char w[600];
    snprintf(w, sizeof w, "%s: exec", where);
    if (!json_is_object(exec)) {
        errbuf_set(err, errlen, "%s: expected an object", w);
        return -EINVAL;
    }
    if (get_string(exec, "apiVersion", &api, w, err, errlen) < 0 ||
        get_string(exec, "command", &cmd, w, err, errlen) < 0 ||
        get_string(exec, "interactiveMode", &mode, w, err, errlen) < 0)
        return -EINVAL;
    if (!api || (strcmp(api, EXEC_V1) != 0 && strcmp(api, EXEC_V1BETA1) != 0)) {
        errbuf_set(err, errlen, "%s: apiVersion \"%s\": weftctl speaks " EXEC_V1 " and " EXEC_V1BETA1, w,
                   api ? api : "");
        return -EINVAL;
    }
    if (!cmd || !*cmd) {
        errbuf_set(err, errlen, "%s: command is missing", w);
        return -EINVAL;
    }
    if (mode && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0 && strcmp(mode, "Always") != 0) {
        errbuf_set(err, errlen, "%s: interactiveMode \"%s\": expected Never, IfAvailable or Always", w, mode);
        return -EINVAL;
    }
    t->has_exec = 1;
    t->exec.api_version = xstrdup(api);
    /* client-go resolves a command with a '/' in it against the kubeconfig's
     * directory; a bare name is looked up in PATH. */
    t->exec.command = strchr(cmd, '/') ? resolve_path(path, cmd) : xstrdup(cmd);
    t->exec.interactive_always = mode && strcmp(mode, "Always") == 0;
    if (!(t->exec.argv = string_list(json_object_get(exec, "args"), t->exec.command, w, "args", err, errlen)))
        return -EINVAL;
    json_t *env = json_object_get(exec, "env");
    size_t n = json_is_array(env) ? json_array_size(env) : 0;
    if (env && !json_is_null(env) && !json_is_array(env)) {
        errbuf_set(err, errlen, "%s: env: expected a list", w);
        return -EINVAL;
    }
    t->exec.env = xcalloc(n + 1, sizeof *t->exec.env);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(env, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *value = json_string_value(json_object_get(e, "value"));
        if (!name || !*name || strchr(name, '=') || !value) {
            errbuf_set(err, errlen, "%s: env[%zu]: expected {name, value} strings", w, i);
            return -EINVAL;
        }
        t->exec.env[i] = xasprintf("%s=%s", name, value);
    }
    return 0;
}

static int parse_user(struct kube_target *t, const struct found *u, char *err, size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s: user \"%s\"", u->path, t->user);
    json_t *o = u->entry;
    if (!o)
        return 0; /* an empty user: anonymous */
    static const char *const unsupported[] = {"username", "password", "auth-provider", "as", "as-groups", NULL};
    for (size_t i = 0; unsupported[i]; i++)
        if (json_object_get(o, unsupported[i])) {
            errbuf_set(err, errlen, "%s: %s is not supported by weftctl (client certificates, tokens and exec "
                       "plugins are)", where, unsupported[i]);
            return -EINVAL;
        }
    const char *token, *token_file;
    if (get_blob(o, "client-certificate", "client-certificate-data", u->path, &t->cert, where, err, errlen) < 0 ||
        get_blob(o, "client-key", "client-key-data", u->path, &t->key, where, err, errlen) < 0 ||
        get_string(o, "token", &token, where, err, errlen) < 0 ||
        get_string(o, "tokenFile", &token_file, where, err, errlen) < 0)
        return -EINVAL;
    int has_cert = t->cert.data || t->cert.file, has_key = t->key.data || t->key.file;
    if (has_cert != has_key) {
        errbuf_set(err, errlen, "%s: %s without %s", where, has_cert ? "client-certificate" : "client-key",
                   has_cert ? "client-key" : "client-certificate");
        return -EINVAL;
    }
    if (token && *token)
        t->token = xstrdup(token); /* a token wins over tokenFile, as in kubectl */
    else if (token_file && *token_file)
        t->token_file = resolve_path(u->path, token_file);
    json_t *exec = json_object_get(o, "exec");
    if (exec && !json_is_null(exec) && parse_exec(t, exec, u->path, where, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

static int parse_cluster(struct kube_target *t, const struct found *c, char *err, size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s: cluster \"%s\"", c->path, t->cluster);
    const char *server, *sni;
    json_t *o = c->entry;
    if (!o) {
        errbuf_set(err, errlen, "%s: has no server", where);
        return -EINVAL;
    }
    if (get_string(o, "server", &server, where, err, errlen) < 0 ||
        get_string(o, "tls-server-name", &sni, where, err, errlen) < 0)
        return -EINVAL;
    if (!server || !*server) {
        errbuf_set(err, errlen, "%s: has no server", where);
        return -EINVAL;
    }
    t->server = xstrdup(server);
    if (parse_server(t, where, err, errlen) < 0)
        return -EINVAL;
    if (sni && *sni)
        t->tls_server_name = xstrdup(sni);
    if (json_object_get(o, "proxy-url")) {
        /* connecting straight past a proxy the cluster is only reached through would fail obscurely */
        errbuf_set(err, errlen, "%s: proxy-url is not supported by weftctl", where);
        return -EINVAL;
    }
    json_t *insecure = json_object_get(o, "insecure-skip-tls-verify");
    if (insecure && !json_is_boolean(insecure) && !json_is_null(insecure)) {
        errbuf_set(err, errlen, "%s: insecure-skip-tls-verify: expected true or false", where);
        return -EINVAL;
    }
    t->insecure = json_is_true(insecure);
    if (get_blob(o, "certificate-authority", "certificate-authority-data", c->path, &t->ca, where, err, errlen) < 0)
        return -EINVAL;
    if (t->insecure && (t->ca.data || t->ca.file)) {
        /* kubectl refuses the pair too: which one was meant cannot be told */
        errbuf_set(err, errlen, "%s: insecure-skip-tls-verify together with a certificate authority", where);
        return -EINVAL;
    }
    return 0;
}

int kubeconfig_resolve(const struct kubeconfig_file *files, size_t n, const struct kubeconfig_options *o,
                       struct kube_target *out, char *err, size_t errlen)
{
    int rc = -EINVAL;
    struct buf src;
    buf_init(&src, 64 * 1024);
    memset(out, 0, sizeof *out);
    for (size_t f = 0; f < n; f++) {
        if (files[f].doc && !json_is_object(files[f].doc)) {
            errbuf_set(err, errlen, "%s: not a kubeconfig (expected a mapping)", files[f].path);
            goto out;
        }
        if (buf_appendf(&src, "%s%s", f ? ":" : "", files[f].path) < 0)
            break;
    }
    out->sources = xstrdup(src.len ? buf_cstr(&src) : "");
    const char *ctx = o->context;
    const char *from = NULL;
    for (size_t f = 0; !ctx && f < n; f++) {
        const char *cur = NULL;
        if (files[f].doc && get_string(files[f].doc, "current-context", &cur, files[f].path, err, errlen) < 0)
            goto out;
        if (cur && *cur) {
            ctx = cur;
            from = files[f].path;
        }
    }
    if (!ctx || !*ctx) {
        errbuf_set(err, errlen, "%s: no current-context is set and --context was not given", out->sources);
        goto out;
    }
    out->context = xstrdup(ctx);
    struct found fc = {0}, fl = {0}, fu = {0};
    int got = find_named(files, n, "contexts", "context", ctx, &fc, err, errlen);
    if (got < 0)
        goto out;
    if (got == 0) {
        char names[512];
        list_names(files, n, "contexts", names, sizeof names);
        errbuf_set(err, errlen, "%s: context \"%s\"%s%s%s not found (contexts: %s)", out->sources, ctx,
                   from ? " (current-context of " : " (--context)", from ? from : "", from ? ")" : "", names);
        rc = -ENOENT;
        goto out;
    }
    char where[512];
    snprintf(where, sizeof where, "%s: context \"%s\"", fc.path, ctx);
    const char *cluster = NULL, *user = NULL, *ns = NULL;
    if (fc.entry && (get_string(fc.entry, "cluster", &cluster, where, err, errlen) < 0 ||
                     get_string(fc.entry, "user", &user, where, err, errlen) < 0 ||
                     get_string(fc.entry, "namespace", &ns, where, err, errlen) < 0))
        goto out;
    if (!cluster || !*cluster) {
        errbuf_set(err, errlen, "%s: names no cluster", where);
        goto out;
    }
    out->cluster = xstrdup(cluster);
    if ((got = find_named(files, n, "clusters", "cluster", cluster, &fl, err, errlen)) < 0)
        goto out;
    if (got == 0) {
        errbuf_set(err, errlen, "%s: cluster \"%s\" not found", where, cluster);
        rc = -ENOENT;
        goto out;
    }
    if (parse_cluster(out, &fl, err, errlen) < 0)
        goto out;
    if (user && *user) {
        out->user = xstrdup(user);
        if ((got = find_named(files, n, "users", "user", user, &fu, err, errlen)) < 0)
            goto out;
        if (got == 0) {
            errbuf_set(err, errlen, "%s: user \"%s\" not found", where, user);
            rc = -ENOENT;
            goto out;
        }
        if (parse_user(out, &fu, err, errlen) < 0)
            goto out;
    }
    const char *want_ns = o->ns && *o->ns ? o->ns : ns && *ns ? ns : "default";
    out->ns = xstrdup(want_ns);
    rc = 0;
out:
    buf_free(&src);
    if (rc < 0)
        kube_target_free(out);
    return rc;
}

static void blob_free(struct kube_blob *b)
{
    free(b->data);
    free(b->file);
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void kube_target_free(struct kube_target *t)
{
    free(t->context);
    free(t->cluster);
    free(t->user);
    free(t->server);
    free(t->path_prefix);
    free(t->tls_server_name);
    blob_free(&t->ca);
    blob_free(&t->cert);
    blob_free(&t->key);
    free(t->token);
    free(t->token_file);
    free(t->exec.api_version);
    free(t->exec.command);
    strv_free(t->exec.argv);
    strv_free(t->exec.env);
    free(t->ns);
    free(t->sources);
    memset(t, 0, sizeof *t);
}

int kubeconfig_exec_parse(const char *text, size_t len, const char *api_version, char **token, char **cert,
                          char **key, char *err, size_t errlen)
{
    json_error_t jerr;
    int rc = -EINVAL;
    *token = *cert = *key = NULL;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        errbuf_set(err, errlen, "printed no ExecCredential JSON (%s at line %d)", jerr.text, jerr.line);
        return -EINVAL;
    }
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *api = json_string_value(json_object_get(doc, "apiVersion"));
    json_t *st = json_object_get(doc, "status");
    if (!kind || strcmp(kind, "ExecCredential") != 0) {
        errbuf_set(err, errlen, "printed kind \"%s\", not ExecCredential", kind ? kind : "");
        goto out;
    }
    if (!api || strcmp(api, api_version) != 0) {
        errbuf_set(err, errlen, "printed apiVersion \"%s\", asked for %s", api ? api : "", api_version);
        goto out;
    }
    if (!json_is_object(st)) {
        errbuf_set(err, errlen, "printed an ExecCredential without status");
        goto out;
    }
    const char *tok = json_string_value(json_object_get(st, "token"));
    const char *c = json_string_value(json_object_get(st, "clientCertificateData"));
    const char *k = json_string_value(json_object_get(st, "clientKeyData"));
    if ((c && *c) != (k && *k)) {
        errbuf_set(err, errlen, "printed %s without %s", c && *c ? "clientCertificateData" : "clientKeyData",
                   c && *c ? "clientKeyData" : "clientCertificateData");
        goto out;
    }
    if (!(tok && *tok) && !(c && *c)) {
        errbuf_set(err, errlen, "printed an ExecCredential with neither a token nor a client certificate");
        goto out;
    }
    for (const char *p = tok; p && *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) {
            errbuf_set(err, errlen, "printed a token with a space or control character in it");
            goto out;
        }
    if (tok && *tok)
        *token = xstrdup(tok);
    if (c && *c) {
        *cert = xstrdup(c);
        *key = xstrdup(k);
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

/* ---------- shell: files and the exec plugin ---------- */

static int read_small(const char *path, struct buf *b, const char *what, char *err, size_t errlen)
{
    buf_init(b, KUBECONFIG_MAX_BYTES);
    int r = buf_read_file(b, path);
    if (r < 0) {
        errbuf_set(err, errlen, "%s %s: %s", what, path, r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
        buf_free(b);
        return r;
    }
    buf_cstr(b);
    return 0;
}

/* A kubeconfig document for the pod's own service account (KUBERNETES_SERVICE_HOST
 * and _PORT, the mounted token, CA and namespace), or NULL when not in a pod. */
static json_t *in_cluster_doc(void)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    struct stat st;
    if (!host || !*host || !port || !*port || stat(K8S_SA_DIR "/token", &st) < 0)
        return NULL;
    char server[300], ns[256] = "default";
    snprintf(server, sizeof server, "https://%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", port);
    struct buf b;
    buf_init(&b, 255);
    if (buf_read_file(&b, K8S_SA_DIR "/namespace") == 0 && b.len) {
        size_t n = strcspn(buf_cstr(&b), " \t\r\n");
        if (n)
            snprintf(ns, sizeof ns, "%.*s", (int)n, b.data);
    }
    buf_free(&b);
    return json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}], s:[{s:s, s:{s:s}}], s:[{s:s, s:{s:s, s:s, s:s}}]}",
                     "current-context", "in-cluster",
                     "clusters", "name", "in-cluster", "cluster", "server", server, "certificate-authority",
                     K8S_SA_DIR "/ca.crt",
                     "users", "name", "in-cluster", "user", "tokenFile", K8S_SA_DIR "/token",
                     "contexts", "name", "in-cluster", "context", "cluster", "in-cluster", "user", "in-cluster",
                     "namespace", ns);
}

/* Finds and parses the files in merge order, then calls fn on them. */
static int with_files(const struct kubeconfig_options *o,
                      int (*fn)(const struct kubeconfig_file *files, size_t n, void *arg, char *err, size_t errlen),
                      void *arg, char *err, size_t errlen)
{
    struct kubeconfig_file files[KUBECONFIG_MAX_FILES];
    size_t n = 0;
    int rc = -ENOENT;
    char *list = NULL, *home_path = NULL, *save = NULL;
    const char *env = getenv("KUBECONFIG");
    if (o->kubeconfig) {
        list = xstrdup(o->kubeconfig);
    } else if (env && *env) {
        list = xstrdup(env);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            errbuf_set(err, errlen, "no kubeconfig: HOME is not set (use --kubeconfig or KUBECONFIG)");
            goto out;
        }
        home_path = xasprintf("%s/.kube/config", home);
        list = xstrdup(home_path);
    }
    /* --kubeconfig names one file (a ':' is part of its name); KUBECONFIG is a list */
    save = list;
    int single = o->kubeconfig || home_path;
    for (char *p = list; p && n < KUBECONFIG_MAX_FILES;) {
        char *colon = single ? NULL : strchr(p, ':');
        if (colon)
            *colon = '\0';
        if (*p) {
            struct stat st;
            if (stat(p, &st) < 0 && home_path && errno == ENOENT && (files[n].doc = in_cluster_doc())) {
                /* no ~/.kube/config in a pod: its service account, as kubectl falls back to it */
                files[n++].path = "in-cluster service account";
            } else if (stat(p, &st) < 0) {
                if (single || errno != ENOENT) {
                    errbuf_set(err, errlen, "kubeconfig %s: %s%s", p, strerror(errno),
                               home_path ? " (set KUBECONFIG or use --kubeconfig)" : "");
                    goto out;
                }
            } else {
                struct buf b;
                if ((rc = read_small(p, &b, "kubeconfig", err, errlen)) < 0)
                    goto out;
                files[n].path = p;
                files[n].doc = NULL;
                json_t *docs = yamljson_parse_all(b.data ? b.data : "", b.len, p, err, errlen);
                buf_free(&b);
                if (!docs) {
                    rc = -EINVAL;
                    goto out;
                }
                if (json_array_size(docs) > 1) {
                    json_decref(docs);
                    errbuf_set(err, errlen, "%s: more than one YAML document", p);
                    rc = -EINVAL;
                    goto out;
                }
                files[n].doc = json_incref(json_array_get(docs, 0)); /* NULL for an empty file */
                json_decref(docs);
                n++;
            }
        }
        p = colon ? colon + 1 : NULL;
    }
    if (n == 0) {
        errbuf_set(err, errlen, "KUBECONFIG=%s: none of its files exists", env);
        rc = -ENOENT;
        goto out;
    }
    rc = fn(files, n, arg, err, errlen);
out:
    for (size_t i = 0; i < n; i++)
        json_decref(files[i].doc);
    free(save);
    free(home_path);
    return rc;
}

struct resolve_arg {
    const struct kubeconfig_options *o;
    struct kube_target *out;
};

static int resolve_fn(const struct kubeconfig_file *files, size_t n, void *arg, char *err, size_t errlen)
{
    struct resolve_arg *a = arg;
    return kubeconfig_resolve(files, n, a->o, a->out, err, errlen);
}

int kubeconfig_load(const struct kubeconfig_options *o, struct kube_target *out, char *err, size_t errlen)
{
    struct resolve_arg a = {o, out};
    memset(out, 0, sizeof *out);
    return with_files(o, resolve_fn, &a, err, errlen);
}

static int names_fn(const struct kubeconfig_file *files, size_t n, void *arg, char *err, size_t errlen)
{
    struct buf *out = arg;
    (void)err;
    (void)errlen;
    for (size_t f = 0; f < n; f++) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(files[f].doc, "contexts"), i, item) {
            const char *nm = json_string_value(json_object_get(item, "name"));
            if (nm)
                buf_appendf(out, "%s\n", nm);
        }
    }
    return 0;
}

int kubeconfig_context_names(const struct kubeconfig_options *o, struct buf *out, char *err, size_t errlen)
{
    return with_files(o, names_fn, out, err, errlen);
}

static int load_blob(struct kube_blob *b, const char *what, char *err, size_t errlen)
{
    if (b->data || !b->file)
        return 0;
    struct buf in;
    int r = read_small(b->file, &in, what, err, errlen);
    if (r < 0)
        return r;
    b->data = buf_steal(&in, &b->len);
    if (!b->data || b->len == 0) {
        free(b->data);
        b->data = NULL;
        errbuf_set(err, errlen, "%s %s: empty", what, b->file);
        return -EINVAL;
    }
    return 0;
}

/* Runs the plugin with stdin from /dev/null (weftctl is not interactive),
 * its stderr passed through for its own messages, and stdout read up to a
 * limit within a deadline. */
static int run_exec(struct kube_target *t, struct buf *outb, char *err, size_t errlen)
{
    int pfd[2], rc = -EIO;
    pid_t pid;
    char *info = xasprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                           "\"spec\":{\"interactive\":false}}", t->exec.api_version);
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        errbuf_set(err, errlen, "exec plugin %s: pipe: %s", t->exec.command, strerror(errno));
        free(info);
        return -errno;
    }
    pid = fork();
    if (pid < 0) {
        errbuf_set(err, errlen, "exec plugin %s: fork: %s", t->exec.command, strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        free(info);
        return -EIO;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pfd[1], 1) < 0)
            _exit(127);
        for (size_t i = 0; t->exec.env[i]; i++)
            putenv(t->exec.env[i]);
        putenv(info);
        execvp(t->exec.command, t->exec.argv);
        fprintf(stderr, "weftctl: exec plugin %s: %s\n", t->exec.command, strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    free(info);
    time_t deadline = time(NULL) + KUBECONFIG_EXEC_TIMEOUT_SECONDS;
    int too_big = 0, timed_out = 0;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        long left = (long)(deadline - time(NULL));
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int pr = poll(&p, 1, (int)(left * 1000));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        char chunk[4096];
        ssize_t r = read(pfd[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (buf_append(outb, chunk, (size_t)r) < 0) {
            too_big = 1;
            break;
        }
    }
    close(pfd[0]);
    if (timed_out || too_big)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        errbuf_set(err, errlen, "exec plugin %s: no answer within %d s", t->exec.command,
                   KUBECONFIG_EXEC_TIMEOUT_SECONDS);
    else if (too_big)
        errbuf_set(err, errlen, "exec plugin %s: printed more than 1 MiB", t->exec.command);
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        errbuf_set(err, errlen, "exec plugin %s: exited with status %d", t->exec.command, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        errbuf_set(err, errlen, "exec plugin %s: killed by signal %d", t->exec.command, WTERMSIG(status));
    else
        rc = 0;
    return rc;
}

int kubeconfig_credentials(struct kube_target *t, char *err, size_t errlen)
{
    int r;
    if ((r = load_blob(&t->ca, "certificate-authority", err, errlen)) < 0 ||
        (r = load_blob(&t->cert, "client-certificate", err, errlen)) < 0 ||
        (r = load_blob(&t->key, "client-key", err, errlen)) < 0)
        return r;
    if (!t->token && t->token_file) {
        char terr[512];
        if ((r = k8s_read_token(t->token_file, &t->token, terr, sizeof terr)) < 0) {
            errbuf_set(err, errlen, "tokenFile %s: %s", t->token_file, terr);
            return r;
        }
    }
    if (t->has_exec && !t->token && !t->cert.data) {
        if (t->exec.interactive_always) {
            errbuf_set(err, errlen, "exec plugin %s: interactiveMode Always needs a terminal, which weftctl does "
                       "not give plugins", t->exec.command);
            return -EINVAL;
        }
        struct buf outb;
        buf_init(&outb, KUBECONFIG_EXEC_MAX_OUTPUT);
        char perr[512];
        char *cert = NULL, *key = NULL;
        if ((r = run_exec(t, &outb, err, errlen)) == 0 &&
            (r = kubeconfig_exec_parse(outb.data ? outb.data : "", outb.len, t->exec.api_version, &t->token,
                                       &cert, &key, perr, sizeof perr)) < 0)
            errbuf_set(err, errlen, "exec plugin %s: %s", t->exec.command, perr);
        buf_free(&outb);
        if (r < 0)
            return r;
        if (cert) {
            blob_free(&t->cert);
            blob_free(&t->key);
            t->cert.data = cert;
            t->cert.len = strlen(cert);
            t->key.data = key;
            t->key.len = strlen(key);
        }
    }
    return 0;
}
