/* SPDX-License-Identifier: Apache-2.0 */
/* Namespace annotation cache over lib/k8s; see nscache.h. */
#include "nscache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "spiffe.h"
#include "xalloc.h"

struct entry {
    char *ns;
    json_t *annotations; /* owned; NULL when the namespace has none */
    uint64_t fetched_ns; /* metrics_now_ns(): monotonic */
};

struct nscache {
    struct k8s_client *client;
    pthread_mutex_t lock;
    struct entry *entries;
    size_t n;
};

struct nscache *nscache_new(struct k8s_client *client)
{
    struct nscache *c = xcalloc(1, sizeof *c);
    c->client = client;
    pthread_mutex_init(&c->lock, NULL);
    c->entries = xcalloc(NSCACHE_MAX_ENTRIES, sizeof *c->entries);
    return c;
}

void nscache_free(struct nscache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].ns);
        json_decref(c->entries[i].annotations);
    }
    free(c->entries);
    pthread_mutex_destroy(&c->lock);
    k8s_client_free(c->client);
    free(c);
}

/* Finer than seconds, so that fresh means exactly NSCACHE_FRESH_SECONDS,
 * not anywhere from one second less. */
static int younger_than(const struct entry *e, unsigned seconds)
{
    return metrics_now_ns() - e->fetched_ns < (uint64_t)seconds * 1000000000u;
}

/* Caller holds the lock. */
static struct entry *find(struct nscache *c, const char *ns)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].ns, ns) == 0)
            return &c->entries[i];
    return NULL;
}

/* Caller holds the lock; steals annotations. */
static void store(struct nscache *c, const char *ns, json_t *annotations)
{
    struct entry *e = find(c, ns);
    if (!e) {
        if (c->n == NSCACHE_MAX_ENTRIES) { /* full: drop the oldest */
            size_t oldest = 0;
            for (size_t i = 1; i < c->n; i++)
                if (c->entries[i].fetched_ns < c->entries[oldest].fetched_ns)
                    oldest = i;
            free(c->entries[oldest].ns);
            json_decref(c->entries[oldest].annotations);
            c->entries[oldest] = c->entries[--c->n];
        }
        e = &c->entries[c->n++];
        e->ns = xstrdup(ns);
        e->annotations = NULL;
    }
    json_decref(e->annotations);
    e->annotations = annotations;
    e->fetched_ns = metrics_now_ns();
}

/* Reads the namespace; 0 with *annotations (new ref or NULL), or -errno. */
static int fetch(struct nscache *c, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    char path[128];
    long status = 0;
    json_t *body = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
    int rc = k8s_request(c->client, "GET", path, NULL, &status, &body, err, errlen);
    if (rc < 0)
        return rc;
    if (status != 200) {
        json_decref(body);
        if (status == 404) {
            snprintf(err, errlen, "namespace %s not found", ns);
            return -ENOENT;
        }
        return -EIO;
    }
    json_t *ann = json_object_get(json_object_get(body, "metadata"), "annotations");
    *annotations = json_is_object(ann) ? json_incref(ann) : NULL;
    json_decref(body);
    return 0;
}

int nscache_lookup(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    struct nscache *c = ctx;
    *annotations = NULL;
    if (!spiffe_valid_namespace(ns, strlen(ns))) {
        snprintf(err, errlen, "\"%s\" is not a namespace name", ns);
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, ns);
    if (e && younger_than(e, NSCACHE_FRESH_SECONDS)) {
        *annotations = json_incref(e->annotations);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);

    /* Fetched without the lock: a slow API must not hold up other namespaces. */
    json_t *fresh = NULL;
    int rc = fetch(c, ns, &fresh, err, errlen);
    pthread_mutex_lock(&c->lock);
    if (rc == 0) {
        store(c, ns, json_incref(fresh));
        *annotations = fresh;
    } else if ((e = find(c, ns)) && younger_than(e, NSCACHE_STALE_SECONDS)) {
        log_warn("namespace read failed, using the cached annotations", "namespace=%s error=\"%s\"", ns, err);
        *annotations = json_incref(e->annotations);
        rc = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}
