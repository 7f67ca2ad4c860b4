/* SPDX-License-Identifier: Apache-2.0 */
/* The data plane's shared state and its worker loops. One struct proxy per
 * process; one struct worker per event loop (thread), each with its own
 * SO_REUSEPORT listeners, sessions, upstream pool and pinned configuration
 * snapshot. Sessions never cross workers; proxy/session.h has their stages. */
#ifndef WEFT_PROXY_PROXY_H
#define WEFT_PROXY_PROXY_H
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ae.h"
#include "config.h"
#include "conn.h"
#include "creds.h"
#include "cfgsnap.h"
#include "cp_client.h"
#include "dest.h"
#include "http_metrics.h"
#include "pmetrics.h"
#include "upstream_pool.h"

#define PROXY_SCRATCH (64 * 1024) /* per worker read buffer */

struct proxy {
    struct cfgstore *config;        /* what connections pin; swapped whole */
    const struct proxy_config *cfg; /* the first snapshot's (pinned for the process): ports, workers, files */
    struct creds *creds;
    struct dest_store *dest;        /* discovery's answers; NULL without WEFT_DISCOVERY_ADDR */
    struct cp_client *cp;           /* the discovery client; NULL without WEFT_DISCOVERY_ADDR */
    struct proxy_metrics metrics;
    struct http_metrics *http;      /* per-request RED metrics: http_metrics_record(w->px->http, &o) */
    atomic_int listeners_up;
    atomic_int draining;
    struct worker *workers;
    unsigned nworkers;
};

struct worker {
    struct proxy *px;
    unsigned idx;
    struct ae_loop *loop;
    pthread_t thread;
    int lfd[4];          /* inbound v4, inbound v6, outbound v4, outbound v6; -1 if absent */
    struct session *sessions;
    struct session *dead; /* closed this round, freed before the next poll */
    struct session *detecting; /* outbound, detecting before their destination's answer (session_detect.c) */
    atomic_uint ndetecting;    /* how many: the discovery client's thread wakes only workers with some */
    size_t nsessions;
    char *scratch;
    struct upstream_pool pool;
    const struct cfgsnap *snap;  /* pinned; renewed at accept when the store's generation moved */
    int draining;
    int accept_paused;   /* out of fds: listeners out of the loop until the resume timer */
    uint64_t last_pause_log_ms;
    unsigned long closed_since_trim; /* sessions and pooled connections closed since the last malloc_trim */
};

/* Binds the listeners of one worker (main thread, before it runs). 0 or
 * -errno with err naming the port. */
int worker_init(struct worker *w, struct proxy *px, unsigned idx, char *err, size_t errlen);
int worker_start(struct worker *w);
/* Any thread: stop accepting and exit once sessions finish or the drain
 * deadline passes. */
void worker_drain(struct worker *w);
void worker_join(struct worker *w);
void worker_free(struct worker *w);

/* The discovery client's thread published answers (dest_store_on_publish,
 * arg the struct proxy): wakes the workers with sessions waiting on them. */
void worker_dest_published(void *arg);

/* The worker's snapshot, renewed first if the store has a newer one. */
const struct cfgsnap *worker_snapshot(struct worker *w);

struct session;
/* session_accept.c: a freshly accepted fd of a listener of the given direction. */
void session_accept(struct worker *w, int fd, enum pm_dir dir);
/* session.c: closes now (drain deadline, shutdown); frees what closed. */
void session_close(struct session *s, const char *why);
void session_free_dead(struct worker *w);

#endif
