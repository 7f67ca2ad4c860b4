/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl's API server connection; see kubeclient.h. Blocking sockets with
 * a deadline per request (poll before each read and write): weftctl is one
 * thread doing one thing at a time. */
#include "kubeclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errbuf.h"
#include "k8s.h"
#include "tls.h"
#include "xalloc.h"

struct kubeclient {
    SSL_CTX *ctx;
    char host[256], port[8];
    char *verify_name;  /* tls-server-name or host */
    int verify_is_ip;
    int insecure;
    char *prefix;
    char *token;        /* NULL: no Authorization header */
    char server[300];
    char *trust_hint;   /* what an untrusted server's message tells to check */
};

/* Every certificate of a PEM bundle into the context's trust store. */
static int load_ca(SSL_CTX *ctx, const struct kube_blob *ca, const char *ca_flag, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(ca->data, (int)ca->len);
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int added = 0;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 && X509_STORE_add_cert(store, info->x509) == 1)
            added++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    ERR_clear_error();
    if (added == 0) {
        errbuf_set(err, errlen, "%s%s%s: no PEM certificate in it", ca_flag, ca->file ? " " : "",
                   ca->file ? ca->file : "-data");
        return -EINVAL;
    }
    return 0;
}

/* The client certificate (and any chain after it) and its key. */
static int load_client(SSL_CTX *ctx, const struct kube_target *t, char *err, size_t errlen)
{
    const char *cname = t->cert.file ? t->cert.file : "client-certificate-data";
    const char *kname = t->key.file ? t->key.file : "client-key-data";
    char what[600];
    int rc = -EINVAL;
    BIO *cb = BIO_new_mem_buf(t->cert.data, (int)t->cert.len);
    BIO *kb = BIO_new_mem_buf(t->key.data, (int)t->key.len);
    X509 *leaf = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = NULL;
    if (!leaf) {
        snprintf(what, sizeof what, "client certificate %s: not a PEM certificate", cname);
        tls_error(err, errlen, what);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        snprintf(what, sizeof what, "client certificate %s", cname);
        tls_error(err, errlen, what);
        goto out;
    }
    for (X509 *extra; (extra = PEM_read_bio_X509(cb, NULL, NULL, NULL));)
        SSL_CTX_add_extra_chain_cert(ctx, extra); /* the context takes extra */
    ERR_clear_error();
    if (!kb || !(key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL))) {
        snprintf(what, sizeof what, "client key %s: not a PEM private key", kname);
        tls_error(err, errlen, what);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "client key %s does not belong to client certificate %s", kname, cname);
        tls_error(err, errlen, what);
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

struct kubeclient *kubeclient_new(const struct kube_target *t, char *err, size_t errlen)
{
    return kubeclient_new_named(t, "certificate-authority",
                                "check the kubeconfig's certificate-authority and tls-server-name", err,
                                errlen);
}

struct kubeclient *kubeclient_new_named(const struct kube_target *t, const char *ca_flag,
                                        const char *trust_hint, char *err, size_t errlen)
{
    struct kubeclient *c = xcalloc(1, sizeof *c);
    c->trust_hint = xstrdup(trust_hint);
    unsigned char addr[16];
    snprintf(c->host, sizeof c->host, "%s", t->host);
    snprintf(c->port, sizeof c->port, "%s", t->port);
    c->verify_name = xstrdup(t->tls_server_name ? t->tls_server_name : t->host);
    c->verify_is_ip = inet_pton(AF_INET, c->verify_name, addr) == 1 || inet_pton(AF_INET6, c->verify_name, addr) == 1;
    c->insecure = t->insecure;
    c->prefix = xstrdup(t->path_prefix ? t->path_prefix : "");
    c->token = t->token ? xstrdup(t->token) : NULL;
    snprintf(c->server, sizeof c->server, "%s%s%s:%s", strchr(t->host, ':') ? "https://[" : "https://", t->host,
             strchr(t->host, ':') ? "]" : "", t->port);
    if (!(c->ctx = SSL_CTX_new(TLS_client_method()))) {
        tls_error(err, errlen, "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(c->ctx, c->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (t->ca.data) {
        if (load_ca(c->ctx, &t->ca, ca_flag, err, errlen) < 0)
            goto fail;
    } else if (!c->insecure && SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        tls_error(err, errlen, "the system's certificate authorities");
        goto fail;
    }
    if (t->cert.data && load_client(c->ctx, t, err, errlen) < 0)
        goto fail;
    return c;
fail:
    kubeclient_free(c);
    return NULL;
}

void kubeclient_free(struct kubeclient *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    if (c->token) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
    }
    free(c->verify_name);
    free(c->prefix);
    free(c->trust_hint);
    free(c);
}

const char *kubeclient_server(const struct kubeclient *c)
{
    return c->server;
}

static int wait_fd(int fd, short events, long deadline)
{
    for (;;) {
        long left = deadline - (long)clock_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int dial_to(const char *host, const char *port, const char *server, long deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res), rc = -EHOSTUNREACH, fd = -1;
    if (gai != 0) {
        errbuf_set(err, errlen, "%s: %s", server, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if ((rc = wait_fd(fd, POLLOUT, deadline)) == 0 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
            if (rc == 0)
                rc = -soerr;
        } else {
            rc = -errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errbuf_set(err, errlen, "%s: connect: %s", server, strerror(-rc));
    return fd < 0 ? rc : fd;
}

static int dial(const struct kubeclient *c, long deadline, char *err, size_t errlen)
{
    return dial_to(c->host, c->port, c->server, deadline, err, errlen);
}

/* SSL_connect / read / write, waiting on the socket for what OpenSSL asks. */
static int ssl_wait(SSL *ssl, int fd, int r, long deadline)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return wait_fd(fd, POLLIN, deadline);
    if (e == SSL_ERROR_WANT_WRITE)
        return wait_fd(fd, POLLOUT, deadline);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 1;
    return -EPROTO;
}

static void verify_message(SSL *ssl, const struct kubeclient *c, char *err, size_t errlen)
{
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        errbuf_set(err, errlen, "%s: the server's certificate is not trusted (%s; %s)", c->server,
                   X509_verify_cert_error_string(v), c->trust_hint);
    else
        tls_error(err, errlen, c->server);
}

int kubeclient_raw(struct kubeclient *c, const char *method, const char *path, const json_t *req_body,
                   long *status, struct buf *body, char *err, size_t errlen)
{
    long deadline = (long)clock_mono_ms() + KUBECLIENT_TIMEOUT_MS;
    struct buf req;
    struct k8s_http_response resp;
    char *text = req_body ? json_dumps(req_body, JSON_COMPACT) : NULL;
    char *full = xasprintf("%s%s", c->prefix, path);
    SSL *ssl = NULL;
    int fd = -1, rc;
    buf_init(&req, 8 * 1024 * 1024);
    k8s_http_response_init(&resp, body->max ? body->max : K8S_MAX_RESPONSE);
    /* Host is the server URL's host, as kubectl sends it; tls-server-name is only SNI and verification */
    rc = k8s_http_request_head(&req, method, full, c->host, c->port, c->token, text != NULL,
                               text ? strlen(text) : 0);
    if (rc == 0 && text)
        rc = buf_append(&req, text, strlen(text));
    if (rc < 0) {
        errbuf_set(err, errlen, "%s %s: cannot write the request (%s)", method, full, strerror(-rc));
        goto out;
    }
    if ((fd = rc = dial(c, deadline, err, errlen)) < 0)
        goto out;
    ssl = SSL_new(c->ctx);
    SSL_set_fd(ssl, fd);
    if (!c->verify_is_ip)
        SSL_set_tlsext_host_name(ssl, c->verify_name);
    if (!c->insecure) {
        if (c->verify_is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->verify_name);
        else
            SSL_set1_host(ssl, c->verify_name);
    }
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1)
            break;
        if ((rc = ssl_wait(ssl, fd, r, deadline)) != 0) {
            if (rc == -ETIMEDOUT)
                errbuf_set(err, errlen, "%s: TLS handshake timed out", c->server);
            else
                verify_message(ssl, c, err, errlen);
            rc = rc == 1 ? -EPROTO : rc;
            goto out;
        }
    }
    for (size_t off = 0; off < req.len;) {
        int r = SSL_write(ssl, req.data + off, (int)(req.len - off));
        if (r > 0) {
            off += (size_t)r;
            continue;
        }
        if ((rc = ssl_wait(ssl, fd, r, deadline)) != 0) {
            errbuf_set(err, errlen, "%s: %s", c->server, rc == -ETIMEDOUT ? "timed out sending the request"
                                                                        : "the connection broke while sending");
            rc = rc == 1 ? -EPIPE : rc;
            goto out;
        }
    }
    for (;;) {
        char chunk[16384];
        int r = SSL_read(ssl, chunk, sizeof chunk);
        if (r > 0) {
            size_t used;
            int fr = k8s_http_response_feed(&resp, chunk, (size_t)r, &used);
            if (fr == 1)
                break;
            if (fr < 0) {
                rc = fr;
                errbuf_set(err, errlen, "%s: %s", c->server,
                           fr == -EFBIG ? "the answer is larger than weftctl reads" : "the answer is not HTTP");
                goto out;
            }
            continue;
        }
        int w = ssl_wait(ssl, fd, r, deadline);
        if (w == 0)
            continue;
        if (w == 1 || SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL || SSL_get_error(ssl, r) == SSL_ERROR_SSL) {
            if (k8s_http_response_eof(&resp) == 1)
                break;
            rc = -EBADMSG;
            errbuf_set(err, errlen, "%s: the connection closed before the answer was complete", c->server);
            goto out;
        }
        rc = w;
        errbuf_set(err, errlen, "%s: no answer within %d s", c->server, KUBECLIENT_TIMEOUT_MS / 1000);
        goto out;
    }
    *status = resp.status;
    buf_reset(body);
    if (resp.body.len && buf_append(body, resp.body.data, resp.body.len) < 0) {
        rc = -EFBIG;
        errbuf_set(err, errlen, "%s: the answer is larger than weftctl reads", c->server);
        goto out;
    }
    rc = 0;
out:
    if (ssl) {
        SSL_set_quiet_shutdown(ssl, 1);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    k8s_http_response_free(&resp);
    buf_free(&req);
    free(text);
    free(full);
    return rc;
}

int kubeclient_json(struct kubeclient *c, const char *method, const char *path, const json_t *req_body,
                    long *status, json_t **out, char *err, size_t errlen)
{
    struct buf body;
    buf_init(&body, K8S_MAX_RESPONSE * 4);
    *out = NULL;
    int rc = kubeclient_raw(c, method, path, req_body, status, &body, err, errlen);
    if (rc == 0) {
        *out = body.len ? json_loadb(body.data, body.len, 0, NULL) : NULL;
        if (*status >= 400) {
            char msg[512];
            k8s_status_message(*out, *status, msg, sizeof msg);
            errbuf_set(err, errlen, "%s %s: %s", method, path, msg);
        } else if (!*out) {
            errbuf_set(err, errlen, "%s %s: the answer is not JSON", method, path);
        }
    }
    buf_free(&body);
    return rc;
}

int kubeclient_peer_chain(const char *host, const char *port, const char *sni, struct buf *pem, char *err,
                          size_t errlen)
{
    long deadline = (long)clock_mono_ms() + KUBECLIENT_TIMEOUT_MS;
    char server[300];
    snprintf(server, sizeof server, "%s%s%s:%s", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
             port);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    BIO *out = NULL;
    int fd = -1, rc = -EPROTO;
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the chain is judged by the caller */
    if ((fd = rc = dial_to(host, port, server, deadline, err, errlen)) < 0)
        goto out;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1)
            break;
        if ((rc = ssl_wait(ssl, fd, r, deadline)) != 0) {
            if (rc == -ETIMEDOUT)
                errbuf_set(err, errlen, "%s: TLS handshake timed out", server);
            else
                tls_error(err, errlen, server);
            rc = rc == 1 ? -EPROTO : rc;
            goto out;
        }
    }
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl); /* owned by ssl */
    out = BIO_new(BIO_s_mem());
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        PEM_write_bio_X509(out, sk_X509_value(chain, i));
    char *data;
    long n = BIO_get_mem_data(out, &data);
    if (n <= 0) {
        errbuf_set(err, errlen, "%s presented no certificate", server);
        rc = -EPROTO;
        goto out;
    }
    rc = buf_append(pem, data, (size_t)n);
    if (rc < 0)
        errbuf_set(err, errlen, "%s: its certificate chain is too large", server);
out:
    BIO_free(out);
    if (ssl) {
        SSL_set_quiet_shutdown(ssl, 1);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return rc;
}
