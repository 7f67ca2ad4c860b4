/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster's webhook configuration for weftctl inject; see clusterconf.h. */
#define _XOPEN_SOURCE 700
#include "clusterconf.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"

static const char *const template_files[] = {"init-container.yaml", "proxy-container.yaml", "volumes.yaml"};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static json_t *get_cm(struct kubeclient *c, const char *name, char *err, size_t errlen)
{
    char path[256];
    long status;
    json_t *cm = NULL;
    char e[1024];
    snprintf(path, sizeof path, "/api/v1/namespaces/weft-system/configmaps/%s", name);
    if (kubeclient_json(c, "GET", path, NULL, &status, &cm, e, sizeof e) < 0 || status != 200) {
        if (status == 404)
            errbuf_set(err, errlen, "ConfigMap weft-system/%s not found: is Weft installed? (weftctl check)", name);
        else
            errbuf_set(err, errlen, "ConfigMap weft-system/%s: %s", name, e);
        json_decref(cm);
        return NULL;
    }
    return cm;
}

static int write_file(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wxe");
    if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
        errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int clusterconf_load(struct kubeclient *c, struct conf *out, char *err, size_t errlen)
{
    char dir[] = "/tmp/weftctl-conf-XXXXXX", tdir[64];
    int rc = -1;
    json_t *mesh = get_cm(c, "weft-config", err, errlen), *tpl = NULL;
    if (!mesh || !(tpl = get_cm(c, "weft-templates", err, errlen)))
        goto done;
    if (!mkdtemp(dir)) {
        errbuf_set(err, errlen, "%s: %s", dir, strerror(errno));
        dir[0] = '\0';
        goto done;
    }
    snprintf(tdir, sizeof tdir, "%s/templates", dir);
    const char *m = json_string_value(json_object_get(json_object_get(mesh, "data"), "mesh.yaml"));
    if (!m) {
        errbuf_set(err, errlen, "ConfigMap weft-system/weft-config has no mesh.yaml");
        goto done;
    }
    if (write_file(dir, "mesh.yaml", m, err, errlen) < 0)
        goto done;
    if (mkdir(tdir, 0700) < 0) {
        errbuf_set(err, errlen, "%s: %s", tdir, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < sizeof template_files / sizeof *template_files; i++) {
        const char *t = json_string_value(json_object_get(json_object_get(tpl, "data"), template_files[i]));
        if (!t) {
            errbuf_set(err, errlen, "ConfigMap weft-system/weft-templates has no %s", template_files[i]);
            goto done;
        }
        if (write_file(tdir, template_files[i], t, err, errlen) < 0)
            goto done;
    }
    char mpath[64], cerr[1024];
    snprintf(mpath, sizeof mpath, "%s/mesh.yaml", dir);
    if (conf_load(mpath, tdir, out, cerr, sizeof cerr) < 0) {
        /* the message names the temporary file: say which ConfigMap it was */
        errbuf_set(err, errlen, "the cluster's weft-config / weft-templates do not load: %s", cerr);
        goto done;
    }
    rc = 0;
done:
    if (dir[0] && strncmp(dir, "/tmp/weftctl-conf-", 18) == 0)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    json_decref(mesh);
    json_decref(tpl);
    return rc;
}

int clusterconf_ns_lookup(void *ctx, const char *ns, json_t **out, char *err, size_t errlen)
{
    struct clusterconf_ns *c = ctx;
    json_t *hit = json_object_get(c->cache, ns);
    if (hit) {
        *out = json_is_null(hit) ? NULL : hit;
        return 0;
    }
    char path[512], e[1024];
    long status;
    json_t *obj = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
    if (kubeclient_json(c->client, "GET", path, NULL, &status, &obj, e, sizeof e) < 0 ||
        (status != 200 && status != 404)) {
        errbuf_set(err, errlen, "%s", e);
        json_decref(obj);
        return -1;
    }
    /* a namespace not created yet has no annotations, as the webhook would find */
    json_t *ann = status == 200 ? json_object_get(json_object_get(obj, "metadata"), "annotations") : NULL;
    json_object_set(c->cache, ns, ann ? ann : json_null()); /* borrows ann */
    json_decref(obj);
    *out = json_object_get(c->cache, ns);
    if (json_is_null(*out))
        *out = NULL;
    return 0;
}
