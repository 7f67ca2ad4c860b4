/* SPDX-License-Identifier: Apache-2.0 */
/* Drives lib/k8s.c for tests/integration/test_k8s.py: makes the requests the
 * test asks for and prints one JSON line per request (rc, status, response,
 * err, ms: how long k8s_request took), so Python can check them against what
 * the fake API server saw.
 *
 *   k8s_driver HOST PORT CA TOKEN_FILE|- request METHOD PATH [BODY_JSON]
 *   k8s_driver HOST PORT CA TOKEN_FILE|- repeat N SLEEP_MS METHOD PATH
 *   k8s_driver HOST PORT CA TOKEN_FILE|- parallel THREADS N METHOD PATH
 * Environment: K8S_CONNECT_MS, K8S_IO_MS, K8S_MAX_RESPONSE, K8S_REFRESH_S, K8S_SERVER_NAME. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k8s.h"

static struct k8s_client *client;
static const char *g_method, *g_path;
static int g_count;
static atomic_int g_ok, g_fail;

static long env_long(const char *name)
{
    const char *v = getenv(name);
    return v ? strtol(v, NULL, 10) : 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void one(const char *method, const char *path, json_t *body)
{
    long status = 0;
    json_t *resp = NULL;
    char err[512];
    long long start = now_ms();
    int rc = k8s_request(client, method, path, body, &status, &resp, err, sizeof err);
    long long ms = now_ms() - start;
    json_t *line = json_pack("{s:i, s:i, s:s, s:O?, s:I}", "rc", rc, "status", (int)status, "err", err, "response",
                             resp, "ms", (json_int_t)ms);
    char *text = json_dumps(line, JSON_COMPACT);
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(line);
    json_decref(resp);
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < g_count; i++) {
        long status = 0;
        json_t *resp = NULL;
        char err[512];
        int rc = k8s_request(client, g_method, g_path, NULL, &status, &resp, err, sizeof err);
        if (rc == 0 && status == 200 && resp)
            atomic_fetch_add(&g_ok, 1);
        else
            atomic_fetch_add(&g_fail, 1);
        json_decref(resp);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: see the top of k8s_driver.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    client = k8s_client_new(argv[1], argv[2], argv[3], strcmp(argv[4], "-") == 0 ? NULL : argv[4], err, sizeof err);
    if (!client) {
        printf("{\"new\":\"%s\"}\n", err);
        return 1;
    }
    k8s_client_set_timeouts(client, (int)env_long("K8S_CONNECT_MS"), (int)env_long("K8S_IO_MS"));
    k8s_client_set_max_response(client, (size_t)env_long("K8S_MAX_RESPONSE"));
    k8s_client_set_token_refresh(client, (int)env_long("K8S_REFRESH_S"));
    if (getenv("K8S_SERVER_NAME") && k8s_client_set_server_name(client, getenv("K8S_SERVER_NAME")) < 0) {
        fprintf(stderr, "bad K8S_SERVER_NAME\n");
        return 2;
    }
    const char *cmd = argv[5];
    int rc = 0;
    if (strcmp(cmd, "request") == 0 && argc >= 8) {
        json_t *body = NULL;
        if (argc >= 9) {
            json_error_t jerr;
            body = json_loads(argv[8], 0, &jerr);
            if (!body) {
                fprintf(stderr, "bad body: %s\n", jerr.text);
                return 2;
            }
        }
        one(argv[6], argv[7], body);
        json_decref(body);
    } else if (strcmp(cmd, "repeat") == 0 && argc >= 10) {
        int n = (int)strtol(argv[6], NULL, 10);
        long ms = strtol(argv[7], NULL, 10);
        for (int i = 0; i < n; i++) {
            if (i && ms) {
                struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            one(argv[8], argv[9], NULL);
        }
    } else if (strcmp(cmd, "parallel") == 0 && argc >= 10) {
        int threads = (int)strtol(argv[6], NULL, 10);
        g_count = (int)strtol(argv[7], NULL, 10);
        g_method = argv[8];
        g_path = argv[9];
        pthread_t tid[64];
        if (threads < 1 || threads > 64)
            return 2;
        for (int i = 0; i < threads; i++)
            pthread_create(&tid[i], NULL, worker, NULL);
        for (int i = 0; i < threads; i++)
            pthread_join(tid[i], NULL);
        printf("{\"ok\":%d,\"fail\":%d}\n", atomic_load(&g_ok), atomic_load(&g_fail));
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        rc = 2;
    }
    k8s_client_free(client);
    return rc;
}
