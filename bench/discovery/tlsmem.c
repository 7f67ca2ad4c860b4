/* SPDX-License-Identifier: Apache-2.0 */
/* The heap OpenSSL holds per server-side connection once it is up: N TLS
 * 1.3 connections over socketpairs with discovery/server.c's SSL_CTX
 * settings (client certificate required, no tickets, no session cache,
 * SSL_MODE_RELEASE_BUFFERS), one record each way, then the clients freed.
 * Prints the heap in use (mallinfo2) per connection; run under heaptrack,
 * what is still allocated at exit is the servers' (heaptrack_print -l).
 *   cc -O2 -o tlsmem bench/discovery/tlsmem.c -lssl -lcrypto
 *   ./tlsmem CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY   (the files run.sh makes) */
#include <fcntl.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/socket.h>

#define TLSMEM_N 400

static size_t heap_used(void)
{
    return mallinfo2().uordblks;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: tlsmem CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY\n");
        return 2;
    }
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(sctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(sctx, argv[1], NULL) != 1 || SSL_CTX_load_verify_locations(cctx, argv[1], NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(cctx, argv[4]) != 1 ||
        SSL_CTX_use_PrivateKey_file(cctx, argv[5], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_mode(sctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(sctx, 0);
    SSL_CTX_set_mode(cctx, SSL_MODE_RELEASE_BUFFERS);
    static SSL *s[TLSMEM_N], *c[TLSMEM_N];
    size_t base = heap_used();
    for (int i = 0; i < TLSMEM_N; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
            perror("socketpair");
            return 1;
        }
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
        c[i] = SSL_new(cctx);
        SSL_set_fd(c[i], sv[0]);
        SSL_set_connect_state(c[i]);
        s[i] = SSL_new(sctx);
        SSL_set_fd(s[i], sv[1]);
        SSL_set_accept_state(s[i]);
        for (int k = 0; k < 20 && !(SSL_is_init_finished(c[i]) && SSL_is_init_finished(s[i])); k++) {
            SSL_do_handshake(c[i]);
            SSL_do_handshake(s[i]);
        }
        char buf[256];
        SSL_write(c[i], "hello", 5);
        SSL_read(s[i], buf, sizeof buf);
        SSL_write(s[i], "world", 5);
        SSL_read(c[i], buf, sizeof buf);
        if (!SSL_is_init_finished(s[i])) {
            fprintf(stderr, "tlsmem: handshake %d did not finish\n", i);
            return 1;
        }
    }
    for (int i = 0; i < TLSMEM_N; i++)
        SSL_free(c[i]);
    printf("server side: %zu bytes of heap per connection (%d connections)\n", (heap_used() - base) / TLSMEM_N,
           TLSMEM_N);
    return 0;
}
