/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy-facing server; see server.h and docs/discovery.md#the-protocol.
 * Connections are non-blocking sockets on the ae loop: OpenSSL below,
 * nghttp2 above, driven with mem_recv/mem_send so every socket write goes
 * through one place (server_flush), where SSL_ERROR_WANT_WRITE becomes write
 * interest. Closes are deferred to before_poll: a callback never frees the
 * connection it runs on. Keep-alive is HTTP/2 PING, as gRPC's is: a
 * connection that sent nothing for ping_interval_ms gets a PING, and one
 * whose ACK has not come within ping_timeout_ms is closed, so a proxy that
 * vanished without a FIN (or hangs) does not hold its streams for the
 * kernel's TCP keep-alive (hours). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdint.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "answer.h"
#include "errbuf.h"
#include "log.h"
#include "proto.h"
#include "spiffe.h"
#include "tls.h"
#include "xalloc.h"

#define SERVER_MAX_PATH 2048
#define SERVER_READ_CHUNK 16384
#define SERVER_MAX_STREAMS 16 /* concurrent HTTP/2 streams per connection: one /v1/stream and some GETs */
/* nghttp2 gives each session a 16 KiB outbound frame buffer and writes
 * every frame from its start. From the heap, whose pages earlier
 * allocations touched, all of it is resident: 32 MiB for 2,000 proxies
 * however small their answers. In a mapping of its own only the pages
 * frames reach are, and with DATA frames of at most SERVER_H2_DATA_MAX
 * bytes (server_h2_data_len) that is the first. So nghttp2's allocations
 * of SERVER_H2_MAP_MIN bytes or more, at most SERVER_H2_MAPS per session
 * (the frame buffer is the one in nghttp2 1.52; the rest come from the
 * heap), get a mapping of their own. */
#define SERVER_H2_MAP_MIN 8192
#define SERVER_H2_MAPS 2
#define SERVER_H2_DATA_MAX 4000 /* a frame's 9-byte header and nghttp2's 10 reserved bytes fit the page */
#define SERVER_WRITE_BATCH 16384 /* a TLS record's most */

static const double latency_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct server_sub {
    char *id;            /* canonical; what it asks is parsed from it again when needed (a whole
                          * struct proto_msg per subscription was 1.8 KB, 72 MB for 2,000 x 20) */
    uint64_t key_hash;   /* server_hash of its cache key: a push's sweep over every subscription
                          * compares these with the changed keys' (server_push_all), not strings */
    uint64_t last;       /* FNV-1a of the answer last sent (compact, sorted): a 2,000-proxy fleet
                          * would hold ~100 MB of answer texts otherwise */
    int sent;            /* an answer was sent */
    uint64_t version;    /* of the last answer sent */
    uint64_t acked, nacked;
    uint64_t sent_ns;
};

enum stream_kind {
    STREAM_UNKNOWN,
    STREAM_WATCH,   /* /v1/stream */
    STREAM_ONESHOT, /* a buffered response, then EOF */
};

struct server_stream {
    int32_t id;
    enum stream_kind kind;
    struct server_conn *conn;
    char method[8];
    char *path;            /* until the request is dispatched: a 2 KiB array was 4 MiB for 2,000 streams */
    int path_too_long;
    struct proto_framer framer;
    int framer_on;
    struct buf out;        /* response bytes not yet taken by nghttp2 */
    size_t out_off;
    int deferred;          /* nghttp2 waits for data: resume on the next write */
    int eof;               /* no more data after out */
    int reset;
    struct server_sub *subs;
    size_t nsubs, capsubs;
    struct server_stream *next, *prev; /* the connection's streams */
};

struct server_conn {
    struct server *s;
    int fd;
    SSL *ssl;
    nghttp2_session *h2;
    int ready;             /* handshake done, h2 session up */
    int closing;
    enum server_tls_fail fail;
    int failed;            /* fail is set */
    struct spiffe_id id;
    char *id_uri;          /* "" until verified; its own length (a SPIFFE_MAX_ID array was 4 MiB for 2,000) */
    char peer_ip[ADDR_MAX_TEXT];
    char *wpend;           /* bytes SSL_write has yet to take */
    size_t wlen, woff;
    int has_watch;
    struct server_stream *watch;   /* the /v1/stream, if open */
    struct server_stream *streams; /* all, freed with the connection (nghttp2_session_del does not call back) */
    struct {
        void *p;
        size_t len;
    } h2_maps[SERVER_H2_MAPS]; /* nghttp2's large buffers: see SERVER_H2_MAP_MIN */
    uint64_t accepted_ms;
    uint64_t last_recv_ms; /* when bytes last came from the peer */
    uint64_t ping_sent_ms; /* an unanswered PING went out then; 0: none */
    struct server_conn *next, *prev;
};

struct server {
    struct ae_loop *loop;
    struct server_opts o;
    struct store *store;
    SSL_CTX *ctx;
    struct stat st_cert, st_key, st_ca;
    int lfd;
    int port;
    struct server_conn *conns;
    struct server_conn *dead;  /* closed this round, freed before the next poll */
    size_t nconns;
    uint64_t next_version;
    long long push_timer;
    uint64_t pending_ns;       /* first unpushed change */
    long long sweep_timer;
    long long ping_timer;
    /* Each distinct answer is computed once, however many streams hold it,
     * and again only when a store change touches a key it read (store.h):
     * cache key -> [text, [dependency keys]]. A destination's cache key is
     * its id (its answer does not depend on who asks); a policy's is
     * "<id>|<caller's SPIFFE ID>|<caller's IP>". deps: dependency key ->
     * {cache key: true}, the reverse. dirty: cache keys dropped since the
     * last push, whose subscriptions the next push recomputes; full: the
     * store was replaced, every subscription is. */
    json_t *cache, *deps, *dirty;
    json_t *holders; /* cache key -> subscriptions holding it: the entry goes with the last */
    int full;
    int trim_due;    /* answers were pushed or connections came or went since the last trim check */
    struct server_metrics m;
};

static int server_ex_index = -1;

const char *server_refusal_name(enum server_refusal r)
{
    static const char *const names[] = {"malformed", "too-large", "too-many-subscriptions", "forbidden",
                                        "unknown-subscription", "bad-version", "bad-request", "slow-consumer"};
    return names[r];
}

const char *server_tls_fail_name(enum server_tls_fail f)
{
    static const char *const names[] = {"no_client_cert", "unknown_ca", "no_spiffe_id", "wrong_trust_domain",
                                        "no_h2", "handshake", "timeout"};
    return names[f];
}

/* ---------- TLS ---------- */

static void server_conn_fail(struct server_conn *c, enum server_tls_fail f)
{
    if (!c->failed) {
        c->failed = 1;
        c->fail = f;
    }
}

static int server_verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct server_conn *c = ssl ? SSL_get_ex_data(ssl, server_ex_index) : NULL;
    if (!c)
        return 0;
    if (!ok) {
        server_conn_fail(c, SERVER_TLS_UNKNOWN_CA);
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 1;
    struct spiffe_id id;
    if (tls_cert_spiffe(X509_STORE_CTX_get_current_cert(xs), &id) < 0) {
        server_conn_fail(c, SERVER_TLS_NO_SPIFFE_ID);
    } else if (strcmp(id.trust_domain, c->s->o.trust_domain) != 0) {
        server_conn_fail(c, SERVER_TLS_TRUST_DOMAIN);
    } else {
        char uri[SPIFFE_MAX_ID];
        c->id = id;
        spiffe_format(id.trust_domain, id.ns, id.sa, uri, sizeof uri);
        free(c->id_uri);
        c->id_uri = xstrdup(uri);
        return 1;
    }
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

static int server_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg)
{
    (void)arg;
    static const unsigned char want[] = "\x02h2";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, want, sizeof want - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    struct server_conn *c = SSL_get_ex_data(ssl, server_ex_index);
    if (c)
        server_conn_fail(c, SERVER_TLS_NO_H2);
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *server_ctx_new(const struct server_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        tls_error(err, errlen, "TLS 1.3");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
        tls_error(err, errlen, o->cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, o->key);
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, o->trust_bundle, NULL) != 1) {
        tls_error(err, errlen, o->trust_bundle);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, server_verify_cb);
    SSL_CTX_set_alpn_select_cb(ctx, server_alpn_cb, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int server_stat_changed(const char *path, struct stat *old)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    int changed = st.st_mtim.tv_sec != old->st_mtim.tv_sec || st.st_mtim.tv_nsec != old->st_mtim.tv_nsec ||
                  st.st_size != old->st_size || st.st_ino != old->st_ino;
    *old = st;
    return changed;
}

void server_reload_tls(struct server *s)
{
    int a = server_stat_changed(s->o.cert, &s->st_cert), b = server_stat_changed(s->o.key, &s->st_key),
        c = server_stat_changed(s->o.trust_bundle, &s->st_ca);
    if (!(a || b || c))
        return;
    char err[512];
    SSL_CTX *ctx = server_ctx_new(&s->o, err, sizeof err);
    if (!ctx) {
        log_warn("TLS credentials not reloaded, keeping the previous ones", "error=\"%s\"", err);
        return;
    }
    SSL_CTX_free(s->ctx); /* connections hold their own references */
    s->ctx = ctx;
    log_info("TLS credentials reloaded", "cert=%s trust_bundle=%s", s->o.cert, s->o.trust_bundle);
}

/* ---------- connections ---------- */

static void server_conn_close(struct server_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->s->trim_due = 1;
    ae_file_del(c->s->loop, c->fd, AE_READABLE | AE_WRITABLE);
    /* unlink from live, onto dead */
    if (c->prev)
        c->prev->next = c->next;
    else
        c->s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = c->s->dead;
    c->s->dead = c;
    c->s->nconns--;
    atomic_fetch_sub(&c->s->m.connections, c->ready ? 1 : 0);
}

static void server_hold(struct server *s, struct server_conn *c, const char *id, int delta);

static void server_stream_free(struct server_stream *st)
{
    if (!st)
        return;
    struct server *s = st->conn->s;
    for (size_t i = 0; i < st->nsubs; i++) {
        server_hold(s, st->conn, st->subs[i].id, -1);
        free(st->subs[i].id);
    }
    atomic_fetch_sub(&s->m.subscriptions, (long)st->nsubs);
    if (st->kind == STREAM_WATCH) {
        atomic_fetch_sub(&s->m.streams, 1);
        st->conn->has_watch = 0;
        st->conn->watch = NULL;
    }
    if (st->prev)
        st->prev->next = st->next;
    else
        st->conn->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st->subs);
    free(st->path);
    if (st->framer_on)
        proto_framer_free(&st->framer);
    buf_free(&st->out);
    free(st);
}

static void server_conn_free(struct server_conn *c)
{
    while (c->streams)
        server_stream_free(c->streams);
    if (c->h2)
        nghttp2_session_del(c->h2);
    if (c->ssl) {
        SSL_set_quiet_shutdown(c->ssl, 1);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c->wpend);
    free(c->id_uri);
    free(c);
}

static void server_before_poll(struct ae_loop *loop, void *data)
{
    (void)loop;
    struct server *s = data;
    while (s->dead) {
        struct server_conn *c = s->dead;
        s->dead = c->next;
        server_conn_free(c);
    }
}

static void server_conn_io(struct ae_loop *loop, int fd, void *data, int mask);

/* Everything nghttp2 has to send goes out here. 0, or -1 after closing c. */
static int server_flush(struct server_conn *c)
{
    if (c->closing)
        return -1;
    for (;;) {
        if (c->wlen == c->woff) {
            /* Frames go out together, up to SERVER_WRITE_BATCH bytes a
             * write: with DATA frames of SERVER_H2_DATA_MAX, a TLS record
             * and a send(2) each would be four times as many. */
            for (;;) {
                const uint8_t *data = NULL;
                ssize_t n = nghttp2_session_mem_send(c->h2, &data);
                if (n < 0) {
                    server_conn_close(c);
                    return -1;
                }
                if (n == 0)
                    break;
                c->wpend = xrealloc(c->wpend, c->wlen + (size_t)n);
                memcpy(c->wpend + c->wlen, data, (size_t)n);
                c->wlen += (size_t)n;
                if (c->wlen >= SERVER_WRITE_BATCH)
                    break;
            }
            if (c->wlen == 0)
                break;
        }
        ERR_clear_error();
        int w = SSL_write(c->ssl, c->wpend + c->woff, (int)(c->wlen - c->woff));
        if (w > 0) {
            c->woff += (size_t)w;
            if (c->woff == c->wlen) {
                /* Written: an idle connection keeps no copy of its last
                 * frames (up to 16 KiB each, 10 MiB over 2,000 streams). */
                free(c->wpend);
                c->wpend = NULL;
                c->wlen = c->woff = 0;
            }
            continue;
        }
        int e = SSL_get_error(c->ssl, w);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            ae_file_set(c->s->loop, c->fd, AE_READABLE | AE_WRITABLE, server_conn_io, c);
            return 0;
        }
        server_conn_close(c);
        return -1;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        server_conn_close(c);
        return -1;
    }
    ae_file_set(c->s->loop, c->fd, AE_READABLE, server_conn_io, c);
    return 0;
}

/* ---------- streams: output ---------- */

static ssize_t server_read_cb(nghttp2_session *h2, int32_t stream_id, uint8_t *out, size_t length,
                              uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)h2;
    (void)stream_id;
    (void)user;
    struct server_stream *st = source->ptr;
    size_t avail = st->out.len - st->out_off;
    if (avail == 0) {
        if (st->eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    memcpy(out, st->out.data + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len) {
        /* Drained: give the memory back (idle streams are the common case). */
        size_t max = st->out.max;
        buf_free(&st->out);
        buf_init(&st->out, max);
        st->out_off = 0;
    }
    if (st->eof && st->out.len == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Queues one line (a new string, freed here) on st. */
static void server_stream_send(struct server_stream *st, char *line)
{
    struct server *s = st->conn->s;
    if (st->reset) {
        free(line);
        return;
    }
    if (st->out_off > 0 && st->out_off >= st->out.len / 2) {
        memmove(st->out.data, st->out.data + st->out_off, st->out.len - st->out_off);
        st->out.len -= st->out_off;
        st->out_off = 0;
    }
    if (buf_append(&st->out, line, strlen(line)) < 0) {
        /* The proxy does not read what it is told: drop its stream, not the server's memory. */
        metrics_inc(&s->m.refused[SERVER_REFUSE_SLOW]);
        log_warn("stream reset: the proxy does not read its answers", "identity=%s pending_bytes=%zu",
                 st->conn->id_uri, st->out.len - st->out_off);
        nghttp2_submit_rst_stream(st->conn->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_ENHANCE_YOUR_CALM);
        st->reset = 1;
    } else if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->conn->h2, st->id);
    }
    free(line);
}

static void server_send_error(struct server_stream *st, enum server_refusal r, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void server_send_error(struct server_stream *st, enum server_refusal r, const char *id, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    metrics_inc(&st->conn->s->m.refused[r]);
    log_info("proxy message refused", "identity=%s reason=%s id=\"%s\" error=\"%s\"", st->conn->id_uri,
             server_refusal_name(r), id ? id : "", msg);
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "error", "code", server_refusal_name(r), "error", msg);
    if (id)
        json_object_set_new(m, "id", json_string(id));
    server_stream_send(st, proto_line(m));
}

/* ---------- answers ---------- */

static json_t *server_error_answer(const char *msg)
{
    return json_pack("{s:i, s:s, s:s}", "version", ANSWER_FORMAT_VERSION, "kind", "error", "error", msg);
}

/* The answer to q for connection c, a new object. */
static json_t *server_answer(struct server *s, struct server_conn *c, const struct proto_msg *q)
{
    if (q->sub == PROTO_SUB_DESTINATION)
        return answer_destination(s->store, s->o.trust_domain, &q->dest);
    char err[1024];
    json_t *a = NULL;
    if (answer_authorize_policy(s->store, s->o.trust_domain, c->id_uri, c->peer_ip, q->ns, q->name, err, sizeof err) <
        0)
        return server_error_answer(err);
    answer_pod_policy(s->store, s->o.mesh_values, s->o.trust_domain, q->ns, q->name, &a);
    return a;
}

/* A policy may be asked for only about one's own namespace: any other is
 * refused at once (its answer could never be allowed). */
static int server_may_subscribe(struct server_conn *c, const struct proto_msg *q, char *err, size_t errlen)
{
    if (q->sub == PROTO_SUB_POLICY && strcmp(q->ns, c->id.ns) != 0) {
        errbuf_set(err, errlen, "%s may ask only for the inbound policy of its own pod, not of namespace %s",
                   c->id_uri, q->ns);
        return -EACCES;
    }
    return 0;
}

#define SERVER_MAX_CACHE_KEY (PROTO_MAX_ID + SPIFFE_MAX_ID + ADDR_MAX_TEXT + 3)

static void server_cache_key(struct server_conn *c, const char *id, int policy, char *out, size_t outlen)
{
    if (policy)
        snprintf(out, outlen, "%s|%s|%s", id, c->id_uri, c->peer_ip);
    else
        snprintf(out, outlen, "%s", id);
}

static uint64_t server_hash(const char *text);

/* The compact sorted text of q's answer for c, borrowed from the cache
 * (valid until the next store change), computed on a miss with the keys it
 * read recorded; *hash is its hash, kept with it so a push to 2,000 streams
 * does not hash the same text 2,000 times. */
static const char *server_answer_text(struct server *s, struct server_conn *c, const struct proto_msg *q,
                                      uint64_t *hash)
{
    char ckey[SERVER_MAX_CACHE_KEY];
    server_cache_key(c, q->id, q->sub == PROTO_SUB_POLICY, ckey, sizeof ckey);
    json_t *hit = json_object_get(s->cache, ckey);
    if (!hit) {
        json_t *reads = json_object(), *list = json_array(), *v;
        const char *dep;
        store_record_reads(s->store, reads);
        metrics_inc(&s->m.computed);
        json_t *a = server_answer(s, c, q);
        store_record_reads(s->store, NULL);
        char *t = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(a);
        json_object_foreach(reads, dep, v) {
            json_t *set = json_object_get(s->deps, dep);
            if (!set) {
                set = json_object();
                json_object_set_new(s->deps, dep, set);
            }
            json_object_set_new(set, ckey, json_true());
            json_array_append_new(list, json_string(dep));
        }
        json_decref(reads);
        hit = json_pack("[s, o, I]", t, list, (json_int_t)server_hash(t)); /* steals list */
        free(t);
        json_object_set_new(s->cache, ckey, hit);
    }
    *hash = (uint64_t)json_integer_value(json_array_get(hit, 2));
    return json_string_value(json_array_get(hit, 0));
}

/* Drops a cached answer (its text and its reverse dependencies) and marks
 * its subscriptions for the next push. */
static void server_cache_drop(struct server *s, const char *ckey)
{
    json_t *hit = json_object_get(s->cache, ckey), *dep;
    size_t i;
    if (!hit)
        return;
    json_array_foreach(json_array_get(hit, 1), i, dep) {
        json_t *set = json_object_get(s->deps, json_string_value(dep));
        json_object_del(set, ckey);
        if (set && json_object_size(set) == 0)
            json_object_del(s->deps, json_string_value(dep));
    }
    json_object_set_new(s->dirty, ckey, json_true());
    json_object_del(s->cache, ckey);
}

/* One more (delta 1) or one fewer (-1) subscription holds sub's answer.
 * With none left its cache entry goes, so the cache holds what is
 * subscribed now, not every id ever asked for. */
static void server_hold(struct server *s, struct server_conn *c, const char *id, int delta)
{
    char ckey[SERVER_MAX_CACHE_KEY];
    server_cache_key(c, id, strncmp(id, "policy:", 7) == 0, ckey, sizeof ckey);
    json_int_t n = json_integer_value(json_object_get(s->holders, ckey)) + delta;
    if (n > 0) {
        json_object_set_new(s->holders, ckey, json_integer(n));
        return;
    }
    json_object_del(s->holders, ckey);
    server_cache_drop(s, ckey);
    json_object_del(s->dirty, ckey);
}

static uint64_t server_hash(const char *text)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* A subscription's cache key (server_cache_key), from its canonical id:
 * a policy's ("p...") is the asking proxy's own. out holds
 * SERVER_MAX_CACHE_KEY bytes; returns the key. */
static const char *server_sub_key(struct server_conn *c, const char *id, char *out)
{
    if (id[0] != 'p')
        return id; /* a destination's cache key is its id */
    server_cache_key(c, id, 1, out, SERVER_MAX_CACHE_KEY);
    return out;
}

static uint64_t server_sub_key_hash(struct server_conn *c, const char *id)
{
    char ckey[SERVER_MAX_CACHE_KEY];
    return server_hash(server_sub_key(c, id, ckey));
}

static int server_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* text as a JSON string, a new string. A canonical id needs no escape
 * (addresses, ports, DNS names): quoted as it is, without a jansson value
 * and a dump per push; anything else goes through jansson. */
static char *server_json_string(const char *text)
{
    size_t n = strlen(text);
    int plain = 1;
    for (const unsigned char *p = (const unsigned char *)text; *p && plain; p++)
        plain = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
    if (!plain) {
        json_t *j = json_string(text);
        char *out = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(j);
        return out ? out : xstrdup("\"\""); /* not UTF-8: no canonical id is */
    }
    char *out = xmalloc(n + 3);
    out[0] = '"';
    memcpy(out + 1, text, n);
    out[n + 1] = '"';
    out[n + 2] = '\0';
    return out;
}

/* Recomputes sub's answer and sends it when it changed (or force). */
static void server_push_sub(struct server_stream *st, struct server_sub *sub, int force, uint64_t received_ns)
{
    struct server *s = st->conn->s;
    struct proto_msg q;
    char err[256];
    memset(&q, 0, sizeof q);
    proto_parse_id(sub->id, strlen(sub->id), &q, err, sizeof err); /* canonical: cannot fail */
    uint64_t h = 0;
    const char *text = server_answer_text(s, st->conn, &q, &h);
    int same = sub->sent && sub->last == h;
    if (!force && same)
        return;
    if (!same) {
        sub->version = ++s->next_version;
        sub->last = h;
        sub->sent = 1;
    }
    sub->sent_ns = metrics_now_ns();
    /* The line proto_line would make of {type, id, version, answer}, keys
     * sorted, around the cached text: the answer is not parsed or dumped
     * again per stream. */
    char *id = server_json_string(sub->id);
    size_t n = strlen(text) + strlen(id) + 64;
    char *line = xmalloc(n);
    snprintf(line, n, "{\"answer\":%s,\"id\":%s,\"type\":\"answer\",\"version\":%llu}\n", text, id,
             (unsigned long long)sub->version);
    free(id);
    server_stream_send(st, line);
    metrics_inc(&s->m.pushes);
    if (received_ns)
        metrics_observe_ns(&s->m.push_latency, sub->sent_ns - received_ns);
}

static struct server_sub *server_find_sub(struct server_stream *st, const char *id)
{
    for (size_t i = 0; i < st->nsubs; i++)
        if (strcmp(st->subs[i].id, id) == 0)
            return &st->subs[i];
    return NULL;
}

/* ---------- streams: input ---------- */

static void server_handle_msg(struct server_stream *st, const struct proto_msg *q)
{
    struct server *s = st->conn->s;
    struct server_sub *sub = server_find_sub(st, q->id);
    char err[512];
    switch (q->type) {
    case PROTO_SUBSCRIBE:
        if (sub) {
            server_push_sub(st, sub, 1, 0); /* again: the current answer, same version */
            return;
        }
        if (server_may_subscribe(st->conn, q, err, sizeof err) < 0) {
            server_send_error(st, SERVER_REFUSE_FORBIDDEN, q->id, "%s", err);
            return;
        }
        if (st->nsubs >= s->o.max_subscriptions) {
            server_send_error(st, SERVER_REFUSE_TOO_MANY, q->id, "at most %zu subscriptions per stream",
                              s->o.max_subscriptions);
            return;
        }
        if (st->nsubs == st->capsubs) {
            st->capsubs = st->capsubs ? st->capsubs * 2 : 8;
            st->subs = xrealloc(st->subs, st->capsubs * sizeof *st->subs);
        }
        sub = &st->subs[st->nsubs++];
        memset(sub, 0, sizeof *sub);
        sub->id = xstrdup(q->id);
        sub->key_hash = server_sub_key_hash(st->conn, sub->id);
        server_hold(s, st->conn, sub->id, 1);
        atomic_fetch_add(&s->m.subscriptions, 1);
        s->trim_due = 1; /* a fleet's sync: answers queued and drained by the thousand */
        server_push_sub(st, sub, 1, 0);
        return;
    case PROTO_UNSUBSCRIBE:
        if (!sub) {
            server_send_error(st, SERVER_REFUSE_UNKNOWN_SUB, q->id, "not subscribed");
            return;
        }
        server_hold(s, st->conn, sub->id, -1);
        free(sub->id);
        *sub = st->subs[--st->nsubs];
        atomic_fetch_sub(&s->m.subscriptions, 1);
        return;
    case PROTO_ACK:
    case PROTO_NACK:
        if (!sub) {
            server_send_error(st, SERVER_REFUSE_UNKNOWN_SUB, q->id, "not subscribed");
            return;
        }
        if (q->version > sub->version) {
            server_send_error(st, SERVER_REFUSE_BAD_VERSION, q->id, "version %llu was never sent (last %llu)",
                              (unsigned long long)q->version, (unsigned long long)sub->version);
            return;
        }
        if (q->type == PROTO_ACK) {
            metrics_inc(&s->m.acks);
            if (q->version == sub->version && sub->acked != q->version)
                metrics_observe_ns(&s->m.ack_latency, metrics_now_ns() - sub->sent_ns);
            else
                metrics_inc(&s->m.acks_stale);
            sub->acked = q->version;
        } else {
            metrics_inc(&s->m.nacks);
            sub->nacked = q->version;
            char clean[PROTO_MAX_REASON + 1];
            size_t i = 0;
            for (; q->reason[i]; i++)
                clean[i] = (unsigned char)q->reason[i] < 0x20 || q->reason[i] == '"' || q->reason[i] == '\\'
                               ? '_' : q->reason[i];
            clean[i] = '\0';
            log_warn("proxy rejected an answer, keeps its last good one", "identity=%s id=\"%s\" version=%llu reason=\"%s\"",
                     st->conn->id_uri, q->id, (unsigned long long)q->version, clean);
        }
        return;
    }
}

static int server_on_line(void *arg, const char *line, size_t len, int too_large)
{
    struct server_stream *st = arg;
    struct server *s = st->conn->s;
    char err[512];
    struct proto_msg q;
    if (too_large) {
        server_send_error(st, SERVER_REFUSE_TOO_LARGE, NULL, "message over %zu bytes: skipped to its newline",
                          s->o.max_message);
        return 0;
    }
    if (len == 0)
        return 0;
    if (proto_parse(line, len, &q, err, sizeof err) < 0) {
        server_send_error(st, SERVER_REFUSE_MALFORMED, NULL, "%s", err);
        return 0;
    }
    server_handle_msg(st, &q);
    return 0;
}

/* ---------- requests ---------- */

static void server_respond(struct server_stream *st, int status, const char *type, char *body)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)type, 12, strlen(type), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"weft-discovery-protocol", (uint8_t *)"1", 23, 1, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = server_read_cb};
    if (body) {
        buf_append(&st->out, body, strlen(body));
        free(body);
        st->eof = 1;
    }
    nghttp2_submit_response(st->conn->h2, st->id, nv, 3, &prd);
}

/* "%XX" decoding of a query value in place; -EINVAL on a bad escape. */
static int server_unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%') {
            unsigned v;
            if (!r[1] || !r[2] || sscanf(r + 1, "%2x", &v) != 1 || v == 0)
                return -EINVAL;
            *w++ = (char)v;
            r += 2;
        } else {
            *w++ = *r == '+' ? ' ' : *r;
        }
    }
    *w = '\0';
    return 0;
}

static void server_oneshot(struct server_stream *st, const char *query)
{
    struct server *s = st->conn->s;
    char id[PROTO_MAX_ID * 3 + 1], err[512];
    struct proto_msg q;
    memset(&q, 0, sizeof q);
    st->kind = STREAM_ONESHOT;
    metrics_inc(&s->m.oneshot);
    if (!query || strncmp(query, "id=", 3) != 0 || strlen(query + 3) >= sizeof id || strchr(query + 3, '&')) {
        metrics_inc(&s->m.refused[SERVER_REFUSE_BAD_REQUEST]);
        server_respond(st, 400, "application/json",
                       proto_line(json_pack("{s:s}", "error", "expected ?id=destination:ADDR:PORT or ?id=policy:NS/POD")));
        return;
    }
    snprintf(id, sizeof id, "%s", query + 3);
    if (server_unescape(id) < 0 || proto_parse_id(id, strlen(id), &q, err, sizeof err) < 0) {
        metrics_inc(&s->m.refused[SERVER_REFUSE_MALFORMED]);
        server_respond(st, 400, "application/json", proto_line(json_pack("{s:s}", "error", err[0] ? err : "bad escape")));
        return;
    }
    if (server_may_subscribe(st->conn, &q, err, sizeof err) < 0) {
        metrics_inc(&s->m.refused[SERVER_REFUSE_FORBIDDEN]);
        server_respond(st, 403, "application/json", proto_line(server_error_answer(err)));
        return;
    }
    json_t *a = server_answer(s, st->conn, &q);
    const char *kind = json_string_value(json_object_get(a, "kind"));
    int status = kind && strcmp(kind, "error") == 0 ? (q.sub == PROTO_SUB_POLICY ? 403 : 404) : 200;
    server_respond(st, status, "application/json", proto_line(a));
}

static void server_request_path(struct server_stream *st);

/* The request's path is needed only here: it goes once dispatched. */
static void server_request(struct server_stream *st)
{
    if (!st->path)
        st->path = xstrdup("");
    server_request_path(st);
    free(st->path);
    st->path = NULL;
}

static void server_request_path(struct server_stream *st)
{
    struct server *s = st->conn->s;
    char *query = strchr(st->path, '?');
    if (query)
        *query++ = '\0';
    if (st->path_too_long) {
        metrics_inc(&s->m.refused[SERVER_REFUSE_BAD_REQUEST]);
        server_respond(st, 414, "application/json", proto_line(json_pack("{s:s}", "error", "path too long")));
        return;
    }
    if (strcmp(st->path, "/v1/stream") == 0 && (strcmp(st->method, "POST") == 0 || strcmp(st->method, "PUT") == 0)) {
        if (st->conn->has_watch) {
            metrics_inc(&s->m.refused[SERVER_REFUSE_BAD_REQUEST]);
            server_respond(st, 409, "application/json",
                           proto_line(json_pack("{s:s}", "error", "one /v1/stream per connection")));
            return;
        }
        st->kind = STREAM_WATCH;
        st->conn->has_watch = 1;
        st->conn->watch = st;
        proto_framer_init(&st->framer, s->o.max_message);
        st->framer_on = 1;
        atomic_fetch_add(&s->m.streams, 1);
        server_respond(st, 200, "application/x-ndjson", NULL);
        json_t *hello = json_pack("{s:s, s:i, s:s, s:{s:I, s:I}}", "type", "hello", "protocol", PROTO_VERSION,
                                  "identity", st->conn->id_uri, "limits", "subscriptions",
                                  (json_int_t)s->o.max_subscriptions, "messageBytes", (json_int_t)s->o.max_message);
        server_stream_send(st, proto_line(hello));
        log_info("proxy stream opened", "identity=%s peer=%s", st->conn->id_uri, st->conn->peer_ip);
        return;
    }
    if (strcmp(st->path, "/v1/answer") == 0 && strcmp(st->method, "GET") == 0) {
        server_oneshot(st, query);
        return;
    }
    metrics_inc(&s->m.refused[SERVER_REFUSE_BAD_REQUEST]);
    server_respond(st, 404, "application/json",
                   proto_line(json_pack("{s:s}", "error", "not found: POST /v1/stream or GET /v1/answer?id=...")));
}

/* ---------- nghttp2 callbacks ---------- */

static int server_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct server_conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct server_stream *st = xcalloc(1, sizeof *st);
    st->id = frame->hd.stream_id;
    st->conn = c;
    buf_init(&st->out, c->s->o.max_pending);
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(h2, st->id, st);
    return 0;
}

static int server_on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    struct server_stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        snprintf(st->method, sizeof st->method, "%.*s", (int)valuelen, (const char *)value);
    else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        if (valuelen > SERVER_MAX_PATH)
            st->path_too_long = 1;
        else {
            free(st->path);
            st->path = xstrndup((const char *)value, valuelen);
        }
    }
    return 0;
}

static void server_end_of_input(struct server_stream *st)
{
    if (st->framer_on)
        proto_framer_finish(&st->framer, server_on_line, st);
}

static int server_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct server_conn *c = user;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->ping_sent_ms = 0; /* nghttp2 answers the peer's own PINGs itself */
        return 0;
    }
    struct server_stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        server_request(st);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        server_end_of_input(st);
    return 0;
}

static int server_on_data(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                          void *user)
{
    (void)flags;
    (void)user;
    struct server_stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (st && st->kind == STREAM_WATCH && !st->reset)
        proto_framer_feed(&st->framer, (const char *)data, len, server_on_line, st);
    return 0; /* other streams' bodies are ignored; flow control bounds them */
}

static int server_on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
    (void)error_code;
    (void)user;
    struct server_stream *st = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (st) {
        if (st->kind == STREAM_WATCH)
            log_info("proxy stream closed", "identity=%s subscriptions=%zu", st->conn->id_uri, st->nsubs);
        nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
        server_stream_free(st);
    }
    return 0;
}

/* ---------- nghttp2's memory (SERVER_H2_MAP_MIN) ---------- */

static void *server_h2_map(struct server_conn *c, size_t n)
{
    for (int i = 0; i < SERVER_H2_MAPS; i++) {
        if (c->h2_maps[i].p)
            continue;
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        c->h2_maps[i].p = p;
        c->h2_maps[i].len = n;
        return p;
    }
    return NULL;
}

/* The mapping's length when p is one of c's mappings, else 0. */
static size_t server_h2_mapped(const struct server_conn *c, const void *p)
{
    for (int i = 0; i < SERVER_H2_MAPS; i++)
        if (p && c->h2_maps[i].p == p)
            return c->h2_maps[i].len;
    return 0;
}

static void server_h2_unmap(struct server_conn *c, void *p)
{
    for (int i = 0; i < SERVER_H2_MAPS; i++) {
        if (c->h2_maps[i].p == p) {
            munmap(p, c->h2_maps[i].len);
            c->h2_maps[i].p = NULL;
            return;
        }
    }
}

static void *server_h2_malloc(size_t n, void *user)
{
    void *p = n >= SERVER_H2_MAP_MIN ? server_h2_map(user, n) : NULL;
    return p ? p : xmalloc(n);
}

static void server_h2_free(void *p, void *user)
{
    if (server_h2_mapped(user, p))
        server_h2_unmap(user, p);
    else
        free(p);
}

static void *server_h2_calloc(size_t count, size_t n, void *user)
{
    if (n && count > SIZE_MAX / n)
        return NULL;
    void *p = count * n >= SERVER_H2_MAP_MIN ? server_h2_map(user, count * n) : NULL; /* zero pages */
    return p ? p : xcalloc(count, n);
}

static void *server_h2_realloc(void *p, size_t n, void *user)
{
    size_t had = server_h2_mapped(user, p);
    if (!had && n < SERVER_H2_MAP_MIN)
        return xrealloc(p, n);
    if (!had && p)
        had = malloc_usable_size(p); /* at least what was asked for, all of it readable */
    void *q = server_h2_malloc(n, user);
    if (p) {
        memcpy(q, p, had < n ? had : n);
        server_h2_free(p, user);
    }
    return q;
}

/* DATA frames of at most SERVER_H2_DATA_MAX bytes keep the frame buffer's
 * pages past the first untouched. */
static ssize_t server_h2_data_len(nghttp2_session *h2, uint8_t type, int32_t stream_id, int32_t session_window,
                                  int32_t stream_window, uint32_t max_frame, void *user)
{
    (void)h2;
    (void)type;
    (void)stream_id;
    (void)user;
    ssize_t n = SERVER_H2_DATA_MAX;
    if (session_window < n)
        n = session_window;
    if (stream_window < n)
        n = stream_window;
    if ((ssize_t)max_frame < n)
        n = (ssize_t)max_frame;
    return n > 0 ? n : 1;
}

static nghttp2_session_callbacks *server_h2_callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (!cbs) {
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, server_on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, server_on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, server_on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, server_on_stream_close);
        nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, server_h2_data_len);
    }
    return cbs;
}

/* ---------- I/O ---------- */

static void server_handshake_done(struct server_conn *c)
{
    struct server *s = c->s;
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
        /* No ALPN offered at all (openssl s_client without -alpn): h2 or nothing. */
        metrics_inc(&s->m.tls_fail[SERVER_TLS_NO_H2]);
        log_info("client refused: no ALPN h2", "peer=%s identity=%s", c->peer_ip, c->id_uri);
        server_conn_close(c);
        return;
    }
    c->ready = 1;
    c->last_recv_ms = ae_now_ms(s->loop);
    atomic_fetch_add(&s->m.connections, 1);
    nghttp2_option *opt = NULL;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_send_header_block_length(opt, 16384);
    /* No HPACK dynamic tables either way: a connection carries one long
     * stream and a few GETs, and each table holds up to 4 KiB of headers
     * for as long as the connection lives. */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    nghttp2_mem mem = {c, server_h2_malloc, server_h2_free, server_h2_calloc, server_h2_realloc}; /* copied */
    nghttp2_session_server_new3(&c->h2, server_h2_callbacks(), c, opt, &mem);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, SERVER_MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 3);
    log_debug("proxy connected", "identity=%s peer=%s", c->id_uri, c->peer_ip);
}

static void server_conn_io(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    (void)mask;
    struct server_conn *c = data;
    struct server *s = c->s;
    if (c->closing)
        return;
    if (!c->ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            server_handshake_done(c);
            if (c->closing)
                return;
        } else {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                ae_file_set(s->loop, c->fd, AE_READABLE, server_conn_io, c);
                return;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                ae_file_set(s->loop, c->fd, AE_READABLE | AE_WRITABLE, server_conn_io, c);
                return;
            }
            if (!c->failed) {
                /* OpenSSL refuses a missing certificate before the verify callback runs. */
                X509 *peer = SSL_get_peer_certificate(c->ssl);
                server_conn_fail(c, peer ? SERVER_TLS_OTHER : SERVER_TLS_NO_CERT);
                X509_free(peer);
            }
            metrics_inc(&s->m.tls_fail[c->fail]);
            log_info("TLS handshake refused", "peer=%s reason=%s", c->peer_ip, server_tls_fail_name(c->fail));
            ERR_clear_error();
            server_conn_close(c);
            return;
        }
    }
    char in[SERVER_READ_CHUNK];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, in, sizeof in);
        if (n > 0) {
            c->last_recv_ms = ae_now_ms(s->loop);
            ssize_t used = nghttp2_session_mem_recv(c->h2, (const uint8_t *)in, (size_t)n);
            if (used < 0) {
                log_info("HTTP/2 error, connection closed", "identity=%s error=\"%s\"", c->id_uri,
                         nghttp2_strerror((int)used));
                metrics_inc(&s->m.refused[SERVER_REFUSE_BAD_REQUEST]);
                server_conn_close(c);
                return;
            }
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        server_conn_close(c); /* closed or broken */
        return;
    }
    server_flush(c);
}

static void server_accept(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)mask;
    struct server *s = data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        metrics_inc(&s->m.accepted);
        if (s->nconns >= s->o.max_connections) {
            metrics_inc(&s->m.over_limit);
            close(cfd);
            continue;
        }
        struct server_conn *c = xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = cfd;
        c->id_uri = xstrdup("");
        c->accepted_ms = ae_now_ms(s->loop);
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
            if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
                inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], c->peer_ip, sizeof c->peer_ip);
            else
                inet_ntop(AF_INET6, &a6->sin6_addr, c->peer_ip, sizeof c->peer_ip);
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer_ip, sizeof c->peer_ip);
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(cfd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        c->ssl = SSL_new(s->ctx);
        if (!c->ssl || ae_file_add(s->loop, cfd, AE_READABLE, server_conn_io, c) < 0) {
            if (c->ssl)
                SSL_free(c->ssl);
            close(cfd);
            free(c);
            continue;
        }
        SSL_set_ex_data(c->ssl, server_ex_index, c);
        SSL_set_fd(c->ssl, cfd);
        SSL_set_accept_state(c->ssl);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
}

/* Gives free heap pages back to the kernel once more than
 * SERVER_TRIM_FREE_BYTES lie free in the heap. A fleet's (re)connection or
 * a push to every stream allocates answers, frames and TLS records for
 * thousands of streams at once and frees them within a second; glibc
 * returns only the top of the heap by itself, so the holes between live
 * objects stayed resident (bench/RESULTS.md). malloc_trim(0) releases the
 * whole free pages wherever they are; it walks the free lists, so it runs
 * at most once a second and only when there is something to give back. */
#define SERVER_TRIM_FREE_BYTES (4u << 20)
static void server_trim(struct server *s)
{
    if (!s->trim_due)
        return; /* mallinfo2 walks the free lists too: not on an idle server */
    s->trim_due = 0;
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks > SERVER_TRIM_FREE_BYTES)
        malloc_trim(0);
}

/* Closes handshakes that take too long and reloads credentials. */
static long server_sweep(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct server *s = data;
    uint64_t now = ae_now_ms(loop);
    for (struct server_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ready && now - c->accepted_ms > (uint64_t)s->o.handshake_ms) {
            metrics_inc(&s->m.tls_fail[SERVER_TLS_TIMEOUT]);
            server_conn_close(c);
        }
    }
    server_reload_tls(s);
    server_trim(s);
    return 1000;
}

/* PINGs connections that have been quiet for the interval and closes those
 * whose ACK is overdue. Runs four times per the shorter of the two periods,
 * so a close comes at most a quarter period late. */
static long server_keepalive(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct server *s = data;
    uint64_t now = ae_now_ms(loop);
    for (struct server_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ready)
            continue; /* the handshake timeout covers these */
        if (c->ping_sent_ms) {
            if (now - c->ping_sent_ms >= (uint64_t)s->o.ping_timeout_ms) {
                metrics_inc(&s->m.ping_timeouts);
                log_warn("connection closed: no answer to PING", "identity=%s peer=%s timeout_ms=%d streams=%d",
                         c->id_uri, c->peer_ip, s->o.ping_timeout_ms, c->has_watch);
                server_conn_close(c);
            }
            continue;
        }
        if (now - c->last_recv_ms >= (uint64_t)s->o.ping_interval_ms) {
            nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
            c->ping_sent_ms = now ? now : 1;
            metrics_inc(&s->m.pings);
            server_flush(c);
        }
    }
    int shorter = s->o.ping_interval_ms < s->o.ping_timeout_ms ? s->o.ping_interval_ms : s->o.ping_timeout_ms;
    return shorter / 4 > 10 ? shorter / 4 : 10;
}

/* ---------- pushes ---------- */

static long server_push_all(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct server *s = data;
    uint64_t received = s->pending_ns;
    int full = s->full;
    s->push_timer = 0;
    s->pending_ns = 0;
    s->full = 0;
    size_t ndirty = json_object_size(s->dirty);
    if (!full && ndirty == 0)
        return -1; /* the changes touched no answer held */
    /* A change touches a few keys and the sweep passes every subscription
     * (40,000 for 2,000 proxies, ten times a second under churn): each is
     * first compared by its key's hash with the sorted hashes of the
     * changed keys, and only a match looks the key up as text. */
    uint64_t *dirty = full ? NULL : xmalloc(ndirty * sizeof *dirty);
    if (dirty) {
        const char *key;
        json_t *v;
        size_t n = 0;
        json_object_foreach(s->dirty, key, v) dirty[n++] = server_hash(key);
        qsort(dirty, ndirty, sizeof *dirty, server_cmp_u64);
    }
    for (struct server_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ready || !c->watch)
            continue;
        struct server_stream *st = c->watch;
        int any = 0;
        for (size_t i = 0; i < st->nsubs; i++) {
            struct server_sub *sub = &st->subs[i];
            if (dirty) {
                char ckey[SERVER_MAX_CACHE_KEY];
                if (!bsearch(&sub->key_hash, dirty, ndirty, sizeof *dirty, server_cmp_u64) ||
                    !json_object_get(s->dirty, server_sub_key(c, sub->id, ckey)))
                    continue;
            }
            server_push_sub(st, sub, 0, received);
            any = 1;
        }
        if (any)
            server_flush(c);
    }
    free(dirty);
    json_object_clear(s->dirty);
    s->trim_due = 1;
    return -1;
}

void server_store_changed(struct server *s, struct store *store, uint64_t received_ns)
{
    json_t *touched = store_take_touched(store), *set, *v;
    const char *dep, *ckey;
    size_t i;
    if (store != s->store) {
        /* Another store (a source that replaced its own): nothing cached is
         * known to hold. The old store is still alive here, so the two
         * cannot share an address. */
        s->store = store;
        s->full = 1;
        json_object_clear(s->cache);
        json_object_clear(s->deps);
    } else {
        json_t *drop = json_array();
        json_t *t;
        json_object_foreach(touched, dep, v) {
            set = json_object_get(s->deps, dep);
            json_object_foreach(set, ckey, t) json_array_append_new(drop, json_string(ckey));
        }
        json_array_foreach(drop, i, v) server_cache_drop(s, json_string_value(v));
        json_decref(drop);
    }
    json_decref(touched);
    if (!s->pending_ns || (received_ns && received_ns < s->pending_ns))
        s->pending_ns = received_ns ? received_ns : metrics_now_ns();
    if (!s->push_timer)
        s->push_timer = ae_timer_add(s->loop, s->o.coalesce_ms, server_push_all, s);
}

/* ---------- lifecycle ---------- */

static int server_listen(struct server *s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(s->o.addr, s->o.port, &hints, &res);
    if (gai != 0) {
        errbuf_set(err, errlen, "--listen %s port %s: %s", s->o.addr, s->o.port, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 512) < 0) {
        errbuf_set(err, errlen, "listen on %s port %s: %s", s->o.addr, s->o.port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -errno;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->lfd = fd;
    return 0;
}

struct server *server_new(struct ae_loop *loop, const struct server_opts *o, struct store *store, char *err,
                          size_t errlen)
{
    if (server_ex_index < 0)
        server_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    struct server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->o = *o;
    s->store = store;
    json_decref(store_take_touched(store)); /* from now on; no answer was computed from what came before */
    s->lfd = -1;
    s->cache = json_object();
    s->deps = json_object();
    s->dirty = json_object();
    s->holders = json_object();
    s->m.push_latency.bounds = latency_bounds;
    s->m.push_latency.nbounds = sizeof latency_bounds / sizeof *latency_bounds;
    s->m.ack_latency.bounds = latency_bounds;
    s->m.ack_latency.nbounds = sizeof latency_bounds / sizeof *latency_bounds;
    static const char *const tls_labels[] = {"reason=\"no_client_cert\"", "reason=\"unknown_ca\"",
                                             "reason=\"no_spiffe_id\"", "reason=\"wrong_trust_domain\"",
                                             "reason=\"no_h2\"", "reason=\"handshake\"", "reason=\"timeout\""};
    static const char *const refusal_labels[] = {
        "reason=\"malformed\"", "reason=\"too-large\"", "reason=\"too-many-subscriptions\"",
        "reason=\"forbidden\"", "reason=\"unknown-subscription\"", "reason=\"bad-version\"",
        "reason=\"bad-request\"", "reason=\"slow-consumer\""};
    for (int i = 0; i < SERVER_TLS_FAILS; i++)
        s->m.tls_fail[i].labels = tls_labels[i];
    for (int i = 0; i < SERVER_REFUSALS; i++)
        s->m.refused[i].labels = refusal_labels[i];
    s->m.accepted.labels = s->m.over_limit.labels = s->m.pushes.labels = s->m.acks.labels = "";
    s->m.acks_stale.labels = s->m.nacks.labels = s->m.oneshot.labels = "";
    s->m.pings.labels = s->m.ping_timeouts.labels = s->m.computed.labels = "";
    if (!(s->ctx = server_ctx_new(o, err, errlen)))
        goto fail;
    stat(o->cert, &s->st_cert);
    stat(o->key, &s->st_key);
    stat(o->trust_bundle, &s->st_ca);
    if (server_listen(s, err, errlen) < 0)
        goto fail;
    if (ae_file_add(loop, s->lfd, AE_READABLE, server_accept, s) < 0) {
        errbuf_set(err, errlen, "event loop: cannot watch the listening socket");
        goto fail;
    }
    ae_set_before_poll(loop, server_before_poll, s);
    s->sweep_timer = ae_timer_add(loop, 1000, server_sweep, s);
    s->ping_timer = ae_timer_add(loop, 10, server_keepalive, s);
    return s;
fail:
    server_free(s);
    return NULL;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    while (s->conns)
        server_conn_close(s->conns);
    server_before_poll(s->loop, s);
    if (s->lfd >= 0) {
        ae_file_del(s->loop, s->lfd, AE_READABLE);
        close(s->lfd);
    }
    if (s->push_timer)
        ae_timer_del(s->loop, s->push_timer);
    if (s->sweep_timer)
        ae_timer_del(s->loop, s->sweep_timer);
    if (s->ping_timer)
        ae_timer_del(s->loop, s->ping_timer);
    SSL_CTX_free(s->ctx);
    json_decref(s->cache);
    json_decref(s->deps);
    json_decref(s->dirty);
    json_decref(s->holders);
    free(s);
}

struct server_metrics *server_metrics(struct server *s)
{
    return &s->m;
}

int server_port(const struct server *s)
{
    return s->port;
}
