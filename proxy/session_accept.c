/* SPDX-License-Identifier: Apache-2.0 */
/* The accept stage: the original destination (SO_ORIGINAL_DST), the caller,
 * the session with its pinned snapshot, then the first stage by direction;
 * and, inbound, the mTLS accept and the authorization of the caller's
 * verified identity, then by ALPN the opaque relay (weft/1) or the HTTP/2
 * server (weft/h2). */
#include <arpa/inet.h> /* before the linux/ headers, which would define in_addr again */
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "authz.h"
#include "handoff.h"
#include "http_h2_server.h"
#include "log.h"
#include "session.h"

static int session_original_dst(int fd, struct sockaddr_storage *dst)
{
    struct sockaddr_storage local;
    socklen_t l = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &l) < 0)
        return -errno;
    memset(dst, 0, sizeof *dst);
    if (local.ss_family == AF_INET) {
        l = sizeof(struct sockaddr_in);
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &l) < 0)
            return -errno;
        const struct sockaddr_in *a = (const struct sockaddr_in *)dst, *b = (const struct sockaddr_in *)&local;
        if (a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port)
            return -ELOOP; /* not redirected: someone dialed the proxy port itself */
    } else {
        l = sizeof(struct sockaddr_in6);
        if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &l) < 0)
            return -errno;
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)dst, *b = (const struct sockaddr_in6 *)&local;
        if (memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 && a->sin6_port == b->sin6_port)
            return -ELOOP;
    }
    return 0;
}

void session_accept(struct worker *w, int fd, enum pm_dir dir)
{
    struct sockaddr_storage dst, src;
    socklen_t sl = sizeof src;
    char a[80];
    int r = session_original_dst(fd, &dst), one = 1;
    if (r < 0) {
        log_info("no original destination", "direction=%s error=\"%s\"", dir == PM_INBOUND ? "inbound" : "outbound",
                 strerror(-r));
        close(fd);
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&src, &sl) < 0)
        memset(&src, 0, sizeof src);
    if (dir == PM_INBOUND && handoff_is_source(&src)) {
        /* Our own handoff to the app was captured again: the pod's rules
         * lack the passthrough exemption. Closing ends the loop. */
        static atomic_int warned;
        if (!atomic_exchange(&warned, 1))
            log_error("inbound passthrough was captured again", "hint=\"%s\"",
                      "the pod's capture rules come from an older weft-init; re-create the pod");
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct session *s = session_new(w, fd, dir, &src, &dst);
    log_debug("connection accepted", "direction=%s src=%s", session_dir_name(s), session_addr(&src, a, sizeof a));
    if (dir == PM_INBOUND) {
        s->stage = STAGE_CLASSIFY;
        /* STRICT accepts nothing but mesh TLS, so a slow client proxy gets
         * the whole handshake time to send its ClientHello; PERMISSIVE must
         * decide soon that a silent caller speaks a server-first protocol. */
        session_deadline(s, s->cfg->mtls_mode == MTLS_STRICT ? s->cfg->handshake_timeout_ms
                                                              : s->cfg->detect_timeout_ms);
        session_set_mask(s, &s->down, AE_READABLE);
        return;
    }
    int fam = dst.ss_family;
    const void *addr = fam == AF_INET ? (const void *)&((struct sockaddr_in *)&dst)->sin_addr
                                      : (const void *)&((struct sockaddr_in6 *)&dst)->sin6_addr;
    s->tls_up = config_is_meshed(s->cfg, fam, addr) ? 1 : 0;
    session_detect_start(s);
}

static int session_peer_setup(SSL *ssl, void *arg)
{
    return creds_ssl_attach(ssl, arg);
}

void session_tls_accept_start(struct session *s)
{
    struct proxy *px = s->w->px;
    SSL_CTX *ctx = creds_server_ctx(px->creds);
    if (!ctx) {
        pm_add(&px->metrics.handshakes[PM_SERVER][CREDS_FAIL_NOT_READY], 1);
        session_close(s, "no credentials");
        return;
    }
    int r = conn_tls_accept(&s->down, ctx, session_peer_setup, &s->peer);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (r < 0) {
        session_close(s, "ssl setup");
        return;
    }
    s->tls_down = 1;
    s->stage = STAGE_TLS_ACCEPT;
    session_deadline(s, s->cfg->handshake_timeout_ms);
    session_step(s);
}

void session_tls_accept(struct session *s)
{
    struct proxy *px = s->w->px;
    char src[80], uri[SPIFFE_MAX_ID];
    int r = conn_handshake(&s->down);
    if (r == -EAGAIN) {
        session_set_mask(s, &s->down, conn_handshake_interest(&s->down));
        return;
    }
    if (r < 0) {
        session_tls_failed(s, &s->down, PM_SERVER);
        return;
    }
    if (creds_peer_finish(conn_ssl(&s->down), &s->peer, s->cfg->trust_domain) < 0) {
        s->down.ssl_err = SSL_ERROR_SSL;
        session_tls_failed(s, &s->down, PM_SERVER);
        return;
    }
    pm_add(&px->metrics.handshakes[PM_SERVER][CREDS_FAIL_NONE], 1);
    spiffe_format(s->peer.id.trust_domain, s->peer.id.ns, s->peer.id.sa, uri, sizeof uri);
    struct authz_decision d = authz_check(&s->cfg->authz, &s->peer.id);
    int slot = pm_peer_slot(&px->metrics, uri);
    session_count(s, 1, d.allowed ? PM_AUTHZ_ALLOWED : PM_AUTHZ_DENIED, slot);
    if (!d.allowed) {
        log_warn("connection denied", "caller=%s src=%s policy=%s reason=%s", uri,
                 session_addr(&s->src, src, sizeof src), authz_policy_name(s->cfg->authz.policy), d.reason);
        if (creds_alpn_is_h2(conn_ssl(&s->down))) {
            http_h2_start_denied(s, d.reason); /* HTTP callers get 403 per request */
            return;
        }
        session_close(s, "denied");
        return;
    }
    log_debug("connection authorized", "caller=%s reason=%s", uri, d.reason);
    /* ALPN weft/h2: HTTP requests as streams of one connection from the
     * client proxy (proxy/http_h2_server.c). */
    if (creds_alpn_is_h2(conn_ssl(&s->down))) {
        http_h2_start(s);
        return;
    }
    /* ALPN weft/1 is opaque TCP by contract: the client proxy detected
     * already, and waiting again would double a server-first protocol's
     * delay. */
    pm_add(&px->metrics.detect_skipped[PM_INBOUND][PM_SKIP_MESH], 1);
    session_connect(s);
}
