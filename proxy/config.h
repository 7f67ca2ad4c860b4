/* SPDX-License-Identifier: Apache-2.0 */
/* weft-proxy's configuration: one table of settings, each with its
 * environment name (what the webhook stamps), an optional flag, a default and
 * a help line. Sources, lowest first: defaults, the --config file (a YAML
 * mapping keyed by the environment names), the environment, flags. A value
 * that does not parse is an error naming the setting and the value. Pure:
 * the caller hands in argv and a lookup function for the environment. */
#ifndef WEFT_PROXY_CONFIG_H
#define WEFT_PROXY_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "authz.h"
#include "parse.h"
#include "probes.h"

#define CONFIG_MAX_EXPECT 32

enum mtls_mode { MTLS_STRICT, MTLS_PERMISSIVE };

struct config_expect {           /* outbound: destinations whose server identity is pinned */
    struct parse_cidr cidr;
    char id[SPIFFE_MAX_ID];
};

struct proxy_config {
    char *pod_name, *pod_namespace, *pod_ip, *service_account, *trust_domain;
    enum mtls_mode mtls_mode;
    struct authz authz;              /* policy, allow-from rules, namespace, trust domain */
    struct parse_cidr mesh_networks[PARSE_MAX_LIST];
    size_t nmesh_networks;
    uint16_t opaque_ports[PARSE_MAX_LIST]; /* skip protocol detection */
    size_t nopaque_ports;
    struct config_expect expect[CONFIG_MAX_EXPECT];
    size_t nexpect;
    char *identity_addr, *identity_server_name, *token_file;
    char *discovery_addr, *discovery_server_name; /* empty addr: no discovery */
    unsigned discovery_wait_ms, discovery_idle_s;
    char *trust_bundle, *cert, *key;
    char *app_probes_json;
    struct probes probes;
    char *log_level;
    char *config_path;
    unsigned drain_seconds, workers;
    uint16_t inbound_port, outbound_port, admin_port;
    unsigned connect_timeout_ms, handshake_timeout_ms, detect_timeout_ms, idle_timeout_s;
    unsigned reload_seconds, max_connections;
    /* HTTP (proxy/http_h1.c); 0 disables a timeout */
    unsigned http_request_timeout_ms, http_header_timeout_ms, http_idle_timeout_ms;
    unsigned http_max_head, http_max_fields;
    unsigned access_log;             /* 1: one line per HTTP request */
    unsigned http_metrics_budget;    /* label sets of the weft_proxy_http_* families (http_metrics.h) */
};

typedef const char *config_getenv_fn(void *ctx, const char *name);

/* Parses everything. argv[0] is skipped; on return *help is 1 when --help was
 * given (nothing else is checked then). 0 or -EINVAL with the message in err. */
int config_load(struct proxy_config *cfg, int argc, char **argv, config_getenv_fn *getenv_fn, void *env_ctx,
                int *help, char *err, size_t errlen);
void config_free(struct proxy_config *cfg);
/* A deep copy of src into dst (for a snapshot that changes a few settings,
 * such as discovery's inbound policy). 0, or -EINVAL with err. */
int config_copy(struct proxy_config *dst, const struct proxy_config *src, char *err, size_t errlen);
void config_print_help(FILE *out);
/* The pinned SPIFFE ID for an outbound destination, or NULL. */
const char *config_expected_id(const struct proxy_config *cfg, int family, const void *addr);
/* Whether connections to this destination port skip protocol detection. */
int config_is_opaque_port(const struct proxy_config *cfg, uint16_t port);
/* Whether an outbound destination is reached over mTLS. */
int config_is_meshed(const struct proxy_config *cfg, int family, const void *addr);

#endif
