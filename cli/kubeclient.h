/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl's connection to the API server from a kubeconfig target: TLS 1.2+
 * (OpenSSL), the server verified against the kubeconfig's CA (or the
 * system's) and its host name or IP (or tls-server-name), a client
 * certificate and/or bearer token. An adapter, because lib/k8s builds its
 * client from files and a token file only (the in-cluster service account):
 * it reuses lib/k8s's request writer and response reader and adds the
 * connection. One request per connection: weftctl makes a few dozen. */
#ifndef WEFT_CLI_KUBECLIENT_H
#define WEFT_CLI_KUBECLIENT_H
#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "kubeconfig.h"

#define KUBECLIENT_TIMEOUT_MS 10000 /* per request: connect, TLS, write, read */

struct kubeclient;

/* t must hold data (kubeconfig_credentials()); it is copied. NULL with err
 * naming the certificate or key that does not load. */
struct kubeclient *kubeclient_new(const struct kube_target *t, char *err, size_t errlen);
/* The same for a server that is not the kubeconfig's (a Prometheus): ca_flag
 * names where t->ca came from in messages (default "certificate-authority"),
 * trust_hint what an untrusted server's message tells to check. */
struct kubeclient *kubeclient_new_named(const struct kube_target *t, const char *ca_flag,
                                        const char *trust_hint, char *err, size_t errlen);
void kubeclient_free(struct kubeclient *c);

/* One request; path absolute and escaped (the server's path prefix is put in
 * front). 0 when an answer arrived: *status and the raw body in body (its
 * max is the limit). A negative errno when none did, err saying why
 * (connection refused, TLS verification, timeout...). */
int kubeclient_raw(struct kubeclient *c, const char *method, const char *path, const json_t *req_body,
                   long *status, struct buf *body, char *err, size_t errlen);
/* The same with a JSON answer: *out a new reference (NULL when the body is
 * not JSON). For a status >= 400 err holds the Status message. */
int kubeclient_json(struct kubeclient *c, const char *method, const char *path, const json_t *req_body,
                    long *status, json_t **out, char *err, size_t errlen);
/* The certificate chain a TLS server at host:port presents for sni (NULL:
 * none), as PEM appended to pem, unverified (the caller judges it): what
 * weftctl check compares a webhook's caBundle with. 0 or a negative errno. */
int kubeclient_peer_chain(const char *host, const char *port, const char *sni, struct buf *pem, char *err,
                          size_t errlen);
/* The server's name as messages show it: https://host:port. */
const char *kubeclient_server(const struct kubeclient *c);

#endif
