/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes objects as weftctl reads them: the pod inside each kind that has
 * one (a Pod itself, spec.template, CronJob's spec.jobTemplate.spec.template,
 * every item of a List) injected through the webhook's own inject_pod_build(),
 * or uninjected from what the weft.dev/status annotation recorded. Pure: the
 * caller reads and writes the documents. */
#ifndef WEFT_CLI_WORKLOAD_H
#define WEFT_CLI_WORKLOAD_H
#include <jansson.h>
#include <stddef.h>

#include "../webhook/inject.h"

#define WORKLOAD_DEFAULT_NAMESPACE "default" /* for an object without metadata.namespace */

struct workload_ctx {
    const struct inject_config *conf;
    json_t *ns_annotations; /* borrowed; NULL: the namespace is taken as having none */
    void (*note)(void *note_ctx, const char *where, const char *what); /* an object left alone, and why */
    void *note_ctx;
    int resolved_probes; /* uninject: put rewritten probes back as WEFT_APP_PROBES resolved them */
    /* When set, asked for each object's namespace instead of ns_annotations:
     * 0 with *out borrowed (NULL: none), or -1 with err (the object is refused). */
    int (*ns_lookup)(void *lookup_ctx, const char *ns, json_t **out, char *err, size_t errlen);
    void *lookup_ctx;
};

/* Each returns a new reference to the changed document (the same content when
 * nothing applies: other kinds pass through), or NULL with the refusal in err,
 * prefixed by `where` and the object's kind and namespace/name. */
json_t *workload_inject(const struct workload_ctx *w, json_t *doc, const char *where, char *err, size_t errlen);
json_t *workload_uninject(const struct workload_ctx *w, json_t *doc, const char *where, char *err,
                          size_t errlen);

#endif
