/* SPDX-License-Identifier: Apache-2.0 */
/* See cfgsnap.h. The mutex only orders a get against a swap (load the
 * pointer and take a reference as one step); references themselves are
 * atomic, so puts from any worker need no lock. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cfgsnap.h"
#include "xalloc.h"

struct cfgstore {
    pthread_mutex_t mu;
    struct cfgsnap *current;
    atomic_uint_fast64_t generation;
};

static struct cfgsnap *cfgsnap_new(struct proxy_config *cfg, uint64_t generation)
{
    struct cfgsnap *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg; /* the strings and lists move with it */
    memset(cfg, 0, sizeof *cfg);
    atomic_init(&s->refs, 1);
    s->generation = generation;
    return s;
}

struct cfgstore *cfgstore_new(struct proxy_config *cfg)
{
    struct cfgstore *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    st->current = cfgsnap_new(cfg, 1);
    atomic_init(&st->generation, 1);
    return st;
}

void cfgstore_free(struct cfgstore *st)
{
    if (!st)
        return;
    cfgsnap_put(st->current);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

const struct cfgsnap *cfgsnap_ref(const struct cfgsnap *s)
{
    struct cfgsnap *m = (struct cfgsnap *)s; /* the count is the one mutable field */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return s;
}

void cfgsnap_put(const struct cfgsnap *s)
{
    if (!s)
        return;
    struct cfgsnap *m = (struct cfgsnap *)s;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        config_free(&m->cfg);
        free(m);
    }
}

const struct cfgsnap *cfgstore_get(struct cfgstore *st)
{
    pthread_mutex_lock(&st->mu);
    const struct cfgsnap *s = cfgsnap_ref(st->current);
    pthread_mutex_unlock(&st->mu);
    return s;
}

void cfgstore_swap(struct cfgstore *st, struct proxy_config *cfg)
{
    pthread_mutex_lock(&st->mu);
    struct cfgsnap *old = st->current;
    st->current = cfgsnap_new(cfg, old->generation + 1);
    atomic_store(&st->generation, st->current->generation);
    pthread_mutex_unlock(&st->mu);
    cfgsnap_put(old); /* the store's reference */
}

uint64_t cfgstore_generation(struct cfgstore *st)
{
    return atomic_load(&st->generation);
}
