/* SPDX-License-Identifier: Apache-2.0 */
/* Drives proxy/identity_client.c with the proxy's real credential store for
 * tests/integration/test_identity_client.py. It starts the client, then every
 * INTERVAL_MS prints one JSON line: the store's generation, notAfter and
 * readiness, whether a long-lived mTLS connection (made from the store's
 * contexts once the first certificate arrived) still carries data both ways,
 * and the serial a brand-new handshake presents.
 * At the end, the client's metrics.
 *   idc_driver ADDR SERVER_NAME TOKEN_FILE BUNDLE NAMESPACE SA SECONDS INTERVAL_MS */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "creds.h"
#include "identity_client.h"

struct pair {
    SSL *srv, *cli;
    struct creds_peer psrv, pcli;
    int fds[2];
};

static void pair_free(struct pair *p)
{
    SSL_free(p->srv);
    SSL_free(p->cli);
    close(p->fds[0]);
    close(p->fds[1]);
    memset(p, 0, sizeof *p);
}

/* Both ends of an mTLS connection over a socketpair, handshaken in turns. */
static int pair_open(struct creds *creds, struct pair *p)
{
    memset(p, 0, sizeof *p);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds) < 0)
        return -1;
    SSL_CTX *sctx = creds_server_ctx(creds), *cctx = creds_client_ctx(creds);
    if (!sctx || !cctx) {
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
        return -1;
    }
    p->srv = SSL_new(sctx);
    p->cli = SSL_new(cctx);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    SSL_set_fd(p->srv, p->fds[0]);
    SSL_set_fd(p->cli, p->fds[1]);
    creds_ssl_attach(p->srv, &p->psrv);
    creds_ssl_attach(p->cli, &p->pcli);
    SSL_set_accept_state(p->srv);
    SSL_set_connect_state(p->cli);
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 1000 && !(sdone && cdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(p->cli);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ && SSL_get_error(p->cli, r) != SSL_ERROR_WANT_WRITE)
                return -1;
        }
        if (!sdone) {
            int r = SSL_do_handshake(p->srv);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(p->srv, r) != SSL_ERROR_WANT_READ && SSL_get_error(p->srv, r) != SSL_ERROR_WANT_WRITE)
                return -1;
        }
    }
    return sdone && cdone ? 0 : -1;
}

static int xfer(SSL *from, SSL *to, const char *msg)
{
    char buf[64];
    size_t n = strlen(msg);
    if (SSL_write(from, msg, (int)n) != (int)n)
        return -1;
    for (int i = 0; i < 1000; i++) {
        int r = SSL_read(to, buf, sizeof buf);
        if (r > 0)
            return (size_t)r == n && memcmp(buf, msg, n) == 0 ? 0 : -1;
        if (SSL_get_error(to, r) != SSL_ERROR_WANT_READ)
            return -1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void serial_hex(X509 *x, char *out, size_t outlen)
{
    snprintf(out, outlen, "-");
    if (!x)
        return;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(out, outlen, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: see the top of idc_driver.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct creds *creds = creds_new("cluster.local");
    char err[512];
    if (creds_load_files(creds, NULL, NULL, argv[4], err, sizeof err) < 0) {
        fprintf(stderr, "bundle: %s\n", err);
        return 1;
    }
    struct proxy_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.identity_addr = argv[1];
    cfg.identity_server_name = argv[2];
    cfg.token_file = argv[3];
    cfg.trust_bundle = argv[4];
    cfg.pod_namespace = argv[5];
    cfg.service_account = argv[6];
    cfg.trust_domain = (char *)"cluster.local";
    cfg.pod_name = (char *)"driver";
    int rc = identity_client_start(NULL, creds, &cfg);
    printf("{\"start\":%d}\n", rc);
    fflush(stdout);
    if (rc < 0)
        return 1;
    long total_ms = strtol(argv[7], NULL, 10) * 1000, step = strtol(argv[8], NULL, 10);
    struct pair long_conn;
    int have_long = 0, long_ok = 1;
    for (long t = 0; t <= total_ms; t += step) {
        if (!have_long && creds_ready(creds)) {
            have_long = pair_open(creds, &long_conn) == 0;
            if (!have_long)
                long_ok = 0;
        }
        char long_serial[80] = "-", new_serial[80] = "-";
        if (have_long) {
            if (xfer(long_conn.cli, long_conn.srv, "ping") < 0 || xfer(long_conn.srv, long_conn.cli, "pong") < 0)
                long_ok = 0;
            serial_hex(SSL_get0_peer_certificate(long_conn.cli), long_serial, sizeof long_serial);
        }
        if (creds_ready(creds)) {
            struct pair fresh;
            if (pair_open(creds, &fresh) == 0) {
                serial_hex(SSL_get0_peer_certificate(fresh.cli), new_serial, sizeof new_serial);
                pair_free(&fresh);
            } else {
                snprintf(new_serial, sizeof new_serial, "handshake-failed");
            }
        }
        printf("{\"t\":%ld,\"gen\":%lu,\"ready\":%d,\"not_after\":%lld,\"long\":%s,\"long_serial\":\"%s\","
               "\"new_serial\":\"%s\"}\n",
               t, creds_generation(creds), creds_ready(creds), (long long)creds_not_after(creds),
               have_long ? (long_ok ? "true" : "false") : "null", long_serial, new_serial);
        fflush(stdout);
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    identity_client_stop();
    struct buf b;
    buf_init(&b, 4096);
    identity_client_render_metrics(&b);
    json_t *m = json_pack("{s:s}", "metrics", b.data ? b.data : "");
    char *text = json_dumps(m, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(m);
    buf_free(&b);
    if (have_long)
        pair_free(&long_conn);
    creds_free(creds);
    return 0;
}
