/* SPDX-License-Identifier: Apache-2.0 */
/* Where the store's objects come from, both feeding it on the loop thread:
 *   - the Kubernetes API: one lib/k8s list+watch thread per resource, whose
 *     objects cross to the loop through a bounded queue and are reduced on
 *     receipt into the store;
 *   - a directory of manifests (objdir.h), re-read into a fresh store when
 *     inotify (or a file-changed check every few seconds, for file systems
 *     inotify does not see) reports a change, then synced into the store in
 *     force (store_sync: only what differs changes); a directory that does
 *     not load leaves the last good objects in force.
 * After a batch of changes the source calls changed() with the store in force. */
#ifndef WEFT_DISCOVERY_SOURCE_H
#define WEFT_DISCOVERY_SOURCE_H
#include <stddef.h>
#include <stdint.h>

#include "ae.h"
#include "buf.h"
#include "k8s.h"
#include "store.h"

struct source;
typedef void source_changed_fn(void *arg, struct store *store, uint64_t received_ns);

/* Loads dir now (a failure is returned, with err) and watches it. */
struct source *source_dir_new(struct ae_loop *loop, const char *dir, source_changed_fn *fn, void *arg, char *err,
                              size_t errlen);
/* Starts the watch threads on client (borrowed; outlives the source).
 * routes: also HTTPRoutes, GRPCRoutes and ReferenceGrants; while one of
 * their CRDs is not installed (a 404) it counts as listed and empty, and it
 * is listed again every crd_recheck_ms (jittered) until it is. */
struct source *source_k8s_new(struct ae_loop *loop, struct k8s_client *client, int routes, int crd_recheck_ms,
                              source_changed_fn *fn, void *arg);
/* Stops the threads (within a fraction of a second) and frees everything. */
void source_free(struct source *s);
/* Call from the loop's wakeup callback: applies what the watch threads queued. */
void source_drain(struct source *s);
struct store *source_store(struct source *s);
/* Every watched resource has been listed once (the directory loaded). Any thread. */
int source_ready(struct source *s);
/* weft_discovery_watch_* / weft_discovery_source_* and store sizes. Any thread. */
void source_metrics(struct source *s, struct buf *out);

#endif
