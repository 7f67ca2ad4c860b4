/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes API client; see k8s.h. The shell (connect, TLS, pool, token
 * refresh) sits around a pure HTTP/1.1 response reader (lib/http1's parser)
 * and request writer.
 * Sockets are non-blocking and every wait is a poll() bounded by the
 * request's deadline, so a silent server costs at most the I/O timeout. */
#include "clock.h"
#include "errbuf.h"
#include "k8s.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsondrop.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

#ifndef WEFT_VERSION
#define WEFT_VERSION "0.0.0"
#endif

#define K8S_POOL_IDLE_SECONDS 30 /* drop kept-alive connections older than this */

/* ---------- HTTP/1.1 response reader (pure, over lib/http1) ---------- */

void k8s_http_response_init(struct k8s_http_response *r, size_t max_body)
{
    struct http1_limits lim = {.max_head = K8S_MAX_HEAD, .max_fields = HTTP1_MAX_FIELDS_DEFAULT,
                               .max_body = max_body};
    memset(r, 0, sizeof *r);
    r->state = K8S_HTTP_HEAD;
    r->content_length = -1;
    http1_init(&r->parser, HTTP1_RESPONSE, &lim);
    buf_init(&r->body, max_body);
}

void k8s_http_response_free(struct k8s_http_response *r)
{
    http1_free(&r->parser);
    buf_free(&r->body);
}

/* Limits are -EFBIG, everything else a malformed answer. */
static int k8s_http_error(enum http1_error e)
{
    switch (e) {
    case HTTP1_E_HEAD_TOO_LARGE:
    case HTTP1_E_TOO_MANY_FIELDS:
    case HTTP1_E_BODY_TOO_LARGE:
    case HTTP1_E_CHUNK_SIZE_OVERFLOW:
    case HTTP1_E_CHUNK_LINE_TOO_LONG:
        return -EFBIG;
    default:
        return -EBADMSG;
    }
}

/* The final head arrived: what the caller reads of it. */
static void k8s_http_head(struct k8s_http_response *r)
{
    const struct http1_msg *m = &r->parser.msg;
    size_t tlen = 0;
    const char *type = http1_get(&r->parser, "content-type", &tlen);
    r->status = m->status;
    r->content_length = m->content_length;
    r->chunked = m->chunked;
    r->keep_alive = m->keep_alive;
    snprintf(r->content_type, sizeof r->content_type, "%.*s", type ? (int)tlen : 0, type ? type : "");
    r->state = m->until_close ? K8S_HTTP_BODY_EOF : K8S_HTTP_BODY;
}

int k8s_http_response_feed(struct k8s_http_response *r, const char *data, size_t len, size_t *used)
{
    size_t i = 0;
    int rc = 0;
    if (r->state == K8S_HTTP_DONE) {
        rc = 1;
        goto out;
    }
    if (r->state == K8S_HTTP_HEAD)
        http1_response_to(&r->parser, r->head_only ? "HEAD" : "GET", r->head_only ? 4 : 3);
    for (;;) {
        const char *b = NULL;
        size_t u = 0, bl = 0;
        enum http1_event ev = http1_parse(&r->parser, data + i, len - i, &u, &b, &bl);
        i += u;
        if (ev == HTTP1_NEED_MORE) {
            rc = 0;
            goto out;
        } else if (ev == HTTP1_ERROR) {
            rc = k8s_http_error(r->parser.error);
            goto out;
        } else if (ev == HTTP1_HEAD) {
            r->status = r->parser.msg.status;
            if (r->status == 101) {
                rc = -EBADMSG; /* we never ask to switch protocols */
                goto out;
            }
            if (r->status >= 200)
                k8s_http_head(r);
        } else if (ev == HTTP1_BODY) {
            if (buf_append(&r->body, b, bl) < 0) {
                rc = -EFBIG;
                goto out;
            }
        } else if (ev == HTTP1_DONE) {
            if (r->parser.msg.status < 200)
                continue; /* a 1xx: the real head follows */
            r->state = K8S_HTTP_DONE;
            rc = 1;
            goto out;
        }
    }
out:
    if (used)
        *used = i;
    return rc;
}

int k8s_http_response_eof(struct k8s_http_response *r)
{
    if (r->state == K8S_HTTP_DONE)
        return 1;
    if (http1_finish(&r->parser) == HTTP1_DONE) {
        r->state = K8S_HTTP_DONE;
        return 1;
    }
    return -EBADMSG;
}

/* ---------- request head (pure) ---------- */

static int k8s_valid_host(const char *s)
{
    if (!*s || strlen(s) > 253)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:_%", *p))
            return 0;
    return 1;
}

static int k8s_valid_port(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return 0;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return 0;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    return v >= 1 && v <= 65535;
}

static int k8s_valid_visible(const char *s, size_t max)
{
    size_t n = 0;
    for (const char *p = s; *p; p++, n++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || n >= max)
            return 0;
    return n > 0;
}

int k8s_http_request_head(struct buf *out, const char *method, const char *path, const char *host,
                          const char *port, const char *token, int has_body, size_t body_len)
{
    size_t mlen = strlen(method);
    if (mlen == 0 || mlen > 16)
        return -EINVAL;
    for (const char *p = method; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return -EINVAL;
    if (path[0] != '/' || !k8s_valid_visible(path, 8192) || !k8s_valid_host(host) || !k8s_valid_port(port))
        return -EINVAL;
    if (token && !k8s_valid_visible(token, K8S_MAX_TOKEN))
        return -EINVAL;
    int v6 = strchr(host, ':') != NULL;
    int rc = buf_appendf(out,
                         "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: weft/" WEFT_VERSION
                         "\r\nAccept: application/json\r\n",
                         method, path, v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (rc == 0 && token)
        rc = buf_appendf(out, "Authorization: Bearer %s\r\n", token);
    if (rc == 0 && has_body)
        rc = buf_appendf(out, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    if (rc == 0)
        rc = buf_append(out, "\r\n", 2);
    return rc;
}

void k8s_status_message(const json_t *body, long status, char *out, size_t outlen)
{
    const char *kind = json_string_value(json_object_get(body, "kind"));
    const char *message = json_string_value(json_object_get(body, "message"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    if (kind && strcmp(kind, "Status") == 0 && message && *message) {
        if (reason && *reason)
            errbuf_set(out, outlen, "HTTP %ld: %s (reason %s)", status, message, reason);
        else
            errbuf_set(out, outlen, "HTTP %ld: %s", status, message);
    } else {
        errbuf_set(out, outlen, "HTTP %ld", status);
    }
}

/* ---------- token file ---------- */

int k8s_read_token(const char *path, char **out, char *err, size_t errlen)
{
    int rc = 0;
    char *data = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        errbuf_set(err, errlen, "token file %s: %s", path, strerror(errno));
        goto out;
    }
    data = xmalloc(K8S_MAX_TOKEN + 1);
    for (;;) {
        ssize_t n = read(fd, data + len, K8S_MAX_TOKEN + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            errbuf_set(err, errlen, "token file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > K8S_MAX_TOKEN) {
            rc = -EFBIG;
            errbuf_set(err, errlen, "token file %s: larger than %d bytes", path, K8S_MAX_TOKEN);
            goto out;
        }
    }
    size_t start = 0;
    while (start < len && isspace((unsigned char)data[start]))
        start++;
    while (len > start && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == start) {
        rc = -EINVAL;
        errbuf_set(err, errlen, "token file %s: empty", path);
        goto out;
    }
    for (size_t i = start; i < len; i++) {
        if ((unsigned char)data[i] <= 0x20 || (unsigned char)data[i] >= 0x7f) {
            rc = -EINVAL;
            errbuf_set(err, errlen, "token file %s: not a bearer token (byte %zu)", path, i);
            goto out;
        }
    }
    *out = xstrndup(data + start, len - start);
out:
    if (data) {
        explicit_bzero(data, K8S_MAX_TOKEN + 1);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---------- client ---------- */

struct k8s_conn {
    SSL *ssl;
    int fd;
    uint64_t idle_since_ms;
};

struct k8s_client {
    char *host, *port, *ca_file, *token_file;
    char *server_name;           /* verified name, SNI and Host; NULL = host */
    int host_is_ip;              /* of server_name when set */
    int connect_ms, io_ms, refresh_s;
    size_t max_response;
    pthread_mutex_t lock;        /* guards everything below */
    SSL_CTX *ctx;                /* requests take a reference */
    struct stat ca_st;           /* of the CA file ctx was built from */
    char *token;
    uint64_t checked_ms;         /* last token / CA file check */
    struct k8s_conn *pool[K8S_POOL_MAX];
    size_t npool;
};

static SSL_CTX *k8s_ctx_new(const char *ca_file, struct stat *st, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (stat(ca_file, st) != 0) {
        errbuf_set(err, errlen, "CA file %s: %s", ca_file, strerror(errno));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        char what[300];
        snprintf(what, sizeof what, "CA file %s", ca_file);
        tls_error(err, errlen, what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct k8s_client *k8s_client_new(const char *host, const char *port, const char *ca_file,
                                  const char *token_file, char *err, size_t errlen)
{
    struct k8s_client *c = NULL;
    if (!host || !k8s_valid_host(host) || !port || !k8s_valid_port(port)) {
        errbuf_set(err, errlen, "bad API server address %s:%s", host ? host : "(null)", port ? port : "(null)");
        return NULL;
    }
    if (!ca_file) {
        errbuf_set(err, errlen, "a CA file is required");
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->host = xstrdup(host);
    c->port = xstrdup(port);
    c->ca_file = xstrdup(ca_file);
    c->token_file = token_file ? xstrdup(token_file) : NULL;
    unsigned char addr[16];
    c->host_is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    c->connect_ms = K8S_CONNECT_TIMEOUT_MS;
    c->io_ms = K8S_IO_TIMEOUT_MS;
    c->refresh_s = K8S_TOKEN_REFRESH_SECONDS;
    c->max_response = K8S_MAX_RESPONSE;
    pthread_mutex_init(&c->lock, NULL);
    c->ctx = k8s_ctx_new(ca_file, &c->ca_st, err, errlen);
    if (!c->ctx)
        goto fail;
    if (token_file && k8s_read_token(token_file, &c->token, err, errlen) < 0)
        goto fail;
    c->checked_ms = clock_mono_ms();
    return c;
fail:
    k8s_client_free(c);
    return NULL;
}

struct k8s_client *k8s_client_in_cluster(char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port) {
        errbuf_set(err, errlen, "not running in a Kubernetes cluster: KUBERNETES_SERVICE_HOST or "
                            "KUBERNETES_SERVICE_PORT is not set");
        return NULL;
    }
    return k8s_client_new(host, port, K8S_SA_DIR "/ca.crt", K8S_SA_DIR "/token", err, errlen);
}

static void k8s_conn_close(struct k8s_conn *conn)
{
    if (!conn)
        return;
    if (conn->ssl) {
        SSL_set_quiet_shutdown(conn->ssl, 1);
        SSL_free(conn->ssl);
    }
    if (conn->fd >= 0)
        close(conn->fd);
    free(conn);
}

void k8s_client_free(struct k8s_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++)
        k8s_conn_close(c->pool[i]);
    SSL_CTX_free(c->ctx);
    if (c->token) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->host);
    free(c->port);
    free(c->ca_file);
    free(c->token_file);
    free(c->server_name);
    free(c);
}

int k8s_client_set_server_name(struct k8s_client *c, const char *name)
{
    if (!name || !k8s_valid_host(name))
        return -EINVAL;
    free(c->server_name);
    c->server_name = xstrdup(name);
    unsigned char addr[16];
    c->host_is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    return 0;
}

void k8s_client_set_timeouts(struct k8s_client *c, int connect_ms, int io_ms)
{
    if (connect_ms > 0)
        c->connect_ms = connect_ms;
    if (io_ms > 0)
        c->io_ms = io_ms;
}

void k8s_client_set_max_response(struct k8s_client *c, size_t bytes)
{
    if (bytes)
        c->max_response = bytes;
}

void k8s_client_set_token_refresh(struct k8s_client *c, int seconds)
{
    if (seconds > 0)
        c->refresh_s = seconds;
}

/* Under c->lock: re-reads the token and, when the file changed, the CA. A
 * failure keeps what we had (a rotation in progress must not break us). */
static void k8s_refresh_locked(struct k8s_client *c)
{
    uint64_t now = clock_mono_ms();
    if (now - c->checked_ms < (uint64_t)c->refresh_s * 1000u)
        return;
    c->checked_ms = now;
    char err[512];
    if (c->token_file) {
        char *token = NULL;
        if (k8s_read_token(c->token_file, &token, err, sizeof err) == 0) {
            explicit_bzero(c->token, strlen(c->token));
            free(c->token);
            c->token = token;
        } else {
            log_warn("k8s token not refreshed, keeping the previous one", "error=\"%s\"", err);
        }
    }
    struct stat st;
    if (stat(c->ca_file, &st) == 0 &&
        (st.st_mtim.tv_sec != c->ca_st.st_mtim.tv_sec || st.st_mtim.tv_nsec != c->ca_st.st_mtim.tv_nsec ||
         st.st_size != c->ca_st.st_size || st.st_ino != c->ca_st.st_ino)) {
        SSL_CTX *ctx = k8s_ctx_new(c->ca_file, &st, err, sizeof err);
        if (ctx) {
            SSL_CTX_free(c->ctx);
            c->ctx = ctx;
            c->ca_st = st;
            log_info("k8s CA reloaded", "file=%s", c->ca_file);
        } else {
            log_warn("k8s CA not reloaded, keeping the previous one", "error=\"%s\"", err);
        }
    }
}

/* Waits for the socket as SSL asked; 0, or -ETIMEDOUT past the deadline. */
/* A watch thread's stop flag, seen by every wait of that thread's requests,
 * so a long watch read gives up within K8S_STOP_POLL_MS of being told to. */
static _Thread_local const atomic_int *k8s_stop_flag;
#define K8S_STOP_POLL_MS 200

static int k8s_wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (k8s_stop_flag && atomic_load(k8s_stop_flag))
            return -ECANCELED;
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        uint64_t wait = deadline - now;
        if (k8s_stop_flag && wait > K8S_STOP_POLL_MS)
            wait = K8S_STOP_POLL_MS;
        int n = poll(&pfd, 1, (int)wait);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int k8s_dial_tcp(struct k8s_client *c, uint64_t deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(c->host, c->port, &hints, &res);
    if (gai != 0) {
        errbuf_set(err, errlen, "resolve %s: %s", c->host, gai_strerror(gai));
        return gai == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    }
    int rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            rc = fd;
        } else if (errno == EINPROGRESS) {
            uint64_t cdl = clock_mono_ms() + (uint64_t)c->connect_ms;
            rc = k8s_wait_fd(fd, POLLOUT, cdl < deadline ? cdl : deadline);
            if (rc == 0) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                rc = soerr ? -soerr : fd;
            }
        } else {
            rc = -errno;
        }
        if (rc >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (rc < 0)
        errbuf_set(err, errlen, "connect %s:%s: %s", c->host, c->port, strerror(-rc));
    return rc;
}

/* Runs one SSL operation to completion or deadline. Returns its positive
 * result, 0 for a clean close (reads), or a negative errno. */
static int k8s_ssl_io(SSL *ssl, int fd, int (*op)(SSL *, void *, int), void *data, int len, uint64_t deadline,
                  char *err, size_t errlen, const char *what)
{
    for (;;) {
        ERR_clear_error();
        int n = op(ssl, data, len);
        if (n > 0)
            return n;
        int e = SSL_get_error(ssl, n);
        int rc;
        switch (e) {
        case SSL_ERROR_WANT_READ:
            rc = k8s_wait_fd(fd, POLLIN, deadline);
            break;
        case SSL_ERROR_WANT_WRITE:
            rc = k8s_wait_fd(fd, POLLOUT, deadline);
            break;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        case SSL_ERROR_SYSCALL:
            if (n == 0 || errno == 0)
                return 0; /* EOF without close_notify */
            rc = -errno;
            errbuf_set(err, errlen, "%s: %s", what, strerror(errno));
            return rc;
        default: {
            long vr = SSL_get_verify_result(ssl);
            if (vr != X509_V_OK) {
                errbuf_set(err, errlen, "%s: server certificate not verified: %s", what,
                       X509_verify_cert_error_string(vr));
                ERR_clear_error();
            } else {
                tls_error(err, errlen, what);
            }
            return -EPROTO;
        }
        }
        if (rc < 0) {
            errbuf_set(err, errlen, "%s: %s", what, rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
            return rc;
        }
    }
}

static int k8s_op_connect(SSL *ssl, void *data, int len)
{
    (void)data;
    (void)len;
    return SSL_connect(ssl);
}

static int k8s_op_read(SSL *ssl, void *data, int len)
{
    return SSL_read(ssl, data, len);
}

static int k8s_op_write(SSL *ssl, void *data, int len)
{
    return SSL_write(ssl, data, len);
}

static int k8s_conn_open(struct k8s_client *c, SSL_CTX *ctx, uint64_t deadline, struct k8s_conn **out, char *err,
                     size_t errlen)
{
    int fd = k8s_dial_tcp(c, deadline, err, errlen);
    if (fd < 0)
        return fd;
    struct k8s_conn *conn = xcalloc(1, sizeof *conn);
    conn->fd = fd;
    conn->ssl = SSL_new(ctx);
    if (!conn->ssl) {
        tls_error(err, errlen, "SSL_new");
        k8s_conn_close(conn);
        return -ENOMEM;
    }
    SSL_set_fd(conn->ssl, fd);
    int ok;
    const char *name = c->server_name ? c->server_name : c->host;
    if (c->host_is_ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), name);
    } else {
        ok = SSL_set_tlsext_host_name(conn->ssl, name) == 1 && SSL_set1_host(conn->ssl, name) == 1;
    }
    if (ok != 1) {
        tls_error(err, errlen, "TLS server name");
        k8s_conn_close(conn);
        return -EINVAL;
    }
    char what[300];
    snprintf(what, sizeof what, "TLS handshake with %s:%s", c->host, c->port);
    int rc = k8s_ssl_io(conn->ssl, fd, k8s_op_connect, NULL, 0, deadline, err, errlen, what);
    if (rc <= 0) {
        if (rc == 0) {
            errbuf_set(err, errlen, "%s: connection closed", what);
            rc = -ECONNRESET;
        }
        k8s_conn_close(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* Sends the request and reads the response on conn. *got says whether any
 * response byte arrived (a reused connection that fails before may be retried). */
static int k8s_conn_exchange(struct k8s_conn *conn, const struct buf *req, struct k8s_http_response *resp,
                         uint64_t deadline, int *got, char *err, size_t errlen)
{
    size_t off = 0;
    *got = 0;
    while (off < req->len) {
        size_t chunk = req->len - off > 1 << 20 ? 1 << 20 : req->len - off;
        int n = k8s_ssl_io(conn->ssl, conn->fd, k8s_op_write, req->data + off, (int)chunk, deadline, err, errlen,
                       "write request");
        if (n <= 0)
            return n == 0 ? -ECONNRESET : n;
        off += (size_t)n;
    }
    char in[16384];
    for (;;) {
        int n = k8s_ssl_io(conn->ssl, conn->fd, k8s_op_read, in, sizeof in, deadline, err, errlen, "read response");
        if (n < 0)
            return n;
        if (n == 0) {
            if (k8s_http_response_eof(resp) == 1)
                return 0;
            errbuf_set(err, errlen, "read response: connection closed %s", *got ? "mid-response" : "before a response");
            return *got ? -EBADMSG : -ECONNRESET;
        }
        *got = 1;
        size_t used = 0;
        int rc = k8s_http_response_feed(resp, in, (size_t)n, &used);
        if (rc < 0) {
            enum http1_error e = resp->parser.error;
            errbuf_set(err, errlen, "read response: %s (%s)",
                       rc == -EFBIG ? "response larger than the limit" : "malformed HTTP response",
                       e ? http1_strerror(e) : rc == -EFBIG ? "body" : "101 Switching Protocols not asked for");
            return rc;
        }
        if (rc == 1) {
            if (used != (size_t)n || SSL_pending(conn->ssl) > 0)
                resp->keep_alive = 0; /* bytes nobody asked for: do not reuse */
            return 0;
        }
    }
}

/* A pooled connection that is readable is closed or confused: drop it. */
static int k8s_conn_usable(struct k8s_conn *conn, uint64_t now)
{
    if (now - conn->idle_since_ms > K8S_POOL_IDLE_SECONDS * 1000u)
        return 0;
    struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* The text parsed as json_loadb would, with drop's members left out first
 * when drop is set and the text is well-formed (else the text as it is, so
 * an error is jansson's own). */
static json_t *k8s_loadb(const char *data, size_t len, const char *drop, size_t flags, json_error_t *jerr)
{
    if (drop && len) {
        char *out = xmalloc(len);
        ssize_t n = jsondrop_member(data, len, drop, out);
        json_t *j = n >= 0 ? json_loadb(out, (size_t)n, flags, jerr) : NULL;
        free(out);
        if (n >= 0)
            return j;
    }
    return json_loadb(data, len, flags, jerr);
}

static int k8s_request_ex(struct k8s_client *c, const char *method, const char *path, json_t *body,
                          size_t max_response, int io_ms, long *status, json_t **response, const char *drop,
                          char *err, size_t errlen)
{
    struct buf req;
    struct k8s_http_response resp;
    struct k8s_conn *conn = NULL;
    SSL_CTX *ctx = NULL;
    char *token = NULL, *payload = NULL;
    size_t payload_len = 0;
    int rc;
    buf_init(&req, (size_t)K8S_MAX_HEAD + K8S_MAX_TOKEN + 64u * 1024 * 1024);
    k8s_http_response_init(&resp, max_response);
    resp.head_only = strcmp(method, "HEAD") == 0;
    *status = 0;
    *response = NULL;
    errbuf_set(err, errlen, "%s", "");
    uint64_t deadline = clock_mono_ms() + (uint64_t)io_ms; /* the whole request, connect included */

    pthread_mutex_lock(&c->lock);
    k8s_refresh_locked(c);
    if (c->token)
        token = xstrdup(c->token);
    ctx = c->ctx;
    SSL_CTX_up_ref(ctx);
    uint64_t now = clock_mono_ms();
    while (c->npool > 0 && !conn) {
        conn = c->pool[--c->npool];
        if (!k8s_conn_usable(conn, now)) {
            k8s_conn_close(conn);
            conn = NULL;
        }
    }
    pthread_mutex_unlock(&c->lock);

    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload) {
            rc = -EINVAL;
            errbuf_set(err, errlen, "request body cannot be serialized");
            goto out;
        }
        payload_len = strlen(payload);
    }
    rc = k8s_http_request_head(&req, method, path, c->server_name ? c->server_name : c->host, c->port, token,
                               body != NULL, payload_len);
    if (rc == 0 && payload)
        rc = buf_append(&req, payload, payload_len);
    if (rc < 0) {
        errbuf_set(err, errlen, "bad request: method %.16s, path or token not allowed in HTTP/1.1, or too large", method);
        rc = -EINVAL;
        goto out;
    }

    for (int attempt = 0;; attempt++) {
        int reused = conn != NULL;
        if (!conn) {
            rc = k8s_conn_open(c, ctx, deadline, &conn, err, errlen);
            if (rc < 0)
                goto out;
        }
        int got = 0;
        rc = k8s_conn_exchange(conn, &req, &resp, deadline, &got, err, errlen);
        if (rc == 0)
            break;
        k8s_conn_close(conn);
        conn = NULL;
        if (!(reused && !got && rc != -ETIMEDOUT && attempt == 0))
            goto out;
        /* The server dropped an idle kept-alive connection: once more, fresh. */
        k8s_http_response_free(&resp);
        k8s_http_response_init(&resp, max_response);
        resp.head_only = strcmp(method, "HEAD") == 0;
        errbuf_set(err, errlen, "%s", "");
    }

    *status = resp.status;
    if (resp.body.len > 0) {
        json_error_t jerr;
        *response = k8s_loadb(resp.body.data, resp.body.len, resp.status == 200 ? drop : NULL, 0, &jerr);
        if (!*response)
            errbuf_set(err, errlen, "HTTP %ld: response body is not JSON: %s", resp.status, jerr.text);
    }
    if (resp.status >= 400 && *response)
        k8s_status_message(*response, resp.status, err, errlen);
    else if (resp.status >= 400 && resp.body.len == 0)
        errbuf_set(err, errlen, "HTTP %ld", resp.status);
    rc = 0;
out:
    if (conn && rc == 0 && resp.keep_alive) {
        conn->idle_since_ms = clock_mono_ms();
        pthread_mutex_lock(&c->lock);
        if (c->npool < K8S_POOL_MAX) {
            c->pool[c->npool++] = conn;
            conn = NULL;
        }
        pthread_mutex_unlock(&c->lock);
    }
    k8s_conn_close(conn);
    SSL_CTX_free(ctx);
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    if (req.data)
        explicit_bzero(req.data, req.len); /* holds the token */
    buf_free(&req);
    free(payload);
    k8s_http_response_free(&resp);
    return rc;
}

int k8s_request(struct k8s_client *c, const char *method, const char *path, json_t *body, long *status,
                json_t **response, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    size_t max = c->max_response;
    int io_ms = c->io_ms;
    pthread_mutex_unlock(&c->lock);
    return k8s_request_ex(c, method, path, body, max, io_ms, status, response, NULL, err, errlen);
}

/* ---------- list + watch ---------- */

uint64_t k8s_monotonic_ms(void)
{
    return clock_mono_ms();
}

void k8s_backoff_init(struct k8s_backoff *b, uint32_t initial_ms, uint32_t max_ms, uint64_t seed)
{
    b->initial_ms = initial_ms ? initial_ms : 1;
    b->max_ms = max_ms < b->initial_ms ? b->initial_ms : max_ms;
    b->cur_ms = b->initial_ms;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

void k8s_backoff_reset(struct k8s_backoff *b)
{
    b->cur_ms = b->initial_ms;
}

uint32_t k8s_backoff_next(struct k8s_backoff *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    uint32_t d = b->cur_ms, half = d / 2;
    uint32_t delay = half + (uint32_t)(b->rng % ((uint64_t)(d - half) + 1));
    b->cur_ms = d > b->max_ms / 2 ? b->max_ms : d * 2;
    return delay;
}

uint32_t k8s_recheck_delay(struct k8s_backoff *b, uint32_t base_ms)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    uint32_t lo = base_ms - base_ms / 4, span = base_ms / 2;
    return lo + (uint32_t)(b->rng % ((uint64_t)span + 1));
}

double k8s_watch_staleness_seconds(const struct k8s_watch_stats *st, uint64_t now)
{
    if (atomic_load(&st->connected))
        return 0.0;
    uint64_t since = atomic_load(&st->last_ok_ms);
    if (!since)
        since = atomic_load(&st->started_ms);
    return now > since ? (double)(now - since) / 1000.0 : 0.0;
}

/* k8s_watch_parse_event on the line as parsed (ev, owned; NULL: jerr says why). */
static int k8s_watch_event(json_t *ev, const json_error_t *jerr, enum k8s_watch_kind *kind, json_t **object,
                           const char **resource_version, long *code, char *err, size_t errlen)
{
    *object = NULL;
    *resource_version = "";
    *code = 0;
    if (!ev) {
        errbuf_set(err, errlen, "watch event is not JSON: %s", jerr->text);
        return -EINVAL;
    }
    int rc = -EINVAL;
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    if (!type || !json_is_object(obj)) {
        errbuf_set(err, errlen, "watch event without a type and an object");
        goto out;
    }
    if (strcmp(type, "ADDED") == 0)
        *kind = K8S_WATCH_ADDED;
    else if (strcmp(type, "MODIFIED") == 0)
        *kind = K8S_WATCH_MODIFIED;
    else if (strcmp(type, "DELETED") == 0)
        *kind = K8S_WATCH_DELETED;
    else if (strcmp(type, "BOOKMARK") == 0)
        *kind = K8S_WATCH_BOOKMARK;
    else if (strcmp(type, "ERROR") == 0) {
        *code = (long)json_integer_value(json_object_get(obj, "code"));
        k8s_status_message(obj, *code, err, errlen);
        *object = json_incref(obj);
        rc = -EPROTO;
        goto out;
    } else {
        errbuf_set(err, errlen, "watch event of unknown type \"%.32s\"", type);
        goto out;
    }
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (!rv || !*rv || strlen(rv) > 64) {
        errbuf_set(err, errlen, "%s event without metadata.resourceVersion", type);
        goto out;
    }
    *object = json_incref(obj);
    *resource_version = rv;
    rc = 0;
out:
    json_decref(ev);
    return rc;
}

int k8s_watch_parse_event(const char *line, size_t len, enum k8s_watch_kind *kind, json_t **object,
                          const char **resource_version, long *code, char *err, size_t errlen)
{
    json_error_t jerr;
    return k8s_watch_event(json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), &jerr, kind, object,
                           resource_version, code, err, errlen);
}

/* Percent-encodes a query value (continue tokens hold '=', '+' and '/'). */
static int k8s_query_escape(struct buf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc = isalnum(*p) || strchr("-._~", *p) ? buf_append(out, p, 1) : buf_appendf(out, "%%%02X", *p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* "PodList" -> "Pod" for list items, which the API server sends without kind. */
static void k8s_item_kind(json_t *item, const char *list_kind, const char *api_version)
{
    if (!json_object_get(item, "kind") && list_kind) {
        size_t n = strlen(list_kind);
        if (n > 4 && strcmp(list_kind + n - 4, "List") == 0)
            json_object_set_new(item, "kind", json_stringn(list_kind, n - 4));
    }
    if (!json_object_get(item, "apiVersion") && api_version)
        json_object_set_new(item, "apiVersion", json_string(api_version));
}

struct k8s_watcher {
    struct k8s_client *c;
    struct k8s_watch_opts o;
    k8s_watch_fn *fn;
    void *arg;
    const atomic_int *stop;
    struct k8s_watch_stats *st;
    char rv[72];   /* resume point; "" until a list completes */
    char err[512];
};

/* The outcome of one list or one watch stream. */
enum k8s_step {
    K8S_STEP_AGAIN,   /* watch again from rv now */
    K8S_STEP_RELIST,  /* 410: list now */
    K8S_STEP_BACKOFF, /* a failure: wait, then go on */
    K8S_STEP_ABSENT,  /* the list answered 404 (absent_recheck_ms set): list again later */
    K8S_STEP_STOP,
};

static enum k8s_step k8s_watch_list(struct k8s_watcher *w)
{
    struct buf path;
    char cont[4096] = "";
    enum k8s_step step = K8S_STEP_BACKOFF;
    int io_ms = w->c->io_ms > 60000 ? w->c->io_ms : 60000;
    int first = 1;
    buf_init(&path, 16384);
    for (;;) {
        long status = 0;
        json_t *resp = NULL;
        buf_reset(&path);
        int rc = buf_appendf(&path, "%s%slimit=%d", w->o.path, strchr(w->o.path, '?') ? "&" : "?", w->o.page_limit);
        if (rc == 0 && *cont)
            rc = buf_append(&path, "&continue=", 10) == 0 ? k8s_query_escape(&path, cont) : -E2BIG;
        if (rc < 0) {
            errbuf_set(w->err, sizeof w->err, "list %s: continue token too long", w->o.path);
            goto out;
        }
        rc = k8s_request_ex(w->c, "GET", buf_cstr(&path), NULL, K8S_LIST_MAX_RESPONSE, io_ms, &status, &resp,
                            w->o.drop_member, w->err, sizeof w->err);
        if (rc == -ECANCELED || atomic_load(w->stop)) {
            json_decref(resp);
            step = K8S_STEP_STOP;
            goto out;
        }
        if (rc < 0)
            goto out;
        if (status == 410) {
            /* The continue token expired mid-list: start the list over. */
            json_decref(resp);
            atomic_fetch_add(&w->st->gone, 1);
            step = K8S_STEP_RELIST;
            goto out;
        }
        if (status == 404 && w->o.absent_recheck_ms) {
            /* Not served: for a CRD's resource, not installed (yet). */
            json_decref(resp);
            step = K8S_STEP_ABSENT;
            goto out;
        }
        json_t *items = json_object_get(resp, "items");
        json_t *meta = json_object_get(resp, "metadata");
        const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
        const char *next = json_string_value(json_object_get(meta, "continue"));
        if (status != 200 || !json_is_array(items) || !rv || !*rv || strlen(rv) >= sizeof w->rv ||
            (next && strlen(next) >= sizeof cont)) {
            if (status == 200)
                errbuf_set(w->err, sizeof w->err, "list %s: not a list with metadata.resourceVersion", w->o.path);
            json_decref(resp);
            goto out;
        }
        if (first)
            w->fn(w->arg, K8S_WATCH_RESET, NULL, "");
        first = 0;
        const char *lkind = json_string_value(json_object_get(resp, "kind"));
        const char *apiv = json_string_value(json_object_get(resp, "apiVersion"));
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) {
            if (!json_is_object(item))
                continue;
            k8s_item_kind(item, lkind, apiv);
            w->fn(w->arg, K8S_WATCH_ADDED, item, rv);
        }
        snprintf(w->rv, sizeof w->rv, "%s", rv);
        snprintf(cont, sizeof cont, "%s", next ? next : "");
        json_decref(resp);
        if (!*cont)
            break;
    }
    /* Counted before the caller hears of it, so what it does next sees the count. */
    atomic_fetch_add(&w->st->lists, 1);
    atomic_store(&w->st->last_ok_ms, clock_mono_ms());
    w->fn(w->arg, K8S_WATCH_SYNCED, NULL, w->rv);
    step = K8S_STEP_AGAIN;
out:
    buf_free(&path);
    return step;
}

/* Hands every complete line of r->body to the caller and keeps the rest. */
static enum k8s_step k8s_watch_lines(struct k8s_watcher *w, struct buf *body, int *healthy)
{
    size_t start = 0;
    enum k8s_step step = K8S_STEP_AGAIN;
    while (start < body->len) {
        char *nl = memchr(body->data + start, '\n', body->len - start);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (body->data + start));
        const char *line = body->data + start;
        start += len + 1;
        if (len > w->o.max_event) {
            atomic_fetch_add(&w->st->oversize, 1);
            errbuf_set(w->err, sizeof w->err, "watch %s: event of %zu bytes, over the %zu-byte limit", w->o.path,
                       len, w->o.max_event);
            step = K8S_STEP_BACKOFF;
            goto out;
        }
        if (len == 0)
            continue;
        enum k8s_watch_kind kind;
        json_t *obj = NULL;
        const char *rv = NULL;
        long code = 0;
        json_error_t jerr;
        int rc = k8s_watch_event(k8s_loadb(line, len, w->o.drop_member, JSON_REJECT_DUPLICATES, &jerr), &jerr,
                                 &kind, &obj, &rv, &code, w->err, sizeof w->err);
        if (rc == -EPROTO) {
            json_decref(obj);
            if (code == 410) {
                atomic_fetch_add(&w->st->gone, 1);
                step = K8S_STEP_RELIST;
            } else {
                step = K8S_STEP_BACKOFF;
            }
            goto out;
        }
        if (rc < 0) {
            step = K8S_STEP_BACKOFF;
            goto out;
        }
        snprintf(w->rv, sizeof w->rv, "%s", rv);
        if (kind == K8S_WATCH_BOOKMARK)
            atomic_fetch_add(&w->st->bookmarks, 1);
        else
            atomic_fetch_add(&w->st->events, 1);
        w->fn(w->arg, kind, obj, w->rv);
        json_decref(obj);
        atomic_store(&w->st->last_ok_ms, clock_mono_ms());
        *healthy = 1;
    }
out:
    if (step == K8S_STEP_AGAIN && start > 0) {
        memmove(body->data, body->data + start, body->len - start);
        body->len -= start;
    }
    if (step == K8S_STEP_AGAIN) {
        if (body->len > w->o.max_event) {
            atomic_fetch_add(&w->st->oversize, 1);
            errbuf_set(w->err, sizeof w->err, "watch %s: event over the %zu-byte limit", w->o.path, w->o.max_event);
            step = K8S_STEP_BACKOFF;
        }
    }
    return step;
}

/* One watch stream from w->rv, read until it ends, fails or we stop. */
static enum k8s_step k8s_watch_stream(struct k8s_watcher *w, uint64_t *opened_ms)
{
    struct buf req, path;
    struct k8s_http_response resp;
    struct k8s_conn *conn = NULL;
    SSL_CTX *ctx = NULL;
    char *token = NULL;
    enum k8s_step step = K8S_STEP_BACKOFF;
    int healthy = 0;
    uint32_t span = (uint32_t)w->o.timeout_min_s;
    uint32_t timeout_s = span + (uint32_t)(clock_mono_ms() % span); /* [min, 2 min), client-go's spread */
    uint64_t idle_ms = w->o.idle_ms ? (uint64_t)w->o.idle_ms : ((uint64_t)timeout_s + 30) * 1000u;
    buf_init(&req, (size_t)K8S_MAX_HEAD + K8S_MAX_TOKEN);
    buf_init(&path, 1024);
    /* The body buffer holds at most one partial event plus one read. */
    k8s_http_response_init(&resp, 0);
    resp.body.max = w->o.max_event + 2 * 16384;
    *opened_ms = 0;

    pthread_mutex_lock(&w->c->lock);
    k8s_refresh_locked(w->c);
    if (w->c->token)
        token = xstrdup(w->c->token);
    ctx = w->c->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&w->c->lock);

    int rc = buf_appendf(&path, "%s%swatch=true&allowWatchBookmarks=true&resourceVersion=", w->o.path,
                         strchr(w->o.path, '?') ? "&" : "?");
    if (rc == 0)
        rc = k8s_query_escape(&path, w->rv);
    if (rc == 0)
        rc = buf_appendf(&path, "&timeoutSeconds=%u", timeout_s);
    if (rc == 0)
        rc = k8s_http_request_head(&req, "GET", buf_cstr(&path), w->c->server_name ? w->c->server_name : w->c->host,
                                   w->c->port, token, 0, 0);
    if (rc < 0) {
        errbuf_set(w->err, sizeof w->err, "watch %s: bad request path or token", w->o.path);
        goto out;
    }
    uint64_t deadline = clock_mono_ms() + (uint64_t)w->c->io_ms;
    rc = k8s_conn_open(w->c, ctx, deadline, &conn, w->err, sizeof w->err);
    for (size_t off = 0; rc == 0 && off < req.len;) {
        int n = k8s_ssl_io(conn->ssl, conn->fd, k8s_op_write, req.data + off, (int)(req.len - off), deadline, w->err,
                           sizeof w->err, "write watch request");
        if (n <= 0)
            rc = n == 0 ? -ECONNRESET : n;
        else
            off += (size_t)n;
    }
    char in[16384];
    while (rc == 0) {
        /* Before the head, the request's I/O timeout; then idle_ms between bytes. */
        uint64_t dl = resp.state == K8S_HTTP_HEAD ? deadline : clock_mono_ms() + idle_ms;
        int n = k8s_ssl_io(conn->ssl, conn->fd, k8s_op_read, in, sizeof in, dl, w->err, sizeof w->err, "read watch");
        if (n < 0) {
            rc = n;
            break;
        }
        if (n == 0) {
            /* The server ended the stream: without a 0-chunk, it was cut. */
            if (resp.state == K8S_HTTP_DONE || k8s_http_response_eof(&resp) == 1)
                step = K8S_STEP_AGAIN;
            else
                errbuf_set(w->err, sizeof w->err, "watch %s: connection closed mid-stream", w->o.path);
            goto out;
        }
        size_t used = 0;
        int fr = k8s_http_response_feed(&resp, in, (size_t)n, &used);
        if (fr == -EFBIG && resp.state != K8S_HTTP_HEAD) {
            atomic_fetch_add(&w->st->oversize, 1);
            errbuf_set(w->err, sizeof w->err, "watch %s: event over the %zu-byte limit", w->o.path, w->o.max_event);
            goto out;
        }
        if (fr < 0) {
            errbuf_set(w->err, sizeof w->err, "watch %s: malformed HTTP response (%s)", w->o.path,
                       http1_strerror(resp.parser.error));
            goto out;
        }
        if (resp.state == K8S_HTTP_HEAD)
            continue;
        if (resp.status != 200) {
            if (fr == 0)
                continue; /* read the Status body to the end */
            json_t *body = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
            k8s_status_message(body, resp.status, w->err, sizeof w->err);
            json_decref(body);
            if (resp.status == 410) {
                atomic_fetch_add(&w->st->gone, 1);
                step = K8S_STEP_RELIST;
            } else if (resp.status == 404 && w->o.absent_recheck_ms) {
                step = K8S_STEP_RELIST; /* the CRD went: the list says whether the resource is still served */
            }
            goto out;
        }
        if (!*opened_ms) {
            *opened_ms = clock_mono_ms();
            atomic_fetch_add(&w->st->watches, 1);
            atomic_store(&w->st->connected, 1);
            atomic_store(&w->st->last_ok_ms, *opened_ms);
        }
        step = k8s_watch_lines(w, &resp.body, &healthy);
        if (step != K8S_STEP_AGAIN)
            goto out;
        if (fr == 1)
            goto out; /* the 0-chunk: timeoutSeconds ran out */
        step = K8S_STEP_BACKOFF;
    }
    if (rc == -ECANCELED)
        step = K8S_STEP_STOP;
out:
    if (atomic_load(&w->st->connected))
        atomic_store(&w->st->last_ok_ms, clock_mono_ms());
    atomic_store(&w->st->connected, 0);
    k8s_conn_close(conn);
    SSL_CTX_free(ctx);
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    if (req.data)
        explicit_bzero(req.data, req.len);
    buf_free(&req);
    buf_free(&path);
    k8s_http_response_free(&resp);
    if (atomic_load(w->stop))
        step = K8S_STEP_STOP;
    return step;
}

/* Sleeps ms unless told to stop; 1 when stopped. */
static int k8s_watch_sleep(const atomic_int *stop, uint32_t ms)
{
    uint64_t end = clock_mono_ms() + ms;
    for (;;) {
        if (atomic_load(stop))
            return 1;
        uint64_t now = clock_mono_ms();
        if (now >= end)
            return 0;
        uint64_t d = end - now < K8S_STOP_POLL_MS ? end - now : K8S_STOP_POLL_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int k8s_watch_run(struct k8s_client *c, const struct k8s_watch_opts *opts, k8s_watch_fn *fn, void *arg,
                  const atomic_int *stop, struct k8s_watch_stats *st)
{
    struct k8s_watcher w = {.c = c, .o = *opts, .fn = fn, .arg = arg, .stop = stop, .st = st};
    struct k8s_backoff b;
    if (!w.o.max_event)
        w.o.max_event = K8S_WATCH_MAX_EVENT;
    if (w.o.page_limit <= 0)
        w.o.page_limit = K8S_LIST_PAGE;
    if (w.o.timeout_min_s <= 0)
        w.o.timeout_min_s = 300;
    if (w.o.healthy_ms <= 0)
        w.o.healthy_ms = 60000;
    k8s_backoff_init(&b, w.o.backoff_initial_ms > 0 ? (uint32_t)w.o.backoff_initial_ms : 800u,
                     w.o.backoff_max_ms > 0 ? (uint32_t)w.o.backoff_max_ms : 30000u,
                     clock_mono_ms() ^ ((uint64_t)(uintptr_t)&w << 16) ^ (uint64_t)getpid());
    atomic_store(&st->started_ms, clock_mono_ms());
    k8s_stop_flag = stop;
    int listed = 0;
    enum k8s_step step = K8S_STEP_RELIST;
    while (step != K8S_STEP_STOP && !atomic_load(stop)) {
        w.err[0] = '\0';
        uint64_t opened = 0;
        if (!listed || step == K8S_STEP_RELIST) {
            step = k8s_watch_list(&w);
            listed = step == K8S_STEP_AGAIN;
            if (listed)
                log_info("k8s list done", "path=%s resourceVersion=%s", w.o.path, w.rv);
            if (listed && atomic_exchange(&st->absent, 0))
                log_info("k8s resource now served (its CRD was installed): watching it", "path=%s", w.o.path);
        } else {
            step = k8s_watch_stream(&w, &opened);
            if (opened && clock_mono_ms() - opened >= (uint64_t)w.o.healthy_ms)
                k8s_backoff_reset(&b);
        }
        if (step == K8S_STEP_RELIST) {
            log_info("k8s watch: resourceVersion gone, listing again", "path=%s error=\"%s\"", w.o.path, w.err);
            listed = 0;
        } else if (step == K8S_STEP_ABSENT) {
            uint32_t d = k8s_recheck_delay(&b, (uint32_t)w.o.absent_recheck_ms);
            atomic_fetch_add(&st->absent_checks, 1);
            atomic_store(&st->last_ok_ms, clock_mono_ms()); /* known absent as of now */
            if (!atomic_exchange(&st->absent, 1))
                log_warn("k8s resource not served (404): its CRD is not installed; going on without it, "
                         "checking again periodically",
                         "path=%s recheck_ms=%d", w.o.path, w.o.absent_recheck_ms);
            w.fn(w.arg, K8S_WATCH_ABSENT, NULL, "");
            w.rv[0] = '\0';
            listed = 0;
            k8s_backoff_reset(&b);
            if (k8s_watch_sleep(stop, d))
                break;
            step = K8S_STEP_RELIST;
        } else if (step == K8S_STEP_BACKOFF) {
            uint32_t d = k8s_backoff_next(&b);
            atomic_fetch_add(&st->errors, 1);
            atomic_store(&st->last_backoff_ms, d);
            snprintf(st->last_error, sizeof st->last_error, "%s", w.err);
            log_warn("k8s watch failed, retrying", "path=%s backoff_ms=%u error=\"%s\"", w.o.path, d, w.err);
            if (k8s_watch_sleep(stop, d))
                break;
            step = K8S_STEP_AGAIN;
        }
    }
    k8s_stop_flag = NULL;
    return 0;
}
