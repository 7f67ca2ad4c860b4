/* SPDX-License-Identifier: Apache-2.0 */
/* The per-worker upstream pool (see upstream_pool.h): plain dials so far. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"
#include "upstream_pool.h"

void upstream_pool_init(struct upstream_pool *p)
{
    memset(p, 0, sizeof *p);
}

void upstream_pool_free(struct upstream_pool *p)
{
    (void)p; /* nothing is pooled yet */
}

int upstream_pool_acquire(struct upstream_pool *p, const struct upstream_req *req, struct conn *c)
{
    int fam = req->dst.ss_family, one = 1, r;
    socklen_t len = fam == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    c->fd = -1;
    if (fam != AF_INET && fam != AF_INET6) {
        r = -EAFNOSUPPORT;
        goto fail;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (req->passthrough && handoff_bind(fd, fam) < 0) {
        close(fd);
        r = -EADDRNOTAVAIL;
        goto fail;
    }
    p->dials++;
    r = conn_tcp_connect(c, fd, (const struct sockaddr *)&req->dst, len);
    return r; /* on failure the conn holds the fd: its owner closes it */
fail:
    p->dial_failures++;
    c->state = CONN_FAILED;
    c->last_err = r;
    return r;
}

void upstream_pool_release(struct upstream_pool *p, struct conn *c, int reusable)
{
    (void)reusable;
    if (c->fd >= 0)
        p->released++;
    conn_close(c);
}
