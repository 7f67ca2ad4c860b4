/* SPDX-License-Identifier: Apache-2.0 */
/* Drives lib/k8s.c for tests/integration/test_k8s.py: makes the requests the
 * test asks for and prints one JSON line per request (rc, status, response,
 * err, ms: how long k8s_request took), so Python can check them against what
 * the fake API server saw.
 *
 *   k8s_driver HOST PORT CA TOKEN_FILE|- request METHOD PATH [BODY_JSON]
 *   k8s_driver HOST PORT CA TOKEN_FILE|- repeat N SLEEP_MS METHOD PATH
 *   k8s_driver HOST PORT CA TOKEN_FILE|- parallel THREADS N METHOD PATH
 *   k8s_driver HOST PORT CA TOKEN_FILE|- watch PATH SECONDS
 * watch runs k8s_watch_run and prints one line per callback
 * ({"ev":"ADDED","key":"ns/name","rv":"12"}); each line read on stdin prints
 * the stats ({"stats":{...}}), and stdin's end or SECONDS stops it (the stats
 * are printed once more). Environment for watch: K8S_WATCH_BACKOFF_MS,
 * K8S_WATCH_BACKOFF_MAX_MS, K8S_WATCH_HEALTHY_MS, K8S_WATCH_MAX_EVENT,
 * K8S_WATCH_TIMEOUT_S, K8S_WATCH_IDLE_MS, K8S_WATCH_PAGE, K8S_WATCH_DROP (a member name to drop;
 * each line then says whether the object still has metadata.managedFields and
 * its metadata.labels).
 * Environment: K8S_CONNECT_MS, K8S_IO_MS, K8S_MAX_RESPONSE, K8S_REFRESH_S, K8S_SERVER_NAME. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>
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

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct k8s_watch_stats wstats;
static atomic_int wstop;

static void print_line(json_t *line)
{
    char *text = json_dumps(line, JSON_COMPACT);
    pthread_mutex_lock(&out_lock);
    printf("%s\n", text);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    free(text);
    json_decref(line);
}

static void on_watch(void *arg, enum k8s_watch_kind kind, json_t *obj, const char *rv)
{
    static const char *names[] = {"RESET", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "SYNCED"};
    (void)arg;
    json_t *meta = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    char key[600] = "";
    if (name)
        snprintf(key, sizeof key, "%s%s%s", ns ? ns : "", ns ? "/" : "", name);
    json_t *line = json_pack("{s:s, s:s, s:s, s:s?}", "ev", names[kind], "key", key, "rv", rv, "kind",
                             json_string_value(json_object_get(obj, "kind")));
    if (getenv("K8S_WATCH_DROP") && meta) {
        json_object_set_new(line, "managed", json_boolean(json_object_get(meta, "managedFields") != NULL));
        json_object_set(line, "labels", json_object_get(meta, "labels") ? json_object_get(meta, "labels") : json_null());
    }
    print_line(line);
}

static void print_stats(void)
{
    struct k8s_watch_stats *st = &wstats;
    print_line(json_pack("{s:{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:s}}", "stats", "connected",
                         atomic_load(&st->connected), "lists", (json_int_t)atomic_load(&st->lists), "watches",
                         (json_int_t)atomic_load(&st->watches), "events", (json_int_t)atomic_load(&st->events),
                         "bookmarks", (json_int_t)atomic_load(&st->bookmarks), "gone",
                         (json_int_t)atomic_load(&st->gone), "errors", (json_int_t)atomic_load(&st->errors),
                         "oversize", (json_int_t)atomic_load(&st->oversize), "last_backoff_ms",
                         (json_int_t)atomic_load(&st->last_backoff_ms), "staleness",
                         k8s_watch_staleness_seconds(st, k8s_monotonic_ms()), "last_error", st->last_error));
}

static struct k8s_watch_opts wopts;

static void *watch_thread(void *arg)
{
    (void)arg;
    k8s_watch_run(client, &wopts, on_watch, NULL, &wstop, &wstats);
    return NULL;
}

static int run_watch(const char *path, long seconds)
{
    wopts.path = path;
    wopts.backoff_initial_ms = (int)env_long("K8S_WATCH_BACKOFF_MS");
    wopts.backoff_max_ms = (int)env_long("K8S_WATCH_BACKOFF_MAX_MS");
    wopts.healthy_ms = (int)env_long("K8S_WATCH_HEALTHY_MS");
    wopts.max_event = (size_t)env_long("K8S_WATCH_MAX_EVENT");
    wopts.timeout_min_s = (int)env_long("K8S_WATCH_TIMEOUT_S");
    wopts.idle_ms = (int)env_long("K8S_WATCH_IDLE_MS");
    wopts.page_limit = (int)env_long("K8S_WATCH_PAGE");
    wopts.drop_member = getenv("K8S_WATCH_DROP");
    pthread_t tid;
    pthread_create(&tid, NULL, watch_thread, NULL);
    long long end = now_ms() + seconds * 1000;
    char line[256];
    while (now_ms() < end) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(0, line, sizeof line);
        if (n <= 0)
            break;
        print_stats();
    }
    atomic_store(&wstop, 1);
    long long t0 = now_ms();
    pthread_join(tid, NULL);
    print_stats();
    print_line(json_pack("{s:I}", "stop_ms", (json_int_t)(now_ms() - t0)));
    return 0;
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
    } else if (strcmp(cmd, "watch") == 0 && argc >= 8) {
        rc = run_watch(argv[6], strtol(argv[7], NULL, 10));
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        rc = 2;
    }
    k8s_client_free(client);
    return rc;
}
