/* SPDX-License-Identifier: Apache-2.0 */
/* Hot-reloaded configuration snapshots; see confstore.h. */
#include "confstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "filestamp.h"
#include "xalloc.h"

static const char *const template_files[] = {"init-container.yaml", "proxy-container.yaml", "volumes.yaml"};
#define NFILES 4 /* mesh.yaml and the templates */

struct snapshot {
    struct conf conf;         /* first: confstore_get() hands out &snapshot->conf */
    unsigned refs;            /* the store's own reference plus one per request; under the lock */
};

struct confstore {
    pthread_mutex_t lock;
    char *mesh_path, *templates_dir;
    struct snapshot *current;
    struct file_stamp ids[NFILES];
};

int conf_load(const char *mesh_path, const char *templates_dir, struct conf *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (templates_load(templates_dir, &out->templates, err, errlen) < 0)
        return -EINVAL;
    if (inject_config_load(mesh_path, &out->templates, &out->inject, err, errlen) < 0) {
        templates_free(&out->templates);
        return -EINVAL;
    }
    return 0;
}

void conf_free(struct conf *c)
{
    inject_config_free(&c->inject);
    templates_free(&c->templates);
}

/* The identities of mesh.yaml and the templates; a missing file reads as zeros. */
static void file_ids(const struct confstore *s, struct file_stamp *ids)
{
    char path[4096];
    memset(ids, 0, NFILES * sizeof *ids);
    for (int i = 0; i < NFILES; i++) {
        if (i == 0)
            snprintf(path, sizeof path, "%s", s->mesh_path);
        else
            snprintf(path, sizeof path, "%s/%s", s->templates_dir, template_files[i - 1]);
        file_stamp_read(path, &ids[i]);
    }
}

static int same_ids(const struct file_stamp *a, const struct file_stamp *b)
{
    for (int i = 0; i < NFILES; i++)
        if (!file_stamp_equal(&a[i], &b[i]))
            return 0;
    return 1;
}

static struct snapshot *snapshot_load(const struct confstore *s, char *err, size_t errlen)
{
    struct snapshot *snap = xcalloc(1, sizeof *snap);
    if (conf_load(s->mesh_path, s->templates_dir, &snap->conf, err, errlen) < 0) {
        free(snap);
        return NULL;
    }
    snap->refs = 1;
    return snap;
}

static void snapshot_unref(struct confstore *s, struct snapshot *snap)
{
    pthread_mutex_lock(&s->lock);
    int last = --snap->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        conf_free(&snap->conf);
        free(snap);
    }
}

struct confstore *confstore_new(const char *mesh_path, const char *templates_dir, char *err, size_t errlen)
{
    struct confstore *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->mesh_path = xstrdup(mesh_path);
    s->templates_dir = xstrdup(templates_dir);
    file_ids(s, s->ids);
    if (!(s->current = snapshot_load(s, err, errlen))) {
        confstore_free(s);
        return NULL;
    }
    return s;
}

void confstore_free(struct confstore *s)
{
    if (!s)
        return;
    if (s->current)
        snapshot_unref(s, s->current);
    pthread_mutex_destroy(&s->lock);
    free(s->mesh_path);
    free(s->templates_dir);
    free(s);
}

const struct conf *confstore_get(struct confstore *s)
{
    pthread_mutex_lock(&s->lock);
    struct snapshot *snap = s->current;
    snap->refs++;
    pthread_mutex_unlock(&s->lock);
    return &snap->conf;
}

void confstore_put(struct confstore *s, const struct conf *c)
{
    snapshot_unref(s, (struct snapshot *)c); /* conf is the snapshot's first member */
}

int confstore_refresh(struct confstore *s, char *err, size_t errlen)
{
    struct file_stamp ids[NFILES];
    file_ids(s, ids);
    if (same_ids(ids, s->ids))
        return 0;
    /* Remembered even when the load fails: a half-written change is tried
     * again when the files change again, not on every check. */
    memcpy(s->ids, ids, sizeof ids);
    struct snapshot *fresh = snapshot_load(s, err, errlen);
    if (!fresh)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    struct snapshot *old = s->current;
    s->current = fresh;
    pthread_mutex_unlock(&s->lock);
    snapshot_unref(s, old);
    return 1;
}
