/* SPDX-License-Identifier: Apache-2.0 */
/* The trust bundle publisher: every injected pod mounts ConfigMap
 * weft-trust-bundle from its own namespace (the design's contract), and a
 * ConfigMap cannot be mounted across namespaces, so weft-identity, which owns
 * the trust anchors, copies them into every namespace that opts in to the
 * mesh, and rewrites the copies when the anchors change (rotation). Istio's
 * istiod does the same for istio-ca-root-cert.
 *
 * Pure parts first (exported for the unit tests), then the thread. */
#ifndef WEFT_IDENTITY_PUBLISH_H
#define WEFT_IDENTITY_PUBLISH_H
#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "k8s.h"

#define PUBLISH_CONFIGMAP "weft-trust-bundle"
#define PUBLISH_KEY "ca.crt"
#define PUBLISH_MANAGED_BY "weft-identity"
#define PUBLISH_MAX_BUNDLE (512 * 1024) /* a ConfigMap holds at most 1 MiB */
#define PUBLISH_RESYNC_SECONDS 300      /* re-read a copy known to be current this often */

/* The ConfigMap to send: `existing` (a ConfigMap from the API, borrowed) with
 * data[ca.crt] set to pem and the managed-by label added, everything else
 * kept (resourceVersion makes the update conditional); or, when existing is
 * NULL, a new ConfigMap in namespace ns. */
json_t *publish_configmap(const json_t *existing, const char *ns, const char *pem);
/* 1 when the ConfigMap already carries exactly pem. */
int publish_is_current(const json_t *configmap, const char *pem);
/* Appends s percent-encoded for a URL query value. 0 or -E2BIG. */
int publish_query_escape(struct buf *out, const char *s);
/* 0 when pem holds one or more PEM blocks and every one is a certificate
 * that parses; otherwise -EINVAL with err naming the problem. */
int publish_check_bundle(const char *pem, size_t len, char *err, size_t errlen);

/* Starts the thread: every interval seconds (and at once) it reads
 * bundle_file and makes ConfigMap weft-trust-bundle carry it in every
 * namespace that matches label_selector. kube is borrowed and must outlive
 * publish_stop(). 0, or -errno. */
int publish_start(struct k8s_client *kube, const char *bundle_file, const char *label_selector, long interval);
void publish_stop(void);
/* weft_identity_trust_bundle_publish_total{result=...} for /metrics. */
void publish_render_metrics(struct buf *out);

#endif
