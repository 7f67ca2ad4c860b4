/* SPDX-License-Identifier: Apache-2.0 */
/* The data plane's shared state and its worker loops. One struct proxy per
 * process; one struct worker per event loop (thread), each with its own
 * SO_REUSEPORT listeners and its own sessions. Sessions never cross workers.
 *
 * A session is one accepted connection and its upstream. It walks a
 * pipeline of stages: DETECT (inbound first bytes) -> TLS_ACCEPT -> AUTHZ ->
 * CONNECT -> TLS_CONNECT (outbound to the mesh) -> RELAY. The relay stage is
 * chosen through struct proxy_proto, so a later protocol-detection / HTTP
 * stage plugs in as another proto without touching accept, TLS or authz. */
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
#include "pmetrics.h"

#define PROXY_SCRATCH (64 * 1024) /* per worker read buffer */

struct proxy {
    const struct proxy_config *cfg;
    struct creds *creds;
    struct proxy_metrics metrics;
    atomic_int listeners_up;
    atomic_int draining;
    struct worker *workers;
    unsigned nworkers;
};

enum session_stage { STAGE_DETECT, STAGE_TLS_ACCEPT, STAGE_CONNECT, STAGE_TLS_CONNECT, STAGE_RELAY };

struct session;
/* What runs once both ends are connected (and authorized). proto_tcp copies
 * bytes both ways; an HTTP stage would parse here instead. */
struct proxy_proto {
    const char *name;
    /* Called when any fd of the session is ready; returns 0, or -1 to close. */
    int (*pump)(struct session *s);
};
extern const struct proxy_proto proto_tcp;

struct pending {        /* bytes read but not yet written; NULL when empty */
    char *data;
    size_t off, len;
};

struct session {
    struct worker *w;
    struct session *prev, *next;      /* the worker's list */
    enum pm_dir dir;
    enum session_stage stage;
    const struct proxy_proto *proto;
    struct conn down, up;             /* downstream: accepted; upstream: we dialed */
    struct pending to_up, to_down;
    struct creds_peer peer;           /* TLS peer (inbound: caller; outbound: server) */
    struct sockaddr_storage dst;      /* the original destination */
    struct sockaddr_storage src;      /* the caller */
    struct pm_series *series;         /* chosen when the decision is made */
    uint64_t deadline_ms;             /* end of the current non-relay stage */
    uint64_t last_active_ms;
    long long detect_timer;
    unsigned tls_down : 1, tls_up : 1, closed : 1, counted : 1;
};

struct worker {
    struct proxy *px;
    unsigned idx;
    struct ae_loop *loop;
    pthread_t thread;
    int lfd[4];          /* inbound v4, inbound v6, outbound v4, outbound v6; -1 if absent */
    struct session *sessions;
    struct session *dead; /* closed this round, freed before the next poll */
    size_t nsessions;
    char *scratch;
    int draining;
    int accept_paused;   /* out of fds: listeners out of the loop until the next tick */
    uint64_t last_pause_log_ms;
    uint64_t drain_deadline_ms;
    unsigned long closed_since_trim; /* sessions closed since the last malloc_trim */
    uint64_t last_trim_ms;
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

/* session.c: a freshly accepted fd of a listener of the given direction. */
void session_accept(struct worker *w, int fd, enum pm_dir dir);
/* Timeouts; called from the worker's periodic tick. */
void session_tick(struct worker *w, uint64_t now_ms);
/* Closes now (drain deadline, shutdown). */
void session_close(struct session *s, const char *why);
void session_free_dead(struct worker *w);

#endif
