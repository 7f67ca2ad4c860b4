# SPDX-License-Identifier: Apache-2.0
"""weftctl against the real kube-apiserver: kubeconfig as kubectl speaks it
(client certificates from files and inline, bearer tokens, token files, exec
plugins, tls-server-name), clear failures (untrusted server, unreachable
server, missing context), and the cluster commands (check, authz why,
install)."""
import base64
import json
import os
import shutil
import stat
import subprocess

import pytest
import yaml

import cluster as cl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def weftctl():
    # WEFTCTL: another weftctl than WEFT_BIN's (a sanitizer build) with the same control plane
    exe = os.environ.get("WEFTCTL") or os.path.join(
        os.path.abspath(os.environ.get("WEFT_BIN") or os.path.join(REPO, "build", "bin")), "weftctl")
    if not os.access(exe, os.X_OK):
        pytest.skip("weftctl not built (%s): run make" % exe)
    d = cl.make_tempdir("weftctl")
    shutil.copy2(exe, os.path.join(d, "weftctl"))  # a rebuild during the run changes nothing
    try:
        yield os.path.join(d, "weftctl")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp(cluster):
    d = cl.make_tempdir("cli")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(weftctl, *args, env=None, input=None, timeout=60):
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e["HOME"] = "/nonexistent"
    e.update(env or {})
    return subprocess.run([weftctl, *args], input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e, cwd=REPO, timeout=timeout)


def kubeconfig(path, server, cluster_extra=None, user=None, context_extra=None):
    c = {"server": server}
    c.update(cluster_extra or {})
    ctx = {"cluster": "e2e", "user": "u"}
    ctx.update(context_extra or {})
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "e2e",
           "clusters": [{"name": "e2e", "cluster": c}],
           "users": [{"name": "u", "user": user or {}}],
           "contexts": [{"name": "e2e", "context": ctx}]}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    return path


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def server_version(cluster):
    return json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]


def admin_files(cluster):
    pki = os.path.join(cluster.dir, "pki")
    return os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")


# --- kubeconfig -----------------------------------------------------------

def test_version_with_the_clusters_kubeconfig(cluster, weftctl):
    """The suite's own admin kubeconfig (client certificate files), through
    KUBECONFIG, as kubectl reads it."""
    r = run(weftctl, "version", env={"KUBECONFIG": cluster.kubeconfig})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("weftctl ")
    assert lines[1] == "Kubernetes " + server_version(cluster)


def test_inline_certificate_data(cluster, weftctl, tmp):
    crt, key = admin_files(cluster)
    cfg = kubeconfig(os.path.join(tmp, "inline"), cluster.server,
                     {"certificate-authority-data": b64file(cluster.ca_crt)},
                     {"client-certificate-data": b64file(crt), "client-key-data": b64file(key)})
    r = run(weftctl, "version", "--kubeconfig", cfg)
    assert r.returncode == 0, r.stderr
    assert "Kubernetes " + server_version(cluster) in r.stdout


def sa_with_no_rights(cluster):
    """A token of a service account that may read /version and nothing in
    weft-system: the 403 names who the API server took us for."""
    cluster.kubectl("create", "serviceaccount", "weftctl-nobody", "-n", "default", check=False)
    return cluster.token("weftctl-nobody", "default")


def test_bearer_token_and_token_file(cluster, weftctl, tmp):
    token = sa_with_no_rights(cluster)
    who = 'User "system:serviceaccount:default:weftctl-nobody"'
    inline = kubeconfig(os.path.join(tmp, "tok"), cluster.server,
                        {"certificate-authority": cluster.ca_crt}, {"token": token})
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write(token + "\n")
    # tokenFile relative to the kubeconfig's directory, as kubectl resolves it
    fromfile = kubeconfig(os.path.join(tmp, "tokfile"), cluster.server,
                          {"certificate-authority": cluster.ca_crt}, {"tokenFile": "token"})
    for cfg in (inline, fromfile):
        r = run(weftctl, "version", "--kubeconfig", cfg)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert who in r.stderr and "forbidden" in r.stderr, r.stderr


def test_exec_plugin(cluster, weftctl, tmp):
    token = sa_with_no_rights(cluster)
    plugin = os.path.join(tmp, "plugin.sh")
    with open(plugin, "w") as f:
        f.write("#!/bin/sh\n"
                "# the environment and arguments the kubeconfig asked for reach the plugin\n"
                "[ \"$1\" = --realm ] && [ \"$2\" = weft ] && [ \"$REALM_ENV\" = yes ] || exit 3\n"
                "case \"$KUBERNETES_EXEC_INFO\" in *'\"interactive\":false'*) ;; *) exit 4 ;; esac\n"
                "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                "\"status\":{\"token\":\"%s\"}}' \"$(cat \"$(dirname \"$0\")/token\")\"\n")
    os.chmod(plugin, stat.S_IRWXU)
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write(token)
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.sh",
                          "args": ["--realm", "weft"], "env": [{"name": "REALM_ENV", "value": "yes"}],
                          "interactiveMode": "Never"}}
    cfg = kubeconfig(os.path.join(tmp, "exec"), cluster.server, {"certificate-authority": cluster.ca_crt},
                     exec_user)
    r = run(weftctl, "version", "--kubeconfig", cfg)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert 'User "system:serviceaccount:default:weftctl-nobody"' in r.stderr, r.stderr
    # a plugin that fails is named with its status
    exec_user["exec"]["args"] = ["--realm", "other"]
    cfg = kubeconfig(os.path.join(tmp, "exec-bad"), cluster.server, {"certificate-authority": cluster.ca_crt},
                     exec_user)
    r = run(weftctl, "version", "--kubeconfig", cfg)
    assert r.returncode == 2
    assert "exec plugin %s: exited with status 3" % plugin in r.stderr, r.stderr


def test_untrusted_server_and_tls_server_name(cluster, weftctl, tmp):
    crt, key = admin_files(cluster)
    user = {"client-certificate": crt, "client-key": key}
    other = cl.CA(os.path.join(tmp, "other"), "not-the-cluster")
    cfg = kubeconfig(os.path.join(tmp, "wrongca"), cluster.server, {"certificate-authority": other.crt}, user)
    r = run(weftctl, "version", "--kubeconfig", cfg)
    assert r.returncode == 1
    assert "the server's certificate is not trusted" in r.stderr, r.stderr
    # the serving certificate names kubernetes.default.svc, not wrong.example
    ok = kubeconfig(os.path.join(tmp, "sni"), cluster.server,
                    {"certificate-authority": cluster.ca_crt, "tls-server-name": "kubernetes.default.svc"}, user)
    r = run(weftctl, "version", "--kubeconfig", ok)
    assert r.returncode == 0, r.stderr
    bad = kubeconfig(os.path.join(tmp, "badsni"), cluster.server,
                     {"certificate-authority": cluster.ca_crt, "tls-server-name": "wrong.example"}, user)
    r = run(weftctl, "version", "--kubeconfig", bad)
    assert r.returncode == 1
    assert "not trusted" in r.stderr and "hostname mismatch" in r.stderr, r.stderr


def test_unreachable_server_and_missing_context(cluster, weftctl, tmp):
    port = cl.free_port()  # nothing listens there
    cfg = kubeconfig(os.path.join(tmp, "closed"), "https://127.0.0.1:%d" % port,
                     {"certificate-authority": cluster.ca_crt})
    r = run(weftctl, "version", "--kubeconfig", cfg)
    assert r.returncode == 1
    assert "https://127.0.0.1:%d: connect: Connection refused" % port in r.stderr, r.stderr
    r = run(weftctl, "version", "--kubeconfig", cluster.kubeconfig, "--context", "prod")
    assert r.returncode == 2
    assert 'context "prod" (--context) not found (contexts: "e2e")' in r.stderr, r.stderr


# --- check ------------------------------------------------------------------

def checks(stdout):
    doc = json.loads(stdout)
    return doc, {c["name"]: c for c in doc["checks"]}


def test_check_pre(cluster, weftctl):
    r = run(weftctl, "check", "--pre", "-o", "json", "--kubeconfig", cluster.kubeconfig)
    doc, by = checks(r.stdout)
    assert by["api-reachable"]["status"] == "ok"
    assert by["rbac"]["status"] == "ok", by["rbac"]  # system:masters may create everything
    installed = cluster.kubectl("get", "namespace", "weft-system", check=False).returncode == 0
    assert by["namespace"]["status"] == ("warn" if installed else "ok")
    # no Gateway API CRDs in this cluster: warnings, which --strict turns into exit 2
    assert by["crd-httproutes"]["status"] == "warn"
    assert r.returncode == 0, r.stderr
    r = run(weftctl, "check", "--pre", "--strict", "--kubeconfig", cluster.kubeconfig)
    assert r.returncode == 2, r.stdout


def test_check_pre_denied(cluster, weftctl, tmp):
    token = sa_with_no_rights(cluster)
    cfg = kubeconfig(os.path.join(tmp, "nobody"), cluster.server, {"certificate-authority": cluster.ca_crt},
                     {"token": token})
    r = run(weftctl, "check", "--pre", "-o", "json", "--kubeconfig", cfg)
    assert r.returncode == 1, r.stdout
    doc, by = checks(r.stdout)
    assert doc["status"] == "fail"
    assert by["rbac"]["status"] == "fail"
    assert by["rbac"]["message"].startswith("you may not create namespaces, serviceaccounts"), by["rbac"]
    assert "mutatingwebhookconfigurations.admissionregistration.k8s.io" in by["rbac"]["message"]


def test_check_kubeconfig_and_unreachable(cluster, weftctl, tmp):
    r = run(weftctl, "check", "--kubeconfig", os.path.join(tmp, "missing"))
    assert r.returncode == 1
    assert "fail  kubeconfig %s: No such file or directory" % os.path.join(tmp, "missing") in r.stdout, r.stdout
    port = cl.free_port()
    cfg = kubeconfig(os.path.join(tmp, "closed"), "https://127.0.0.1:%d" % port,
                     {"certificate-authority": cluster.ca_crt})
    r = run(weftctl, "check", "-o", "json", "--kubeconfig", cfg)
    assert r.returncode == 1
    doc, by = checks(r.stdout)
    assert by["api-reachable"]["status"] == "fail"
    assert "Connection refused" in by["api-reachable"]["message"]
    assert len(doc["checks"]) == 1


def stale_pod(cluster, weftctl, ns, name, image_tag):
    """A pod injected offline with an older proxy image, stored as a user's
    pod opted out of the webhook would be (nothing runs pods here)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
    r = run(weftctl, "inject", "-f", "-", input=json.dumps(pod))
    assert r.returncode == 0, r.stderr
    injected = json.loads(r.stdout.replace("weft-proxy:0.1.0", "weft-proxy:" + image_tag))
    injected["metadata"].setdefault("labels", {})["weft.dev/inject"] = "disabled"
    cluster.create_json(injected)


def install_identity_certs(cluster, identity):
    """The Secrets and trust bundle manifests/gen-identity-ca.sh would make,
    from the files the e2e weft-identity runs with."""
    ns = ["-n", "weft-system"]
    for name, (crt, key) in (("weft-identity-issuer", (identity.issuer_cert, identity.issuer_key)),
                             ("weft-identity-tls", (identity.cert, identity.key))):
        cluster.kubectl("delete", "secret", name, *ns, "--ignore-not-found")
        cluster.kubectl("create", "secret", "tls", name, "--cert", crt, "--key", key, *ns)
    with open(identity.root.crt) as f:
        patch = json.dumps({"data": {"ca.crt": f.read()}})
    cluster.kubectl("patch", "configmap", "weft-trust-bundle", *ns, "--type=merge", "-p", patch)


def install_discovery_cert(cluster, identity, tmp, days):
    """Secret weft-discovery-tls as manifests/discovery/gen-discovery-cert.sh
    makes it, signed by the e2e weft-identity's issuer."""
    cadir = os.path.join(tmp, "discovery-ca")
    os.makedirs(cadir, exist_ok=True)
    shutil.copyfile(identity.issuer_cert, os.path.join(cadir, "intermediate.crt"))
    shutil.copyfile(identity.issuer_key, os.path.join(cadir, "intermediate.key"))
    cluster.kubectl("delete", "secret", "weft-discovery-tls", "-n", "weft-system", "--ignore-not-found")
    env = dict(os.environ, KUBECTL=cluster.kubectl_bin, KUBECONFIG=cluster.kubeconfig)
    r = subprocess.run([os.path.join(REPO, "manifests", "discovery", "gen-discovery-cert.sh"), "--ca-dir", cadir,
                        "--days", str(days)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_check_installed(cluster, weftctl, mesh, identity, tmp):
    install_identity_certs(cluster, identity)
    install_discovery_cert(cluster, identity, tmp, 2)
    cluster.create_namespace("cli-check", labels={"weft.dev/inject": "enabled"})
    try:
        stale_pod(cluster, weftctl, "cli-check", "old-proxy", "0.0.9")
        r = run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig)
        doc, by = checks(r.stdout)
        # no kubelet here: the Deployments' pods never run
        assert r.returncode == 1 and doc["status"] == "fail"
        assert by["weft-webhook-ready"]["status"] == "fail"
        assert by["weft-webhook-ready"]["message"].startswith("weft-webhook: 0 of 2 replicas ready")
        assert by["weft-discovery-ready"]["status"] == "fail"  # manifests/ has it since discovery joined base/
        assert by["weft-discovery-ready"]["message"].startswith("weft-discovery: 0 of 2 replicas ready")
        assert by["webhook-configuration"]["status"] == "ok", by["webhook-configuration"]
        # the caBundle against what the running weft-webhook serves, for the URL's host
        assert by["webhook-ca-bundle"]["status"] == "ok", by["webhook-ca-bundle"]
        assert mesh.url in by["webhook-ca-bundle"]["message"]
        assert "for 127.0.0.1" in by["webhook-ca-bundle"]["message"]
        for name in ("identity-issuer-chain", "identity-serving-certificate-chain",
                     "discovery-serving-certificate-chain"):
            assert by[name]["status"] == "ok", by[name]
        assert by["discovery-serving-certificate-chain"]["message"].endswith(
            "for weft-discovery.weft-system.svc"), by["discovery-serving-certificate-chain"]
        # the suite's certificates live 2 days: inside the 30-day warning
        for name in ("trust-anchor", "identity-issuer", "identity-serving-certificate",
                     "webhook-serving-certificate", "discovery-serving-certificate"):
            assert by[name]["status"] == "warn", by[name]
            assert " expires on " in by[name]["message"], by[name]
        # this cluster has no Gateway API CRDs: weft-discovery serves without routes, so a warning
        assert by["crd-referencegrants"]["status"] == "warn", by["crd-referencegrants"]
        assert "no route can send to a Service of another namespace" in by["crd-referencegrants"]["message"]
        assert "cli-check" in by["opted-in-namespaces"]["message"]
        assert by["proxy-versions"]["status"] == "warn"
        assert "cli-check/old-proxy runs ghcr.io/weft-mesh/weft-proxy:0.0.9" in by["proxy-versions"]["message"]
        # injected with templates/, which weft-templates holds a copy of: the same version
        assert "templates" not in by["proxy-versions"]["message"], by["proxy-versions"]
        snap = json.loads(run(weftctl, "check", "--dump-snapshot", "--kubeconfig", cluster.kubeconfig).stdout)
        pod = [p for p in snap["meshedPods"] if p["metadata"]["name"] == "old-proxy"][0]
        assert snap["templateVersion"] == json.loads(pod["metadata"]["annotations"]["weft.dev/status"])["version"]

        # a caBundle of another CA: the API server could not call the webhook
        other = cl.CA(os.path.join(tmp, "other"), "not-the-webhooks-ca")
        cluster.kubectl("patch", "mutatingwebhookconfiguration", "weft-webhook", "--type=json", "-p",
                        json.dumps([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle",
                                     "value": b64file(other.crt)}]))
        r = run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig)
        doc, by = checks(r.stdout)
        assert by["webhook-ca-bundle"]["status"] == "fail"
        assert "does not verify the serving certificate" in by["webhook-ca-bundle"]["message"]

        # a discovery certificate of another CA, and none at all
        crt, key = other.issue("discovery", "weft-discovery.weft-system.svc", dns=["weft-discovery.weft-system.svc"],
                               server=True)
        cluster.kubectl("delete", "secret", "weft-discovery-tls", "-n", "weft-system")
        cluster.kubectl("create", "secret", "tls", "weft-discovery-tls", "--cert", crt, "--key", key,
                        "-n", "weft-system")
        doc, by = checks(run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig).stdout)
        assert by["discovery-serving-certificate-chain"]["status"] == "fail", by["discovery-serving-certificate-chain"]
        assert "does not chain to the trust anchor" in by["discovery-serving-certificate-chain"]["message"]
        cluster.kubectl("delete", "secret", "weft-discovery-tls", "-n", "weft-system")
        doc, by = checks(run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig).stdout)
        assert by["discovery-serving-certificate"]["status"] == "fail", by["discovery-serving-certificate"]
        assert by["discovery-serving-certificate"]["message"] == \
            "Secret weft-system/weft-discovery-tls does not exist", by["discovery-serving-certificate"]
    finally:
        mesh.install()  # the caBundle back
        cluster.kubectl("delete", "namespace", "cli-check", "--wait=false", check=False)


def test_check_gateway_api_crds(cluster, weftctl, mesh):
    """The real standard-channel CRDs of the pinned Gateway API release
    (its Go module's config/crd/standard/), applied to the API server: each
    check finds the version weft-discovery watches and the release; one
    removed again is named, failing as weft-discovery watches it."""
    if not shutil.which("go"):
        pytest.skip("go missing: the Gateway API CRDs come from its module")
    try:
        gw, release = cl.gateway_api_dir(), cl.gateway_api_version()
    except RuntimeError as e:
        pytest.fail(str(e))
    names = ["%s.gateway.networking.k8s.io" % c for c in cl.GATEWAY_CRDS]
    had = {n for n in names if cluster.kubectl("get", "crd", n, check=False).returncode == 0}
    try:
        for c in cl.GATEWAY_CRDS:
            cluster.kubectl("apply", "--server-side", "-f", cl.gateway_api_crd(gw, c))
        cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", *["crd/" + n for n in names])
        doc, by = checks(run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig).stdout)
        for c, v in (("httproutes", "v1"), ("grpcroutes", "v1"), ("referencegrants", "v1beta1")):
            assert by["crd-" + c]["status"] == "ok", by["crd-" + c]
            assert by["crd-" + c]["message"] == "CustomResourceDefinition %s.gateway.networking.k8s.io serves %s " \
                "(Gateway API %s)" % (c, v, release), by["crd-" + c]
        # the snapshot holds the CRDs cut down, not their schemas
        snap = json.loads(run(weftctl, "check", "--dump-snapshot", "--kubeconfig", cluster.kubeconfig).stdout)
        assert "schema" not in json.dumps(snap["crds"]), snap["crds"]
        cluster.kubectl("delete", "crd", "referencegrants.gateway.networking.k8s.io", "--wait=true")
        doc, by = checks(run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig).stdout)
        assert by["crd-referencegrants"]["status"] == "warn", by["crd-referencegrants"]
        assert "v1.6.3/standard-install.yaml" in by["crd-referencegrants"]["hint"]
        assert by["crd-httproutes"]["status"] == "ok"
    finally:
        for n in names:
            if n not in had:
                cluster.kubectl("delete", "crd", n, "--ignore-not-found", check=False)


# --- install ----------------------------------------------------------------

def test_install_applies_and_checks(cluster, weftctl):
    """weftctl install | kubectl apply -f -, with the control plane's own
    kubectl: the real API server takes every object, and check finds the
    certificates install made and the caBundle matching them."""
    env = {"KUBECTL": cluster.kubectl_bin}
    r = run(weftctl, "install", "--set", "certificates.days=20", "--set", "mesh.defaults.mtlsMode=PERMISSIVE",
            env=env)
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    kinds = sorted("%s/%s" % (d["kind"], d["metadata"]["name"]) for d in docs)
    for want in ("Secret/weft-identity-issuer", "Secret/weft-identity-tls", "Secret/weft-webhook-tls",
                 "Secret/weft-discovery-tls", "Deployment/weft-discovery",
                 "ConfigMap/weft-trust-bundle", "MutatingWebhookConfiguration/weft-webhook"):
        assert want in kinds
    # nothing of the temporary certificate directory is left behind
    assert not [d for d in os.listdir("/tmp") if d.startswith("weftctl-install-")]
    cluster.kubectl("apply", "-f", "-", input=r.stdout)
    mesh = yaml.safe_load(cluster.get_json("configmap", "weft-config", "-n", "weft-system")["data"]["mesh.yaml"])
    assert mesh["defaults"]["mtlsMode"] == "PERMISSIVE"
    r = run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig)
    doc, by = checks(r.stdout)
    assert by["webhook-ca-bundle"]["status"] == "ok", by["webhook-ca-bundle"]
    assert "Secret weft-system/weft-webhook-tls" in by["webhook-ca-bundle"]["message"]
    for name in ("identity-issuer-chain", "identity-serving-certificate-chain"):
        assert by[name]["status"] == "ok", by[name]
    for name in ("identity-issuer-chain", "identity-serving-certificate-chain",
                 "discovery-serving-certificate-chain"):
        assert by[name]["status"] == "ok", by[name]
    # 20 days: inside the 30-day warning; the root (10 x 20 days) outside it
    for name in ("identity-issuer", "identity-serving-certificate", "webhook-serving-certificate",
                 "discovery-serving-certificate"):
        assert by[name]["status"] == "warn" and "in 20 days" in by[name]["message"], by[name]
    assert by["trust-anchor"]["status"] == "ok", by["trust-anchor"]
    # an unknown --set key is named, and nothing is printed
    r = run(weftctl, "install", "--set", "webhook.replica=3", env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert "--set webhook.replica: unknown key" in r.stderr


# --- authz why --------------------------------------------------------------

def test_authz_why(cluster, weftctl, mesh):
    """Pods injected by the running weft-webhook through the real API server
    behind a Service; authz why judges callers of three kinds."""
    cluster.create_namespace("cli-srv", labels={"weft.dev/inject": "enabled"},
                             annotations={"weft.dev/allow-from": "cli-front/web"})
    cluster.create_namespace("cli-front", labels={"weft.dev/inject": "enabled"})
    cluster.create_namespace("cli-out")
    try:
        cluster.create_json({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "api", "namespace": "cli-srv"},
                             "spec": {"selector": {"app": "api"},
                                      "ports": [{"name": "http", "port": 8080, "targetPort": 80}]}})
        cluster.create_json({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "api-0", "namespace": "cli-srv", "labels": {"app": "api"}},
                             "spec": {"containers": [{"name": "app", "image": "registry.example/api:1"}]}})
        pod = cluster.get_json("pod", "api-0", "-n", "cli-srv")
        assert "weft.dev/status" in pod["metadata"]["annotations"]  # the webhook injected it

        def why(frm, to="api.cli-srv:8080"):
            return run(weftctl, "authz", "why", "--from", frm, "--to", to, "--kubeconfig", cluster.kubeconfig)

        r = why("cli-front/web")
        assert r.returncode == 0, r.stdout + r.stderr
        assert 'ALLOWED: allow-from "cli-front/web" (namespace annotation) lists cli-front/web' in r.stdout, r.stdout
        r = why("cli-front/other", "api.cli-srv:http")  # the port by name
        assert r.returncode == 1, r.stdout + r.stderr
        assert "DENIED: cross-namespace: inbound-policy same-namespace" in r.stdout, r.stdout
        r = why("cli-srv/other")
        assert r.returncode == 0 and "ALLOWED: same-namespace" in r.stdout, r.stdout
        r = why("cli-out/x")
        assert r.returncode == 1, r.stdout
        assert "the caller is not meshed" in r.stdout and "refuses plaintext" in r.stdout, r.stdout
        r = why("cli-front/web", "api.cli-srv:9090")
        assert r.returncode == 2
        assert "Service cli-srv/api has no port 9090 (its ports: 8080 (http))" in r.stderr, r.stderr
        r = why("cli-front/web", "nope.cli-srv:80")
        assert r.returncode == 2 and "Service cli-srv/nope not found" in r.stderr, r.stderr
    finally:
        for ns in ("cli-srv", "cli-front", "cli-out"):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# --- help and completion (no cluster needed) -------------------------------

COMMANDS = ("inject", "uninject", "version", "kubeconfig", "check", "install", "authz why", "stat", "completion")


def complete(weftctl, words, kubeconfig=None):
    """What the bash completion script offers for the words typed so far
    (the script runs weftctl from PATH for --context)."""
    script = run(weftctl, "completion", "bash").stdout
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = "/nonexistent"
    env["PATH"] = os.path.dirname(weftctl) + ":" + env.get("PATH", "/usr/bin:/bin")
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    line = 'source /dev/stdin; COMP_WORDS=(%s); COMP_CWORD=%d; _weftctl; printf "%%s\\n" "${COMPREPLY[@]}"' % (
        " ".join("'%s'" % w for w in words), len(words) - 1)
    r = subprocess.run(["bash", "-c", line], input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_help_of_every_command(weftctl):
    r = run(weftctl, "--help")
    assert r.returncode == 0
    for cmd in COMMANDS:
        assert "  " + cmd in r.stdout, cmd
        h = run(weftctl, *cmd.split(), "--help")
        assert h.returncode == 0 and h.stdout.startswith("usage: weftctl " + cmd), (cmd, h.stdout, h.stderr)


def test_completion_offers_what_help_lists(weftctl):
    import re
    assert complete(weftctl, ["weftctl", "ch"]) == ["check"]
    assert set(complete(weftctl, ["weftctl", ""])) >= {"inject", "check", "install", "authz", "completion"}
    assert complete(weftctl, ["weftctl", "authz", ""]) == ["why"]
    assert complete(weftctl, ["weftctl", "check", "-o", ""]) == ["text", "json"]
    assert complete(weftctl, ["weftctl", "completion", "z"]) == ["zsh"]
    # --context offers the contexts of KUBECONFIG (not of a --kubeconfig on the line: a known gap)
    cfg = os.path.join(REPO, "tests/golden/cli/kubeconfigs/config")
    assert complete(weftctl, ["weftctl", "check", "--context", "pr"], kubeconfig=cfg) == ["prod"]
    assert complete(weftctl, ["weftctl", "check", "--context", ""]) == []  # no kubeconfig at all
    for cmd in COMMANDS[:-1]:
        help_flags = set(re.findall(r"^\s+(?:(-[a-zA-Z]), )?(--[a-z-]+)", run(weftctl, *cmd.split(), "--help").stdout,
                                    re.M))
        want = {f for pair in help_flags for f in pair if f}
        words = ["weftctl"] + cmd.split() + ["-"]
        offered = set(complete(weftctl, words))
        assert want == offered, (cmd, sorted(want - offered), sorted(offered - want))
    r = run(weftctl, "completion", "fish")
    assert r.returncode == 2 and 'no completion for "fish"' in r.stderr


# --- stat -------------------------------------------------------------------

def _spiffe_cert(ca, name, uri):
    """A P-256 certificate of ca for a SPIFFE ID (URI SAN), as weft-identity issues them."""
    crt, key = os.path.join(ca.dir, name + ".crt"), os.path.join(ca.dir, name + ".key")
    csr, ext = os.path.join(ca.dir, name + ".csr"), os.path.join(ca.dir, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:%s\n" % uri)
    cl._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + name, cwd=ca.dir)
    cl._openssl("x509", "-req", "-in", csr, "-CA", ca.crt, "-CAkey", ca.key, "-CAcreateserial", "-out", crt,
                "-days", "1", "-extfile", ext, cwd=ca.dir)
    return crt, key


def test_stat_reads_a_real_proxy_through_the_api_server(cluster, weftctl, weft_bin, tmp):
    """A real weft-proxy in a network namespace the test makes (198.18.201.2,
    no route out), a Pod object whose status points at it, and weftctl stat
    reading its /metrics through the API server's pod proxy: one mTLS caller
    denied by policy, one plaintext caller refused under STRICT."""
    import socket
    import ssl
    import time
    exe = os.path.join(weft_bin, "weft-proxy")
    if os.geteuid() != 0 or not os.access(exe, os.X_OK) or not shutil.which("ip"):
        pytest.skip("needs root, ip and weft-proxy")
    ns, host_if, pod_if = "weftctl-stat-%d" % os.getpid(), "wcs%da" % (os.getpid() % 10000), \
        "wcs%db" % (os.getpid() % 10000)
    host_ip, pod_ip = "198.18.201.1", "198.18.201.2"
    ca = cl.CA(os.path.join(tmp, "mesh"), "weftctl-stat-root")
    crt, key = _spiffe_cert(ca, "pod", "spiffe://cluster.local/ns/cli-stat/sa/default")
    ccrt, ckey = _spiffe_cert(ca, "caller", "spiffe://cluster.local/ns/elsewhere/sa/caller")
    proc = None

    def sh(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        sh("ip", "link", "set", pod_if, "netns", ns)
        sh("ip", "addr", "add", host_ip + "/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", pod_ip + "/30", "dev", pod_if)
        sh("ip", "-n", ns, "link", "set", pod_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # what weft-init does for port 8080: captured inbound lands on the proxy
        sh("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp",
           "--dport", "8080", "-j", "REDIRECT", "--to-ports", "15006")
        env = dict(os.environ, WEFT_POD_NAMESPACE="cli-stat", WEFT_POD_NAME="app-0")
        log = open(os.path.join(tmp, "proxy.log"), "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, exe, "--cert", crt, "--key", key, "--trust-bundle",
                                 ca.crt, "--drain-seconds", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=cl.die_with_parent)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((pod_ip, 15020), timeout=1) as s:
                    s.sendall(b"GET /ready HTTP/1.0\r\n\r\n")
                    if b" 200 " in s.recv(100):
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, open(os.path.join(tmp, "proxy.log")).read()
            time.sleep(0.2)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca.crt)
        ctx.load_cert_chain(ccrt, ckey)
        ctx.check_hostname = False
        ctx.set_alpn_protocols(["weft/1"])
        with socket.create_connection((pod_ip, 8080), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:  # cross-namespace: the proxy closes it
                try:
                    s.recv(1)
                except (OSError, ssl.SSLError):
                    pass
        with socket.create_connection((pod_ip, 8080), timeout=5) as s:  # plaintext under STRICT
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                s.recv(1)
            except OSError:
                pass
        cluster.create_namespace("cli-stat")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app-0", "namespace": "cli-stat"},
               "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
        r = run(weftctl, "inject", "-f", "-", input=json.dumps(pod))
        assert r.returncode == 0, r.stderr
        cluster.create_json(json.loads(r.stdout))
        cluster.kubectl("patch", "pod", "app-0", "-n", "cli-stat", "--subresource=status", "--type=merge", "-p",
                        json.dumps({"status": {"phase": "Running", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}}))
        deadline = time.monotonic() + 10
        while True:  # the plaintext refusal is counted when the proxy gives up on the caller
            r = run(weftctl, "stat", "pod", "-n", "cli-stat", "--kubeconfig", cluster.kubeconfig)
            row = [line.split() for line in r.stdout.splitlines() if line.startswith("cli-stat/app-0")]
            if r.returncode != 0 or (row and row[0][7] == "1") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.returncode == 0, r.stdout + r.stderr
        # NAME MESHED READY CONNS-IN CONNS-OUT MTLS DENIED REFUSED BYTES-IN BYTES-OUT CERT-LEFT SUCCESS REQS P50 P95 P99 REQ-MTLS
        # both callers were accepted (one over mTLS), then one denied by policy, one refused as plaintext
        assert row and row[0][:8] == ["cli-stat/app-0", "1/1", "1/1", "2", "0", "50%", "1", "1"], r.stdout
        assert row[0][10].endswith("h"), row  # a 1-day certificate
        # No HTTP request reached this proxy: request figures are there, empty.
        head = r.stdout.splitlines()[0].split()
        assert head[-6:] == ["SUCCESS", "REQS", "P50", "P95", "P99", "REQ-MTLS"], r.stdout
        assert row[0][-6:] == ["-", "0", "-", "-", "-", "-"], r.stdout
        r = run(weftctl, "stat", "ns", "-n", "cli-stat", "--kubeconfig", cluster.kubeconfig)
        assert r.returncode == 0 and r.stdout.splitlines()[1].split()[:3] == ["cli-stat", "1/1", "1/1"], r.stdout
        # -w: the first table totals, the next rates since it (nothing happened in between)
        r = run(weftctl, "stat", "pod", "-n", "cli-stat", "-w", "1", "--count", "2", "--kubeconfig",
                cluster.kubeconfig)
        assert r.returncode == 0, r.stderr
        tables = r.stdout.split("NAME ")
        assert len(tables) == 3 and "CONNS-IN/s" in tables[2], r.stdout
        rates = [line.split() for line in tables[2].splitlines() if line.startswith("cli-stat/app-0")][0]
        assert rates[3:5] == ["0.0", "0.0"] and "Per second over the last" in tables[2], r.stdout
        # check reads the same proxy for its certificate once the namespace is opted in
        cluster.kubectl("label", "namespace", "cli-stat", "weft.dev/inject=enabled")
        r = run(weftctl, "check", "-o", "json", "--kubeconfig", cluster.kubeconfig)
        doc, by = checks(r.stdout)
        assert by["proxy-certificates"]["status"] == "ok", by["proxy-certificates"]
        assert by["proxy-certificates"]["message"].startswith("1 proxies read"), by["proxy-certificates"]
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", host_if], stderr=subprocess.DEVNULL)
        cluster.kubectl("delete", "namespace", "cli-stat", "--wait=false", check=False)


# --- inject --from-cluster ----------------------------------------------------

def test_inject_from_cluster_matches_the_webhook(cluster, weftctl, mesh):
    """weftctl inject --from-cluster reads weft-config, weft-templates and the
    namespace's annotations from the cluster: with weft-config holding what
    the running weft-webhook loads, its pod is the one the webhook gives the
    API server (the proxy's environment and weft-init's arguments)."""
    with open(mesh.config) as f:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "weft-config", "namespace": "weft-system"},
              "data": {"mesh.yaml": f.read()}}
    cluster.apply_json(cm)
    cluster.create_namespace("cli-inject", labels={"weft.dev/inject": "enabled"},
                             annotations={"weft.dev/allow-from": "shop/*", "weft.dev/skip-inbound-ports": "9090"})
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "cli-inject"},
               "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                                        "ports": [{"containerPort": 8080}]}]}}
        r = run(weftctl, "inject", "-f", "-", "--from-cluster", "--kubeconfig", cluster.kubeconfig,
                input=json.dumps(pod))
        assert r.returncode == 0, r.stderr
        ours = json.loads(r.stdout)
        cluster.create_json(pod)
        theirs = cluster.get_json("pod", "p", "-n", "cli-inject")

        def injected(p):
            ctrs = {c["name"]: c for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]}
            env = {e["name"]: e.get("value", "") for e in ctrs["weft-proxy"].get("env", []) if "valueFrom" not in e}
            return env, ctrs["weft-init"]["args"], ctrs["weft-proxy"]["image"]
        assert injected(ours) == injected(theirs)
        env, args, _ = injected(ours)
        assert env["WEFT_ALLOW_FROM"] == "shop/*" and "--skip-inbound-ports=9090" in args
        # a namespace not created yet has no annotations, as the webhook would find
        pod["metadata"]["namespace"] = "cli-inject-later"
        r = run(weftctl, "inject", "-f", "-", "--from-cluster", "--kubeconfig", cluster.kubeconfig,
                input=json.dumps(pod))
        assert r.returncode == 0, r.stderr
        assert injected(json.loads(r.stdout))[0]["WEFT_ALLOW_FROM"] == ""
    finally:
        cluster.kubectl("delete", "namespace", "cli-inject", "--wait=false", check=False)
        # weft-config as manifests/ ships it
        cluster.kubectl("apply", "-k", os.path.join(REPO, "manifests"), check=False)
        mesh.install()


def test_in_cluster_service_account(cluster, weftctl):
    """Without a kubeconfig, in a pod, weftctl uses the pod's service
    account as kubectl does: run in a private mount namespace where a real
    token of default/weftctl-nobody is mounted where a pod has it (weft.py's
    pod filesystem), with KUBERNETES_SERVICE_HOST/PORT."""
    import weft
    if os.geteuid() != 0:
        pytest.skip("needs root (a mount namespace)")
    sa_with_no_rights(cluster)
    sa = cluster.service_account_dir("weftctl-nobody", "default")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(HOME="/nonexistent", KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port))

    def in_pod(*args):
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", weft._POD_FS,
                               "sh", sa, weftctl, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=60)
    r = in_pod("kubeconfig")
    assert r.returncode == 0, r.stderr
    assert "context:    in-cluster" in r.stdout and "server:     https://127.0.0.1:%d" % cluster.port in r.stdout
    assert "bearer token from /var/run/secrets/kubernetes.io/serviceaccount/token" in r.stdout
    assert "namespace:  default" in r.stdout
    r = in_pod("version")
    assert r.returncode == 1  # the API server took the token: the account may not read weft-system
    assert 'User "system:serviceaccount:default:weftctl-nobody"' in r.stderr, r.stderr
