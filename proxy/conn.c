/* SPDX-License-Identifier: Apache-2.0 */
/* Plain and TLS implementations of struct conn_type, and the corking BIO
 * under TLS (see conn.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ae.h"
#include "conn.h"
#include "xalloc.h"

/* One SSL_write of at most 64 KiB makes at most 4 records of 16 KiB + 22. */
#define CONN_CORK_CAP (96 * 1024)

static _Thread_local struct {
    char *data;          /* CONN_CORK_CAP bytes, allocated on first use */
    size_t len;
    struct conn *owner;  /* whose records these are */
} conn_cork;

static void conn_out_append(struct conn *c, const char *p, size_t n)
{
    if (c->out.off && c->out.off == c->out.len)
        c->out.off = c->out.len = 0;
    if (c->out.len + n > c->out.cap) {
        if (c->out.off) { /* compact before growing */
            memmove(c->out.data, c->out.data + c->out.off, c->out.len - c->out.off);
            c->out.len -= c->out.off;
            c->out.off = 0;
        }
        if (c->out.len + n > c->out.cap) {
            c->out.cap = c->out.len + n;
            c->out.data = xrealloc(c->out.data, c->out.cap);
        }
    }
    memcpy(c->out.data + c->out.len, p, n);
    c->out.len += n;
}

/* Moves corked bytes into their owner's out buffer (a missed flush must
 * never send one connection's records on another). */
static void conn_cork_spill(void)
{
    if (conn_cork.len && conn_cork.owner)
        conn_out_append(conn_cork.owner, conn_cork.data, conn_cork.len);
    conn_cork.len = 0;
    conn_cork.owner = NULL;
}

static int cbio_write(BIO *b, const char *in, int inl)
{
    struct conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (inl <= 0)
        return 0;
    if (!conn_cork.data)
        conn_cork.data = xmalloc(CONN_CORK_CAP);
    if (conn_cork.owner != c)
        conn_cork_spill();
    conn_cork.owner = c;
    if (conn_cork.len + (size_t)inl > CONN_CORK_CAP) {
        /* Should not happen (writes are at most 64 KiB): keep order by
         * spilling to the connection's own buffer. */
        conn_cork_spill();
        conn_out_append(c, in, (size_t)inl);
        return inl;
    }
    memcpy(conn_cork.data + conn_cork.len, in, (size_t)inl);
    conn_cork.len += (size_t)inl;
    return inl;
}

static int cbio_read(BIO *b, char *out, int outl)
{
    struct conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(c->fd, out, (size_t)outl, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);
        return -1;
    }
    return (int)n;
}

static long cbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *conn_bio_method;
static pthread_once_t conn_bio_once = PTHREAD_ONCE_INIT;

static void conn_bio_init(void)
{
    conn_bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft conn");
    if (!conn_bio_method)
        abort();
    BIO_meth_set_write(conn_bio_method, cbio_write);
    BIO_meth_set_read(conn_bio_method, cbio_read);
    BIO_meth_set_ctrl(conn_bio_method, cbio_ctrl);
}

void conn_thread_cleanup(void)
{
    free(conn_cork.data);
    conn_cork.data = NULL;
    conn_cork.len = 0;
    conn_cork.owner = NULL;
}

static int conn_fail(struct conn *c, int err)
{
    c->state = CONN_FAILED;
    c->last_err = err;
    return err;
}

int conn_tcp_connect(struct conn *c, int fd, const struct sockaddr *to, socklen_t tolen)
{
    c->fd = fd;
    c->type = &conn_plain;
    c->rd_wait = c->wr_wait = c->ready = 0;
    c->state = CONN_CONNECTING;
    c->last_err = 0;
    if (connect(fd, to, tolen) < 0 && errno != EINPROGRESS)
        return conn_fail(c, -errno);
    return 0;
}

int conn_tcp_connected(struct conn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (!(c->ready & AE_WRITABLE))
        return -EAGAIN;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err)
        return conn_fail(c, -err);
    c->state = CONN_OPEN;
    c->rd_wait = c->wr_wait = 0;
    return 0;
}

/* SSL_get_error reads the thread's error queue, so it must be empty before
 * each call. Clearing an empty queue still costs OpenSSL 3.0 about 840
 * instructions (it frees each of its 16 slots), two or three times a
 * request; looking costs a quarter of that. */
static void conn_tls_clear_errors(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

static int conn_tls_start(struct conn *c, SSL_CTX *ctx, int server, conn_tls_setup_fn *setup, void *arg)
{
    pthread_once(&conn_bio_once, conn_bio_init);
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return conn_fail(c, -ENOMEM);
    if (setup && setup(ssl, arg) < 0) {
        SSL_free(ssl);
        return conn_fail(c, -EIO);
    }
    BIO *b = BIO_new(conn_bio_method);
    if (!b) {
        SSL_free(ssl);
        return conn_fail(c, -ENOMEM);
    }
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b); /* the SSL owns the BIO */
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    c->ssl = ssl;
    c->type = &conn_tls;
    c->state = CONN_HANDSHAKING;
    c->rd_wait = c->wr_wait = 0;
    return 0;
}

int conn_tls_accept(struct conn *c, SSL_CTX *ctx, conn_tls_setup_fn *setup, void *arg)
{
    return conn_tls_start(c, ctx, 1, setup, arg);
}

int conn_tls_connect(struct conn *c, SSL_CTX *ctx, conn_tls_setup_fn *setup, void *arg)
{
    return conn_tls_start(c, ctx, 0, setup, arg);
}

static int conn_tls_want(struct conn *c, int ssl_err);

int conn_handshake(struct conn *c)
{
    if (conn_out_pending(c)) { /* the previous flight first */
        int fr = conn_flush(c);
        if (fr == -EAGAIN)
            return -EAGAIN;
        if (fr < 0) {
            c->ssl_err = SSL_ERROR_SYSCALL;
            return conn_fail(c, -EIO);
        }
    }
    conn_tls_clear_errors();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    int fr = conn_flush(c); /* the flight OpenSSL just corked */
    if (fr < 0 && fr != -EAGAIN) {
        c->ssl_err = SSL_ERROR_SYSCALL;
        return conn_fail(c, -EIO);
    }
    if (r == 1) {
        c->state = CONN_OPEN;
        c->rd_wait = c->wr_wait = 0;
        return 1;
    }
    int w = conn_tls_want(c, e);
    if (!w) {
        c->ssl_err = e;
        conn_flush(c); /* best effort: the alert tells the peer why */
        return conn_fail(c, -EIO);
    }
    c->rd_wait = c->wr_wait = w;
    return -EAGAIN;
}

int conn_handshake_interest(const struct conn *c)
{
    return c->rd_wait | (conn_out_pending(c) ? AE_WRITABLE : 0);
}

int conn_flush(struct conn *c)
{
    if (conn_cork.len && conn_cork.owner == c) {
        if (!conn_out_pending(c)) {
            ssize_t n = send(c->fd, conn_cork.data, conn_cork.len, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_cork.len = 0;
                conn_cork.owner = NULL;
                return -errno;
            }
            if (n < 0)
                n = 0;
            if ((size_t)n < conn_cork.len)
                conn_out_append(c, conn_cork.data + n, conn_cork.len - (size_t)n);
        } else {
            conn_out_append(c, conn_cork.data, conn_cork.len);
        }
        conn_cork.len = 0;
        conn_cork.owner = NULL;
    }
    while (conn_out_pending(c)) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                c->wr_wait = AE_WRITABLE;
                c->ready &= ~AE_WRITABLE;
                return -EAGAIN;
            }
            return -errno;
        }
        c->out.off += (size_t)n;
        if (c->out.off == c->out.len) { /* idle connections hold no buffer */
            free(c->out.data);
            c->out.data = NULL;
            c->out.off = c->out.len = c->out.cap = 0;
        }
    }
    return 0;
}

static ssize_t plain_read(struct conn *c, void *buf, size_t len)
{
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0 && (size_t)n < len) {
        /* A short read almost always drained the socket: wait for epoll
         * (level-triggered, so leftovers still wake us) instead of paying a
         * recv() that returns EAGAIN. */
        c->rd_wait = AE_READABLE;
        c->ready &= ~AE_READABLE;
        return n;
    }
    if (n >= 0) {
        c->rd_wait = 0;
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->rd_wait = AE_READABLE;
        c->ready &= ~AE_READABLE;
        return -EAGAIN;
    }
    return errno == EINTR ? -EAGAIN : -errno;
}

static ssize_t plain_write(struct conn *c, const void *buf, size_t len)
{
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) {
        c->wr_wait = 0;
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        c->wr_wait = AE_WRITABLE;
        c->ready &= ~AE_WRITABLE;
        return -EAGAIN;
    }
    return -errno;
}

static int plain_shutdown_write(struct conn *c)
{
    if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return -errno;
    c->shut_wr = 1;
    c->wr_wait = 0;
    return 0;
}

/* Maps SSL_get_error to the socket event that unblocks it (0: none will). */
static int conn_tls_want(struct conn *c, int ssl_err)
{
    switch (ssl_err) {
    case SSL_ERROR_WANT_READ:
        c->ready &= ~AE_READABLE;
        return AE_READABLE;
    case SSL_ERROR_WANT_WRITE:
        c->ready &= ~AE_WRITABLE;
        return AE_WRITABLE;
    default:
        return 0;
    }
}

static ssize_t tls_read(struct conn *c, void *buf, size_t len)
{
    conn_tls_clear_errors();
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (conn_cork.len) { /* a post-handshake reply (KeyUpdate, alert) */
        int fr = conn_flush(c);
        if (fr < 0 && fr != -EAGAIN)
            return fr;
    }
    if (n > 0) {
        /* Nothing buffered in OpenSSL: the same short-read rule as plain. */
        if (!SSL_has_pending(c->ssl) && (size_t)n < len) {
            c->rd_wait = AE_READABLE;
            c->ready &= ~AE_READABLE;
        } else {
            c->rd_wait = 0;
        }
        return n;
    }
    int e = SSL_get_error(c->ssl, n);
    int w = conn_tls_want(c, e);
    if (w) {
        c->rd_wait = w;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    /* A TCP FIN without close_notify: accept it as the end of the stream;
     * the bytes before it were authenticated. */
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && (n == 0 || errno == 0))
        return 0;
    ERR_clear_error();
    return -EIO;
}

static ssize_t tls_write(struct conn *c, const void *buf, size_t len)
{
    if (conn_out_pending(c)) {
        int r = conn_flush(c);
        if (r < 0)
            return r; /* -EAGAIN with wr_wait set: earlier records first */
    }
    conn_tls_clear_errors();
    int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    int fr = conn_flush(c);
    if (n > 0) {
        if (fr < 0 && fr != -EAGAIN)
            return fr;
        if (fr == 0)
            c->wr_wait = 0;
        return n; /* accepted: what the socket did not take waits in out */
    }
    int w = conn_tls_want(c, SSL_get_error(c->ssl, n));
    if (w) {
        c->wr_wait = w;
        return -EAGAIN;
    }
    ERR_clear_error();
    return -EIO;
}

static int tls_shutdown_write(struct conn *c)
{
    conn_tls_clear_errors();
    int r = SSL_shutdown(c->ssl); /* sends close_notify; reading may go on */
    int fr = conn_flush(c);
    if (fr < 0 && fr != -EAGAIN)
        r = -1;
    if (r >= 0) {
        c->shut_wr = 1;
        c->wr_wait = fr == -EAGAIN ? AE_WRITABLE : 0;
        return 0;
    }
    int w = conn_tls_want(c, SSL_get_error(c->ssl, r));
    if (w) {
        c->wr_wait = w;
        return -EAGAIN;
    }
    ERR_clear_error();
    /* The peer is gone: nothing more can be sent, which is what we wanted. */
    c->shut_wr = 1;
    c->wr_wait = 0;
    return 0;
}

const struct conn_type conn_plain = {"tcp", plain_read, plain_write, plain_shutdown_write};
const struct conn_type conn_tls = {"tls", tls_read, tls_write, tls_shutdown_write};

void conn_set_mask(struct conn *c, struct ae_loop *loop, int mask, ae_file_proc *proc, void *data)
{
    if (c->fd < 0)
        return;
    int soon = (mask & AE_WRITABLE) && (mask & ~AE_WRITABLE) && c->state == CONN_OPEN && !c->wr_wait;
    int poll_mask = soon ? mask & ~AE_WRITABLE : mask;
    if (poll_mask != c->mask && ae_file_set(loop, c->fd, poll_mask, proc, data) == 0)
        c->mask = poll_mask;
    if (soon && ae_file_soon(loop, c->fd, AE_WRITABLE) < 0 && ae_file_set(loop, c->fd, mask, proc, data) == 0)
        c->mask = mask;
}

void conn_close(struct conn *c)
{
    if (conn_cork.owner == c) {
        conn_cork.len = 0;
        conn_cork.owner = NULL;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    free(c->out.data);
    c->out.data = NULL;
    c->out.off = c->out.len = c->out.cap = 0;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = CONN_CLOSED;
}
