/* SPDX-License-Identifier: Apache-2.0 */
/* Simulated proxies for bench/discovery: CONNS TLS 1.3 + HTTP/2 connections
 * to weft-discovery, each with one /v1/stream subscribed to SUBS
 * destinations (the first id of IDFILE on every stream, the rest spread),
 * acknowledging every answer. Measures (1) the time from the first connect
 * to every stream holding all its first answers (a resynchronisation after a
 * restart), then (2) rewrites CHANGE_FILE (FROM replaced by TO, by rename),
 * and measures per stream the time until the first id's new answer arrives.
 * One process, poll(), non-blocking sockets, at most 128 handshakes in
 * flight. Prints one JSON line.
 *
 * With LOAD_CHANGE_FIFO set, the change is made by whoever reads that FIFO
 * (bench/discovery/apiserver.py writes it to the API server): load writes
 * one line to it instead of rewriting CHANGE_FILE, and the latency counts
 * from that write.
 *
 * Then, with LOAD_HOLD_S set, keeps every stream open (reading, acking) that
 * many seconds more, so the server can be measured idle with them.
 *
 *   load PORT CA CERT KEY CONNS SUBS IDFILE CHANGE_FILE FROM TO TIMEOUT_S */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    SSL *ssl;
    nghttp2_session *h2;
    int32_t sid;
    char *out;       /* request body not yet taken by nghttp2 */
    size_t olen, ocap;
    int deferred;
    char *wbuf;      /* bytes SSL_write has yet to take */
    size_t wlen, woff;
    char line[1 << 16];
    size_t llen;
    int answers;     /* first answers received */
    int changed;     /* the first id's answer after the change arrived */
    double latency;
    long long first_version;
};

static char **ids;
static int nids, subs;
static double t_change;
static int phase;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void queue_line(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    if (c->olen + n > c->ocap) {
        c->ocap = (c->olen + n) * 2;
        c->out = realloc(c->out, c->ocap);
    }
    memcpy(c->out + c->olen, s, n);
    c->olen += n;
    if (c->deferred) {
        c->deferred = 0;
        nghttp2_session_resume_data(c->h2, c->sid);
    }
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    (void)s, (void)id, (void)flags, (void)src;
    struct conn *c = user;
    if (c->olen == 0) {
        c->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = c->olen < len ? c->olen : len;
    memcpy(buf, c->out, n);
    memmove(c->out, c->out + n, c->olen - n);
    c->olen -= n;
    return (ssize_t)n;
}

static void on_message(struct conn *c, const char *line, size_t len)
{
    json_t *m = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type && strcmp(type, "answer") == 0) {
        const char *id = json_string_value(json_object_get(m, "id"));
        long long v = json_integer_value(json_object_get(m, "version"));
        char ack[600];
        snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"id\":\"%s\",\"version\":%lld}\n", id, v);
        queue_line(c, ack);
        if (phase == 1 && c->answers < subs) {
            c->answers++;
            if (strcmp(id, ids[0]) == 0)
                c->first_version = v;
        } else if (phase == 2 && !c->changed && strcmp(id, ids[0]) == 0 && v != c->first_version) {
            c->changed = 1;
            c->latency = now() - t_change;
        }
    }
    json_decref(m);
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)s, (void)flags, (void)id;
    struct conn *c = user;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            on_message(c, c->line, c->llen);
            c->llen = 0;
        } else if (c->llen < sizeof c->line) {
            c->line[c->llen++] = (char)data[i];
        }
    }
    return 0;
}

static int flush(struct conn *c)
{
    for (;;) {
        if (c->woff == c->wlen) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->h2, &d);
            if (n <= 0)
                return (int)n;
            c->wbuf = realloc(c->wbuf, (size_t)n);
            memcpy(c->wbuf, d, (size_t)n);
            c->wlen = (size_t)n;
            c->woff = 0;
        }
        int w = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
        if (w <= 0) {
            int e = SSL_get_error(c->ssl, w);
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        c->woff += (size_t)w;
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A whole decimal argument in [min, max], or exit naming it. */
static long arg_long(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "load: %s \"%s\": expected an integer in [%ld, %ld]\n", name, s, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 12) {
        fprintf(stderr, "usage: load PORT CA CERT KEY CONNS SUBS IDFILE CHANGE_FILE FROM TO TIMEOUT_S\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = (int)arg_long("PORT", argv[1], 1, 65535), nconns = (int)arg_long("CONNS", argv[5], 1, 100000);
    subs = (int)arg_long("SUBS", argv[6], 1, 1000);
    double timeout = atof(argv[11]);
    struct rlimit rl = {(rlim_t)nconns + 64, (rlim_t)nconns + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    FILE *f = fopen(argv[7], "r");
    char buf[512];
    ids = calloc(100000, sizeof *ids);
    while (f && nids < 100000 && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        ids[nids++] = strdup(buf);
    }
    if (f)
        fclose(f);
    if (nids < subs) {
        fprintf(stderr, "need at least %d ids\n", subs);
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_load_verify_locations(ctx, argv[2], NULL);
    SSL_CTX_use_certificate_chain_file(ctx, argv[3]);
    SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    struct conn *cs = calloc((size_t)nconns, sizeof *cs);
    struct pollfd *pfd = calloc((size_t)nconns, sizeof *pfd);
    phase = 1;
    double t0 = now();
    /* Handshakes overlap, at most 128 in flight, as a fleet reconnecting would. */
    int started = 0, ready = 0;
    int *hs = calloc((size_t)nconns, sizeof *hs); /* 0 not started, 1 handshaking, 2 up */
    while (ready < nconns) {
        while (started < nconns && started - ready < 128) {
            struct conn *c = &cs[started];
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
                fprintf(stderr, "connect %d: %s\n", started, strerror(errno));
                return 1;
            }
            c->ssl = SSL_new(ctx);
            SSL_set_fd(c->ssl, c->fd);
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
            hs[started++] = 1;
        }
        /* Connected streams are read too: on a loaded machine the connect
         * phase can outlast the server's keep-alive (a PING after 30 s idle,
         * closed 10 s later without its ACK). */
        for (int i = 0; i < started; i++)
            pfd[i].fd = cs[i].fd,
            pfd[i].events = hs[i] == 1 ? POLLIN | POLLOUT : POLLIN | (cs[i].woff < cs[i].wlen ? POLLOUT : 0);
        poll(pfd, (nfds_t)started, 100);
        for (int i = 0; i < started; i++) {
            struct conn *c = &cs[i];
            if (hs[i] == 2) {
                if (pfd[i].revents & POLLIN) {
                    char in[16384];
                    int n;
                    while ((n = SSL_read(c->ssl, in, sizeof in)) > 0)
                        nghttp2_session_mem_recv(c->h2, (const uint8_t *)in, (size_t)n);
                }
                if (pfd[i].revents)
                    flush(c);
                continue;
            }
            if (hs[i] != 1)
                continue;
            int r = SSL_connect(c->ssl);
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    continue;
                fprintf(stderr, "TLS %d failed\n", i);
                return 1;
            }
            hs[i] = 2;
            ready++;
            nghttp2_session_client_new(&c->h2, cbs, c);
            nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
            nghttp2_nv nv[] = {
                {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
                {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
                {(uint8_t *)":authority", (uint8_t *)"127.0.0.1", 10, 9, 0},
                {(uint8_t *)":path", (uint8_t *)"/v1/stream", 5, 10, 0},
            };
            nghttp2_data_provider prd = {.read_callback = body_read};
            c->sid = nghttp2_submit_request(c->h2, NULL, nv, 4, &prd, c);
            for (int j = 0; j < subs; j++) {
                char line[600];
                const char *id =
                    j == 0 ? ids[0] : ids[1 + ((size_t)i * (size_t)(subs - 1) + (size_t)j) % (size_t)(nids - 1)];
                snprintf(line, sizeof line, "{\"type\":\"subscribe\",\"id\":\"%s\"}\n", id);
                queue_line(c, line);
            }
            flush(c);
        }
    }
    for (int i = 0; i < nconns; i++)
        pfd[i].fd = cs[i].fd;
    double t_connected = now() - t0;
    struct rusage ru; /* the client's own CPU while the fleet connected: is it the limit? */
    getrusage(RUSAGE_SELF, &ru);
    double cpu_connected = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double t_synced = -1, deadline = now() + timeout;
    double *lat = calloc((size_t)nconns, sizeof *lat);
    int done = 0;
    while (now() < deadline) {
        for (int i = 0; i < nconns; i++)
            pfd[i].events = POLLIN | (cs[i].woff < cs[i].wlen ? POLLOUT : 0);
        if (poll(pfd, (nfds_t)nconns, 100) < 0)
            break;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &cs[i];
            if (pfd[i].revents & POLLIN) {
                char in[16384];
                int n;
                while ((n = SSL_read(c->ssl, in, sizeof in)) > 0)
                    nghttp2_session_mem_recv(c->h2, (const uint8_t *)in, (size_t)n);
            }
            flush(c);
        }
        if (phase == 1) {
            int all = 1;
            for (int i = 0; i < nconns && all; i++)
                all = cs[i].answers >= subs;
            if (all && getenv("LOAD_CHANGE_FIFO")) {
                t_synced = now() - t0;
                FILE *fifo = fopen(getenv("LOAD_CHANGE_FIFO"), "w");
                if (!fifo) {
                    fprintf(stderr, "%s: %s\n", getenv("LOAD_CHANGE_FIFO"), strerror(errno));
                    return 1;
                }
                phase = 2;
                t_change = now();
                fputs("change\n", fifo);
                fclose(fifo);
            } else if (all) {
                t_synced = now() - t0;
                /* the change: FROM -> TO in CHANGE_FILE, written aside then renamed */
                FILE *in = fopen(argv[8], "r");
                static char text[64 << 20];
                size_t tl = in ? fread(text, 1, sizeof text - 1, in) : 0;
                if (in)
                    fclose(in);
                text[tl] = '\0';
                char *at = strstr(text, argv[9]);
                if (!at) {
                    fprintf(stderr, "%s not in %s\n", argv[9], argv[8]);
                    return 1;
                }
                char tmp[4200];
                snprintf(tmp, sizeof tmp, "%s.tmp", argv[8]);
                FILE *o = fopen(tmp, "w");
                fwrite(text, 1, (size_t)(at - text), o);
                fputs(argv[10], o);
                fputs(at + strlen(argv[9]), o);
                fclose(o);
                phase = 2;
                t_change = now();
                rename(tmp, argv[8]);
            }
        } else {
            done = 0;
            for (int i = 0; i < nconns; i++)
                done += cs[i].changed;
            if (done == nconns)
                break;
        }
    }
    int n = 0;
    for (int i = 0; i < nconns; i++)
        if (cs[i].changed)
            lat[n++] = cs[i].latency;
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("{\"conns\":%d,\"subs\":%d,\"connect_s\":%.3f,\"client_cpu_connect_s\":%.3f,\"synced_s\":%.3f,\"pushed\":%d,"
           "\"push_p50_ms\":%.1f,\"push_p99_ms\":%.1f,\"push_max_ms\":%.1f}\n",
           nconns, subs, t_connected, cpu_connected, t_synced, n, n ? lat[n / 2] * 1000 : -1,
           n ? lat[(size_t)((n - 1) * 0.99)] * 1000 : -1, n ? lat[n - 1] * 1000 : -1);
    fflush(stdout);
    double hold = getenv("LOAD_HOLD_S") ? atof(getenv("LOAD_HOLD_S")) : 0, until = now() + hold;
    while (now() < until) {
        for (int i = 0; i < nconns; i++)
            pfd[i].events = POLLIN | (cs[i].woff < cs[i].wlen ? POLLOUT : 0);
        if (poll(pfd, (nfds_t)nconns, 100) < 0)
            break;
        for (int i = 0; i < nconns; i++) {
            char in[16384];
            int r;
            if (pfd[i].revents & POLLIN)
                while ((r = SSL_read(cs[i].ssl, in, sizeof in)) > 0)
                    nghttp2_session_mem_recv(cs[i].h2, (const uint8_t *)in, (size_t)r);
            flush(&cs[i]);
        }
    }
    return n == nconns ? 0 : 1;
}
