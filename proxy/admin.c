/* SPDX-License-Identifier: Apache-2.0 */
/* Admin HTTP/1.1 server (Connection: close), request routing and the
 * credential reload timer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "errbuf.h"
#include "http1.h"
#include "identity_client.h"
#include "listen.h"
#include "log.h"
#include "xalloc.h"

/* /metrics at its worst: the connection families (~0.6 MiB) and a full
 * table of HTTP label sets (~4 MiB, docs/proxy.md); grown only as needed. */
#define ADMIN_BODY_MAX (8 * 1024 * 1024)

struct admin {
    struct proxy *px;
    int lfd[2];
    int stop_pipe[2];
    pthread_t thread;
    atomic_int inflight;
};

struct admin_req {
    struct admin *a;
    int fd;
    int loopback;
};

static int admin_listen(int family, uint16_t port, int *out)
{
    int fd = listen_port(family, port, LISTEN_V6ONLY, 128);
    if (fd < 0)
        return fd;
    *out = fd;
    return 0;
}

static void admin_text(struct admin_response *res, int status, const char *text)
{
    res->status = status;
    res->type = "text/plain; charset=utf-8";
    buf_appendf(&res->body, "%s\n", text);
}

#define REPLY(status, text)             \
    do {                                \
        admin_text(res, status, text);  \
        return;                         \
    } while (0)

void admin_route(struct proxy *px, const char *method, const char *path, int from_loopback,
                 struct admin_response *res)
{
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(path, "/live") == 0) {
        if (!get)
            REPLY(405, "method not allowed");
        REPLY(200, "live");
    }
    if (strcmp(path, "/ready") == 0) {
        if (!get)
            REPLY(405, "method not allowed");
        if (atomic_load(&px->draining))
            REPLY(503, "draining");
        if (!atomic_load(&px->listeners_up))
            REPLY(503, "listeners not up");
        if (!creds_ready(px->creds))
            REPLY(503, "no valid certificate");
        const char *why = "";
        if (!cp_client_ready(px->cp, &why))
            REPLY(503, why);
        REPLY(200, "ready");
    }
    if (strcmp(path, "/metrics") == 0) {
        if (!get)
            REPLY(405, "method not allowed");
        struct pm_state st = {creds_not_after(px->creds),
                              atomic_load(&px->listeners_up) && creds_ready(px->creds) && !atomic_load(&px->draining),
                              atomic_load(&px->draining), 0, 0, 0};
        struct mallinfo2 mi = mallinfo2();
        st.heap_inuse = mi.uordblks + mi.hblkhd;
        st.heap_mapped = mi.arena + mi.hblkhd;
        st.config_generation = cfgstore_generation(px->config);
        res->status = 200;
        res->type = "text/plain; version=0.0.4; charset=utf-8";
        if (pm_render(&px->metrics, &st, &res->body) < 0 || http_metrics_render(px->http, &res->body) < 0 ||
            identity_client_render_metrics(&res->body) < 0 ||
            cp_client_render_metrics(px->cp, &res->body) < 0) {
            buf_reset(&res->body);
            REPLY(500, "metrics too large");
        }
        return;
    }
    if (strncmp(path, "/app-health/", 12) == 0) {
        if (!get)
            REPLY(405, "method not allowed");
        char container[64];
        const char *c = path + 12, *slash = strchr(c, '/');
        if (!slash || (size_t)(slash - c) >= sizeof container)
            REPLY(404, "no such probe");
        memcpy(container, c, (size_t)(slash - c));
        container[slash - c] = '\0';
        const struct probe *p = probes_find(&px->cfg->probes, container, slash + 1);
        if (!p)
            REPLY(404, "no such probe");
        struct probe_result pr;
        probes_run(p, px->cfg->pod_ip, &pr);
        REPLY(pr.ok ? 200 : 503, pr.detail);
    }
    if (strcmp(path, "/shutdown") == 0) {
        if (strcmp(method, "POST") != 0)
            REPLY(405, "method not allowed");
        if (!from_loopback)
            REPLY(403, "only from loopback");
        res->shutdown = 1;
        REPLY(200, "draining");
    }
    admin_text(res, 404, "not found");
}
#undef REPLY

static void admin_send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* The path of a request-target: origin-form up to '?', or absolute-form's
 * path ("http://host:15020/ready" is "/ready", RFC 9112 3.2.2). 0, or -1
 * when it does not fit. */
static int admin_path(const char *t, size_t n, char *path, size_t pathlen)
{
    const char *end = t + n, *q;
    if (n && t[0] != '/') {
        const char *sep = memchr(t, ':', n);
        if (sep && end - sep >= 3 && sep[1] == '/' && sep[2] == '/') {
            q = memchr(sep + 3, '/', (size_t)(end - sep - 3));
            t = q ? q : "/";
            end = q ? end : t + 1;
        }
    }
    q = memchr(t, '?', (size_t)(end - t));
    if (q)
        end = q;
    if ((size_t)(end - t) >= pathlen)
        return -1;
    memcpy(path, t, (size_t)(end - t));
    path[end - t] = '\0';
    return 0;
}

static void *admin_serve(void *arg)
{
    struct admin_req *rq = arg;
    struct admin *a = rq->a;
    struct http1_limits lim = {.max_head = ADMIN_MAX_REQUEST, .max_fields = ADMIN_MAX_FIELDS};
    struct http1_parser hp;
    char in[2048];
    char method[16] = "";
    char path[1024];
    enum http1_event ev = HTTP1_NEED_MORE;
    struct admin_response res = {0};
    buf_init(&res.body, ADMIN_BODY_MAX);
    http1_init(&hp, HTTP1_REQUEST, &lim);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(rq->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(rq->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* Only the head matters: a body (none of our paths takes one) is left unread. */
    while (ev == HTTP1_NEED_MORE) {
        ssize_t n = recv(rq->fd, in, sizeof in, 0);
        size_t used;
        if (n <= 0)
            goto out;
        ev = http1_parse(&hp, in, (size_t)n, &used, NULL, NULL);
    }
    if (ev == HTTP1_ERROR) {
        admin_text(&res, http1_error_status(hp.error), http1_strerror(hp.error));
    } else if (hp.msg.method_len >= sizeof method) {
        admin_text(&res, 405, "method not allowed");
    } else if (admin_path(hp.msg.target, hp.msg.target_len, path, sizeof path) < 0) {
        admin_text(&res, 414, "request-target too long");
    } else {
        memcpy(method, hp.msg.method, hp.msg.method_len);
        method[hp.msg.method_len] = '\0';
        admin_route(a->px, method, path, rq->loopback, &res);
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      res.status, http1_reason(res.status), res.type, res.body.len);
    admin_send_all(rq->fd, head, (size_t)hl);
    if (strcmp(method, "HEAD") != 0 && res.body.len)
        admin_send_all(rq->fd, res.body.data, res.body.len);
    if (res.shutdown) {
        log_info("shutdown requested", "via=admin");
        kill(getpid(), SIGTERM); /* main's sigwait starts the drain */
    }
out:
    http1_free(&hp);
    buf_free(&res.body);
    close(rq->fd);
    atomic_fetch_sub(&a->inflight, 1);
    free(rq);
    return NULL;
}

static int admin_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return 0;
}

static void admin_reload(struct admin *a)
{
    char err[512];
    int r = creds_reload_if_changed(a->px->creds, err, sizeof err);
    if (r > 0)
        log_info("credentials reloaded", "generation=%lu not_after=%lld", creds_generation(a->px->creds),
                 (long long)creds_not_after(a->px->creds));
    else if (r < 0)
        log_warn("credential reload failed, keeping the previous ones", "error=\"%s\"", err);
}

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    struct pollfd pf[3];
    int reload_ms = (int)a->px->cfg->reload_seconds * 1000;
    uint64_t last = clock_mono_ms(), now;
    for (;;) {
        int n = 0;
        pf[n++] = (struct pollfd){.fd = a->stop_pipe[0], .events = POLLIN};
        for (int i = 0; i < 2; i++)
            if (a->lfd[i] >= 0)
                pf[n++] = (struct pollfd){.fd = a->lfd[i], .events = POLLIN};
        int r = poll(pf, (nfds_t)n, reload_ms);
        now = clock_mono_ms();
        if (now - last >= (uint64_t)reload_ms) {
            admin_reload(a);
            last = now;
        }
        if (r <= 0)
            continue;
        if (pf[0].revents)
            break;
        for (int i = 1; i < n; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            int fd = accept4(pf[i].fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            if (atomic_fetch_add(&a->inflight, 1) >= ADMIN_MAX_INFLIGHT) {
                atomic_fetch_sub(&a->inflight, 1);
                static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
                                           "Connection: close\r\n\r\nbusy\n";
                admin_send_all(fd, busy, sizeof busy - 1);
                close(fd);
                continue;
            }
            struct admin_req *rq = xcalloc(1, sizeof *rq);
            rq->a = a;
            rq->fd = fd;
            rq->loopback = admin_is_loopback(&peer);
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, 256 * 1024);
            if (pthread_create(&t, &attr, admin_serve, rq) != 0) {
                close(fd);
                free(rq);
                atomic_fetch_sub(&a->inflight, 1);
            }
            pthread_attr_destroy(&attr);
        }
    }
    return NULL;
}

struct admin *admin_start(struct proxy *px, char *err, size_t errlen)
{
    struct admin *a = xcalloc(1, sizeof *a);
    int r;
    a->px = px;
    a->lfd[0] = a->lfd[1] = -1;
    if ((r = admin_listen(AF_INET, px->cfg->admin_port, &a->lfd[0])) < 0) {
        errbuf_set(err, errlen, "WEFT_ADMIN_PORT=%u: listen: %s", px->cfg->admin_port, strerror(-r));
        goto fail;
    }
    if (admin_listen(AF_INET6, px->cfg->admin_port, &a->lfd[1]) < 0)
        a->lfd[1] = -1;
    if (pipe2(a->stop_pipe, O_CLOEXEC) < 0 || pthread_create(&a->thread, NULL, admin_main, a) != 0) {
        errbuf_set(err, errlen, "admin thread: %s", strerror(errno));
        goto fail;
    }
    return a;
fail:
    for (int i = 0; i < 2; i++)
        if (a->lfd[i] >= 0)
            close(a->lfd[i]);
    free(a);
    return NULL;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    ssize_t w = write(a->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(a->thread, NULL);
    /* Wait (bounded) for request threads, which use px. */
    for (int i = 0; i < 200 && atomic_load(&a->inflight) > 0; i++)
        usleep(10000);
    for (int i = 0; i < 2; i++)
        if (a->lfd[i] >= 0)
            close(a->lfd[i]);
    close(a->stop_pipe[0]);
    close(a->stop_pipe[1]);
    free(a);
}
