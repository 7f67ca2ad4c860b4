/* SPDX-License-Identifier: Apache-2.0 */
/* weft-proxy: the sidecar's process shell. Parses the configuration, loads
 * credentials, binds listeners, starts the workers and the admin server,
 * then waits for SIGTERM/SIGINT (or POST /shutdown) and drains. Also the
 * `wait-ready` subcommand of the non-native-sidecar postStart hook. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <malloc.h>

#include <openssl/ssl.h>

#include "admin.h"
#include "clock.h"
#include "identity_client.h"
#include "log.h"
#include "probes.h"
#include "proxy.h"
#include "xalloc.h"

static const char *main_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

/* One GET /ready on loopback: 1 when it answers 200. */
static int main_probe_ready(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;
    char why[96];
    if (fd < 0)
        return 0;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1))
        ok = probes_read_status(fd, NULL, why, sizeof why) == 200;
    close(fd);
    return ok;
}

/* Runtimes start containers with a soft limit of 1,024 open files (systemd's
 * and containerd 2's default) under a much higher hard limit. Every proxied
 * connection holds two descriptors, so take all the hard limit allows. */
static unsigned long long main_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    return (unsigned long long)rl.rlim_cur;
}

static int main_wait_ready(int argc, char **argv)
{
    unsigned long timeout = 120;
    uint16_t port = 15020;
    const char *env_port = getenv("WEFT_ADMIN_PORT");
    if (env_port && parse_port(env_port, &port) < 0) {
        fprintf(stderr, "weft-proxy wait-ready: WEFT_ADMIN_PORT=\"%s\": must be a port 1-65535\n", env_port);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--timeout-seconds") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "weft-proxy wait-ready: --timeout-seconds needs a value\n");
                return 2;
            }
            if (parse_uint(argv[++i], 1, 86400, &timeout) < 0) {
                fprintf(stderr, "weft-proxy wait-ready: --timeout-seconds \"%s\": must be an integer 1-86400\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: weft-proxy wait-ready [--timeout-seconds N]  (default 120)\n"
                   "Exits 0 once http://127.0.0.1:%u/ready answers 200, 1 on timeout.\n",
                   (unsigned)port);
            return 0;
        } else {
            fprintf(stderr, "weft-proxy wait-ready: unknown argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    uint64_t start = clock_mono_ms();
    for (;;) {
        if (main_probe_ready(port))
            return 0;
        /* Whole milliseconds: comparing seconds alone gave up as much as a
         * second early (the second ticks over right after start). */
        if (clock_mono_ms() - start >= (uint64_t)timeout * 1000u) {
            fprintf(stderr, "weft-proxy wait-ready: not ready after %lu s\n", timeout);
            return 1;
        }
        usleep(200 * 1000);
    }
}

/* The name of a setting read only at start that differs in next, or NULL:
 * such a reload is refused whole rather than half-applied (listeners,
 * workers, credentials and the pod's identity are not rebuilt). */
static const char *main_boot_only_change(const struct proxy_config *a, const struct proxy_config *b)
{
    const struct {
        const char *name, *x, *y;
    } strs[] = {
        {"WEFT_POD_NAME", a->pod_name, b->pod_name},
        {"WEFT_POD_NAMESPACE", a->pod_namespace, b->pod_namespace},
        {"WEFT_POD_IP", a->pod_ip, b->pod_ip},
        {"WEFT_SERVICE_ACCOUNT", a->service_account, b->service_account},
        {"WEFT_TRUST_DOMAIN", a->trust_domain, b->trust_domain},
        {"WEFT_IDENTITY_ADDR", a->identity_addr, b->identity_addr},
        {"WEFT_DISCOVERY_ADDR", a->discovery_addr, b->discovery_addr},
        {"WEFT_DISCOVERY_SERVER_NAME", a->discovery_server_name, b->discovery_server_name},
        {"WEFT_IDENTITY_SERVER_NAME", a->identity_server_name, b->identity_server_name},
        {"WEFT_TOKEN_FILE", a->token_file, b->token_file},
        {"WEFT_TRUST_BUNDLE", a->trust_bundle, b->trust_bundle},
        {"WEFT_CERT", a->cert, b->cert},
        {"WEFT_KEY", a->key, b->key},
        {"WEFT_APP_PROBES", a->app_probes_json, b->app_probes_json},
        {"WEFT_LOG_LEVEL", a->log_level, b->log_level},
    };
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (strcmp(strs[i].x ? strs[i].x : "", strs[i].y ? strs[i].y : "") != 0)
            return strs[i].name;
    const struct {
        const char *name;
        unsigned x, y;
    } nums[] = {
        {"WEFT_WORKERS", a->workers, b->workers},
        {"WEFT_HTTP_METRICS_BUDGET", a->http_metrics_budget, b->http_metrics_budget},
        {"WEFT_INBOUND_PORT", a->inbound_port, b->inbound_port},
        {"WEFT_OUTBOUND_PORT", a->outbound_port, b->outbound_port},
        {"WEFT_ADMIN_PORT", a->admin_port, b->admin_port},
        {"WEFT_DRAIN_SECONDS", a->drain_seconds, b->drain_seconds},
        {"WEFT_RELOAD_SECONDS", a->reload_seconds, b->reload_seconds},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        if (nums[i].x != nums[i].y)
            return nums[i].name;
    return NULL;
}

/* SIGHUP: the settings read again from the same flags, environment and
 * --config file, swapped in whole for new connections; open ones keep the
 * snapshot they pinned. A reload that does not load, or changes a setting
 * read only at start, is refused and the current snapshot stays. */
static void main_reload(struct proxy *px, int argc, char **argv)
{
    struct proxy_config next;
    char err[1024] = "";
    int help = 0;
    if (config_load(&next, argc, argv, main_getenv, NULL, &help, err, sizeof err) < 0) {
        log_warn("configuration not reloaded", "error=\"%s\"", log_clean(err)); /* its quotes would end the value */
        return;
    }
    const char *fixed = main_boot_only_change(px->cfg, &next);
    if (fixed) {
        log_warn("configuration not reloaded", "error=\"%s: read only at start; restart the proxy to change it\"",
                 fixed);
        config_free(&next);
        return;
    }
    cp_client_swap_config(px->cp, px->config, &next); /* discovery's policy stays over the environment's */
    log_info("configuration reloaded", "generation=%llu", (unsigned long long)cfgstore_generation(px->config));
}

/* glibc's per-thread cache (tcache) keeps up to 7 freed chunks of each
 * small size per thread outside the arena, where malloc_trim neither
 * coalesces nor returns them: after a burst of connections a worker's
 * cache pins a few hundred KiB of pages that hold little else (measured
 * in bench/RESULTS.md: the idle client proxy 8,504 -> 7,992 KiB after
 * load without it). It is set only by a tunable, which glibc reads at
 * process start, so the proxy executes itself once more with it. The
 * operator's own glibc.malloc.tcache_count wins; a setuid start (glibc
 * drops tunables there) or a failed exec keeps glibc's default. */
#define MAIN_TCACHE_TUNABLE "glibc.malloc.tcache_count"

static void main_tune_malloc(char **argv)
{
    const char *had = getenv("GLIBC_TUNABLES");
    if ((had && strstr(had, MAIN_TCACHE_TUNABLE "=")) || getauxval(AT_SECURE)) {
        /* Executed through the link below, the name would read "exe". */
        prctl(PR_SET_NAME, "weft-proxy");
        return;
    }
    char *val = xasprintf("%s%s" MAIN_TCACHE_TUNABLE "=0", had ? had : "", had && *had ? ":" : "");
    char *keep = had ? xstrdup(had) : NULL;
    if (setenv("GLIBC_TUNABLES", val, 1) == 0) {
        /* The link, not the path it names: the path's directories need not
         * be searchable by the proxy's uid (a binary under root's 0700
         * directory, started through setpriv), the link reaches the file. */
        execv("/proc/self/exe", argv);
        fprintf(stderr, "weft-proxy: re-executing with %s=0: %s (continuing with glibc's default)\n",
                MAIN_TCACHE_TUNABLE, strerror(errno));
        if (keep)
            setenv("GLIBC_TUNABLES", keep, 1);
        else
            unsetenv("GLIBC_TUNABLES");
    }
    free(val);
    free(keep);
}

int main(int argc, char **argv)
{
    struct proxy_config loaded;
    struct proxy px;
    char err[1024] = "";
    int help = 0, rc = 1;
    struct admin *admin = NULL;
    unsigned started = 0;

    if (argc > 1 && strcmp(argv[1], "wait-ready") == 0)
        return main_wait_ready(argc, argv);
    if (config_load(&loaded, argc, argv, main_getenv, NULL, &help, err, sizeof err) < 0) {
        fprintf(stderr, "weft-proxy: %s\n", err);
        return 2;
    }
    if (help) {
        config_print_help(stdout);
        config_free(&loaded);
        return 0;
    }
    main_tune_malloc(argv);
    memset(&px, 0, sizeof px);
    px.config = cfgstore_new(&loaded); /* moves the settings into the first snapshot */
    const struct cfgsnap *boot = cfgstore_get(px.config);
    const struct proxy_config *cfg = &boot->cfg;
    /* Memory: no OpenSSL error-string tables or config file (we never print
     * OpenSSL's strings, and TLS settings are fixed in code), and few malloc
     * arenas (the admin thread's short-lived request threads would each get
     * one otherwise). Together this keeps an idle sidecar small. */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                         OPENSSL_INIT_NO_LOAD_CONFIG,
                     NULL);
    mallopt(M_ARENA_MAX, (int)cfg->workers + 1); /* one per worker, one for the rest */
    enum log_level lvl = LOG_INFO;
    log_parse_level(cfg->log_level, &lvl);
    log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    unsigned long long open_files = main_raise_fd_limit();
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread; main sigwaits */

    px.cfg = cfg;
    pm_init(&px.metrics);
    px.http = http_metrics_new(cfg->http_metrics_budget);
    px.creds = creds_new(cfg->trust_domain);
    if (*cfg->cert) {
        if (creds_load_files(px.creds, cfg->cert, cfg->key, cfg->trust_bundle, err, sizeof err) < 0) {
            fprintf(stderr, "weft-proxy: %s\n", err);
            rc = 2;
            goto out;
        }
    } else if (creds_load_files(px.creds, NULL, NULL, cfg->trust_bundle, err, sizeof err) < 0) {
        log_warn("trust bundle not loaded yet", "error=\"%s\"", err);
    }
    struct spiffe_id me;
    if (creds_local_id(px.creds, &me) == 0 &&
        (strcmp(me.ns, cfg->pod_namespace) != 0 || (*cfg->service_account && strcmp(me.sa, cfg->service_account) != 0)))
        log_warn("certificate identity differs from the pod's", "cert_ns=%s cert_sa=%s pod_ns=%s pod_sa=%s", me.ns,
                 me.sa, cfg->pod_namespace, cfg->service_account);

    px.nworkers = cfg->workers;
    px.workers = xcalloc(cfg->workers, sizeof *px.workers);
    for (unsigned i = 0; i < cfg->workers; i++) {
        if (worker_init(&px.workers[i], &px, i, err, sizeof err) < 0) {
            fprintf(stderr, "weft-proxy: %s\n", err);
            px.nworkers = i + 1;
            goto out;
        }
    }
    atomic_store(&px.listeners_up, 1);
    if (*cfg->identity_addr) {
        int r = identity_client_start(px.workers[0].loop, px.creds, cfg);
        if (r < 0) {
            fprintf(stderr, "weft-proxy: WEFT_IDENTITY_ADDR=\"%s\": identity client: %s\n", cfg->identity_addr,
                    strerror(-r));
            goto out;
        }
    }
    if (*cfg->discovery_addr) {
        px.dest = dest_store_new();
        dest_store_on_publish(px.dest, worker_dest_published, &px);
        if (!(px.cp = cp_client_start(px.config, px.creds, px.dest, cfg, err, sizeof err))) {
            fprintf(stderr, "weft-proxy: %s\n", err);
            goto out;
        }
    }
    if (!(admin = admin_start(&px, err, sizeof err))) {
        fprintf(stderr, "weft-proxy: %s\n", err);
        goto out;
    }
    for (; started < px.nworkers; started++)
        if (worker_start(&px.workers[started]) < 0) {
            fprintf(stderr, "weft-proxy: cannot start worker thread\n");
            break;
        }
    log_info("weft-proxy started", "version=%s pod=%s/%s inbound=%u outbound=%u admin=%u workers=%u open_files=%llu mtls=%s policy=%s",
             WEFT_VERSION, cfg->pod_namespace, cfg->pod_name, cfg->inbound_port, cfg->outbound_port, cfg->admin_port,
             cfg->workers, open_files, cfg->mtls_mode == MTLS_STRICT ? "STRICT" : "PERMISSIVE",
             authz_policy_name(cfg->authz.policy));
    if (started == px.nworkers) {
        int sig = 0;
        while (sigwait(&sigs, &sig) != 0 || sig == SIGHUP) {
            if (sig == SIGHUP)
                main_reload(&px, argc, argv);
            sig = 0;
        }
        log_info("signal received, draining", "signal=%d drain_seconds=%u", sig, cfg->drain_seconds);
    }
    atomic_store(&px.draining, 1);
    for (unsigned i = 0; i < started; i++)
        worker_drain(&px.workers[i]);
    for (unsigned i = 0; i < started; i++)
        worker_join(&px.workers[i]);
    log_info("drained, exiting", "%s", "");
    rc = started == px.nworkers ? 0 : 1;
out:
    admin_stop(admin);
    identity_client_stop(); /* its thread feeds px.creds: stop it before the store goes */
    cp_client_stop(px.cp);  /* it reads px.creds and swaps into px.config */
    for (unsigned i = 0; i < px.nworkers; i++)
        worker_free(&px.workers[i]);
    free(px.workers);
    creds_free(px.creds);
    dest_store_free(px.dest);
    pm_destroy(&px.metrics);
    http_metrics_free(px.http);
    cfgsnap_put(boot);
    cfgstore_free(px.config);
    return rc;
}
