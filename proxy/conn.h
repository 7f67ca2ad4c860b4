/* SPDX-License-Identifier: Apache-2.0 */
/* One side of a proxied connection behind a table of operations (Redis
 * ConnectionType): plain TCP and TLS expose the same read, write and
 * shutdown. A call that cannot progress returns -EAGAIN and records in
 * rd_wait/wr_wait which socket event would unblock it, so SSL_ERROR_WANT_*
 * turns into event interest in this one place.
 *
 * TLS output is corked: OpenSSL writes its records into a per-thread buffer
 * through a custom BIO, and conn_flush sends them with one send() (four
 * 16 KiB records per call on bulk transfers instead of one). What the socket
 * does not take waits in the connection's `out` buffer, allocated only then.
 * Every SSL_* call on a connection is followed by conn_flush on it. */
#ifndef WEFT_PROXY_CONN_H
#define WEFT_PROXY_CONN_H
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct conn;
struct conn_type {
    const char *name;
    ssize_t (*read)(struct conn *c, void *buf, size_t len);        /* >0, 0 at EOF, -EAGAIN, -errno */
    ssize_t (*write)(struct conn *c, const void *buf, size_t len); /* >0, -EAGAIN, -errno */
    int (*shutdown_write)(struct conn *c);                          /* 0, -EAGAIN, -errno */
};

extern const struct conn_type conn_plain, conn_tls;

struct conn {
    const struct conn_type *type;
    int fd;
    SSL *ssl;         /* conn_tls only; owned */
    int rd_wait;      /* AE_* a blocked read waits for; 0 when not blocked */
    int wr_wait;      /* same for write and shutdown */
    int ready;        /* AE_* reported by the loop since the last blocked call */
    int mask;         /* interest currently registered in the loop */
    struct {              /* encrypted bytes the socket has not taken yet */
        char *data;
        size_t off, len, cap;
    } out;
    unsigned eof : 1;     /* the peer finished sending */
    unsigned shut_wr : 1; /* we finished sending (FIN or close_notify) */
    void *owner;      /* the session */
};

static inline ssize_t conn_read(struct conn *c, void *buf, size_t len)
{
    return c->type->read(c, buf, len);
}
static inline ssize_t conn_write(struct conn *c, const void *buf, size_t len)
{
    return c->type->write(c, buf, len);
}
static inline int conn_shutdown_write(struct conn *c)
{
    return c->type->shutdown_write(c);
}
/* Whether a blocked read (or write) may be retried now. */
static inline int conn_can_read(const struct conn *c)
{
    return !c->rd_wait || (c->ready & c->rd_wait);
}
static inline int conn_can_write(const struct conn *c)
{
    return !c->wr_wait || (c->ready & c->wr_wait);
}
/* Gives a TLS connection its SSL (owned from now on) behind the corking
 * BIO. 0 or -ENOMEM. */
int conn_tls_attach(struct conn *c, SSL *ssl);
/* Sends corked and pending TLS output: 0 when all is out, -EAGAIN (wr_wait
 * set) when some waits for POLLOUT, -errno. No-op for plain connections. */
int conn_flush(struct conn *c);
static inline int conn_out_pending(const struct conn *c)
{
    return c->out.len != 0;
}
/* Maps an SSL_get_error result after a handshake step to -EAGAIN (with
 * rd_wait set) or -EIO. */
int conn_tls_want(struct conn *c, int ssl_err);
/* Frees this thread's cork buffer; a worker calls it before exiting. */
void conn_thread_cleanup(void);
/* Frees the SSL and any unsent output and closes the fd. */
void conn_close(struct conn *c);

#endif
