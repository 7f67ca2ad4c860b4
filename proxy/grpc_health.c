/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"
#include "errbuf.h"
#include "grpc_health.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <nghttp2/nghttp2.h>

/* ---- messages: a 5-byte gRPC prefix (compressed flag, big-endian length),
 * then protobuf; both messages have one field, number 1. ---- */

int grpc_health_request(const char *service, unsigned char *out, size_t outlen)
{
    size_t n = strlen(service);
    if (n > GRPC_HEALTH_MAX_SERVICE)
        return -EINVAL;
    /* field 1, wire type 2 (length-delimited), then a varint length: at most
     * two bytes for the limit above. proto3 omits an empty string. */
    size_t msg = n ? 1 + (n < 128 ? 1 : 2) + n : 0;
    if (outlen < 5 + msg)
        return -ENOSPC;
    out[0] = 0;
    out[1] = (unsigned char)(msg >> 24);
    out[2] = (unsigned char)(msg >> 16);
    out[3] = (unsigned char)(msg >> 8);
    out[4] = (unsigned char)msg;
    size_t off = 5;
    if (n) {
        out[off++] = 0x0a;
        if (n < 128) {
            out[off++] = (unsigned char)n;
        } else {
            out[off++] = (unsigned char)(0x80 | (n & 0x7f));
            out[off++] = (unsigned char)(n >> 7);
        }
        memcpy(out + off, service, n);
        off += n;
    }
    return (int)off;
}

static int varint(const unsigned char *p, size_t len, size_t *off, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*off >= len)
            return -EBADMSG;
        unsigned char b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -EBADMSG;
}

int grpc_health_parse_response(const unsigned char *body, size_t len, int *status)
{
    if (len < 5 || body[0] != 0)
        return -EBADMSG; /* truncated, or compressed (we never offer an encoding) */
    size_t msg = (size_t)body[1] << 24 | (size_t)body[2] << 16 | (size_t)body[3] << 8 | body[4];
    if (msg != len - 5)
        return -EBADMSG;
    const unsigned char *p = body + 5;
    size_t off = 0;
    *status = GRPC_STATUS_UNKNOWN;
    while (off < msg) {
        uint64_t key, v;
        if (varint(p, msg, &off, &key) < 0)
            return -EBADMSG;
        switch (key & 7) {
        case 0:
            if (varint(p, msg, &off, &v) < 0)
                return -EBADMSG;
            if (key >> 3 == 1)
                *status = v > 1000 ? -1 : (int)v;
            break;
        case 1:
            if (msg - off < 8)
                return -EBADMSG;
            off += 8;
            break;
        case 2:
            if (varint(p, msg, &off, &v) < 0 || v > msg - off)
                return -EBADMSG;
            off += (size_t)v;
            break;
        case 5:
            if (msg - off < 4)
                return -EBADMSG;
            off += 4;
            break;
        default: return -EBADMSG;
        }
    }
    return 0;
}

const char *grpc_health_status_name(int status)
{
    switch (status) {
    case GRPC_STATUS_UNKNOWN: return "UNKNOWN";
    case GRPC_STATUS_SERVING: return "SERVING";
    case GRPC_STATUS_NOT_SERVING: return "NOT_SERVING";
    case GRPC_STATUS_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
    }
    return "unrecognized";
}

/* ---- the call: one HTTP/2 stream driven by nghttp2 over a blocking socket ---- */

struct call {
    int fd;
    int32_t stream;
    int closed;
    int http_status;
    int grpc_status; /* -1 until the trailers carry it */
    char grpc_message[64];
    unsigned char request[5 + 3 + GRPC_HEALTH_MAX_SERVICE];
    size_t request_len, request_sent;
    unsigned char response[GRPC_HEALTH_MAX_RESPONSE];
    size_t response_len;
    int response_too_large;
};

static ssize_t call_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)s;
    (void)flags;
    struct call *c = user;
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return n;
}

static ssize_t call_read_body(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t len, uint32_t *flags,
                              nghttp2_data_source *src, void *user)
{
    (void)s;
    (void)stream;
    (void)src;
    struct call *c = user;
    size_t n = c->request_len - c->request_sent;
    if (n > len)
        n = len;
    memcpy(buf, c->request + c->request_sent, n);
    c->request_sent += n;
    if (c->request_sent == c->request_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int header_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int small_uint(const uint8_t *v, size_t len)
{
    int n = 0;
    if (len == 0 || len > 4)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

static int call_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)s;
    (void)flags;
    struct call *c = user;
    if (frame->hd.stream_id != c->stream)
        return 0;
    if (header_is(name, namelen, ":status"))
        c->http_status = small_uint(value, valuelen);
    else if (header_is(name, namelen, "grpc-status"))
        c->grpc_status = small_uint(value, valuelen);
    else if (header_is(name, namelen, "grpc-message"))
        snprintf(c->grpc_message, sizeof c->grpc_message, "%.*s", (int)valuelen, (const char *)value);
    return 0;
}

static int call_data(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    (void)flags;
    struct call *c = user;
    if (stream != c->stream)
        return 0;
    if (len > sizeof c->response - c->response_len) {
        c->response_too_large = 1;
        return 0;
    }
    memcpy(c->response + c->response_len, data, len);
    c->response_len += len;
    return 0;
}

static int call_close(nghttp2_session *s, int32_t stream, uint32_t code, void *user)
{
    (void)s;
    (void)code;
    struct call *c = user;
    if (stream == c->stream)
        c->closed = 1;
    return 0;
}

static long long now_ms(void)
{
    return (long long)clock_mono_ms();
}

/* Sends and receives until the stream closes: 0, or -1 with detail set. */
static int call_run(nghttp2_session *session, struct call *c, long long deadline, char *detail, size_t detaillen)
{
    unsigned char buf[16384];
    while (!c->closed) {
        int rv = nghttp2_session_send(session);
        if (rv != 0) {
            errbuf_set(detail, detaillen, "http2: %s", nghttp2_strerror(rv));
            return -1;
        }
        if (c->closed)
            break;
        if (!nghttp2_session_want_read(session)) {
            errbuf_set(detail, detaillen, "http2: the connection ended before the answer");
            return -1;
        }
        long long left = deadline - now_ms();
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            errbuf_set(detail, detaillen, "grpc: no answer in time");
            return -1;
        }
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0) {
            errbuf_set(detail, detaillen, "grpc: connection closed before the answer");
            return -1;
        }
        ssize_t used = nghttp2_session_mem_recv(session, buf, (size_t)n);
        if (used < 0) {
            errbuf_set(detail, detaillen, "http2: %s (not a gRPC server?)", nghttp2_strerror((int)used));
            return -1;
        }
    }
    return 0;
}

int grpc_health_check(int fd, const char *authority, const char *service, unsigned timeout_ms, char *detail,
                      size_t detaillen)
{
    struct call call = {.fd = fd, .grpc_status = -1}, *c = &call;
    int n = grpc_health_request(service, c->request, sizeof c->request);
    if (n < 0) {
        errbuf_set(detail, detaillen, "grpc: service name over %d bytes", GRPC_HEALTH_MAX_SERVICE);
        return 0;
    }
    c->request_len = (size_t)n;

    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_session *session = NULL;
    int ok = 0;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        errbuf_set(detail, detaillen, "out of memory");
        return 0;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, call_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, call_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, call_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, call_close);
    if (nghttp2_session_client_new(&session, cbs, c) != 0) {
        errbuf_set(detail, detaillen, "out of memory");
        goto out;
    }
    const nghttp2_nv headers[] = {
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":path", "/grpc.health.v1.Health/Check"),
        NV(":authority", authority),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "kube-probe/weft"),
#undef NV
    };
    nghttp2_data_provider body = {.read_callback = call_read_body};
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0);
    c->stream = nghttp2_submit_request(session, NULL, headers, sizeof headers / sizeof *headers, &body, NULL);
    if (c->stream < 0) {
        errbuf_set(detail, detaillen, "http2: %s", nghttp2_strerror(c->stream));
        goto out;
    }
    if (call_run(session, c, now_ms() + timeout_ms, detail, detaillen) < 0)
        goto out;

    int status;
    if (c->http_status != 200)
        errbuf_set(detail, detaillen, "grpc: http status %d", c->http_status);
    else if (c->grpc_status < 0)
        errbuf_set(detail, detaillen, "grpc: no grpc-status in the answer");
    else if (c->grpc_status != 0)
        errbuf_set(detail, detaillen, "grpc-status %d %.60s", c->grpc_status, c->grpc_message);
    else if (c->response_too_large || grpc_health_parse_response(c->response, c->response_len, &status) < 0)
        errbuf_set(detail, detaillen, "grpc: the answer is not a HealthCheckResponse");
    else if (!(ok = status == GRPC_STATUS_SERVING))
        errbuf_set(detail, detaillen, "grpc: service \"%.40s\" is %s", service, grpc_health_status_name(status));
    else
        errbuf_set(detail, detaillen, "grpc: service \"%.40s\" is SERVING", service);
out:
    nghttp2_session_del(session);
    nghttp2_session_callbacks_del(cbs);
    return ok;
}
