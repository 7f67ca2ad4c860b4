/* SPDX-License-Identifier: Apache-2.0 */
/* The opaque TCP relay (struct proxy_proto proto_tcp): bytes both ways
 * between the two connections, with backpressure (a side that cannot take
 * more stops reading the other), half-closes passed on, and the idle clock
 * that session.c's timer checks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "xalloc.h"

static int pending_flush(struct conn *dst, struct pending *p)
{
    while (p->data) {
        if (!conn_can_write(dst))
            return 0;
        ssize_t n = conn_write(dst, p->data + p->off, p->len);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return -1;
        p->off += (size_t)n;
        p->len -= (size_t)n;
        if (p->len == 0) {
            free(p->data); /* idle connections hold no buffers */
            p->data = NULL;
            p->off = 0;
        }
    }
    return 0;
}

/* Moves bytes src -> dst until one side blocks; counter gets what was read. */
static int relay_dir(struct session *s, struct conn *src, struct conn *dst, struct pending *p,
                     atomic_uint_fast64_t *counter)
{
    char *scratch = s->w->scratch;
    for (;;) {
        if (conn_out_pending(dst)) {
            int r = conn_flush(dst);
            if (r == -EAGAIN)
                return 0; /* backpressure: earlier records first */
            if (r < 0)
                return -1;
        }
        if (pending_flush(dst, p) < 0)
            return -1;
        if (p->data)
            return 0; /* dst is full: stop reading src (backpressure) */
        if (src->eof) {
            if (!dst->shut_wr && conn_can_write(dst)) {
                int r = conn_shutdown_write(dst);
                if (r < 0 && r != -EAGAIN)
                    return -1;
            }
            return 0;
        }
        if (!conn_can_read(src))
            return 0;
        /* Fill the scratch buffer from src (several TLS records are
         * batched into one write to dst), then write. */
        size_t n = 0;
        ssize_t r = 0;
        while (n < PROXY_SCRATCH && (n == 0 || conn_can_read(src))) {
            r = conn_read(src, scratch + n, PROXY_SCRATCH - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (src->type == &conn_plain)
                break; /* one recv per round: the kernel already coalesced */
        }
        if (n == 0) {
            if (r == -EAGAIN)
                return 0;
            if (r < 0)
                return -1;
            src->eof = 1;
            continue;
        }
        s->last_active_ms = ae_now_ms(s->w->loop);
        pm_add(counter, (uint64_t)n);
        ssize_t wr = conn_can_write(dst) ? conn_write(dst, scratch, n) : -EAGAIN;
        if (wr == -EAGAIN)
            wr = 0;
        else if (wr < 0)
            return -1;
        if ((size_t)wr < n) {
            p->len = n - (size_t)wr;
            p->off = 0;
            p->data = xmalloc(p->len);
            memcpy(p->data, scratch + wr, p->len);
        }
        if (r == 0)
            src->eof = 1; /* after the bytes that came before it */
        else if (r < 0 && r != -EAGAIN)
            return -1;
    }
}

static int relay_interest(const struct conn *c, const struct conn *other, const struct pending *out_of_c,
                          const struct pending *into_c)
{
    int m = 0;
    if (!c->eof && !out_of_c->data && !conn_out_pending(other))
        m |= c->rd_wait ? c->rd_wait : AE_READABLE; /* else: backpressure, other must drain first */
    if (into_c->data || (other->eof && !c->shut_wr))
        m |= c->wr_wait ? c->wr_wait : AE_WRITABLE;
    if (conn_out_pending(c))
        m |= AE_WRITABLE;
    return m;
}

static int proto_tcp_pump(struct session *s)
{
    struct pm_series *ser = s->series;
    if (relay_dir(s, &s->down, &s->up, &s->to_up, &ser->bytes_in) < 0 ||
        relay_dir(s, &s->up, &s->down, &s->to_down, &ser->bytes_out) < 0)
        return -1;
    if (s->down.eof && s->up.eof && s->down.shut_wr && s->up.shut_wr && !conn_out_pending(&s->down) &&
        !conn_out_pending(&s->up))
        return 1; /* both directions finished and flushed */
    session_set_mask(s, &s->down, relay_interest(&s->down, &s->up, &s->to_up, &s->to_down));
    session_set_mask(s, &s->up, relay_interest(&s->up, &s->down, &s->to_down, &s->to_up));
    return 0;
}

const struct proxy_proto proto_tcp = {"tcp", proto_tcp_pump, NULL};

void session_start_relay(struct session *s)
{
    s->stage = STAGE_RELAY;
    s->proto = &proto_tcp; /* seam: an HTTP server stage would be picked here */
    s->last_active_ms = ae_now_ms(s->w->loop);
    session_deadline(s, (unsigned long)s->cfg->idle_timeout_s * 1000u);
    s->down.rd_wait = s->up.rd_wait = 0;
    s->down.wr_wait = s->up.wr_wait = 0;
    session_step(s);
}
