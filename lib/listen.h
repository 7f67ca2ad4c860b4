/* SPDX-License-Identifier: Apache-2.0 */
/* A listening TCP socket, made one way: SO_REUSEADDR (a restarted server
 * rebinds while old connections sit in TIME_WAIT), close-on-exec. */
#ifndef WEFT_LISTEN_H
#define WEFT_LISTEN_H
#include <stdint.h>
#include <sys/socket.h>

#define LISTEN_NONBLOCK 1  /* the socket (and so accept4's default) non-blocking */
#define LISTEN_REUSEPORT 2 /* SO_REUSEPORT: several workers' sockets share the port */
#define LISTEN_NODELAY 4   /* TCP_NODELAY, inherited by accepted sockets */
#define LISTEN_V6ONLY 8    /* an IPv6 socket takes no IPv4 (its own IPv4 listener does) */

/* Binds addr and listens; the fd, or -errno. */
int listen_addr(const struct sockaddr *addr, socklen_t len, int flags, int backlog);
/* The wildcard address of family (AF_INET or AF_INET6) on port. */
int listen_port(int family, uint16_t port, int flags, int backlog);
/* The port a socket is bound to, 0 if unknown. */
uint16_t listen_bound_port(int fd);

#endif
