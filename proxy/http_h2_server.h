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
 *   h2 as h2c over a pooled connection to the app, h1 over the HTTP/1.1
 *   client side (proxy/http_h1_client.c); anything else is answered 400.
 * On the worker's drain each connection is drained with GOAWAY: streams in
 * flight finish, new ones go elsewhere, as is a connection idle for its
 * idle timeout: WEFT_HTTP_IDLE_TIMEOUT_MS, or outbound with discovery
 * (WEFT_DISCOVERY_ADDR) its Service's weft.dev/idle-timeout as of its last
 * stream; there each stream is routed on its own (proxy/http_route.c). */
#ifndef WEFT_PROXY_HTTP_H2_SERVER_H
#define WEFT_PROXY_HTTP_H2_SERVER_H

struct session;

/* From detection (h2) or the inbound TLS accept (ALPN weft/h2). */
void http_h2_start(struct session *s);
/* Inbound weft/h2 from a caller the policy denies: every request on it is
 * answered 403 naming the caller and reason (static), so an HTTP client
 * sees an answer, not a cut connection; nothing reaches the app. */
void http_h2_start_denied(struct session *s, const char *reason);
extern const struct proxy_proto proto_h2;

#endif
