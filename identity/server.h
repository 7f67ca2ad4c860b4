/* SPDX-License-Identifier: Apache-2.0 */
/* weft-identity's shell: the HTTPS server (libmicrohttpd + GnuTLS) on
 * POST /v1/certificates, the metrics server, the TokenReview client, and the
 * hot reload of the serving certificate and of the issuer. */
#ifndef WEFT_IDENTITY_SERVER_H
#define WEFT_IDENTITY_SERVER_H

#include "request.h"

struct ident_server_config {
    const char *listen;          /* "[host]:port"; empty host = every address */
    const char *metrics_listen;
    const char *tls_cert, *tls_key;       /* serving chain and key */
    const char *issuer_cert, *issuer_key; /* intermediate CA (chain) and key */
    const char *trust_bundle;    /* optional: the issuer must chain to it */
    const char *kube_api;        /* "host:port", NULL = in-cluster */
    const char *kube_ca, *kube_token;
    long kube_timeout;           /* seconds */
    long reload_interval;        /* seconds between file checks */
    unsigned max_connections;
    const char *publish_selector; /* namespaces that get ConfigMap weft-trust-bundle; NULL = none */
    long publish_interval;        /* seconds between publishing rounds */
    struct ident_config core;
};

/* Runs until SIGTERM or SIGINT (SIGHUP reloads now). Returns the exit code. */
int ident_server_run(const struct ident_server_config *cfg);

/* "host:port", "[v6]:port" or ":port" -> host ("" for any) and port. 0 or -EINVAL. */
int ident_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

#endif
