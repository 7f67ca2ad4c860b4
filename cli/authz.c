/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl authz why; see authz.h. The caller is taken as a meshed pod when
 * its namespace opts in (weft.dev/inject=enabled, not ignored by mesh.yaml):
 * its proxy then dials a destination in its meshNetworks over mTLS with its
 * SPIFFE ID, which the destination's proxy checks; otherwise it arrives as
 * plaintext, which STRICT refuses and PERMISSIVE passes without a policy. */
#include "authz.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proxy/authz.h"
#include "errbuf.h"
#include "http1.h"
#include "parse.h"
#include "settings.h"
#include "spiffe.h"
#include "yamljson.h"

static json_t *get(const json_t *v, const char *a, const char *b)
{
    json_t *x = json_object_get(v, a);
    return b ? json_object_get(x, b) : x;
}

static const char *sget(const json_t *v, const char *a, const char *b)
{
    return json_string_value(get(v, a, b));
}

/* Where the value of weft.dev/<key> came from for pod in ns. */
static const char *source(const json_t *ns_obj, const json_t *pod, const char *key)
{
    char ann[128];
    snprintf(ann, sizeof ann, "weft.dev/%s", key);
    if (json_object_get(get(pod, "metadata", "annotations"), ann))
        return "pod annotation";
    if (json_object_get(get(ns_obj, "metadata", "annotations"), ann))
        return "namespace annotation";
    return "mesh default";
}

static int meshed_namespace(const json_t *ns_obj, const json_t *mesh)
{
    const char *name = sget(ns_obj, "metadata", "name");
    const char *label = json_string_value(json_object_get(get(ns_obj, "metadata", "labels"), "weft.dev/inject"));
    if (!name || !label || strcmp(label, "enabled") != 0)
        return 0;
    size_t i;
    json_t *ig;
    json_array_foreach(json_object_get(mesh, "ignoredNamespaces"), i, ig) if (json_string_value(ig) &&
                                                                           strcmp(json_string_value(ig), name) == 0) return 0;
    return 1;
}

/* The container port a Service port leads to on pod: a number, or a named
 * port looked up in the pod's containers. 0 when it cannot be told. */
static long target_port(const json_t *svc_port, const json_t *pod)
{
    json_t *tp = json_object_get(svc_port, "targetPort");
    if (!tp)
        return (long)json_integer_value(json_object_get(svc_port, "port"));
    if (json_is_integer(tp))
        return (long)json_integer_value(tp);
    const char *name = json_string_value(tp);
    size_t i, k;
    json_t *c, *p;
    json_array_foreach(get(pod, "spec", "containers"), i, c) json_array_foreach(json_object_get(c, "ports"), k, p) {
        const char *pn = json_string_value(json_object_get(p, "name"));
        if (name && pn && strcmp(pn, name) == 0)
            return (long)json_integer_value(json_object_get(p, "containerPort"));
    }
    return 0;
}

/* A variable of the pod's weft-proxy container (native sidecar or container): what the running proxy enforces. */
static const char *proxy_env(const json_t *pod, const char *name)
{
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i, k;
        json_t *c, *e;
        json_array_foreach(get(pod, "spec", lists[l]), i, c) {
            const char *cn = json_string_value(json_object_get(c, "name"));
            if (!cn || strcmp(cn, "weft-proxy") != 0)
                continue;
            json_array_foreach(json_object_get(c, "env"), k, e) {
                const char *en = json_string_value(json_object_get(e, "name"));
                if (en && strcmp(en, name) == 0) /* the API server drops an empty value */
                    return json_string_value(json_object_get(e, "value")) ? json_string_value(json_object_get(e, "value")) : "";
            }
        }
    }
    return NULL;
}

/* The running proxy's value of env when it has one (noting in stale when it
 * differs from what the settings say now), else the settings'. */
static const char *effective(const json_t *pod, const char *env, const char *now, const char *what, struct buf *stale)
{
    const char *have = proxy_env(pod, env);
    if (!have)
        return now;
    if (now && strcmp(have, now) != 0)
        buf_appendf(stale, "%s%s \"%s\" (the settings now say \"%s\")", stale->len ? ", " : "", what, have, now);
    return have;
}

static int in_list(const char *ports, long port)
{
    uint16_t list[PARSE_MAX_LIST];
    size_t n = 0;
    if (!ports || parse_port_list(ports, list, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (list[i] == port)
            return 1;
    return 0;
}

static int in_cidrs(const char *cidrs, const char *ip)
{
    struct parse_cidr list[PARSE_MAX_LIST];
    size_t n = 0;
    unsigned char addr[16];
    int family = strchr(ip ? ip : "", ':') ? AF_INET6 : AF_INET;
    if (!cidrs || !ip || inet_pton(family, ip, addr) != 1 || parse_cidr_list(cidrs, list, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (parse_cidr_contains(&list[i], family, addr))
            return 1;
    return 0;
}

/* Weft's policy is per connection (caller identity, port); per-route policy
 * does not exist yet, so a request only gets a line saying its method and
 * path do not enter the verdict, after the same checks a proxy would make
 * of a request line. */
static int authz_request_line(const json_t *req, struct buf *out, char *err, size_t errlen)
{
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *path = json_string_value(json_object_get(req, "path"));
    if (!method || !http1_is_token(method, strlen(method)) || strlen(method) > AUTHZ_MAX_METHOD) {
        errbuf_set(err, errlen, "--method \"%s\": not an HTTP method (a token of at most %d characters)",
                   method ? method : "", AUTHZ_MAX_METHOD);
        return -1;
    }
    size_t plen = path ? strlen(path) : 0;
    if (!path || path[0] != '/' || plen > AUTHZ_MAX_PATH) {
        errbuf_set(err, errlen, "--path: expected an absolute path starting with / (at most %d bytes)", AUTHZ_MAX_PATH);
        return -1;
    }
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f) {
            errbuf_set(err, errlen, "--path: byte %zu is a space, a control character or not ASCII", i + 1);
            return -1;
        }
    buf_appendf(out, "req   %s %s: Weft authorizes per connection (the caller's identity and the port); the method and "
                "path do not change the verdict\n", method, path);
    return 0;
}

int authz_why(const json_t *snap, struct buf *out, char *err, size_t errlen)
{
    const char *from = json_string_value(json_object_get(snap, "from"));
    const char *port = json_string_value(json_object_get(snap, "port"));
    const json_t *svc = json_object_get(snap, "service");
    const json_t *ns_obj = json_object_get(snap, "namespace");
    const json_t *caller_ns = json_object_get(snap, "callerNamespace");
    const char *mesh_text = json_string_value(json_object_get(snap, "mesh"));
    const char *svc_name = sget(svc, "metadata", "name"), *svc_ns = sget(svc, "metadata", "namespace");
    json_t *mesh = NULL, *base = NULL, *caller_vals = NULL;
    char perr[1024];
    int rc = -1;
    if (!from || !strchr(from, '/') || !port || !svc_name || !svc_ns || !json_is_object(ns_obj) || !mesh_text) {
        errbuf_set(err, errlen, "the snapshot lacks from, port, service, namespace or mesh");
        return -1;
    }
    char cns[SPIFFE_MAX_NAMESPACE + 1], csa[SPIFFE_MAX_SA + 1];
    size_t nslen = (size_t)(strchr(from, '/') - from);
    const char *sa = strchr(from, '/') + 1;
    if (!spiffe_valid_namespace(from, nslen) || !spiffe_valid_sa(sa, strlen(sa))) {
        errbuf_set(err, errlen, "--from \"%s\": expected NAMESPACE/SERVICEACCOUNT", from);
        return -1;
    }
    snprintf(cns, sizeof cns, "%.*s", (int)nslen, from);
    snprintf(csa, sizeof csa, "%s", sa);
    if (!(mesh = yamljson_parse(mesh_text, strlen(mesh_text), "weft-config mesh.yaml", err, errlen)))
        goto out;
    if (!(base = settings_from_mesh(mesh, err, errlen)))
        goto out;
    /* the Service port: its number or its name */
    const json_t *sp = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(get(svc, "spec", "ports"), i, p) {
        const char *pn = json_string_value(json_object_get(p, "name"));
        char num[16];
        snprintf(num, sizeof num, "%lld", json_integer_value(json_object_get(p, "port")));
        if (strcmp(num, port) == 0 || (pn && strcmp(pn, port) == 0))
            sp = p;
    }
    if (!sp) {
        struct buf ports;
        buf_init(&ports, 1024);
        json_array_foreach(get(svc, "spec", "ports"), i, p) {
            const char *pn = json_string_value(json_object_get(p, "name"));
            buf_appendf(&ports, "%s%lld%s%s%s", i ? ", " : "", json_integer_value(json_object_get(p, "port")),
                        pn ? " (" : "", pn ? pn : "", pn ? ")" : "");
        }
        errbuf_set(err, errlen, "Service %s/%s has no port %s (its ports: %s)", svc_ns, svc_name, port,
                   ports.len ? buf_cstr(&ports) : "none");
        buf_free(&ports);
        goto out;
    }
    long sport = (long)json_integer_value(json_object_get(sp, "port"));
    const char *td = json_string_value(json_object_get(base, "trust_domain"));
    int caller_meshed = json_is_object(caller_ns) && meshed_namespace(caller_ns, mesh);
    char id[512];
    spiffe_format(td ? td : "cluster.local", cns, csa, id, sizeof id);
    if (caller_meshed &&
        !(caller_vals = settings_resolve(base, get(caller_ns, "metadata", "annotations"), cns, NULL, perr, sizeof perr))) {
        errbuf_set(err, errlen, "the caller's namespace %s: %s", cns, perr);
        goto out;
    }
    buf_appendf(out, "from  %s: %s\n", from,
                caller_meshed ? id
                : json_is_object(caller_ns)
                    ? "its namespace is not meshed (no weft.dev/inject=enabled, or ignored by mesh.yaml): plaintext, no identity"
                    : "its namespace does not exist: taken as outside the mesh, plaintext, no identity");
    buf_appendf(out, "to    Service %s/%s port %ld\n", svc_ns, svc_name, sport);
    if (json_object_get(snap, "request") && authz_request_line(json_object_get(snap, "request"), out, err, errlen) < 0)
        goto out;
    json_t *pods = json_object_get(snap, "pods");
    size_t npods = json_array_size(pods), allowed = 0, denied = 0;
    if (npods == 0)
        buf_appendf(out, "verdict: denied (no pod behind the Service: nothing answers, whatever the policy)\n");
    json_array_foreach(pods, i, p) {
        const char *pname = sget(p, "metadata", "name");
        const char *ip = sget(p, "status", "podIP");
        long tport = target_port(sp, p);
        int verdict;
        char why[2048];
        json_t *vals = NULL;
        int meshed = json_object_get(get(p, "metadata", "annotations"), SETTINGS_STATUS_ANNOTATION) != NULL;
        if (!meshed) {
            verdict = 1;
            snprintf(why, sizeof why, "the pod is not meshed (no %s): no proxy checks its callers",
                     SETTINGS_STATUS_ANNOTATION);
        } else if (!(vals = settings_resolve(base, get(ns_obj, "metadata", "annotations"), svc_ns,
                                             get(p, "metadata", "annotations"), perr, sizeof perr))) {
            verdict = 0;
            snprintf(why, sizeof why, "its annotations do not parse (%s): the webhook would refuse it now; the "
                     "running proxy has what it was injected with", perr);
        } else {
            struct buf stale;
            buf_init(&stale, 1024);
            const char *mtls = effective(p, "WEFT_MTLS_MODE", json_string_value(json_object_get(vals, "mtls_mode")),
                                         "mtls-mode", &stale);
            const char *policy = effective(p, "WEFT_INBOUND_POLICY",
                                           json_string_value(json_object_get(vals, "inbound_policy")),
                                           "inbound-policy", &stale);
            const char *allow = effective(p, "WEFT_ALLOW_FROM", json_string_value(json_object_get(vals, "allow_from")),
                                          "allow-from", &stale);
            const char *ptd = effective(p, "WEFT_TRUST_DOMAIN", td, "trust domain", &stale);
            const char *skip = json_string_value(json_object_get(vals, "skip_inbound_ports"));
            const char *nets = caller_vals ? json_string_value(json_object_get(caller_vals, "mesh_networks")) : NULL;
            if (tport > 0 && in_list(skip, tport)) {
                verdict = 1;
                snprintf(why, sizeof why, "port %ld is in skip-inbound-ports \"%s\" (%s): not captured, no proxy "
                         "checks it", tport, skip, source(ns_obj, p, "skip-inbound-ports"));
            } else if (!caller_meshed || (ip && !in_cidrs(nets, ip))) {
                const char *how = !caller_meshed ? "the caller is not meshed"
                                                 : "the pod IP is outside the caller's meshNetworks";
                verdict = mtls && strcmp(mtls, "PERMISSIVE") == 0;
                snprintf(why, sizeof why, "%s (%s), so it arrives as plaintext: mtls-mode %s (%s) %s", how,
                         !caller_meshed ? "no sidecar to dial over mTLS" : nets ? nets : "none",
                         mtls ? mtls : "?", source(ns_obj, p, "mtls-mode"),
                         verdict ? "passes plaintext without a policy" : "refuses plaintext");
            } else {
                struct authz a;
                struct spiffe_id peer;
                char aerr[256];
                memset(&a, 0, sizeof a);
                snprintf(a.trust_domain, sizeof a.trust_domain, "%s", ptd ? ptd : "");
                snprintf(a.ns, sizeof a.ns, "%s", svc_ns);
                if (authz_parse_policy(policy ? policy : "", &a.policy) < 0 ||
                    authz_parse_allow_from(allow ? allow : "", a.rules, &a.nrules, aerr, sizeof aerr) < 0 ||
                    spiffe_parse(id, strlen(id), &peer) < 0) {
                    errbuf_set(err, errlen, "pod %s/%s: inbound-policy \"%s\" or allow-from \"%s\" does not parse",
                               svc_ns, pname ? pname : "?", policy ? policy : "", allow ? allow : "");
                    json_decref(vals);
                    buf_free(&stale);
                    goto out;
                }
                struct authz_decision d = authz_check(&a, &peer);
                verdict = d.allowed;
                size_t l;
                if (strcmp(d.reason, "foreign-trust-domain") == 0) {
                    l = (size_t)snprintf(why, sizeof why, "foreign-trust-domain: the caller %s is not of the pod's "
                                         "trust domain %s", id, ptd ? ptd : "?");
                } else if (strcmp(d.reason, "allow-from") == 0) {
                    l = (size_t)snprintf(why, sizeof why, "allow-from \"%s\" (%s) lists %s", allow,
                                         source(ns_obj, p, "allow-from"), from);
                } else {
                    l = (size_t)snprintf(why, sizeof why, "%s: inbound-policy %s (%s)", d.reason, policy,
                                         source(ns_obj, p, "inbound-policy"));
                    if (allow && *allow && l < sizeof why)
                        l += (size_t)snprintf(why + l, sizeof why - l, ", and allow-from \"%s\" (%s) does not list %s",
                                              allow, source(ns_obj, p, "allow-from"), from);
                }
                if (l < sizeof why)
                    l += (size_t)snprintf(why + l, sizeof why - l,
                                          "; over mTLS (mtls-mode %s), the caller's proxy presenting %s",
                                          mtls ? mtls : "?", id);
                if (!ip && l < sizeof why) /* no IP yet: it will get one, taken as inside meshNetworks */
                    snprintf(why + l, sizeof why - l, " (the pod has no IP yet: taken as inside meshNetworks)");
            }
            if (stale.len) {
                size_t l = strlen(why);
                snprintf(why + l, sizeof why - l, "; judged by what its running proxy was injected with: %s; "
                         "re-create the pod to apply the settings", buf_cstr(&stale));
            }
            buf_free(&stale);
        }
        json_decref(vals);
        verdict ? allowed++ : denied++;
        if (i < AUTHZ_WHY_MAX_PODS)
            buf_appendf(out, "pod   %s/%s (%s, port %ld): %s: %s\n", svc_ns, pname ? pname : "?", ip ? ip : "no IP",
                        tport, verdict ? "ALLOWED" : "DENIED", why);
    }
    if (npods > AUTHZ_WHY_MAX_PODS)
        buf_appendf(out, "      and %zu more pods\n", npods - AUTHZ_WHY_MAX_PODS);
    if (npods)
        buf_appendf(out, "verdict: %s (%zu of %zu pods allow)\n",
                    denied == 0 ? "allowed" : allowed == 0 ? "denied" : "allowed by some pods only", allowed, npods);
    rc = denied || npods == 0 ? 1 : 0;
out:
    json_decref(caller_vals);
    json_decref(base);
    json_decref(mesh);
    return rc;
}
