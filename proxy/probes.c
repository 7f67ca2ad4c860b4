/* SPDX-License-Identifier: Apache-2.0 */
/* WEFT_APP_PROBES parsing (pure, jansson) and the blocking probe runner used
 * by the admin thread. Success follows the kubelet: HTTP status 200-399, a
 * TCP connection that opens, or a gRPC health check answered SERVING. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "errbuf.h"
#include "grpc_health.h"
#include "handoff.h"
#include "http1.h"
#include "probes.h"
#include "spiffe.h"
#include "xalloc.h"

const char *probes_kind_name(enum probe_kind k)
{
    switch (k) {
    case PROBE_LIVEZ: return "livez";
    case PROBE_READYZ: return "readyz";
    case PROBE_STARTUPZ: return "startupz";
    }
    return "?";
}

static int probes_parse_kind(const char *s, enum probe_kind *k)
{
    for (int i = PROBE_LIVEZ; i <= PROBE_STARTUPZ; i++)
        if (strcmp(s, probes_kind_name((enum probe_kind)i)) == 0) {
            *k = (enum probe_kind)i;
            return 0;
        }
    return -EINVAL;
}

/* Header names are HTTP tokens; values and paths must not smuggle CR, LF or
 * other control bytes into the request we write. */
static int probes_valid_token(const char *s)
{
    if (!*s || strlen(s) > PROBES_MAX_HEADER)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!(*p > 32 && *p < 127) || strchr("()<>@,;:\\\"/[]?={}", *p))
            return 0;
    return 1;
}

static int probes_valid_text(const char *s, size_t max, int allow_space)
{
    if (strlen(s) > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 32 || *p == 127 || (*p == ' ' && !allow_space))
            return 0;
    return 1;
}

static int probes_get_port(json_t *v, uint16_t *port)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
        return -EINVAL;
    *port = (uint16_t)json_integer_value(v);
    return 0;
}

static int probes_parse_http(json_t *h, struct probe *p, char *err, size_t errlen)
{
    json_t *path = json_object_get(h, "path"), *scheme = json_object_get(h, "scheme");
    json_t *hdrs = json_object_get(h, "httpHeaders");
    p->type = PROBE_HTTP;
    if (probes_get_port(json_object_get(h, "port"), &p->port) < 0) {
        errbuf_set(err, errlen, "httpGet.port must be an integer 1-65535");
        return -EINVAL;
    }
    const char *ps = "/";
    if (path) {
        if (!json_is_string(path) || json_string_value(path)[0] != '/' ||
            !probes_valid_text(json_string_value(path), PROBES_MAX_PATH, 0)) {
            errbuf_set(err, errlen, "httpGet.path must be a string starting with '/' without spaces or controls");
            return -EINVAL;
        }
        ps = json_string_value(path);
    }
    p->path = xstrdup(ps);
    if (scheme) {
        const char *s = json_is_string(scheme) ? json_string_value(scheme) : "";
        if (strcmp(s, "HTTP") == 0)
            p->https = 0;
        else if (strcmp(s, "HTTPS") == 0)
            p->https = 1;
        else {
            errbuf_set(err, errlen, "httpGet.scheme must be HTTP or HTTPS");
            return -EINVAL;
        }
    }
    if (hdrs) {
        if (!json_is_array(hdrs) || json_array_size(hdrs) > PROBES_MAX_HEADERS) {
            errbuf_set(err, errlen, "httpGet.httpHeaders must be an array of at most %d", PROBES_MAX_HEADERS);
            return -EINVAL;
        }
        size_t i;
        json_t *e;
        json_array_foreach(hdrs, i, e) {
            json_t *n = json_object_get(e, "name"), *v = json_object_get(e, "value");
            if (!json_is_string(n) || !json_is_string(v) || !probes_valid_token(json_string_value(n)) ||
                !probes_valid_text(json_string_value(v), PROBES_MAX_HEADER, 1)) {
                errbuf_set(err, errlen, "httpGet.httpHeaders[%zu] needs a token name and a printable value", i);
                return -EINVAL;
            }
            if (strcasecmp(json_string_value(n), "Host") == 0) {
                free(p->host);
                p->host = xstrdup(json_string_value(v));
                continue;
            }
            p->headers[p->nheaders].name = xstrdup(json_string_value(n));
            p->headers[p->nheaders].value = xstrdup(json_string_value(v));
            p->nheaders++;
        }
    }
    return 0;
}

static int probes_parse_grpc(json_t *g, struct probe *p, char *err, size_t errlen)
{
    p->type = PROBE_GRPC;
    if (!json_is_object(g) || probes_get_port(json_object_get(g, "port"), &p->port) < 0) {
        errbuf_set(err, errlen, "grpc.port must be an integer 1-65535");
        return -EINVAL;
    }
    json_t *svc = json_object_get(g, "service");
    if (svc && (!json_is_string(svc) || !probes_valid_text(json_string_value(svc), GRPC_HEALTH_MAX_SERVICE, 1))) {
        errbuf_set(err, errlen, "grpc.service must be a string of at most %d bytes without control characters",
                 GRPC_HEALTH_MAX_SERVICE);
        return -EINVAL;
    }
    p->service = xstrdup(svc ? json_string_value(svc) : "");
    return 0;
}

static int probes_parse_one(const char *key, json_t *v, struct probe *p, char *err, size_t errlen)
{
    const char *slash = strchr(key, '/');
    if (!slash || !spiffe_valid_namespace(key, (size_t)(slash - key)) || probes_parse_kind(slash + 1, &p->kind) < 0) {
        errbuf_set(err, errlen, "key must be <container>/<livez|readyz|startupz>");
        return -EINVAL;
    }
    p->container = xstrndup(key, (size_t)(slash - key));
    if (!json_is_object(v)) {
        errbuf_set(err, errlen, "value must be an object");
        return -EINVAL;
    }
    p->timeout_ms = 1000;
    json_t *t = json_object_get(v, "timeoutSeconds");
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 3600) {
            errbuf_set(err, errlen, "timeoutSeconds must be an integer 1-3600");
            return -EINVAL;
        }
        p->timeout_ms = (unsigned)json_integer_value(t) * 1000u;
    }
    json_t *h = json_object_get(v, "httpGet"), *tcp = json_object_get(v, "tcpSocket");
    json_t *grpc = json_object_get(v, "grpc");
    if (!!h + !!tcp + !!grpc != 1) {
        errbuf_set(err, errlen, "exactly one of httpGet, tcpSocket and grpc is required");
        return -EINVAL;
    }
    if (grpc)
        return probes_parse_grpc(grpc, p, err, errlen);
    if (h) {
        if (!json_is_object(h)) {
            errbuf_set(err, errlen, "httpGet must be an object");
            return -EINVAL;
        }
        return probes_parse_http(h, p, err, errlen);
    }
    p->type = PROBE_TCP;
    if (!json_is_object(tcp) || probes_get_port(json_object_get(tcp, "port"), &p->port) < 0) {
        errbuf_set(err, errlen, "tcpSocket.port must be an integer 1-65535");
        return -EINVAL;
    }
    return 0;
}

int probes_parse(const char *json, size_t len, struct probes *out, char *err, size_t errlen)
{
    char perr[200] = "";
    int r = 0;
    memset(out, 0, sizeof *out);
    if (len == 0)
        return 0;
    if (len > PROBES_MAX_JSON) {
        errbuf_set(err, errlen, "larger than %d bytes", PROBES_MAX_JSON);
        return -EINVAL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr); /* new reference, ours */
    if (!root) {
        errbuf_set(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        errbuf_set(err, errlen, "must be a JSON object");
        r = -EINVAL;
        goto out;
    }
    if (json_object_size(root) > PROBES_MAX) {
        errbuf_set(err, errlen, "more than %d probes", PROBES_MAX);
        r = -EINVAL;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        struct probe *p = &out->items[out->n++];
        if (probes_parse_one(key, v, p, perr, sizeof perr) < 0) {
            errbuf_set(err, errlen, "\"%.100s\": %s", key, perr);
            r = -EINVAL;
            goto out;
        }
    }
out:
    json_decref(root);
    if (r < 0)
        probes_free(out);
    return r;
}

void probes_free(struct probes *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct probe *p = &ps->items[i];
        free(p->container);
        free(p->path);
        free(p->service);
        free(p->host);
        for (size_t j = 0; j < p->nheaders; j++) {
            free(p->headers[j].name);
            free(p->headers[j].value);
        }
    }
    memset(ps, 0, sizeof *ps);
}

const struct probe *probes_find(const struct probes *ps, const char *container, const char *kind)
{
    enum probe_kind k;
    if (probes_parse_kind(kind, &k) < 0)
        return NULL;
    for (size_t i = 0; i < ps->n; i++)
        if (ps->items[i].kind == k && strcmp(ps->items[i].container, container) == 0)
            return &ps->items[i];
    return NULL;
}

int probes_format_request(const struct probe *p, const char *default_host, char *out, size_t outlen)
{
    size_t off = 0;
    int n = snprintf(out, outlen,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kube-probe/weft\r\nAccept: */*\r\n"
                     "Connection: close\r\n",
                     p->path, p->host ? p->host : default_host);
    if (n < 0 || (size_t)n >= outlen)
        return -ENOSPC;
    off = (size_t)n;
    for (size_t i = 0; i < p->nheaders; i++) {
        n = snprintf(out + off, outlen - off, "%s: %s\r\n", p->headers[i].name, p->headers[i].value);
        if (n < 0 || (size_t)n >= outlen - off)
            return -ENOSPC;
        off += (size_t)n;
    }
    n = snprintf(out + off, outlen - off, "\r\n");
    if (n < 0 || (size_t)n >= outlen - off)
        return -ENOSPC;
    return (int)(off + (size_t)n);
}

static void probes_set_timeout(int fd, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* Linux applies it to connect() too */
}

int probes_read_status(int fd, SSL *ssl, char *err, size_t errlen)
{
    struct http1_limits lim = {.max_head = PROBES_MAX_RESPONSE_HEAD, .max_fields = 1024};
    struct http1_parser p;
    char in[4096];
    int status = 0;
    http1_init(&p, HTTP1_RESPONSE, &lim);
    http1_response_to(&p, "GET", 3);
    for (;;) {
        int r = ssl ? SSL_read(ssl, in, (int)sizeof in) : (int)recv(fd, in, sizeof in, 0);
        if (r <= 0) {
            errbuf_set(err, errlen, "%s", r == 0 || ssl ? "closed before a status"
                                          : errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time"
                                                                                    : strerror(errno));
            goto out;
        }
        size_t off = 0;
        while (off < (size_t)r) {
            size_t used = 0;
            enum http1_event ev = http1_parse(&p, in + off, (size_t)r - off, &used, NULL, NULL);
            off += used;
            if (ev == HTTP1_ERROR) {
                errbuf_set(err, errlen, "%s", http1_strerror(p.error));
                goto out;
            }
            if (ev == HTTP1_HEAD && (p.msg.status >= 200 || p.msg.status == 101)) {
                status = p.msg.status; /* the body does not matter */
                goto out;
            }
        }
    }
out:
    http1_free(&p);
    return status;
}

/* Where the probe goes: pod_ip (IPv4 or IPv6) or, when empty, 127.0.0.1;
 * at gets "host:port" ("[v6]:port") for the Host header and the detail. */
static socklen_t probes_target(const char *pod_ip, uint16_t port, struct sockaddr_storage *to, char *at,
                               size_t atlen)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)to;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)to;
    memset(to, 0, sizeof *to);
    if (*pod_ip && inet_pton(AF_INET6, pod_ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        snprintf(at, atlen, "[%s]:%u", pod_ip, (unsigned)port);
        return sizeof *v6;
    }
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    if (!*pod_ip || inet_pton(AF_INET, pod_ip, &v4->sin_addr) != 1)
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    snprintf(at, atlen, "%s:%u", host, (unsigned)port);
    return sizeof *v4;
}

void probes_run(const struct probe *p, const char *pod_ip, struct probe_result *res)
{
    char req[8192], why[96], at[INET6_ADDRSTRLEN + 8];
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    memset(res, 0, sizeof *res);
    struct sockaddr_storage to;
    socklen_t tolen = probes_target(pod_ip, p->port, &to, at, sizeof at);
    int fd = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errbuf_set(res->detail, sizeof res->detail, "socket: %s", strerror(errno));
        return;
    }
    probes_set_timeout(fd, p->timeout_ms);
    if (*pod_ip && handoff_bind(fd, to.ss_family) < 0) {
        errbuf_set(res->detail, sizeof res->detail, "cannot bind the passthrough source");
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&to, tolen) < 0) {
        errbuf_set(res->detail, sizeof res->detail, "connect %s: %s", at, strerror(errno));
        goto out;
    }
    if (p->type == PROBE_TCP) {
        res->ok = 1;
        errbuf_set(res->detail, sizeof res->detail, "tcp %s open", at);
        goto out;
    }
    if (p->type == PROBE_GRPC) {
        res->ok = grpc_health_check(fd, at, p->service, p->timeout_ms, res->detail, sizeof res->detail);
        goto out;
    }
    int n = probes_format_request(p, at, req, sizeof req);
    if (n < 0) {
        errbuf_set(res->detail, sizeof res->detail, "request too large");
        goto out;
    }
    if (p->https) {
        /* Like the kubelet: TLS without certificate verification. */
        ctx = SSL_CTX_new(TLS_client_method());
        ssl = ctx ? SSL_new(ctx) : NULL;
        if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1 || SSL_write(ssl, req, n) != n) {
            errbuf_set(res->detail, sizeof res->detail, "tls to %s failed", at);
            goto out;
        }
    } else if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        errbuf_set(res->detail, sizeof res->detail, "send: %s", strerror(errno));
        goto out;
    }
    res->http_status = probes_read_status(fd, ssl, why, sizeof why);
    if (!res->http_status) {
        errbuf_set(res->detail, sizeof res->detail, "no HTTP status from %s: %s", at, why);
        goto out;
    }
    res->ok = res->http_status >= 200 && res->http_status < 400;
    errbuf_set(res->detail, sizeof res->detail, "http %d from %s%.60s", res->http_status, at, p->path);
out:
    if (ssl)
        SSL_free(ssl);
    if (ctx)
        SSL_CTX_free(ctx);
    close(fd);
}
