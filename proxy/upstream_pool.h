/* SPDX-License-Identifier: Apache-2.0 */
/* Where a session (and, with HTTP, a request) gets its upstream: one pool
 * per worker, asked with the destination and how to reach it.
 *
 * Two kinds of upstream:
 * - a connection of its own (upstream_pool_acquire): a fresh non-blocking
 *   dial, closed on release; the opaque relay and HTTP/1 use it;
 * - a stream of a pooled HTTP/2 connection (upstream_pool_h2_attach): a
 *   request's upstream side (proxy/http_msg.h) becomes one stream of a
 *   multiplexed connection per (worker, destination, way): weft/h2 mTLS
 *   towards a peer proxy, or h2c (prior knowledge) towards an app. The pool
 *   keeps such connections, puts up to the peer's SETTINGS_MAX_CONCURRENT_
 *   STREAMS streams on each, dials another when all are full, stops using
 *   one after GOAWAY or an error, and closes one idle for UPSTREAM_H2_IDLE_MS.
 *   A client that opens a connection per request so costs no handshake per
 *   request.
 * Worker thread only. */
#ifndef WEFT_PROXY_UPSTREAM_POOL_H
#define WEFT_PROXY_UPSTREAM_POOL_H
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "spiffe.h"

/* Shorter than the server proxies' HTTP idle timeout (75 s by default), so
 * the client end closes first and no request races a server-side close. */
#define UPSTREAM_H2_IDLE_MS 60000

struct upstream_req {
    struct sockaddr_storage dst;
    unsigned passthrough : 1; /* inbound handoff: from the passthrough source (proxy/handoff.h) */
    unsigned tls : 1;         /* HTTP/2 streams: weft/h2 mTLS to a peer proxy, else h2c */
    const char *expect_id;    /* tls: the SPIFFE ID the server must have, or NULL (copied) */
};

struct uph2;
struct worker;
struct http_exchange;

struct upstream_pool {
    uint64_t dials;          /* connections dialed */
    uint64_t dial_failures;  /* dials that failed before the connect was under way */
    uint64_t released;       /* connections given back */
    uint64_t h2_conns;       /* HTTP/2 connections dialed */
    uint64_t h2_streams;     /* requests put on them */
    struct uph2 *h2;         /* the pooled HTTP/2 connections, usable or draining */
};

void upstream_pool_init(struct upstream_pool *p);
/* Closes pooled connections without calling back (the worker's sessions
 * and their exchanges are gone; the loop may be too). */
void upstream_pool_free(struct upstream_pool *p);
/* Fills c with a connection towards req->dst: 0 with a dial under way
 * (c->state CONN_CONNECTING; AE_WRITABLE, then conn_tcp_connected, tell its
 * end), or -errno (c->fd -1). */
int upstream_pool_acquire(struct upstream_pool *p, const struct upstream_req *req, struct conn *c);
/* Gives c back (closed, whatever `reusable` says). */
void upstream_pool_release(struct upstream_pool *p, struct conn *c, int reusable);

/* Makes x's upstream side a stream of a pooled HTTP/2 connection towards
 * req, chosen (or dialed) when the request head comes. proto: what
 * weft-proto says to the server proxy ("h1", "h2"; req->tls only), kept,
 * not copied: a string that outlives the request. The
 * downstream side must call http_exchange_release before it frees x. */
void upstream_pool_h2_attach(struct worker *w, const struct upstream_req *req, const char *proto,
                             struct http_exchange *x);
/* Pooled HTTP/2 connections open now, and streams on them (for tests). */
unsigned upstream_pool_h2_count(const struct upstream_pool *p, unsigned *streams);

#endif
