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
 * Every SSL_* call on a connection is followed by conn_flush on it.
 *
 * A connection is complete on its own: it dials (conn_tcp_connect), takes
 * TLS either way (conn_tls_accept, conn_tls_connect), runs the handshake
 * (conn_handshake) and keeps its state and the last error, so the session
 * stages above it never call OpenSSL to move bytes or handshakes. They still
 * read the peer's verified identity from conn_ssl() (proxy/creds.h). */
#ifndef WEFT_PROXY_CONN_H
#define WEFT_PROXY_CONN_H
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "ae.h"

struct conn;
struct conn_type {
    const char *name;
    ssize_t (*read)(struct conn *c, void *buf, size_t len);        /* >0, 0 at EOF, -EAGAIN, -errno */
    ssize_t (*write)(struct conn *c, const void *buf, size_t len); /* >0, -EAGAIN, -errno */
    int (*shutdown_write)(struct conn *c);                          /* 0, -EAGAIN, -errno */
};

extern const struct conn_type conn_plain, conn_tls;

enum conn_state {
    CONN_NONE,        /* no socket yet */
    CONN_CONNECTING,  /* non-blocking connect under way */
    CONN_HANDSHAKING, /* TLS handshake under way */
    CONN_OPEN,        /* bytes flow */
    CONN_FAILED,      /* connect or handshake failed: last_err, ssl_err say why */
    CONN_CLOSED,
};

struct conn {
    const struct conn_type *type;
    int fd;
    enum conn_state state;
    int last_err;     /* -errno of the last failure (-EIO for a TLS failure), 0 */
    int ssl_err;      /* SSL_get_error of a failed handshake (SSL_ERROR_SYSCALL for a dead socket) */
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
/* Takes fd (non-blocking, unconnected; owned from now on) and starts
 * connecting it to `to`: 0 with state CONN_CONNECTING (its end shows as
 * AE_WRITABLE), or -errno with state CONN_FAILED. */
int conn_tcp_connect(struct conn *c, int fd, const struct sockaddr *to, socklen_t tolen);
/* After AE_WRITABLE on a connecting conn: 0 (CONN_OPEN), -EAGAIN (not yet),
 * or -errno (CONN_FAILED). */
int conn_tcp_connected(struct conn *c);
/* Called on the new SSL before the handshake, e.g. creds_ssl_attach. */
typedef int conn_tls_setup_fn(SSL *ssl, void *arg);
/* Puts TLS over an open connection as the server (accept) or the client
 * (connect): a new SSL from ctx (the caller keeps its reference), setup,
 * the corking BIO, then CONN_HANDSHAKING. 0, or -ENOMEM / -EIO (setup
 * refused) with state CONN_FAILED. */
int conn_tls_accept(struct conn *c, SSL_CTX *ctx, conn_tls_setup_fn *setup, void *arg);
int conn_tls_connect(struct conn *c, SSL_CTX *ctx, conn_tls_setup_fn *setup, void *arg);
/* One handshake step: 1 done (CONN_OPEN), -EAGAIN (waiting: wait for
 * conn_handshake_interest), -EIO failed (CONN_FAILED, ssl_err set; the
 * alert, if any, was sent). */
int conn_handshake(struct conn *c);
int conn_handshake_interest(const struct conn *c);
static inline SSL *conn_ssl(const struct conn *c)
{
    return c->ssl;
}
/* Sends corked and pending TLS output: 0 when all is out, -EAGAIN (wr_wait
 * set) when some waits for POLLOUT, -errno. No-op for plain connections. */
int conn_flush(struct conn *c);
static inline int conn_out_pending(const struct conn *c)
{
    return c->out.len != 0;
}
/* Sets the loop's interest in c's fd to mask, with proc(data) as its
 * callback. Writability of an open connection whose last write did not block
 * is not asked of the poller: proc is called with AE_WRITABLE at the end of
 * the loop's round instead, which saves an epoll_ctl pair and a wait per
 * burst of output. The fd must stay readable-registered for that (the usual
 * case); otherwise writability is registered. */
void conn_set_mask(struct conn *c, struct ae_loop *loop, int mask, ae_file_proc *proc, void *data);
/* Frees this thread's cork buffer; a worker calls it before exiting. */
void conn_thread_cleanup(void);
/* Frees the SSL and any unsent output and closes the fd. */
void conn_close(struct conn *c);

#endif
