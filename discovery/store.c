/* SPDX-License-Identifier: Apache-2.0 */
/* The store's tables and the watch-event parser; see store.h. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "spiffe.h"
#include "xalloc.h"

#define KEY_MAX (SPIFFE_MAX_NAMESPACE + 1 + REDUCE_MAX_NAME + 1)
#define RESOURCE_VERSION_MAX 64

struct store {
    struct store_limits limits;
    json_t *objects[REDUCE_KINDS];                         /* key -> reduced object */
    char resource_version[REDUCE_KINDS][RESOURCE_VERSION_MAX + 1];
    unsigned long revision;
    json_t *index[STORE_INDEXES];  /* a cache of the tables: see store_index */
    unsigned long index_revision;  /* revision the indexes were built at; 0: never */
};

void store_default_limits(struct store_limits *l)
{
    l->max_objects[REDUCE_SERVICE] = 20000;
    l->max_objects[REDUCE_SLICE] = 60000;
    l->max_objects[REDUCE_POD] = 100000;
    l->max_objects[REDUCE_NAMESPACE] = 10000;
    l->max_objects[REDUCE_HTTPROUTE] = 20000;
    l->max_objects[REDUCE_GRPCROUTE] = 20000;
    l->max_objects[REDUCE_REFGRANT] = 20000;
    l->max_event_bytes = STORE_MAX_EVENT_BYTES;
}

struct store *store_new(const struct store_limits *limits)
{
    struct store *s = xcalloc(1, sizeof *s);
    if (limits)
        s->limits = *limits;
    else
        store_default_limits(&s->limits);
    for (int i = 0; i < REDUCE_KINDS; i++)
        s->objects[i] = json_object();
    return s;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < REDUCE_KINDS; i++)
        json_decref(s->objects[i]);
    for (int i = 0; i < STORE_INDEXES; i++)
        json_decref(s->index[i]);
    free(s);
}

static void note_resource_version(struct store *s, enum reduce_kind kind, json_t *obj)
{
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (rv && strlen(rv) <= RESOURCE_VERSION_MAX)
        snprintf(s->resource_version[kind], sizeof s->resource_version[kind], "%s", rv);
}

int store_apply(struct store *s, enum store_event type, json_t *obj, char *err, size_t errlen)
{
    enum reduce_kind kind;
    char key[KEY_MAX], why[512];
    json_t *reduced = NULL;
    int rc = reduce_kind_of(obj, &kind, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = reduce_key(obj, kind, key, sizeof key, err, errlen)) < 0)
        return rc;
    json_t *table = s->objects[kind];
    if (type != STORE_DELETED && (rc = reduce_object(kind, obj, &reduced, why, sizeof why)) < 0) {
        errbuf_set(err, errlen, "%s %s: %s", reduce_kind_name(kind), key, why);
        return rc;
    }
    if (!reduced) { /* deleted, or no longer of interest */
        if (json_object_del(table, key) == 0)
            s->revision++;
        note_resource_version(s, kind, obj);
        return 0;
    }
    if (!json_object_get(table, key) && json_object_size(table) >= s->limits.max_objects[kind]) {
        errbuf_set(err, errlen, "%s %s: refused: the store holds at most %zu objects of kind %s",
                   reduce_kind_name(kind), key, s->limits.max_objects[kind], reduce_kind_name(kind));
        json_decref(reduced);
        return -ENOSPC;
    }
    json_object_set_new(table, key, reduced); /* steals reduced */
    s->revision++;
    note_resource_version(s, kind, obj);
    return 0;
}

/* An ERROR event's Status: -ESTALE for 410 Gone, else -EPROTO. */
static int watch_error(json_t *status, char *err, size_t errlen)
{
    json_int_t code = json_integer_value(json_object_get(status, "code"));
    const char *msg = json_string_value(json_object_get(status, "message"));
    errbuf_set(err, errlen, "watch error %lld: %.200s", (long long)code, msg ? msg : "(no message)");
    return code == 410 ? -ESTALE : -EPROTO;
}

int store_apply_event(struct store *s, const char *data, size_t len, char *err, size_t errlen)
{
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED"};
    json_error_t jerr;
    int rc = -EINVAL;
    if (len > s->limits.max_event_bytes) {
        errbuf_set(err, errlen, "watch event of %zu bytes: larger than %zu bytes", len, s->limits.max_event_bytes);
        return -E2BIG;
    }
    json_t *ev = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    if (!ev) {
        errbuf_set(err, errlen, "watch event: not JSON: %s at byte %d", jerr.text, jerr.position);
        goto out;
    }
    if (!type || !json_is_object(obj)) {
        errbuf_set(err, errlen, "watch event: expected {\"type\": ..., \"object\": {...}}");
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        rc = watch_error(obj, err, errlen);
        goto out;
    }
    if (strcmp(type, "BOOKMARK") == 0) {
        enum reduce_kind kind;
        if ((rc = reduce_kind_of(obj, &kind, err, errlen)) == 0)
            note_resource_version(s, kind, obj);
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if (strcmp(type, types[i]) == 0) {
            rc = store_apply(s, (enum store_event)i, obj, err, errlen);
            goto out;
        }
    }
    errbuf_set(err, errlen, "watch event: type \"%.32s\": expected ADDED, MODIFIED, DELETED, BOOKMARK or ERROR", type);
out:
    json_decref(ev);
    return rc;
}

int store_delete_key(struct store *s, enum reduce_kind kind, const char *key)
{
    if (json_object_del(s->objects[kind], key) != 0)
        return 0;
    s->revision++;
    return 1;
}

json_t *store_objects(const struct store *s, enum reduce_kind kind)
{
    return s->objects[kind];
}

json_t *store_get(const struct store *s, enum reduce_kind kind, const char *key)
{
    return json_object_get(s->objects[kind], key);
}

const char *store_resource_version(const struct store *s, enum reduce_kind kind)
{
    return s->resource_version[kind];
}

unsigned long store_revision(const struct store *s)
{
    return s->revision;
}

static void store_index_add(json_t *index, const char *by, const char *key)
{
    json_t *set = json_object_get(index, by);
    if (!set) {
        set = json_object();
        json_object_set_new(index, by, set);
    }
    json_object_set_new(set, key, json_true());
}

static void store_index_ips(json_t *index, json_t *table, const char *field)
{
    const char *key;
    json_t *obj, *ip;
    size_t i;
    json_object_foreach(table, key, obj) {
        json_array_foreach(json_object_get(obj, field), i, ip) store_index_add(index, json_string_value(ip), key);
    }
}

static void store_index_by_service(json_t *index, json_t *table, const char *list, const char *field)
{
    char by[KEY_MAX];
    const char *key;
    json_t *obj, *parent;
    size_t i;
    json_object_foreach(table, key, obj) {
        if (!list) {
            snprintf(by, sizeof by, "%s/%s", json_string_value(json_object_get(obj, "namespace")),
                     json_string_value(json_object_get(obj, field)));
            store_index_add(index, by, key);
            continue;
        }
        json_array_foreach(json_object_get(obj, list), i, parent) {
            snprintf(by, sizeof by, "%s/%s", json_string_value(json_object_get(parent, "namespace")),
                     json_string_value(json_object_get(parent, field)));
            store_index_add(index, by, key);
        }
    }
}

static void store_index_by_namespace(json_t *index, json_t *table)
{
    const char *key;
    json_t *obj;
    json_object_foreach(table, key, obj) store_index_add(index, json_string_value(json_object_get(obj, "namespace")), key);
}

json_t *store_index(const struct store *cs, enum store_index which, const char *key)
{
    /* The indexes are a cache, not state: rebuilding them behind a const
     * store changes no answer. Single-threaded like the rest of the store. */
    struct store *s = (struct store *)cs;
    if (s->index_revision != s->revision + 1) {
        for (int i = 0; i < STORE_INDEXES; i++) {
            json_decref(s->index[i]);
            s->index[i] = json_object();
        }
        store_index_ips(s->index[STORE_INDEX_SERVICE_IP], s->objects[REDUCE_SERVICE], "clusterIPs");
        store_index_ips(s->index[STORE_INDEX_POD_IP], s->objects[REDUCE_POD], "ips");
        store_index_by_service(s->index[STORE_INDEX_SLICE_SERVICE], s->objects[REDUCE_SLICE], NULL, "service");
        store_index_by_service(s->index[STORE_INDEX_HTTPROUTE_PARENT], s->objects[REDUCE_HTTPROUTE], "parents",
                               "name");
        store_index_by_service(s->index[STORE_INDEX_GRPCROUTE_PARENT], s->objects[REDUCE_GRPCROUTE], "parents",
                               "name");
        store_index_by_namespace(s->index[STORE_INDEX_GRANT_NAMESPACE], s->objects[REDUCE_REFGRANT]);
        s->index_revision = s->revision + 1;
    }
    return json_object_get(s->index[which], key);
}
