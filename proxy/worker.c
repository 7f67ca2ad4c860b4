/* SPDX-License-Identifier: Apache-2.0 */
/* A worker: one event loop on one thread, its SO_REUSEPORT listeners for
 * inbound and outbound (IPv4, and IPv6 where the pod has it), its upstream
 * pool and pinned configuration snapshot, and the drain on SIGTERM. Each
 * connection's deadlines are its own timers (session.c); the worker's own
 * are the accept resume after running out of descriptors, the periodic
 * malloc_trim and the drain deadline. */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_h1.h"
#include "listen.h"
#include "errbuf.h"
#include "log.h"
#include "session.h"
#include "xalloc.h"

#define WORKER_RESUME_MS 100 /* accepts paused for lack of descriptors wait this long */
#define WORKER_ACCEPT_BATCH 64
#define WORKER_TRIM_MS 10000

static int worker_listen(int family, uint16_t port, int reuseport, int *out)
{
    int fd = listen_port(family, port, LISTEN_NONBLOCK | LISTEN_V6ONLY | (reuseport ? LISTEN_REUSEPORT : 0), 4096);
    if (fd < 0)
        return fd;
    *out = fd;
    return 0;
}

static void worker_accept(struct ae_loop *loop, int lfd, void *data, int mask);

static long worker_resume_accepts(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct worker *w = data;
    w->accept_paused = 0;
    if (!w->draining)
        for (int k = 0; k < 4; k++)
            if (w->lfd[k] >= 0)
                ae_file_add(loop, w->lfd[k], AE_READABLE, worker_accept, w);
    return -1;
}

const struct cfgsnap *worker_snapshot(struct worker *w)
{
    if (cfgstore_generation(w->px->config) != w->snap->generation) {
        cfgsnap_put(w->snap);
        w->snap = cfgstore_get(w->px->config);
    }
    return w->snap;
}

static void worker_accept(struct ae_loop *loop, int lfd, void *data, int mask)
{
    (void)loop;
    (void)mask;
    struct worker *w = data;
    enum pm_dir dir = (lfd == w->lfd[0] || lfd == w->lfd[1]) ? PM_INBOUND : PM_OUTBOUND;
    for (int i = 0; i < WORKER_ACCEPT_BATCH && !w->draining; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && !w->accept_paused) {
                /* Level-triggered listeners would spin: pause accepting for a
                 * moment; the kernel backlog holds callers meanwhile. */
                uint64_t now = ae_now_ms(loop);
                if (!w->last_pause_log_ms || now - w->last_pause_log_ms >= 10000) {
                    log_warn("accept failed, pausing accepts", "error=\"%s\" open_connections=%zu",
                             strerror(errno), w->nsessions);
                    w->last_pause_log_ms = now;
                }
                for (int k = 0; k < 4; k++)
                    if (w->lfd[k] >= 0)
                        ae_file_del(loop, w->lfd[k], AE_READABLE);
                w->accept_paused = 1;
                ae_timer_add(loop, WORKER_RESUME_MS, worker_resume_accepts, w);
            }
            return;
        }
        if (w->nsessions >= worker_snapshot(w)->cfg.max_connections) {
            pm_add(&w->px->metrics.accept_overload, 1);
            close(fd);
            continue;
        }
        session_accept(w, fd, dir);
    }
}

/* Gives memory back after bursts: OpenSSL's per-connection state is ~25 KB,
 * and without a trim a past peak stays resident forever. */
static long worker_trim(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct worker *w = data;
    if (w->closed_since_trim) {
        malloc_trim(0);
        w->closed_since_trim = 0;
    }
    return WORKER_TRIM_MS;
}

static long worker_drain_deadline(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct worker *w = data;
    if (w->nsessions)
        log_info("drain deadline reached", "worker=%u open_connections=%zu", w->idx, w->nsessions);
    while (w->sessions)
        session_close(w->sessions, "drain deadline");
    ae_stop(loop);
    return -1;
}

static void worker_before_poll(struct ae_loop *loop, void *data)
{
    (void)loop;
    session_free_dead(data);
}

void worker_dest_published(void *arg)
{
    struct proxy *px = arg;
    for (unsigned i = 0; i < px->nworkers; i++)
        if (atomic_load(&px->workers[i].ndetecting))
            ae_wakeup(px->workers[i].loop);
}

/* Woken for discovery's answers (worker_dest_published) or the drain. */
static void worker_on_wakeup(struct ae_loop *loop, void *data)
{
    struct worker *w = data;
    session_detect_answers(w);
    if (!atomic_load(&w->px->draining) || w->draining)
        return;
    w->draining = 1;
    ae_timer_add(loop, (long)w->px->cfg->drain_seconds * 1000L, worker_drain_deadline, w);
    for (int i = 0; i < 4; i++)
        if (w->lfd[i] >= 0) {
            ae_file_del(loop, w->lfd[i], AE_READABLE);
            close(w->lfd[i]);
            w->lfd[i] = -1;
        }
    log_info("draining", "worker=%u open_connections=%zu drain_seconds=%u", w->idx, w->nsessions,
             w->px->cfg->drain_seconds);
    http_h1_drain(w);
    if (w->nsessions == 0)
        ae_stop(loop);
}

int worker_init(struct worker *w, struct proxy *px, unsigned idx, char *err, size_t errlen)
{
    struct rlimit rl;
    int setsize = 65536, r;
    memset(w, 0, sizeof *w);
    for (int i = 0; i < 4; i++)
        w->lfd[i] = -1;
    w->px = px;
    w->idx = idx;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur + 16 > (rlim_t)setsize)
        setsize = rl.rlim_cur > 4000000 ? 4000000 : (int)rl.rlim_cur + 16;
    w->loop = ae_loop_new(setsize);
    if (!w->loop) {
        errbuf_set(err, errlen, "event loop: %s", strerror(errno));
        return -ENOMEM;
    }
    ae_set_loop_data(w->loop, w);
    ae_set_wakeup(w->loop, worker_on_wakeup, w);
    ae_set_before_poll(w->loop, worker_before_poll, w);
    w->scratch = xmalloc(PROXY_SCRATCH);
    upstream_pool_init(&w->pool);
    w->snap = cfgstore_get(px->config);
    const uint16_t ports[2] = {px->cfg->inbound_port, px->cfg->outbound_port};
    const char *names[2] = {"WEFT_INBOUND_PORT", "WEFT_OUTBOUND_PORT"};
    int reuse = px->cfg->workers > 1;
    for (int d = 0; d < 2; d++) {
        if ((r = worker_listen(AF_INET, ports[d], reuse, &w->lfd[d * 2])) < 0) {
            errbuf_set(err, errlen, "%s=%u: listen: %s", names[d], ports[d], strerror(-r));
            return r;
        }
        /* IPv6 only where the pod has it. */
        if ((r = worker_listen(AF_INET6, ports[d], reuse, &w->lfd[d * 2 + 1])) < 0)
            log_debug("no IPv6 listener", "port=%u error=\"%s\"", ports[d], strerror(-r));
    }
    for (int i = 0; i < 4; i++)
        if (w->lfd[i] >= 0 && (r = ae_file_add(w->loop, w->lfd[i], AE_READABLE, worker_accept, w)) < 0) {
            errbuf_set(err, errlen, "event loop add: %s", strerror(-r));
            return r;
        }
    ae_timer_add(w->loop, WORKER_TRIM_MS, worker_trim, w);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ae_run(w->loop);
    while (w->sessions)
        session_close(w->sessions, "exit");
    session_free_dead(w);
    http_h1_client_thread_cleanup(); /* its idle upstream connections */
    conn_thread_cleanup();
    return NULL;
}

int worker_start(struct worker *w)
{
    int r = pthread_create(&w->thread, NULL, worker_main, w);
    return r ? -r : 0;
}

void worker_drain(struct worker *w)
{
    ae_wakeup(w->loop);
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void worker_free(struct worker *w)
{
    for (int i = 0; i < 4; i++)
        if (w->lfd[i] >= 0)
            close(w->lfd[i]);
    ae_loop_free(w->loop);
    upstream_pool_free(&w->pool);
    cfgsnap_put(w->snap);
    free(w->scratch);
}
