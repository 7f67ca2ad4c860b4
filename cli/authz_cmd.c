/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl authz why`: fetches what authz.c judges (the Service, the pods
 * its selector picks, both namespaces, weft-config's mesh.yaml), or reads it
 * from a snapshot file, and prints the explanation. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cluster.h"
#include "cmds.h"
#include "errbuf.h"
#include "spiffe.h"
#include "xalloc.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weftctl authz why --from NS/SA --to SERVICE[.NS]:PORT [flags]\n"
            "\n"
            "Says whether a caller running as service account NS/SA may reach a Service's port,\n"
            "pod by pod, and why: the mesh.yaml default, namespace annotation or pod annotation\n"
            "(weft.dev/mtls-mode, inbound-policy, allow-from, skip-inbound-ports) that decides,\n"
            "merged as weft-webhook merges them (lib/settings), judged by weft-proxy's own\n"
            "authorization (proxy/authz.c). PORT is the Service's port number or name. The caller\n"
            "is taken as meshed when its namespace is labelled weft.dev/inject=enabled.\n"
            "\n"
            "      --from NS/SA             the caller's namespace and service account\n"
            "      --to SERVICE[.NS]:PORT   the Service (in -n's namespace unless .NS is given)\n"
            "      --method M               a request's method (GET when only --path is given);\n"
            "                               Weft authorizes per connection today, so the answer\n"
            "                               says so and the verdict is the connection's\n"
            "      --path P                 a request's path (/ when only --method is given)\n"
            "      --snapshot FILE          judge a snapshot (JSON, - for stdin) instead of a cluster\n"
            "      --dump-snapshot          print the snapshot fetched from the cluster\n" CLUSTER_USAGE
            "  -h, --help\n"
            "\n"
            "Exit status: 0 every pod behind the port allows the caller, 1 one denies it (or\n"
            "there is no pod), 2 bad flags, kubeconfig, Service or port, or no Weft installed.\n");
}

static json_t *get(struct kubeclient *c, const char *path, int *status_out, char *err, size_t errlen)
{
    long status = 0;
    json_t *out = NULL;
    int r = kubeclient_json(c, "GET", path, NULL, &status, &out, err, errlen);
    *status_out = r < 0 ? -1 : (int)status;
    if (r == 0 && status == 200)
        return out;
    json_decref(out);
    return NULL;
}

/* Percent-encodes s for a query value. */
static void query_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch))
            buf_append(b, s, 1);
        else
            buf_appendf(b, "%%%02X", ch);
    }
}

static json_t *fetch(struct kubeclient *c, const char *from, const char *svc, const char *ns, const char *port,
                     char *err, size_t errlen)
{
    char path[1024];
    int st;
    json_t *snap = json_pack("{s:s, s:s}", "from", from, "port", port);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/services/%s", ns, svc);
    json_t *s = get(c, path, &st, err, errlen);
    if (!s) {
        if (st == 404)
            errbuf_set(err, errlen, "Service %s/%s not found", ns, svc);
        goto fail;
    }
    json_object_set_new(snap, "service", s); /* steals s */
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
    json_t *n = get(c, path, &st, err, errlen);
    if (!n)
        goto fail;
    json_object_set_new(snap, "namespace", n);
    char cns[SPIFFE_MAX_NAMESPACE + 1];
    snprintf(cns, sizeof cns, "%.*s", (int)strcspn(from, "/"), from);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", cns);
    json_t *cn = get(c, path, &st, err, errlen);
    if (!cn && st != 404)
        goto fail;
    json_object_set_new(snap, "callerNamespace", cn ? cn : json_null());
    json_t *cm = get(c, "/api/v1/namespaces/weft-system/configmaps/weft-config", &st, err, errlen);
    const char *mesh = json_string_value(json_object_get(json_object_get(cm, "data"), "mesh.yaml"));
    if (!mesh) {
        if (st == 404 || cm)
            errbuf_set(err, errlen, "ConfigMap weft-system/weft-config %s: is Weft installed? (weftctl check)",
                       cm ? "has no mesh.yaml" : "not found");
        json_decref(cm);
        goto fail;
    }
    json_object_set_new(snap, "mesh", json_string(mesh));
    json_decref(cm);
    /* the pods the Service's selector picks (a Service without one has none here) */
    json_t *sel = json_object_get(json_object_get(json_object_get(snap, "service"), "spec"), "selector");
    json_t *pods = json_array();
    if (json_object_size(sel)) {
        struct buf q;
        buf_init(&q, 8192);
        buf_appendf(&q, "/api/v1/namespaces/%s/pods?labelSelector=", ns);
        const char *k;
        json_t *v;
        int first = 1;
        json_object_foreach(sel, k, v) {
            char pair[512];
            snprintf(pair, sizeof pair, "%s%s=%s", first ? "" : ",", k, json_string_value(v) ? json_string_value(v) : "");
            query_escape(&q, pair);
            first = 0;
        }
        json_t *list = get(c, buf_cstr(&q), &st, err, errlen);
        buf_free(&q);
        if (!list) {
            json_decref(pods);
            goto fail;
        }
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(list, "items"), i, p) {
            const char *phase = json_string_value(json_object_get(json_object_get(p, "status"), "phase"));
            /* finished pods answer nothing */
            if (!phase || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0))
                json_array_append(pods, p); /* borrows p */
        }
        json_decref(list);
    }
    json_object_set_new(snap, "pods", pods);
    return snap;
fail:
    json_decref(snap);
    return NULL;
}

int cmd_authz(int argc, char **argv)
{
    enum { F_FROM = 256, F_TO, F_SNAPSHOT, F_DUMP, F_METHOD, F_PATH };
    static const struct option flags[] = {
        CLUSTER_LONG_OPTIONS,
        {"from", required_argument, NULL, F_FROM},
        {"to", required_argument, NULL, F_TO},
        {"snapshot", required_argument, NULL, F_SNAPSHOT},
        {"dump-snapshot", no_argument, NULL, F_DUMP},
        {"method", required_argument, NULL, F_METHOD},
        {"path", required_argument, NULL, F_PATH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "why") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "weftctl authz: expected \"why\" (weftctl authz why --help)\n");
        return 2;
    }
    argc--;
    argv++;
    struct kubeconfig_options ko = {0};
    const char *from = NULL, *to = NULL, *snapshot = NULL, *method = NULL, *path = NULL;
    int dump = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:h", flags, NULL)) != -1) {
        if (cluster_flag(c, optarg, &ko))
            continue;
        switch (c) {
        case F_FROM: from = optarg; break;
        case F_TO: to = optarg; break;
        case F_SNAPSHOT: snapshot = optarg; break;
        case F_DUMP: dump = 1; break;
        case F_METHOD: method = optarg; break;
        case F_PATH: path = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, "weftctl authz why: %s needs a value\n", argv[optind - 1]); return 2;
        default:
            fprintf(stderr, "weftctl authz why: unknown flag \"%s\" (weftctl authz why --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl authz why: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (snapshot && dump) {
        fprintf(stderr, "weftctl authz why: --snapshot and --dump-snapshot exclude each other\n");
        return 2;
    }
    json_t *snap = NULL;
    char err[2048];
    if (snapshot) {
        json_error_t je;
        snap = strcmp(snapshot, "-") == 0 ? json_loadf(stdin, 0, &je) : json_load_file(snapshot, 0, &je);
        if (!snap) {
            fprintf(stderr, "weftctl authz why: %s\n", je.text);
            return 2;
        }
    } else {
        const char *slash = from ? strchr(from, '/') : NULL;
        if (!from || !slash || !spiffe_valid_namespace(from, (size_t)(slash - from)) ||
            !spiffe_valid_sa(slash + 1, strlen(slash + 1))) {
            fprintf(stderr, "weftctl authz why: --from NAMESPACE/SERVICEACCOUNT is required%s%s%s\n",
                    from ? " (got \"" : "", from ? from : "", from ? "\")" : "");
            return 2;
        }
        const char *colon = to ? strrchr(to, ':') : NULL;
        if (!to || !colon || colon == to || !colon[1]) {
            fprintf(stderr, "weftctl authz why: --to SERVICE[.NAMESPACE]:PORT is required%s%s%s\n",
                    to ? " (got \"" : "", to ? to : "", to ? "\")" : "");
            return 2;
        }
        char svc[256], nsbuf[256];
        snprintf(svc, sizeof svc, "%.*s", (int)(colon - to), to);
        char *dot = strchr(svc, '.');
        const char *ns = NULL;
        if (dot) {
            *dot = '\0';
            snprintf(nsbuf, sizeof nsbuf, "%s", dot + 1);
            ns = nsbuf;
        }
        if (!spiffe_valid_namespace(svc, strlen(svc)) || (ns && !spiffe_valid_namespace(ns, strlen(ns)))) {
            fprintf(stderr, "weftctl authz why: --to \"%s\": not SERVICE[.NAMESPACE]:PORT\n", to);
            return 2;
        }
        struct kube_target t;
        struct kubeclient *kc;
        if (cluster_connect(&ko, &t, &kc, err, sizeof err) < 0) {
            fprintf(stderr, "weftctl authz why: %s\n", err);
            return 2;
        }
        snap = fetch(kc, from, svc, ns ? ns : t.ns, colon + 1, err, sizeof err);
        kubeclient_free(kc);
        kube_target_free(&t);
        if (!snap) {
            fprintf(stderr, "weftctl authz why: %s\n", err);
            return 2;
        }
    }
    /* authz_why() checks the request, from flags or a snapshot alike */
    if (method || path) {
        json_t *req = json_object();
        json_object_set_new(req, "method", json_string(method ? method : "GET"));
        json_object_set_new(req, "path", json_stringn(path ? path : "/", strlen(path ? path : "/")));
        json_object_set_new(snap, "request", req);
    }
    if (dump) {
        char *text = json_dumps(snap, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", text);
        free(text);
        json_decref(snap);
        return 0;
    }
    struct buf out;
    buf_init(&out, 4 * 1024 * 1024);
    int rc = authz_why(snap, &out, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "weftctl authz why: %s\n", err);
        rc = 2;
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    buf_free(&out);
    json_decref(snap);
    return rc;
}
