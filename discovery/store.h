/* SPDX-License-Identifier: Apache-2.0 */
/* The store: every watched object, reduced (reduce.h), keyed by kind and
 * "<namespace>/<name>", changed only by watch events. Events follow the
 * informers' rules: ADDED of a known object replaces it, MODIFIED of an
 * unknown one adds it, DELETED of an unknown one is no change. An event the
 * store refuses (an invalid object, a limit reached) changes nothing: the
 * last good version of that object stays in force. Bounded: at most
 * max_objects of each kind, events of at most max_event_bytes. Single
 * threaded; answers (answer.h) read it. Pure: no I/O. */
#ifndef WEFT_DISCOVERY_STORE_H
#define WEFT_DISCOVERY_STORE_H
#include <jansson.h>
#include <stddef.h>

#include "reduce.h"

#define STORE_MAX_EVENT_BYTES (3 * 1024 * 1024) /* the API server's own request limit */

enum store_event {
    STORE_ADDED,
    STORE_MODIFIED,
    STORE_DELETED,
};

struct store_limits {
    size_t max_objects[REDUCE_KINDS]; /* per kind */
    size_t max_event_bytes;           /* one watch event, as received */
};

struct store;

/* Defaults sized for 10,000 pods with room to spare (docs/discovery.md). */
void store_default_limits(struct store_limits *l);
/* limits NULL: the defaults. Never NULL (out of memory aborts). */
struct store *store_new(const struct store_limits *limits);
void store_free(struct store *s);

/* Applies one event to obj (borrowed). 0 when applied (or of no interest),
 * -EINVAL when the object does not pass, -ENOSPC when its kind is full,
 * -ENOTSUP when discovery does not watch its kind; err says which object
 * ("<Kind> <ns>/<name>: <field>: <problem>"). 0 with err set (the caller
 * clears it first) when the object was taken in with an annotation
 * ignored (a bad weft.dev/ timeout: the default applies), counted in
 * store_warnings. */
int store_apply(struct store *s, enum store_event type, json_t *obj, char *err, size_t errlen);
/* Objects taken in (store_apply, or changed by store_sync) with an
 * annotation ignored. Any thread. */
unsigned long store_warnings(const struct store *s);
/* The latest of them ("<Kind> <key>: <message>"), "" before any. Loop thread. */
const char *store_last_warning(const struct store *s);
/* One watch event as the API server streams it, {"type": ..., "object": ...}:
 * ADDED, MODIFIED, DELETED as store_apply; BOOKMARK notes the
 * resourceVersion; ERROR returns -ESTALE for 410 Gone (the watch must list
 * again) and -EPROTO otherwise, with the Status message. -E2BIG past
 * max_event_bytes, -EINVAL when it is not an event. */
int store_apply_event(struct store *s, const char *data, size_t len, char *err, size_t errlen);

/* Forgets one object by key (a re-list that no longer holds it): 1 when it
 * was there, 0 when not. */
int store_delete_key(struct store *s, enum reduce_kind kind, const char *key);

/* The objects of a kind: key -> reduced object, borrowed, in no set order. */
json_t *store_objects(const struct store *s, enum reduce_kind kind);
/* How many distinct strings the store's objects share (namespaces,
 * service accounts, nodes, zones), with those no object holds since the
 * last prune. */
size_t store_shared_strings(const struct store *s);
/* One reduced object (borrowed), or NULL. */
json_t *store_get(const struct store *s, enum reduce_kind kind, const char *key);
/* The last resourceVersion seen for a kind ("" before any). */
const char *store_resource_version(const struct store *s, enum reduce_kind kind);
/* Lookup indexes for the answers, each a JSON object of sets
 * (lookup key -> {object key: true}), in the table's own order; borrowed,
 * valid until the next change. They are built in one pass over the tables
 * on first use and from then on kept current by each change (only the
 * changed object's entries move): answers find a Service by IP, a
 * Service's slices and routes without scanning every object, and a change
 * costs no walk of every table. */
enum store_index {
    STORE_INDEX_SERVICE_IP,    /* canonical clusterIP -> Service keys */
    STORE_INDEX_POD_IP,        /* canonical pod IP -> Pod keys */
    STORE_INDEX_SLICE_SERVICE, /* "<ns>/<service>" -> EndpointSlice keys */
    STORE_INDEX_HTTPROUTE_PARENT, /* "<ns>/<service>" of a parent -> HTTPRoute keys */
    STORE_INDEX_GRPCROUTE_PARENT,
    STORE_INDEX_GRANT_NAMESPACE,  /* namespace -> ReferenceGrant keys */
    STORE_INDEXES,
};
json_t *store_index(const struct store *s, enum store_index which, const char *key);

/* Counts every change; an answer computed at one revision is current until it moves. */
unsigned long store_revision(const struct store *s);

/* What a change can affect, so only the answers it touches are recomputed.
 * Both sides speak "dependency keys" (strings): one object of a kind by its
 * key (present or not), every object of a kind (a table scan), one set of
 * an index. While a set is given to store_record_reads, store_get,
 * store_index and store_objects add the keys they read to it (borrowed;
 * NULL stops). Every change adds the keys it changes (the object, its kind,
 * and each index set its old and new versions are in) to the store's
 * touched set. An answer is a function of the store read through those
 * calls, so it can only differ when a key it read was touched. */
void store_record_reads(struct store *s, json_t *reads);
/* The keys touched since the last call (new reference), or NULL when none.
 * A store keeps them only from its first call on. */
json_t *store_take_touched(struct store *s);

/* Makes dst hold exactly src's objects (shared, not copied), deleting and
 * replacing only those that differ, each a change as an event would make:
 * a re-read directory then touches only what changed in it. */
void store_sync(struct store *dst, const struct store *src);

#endif
