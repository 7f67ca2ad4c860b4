/* SPDX-License-Identifier: Apache-2.0 */
/* A client proxy's side of weft/h2, for tests/integration/test_proxy_http2.py:
 * TLS 1.3 with a workload certificate and ALPN weft/h2 (OpenSSL, blocking),
 * then one HTTP/2 request over proxy/http_h2.c's client role, with the hop
 * header weft-proto when given. Prints "STATUS BODY" (or "reset CODE").
 *   weft_h2_client HOST PORT CA CERT KEY PATH PROTO|-   */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_h2.h"

static char status[8] = "-", body[65536];
static size_t blen;
static int closed;
static uint32_t close_code;

static void on_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n, int end)
{
    (void)ctx, (void)st, (void)end;
    const struct h2_field *s = h2_field_find(f, n, ":status");
    if (kind == H2_BLOCK_HEAD && s)
        snprintf(status, sizeof status, "%.*s", (int)s->valuelen, s->value);
}

static void on_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    h2_conn *h = *(h2_conn **)ctx;
    if (blen + len < sizeof body) {
        memcpy(body + blen, p, len);
        blen += len;
    }
    h2_consume(h, st, len);
}

static void on_end(void *ctx, h2_stream *st)
{
    (void)ctx, (void)st;
}

static void on_close(void *ctx, h2_stream *st, uint32_t code)
{
    (void)ctx, (void)st;
    closed = 1;
    close_code = code;
}

static void on_writable(void *ctx, h2_stream *st)
{
    (void)ctx, (void)st;
}

static void on_goaway(void *ctx, int32_t last, uint32_t code)
{
    (void)ctx, (void)last, (void)code;
}

static const struct h2_events events = {on_headers, on_data, on_end, on_close, on_writable, on_goaway};

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: weft_h2_client HOST PORT CA CERT KEY PATH PROTO|-\n");
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char alpn[] = "\x07weft/h2";
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1 || SSL_CTX_use_certificate_chain_file(ctx, argv[4]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[5], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)strtol(argv[2], NULL, 10))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    h2_conn *h = NULL;
    h = h2_new(H2_CLIENT, NULL, &events, &h);
    struct h2_field f[6] = {
        {":method", 7, "GET", 3}, {":scheme", 7, "http", 4}, {":authority", 10, argv[1], strlen(argv[1])},
        {":path", 5, argv[6], strlen(argv[6])},
    };
    size_t n = 4;
    if (strcmp(argv[7], "-") != 0)
        f[n++] = (struct h2_field){"weft-proto", 10, argv[7], strlen(argv[7])};
    int err;
    if (!h2_submit_request(h, f, n, 1, NULL, &err))
        return 1;
    while (!closed) {
        const uint8_t *p;
        size_t len;
        while (h2_output(h, &p, &len) == 0 && len > 0) {
            if (SSL_write(ssl, p, (int)len) <= 0)
                return 1;
            h2_sent(h, len);
        }
        uint8_t buf[16384];
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0 || h2_input(h, buf, (size_t)r) < 0) {
            fprintf(stderr, "connection ended before the stream did\n");
            return 1;
        }
    }
    if (close_code)
        printf("reset %u\n", close_code);
    else
        printf("%s %.*s", status, (int)blen, body);
    h2_free(h);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
