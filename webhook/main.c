/* SPDX-License-Identifier: Apache-2.0 */
/* weft-webhook: flags, configuration loading and signal handling around the
 * HTTPS admission server. `weft-webhook check` answers one AdmissionReview
 * from stdin with the same core, for golden tests and for trying a config. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "certwatch.h"
#include "confstore.h"
#include "hostport.h"
#include "inject.h"
#include "k8s.h"
#include "log.h"
#include "nscache.h"
#include "parse.h"
#include "review.h"
#include "server.h"
#include "template.h"

#define CONFIG_CHECK_SECONDS 2 /* how often mesh.yaml and the templates are checked for changes */

struct options {
    const char *config, *templates, *tls_cert, *tls_key, *listen, *metrics_listen;
    const char *api_server, *api_ca, *api_token, *ns_annotations_file;
    unsigned threads, idle_timeout;
    int no_namespace_lookup;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weft-webhook [flags]\n"
            "       weft-webhook check --config FILE --templates DIR [--namespace-annotations FILE] < review.json\n"
            "\n"
            "Weft's mutating admission webhook: injects weft-init and weft-proxy into Pods.\n"
            "\n"
            "  --config FILE              mesh configuration (default /etc/weft/config/mesh.yaml)\n"
            "  --templates DIR            injection templates (default /etc/weft/templates)\n"
            "  --tls-cert FILE            serving certificate chain, PEM; re-read when it changes\n"
            "  --tls-key FILE             serving key, PEM; re-read when it changes\n"
            "  --listen HOST:PORT         HTTPS address (default 0.0.0.0:8443)\n"
            "  --metrics-listen HOST:PORT /metrics, /healthz, /readyz (default 0.0.0.0:9090)\n"
            "  --threads N                server threads (default 2)\n"
            "  --idle-timeout SECONDS     drop a stalled or idle connection after this (default 10)\n"
            "  --no-namespace-lookup      do not read namespace annotations from the API\n"
            "  --api-server HOST:PORT     Kubernetes API (default: in-cluster KUBERNETES_SERVICE_HOST/PORT)\n"
            "  --api-ca FILE              its CA (with --api-server)\n"
            "  --api-token FILE           bearer token file (with --api-server)\n"
            "  --namespace-annotations F  check only: JSON object of the namespace's annotations\n"
            "  --log-level LEVEL          debug, info, warn or error (default info)\n"
            "  --help, --version\n");
}

static int parse_flags(int argc, char **argv, struct options *o)
{
    enum { F_CONFIG = 256, F_TEMPLATES, F_CERT, F_KEY, F_LISTEN, F_METRICS, F_THREADS, F_IDLE, F_NOLOOKUP, F_API,
           F_API_CA, F_API_TOKEN, F_NS_ANN, F_LOG, F_HELP, F_VERSION };
    static const struct option flags[] = {
        {"config", required_argument, NULL, F_CONFIG},
        {"templates", required_argument, NULL, F_TEMPLATES},
        {"tls-cert", required_argument, NULL, F_CERT},
        {"tls-key", required_argument, NULL, F_KEY},
        {"listen", required_argument, NULL, F_LISTEN},
        {"metrics-listen", required_argument, NULL, F_METRICS},
        {"threads", required_argument, NULL, F_THREADS},
        {"idle-timeout", required_argument, NULL, F_IDLE},
        {"no-namespace-lookup", no_argument, NULL, F_NOLOOKUP},
        {"api-server", required_argument, NULL, F_API},
        {"api-ca", required_argument, NULL, F_API_CA},
        {"api-token", required_argument, NULL, F_API_TOKEN},
        {"namespace-annotations", required_argument, NULL, F_NS_ANN},
        {"log-level", required_argument, NULL, F_LOG},
        {"help", no_argument, NULL, F_HELP},
        {"version", no_argument, NULL, F_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    unsigned long v;
    enum log_level level;
    while ((c = getopt_long(argc, argv, "", flags, NULL)) != -1) {
        switch (c) {
        case F_CONFIG: o->config = optarg; break;
        case F_TEMPLATES: o->templates = optarg; break;
        case F_CERT: o->tls_cert = optarg; break;
        case F_KEY: o->tls_key = optarg; break;
        case F_LISTEN: o->listen = optarg; break;
        case F_METRICS: o->metrics_listen = optarg; break;
        case F_NOLOOKUP: o->no_namespace_lookup = 1; break;
        case F_API: o->api_server = optarg; break;
        case F_API_CA: o->api_ca = optarg; break;
        case F_API_TOKEN: o->api_token = optarg; break;
        case F_NS_ANN: o->ns_annotations_file = optarg; break;
        case F_THREADS:
            if (parse_uint(optarg, 1, 64, &v) < 0) {
                fprintf(stderr, "weft-webhook: --threads \"%s\": expected 1-64\n", optarg);
                return -EINVAL;
            }
            o->threads = (unsigned)v;
            break;
        case F_IDLE:
            if (parse_uint(optarg, 1, 3600, &v) < 0) {
                fprintf(stderr, "weft-webhook: --idle-timeout \"%s\": expected 1-3600 seconds\n", optarg);
                return -EINVAL;
            }
            o->idle_timeout = (unsigned)v;
            break;
        case F_LOG:
            if (log_parse_level(optarg, &level) < 0) {
                fprintf(stderr, "weft-webhook: --log-level \"%s\": expected debug, info, warn or error\n", optarg);
                return -EINVAL;
            }
            log_set_level(level);
            break;
        case F_HELP: usage(stdout); exit(0);
        case F_VERSION: printf("weft-webhook %s\n", WEFT_VERSION); exit(0);
        default: usage(stderr); return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weft-webhook: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* The check subcommand's lookup: annotations from a file, like the API would give. */
static int file_lookup(void *ctx, const char *ns, json_t **annotations, char *err, size_t errlen)
{
    (void)ns, (void)err, (void)errlen;
    *annotations = json_incref(ctx);
    return 0;
}

static int run_check(const struct options *o)
{
    struct conf conf;
    json_t *ns_ann = NULL;
    char err[1024];
    int rc = 2;
    if (conf_load(o->config, o->templates, &conf, err, sizeof err) < 0) {
        fprintf(stderr, "weft-webhook: %s\n", err);
        return 2;
    }
    if (o->ns_annotations_file) {
        json_error_t jerr;
        ns_ann = json_load_file(o->ns_annotations_file, 0, &jerr);
        if (!json_is_object(ns_ann)) {
            fprintf(stderr, "weft-webhook: %s: not a JSON object of annotations\n", o->ns_annotations_file);
            goto out;
        }
    }
    struct buf in;
    buf_init(&in, REVIEW_MAX_BODY);
    int read = buf_read_file(&in, "-");
    if (read < 0) {
        fprintf(stderr, "weft-webhook: stdin: %s\n", read == -E2BIG ? "larger than 4 MiB" : strerror(-read));
        buf_free(&in);
        goto out;
    }
    struct review_result r;
    review_handle(&conf.inject, in.data ? in.data : "", in.len, file_lookup, ns_ann, &r);
    printf("%s\n", r.body);
    free(r.body);
    buf_free(&in);
    rc = r.http_status == 200 ? 0 : 1;
out:
    json_decref(ns_ann);
    conf_free(&conf);
    return rc;
}

/* The namespace annotation source: 0 with *out set (NULL when annotations
 * are not read), or -EINVAL after saying why. */
static int namespace_lookup(const struct options *o, struct nscache **out)
{
    char err[512];
    struct k8s_client *client = NULL;
    *out = NULL;
    if (o->no_namespace_lookup) {
        log_info("namespace annotations are not read", "reason=--no-namespace-lookup");
        return 0;
    }
    if (o->api_server) {
        char host[256], port[8];
        if (hostport_split(o->api_server, host, sizeof host, port, sizeof port) < 0 || !*host) {
            fprintf(stderr, "weft-webhook: --api-server \"%s\": expected host:port\n", o->api_server);
            return -EINVAL;
        }
        client = k8s_client_new(host, port, o->api_ca, o->api_token, err, sizeof err);
    } else if (!getenv("KUBERNETES_SERVICE_HOST")) {
        log_info("namespace annotations are not read", "reason=\"not in a cluster (no KUBERNETES_SERVICE_HOST)\"");
        return 0;
    } else {
        client = k8s_client_in_cluster(err, sizeof err);
    }
    if (!client) {
        fprintf(stderr, "weft-webhook: Kubernetes API client: %s\n", err);
        return -EINVAL;
    }
    *out = nscache_new(client);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {
        .config = "/etc/weft/config/mesh.yaml",
        .templates = "/etc/weft/templates",
        .listen = "0.0.0.0:8443",
        .metrics_listen = "0.0.0.0:9090",
        .threads = 2,
        .idle_timeout = 10,
    };
    int check = argc > 1 && strcmp(argv[1], "check") == 0;
    if (parse_flags(argc - check, argv + check, &o) < 0)
        return 2;
    if (check)
        return run_check(&o);
    if (!o.tls_cert || !o.tls_key) {
        fprintf(stderr, "weft-webhook: --tls-cert and --tls-key are required\n");
        return 2;
    }

    struct confstore *configs;
    struct nscache *cache = NULL;
    struct server *s = NULL;
    char err[1024];
    int rc = 2;
    if (!(configs = confstore_new(o.config, o.templates, err, sizeof err))) {
        fprintf(stderr, "weft-webhook: %s\n", err);
        return 2;
    }
    if (certwatch_init(o.tls_cert, o.tls_key, err, sizeof err) < 0) {
        fprintf(stderr, "weft-webhook: %s\n", err);
        goto out;
    }
    if (namespace_lookup(&o, &cache) < 0)
        goto out;

    /* Signals are taken by sigwait below, never by a server thread. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server_options so = {o.listen, o.metrics_listen, o.threads, o.idle_timeout, configs,
                                cache ? nscache_lookup : NULL, cache};
    if (!(s = server_start(&so, err, sizeof err))) {
        fprintf(stderr, "weft-webhook: %s\n", err);
        rc = 1;
        goto out;
    }
    const struct conf *conf = confstore_get(configs);
    log_info("weft-webhook started", "version=%s port=%u metrics_port=%u templates=%s template_version=%s",
             WEFT_VERSION, server_port(s), server_metrics_port(s), o.templates, conf->templates.version);
    confstore_put(configs, conf);
    /* Between signals, look for a changed mesh.yaml or template. */
    int sig = 0;
    const struct timespec period = {CONFIG_CHECK_SECONDS, 0};
    while ((sig = sigtimedwait(&stop, NULL, &period)) < 0) {
        int changed = confstore_refresh(configs, err, sizeof err);
        if (changed < 0)
            log_error("configuration not reloaded, keeping the previous one", "error=\"%s\"", err);
        if (changed > 0) {
            conf = confstore_get(configs);
            log_info("configuration reloaded", "template_version=%s", conf->templates.version);
            confstore_put(configs, conf);
        }
        if (changed)
            server_count_reload(changed > 0);
    }
    log_info("weft-webhook stopping", "signal=%d", sig);
    rc = 0;
out:
    server_stop(s);
    nscache_free(cache);
    certwatch_shutdown();
    confstore_free(configs);
    return rc;
}
