/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 termination in a session (struct proxy_proto proto_h1): the
 * caller's connection is an HTTP/1 server side, parsed with lib/http1, and
 * each request goes through the exchange and its filters (proxy/http_msg.h)
 * to an HTTP/1.1 client side on an upstream connection from the worker's
 * pool, kept open across requests while both ends allow it. One exchange at
 * a time: the next pipelined request is parsed only once the previous
 * response is complete, so responses can never be reordered.
 *
 * After a 101, or a 2xx to CONNECT, the session continues as the opaque
 * relay (relay_tcp.c) with the bytes already read handed over.
 *
 * The head rewriting is pure and exported for the unit tests. */
#ifndef WEFT_PROXY_HTTP_H1_H
#define WEFT_PROXY_HTTP_H1_H
#include <stddef.h>

#include "buf.h"
#include "http1.h"
#include "http_msg.h"

struct session;
struct worker;
struct upstream_req;
struct conn;
struct pending;

/* Bytes with a read offset, shared by the HTTP/1 server and client sides:
 * input not yet parsed, output not yet sent (kept between messages up to
 * HTTP_H1_IO_KEEP, below). */
struct http_h1_io {
    struct buf b;
    size_t off;
};
static inline size_t http_h1_io_len(const struct http_h1_io *io)
{
    return io->b.len - io->off;
}
static inline void http_h1_io_free(struct http_h1_io *io)
{
    buf_free(&io->b);
    io->off = 0;
}
/* Parsed input is advanced first and settled once nothing points into it
 * any more (lib/http1's body spans do); output once written. Emptied, the
 * memory stays for the connection's next message unless a large one grew
 * it past HTTP_H1_IO_KEEP: allocating it again for every request and
 * response was 3 % of a request's instructions. */
#define HTTP_H1_IO_KEEP 4096
static inline void http_h1_io_settle(struct http_h1_io *io)
{
    if (io->off != io->b.len)
        return;
    if (io->b.cap > HTTP_H1_IO_KEEP) {
        http_h1_io_free(io);
        return;
    }
    buf_reset(&io->b);
    io->off = 0;
}
#define HTTP_H1_IN_MAX (64 * 1024)        /* unparsed input held per side before reading stops */
#define HTTP_H1_OUT_HIGH (64 * 1024)      /* output waiting for a socket: past it, the producer is paused */
#define HTTP_H1_OUT_MAX (4 * 1024 * 1024) /* safety net: output exceeds HIGH by one read and its framing only */

/* After detection said http1 (outbound without discovery, inbound
 * plaintext under PERMISSIVE): the session relays HTTP/1 from now on; to a
 * meshed destination each request is a weft/h2 stream (an Upgrade or a
 * CONNECT: a weft/1 connection of its own, see http_h1.c). */
void http_h1_start(struct session *s);
extern const struct proxy_proto proto_h1;
/* The worker starts draining: its HTTP/1 connections between requests are
 * closed now (a caller reconnects elsewhere), those with a request under way
 * close after its response. */
void http_h1_drain(struct worker *w);

/* The HTTP/1.1 client side (proxy/http_h1_client.c): makes x's upstream
 * side an HTTP/1.1 connection towards req->dst (inbound: the app, from the
 * passthrough source when req->passthrough), dialed when the request head
 * comes, or an idle one to the same place kept from an earlier exchange of
 * this worker (at most HTTP_H1_CLIENT_IDLE_MAX, each for at most
 * HTTP_H1_CLIENT_IDLE_MS). Failures answer x with 502/503/504 by cause. The
 * downstream side calls http_exchange_release before it frees x. */
#define HTTP_H1_CLIENT_IDLE_MAX 64
/* Below the 5 s keep-alive timeout of Node.js's server (the shortest of the
 * common ones: Go 90 s... nginx 75 s), so an idle connection is dropped
 * here before the app closes it under a request. */
#define HTTP_H1_CLIENT_IDLE_MS 4000
void http_h1_client_attach(struct worker *w, const struct upstream_req *req, struct http_exchange *x);
/* After a 101 or a 2xx to CONNECT reached the downstream side: moves the
 * connection into `into` (deregistered: the caller registers it) and the
 * bytes read past the response into *rest (malloc'd, may be empty). 0, or
 * -1 when there is no open connection. */
int http_h1_client_take_tunnel(struct http_exchange *x, struct conn *into, struct pending *rest);
/* Worker thread, before it exits: closes the idle connections. */
void http_h1_client_thread_cleanup(void);
/* Idle connections kept now (this thread), for tests. */
unsigned http_h1_client_idle_count(void);

/* The head a parser just read, as the version-independent model: fields
 * without the connection-specific ones (http_field_is_hop_by_hop), Host
 * (into authority) and Content-Length (into content_length). *fields is
 * grown as needed (the caller frees it). */
void http_h1_head_from(const struct http1_parser *p, struct http_head *h, struct http_field **fields, size_t *cap);
/* 0 when the proxy must refuse the request head with 400 although lib/http1
 * read it: a CONNECT target that is no valid Host value. */
int http_h1_request_ok(const struct http_head *h);
/* The wire form of a request head towards an HTTP/1.1 server: 1 when the
 * body follows chunked, 0 when not; -E2BIG past the buffer's max. */
int http_h1_write_request(struct buf *out, const struct http_head *h);
/* The wire form of a response head towards a client that spoke HTTP/1.minor.
 * bodiless: the request was HEAD (the length is shown, no body follows).
 * *close_after is read (1: send Connection: close) and set when the body
 * can only end with the connection (an HTTP/1.0 client and no length).
 * 1 when the body follows chunked, 0 when not, -E2BIG. */
int http_h1_write_response(struct buf *out, const struct http_head *h, int minor, int keep_alive_10,
                           int bodiless, int *close_after);
/* Chunk framing of body bytes, and the last chunk with trailers. */
int http_h1_write_chunk(struct buf *out, const char *p, size_t len);
int http_h1_write_last_chunk(struct buf *out, const struct http_head *trailers);

#endif
