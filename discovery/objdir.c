/* SPDX-License-Identifier: Apache-2.0 */
/* Manifests from a directory into a store; see objdir.h. */
#include "objdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errbuf.h"
#include "xalloc.h"
#include "yamljson.h"

/* Applies one document (or each item of a List) as ADDED; kinds that are not
 * watched are skipped. 0, or -EINVAL after saying where and why. */
static int objdir_apply(struct store *s, json_t *doc, const char *path, size_t n, char *err, size_t errlen)
{
    char why[1024];
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    json_t *items = json_object_get(doc, "items");
    if (kind && strcmp(kind, "List") == 0 && json_is_array(items)) {
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) {
            int rc = store_apply(s, STORE_ADDED, item, why, sizeof why);
            if (rc < 0 && rc != -ENOTSUP) {
                errbuf_set(err, errlen, "%s: document %zu: items[%zu]: %s", path, n, i, why);
                return -EINVAL;
            }
        }
        return 0;
    }
    int rc = store_apply(s, STORE_ADDED, doc, why, sizeof why);
    if (rc < 0 && rc != -ENOTSUP) {
        errbuf_set(err, errlen, "%s: document %zu: %s", path, n, why);
        return -EINVAL;
    }
    return 0;
}

static int objdir_file(struct store *s, const char *path, char *err, size_t errlen)
{
    struct buf b;
    json_t *docs = NULL;
    int rc = -EINVAL;
    buf_init(&b, YAMLJSON_MAX_BYTES);
    int read = buf_read_file(&b, path);
    if (read < 0) {
        errbuf_set(err, errlen, "%s: %s", path, read == -E2BIG ? "larger than 1 MiB" : strerror(-read));
        goto out;
    }
    size_t len = strlen(path);
    if (len > 5 && strcmp(path + len - 5, ".json") == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            errbuf_set(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
            goto out;
        }
        docs = json_pack("[o]", doc); /* steals doc */
    } else if (!(docs = yamljson_parse_all(b.data ? b.data : "", b.len, path, err, errlen))) {
        goto out;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        if (!json_is_object(doc)) {
            errbuf_set(err, errlen, "%s: document %zu: expected a Kubernetes object", path, i + 1);
            goto out;
        }
        if (objdir_apply(s, doc, path, i + 1, err, errlen) < 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(docs);
    buf_free(&b);
    return rc;
}

static int objdir_by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int objdir_manifest_name(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return 0;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) || (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

int objdir_load(struct store *s, const char *dir, char *err, size_t errlen)
{
    char **names = xcalloc(OBJDIR_MAX_FILES, sizeof *names);
    size_t n = 0;
    int rc = -EINVAL;
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        errbuf_set(err, errlen, "--objects %s: %s", dir, strerror(errno));
        free(names);
        return -EINVAL;
    }
    while ((e = readdir(d))) {
        if (!objdir_manifest_name(e->d_name))
            continue;
        if (n == OBJDIR_MAX_FILES) {
            errbuf_set(err, errlen, "--objects %s: more than %d files", dir, OBJDIR_MAX_FILES);
            goto out;
        }
        names[n++] = xasprintf("%s/%s", dir, e->d_name);
    }
    qsort(names, n, sizeof *names, objdir_by_name);
    for (size_t i = 0; i < n; i++)
        if (objdir_file(s, names[i], err, errlen) < 0)
            goto out;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

