/* SPDX-License-Identifier: Apache-2.0 */
/* An h2c (prior knowledge) app for tests/integration/test_proxy_http2.py,
 * on proxy/http_h2.c's server role over plain sockets (poll, one thread,
 * many connections). What it answers depends on the path:
 *   /trailers      200, a body, then trailers x-checksum: abc
 *   /rst           200 and some body, then RST_STREAM(INTERNAL_ERROR)
 *   /slow/MS       200 after MS milliseconds
 *   /status/CODE   CODE with a short body
 *   /echo          200 with the request body, once it ended
 *   content-type application/grpc*: a gRPC unary answer, the request's
 *                  one length-prefixed message echoed, trailers
 *                  grpc-status 0 (3 when the body is not one message)
 *   other          200 "h2 NAME path=PATH weft-proto=VALUE|-" (the proxy must strip it)
 * usage: h2_app NAME PORT LOGFILE  (prints "ready"; one line per accepted
 * connection in LOGFILE). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_h2.h"

#define MAXC 256
#define MAXS 1024

struct app_conn {
    int fd;
    h2_conn *h;
};

struct app_stream {
    struct app_conn *c;
    h2_stream *st;
    char path[256];
    char proto[16];
    int grpc;
    char body[65536];
    size_t blen;
    long long due_ms; /* /slow: when to answer; 0 otherwise */
    int used;
};

static const char *app_name;
static FILE *app_log;
static struct app_conn conns[MAXC];
static struct app_stream streams[MAXS];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void respond(struct app_stream *a, const char *status, const char *body, size_t len, int trailers)
{
    struct h2_field f[] = {{":status", 7, status, strlen(status)}, {"content-type", 12, "text/plain", 10}};
    h2_submit_response(a->c->h, a->st, f, 2, 0);
    h2_submit_data(a->c->h, a->st, body, len, !trailers);
    if (trailers) {
        struct h2_field t[] = {{"x-checksum", 10, "abc", 3}};
        h2_submit_trailers(a->c->h, a->st, t, 1);
    }
}

/* As a gRPC server answers a unary call: the message in the response body,
 * the status in the trailers. */
static void answer_grpc(struct app_stream *a)
{
    const uint8_t *b = (const uint8_t *)a->body;
    int ok = a->blen >= 5 && b[0] == 0 &&
             ((size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4]) == a->blen - 5;
    struct h2_field f[] = {{":status", 7, "200", 3}, {"content-type", 12, "application/grpc", 16}};
    h2_submit_response(a->c->h, a->st, f, 2, 0);
    if (ok)
        h2_submit_data(a->c->h, a->st, a->body, a->blen, 0);
    struct h2_field t[] = {{"grpc-status", 11, ok ? "0" : "3", 1}};
    h2_submit_trailers(a->c->h, a->st, t, 1);
}

static void answer(struct app_stream *a)
{
    char body[512];
    if (a->grpc) {
        answer_grpc(a);
    } else if (strcmp(a->path, "/trailers") == 0) {
        respond(a, "200", "with trailers\n", 14, 1);
    } else if (strcmp(a->path, "/rst") == 0) {
        struct h2_field f[] = {{":status", 7, "200", 3}};
        h2_submit_response(a->c->h, a->st, f, 1, 0);
        h2_submit_data(a->c->h, a->st, "partial", 7, 0);
        h2_reset_flushed(a->c->h, a->st, H2_INTERNAL_ERROR);
    } else if (strncmp(a->path, "/status/", 8) == 0) {
        int n = snprintf(body, sizeof body, "status %s\n", a->path + 8);
        respond(a, a->path + 8, body, (size_t)n, 0);
    } else if (strcmp(a->path, "/echo") == 0) {
        respond(a, "200", a->body, a->blen, 0);
    } else {
        int n = snprintf(body, sizeof body, "h2 %s path=%s weft-proto=%s\n", app_name, a->path,
                         a->proto[0] ? a->proto : "-");
        respond(a, "200", body, (size_t)n, 0);
    }
}

static void ev_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n, int end)
{
    (void)end;
    struct app_conn *c = ctx;
    if (kind != H2_BLOCK_HEAD)
        return;
    struct app_stream *a = NULL;
    for (int i = 0; i < MAXS && !a; i++)
        if (!streams[i].used)
            a = &streams[i];
    if (!a) {
        h2_reset(c->h, st, H2_REFUSED_STREAM);
        return;
    }
    memset(a, 0, sizeof *a);
    a->used = 1;
    a->c = c;
    a->st = st;
    const struct h2_field *p = h2_field_find(f, n, ":path"), *w = h2_field_find(f, n, "weft-proto"),
                          *ct = h2_field_find(f, n, "content-type");
    a->grpc = ct && ct->valuelen >= 16 && memcmp(ct->value, "application/grpc", 16) == 0;
    if (p)
        snprintf(a->path, sizeof a->path, "%.*s", (int)p->valuelen, p->value);
    if (w)
        snprintf(a->proto, sizeof a->proto, "%.*s", (int)w->valuelen, w->value);
    h2_stream_set_user(st, a);
}

static void ev_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    struct app_conn *c = ctx;
    struct app_stream *a = h2_stream_user(st);
    if (a && a->blen + len <= sizeof a->body) {
        memcpy(a->body + a->blen, p, len);
        a->blen += len;
    }
    h2_consume(c->h, st, len);
}

static void ev_end(void *ctx, h2_stream *st)
{
    (void)ctx;
    struct app_stream *a = h2_stream_user(st);
    if (!a)
        return;
    if (strncmp(a->path, "/slow/", 6) == 0)
        a->due_ms = now_ms() + strtol(a->path + 6, NULL, 10);
    else
        answer(a);
}

static void ev_close(void *ctx, h2_stream *st, uint32_t code)
{
    (void)ctx;
    (void)code;
    struct app_stream *a = h2_stream_user(st);
    if (a)
        a->used = 0;
}

static void ev_writable(void *ctx, h2_stream *st)
{
    (void)ctx;
    (void)st;
}

static void ev_goaway(void *ctx, int32_t last, uint32_t code)
{
    (void)ctx;
    (void)last;
    (void)code;
}

static const struct h2_events events = {ev_headers, ev_data, ev_end, ev_close, ev_writable, ev_goaway};

static void conn_drop(struct app_conn *c)
{
    for (int i = 0; i < MAXS; i++)
        if (streams[i].used && streams[i].c == c)
            streams[i].used = 0;
    h2_free(c->h);
    close(c->fd);
    c->fd = -1;
    c->h = NULL;
}

/* Blocking writes: a test app, small answers. */
static int conn_flush(struct app_conn *c)
{
    for (;;) {
        const uint8_t *p;
        size_t n;
        if (h2_output(c->h, &p, &n) < 0)
            return -1;
        if (n == 0)
            return h2_done(c->h) ? -1 : 0;
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        h2_sent(c->h, (size_t)w);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: h2_app NAME PORT LOGFILE\n");
        return 2;
    }
    app_name = argv[1];
    app_log = fopen(argv[3], "a");
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)strtol(argv[2], NULL, 10))};
    if (!app_log || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0) {
        perror("h2_app");
        return 1;
    }
    for (int i = 0; i < MAXC; i++)
        conns[i].fd = -1;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        struct pollfd pf[MAXC + 1];
        int idx[MAXC + 1], n = 0;
        pf[n].fd = l;
        pf[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < MAXC; i++)
            if (conns[i].fd >= 0) {
                pf[n].fd = conns[i].fd;
                pf[n].events = POLLIN;
                idx[n++] = i;
            }
        poll(pf, (nfds_t)n, 20);
        long long t = now_ms();
        for (int i = 0; i < MAXS; i++)
            if (streams[i].used && streams[i].due_ms && streams[i].due_ms <= t) {
                streams[i].due_ms = 0;
                respond(&streams[i], "200", "slow done\n", 10, 0);
                if (conn_flush(streams[i].c) < 0)
                    conn_drop(streams[i].c);
            }
        for (int k = 0; k < n; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] < 0) {
                struct sockaddr_in peer;
                socklen_t pl = sizeof peer;
                int fd = accept(l, (struct sockaddr *)&peer, &pl);
                int slot = -1;
                for (int i = 0; i < MAXC && slot < 0; i++)
                    if (conns[i].fd < 0)
                        slot = i;
                if (fd < 0 || slot < 0) {
                    if (fd >= 0)
                        close(fd);
                    continue;
                }
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
                fprintf(app_log, "conn %s\n", ip);
                fflush(app_log);
                conns[slot].fd = fd;
                conns[slot].h = h2_new(H2_SERVER, NULL, &events, &conns[slot]);
                if (conn_flush(&conns[slot]) < 0)
                    conn_drop(&conns[slot]);
                continue;
            }
            struct app_conn *c = &conns[idx[k]];
            uint8_t buf[65536];
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r <= 0 || h2_input(c->h, buf, (size_t)r) < 0 || conn_flush(c) < 0)
                conn_drop(c);
        }
    }
}
