/* SPDX-License-Identifier: Apache-2.0 */
/* A proxied connection's pipeline (see proxy.h): original destination,
 * first-bytes detection, TLS, authorization, upstream connect, relay.
 * Every callback runs on the worker's loop; a closed session is unlinked at
 * once but freed only before the next poll, so no callback frees what it
 * runs on. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "authz.h"
#include "classify.h"
#include "handoff.h"
#include "log.h"
#include "proxy.h"
#include "xalloc.h"

#define DETECT_RETRY_MS 5

static void session_io(struct ae_loop *loop, int fd, void *data, int mask);
static void session_step(struct session *s);

static const char *session_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", a, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", a, port);
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

static void session_set_mask(struct session *s, struct conn *c, int mask)
{
    if (c->fd < 0 || mask == c->mask)
        return;
    if (ae_file_set(s->w->loop, c->fd, mask, session_io, c) == 0)
        c->mask = mask;
}

static void session_count(struct session *s, int tls, enum pm_authz a, int peer)
{
    if (s->series)
        return;
    s->series = pm_series(&s->w->px->metrics, s->dir, tls, a, peer);
    pm_add(&s->series->opened, 1);
}

void session_close(struct session *s, const char *why)
{
    struct worker *w = s->w;
    if (s->closed)
        return;
    s->closed = 1;
    if (log_enabled(LOG_DEBUG)) {
        char src[80], dst[80];
        log_debug("connection closed", "direction=%s src=%s dst=%s reason=%s", s->dir == PM_INBOUND ? "inbound" : "outbound",
                  session_addr(&s->src, src, sizeof src), session_addr(&s->dst, dst, sizeof dst), why);
    }
    if (s->detect_timer)
        ae_timer_del(w->loop, s->detect_timer);
    session_set_mask(s, &s->down, AE_NONE);
    session_set_mask(s, &s->up, AE_NONE);
    conn_close(&s->down);
    conn_close(&s->up);
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
        free(s);
    }
}

/* ---- relay (proto_tcp) ---- */

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

const struct proxy_proto proto_tcp = {"tcp", proto_tcp_pump};

static void session_start_relay(struct session *s)
{
    s->stage = STAGE_RELAY;
    s->proto = &proto_tcp; /* seam: a protocol-detection stage would pick here */
    s->last_active_ms = ae_now_ms(s->w->loop);
    s->down.rd_wait = s->up.rd_wait = 0;
    s->down.wr_wait = s->up.wr_wait = 0;
    session_step(s);
}

/* ---- upstream connect ---- */

static int session_socket_setup(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static void session_connect(struct session *s)
{
    const struct proxy_config *cfg = s->w->px->cfg;
    struct sockaddr_storage to = s->dst;
    socklen_t tolen = to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char dst[80];
    int fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("upstream socket failed", "error=\"%s\"", strerror(errno));
        session_close(s, "socket");
        return;
    }
    session_socket_setup(fd);
    if (s->dir == PM_INBOUND && handoff_bind(fd, to.ss_family) < 0) {
        close(fd);
        session_close(s, "passthrough source");
        return;
    }
    s->up.fd = fd;
    s->up.owner = s;
    s->up.type = &conn_plain;
    s->stage = STAGE_CONNECT;
    s->deadline_ms = ae_now_ms(s->w->loop) + cfg->connect_timeout_ms;
    session_set_mask(s, &s->down, AE_NONE); /* the caller's bytes wait in the kernel */
    if (connect(fd, (struct sockaddr *)&to, tolen) < 0 && errno != EINPROGRESS) {
        pm_add(&s->w->px->metrics.connect_failures[s->dir], 1);
        log_info("upstream connect failed", "dst=%s error=\"%s\"", session_addr(&to, dst, sizeof dst), strerror(errno));
        session_close(s, "connect");
        return;
    }
    session_set_mask(s, &s->up, AE_WRITABLE);
}

static void session_connected(struct session *s)
{
    int err = 0;
    socklen_t l = sizeof err;
    char dst[80];
    struct proxy *px = s->w->px;
    if (!(s->up.ready & AE_WRITABLE))
        return;
    if (getsockopt(s->up.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err) {
        pm_add(&px->metrics.connect_failures[s->dir], 1);
        log_info("upstream connect failed", "direction=%s dst=%s error=\"%s\"",
                 s->dir == PM_INBOUND ? "inbound" : "outbound", session_addr(&s->dst, dst, sizeof dst), strerror(err));
        session_close(s, "connect");
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
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!ssl || creds_ssl_attach(ssl, &s->peer) < 0 || conn_tls_attach(&s->up, ssl) < 0) {
        if (ssl && !s->up.ssl)
            SSL_free(ssl);
        session_close(s, "ssl setup");
        return;
    }
    int fam = s->dst.ss_family;
    const void *addr = fam == AF_INET ? (const void *)&((struct sockaddr_in *)&s->dst)->sin_addr
                                      : (const void *)&((struct sockaddr_in6 *)&s->dst)->sin6_addr;
    s->peer.expect_id = config_expected_id(px->cfg, fam, addr);
    SSL_set_connect_state(s->up.ssl);
    s->stage = STAGE_TLS_CONNECT;
    s->deadline_ms = ae_now_ms(s->w->loop) + px->cfg->handshake_timeout_ms;
    s->up.rd_wait = s->up.wr_wait = 0;
    session_step(s);
}

/* ---- TLS handshakes ---- */

static void session_tls_failed(struct session *s, struct conn *c, int side, int ssl_err)
{
    struct proxy *px = s->w->px;
    enum creds_fail f = creds_classify_failure(c->ssl, &s->peer, ssl_err);
    char src[80], dst[80];
    conn_flush(c); /* best effort: the alert tells the peer why */
    pm_add(&px->metrics.handshakes[side][f], 1);
    log_info("tls handshake failed", "side=%s src=%s dst=%s reason=%s", side == PM_SERVER ? "server" : "client",
             session_addr(&s->src, src, sizeof src), session_addr(&s->dst, dst, sizeof dst), creds_fail_name(f));
    session_close(s, "handshake");
}

/* One handshake step on c: 1 done, 0 waiting (interest set), -1 failed
 * (already counted and closed). */
static int session_handshake(struct session *s, struct conn *c, int side)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    int fr = conn_flush(c); /* the flight OpenSSL just corked */
    if (fr < 0 && fr != -EAGAIN) {
        session_tls_failed(s, c, side, SSL_ERROR_SYSCALL);
        return -1;
    }
    if (r == 1)
        return 1;
    int w = conn_tls_want(c, e);
    if (!w) {
        session_tls_failed(s, c, side, e);
        return -1;
    }
    c->rd_wait = c->wr_wait = w;
    session_set_mask(s, c, w | (conn_out_pending(c) ? AE_WRITABLE : 0));
    return 0;
}

static void session_tls_accept(struct session *s)
{
    struct proxy *px = s->w->px;
    char src[80], uri[SPIFFE_MAX_ID];
    if (conn_out_pending(&s->down) && conn_flush(&s->down) == -EAGAIN)
        return;
    if (session_handshake(s, &s->down, PM_SERVER) <= 0)
        return;
    if (creds_peer_finish(s->down.ssl, &s->peer, px->cfg->trust_domain) < 0) {
        session_tls_failed(s, &s->down, PM_SERVER, SSL_ERROR_SSL);
        return;
    }
    pm_add(&px->metrics.handshakes[PM_SERVER][CREDS_FAIL_NONE], 1);
    spiffe_format(s->peer.id.trust_domain, s->peer.id.ns, s->peer.id.sa, uri, sizeof uri);
    struct authz_decision d = authz_check(&px->cfg->authz, &s->peer.id);
    int slot = pm_peer_slot(&px->metrics, uri);
    session_count(s, 1, d.allowed ? PM_AUTHZ_ALLOWED : PM_AUTHZ_DENIED, slot);
    if (!d.allowed) {
        log_warn("connection denied", "caller=%s src=%s policy=%s reason=%s", uri,
                 session_addr(&s->src, src, sizeof src), authz_policy_name(px->cfg->authz.policy), d.reason);
        session_close(s, "denied");
        return;
    }
    log_debug("connection authorized", "caller=%s reason=%s", uri, d.reason);
    session_connect(s);
}

static void session_tls_connect(struct session *s)
{
    struct proxy *px = s->w->px;
    char uri[SPIFFE_MAX_ID];
    if (conn_out_pending(&s->up) && conn_flush(&s->up) == -EAGAIN)
        return;
    if (session_handshake(s, &s->up, PM_CLIENT) <= 0)
        return;
    if (creds_peer_finish(s->up.ssl, &s->peer, px->cfg->trust_domain) < 0) {
        session_tls_failed(s, &s->up, PM_CLIENT, SSL_ERROR_SSL);
        return;
    }
    pm_add(&px->metrics.handshakes[PM_CLIENT][CREDS_FAIL_NONE], 1);
    spiffe_format(s->peer.id.trust_domain, s->peer.id.ns, s->peer.id.sa, uri, sizeof uri);
    session_count(s, 1, PM_AUTHZ_NONE, pm_peer_slot(&px->metrics, uri));
    session_start_relay(s);
}

/* ---- inbound detection ---- */

static void session_refuse_plaintext(struct session *s, enum pm_refused kind, const char *what)
{
    char src[80], dst[80];
    pm_add(&s->w->px->metrics.refused[kind], 1);
    log_info("plaintext refused", "mode=STRICT src=%s dst=%s kind=%s", session_addr(&s->src, src, sizeof src),
             session_addr(&s->dst, dst, sizeof dst), what);
    session_close(s, "strict");
}

static void session_detected(struct session *s, enum classify_result r)
{
    struct proxy *px = s->w->px;
    if (r == CLASSIFY_WEFT_TLS) {
        SSL_CTX *ctx = creds_server_ctx(px->creds);
        if (!ctx) {
            pm_add(&px->metrics.handshakes[PM_SERVER][CREDS_FAIL_NOT_READY], 1);
            session_close(s, "no credentials");
            return;
        }
        SSL *ssl = SSL_new(ctx);
        SSL_CTX_free(ctx);
        if (!ssl || creds_ssl_attach(ssl, &s->peer) < 0 || conn_tls_attach(&s->down, ssl) < 0) {
            if (ssl && !s->down.ssl)
                SSL_free(ssl);
            session_close(s, "ssl setup");
            return;
        }
        SSL_set_accept_state(s->down.ssl);
        s->tls_down = 1;
        s->stage = STAGE_TLS_ACCEPT;
        s->deadline_ms = ae_now_ms(s->w->loop) + px->cfg->handshake_timeout_ms;
        s->down.rd_wait = s->down.wr_wait = 0;
        session_step(s);
        return;
    }
    if (px->cfg->mtls_mode == MTLS_STRICT) {
        session_refuse_plaintext(s, r == CLASSIFY_OTHER_TLS ? PM_REFUSED_OTHER_TLS : PM_REFUSED_PLAINTEXT,
                                 classify_name(r));
        return;
    }
    session_count(s, 0, PM_AUTHZ_NONE, 0);
    session_connect(s);
}

static long session_detect_retry(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct session *s = data;
    s->detect_timer = 0;
    s->down.ready |= AE_READABLE;
    session_step(s);
    return -1;
}

static void session_detect(struct session *s)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    if (!(s->down.ready & AE_READABLE))
        return;
    ssize_t n = recv(s->down.fd, buf, CLASSIFY_MAX_BYTES, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        s->down.ready &= ~AE_READABLE;
        return;
    }
    if (n <= 0) {
        session_close(s, n == 0 ? "eof before data" : "recv");
        return;
    }
    enum classify_result r = classify_first_bytes(buf, (size_t)n);
    if (r != CLASSIFY_NEED_MORE) {
        session_detected(s, r);
        return;
    }
    /* The bytes stay queued, so level-triggered readiness would spin: look
     * again shortly instead. */
    s->down.ready &= ~AE_READABLE;
    session_set_mask(s, &s->down, AE_NONE);
    if (!s->detect_timer)
        s->detect_timer = ae_timer_add(s->w->loop, DETECT_RETRY_MS, session_detect_retry, s);
}

/* ---- dispatch ---- */

static void session_step(struct session *s)
{
    switch (s->stage) {
    case STAGE_DETECT: session_detect(s); break;
    case STAGE_TLS_ACCEPT: session_tls_accept(s); break;
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

/* Bytes may have arrived while the loop was busy, so what is queued decides;
 * nothing, or a first flight still incomplete, counts as plaintext (a
 * server-first protocol, or an idle caller). */
static enum classify_result session_classify_at_deadline(struct session *s)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    ssize_t n = recv(s->down.fd, buf, CLASSIFY_MAX_BYTES, MSG_PEEK | MSG_DONTWAIT);
    enum classify_result r = n > 0 ? classify_first_bytes(buf, (size_t)n) : CLASSIFY_PLAINTEXT;
    return r == CLASSIFY_NEED_MORE ? CLASSIFY_PLAINTEXT : r;
}

void session_tick(struct worker *w, uint64_t now)
{
    const struct proxy_config *cfg = w->px->cfg;
    struct session *next;
    for (struct session *s = w->sessions; s; s = next) {
        next = s->next;
        if (s->stage == STAGE_RELAY) {
            if (now - s->last_active_ms >= (uint64_t)cfg->idle_timeout_s * 1000u) {
                pm_add(&w->px->metrics.timeouts[s->dir], 1);
                session_close(s, "idle timeout");
            }
            continue;
        }
        if (now < s->deadline_ms)
            continue;
        switch (s->stage) {
        case STAGE_DETECT:
            if (s->detect_timer) {
                ae_timer_del(w->loop, s->detect_timer);
                s->detect_timer = 0;
            }
            session_detected(s, session_classify_at_deadline(s));
            break;
        case STAGE_TLS_ACCEPT:
        case STAGE_TLS_CONNECT:
            pm_add(&w->px->metrics.handshakes[s->stage == STAGE_TLS_ACCEPT ? PM_SERVER : PM_CLIENT][CREDS_FAIL_TIMEOUT], 1);
            pm_add(&w->px->metrics.timeouts[s->dir], 1);
            session_close(s, "handshake timeout");
            break;
        default:
            pm_add(&w->px->metrics.timeouts[s->dir], 1);
            pm_add(&w->px->metrics.connect_failures[s->dir], 1);
            session_close(s, "connect timeout");
        }
    }
}

/* ---- accept ---- */

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
    struct proxy *px = w->px;
    struct sockaddr_storage dst, src;
    socklen_t sl = sizeof src;
    char a[80];
    int r = session_original_dst(fd, &dst);
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
    session_socket_setup(fd);
    struct session *s = xcalloc(1, sizeof *s);
    s->w = w;
    s->dir = dir;
    s->dst = dst;
    s->src = src;
    s->down.fd = fd;
    s->down.type = &conn_plain;
    s->down.owner = s;
    s->up.fd = -1;
    s->up.owner = s;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->nsessions++;
    log_debug("connection accepted", "direction=%s src=%s", dir == PM_INBOUND ? "inbound" : "outbound",
              session_addr(&src, a, sizeof a));
    if (dir == PM_INBOUND) {
        s->stage = STAGE_DETECT;
        /* STRICT accepts nothing but mesh TLS, so a slow client proxy gets
         * the whole handshake time to send its ClientHello; PERMISSIVE must
         * decide soon that a silent caller speaks a server-first protocol. */
        s->deadline_ms = ae_now_ms(w->loop) + (px->cfg->mtls_mode == MTLS_STRICT ? px->cfg->handshake_timeout_ms
                                                                                  : px->cfg->detect_timeout_ms);
        session_set_mask(s, &s->down, AE_READABLE);
        return;
    }
    int fam = dst.ss_family;
    const void *addr = fam == AF_INET ? (const void *)&((struct sockaddr_in *)&dst)->sin_addr
                                      : (const void *)&((struct sockaddr_in6 *)&dst)->sin6_addr;
    s->tls_up = config_is_meshed(px->cfg, fam, addr) ? 1 : 0;
    session_connect(s);
}
