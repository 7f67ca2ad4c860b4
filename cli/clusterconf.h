/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl inject --from-cluster`: the mesh configuration and templates the
 * cluster's weft-webhook reads (ConfigMaps weft-system/weft-config and
 * weft-templates) and each namespace's annotations, as the webhook would
 * look them up. */
#ifndef WEFT_CLI_CLUSTERCONF_H
#define WEFT_CLI_CLUSTERCONF_H
#include <jansson.h>
#include <stddef.h>

#include "../webhook/confstore.h"
#include "kubeclient.h"

/* Loads the ConfigMaps with the webhook's own conf_load (through a private
 * temporary directory, removed before returning). 0 or -1 with err naming
 * the ConfigMap or key. */
int clusterconf_load(struct kubeclient *c, struct conf *out, char *err, size_t errlen);

struct clusterconf_ns {
    struct kubeclient *client;
    json_t *cache; /* namespace -> annotations object, or null (none or no such namespace) */
};

/* A workload_ctx ns_lookup (ctx is a struct clusterconf_ns). */
int clusterconf_ns_lookup(void *ctx, const char *ns, json_t **out, char *err, size_t errlen);

#endif
