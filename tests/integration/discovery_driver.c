/* SPDX-License-Identifier: Apache-2.0 */
/* A full-duplex HTTP/2 client of weft-discovery's /v1/stream for
 * tests/integration/test_discovery.py, standing in for a proxy: what it reads
 * on stdin goes out as the request body as soon as it arrives, and the
 * response body is written to stdout as it arrives (curl -T - reads stdin in
 * blocking calls, so it cannot do both at once). TLS 1.3, ALPN h2, the given
 * client certificate; the server is verified against CA for 127.0.0.1.
 *
 *   discovery_driver PORT CA CERT KEY BIND_IP PATH
 * Exit 0 when the server ends the stream, 3 when TLS fails (the reason on
 * stderr), 4 on another connection error. stdin's end ends the request body.
 * DRIVER_NO_WINDOW=1: never give HTTP/2 flow-control credit back for what
 * arrives (no WINDOW_UPDATE): a proxy that does not read its answers, seen
 * from the server, while it still reads frames and sends what stdin gives.
 * DRIVER_NO_PING_ACK=1: never answer the server's HTTP/2 PINGs (a proxy that
 * reads but hangs above the socket, seen from the server's keep-alive). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char pending[1 << 20];
static size_t plen;
static int stdin_eof, deferred, stream_done;
static int32_t sid;

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    (void)s, (void)id, (void)src, (void)user;
    if (plen == 0) {
        if (stdin_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = plen < len ? plen : len;
    memcpy(buf, pending, n);
    memmove(pending, pending + n, plen - n);
    plen -= n;
    return (ssize_t)n;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)s, (void)flags, (void)id, (void)user;
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *user)
{
    (void)s, (void)f, (void)flags, (void)user;
    fprintf(stderr, "header %.*s: %.*s\n", (int)nl, name, (int)vl, value);
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    (void)s, (void)user;
    if (id == sid) {
        fprintf(stderr, "stream closed, error code %u\n", code);
        stream_done = 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: discovery_driver PORT CA CERT KEY BIND_IP PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1 ||
        (strcmp(argv[3], "-") != 0 && (SSL_CTX_use_certificate_chain_file(ctx, argv[3]) != 1 ||
                                       SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM) != 1))) {
        fprintf(stderr, "cannot load the credentials\n");
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET}, peer = {.sin_family = AF_INET};
    inet_pton(AF_INET, argv[5], &local.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    peer.sin_port = htons((uint16_t)atoi(argv[1]));
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0 || connect(fd, (struct sockaddr *)&peer, sizeof peer) < 0) {
        fprintf(stderr, "connect: %s\n", strerror(errno));
        return 4;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (SSL_connect(ssl) != 1) {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        fprintf(stderr, "TLS: %s\n", e);
        return 3;
    }
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session *h2;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    if (getenv("DRIVER_NO_WINDOW"))
        nghttp2_option_set_no_auto_window_update(opt, 1);
    if (getenv("DRIVER_NO_PING_ACK"))
        nghttp2_option_set_no_auto_ping_ack(opt, 1);
    nghttp2_session_client_new2(&h2, cbs, NULL, opt);
    nghttp2_option_del(opt);
    nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
    const char *path = argv[6];
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
        {(uint8_t *)":authority", (uint8_t *)"127.0.0.1", 10, 9, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/x-ndjson", 12, 20, 0},
    };
    nghttp2_data_provider prd = {.read_callback = body_read};
    sid = nghttp2_submit_request(h2, NULL, nv, 5, &prd, NULL);
    int rc = 4;
    for (;;) {
        const uint8_t *out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(h2, &out)) > 0)
            if (SSL_write(ssl, out, (int)n) <= 0)
                goto done;
        if (stream_done) {
            rc = 0;
            goto done;
        }
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = stdin_eof ? 0 : POLLIN}};
        if (SSL_pending(ssl) == 0 && poll(p, 2, -1) < 0)
            goto done;
        if (p[1].revents) {
            ssize_t r = read(0, pending + plen, sizeof pending - plen);
            if (r <= 0)
                stdin_eof = 1;
            else
                plen += (size_t)r;
            if (deferred) {
                deferred = 0;
                nghttp2_session_resume_data(h2, sid);
            }
        }
        if (p[0].revents || SSL_pending(ssl) > 0) {
            char in[16384];
            int r = SSL_read(ssl, in, sizeof in);
            if (r <= 0) {
                fprintf(stderr, "connection closed\n");
                goto done;
            }
            if (nghttp2_session_mem_recv(h2, (const uint8_t *)in, (size_t)r) < 0)
                goto done;
        }
    }
done:
    nghttp2_session_del(h2);
    nghttp2_session_callbacks_del(cbs);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}
