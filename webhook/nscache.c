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
    uint64_t fetched_ns; /* the cache's clock, monotonic */
};

struct nscache {
    nscache_fetch_fn fetch;
    void *fetch_ctx;
    nscache_clock_fn now_ns;
    struct k8s_client *client; /* owned, or NULL for another source */
    pthread_mutex_t lock;
    struct entry *entries;
    size_t n;
};

static int api_fetch(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen);

struct nscache *nscache_new_source(nscache_fetch_fn fetch, void *ctx, nscache_clock_fn now_ns)
{
    struct nscache *c = xcalloc(1, sizeof *c);
    c->fetch = fetch;
    c->fetch_ctx = ctx;
    c->now_ns = now_ns;
    pthread_mutex_init(&c->lock, NULL);
    c->entries = xcalloc(NSCACHE_MAX_ENTRIES, sizeof *c->entries);
    return c;
}

struct nscache *nscache_new(struct k8s_client *client)
{
    struct nscache *c = nscache_new_source(api_fetch, client, metrics_now_ns);
    c->client = client;
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
static int younger_than(const struct nscache *c, const struct entry *e, unsigned seconds)
{
    return c->now_ns() - e->fetched_ns < (uint64_t)seconds * 1000000000u;
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
    e->fetched_ns = c->now_ns();
}

int nscache_parse_namespace(const char *ns, long status, json_t *body, const char *api_err, json_t **annotations,
                            char *err, size_t errlen)
{
    *annotations = NULL;
    if (status == 404) {
        snprintf(err, errlen, "namespace %s not found", ns);
        return -ENOENT;
    }
    if (status != 200) {
        if (api_err && *api_err)
            snprintf(err, errlen, "%s", api_err);
        else
            snprintf(err, errlen, "HTTP %ld: not a Namespace", status);
        return -EIO;
    }
    /* A 200 that is not this Namespace (a proxy's page, a truncated body)
     * must not read as a namespace without annotations: the pod would
     * silently miss its namespace's policy. */
    if (!json_is_object(body)) {
        snprintf(err, errlen, "%s", api_err && *api_err ? api_err : "HTTP 200: response body is not JSON");
        return -EIO;
    }
    json_t *meta = json_object_get(body, "metadata");
    const char *kind = json_string_value(json_object_get(body, "kind"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (!kind || strcmp(kind, "Namespace") != 0 || !name || strcmp(name, ns) != 0) {
        snprintf(err, errlen, "HTTP 200: the answer is not Namespace %s", ns);
        return -EIO;
    }
    json_t *ann = json_object_get(meta, "annotations");
    if (ann && !json_is_object(ann) && !json_is_null(ann)) {
        snprintf(err, errlen, "HTTP 200: Namespace %s has metadata.annotations that is not an object", ns);
        return -EIO;
    }
    *annotations = json_is_object(ann) ? json_incref(ann) : NULL;
    return 0;
}

/* Reads the namespace from the API (ctx is the k8s client). */
static int api_fetch(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    char path[128];
    long status = 0;
    json_t *body = NULL;
    *annotations = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
    int rc = k8s_request(ctx, "GET", path, NULL, &status, &body, err, errlen);
    if (rc < 0)
        return rc;
    char api_err[512];
    snprintf(api_err, sizeof api_err, "%s", err);
    rc = nscache_parse_namespace(ns, status, body, api_err, annotations, err, errlen);
    json_decref(body);
    return rc;
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
    if (e && younger_than(c, e, NSCACHE_FRESH_SECONDS)) {
        *annotations = json_incref(e->annotations);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);

    /* Fetched without the lock: a slow API must not hold up other namespaces. */
    json_t *fresh = NULL;
    int rc = c->fetch(c->fetch_ctx, ns, &fresh, err, errlen);
    pthread_mutex_lock(&c->lock);
    if (rc == 0) {
        store(c, ns, json_incref(fresh));
        *annotations = fresh;
    } else if ((e = find(c, ns)) && younger_than(c, e, NSCACHE_STALE_SECONDS)) {
        log_warn("namespace read failed, using the cached annotations", "namespace=%s error=\"%s\"", ns, err);
        *annotations = json_incref(e->annotations);
        rc = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}
