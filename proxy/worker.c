/* SPDX-License-Identifier: Apache-2.0 */
/* A worker: one event loop on one thread, its SO_REUSEPORT listeners for
 * inbound and outbound (IPv4, and IPv6 where the pod has it), a periodic
 * tick for timeouts, and the drain on SIGTERM. */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"
#include "xalloc.h"

#define WORKER_TICK_MS 100
#define WORKER_ACCEPT_BATCH 64
#define WORKER_TRIM_MS 10000

static int worker_listen(int family, uint16_t port, int reuseport, int *out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, r;
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
        r = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        r = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (r < 0 || listen(fd, 4096) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
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
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered listeners would spin: pause accepting until
                 * the next tick; the kernel backlog holds callers meanwhile. */
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
            }
            return;
        }
        if (w->nsessions >= w->px->cfg->max_connections) {
            pm_add(&w->px->metrics.accept_overload, 1);
            close(fd);
            continue;
        }
        session_accept(w, fd, dir);
    }
}

static long worker_tick(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct worker *w = data;
    uint64_t now = ae_now_ms(loop);
    session_tick(w, now);
    if (w->accept_paused && !w->draining) {
        w->accept_paused = 0;
        for (int k = 0; k < 4; k++)
            if (w->lfd[k] >= 0)
                ae_file_add(loop, w->lfd[k], AE_READABLE, worker_accept, w);
    }
    /* Give memory back after bursts: OpenSSL's per-connection state is
     * ~25 KB, and without a trim a past peak stays resident forever. */
    if (w->closed_since_trim && now - w->last_trim_ms >= WORKER_TRIM_MS) {
        malloc_trim(0);
        w->closed_since_trim = 0;
        w->last_trim_ms = now;
    }
    if (w->draining && now >= w->drain_deadline_ms) {
        if (w->nsessions)
            log_info("drain deadline reached", "worker=%u open_connections=%zu", w->idx, w->nsessions);
        while (w->sessions)
            session_close(w->sessions, "drain deadline");
        ae_stop(loop);
    }
    return WORKER_TICK_MS;
}

static void worker_before_poll(struct ae_loop *loop, void *data)
{
    (void)loop;
    session_free_dead(data);
}

static void worker_on_wakeup(struct ae_loop *loop, void *data)
{
    struct worker *w = data;
    if (!atomic_load(&w->px->draining) || w->draining)
        return;
    w->draining = 1;
    w->drain_deadline_ms = ae_now_ms(loop) + (uint64_t)w->px->cfg->drain_seconds * 1000u;
    for (int i = 0; i < 4; i++)
        if (w->lfd[i] >= 0) {
            ae_file_del(loop, w->lfd[i], AE_READABLE);
            close(w->lfd[i]);
            w->lfd[i] = -1;
        }
    log_info("draining", "worker=%u open_connections=%zu drain_seconds=%u", w->idx, w->nsessions,
             w->px->cfg->drain_seconds);
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
        snprintf(err, errlen, "event loop: %s", strerror(errno));
        return -ENOMEM;
    }
    ae_set_loop_data(w->loop, w);
    ae_set_wakeup(w->loop, worker_on_wakeup, w);
    ae_set_before_poll(w->loop, worker_before_poll, w);
    w->scratch = xmalloc(PROXY_SCRATCH);
    const uint16_t ports[2] = {px->cfg->inbound_port, px->cfg->outbound_port};
    const char *names[2] = {"WEFT_INBOUND_PORT", "WEFT_OUTBOUND_PORT"};
    int reuse = px->cfg->workers > 1;
    for (int d = 0; d < 2; d++) {
        if ((r = worker_listen(AF_INET, ports[d], reuse, &w->lfd[d * 2])) < 0) {
            snprintf(err, errlen, "%s=%u: listen: %s", names[d], ports[d], strerror(-r));
            return r;
        }
        /* IPv6 only where the pod has it. */
        if ((r = worker_listen(AF_INET6, ports[d], reuse, &w->lfd[d * 2 + 1])) < 0)
            log_debug("no IPv6 listener", "port=%u error=\"%s\"", ports[d], strerror(-r));
    }
    for (int i = 0; i < 4; i++)
        if (w->lfd[i] >= 0 && (r = ae_file_add(w->loop, w->lfd[i], AE_READABLE, worker_accept, w)) < 0) {
            snprintf(err, errlen, "event loop add: %s", strerror(-r));
            return r;
        }
    ae_timer_add(w->loop, WORKER_TICK_MS, worker_tick, w);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ae_run(w->loop);
    while (w->sessions)
        session_close(w->sessions, "exit");
    session_free_dead(w);
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
    free(w->scratch);
}
