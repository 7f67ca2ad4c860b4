/* SPDX-License-Identifier: Apache-2.0 */
/* A session's life cycle (see session.h): creation with its pinned
 * snapshot, event dispatch to the current stage, the deadline timer, close
 * and the deferred free. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "session.h"
#include "xalloc.h"

const char *session_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
        snprintf(buf, len, "%s:%u", a, (unsigned)ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
        snprintf(buf, len, "[%s]:%u", a, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

const char *session_dir_name(const struct session *s)
{
    return s->dir == PM_INBOUND ? "inbound" : "outbound";
}

static void session_io(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct conn *c = data;
    struct session *s = c->owner;
    if (s->closed)
        return;
    c->ready |= mask;
    session_step(s);
}

void session_set_mask(struct session *s, struct conn *c, int mask)
{
    conn_set_mask(c, s->w->loop, mask, session_io, c);
}

void session_count(struct session *s, int tls, enum pm_authz a, int peer)
{
    if (s->series)
        return;
    s->series = pm_series(&s->w->px->metrics, s->dir, tls, a, peer);
    pm_add(&s->series->opened, 1);
}

struct session *session_new(struct worker *w, int fd, enum pm_dir dir, const struct sockaddr_storage *src,
                            const struct sockaddr_storage *dst)
{
    struct session *s = xcalloc(1, sizeof *s);
    s->w = w;
    s->snap = cfgsnap_ref(worker_snapshot(w));
    s->cfg = &s->snap->cfg;
    s->dir = dir;
    s->accepted_ns = metrics_now_ns();
    s->dst = *dst;
    s->src = *src;
    s->down.fd = fd;
    s->down.type = &conn_plain;
    s->down.state = CONN_OPEN;
    s->down.owner = s;
    s->up.fd = -1;
    s->up.owner = s;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->nsessions++;
    return s;
}

void session_close(struct session *s, const char *why)
{
    struct worker *w = s->w;
    if (s->closed)
        return;
    s->closed = 1;
    session_detect_unlist(s); /* an answer may come after the free */
    if (log_enabled(LOG_DEBUG)) {
        char src[80], dst[80];
        log_debug("connection closed", "direction=%s src=%s dst=%s reason=%s", session_dir_name(s),
                  session_addr(&s->src, src, sizeof src), session_addr(&s->dst, dst, sizeof dst), why);
    }
    ae_timer_del(w->loop, s->timer);
    ae_timer_del(w->loop, s->retry_timer);
    s->timer = s->retry_timer = 0;
    if (s->proto && s->proto->close)
        s->proto->close(s);
    session_set_mask(s, &s->down, AE_NONE);
    session_set_mask(s, &s->up, AE_NONE);
    conn_close(&s->down);
    upstream_pool_release(&w->pool, &s->up, 0);
    free(s->to_up.data);
    free(s->to_down.data);
    s->to_up.data = s->to_down.data = NULL;
    session_count(s, s->tls_down || s->tls_up, PM_AUTHZ_NONE, 0);
    pm_add(&s->series->closed, 1);
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = w->dead;
    s->prev = NULL;
    w->dead = s;
    w->nsessions--;
    w->closed_since_trim++;
    if (w->draining && w->nsessions == 0)
        ae_stop(w->loop);
}

void session_free_dead(struct worker *w)
{
    while (w->dead) {
        struct session *s = w->dead;
        w->dead = s->next;
        cfgsnap_put(s->snap);
        free(s->expect_id);
        free(s);
    }
}

void session_tls_failed(struct session *s, struct conn *c, int side)
{
    struct proxy *px = s->w->px;
    enum creds_fail f = creds_classify_failure(conn_ssl(c), &s->peer, c->ssl_err);
    char src[80], dst[80];
    pm_add(&px->metrics.handshakes[side][f], 1);
    log_info("tls handshake failed", "side=%s src=%s dst=%s reason=%s", side == PM_SERVER ? "server" : "client",
             session_addr(&s->src, src, sizeof src), session_addr(&s->dst, dst, sizeof dst), creds_fail_name(f));
    session_close(s, "handshake");
}

void session_step(struct session *s)
{
    switch (s->stage) {
    case STAGE_CLASSIFY: session_classify(s); break;
    case STAGE_TLS_ACCEPT: session_tls_accept(s); break;
    case STAGE_DETECT: session_detect(s); break;
    case STAGE_CONNECT: session_connected(s); break;
    case STAGE_TLS_CONNECT: session_tls_connect(s); break;
    case STAGE_RELAY: {
        int r = s->proto->pump(s);
        if (r != 0)
            session_close(s, r > 0 ? "done" : "io error");
        break;
    }
    }
}

/* The relay's idle check runs at last_active + idle timeout and, when bytes
 * moved since, re-arms for the rest instead of being moved on every read. */
static long session_idle_left(struct session *s, uint64_t now)
{
    uint64_t idle = (uint64_t)s->cfg->idle_timeout_s * 1000u;
    uint64_t quiet = now - s->last_active_ms;
    return quiet >= idle ? 0 : (long)(idle - quiet);
}

static long session_on_deadline(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct session *s = data;
    struct proxy_metrics *m = &s->w->px->metrics;
    if (s->stage == STAGE_RELAY) {
        long left = session_idle_left(s, ae_now_ms(loop));
        if (left > 0)
            return left;
        s->timer = 0;
        pm_add(&m->timeouts[s->dir], 1);
        session_close(s, "idle timeout");
        return -1;
    }
    s->timer = 0;
    switch (s->stage) {
    case STAGE_CLASSIFY: session_classify_deadline(s); break;
    case STAGE_DETECT: session_detect_deadline(s); break;
    case STAGE_TLS_ACCEPT:
    case STAGE_TLS_CONNECT:
        pm_add(&m->handshakes[s->stage == STAGE_TLS_ACCEPT ? PM_SERVER : PM_CLIENT][CREDS_FAIL_TIMEOUT], 1);
        pm_add(&m->timeouts[s->dir], 1);
        session_close(s, "handshake timeout");
        break;
    default:
        pm_add(&m->timeouts[s->dir], 1);
        pm_add(&m->connect_failures[s->dir], 1);
        session_close(s, "connect timeout");
    }
    return -1;
}

void session_deadline(struct session *s, unsigned long ms)
{
    ae_timer_del(s->w->loop, s->timer);
    s->timer = ae_timer_add(s->w->loop, (long)ms, session_on_deadline, s);
}
