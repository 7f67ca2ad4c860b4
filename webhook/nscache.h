/* SPDX-License-Identifier: Apache-2.0 */
/* Namespace annotations read through the Kubernetes API, cached briefly so a
 * burst of pods costs one read. A fresh entry is served as is; a stale one is
 * refreshed, and served still when the API cannot be reached or refuses
 * (up to NSCACHE_STALE_SECONDS); with nothing usable the lookup fails. At
 * most NSCACHE_MAX_ENTRIES namespaces are kept: a new one past that replaces
 * the one read longest ago. Thread-safe: libmicrohttpd calls it from its
 * worker threads.
 *
 * The cache itself is a pure function of what its source answered and when:
 * nscache_new_source() takes both the source and the clock, so the unit
 * tests drive the 10 s and 300 s bounds with a clock they move by hand. */
#ifndef WEFT_WEBHOOK_NSCACHE_H
#define WEFT_WEBHOOK_NSCACHE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s.h"

#define NSCACHE_FRESH_SECONDS 10
#define NSCACHE_STALE_SECONDS 300
#define NSCACHE_MAX_ENTRIES 4096

struct nscache;

/* Reads one namespace's annotations: 0 with *annotations (a new reference,
 * or NULL when it has none), or a negative errno with err saying why. */
typedef int (*nscache_fetch_fn)(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen);
/* A monotonic clock in nanoseconds. */
typedef uint64_t (*nscache_clock_fn)(void);

/* The API's namespaces, timed by metrics_now_ns(). Takes ownership of client. */
struct nscache *nscache_new(struct k8s_client *client);
/* Any source and clock; ctx is borrowed and must outlive the cache. */
struct nscache *nscache_new_source(nscache_fetch_fn fetch, void *ctx, nscache_clock_fn now_ns);
void nscache_free(struct nscache *c);
/* A review_ns_lookup: ctx is the nscache. */
int nscache_lookup(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen);

/* The API's answer to GET /api/v1/namespaces/<ns> (status, body, and the
 * client's err for it), pure: 0 with *annotations (new reference or NULL) for
 * a 200 that is the Namespace asked for; -ENOENT for 404; -EIO for any other
 * answer, a 200 that is not JSON or not that Namespace included, with err
 * saying why. */
int nscache_parse_namespace(const char *ns, long status, json_t *body, const char *api_err, json_t **annotations,
                            char *err, size_t errlen);

#endif
