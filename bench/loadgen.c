/* SPDX-License-Identifier: Apache-2.0 */
/* A small HTTP/1.1 load generator for Weft's benchmarks: keep-alive
 * connections (plain or TLS), each on its own thread, at a fixed total rate
 * or as fast as they go, bounded by a request count and a duration. At a
 * fixed rate a request's latency is counted from when it was due, not from
 * when it was sent, so a stalled server cannot hide its queueing
 * (coordinated omission). With --new-connection every request opens its
 * own connection (sent with Connection: close, closed after the response),
 * the connect and handshake inside its latency. Prints one JSON line of
 * results.
 *
 *   loadgen --url https://127.0.0.1:8443/inject --cacert ca.crt --body pod.json \
 *           --connections 8 --rate 1000 --duration 10 --requests 100000
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define MAX_RESPONSE (1 << 20)

struct config {
    char host[256], port[16], path[1024];
    int tls;
    const char *cacert, *content_type, *method, *server_name;
    char *body;
    size_t body_len;
    int connections;
    int new_connection;
    double rate, duration;
    long max_requests;
};

struct worker {
    const struct config *cfg;
    SSL_CTX *ctx;
    int index;
    uint64_t *lat_ns;
    size_t nlat, cap;
    long errors;
};

static atomic_long issued;
static uint64_t start_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct conn {
    int fd;
    SSL *ssl;
};

static int conn_open(struct worker *w, struct conn *c)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(w->cfg->host, w->cfg->port, &hints, &ai) != 0)
        return -1;
    c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(c->fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0) {
        close(c->fd);
        return -1;
    }
    c->ssl = NULL;
    if (w->cfg->tls) {
        c->ssl = SSL_new(w->ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, w->cfg->server_name);
        SSL_set1_host(c->ssl, w->cfg->server_name);
        if (SSL_connect(c->ssl) != 1) {
            SSL_free(c->ssl);
            close(c->fd);
            return -1;
        }
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
}

static int conn_write(struct conn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t k = c->ssl ? SSL_write(c->ssl, p, (int)n) : write(c->fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static ssize_t conn_read(struct conn *c, char *p, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, p, (int)n) : read(c->fd, p, n);
}

/* Reads one response with a Content-Length; returns its status or -1. */
static int read_response(struct conn *c, char *buf)
{
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        if (have == MAX_RESPONSE)
            return -1;
        ssize_t k = conn_read(c, buf + have, MAX_RESPONSE - have);
        if (k <= 0)
            return -1;
        have += (size_t)k;
    }
    int status = (int)strtol(buf + 9, NULL, 10);
    long clen = 0;
    for (char *p = buf; p < end; p++)
        if (strncasecmp(p, "\r\ncontent-length:", 17) == 0)
            clen = strtol(p + 17, NULL, 10);
    size_t need = (size_t)(end + 4 - buf) + (size_t)clen;
    if (need > MAX_RESPONSE)
        return -1;
    while (have < need) {
        ssize_t k = conn_read(c, buf + have, need - have);
        if (k <= 0)
            return -1;
        have += (size_t)k;
    }
    return status;
}

static void record(struct worker *w, uint64_t ns)
{
    if (w->nlat == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->lat_ns = realloc(w->lat_ns, w->cap * sizeof *w->lat_ns);
    }
    w->lat_ns[w->nlat++] = ns;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    const struct config *cfg = w->cfg;
    char head[2048];
    int hlen = snprintf(head, sizeof head,
                        "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                        cfg->method, cfg->path, cfg->server_name, cfg->content_type, cfg->body_len,
                        cfg->new_connection ? "Connection: close\r\n" : "");
    char *req = malloc((size_t)hlen + cfg->body_len), *resp = malloc(MAX_RESPONSE);
    memcpy(req, head, (size_t)hlen);
    memcpy(req + hlen, cfg->body, cfg->body_len);
    size_t rlen = (size_t)hlen + cfg->body_len;
    struct conn c;
    int open = 0;
    /* At a fixed rate, this connection's k-th request is due at
     * start + (index + k * connections) / rate. */
    double interval = cfg->rate > 0 ? cfg->connections / cfg->rate : 0;
    uint64_t end_ns = start_ns + (uint64_t)(cfg->duration * 1e9);
    for (long k = 0;; k++) {
        uint64_t due = cfg->rate > 0 ? start_ns + (uint64_t)((w->index / cfg->rate + k * interval) * 1e9) : now_ns();
        if (due >= end_ns || atomic_fetch_add(&issued, 1) >= cfg->max_requests)
            break;
        uint64_t t = now_ns();
        if (due > t) {
            struct timespec ts = {(time_t)((due - t) / 1000000000u), (long)((due - t) % 1000000000u)};
            nanosleep(&ts, NULL);
        }
        if (!open && conn_open(w, &c) == 0)
            open = 1;
        if (!open || conn_write(&c, req, rlen) < 0 || read_response(&c, resp) != 200) {
            w->errors++;
            if (open)
                conn_close(&c);
            open = 0;
            continue;
        }
        record(w, now_ns() - due);
        if (cfg->new_connection) {
            conn_close(&c);
            open = 0;
        }
    }
    if (open)
        conn_close(&c);
    free(req);
    free(resp);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_url(const char *url, struct config *cfg)
{
    const char *p;
    if (strncmp(url, "https://", 8) == 0)
        cfg->tls = 1, p = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return -1;
    const char *slash = strchr(p, '/');
    const char *colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    if (!colon || !slash)
        return -1;
    snprintf(cfg->host, sizeof cfg->host, "%.*s", (int)(colon - p), p);
    snprintf(cfg->port, sizeof cfg->port, "%.*s", (int)(slash - colon - 1), colon + 1);
    snprintf(cfg->path, sizeof cfg->path, "%s", slash);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg = {.content_type = "application/json", .method = "POST", .connections = 1, .duration = 10,
                         .max_requests = 1000000};
    const char *url = NULL, *body_file = NULL;
    static const struct option opts[] = {
        {"url", 1, 0, 'u'}, {"cacert", 1, 0, 'c'}, {"body", 1, 0, 'b'}, {"connections", 1, 0, 'n'},
        {"rate", 1, 0, 'r'}, {"duration", 1, 0, 'd'}, {"requests", 1, 0, 'N'}, {"method", 1, 0, 'm'},
        {"content-type", 1, 0, 't'}, {"server-name", 1, 0, 's'}, {"new-connection", 0, 0, 'C'}, {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'c': cfg.cacert = optarg; break;
        case 'b': body_file = optarg; break;
        case 'n': cfg.connections = (int)strtol(optarg, NULL, 10); break;
        case 'r': cfg.rate = strtod(optarg, NULL); break;
        case 'd': cfg.duration = strtod(optarg, NULL); break;
        case 'N': cfg.max_requests = strtol(optarg, NULL, 10); break;
        case 'm': cfg.method = optarg; break;
        case 't': cfg.content_type = optarg; break;
        case 's': cfg.server_name = optarg; break;
        case 'C': cfg.new_connection = 1; break;
        default: return 2;
        }
    }
    if (!url || parse_url(url, &cfg) < 0 || cfg.connections < 1 || cfg.connections > MAX_CONNECTIONS ||
        cfg.duration <= 0 || cfg.duration > 600) {
        fprintf(stderr, "loadgen: need --url http(s)://host:port/path, 1-%d connections, duration 0-600 s\n",
                MAX_CONNECTIONS);
        return 2;
    }
    if (!cfg.server_name)
        cfg.server_name = cfg.host;
    if (body_file) {
        FILE *f = fopen(body_file, "rb");
        if (!f) {
            perror(body_file);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        cfg.body_len = (size_t)ftell(f);
        rewind(f);
        cfg.body = malloc(cfg.body_len + 1);
        if (fread(cfg.body, 1, cfg.body_len, f) != cfg.body_len)
            return 2;
        fclose(f);
    } else {
        cfg.body = strdup("");
    }
    signal(SIGPIPE, SIG_IGN); /* a closed connection is an error to count, not a reason to die */
    SSL_CTX *ctx = NULL;
    if (cfg.tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (!cfg.cacert || SSL_CTX_load_verify_locations(ctx, cfg.cacert, NULL) != 1) {
            fprintf(stderr, "loadgen: --cacert is required for https\n");
            return 2;
        }
    }
    struct worker *w = calloc((size_t)cfg.connections, sizeof *w);
    pthread_t *th = calloc((size_t)cfg.connections, sizeof *th);
    start_ns = now_ns();
    for (int i = 0; i < cfg.connections; i++) {
        w[i] = (struct worker){.cfg = &cfg, .ctx = ctx, .index = i};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < cfg.connections; i++) {
        pthread_join(th[i], NULL);
        total += w[i].nlat;
        errors += w[i].errors;
    }
    double secs = (double)(now_ns() - start_ns) / 1e9;
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t n = 0;
    for (int i = 0; i < cfg.connections; i++) {
        memcpy(all + n, w[i].lat_ns, w[i].nlat * sizeof *all);
        n += w[i].nlat;
        free(w[i].lat_ns);
    }
    qsort(all, total, sizeof *all, cmp_u64);
#define PCT(p) (total ? (double)all[(size_t)((p) / 100.0 * (double)(total - 1))] / 1000.0 : 0.0)
    printf("{\"requests\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}\n",
           total, errors, secs, (double)total / secs, PCT(50), PCT(90), PCT(99), PCT(99.9), PCT(100));
    free(all);
    free(w);
    free(th);
    free(cfg.body);
    SSL_CTX_free(ctx);
    return 0;
}
