/* SPDX-License-Identifier: Apache-2.0 */
/* The settings table and its loader (see config.h). Every setting is
 * collected as a string from the sources in order, then parsed once, so an
 * error always names the setting and the value that won. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "detect.h"
#include "errbuf.h"
#include "hostport.h"
#include "http_metrics.h"
#include "log.h"
#include "xalloc.h"
#include "yamljson.h"

typedef int config_set_fn(struct proxy_config *cfg, const char *v, char *err, size_t errlen);

struct config_setting {
    const char *env;
    const char *flag;   /* without "--", or NULL */
    const char *def;
    const char *help;
    config_set_fn *set;
};

#define SET_STR(field)                                                                  \
    static int set_##field(struct proxy_config *cfg, const char *v, char *err, size_t errlen) \
    {                                                                                   \
        (void)err;                                                                      \
        (void)errlen;                                                                   \
        free(cfg->field);                                                               \
        cfg->field = xstrdup(v);                                                        \
        return 0;                                                                       \
    }
SET_STR(pod_name)
SET_STR(pod_ip)
SET_STR(identity_addr)
SET_STR(identity_server_name)
SET_STR(token_file)
SET_STR(trust_bundle)
SET_STR(cert)
SET_STR(key)
SET_STR(log_level)
SET_STR(discovery_server_name)

static int set_discovery_addr(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    char host[256], port[8];
    if (*v && (hostport_split(v, host, sizeof host, port, sizeof port) < 0 || !*host || strspn(port, "0") == strlen(port))) {
        errbuf_set(err, errlen, "must be host:port or [v6]:port (empty: no discovery)");
        return -EINVAL;
    }
    free(cfg->discovery_addr);
    cfg->discovery_addr = xstrdup(v);
    return 0;
}

static int set_pod_namespace(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (*v && !spiffe_valid_namespace(v, strlen(v))) {
        errbuf_set(err, errlen, "not a Kubernetes namespace name");
        return -EINVAL;
    }
    free(cfg->pod_namespace);
    cfg->pod_namespace = xstrdup(v);
    return 0;
}

static int set_service_account(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (*v && !spiffe_valid_sa(v, strlen(v))) {
        errbuf_set(err, errlen, "not a Kubernetes service account name");
        return -EINVAL;
    }
    free(cfg->service_account);
    cfg->service_account = xstrdup(v);
    return 0;
}

static int set_trust_domain(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (!spiffe_valid_trust_domain(v, strlen(v))) {
        errbuf_set(err, errlen, "not a trust domain name");
        return -EINVAL;
    }
    free(cfg->trust_domain);
    cfg->trust_domain = xstrdup(v);
    return 0;
}

static int set_mtls_mode(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "STRICT") == 0)
        cfg->mtls_mode = MTLS_STRICT;
    else if (strcmp(v, "PERMISSIVE") == 0)
        cfg->mtls_mode = MTLS_PERMISSIVE;
    else {
        errbuf_set(err, errlen, "must be STRICT or PERMISSIVE");
        return -EINVAL;
    }
    return 0;
}

static int set_policy(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (authz_parse_policy(v, &cfg->authz.policy) < 0) {
        errbuf_set(err, errlen, "must be same-namespace, mesh, deny or allow-all");
        return -EINVAL;
    }
    return 0;
}

static int set_allow_from(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    return authz_parse_allow_from(v, cfg->authz.rules, &cfg->authz.nrules, err, errlen);
}

static int set_mesh_networks(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (parse_cidr_list(v, cfg->mesh_networks, &cfg->nmesh_networks) < 0) {
        errbuf_set(err, errlen, "must be a comma list of CIDRs (at most %d)", PARSE_MAX_LIST);
        return -EINVAL;
    }
    return 0;
}

/* "198.18.1.0/24=spiffe://td/ns/a/sa/b, ..." */
static int set_expect(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    cfg->nexpect = 0;
    char *copy = xstrdup(v), *next = copy;
    int r = 0;
    while (next && *next) {
        char *item = next, *comma = strchr(item, ',');
        next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        while (*item == ' ')
            item++;
        char *eq = strchr(item, '=');
        struct spiffe_id id;
        if (!eq || cfg->nexpect >= CONFIG_MAX_EXPECT) {
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        char *idtext = eq + 1;
        size_t l = strlen(idtext);
        while (l && idtext[l - 1] == ' ')
            idtext[--l] = '\0';
        struct config_expect *e = &cfg->expect[cfg->nexpect];
        if (parse_cidr(item, &e->cidr) < 0 || spiffe_parse(idtext, l, &id) < 0 || l >= sizeof e->id) {
            r = -EINVAL;
            break;
        }
        memcpy(e->id, idtext, l + 1);
        cfg->nexpect++;
    }
    free(copy);
    if (r < 0)
        errbuf_set(err, errlen, "must be a comma list of <cidr>=<spiffe id> (at most %d)", CONFIG_MAX_EXPECT);
    return r;
}

static int set_opaque_ports(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    if (parse_port_list(v, cfg->opaque_ports, &cfg->nopaque_ports) < 0) {
        errbuf_set(err, errlen, "must be a comma list of ports 1-65535 (at most %d)", PARSE_MAX_LIST);
        return -EINVAL;
    }
    return 0;
}

static int set_app_probes(struct proxy_config *cfg, const char *v, char *err, size_t errlen)
{
    probes_free(&cfg->probes);
    free(cfg->app_probes_json);
    cfg->app_probes_json = xstrdup(v);
    return probes_parse(v, strlen(v), &cfg->probes, err, errlen);
}

static int set_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out, char *err, size_t errlen)
{
    if (parse_uint(v, min, max, out) < 0) {
        errbuf_set(err, errlen, "must be an integer %lu-%lu", min, max);
        return -EINVAL;
    }
    return 0;
}

#define SET_UINT(field, min, max)                                                         \
    static int set_##field(struct proxy_config *cfg, const char *v, char *err, size_t errlen) \
    {                                                                                     \
        unsigned long x;                                                                  \
        int r = set_uint(v, min, max, &x, err, errlen);                                   \
        if (r == 0)                                                                       \
            cfg->field = (unsigned)x;                                                     \
        return r;                                                                         \
    }
SET_UINT(drain_seconds, 0, 86400)
SET_UINT(workers, 1, 64)
SET_UINT(connect_timeout_ms, 1, 600000)
SET_UINT(handshake_timeout_ms, 1, 600000)
SET_UINT(detect_timeout_ms, 1, 60000)
SET_UINT(idle_timeout_s, 1, 604800)
SET_UINT(reload_seconds, 1, 3600)
SET_UINT(max_connections, 1, 1000000)
SET_UINT(discovery_wait_ms, 0, 5000)
SET_UINT(discovery_idle_s, 1, 86400)
SET_UINT(http_request_timeout_ms, 0, 86400000)
SET_UINT(http_header_timeout_ms, 0, 86400000)
SET_UINT(http_idle_timeout_ms, 1, 86400000)
SET_UINT(http_max_head, 1024, 1048576)
SET_UINT(http_max_fields, 1, 1000)
SET_UINT(access_log, 0, 1)
SET_UINT(http_metrics_budget, 0, HTTP_METRICS_MAX_BUDGET)

#define SET_PORT(field)                                                                   \
    static int set_##field(struct proxy_config *cfg, const char *v, char *err, size_t errlen) \
    {                                                                                     \
        if (parse_port(v, &cfg->field) < 0) {                                             \
            errbuf_set(err, errlen, "must be a port 1-65535");                              \
            return -EINVAL;                                                               \
        }                                                                                 \
        return 0;                                                                         \
    }
SET_PORT(inbound_port)
SET_PORT(outbound_port)
SET_PORT(admin_port)

static const struct config_setting config_settings[] = {
    {"WEFT_POD_NAME", NULL, "", "pod name (downward API), for logs", set_pod_name},
    {"WEFT_POD_NAMESPACE", NULL, "", "pod namespace (downward API); required: same-namespace policy", set_pod_namespace},
    {"WEFT_POD_IP", NULL, "", "pod IP (downward API), for logs", set_pod_ip},
    {"WEFT_SERVICE_ACCOUNT", NULL, "", "pod service account (downward API)", set_service_account},
    {"WEFT_TRUST_DOMAIN", NULL, "cluster.local", "SPIFFE trust domain accepted from peers", set_trust_domain},
    {"WEFT_MTLS_MODE", NULL, "STRICT", "STRICT (plaintext inbound refused) or PERMISSIVE", set_mtls_mode},
    {"WEFT_INBOUND_POLICY", NULL, "same-namespace", "same-namespace | mesh | deny | allow-all", set_policy},
    {"WEFT_ALLOW_FROM", NULL, "", "comma list of ns/sa and ns/* allowed beyond the policy", set_allow_from},
    {"WEFT_MESH_NETWORKS", NULL, "", "comma list of CIDRs whose destinations are reached over mTLS", set_mesh_networks},
    {"WEFT_OUTBOUND_IDENTITIES", NULL, "", "comma list of <cidr>=<spiffe id>: server identity required there", set_expect},
    {"WEFT_DISCOVERY_ADDR", NULL, "", "host:port of weft-discovery (empty: WEFT_MESH_NETWORKS decides mTLS, policy from the environment)", set_discovery_addr},
    {"WEFT_DISCOVERY_SERVER_NAME", NULL, "weft-discovery.weft-system.svc", "name (or IP) verified on the discovery server's certificate", set_discovery_server_name},
    {"WEFT_DISCOVERY_WAIT_MS", "discovery-wait-ms", "1000", "a first connection to a destination waits this long for discovery's answer, then falls back to WEFT_MESH_NETWORKS", set_discovery_wait_ms},
    {"WEFT_DISCOVERY_IDLE_SECONDS", "discovery-idle-seconds", "600", "a destination with no new connection this long is unsubscribed", set_discovery_idle_s},
    {"WEFT_IDENTITY_ADDR", NULL, "", "host:port of weft-identity (empty: static --cert/--key)", set_identity_addr},
    {"WEFT_IDENTITY_SERVER_NAME", NULL, "weft-identity.weft-system.svc", "name verified on the identity server", set_identity_server_name},
    {"WEFT_TOKEN_FILE", NULL, "/var/run/secrets/weft/token/token", "projected service account token for identity", set_token_file},
    {"WEFT_TRUST_BUNDLE", "trust-bundle", "/etc/weft/trust/ca.crt", "PEM trust anchors (reloaded on change)", set_trust_bundle},
    {"WEFT_CERT", "cert", "", "PEM certificate chain, leaf first (reloaded on change)", set_cert},
    {"WEFT_KEY", "key", "", "PEM private key of the leaf (reloaded on change)", set_key},
    {"WEFT_APP_PROBES", NULL, "", "JSON of the app's original probes for /app-health", set_app_probes},
    {"WEFT_LOG_LEVEL", NULL, "info", "debug | info | warn | error", set_log_level},
    {"WEFT_DRAIN_SECONDS", "drain-seconds", "25", "on SIGTERM, how long open connections may finish", set_drain_seconds},
    {"WEFT_WORKERS", "workers", "1", "event loops (threads) on SO_REUSEPORT listeners", set_workers},
    {"WEFT_INBOUND_PORT", "inbound-port", "15006", "captured inbound TCP lands here", set_inbound_port},
    {"WEFT_OUTBOUND_PORT", "outbound-port", "15001", "captured outbound TCP lands here", set_outbound_port},
    {"WEFT_ADMIN_PORT", "admin-port", "15020", "admin server: /live /ready /metrics /app-health /shutdown", set_admin_port},
    {"WEFT_CONNECT_TIMEOUT_MS", "connect-timeout-ms", "5000", "upstream TCP connect timeout", set_connect_timeout_ms},
    {"WEFT_HANDSHAKE_TIMEOUT_MS", "handshake-timeout-ms", "5000", "TLS handshake timeout", set_handshake_timeout_ms},
    {"WEFT_DETECT_TIMEOUT_MS", "detect-timeout-ms", "1000", "wait this long for a client's first bytes (protocol detection; inbound PERMISSIVE: TLS or plaintext) before relaying as TCP", set_detect_timeout_ms},
    {"WEFT_OPAQUE_PORTS", "opaque-ports", DETECT_DEFAULT_OPAQUE_PORTS, "destination ports relayed as TCP without protocol detection (comma list, may be empty)", set_opaque_ports},
    {"WEFT_IDLE_TIMEOUT_SECONDS", "idle-timeout-seconds", "3600", "close a connection idle this long", set_idle_timeout_s},
    {"WEFT_RELOAD_SECONDS", "reload-seconds", "2", "how often certificate files are checked for changes", set_reload_seconds},
    {"WEFT_MAX_CONNECTIONS", "max-connections", "65536", "per worker; more are closed at accept (accept_overload_total)", set_max_connections},
    {"WEFT_HTTP_REQUEST_TIMEOUT_MS", "http-request-timeout-ms", "0", "HTTP: a request not answered completely this long after its head is answered 504 (0: no limit)", set_http_request_timeout_ms},
    {"WEFT_HTTP_RESPONSE_HEADER_TIMEOUT_MS", "http-response-header-timeout-ms", "60000", "HTTP: no response head this long after the request was sent is answered 504 (0: no limit)", set_http_header_timeout_ms},
    {"WEFT_HTTP_IDLE_TIMEOUT_MS", "http-idle-timeout-ms", "75000", "HTTP: close a keep-alive connection idle this long between requests", set_http_idle_timeout_ms},
    {"WEFT_HTTP_MAX_HEAD_BYTES", "http-max-head-bytes", "32768", "HTTP/1: a request head larger is answered 431 (a request line: 414)", set_http_max_head},
    {"WEFT_HTTP_MAX_HEADERS", "http-max-headers", "100", "HTTP/1: a request with more header fields is answered 431", set_http_max_fields},
    {"WEFT_ACCESS_LOG", "access-log", "0", "1: one JSON line per HTTP request on stderr (method, authority, path without query, status, durations, bytes, peer)", set_access_log},
    {"WEFT_HTTP_METRICS_BUDGET", "http-metrics-budget", "128", "label sets of the per-request HTTP metrics; past it requests count in overflow sets (docs/proxy.md)", set_http_metrics_budget},
};
#define NSETTINGS (sizeof config_settings / sizeof *config_settings)

void config_print_help(FILE *out)
{
    fprintf(out,
            "usage: weft-proxy [flags]                      run the sidecar proxy\n"
            "       weft-proxy wait-ready [--timeout-seconds N]  wait until :15020/ready answers 200\n\n"
            "Settings (flag > environment > --config file > default):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct config_setting *s = &config_settings[i];
        char flag[48] = "";
        if (s->flag)
            snprintf(flag, sizeof flag, "--%s", s->flag);
        fprintf(out, "  %-26s %-22s %s%s%s%s\n", s->env, flag, s->help, *s->def ? " [default: " : "", s->def,
                *s->def ? "]" : "");
    }
    fprintf(out, "  %-26s %-22s %s\n", "WEFT_CONFIG", "--config", "YAML mapping of the WEFT_* settings above");
    fprintf(out, "  %-26s %-22s %s\n", "", "--help", "this text");
}

static int config_find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (config_settings[i].flag && strlen(config_settings[i].flag) == len &&
            memcmp(config_settings[i].flag, name, len) == 0)
            return (int)i;
    return -1;
}

/* Collects the YAML file's values as strings into vals (which own them). */
static int config_read_file(const char *path, char **vals, char *err, size_t errlen)
{
    char jerr[256];
    int r = 0;
    json_t *root = yamljson_load_file(path, jerr, sizeof jerr); /* new reference */
    if (!root) {
        errbuf_set(err, errlen, "--config %s: %s", path, jerr);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        errbuf_set(err, errlen, "--config %s: must be a mapping of WEFT_* settings", path);
        r = -EINVAL;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t i;
        for (i = 0; i < NSETTINGS; i++)
            if (strcmp(config_settings[i].env, key) == 0)
                break;
        if (i == NSETTINGS) {
            errbuf_set(err, errlen, "--config %s: unknown setting %s", path, key);
            r = -EINVAL;
            goto out;
        }
        free(vals[i]);
        if (json_is_string(v))
            vals[i] = xstrdup(json_string_value(v));
        else if (json_is_integer(v))
            vals[i] = xasprintf("%lld", (long long)json_integer_value(v));
        else if (json_is_boolean(v))
            vals[i] = xstrdup(json_is_true(v) ? "true" : "false");
        else if (json_is_null(v))
            vals[i] = xstrdup("");
        else if (json_is_object(v) && strcmp(key, "WEFT_APP_PROBES") == 0)
            vals[i] = json_dumps(v, JSON_COMPACT); /* malloc'd by jansson, freed with free() */
        else {
            errbuf_set(err, errlen, "--config %s: %s must be a scalar", path, key);
            vals[i] = NULL;
            r = -EINVAL;
            goto out;
        }
    }
out:
    json_decref(root);
    return r;
}

int config_load(struct proxy_config *cfg, int argc, char **argv, config_getenv_fn *getenv_fn, void *env_ctx,
                int *help, char *err, size_t errlen)
{
    char *vals[NSETTINGS] = {0};
    const char *config_path = getenv_fn(env_ctx, "WEFT_CONFIG");
    int r = 0;
    memset(cfg, 0, sizeof *cfg);
    *help = 0;

    /* Flags first (they win), remembered by index. */
    const char *flagvals[NSETTINGS] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            errbuf_set(err, errlen, "unexpected argument \"%s\"", a);
            return -EINVAL;
        }
        const char *name = a + 2, *eq = strchr(name, '='), *val;
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            errbuf_set(err, errlen, "flag --%.*s needs a value", (int)nl, name);
            return -EINVAL;
        }
        if (nl == 6 && memcmp(name, "config", 6) == 0) {
            config_path = val;
            continue;
        }
        int idx = config_find_flag(name, nl);
        if (idx < 0) {
            errbuf_set(err, errlen, "unknown flag --%.*s (see --help)", (int)nl, name);
            return -EINVAL;
        }
        flagvals[idx] = val;
    }
    for (size_t i = 0; i < NSETTINGS; i++)
        vals[i] = xstrdup(config_settings[i].def);
    if (config_path && *config_path) {
        cfg->config_path = xstrdup(config_path);
        if ((r = config_read_file(config_path, vals, err, errlen)) < 0)
            goto out;
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *e = getenv_fn(env_ctx, config_settings[i].env);
        if (flagvals[i])
            e = flagvals[i];
        if (e) {
            free(vals[i]);
            vals[i] = xstrdup(e);
        }
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        char serr[256] = "";
        if (config_settings[i].set(cfg, vals[i], serr, sizeof serr) < 0) {
            errbuf_set(err, errlen, "%s=\"%.200s\": %s", config_settings[i].env, vals[i], serr);
            r = -EINVAL;
            goto out;
        }
    }
    enum log_level lvl;
    if (log_parse_level(cfg->log_level, &lvl) < 0) {
        errbuf_set(err, errlen, "WEFT_LOG_LEVEL=\"%.50s\": must be debug, info, warn or error", cfg->log_level);
        r = -EINVAL;
        goto out;
    }
    if (!*cfg->pod_namespace) {
        errbuf_set(err, errlen, "WEFT_POD_NAMESPACE=\"\": required (the same-namespace policy needs it)");
        r = -EINVAL;
        goto out;
    }
    if (*cfg->pod_ip) {
        unsigned char a[16];
        if (inet_pton(AF_INET, cfg->pod_ip, a) != 1 && inet_pton(AF_INET6, cfg->pod_ip, a) != 1) {
            errbuf_set(err, errlen, "WEFT_POD_IP=\"%.60s\": not an IP address", cfg->pod_ip);
            r = -EINVAL;
            goto out;
        }
    }
    if (*cfg->cert != *cfg->key && (!*cfg->cert || !*cfg->key)) {
        errbuf_set(err, errlen, "WEFT_CERT=\"%.200s\" WEFT_KEY=\"%.200s\": give both or neither", cfg->cert, cfg->key);
        r = -EINVAL;
        goto out;
    }
    if (!*cfg->cert && !*cfg->identity_addr) {
        errbuf_set(err, errlen, "WEFT_IDENTITY_ADDR=\"\": needed when no --cert/--key is given");
        r = -EINVAL;
        goto out;
    }
    uint16_t ports[3] = {cfg->inbound_port, cfg->outbound_port, cfg->admin_port};
    if (ports[0] == ports[1] || ports[0] == ports[2] || ports[1] == ports[2]) {
        errbuf_set(err, errlen, "WEFT_INBOUND_PORT=%u WEFT_OUTBOUND_PORT=%u WEFT_ADMIN_PORT=%u: must differ", ports[0],
                 ports[1], ports[2]);
        r = -EINVAL;
        goto out;
    }
    snprintf(cfg->authz.ns, sizeof cfg->authz.ns, "%s", cfg->pod_namespace);
    snprintf(cfg->authz.trust_domain, sizeof cfg->authz.trust_domain, "%s", cfg->trust_domain);
out:
    for (size_t i = 0; i < NSETTINGS; i++)
        free(vals[i]);
    if (r < 0)
        config_free(cfg);
    return r;
}

void config_free(struct proxy_config *cfg)
{
    char **strs[] = {&cfg->pod_name,      &cfg->pod_namespace, &cfg->pod_ip,       &cfg->service_account,
                     &cfg->trust_domain,  &cfg->identity_addr, &cfg->identity_server_name,
                     &cfg->token_file,    &cfg->trust_bundle,  &cfg->cert,         &cfg->key,
                     &cfg->app_probes_json, &cfg->log_level,   &cfg->config_path,
                     &cfg->discovery_addr, &cfg->discovery_server_name};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    probes_free(&cfg->probes);
}

int config_copy(struct proxy_config *dst, const struct proxy_config *src, char *err, size_t errlen)
{
    *dst = *src; /* the fixed-size parts; the owned ones follow */
    char **strs[] = {&dst->pod_name,      &dst->pod_namespace, &dst->pod_ip,       &dst->service_account,
                     &dst->trust_domain,  &dst->identity_addr, &dst->identity_server_name,
                     &dst->token_file,    &dst->trust_bundle,  &dst->cert,         &dst->key,
                     &dst->app_probes_json, &dst->log_level,   &dst->config_path,
                     &dst->discovery_addr, &dst->discovery_server_name};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        *strs[i] = *strs[i] ? xstrdup(*strs[i]) : NULL;
    memset(&dst->probes, 0, sizeof dst->probes);
    const char *pj = dst->app_probes_json ? dst->app_probes_json : "";
    if (probes_parse(pj, strlen(pj), &dst->probes, err, errlen) < 0) { /* parsed once already: cannot fail */
        config_free(dst);
        return -EINVAL;
    }
    return 0;
}

const char *config_expected_id(const struct proxy_config *cfg, int family, const void *addr)
{
    for (size_t i = 0; i < cfg->nexpect; i++)
        if (parse_cidr_contains(&cfg->expect[i].cidr, family, addr))
            return cfg->expect[i].id;
    return NULL;
}

int config_is_opaque_port(const struct proxy_config *cfg, uint16_t port)
{
    for (size_t i = 0; i < cfg->nopaque_ports; i++)
        if (cfg->opaque_ports[i] == port)
            return 1;
    return 0;
}

int config_is_meshed(const struct proxy_config *cfg, int family, const void *addr)
{
    for (size_t i = 0; i < cfg->nmesh_networks; i++)
        if (parse_cidr_contains(&cfg->mesh_networks[i], family, addr))
            return 1;
    return 0;
}
