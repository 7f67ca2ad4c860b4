/* SPDX-License-Identifier: Apache-2.0 */
/* Pure mapping between HTTP/2 header blocks (proxy/http_h2.h) and the
 * version-independent heads of proxy/http_msg.h: pseudo-headers to and from
 * the request line's parts and the status, connection-specific fields
 * dropped (RFC 9113 8.2.2), names lower-cased on the way out, the declared
 * length kept apart, and the hop header `weft-proto` between proxies: the
 * client proxy says which HTTP version the app spoke (h1, h2) so the server
 * proxy hands the request on in it; the server proxy strips it. */
#ifndef WEFT_PROXY_HTTP_H2_MAP_H
#define WEFT_PROXY_HTTP_H2_MAP_H
#include <stddef.h>

#include "http_h2.h"
#include "http_msg.h"

#define H2MAP_PROTO_FIELD "weft-proto"
#define H2MAP_MAX_OUT (HTTP_MSG_MAX_FIELDS + 8) /* fields plus pseudo-headers, length, te, weft-proto */

struct h2map_out {              /* an outgoing block; names lower-cased into mem */
    struct h2_field f[H2MAP_MAX_OUT];
    size_t n;
    char mem[HTTP_MSG_MAX_HEAD + 512];
    size_t used;
};

/* A received block as a head: out (cap entries) gets the regular fields,
 * the head points into f. is_request fills method, scheme, authority and
 * path; else status (a block without :status, trailers, gets status 0).
 * proto, when not NULL, gets weft-proto's value (stripped either way).
 * 0, -E2BIG (more fields than cap, or names and values past
 * HTTP_MSG_MAX_HEAD: a 431), -EINVAL (a status or content-length that does
 * not parse). */
int h2map_head_from(const struct h2_field *f, size_t n, int is_request, struct http_head *h, struct http_field *out,
                    size_t cap, struct http_span *proto);
/* The block to send for a head: a request (with weft-proto: proto when
 * proto is not NULL), a response (status > 0) or trailers. 0 or -E2BIG. */
int h2map_block(const struct http_head *h, int is_request, const char *proto, struct h2map_out *o);
/* grpc-status of a response head or trailers: 0-99 when present and
 * valid, -1 otherwise. */
int h2map_grpc_status(const struct http_head *h);

#endif
