/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd servers of weft-webhook; see server.h. Each request's body
 * is collected into a bounded buffer, then handed to the pure review core. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "certwatch.h"
#include "errbuf.h"
#include "hostport.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

/* TLS 1.2 and 1.3 only, GnuTLS's secure defaults otherwise. */
#define SERVER_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct server {
    struct MHD_Daemon *https;
    struct MHD_Daemon *metrics;
    unsigned port, metrics_port;
    struct server_options o;
};

/* Every review outcome and reason the webhook can report: the metric's
 * whole label set. */
static struct metrics_counter reviews[] = {
    {"outcome=\"injected\",reason=\"injected\"", 0},
    {"outcome=\"skipped\",reason=\"ignored-namespace\"", 0},
    {"outcome=\"skipped\",reason=\"opted-out\"", 0},
    {"outcome=\"skipped\",reason=\"host-network\"", 0},
    {"outcome=\"skipped\",reason=\"not-a-pod\"", 0},
    {"outcome=\"skipped\",reason=\"not-create\"", 0},
    {"outcome=\"denied\",reason=\"invalid-override\"", 0},
    {"outcome=\"denied\",reason=\"invalid-pod\"", 0},
    {"outcome=\"error\",reason=\"namespace-unavailable\"", 0},
    {"outcome=\"error\",reason=\"bad-request\"", 0},
    {"outcome=\"error\",reason=\"too-large\"", 0},
    {"outcome=\"error\",reason=\"unsupported-media-type\"", 0},
    {"outcome=\"error\",reason=\"method-not-allowed\"", 0},
    {"outcome=\"error\",reason=\"not-found\"", 0},
};

/* Config reloads, counted by main.c's check loop through server_count_reload(). */
static struct metrics_counter config_reloads[] = {
    {"result=\"ok\"", 0},
    {"result=\"error\"", 0},
};

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1};
static struct metrics_histogram latency = {latency_bounds, sizeof latency_bounds / sizeof *latency_bounds, {0}, 0, 0};

static const char *const outcome_names[] = {"injected", "skipped", "denied", "error"};

static void count(const char *outcome, const char *reason)
{
    char labels[128];
    snprintf(labels, sizeof labels, "outcome=\"%s\",reason=\"%s\"", outcome, reason);
    for (size_t i = 0; i < sizeof reviews / sizeof *reviews; i++)
        if (strcmp(reviews[i].labels, labels) == 0) {
            metrics_inc(&reviews[i]);
            return;
        }
    log_error("review outcome has no metric", "outcome=%s reason=%s", outcome, reason);
}

struct request {
    struct buf body;
    uint64_t started_ns;
    int too_big;
    /* Decided from the request line and headers; answered once the body has
     * been read (and dropped), so the connection stays usable. */
    unsigned refuse_status;
    const char *refuse_reason, *refuse_message;
    int health;
};

static void set_refusal(struct request *req, unsigned status, const char *reason, const char *message)
{
    req->refuse_status = status;
    req->refuse_reason = reason;
    req->refuse_message = message;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
                               size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A JSON error for a request that never reached the review core. */
static enum MHD_Result refuse(struct MHD_Connection *conn, struct request *req, unsigned status,
                              const char *reason, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", message);
    count("error", reason);
    metrics_observe_ns(&latency, metrics_now_ns() - req->started_ns);
    log_info("review refused", "status=%u reason=%s", status, reason);
    return respond(conn, status, "application/json", body, (size_t)n);
}

static int is_json(const char *type)
{
    static const char want[] = "application/json";
    if (!type || strncasecmp(type, want, sizeof want - 1) != 0)
        return 0;
    char next = type[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

static enum MHD_Result health(struct MHD_Connection *conn, const char *url)
{
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
        return respond(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    return respond(conn, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10);
}

static enum MHD_Result on_inject(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct server *s = cls;
    struct request *req = *con_cls;
    (void)version;

    if (!req) {
        req = xcalloc(1, sizeof *req);
        buf_init(&req->body, REVIEW_MAX_BODY);
        req->started_ns = metrics_now_ns();
        *con_cls = req;
        if (strcmp(method, "GET") == 0 && strcmp(url, "/inject") != 0)
            req->health = 1;
        else if (strcmp(url, "/inject") != 0)
            set_refusal(req, MHD_HTTP_NOT_FOUND, "not-found", "no such path: POST /inject");
        else if (strcmp(method, "POST") != 0)
            set_refusal(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed", "use POST");
        else if (!is_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
            set_refusal(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                        "Content-Type must be application/json");
        const char *clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        /* Known to be too large: answered now, and the connection closes. */
        if (!req->refuse_status && clen && strtoull(clen, NULL, 10) > REVIEW_MAX_BODY)
            return refuse(conn, req, MHD_HTTP_CONTENT_TOO_LARGE, "too-large", "body larger than 4 MiB");
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_big && !req->refuse_status && !req->health &&
            buf_append(&req->body, upload, *upload_size) < 0)
            req->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->health)
        return health(conn, url);
    if (req->refuse_status)
        return refuse(conn, req, req->refuse_status, req->refuse_reason, req->refuse_message);
    if (req->too_big)
        return refuse(conn, req, MHD_HTTP_CONTENT_TOO_LARGE, "too-large", "body larger than 4 MiB");

    struct review_result r;
    const struct conf *conf = confstore_get(s->o.configs);
    review_handle(&conf->inject, req->body.data ? req->body.data : "", req->body.len, s->o.lookup, s->o.lookup_ctx,
                  &r);
    confstore_put(s->o.configs, conf);
    count(outcome_names[r.outcome], r.reason);
    uint64_t ns = metrics_now_ns() - req->started_ns;
    metrics_observe_ns(&latency, ns);
    log_clean(r.uid);
    log_clean(r.pod);
    log_clean(r.message);
    log_event(r.outcome == REVIEW_ERROR ? LOG_WARN : LOG_INFO, "review", "uid=%s pod=%s outcome=%s reason=%s us=%llu%s%s%s",
              r.uid[0] ? r.uid : "-", r.pod[0] ? r.pod : "-", outcome_names[r.outcome], r.reason,
              (unsigned long long)(ns / 1000), r.outcome != REVIEW_INJECTED ? " message=\"" : "",
              r.outcome != REVIEW_INJECTED ? r.message : "", r.outcome != REVIEW_INJECTED ? "\"" : "");
    enum MHD_Result rc = respond(conn, (unsigned)r.http_status, "application/json", r.body, r.len);
    free(r.body);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct request *req = *con_cls;
    if (req) {
        buf_free(&req->body);
        free(req);
        *con_cls = NULL;
    }
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version, (void)upload, (void)upload_size, (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "use GET\n", 8);
    if (strcmp(url, "/metrics") != 0)
        return health(conn, url);
    struct buf out;
    buf_init(&out, 1 << 20);
    metrics_counters(&out, "weft_webhook_reviews_total", "Admission reviews answered, by outcome and reason.",
                     reviews, sizeof reviews / sizeof *reviews);
    metrics_histogram_render(&out, "weft_webhook_review_duration_seconds",
                             "Time from request to answer, body included.", &latency);
    metrics_counters(&out, "weft_webhook_config_reloads_total",
                     "Times mesh.yaml or a template changed on disk, by whether the new files loaded.",
                     config_reloads, 2);
    metrics_header(&out, "weft_webhook_certificate_reloads_total", "counter",
                   "Times the serving certificate was replaced from disk.");
    metrics_gauge(&out, "weft_webhook_certificate_reloads_total", "", (double)(certwatch_generation() - 1));
    enum MHD_Result rc = respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", out.data, out.len);
    buf_free(&out);
    return rc;
}

/* Binds and listens on "host:port" or "[v6]:port"; returns the fd or -errno. */
static int listen_on(const char *spec, unsigned *port, char *err, size_t errlen)
{
    char host[256], portstr[8];
    if (hostport_split(spec, host, sizeof host, portstr, sizeof portstr) < 0) {
        errbuf_set(err, errlen, "listen address \"%s\" is not host:port", spec);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(*host ? host : NULL, portstr, &hints, &ai);
    if (rc != 0) {
        errbuf_set(err, errlen, "listen address \"%s\": %s", spec, gai_strerror(rc));
        return -EINVAL;
    }
    /* Accepted sockets inherit TCP_NODELAY: small TLS records (session
     * tickets, then the answer) must not wait for a delayed ACK. */
    int fd = listen_addr(ai->ai_addr, ai->ai_addrlen, LISTEN_NODELAY, 1024);
    freeaddrinfo(ai);
    if (fd < 0) {
        errbuf_set(err, errlen, "listen on %s: %s", spec, strerror(-fd));
        return fd;
    }
    *port = listen_bound_port(fd);
    return fd;
}

struct server *server_start(const struct server_options *o, char *err, size_t errlen)
{
    struct server *s = xcalloc(1, sizeof *s);
    s->o = *o;
    int fd = listen_on(o->listen, &s->port, err, errlen);
    if (fd < 0)
        goto fail;
    s->https = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL,
        NULL, on_inject, s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_HTTPS_CERT_CALLBACK, certwatch_mhd_callback(),
        MHD_OPTION_HTTPS_PRIORITIES, SERVER_TLS_PRIORITIES, MHD_OPTION_THREAD_POOL_SIZE, o->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVER_MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!s->https) {
        close(fd);
        errbuf_set(err, errlen, "cannot start the HTTPS server on %s", o->listen);
        goto fail;
    }
    fd = listen_on(o->metrics_listen, &s->metrics_port, err, errlen);
    if (fd < 0)
        goto fail;
    s->metrics = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_metrics, s,
                                  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                                  (unsigned)SERVER_METRICS_MAX_CONNECTIONS,
                                  MHD_OPTION_END);
    if (!s->metrics) {
        close(fd);
        errbuf_set(err, errlen, "cannot start the metrics server on %s", o->metrics_listen);
        goto fail;
    }
    return s;
fail:
    server_stop(s);
    return NULL;
}

void server_count_reload(int ok)
{
    metrics_inc(&config_reloads[ok ? 0 : 1]);
}

unsigned server_port(const struct server *s)
{
    return s->port;
}

unsigned server_metrics_port(const struct server *s)
{
    return s->metrics_port;
}

void server_stop(struct server *s)
{
    if (!s)
        return;
    if (s->https)
        MHD_stop_daemon(s->https);
    if (s->metrics)
        MHD_stop_daemon(s->metrics);
    free(s);
}
