/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl stat --prometheus URL`'s I/O: the per-pod queries of stat.c over
 * Prometheus' HTTP API (GET /api/v1/query, HTTP/1.1, one request per
 * connection, lib/k8s's request writer and response reader), their answers
 * turned into each pod's metrics text by stat_prom_text(). https goes through
 * weftctl's one TLS client (kubeclient.c): the server verified against
 * --prometheus-ca or the system's CAs, for the URL's host. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "errbuf.h"
#include "k8s.h"
#include "kubeclient.h"
#include "stat.h"
#include "xalloc.h"

#define STAT_PROM_TIMEOUT_S 10
#define STAT_PROM_MAX_ANSWER (16 * 1024 * 1024)
#define STAT_PROM_MAX_CA (1024 * 1024) /* --prometheus-ca: PEM certificates */

/* Blocking connect, send and receive, each bounded by SO_SNDTIMEO /
 * SO_RCVTIMEO (Linux bounds connect() by the send timeout too). */
static int stat_prom_dial(const char *host, const char *port, const char *url, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res), fd = -1, e = EHOSTUNREACH;
    if (gai != 0) {
        errbuf_set(err, errlen, "--prometheus %s: %s", url, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    struct timeval tv = {STAT_PROM_TIMEOUT_S, 0};
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            e = errno == EINPROGRESS ? ETIMEDOUT : errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        errbuf_set(err, errlen, "--prometheus %s: connect: %s", url, strerror(e));
    return fd < 0 ? -e : fd;
}

/* RFC 3986 percent-encoding of a query value. */
static void stat_prom_encode(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            buf_append(b, s, 1);
        else
            buf_appendf(b, "%%%02X", c);
    }
}

/* One GET over plain HTTP; 0 with the answer's body in body, or a negative
 * errno with err. */
static int stat_prom_get_plain(const char *host, const char *port, const char *path, const char *url,
                               long *status, struct buf *body, char *err, size_t errlen)
{
    struct buf req;
    struct k8s_http_response resp;
    int fd = -1, rc;
    buf_init(&req, 64 * 1024);
    k8s_http_response_init(&resp, STAT_PROM_MAX_ANSWER);
    if ((rc = k8s_http_request_head(&req, "GET", path, host, port, NULL, 0, 0)) < 0) {
        errbuf_set(err, errlen, "--prometheus %s: cannot write the request (%s)", url, strerror(-rc));
        goto out;
    }
    if ((fd = rc = stat_prom_dial(host, port, url, err, errlen)) < 0)
        goto out;
    for (size_t off = 0; off < req.len;) {
        ssize_t w = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            rc = w < 0 ? -errno : -EPIPE;
            errbuf_set(err, errlen, "--prometheus %s: sending the query: %s", url, strerror(-rc));
            goto out;
        }
        off += (size_t)w;
    }
    for (;;) {
        char chunk[16384];
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r < 0) {
            rc = -errno;
            errbuf_set(err, errlen, "--prometheus %s: %s", url,
                       errno == EAGAIN ? "no answer within 10 s" : strerror(errno));
            goto out;
        }
        size_t used;
        int fr = r == 0 ? k8s_http_response_eof(&resp) : k8s_http_response_feed(&resp, chunk, (size_t)r, &used);
        if (fr == 1)
            break;
        if (fr < 0 || r == 0) {
            rc = fr == -EFBIG ? -EFBIG : -EBADMSG;
            errbuf_set(err, errlen, "--prometheus %s: %s", url,
                       fr == -EFBIG ? "the answer is larger than 16 MiB" : "the answer is not HTTP");
            goto out;
        }
    }
    *status = resp.status;
    rc = resp.body.len ? buf_append(body, resp.body.data, resp.body.len) : 0;
out:
    if (fd >= 0)
        close(fd);
    k8s_http_response_free(&resp);
    buf_free(&req);
    return rc;
}

/* One GET, over tc when it is https; 0 with the JSON answer in *out (a new
 * reference), or a negative errno with err. */
static int stat_prom_get(struct kubeclient *tc, const char *host, const char *port, const char *path,
                         const char *url, json_t **out, char *err, size_t errlen)
{
    struct buf body;
    long status = 0;
    int rc;
    buf_init(&body, STAT_PROM_MAX_ANSWER);
    if (tc) {
        char kerr[1024];
        if ((rc = kubeclient_raw(tc, "GET", path, NULL, &status, &body, kerr, sizeof kerr)) < 0)
            errbuf_set(err, errlen, "--prometheus %s", kerr); /* kerr starts with https://host:port */
    } else {
        rc = stat_prom_get_plain(host, port, path, url, &status, &body, err, errlen);
    }
    if (rc < 0)
        goto out;
    json_error_t je;
    *out = json_loadb(body.data ? body.data : "", body.len, 0, &je);
    if (!*out) {
        rc = -EBADMSG;
        errbuf_set(err, errlen, "--prometheus %s: HTTP %ld, not JSON (%s): is this Prometheus' HTTP API?", url,
                   status, je.text);
    }
out:
    buf_free(&body);
    return rc;
}

/* The TLS client for an https Prometheus: no credentials, its CA from
 * ca_file or the system's. NULL with err. */
static struct kubeclient *stat_prom_tls(const char *host, const char *port, const char *ca_file, char *err,
                                        size_t errlen)
{
    struct kube_target t;
    struct buf ca;
    struct kubeclient *c = NULL;
    memset(&t, 0, sizeof t);
    buf_init(&ca, STAT_PROM_MAX_CA);
    snprintf(t.host, sizeof t.host, "%s", host);
    snprintf(t.port, sizeof t.port, "%s", port);
    if (ca_file) {
        int rc = buf_read_file(&ca, ca_file);
        if (rc < 0) {
            errbuf_set(err, errlen, "--prometheus-ca %s: %s", ca_file,
                       rc == -E2BIG ? "larger than 1 MiB" : strerror(-rc));
            goto out;
        }
        t.ca.data = ca.data;
        t.ca.len = ca.len;
        t.ca.file = (char *)ca_file; /* borrowed, for messages */
    }
    c = kubeclient_new_named(&t, "--prometheus-ca",
                             ca_file ? "check --prometheus-ca" : "give the Prometheus' CA with --prometheus-ca",
                             err, errlen);
out:
    buf_free(&ca);
    return c;
}

json_t *stat_prom_fetch(const char *url, const char *ca_file, unsigned window, long long at, char *err,
                        size_t errlen)
{
    char host[256], port[8], prefix[512], q[1024];
    int tls;
    struct kubeclient *tc = NULL;
    if (stat_prom_url(url, &tls, host, sizeof host, port, sizeof port, prefix, sizeof prefix, err, errlen) < 0)
        return NULL;
    if (tls && !(tc = stat_prom_tls(host, port, ca_file, err, errlen)))
        return NULL;
    json_t *texts = json_object();
    struct buf path;
    buf_init(&path, 8192);
    for (int i = 0; i < STAT_NQUERIES; i++) {
        stat_prom_query(i, window, q, sizeof q);
        buf_reset(&path);
        buf_appendf(&path, "%s/api/v1/query?query=", prefix);
        stat_prom_encode(&path, q);
        if (at)
            buf_appendf(&path, "&time=%lld", at);
        json_t *answer = NULL;
        char qerr[1024] = "";
        if (stat_prom_get(tc, host, port, buf_cstr(&path), url, &answer, err, errlen) < 0 ||
            stat_prom_text(i, answer, texts, qerr, sizeof qerr) < 0) {
            if (qerr[0])
                errbuf_set(err, errlen, "--prometheus %s: %s (query: %s)", url, qerr, q);
            json_decref(answer);
            json_decref(texts);
            texts = NULL;
            break;
        }
        json_decref(answer);
    }
    buf_free(&path);
    kubeclient_free(tc);
    return texts;
}
