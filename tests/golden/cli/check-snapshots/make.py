#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Derives the check golden cases' snapshots from two taken from a real
cluster (weftctl check [--pre] --dump-snapshot against tests/e2e/cluster.py
with manifests/ applied, both certificate scripts run, namespace shop opted
in and two injected pods stored, one with an older proxy image):
installed.json and pre-installed.json (that cluster had no Gateway API CRDs,
so the ReferenceGrant CRD weftctl reads since is added to them as absent);
and installed-discovery.json, of a cluster with weftctl install applied
(weft-discovery and its Secret weft-discovery-tls) after the Gateway API
v1.6.3 standard CRDs, with namespace shop opted in. Each variant changes
what its name says and nothing else. Run from this directory; rewrites the
variants."""
import copy
import json

base = json.load(open("installed.json"))
pre = json.load(open("pre-installed.json"))
disc = json.load(open("installed-discovery.json"))
REFGRANTS = "referencegrants.gateway.networking.k8s.io"
for d in (base, pre):
    d["crds"].setdefault(REFGRANTS, None)
CRD = {"kind": "CustomResourceDefinition", "spec": {"versions": [{"name": "v1", "served": True},
                                                                 {"name": "v1beta1", "served": True}]}}


def write(name, d):
    with open(name + ".json", "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def variant(name, fn, src=base):
    d = copy.deepcopy(src)
    fn(d)
    write(name, d)


def healthy(d):
    for dep in d["deployments"].values():
        if dep:
            dep["status"]["readyReplicas"] = dep["spec"]["replicas"]
    for p in d["pods"]:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    for ns in d["namespaceTrustBundles"]:
        d["namespaceTrustBundles"][ns] = {"metadata": {"name": "weft-trust-bundle"}}
    for p in d["meshedPods"]:
        for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]:
            c["image"] = c["image"].replace("weft-proxy:0.0.9", "weft-proxy:0.1.0")
    d["crds"] = {k: CRD for k in d["crds"]}


variant("healthy", healthy)


def on_healthy(fn):
    def f(d):
        healthy(d)
        fn(d)
    return f


def no_crds(d):
    d["crds"] = {k: None for k in d["crds"]}


def crd_old(d):
    d["crds"]["grpcroutes.gateway.networking.k8s.io"] = {
        "spec": {"versions": [{"name": "v1alpha2", "served": True}, {"name": "v1", "served": False}]}}


def hook(d):
    return d["webhookConfiguration"]["webhooks"][0]


def ca_mismatch(d):  # the mesh's trust anchor is not the webhook's CA
    import base64
    hook(d)["clientConfig"]["caBundle"] = base64.b64encode(d["trustBundle"]["data"]["ca.crt"].encode()).decode()


def ca_empty(d):
    hook(d)["clientConfig"].pop("caBundle")


def wrong_service(d):
    hook(d)["clientConfig"]["service"]["name"] = "weft-webhook-old"


def fail_open(d):
    hook(d)["failurePolicy"] = "Ignore"


def no_pod_rule(d):
    hook(d)["rules"][0]["operations"] = ["UPDATE"]


def no_webhook(d):
    d["webhookConfiguration"] = None
    d.pop("servingCertificate")


def issuer_foreign(d):  # the trust bundle holds the webhook's CA, not the mesh root
    import base64
    d["trustBundle"]["data"]["ca.crt"] = base64.b64decode(hook(d)["clientConfig"]["caBundle"]).decode()


def secrets_forbidden(d):
    msg = ('GET /api/v1/namespaces/weft-system/secrets/weft-identity-issuer: secrets "weft-identity-issuer" is '
           'forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "weft-system" '
           '(reason Forbidden)')
    d["secrets"]["weft-identity-issuer"] = {"fetchError": msg}
    d["secrets"]["weft-identity-tls"] = None


def discovery_down(d):
    dep = copy.deepcopy(d["deployments"]["weft-identity"])
    dep["metadata"]["name"] = "weft-discovery"
    dep["status"]["readyReplicas"] = 0
    d["deployments"]["weft-discovery"] = dep


def some_ready(d):
    d["deployments"]["weft-webhook"]["status"]["readyReplicas"] = 1
    d["pods"][0]["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    d["pods"][0]["status"]["phase"] = "Running"


def no_namespaces(d):
    d["namespaces"] = []
    d["namespaceTrustBundles"] = {}
    d["meshedPods"] = []


def bad_annotation(d):
    d["meshedPods"][0]["metadata"]["annotations"]["weft.dev/mtls-mode"] = "OFF"


def ns_override(d):  # the namespace asks for another proxy image: the old pod runs what it should
    d["namespaces"][0]["metadata"].setdefault("annotations", {})["weft.dev/proxy-image"] = \
        "ghcr.io/weft-mesh/weft-proxy:0.0.9"


def old_kubernetes(d):
    d["version"].update({"major": "1", "minor": "27", "gitVersion": "v1.27.16"})


def unreachable(d):
    for k in list(d):
        if k not in ("now", "server"):
            d.pop(k)
    d["version"] = {"fetchError": "https://127.0.0.1:33789: connect: Connection refused"}


def not_installed(d):
    for k in list(d):
        if k not in ("now", "server", "version", "namespace", "crds"):
            d.pop(k)
    d["namespace"] = None


def no_mesh_config(d):
    d["meshConfig"] = None


variant("no-crds", on_healthy(no_crds))
variant("crd-old-version", on_healthy(crd_old))
variant("ca-mismatch", on_healthy(ca_mismatch))
variant("ca-empty", on_healthy(ca_empty))
variant("wrong-service", on_healthy(wrong_service))
variant("fail-open", on_healthy(fail_open))
variant("no-pod-rule", on_healthy(no_pod_rule))
variant("no-webhook", on_healthy(no_webhook))
variant("issuer-foreign", on_healthy(issuer_foreign))
variant("secrets-forbidden", on_healthy(secrets_forbidden))
variant("discovery-down", on_healthy(discovery_down))
variant("some-ready", on_healthy(some_ready))
variant("no-namespaces", on_healthy(no_namespaces))
variant("bad-annotation", on_healthy(bad_annotation))
variant("namespace-proxy-image", ns_override)
variant("old-kubernetes", on_healthy(old_kubernetes))
variant("unreachable", unreachable)
variant("not-installed", not_installed)
variant("no-mesh-config", on_healthy(no_mesh_config))


def pre_denied(d):
    for a in d["access"]:
        if a["resource"] in ("clusterroles", "clusterrolebindings", "mutatingwebhookconfigurations"):
            a["allowed"] = False


def pre_exists(d):
    d["namespace"] = {"kind": "Namespace", "metadata": {"name": "weft-system"}}
    d["crds"] = {k: CRD for k in d["crds"]}


def pre_error(d):
    for a in d["access"]:
        a.pop("allowed")
        a["fetchError"] = ("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews: the server could not "
                           "find the requested resource (reason NotFound)")


def pre_fresh(d):
    d["namespace"] = None


variant("pre-fresh", pre_fresh, pre)
variant("pre-denied", pre_denied, pre)
variant("pre-exists", pre_exists, pre)
variant("pre-error", pre_error, pre)

# The running proxies' /metrics (read through the API server) on the meshed
# pods: the text a real weft-proxy wrote (stat-snapshots/one-proxy.json).
import re  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

proxy_text = json.load(open("../stat-snapshots/one-proxy.json"))["pods"][0]["weftctlMetrics"]
now = int(datetime.strptime(base["now"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def proxy_metrics(left_seconds, ready=1):
    t = re.sub(r"^weft_proxy_certificate_expiry_timestamp_seconds .*$",
               "weft_proxy_certificate_expiry_timestamp_seconds %d" % (now + left_seconds), proxy_text, flags=re.M)
    return re.sub(r"^weft_proxy_ready .*$", "weft_proxy_ready %d" % ready, t, flags=re.M)


def with_proxies(*metrics):
    def f(d):
        healthy(d)
        for p, m in zip(d["meshedPods"], metrics):
            p["status"]["phase"] = "Running"
            p["weftctlMetrics"] = m
    return f


variant("proxies-ok", with_proxies(proxy_metrics(20 * 3600), proxy_metrics(13 * 3600)))
variant("proxy-cert-overdue", with_proxies(proxy_metrics(20 * 3600), proxy_metrics(2 * 3600)))
variant("proxy-cert-expired", with_proxies(proxy_metrics(-60), proxy_metrics(2 * 3600)))
variant("proxy-not-ready", with_proxies(proxy_metrics(20 * 3600, ready=0), None))
variant("proxy-metrics-forbidden", with_proxies(
    {"fetchError": 'HTTP 403: pods "web" is forbidden: User "jane" cannot get resource "pods/proxy" in API '
                   'group "" in the namespace "shop"'}, "weft_proxy_ready one\n"))


# The templates' version the cluster's webhook stamps now (check loads
# weft-templates as the webhook does): the pods' own, or a newer one.
def template_version(v):
    def f(d):
        healthy(d)
        d["templateVersion"] = v
    return f


variant("templates-current", template_version(json.loads(
    base["meshedPods"][0]["metadata"]["annotations"]["weft.dev/status"])["version"]))
variant("templates-stale", template_version("0123456789abcdef"))


# weft-discovery installed (installed-discovery.json): its serving
# certificate and the Gateway API CRDs it watches.
def disc_healthy(d):
    for dep in d["deployments"].values():
        dep["status"]["readyReplicas"] = dep["spec"]["replicas"]
    for p in d["pods"]:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        p["status"]["phase"] = "Running"
    for ns in d["namespaceTrustBundles"]:
        d["namespaceTrustBundles"][ns] = {"metadata": {"name": "weft-trust-bundle"}}


def on_disc(fn):
    def f(d):
        disc_healthy(d)
        fn(d)
    return f


def disc_tls(d):
    return d["secrets"]["weft-discovery-tls"]


def disc_tls_missing(d):
    d["secrets"]["weft-discovery-tls"] = None


def disc_tls_forbidden(d):
    d["secrets"]["weft-discovery-tls"] = {"fetchError": (
        'GET /api/v1/namespaces/weft-system/secrets/weft-discovery-tls: secrets "weft-discovery-tls" is '
        'forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "weft-system" '
        '(reason Forbidden)')}


def disc_tls_no_pem(d):
    disc_tls(d)["data"] = {}


def disc_tls_foreign(d):  # the webhook's certificate, of its own CA, not the mesh's issuer
    import base64
    disc_tls(d)["data"]["tls.crt"] = base64.b64encode(d["servingCertificate"]["pem"].encode()).decode()


def disc_tls_wrong_name(d):  # the identity's certificate: the mesh's issuer, another name
    disc_tls(d)["data"]["tls.crt"] = d["secrets"]["weft-identity-tls"]["data"]["tls.crt"]


def disc_no_refgrants(d):
    d["crds"][REFGRANTS] = None


def disc_refgrants_v1_only(d):  # a ReferenceGrant CRD that no longer serves v1beta1
    for v in d["crds"][REFGRANTS]["spec"]["versions"]:
        v["served"] = v["name"] == "v1"


def disc_no_gateway_api(d):  # no CRDs, and discovery told not to watch them
    d["crds"] = {k: None for k in d["crds"]}
    d["deployments"]["weft-discovery"]["spec"]["template"]["spec"]["containers"][0]["args"].append(
        "--no-gateway-api")


def disc_not_ready(d):
    d["deployments"]["weft-discovery"]["status"]["readyReplicas"] = 1
    p = [p for p in d["pods"] if p["metadata"]["labels"].get("app.kubernetes.io/name") == "weft-discovery"][0]
    p["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


variant("discovery-healthy", disc_healthy, disc)
variant("discovery-tls-missing", on_disc(disc_tls_missing), disc)
variant("discovery-tls-forbidden", on_disc(disc_tls_forbidden), disc)
variant("discovery-tls-no-pem", on_disc(disc_tls_no_pem), disc)
variant("discovery-tls-foreign", on_disc(disc_tls_foreign), disc)
variant("discovery-tls-wrong-name", on_disc(disc_tls_wrong_name), disc)
variant("discovery-no-referencegrants", on_disc(disc_no_refgrants), disc)
variant("discovery-referencegrants-v1-only", on_disc(disc_refgrants_v1_only), disc)
variant("discovery-no-gateway-api", on_disc(disc_no_gateway_api), disc)
variant("discovery-some-ready", on_disc(disc_not_ready), disc)
