/* SPDX-License-Identifier: Apache-2.0 */
/* The store's tables and the watch-event parser; see store.h. */
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
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
    int indexed;                   /* index[] built, and kept current by every change since */
    json_t *touched;               /* dependency keys changed since store_take_touched; NULL: none */
    int tracking;                  /* touched is kept: someone took it once */
    json_t *reads;                 /* while recording: dependency keys read (borrowed) */
    atomic_ulong warnings;         /* objects taken in with an annotation ignored (read by /metrics) */
    char last_warning[512];        /* the latest of them, "<Kind> <key>: <message>" */
    json_t *strings;               /* text -> the one string objects share (store_intern) */
    size_t strings_pruned;         /* its size after the last prune */
};

#define DEP_MAX (KEY_MAX + 16)

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
    s->strings = json_object();
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
    json_decref(s->touched);
    json_decref(s->strings);
    free(s);
}

/* ---- shared strings ----
 * Most of a cluster's pods and endpoints repeat a few namespaces, service
 * accounts, nodes and zones: each field holds its own string (two
 * allocations, 80 bytes) unless the store gives them one. A new object's
 * strings are swapped for the shared ones before it goes in its table
 * (reduced objects are not changed after that). Strings no object holds
 * any more are dropped each time the table has doubled since the last
 * prune, so it stays within twice what the objects use. */

static void store_prune_strings(struct store *s)
{
    const char *text;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(s->strings, tmp, text, v) {
        if (v->refcount == 1) /* only this table */
            json_object_del(s->strings, text);
    }
    s->strings_pruned = json_object_size(s->strings);
}

static void store_intern(struct store *s, json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field), *shared;
    const char *text = json_string_value(v);
    if (!text || strlen(text) != json_string_length(v))
        return; /* not a string, or one with a NUL: not a key */
    if ((shared = json_object_get(s->strings, text))) {
        if (shared != v)
            json_object_set(obj, field, shared);
        return;
    }
    if (json_object_size(s->strings) >= 2 * s->strings_pruned + 1024)
        store_prune_strings(s);
    json_object_set(s->strings, text, v);
}

size_t store_shared_strings(const struct store *s)
{
    return json_object_size(s->strings);
}

static void store_intern_object(struct store *s, enum reduce_kind kind, json_t *obj)
{
    size_t i;
    json_t *e;
    store_intern(s, obj, "namespace");
    switch (kind) {
    case REDUCE_POD:
        store_intern(s, obj, "serviceAccount");
        store_intern(s, obj, "node");
        break;
    case REDUCE_SLICE:
        json_array_foreach(json_object_get(obj, "endpoints"), i, e) {
            store_intern(s, e, "node");
            store_intern(s, e, "zone");
        }
        break;
    default:
        break;
    }
}

/* ---- dependency keys: "k<kind>:<key>" for an object, "i<index>:<key>" for one index set ---- */

static void store_dep_object(char *out, enum reduce_kind kind, const char *key)
{
    snprintf(out, DEP_MAX, "k%d:%s", (int)kind, key);
}

static void store_dep_index(char *out, enum store_index which, const char *by)
{
    snprintf(out, DEP_MAX, "i%d:%s", (int)which, by);
}

typedef void store_index_fn(void *arg, enum store_index which, const char *by);

/* Every index set obj belongs to. The one definition of the indexes: they
 * are built from it, and a change touches what it yields for the object's
 * old and new versions, so an index read can never miss a change. */
static void store_index_keys(enum reduce_kind kind, json_t *obj, store_index_fn *fn, void *arg)
{
    char by[KEY_MAX];
    size_t i;
    json_t *v;
    switch (kind) {
    case REDUCE_SERVICE:
        json_array_foreach(json_object_get(obj, "clusterIPs"), i, v) fn(arg, STORE_INDEX_SERVICE_IP, json_string_value(v));
        break;
    case REDUCE_POD:
        json_array_foreach(json_object_get(obj, "ips"), i, v) fn(arg, STORE_INDEX_POD_IP, json_string_value(v));
        break;
    case REDUCE_SLICE:
        snprintf(by, sizeof by, "%s/%s", json_string_value(json_object_get(obj, "namespace")),
                 json_string_value(json_object_get(obj, "service")));
        fn(arg, STORE_INDEX_SLICE_SERVICE, by);
        break;
    case REDUCE_HTTPROUTE:
    case REDUCE_GRPCROUTE:
        json_array_foreach(json_object_get(obj, "parents"), i, v) {
            snprintf(by, sizeof by, "%s/%s", json_string_value(json_object_get(v, "namespace")),
                     json_string_value(json_object_get(v, "name")));
            fn(arg, kind == REDUCE_HTTPROUTE ? STORE_INDEX_HTTPROUTE_PARENT : STORE_INDEX_GRPCROUTE_PARENT, by);
        }
        break;
    case REDUCE_REFGRANT:
        fn(arg, STORE_INDEX_GRANT_NAMESPACE, json_string_value(json_object_get(obj, "namespace")));
        break;
    case REDUCE_NAMESPACE:
    case REDUCE_KINDS:
        break;
    }
}

static void store_touch_index(void *arg, enum store_index which, const char *by)
{
    char dep[DEP_MAX];
    store_dep_index(dep, which, by);
    json_object_set_new(arg, dep, json_true());
}

static void store_index_put(void *arg, enum store_index which, const char *by);

struct store_index_build {
    json_t **index;
    const char *key;
};

static void store_collect_index(void *arg, enum store_index which, const char *by)
{
    char dep[DEP_MAX];
    store_dep_index(dep, which, by);
    json_object_set_new(arg, dep, json_integer(which));
}

/* Object kind/key changes from old to new (either NULL): its index entries
 * follow, once the indexes are built. A set it stays in keeps its place, so
 * the sets stay in the order a rebuild would give for all but an object that
 * moved between sets (appended to its new one). Rebuilding every index over
 * every table on the first lookup after each change was 13,500 objects
 * walked per endpoint change at 10,000 pods (bench/RESULTS.md). Call before
 * the table changes: key may be the table's own. */
static void store_reindex(struct store *s, enum reduce_kind kind, const char *key, json_t *old, json_t *new)
{
    if (!s->indexed)
        return; /* built whole on first use */
    json_t *was = json_object(), *is = json_object(), *v;
    const char *dep;
    if (old)
        store_index_keys(kind, old, store_collect_index, was);
    if (new)
        store_index_keys(kind, new, store_collect_index, is);
    json_object_foreach(was, dep, v) {
        if (json_object_get(is, dep))
            continue;
        json_t *idx = s->index[json_integer_value(v)];
        const char *by = strchr(dep, ':') + 1;
        json_t *set = json_object_get(idx, by);
        json_object_del(set, key);
        if (set && json_object_size(set) == 0)
            json_object_del(idx, by);
    }
    struct store_index_build b = {s->index, key};
    json_object_foreach(is, dep, v) {
        if (!json_object_get(was, dep))
            store_index_put(&b, (enum store_index)json_integer_value(v), strchr(dep, ':') + 1);
    }
    json_decref(was);
    json_decref(is);
}

/* Object kind/key changed from old to new (either NULL): notes what that changes. */
static void store_touch(struct store *s, enum reduce_kind kind, const char *key, json_t *old, json_t *new)
{
    char dep[DEP_MAX];
    if (!s->tracking)
        return; /* a store no one asks (a directory's fresh copy, `answer`) keeps no set */
    if (!s->touched)
        s->touched = json_object();
    store_dep_object(dep, kind, key);
    json_object_set_new(s->touched, dep, json_true());
    store_dep_object(dep, kind, "*");
    json_object_set_new(s->touched, dep, json_true());
    if (old)
        store_index_keys(kind, old, store_touch_index, s->touched);
    if (new)
        store_index_keys(kind, new, store_touch_index, s->touched);
}

json_t *store_take_touched(struct store *s)
{
    json_t *t = s->touched;
    s->touched = NULL;
    s->tracking = 1;
    return t;
}

void store_record_reads(struct store *s, json_t *reads)
{
    s->reads = reads;
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
    json_t *old = json_incref(json_object_get(table, key));
    if (!reduced) { /* deleted, or no longer of interest */
        if (old) {
            store_reindex(s, kind, key, old, NULL);
            json_object_del(table, key);
            s->revision++;
            store_touch(s, kind, key, old, NULL);
        }
        json_decref(old);
        note_resource_version(s, kind, obj);
        return 0;
    }
    if (!old && json_object_size(table) >= s->limits.max_objects[kind]) {
        errbuf_set(err, errlen, "%s %s: refused: the store holds at most %zu objects of kind %s",
                   reduce_kind_name(kind), key, s->limits.max_objects[kind], reduce_kind_name(kind));
        json_decref(reduced);
        return -ENOSPC;
    }
    const char *warning = json_string_value(json_array_get(json_object_get(reduced, "annotationErrors"), 0));
    if (warning) { /* kept, with the rest in force: said in err for the caller to log */
        atomic_fetch_add(&s->warnings, 1);
        errbuf_set(s->last_warning, sizeof s->last_warning, "%s %s: %s", reduce_kind_name(kind), key, warning);
        errbuf_set(err, errlen, "%s", s->last_warning);
    }
    store_intern_object(s, kind, reduced);
    store_touch(s, kind, key, old, reduced);
    store_reindex(s, kind, key, old, reduced);
    json_object_set_new(table, key, reduced); /* steals reduced */
    json_decref(old);
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
    json_t *old = json_incref(json_object_get(s->objects[kind], key));
    if (!old)
        return 0;
    store_touch(s, kind, key, old, NULL); /* first: key may be the table's own, freed by the delete */
    store_reindex(s, kind, key, old, NULL);
    json_object_del(s->objects[kind], key);
    json_decref(old);
    s->revision++;
    return 1;
}

void store_sync(struct store *dst, const struct store *src)
{
    for (int k = 0; k < REDUCE_KINDS; k++) {
        json_t *have = dst->objects[k], *want = src->objects[k], *obj, *mine, *gone = json_array(), *v;
        const char *key;
        size_t i;
        json_object_foreach(have, key, obj)
            if (!json_object_get(want, key))
                json_array_append_new(gone, json_string(key));
        json_array_foreach(gone, i, v) store_delete_key(dst, (enum reduce_kind)k, json_string_value(v));
        json_decref(gone);
        json_object_foreach(want, key, obj) {
            mine = json_object_get(have, key);
            if (mine && json_equal(mine, obj))
                continue;
            /* Shared, not copied: reduced objects are never changed in place. */
            const char *warning = json_string_value(json_array_get(json_object_get(obj, "annotationErrors"), 0));
            if (warning) {
                atomic_fetch_add(&dst->warnings, 1);
                errbuf_set(dst->last_warning, sizeof dst->last_warning, "%s %s: %s",
                           reduce_kind_name((enum reduce_kind)k), key, warning);
            }
            store_touch(dst, (enum reduce_kind)k, key, mine, obj);
            store_reindex(dst, (enum reduce_kind)k, key, mine, obj);
            json_object_set(have, key, obj);
            dst->revision++;
        }
    }
}

unsigned long store_warnings(const struct store *s)
{
    return atomic_load(&((struct store *)s)->warnings);
}

const char *store_last_warning(const struct store *s)
{
    return s->last_warning;
}

json_t *store_objects(const struct store *s, enum reduce_kind kind)
{
    if (s->reads) { /* a scan of the table depends on every object of the kind */
        char dep[DEP_MAX];
        store_dep_object(dep, kind, "*");
        json_object_set_new(s->reads, dep, json_true());
    }
    return s->objects[kind];
}

json_t *store_get(const struct store *s, enum reduce_kind kind, const char *key)
{
    if (s->reads) {
        char dep[DEP_MAX];
        store_dep_object(dep, kind, key);
        json_object_set_new(s->reads, dep, json_true());
    }
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

static void store_index_put(void *arg, enum store_index which, const char *by)
{
    struct store_index_build *b = arg;
    json_t *set = json_object_get(b->index[which], by);
    if (!set) {
        set = json_object();
        json_object_set_new(b->index[which], by, set);
    }
    json_object_set_new(set, b->key, json_true());
}

json_t *store_index(const struct store *cs, enum store_index which, const char *key)
{
    /* The indexes are a cache, not state: rebuilding them behind a const
     * store changes no answer. Single-threaded like the rest of the store. */
    struct store *s = (struct store *)cs;
    if (!s->indexed) {
        for (int i = 0; i < STORE_INDEXES; i++) {
            json_decref(s->index[i]);
            s->index[i] = json_object();
        }
        for (int k = 0; k < REDUCE_KINDS; k++) {
            const char *okey;
            json_t *obj;
            json_object_foreach(s->objects[k], okey, obj) {
                struct store_index_build b = {s->index, okey};
                store_index_keys((enum reduce_kind)k, obj, store_index_put, &b);
            }
        }
        s->indexed = 1;
    }
    if (s->reads) {
        char dep[DEP_MAX];
        store_dep_index(dep, which, key);
        json_object_set_new(s->reads, dep, json_true());
    }
    return json_object_get(s->index[which], key);
}
