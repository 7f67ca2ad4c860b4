/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "http_h1.h"
#include "http_route.h"
#include "log.h"
#include "session.h"

/* A Service with no ready or serving endpoint: each request is answered
 * here (503), as the connection would be refused when opaque. */
static enum http_rc route_refuse_head(struct http_exchange *x, const struct http_head *h)
{
    (void)h;
    http_exchange_local_reply(x, HTTP_CAUSE_NO_UPSTREAM, 0, "no ready endpoint");
    return HTTP_FAIL;
}

static const struct http_side_ops route_refuse_ops = {
    .name = "no-endpoint",
    .head = route_refuse_head,
    .data = http_refusing_data,
    .trailers = http_refusing_trailers,
    .resume = http_refusing_resume,
    .abort = http_refusing_abort,
};

/* Without an answer to go by: a meshed destination (WEFT_MESH_NETWORKS) as
 * a stream of the pooled weft/h2 connection to its proxy, weft-proto
 * saying what the caller spoke; else HTTP/1.1 or h2c to it. */
static void route_fallback(struct session *s, int h2, struct http_exchange *x)
{
    struct upstream_req req = {.dst = s->dst, .tls = s->tls_up};
    if (s->tls_up) {
        int fam = s->dst.ss_family;
        const void *addr = fam == AF_INET ? (const void *)&((struct sockaddr_in *)&s->dst)->sin_addr
                                          : (const void *)&((struct sockaddr_in6 *)&s->dst)->sin6_addr;
        req.expect_id = s->expect_id ? s->expect_id : config_expected_id(s->cfg, fam, addr);
    }
    if (h2 || s->tls_up)
        upstream_pool_h2_attach(s->w, &req, h2 ? "h2" : "h1", x);
    else
        http_h1_client_attach(s->w, &req, x);
}

void http_route_outbound(struct session *s, int h2, struct http_exchange *x)
{
    if (!s->w->px->dest) {
        route_fallback(s, h2, x);
        return;
    }
    const struct dest_snap *snap;
    struct dest_target t;
    session_route_choose(s, &t, &snap);
    struct upstream_req req = {.dst = t.addr};
    switch (t.route) {
    case DEST_ROUTE_MTLS:
        req.tls = 1;
        req.expect_id = t.expect_id; /* copied by the pool */
        upstream_pool_h2_attach(s->w, &req, h2 ? "h2" : "h1", x);
        break;
    case DEST_ROUTE_PLAIN:
        if (h2)
            upstream_pool_h2_attach(s->w, &req, NULL, x);
        else
            http_h1_client_attach(s->w, &req, x);
        break;
    case DEST_ROUTE_NO_ENDPOINT:
        x->up_ops = &route_refuse_ops;
        x->up = NULL;
        break;
    default:
        route_fallback(s, h2, x);
        break;
    }
    if (log_enabled(LOG_DEBUG)) {
        char dst[80], to[80];
        log_debug("outbound http route", "dst=%s route=%s to=%s expect=%s", session_addr(&s->dst, dst, sizeof dst),
                  dest_route_name(t.route), session_addr(t.route == DEST_ROUTE_PLAIN || t.route == DEST_ROUTE_MTLS ? &t.addr : &s->dst, to, sizeof to), req.expect_id ? req.expect_id : "-");
    }
    dest_snap_put(snap);
}
