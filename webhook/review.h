/* SPDX-License-Identifier: Apache-2.0 */
/* AdmissionReview admission.k8s.io/v1 in, AdmissionReview out. Pure: the
 * namespace's annotations come through a callback, so golden tests and the
 * fuzzer drive exactly what the server runs. */
#ifndef WEFT_WEBHOOK_REVIEW_H
#define WEFT_WEBHOOK_REVIEW_H
#include <jansson.h>
#include <stddef.h>

#include "inject.h"

#define REVIEW_MAX_BODY (4 * 1024 * 1024)

/* Reads namespace ns's annotations into *annotations (new reference, or NULL
 * when it has none). 0, or -errno with a reason in err when the API cannot be
 * reached and nothing is cached. */
typedef int (*review_ns_lookup)(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen);

enum review_outcome {
    REVIEW_INJECTED,
    REVIEW_SKIPPED,
    REVIEW_DENIED,
    REVIEW_ERROR,   /* bad request, or the namespace could not be read */
};

struct review_result {
    int http_status;              /* 200, or 400 for a body that is not an AdmissionReview */
    enum review_outcome outcome;
    const char *reason;           /* static, bounded set: the metric label */
    char *body;                   /* JSON response, owned: free() */
    size_t len;
    char uid[128];                /* the request's uid, for the log line ("" if none) */
    char pod[320];                /* namespace/name for the log line */
    char message[1024];
};

void review_handle(const struct inject_config *c, const char *body, size_t len, review_ns_lookup lookup,
                   void *lookup_ctx, struct review_result *out);

#endif
