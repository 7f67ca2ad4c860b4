/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl check`'s evaluation, pure: a snapshot of what the cluster holds
 * (fetched by check_fetch.c, or read from a file for the golden tests) in,
 * result lines out, each ok / warn / fail with a message and, unless ok, a
 * hint. The snapshot's format is in docs/cli.md; a fetched item is the
 * object, null (404) or {"fetchError": "..."}. */
#ifndef WEFT_CLI_CHECK_H
#define WEFT_CLI_CHECK_H
#include <jansson.h>
#include <time.h>

#include "buf.h"

#define CHECK_MIN_MINOR 29          /* Kubernetes 1.29: native sidecars on by default (GA in 1.33) */
#define CHECK_WARN_DAYS 30          /* a certificate warns this long before it ends ... */
#define CHECK_WARN_FRACTION 5       /* ... or in the last fifth of its lifetime, whichever is sooner */
#define CHECK_MAX_LISTED 10         /* names listed in one line; the rest counted */
#define CHECK_PROXY_CERT_WARN_HOURS 6 /* a workload certificate with less left is overdue for renewal */

enum check_status { CHECK_OK, CHECK_WARN, CHECK_FAIL };

/* The objects weftctl needs RBAC for to install Weft (weftctl check --pre
 * asks a SelfSubjectAccessReview for each). */
struct check_access {
    const char *group, *resource;
    int namespaced; /* in weft-system */
};
extern const struct check_access check_install_access[];
extern const size_t check_install_access_count;

/* The Gateway API CRDs weft-discovery watches (discovery/source.c), each at
 * the version it watches: check reads each CustomResourceDefinition. */
struct check_crd {
    const char *name;    /* the CRD's metadata.name */
    const char *kind;    /* as a user knows it */
    const char *version; /* served version weft-discovery lists and watches */
    const char *without; /* what a cluster without it cannot have */
};
extern const struct check_crd check_crds_watched[];
extern const size_t check_crd_count;
#define CHECK_GATEWAY_API_RELEASE "v1.6.3" /* the release Weft is tested with (tests/e2e/setup-apps.sh) */

/* A new array of {"category","name","status","message","hint"?}. Never NULL:
 * a malformed snapshot is itself a failed check. */
json_t *check_evaluate(const json_t *snapshot, int pre);
/* The worst status of the results. */
enum check_status check_worst(const json_t *results);
/* Text, a line per check and its hint, grouped by category, and a summary line. */
void check_render_text(const json_t *results, struct buf *out);
/* weftctl's exit status for results: 0, 1 (a failure), 2 (warnings only, with strict). */
int check_exit_status(const json_t *results, int strict);

#endif
