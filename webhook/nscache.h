/* SPDX-License-Identifier: Apache-2.0 */
/* Namespace annotations read through the Kubernetes API, cached briefly so a
 * burst of pods costs one read. A fresh entry is served as is; a stale one is
 * refreshed, and served still when the API cannot be reached (up to
 * NSCACHE_STALE_SECONDS); with nothing usable the lookup fails. Thread-safe:
 * libmicrohttpd calls it from its worker threads. */
#ifndef WEFT_WEBHOOK_NSCACHE_H
#define WEFT_WEBHOOK_NSCACHE_H
#include <jansson.h>
#include <stddef.h>

#include "k8s.h"

#define NSCACHE_FRESH_SECONDS 10
#define NSCACHE_STALE_SECONDS 300
#define NSCACHE_MAX_ENTRIES 4096

struct nscache;

/* Takes ownership of client. */
struct nscache *nscache_new(struct k8s_client *client);
void nscache_free(struct nscache *c);
/* A review_ns_lookup: ctx is the nscache. */
int nscache_lookup(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen);

#endif
