/* SPDX-License-Identifier: Apache-2.0 */
/* The store of per-request RED metrics (see http_metrics.h): a fixed-size
 * open-addressing table of label sets that workers find without a lock and
 * extend under a mutex, plus one overflow label set per direction, class
 * and origin; rendered in Prometheus text by the admin thread. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http_metrics.h"
#include "metrics.h"
#include "xalloc.h"

/* From a local cache hit (sub-millisecond) to the 10 s that callers rarely
 * wait beyond; 14 bounds, so a histogram is 17 lines (docs/proxy.md). */
static const double hm_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,   5,     10};
#define HM_NBOUNDS (sizeof hm_bounds / sizeof *hm_bounds)

static const char *const hm_methods[HTTP_METRICS_NMETHODS] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                                    "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"};
static const char *const hm_dir_names[PM_NDIR] = {"inbound", "outbound"};

struct hm_key {
    uint8_t dir, method, cls, origin;
    int16_t status;      /* 0: no response head */
    int16_t grpc;        /* -1: not gRPC */
    uint16_t target_len; /* peer (inbound) or dst (outbound), sanitized */
    char target[HTTP_METRICS_TARGET_MAX];
};

/* The fixed fields pack without padding, so hashing and comparing them as
 * bytes never reads an indeterminate byte. */
_Static_assert(offsetof(struct hm_key, target) == 10, "struct hm_key's fixed fields must have no padding");

struct hm_series {
    struct hm_key key;   /* fixed once published */
    uint64_t hash;
    atomic_uint_fast64_t requests, responses;
    struct metrics_histogram headers, total; /* responses only: a request without one has no latency */
};

struct http_metrics {
    size_t max;                             /* the budget of label sets */
    size_t mask;                            /* table size - 1, size a power of two >= 2 * max */
    _Atomic(struct hm_series *) *table;
    atomic_size_t n;                        /* published label sets; grows under mu only */
    pthread_mutex_t mu;
    struct hm_series overflow[PM_NDIR][2][2]; /* [dir][cls][origin] */
};

int http_metrics_method(const char *m, size_t len)
{
    for (int i = 0; i < HTTP_METRICS_NMETHODS - 1; i++)
        if (strlen(hm_methods[i]) == len && memcmp(hm_methods[i], m, len) == 0)
            return i;
    return HTTP_METRICS_NMETHODS - 1;
}

const char *http_metrics_method_name(int i)
{
    return i >= 0 && i < HTTP_METRICS_NMETHODS ? hm_methods[i] : "other";
}

int http_metrics_failure(const struct http_outcome *o)
{
    /* Who answered does not decide (origin says it): a proxy's 403 to a denied
     * caller or 400 to a malformed request is a 4xx as any other, so a
     * flood of them does not read as the server failing; its 502-504 are
     * 5xx. Linkerd's and Istio's success rates count the same way. */
    if (o->status <= 0)
        return 1;
    if (o->grpc_status >= 0)
        return o->grpc_status != 0;
    return o->status >= 500;
}

static void hm_series_init(struct hm_series *s)
{
    s->headers.bounds = s->total.bounds = hm_bounds;
    s->headers.nbounds = s->total.nbounds = HM_NBOUNDS;
}

struct http_metrics *http_metrics_new(size_t max_series)
{
    if (max_series > HTTP_METRICS_MAX_BUDGET)
        max_series = HTTP_METRICS_MAX_BUDGET;
    struct http_metrics *hm = xcalloc(1, sizeof *hm);
    size_t size = 2;
    while (size < 2 * max_series)
        size *= 2;
    hm->max = max_series;
    hm->mask = size - 1;
    hm->table = xcalloc(size, sizeof *hm->table);
    pthread_mutex_init(&hm->mu, NULL);
    for (int d = 0; d < PM_NDIR; d++)
        for (int c = 0; c < 2; c++)
            for (int g = 0; g < 2; g++) {
                struct hm_series *s = &hm->overflow[d][c][g];
                hm_series_init(s);
                s->key.dir = (uint8_t)d;
                s->key.cls = (uint8_t)c;
                s->key.origin = (uint8_t)g;
            }
    return hm;
}

void http_metrics_free(struct http_metrics *hm)
{
    if (!hm)
        return;
    for (size_t i = 0; i <= hm->mask; i++)
        free(atomic_load(&hm->table[i]));
    free(hm->table);
    pthread_mutex_destroy(&hm->mu);
    free(hm);
}

/* Label values reach Prometheus as UTF-8 text: bytes outside printable ASCII
 * become '?', so one key is one rendered label value (no two label sets may
 * render alike). Quotes and backslashes are escaped at render time. */
static void hm_key_make(struct hm_key *k, const struct http_outcome *o)
{
    /* No memset: hashing and comparing read the fixed fields (no padding
     * between them) and the target's used bytes only. */
    k->dir = o->dir == PM_OUTBOUND ? PM_OUTBOUND : PM_INBOUND;
    k->method = (uint8_t)http_metrics_method(o->method ? o->method : "", o->method ? o->method_len : 0);
    k->cls = (uint8_t)http_metrics_failure(o);
    k->origin = o->proxy_error ? 1 : 0;
    k->status = (int16_t)(o->status >= 100 && o->status <= 999 ? o->status : 0);
    /* gRPC: a code outside 0-16 is UNKNOWN (2), as gRPC's own clients read it. */
    k->grpc = (int16_t)(o->grpc_status < 0 ? -1 : o->grpc_status > 16 ? 2 : o->grpc_status);
    const char *t = k->dir == PM_INBOUND ? o->peer : o->dst;
    size_t tl = k->dir == PM_INBOUND ? o->peer_len : o->dst_len;
    if (!t)
        tl = 0;
    if (tl > HTTP_METRICS_TARGET_MAX)
        tl = HTTP_METRICS_TARGET_MAX;
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)t[i];
        k->target[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    k->target_len = (uint16_t)tl;
}

static uint64_t hm_hash(const struct hm_key *k)
{
    /* FNV-1a over the fixed fields and the target's used bytes. */
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = (const unsigned char *)k;
    size_t n = offsetof(struct hm_key, target) + k->target_len;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int hm_key_eq(const struct hm_key *a, const struct hm_key *b)
{
    /* Covers target_len first, so a shorter key never reads past its bytes. */
    return memcmp(a, b, offsetof(struct hm_key, target) + a->target_len) == 0;
}

/* Probes from the key's home slot; returns the series or NULL at the first
 * empty slot (the table is never more than half full, so one exists). */
static struct hm_series *hm_find(struct http_metrics *hm, const struct hm_key *k, uint64_t h, size_t *empty)
{
    for (size_t i = h & hm->mask;; i = (i + 1) & hm->mask) {
        struct hm_series *s = atomic_load_explicit(&hm->table[i], memory_order_acquire);
        if (!s) {
            *empty = i;
            return NULL;
        }
        if (s->hash == h && hm_key_eq(&s->key, k))
            return s;
    }
}

static struct hm_series *hm_lookup(struct http_metrics *hm, const struct hm_key *k)
{
    uint64_t h = hm_hash(k);
    size_t empty;
    struct hm_series *s = hm_find(hm, k, h, &empty);
    if (s)
        return s;
    /* n only grows, after its slot is published: once it is at the budget no
     * label set is added any more, and a second probe (ordered after that
     * load) sees every one that was. The full table costs no lock. */
    if (atomic_load_explicit(&hm->n, memory_order_acquire) >= hm->max) {
        if ((s = hm_find(hm, k, h, &empty)))
            return s;
        return &hm->overflow[k->dir][k->cls][k->origin];
    }
    pthread_mutex_lock(&hm->mu);
    s = hm_find(hm, k, h, &empty);
    if (!s) {
        if (atomic_load_explicit(&hm->n, memory_order_relaxed) < hm->max) {
            s = xcalloc(1, sizeof *s);
            s->key = *k;
            s->hash = h;
            hm_series_init(s);
            atomic_store_explicit(&hm->table[empty], s, memory_order_release);
            atomic_fetch_add_explicit(&hm->n, 1, memory_order_release);
        } else {
            s = &hm->overflow[k->dir][k->cls][k->origin];
        }
    }
    pthread_mutex_unlock(&hm->mu);
    return s;
}

void http_metrics_record(struct http_metrics *hm, const struct http_outcome *o)
{
    if (!hm || !o)
        return;
    struct hm_key k;
    hm_key_make(&k, o);
    struct hm_series *s = hm_lookup(hm, &k);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    if (k.status == 0)
        return;
    atomic_fetch_add_explicit(&s->responses, 1, memory_order_relaxed);
    metrics_observe_ns(&s->headers, o->headers_ns);
    metrics_observe_ns(&s->total, o->total_ns > o->headers_ns ? o->total_ns : o->headers_ns);
}

size_t http_metrics_label_sets(struct http_metrics *hm)
{
    return hm ? atomic_load(&hm->n) : 0;
}

/* ---- rendering (admin thread) ---- */

static int hm_cmp_route(const struct hm_key *a, const struct hm_key *b)
{
    if (a->dir != b->dir)
        return a->dir - b->dir;
    size_t n = a->target_len < b->target_len ? a->target_len : b->target_len;
    int c = memcmp(a->target, b->target, n);
    if (c)
        return c;
    if (a->target_len != b->target_len)
        return a->target_len < b->target_len ? -1 : 1;
    return a->method - b->method;
}

static int hm_cmp(const void *x, const void *y)
{
    const struct hm_key *a = &(*(struct hm_series *const *)x)->key, *b = &(*(struct hm_series *const *)y)->key;
    int c = hm_cmp_route(a, b);
    if (c)
        return c;
    if (a->status != b->status)
        return a->status - b->status;
    if (a->grpc != b->grpc)
        return a->grpc - b->grpc;
    if (a->cls != b->cls)
        return a->cls - b->cls;
    return a->origin - b->origin;
}

/* `direction="inbound",peer="..."`: the route's labels, escaped. */
static int hm_route_labels(struct buf *out, const struct hm_key *k, int overflow)
{
    int rc = buf_appendf(out, "direction=\"%s\",%s=\"", hm_dir_names[k->dir], k->dir == PM_INBOUND ? "peer" : "dst");
    if (overflow)
        rc |= buf_append(out, "overflow", 8);
    for (size_t i = 0; !overflow && rc == 0 && i < k->target_len; i++) {
        char c = k->target[i];
        rc = c == '"' || c == '\\' ? buf_appendf(out, "\\%c", c) : buf_append(out, &c, 1);
    }
    rc |= buf_appendf(out, "\",method=\"%s\"", overflow ? "overflow" : http_metrics_method_name(k->method));
    return rc;
}

static int hm_response_labels(struct buf *out, const struct hm_key *k, int overflow)
{
    int rc = hm_route_labels(out, k, overflow);
    if (overflow)
        rc |= buf_append(out, ",status=\"overflow\",grpc_status=\"overflow\"", 41);
    else if (k->grpc >= 0)
        rc |= buf_appendf(out, ",status=\"%d\",grpc_status=\"%d\"", k->status, k->grpc);
    else
        rc |= buf_appendf(out, ",status=\"%d\",grpc_status=\"\"", k->status);
    rc |= buf_appendf(out, ",classification=\"%s\",origin=\"%s\"", k->cls ? "failure" : "success",
                      k->origin ? "proxy" : "upstream");
    return rc;
}

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

int http_metrics_render(struct http_metrics *hm, struct buf *out)
{
    if (!hm)
        return 0;
    int rc = 0;
    size_t n = 0, cap = atomic_load_explicit(&hm->n, memory_order_acquire) + PM_NDIR * 4;
    struct hm_series **all = xcalloc(cap, sizeof *all);
    /* Published series first (sorted, so a scrape reads alike each time),
     * then the overflow sets that were used; n may have grown meanwhile. */
    for (size_t i = 0; i <= hm->mask && n < cap - PM_NDIR * 4; i++) {
        struct hm_series *s = atomic_load_explicit(&hm->table[i], memory_order_acquire);
        if (s)
            all[n++] = s;
    }
    qsort(all, n, sizeof *all, hm_cmp);
    size_t nreal = n;
    for (int d = 0; d < PM_NDIR; d++)
        for (int c = 0; c < 2; c++)
            for (int g = 0; g < 2; g++) {
                struct hm_series *s = &hm->overflow[d][c][g];
                if (LOAD(s->requests))
                    all[n++] = s;
            }
    struct buf labels;
    buf_init(&labels, 4096);

    rc |= metrics_header(out, "weft_proxy_http_requests_total", "counter",
                         "HTTP requests finished, by direction, peer (inbound) or dst (outbound) and method.");
    for (size_t i = 0; i < n && rc == 0;) {
        int ov = i >= nreal;
        unsigned long long v = 0;
        size_t j = i;
        /* One line per route: label sets that differ only past the method
         * are adjacent after the sort; the overflow sets of a direction too. */
        while (j < n && (j >= nreal) == ov && all[j]->key.dir == all[i]->key.dir &&
               (ov || hm_cmp_route(&all[j]->key, &all[i]->key) == 0))
            v += LOAD(all[j++]->requests);
        buf_reset(&labels);
        rc |= hm_route_labels(&labels, &all[i]->key, ov);
        rc |= buf_appendf(out, "weft_proxy_http_requests_total{%s} %llu\n", buf_cstr(&labels), v);
        i = j;
    }
    rc |= metrics_header(out, "weft_proxy_http_responses_total", "counter",
                         "HTTP responses, by the request's labels, status, gRPC status, classification and origin.");
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned long long v = LOAD(all[i]->responses);
        if (!v)
            continue;
        buf_reset(&labels);
        rc |= hm_response_labels(&labels, &all[i]->key, i >= nreal);
        rc |= buf_appendf(out, "weft_proxy_http_responses_total{%s} %llu\n", buf_cstr(&labels), v);
    }
    for (int h = 0; h < 2 && rc == 0; h++) {
        const char *name = h ? "weft_proxy_http_request_duration_seconds" : "weft_proxy_http_response_headers_seconds";
        rc |= metrics_header(out, name, "histogram",
                             h ? "Time from the start of a request to the end of its response."
                               : "Time from the start of a request to its response head.");
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!LOAD(all[i]->responses))
                continue;
            buf_reset(&labels);
            rc |= hm_response_labels(&labels, &all[i]->key, i >= nreal);
            rc |= metrics_histogram_series(out, name, buf_cstr(&labels), h ? &all[i]->total : &all[i]->headers);
        }
    }
    rc |= metrics_header(out, "weft_proxy_http_label_sets", "gauge",
                         "Label sets of the HTTP families in use and the budget (WEFT_HTTP_METRICS_BUDGET); "
                         "past it requests count in the overflow sets.");
    rc |= buf_appendf(out, "weft_proxy_http_label_sets{kind=\"used\"} %zu\nweft_proxy_http_label_sets{kind=\"budget\"} %zu\n",
                      atomic_load(&hm->n), hm->max);
    buf_free(&labels);
    free(all);
    return rc ? -E2BIG : 0;
}
