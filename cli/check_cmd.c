/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl check`: fetches the snapshot check.c evaluates (the shell: every
 * request here, no judgement), or reads one from a file (--snapshot, for the
 * golden tests and for a snapshot taken elsewhere with --dump-snapshot).
 * Secrets are cut down to their certificates as they arrive: no private key
 * is kept, printed or dumped. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "check.h"
#include "cluster.h"
#include "clusterconf.h"
#include "cmds.h"
#include "errbuf.h"
#include "xalloc.h"

#define MAX_NAMESPACES 100 /* opted-in namespaces whose trust bundle and pods are read */
#define MAX_PROXIES 100    /* running meshed pods whose proxy's /metrics is read */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weftctl check [--pre] [--output text|json] [--strict] [flags]\n"
            "\n"
            "Checks a cluster for Weft, one line per check, ok / warn / fail with a hint:\n"
            "the API server reachable and its version supported; the Gateway API HTTPRoute,\n"
            "GRPCRoute and ReferenceGrant CRDs weft-discovery watches; the weft-webhook\n"
            "MutatingWebhookConfiguration and its caBundle against the certificate the webhook\n"
            "serves; the weft-webhook, weft-identity (and weft-discovery, when its Deployment\n"
            "exists) replicas ready; the validity of the trust anchor, the identity issuer and the\n"
            "webhook's, identity's and discovery's serving certificates (a warning 30 days before\n"
            "the end, or in the last fifth of the lifetime when that is longer) and the chain of\n"
            "identity's and discovery's to the trust anchor; the opted-in namespaces and their\n"
            "trust bundle; meshed pods whose proxy image is not the one the mesh injects now.\n"
            "\n"
            "      --pre                    before installing: the API server, whether you may create\n"
            "                               what Weft installs (SelfSubjectAccessReviews), whether\n"
            "                               weft-system exists already, the Gateway API CRDs\n"
            "  -o, --output FORMAT          text (default) or json\n"
            "      --strict                 exit 2 when there are warnings and no failure\n"
            "      --snapshot FILE          evaluate a snapshot (JSON, - for stdin) instead of a cluster\n"
            "      --dump-snapshot          print the snapshot fetched from the cluster (no Secret keys)\n"
            "      --now TIME               with --snapshot: the time to judge certificates at\n"
            "                               (RFC 3339 UTC, default the snapshot's \"now\")\n" CLUSTER_USAGE
            "  -h, --help\n"
            "\n"
            "Exit status: 0 no failure, 1 a check failed (an unreachable API server or a kubeconfig\n"
            "that does not resolve is a failed check), 2 warnings only with --strict, 3 bad flags.\n");
}

static json_t *fetch_error(const char *msg)
{
    return json_pack("{s:s}", "fetchError", msg);
}

/* The object at path, null for 404, or {"fetchError"}. */
static json_t *get(struct kubeclient *c, const char *path)
{
    long status;
    json_t *out = NULL;
    char err[1024];
    int r = kubeclient_json(c, "GET", path, NULL, &status, &out, err, sizeof err);
    if (r == 0 && status == 200 && out)
        return out;
    json_decref(out);
    if (r == 0 && status == 404)
        return json_null();
    return fetch_error(err);
}

/* A Secret cut down to its name and certificate. */
static json_t *get_secret_cert(struct kubeclient *c, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/namespaces/weft-system/secrets/%s", name);
    json_t *s = get(c, path);
    if (!json_is_object(s) || json_object_get(s, "fetchError"))
        return s;
    json_t *crt = json_object_get(json_object_get(s, "data"), "tls.crt");
    json_t *out = json_pack("{s:{s:s}, s:{}}", "metadata", "name", name, "data");
    if (json_is_string(crt))
        json_object_set(json_object_get(out, "data"), "tls.crt", crt); /* borrows crt */
    json_decref(s);
    return out;
}

/* A CustomResourceDefinition cut down to what check judges: its name and
 * annotations (the Gateway API's bundle-version) and each version's name and
 * served flag, not its schema (hundreds of KiB for an HTTPRoute). */
static json_t *get_crd(struct kubeclient *c, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s", name);
    json_t *crd = get(c, path);
    if (!json_is_object(crd) || json_object_get(crd, "fetchError"))
        return crd;
    json_t *meta = json_object_get(crd, "metadata"), *versions = json_array();
    json_t *out = json_pack("{s:s, s:{s:s}, s:{s:o}}", "kind", "CustomResourceDefinition", "metadata", "name", name,
                            "spec", "versions", versions); /* steals versions */
    json_t *ann = json_object_get(meta, "annotations");
    if (json_is_object(ann))
        json_object_set(json_object_get(out, "metadata"), "annotations", ann); /* borrows ann */
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(crd, "spec"), "versions"), i, v) {
        json_t *vn = json_object_get(v, "name"), *served = json_object_get(v, "served");
        json_array_append_new(versions, json_pack("{s:O?, s:O?}", "name", vn, "served", served));
    }
    json_decref(crd);
    return out;
}

static json_t *items(json_t *list)
{
    if (!json_is_object(list) || json_object_get(list, "fetchError"))
        return list;
    json_t *it = json_incref(json_object_get(list, "items"));
    json_decref(list);
    return it ? it : json_array();
}

static json_t *access_reviews(struct kubeclient *c)
{
    json_t *out = json_array();
    for (size_t i = 0; i < check_install_access_count; i++) {
        const struct check_access *a = &check_install_access[i];
        json_t *attrs = json_pack("{s:s, s:s, s:s}", "verb", "create", "group", a->group, "resource", a->resource);
        if (a->namespaced)
            json_object_set_new(attrs, "namespace", json_string("weft-system"));
        json_t *req = json_pack("{s:s, s:s, s:{s:o}}", "apiVersion", "authorization.k8s.io/v1", "kind",
                                "SelfSubjectAccessReview", "spec", "resourceAttributes", attrs); /* steals attrs */
        long status;
        json_t *resp = NULL;
        char err[1024];
        int r = kubeclient_json(c, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", req, &status,
                                &resp, err, sizeof err);
        json_t *res = json_pack("{s:s, s:s}", "group", a->group, "resource", a->resource);
        if (r == 0 && status == 201 && json_is_object(resp)) {
            json_object_set(res, "allowed", json_object_get(json_object_get(resp, "status"), "allowed")
                                                ? json_object_get(json_object_get(resp, "status"), "allowed")
                                                : json_false());
        } else {
            json_object_set_new(res, "fetchError", json_string(err));
        }
        json_array_append_new(out, res);
        json_decref(resp);
        json_decref(req);
    }
    return out;
}

/* What the API server calls for the webhook: the URL's server, or the
 * Service's Secret (the webhook cannot be reached from here through a Service). */
static json_t *serving_certificate(struct kubeclient *c, json_t *mwc)
{
    json_t *cc = json_object_get(json_array_get(json_object_get(mwc, "webhooks"), 0), "clientConfig");
    const char *url = json_string_value(json_object_get(cc, "url"));
    char err[1024];
    if (url && strncmp(url, "https://", 8) == 0) {
        char host[256], port[8] = "443";
        const char *h = url + 8, *hend, *p;
        if (*h == '[') {
            h++;
            hend = strchr(h, ']');
            p = hend && hend[1] == ':' ? hend + 2 : NULL;
        } else {
            hend = h + strcspn(h, ":/");
            p = *hend == ':' ? hend + 1 : NULL;
        }
        if (!hend || hend == h || (size_t)(hend - h) >= sizeof host)
            return json_pack("{s:s, s:s}", "source", url, "fetchError", "not a URL weftctl reads");
        snprintf(host, sizeof host, "%.*s", (int)(hend - h), h);
        if (p)
            snprintf(port, sizeof port, "%.*s", (int)strspn(p, "0123456789") > 5 ? 5 : (int)strspn(p, "0123456789"), p);
        struct buf pem;
        buf_init(&pem, 256 * 1024);
        int r = kubeclient_peer_chain(host, port, host, &pem, err, sizeof err);
        json_t *out = r == 0 ? json_pack("{s:s, s:s}", "source", url, "pem", buf_cstr(&pem))
                             : json_pack("{s:s, s:s}", "source", url, "fetchError", err);
        buf_free(&pem);
        return out;
    }
    const char *src = "Secret weft-system/weft-webhook-tls";
    json_t *s = get_secret_cert(c, "weft-webhook-tls");
    json_t *out;
    const char *e = json_string_value(json_object_get(s, "fetchError"));
    const char *crt = json_string_value(json_object_get(json_object_get(s, "data"), "tls.crt"));
    if (e) {
        out = json_pack("{s:s, s:s}", "source", src, "fetchError", e);
    } else if (!crt) {
        out = json_pack("{s:s, s:s}", "source", src, "fetchError",
                        json_is_object(s) ? "it has no tls.crt" : "it does not exist");
    } else {
        size_t len;
        char *pem = b64_decode(crt, strlen(crt), &len);
        out = pem ? json_pack("{s:s, s:s}", "source", src, "pem", pem)
                  : json_pack("{s:s, s:s}", "source", src, "fetchError", "tls.crt is not base64");
        free(pem);
    }
    json_decref(s);
    return out;
}

static json_t *fetch(struct kubeclient *c, int pre)
{
    json_t *snap = json_object();
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* json_object_set_new steals each value below */
    json_object_set_new(snap, "now", json_string(now));
    json_object_set_new(snap, "server", json_string(kubeclient_server(c)));
    json_t *v = get(c, "/version");
    json_object_set_new(snap, "version", json_is_null(v) ? fetch_error("/version: 404") : v);
    if (json_object_get(v, "fetchError"))
        return snap;
    if (pre)
        json_object_set_new(snap, "access", access_reviews(c));
    json_object_set_new(snap, "namespace", get(c, "/api/v1/namespaces/weft-system"));
    json_t *crds = json_object();
    for (size_t i = 0; i < check_crd_count; i++)
        json_object_set_new(crds, check_crds_watched[i].name, get_crd(c, check_crds_watched[i].name));
    json_object_set_new(snap, "crds", crds);
    if (pre || !json_is_object(json_object_get(snap, "namespace")))
        return snap;
    json_t *deps = json_object();
    static const char *const parts[] = {"weft-webhook", "weft-identity", "weft-discovery"};
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "/apis/apps/v1/namespaces/weft-system/deployments/%s", parts[i]);
        json_object_set_new(deps, parts[i], get(c, path));
    }
    json_object_set_new(snap, "deployments", deps);
    json_object_set_new(snap, "pods", items(get(c, "/api/v1/namespaces/weft-system/pods")));
    json_t *mwc = get(c, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-webhook");
    json_object_set_new(snap, "webhookConfiguration", mwc);
    if (json_is_object(mwc) && !json_object_get(mwc, "fetchError"))
        json_object_set_new(snap, "servingCertificate", serving_certificate(c, mwc));
    json_t *secrets = json_object();
    json_object_set_new(secrets, "weft-identity-issuer", get_secret_cert(c, "weft-identity-issuer"));
    json_object_set_new(secrets, "weft-identity-tls", get_secret_cert(c, "weft-identity-tls"));
    json_object_set_new(secrets, "weft-discovery-tls", get_secret_cert(c, "weft-discovery-tls"));
    json_object_set_new(snap, "secrets", secrets);
    json_object_set_new(snap, "trustBundle", get(c, "/api/v1/namespaces/weft-system/configmaps/weft-trust-bundle"));
    json_object_set_new(snap, "meshConfig", get(c, "/api/v1/namespaces/weft-system/configmaps/weft-config"));
    /* the templates' version the webhook would stamp now, loaded as it loads them */
    struct conf conf;
    char cerr[1024];
    if (clusterconf_load(c, &conf, cerr, sizeof cerr) == 0) {
        json_object_set_new(snap, "templateVersion", json_string(conf.templates.version));
        conf_free(&conf);
    }
    json_t *nss = items(get(c, "/api/v1/namespaces?labelSelector=weft.dev%2Finject%3Denabled"));
    json_object_set_new(snap, "namespaces", nss);
    if (!json_is_array(nss))
        return snap;
    json_t *copies = json_object(), *meshed = json_array();
    size_t i, scraped = 0;
    json_t *ns;
    json_array_foreach(nss, i, ns) {
        const char *name = json_string_value(json_object_get(json_object_get(ns, "metadata"), "name"));
        if (!name || i >= MAX_NAMESPACES)
            break;
        char path[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/weft-trust-bundle", name);
        json_t *cm = get(c, path);
        /* the certificate itself is judged in weft-system; here only its presence */
        json_object_set_new(copies, name, json_is_object(cm) && !json_object_get(cm, "fetchError")
                                              ? json_pack("{s:{s:s}}", "metadata", "name", "weft-trust-bundle")
                                              : json_incref(cm));
        json_decref(cm);
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods", name);
        json_t *pods = items(get(c, path));
        size_t k;
        json_t *p;
        if (json_object_get(pods, "fetchError")) {
            json_decref(meshed);
            meshed = pods;
            break;
        }
        json_array_foreach(pods, k, p) {
            json_t *ann = json_object_get(json_object_get(p, "metadata"), "annotations");
            if (!json_object_get(ann, "weft.dev/status"))
                continue;
            const char *phase = json_string_value(json_object_get(json_object_get(p, "status"), "phase"));
            json_t *copy = json_deep_copy(p);
            json_object_del(json_object_get(copy, "metadata"), "managedFields");
            /* the proxy's own view of its certificate and readiness */
            if (phase && strcmp(phase, "Running") == 0 && scraped++ < MAX_PROXIES)
                json_object_set_new(copy, "weftctlMetrics", cluster_pod_metrics(c, p));
            json_array_append_new(meshed, copy);
        }
        json_decref(pods);
    }
    json_object_set_new(snap, "namespaceTrustBundles", copies);
    json_object_set_new(snap, "meshedPods", meshed);
    return snap;
}

int cmd_check(int argc, char **argv)
{
    enum { F_PRE = 256, F_STRICT, F_SNAPSHOT, F_DUMP, F_NOW };
    static const struct option flags[] = {
        CLUSTER_LONG_OPTIONS,
        {"pre", no_argument, NULL, F_PRE},
        {"output", required_argument, NULL, 'o'},
        {"strict", no_argument, NULL, F_STRICT},
        {"snapshot", required_argument, NULL, F_SNAPSHOT},
        {"dump-snapshot", no_argument, NULL, F_DUMP},
        {"now", required_argument, NULL, F_NOW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct kubeconfig_options ko = {0};
    const char *output = "text", *snapshot = NULL, *now = NULL;
    int pre = 0, strict = 0, dump = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:o:h", flags, NULL)) != -1) {
        if (cluster_flag(c, optarg, &ko))
            continue;
        switch (c) {
        case F_PRE: pre = 1; break;
        case 'o': output = optarg; break;
        case F_STRICT: strict = 1; break;
        case F_SNAPSHOT: snapshot = optarg; break;
        case F_DUMP: dump = 1; break;
        case F_NOW: now = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, "weftctl check: %s needs a value\n", argv[optind - 1]); return 3;
        default:
            fprintf(stderr, "weftctl check: unknown flag \"%s\" (weftctl check --help)\n", argv[optind - 1]);
            return 3;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl check: unexpected argument \"%s\"\n", argv[optind]);
        return 3;
    }
    if (strcmp(output, "text") != 0 && strcmp(output, "json") != 0) {
        fprintf(stderr, "weftctl check: --output \"%s\": expected text or json\n", output);
        return 3;
    }
    if (snapshot && dump) {
        fprintf(stderr, "weftctl check: --snapshot and --dump-snapshot exclude each other\n");
        return 3;
    }
    if (now && !snapshot) {
        fprintf(stderr, "weftctl check: --now needs --snapshot (a live check judges at the current time)\n");
        return 3;
    }
    json_t *snap = NULL, *results = NULL;
    char err[2048];
    if (snapshot) {
        json_error_t je;
        snap = strcmp(snapshot, "-") == 0 ? json_loadf(stdin, 0, &je) : json_load_file(snapshot, 0, &je);
        if (!snap) {
            if (je.line > 0)
                fprintf(stderr, "weftctl check: %s:%d: %s\n", strcmp(snapshot, "-") == 0 ? "stdin" : snapshot,
                        je.line, je.text);
            else
                fprintf(stderr, "weftctl check: %s\n", je.text);
            return 3;
        }
        if (now && json_is_object(snap))
            json_object_set_new(snap, "now", json_string(now));
    } else {
        struct kube_target t;
        struct kubeclient *kc;
        if (cluster_connect(&ko, &t, &kc, err, sizeof err) < 0) {
            results = json_array();
            json_array_append_new(results, json_pack("{s:s, s:s, s:s, s:s, s:s}", "category", "kubernetes-api", "name",
                                                     "kubeconfig", "status", "fail", "message", err, "hint",
                                                     "weftctl kubeconfig shows what weftctl reads"));
        } else {
            snap = fetch(kc, pre);
            kubeclient_free(kc);
            kube_target_free(&t);
        }
    }
    if (dump) {
        int rc = 0;
        if (snap) {
            char *text = json_dumps(snap, JSON_INDENT(2) | JSON_SORT_KEYS);
            printf("%s\n", text);
            free(text);
        } else {
            fprintf(stderr, "weftctl check: %s\n", err);
            rc = 1;
        }
        json_decref(snap);
        json_decref(results);
        return rc;
    }
    if (!results)
        results = check_evaluate(snap, pre);
    struct buf out;
    buf_init(&out, 16 * 1024 * 1024);
    if (strcmp(output, "json") == 0) {
        const char *names[] = {"ok", "warn", "fail"};
        json_t *doc = json_pack("{s:s, s:O}", "status", names[check_worst(results)], "checks", results);
        char *text = json_dumps(doc, JSON_INDENT(2));
        buf_appendf(&out, "%s\n", text);
        free(text);
        json_decref(doc);
    } else {
        check_render_text(results, &out);
    }
    fwrite(out.data, 1, out.len, stdout);
    int rc = check_exit_status(results, strict);
    buf_free(&out);
    json_decref(results);
    json_decref(snap);
    return fflush(stdout) == 0 ? rc : 1;
}
