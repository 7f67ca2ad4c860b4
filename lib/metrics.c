/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text rendering of the counters and histograms in metrics.h. */
#include "clock.h"
#include "metrics.h"

#include <time.h>

void metrics_observe_ns(struct metrics_histogram *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t i = 0;
    while (i < h->nbounds && s > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

int metrics_header(struct buf *out, const char *name, const char *type, const char *help)
{
    return buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_counters(struct buf *out, const char *name, const char *help, struct metrics_counter *c, size_t n)
{
    int rc = metrics_header(out, name, "counter", help);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned long long v = atomic_load_explicit(&c[i].value, memory_order_relaxed);
        if (c[i].labels && *c[i].labels)
            rc = buf_appendf(out, "%s{%s} %llu\n", name, c[i].labels, v);
        else
            rc = buf_appendf(out, "%s %llu\n", name, v);
    }
    return rc;
}

int metrics_gauge(struct buf *out, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        return buf_appendf(out, "%s{%s} %.17g\n", name, labels, value);
    return buf_appendf(out, "%s %.17g\n", name, value);
}

int metrics_histogram_render(struct buf *out, const char *name, const char *help, struct metrics_histogram *h)
{
    int rc = metrics_header(out, name, "histogram", help);
    return rc ? rc : metrics_histogram_series(out, name, "", h);
}

int metrics_histogram_series(struct buf *out, const char *name, const char *labels, struct metrics_histogram *h)
{
    int rc = 0;
    const char *sep = *labels ? "," : "";
    unsigned long long cumulative = 0;
    for (size_t i = 0; rc == 0 && i <= h->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            rc = buf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i], cumulative);
        else
            rc = buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cumulative);
    }
    /* _count is the +Inf bucket, not the count field: a reader between a
     * worker's two increments would otherwise see them disagree. */
    if (rc == 0 && *labels)
        rc = buf_appendf(out, "%s_sum{%s} %.9f\n%s_count{%s} %llu\n", name, labels,
                         (double)atomic_load(&h->sum_ns) / 1e9, name, labels, cumulative);
    else if (rc == 0)
        rc = buf_appendf(out, "%s_sum %.9f\n%s_count %llu\n", name, (double)atomic_load(&h->sum_ns) / 1e9, name,
                         cumulative);
    return rc;
}

uint64_t metrics_now_ns(void)
{
    return clock_mono_ns();
}
