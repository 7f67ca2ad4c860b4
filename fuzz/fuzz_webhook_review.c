/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: arbitrary bytes as an AdmissionReview body through the
 * whole pure core (JSON parse, decision, settings, templates, patch). Seeds:
 * the golden requests. Run from the repository root (templates/). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "confstore.h"
#include "review.h"

static struct conf conf;
static json_t *ns_annotations;

static int lookup(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    *annotations = ns[0] == 'x' ? NULL : json_incref(ns_annotations);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[512];
    if (conf_load("templates/mesh.yaml", "templates", &conf, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_webhook_review: %s (run from the repository root)\n", err);
        abort();
    }
    ns_annotations = json_pack("{s:s, s:s}", "weft.dev/allow-from", "ops/monitor", "weft.dev/mtls-mode", "PERMISSIVE");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct review_result r;
    review_handle(&conf.inject, (const char *)data, size, lookup, NULL, &r);
    if (!r.body || (r.http_status != 200 && r.http_status != 400 && r.http_status != 413))
        abort();
    free(r.body);
    return 0;
}
