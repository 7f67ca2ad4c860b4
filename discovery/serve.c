/* SPDX-License-Identifier: Apache-2.0 */
/* weft-discovery serve; see serve.h. One ae loop thread owns the store, the
 * source's application of events and the proxy server; the metrics server
 * (libmicrohttpd, its own thread) reads only atomics. */
#include "serve.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ae.h"
#include "errbuf.h"
#include "hostport.h"
#include "k8s.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"
#include "settings.h"
#include "source.h"
#include "spiffe.h"
#include "xalloc.h"
#include "yamljson.h"

struct serve {
    struct ae_loop *loop;
    struct server *server;
    struct source *source;
    struct k8s_client *client;
    struct MHD_Daemon *metrics;
    atomic_long objects[REDUCE_KINDS];
};

static volatile sig_atomic_t serve_stopping;
static struct ae_loop *serve_loop;

static void serve_on_signal(int sig)
{
    (void)sig;
    serve_stopping = 1;
    if (serve_loop)
        ae_wakeup(serve_loop);
}

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: weft-discovery serve --trust-domain TD --cert FILE --key FILE --trust-bundle FILE\n"
            "                            (--objects DIR | --kubernetes) [options]\n"
            "\n"
            "Streams each proxy what it may know of the cluster (docs/discovery.md).\n"
            "\n"
            "  --objects DIR              read the Kubernetes objects from manifests in DIR, re-read on change\n"
            "  --kubernetes               list and watch them on the API server (in-cluster service account)\n"
            "  --api-server HOST:PORT     with --kubernetes: this API server instead, with --api-ca and --api-token\n"
            "  --api-ca FILE, --api-token FILE\n"
            "  --no-gateway-api           do not watch HTTPRoutes, GRPCRoutes and ReferenceGrants at all\n"
            "  --crd-recheck-ms N         list a Gateway API resource whose CRD is not installed again after\n"
            "                             this long, jittered by a quarter (default 30000, 100-3600000)\n"
            "  --trust-domain TD          the SPIFFE trust domain clients must belong to\n"
            "  --cert FILE, --key FILE    the server's certificate chain and key (PEM), re-read when they change\n"
            "  --trust-bundle FILE        CAs a proxy's certificate must chain to\n"
            "  --config FILE              mesh configuration, for the policy defaults (default /etc/weft/config/mesh.yaml)\n"
            "  --listen ADDR:PORT         proxy-facing TLS (default [::]:8445)\n"
            "  --metrics-listen ADDR:PORT /metrics, /healthz, /readyz over plain HTTP (default [::]:9090)\n"
            "  --max-subscriptions N      per proxy stream (default 1000)\n"
            "  --max-message-bytes N      one proxy message (default 16384)\n"
            "  --max-connections N        (default 4096)\n"
            "  --ping-interval-ms N       PING a connection quiet for this long (default 30000, 100-3600000)\n"
            "  --ping-timeout-ms N        close it when the PING's ACK is this late (default 10000, 100-600000)\n"
            "  --log-level LEVEL          debug, info, warn, error\n");
}

struct serve_opts {
    const char *objects, *api_server, *api_ca, *api_token, *trust_domain, *cert, *key, *bundle, *config;
    const char *listen, *metrics_listen;
    int kubernetes, routes;
    long max_subs, max_msg, max_conns, ping_interval, ping_timeout, crd_recheck;
};

static int serve_num(const char *flag, const char *v, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || !end || *end || n < min || n > max) {
        fprintf(stderr, "weft-discovery: %s \"%s\": expected an integer %ld-%ld\n", flag, v, min, max);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

static int serve_flags(int argc, char **argv, struct serve_opts *o)
{
    enum { F_OBJECTS = 256, F_K8S, F_API, F_API_CA, F_API_TOKEN, F_NO_ROUTES, F_TD, F_CERT, F_KEY, F_BUNDLE,
           F_CONFIG, F_LISTEN, F_METRICS, F_SUBS, F_MSG, F_CONNS, F_PING, F_PING_TIMEOUT, F_CRD_RECHECK, F_LOG,
           F_HELP };
    static const struct option flags[] = {
        {"objects", required_argument, NULL, F_OBJECTS}, {"kubernetes", no_argument, NULL, F_K8S},
        {"api-server", required_argument, NULL, F_API}, {"api-ca", required_argument, NULL, F_API_CA},
        {"api-token", required_argument, NULL, F_API_TOKEN}, {"no-gateway-api", no_argument, NULL, F_NO_ROUTES},
        {"trust-domain", required_argument, NULL, F_TD}, {"cert", required_argument, NULL, F_CERT},
        {"key", required_argument, NULL, F_KEY}, {"trust-bundle", required_argument, NULL, F_BUNDLE},
        {"config", required_argument, NULL, F_CONFIG}, {"listen", required_argument, NULL, F_LISTEN},
        {"metrics-listen", required_argument, NULL, F_METRICS},
        {"max-subscriptions", required_argument, NULL, F_SUBS},
        {"max-message-bytes", required_argument, NULL, F_MSG},
        {"max-connections", required_argument, NULL, F_CONNS}, {"log-level", required_argument, NULL, F_LOG},
        {"ping-interval-ms", required_argument, NULL, F_PING},
        {"ping-timeout-ms", required_argument, NULL, F_PING_TIMEOUT},
        {"crd-recheck-ms", required_argument, NULL, F_CRD_RECHECK},
        {"help", no_argument, NULL, F_HELP}, {NULL, 0, NULL, 0},
    };
    int c;
    enum log_level lvl;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", flags, NULL)) != -1) {
        switch (c) {
        case F_OBJECTS: o->objects = optarg; break;
        case F_K8S: o->kubernetes = 1; break;
        case F_API: o->api_server = optarg; break;
        case F_API_CA: o->api_ca = optarg; break;
        case F_API_TOKEN: o->api_token = optarg; break;
        case F_NO_ROUTES: o->routes = 0; break;
        case F_TD: o->trust_domain = optarg; break;
        case F_CERT: o->cert = optarg; break;
        case F_KEY: o->key = optarg; break;
        case F_BUNDLE: o->bundle = optarg; break;
        case F_CONFIG: o->config = optarg; break;
        case F_LISTEN: o->listen = optarg; break;
        case F_METRICS: o->metrics_listen = optarg; break;
        case F_SUBS: if (serve_num("--max-subscriptions", optarg, 1, 1000000, &o->max_subs) < 0) return -EINVAL; break;
        case F_MSG: if (serve_num("--max-message-bytes", optarg, 64, 1 << 24, &o->max_msg) < 0) return -EINVAL; break;
        case F_CONNS: if (serve_num("--max-connections", optarg, 1, 60000, &o->max_conns) < 0) return -EINVAL; break;
        case F_PING:
            if (serve_num("--ping-interval-ms", optarg, 100, 3600000, &o->ping_interval) < 0)
                return -EINVAL;
            break;
        case F_PING_TIMEOUT:
            if (serve_num("--ping-timeout-ms", optarg, 100, 600000, &o->ping_timeout) < 0)
                return -EINVAL;
            break;
        case F_CRD_RECHECK:
            if (serve_num("--crd-recheck-ms", optarg, 100, 3600000, &o->crd_recheck) < 0)
                return -EINVAL;
            break;
        case F_LOG:
            if (log_parse_level(optarg, &lvl) < 0) {
                fprintf(stderr, "weft-discovery: --log-level \"%s\": expected debug, info, warn or error\n", optarg);
                return -EINVAL;
            }
            log_set_level(lvl);
            break;
        case F_HELP: serve_usage(stdout); exit(0);
        default: serve_usage(stderr); return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weft-discovery: serve: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    const char *missing = !o->trust_domain ? "--trust-domain" : !o->cert ? "--cert" : !o->key ? "--key"
                          : !o->bundle ? "--trust-bundle" : NULL;
    if (missing) {
        fprintf(stderr, "weft-discovery: serve: %s is required\n", missing);
        return -EINVAL;
    }
    if (!spiffe_valid_trust_domain(o->trust_domain, strlen(o->trust_domain))) {
        fprintf(stderr, "weft-discovery: --trust-domain \"%s\": not a trust domain name\n", o->trust_domain);
        return -EINVAL;
    }
    if (!!o->objects == !!o->kubernetes) {
        fprintf(stderr, "weft-discovery: serve: exactly one of --objects DIR and --kubernetes is required\n");
        return -EINVAL;
    }
    if (o->api_server && !(o->api_ca && o->kubernetes)) {
        fprintf(stderr, "weft-discovery: --api-server needs --kubernetes and --api-ca\n");
        return -EINVAL;
    }
    return 0;
}

static enum MHD_Result serve_respond(struct MHD_Connection *conn, unsigned code, const char *type, const char *body,
                                     size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result serve_on_metrics(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                        const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload, (void)upload_size, (void)con_cls;
    struct serve *sv = cls;
    if (strcmp(method, "GET") != 0)
        return serve_respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "use GET\n", 8);
    if (strcmp(url, "/healthz") == 0)
        return serve_respond(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    if (strcmp(url, "/readyz") == 0) {
        if (source_ready(sv->source))
            return serve_respond(conn, MHD_HTTP_OK, "text/plain", "ready\n", 6);
        return serve_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "not every resource listed yet\n", 30);
    }
    if (strcmp(url, "/metrics") != 0)
        return serve_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10);
    struct server_metrics *m = server_metrics(sv->server);
    struct buf out;
    buf_init(&out, 1 << 20);
    metrics_header(&out, "weft_discovery_connections", "gauge", "TLS connections from proxies, HTTP/2 up.");
    metrics_gauge(&out, "weft_discovery_connections", "", (double)atomic_load(&m->connections));
    metrics_header(&out, "weft_discovery_streams", "gauge", "Proxies connected: open /v1/stream streams.");
    metrics_gauge(&out, "weft_discovery_streams", "", (double)atomic_load(&m->streams));
    metrics_header(&out, "weft_discovery_subscriptions", "gauge", "Subscriptions of all streams.");
    metrics_gauge(&out, "weft_discovery_subscriptions", "", (double)atomic_load(&m->subscriptions));
    metrics_counters(&out, "weft_discovery_connections_accepted_total", "TCP connections accepted.", &m->accepted, 1);
    metrics_counters(&out, "weft_discovery_connections_over_limit_total",
                     "Connections closed at once because --max-connections were open.", &m->over_limit, 1);
    metrics_counters(&out, "weft_discovery_tls_failures_total", "Connections refused before HTTP/2, by reason.",
                     m->tls_fail, SERVER_TLS_FAILS);
    metrics_counters(&out, "weft_discovery_refusals_total",
                     "Proxy messages and requests refused with an error, by reason.", m->refused, SERVER_REFUSALS);
    metrics_counters(&out, "weft_discovery_pushes_total", "Answers sent on streams (first answers and changes).",
                     &m->pushes, 1);
    metrics_counters(&out, "weft_discovery_acks_total", "Acknowledgements received.", &m->acks, 1);
    metrics_counters(&out, "weft_discovery_acks_stale_total",
                     "Acknowledgements of a version older than the last sent, or repeated.", &m->acks_stale, 1);
    metrics_counters(&out, "weft_discovery_nacks_total", "Answers proxies rejected (they keep their last good one).",
                     &m->nacks, 1);
    metrics_counters(&out, "weft_discovery_oneshot_requests_total", "GET /v1/answer requests.", &m->oneshot, 1);
    metrics_counters(&out, "weft_discovery_answers_computed_total",
                     "Answers computed: once per distinct subscription, again when a change touches what it read.",
                     &m->computed, 1);
    metrics_counters(&out, "weft_discovery_pings_total", "HTTP/2 PINGs sent to connections quiet for the interval.",
                     &m->pings, 1);
    metrics_counters(&out, "weft_discovery_ping_timeouts_total",
                     "Connections closed because a PING's ACK did not come within the timeout.", &m->ping_timeouts, 1);
    metrics_histogram_render(&out, "weft_discovery_push_latency_seconds",
                             "From receipt of a change to its answer queued for the proxy.", &m->push_latency);
    metrics_histogram_render(&out, "weft_discovery_ack_latency_seconds",
                             "From an answer queued to the proxy's acknowledgement of it.", &m->ack_latency);
    metrics_header(&out, "weft_discovery_store_objects", "gauge", "Objects in the store, by kind.");
    for (int k = 0; k < REDUCE_KINDS; k++) {
        char labels[64];
        snprintf(labels, sizeof labels, "kind=\"%s\"", reduce_kind_name((enum reduce_kind)k));
        metrics_gauge(&out, "weft_discovery_store_objects", labels, (double)atomic_load(&sv->objects[k]));
    }
    source_metrics(sv->source, &out);
    enum MHD_Result rc = serve_respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", out.data ? out.data : "",
                                       out.len);
    buf_free(&out);
    return rc;
}

static void serve_count_objects(struct serve *sv, struct store *store)
{
    for (int k = 0; k < REDUCE_KINDS; k++)
        atomic_store(&sv->objects[k], (long)json_object_size(store_objects(store, (enum reduce_kind)k)));
}

static void serve_changed(void *arg, struct store *store, uint64_t received_ns)
{
    struct serve *sv = arg;
    serve_count_objects(sv, store);
    if (sv->server)
        server_store_changed(sv->server, store, received_ns);
}

static void serve_wakeup(struct ae_loop *loop, void *data)
{
    struct serve *sv = data;
    if (serve_stopping) {
        ae_stop(loop);
        return;
    }
    source_drain(sv->source);
}

static struct MHD_Daemon *serve_metrics_start(struct serve *sv, const char *spec, char *err, size_t errlen)
{
    char host[256], port[8];
    if (hostport_split(spec, host, sizeof host, port, sizeof port) < 0) {
        errbuf_set(err, errlen, "--metrics-listen \"%s\": expected HOST:PORT or [IPv6]:PORT", spec);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &ai) != 0) {
        errbuf_set(err, errlen, "--metrics-listen \"%s\": not a numeric address", spec);
        return NULL;
    }
    int fd = listen_addr(ai->ai_addr, ai->ai_addrlen, 0, 64);
    freeaddrinfo(ai);
    if (fd < 0) {
        errbuf_set(err, errlen, "listen on %s: %s", spec, strerror(-fd));
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                            serve_on_metrics, sv, MHD_OPTION_LISTEN_SOCKET, fd,
                                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT, 64u,
                                            MHD_OPTION_END);
    if (!d) {
        close(fd);
        errbuf_set(err, errlen, "cannot start the metrics server on %s", spec);
    }
    return d;
}

int serve_main(int argc, char **argv)
{
    struct serve_opts o = {.routes = 1, .listen = "[::]:8445", .metrics_listen = "[::]:9090", .max_subs = 1000,
                           .max_msg = PROTO_MAX_MESSAGE, .max_conns = 4096,
                           .ping_interval = 30000, .ping_timeout = 10000, .crd_recheck = 30000};
    struct serve sv;
    char err[1024], host[256], port[8];
    json_t *mesh = NULL, *values = NULL;
    int rc = 2;
    memset(&sv, 0, sizeof sv);
    if (serve_flags(argc, argv, &o) < 0)
        return 2;
    if (hostport_split(o.listen, host, sizeof host, port, sizeof port) < 0) {
        fprintf(stderr, "weft-discovery: --listen \"%s\": expected HOST:PORT or [IPv6]:PORT\n", o.listen);
        return 2;
    }
    const char *config = o.config ? o.config : "/etc/weft/config/mesh.yaml";
    if (!(mesh = yamljson_load_file(config, err, sizeof err)) || !(values = settings_from_mesh(mesh, err, sizeof err))) {
        fprintf(stderr, "weft-discovery: %s\n", err);
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    /* One malloc arena: the watch threads allocate the objects the loop
     * thread frees, and an arena per thread kept about 20 MiB more resident
     * with 500 streams (bench/RESULTS.md); the threads mostly wait on their
     * sockets, so sharing the lock costs nothing measurable. */
    mallopt(M_ARENA_MAX, 1);
    /* No fastbins: freeing a listed page's tree (thousands of small chunks)
     * filled them, and the next request of 1 KiB or more (the next page's
     * buffer, a hashtable's growth) consolidated them all: 30 % of the list
     * phase's samples were glibc's _int_malloc, malloc_consolidate and
     * unlink_chunk. tcache still serves small sizes. Measured: ready against
     * the real kube-apiserver 3.36 -> 2.38 s (bench/RESULTS.md). */
    mallopt(M_MXFAST, 0);
    sv.loop = ae_loop_new((int)o.max_conns + 64);
    if (!sv.loop) {
        fprintf(stderr, "weft-discovery: cannot create the event loop\n");
        goto out;
    }
    if (o.objects) {
        sv.source = source_dir_new(sv.loop, o.objects, serve_changed, &sv, err, sizeof err);
        if (!sv.source) {
            fprintf(stderr, "weft-discovery: %s\n", err);
            goto out;
        }
    } else {
        if (o.api_server) {
            char ahost[256], aport[8];
            if (hostport_split(o.api_server, ahost, sizeof ahost, aport, sizeof aport) < 0) {
                fprintf(stderr, "weft-discovery: --api-server \"%s\": expected HOST:PORT\n", o.api_server);
                goto out;
            }
            sv.client = k8s_client_new(ahost, aport, o.api_ca, o.api_token, err, sizeof err);
        } else {
            sv.client = k8s_client_in_cluster(err, sizeof err);
        }
        if (!sv.client) {
            fprintf(stderr, "weft-discovery: %s\n", err);
            goto out;
        }
    }
    struct server_opts so = {.addr = *host ? host : "::", .port = port, .cert = o.cert, .key = o.key,
                             .trust_bundle = o.bundle, .trust_domain = o.trust_domain, .mesh_values = values,
                             .max_subscriptions = (size_t)o.max_subs, .max_message = (size_t)o.max_msg,
                             .max_connections = (size_t)o.max_conns, .max_pending = 8u << 20,
                             .handshake_ms = 10000, .coalesce_ms = 20, .ping_interval_ms = (int)o.ping_interval,
                             .ping_timeout_ms = (int)o.ping_timeout};
    if (!sv.source)
        sv.source = source_k8s_new(sv.loop, sv.client, o.routes, (int)o.crd_recheck, serve_changed, &sv);
    sv.server = server_new(sv.loop, &so, source_store(sv.source), err, sizeof err);
    if (!sv.server) {
        fprintf(stderr, "weft-discovery: %s\n", err);
        goto out;
    }
    serve_count_objects(&sv, source_store(sv.source));
    if (!(sv.metrics = serve_metrics_start(&sv, o.metrics_listen, err, sizeof err))) {
        fprintf(stderr, "weft-discovery: %s\n", err);
        goto out;
    }
    serve_loop = sv.loop;
    ae_set_wakeup(sv.loop, serve_wakeup, &sv);
    struct sigaction sa = {.sa_handler = serve_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    log_info("weft-discovery serving", "listen=%s port=%d metrics=%s source=%s", o.listen, server_port(sv.server),
             o.metrics_listen, o.objects ? o.objects : "kubernetes");
    ae_run(sv.loop);
    log_info("weft-discovery stopping", "%s", "");
    rc = 0;
out:
    if (sv.metrics)
        MHD_stop_daemon(sv.metrics);
    server_free(sv.server);
    source_free(sv.source);
    k8s_client_free(sv.client);
    if (sv.loop)
        ae_loop_free(sv.loop);
    serve_loop = NULL;
    json_decref(values);
    json_decref(mesh);
    return rc;
}
