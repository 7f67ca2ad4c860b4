# SPDX-License-Identifier: Apache-2.0
"""weft-discovery serve --kubernetes against the real kube-apiserver of the
session (no node, no Gateway API CRDs installed): it becomes ready and
answers for Services at once, with each Gateway API resource shown as not
installed; once the HTTPRoute CRD is installed (the pinned Gateway API
release's own file) the next check watches it and the route is in the
answer, with no restart. The CRD is deleted again at the end."""
import json
import os
import subprocess
import tempfile
import time
import urllib.request

import pytest
import yaml

import cluster as cl
from weft import metric_series as metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = "disc-crds"
RECHECK_MS = 1000
RESOURCES = ("httproutes", "grpcroutes", "referencegrants")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def credentials(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "1", "-subj", "/CN=disc-ca", cwd=d)
    for name, san in (("server", "IP:127.0.0.1"), ("proxy", "URI:spiffe://cluster.local/ns/%s/sa/default" % NS)):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext", cwd=d)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(d, port, dest):
    r = subprocess.run(["curl", "-sS", "--http2", "--max-time", "10", "--cacert", os.path.join(d, "ca.crt"),
                        "--cert", os.path.join(d, "proxy.crt"), "--key", os.path.join(d, "proxy.key"),
                        "https://127.0.0.1:%d/v1/answer?id=destination:%s" % (port, dest)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def test_discovery_without_gateway_api_crds_then_installed(cluster, weft_bin):
    c = cluster
    disc = os.path.join(weft_bin, "weft-discovery")
    if not os.access(disc, os.X_OK):
        pytest.skip("weft-discovery not built: run make")
    if c.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False).returncode == 0:
        pytest.fail("the session's API server has the HTTPRoute CRD already: this test needs it absent")
    try:
        crd = cl.gateway_api_crd(cl.gateway_api_dir(), "httproutes")
    except RuntimeError as e:
        pytest.skip("the Gateway API module cannot be had: %s" % e)
    c.apply_json({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "weft-system"}})
    with open(os.path.join(REPO, "manifests", "discovery", "discovery.yaml")) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
                c.apply_json(doc)  # the shipped RBAC, as shipped
    c.create_namespace(NS)
    svc = json.loads(c.kubectl("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})).stdout)
    vip = svc["spec"]["clusterIP"]
    c.create_json({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "web-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "web"}},
                   "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                   "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}]})
    p = None
    with tempfile.TemporaryDirectory() as d:
        try:
            credentials(d)
            with open(os.path.join(d, "token"), "w") as f:
                f.write(c.token("weft-discovery", "weft-system") + "\n")
            port, mport = free_port(), free_port()
            log = open(os.path.join(d, "discovery.log"), "w")
            p = subprocess.Popen([disc, "serve", "--kubernetes", "--api-server", "127.0.0.1:%d" % c.port,
                                  "--api-ca", c.ca_crt, "--api-token", os.path.join(d, "token"),
                                  "--trust-domain", "cluster.local", "--cert", os.path.join(d, "server.crt"),
                                  "--key", os.path.join(d, "server.key"), "--trust-bundle", os.path.join(d, "ca.crt"),
                                  "--config", os.path.join(REPO, "templates", "mesh.yaml"),
                                  "--listen", "127.0.0.1:%d" % port, "--metrics-listen", "127.0.0.1:%d" % mport,
                                  "--crd-recheck-ms", str(RECHECK_MS)], stdout=log, stderr=subprocess.STDOUT)

            def ready():
                assert p.poll() is None, open(log.name).read()[-3000:]
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % mport, timeout=2) as r:
                        return r.status == 200
                except OSError:
                    return False
            wait(ready, 20, "/readyz without the Gateway API CRDs: " + open(log.name).read()[-2000:])
            m = metrics(mport)
            for res in RESOURCES:
                assert m['weft_discovery_resource_installed{resource="%s"}' % res] == 0, m
                assert m['weft_discovery_watch_errors_total{resource="%s"}' % res] == 0, m
            assert m['weft_discovery_resource_installed{resource="services"}'] == 1
            a = answer(d, port, "%s:80" % vip)
            assert a["kind"] == "service" and [e["address"] for e in a["service"]["endpoints"]] == ["10.1.2.3"], a
            assert not a["service"].get("httpRoutes"), a
            text = open(log.name).read()
            assert text.count("k8s resource not served (404)") == 3, text[-3000:]

            c.kubectl("apply", "--server-side", "-f", crd)
            # (kubectl wait fails on a CRD that has no conditions yet: polled.)
            wait(lambda: c.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", "-o",
                                   "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
                                   check=False).stdout.strip() == "True", 60, "the HTTPRoute CRD established")
            # A new CRD's storage may answer 429/503 for a moment: retried.
            route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "web", "namespace": NS},
                     "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                              "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}
            wait(lambda: c.create_json(route, check=False).returncode == 0, 30, "the HTTPRoute created")
            wait(lambda: [r["name"] for r in answer(d, port, "%s:80" % vip)["service"].get("httpRoutes", [])]
                 == ["web"], RECHECK_MS * 1.25 / 1000 + 20, "the route in the answer")
            m = metrics(mport)
            assert m['weft_discovery_resource_installed{resource="httproutes"}'] == 1, m
            assert m['weft_discovery_resource_installed{resource="grpcroutes"}'] == 0, m
            assert "k8s resource now served" in open(log.name).read()
        finally:
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            c.kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=60s", "-f", crd, check=False,
                      timeout=90)
            c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
