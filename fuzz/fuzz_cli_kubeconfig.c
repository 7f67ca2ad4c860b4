/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for cli/kubeconfig.c: the input is read as a kubeconfig
 * (YAML, as kubeconfig_load reads a file) and resolved with and without
 * --context and -n, merged with itself as a second KUBECONFIG file; the same
 * bytes are read as an exec plugin's ExecCredential. Nothing may crash or
 * leak, and a resolved target must be whole: a host, a port, a namespace. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"
#include "yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct kube_target *t)
{
    if (!t->host[0] || !t->port[0] || !t->ns || !*t->ns || !t->context || !t->cluster || !t->server ||
        !t->path_prefix)
        abort();
    if ((t->cert.data || t->cert.file) != (t->key.data || t->key.file))
        abort();
    if (t->insecure && (t->ca.data || t->ca.file))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    json_t *doc = yamljson_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (doc) {
        static const struct kubeconfig_options opts[] = {
            {NULL, NULL, NULL}, {NULL, "dev", "shop"}, {NULL, "prod", NULL}, {NULL, "", ""},
        };
        struct kubeconfig_file files[2] = {{"dir/config", doc}, {"/abs/other", doc}};
        for (size_t n = 1; n <= 2; n++)
            for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
                struct kube_target t;
                if (kubeconfig_resolve(files, n, &opts[i], &t, err, sizeof err) == 0) {
                    check(&t);
                    kube_target_free(&t);
                } else if (!err[0]) {
                    abort(); /* a refusal always says why */
                }
            }
        json_decref(doc);
    }
    char *tok, *cert, *key;
    if (kubeconfig_exec_parse((const char *)data, size, "client.authentication.k8s.io/v1", &tok, &cert, &key, err,
                              sizeof err) == 0) {
        if (!tok && !cert)
            abort();
        free(tok);
        free(cert);
        free(key);
    }
    return 0;
}
