# SPDX-License-Identifier: Apache-2.0
"""manifests/: the copies of templates/ are current, the kustomizations
render what issue 7 lists, and the real API server accepts and enforces them."""
import base64
import filecmp
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

import cluster as cl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(REPO, "manifests")
BASE = os.path.join(MANIFESTS, "base")


def test_config_copies_match_templates():
    """kustomize loads files only under its root, so base/config/ holds
    copies of templates/: they must be equal (fix: manifests/sync-config.sh)."""
    assert filecmp.cmp(os.path.join(REPO, "templates", "mesh.yaml"),
                       os.path.join(BASE, "config", "mesh.yaml"), shallow=False), \
        "manifests/base/config/mesh.yaml differs from templates/mesh.yaml: run manifests/sync-config.sh"
    want = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "templates", "*.yaml"))
                  if os.path.basename(p) != "mesh.yaml")
    have = sorted(os.path.basename(p)
                  for p in glob.glob(os.path.join(BASE, "config", "templates", "*.yaml")))
    assert have == want, "run manifests/sync-config.sh"
    for name in want:
        assert filecmp.cmp(os.path.join(REPO, "templates", name),
                           os.path.join(BASE, "config", "templates", name), shallow=False), \
            "manifests/base/config/templates/%s differs: run manifests/sync-config.sh" % name
    with open(os.path.join(BASE, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    gens = {g["name"]: g["files"] for g in k["configMapGenerator"]}
    assert gens["weft-config"] == ["config/mesh.yaml"]
    assert sorted(os.path.basename(p) for p in gens["weft-templates"]) == want, \
        "list every template in manifests/base/kustomization.yaml's weft-templates generator"


def kubectl_for_render():
    d = cl.control_plane_bin()
    if d:
        return os.path.join(d, "kubectl")
    k = shutil.which("kubectl")
    if not k:
        pytest.skip("no kubectl: run tests/e2e/setup-control-plane.sh")
    return k


def render(path):
    r = subprocess.run([kubectl_for_render(), "kustomize", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(r.stdout) if o}


def test_base_renders_what_issue_7_lists():
    objs = render(MANIFESTS)
    assert ("Namespace", "weft-system") in objs
    for kind, name in objs:
        if kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                        "MutatingWebhookConfiguration"):
            assert objs[(kind, name)]["metadata"]["namespace"] == "weft-system", (kind, name)
    for sa in ("weft-webhook", "weft-identity"):
        assert ("ServiceAccount", sa) in objs
    # RBAC: the webhook reads namespaces; identity creates TokenReviews and
    # publishes the trust bundle (its one ConfigMap by name), nothing more.
    assert objs[("ClusterRole", "weft-webhook")]["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]
    assert objs[("ClusterRole", "weft-identity")]["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
         "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["weft-trust-bundle"],
         "verbs": ["get", "update"]}]
    for name in ("weft-webhook", "weft-identity"):
        b = objs[("ClusterRoleBinding", name)]
        assert b["roleRef"]["name"] == name
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": name,
                                  "namespace": "weft-system"}]
    assert "mesh.yaml" in objs[("ConfigMap", "weft-config")]["data"]
    assert "proxy-container.yaml" in objs[("ConfigMap", "weft-templates")]["data"]
    # No data in the base: the CA script fills ca.crt and re-applies must keep it.
    assert "data" not in objs[("ConfigMap", "weft-trust-bundle")]

    dep = objs[("Deployment", "weft-webhook")]
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "weft-webhook"
    assert pod["affinity"]["podAntiAffinity"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https": 8443, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for flag in ("--config=", "--templates=", "--tls-cert=", "--tls-key=", "--listen=0.0.0.0:8443",
                 "--metrics-listen=0.0.0.0:9090"):
        assert any(a.startswith(flag) for a in c["args"]), flag
    pdb = objs[("PodDisruptionBudget", "weft-webhook")]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert ("Deployment", "weft-identity") in objs

    svc = objs[("Service", "weft-webhook")]["spec"]
    assert svc["ports"][0]["port"] == 443 and svc["ports"][0]["targetPort"] == "https"
    svc = objs[("Service", "weft-identity")]["spec"]
    assert svc["ports"][0]["port"] == 8444

    mwc = objs[("MutatingWebhookConfiguration", "weft-webhook")]
    assert len(mwc["webhooks"]) == 1
    w = mwc["webhooks"][0]
    assert w["clientConfig"]["service"] == {"name": "weft-webhook", "namespace": "weft-system",
                                            "path": "/inject", "port": 443}
    assert w["admissionReviewVersions"] == ["v1"]
    assert w["sideEffects"] == "None"
    assert w["failurePolicy"] == "Fail"
    assert 1 <= w["timeoutSeconds"] <= 10
    assert w["reinvocationPolicy"] == "IfNeeded"
    # Identity publishes the trust bundle into the namespaces the webhook injects.
    ident = objs[("Deployment", "weft-identity")]["spec"]["template"]["spec"]["containers"][0]
    assert "--publish-namespaces=weft.dev/inject=enabled" in ident["args"]
    assert {"key": "weft.dev/inject", "operator": "In", "values": ["enabled"]} in \
        w["namespaceSelector"]["matchExpressions"]
    assert w["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"], "scope": "Namespaced"}]
    exprs = {e["key"]: e for e in w["namespaceSelector"]["matchExpressions"]}
    assert exprs["weft.dev/inject"]["operator"] == "In"
    assert exprs["weft.dev/inject"]["values"] == ["enabled"]
    assert exprs["kubernetes.io/metadata.name"]["operator"] == "NotIn"
    assert sorted(exprs["kubernetes.io/metadata.name"]["values"]) == ["kube-system", "weft-system"]


def test_base_renders_weft_discovery():
    """weft-discovery is part of manifests/ (issue 13): 2 stateless replicas
    with a PodDisruptionBudget, probes, the restricted Pod Security profile,
    and list/watch on exactly what it watches; mesh.yaml points the proxies
    at its Service (design.md's weft-discovery.weft-system.svc:8445)."""
    objs = render(MANIFESTS)
    for overlay in ("e2e", "cert-manager"):   # they build on base/, so they have it too
        assert ("Deployment", "weft-discovery") in render(os.path.join(MANIFESTS, "overlays", overlay))
    assert objs[("ServiceAccount", "weft-discovery")]["metadata"]["namespace"] == "weft-system"
    assert objs[("ClusterRole", "weft-discovery")]["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces", "services", "pods"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes", "grpcroutes", "referencegrants"],
         "verbs": ["list", "watch"]}]
    b = objs[("ClusterRoleBinding", "weft-discovery")]
    assert b["roleRef"]["name"] == "weft-discovery"
    assert b["subjects"] == [{"kind": "ServiceAccount", "name": "weft-discovery", "namespace": "weft-system"}]
    dep = objs[("Deployment", "weft-discovery")]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "weft-discovery"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = pod["containers"][0]
    assert c["image"] == "ghcr.io/weft-mesh/weft-discovery:" + open(os.path.join(REPO, "VERSION")).read().strip()
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for flag in ("--kubernetes", "--trust-domain=cluster.local", "--listen=[::]:8445", "--config="):
        assert any(a.startswith(flag) for a in c["args"]), flag
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["tls"]["secret"]["secretName"] == "weft-discovery-tls"
    assert vols["trust"]["configMap"]["name"] == "weft-trust-bundle"
    assert vols["config"]["configMap"]["name"] == "weft-config"
    pdb = objs[("PodDisruptionBudget", "weft-discovery")]
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"] == dep["spec"]["selector"]
    svc = objs[("Service", "weft-discovery")]["spec"]
    assert svc["ports"] == [{"name": "https", "port": 8445, "targetPort": 8445, "protocol": "TCP",
                             "appProtocol": "http2"}]
    assert svc["selector"] == dep["spec"]["selector"]["matchLabels"]
    mesh = yaml.safe_load(objs[("ConfigMap", "weft-config")]["data"]["mesh.yaml"])
    assert mesh["discovery"]["address"] == "weft-discovery.weft-system.svc:8445"
    # Still applicable alone, with the same objects.
    alone = render(os.path.join(MANIFESTS, "discovery"))
    for key, obj in alone.items():
        assert objs[key] == obj, key


def test_overlays_render():
    e2e = render(os.path.join(MANIFESTS, "overlays", "e2e"))
    cc = e2e[("MutatingWebhookConfiguration", "weft-webhook")]["webhooks"][0]["clientConfig"]
    assert "service" not in cc
    assert cc["url"].startswith("https://127.0.0.1:") and cc["url"].endswith("/inject")
    cm = render(os.path.join(MANIFESTS, "overlays", "cert-manager"))
    mwc = cm[("MutatingWebhookConfiguration", "weft-webhook")]
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        "weft-system/weft-webhook"
    cert = cm[("Certificate", "weft-webhook")]
    assert cert["spec"]["secretName"] == "weft-webhook-tls"
    assert "weft-webhook.weft-system.svc" in cert["spec"]["dnsNames"]
    assert cert["metadata"]["namespace"] == "weft-system"


def test_gen_webhook_cert_offline():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["bash", os.path.join(MANIFESTS, "gen-webhook-cert.sh"), "--out", d,
                        "--no-apply", "--days", "2"], check=True, timeout=60,
                       stderr=subprocess.DEVNULL)
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"),
                            os.path.join(d, "tls.crt")], stdout=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stdout
        r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                            os.path.join(d, "tls.crt")], stdout=subprocess.PIPE, text=True,
                           check=True)
        assert "DNS:weft-webhook.weft-system.svc" in r.stdout
        assert oct(os.stat(os.path.join(d, "tls.key")).st_mode & 0o777) == "0o600"


def test_gen_discovery_cert_offline():
    """weft-discovery's serving certificate, signed by the identity issuer
    for the name the proxies check (WEFT_DISCOVERY_SERVER_NAME's default)."""
    with tempfile.TemporaryDirectory() as d:
        ca, out = os.path.join(d, "ca"), os.path.join(d, "out")
        subprocess.run(["bash", os.path.join(REPO, "scripts", "make-ca.sh"), ca, "--days", "2"], check=True,
                       timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gen = os.path.join(MANIFESTS, "discovery", "gen-discovery-cert.sh")
        r = subprocess.run(["bash", gen, "--ca-dir", ca, "--no-apply"], stderr=subprocess.PIPE, text=True)
        assert r.returncode == 2 and "--no-apply needs --out" in r.stderr
        subprocess.run(["bash", gen, "--ca-dir", ca, "--out", out, "--no-apply", "--days", "2"], check=True,
                       timeout=60, stderr=subprocess.DEVNULL)
        crt = os.path.join(out, "tls.crt")
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(ca, "ca.crt"), "-untrusted", crt, crt],
                           stdout=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stdout
        r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", crt],
                           stdout=subprocess.PIPE, text=True, check=True)
        assert "DNS:weft-discovery.weft-system.svc" in r.stdout
        assert oct(os.stat(os.path.join(out, "tls.key")).st_mode & 0o777) == "0o600"


# --- against the real API server ----------------------------------------------

def test_apply_base_and_enforce(cluster):
    """`kubectl apply -k manifests/` as a user would, then
    gen-webhook-cert.sh; the API server accepts all of it, its RBAC grants
    exactly what the manifests say, and the controller-manager's pods for the
    webhook Deployment pass the restricted Pod Security level of weft-system."""
    r = cluster.kubectl("apply", "-k", MANIFESTS)
    assert "PodSecurity" not in r.stderr, r.stderr
    r = cluster.kubectl("apply", "-k", MANIFESTS, "--dry-run=server")
    assert "PodSecurity" not in r.stderr, r.stderr

    def can(sa, *what):
        r = cluster.kubectl("auth", "can-i", *what,
                            "--as", "system:serviceaccount:weft-system:" + sa, check=False)
        return r.stdout.strip() == "yes"
    assert can("weft-webhook", "get", "namespaces")
    assert can("weft-webhook", "watch", "namespaces")
    assert not can("weft-webhook", "get", "secrets", "-A")
    assert not can("weft-webhook", "create", "pods", "-n", "default")
    assert not can("weft-webhook", "create", "tokenreviews.authentication.k8s.io")
    assert can("weft-identity", "create", "tokenreviews.authentication.k8s.io")
    assert not can("weft-identity", "get", "namespaces")
    assert not can("weft-identity", "get", "secrets", "-n", "weft-system")
    # A SubjectAccessReview names the group itself: `kubectl auth can-i` maps
    # a resource through discovery, so for a CRD this API server does not
    # serve (no Gateway API here) it asks for the wrong group and says no.
    def sar_allows(sa, verb, group, resource):
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": "system:serviceaccount:weft-system:" + sa,
                           "groups": ["system:serviceaccounts", "system:serviceaccounts:weft-system"],
                           "resourceAttributes": {"verb": verb, "group": group, "resource": resource}}}
        r = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
        return json.loads(r.stdout)["status"].get("allowed", False)
    for group, resource in (("", "pods"), ("", "services"), ("", "namespaces"),
                            ("discovery.k8s.io", "endpointslices"), ("gateway.networking.k8s.io", "httproutes"),
                            ("gateway.networking.k8s.io", "grpcroutes"),
                            ("gateway.networking.k8s.io", "referencegrants")):
        for verb in ("list", "watch"):
            assert sar_allows("weft-discovery", verb, group, resource), (verb, group, resource)
    assert not sar_allows("weft-discovery", "get", "gateway.networking.k8s.io", "httproutes")
    assert not can("weft-discovery", "get", "pods", "-A")   # list and watch only: the informer pattern
    assert not can("weft-discovery", "list", "secrets", "-A")
    assert not can("weft-discovery", "list", "configmaps", "-A")

    env = dict(os.environ, KUBECTL=cluster.kubectl_bin, KUBECONFIG=cluster.kubeconfig)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["bash", os.path.join(MANIFESTS, "gen-webhook-cert.sh"), "--out", d,
                        "--days", "2"], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secret = cluster.get_json("secret", "weft-webhook-tls", "-n", "weft-system")
        assert secret["type"] == "kubernetes.io/tls"
        assert base64.b64decode(secret["data"]["tls.crt"]) == open(os.path.join(d, "tls.crt"),
                                                                    "rb").read()
        mwc = cluster.get_json("mutatingwebhookconfiguration", "weft-webhook")
        ca = base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"])
        webhook_ca = open(os.path.join(d, "ca.crt"), "rb").read()
        assert ca == webhook_ca

    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["bash", os.path.join(MANIFESTS, "gen-identity-ca.sh"), "--out", d,
                        "--days", "2"], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = open(os.path.join(d, "root.crt")).read()
        issuer = cluster.get_json("secret", "weft-identity-issuer", "-n", "weft-system")
        assert base64.b64decode(issuer["data"]["tls.crt"]) == \
            open(os.path.join(d, "intermediate.crt"), "rb").read()
        assert cluster.get_json("secret", "weft-identity-tls", "-n", "weft-system")
    assert cluster.get_json("configmap", "weft-trust-bundle",
                            "-n", "weft-system")["data"]["ca.crt"] == root

    # Applying manifests/ again (an upgrade) keeps what the scripts filled in.
    cluster.kubectl("apply", "-k", MANIFESTS)
    mwc = cluster.get_json("mutatingwebhookconfiguration", "weft-webhook")
    assert base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"]) == webhook_ca
    assert cluster.get_json("configmap", "weft-trust-bundle",
                            "-n", "weft-system")["data"]["ca.crt"] == root

    # Two webhook pods stored by the ReplicaSet controller: Pod Security let them in.
    def pods():
        p = cluster.get_json("pods", "-n", "weft-system", "-l",
                             "app.kubernetes.io/name=weft-webhook")["items"]
        return p if len(p) == 2 else None
    try:
        cluster.wait_for(pods, 60, "2 weft-webhook pods")
    except TimeoutError:
        ev = cluster.kubectl("get", "events", "-n", "weft-system").stdout
        raise AssertionError("weft-webhook pods not created:\n" + ev)
    for p in pods():
        assert "weft.dev/status" not in p["metadata"].get("annotations", {})
