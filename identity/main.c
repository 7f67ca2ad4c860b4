/* SPDX-License-Identifier: Apache-2.0 */
/* weft-identity: the mesh's certificate authority. Reads flags, checks them,
 * and hands over to the server (server.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parse.h"
#include "server.h"
#include "spiffe.h"

static const char usage[] =
    "Usage: weft-identity [flags]\n"
    "\n"
    "Issues short-lived SPIFFE certificates (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) to\n"
    "workloads that prove their Kubernetes service account with a projected token\n"
    "(TokenReview). POST /v1/certificates on the HTTPS port; /metrics, /healthz and\n"
    "/readyz on the metrics port. The issuer and serving certificate files are re-read\n"
    "when they change (checked every --reload-interval, and on SIGHUP).\n"
    "\n"
    "Flags:\n"
    "  --listen ADDR            HTTPS address, host:port, [v6]:port or :port (default :8444)\n"
    "  --metrics-listen ADDR    metrics address (default :9090)\n"
    "  --tls-cert FILE          serving certificate chain, PEM (required)\n"
    "  --tls-key FILE           serving private key, PEM (required)\n"
    "  --issuer-cert FILE       issuer (intermediate CA) certificate, then any further\n"
    "                           intermediates, PEM (required)\n"
    "  --issuer-key FILE        issuer private key, PEM, unencrypted (required)\n"
    "  --trust-bundle FILE      trust anchors; when given, the issuer must chain to them\n"
    "  --trust-domain NAME      SPIFFE trust domain (default cluster.local)\n"
    "  --audience NAME          audience the token must carry (default weft-identity)\n"
    "  --cert-ttl DURATION      certificate lifetime, at most 7d (default 24h); requests\n"
    "                           may ask for less with ttlSeconds\n"
    "  --clock-skew DURATION    notBefore is this much before now, at most 10m (default 60s)\n"
    "  --reload-interval DUR    how often to check the certificate files (default 10s)\n"
    "  --kube-api HOST:PORT     API server (default: in-cluster service account)\n"
    "  --kube-ca FILE           CA of the API server (with --kube-api)\n"
    "  --kube-token FILE        bearer token file for the API server (with --kube-api)\n"
    "  --kube-timeout DURATION  TokenReview timeout (default 5s)\n"
    "  --max-connections N      concurrent HTTPS connections (default 1000)\n"
    "  --publish-namespaces SEL copy --trust-bundle into ConfigMap weft-trust-bundle of\n"
    "                           every namespace matching label selector SEL (injected\n"
    "                           pods mount it); kept current when the bundle changes\n"
    "  --publish-interval DUR   how often to look for namespaces and changes (default 10s)\n"
    "  --log-level LEVEL        debug, info, warn or error (default info)\n"
    "  --help                   this text\n"
    "  --version                the version\n"
    "\n"
    "Durations: 90 or 90s, 30m, 24h, 7d.\n";

enum {
    OPT_LISTEN = 256,
    OPT_METRICS_LISTEN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_ISSUER_CERT,
    OPT_ISSUER_KEY,
    OPT_TRUST_BUNDLE,
    OPT_TRUST_DOMAIN,
    OPT_AUDIENCE,
    OPT_CERT_TTL,
    OPT_CLOCK_SKEW,
    OPT_RELOAD_INTERVAL,
    OPT_KUBE_API,
    OPT_KUBE_CA,
    OPT_KUBE_TOKEN,
    OPT_KUBE_TIMEOUT,
    OPT_MAX_CONNECTIONS,
    OPT_PUBLISH_NAMESPACES,
    OPT_PUBLISH_INTERVAL,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"issuer-cert", required_argument, NULL, OPT_ISSUER_CERT},
    {"issuer-key", required_argument, NULL, OPT_ISSUER_KEY},
    {"trust-bundle", required_argument, NULL, OPT_TRUST_BUNDLE},
    {"trust-domain", required_argument, NULL, OPT_TRUST_DOMAIN},
    {"audience", required_argument, NULL, OPT_AUDIENCE},
    {"cert-ttl", required_argument, NULL, OPT_CERT_TTL},
    {"clock-skew", required_argument, NULL, OPT_CLOCK_SKEW},
    {"reload-interval", required_argument, NULL, OPT_RELOAD_INTERVAL},
    {"kube-api", required_argument, NULL, OPT_KUBE_API},
    {"kube-ca", required_argument, NULL, OPT_KUBE_CA},
    {"kube-token", required_argument, NULL, OPT_KUBE_TOKEN},
    {"kube-timeout", required_argument, NULL, OPT_KUBE_TIMEOUT},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"publish-namespaces", required_argument, NULL, OPT_PUBLISH_NAMESPACES},
    {"publish-interval", required_argument, NULL, OPT_PUBLISH_INTERVAL},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int bad(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "weft-identity: --%s %s: %s (see --help)\n", flag, value, why);
    return 2;
}

static int duration(const char *flag, const char *value, long min, long max, long *out)
{
    if (ident_parse_duration(value, out) < 0)
        return bad(flag, value, "not a duration (90s, 30m, 24h, 7d)");
    if (*out < min || *out > max) {
        char why[96];
        snprintf(why, sizeof why, "must be from %lds to %lds", min, max);
        return bad(flag, value, why);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct ident_server_config cfg = {
        .listen = ":8444",
        .metrics_listen = ":9090",
        .kube_timeout = 5,
        .reload_interval = 10,
        .max_connections = 1000,
        .publish_interval = 10,
        .core = {.trust_domain = "cluster.local", .audience = "weft-identity", .ttl = IDENT_DEFAULT_TTL,
                 .backdate = IDENT_DEFAULT_BACKDATE},
    };
    int c, rc;
    unsigned long n;
    enum log_level level;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        const char *name = c >= OPT_LISTEN && c <= OPT_VERSION ? options[c - OPT_LISTEN].name : "?";
        switch (c) {
        case OPT_LISTEN: cfg.listen = optarg; break;
        case OPT_METRICS_LISTEN: cfg.metrics_listen = optarg; break;
        case OPT_TLS_CERT: cfg.tls_cert = optarg; break;
        case OPT_TLS_KEY: cfg.tls_key = optarg; break;
        case OPT_ISSUER_CERT: cfg.issuer_cert = optarg; break;
        case OPT_ISSUER_KEY: cfg.issuer_key = optarg; break;
        case OPT_TRUST_BUNDLE: cfg.trust_bundle = optarg; break;
        case OPT_TRUST_DOMAIN:
            if (!spiffe_valid_trust_domain(optarg, strlen(optarg)))
                return bad(name, optarg, "not a trust domain (lower-case DNS-like name)");
            cfg.core.trust_domain = optarg;
            break;
        case OPT_AUDIENCE:
            if (!*optarg)
                return bad(name, optarg, "empty");
            cfg.core.audience = optarg;
            break;
        case OPT_CERT_TTL:
            if ((rc = duration(name, optarg, 1, IDENT_MAX_TTL, &cfg.core.ttl)))
                return rc;
            break;
        case OPT_CLOCK_SKEW:
            if ((rc = duration(name, optarg, 0, IDENT_MAX_BACKDATE, &cfg.core.backdate)))
                return rc;
            break;
        case OPT_RELOAD_INTERVAL:
            if ((rc = duration(name, optarg, 1, 3600, &cfg.reload_interval)))
                return rc;
            break;
        case OPT_KUBE_API: cfg.kube_api = optarg; break;
        case OPT_KUBE_CA: cfg.kube_ca = optarg; break;
        case OPT_KUBE_TOKEN: cfg.kube_token = optarg; break;
        case OPT_KUBE_TIMEOUT:
            if ((rc = duration(name, optarg, 1, 60, &cfg.kube_timeout)))
                return rc;
            break;
        case OPT_MAX_CONNECTIONS:
            if (parse_uint(optarg, 1, 100000, &n) < 0)
                return bad(name, optarg, "must be a number from 1 to 100000");
            cfg.max_connections = (unsigned)n;
            break;
        case OPT_PUBLISH_NAMESPACES:
            if (!*optarg || strlen(optarg) > 1024)
                return bad(name, optarg, "must be a label selector of 1 to 1024 characters");
            cfg.publish_selector = optarg;
            break;
        case OPT_PUBLISH_INTERVAL:
            if ((rc = duration(name, optarg, 1, 3600, &cfg.publish_interval)))
                return rc;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(optarg, &level) < 0)
                return bad(name, optarg, "must be debug, info, warn or error");
            log_set_level(level);
            break;
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("weft-identity %s\n", WEFT_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weft-identity: unexpected argument %s (see --help)\n", argv[optind]);
        return 2;
    }
    const char *missing = !cfg.tls_cert      ? "--tls-cert"
                          : !cfg.tls_key     ? "--tls-key"
                          : !cfg.issuer_cert ? "--issuer-cert"
                          : !cfg.issuer_key  ? "--issuer-key"
                                             : NULL;
    if (missing) {
        fprintf(stderr, "weft-identity: %s is required (see --help)\n", missing);
        return 2;
    }
    if (cfg.kube_api && !cfg.kube_ca) {
        fprintf(stderr, "weft-identity: --kube-api needs --kube-ca (see --help)\n");
        return 2;
    }
    if (!cfg.kube_api && (cfg.kube_ca || cfg.kube_token)) {
        fprintf(stderr, "weft-identity: --kube-ca and --kube-token go with --kube-api (see --help)\n");
        return 2;
    }
    if (cfg.publish_selector && !cfg.trust_bundle) {
        fprintf(stderr, "weft-identity: --publish-namespaces needs --trust-bundle (see --help)\n");
        return 2;
    }
    return ident_server_run(&cfg);
}
