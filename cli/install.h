/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl install`'s rendering, pure: the kustomize output of manifests/
 * (parsed documents) plus certificates and --set values in, the manifests to
 * apply out: ConfigMap weft-trust-bundle holding the trust anchor, the
 * MutatingWebhookConfiguration's caBundle, the Secrets weft-identity-issuer,
 * weft-identity-tls, weft-webhook-tls and weft-discovery-tls (as
 * manifests/gen-identity-ca.sh, gen-webhook-cert.sh and
 * discovery/gen-discovery-cert.sh would create them), and the --set values. */
#ifndef WEFT_CLI_INSTALL_H
#define WEFT_CLI_INSTALL_H
#include <jansson.h>
#include <stddef.h>

#define INSTALL_DEFAULT_DAYS 365
#define INSTALL_MAX_DAYS 3650

/* PEM text, borrowed. The webhook's are NULL with cert-manager (it makes them). */
struct install_certs {
    const char *root;                         /* trust anchor */
    const char *issuer_crt, *issuer_key;      /* weft-identity's signing intermediate */
    const char *identity_crt, *identity_key;  /* weft-identity's serving chain and key */
    const char *webhook_ca, *webhook_crt, *webhook_key;
    const char *discovery_crt, *discovery_key; /* weft-discovery's serving chain (leaf + issuer) and key */
};

struct install_settings {
    int days;              /* certificates.days: issuer and serving certificates; the root lives 10 times as long */
    int cert_manager;      /* certManager: the webhook's certificate from cert-manager (overlays/cert-manager) */
    long webhook_replicas; /* webhook.replicas; -1: as manifests/ says */
    json_t *mesh;          /* mesh.<path> -> value (JSON): set in mesh.yaml; owned */
};

void install_settings_init(struct install_settings *s);
void install_settings_free(struct install_settings *s);
/* One --set key=value: 0, or -EINVAL with err naming the key (unknown) or the value. */
int install_set(struct install_settings *s, const char *kv, char *err, size_t errlen);
/* A new array of the documents to apply, or NULL with err (a manifest not as
 * expected, a mesh.yaml key that does not exist or a value it refuses). docs
 * is borrowed. */
json_t *install_render(json_t *docs, const struct install_certs *c, const struct install_settings *s, char *err,
                       size_t errlen);

#endif
