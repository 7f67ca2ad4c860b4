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

/* After detection said http1 (outbound to a plain destination, inbound
 * plaintext under PERMISSIVE): the session relays HTTP/1 from now on. */
void http_h1_start(struct session *s);
extern const struct proxy_proto proto_h1;

/* The head a parser just read, as the version-independent model: fields
 * without the connection-specific ones (http_field_is_hop_by_hop), Host
 * (into authority) and Content-Length (into content_length). *fields is
 * grown as needed (the caller frees it). */
void http_h1_head_from(const struct http1_parser *p, struct http_head *h, struct http_field **fields, size_t *cap);
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
