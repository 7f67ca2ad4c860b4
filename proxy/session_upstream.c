/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream stage: a connection from the worker's pool (inbound: to the
 * app at the original destination, from the passthrough source; outbound:
 * where discovery's answer says, or else to the original destination over
 * mTLS when it is in WEFT_MESH_NETWORKS), then, for the mesh, the TLS
 * connect with the server's identity verified. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "xalloc.h"

static void session_connect_failed(struct session *s, int err)
{
    char dst[80];
    pm_add(&s->w->px->metrics.connect_failures[s->dir], 1);
    log_info("upstream connect failed", "direction=%s dst=%s error=\"%s\"", session_dir_name(s),
             session_addr(&s->dst, dst, sizeof dst), strerror(-err));
    session_close(s, "connect");
}

/* The wait is over for a session still in detection (its HTTP is about to
 * start) as for one in session_connect: each looks again. */
static long session_route_retry(struct ae_loop *loop, long long id, void *data)
{
    (void)loop, (void)id;
    struct session *s = data;
    s->retry_timer = 0;
    if (s->stage == STAGE_DETECT)
        session_detect_resume(s); /* waits on, or starts HTTP */
    else
        session_connect(s);
    return -1;
}

/* Outbound with discovery, the waiting half: a destination seen for the
 * first time is subscribed; while the stream is up its first connection
 * waits up to WEFT_DISCOVERY_WAIT_MS for the answer (one round trip to
 * discovery), looking every CPC_WAIT_STEP_MS. 1 while waiting (the retry
 * timer looks again), else 0. */
int session_route_wait(struct session *s)
{
    struct proxy *px = s->w->px;
    uint64_t now = ae_now_ms(s->w->loop);
    const struct dest_snap *snap = dest_store_get(px->dest);
    const struct dest_entry *e = dest_snap_find(snap, &s->dst);
    int r = 0;
    /* Looked at, not chosen: dest_choose would turn the round robin. */
    if (!e && dest_store_want(px->dest, &s->dst) == 1)
        cp_client_wake(px->cp);
    if ((!e || e->state == DEST_PENDING) && cp_client_connected(px->cp) && s->cfg->discovery_wait_ms) {
        if (!s->dest_wait_until_ms) {
            s->dest_wait_until_ms = now + s->cfg->discovery_wait_ms;
            session_deadline(s, s->cfg->discovery_wait_ms + s->cfg->connect_timeout_ms);
        }
        if (now < s->dest_wait_until_ms) {
            session_set_mask(s, &s->down, AE_NONE); /* queued bytes would wake the loop over and over */
            s->retry_timer = ae_timer_add(s->w->loop, CPC_WAIT_STEP_MS, session_route_retry, s);
            r = 1;
        }
    }
    dest_snap_put(snap);
    return r;
}

/* The choosing half, once per connection (opaque) or per request (HTTP):
 * the target from the answer held now, counted. Without an answer, or with
 * the stream down, the fallback: WEFT_MESH_NETWORKS decides as without
 * discovery. The caller puts *snap after it copied t->expect_id. */
void session_route_choose(struct session *s, struct dest_target *t, const struct dest_snap **snap)
{
    struct proxy *px = s->w->px;
    *snap = dest_store_get(px->dest);
    dest_choose(dest_snap_find(*snap, &s->dst), &s->dst, ae_now_ms(s->w->loop), t);
    if (t->route == DEST_ROUTE_WAIT)
        t->route = DEST_ROUTE_FALLBACK;
    cp_client_count_route(px->cp, t->route, s->dest_wait_until_ms != 0 && !s->dest_wait_counted);
    s->dest_wait_counted = s->dest_wait_until_ms != 0; /* a connection's wait counts once, not per request */
}

/* Where and how to dial, from the answer held for the original destination.
 * 0 to dial req->dst, 1 while waiting (the retry timer calls session_connect
 * again), -1 when the session was closed. */
static int session_route(struct session *s, struct upstream_req *req)
{
    struct proxy *px = s->w->px;
    if (session_route_wait(s))
        return 1;
    const struct dest_snap *snap;
    struct dest_target t;
    int r = 0;
    session_route_choose(s, &t, &snap);
    switch (t.route) {
    case DEST_ROUTE_PLAIN:
        s->tls_up = 0;
        req->dst = t.addr;
        break;
    case DEST_ROUTE_MTLS:
        s->tls_up = 1;
        req->dst = t.addr;
        free(s->expect_id);
        s->expect_id = xstrdup(t.expect_id);
        break;
    case DEST_ROUTE_NO_ENDPOINT: {
        char dst[80];
        pm_add(&px->metrics.connect_failures[s->dir], 1);
        log_info("upstream connect failed", "direction=%s dst=%s error=\"no ready endpoint\"", session_dir_name(s),
                 session_addr(&s->dst, dst, sizeof dst));
        session_close(s, "no endpoint");
        r = -1;
        goto out;
    }
    default: /* fallback: s->tls_up as WEFT_MESH_NETWORKS decided at accept */
        break;
    }
    if (log_enabled(LOG_DEBUG)) {
        char dst[80], to[80];
        log_debug("outbound route", "dst=%s route=%s to=%s expect=%s waited=%d", session_addr(&s->dst, dst, sizeof dst),
                  dest_route_name(t.route), session_addr(&req->dst, to, sizeof to), s->expect_id ? s->expect_id : "-",
                  s->dest_wait_until_ms != 0);
    }
out:
    dest_snap_put(snap);
    return r;
}

void session_connect(struct session *s)
{
    struct upstream_req req = {.dst = s->dst, .passthrough = s->dir == PM_INBOUND};
    s->stage = STAGE_CONNECT;
    session_set_mask(s, &s->down, AE_NONE); /* the caller's bytes wait in the kernel */
    if (s->dir == PM_OUTBOUND && s->w->px->dest && session_route(s, &req) != 0)
        return;
    int r = upstream_pool_acquire(&s->w->pool, &req, &s->up);
    s->up.owner = s;
    if (r < 0) {
        if (r == -EADDRNOTAVAIL && req.passthrough) {
            session_close(s, "passthrough source"); /* handoff_bind logged it */
            return;
        }
        if (s->up.fd < 0) {
            log_warn("upstream socket failed", "error=\"%s\"", strerror(-r));
            session_close(s, "socket");
            return;
        }
        session_connect_failed(s, r);
        return;
    }
    session_deadline(s, s->cfg->connect_timeout_ms);
    session_set_mask(s, &s->up, AE_WRITABLE);
}

static int session_peer_setup(SSL *ssl, void *arg)
{
    return creds_ssl_attach(ssl, arg);
}

void session_connected(struct session *s)
{
    struct proxy *px = s->w->px;
    int r = conn_tcp_connected(&s->up);
    if (r == -EAGAIN)
        return;
    if (r < 0) {
        session_connect_failed(s, r);
        return;
    }
    if (!s->tls_up) {
        if (s->dir == PM_OUTBOUND)
            session_count(s, 0, PM_AUTHZ_NONE, 0);
        session_start_relay(s);
        return;
    }
    SSL_CTX *ctx = creds_client_ctx(px->creds);
    if (!ctx) {
        pm_add(&px->metrics.handshakes[PM_CLIENT][CREDS_FAIL_NOT_READY], 1);
        session_close(s, "no credentials");
        return;
    }
    int fam = s->dst.ss_family;
    const void *addr = fam == AF_INET ? (const void *)&((struct sockaddr_in *)&s->dst)->sin_addr
                                      : (const void *)&((struct sockaddr_in6 *)&s->dst)->sin6_addr;
    /* Set before the handshake: the verify callback compares against it.
     * It points into the pinned snapshot, which outlives the SSL. */
    s->peer.expect_id = s->expect_id ? s->expect_id : config_expected_id(s->cfg, fam, addr);
    r = conn_tls_connect(&s->up, ctx, session_peer_setup, &s->peer);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (r < 0) {
        session_close(s, "ssl setup");
        return;
    }
    s->stage = STAGE_TLS_CONNECT;
    session_deadline(s, s->cfg->handshake_timeout_ms);
    session_step(s);
}

void session_tls_connect(struct session *s)
{
    struct proxy *px = s->w->px;
    char uri[SPIFFE_MAX_ID];
    int r = conn_handshake(&s->up);
    if (r == -EAGAIN) {
        session_set_mask(s, &s->up, conn_handshake_interest(&s->up));
        return;
    }
    if (r < 0) {
        session_tls_failed(s, &s->up, PM_CLIENT);
        return;
    }
    if (creds_peer_finish(conn_ssl(&s->up), &s->peer, s->cfg->trust_domain) < 0) {
        s->up.ssl_err = SSL_ERROR_SSL;
        session_tls_failed(s, &s->up, PM_CLIENT);
        return;
    }
    pm_add(&px->metrics.handshakes[PM_CLIENT][CREDS_FAIL_NONE], 1);
    spiffe_format(s->peer.id.trust_domain, s->peer.id.ns, s->peer.id.sa, uri, sizeof uri);
    session_count(s, 1, PM_AUTHZ_NONE, pm_peer_slot(&px->metrics, uri));
    session_start_relay(s);
}
