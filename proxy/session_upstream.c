/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream stage: a connection towards the original destination from
 * the worker's pool (inbound: to the app, from the passthrough source;
 * outbound: to the destination, over mTLS when it is in the mesh
 * networks), then, for the mesh, the TLS connect with the server's identity
 * verified. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "session.h"

static void session_connect_failed(struct session *s, int err)
{
    char dst[80];
    pm_add(&s->w->px->metrics.connect_failures[s->dir], 1);
    log_info("upstream connect failed", "direction=%s dst=%s error=\"%s\"", session_dir_name(s),
             session_addr(&s->dst, dst, sizeof dst), strerror(-err));
    session_close(s, "connect");
}

void session_connect(struct session *s)
{
    struct upstream_req req = {.dst = s->dst, .passthrough = s->dir == PM_INBOUND};
    s->stage = STAGE_CONNECT;
    session_set_mask(s, &s->down, AE_NONE); /* the caller's bytes wait in the kernel */
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
    s->peer.expect_id = config_expected_id(s->cfg, fam, addr);
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
