/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl check's evaluation; see check.h. Certificates are read with
 * OpenSSL from the PEM text in the snapshot; the proxy image a meshed pod
 * should run is what lib/settings resolves for it, as the webhook does. */
#include "check.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "errbuf.h"
#include "settings.h"
#include "stat.h"
#include "xalloc.h"
#include "yamljson.h"

#define NS "weft-system"

const struct check_access check_install_access[] = {
    {"", "namespaces", 0},
    {"", "serviceaccounts", 1},
    {"", "configmaps", 1},
    {"", "secrets", 1},
    {"", "services", 1},
    {"apps", "deployments", 1},
    {"policy", "poddisruptionbudgets", 1},
    {"rbac.authorization.k8s.io", "clusterroles", 0},
    {"rbac.authorization.k8s.io", "clusterrolebindings", 0},
    {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", 0},
};
const size_t check_install_access_count = sizeof check_install_access / sizeof *check_install_access;

const struct check_crd check_crds_watched[] = {
    {"httproutes.gateway.networking.k8s.io", "HTTPRoute", "v1", "HTTPRoutes cannot be configured"},
    {"grpcroutes.gateway.networking.k8s.io", "GRPCRoute", "v1", "GRPCRoutes cannot be configured"},
    /* v1beta1: what the pinned release stores and every release since v0.6 serves */
    {"referencegrants.gateway.networking.k8s.io", "ReferenceGrant", "v1beta1",
     "no route can send to a Service of another namespace"},
};
const size_t check_crd_count = sizeof check_crds_watched / sizeof *check_crds_watched;

static const char *const status_names[] = {"ok", "warn", "fail"};

struct ctx {
    json_t *results;
    time_t now;
};

static void add(struct ctx *c, const char *category, enum check_status st, const char *name, const char *hint,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(struct ctx *c, const char *category, enum check_status st, const char *name, const char *hint,
                const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "category", category, "name", name, "status", status_names[st],
                          "message", msg);
    if (st != CHECK_OK && hint)
        json_object_set_new(r, "hint", json_string(hint)); /* steals the string */
    json_array_append_new(c->results, r);                  /* steals r */
}

/* What a fetched item is: the object, absent (null or missing), or an error. */
static const char *fetch_error(const json_t *v)
{
    return json_string_value(json_object_get(v, "fetchError"));
}

static json_t *at(const json_t *v, const char *path)
{
    char key[128];
    json_t *cur = (json_t *)v;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        cur = json_object_get(cur, key);
        path += n + (path[n] == '.');
    }
    return cur;
}

static const char *str_at(const json_t *v, const char *path)
{
    return json_string_value(at(v, path));
}

/* RFC 3339 "2026-12-01T10:00:00Z" into *t; 0 or -1. */
static int parse_time(const char *s, time_t *t)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end)
        return -1;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (strcmp(end, "Z") != 0)
        return -1;
    *t = timegm(&tm);
    return 0;
}

static void fmt_time(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%d %H:%M UTC", &tm);
}

/* ---------- certificates ---------- */

static STACK_OF(X509) *pem_certs(const char *pem, size_t len)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    for (X509 *x; bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL));)
        sk_X509_push(sk, x); /* the stack owns x */
    BIO_free(bio);
    ERR_clear_error();
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

static time_t asn1_time(const ASN1_TIME *a)
{
    struct tm tm;
    if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
        return 0;
    return timegm(&tm);
}

static void cert_name(X509 *x, char *out, size_t outlen)
{
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    snprintf(out, outlen, "CN=%s", cn[0] ? cn : "(none)");
}

/* One line about the validity of certificate x (what: "trust anchor" ...). */
static void expiry(struct ctx *c, const char *category, const char *name, const char *what, X509 *x,
                   const char *hint)
{
    time_t nb = asn1_time(X509_get0_notBefore(x)), na = asn1_time(X509_get0_notAfter(x));
    char subj[300], end[64];
    cert_name(x, subj, sizeof subj);
    fmt_time(na, end, sizeof end);
    double left_days = difftime(na, c->now) / 86400.0;
    time_t life = na > nb ? na - nb : 0;
    time_t warn = (time_t)CHECK_WARN_DAYS * 86400;
    if (life / CHECK_WARN_FRACTION > warn)
        warn = life / CHECK_WARN_FRACTION;
    if (c->now >= na)
        add(c, category, CHECK_FAIL, name, hint, "%s %s expired on %s", what, subj, end);
    else if (c->now < nb)
        add(c, category, CHECK_FAIL, name, hint, "%s %s is not valid before %s", what, subj,
            (fmt_time(nb, end, sizeof end), end));
    else if (na - c->now <= warn)
        add(c, category, CHECK_WARN, name, hint, "%s %s expires on %s, in %.0f days", what, subj, end, left_days);
    else
        add(c, category, CHECK_OK, name, NULL, "%s %s valid until %s (%.0f days)", what, subj, end, left_days);
}

/* Whether leaf (with the rest of chain as intermediates) verifies against
 * anchors at c->now, for name when not NULL. 0 or -1 with why. */
static int verify(struct ctx *c, STACK_OF(X509) *anchors, STACK_OF(X509) *chain, const char *name, char *why,
                  size_t whylen)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int rc = -1;
    for (int i = 0; i < sk_X509_num(anchors); i++)
        X509_STORE_add_cert(store, sk_X509_value(anchors, i));
    for (int i = 1; i < sk_X509_num(chain); i++)
        sk_X509_push(untrusted, sk_X509_value(chain, i)); /* borrowed: freed with sk_X509_free only */
    if (X509_STORE_CTX_init(sc, store, sk_X509_value(chain, 0), untrusted) != 1) {
        errbuf_set(why, whylen, "cannot verify");
        goto out;
    }
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(sc);
    X509_VERIFY_PARAM_set_time(p, c->now);
    /* an intermediate trust anchor is enough, as the API server's Go verifier accepts */
    X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_PARTIAL_CHAIN);
    if (name) {
        if (X509_VERIFY_PARAM_set1_ip_asc(p, name) != 1)
            X509_VERIFY_PARAM_set1_host(p, name, 0);
    }
    if (X509_verify_cert(sc) == 1) {
        rc = 0;
    } else {
        errbuf_set(why, whylen, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
    }
out:
    ERR_clear_error();
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(sc);
    X509_STORE_free(store);
    return rc;
}

/* A key of a Secret's data, decoded: a new string, or NULL. */
static char *secret_pem(const json_t *secret, const char *key, size_t *len)
{
    json_t *data = json_object_get(secret, "data");
    const char *v = json_string_value(json_object_get(data, key));
    return v ? b64_decode(v, strlen(v), len) : NULL;
}

/* ---------- the checks ---------- */

static void check_api(struct ctx *c, const json_t *snap, int *reachable)
{
    const json_t *v = json_object_get(snap, "version");
    const char *server = str_at(snap, "server");
    const char *e = fetch_error(v);
    *reachable = 0;
    if (e || !json_is_object(v)) {
        add(c, "kubernetes-api", CHECK_FAIL, "api-reachable",
            "check the kubeconfig (weftctl kubeconfig) and that the API server is up",
            "the API server %s cannot be reached: %s", server ? server : "", e ? e : "no /version answer");
        return;
    }
    *reachable = 1;
    const char *git = str_at(v, "gitVersion"), *minor = str_at(v, "minor"), *major = str_at(v, "major");
    add(c, "kubernetes-api", CHECK_OK, "api-reachable", NULL, "the API server %s answers: Kubernetes %s",
        server ? server : "", git ? git : "(no gitVersion)");
    long mj = major ? strtol(major, NULL, 10) : 0, mn = minor ? strtol(minor, NULL, 10) : 0; /* "29+" reads 29 */
    if (mj == 1 && mn >= CHECK_MIN_MINOR)
        add(c, "kubernetes-api", CHECK_OK, "api-version", NULL, "Kubernetes %ld.%ld is supported (1.%d or later)",
            mj, mn, CHECK_MIN_MINOR);
    else
        add(c, "kubernetes-api", CHECK_WARN, "api-version",
            "set defaults.nativeSidecar: false in weft-config (the proxy then runs as containers[0]), or upgrade",
            "Kubernetes %s.%s is older than 1.%d: native sidecars (Weft's default) may be off", major ? major : "?",
            minor ? minor : "?", CHECK_MIN_MINOR);
}

static void check_access(struct ctx *c, const json_t *snap)
{
    json_t *acc = json_object_get(snap, "access");
    size_t i;
    json_t *a;
    struct buf denied;
    buf_init(&denied, 4096);
    int n = 0, errors = 0;
    char first_err[512] = "";
    json_array_foreach(acc, i, a) {
        const char *res = str_at(a, "resource"), *grp = str_at(a, "group");
        const char *e = fetch_error(a);
        if (e) {
            if (!errors++)
                snprintf(first_err, sizeof first_err, "%s", e);
        } else if (!json_is_true(json_object_get(a, "allowed"))) {
            buf_appendf(&denied, "%s%s%s%s", n++ ? ", " : "", res ? res : "?", grp && *grp ? "." : "",
                        grp ? grp : "");
        }
    }
    if (errors)
        add(c, "pre-install", CHECK_FAIL, "rbac", "weftctl asks with SelfSubjectAccessReviews, which every user may create",
            "cannot ask the API server what you may create: %s", first_err);
    else if (n)
        add(c, "pre-install", CHECK_FAIL, "rbac",
            "installing Weft needs cluster-admin or a role with these; ask a cluster administrator",
            "you may not create %s", buf_cstr(&denied));
    else if (json_array_size(acc))
        add(c, "pre-install", CHECK_OK, "rbac", NULL, "you may create every kind of object Weft installs (%zu checked)",
            json_array_size(acc));
    buf_free(&denied);
}

/* Whether the snapshot's weft-discovery Deployment exists. */
static int discovery_deployed(const json_t *snap)
{
    json_t *d = json_object_get(json_object_get(snap, "deployments"), "weft-discovery");
    return json_is_object(d) && !fetch_error(d);
}

/* A missing CRD warns: weft-discovery serves without it (no routes of that
 * kind) and lists it again every --crd-recheck-ms, so installing it later
 * needs no restart. */
static void check_crds(struct ctx *c, const json_t *snap)
{
    const char *install = "install the Gateway API standard-channel CRDs of release " CHECK_GATEWAY_API_RELEASE
                          ": kubectl apply --server-side -f "
                          "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
                          CHECK_GATEWAY_API_RELEASE "/standard-install.yaml";
    json_t *all = json_object_get(snap, "crds");
    for (size_t i = 0; i < check_crd_count; i++) {
        const struct check_crd *w = &check_crds_watched[i];
        json_t *crd = json_object_get(all, w->name);
        const char *e = fetch_error(crd);
        char name[64];
        snprintf(name, sizeof name, "crd-%.*s", (int)strcspn(w->name, "."), w->name);
        if (e) {
            add(c, "gateway-api", CHECK_FAIL, name, "weftctl needs get on customresourcedefinitions",
                "CustomResourceDefinition %s cannot be read: %s", w->name, e);
            continue;
        }
        if (!json_is_object(crd)) {
            add(c, "gateway-api", CHECK_WARN, name, install, "CustomResourceDefinition %s is not installed: %s",
                w->name, w->without);
            continue;
        }
        size_t j;
        json_t *ver;
        int served = 0;
        json_array_foreach(at(crd, "spec.versions"), j, ver) {
            const char *vn = str_at(ver, "name");
            if (json_is_true(json_object_get(ver, "served")) && vn && strcmp(vn, w->version) == 0)
                served = 1;
        }
        /* not at(): the annotation's name has dots in it */
        const char *bundle = json_string_value(
            json_object_get(at(crd, "metadata.annotations"), "gateway.networking.k8s.io/bundle-version"));
        char release[80] = "";
        if (bundle)
            snprintf(release, sizeof release, " (Gateway API %s)", bundle);
        if (served)
            add(c, "gateway-api", CHECK_OK, name, NULL, "CustomResourceDefinition %s serves %s%s", w->name,
                w->version, release);
        else
            add(c, "gateway-api", CHECK_WARN, name, install,
                "CustomResourceDefinition %s%s does not serve %s, the version weft-discovery watches: %s", w->name,
                release, w->version, w->without);
    }
}

/* The webhook configuration and its caBundle against the serving certificate. */
static void check_webhook(struct ctx *c, const json_t *snap)
{
    const char *cat = "webhook";
    const char *hint_cert = "re-run manifests/gen-webhook-cert.sh, or weftctl install | kubectl apply -f -";
    json_t *mwc = json_object_get(snap, "webhookConfiguration");
    const char *e = fetch_error(mwc);
    if (e || !json_is_object(mwc)) {
        add(c, cat, CHECK_FAIL, "webhook-configuration", "weftctl install | kubectl apply -f -",
            "MutatingWebhookConfiguration weft-webhook %s%s", e ? "cannot be read: " : "does not exist",
            e ? e : "");
        return;
    }
    json_t *hooks = json_object_get(mwc, "webhooks");
    json_t *hook = json_array_get(hooks, 0);
    const char *problem = NULL;
    char detail[512] = "";
    if (json_array_size(hooks) != 1 || !json_is_object(hook))
        problem = "does not hold exactly one webhook";
    json_t *cc = json_object_get(hook, "clientConfig");
    const char *svc_name = str_at(cc, "service.name"), *svc_ns = str_at(cc, "service.namespace");
    const char *url = str_at(cc, "url");
    if (!problem) {
        if (svc_name) {
            json_t *port = at(cc, "service.port");
            const char *path = str_at(cc, "service.path");
            if (strcmp(svc_name, "weft-webhook") != 0 || !svc_ns || strcmp(svc_ns, NS) != 0 ||
                (port && json_integer_value(port) != 443) || !path || strcmp(path, "/inject") != 0) {
                problem = "does not call Service weft-system/weft-webhook:443 at /inject";
            }
        } else if (!url) {
            problem = "has neither a service nor a url in clientConfig";
        }
    }
    if (!problem) {
        const char *fp = str_at(hook, "failurePolicy");
        int pods_create = 0;
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(hook, "rules"), i, rule) {
            json_t *ops = json_object_get(rule, "operations"), *res = json_object_get(rule, "resources");
            int create = 0, pods = 0;
            size_t k;
            json_t *x;
            json_array_foreach(ops, k, x) create |= json_string_value(x) &&
                                                    (strcmp(json_string_value(x), "CREATE") == 0 ||
                                                     strcmp(json_string_value(x), "*") == 0);
            json_array_foreach(res, k, x) pods |= json_string_value(x) &&
                                                  (strcmp(json_string_value(x), "pods") == 0 ||
                                                   strcmp(json_string_value(x), "*") == 0);
            pods_create |= create && pods;
        }
        if (!pods_create)
            problem = "has no rule for pods CREATE";
        else if (fp && strcmp(fp, "Fail") != 0)
            snprintf(detail, sizeof detail, "failurePolicy is %s: pods are admitted unmeshed while the webhook is down", fp);
    }
    if (problem) {
        add(c, cat, CHECK_FAIL, "webhook-configuration", "weftctl install | kubectl apply -f - restores it",
            "MutatingWebhookConfiguration weft-webhook %s", problem);
        return;
    }
    if (detail[0])
        add(c, cat, CHECK_WARN, "webhook-configuration", "set failurePolicy: Fail (as manifests/ does)", "%s", detail);
    else
        add(c, cat, CHECK_OK, "webhook-configuration", NULL, "MutatingWebhookConfiguration weft-webhook calls %s",
            url ? url : "Service weft-system/weft-webhook:443 /inject");

    /* caBundle against the certificate the webhook serves */
    const char *ca_b64 = str_at(cc, "caBundle");
    size_t ca_len = 0;
    char *ca_pem = ca_b64 ? b64_decode(ca_b64, strlen(ca_b64), &ca_len) : NULL;
    STACK_OF(X509) *anchors = ca_pem ? pem_certs(ca_pem, ca_len) : NULL;
    json_t *sc = json_object_get(snap, "servingCertificate");
    const char *source = str_at(sc, "source");
    const char *pem = str_at(sc, "pem");
    const char *se = fetch_error(sc);
    STACK_OF(X509) *chain = pem ? pem_certs(pem, strlen(pem)) : NULL;
    if (!anchors) {
        add(c, cat, CHECK_FAIL, "webhook-ca-bundle", hint_cert, "the webhook's caBundle is %s",
            !ca_b64 || !*ca_b64 ? "empty: the API server cannot call it" : "not base64 PEM certificates");
    } else if (!chain) {
        add(c, cat, CHECK_FAIL, "webhook-ca-bundle", hint_cert, "the serving certificate (%s) %s%s",
            source ? source : "?", se ? "cannot be read: " : "holds no PEM certificate", se ? se : "");
    } else {
        /* the name the API server verifies: the Service's DNS name, or the URL's host */
        char host[256] = "weft-webhook.weft-system.svc";
        if (url && strncmp(url, "https://", 8) == 0) {
            const char *h = url + 8, *hend;
            if (*h == '[') {
                h++;
                hend = strchr(h, ']');
            } else {
                hend = h + strcspn(h, ":/");
            }
            if (hend)
                snprintf(host, sizeof host, "%.*s", (int)(hend - h), h);
        }
        char why[256];
        if (verify(c, anchors, chain, host, why, sizeof why) == 0)
            add(c, cat, CHECK_OK, "webhook-ca-bundle", NULL, "caBundle verifies the serving certificate (%s) for %s",
                source ? source : "?", host);
        else
            add(c, cat, CHECK_FAIL, "webhook-ca-bundle", hint_cert,
                "caBundle does not verify the serving certificate (%s) for %s: %s", source ? source : "?", host, why);
        expiry(c, "certificates", "webhook-serving-certificate", "webhook serving certificate", sk_X509_value(chain, 0),
               hint_cert);
    }
    sk_X509_pop_free(anchors, X509_free);
    sk_X509_pop_free(chain, X509_free);
    free(ca_pem);
}

/* A Deployment ready, and the names of its pods that are not. */
static void check_deployment(struct ctx *c, const json_t *snap, const char *name, int optional)
{
    json_t *d = json_object_get(json_object_get(snap, "deployments"), name);
    const char *e = fetch_error(d);
    char check[64], hint[256];
    snprintf(check, sizeof check, "%s-ready", name);
    snprintf(hint, sizeof hint, "kubectl -n weft-system describe deployment %s; kubectl -n weft-system logs deploy/%s",
             name, name);
    if (e) {
        add(c, "control-plane", CHECK_FAIL, check, NULL, "Deployment weft-system/%s cannot be read: %s", name, e);
        return;
    }
    if (!json_is_object(d)) {
        if (!optional)
            add(c, "control-plane", CHECK_FAIL, check, "weftctl install | kubectl apply -f -",
                "Deployment weft-system/%s does not exist", name);
        return;
    }
    json_t *want = at(d, "spec.replicas");
    long long replicas = want ? json_integer_value(want) : 1;
    long long ready = json_integer_value(at(d, "status.readyReplicas"));
    /* its pods that are not ready, by the Deployment's app label */
    struct buf names;
    buf_init(&names, 2048);
    size_t i, listed = 0, more = 0;
    json_t *p;
    json_array_foreach(json_object_get(snap, "pods"), i, p) {
        /* not at(): the label's name has dots in it */
        json_t *labels = at(p, "metadata.labels");
        const char *a = json_string_value(json_object_get(labels, "app.kubernetes.io/name"));
        if (!a || strcmp(a, name) != 0)
            continue;
        int pod_ready = 0;
        size_t k;
        json_t *cond;
        json_array_foreach(at(p, "status.conditions"), k, cond) {
            const char *t = str_at(cond, "type"), *s = str_at(cond, "status");
            if (t && s && strcmp(t, "Ready") == 0 && strcmp(s, "True") == 0)
                pod_ready = 1;
        }
        if (pod_ready)
            continue;
        const char *pn = str_at(p, "metadata.name"), *phase = str_at(p, "status.phase");
        if (listed++ < CHECK_MAX_LISTED)
            buf_appendf(&names, "%s%s (%s)", listed > 1 ? ", " : "", pn ? pn : "?", phase ? phase : "no phase");
        else
            more++;
    }
    if (more)
        buf_appendf(&names, " and %zu more", more);
    if (replicas > 0 && ready >= replicas)
        add(c, "control-plane", CHECK_OK, check, NULL, "%s: %lld of %lld replicas ready", name, ready, replicas);
    else
        add(c, "control-plane", ready > 0 ? CHECK_WARN : CHECK_FAIL, check, hint,
            "%s: %lld of %lld replicas ready%s%s", name, ready, replicas, names.len ? "; not ready: " : "",
            names.len ? buf_cstr(&names) : "");
    buf_free(&names);
}

/* The trust anchor, and the certificates the mesh's issuer signed: its own, identity's and
 * discovery's serving certificates, each chained to the anchor. */
static void check_identity_certs(struct ctx *c, const json_t *snap)
{
    const char *hint = "manifests/gen-identity-ca.sh rotates the issuer and serving certificate (the trust anchor too)";
    json_t *tb = json_object_get(snap, "trustBundle");
    const char *e = fetch_error(tb);
    const char *pem = json_string_value(json_object_get(json_object_get(tb, "data"), "ca.crt"));
    STACK_OF(X509) *anchors = pem ? pem_certs(pem, strlen(pem)) : NULL;
    if (e)
        add(c, "certificates", CHECK_FAIL, "trust-anchor", NULL, "ConfigMap weft-system/weft-trust-bundle cannot be read: %s", e);
    else if (!anchors)
        add(c, "certificates", CHECK_FAIL, "trust-anchor", "manifests/gen-identity-ca.sh, or weftctl install",
            "ConfigMap weft-system/weft-trust-bundle %s", !json_is_object(tb) ? "does not exist"
                                                          : "holds no PEM certificate in ca.crt");
    for (int i = 0; anchors && i < sk_X509_num(anchors); i++)
        expiry(c, "certificates", "trust-anchor", "trust anchor", sk_X509_value(anchors, i), hint);

    const char *disc_hint = "manifests/discovery/gen-discovery-cert.sh --ca-dir DIR (the issuer's "
                            "intermediate.crt and .key) renews it, or weftctl install";
    /* name: what a client verifies besides the chain (a proxy checks weft-discovery for its Service name,
     * WEFT_DISCOVERY_SERVER_NAME's default); optional: checked only where the manifests run its part */
    static const struct {
        const char *secret, *check, *what, *name;
        int optional;
    } secrets[] = {
        {"weft-identity-issuer", "identity-issuer", "identity issuer", NULL, 0},
        {"weft-identity-tls", "identity-serving-certificate", "identity serving certificate", NULL, 0},
        {"weft-discovery-tls", "discovery-serving-certificate", "discovery serving certificate",
         "weft-discovery.weft-system.svc", 1},
    };
    json_t *all = json_object_get(snap, "secrets");
    int discovery = discovery_deployed(snap);
    for (size_t s = 0; s < sizeof secrets / sizeof *secrets; s++) {
        json_t *sec = json_object_get(all, secrets[s].secret);
        const char *se = fetch_error(sec);
        const char *h = secrets[s].optional ? disc_hint : hint;
        if (secrets[s].optional && !discovery && !se && !json_is_object(sec))
            continue; /* manifests from before weft-discovery: nothing serves with it */
        size_t len = 0;
        char *crt = json_is_object(sec) && !se ? secret_pem(sec, "tls.crt", &len) : NULL;
        STACK_OF(X509) *chain = crt ? pem_certs(crt, len) : NULL;
        if (se)
            add(c, "certificates", CHECK_FAIL, secrets[s].check, "weftctl needs get on Secrets in weft-system",
                "Secret weft-system/%s cannot be read: %s", secrets[s].secret, se);
        else if (!chain)
            add(c, "certificates", CHECK_FAIL, secrets[s].check,
                secrets[s].optional ? disc_hint : "manifests/gen-identity-ca.sh, or weftctl install",
                "Secret weft-system/%s %s", secrets[s].secret,
                !json_is_object(sec) ? "does not exist" : "holds no PEM certificate in tls.crt");
        if (chain) {
            expiry(c, "certificates", secrets[s].check, secrets[s].what, sk_X509_value(chain, 0), h);
            char why[256], check[96], forname[128] = "";
            snprintf(check, sizeof check, "%s-chain", secrets[s].check);
            if (secrets[s].name)
                snprintf(forname, sizeof forname, " for %s", secrets[s].name);
            if (anchors && verify(c, anchors, chain, secrets[s].name, why, sizeof why) < 0)
                add(c, "certificates", CHECK_FAIL, check, h, "the %s does not chain to the trust anchor%s: %s",
                    secrets[s].what, forname, why);
            else if (anchors)
                add(c, "certificates", CHECK_OK, check, NULL, "the %s chains to the trust anchor%s",
                    secrets[s].what, forname);
        }
        sk_X509_pop_free(chain, X509_free);
        free(crt);
    }
    sk_X509_pop_free(anchors, X509_free);
}

/* The opted-in namespaces, each with its copy of the trust bundle. */
static void check_namespaces(struct ctx *c, const json_t *snap)
{
    json_t *nss = json_object_get(snap, "namespaces");
    const char *e = fetch_error(nss);
    if (e) {
        add(c, "data-plane", CHECK_FAIL, "opted-in-namespaces", NULL, "namespaces cannot be listed: %s", e);
        return;
    }
    struct buf names, missing;
    buf_init(&names, 2048);
    buf_init(&missing, 2048);
    size_t i, n = json_array_size(nss), nmissing = 0;
    json_t *ns;
    json_t *copies = json_object_get(snap, "namespaceTrustBundles");
    json_array_foreach(nss, i, ns) {
        const char *name = str_at(ns, "metadata.name");
        if (!name)
            continue;
        if (i < CHECK_MAX_LISTED)
            buf_appendf(&names, "%s%s", i ? ", " : "", name);
        json_t *copy = json_object_get(copies, name);
        if (copies && !json_is_object(copy)) {
            if (nmissing++ < CHECK_MAX_LISTED)
                buf_appendf(&missing, "%s%s", nmissing > 1 ? ", " : "", name);
        }
    }
    if (n > CHECK_MAX_LISTED)
        buf_appendf(&names, " and %zu more", n - CHECK_MAX_LISTED);
    if (n == 0)
        add(c, "data-plane", CHECK_WARN, "opted-in-namespaces", "kubectl label namespace NAME weft.dev/inject=enabled",
            "no namespace is labelled weft.dev/inject=enabled: no pod is meshed");
    else
        add(c, "data-plane", CHECK_OK, "opted-in-namespaces", NULL, "%zu namespace%s opted in: %s", n, n == 1 ? "" : "s",
            buf_cstr(&names));
    if (n && copies) {
        if (nmissing)
            add(c, "data-plane", CHECK_WARN, "namespace-trust-bundles",
                "weft-identity publishes it within its --publish-interval; check its log if it stays missing",
                "ConfigMap weft-trust-bundle is missing in %zu opted-in namespace%s (%s): their meshed pods cannot "
                "start", nmissing, nmissing == 1 ? "" : "s", buf_cstr(&missing));
        else
            add(c, "data-plane", CHECK_OK, "namespace-trust-bundles", NULL,
                "every opted-in namespace has ConfigMap weft-trust-bundle");
    }
    buf_free(&names);
    buf_free(&missing);
}

/* The weft-proxy image of a pod (native sidecar or container), or NULL. */
static const char *proxy_image(const json_t *pod)
{
    static const char *const lists[] = {"spec.initContainers", "spec.containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *ctr;
        json_array_foreach(at(pod, lists[l]), i, ctr) {
            const char *n = str_at(ctr, "name");
            if (n && strcmp(n, "weft-proxy") == 0)
                return str_at(ctr, "image");
        }
    }
    return NULL;
}

/* Meshed pods whose proxy image is not the one the mesh would inject into
 * them now (lib/settings, as the webhook resolves it). */
static void check_proxies(struct ctx *c, const json_t *snap)
{
    json_t *cm = json_object_get(snap, "meshConfig");
    json_t *pods = json_object_get(snap, "meshedPods");
    const char *e = fetch_error(cm), *pe = fetch_error(pods);
    const char *text = json_string_value(json_object_get(json_object_get(cm, "data"), "mesh.yaml"));
    char err[900];
    json_t *mesh = NULL, *base = NULL;
    if (e || pe) {
        add(c, "data-plane", CHECK_FAIL, "proxy-versions", NULL, "%s cannot be read: %s",
            e ? "ConfigMap weft-system/weft-config" : "meshed pods", e ? e : pe);
        return;
    }
    if (!text) {
        add(c, "data-plane", CHECK_FAIL, "proxy-versions", "weftctl install | kubectl apply -f -",
            "ConfigMap weft-system/weft-config %s", json_is_object(cm) ? "has no mesh.yaml" : "does not exist");
        return;
    }
    if (!(mesh = yamljson_parse(text, strlen(text), "weft-config mesh.yaml", err, sizeof err)) ||
        !(base = settings_from_mesh(mesh, err, sizeof err))) {
        add(c, "data-plane", CHECK_FAIL, "proxy-versions", "fix ConfigMap weft-system/weft-config", "%s", err);
        json_decref(mesh);
        return;
    }
    json_t *nss = json_object_get(snap, "namespaces");
    const char *tpl_now = json_string_value(json_object_get(snap, "templateVersion"));
    struct buf stale;
    buf_init(&stale, 4096);
    size_t i, nmeshed = 0, nstale = 0, nbad = 0;
    json_t *p;
    char first_bad[1024] = "";
    json_array_foreach(pods, i, p) {
        const char *ns = str_at(p, "metadata.namespace"), *name = str_at(p, "metadata.name");
        const char *have = proxy_image(p);
        if (!ns || !name || !have)
            continue;
        nmeshed++;
        json_t *ns_ann = NULL;
        size_t k;
        json_t *n;
        json_array_foreach(nss, k, n) {
            const char *nn = str_at(n, "metadata.name");
            if (nn && strcmp(nn, ns) == 0)
                ns_ann = at(n, "metadata.annotations");
        }
        json_t *vals = settings_resolve(base, ns_ann, ns, at(p, "metadata.annotations"), err, sizeof err);
        if (!vals) {
            if (!nbad++)
                snprintf(first_bad, sizeof first_bad, "%s/%s: %s", ns, name, err);
            continue;
        }
        const char *want = json_string_value(json_object_get(vals, "proxy_image"));
        /* the templates it was injected with, against those the webhook has now */
        const char *status = json_string_value(json_object_get(at(p, "metadata.annotations"),
                                                               SETTINGS_STATUS_ANNOTATION));
        json_t *st = status ? json_loads(status, 0, NULL) : NULL;
        const char *was = json_string_value(json_object_get(st, "version"));
        int image_stale = want && strcmp(want, have) != 0;
        int tpl_stale = tpl_now && was && strcmp(was, tpl_now) != 0;
        if ((image_stale || tpl_stale) && nstale++ < CHECK_MAX_LISTED) {
            buf_appendf(&stale, "%s%s/%s", nstale > 1 ? "; " : "", ns, name);
            if (image_stale)
                buf_appendf(&stale, " runs %s, not %s", have, want);
            if (tpl_stale)
                buf_appendf(&stale, "%s was injected with templates %s, the webhook's are %s", image_stale ? " and" : "",
                            was, tpl_now);
        }
        json_decref(st);
        json_decref(vals);
    }
    if (nstale > CHECK_MAX_LISTED)
        buf_appendf(&stale, "; and %zu more", nstale - CHECK_MAX_LISTED);
    if (nstale)
        add(c, "data-plane", CHECK_WARN, "proxy-versions",
            "restart them to get the current proxy: kubectl rollout restart deployment -n NS NAME",
            "%zu of %zu meshed pods run a stale proxy: %s", nstale, nmeshed, buf_cstr(&stale));
    else if (tpl_now)
        add(c, "data-plane", CHECK_OK, "proxy-versions", NULL, "%zu meshed pod%s, every one on the proxy image and "
            "templates (%s) the mesh injects now", nmeshed, nmeshed == 1 ? "" : "s", tpl_now);
    else
        add(c, "data-plane", CHECK_OK, "proxy-versions", NULL, "%zu meshed pod%s, every one on the proxy image the mesh "
            "injects now", nmeshed, nmeshed == 1 ? "" : "s");
    if (nbad)
        add(c, "data-plane", CHECK_WARN, "pod-annotations", "fix the annotation; the webhook refuses such a pod when it is re-created",
            "%zu meshed pod%s annotations the webhook would refuse now; first: %s", nbad, nbad == 1 ? " carries" : "s carry",
            first_bad);
    buf_free(&stale);
    json_decref(base);
    json_decref(mesh);
}

/* What the running proxies say of themselves (their /metrics, read through
 * the API server): not ready, or a workload certificate expired or close to
 * it. A 24 h certificate is renewed at 50-70 % of its life, so one with less
 * than CHECK_PROXY_CERT_WARN_HOURS left is overdue. */
static void check_proxy_certs(struct ctx *c, const json_t *snap)
{
    json_t *pods = json_object_get(snap, "meshedPods");
    struct buf bad, unread;
    buf_init(&bad, 4096);
    buf_init(&unread, 2048);
    size_t i, nread = 0, nbad = 0, nexpired = 0, nunread = 0;
    json_t *p;
    json_array_foreach(pods, i, p) {
        json_t *m = json_object_get(p, "weftctlMetrics");
        if (!m || json_is_null(m))
            continue; /* not running, or not read (over the limit) */
        const char *ns = str_at(p, "metadata.namespace"), *name = str_at(p, "metadata.name");
        const char *text = json_string_value(m);
        struct stat_row row;
        char perr[256] = "";
        memset(&row, 0, sizeof row);
        if (!text || stat_add_metrics(&row, text, strlen(text), perr, sizeof perr) < 0) {
            if (nunread++ < CHECK_MAX_LISTED)
                buf_appendf(&unread, "%s%s/%s (%s)", nunread > 1 ? ", " : "", ns ? ns : "?", name ? name : "?",
                            text ? perr : fetch_error(m) ? fetch_error(m) : "?");
            continue;
        }
        nread++;
        double left = row.cert_expiry > 0 ? row.cert_expiry - (double)c->now : -1;
        const char *what = NULL;
        char detail[128];
        if (row.cert_expiry <= 0) {
            what = "has no certificate";
        } else if (left <= 0) {
            what = "has an expired certificate";
            nexpired++;
        } else if (left < CHECK_PROXY_CERT_WARN_HOURS * 3600.0) {
            snprintf(detail, sizeof detail, "has a certificate that expires in %.1f h (renewal is overdue)",
                     left / 3600);
            what = detail;
        } else if (!row.ready) {
            what = "is not ready";
        }
        if (what && nbad++ < CHECK_MAX_LISTED)
            buf_appendf(&bad, "%s%s/%s %s", nbad > 1 ? "; " : "", ns ? ns : "?", name ? name : "?", what);
    }
    if (nbad > CHECK_MAX_LISTED)
        buf_appendf(&bad, "; and %zu more", nbad - CHECK_MAX_LISTED);
    if (nbad)
        add(c, "data-plane", nexpired ? CHECK_FAIL : CHECK_WARN, "proxy-certificates",
            "kubectl logs -n NS POD -c weft-proxy says why; for a certificate, weft-identity's log too",
            "%zu of %zu proxies read: %s", nbad, nread, buf_cstr(&bad));
    else if (nread)
        add(c, "data-plane", CHECK_OK, "proxy-certificates", NULL,
            "%zu proxies read: ready, certificates valid for %d h or more", nread, CHECK_PROXY_CERT_WARN_HOURS);
    if (nunread)
        add(c, "data-plane", CHECK_WARN, "proxy-metrics", "weftctl needs get on pods/proxy; the proxy's admin port "
            "is weft-admin (15020)", "%zu proxies' /metrics could not be read: %s", nunread, buf_cstr(&unread));
    buf_free(&bad);
    buf_free(&unread);
}

json_t *check_evaluate(const json_t *snap, int pre)
{
    struct ctx c = {json_array(), 0};
    int reachable;
    if (!json_is_object(snap) || parse_time(str_at(snap, "now"), &c.now) < 0) {
        add(&c, "weftctl", CHECK_FAIL, "snapshot", NULL, "the snapshot is not an object with \"now\" in RFC 3339 UTC");
        return c.results;
    }
    check_api(&c, snap, &reachable);
    if (!reachable)
        return c.results;
    json_t *ns = json_object_get(snap, "namespace");
    if (pre) {
        check_access(&c, snap);
        if (fetch_error(ns))
            add(&c, "pre-install", CHECK_FAIL, "namespace", NULL, "Namespace weft-system cannot be read: %s",
                fetch_error(ns));
        else if (json_is_object(ns))
            add(&c, "pre-install", CHECK_WARN, "namespace", "weftctl check (without --pre) checks the installation",
                "Namespace weft-system exists already: Weft is installed, or was");
        else
            add(&c, "pre-install", CHECK_OK, "namespace", NULL, "Namespace weft-system does not exist yet");
        check_crds(&c, snap);
        return c.results;
    }
    if (fetch_error(ns) || !json_is_object(ns)) {
        add(&c, "control-plane", CHECK_FAIL, "namespace", "weftctl check --pre, then weftctl install | kubectl apply -f -",
            "Namespace weft-system %s%s", fetch_error(ns) ? "cannot be read: " : "does not exist: Weft is not installed",
            fetch_error(ns) ? fetch_error(ns) : "");
        return c.results;
    }
    add(&c, "control-plane", CHECK_OK, "namespace", NULL, "Namespace weft-system exists");
    check_deployment(&c, snap, "weft-webhook", 0);
    check_deployment(&c, snap, "weft-identity", 0);
    check_deployment(&c, snap, "weft-discovery", 1);
    check_webhook(&c, snap);
    check_identity_certs(&c, snap);
    check_crds(&c, snap);
    check_namespaces(&c, snap);
    check_proxies(&c, snap);
    check_proxy_certs(&c, snap);
    return c.results;
}

static enum check_status status_of(const json_t *r)
{
    const char *s = str_at(r, "status");
    return s && strcmp(s, "fail") == 0 ? CHECK_FAIL : s && strcmp(s, "warn") == 0 ? CHECK_WARN : CHECK_OK;
}

enum check_status check_worst(const json_t *results)
{
    enum check_status w = CHECK_OK;
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r) if (status_of(r) > w) w = status_of(r);
    return w;
}

void check_render_text(const json_t *results, struct buf *out)
{
    const char *cat = NULL;
    size_t i, n[3] = {0, 0, 0};
    json_t *r;
    json_array_foreach(results, i, r) {
        const char *rc = str_at(r, "category"), *hint = str_at(r, "hint");
        enum check_status st = status_of(r);
        n[st]++;
        if (!cat || strcmp(cat, rc) != 0)
            buf_appendf(out, "%s%s\n", cat ? "\n" : "", rc);
        cat = rc;
        buf_appendf(out, "  %-4s  %s\n", status_names[st], str_at(r, "message"));
        if (hint)
            buf_appendf(out, "        hint: %s\n", hint);
    }
    buf_appendf(out, "\n%zu ok, %zu warn, %zu fail\n", n[0], n[1], n[2]);
}

int check_exit_status(const json_t *results, int strict)
{
    enum check_status w = check_worst(results);
    return w == CHECK_FAIL ? 1 : w == CHECK_WARN && strict ? 2 : 0;
}
