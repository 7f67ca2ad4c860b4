/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's configuration as immutable, reference-counted snapshots (the
 * webhook's confstore pattern): a connection pins the snapshot current when
 * it was accepted and reads every setting from it until it is freed, so a
 * change (discovery pushing one, later) is swapped in whole and never seen
 * half-applied by a connection in flight. Listener ports, workers and the
 * credential files are read once at start from the first snapshot.
 *
 * Thread-safe: any thread may get, put or swap. A worker keeps one pinned
 * snapshot and compares cfgstore_generation() on each accept, so the common
 * path is an atomic load and an atomic increment, no lock. */
#ifndef WEFT_PROXY_CFGSNAP_H
#define WEFT_PROXY_CFGSNAP_H
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

struct cfgsnap {
    struct proxy_config cfg; /* first: &snap->cfg and snap convert both ways */
    atomic_uint refs;        /* the store's reference (while current) plus one per holder */
    uint64_t generation;     /* 1 for the first, +1 per swap */
};

struct cfgstore;

/* Takes cfg (loaded by config_load, moved into the first snapshot: the
 * caller's struct is cleared and must not be freed). */
struct cfgstore *cfgstore_new(struct proxy_config *cfg);
/* Frees the store's reference; snapshots still pinned live on. */
void cfgstore_free(struct cfgstore *st);
/* The current snapshot, pinned until cfgsnap_put. */
const struct cfgsnap *cfgstore_get(struct cfgstore *st);
/* Replaces the current snapshot with cfg (moved in, as in cfgstore_new);
 * holders of the old one keep it until their put. */
void cfgstore_swap(struct cfgstore *st, struct proxy_config *cfg);
uint64_t cfgstore_generation(struct cfgstore *st);
/* Another pin on a snapshot the caller already holds. */
const struct cfgsnap *cfgsnap_ref(const struct cfgsnap *s);
/* Drops a pin; the last one frees the snapshot. NULL is ignored. */
void cfgsnap_put(const struct cfgsnap *s);

#endif
