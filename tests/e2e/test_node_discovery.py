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
requests go on, and none fails. The Gateway API standard-channel CRDs of
the pinned release are installed first (gateway_api_crds), so discovery
watches routes: an HTTPRoute and a GRPCRoute whose parent is the Service
beta (GAMMA) reach alpha's proxy as new versions of beta's answer, and
discovery's one-shot GET /v1/answer (curl, with a certificate of alpha's
identity) shows them: a missing backend, and one of another namespace
resolved only while a ReferenceGrant permits it. A Namespace's
weft.dev/allow-from added and removed reaches a running pod's proxy as its
new policy, with no restart."""
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

import cluster as cl
import node as nd
from test_node_mesh import app, metric, metrics, pods

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(REPO, "manifests")
NS = "disc-app"         # opted in
PLAIN = "disc-plain"    # not opted in: no proxies
OTHER = "disc-other"    # opted in: its caller is another namespace's
SPIFFE = "spiffe://cluster.local/ns/%s/sa/%s"


def install_gateway_api(n, crd):
    """The release's standard channel, as its own config/crd/kustomization.yaml
    lists it (the CRDs of config/crd/standard/ and its safe-upgrades
    ValidatingAdmissionPolicy), applied server-side as the release's own
    install line does (.github/workflows/release-notes-header.template.md
    of the module: the HTTPRoute CRD's compact JSON, 243 kB, comes close to
    the 256 kB of annotations a client-side apply would fill with it)."""
    n.kubectl("apply", "--server-side", "-k", crd, timeout=120)
    n.kubectl("wait", "--for=condition=Established", "--timeout=60s",
              *("crd/%s.gateway.networking.k8s.io" % r for r in cl.GATEWAY_CRDS), timeout=90)


def install(n, d):
    """manifests/ under a kustomization for the node's ranges (meshNetworks
    198.18.0.0/15; discovery.address left as shipped), weft-discovery as
    shipped (watching routes: the fixture installed the Gateway API CRDs
    first), then the three certificate scripts."""
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
                                           "behavior": "replace", "files": ["mesh.yaml"]}]}, f)
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
        crd = os.path.join(cl.gateway_api_dir(), "config", "crd")
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        t = time.monotonic()
        install_gateway_api(n, crd)
        n.timings["gateway-api-crds-installed"] = time.monotonic() - t
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
        for ns in (NS, PLAIN, OTHER):
            n.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s",
                      check=False, timeout=150)
        if os.path.exists(d):
            n.kubectl("delete", "-k", d, "--wait=true", "--timeout=120s", "--ignore-not-found",
                      check=False, timeout=150)
            shutil.rmtree(d, ignore_errors=True)
        # Last, so the next module on this node finds none, as before.
        n.kubectl("delete", "-k", crd, "--wait=true", "--timeout=120s", "--ignore-not-found",
                  check=False, timeout=150)


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


DISC_NAME = "weft-discovery.weft-system.svc"


@pytest.fixture(scope="module")
def alpha_cert(disc_node):
    """A workload certificate of alpha's identity, issued as weft-identity
    issues them (P-256, the SPIFFE ID as the only URI SAN, by the mesh's
    intermediate), as an operator would to read what alpha's proxy is told:
    (chain, key, the trust bundle's root)."""
    ca = os.path.join(disc_node.dir, "weft-discovery-overlay", "ca")
    d = os.path.join(ca, "alpha-client")
    os.makedirs(d, exist_ok=True)
    leaf, key, csr, ext, chain = (os.path.join(d, f) for f in ("leaf.crt", "tls.key", "tls.csr", "ext", "tls.crt"))
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:%s\n" % (SPIFFE % (NS, "alpha")))
    for argv in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", "/CN=alpha"],
                 ["x509", "-req", "-in", csr, "-CA", os.path.join(ca, "intermediate.crt"),
                  "-CAkey", os.path.join(ca, "intermediate.key"), "-CAcreateserial", "-CAserial",
                  os.path.join(d, "serial"), "-out", leaf, "-days", "1", "-extfile", ext]):
        subprocess.run(["openssl"] + argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(chain, "w") as out:
        for f in (leaf, os.path.join(ca, "intermediate.crt")):
            with open(f) as i:
                out.write(i.read())
    return chain, key, os.path.join(ca, "ca.crt")


def one_shot(cert, pod_ip, ident):
    """GET /v1/answer?id=IDENT from one weft-discovery pod with curl, by the
    name its serving certificate carries: (status, HTTP version, answer)."""
    chain, key, root = cert
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", root, "--cert", chain, "--key", key,
                        "--resolve", "%s:8445:%s" % (DISC_NAME, pod_ip), "-g", "-w", "\n%{http_code} %{http_version}",
                        "https://%s:8445/v1/answer?id=%s" % (DISC_NAME, ident)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    code, version = tail.split()
    return int(code), version, json.loads(body)


def proxy_counts(ip):
    m = metrics(ip, 15020)
    return {k: metric(m, "weft_proxy_discovery_%s_total" % k) for k in ("updates", "acks", "nacks", "stale")}


def parent(name):
    return [{"group": "", "kind": "Service", "name": name, "port": 80}]   # GAMMA: the Service is the parent


def http_route(path, cross=False):
    """cross: a third backend, the Service plain of another namespace."""
    refs = [{"name": "beta", "port": 80, "weight": 90}, {"name": "beta-v2", "port": 80, "weight": 10}]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "beta-canary", "namespace": NS},
            "spec": {"parentRefs": parent("beta"),
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path},
                                             "headers": [{"name": "x-canary", "value": "1"}]}],
                                "backendRefs": refs + ([{"name": "plain", "namespace": PLAIN, "port": 80}]
                                                       if cross else [])}]}}


# In the backend's namespace: HTTPRoutes of NS may send to its Services (the release's v1beta1).
GRANT = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
         "metadata": {"name": "routes-of-disc-app", "namespace": PLAIN},
         "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NS}],
                  "to": [{"group": "", "kind": "Service"}]}}


GRPC_ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
              "metadata": {"name": "beta-grpc", "namespace": NS},
              "spec": {"parentRefs": parent("beta"),
                       "rules": [{"matches": [{"method": {"service": "weft.e2e.Echo", "method": "Ping"}}],
                                  "backendRefs": [{"name": "beta", "port": 80}]}]}}

BETA_V2 = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "beta-v2", "namespace": NS},
           "spec": {"selector": {"app": "beta"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def test_routes_of_a_service_reach_the_proxies_subscribed_to_it(disc_node, alpha_cert):
    """GAMMA routes of beta on the real API server (the release's CRDs, its
    schema's defaults and validation): each change (an HTTPRoute applied with
    a backend that does not exist, that backend's Service created, the route
    changed to add a backend in another namespace, a ReferenceGrant there
    applied and deleted, a GRPCRoute applied, each route deleted) is one new
    version of beta's answer that alpha's proxy acknowledges (it does not act
    on routes yet), and both discovery replicas' one-shot answers, read with
    curl, carry it: the missing backend as resolved: false, BackendNotFound,
    the other namespace's as RefNotPermitted until the grant permits it."""
    n = disc_node
    a = alpha(n)
    ip = a["status"]["podIP"]
    disc = [p["status"]["podIP"] for p in pods(n, "weft-system", "app.kubernetes.io/name=weft-discovery")]
    for d in disc:
        m = metrics(d, 9090)
        for r in cl.GATEWAY_CRDS:
            assert metric(m, 'weft_discovery_watch_up{resource="%s"}' % r) == 1, (d, r)
    beta_ip = n.get_json("service", "beta", "-n", NS)["spec"]["clusterIP"]
    ident = "destination:%s:80" % beta_ip
    # alpha's proxy holds beta's answer from its first call (unsubscribed after 600 s idle only).
    assert exec_in(n, a, "wget", "-q", "-O-", "http://beta.%s.svc.cluster.local/" % NS).stdout.strip() == "ok"

    def services():
        out = []
        for d in disc:
            code, version, ans = one_shot(alpha_cert, d, ident)
            assert (code, version, ans["kind"]) == (200, "2", "service"), (d, code, version, ans)
            out.append(ans["service"])
        return out

    assert all(s["httpRoutes"] == [] and s["grpcRoutes"] == [] for s in services())

    def backend(name, **kw):
        return dict({"group": "", "kind": "Service", "namespace": NS, "name": name, "port": 80}, **kw)

    def step(what, change, want):
        """change(), then both replicas answer want(service) true and alpha's
        proxy took exactly one new answer (beta's: nothing else it holds
        changed) and acknowledged it."""
        before = proxy_counts(ip)
        change()
        seen = []

        def shown():
            seen[:] = services()
            return all(want(s) for s in seen)
        try:
            n.wait_for(shown, 30, what + ": in both replicas' answers", interval=0.5)
        except TimeoutError as e:
            raise AssertionError("%s; the last answers' routes: %s" % (e, json.dumps(
                [{k: s[k] for k in ("httpRoutes", "grpcRoutes")} for s in seen]))) from None
        n.wait_for(lambda: proxy_counts(ip)["acks"] > before["acks"], 30, what + ": acknowledged by alpha's proxy",
                   interval=0.2)
        time.sleep(1)   # a second answer, had one come, would show here
        after = proxy_counts(ip)
        assert {k: after[k] - before[k] for k in after} == {"updates": 1, "acks": 1, "nacks": 0, "stale": 0}, \
            (what, before, after)

    def http_rule(path, v2):
        return {"matches": [{"path": {"type": "PathPrefix", "value": path},
                             "headers": [{"type": "Exact", "name": "x-canary", "value": "1"}]}],
                "filters": [],
                "backends": [backend("beta", weight=90, resolved=True, destination="%s:80" % beta_ip), v2]}

    missing = backend("beta-v2", weight=10, resolved=False, reason="BackendNotFound")
    try:
        step("an HTTPRoute with a missing backend", lambda: n.apply_json(http_route("/v2")),
             lambda s: [(r["namespace"], r["name"], r["hostnames"], r["rules"]) for r in s["httpRoutes"]] ==
             [(NS, "beta-canary", [], [http_rule("/v2", missing)])])

        def resolved(s):
            v2 = n.get_json("service", "beta-v2", "-n", NS)["spec"]["clusterIP"]
            return s["httpRoutes"] and s["httpRoutes"][0]["rules"] == \
                [http_rule("/v2", backend("beta-v2", weight=10, resolved=True, destination="%s:80" % v2))]
        step("the missing backend's Service created", lambda: n.apply_json(BETA_V2), resolved)
        plain_ip = n.get_json("service", "plain", "-n", PLAIN)["spec"]["clusterIP"]

        def cross(path, **kw):
            return lambda s: s["httpRoutes"] and \
                [r["matches"][0]["path"]["value"] for r in s["httpRoutes"][0]["rules"]] == [path] and \
                s["httpRoutes"][0]["rules"][0]["backends"][2:] == [dict(backend("plain", weight=1), namespace=PLAIN,
                                                                        **kw)]
        refused = {"resolved": False, "reason": "RefNotPermitted"}
        step("the HTTPRoute changed: a backend in another namespace", lambda: n.apply_json(http_route("/v3", True)),
             cross("/v3", **refused))
        step("a ReferenceGrant permitting it", lambda: n.apply_json(GRANT),
             cross("/v3", resolved=True, destination="%s:80" % plain_ip))
        step("the ReferenceGrant deleted", lambda: n.kubectl("delete", "referencegrant", GRANT["metadata"]["name"],
                                                             "-n", PLAIN), cross("/v3", **refused))
        step("a GRPCRoute", lambda: n.apply_json(GRPC_ROUTE),
             lambda s: [(r["namespace"], r["name"], r["rules"]) for r in s["grpcRoutes"]] ==
             [(NS, "beta-grpc", [{"matches": [{"method": {"type": "Exact", "service": "weft.e2e.Echo",
                                                          "method": "Ping"}}],
                                  "filters": [],
                                  "backends": [backend("beta", weight=1, resolved=True,
                                                       destination="%s:80" % beta_ip)]}])])
        step("the HTTPRoute deleted", lambda: n.kubectl("delete", "httproute", "beta-canary", "-n", NS),
             lambda s: s["httpRoutes"] == [] and len(s["grpcRoutes"]) == 1)
        step("the GRPCRoute deleted", lambda: n.kubectl("delete", "grpcroute", "beta-grpc", "-n", NS),
             lambda s: s["httpRoutes"] == [] and s["grpcRoutes"] == [])
    finally:
        n.kubectl("delete", "httproute", "beta-canary", "-n", NS, "--ignore-not-found", check=False)
        n.kubectl("delete", "grpcroute", "beta-grpc", "-n", NS, "--ignore-not-found", check=False)
        n.kubectl("delete", "service", "beta-v2", "-n", NS, "--ignore-not-found", check=False)
        n.kubectl("delete", "referencegrant", GRANT["metadata"]["name"], "-n", PLAIN, "--ignore-not-found",
                  check=False)
    # beta itself is still reached as before (the proxy does not act on routes yet).
    assert exec_in(n, a, "wget", "-q", "-O-", "http://beta.%s.svc.cluster.local/" % NS).stdout.strip() == "ok"


def inbound_responses(text, peer, status):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith('weft_proxy_http_responses_total{direction="inbound",')
               and 'peer="%s"' % peer in l and 'status="%s"' % status in l)


def test_allow_from_change_reaches_a_running_pod_with_no_restart(disc_node):
    """The mesh's default inboundPolicy (same-namespace) has alpha's proxy
    answer a meshed caller of another namespace 403. Annotating alpha's
    Namespace weft.dev/allow-from lets that caller in, and removing the
    annotation shuts it out again: each time discovery pushes alpha's proxy
    its new policy (weft_proxy_config_generation moves) and the next request
    (on the pooled connection the caller's proxy already holds) gets it,
    while alpha's pod runs on as it was: same UID, no container restarted."""
    n = disc_node
    n.create_namespace(OTHER, labels={"weft.dev/inject": "enabled"})
    n.wait_for(lambda: n.kubectl("get", "configmap", "weft-trust-bundle", "-n", OTHER,
                                 check=False).returncode == 0, 60, "weft-trust-bundle")
    n.apply_json({"apiVersion": "v1", "kind": "List",
                  "items": [dict(o, metadata=dict(o["metadata"], namespace=OTHER)) for o in app("caller", "caller")]})
    n.kubectl("rollout", "status", "-n", OTHER, "deployment/caller", "--timeout=120s", timeout=150)
    caller, a = pods(n, OTHER, "app=caller")[0], alpha(n)
    ip, peer = a["status"]["podIP"], SPIFFE % (OTHER, "caller")
    url = "http://alpha.%s.svc.cluster.local/" % NS

    def call():
        return n.kubectl("exec", "-n", OTHER, caller["metadata"]["name"], "-c", "app", "--",
                         "wget", "-q", "-O-", url, check=False)

    def generation():
        return metric(metrics(ip, 15020), "weft_proxy_config_generation")

    def denied_once():
        before = inbound_responses(metrics(ip, 15020), peer, "403")
        r = call()
        assert r.returncode != 0 and "403" in r.stderr, (r.stdout, r.stderr)
        assert inbound_responses(metrics(ip, 15020), peer, "403") == before + 1

    denied_once()
    gen = generation()
    n.kubectl("annotate", "namespace", NS, "weft.dev/allow-from=%s/*" % OTHER)
    try:
        n.wait_for(lambda: generation() > gen, 30, "alpha's proxy to take the new policy", interval=0.2)
        before = inbound_responses(metrics(ip, 15020), peer, "200")
        r = call()
        assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)
        assert inbound_responses(metrics(ip, 15020), peer, "200") == before + 1
        gen = generation()
    finally:
        n.kubectl("annotate", "namespace", NS, "weft.dev/allow-from-", check=False)
    n.wait_for(lambda: generation() > gen, 30, "alpha's proxy to take the policy back", interval=0.2)
    denied_once()
    now = alpha(n)
    assert now["metadata"]["uid"] == a["metadata"]["uid"]
    statuses = now["status"].get("initContainerStatuses", []) + now["status"]["containerStatuses"]
    assert all(c["restartCount"] == 0 for c in statuses), statuses


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
