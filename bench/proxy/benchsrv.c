/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark's app: a single-threaded epoll HTTP/1.1 keep-alive server.
 * Every request gets a 1 KB body, except GET /bulk/<N>, which streams N
 * bytes (the bulk-transfer test). Small and fast, so the proxies are what
 * the benchmark measures. Usage: benchsrv PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC 65536

struct cn {
    char in[8192];
    size_t inlen;
    char out[2048];
    size_t outlen, outoff;
    unsigned long long bulk; /* body bytes still to stream */
};

static struct cn *conns[MAXC];
static char zeros[256 * 1024];

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd]);
    conns[fd] = NULL;
}

static int flush(int fd, struct cn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->outoff += (size_t)n;
    }
    c->outoff = c->outlen = 0;
    while (c->bulk) {
        size_t k = c->bulk < sizeof zeros ? (size_t)c->bulk : sizeof zeros;
        ssize_t n = send(fd, zeros, k, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->bulk -= (unsigned long long)n;
    }
    return 1;
}

static void handle(int ep, int fd)
{
    struct cn *c = conns[fd];
    for (;;) {
        int r = flush(fd, c);
        if (r < 0) {
            drop(ep, fd);
            return;
        }
        struct epoll_event ev = {.events = r == 0 ? EPOLLOUT : EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        if (r == 0)
            return;
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end) {
            if (c->inlen == sizeof c->in) {
                drop(ep, fd);
                return;
            }
            ssize_t n = recv(fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN)) {
                drop(ep, fd);
                return;
            }
            if (n < 0)
                return;
            c->inlen += (size_t)n;
            continue;
        }
        size_t used = (size_t)(end + 4 - c->in);
        unsigned long long body = 1024;
        if (c->inlen > 10 && memcmp(c->in, "GET /bulk/", 10) == 0)
            body = strtoull(c->in + 10, NULL, 10);
        int h = snprintf(c->out, sizeof c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %llu\r\n\r\n",
                         body);
        c->outlen = (size_t)h;
        if (body == 1024) {
            memset(c->out + h, 'a', 1024);
            c->outlen += 1024;
        } else {
            c->bulk = body;
        }
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)strtoul(argv[1], NULL, 10))};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0) {
        perror("benchsrv");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXC) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[c] = calloc(1, sizeof **conns);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
            } else if (conns[fd]) {
                handle(ep, fd);
            }
        }
    }
}
