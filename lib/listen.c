/* SPDX-License-Identifier: Apache-2.0 */
/* See listen.h. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

int listen_addr(const struct sockaddr *addr, socklen_t len, int flags, int backlog)
{
    int type = SOCK_STREAM | SOCK_CLOEXEC | (flags & LISTEN_NONBLOCK ? SOCK_NONBLOCK : 0), one = 1, r;
    int fd = socket(addr->sa_family, type, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        ((flags & LISTEN_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        ((flags & LISTEN_NODELAY) && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) ||
        ((flags & LISTEN_V6ONLY) && addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        bind(fd, addr, len) < 0 || listen(fd, backlog) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int listen_port(int family, uint16_t port, int flags, int backlog)
{
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
        return listen_addr((struct sockaddr *)&a, sizeof a, flags, backlog);
    }
    if (family != AF_INET)
        return -EAFNOSUPPORT;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    return listen_addr((struct sockaddr *)&a, sizeof a, flags, backlog);
}

uint16_t listen_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}
