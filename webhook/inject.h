/* SPDX-License-Identifier: Apache-2.0 */
/* The injection decision and the pod it produces: Pod in, skip / refuse /
 * JSON Patch out. Pure: the caller supplies the namespace's annotations. An
 * already injected pod is re-injected from its own state (the original probes
 * travel in the proxy's WEFT_APP_PROBES), so injecting twice equals once. */
#ifndef WEFT_WEBHOOK_INJECT_H
#define WEFT_WEBHOOK_INJECT_H
#include <jansson.h>
#include <stddef.h>

#include "settings.h"
#include "template.h"

#define INJECT_STATUS_ANNOTATION SETTINGS_STATUS_ANNOTATION
#define INJECT_ANNOTATION "weft.dev/inject"

enum inject_outcome {
    INJECT_INJECTED,
    INJECT_SKIPPED,
    INJECT_DENIED,
};

struct inject_config {
    json_t *base_values;              /* settings_from_mesh() */
    const struct templates *templates;
    char **ignored_namespaces;        /* NULL-terminated */
};

struct inject_result {
    enum inject_outcome outcome;
    const char *reason;  /* static: why skipped ("opted-out", ...) or "invalid-override" etc. when denied */
    char message[1024];  /* for a person: the refusal, or what was skipped */
    json_t *patch;       /* new reference when injected (may be [] when nothing changes) */
};

/* Loads mesh.yaml: base values and ignored namespaces. 0 or -EINVAL with err. */
int inject_config_load(const char *mesh_path, const struct templates *t, struct inject_config *out, char *err,
                       size_t errlen);
void inject_config_free(struct inject_config *c);

/* Whether the namespace is ignored (no lookup of its annotations is needed). */
int inject_namespace_ignored(const struct inject_config *c, const char *ns);
/* The decisions that need no namespace lookup (ignored namespace, opt-out,
 * host network, malformed pod): returns 1 with out filled when one applies. */
int inject_screen(const struct inject_config *c, const char *ns, json_t *pod, struct inject_result *out);
/* Decides and builds the patch for pod (borrowed) in namespace ns, whose
 * annotations (borrowed, may be NULL) override the mesh defaults. */
void inject_pod(const struct inject_config *c, const char *ns, json_t *pod, json_t *ns_annotations,
                struct inject_result *out);
/* The same decision, answering the injected pod itself (a new reference, out->patch
 * left NULL) when out->outcome is INJECT_INJECTED, else NULL: weftctl writes it. */
json_t *inject_pod_build(const struct inject_config *c, const char *ns, json_t *pod, json_t *ns_annotations,
                         struct inject_result *out);
/* The original probes the last injection recorded in pod spec (borrowed):
 * the weft-proxy container's WEFT_APP_PROBES, a new reference, or NULL. */
json_t *inject_recorded_probes(json_t *spec);

#endif
