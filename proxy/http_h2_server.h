/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 termination in a session (struct proxy_proto proto_h2): the
 * caller's connection is an HTTP/2 server (proxy/http_h2.c) and each stream
 * is one exchange (proxy/http_msg.h) whose upstream side is a stream of a
 * pooled HTTP/2 connection (proxy/upstream_pool.h):
 * - outbound, an app's h2c (prior knowledge, detected): to a meshed
 *   destination over the pooled weft/h2 mTLS connection to its proxy, with
 *   weft-proto: h2; elsewhere as h2c to the destination;
 * - inbound, a client proxy's weft/h2 connection (ALPN): the request goes to
 *   the app in the version the client proxy names in weft-proto (stripped):
 *   h2 as h2c over a pooled connection to the app; h1 is not carried yet and
 *   is answered 502.
 * On the worker's drain each connection is drained with GOAWAY: streams in
 * flight finish, new ones go elsewhere. */
#ifndef WEFT_PROXY_HTTP_H2_SERVER_H
#define WEFT_PROXY_HTTP_H2_SERVER_H

struct session;

/* From detection (h2) or the inbound TLS accept (ALPN weft/h2). */
void http_h2_start(struct session *s);
extern const struct proxy_proto proto_h2;

#endif
