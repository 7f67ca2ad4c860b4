/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl stat`: reads each meshed pod's weft-proxy /metrics through the
 * API server's pod proxy (GET .../pods/<name>:<weft-admin port>/proxy/metrics),
 * so it needs no Prometheus and no route to the pods, or, with --prometheus,
 * the per-pod sums over a window from a Prometheus (stat_prom.c), and prints
 * stat.c's table. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "cmds.h"
#include "errbuf.h"
#include "stat.h"
#include "xalloc.h"

#define MAX_SCRAPED 200     /* proxies read in one run */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weftctl stat pod|deploy|ns [-n NS | -A] [flags]\n"
            "\n"
            "Reads the /metrics of every meshed pod's weft-proxy through the API server's pod\n"
            "proxy (or, with --prometheus, what a Prometheus scraped of them) and prints, per pod,\n"
            "Deployment or namespace: meshed and ready proxies, connections accepted inbound and\n"
            "outbound, their share over mTLS, inbound connections denied by policy, plaintext\n"
            "refused under STRICT, bytes, the soonest workload certificate expiry, and of the HTTP\n"
            "requests received: success rate, requests, p50/p95/p99 latency and their share over\n"
            "mTLS. Totals since each proxy started; per second with -w (from the second table on)\n"
            "and with --prometheus (over --window).\n"
            "\n"
            "  -A, --all-namespaces         every namespace (default: -n's, else the context's)\n"
            "  -w, --watch SECONDS          read again every SECONDS (1-3600) and print rates since the\n"
            "                               reading before, until interrupted (or --count readings)\n"
            "      --count N                with -w: stop after N tables\n"
            "      --snapshot FILE          print the table of a snapshot (JSON) instead of a cluster\n"
            "      --previous FILE          with --snapshot: rates since this earlier snapshot\n"
            "      --dump-snapshot          print the snapshot read from the cluster\n"
            "      --prometheus URL         http[s]://host[:port][/prefix] of a Prometheus scraping the\n"
            "                               proxies (series labelled namespace and pod) instead of reading\n"
            "                               them; https verified with the system's CAs or --prometheus-ca\n"
            "      --prometheus-ca FILE     with an https --prometheus: the PEM CA certificates to verify it\n"
            "      --window SECONDS         with --prometheus: the range of increase() (1-86400, default 60)\n"
            "      --at UNIX-SECONDS        with --prometheus: evaluate at that time instead of now\n" CLUSTER_USAGE
            "  -h, --help\n"
            "\n"
            "Exit status: 0 done, 1 a proxy's metrics could not be read (the table says which),\n"
            "2 bad flags or kubeconfig, or the pods cannot be listed.\n");
}

static const char *kind_of(const char *arg)
{
    static const struct {
        const char *alias, *kind;
    } kinds[] = {{"pod", "pod"},      {"pods", "pod"},          {"po", "pod"},          {"deploy", "deploy"},
                 {"deployment", "deploy"}, {"deployments", "deploy"}, {"ns", "ns"},      {"namespace", "ns"},
                 {"namespaces", "ns"}};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(arg, kinds[i].alias) == 0)
            return kinds[i].kind;
    return NULL;
}

/* With prom (the Prometheus' texts by "ns/pod") the proxies are not read:
 * each pod gets its text from there. */
static json_t *fetch(struct kubeclient *c, const char *kind, const char *ns, int all, const json_t *prom,
                     char *err, size_t errlen)
{
    char path[512];
    long status;
    json_t *list = NULL;
    if (all)
        snprintf(path, sizeof path, "/api/v1/pods");
    else
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods", ns);
    if (kubeclient_json(c, "GET", path, NULL, &status, &list, err, errlen) < 0 || status != 200) {
        json_decref(list);
        return NULL;
    }
    json_t *pods = json_array();
    size_t i, scraped = 0;
    json_t *p;
    json_array_foreach(json_object_get(list, "items"), i, p) {
        json_t *meta = json_object_get(p, "metadata");
        const char *phase = json_string_value(json_object_get(json_object_get(p, "status"), "phase"));
        if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0))
            continue;
        json_t *copy = json_deep_copy(p);
        json_object_del(json_object_get(copy, "metadata"), "managedFields");
        if (json_object_get(json_object_get(meta, "annotations"), "weft.dev/status")) {
            json_t *m;
            char key[320];
            snprintf(key, sizeof key, "%s/%s", json_string_value(json_object_get(meta, "namespace")),
                     json_string_value(json_object_get(meta, "name")));
            if (!phase || strcmp(phase, "Running") != 0)
                m = json_null();
            else if (prom && json_object_get(prom, key))
                m = json_deep_copy(json_object_get(prom, key));
            else if (prom)
                m = json_pack("{s:s}", "fetchError", "the Prometheus has no series of this pod's proxy");
            else if (scraped++ >= MAX_SCRAPED)
                m = json_pack("{s:s}", "fetchError", "not read: more than 200 meshed pods");
            else
                m = cluster_pod_metrics(c, p);
            json_object_set_new(copy, "weftctlMetrics", m ? m : json_pack("{s:s}", "fetchError", "not text"));
        }
        json_array_append_new(pods, copy);
    }
    json_decref(list);
    return json_pack("{s:I, s:s, s:o}", "now", (json_int_t)time(NULL), "kind", kind, "pods", pods);
}

int cmd_stat(int argc, char **argv)
{
    enum { F_SNAPSHOT = 256, F_DUMP, F_COUNT, F_PREVIOUS, F_PROMETHEUS, F_PROMETHEUS_CA, F_WINDOW, F_AT };
    static const struct option flags[] = {
        CLUSTER_LONG_OPTIONS,
        {"all-namespaces", no_argument, NULL, 'A'},
        {"snapshot", required_argument, NULL, F_SNAPSHOT},
        {"dump-snapshot", no_argument, NULL, F_DUMP},
        {"watch", required_argument, NULL, 'w'},
        {"count", required_argument, NULL, F_COUNT},
        {"previous", required_argument, NULL, F_PREVIOUS},
        {"prometheus", required_argument, NULL, F_PROMETHEUS},
        {"prometheus-ca", required_argument, NULL, F_PROMETHEUS_CA},
        {"window", required_argument, NULL, F_WINDOW},
        {"at", required_argument, NULL, F_AT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct kubeconfig_options ko = {0};
    const char *snapshot = NULL, *kind = NULL, *previous = NULL, *prometheus = NULL, *prometheus_ca = NULL;
    int all = 0, dump = 0, c;
    long watch = 0, count = 0, window = 0;
    long long at = 0;
    char err[2048];
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:Aw:h", flags, NULL)) != -1) {
        if (cluster_flag(c, optarg, &ko))
            continue;
        switch (c) {
        case 'A': all = 1; break;
        case F_SNAPSHOT: snapshot = optarg; break;
        case F_DUMP: dump = 1; break;
        case F_PREVIOUS: previous = optarg; break;
        case F_PROMETHEUS: prometheus = optarg; break;
        case F_PROMETHEUS_CA: prometheus_ca = optarg; break;
        case F_AT: {
            char *end;
            errno = 0;
            at = strtoll(optarg, &end, 10);
            /* 2001-09-09 to 2286: a Unix time in seconds, not milliseconds */
            if (errno || *end || !*optarg || at < 1000000000LL || at > 9999999999LL) {
                fprintf(stderr, "weftctl stat: --at \"%s\": expected Unix seconds (10 digits)\n", optarg);
                return 2;
            }
            break;
        }
        case 'w':
        case F_WINDOW:
        case F_COUNT: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            long max = c == 'w' ? 3600 : c == F_WINDOW ? 86400 : 1000000;
            const char *flag = c == 'w' ? "--watch" : c == F_WINDOW ? "--window" : "--count";
            if (errno || *end || !*optarg || v < 1 || v > max) {
                fprintf(stderr, "weftctl stat: %s \"%s\": expected a whole number from 1 to %ld\n", flag, optarg,
                        max);
                return 2;
            }
            *(c == 'w' ? &watch : c == F_WINDOW ? &window : &count) = v;
            break;
        }
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, "weftctl stat: %s needs a value\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "weftctl stat: unknown flag \"%s\" (weftctl stat --help)\n", argv[optind - 1]); return 2;
        }
    }
    if (!snapshot) {
        if (optind >= argc || !(kind = kind_of(argv[optind]))) {
            fprintf(stderr, "weftctl stat: expected pod, deploy or ns%s%s%s\n", optind < argc ? " (got \"" : "",
                    optind < argc ? argv[optind] : "", optind < argc ? "\")" : "");
            return 2;
        }
        optind++;
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl stat: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if ((count && !watch) || (previous && !snapshot) || (watch && (snapshot || dump))) {
        fprintf(stderr, "weftctl stat: --count needs -w, --previous needs --snapshot, -w excludes --snapshot "
                        "and --dump-snapshot\n");
        return 2;
    }
    if (((window || at) && !prometheus) || (prometheus && snapshot) || (at && watch)) {
        fprintf(stderr, "weftctl stat: --window and --at need --prometheus, --prometheus excludes --snapshot, "
                        "--at excludes -w\n");
        return 2;
    }
    if (prometheus) {
        char h[256], po[8], pre[512];
        int tls;
        if (stat_prom_url(prometheus, &tls, h, sizeof h, po, sizeof po, pre, sizeof pre, err, sizeof err) <
            0) {
            fprintf(stderr, "weftctl stat: %s\n", err);
            return 2;
        }
        if (prometheus_ca && !tls) {
            fprintf(stderr, "weftctl stat: --prometheus-ca needs an https:// --prometheus (\"%s\" is plain "
                            "HTTP)\n", prometheus);
            return 2;
        }
        if (!window)
            window = 60;
    } else if (prometheus_ca) {
        fprintf(stderr, "weftctl stat: --prometheus-ca needs --prometheus\n");
        return 2;
    }
    if (all && ko.ns) {
        fprintf(stderr, "weftctl stat: -A and -n exclude each other\n");
        return 2;
    }
    json_t *snap = NULL, *prev = NULL;
    struct buf out;
    int rc = 2;
    buf_init(&out, 16 * 1024 * 1024);
    if (snapshot) {
        json_error_t je;
        if (!(snap = json_load_file(snapshot, 0, &je)) || (previous && !(prev = json_load_file(previous, 0, &je)))) {
            fprintf(stderr, "weftctl stat: %s\n", je.text);
            goto out;
        }
        rc = stat_render(snap, prev, &out, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "weftctl stat: %s\n", err);
            rc = 2;
        } else {
            fwrite(out.data, 1, out.len, stdout);
        }
        goto out;
    }
    struct kube_target t;
    struct kubeclient *kc;
    if (cluster_connect(&ko, &t, &kc, err, sizeof err) < 0) {
        fprintf(stderr, "weftctl stat: %s\n", err);
        goto out;
    }
    for (long n = 0;; n++) {
        json_t *prom = NULL, *cur = NULL;
        if (prometheus &&
            !(prom = stat_prom_fetch(prometheus, prometheus_ca, (unsigned)window, at, err, sizeof err))) {
            fprintf(stderr, "weftctl stat: %s\n", err);
            rc = 2;
            break;
        }
        cur = fetch(kc, kind, t.ns, all, prom, err, sizeof err);
        json_decref(prom);
        if (!cur) {
            fprintf(stderr, "weftctl stat: %s\n", err);
            rc = 2;
            break;
        }
        /* A Prometheus gives rates over its window: each table stands alone;
         * at --at, certificate lifetimes count from then. */
        if (prometheus)
            json_object_set_new(cur, "window", json_integer(window));
        if (at)
            json_object_set_new(cur, "now", json_integer(at));
        if (dump) {
            char *text = json_dumps(cur, JSON_INDENT(2) | JSON_SORT_KEYS);
            printf("%s\n", text);
            free(text);
            json_decref(cur);
            rc = 0;
            break;
        }
        buf_reset(&out);
        /* -w: the first table is totals, each next one rates since the one before */
        rc = stat_render(cur, prometheus ? NULL : prev, &out, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "weftctl stat: %s\n", err);
            json_decref(cur);
            rc = 2;
            break;
        }
        if (watch && n)
            fputs("\n", stdout);
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
        json_decref(prev);
        prev = cur;
        if (!watch || (count && n + 1 >= count))
            break;
        sleep((unsigned)watch);
    }
    kubeclient_free(kc);
    kube_target_free(&t);
out:
    buf_free(&out);
    json_decref(snap);
    json_decref(prev);
    return rc;
}
