/* SPDX-License-Identifier: Apache-2.0 */
/* CPU cost of http_metrics_record() on the workers' hot path: THREADS
 * threads record RECORDS outcomes each over 50 destinations and two
 * statuses (100 label sets, a budget of 128), against a baseline in the
 * same run, one relaxed atomic add on a shared counter per outcome (the
 * floor of any counter). Prints process CPU time per record. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_metrics.h"

#define RECORDS 2000000
#define TARGETS 50

static char names[TARGETS][32];
static size_t lens[TARGETS];
static atomic_uint_fast64_t floor_counter;

struct arg {
    struct http_metrics *hm; /* NULL: the baseline */
    int id;
};

static void *run(void *p)
{
    struct arg *a = p;
    struct http_outcome o = {.dir = PM_OUTBOUND, .method = "GET", .method_len = 3, .grpc_status = -1,
                             .headers_ns = 1000000, .total_ns = 2000000};
    for (int i = 0; i < RECORDS; i++) {
        int k = (i + a->id) % TARGETS;
        o.dst = names[k];
        o.dst_len = lens[k];
        o.status = i % 10 ? 200 : 503;
        if (a->hm)
            http_metrics_record(a->hm, &o);
        else
            atomic_fetch_add_explicit(&floor_counter, (uint64_t)o.status, memory_order_relaxed);
    }
    return NULL;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double measure(int threads, int store)
{
    struct http_metrics *hm = store ? http_metrics_new(128) : NULL;
    pthread_t t[64];
    struct arg a[64];
    double t0 = cpu_seconds();
    for (int i = 0; i < threads; i++) {
        a[i] = (struct arg){hm, i};
        pthread_create(&t[i], NULL, run, &a[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double ns = (cpu_seconds() - t0) * 1e9 / ((double)RECORDS * threads);
    http_metrics_free(hm);
    return ns;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long threads = argc > 1 ? strtol(argv[1], &end, 10) : 4;
    if (argc > 1 && (*end || threads < 1 || threads > 64)) {
        fprintf(stderr, "usage: record [threads 1-64]\n");
        return 2;
    }
    for (int k = 0; k < TARGETS; k++)
        lens[k] = (size_t)snprintf(names[k], sizeof names[k], "svc-%d.shop.svc:8080", k);
    for (int n = 1; n <= threads; n = n == threads ? threads + 1 : (n * 2 > threads ? threads : n * 2)) {
        double base = measure(n, 0), rec = measure(n, 1);
        printf("threads=%d records=%d ns_cpu_per_record=%.0f baseline_one_atomic_add=%.1f\n", n, RECORDS * n, rec,
               base);
    }
    return 0;
}
