/* SPDX-License-Identifier: Apache-2.0 */
/* The discovery client (see cp_client.h): a state machine on its own ae
 * loop (down -> connecting -> handshaking -> open), one nghttp2 client
 * session per connection with one POST /v1/stream whose request body is
 * the queue of our messages and whose response body is the server's lines.
 * Everything but the counters, the policy lock and the dest store's queue
 * is this thread's alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/x509v3.h>

#include "ae.h"
#include "clock.h"
#include "conn.h"
#include "cp_client.h"
#include "errbuf.h"
#include "hostport.h"
#include "k8s.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "xalloc.h"

/* ---------- pure parts ---------- */

void cpc_policy_overlay(struct proxy_config *cfg, const struct dest_policy *p)
{
    cfg->mtls_mode = p->mtls_mode;
    cfg->authz.policy = p->policy;
    memcpy(cfg->authz.rules, p->rules, p->nrules * sizeof *p->rules);
    cfg->authz.nrules = p->nrules;
}

int cpc_policy_same(const struct proxy_config *cfg, const struct dest_policy *p)
{
    if (cfg->mtls_mode != p->mtls_mode || cfg->authz.policy != p->policy || cfg->authz.nrules != p->nrules)
        return 0;
    for (size_t i = 0; i < p->nrules; i++)
        if (strcmp(cfg->authz.rules[i].ns, p->rules[i].ns) != 0 || strcmp(cfg->authz.rules[i].sa, p->rules[i].sa) != 0)
            return 0;
    return 1;
}

/* One JSON object as a line (jansson escapes the strings). Steals o. */
static int cpc_append_json(struct buf *out, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL; /* malloc'd by jansson */
    json_decref(o);
    if (!s)
        return -ENOMEM;
    int r = buf_appendf(out, "%s\n", s);
    free(s);
    return r;
}

int cpc_msg_subscribe(struct buf *out, const char *type, const char *id)
{
    return cpc_append_json(out, json_pack("{s:s,s:s}", "type", type, "id", id));
}

int cpc_msg_ack(struct buf *out, const char *id, uint64_t version)
{
    return cpc_append_json(out, json_pack("{s:s,s:s,s:I}", "type", "ack", "id", id, "version", (json_int_t)version));
}

int cpc_msg_nack(struct buf *out, const char *id, uint64_t version, const char *reason)
{
    char r[1025]; /* the server's limit on a reason */
    snprintf(r, sizeof r, "%s", *reason ? reason : "rejected");
    return cpc_append_json(out, json_pack("{s:s,s:s,s:I,s:s}", "type", "nack", "id", id, "version",
                                          (json_int_t)version, "reason", r));
}

void cpc_lines_init(struct cpc_lines *l, size_t max)
{
    buf_init(&l->line, max + 1);
    l->max = max;
}

void cpc_lines_free(struct cpc_lines *l)
{
    buf_free(&l->line);
}

int cpc_lines_feed(struct cpc_lines *l, const char *data, size_t len, cpc_line_fn *fn, void *arg)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (l->line.len + take > l->max + 1) /* the one past max may be a "\r", dropped below */
            return -E2BIG;
        if (take && buf_append(&l->line, data, take) < 0)
            return -E2BIG;
        data += take;
        len -= take;
        if (!nl)
            break;
        data++;
        len--;
        size_t n = l->line.len;
        if (n && l->line.data[n - 1] == '\r')
            n--;
        if (n > l->max)
            return -E2BIG;
        int r = fn(arg, n ? l->line.data : "", n);
        buf_reset(&l->line);
        if (r)
            return r;
    }
    return 0;
}

/* ---------- the client ---------- */

enum cpc_state { CPC_DOWN, CPC_CONNECTING, CPC_HANDSHAKING, CPC_OPEN };

struct cp_client {
    struct cfgstore *config;
    struct creds *creds;
    struct dest_store *dest;
    char addr[300], host[256], port[8], server_name[256], trust_domain[SPIFFE_MAX_TRUST_DOMAIN + 1];
    char policy_id[DEST_MAX_ID + 1]; /* "" when the pod's name is unknown */
    uint64_t idle_ms, start_ms;
    struct ae_loop *loop;
    pthread_t thread;
    atomic_int stop;

    enum cpc_state state;
    struct conn conn;
    nghttp2_session *h2;
    int32_t sid;
    int deferred;            /* the body's reader is deferred: resume on new output */
    const char *broken;      /* set in a callback: go down once nghttp2 returns */
    struct buf outq;         /* our messages not yet handed to nghttp2 */
    struct cpc_lines lines;
    long long retry_timer, conn_timer, tick_timer;
    struct k8s_backoff backoff;
    unsigned failures;       /* connection attempts failed in a row */
    uint64_t epoch;          /* streams established so far: versions are per stream */
    unsigned long max_subs;  /* the server's, from hello */
    uint64_t last_rx_ms;
    unsigned long creds_gen;  /* the credentials' generation the connection presented */
    time_t cert_not_after;    /* and its certificate's end */
    int rotating;             /* going down on purpose: a new certificate to present */
    atomic_int connected;

    pthread_mutex_t policy_mu; /* orders the policy swaps against SIGHUP's */
    int have_policy;
    struct dest_policy policy;   /* the last good one */
    atomic_int policy_received;
    int policy_error_logged;

    /* metrics */
    atomic_uint_fast64_t connects, connect_failures, disconnects, updates, acks, nacks, refusals, stale,
        unsubscribes, over_limit, policy_swaps, rotations, routes[5], waits[2];
    atomic_uint_fast64_t last_update_ms; /* 0: none yet */
};

static void cpc_down(struct cp_client *c, const char *why);
static void cpc_pump(struct cp_client *c);

static void cpc_queue(struct cp_client *c, int r)
{
    if (r < 0) {
        c->broken = "too many messages waiting to be sent";
        return;
    }
    if (c->h2 && c->deferred) {
        c->deferred = 0;
        nghttp2_session_resume_data(c->h2, c->sid);
    }
}

static void cpc_send_subscribe(struct cp_client *c, const struct sockaddr_storage *dst, const char *type)
{
    char id[DEST_MAX_ID + 1];
    dest_format_id(dst, id, sizeof id);
    cpc_queue(c, cpc_msg_subscribe(&c->outq, type, id));
    if (strcmp(type, "unsubscribe") == 0)
        atomic_fetch_add(&c->unsubscribes, 1);
    log_debug("discovery subscription", "type=%s id=%s", type, id);
}

/* Subscriptions this stream may still open (the policy's included). */
static int cpc_room(struct cp_client *c)
{
    size_t used = dest_store_count(c->dest) + (*c->policy_id ? 1 : 0);
    return used < c->max_subs;
}

static void cpc_take_wants(struct cp_client *c)
{
    struct sockaddr_storage keys[64];
    size_t n;
    uint64_t now = clock_mono_ms();
    while ((n = dest_store_take_wants(c->dest, keys, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            const struct dest_snap *s = dest_store_get(c->dest);
            int held = dest_snap_find(s, &keys[i]) != NULL;
            dest_snap_put(s);
            if (held)
                continue;
            int room = cpc_room(c);
            if (dest_store_add_pending(c->dest, &keys[i], now) < 0 || !room) {
                /* Held as failed (the fallback) until idle, so each new
                 * connection does not ask again. */
                dest_store_fail(c->dest, &keys[i]);
                if (atomic_fetch_add(&c->over_limit, 1) == 0) {
                    char id[DEST_MAX_ID + 1];
                    dest_format_id(&keys[i], id, sizeof id);
                    log_warn("discovery subscription limit reached", "id=%s limit=%lu", id, c->max_subs);
                }
                continue;
            }
            if (atomic_load(&c->connected))
                cpc_send_subscribe(c, &keys[i], "subscribe");
        }
    }
}

static void cpc_apply_policy(struct cp_client *c, const struct dest_policy *p)
{
    char err[256] = "";
    pthread_mutex_lock(&c->policy_mu);
    c->policy = *p;
    c->have_policy = 1;
    const struct cfgsnap *cur = cfgstore_get(c->config);
    if (!cpc_policy_same(&cur->cfg, p)) {
        struct proxy_config next;
        if (config_copy(&next, &cur->cfg, err, sizeof err) == 0) {
            cpc_policy_overlay(&next, p);
            cfgstore_swap(c->config, &next);
            atomic_fetch_add(&c->policy_swaps, 1);
            log_info("inbound policy from discovery", "mtls=%s policy=%s allow_from=%zu generation=%llu",
                     p->mtls_mode == MTLS_STRICT ? "STRICT" : "PERMISSIVE", authz_policy_name(p->policy), p->nrules,
                     (unsigned long long)cfgstore_generation(c->config));
        } else {
            log_error("inbound policy not applied", "error=\"%s\"", err);
        }
    }
    cfgsnap_put(cur);
    pthread_mutex_unlock(&c->policy_mu);
    atomic_store(&c->policy_received, 1);
    c->policy_error_logged = 0;
}

static void cpc_on_hello(struct cp_client *c, const struct dest_msg *m)
{
    c->max_subs = m->max_subscriptions;
    c->epoch++;
    c->failures = 0;
    k8s_backoff_reset(&c->backoff);
    ae_timer_del(c->loop, c->conn_timer);
    c->conn_timer = 0;
    atomic_store(&c->connected, 1);
    atomic_fetch_add(&c->connects, 1);
    if (*c->policy_id)
        cpc_queue(c, cpc_msg_subscribe(&c->outq, "subscribe", c->policy_id));
    /* Everything held is asked again: a new stream starts with full answers. */
    const struct dest_snap *s = dest_store_get(c->dest);
    size_t room = c->max_subs > (*c->policy_id ? 1u : 0u) ? c->max_subs - (*c->policy_id ? 1u : 0u) : 0;
    for (size_t i = 0; i < s->n && i < room; i++)
        cpc_send_subscribe(c, &s->v[i]->dst, "subscribe");
    if (s->n > room)
        log_warn("discovery subscription limit below the destinations held", "held=%zu limit=%lu", s->n,
                 c->max_subs);
    log_info("discovery stream up", "addr=%s epoch=%llu subscriptions=%zu", c->addr, (unsigned long long)c->epoch,
             s->n < room ? s->n : room);
    dest_snap_put(s);
    cpc_take_wants(c);
}

static int cpc_on_line(void *arg, const char *line, size_t len)
{
    struct cp_client *c = arg;
    struct dest_msg m;
    char err[512] = "";
    struct sockaddr_storage key;
    if (len == 0)
        return 0;
    int r = dest_parse_msg(line, len, c->trust_domain, &m, err, sizeof err);
    if (r < 0) {
        if (m.type == DEST_MSG_ANSWER) {
            atomic_fetch_add(&c->updates, 1);
            atomic_fetch_add(&c->nacks, 1);
            log_warn("discovery answer rejected", "id=%s version=%llu reason=\"%s\"", m.id,
                     (unsigned long long)m.version, log_clean(err));
            cpc_queue(c, cpc_msg_nack(&c->outq, m.id, m.version, err));
            if (dest_parse_id(m.id, &key) == 0 && key.ss_family != AF_UNSPEC)
                dest_store_fail(c->dest, &key); /* a pending entry falls back; a good one stays */
        } else {
            log_warn("discovery message unreadable", "error=\"%s\"", log_clean(err));
            if (!atomic_load(&c->connected))
                c->broken = "the server's hello is not protocol 1";
        }
        dest_msg_clear(&m);
        return 0;
    }
    switch (m.type) {
    case DEST_MSG_HELLO:
        cpc_on_hello(c, &m);
        break;
    case DEST_MSG_ERROR:
        atomic_fetch_add(&c->refusals, 1);
        log_warn("discovery refused a message", "code=%s id=%s error=\"%s\"", m.code, m.id, log_clean(m.error));
        if (*m.id && dest_parse_id(m.id, &key) == 0 && key.ss_family != AF_UNSPEC)
            dest_store_fail(c->dest, &key);
        break;
    case DEST_MSG_ANSWER:
        atomic_fetch_add(&c->updates, 1);
        atomic_store(&c->last_update_ms, clock_mono_ms());
        dest_parse_id(m.id, &key); /* parsed once in dest_parse_msg */
        if (key.ss_family == AF_UNSPEC) {
            if (strcmp(m.id, c->policy_id) != 0) {
                cpc_queue(c, cpc_msg_nack(&c->outq, m.id, m.version, "not this pod's policy"));
                atomic_fetch_add(&c->nacks, 1);
                break;
            }
            if (m.answer->kind == DEST_KIND_POLICY) {
                cpc_apply_policy(c, &m.answer->policy);
            } else if (!c->policy_error_logged) { /* an error answer: the last good policy stays */
                log_warn("discovery has no policy for this pod yet", "id=%s error=\"%s\"", m.id,
                         log_clean(m.answer->error ? m.answer->error : ""));
                c->policy_error_logged = 1;
            }
        } else {
            r = dest_store_apply(c->dest, &key, m.answer, m.version, c->epoch);
            m.answer = NULL; /* taken */
            if (r == -ESTALE)
                atomic_fetch_add(&c->stale, 1);
            if (r < 0)
                break; /* stale, or unsubscribed meanwhile: nothing applied */
        }
        cpc_queue(c, cpc_msg_ack(&c->outq, m.id, m.version));
        atomic_fetch_add(&c->acks, 1);
        log_debug("discovery answer applied", "id=%s version=%llu", m.id, (unsigned long long)m.version);
        break;
    }
    dest_msg_clear(&m);
    return 0;
}

/* ---------- HTTP/2 ---------- */

static ssize_t cpc_body_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                             nghttp2_data_source *src, void *user)
{
    (void)h2, (void)id, (void)flags, (void)src;
    struct cp_client *c = user;
    if (c->outq.len == 0) {
        c->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = c->outq.len < len ? c->outq.len : len;
    memcpy(buf, c->outq.data, n);
    memmove(c->outq.data, c->outq.data + n, c->outq.len - n);
    c->outq.len -= n;
    return (ssize_t)n;
}

static int cpc_on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)h2, (void)flags;
    struct cp_client *c = user;
    if (id != c->sid)
        return 0;
    if (cpc_lines_feed(&c->lines, (const char *)data, len, cpc_on_line, c) == -E2BIG)
        c->broken = "a server message over the size limit";
    return 0;
}

static int cpc_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                         const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    (void)h2, (void)flags;
    struct cp_client *c = user;
    if (f->hd.stream_id == c->sid && nl == 7 && memcmp(name, ":status", 7) == 0 && (vl != 3 || memcmp(value, "200", 3)))
        c->broken = "the stream was answered with an HTTP error";
    return 0;
}

static int cpc_on_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
    (void)h2, (void)code;
    struct cp_client *c = user;
    if (id == c->sid)
        c->broken = "the server ended the stream";
    return 0;
}

static nghttp2_session_callbacks *cpc_cbs;
static pthread_once_t cpc_cbs_once = PTHREAD_ONCE_INIT;

static void cpc_callbacks_init(void)
{
    nghttp2_session_callbacks_new(&cpc_cbs); /* kept for the process's life */
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cpc_cbs, cpc_on_data);
    nghttp2_session_callbacks_set_on_header_callback(cpc_cbs, cpc_on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cpc_cbs, cpc_on_close);
}

static int cpc_start_h2(struct cp_client *c)
{
    pthread_once(&cpc_cbs_once, cpc_callbacks_init);
    if (nghttp2_session_client_new(&c->h2, cpc_cbs, c) != 0)
        return -ENOMEM;
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
        {(uint8_t *)":authority", (uint8_t *)c->server_name, 10, strlen(c->server_name), 0},
        {(uint8_t *)":path", (uint8_t *)"/v1/stream", 5, 10, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/x-ndjson", 12, 20, 0},
    };
    nghttp2_data_provider prd = {.read_callback = cpc_body_read};
    c->sid = nghttp2_submit_request(c->h2, NULL, nv, sizeof nv / sizeof *nv, &prd, NULL);
    return c->sid > 0 ? 0 : -EIO;
}

/* ---------- the connection ---------- */

static void cpc_io(struct ae_loop *loop, int fd, void *data, int mask);

static void cpc_set_mask(struct cp_client *c, int mask)
{
    conn_set_mask(&c->conn, c->loop, mask, cpc_io, c);
}

static int cpc_tls_setup(SSL *ssl, void *arg)
{
    struct cp_client *c = arg;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, c->server_name, ip) == 1 || inet_pton(AF_INET6, c->server_name, ip) == 1;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->server_name) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(ssl, c->server_name) != 1 || SSL_set1_host(ssl, c->server_name) != 1)
        return -1;
    return 0;
}

static void cpc_pump(struct cp_client *c)
{
    char in[16384];
    for (;;) {
        if (!conn_can_read(&c->conn))
            break;
        ssize_t n = conn_read(&c->conn, in, sizeof in);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            cpc_down(c, n == 0 ? "the server closed the connection" : "read failed");
            return;
        }
        c->last_rx_ms = clock_mono_ms();
        if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)in, (size_t)n) < 0)
            c->broken = "HTTP/2 protocol error";
        if (c->broken) {
            cpc_down(c, c->broken);
            return;
        }
    }
    for (;;) {
        if (conn_out_pending(&c->conn)) {
            int r = conn_flush(&c->conn);
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                cpc_down(c, "write failed");
                return;
            }
        }
        const uint8_t *out;
        ssize_t n = nghttp2_session_mem_send(c->h2, &out);
        if (n < 0) {
            cpc_down(c, "HTTP/2 protocol error");
            return;
        }
        if (n == 0)
            break;
        /* With nothing pending the TLS write takes it all (corked). */
        if (conn_write(&c->conn, out, (size_t)n) != n) {
            cpc_down(c, "write failed");
            return;
        }
    }
    if (c->broken) {
        cpc_down(c, c->broken);
        return;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        cpc_down(c, "the HTTP/2 session ended");
        return;
    }
    cpc_set_mask(c, AE_READABLE | (conn_out_pending(&c->conn) ? AE_WRITABLE : 0));
}

static void cpc_step(struct cp_client *c)
{
    int r;
    char why[300];
    switch (c->state) {
    case CPC_DOWN:
        return;
    case CPC_CONNECTING: {
        r = conn_tcp_connected(&c->conn);
        if (r == -EAGAIN)
            return;
        if (r < 0) {
            snprintf(why, sizeof why, "connect: %s", strerror(-r));
            cpc_down(c, why);
            return;
        }
        c->creds_gen = creds_generation(c->creds);
        c->cert_not_after = creds_not_after(c->creds);
        SSL_CTX *ctx = creds_control_ctx(c->creds, (const unsigned char *)"\x02h2", 3);
        if (!ctx) {
            cpc_down(c, "no certificate yet");
            return;
        }
        r = conn_tls_connect(&c->conn, ctx, cpc_tls_setup, c);
        SSL_CTX_free(ctx); /* the SSL holds its own reference */
        if (r < 0) {
            cpc_down(c, "TLS setup failed");
            return;
        }
        c->state = CPC_HANDSHAKING;
    }
        /* fall through */
    case CPC_HANDSHAKING: {
        r = conn_handshake(&c->conn);
        if (r == -EAGAIN) {
            cpc_set_mask(c, conn_handshake_interest(&c->conn));
            return;
        }
        if (r < 0) {
            long v = SSL_get_verify_result(conn_ssl(&c->conn));
            if (v != X509_V_OK)
                snprintf(why, sizeof why, "TLS handshake: server certificate: %s", X509_verify_cert_error_string(v));
            else
                tls_error(why, sizeof why, "TLS handshake");
            cpc_down(c, why);
            return;
        }
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(conn_ssl(&c->conn), &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            cpc_down(c, "the server did not select ALPN h2");
            return;
        }
        if (cpc_start_h2(c) < 0) {
            cpc_down(c, "HTTP/2 setup failed");
            return;
        }
        c->state = CPC_OPEN;
        c->last_rx_ms = clock_mono_ms();
    }
        /* fall through */
    case CPC_OPEN:
        cpc_pump(c);
        return;
    }
}

static void cpc_io(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop, (void)fd;
    struct cp_client *c = data;
    c->conn.ready |= mask;
    cpc_step(c);
}

static long cpc_on_retry(struct ae_loop *loop, long long id, void *data);

static long cpc_on_conn_timeout(struct ae_loop *loop, long long id, void *data)
{
    (void)loop, (void)id;
    struct cp_client *c = data;
    c->conn_timer = 0;
    cpc_down(c, "no hello from the server in time");
    return -1;
}

static void cpc_connect(struct cp_client *c)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char why[300];
    int r = getaddrinfo(c->host, c->port, &hints, &res); /* this thread only: blocking is fine */
    if (r != 0 || !res) {
        snprintf(why, sizeof why, "resolve %s: %s", c->host, gai_strerror(r));
        if (res)
            freeaddrinfo(res);
        cpc_down(c, why);
        return;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        cpc_down(c, why);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small messages, each awaited */
    memset(&c->conn, 0, sizeof c->conn);
    r = conn_tcp_connect(&c->conn, fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    c->state = CPC_CONNECTING;
    c->conn_timer = ae_timer_add(c->loop, CPC_CONNECT_TIMEOUT_MS, cpc_on_conn_timeout, c);
    if (r < 0) {
        snprintf(why, sizeof why, "connect: %s", strerror(-r));
        cpc_down(c, why);
        return;
    }
    cpc_set_mask(c, AE_WRITABLE);
}

/* Closes the connection (if any) and schedules the next attempt. */
static void cpc_down(struct cp_client *c, const char *why)
{
    int was = atomic_exchange(&c->connected, 0);
    if (c->conn.fd >= 0) {
        ae_file_del(c->loop, c->conn.fd, AE_READABLE | AE_WRITABLE);
        c->conn.mask = 0;
    }
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    conn_close(&c->conn);
    buf_reset(&c->outq);
    buf_reset(&c->lines.line);
    c->deferred = 0;
    c->broken = NULL;
    c->state = CPC_DOWN;
    ae_timer_del(c->loop, c->conn_timer);
    c->conn_timer = 0;
    if (atomic_load(&c->stop))
        return;
    uint32_t delay = k8s_backoff_next(&c->backoff);
    char reason[300];
    snprintf(reason, sizeof reason, "%s", why);
    if (was && c->rotating) {
        log_info("discovery stream reconnecting with the renewed certificate", "addr=%s retry_in_ms=%u", c->addr,
                 delay);
    } else if (was) {
        atomic_fetch_add(&c->disconnects, 1);
        log_warn("discovery stream lost; serving on the last answers", "addr=%s reason=\"%s\" retry_in_ms=%u",
                 c->addr, log_clean(reason), delay);
    } else {
        atomic_fetch_add(&c->connect_failures, 1);
        c->failures++;
        log_event(c->failures == 1 || c->failures % 10 == 0 ? LOG_WARN : LOG_DEBUG, "discovery not reachable",
                  "addr=%s reason=\"%s\" failures=%u retry_in_ms=%u", c->addr, log_clean(reason), c->failures, delay);
    }
    c->rotating = 0;
    ae_timer_del(c->loop, c->retry_timer);
    c->retry_timer = ae_timer_add(c->loop, (long)delay, cpc_on_retry, c);
}

static long cpc_on_retry(struct ae_loop *loop, long long id, void *data)
{
    (void)loop, (void)id;
    struct cp_client *c = data;
    c->retry_timer = 0;
    cpc_connect(c);
    return -1;
}

/* Idle subscriptions go; an open stream is pinged and declared dead when
 * nothing came back for CPC_DEAD_MS (a peer gone without a FIN). */
static long cpc_on_tick(struct ae_loop *loop, long long id, void *data)
{
    (void)loop, (void)id;
    struct cp_client *c = data;
    struct sockaddr_storage keys[64];
    size_t n;
    uint64_t now = clock_mono_ms();
    /* Only while connected: during an outage the last good answers are
     * all there is, and nothing could subscribe again. */
    while (atomic_load(&c->connected) && (n = dest_store_expire(c->dest, now, c->idle_ms, keys, 64)) > 0)
        for (size_t i = 0; i < n; i++)
            cpc_send_subscribe(c, &keys[i], "unsubscribe");
    if (c->state == CPC_OPEN) {
        /* discovery checked the certificate at the handshake only: present
         * each renewed one, and go when the one presented expires (an
         * identity no longer renewed must not keep its stream forever). */
        int renewed = creds_generation(c->creds) != c->creds_gen;
        if ((renewed || (c->cert_not_after && time(NULL) >= c->cert_not_after)) && atomic_load(&c->connected)) {
            c->rotating = 1;
            atomic_fetch_add(&c->rotations, 1);
            cpc_down(c, renewed ? "workload certificate renewed" : "the certificate presented has expired");
        } else if (now - c->last_rx_ms > CPC_DEAD_MS) {
            cpc_down(c, "no answer to pings");
        } else {
            nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
            cpc_pump(c);
        }
    }
    long every = (long)(c->idle_ms / 4);
    if (every > CPC_PING_MS)
        every = CPC_PING_MS;
    return every < 250 ? 250 : every;
}

static void cpc_on_wake(struct ae_loop *loop, void *data)
{
    struct cp_client *c = data;
    if (atomic_load(&c->stop)) {
        ae_stop(loop);
        return;
    }
    cpc_take_wants(c);
    if (c->state == CPC_OPEN)
        cpc_pump(c);
}

static void *cpc_run(void *arg)
{
    struct cp_client *c = arg;
    cpc_connect(c);
    c->tick_timer = ae_timer_add(c->loop, 250, cpc_on_tick, c);
    ae_run(c->loop);
    atomic_store(&c->stop, 1);
    cpc_down(c, "stopping");
    ae_timer_del(c->loop, c->tick_timer);
    ae_timer_del(c->loop, c->retry_timer);
    conn_thread_cleanup();
    return NULL;
}

struct cp_client *cp_client_start(struct cfgstore *config, struct creds *creds, struct dest_store *dest,
                                  const struct proxy_config *cfg, char *err, size_t errlen)
{
    errbuf_set(err, errlen, "%s", "");
    if (!cfg->discovery_addr || !*cfg->discovery_addr)
        return NULL;
    struct cp_client *c = xcalloc(1, sizeof *c);
    c->config = config;
    c->creds = creds;
    c->dest = dest;
    c->conn.fd = -1;
    snprintf(c->addr, sizeof c->addr, "%s", cfg->discovery_addr);
    if (hostport_split(cfg->discovery_addr, c->host, sizeof c->host, c->port, sizeof c->port) < 0) {
        errbuf_set(err, errlen, "WEFT_DISCOVERY_ADDR=\"%s\": not host:port", cfg->discovery_addr);
        free(c);
        return NULL;
    }
    snprintf(c->server_name, sizeof c->server_name, "%s",
             *cfg->discovery_server_name ? cfg->discovery_server_name : c->host);
    snprintf(c->trust_domain, sizeof c->trust_domain, "%s", cfg->trust_domain);
    if (cfg->pod_name && *cfg->pod_name)
        snprintf(c->policy_id, sizeof c->policy_id, "policy:%s/%s", cfg->pod_namespace, cfg->pod_name);
    c->idle_ms = (uint64_t)cfg->discovery_idle_s * 1000u;
    c->start_ms = clock_mono_ms();
    c->max_subs = DEST_MAX_ENTRIES;
    buf_init(&c->outq, CPC_MAX_OUT);
    cpc_lines_init(&c->lines, DEST_MAX_LINE);
    k8s_backoff_init(&c->backoff, CPC_BACKOFF_FIRST_MS, CPC_BACKOFF_MAX_MS,
                     clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c);
    pthread_mutex_init(&c->policy_mu, NULL);
    if (!*c->policy_id)
        atomic_store(&c->policy_received, 1); /* nothing to wait for */
    struct rlimit rl;
    int setsize = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur + 16 > (rlim_t)setsize)
        setsize = rl.rlim_cur > 4000000 ? 4000000 : (int)rl.rlim_cur + 16;
    c->loop = ae_loop_new(setsize); /* the socket's fd may be as high as any connection's */
    if (!c->loop) {
        errbuf_set(err, errlen, "discovery client: event loop: %s", strerror(errno));
        goto fail;
    }
    ae_set_wakeup(c->loop, cpc_on_wake, c);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int r = pthread_create(&c->thread, &attr, cpc_run, c);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        errbuf_set(err, errlen, "discovery client: thread: %s", strerror(r));
        goto fail;
    }
    log_info("discovery client started", "addr=%s server_name=%s policy=%s wait_ms=%u idle_s=%u", c->addr,
             c->server_name, *c->policy_id ? c->policy_id : "(no pod name)", cfg->discovery_wait_ms,
             cfg->discovery_idle_s);
    return c;
fail:
    if (c->loop)
        ae_loop_free(c->loop);
    buf_free(&c->outq);
    cpc_lines_free(&c->lines);
    pthread_mutex_destroy(&c->policy_mu);
    free(c);
    return NULL;
}

void cp_client_stop(struct cp_client *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    ae_wakeup(c->loop);
    pthread_join(c->thread, NULL);
    ae_loop_free(c->loop);
    buf_free(&c->outq);
    cpc_lines_free(&c->lines);
    pthread_mutex_destroy(&c->policy_mu);
    free(c);
}

int cp_client_connected(const struct cp_client *c)
{
    return c && atomic_load(&((struct cp_client *)c)->connected);
}

void cp_client_wake(struct cp_client *c)
{
    if (c)
        ae_wakeup(c->loop);
}

int cp_client_ready(struct cp_client *c, const char **why)
{
    if (!c || atomic_load(&c->policy_received) || clock_mono_ms() - c->start_ms >= CPC_READY_WAIT_MS)
        return 1;
    *why = "waiting for the inbound policy from discovery";
    return 0;
}

void cp_client_swap_config(struct cp_client *c, struct cfgstore *config, struct proxy_config *next)
{
    if (!c) {
        cfgstore_swap(config, next);
        return;
    }
    pthread_mutex_lock(&c->policy_mu);
    if (c->have_policy)
        cpc_policy_overlay(next, &c->policy);
    cfgstore_swap(config, next);
    pthread_mutex_unlock(&c->policy_mu);
}

void cp_client_count_route(struct cp_client *c, enum dest_route r, int waited)
{
    if (!c)
        return;
    if ((unsigned)r < 5)
        atomic_fetch_add_explicit(&c->routes[r], 1, memory_order_relaxed);
    if (waited)
        atomic_fetch_add_explicit(&c->waits[r == DEST_ROUTE_FALLBACK ? 1 : 0], 1, memory_order_relaxed);
}

#define CPC_LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static int cpc_counter(struct buf *out, const char *name, const char *help, unsigned long long v)
{
    int rc = metrics_header(out, name, "counter", help);
    return rc | buf_appendf(out, "%s %llu\n", name, v);
}

int cp_client_render_metrics(struct cp_client *c, struct buf *out)
{
    if (!c)
        return 0;
    int rc = 0;
    uint64_t last = atomic_load(&c->last_update_ms);
    rc |= metrics_header(out, "weft_proxy_discovery_connected", "gauge", "1 while the stream to weft-discovery is up.");
    rc |= metrics_gauge(out, "weft_proxy_discovery_connected", "", atomic_load(&c->connected) ? 1 : 0);
    rc |= metrics_header(out, "weft_proxy_discovery_subscriptions", "gauge",
                         "Destinations held (subscribed, or waiting for a stream), and the own policy.");
    rc |= metrics_gauge(out, "weft_proxy_discovery_subscriptions", "",
                        (double)(dest_store_count(c->dest) + (*c->policy_id ? 1 : 0)));
    rc |= cpc_counter(out, "weft_proxy_discovery_connects_total", "Streams established (the server's hello read).",
                      CPC_LOAD(c->connects));
    rc |= cpc_counter(out, "weft_proxy_discovery_connect_failures_total",
                      "Connection attempts that failed before a hello.", CPC_LOAD(c->connect_failures));
    rc |= cpc_counter(out, "weft_proxy_discovery_disconnects_total", "Established streams that were lost.",
                      CPC_LOAD(c->disconnects));
    rc |= cpc_counter(out, "weft_proxy_discovery_rotations_total",
                      "Streams reopened to present a renewed workload certificate.", CPC_LOAD(c->rotations));
    rc |= cpc_counter(out, "weft_proxy_discovery_updates_total", "Answers received.", CPC_LOAD(c->updates));
    rc |= cpc_counter(out, "weft_proxy_discovery_acks_total", "Answers applied and acknowledged.", CPC_LOAD(c->acks));
    rc |= cpc_counter(out, "weft_proxy_discovery_nacks_total", "Answers rejected (the last good one kept).",
                      CPC_LOAD(c->nacks));
    rc |= cpc_counter(out, "weft_proxy_discovery_stale_total", "Answers older than the one held, ignored.",
                      CPC_LOAD(c->stale));
    rc |= cpc_counter(out, "weft_proxy_discovery_refusals_total", "Error messages from the server.",
                      CPC_LOAD(c->refusals));
    rc |= cpc_counter(out, "weft_proxy_discovery_unsubscribes_total", "Idle destinations unsubscribed.",
                      CPC_LOAD(c->unsubscribes));
    rc |= cpc_counter(out, "weft_proxy_discovery_over_limit_total",
                      "Destinations not subscribed: the server's subscription limit was reached.",
                      CPC_LOAD(c->over_limit));
    rc |= cpc_counter(out, "weft_proxy_discovery_policy_updates_total",
                      "Inbound policies from discovery swapped in as a new configuration.", CPC_LOAD(c->policy_swaps));
    rc |= metrics_header(out, "weft_proxy_discovery_last_update_age_seconds", "gauge",
                         "Seconds since the last answer arrived (-1 before the first).");
    rc |= metrics_gauge(out, "weft_proxy_discovery_last_update_age_seconds", "",
                        last ? (double)(clock_mono_ms() - last) / 1000.0 : -1);
    rc |= metrics_header(out, "weft_proxy_discovery_routes_total", "counter",
                         "Outbound connections by how discovery's answers routed them.");
    for (int r = 0; r < 5; r++)
        if (r != DEST_ROUTE_WAIT) /* a wait ends in one of the others */
            rc |= buf_appendf(out, "weft_proxy_discovery_routes_total{route=\"%s\"} %llu\n",
                              dest_route_name((enum dest_route)r), CPC_LOAD(c->routes[r]));
    rc |= metrics_header(out, "weft_proxy_discovery_waits_total", "counter",
                         "First connections that waited for an answer, by outcome.");
    rc |= buf_appendf(out, "weft_proxy_discovery_waits_total{result=\"answered\"} %llu\n", CPC_LOAD(c->waits[0]));
    rc |= buf_appendf(out, "weft_proxy_discovery_waits_total{result=\"fallback\"} %llu\n", CPC_LOAD(c->waits[1]));
    return rc ? -E2BIG : 0;
}
