/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound HTTP's upstream side, chosen per request: with discovery from
 * the answer held for the original destination (which endpoint, mTLS with
 * which expected SPIFFE ID, or plain), so that one keep-alive connection's
 * requests are spread over a Service's endpoints; without an answer (or
 * without discovery) as WEFT_MESH_NETWORKS decided at accept. Worker
 * thread only. */
#ifndef WEFT_PROXY_HTTP_ROUTE_H
#define WEFT_PROXY_HTTP_ROUTE_H

struct session;
struct http_exchange;

/* Attaches x's upstream side for a request the caller sent on s (outbound):
 * h2 says the caller spoke h2c (else HTTP/1.x). */
void http_route_outbound(struct session *s, int h2, struct http_exchange *x);

#endif
