/* SPDX-License-Identifier: Apache-2.0 */
/* weft-proxy's discovery client (docs/discovery.md, "The protocol"): one
 * long-lived TLS 1.3 + HTTP/2 stream to weft-discovery presenting the
 * workload certificate, on a thread and lib/ae loop of its own, so workers
 * never block on it.
 *
 * - Destinations are subscribed lazily: a worker that sees a connection to
 *   an address with no entry queues it (dest_store_want) and wakes the
 *   client. Answers go into the dest store (proxy/dest.h), each version
 *   acknowledged, or nacked with the reason while the last good one stays.
 *   A destination with no new connection for WEFT_DISCOVERY_IDLE_SECONDS is
 *   unsubscribed and forgotten.
 * - The own pod's inbound policy (policy:<ns>/<pod>) is subscribed at every
 *   connect; each change is swapped into the configuration store as a new
 *   snapshot, so new connections get it at once and open ones keep theirs.
 * - Static stability: when the stream drops, every answer held stays in
 *   force; the client reconnects with jittered exponential backoff and
 *   subscribes again to everything it holds (versions start over with a
 *   new connection).
 *
 * Thread safety: cp_client_start/stop on the main thread; the others from
 * any thread. */
#ifndef WEFT_PROXY_CP_CLIENT_H
#define WEFT_PROXY_CP_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cfgsnap.h"
#include "creds.h"
#include "dest.h"

#define CPC_READY_WAIT_MS 5000       /* /ready waits this long at start for the first policy */
#define CPC_CONNECT_TIMEOUT_MS 5000  /* TCP + TLS + the server's hello */
#define CPC_BACKOFF_FIRST_MS 500     /* reconnect delays: [d/2, d], d doubling */
#define CPC_BACKOFF_MAX_MS 30000
#define CPC_PING_MS 10000            /* HTTP/2 PING this often on an open stream */
#define CPC_DEAD_MS 30000            /* nothing received this long: the stream is dead */
#define CPC_MAX_OUT (4 * 1024 * 1024) /* client messages not yet sent */
#define CPC_WAIT_STEP_MS 2           /* a waiting connection looks for its answer this often */

struct cp_client;

/* Starts the thread when cfg->discovery_addr is set (else returns NULL with
 * err empty). config: where policy snapshots are swapped in; dest: where
 * answers go. NULL with err on a bad setting. */
struct cp_client *cp_client_start(struct cfgstore *config, struct creds *creds, struct dest_store *dest,
                                  const struct proxy_config *cfg, char *err, size_t errlen);
/* Stops and frees (NULL is ignored). */
void cp_client_stop(struct cp_client *c);
/* 1 while the stream is up (the server's hello was read). */
int cp_client_connected(const struct cp_client *c);
/* A worker queued a destination (dest_store_want): take it now. */
void cp_client_wake(struct cp_client *c);
/* For /ready: 1 when there is no client, the own policy has been received,
 * or CPC_READY_WAIT_MS have passed since the start (then the environment's
 * policy stays until discovery answers); else 0 with why. */
int cp_client_ready(struct cp_client *c, const char **why);
/* SIGHUP: swaps next into config with discovery's last good policy laid
 * over the environment's, under the lock the client's own swaps take, so
 * neither undoes the other. next is moved in (cfgstore_swap). c may be NULL. */
void cp_client_swap_config(struct cp_client *c, struct cfgstore *config, struct proxy_config *next);
/* A connection's dial decision, for weft_proxy_discovery_routes_total. */
void cp_client_count_route(struct cp_client *c, enum dest_route r, int waited);
/* weft_proxy_discovery_* for /metrics (c may be NULL: nothing). 0 or -E2BIG. */
int cp_client_render_metrics(struct cp_client *c, struct buf *out);

/* Pure parts, for the unit tests. */

/* Lays p over cfg's mTLS mode, inbound policy and allow-from. */
void cpc_policy_overlay(struct proxy_config *cfg, const struct dest_policy *p);
/* Whether cfg already has p's values. */
int cpc_policy_same(const struct proxy_config *cfg, const struct dest_policy *p);
/* Client messages, one line each, appended to out: 0 or -E2BIG. */
int cpc_msg_subscribe(struct buf *out, const char *type, const char *id);
int cpc_msg_ack(struct buf *out, const char *id, uint64_t version);
int cpc_msg_nack(struct buf *out, const char *id, uint64_t version, const char *reason);

/* Splits the response body into lines of at most max bytes. */
struct cpc_lines {
    struct buf line;
    size_t max;
};
typedef int cpc_line_fn(void *arg, const char *line, size_t len);
void cpc_lines_init(struct cpc_lines *l, size_t max);
void cpc_lines_free(struct cpc_lines *l);
/* Calls fn for each complete line (a trailing "\r" dropped); a line longer
 * than max is -E2BIG (the stream is broken then: a server never sends
 * one), a nonzero fn return stops and is returned. */
int cpc_lines_feed(struct cpc_lines *l, const char *data, size_t len, cpc_line_fn *fn, void *arg);

#endif
