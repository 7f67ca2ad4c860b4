/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/upstream_pool.c and the plain connect of proxy/conn.c
 * on loopback: a dial that completes, one refused by a closed port, a family
 * the pool cannot dial, and the counts the pool keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "ae.h"
#include "listen.h"
#include "upstream_pool.h"

static struct upstream_req loopback(uint16_t port)
{
    struct upstream_req r;
    memset(&r, 0, sizeof r);
    struct sockaddr_in *a = (struct sockaddr_in *)&r.dst;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return r;
}

/* Waits for the dial's end as the loop would, then asks the conn. */
static int finish(struct conn *c)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
    assert_int_equal(poll(&pf, 1, 2000), 1);
    c->ready |= AE_WRITABLE;
    return conn_tcp_connected(c);
}

static void test_dial_completes(void **state)
{
    (void)state;
    struct upstream_pool p;
    upstream_pool_init(&p);
    int l = listen_port(AF_INET, 0, 0, 8);
    assert_true(l >= 0);
    struct upstream_req req = loopback(listen_bound_port(l));
    struct conn c = {.fd = -1};
    assert_int_equal(upstream_pool_acquire(&p, &req, &c), 0);
    assert_int_equal(c.state, CONN_CONNECTING);
    c.ready = 0;
    assert_int_equal(conn_tcp_connected(&c), -EAGAIN); /* no AE_WRITABLE seen yet */
    assert_int_equal(finish(&c), 0);
    assert_int_equal(c.state, CONN_OPEN);
    int s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    assert_int_equal(conn_write(&c, "hi", 2), 2);
    char b[2];
    assert_int_equal(read(s, b, 2), 2);
    upstream_pool_release(&p, &c, 1);
    assert_int_equal(c.fd, -1);
    assert_int_equal(c.state, CONN_CLOSED);
    assert_int_equal(read(s, b, 1), 0); /* released closes, for now */
    assert_int_equal(p.dials, 1);
    assert_int_equal(p.released, 1);
    close(s);
    close(l);
    upstream_pool_free(&p);
}

static void test_dial_refused(void **state)
{
    (void)state;
    struct upstream_pool p;
    upstream_pool_init(&p);
    int l = listen_port(AF_INET, 0, 0, 8);
    uint16_t port = listen_bound_port(l);
    close(l); /* nobody listens there now */
    struct upstream_req req = loopback(port);
    struct conn c = {.fd = -1};
    int r = upstream_pool_acquire(&p, &req, &c);
    if (r == 0)
        r = finish(&c);
    assert_int_equal(r, -ECONNREFUSED);
    assert_int_equal(c.state, CONN_FAILED);
    assert_int_equal(c.last_err, -ECONNREFUSED);
    upstream_pool_release(&p, &c, 0);

    struct upstream_req bad;
    memset(&bad, 0, sizeof bad);
    bad.dst.ss_family = AF_UNIX;
    struct conn d = {.fd = -1};
    assert_int_equal(upstream_pool_acquire(&p, &bad, &d), -EAFNOSUPPORT);
    assert_int_equal(d.fd, -1);
    assert_int_equal(p.dials, 1);
    assert_int_equal(p.dial_failures, 1);
    upstream_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_completes),
        cmocka_unit_test(test_dial_refused),
    };
    return cmocka_run_group_tests_name("proxy/upstream_pool", tests, NULL, NULL);
}
