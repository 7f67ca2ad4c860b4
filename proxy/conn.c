/* SPDX-License-Identifier: Apache-2.0 */
/* Plain and TLS implementations of struct conn_type. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ae.h"
#include "conn.h"

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

int conn_tls_want(struct conn *c, int ssl_err)
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
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
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
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0) {
        c->wr_wait = 0;
        return n;
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
    ERR_clear_error();
    int r = SSL_shutdown(c->ssl); /* sends close_notify; reading may go on */
    if (r >= 0) {
        c->shut_wr = 1;
        c->wr_wait = 0;
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

void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}
