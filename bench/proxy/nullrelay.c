/* SPDX-License-Identifier: Apache-2.0 */
/* The floor of any two-proxy path, for bench/proxy/latency_side_by_side.py:
 * a transparent relay that does nothing but move bytes. It listens on the
 * ports weft-init's rules redirect to (15001 outbound, 15006 inbound), asks
 * each accepted connection's original destination (SO_ORIGINAL_DST), dials
 * it and copies bytes both ways with one epoll thread: no TLS, no parsing,
 * no pool. Run as the proxy's uid, whose connections the rules leave alone.
 * Prints "ready" once listening. Bench code, not product code. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* <linux/netfilter_ipv4.h>, which clashes with <netinet/in.h> */
#endif

#define NR_BUF 16384

struct side {
    int fd;
    struct side *peer;
    char buf[NR_BUF]; /* read from this side, not yet written to peer */
    size_t off, len;
    uint32_t events; /* registered with epoll */
    int eof, dead;
    int listener; /* 0, or the port of a listening socket */
};

static int nr_ep;

static void nr_watch(struct side *s, int op)
{
    struct epoll_event ev = {.data.ptr = s};
    if (!s->eof && s->len == 0)
        ev.events |= EPOLLIN;
    if (s->peer->len)
        ev.events |= EPOLLOUT;
    if (op == EPOLL_CTL_MOD && ev.events == s->events)
        return;
    s->events = ev.events;
    if (epoll_ctl(nr_ep, op, s->fd, &ev) < 0) {
        perror("nullrelay: epoll_ctl");
        exit(1);
    }
}

/* The pair's memory is not freed: events of this epoll batch may still
 * name it, and a bench run closes a handful of connections. */
static void nr_close(struct side *s)
{
    close(s->fd);
    close(s->peer->fd);
    s->dead = s->peer->dead = 1;
}

/* Moves what s has read to its peer; 0, or -1 when the pair is done. */
static int nr_flush(struct side *s)
{
    struct side *p = s->peer;
    while (s->len) {
        ssize_t n = send(p->fd, s->buf + s->off, s->len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        s->off += (size_t)n;
        s->len -= (size_t)n;
    }
    s->off = 0;
    if (s->eof)
        shutdown(p->fd, SHUT_WR);
    return s->eof && p->eof && !p->len ? -1 : 0;
}

static int nr_read(struct side *s)
{
    ssize_t n = recv(s->fd, s->buf, NR_BUF, 0);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    if (n == 0)
        s->eof = 1;
    s->len = (size_t)n;
    return nr_flush(s);
}

/* An inbound connection is dialled from 127.0.0.6, which the rules let
 * through to the app (from any other source the proxy uid's connection to
 * its own pod would be captured again), as weft-proxy does. */
static void nr_accept(int lfd, int inbound)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct sockaddr_in dst;
    socklen_t len = sizeof dst;
    int up = -1, one = 1;
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) == 0)
        up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000006)};
    if (up >= 0 && inbound && bind(up, (struct sockaddr *)&from, sizeof from) < 0) {
        close(up);
        up = -1;
    }
    if (up < 0 || (connect(up, (struct sockaddr *)&dst, len) < 0 && errno != EINPROGRESS)) {
        if (up >= 0)
            close(up);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    if (!a || !b)
        exit(1);
    a->fd = fd;
    b->fd = up;
    a->peer = b;
    b->peer = a;
    nr_watch(a, EPOLL_CTL_ADD);
    nr_watch(b, EPOLL_CTL_ADD);
}

static int nr_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
        perror("nullrelay: listen");
        exit(1);
    }
    struct side *s = calloc(1, sizeof *s);
    s->fd = fd;
    s->listener = port;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(nr_ep, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

int main(void)
{
    nr_ep = epoll_create1(EPOLL_CLOEXEC);
    nr_listen(15001);
    nr_listen(15006);
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(nr_ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            struct side *s = evs[i].data.ptr;
            if (s->dead)
                continue;
            if (s->listener) {
                nr_accept(s->fd, s->listener == 15006);
                continue;
            }
            int r = 0;
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                r = nr_flush(s->peer);
            if (r == 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !s->eof && !s->len)
                r = nr_read(s);
            else if (r == 0 && (evs[i].events & (EPOLLERR | EPOLLHUP)))
                r = -1; /* reported whatever the interest: nothing more can move */
            if (r < 0) {
                nr_close(s);
                continue;
            }
            nr_watch(s, EPOLL_CTL_MOD);
            nr_watch(s->peer, EPOLL_CTL_MOD);
        }
    }
}
