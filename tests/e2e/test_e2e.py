# SPDX-License-Identifier: Apache-2.0
"""Issue 7's scenarios: the real kube-apiserver calls weft-webhook (installed
from manifests/overlays/e2e), applies its patch and validates and stores the
resulting objects; the controller-manager makes the pods of Deployments and
Jobs. Each scenario is one test with its own namespace."""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cluster as cl
from weft import metric_sum


def pod(name, ns, annotations=None, labels=None, host_network=False, probes=False):
    c = {"name": "app", "image": "registry.invalid/app:1",
         "ports": [{"name": "http", "containerPort": 8080}]}
    if probes:
        c["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
        c["livenessProbe"] = {"grpc": {"port": 9090, "service": "app"}}
    spec = {"containers": [c]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                         "labels": labels or {}},
            "spec": spec}


def names(containers):
    return [c["name"] for c in containers or []]


def assert_injected(p):
    """The stored pod carries Weft exactly once, the way the templates say."""
    spec = p["spec"]
    init = names(spec.get("initContainers"))
    allc = init + names(spec["containers"])
    assert allc.count("weft-init") == 1, allc
    assert allc.count("weft-proxy") == 1, allc
    assert "weft.dev/status" in p["metadata"].get("annotations", {}), p["metadata"]
    # Native sidecar (mesh.yaml default): weft-init first, the proxy right after it.
    assert init[:2] == ["weft-init", "weft-proxy"], init
    proxy = spec["initContainers"][1]
    assert proxy["restartPolicy"] == "Always"
    assert proxy["securityContext"]["runAsUser"] == 15100
    return {e["name"]: e.get("value") for e in proxy.get("env", [])}


def assert_untouched(p):
    spec = p["spec"]
    allc = names(spec.get("initContainers")) + names(spec["containers"])
    assert "weft-proxy" not in allc and "weft-init" not in allc, allc
    assert "weft.dev/status" not in p["metadata"].get("annotations", {})


def meshed_ns(cluster, name, annotations=None):
    cluster.create_namespace(name, labels={"weft.dev/inject": "enabled"},
                             annotations=annotations)


def revalidate(cluster, ns, name):
    """An update makes the API server validate the whole stored pod again."""
    cluster.kubectl("label", "pod", name, "-n", ns, "e2e.weft.dev/revalidated=yes")


def test_pod_created_in_opted_in_namespace_is_injected(cluster, mesh):
    meshed_ns(cluster, "e2e-pod")
    cluster.create_json(pod("web", "e2e-pod", probes=True))
    p = cluster.get_json("pod", "web", "-n", "e2e-pod")
    env = assert_injected(p)
    assert env["WEFT_MTLS_MODE"] == "STRICT"
    assert env["WEFT_INBOUND_POLICY"] == "same-namespace"
    # The app's probe now goes to the proxy admin port; the original travels in the env.
    rp = p["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert rp["port"] == 15020 and rp["path"] == "/app-health/app/readyz"
    assert "/ready" in env["WEFT_APP_PROBES"]
    # A gRPC probe too: the stored probe has one handler, the httpGet.
    lp = p["spec"]["containers"][0]["livenessProbe"]
    assert "grpc" not in lp and lp["httpGet"]["path"] == "/app-health/app/livez"
    assert json.loads(env["WEFT_APP_PROBES"])["app/livez"]["grpc"] == {"port": 9090, "service": "app"}
    revalidate(cluster, "e2e-pod", "web")


def wait_pods(cluster, ns, selector, n, timeout=60):
    def got():
        items = cluster.get_json("pods", "-n", ns, "-l", selector)["items"]
        return items if len(items) >= n else None
    try:
        return cluster.wait_for(got, timeout, "%d pods %s in %s" % (n, selector, ns))
    except TimeoutError:
        ev = cluster.kubectl("get", "events", "-n", ns).stdout
        raise AssertionError("pods not created; events:\n" + ev)


def test_deployment_and_job_pods_are_injected(cluster, mesh):
    ns = "e2e-workloads"
    meshed_ns(cluster, ns)
    tmpl = {"metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/api:1"}]}}
    cluster.create_json({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "api", "namespace": ns},
                         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                                  "template": tmpl}})
    job_tmpl = {"metadata": {"labels": {"app": "batch"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "task", "image": "registry.invalid/task:1"}]}}
    cluster.create_json({"apiVersion": "batch/v1", "kind": "Job",
                         "metadata": {"name": "batch", "namespace": ns},
                         "spec": {"backoffLimit": 0, "template": job_tmpl}})
    for p in wait_pods(cluster, ns, "app=api", 2):
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert_injected(p)
    (p,) = wait_pods(cluster, ns, "app=batch", 1)
    assert p["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert_injected(p)
    # The templates inside the workload objects stay as the user wrote them.
    d = cluster.get_json("deployment", "api", "-n", ns)
    assert names(d["spec"]["template"]["spec"]["containers"]) == ["app"]


def test_pods_that_must_stay_untouched(cluster, mesh):
    cluster.create_namespace("e2e-unlabelled")
    cluster.create_json(pod("plain", "e2e-unlabelled"))
    assert_untouched(cluster.get_json("pod", "plain", "-n", "e2e-unlabelled"))

    ns = "e2e-optout"
    meshed_ns(cluster, ns)
    cluster.create_json(pod("by-annotation", ns, annotations={"weft.dev/inject": "disabled"}))
    cluster.create_json(pod("by-label", ns, labels={"weft.dev/inject": "disabled"}))
    cluster.create_json(pod("host-net", ns, host_network=True))
    for name in ("by-annotation", "by-label", "host-net"):
        assert_untouched(cluster.get_json("pod", name, "-n", ns))


def test_invalid_override_is_refused_with_key_and_value(cluster, mesh):
    ns = "e2e-invalid"
    meshed_ns(cluster, ns)
    r = cluster.create_json(pod("bad", ns, annotations={"weft.dev/skip-inbound-ports": "http"}),
                            check=False)
    assert r.returncode != 0
    # kubectl prints the API server's "admission webhook "inject.weft.dev"
    # denied the request: <the webhook's message>".
    assert 'webhook "inject.weft.dev" denied the request' in r.stderr, r.stderr
    assert "weft.dev/skip-inbound-ports" in r.stderr and '"http"' in r.stderr, r.stderr
    r = cluster.kubectl("get", "pod", "bad", "-n", ns, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_dry_run_shows_injection_and_stores_nothing(cluster, mesh):
    ns = "e2e-dryrun"
    meshed_ns(cluster, ns)
    r = cluster.create_json(pod("preview", ns), "--dry-run=server", "-o", "json")
    assert_injected(json.loads(r.stdout))
    r = cluster.kubectl("get", "pod", "preview", "-n", ns, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


class _Labeler(BaseHTTPRequestHandler):
    """A second mutating webhook: adds a label to every pod it sees, which
    makes the API server reinvoke weft-webhook (reinvocationPolicy IfNeeded)."""
    calls = 0

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        labels = req["object"]["metadata"].get("labels")
        type(self).calls += 1
        if labels is None:
            ops = [{"op": "add", "path": "/metadata/labels", "value": {"e2e.weft.dev/labeled": "yes"}}]
        else:
            ops = [{"op": "add", "path": "/metadata/labels/e2e.weft.dev~1labeled", "value": "yes"}]
        resp = {"uid": req["uid"], "allowed": True}
        if (labels or {}).get("e2e.weft.dev/labeled") != "yes":
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def labeler(cluster, mesh):
    cert, key = mesh.ca.issue("labeler", "labeler", server=True, ips=("127.0.0.1",))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Labeler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    name = "zz-weft-e2e-labeler"  # sorts after weft-webhook: called after it
    cfg = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": name},
           "webhooks": [{
               "name": "labeler.e2e.weft.dev", "admissionReviewVersions": ["v1"],
               "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
               "reinvocationPolicy": "IfNeeded",
               "clientConfig": {"url": "https://127.0.0.1:%d/label" % srv.server_address[1],
                                "caBundle": mesh.ca_b64},
               "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                          "resources": ["pods"]}],
               "namespaceSelector": {"matchLabels": {"e2e.weft.dev/labeler": "on"}}}]}
    try:
        cluster.create_json(cfg)
        yield _Labeler
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found",
                        check=False)
        srv.shutdown()
        srv.server_close()


def test_reinvocation_does_not_inject_twice(cluster, mesh, labeler):
    ns = "e2e-reinvoke"
    cluster.create_namespace(ns, labels={"weft.dev/inject": "enabled",
                                         "e2e.weft.dev/labeler": "on"})
    before = labeler.calls
    reviews = mesh.reviews_total()
    cluster.create_json(pod("twice", ns))
    p = cluster.get_json("pod", "twice", "-n", ns)
    assert p["metadata"]["labels"]["e2e.weft.dev/labeled"] == "yes"
    assert labeler.calls > before
    # weft-webhook ran, the labeler changed the pod after it, so the API
    # server called weft-webhook again with its own output (2; more only if
    # the API server retried a call).
    assert mesh.reviews_total() - reviews >= 2
    assert_injected(p)  # exactly one weft-init and one weft-proxy
    revalidate(cluster, ns, "twice")


def test_namespace_annotations_reach_the_pod(cluster, mesh):
    ns = "e2e-annotated"
    meshed_ns(cluster, ns, annotations={"weft.dev/allow-from": "shop/frontend,ops/*",
                                        "weft.dev/mtls-mode": "PERMISSIVE"})
    cluster.create_json(pod("annotated", ns))
    env = assert_injected(cluster.get_json("pod", "annotated", "-n", ns))
    assert env["WEFT_ALLOW_FROM"] == "shop/frontend,ops/*"
    assert env["WEFT_MTLS_MODE"] == "PERMISSIVE"
    # A pod annotation wins over the namespace's.
    cluster.create_json(pod("strict", ns, annotations={"weft.dev/mtls-mode": "STRICT"}))
    env = assert_injected(cluster.get_json("pod", "strict", "-n", ns))
    assert env["WEFT_MTLS_MODE"] == "STRICT"
    assert env["WEFT_ALLOW_FROM"] == "shop/frontend,ops/*"


def test_webhook_down_fails_closed_only_for_opted_in(cluster, mesh):
    meshed_ns(cluster, "e2e-down")
    cluster.create_namespace("e2e-down-plain")
    mesh.stop_process()
    try:
        r = cluster.create_json(pod("refused", "e2e-down"), check=False)
        assert r.returncode != 0
        assert "failed calling webhook" in r.stderr and "inject.weft.dev" in r.stderr, r.stderr
        r = cluster.kubectl("get", "pod", "refused", "-n", "e2e-down", check=False)
        assert "NotFound" in r.stderr
        cluster.create_json(pod("fine", "e2e-down-plain"))
        assert_untouched(cluster.get_json("pod", "fine", "-n", "e2e-down-plain"))
    finally:
        mesh.start()
    cluster.create_json(pod("back", "e2e-down"))
    assert_injected(cluster.get_json("pod", "back", "-n", "e2e-down"))


def make_csr(d, uri):
    key, csr = os.path.join(d, "k.pem"), os.path.join(d, "csr.pem")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/O=weft-e2e", "-addext", "subjectAltName=URI:" + uri],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return open(csr).read()


def test_identity_checks_real_tokens_with_tokenreview(cluster, mesh, identity):
    ns = "e2e-identity"
    meshed_ns(cluster, ns)
    cluster.kubectl("create", "serviceaccount", "app", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "gone", "-n", ns)
    spiffe = "spiffe://cluster.local/ns/%s/sa/app" % ns
    with tempfile.TemporaryDirectory() as d:
        csr = make_csr(d, spiffe)
        status, ans = identity.request(csr, cluster.token("app", ns, audience="weft-identity"))
        assert status == 200, (ans, identity.logs())
        assert ans["spiffeId"] == spiffe
        crt = os.path.join(d, "crt.pem")
        chain = os.path.join(d, "chain.pem")
        with open(crt, "w") as f:
            f.write(ans["certificate"])
        with open(chain, "w") as f:
            f.write("".join(ans["chain"]))
        r = subprocess.run(["openssl", "verify", "-CAfile", identity.root.crt, "-untrusted", chain,
                            crt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, r.stdout
        r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", crt],
                           stdout=subprocess.PIPE, text=True, check=True)
        assert "URI:" + spiffe in r.stdout

        # A real token, but for the API server's audience, not weft-identity's.
        status, ans = identity.request(csr, cluster.token("app", ns))
        assert status == 401, ans
        # Right token, but the CSR names another service account.
        other = make_csr(d, "spiffe://cluster.local/ns/%s/sa/gone" % ns)
        status, ans = identity.request(other, cluster.token("app", ns, audience="weft-identity"))
        assert status == 403, ans
        # The token of a service account deleted since, never used before:
        # refused (the API server's informer may lag the deletion a moment).
        tok = cluster.token("gone", ns, audience="weft-identity")
        cluster.kubectl("delete", "serviceaccount", "gone", "-n", ns)
        status, ans, waited, _ = refused_within(identity, other, tok, 2)
        assert (status, ans["error"]["reason"]) == (401, "token_invalid"), ans

        # A token bound to a pod, as the kubelet projects it, is good while the
        # pod exists and refused once it is deleted. weft-identity keeps no
        # cache: every request is one TokenReview. kube-apiserver caches a
        # successful authentication for 10 s, so a token that succeeded just
        # before the deletion may pass for up to 10 s after it; one not used
        # since is refused at once.
        p = pod("victim", ns)
        p["spec"]["serviceAccountName"] = "app"
        cluster.create_json(p)

        def bound_token():
            return cluster.kubectl("create", "token", "app", "-n", ns, "--audience", "weft-identity",
                                   "--bound-object-kind", "Pod", "--bound-object-name", "victim",
                                   "--duration", "10m").stdout.strip()
        used, unused = bound_token(), bound_token()
        status, ans = identity.request(csr, used)
        assert status == 200, (ans, identity.logs())
        issued = identity.issued_total()
        cluster.kubectl("delete", "pod", "victim", "-n", ns, "--wait=true")
        reviews = metric_sum(identity.metrics_port, "weft_identity_tokenreview_duration_seconds_count")
        status, ans, waited_unused, n1 = refused_within(identity, csr, unused, 2)
        assert (status, ans["error"]["reason"]) == (401, "token_invalid"), ans
        assert identity.issued_total() == issued
        status, ans, waited_used, n2 = refused_within(identity, csr, used, 10 + 5)
        assert (status, ans["error"]["reason"]) == (401, "token_invalid"), ans
        assert identity.issued_total() == issued + n2 - 1  # issued until the API server's cache let go
        # Each request after the deletion was a TokenReview of its own.
        asked = metric_sum(identity.metrics_port, "weft_identity_tokenreview_duration_seconds_count") - reviews
        assert asked == n1 + n2, (asked, n1, n2)
        print("refused after: deleted service account %.2fs, deleted pod %.2fs (unused token) %.2fs (used token)"
              % (waited, waited_unused, waited_used))


def refused_within(identity, csr, token, timeout):
    """Asks for a certificate with `token` every 0.2 s until refused, failing
    after `timeout` s: (status, answer, seconds waited, requests made)."""
    t0 = time.monotonic()
    for n in range(1, 1000):
        status, ans = identity.request(csr, token)
        if status != 200:
            return status, ans, time.monotonic() - t0, n
        assert time.monotonic() - t0 < timeout, "still issuing %.1fs after the deletion" % (time.monotonic() - t0)
        time.sleep(0.2)
    raise AssertionError("never refused")


def published_bundle(cluster, ns):
    r = cluster.kubectl("get", "configmap", "weft-trust-bundle", "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_published(cluster, ns, pem, timeout=20):
    """weft-identity's copy of the trust bundle in ns, once it carries pem."""
    return cluster.wait_for(lambda: (lambda cm: cm if cm and cm.get("data", {}).get("ca.crt") == pem else None)(
        published_bundle(cluster, ns)), timeout, "weft-trust-bundle in %s" % ns)


def test_identity_publishes_the_trust_bundle_into_opted_in_namespaces(cluster, identity):
    """Injected pods mount ConfigMap weft-trust-bundle from their own
    namespace: weft-identity (as its service account, with the manifests'
    RBAC) creates it in opted-in namespaces only, and rewrites it when the
    trust anchors change."""
    on, off = "e2e-bundle", "e2e-bundle-off"
    meshed_ns(cluster, on)
    cluster.create_namespace(off)
    pem = open(identity.bundle).read()
    cm = wait_published(cluster, on, pem)
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "weft-identity"
    assert published_bundle(cluster, off) is None

    # Rotation: a second anchor is added to the bundle (the first step of a
    # root rotation); the copies follow, other keys set by hand survive.
    cluster.kubectl("patch", "configmap", "weft-trust-bundle", "-n", on, "--type", "merge",
                    "-p", json.dumps({"data": {"note": "kept"}}))
    other = cl.CA(os.path.join(identity.dir, "rotation"), "weft-e2e-next-root")
    rotated = pem + open(other.crt).read()
    updated = identity.published("updated")
    try:
        with open(identity.bundle + ".new", "w") as f:
            f.write(rotated)
        os.rename(identity.bundle + ".new", identity.bundle)
        cm = wait_published(cluster, on, rotated)
        assert cm["data"]["note"] == "kept"
        # Counted once weft-identity has read the API server's answer, which
        # can come after kubectl already sees the update.
        cluster.wait_for(lambda: identity.published("updated") > updated, 10, "the update counted")
    finally:
        with open(identity.bundle + ".new", "w") as f:
            f.write(pem)
        os.rename(identity.bundle + ".new", identity.bundle)
    wait_published(cluster, on, pem)

    # A bundle that is not only certificates is not published anywhere.
    failed = identity.published("failed")
    try:
        with open(identity.bundle + ".new", "w") as f:
            f.write(pem + open(identity.issuer_key).read())
        os.rename(identity.bundle + ".new", identity.bundle)
        cluster.wait_for(lambda: identity.published("failed") > failed, 20, "a refused bundle")
        assert "PRIVATE KEY" not in published_bundle(cluster, on)["data"]["ca.crt"]
        cluster.wait_for(lambda: "not a CERTIFICATE" in identity.logs(), 10, "the refusal logged")
        # The last good bundle stays in force, also for a namespace opting in now.
        meshed_ns(cluster, "e2e-bundle-late")
        wait_published(cluster, "e2e-bundle-late", pem)
    finally:
        with open(identity.bundle + ".new", "w") as f:
            f.write(pem)
        os.rename(identity.bundle + ".new", identity.bundle)

    # Its RBAC reaches that one ConfigMap, not the others.
    sa = "system:serviceaccount:weft-system:weft-identity"
    def can(*args):
        return cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False).stdout.strip()
    assert can("update", "configmap/weft-trust-bundle", "-n", on) == "yes"
    assert can("get", "configmap/other", "-n", on) == "no"
    assert can("list", "configmaps", "-n", on) == "no"
    assert can("delete", "configmap/weft-trust-bundle", "-n", on) == "no"


@pytest.fixture
def runner(cluster, identity, weft_bin):
    if os.geteuid() != 0:
        pytest.skip("running pods in network namespaces needs root")
    for b in ("weft-init", "weft-proxy"):
        if not os.access(os.path.join(weft_bin, b), os.X_OK):
            pytest.skip("%s not built" % b)
    import podrun
    d = cl.make_tempdir("pods")
    os.chmod(d, 0o755)  # the proxy (uid 15100) reads its volumes below it
    r = podrun.PodRunner(cluster, identity, weft_bin, d)
    try:
        yield r
    finally:
        r.close()
        shutil.rmtree(d, ignore_errors=True)


def test_stored_pods_run_and_talk_mtls(cluster, mesh, identity, runner):
    """Two pods as the API server stored them (injected by weft-webhook) run
    in network namespaces: weft-init with the stamped args, weft-proxy with
    the stamped env and a certificate from weft-identity for a real token
    (fetched by the proxy's identity client at the stamped address);
    the client's plain TCP call reaches the server over mTLS, and plaintext
    from outside the mesh is refused (STRICT)."""
    ns = "e2e-run"
    meshed_ns(cluster, ns)
    wait_published(cluster, ns, open(identity.bundle).read())
    for sa in ("web", "shopper"):
        cluster.kubectl("create", "serviceaccount", sa, "-n", ns)
    stored = {}
    for name, sa in (("server", "web"), ("client", "shopper")):
        p = pod(name, ns)
        p["spec"]["serviceAccountName"] = sa
        cluster.create_json(p)
        stored[name] = cluster.get_json("pod", name, "-n", ns)
        assert_injected(stored[name])
    issued = identity.issued_total()
    server = runner.run(stored["server"])
    client = runner.run(stored["client"])
    # Each proxy got its certificate itself, through the stamped address.
    assert identity.issued_total() - issued >= 2
    for p in (server, client):
        assert p.metric("weft_proxy_certificate_expiry_timestamp_seconds") > 0

    with client.host.inside():  # the socket belongs to the client pod
        s = socket.create_connection((server.ip4, 8080), timeout=10)
    try:
        s.sendall(b"WHO\n")
        answer = s.recv(200).decode()
    finally:
        s.close()
    assert answer.startswith("server "), answer
    peer = "spiffe://cluster.local/ns/%s/sa/shopper" % ns
    assert server.metric('weft_proxy_tls_handshakes_total{side="server",result="success"') >= 1
    assert server.metric('weft_proxy_connections_opened_total{direction="inbound",tls="true",'
                         'authz="allowed",peer="%s"' % peer) >= 1
    assert client.metric('weft_proxy_tls_handshakes_total{side="client",result="success"') >= 1

    # Plaintext from the node (outside the mesh) to the server's app port.
    with server.host.net.node.inside():
        try:
            s = socket.create_connection((server.ip4, 8080), timeout=5)
            s.sendall(b"WHO\n")
            s.settimeout(5)
            got = s.recv(200)
            s.close()
        except OSError:
            got = b""
    assert not got.startswith(b"server "), got
    assert server.metric("weft_proxy_inbound_refused_total") >= 1


def test_stored_pods_run_in_the_demo_pod_runner_over_mtls(cluster, mesh, weft_bin):
    """The demo's pod runner (demo/podrunner.py: its own node, fake API for
    tokens, weft-identity) runs two pods exactly as this API server stored
    them; the frontend's call reaches the backend over mTLS with both
    identities verified."""
    if os.geteuid() != 0:
        pytest.skip("the demo's pod runner needs root")
    demo_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "demo")
    if not os.path.exists(os.path.join(demo_dir, "podrunner.py")):
        pytest.skip("demo/podrunner.py not present")
    sys.path.insert(0, demo_dir)
    import demo
    import podrunner
    assert mesh.config  # the e2e mesh config points at the runner's weft-identity
    ns = "e2e-demo"
    meshed_ns(cluster, ns)
    stored = {}
    for name, uid, serve in (("backend", 1000, True), ("frontend", 1001, False)):
        cluster.kubectl("create", "serviceaccount", name, "-n", ns)
        spec = demo.app_pod(ns, name, name, uid, serve=serve)
        # The runner has no kube-root-ca.crt to project; Weft's own token
        # volume is what matters here.
        spec["spec"]["automountServiceAccountToken"] = False
        cluster.create_json(spec)
        stored[name] = cluster.get_json("pod", name, "-n", ns)
        assert_injected(stored[name])
    for p in stored.values():
        # The API server stores an empty env value as no `value` key (the
        # Kubernetes meaning: ""); demo/podrunner.py refuses such entries
        # ("env X: [] not supported here"). Until it accepts them, hand it
        # the explicit "".
        for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]:
            for e in c.get("env", []):
                if "value" not in e and "valueFrom" not in e:
                    e["value"] = ""
    with podrunner.Cluster(weft_bin, prefix="we") as dc:
        dc.start()
        dc.create_namespace(ns, labels={"weft.dev/inject": "enabled"})
        backend = dc.run_pod(stored["backend"])
        frontend = dc.run_pod(stored["frontend"])
        ok, line = demo.call(dc, frontend, "frontend", "http://%s:8080/" % backend.ip)
        assert ok, line
        assert '"pod": "%s/backend"' % ns in line, line
        # The HTTP call went as a stream of a pooled weft/h2 connection, verified as backend's.
        out = demo.proxy_metrics(dc, frontend)
        pool = ('weft_proxy_pool_connections_opened_total{direction="outbound",tls="true",'
                'peer="spiffe://cluster.local/ns/%s/sa/backend"} 1' % ns)
        assert pool in out.splitlines(), out
        inb = demo.peers(demo.proxy_metrics(dc, backend), "inbound")
        assert ("spiffe://cluster.local/ns/%s/sa/frontend" % ns, "allowed") in inb, inb
