/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition: lock-free counters and fixed-bucket histograms
 * that any thread may update, rendered by whoever serves /metrics. Label sets
 * are fixed when a series is declared, so cardinality is bounded by code. */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_MAX_BUCKETS 16

struct metrics_counter {
    const char *labels;        /* rendered verbatim inside {}, e.g. `outcome="injected"`; may be "" */
    atomic_uint_fast64_t value;
};

struct metrics_histogram {
    const double *bounds;      /* upper bounds in seconds, ascending, at most METRICS_MAX_BUCKETS */
    size_t nbounds;
    atomic_uint_fast64_t buckets[METRICS_MAX_BUCKETS + 1]; /* last is +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
};

static inline void metrics_inc(struct metrics_counter *c)
{
    atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

void metrics_observe_ns(struct metrics_histogram *h, uint64_t ns);
/* Writes "# HELP" and "# TYPE" lines. */
int metrics_header(struct buf *out, const char *name, const char *type, const char *help);
int metrics_counters(struct buf *out, const char *name, const char *help, struct metrics_counter *c, size_t n);
int metrics_gauge(struct buf *out, const char *name, const char *labels, double value);
int metrics_histogram_render(struct buf *out, const char *name, const char *help, struct metrics_histogram *h);
/* One labelled series of a histogram family (its _bucket, _sum and _count
 * lines, no header): labels go verbatim before le, e.g. `method="GET"`; "" for
 * none. metrics_histogram_render is its unlabelled single-series case. */
int metrics_histogram_series(struct buf *out, const char *name, const char *labels, struct metrics_histogram *h);
/* Monotonic clock in nanoseconds, for latency measurements. */
uint64_t metrics_now_ns(void);

#endif
