/* SPDX-License-Identifier: Apache-2.0 */
/* Where a session (and, with HTTP, a request) gets its upstream connection:
 * one pool per worker, asked with the destination and how to reach it.
 * Today every acquire is a fresh non-blocking dial and every release closes;
 * the seam is what matters: HTTP/2 between proxies will hand out streams of
 * a pooled connection here, and retries and splits will ask again, without
 * the session stages changing. Worker thread only. */
#ifndef WEFT_PROXY_UPSTREAM_POOL_H
#define WEFT_PROXY_UPSTREAM_POOL_H
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"

struct upstream_req {
    struct sockaddr_storage dst;
    unsigned passthrough : 1; /* inbound handoff: from the passthrough source (proxy/handoff.h) */
};

struct upstream_pool {
    uint64_t dials;          /* connections dialed */
    uint64_t dial_failures;  /* dials that failed before the connect was under way */
    uint64_t released;       /* connections given back */
};

void upstream_pool_init(struct upstream_pool *p);
void upstream_pool_free(struct upstream_pool *p);
/* Fills c with a connection towards req->dst: 0 with a dial under way
 * (c->state CONN_CONNECTING; AE_WRITABLE, then conn_tcp_connected, tell its
 * end), or -errno (c->fd -1). Later: 1 with an open pooled connection. */
int upstream_pool_acquire(struct upstream_pool *p, const struct upstream_req *req, struct conn *c);
/* Gives c back (closed today, whatever `reusable` says). */
void upstream_pool_release(struct upstream_pool *p, struct conn *c, int reusable);

#endif
