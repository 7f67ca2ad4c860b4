# SPDX-License-Identifier: Apache-2.0
"""weft-discovery on the e2e node (node.py), installed from manifests/ as a
user would (2 replicas from the image scripts/images.sh built, its serving
certificate from gen-discovery-cert.sh, mesh.yaml's default
discovery.address): meshed Deployments and a non-meshed one behind
Services whose EndpointSlices the controller-manager makes from the running
pods. A meshed pod reaches a non-meshed Service in plain TCP, a meshed one
over mTLS with the SPIFFE ID discovery named, and kubernetes.default (its
ClusterIP lies inside meshNetworks, where a proxy without discovery would
insist on mTLS); weft-discovery's pods are killed and come back while
requests go on, and none fails."""
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

import node as nd
from test_node_mesh import app, metric, metrics, pods

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(REPO, "manifests")
NS = "disc-app"         # opted in
PLAIN = "disc-plain"    # not opted in: no proxies
SPIFFE = "spiffe://cluster.local/ns/%s/sa/%s"


def install(n, d):
    """manifests/ under a kustomization for the node's ranges (meshNetworks
    198.18.0.0/15; discovery.address left as shipped) and --no-gateway-api
    (the node has no Gateway API CRDs: the route watches would keep /readyz
    at 503), then the three certificate scripts."""
    os.makedirs(d)
    with open(os.path.join(REPO, "templates", "mesh.yaml")) as f:
        mesh = yaml.safe_load(f)
    assert mesh["discovery"]["address"] == "weft-discovery.weft-system.svc:8445"
    mesh["meshNetworks"] = "198.18.0.0/15"
    with open(os.path.join(d, "mesh.yaml"), "w") as f:
        yaml.safe_dump(mesh, f, sort_keys=False)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        json.dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                   "resources": [os.path.relpath(MANIFESTS, d)],
                   "generatorOptions": {"disableNameSuffixHash": True},
                   "configMapGenerator": [{"name": "weft-config", "namespace": "weft-system",
                                           "behavior": "replace", "files": ["mesh.yaml"]}],
                   "patches": [{"target": {"kind": "Deployment", "name": "weft-discovery"},
                                "patch": json.dumps([{"op": "add",
                                                      "path": "/spec/template/spec/containers/0/args/-",
                                                      "value": "--no-gateway-api"}])}]}, f)
    n.kubectl("apply", "-k", d)
    env = dict(os.environ, KUBECTL=n.kubectl_bin, KUBECONFIG=n.kubeconfig)
    ca = os.path.join(d, "ca")
    for argv in (["gen-webhook-cert.sh"], ["gen-identity-ca.sh", "--out", ca, "--days", "2"],
                 ["discovery/gen-discovery-cert.sh", "--ca-dir", ca, "--days", "2"]):
        subprocess.run(["bash", os.path.join(MANIFESTS, argv[0])] + argv[1:], env=env, check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for dep in ("weft-webhook", "weft-identity", "weft-discovery"):
        n.kubectl("rollout", "status", "-n", "weft-system", "deployment/" + dep,
                  "--timeout=120s", timeout=150)


@pytest.fixture(scope="module")
def disc_node(node):
    n = node
    d = os.path.join(n.dir, "weft-discovery-overlay")
    if os.path.exists(os.path.join(n.dir, "weft-overlay")):
        pytest.fail("Weft is installed already by another module (weft-overlay): this module installs its own")
    try:
        t = time.monotonic()
        install(n, d)
        n.timings["weft-with-discovery-installed"] = time.monotonic() - t
        n.create_namespace(NS, labels={"weft.dev/inject": "enabled"})
        n.create_namespace(PLAIN)
        n.wait_for(lambda: n.kubectl("get", "configmap", "weft-trust-bundle", "-n", NS,
                                     check=False).returncode == 0, 60, "weft-trust-bundle")
        items = [dict(o, metadata=dict(o["metadata"], namespace=ns)) for ns, name in
                 ((NS, "alpha"), (NS, "beta"), (PLAIN, "plain")) for o in app(name, name)]
        n.apply_json({"apiVersion": "v1", "kind": "List", "items": items})
        for ns, dep in ((NS, "alpha"), (NS, "beta"), (PLAIN, "plain")):
            n.kubectl("rollout", "status", "-n", ns, "deployment/" + dep, "--timeout=120s", timeout=150)
        yield n
    finally:
        for ns in (NS, PLAIN):
            n.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False, timeout=150)
        if os.path.exists(d):
            n.kubectl("delete", "-k", d, "--wait=true", "--timeout=120s", "--ignore-not-found",
                      check=False, timeout=150)
            shutil.rmtree(d, ignore_errors=True)


def alpha(n):
    return pods(n, NS, "app=alpha")[0]


def exec_in(n, pod, *argv, timeout=60):
    return n.kubectl("exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "-c", "app", "--",
                     *argv, timeout=timeout)


def routes(text, route):
    return metric(text, 'weft_proxy_discovery_routes_total{route="%s"}' % route)


def test_discovery_runs_as_two_pods_and_every_proxy_is_connected(disc_node):
    n = disc_node
    got = pods(n, "weft-system", "app.kubernetes.io/name=weft-discovery")
    assert len(got) == 2 and all(p["status"]["phase"] == "Running" for p in got)
    c = got[0]["spec"]["containers"][0]
    assert c["image"] == "ghcr.io/weft-mesh/weft-discovery:0.1.0"
    streams = sum(metric(metrics(p["status"]["podIP"], 9090), "weft_discovery_streams") for p in got)
    assert streams >= 2   # alpha's and beta's proxies (any replica each)
    for name in ("alpha", "beta"):
        p = pods(n, NS, "app=" + name)[0]
        env = {e["name"]: e.get("value") for c in p["spec"]["initContainers"] if c["name"] == "weft-proxy"
               for e in c["env"]}
        assert env["WEFT_DISCOVERY_ADDR"] == "weft-discovery.weft-system.svc:8445"
        m = metrics(p["status"]["podIP"], 15020)
        assert metric(m, "weft_proxy_discovery_connected") == 1
        assert metric(m, "weft_proxy_discovery_acks_total") >= 1   # its own inbound policy


def test_endpoint_slices_come_from_the_controller_manager(disc_node):
    n = disc_node
    for ns, name in ((NS, "beta"), (PLAIN, "plain")):
        slices = n.get_json("endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=" + name)["items"]
        assert slices and slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslice-controller.k8s.io"
        want = pods(n, ns, "app=" + name)[0]["status"]["podIP"]
        assert [e["addresses"][0] for s in slices for e in s.get("endpoints") or []] == [want]


def test_meshed_pod_reaches_a_meshed_service_over_mtls_with_the_expected_identity(disc_node):
    n = disc_node
    a, beta = alpha(n), pods(n, NS, "app=beta")[0]
    inbound = 'weft_proxy_http_requests_total{direction="inbound",peer="%s"' % (SPIFFE % (NS, "alpha"))
    beta_before = metric(metrics(beta["status"]["podIP"], 15020), inbound)
    before = metrics(a["status"]["podIP"], 15020)
    out = exec_in(n, a, "wget", "-q", "-O-", "http://beta.%s.svc.cluster.local/" % NS).stdout
    assert out.strip() == "ok"
    after = metrics(a["status"]["podIP"], 15020)
    assert routes(after, "mtls") == routes(before, "mtls") + 1
    # The request went as a stream of a pooled weft/h2 connection to beta's proxy, which presented beta's
    # identity (the pool verified the SPIFFE ID discovery expects), and beta's proxy counted it as alpha's.
    peer = ('weft_proxy_pool_connections_opened_total{direction="outbound",tls="true",peer="%s"}'
            % (SPIFFE % (NS, "beta")))
    assert metric(after, peer) >= 1, after
    n.wait_for(lambda: metric(metrics(beta["status"]["podIP"], 15020), inbound) == beta_before + 1, 5,
               "beta's proxy to count alpha's request", interval=0.1)


def test_meshed_pod_reaches_a_non_meshed_service_in_plain_tcp(disc_node):
    """plain's pod IP is inside meshNetworks: without discovery the proxy
    would dial it with mTLS, and the call would fail."""
    n = disc_node
    a = alpha(n)
    before = metrics(a["status"]["podIP"], 15020)
    out = exec_in(n, a, "wget", "-q", "-O-", "http://plain.%s.svc.cluster.local/" % PLAIN).stdout
    assert out.strip() == "ok"
    after = metrics(a["status"]["podIP"], 15020)
    assert routes(after, "plain") == routes(before, "plain") + 1
    assert routes(after, "fallback") == routes(before, "fallback")


def test_meshed_pod_reaches_kubernetes_default(disc_node):
    """198.19.0.1:443 is inside meshNetworks too. The API server's answer to
    plaintext HTTP on its TLS port shows the bytes reached it as sent:
    plain TCP, no mTLS from the proxy in between."""
    n = disc_node
    a = alpha(n)
    before = metrics(a["status"]["podIP"], 15020)
    r = exec_in(n, a, "sh", "-c", "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | "
                "nc -w 5 kubernetes.default.svc.cluster.local 443")
    assert "Client sent an HTTP request to an HTTPS server" in r.stdout, r.stdout + r.stderr
    assert routes(metrics(a["status"]["podIP"], 15020), "plain") == routes(before, "plain") + 1


def test_discovery_killed_and_restarted_with_no_failed_request(disc_node):
    """Calls alpha -> beta every 0.2 s (bounded: 150 calls, and the
    whole loop 120 s) and one slow call in flight, while both weft-discovery pods are
    killed and their replacements start: the proxies keep serving on their
    last answers, every call answers, and they reconnect."""
    n = disc_node
    a = alpha(n)
    before = metrics(a["status"]["podIP"], 15020)
    url = "http://beta.%s.svc.cluster.local/" % NS
    loop = ("i=0; while [ $i -lt 150 ]; do wget -q -O- %s || echo FAILED; i=$((i+1)); sleep 0.2; done"
            % url)
    base = [n.kubectl_bin, "--kubeconfig", n.kubeconfig, "exec", "-n", NS, a["metadata"]["name"], "-c", "app",
            "--"]
    calls = subprocess.Popen(base + ["sh", "-c", loop], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slow = subprocess.Popen(base + ["wget", "-q", "-O-", url + "cgi-bin/slow"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        old = [p["metadata"]["name"] for p in pods(n, "weft-system", "app.kubernetes.io/name=weft-discovery")]
        n.kubectl("delete", "pod", "-n", "weft-system", *old, "--grace-period=0", "--force", "--wait=false")
        n.wait_for(lambda: metric(metrics(a["status"]["podIP"], 15020), "weft_proxy_discovery_connected") == 0,
                   30, "alpha's proxy to lose its stream", interval=0.2)
        n.kubectl("rollout", "status", "-n", "weft-system", "deployment/weft-discovery", "--timeout=120s",
                  timeout=150)
        n.wait_for(lambda: metric(metrics(a["status"]["podIP"], 15020), "weft_proxy_discovery_connected") == 1,
                   60, "alpha's proxy to reconnect", interval=0.5)
        out, err = calls.communicate(timeout=120)
        slow_out, slow_err = slow.communicate(timeout=30)
    finally:
        for p in (calls, slow):
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = out.split()
    assert calls.returncode == 0 and lines.count("ok") == 150 and "FAILED" not in lines, (out, err)
    assert slow.returncode == 0 and slow_out.strip() == "done", (slow_out, slow_err)
    after = metrics(a["status"]["podIP"], 15020)
    assert metric(after, "weft_proxy_discovery_disconnects_total") > \
        metric(before, "weft_proxy_discovery_disconnects_total")
    assert routes(after, "mtls") >= routes(before, "mtls") + 151
    new = [p["metadata"]["name"] for p in pods(n, "weft-system", "app.kubernetes.io/name=weft-discovery")]
    assert not set(new) & set(old)
