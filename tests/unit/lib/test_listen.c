/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/listen.c on loopback: a listener that accepts, a port
 * already taken (and shared with SO_REUSEPORT), the flags' socket options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"

static int loopback_listen(uint16_t port, int flags)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return listen_addr((struct sockaddr *)&a, sizeof a, flags, 16);
}

static void test_listen_and_accept(void **state)
{
    (void)state;
    int l = loopback_listen(0, LISTEN_NONBLOCK | LISTEN_NODELAY);
    assert_true(l >= 0);
    uint16_t port = listen_bound_port(l);
    assert_true(port > 0);
    assert_true(fcntl(l, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(l, F_GETFD) & FD_CLOEXEC);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_int_not_equal(v, 0); /* inherited from the listener */
    close(s);
    close(c);

    /* Taken: a second plain listener fails with the errno. */
    assert_int_equal(loopback_listen(port, 0), -EADDRINUSE);
    close(l);
}

static void test_reuseport(void **state)
{
    (void)state;
    int a = loopback_listen(0, LISTEN_REUSEPORT);
    assert_true(a >= 0);
    uint16_t port = listen_bound_port(a);
    int b = loopback_listen(port, LISTEN_REUSEPORT);
    assert_true(b >= 0);
    assert_true(loopback_listen(port, 0) < 0); /* only sockets that all set it share */
    close(a);
    close(b);
}

static void test_v6only(void **state)
{
    (void)state;
    int l = listen_port(AF_INET6, 0, LISTEN_V6ONLY, 16);
    if (l == -EAFNOSUPPORT || l == -EADDRNOTAVAIL)
        skip(); /* no IPv6 on this machine */
    assert_true(l >= 0);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl), 0);
    assert_int_equal(v, 1);
    close(l);
    l = listen_port(AF_INET6, 0, 0, 16);
    assert_true(l >= 0);
    assert_int_equal(getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl), 0);
    assert_int_equal(v, 0);
    close(l);
    assert_int_equal(listen_port(AF_UNIX, 0, 0, 16), -EAFNOSUPPORT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_and_accept),
        cmocka_unit_test(test_reuseport),
        cmocka_unit_test(test_v6only),
    };
    return cmocka_run_group_tests_name("lib/listen", tests, NULL, NULL);
}
