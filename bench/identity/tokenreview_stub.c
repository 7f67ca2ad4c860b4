/* SPDX-License-Identifier: Apache-2.0 */
/* A TokenReview endpoint for the weft-identity benchmark, so the API server's
 * cost is not what is measured: HTTPS (libmicrohttpd + GnuTLS, keep-alive),
 * POST /apis/authentication.k8s.io/v1/tokenreviews, parses the review and
 * answers 201 with the v1 shape for system:serviceaccount:bench:client and
 * the requested audiences. Not part of Weft; built by bench/identity/run.sh.
 *   tokenreview_stub PORT CERT KEY */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

struct body {
    char data[8192];
    size_t len;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[2][16384];
    static int i;
    char *b = buf[i++ & 1];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    struct body *b = *state;
    if (!b) {
        *state = calloc(1, sizeof *b);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size < sizeof b->data - b->len ? *upload_size : sizeof b->data - b->len;
        memcpy(b->data + b->len, upload, n);
        b->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    json_error_t e;
    json_t *req = json_loadb(b->data, b->len, 0, &e);
    json_t *spec = json_object_get(req, "spec");
    json_t *answer = json_pack("{s:s, s:s, s:{s:n}, s:O, s:{s:b, s:{s:s, s:s, s:[s,s,s]}, s:O}}", "kind",
                               "TokenReview", "apiVersion", "authentication.k8s.io/v1", "metadata",
                               "creationTimestamp", "spec", spec ? spec : json_null(), "status", "authenticated", 1,
                               "user", "username", "system:serviceaccount:bench:client", "uid", "bench-uid",
                               "groups", "system:serviceaccounts", "system:serviceaccounts:bench",
                               "system:authenticated", "audiences",
                               json_object_get(spec, "audiences") ? json_object_get(spec, "audiences") : json_array());
    char *text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    json_decref(req);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 201, r);
    MHD_destroy_response(r);
    return rc;
}

static void done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    free(*state);
    *state = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    char *cert = strdup(slurp(argv[2]) ? slurp(argv[2]) : "");
    char *key = strdup(slurp(argv[3]) ? slurp(argv[3]) : "");
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS, (uint16_t)strtoul(argv[1], NULL, 10), NULL,
        NULL, handle, NULL, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tokenreview_stub: cannot start\n");
        return 1;
    }
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int sig;
    sigwait(&s, &sig);
    MHD_stop_daemon(d);
    return 0;
}
