# SPDX-License-Identifier: Apache-2.0
"""weft-proxy with a real weft-discovery (directory source) in network
namespaces: outbound to a Service reaches its endpoints round robin, a
meshed endpoint that presents another SPIFFE ID than discovery expects is
refused, a non-meshed endpoint and an unknown destination (both inside
WEFT_MESH_NETWORKS, where the proxy would otherwise insist on mTLS) are
reached in plain TCP, an allow-from change reaches the next inbound
connection without a restart (and survives a SIGHUP reload), traffic goes
on with discovery killed and the stream comes back when it returns, idle subscriptions are dropped, the
server's subscription limit is kept, and a proxy started while discovery is
unreachable is ready after CPC_READY_WAIT_MS with the environment's policy.

Pods (198.18.0.0/24, in creation order): client, b1, b2 (shop/backend),
impostor (proxy of shop/impostor; discovery says shop/backend), monitor
(ops/monitor), plain and stray (no proxy; stray is in no object). weft-
discovery runs in the node namespace on 198.18.0.1. Service VIPs are in
198.19.0.0/24, where nothing answers: only a dial decided by discovery
reaches a backend."""
import datetime
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

import kubefake
import netns
import procs
from netns import Network
from proxyenv import APP, CA, SLOW, MeshPod, recv_all, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("WEFT_BIN", os.path.join(REPO, "build", "bin"))
DISCOVERY = os.path.join(BIN, "weft-discovery")
NODE = "198.18.0.1"
PORT = 18445
METRICS = 19090
NAMES = ["client", "b1", "b2", "impostor", "monitor", "plain", "stray"]
IP = {n: f"198.18.0.{i + 2}" for i, n in enumerate(NAMES)}  # netns.Network hands them out in this order
IP6 = {n: f"2001:2::{i + 2:x}" for i, n in enumerate(NAMES)}
VIP = {"backend": "198.19.0.10", "plain": "198.19.0.11", "impostor": "198.19.0.12", "empty": "198.19.0.13",
       "quick": "198.19.0.14", "header": "198.19.0.15", "lax": "198.19.0.16", "idle": "198.19.0.17",
       "steady": "198.19.0.18", "steady2": "198.19.0.19",
       "banner": "198.19.0.20", "banner-typed": "198.19.0.21", "banner-undeclared": "198.19.0.22",
       "typed": "198.19.0.23", "typed-h2c": "198.19.0.24", "banner-gone": "198.19.0.25",
       "idle-h2c": "198.19.0.26"}
BANNER = 2525  # a server-speaks-first app on the plain pod (test_declared_ports_skip_detection)
H2C = 9090     # an h2c app (h2_app.c) on the plain pod, the same test
STATUS = {"weft.dev/status": "{}"}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(DISCOVERY, os.X_OK), reason="weft-discovery not built"),
]


def pod_obj(name, ns, sa, annotations=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"serviceAccountName": sa, "nodeName": "node-a"},
            "status": {"phase": "Running", "podIP": IP[name], "podIPs": [{"ip": IP[name]}, {"ip": IP6[name]}]}}


def service_objs(name, vip, backends, annotations=None, port=80, target=8080, app_protocol=None):
    sport = {"name": "echo", "port": port, "targetPort": target}
    if app_protocol:
        sport["appProtocol"] = app_protocol
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "shop", "annotations": annotations or {}},
           "spec": {"clusterIP": vip, "ports": [sport]}}
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name + "-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4", "ports": [{"name": "echo", "port": target, "protocol": "TCP"}],
           "endpoints": [{"addresses": [IP[b]], "conditions": {"ready": True},
                          "targetRef": {"kind": "Pod", "namespace": "shop", "name": b}} for b in backends]}
    return [svc, eps]


def objects(b1_allow=None):
    b1_ann = dict(STATUS, **({"weft.dev/allow-from": b1_allow} if b1_allow else {}))
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"weft.dev/inject": "enabled"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops", "labels": {"weft.dev/inject": "enabled"}}},
        pod_obj("client", "shop", "client", STATUS),
        pod_obj("b1", "shop", "backend", b1_ann),
        pod_obj("b2", "shop", "backend", STATUS),
        pod_obj("impostor", "shop", "backend", STATUS),  # its proxy has shop/impostor's certificate
        pod_obj("monitor", "ops", "monitor", STATUS),
        pod_obj("plain", "shop", "plain"),  # no weft.dev/status: not meshed
    ]
    items += service_objs("backend", VIP["backend"], ["b1", "b2"])
    items += service_objs("plain", VIP["plain"], ["plain"])
    items += service_objs("impostor", VIP["impostor"], ["impostor"])
    items += service_objs("empty", VIP["empty"], [])
    # Per-Service HTTP timeouts (test_service_timeouts_from_annotations).
    items += service_objs("quick", VIP["quick"], ["b1", "b2"], {"weft.dev/request-timeout": "300ms"})
    items += service_objs("header", VIP["header"], ["b1", "b2"], {"weft.dev/response-header-timeout": "200ms"})
    items += service_objs("lax", VIP["lax"], ["b1", "b2"], {"weft.dev/request-timeout": "300 ms"})  # bad: default
    items += service_objs("idle", VIP["idle"], ["b1", "b2"], {"weft.dev/idle-timeout": "300ms"})
    # Without annotations: the defaults. Each used by one test only, so that test_idle_subscriptions_are_dropped
    # sees each destination unsubscribed once.
    items += service_objs("steady", VIP["steady"], ["b1", "b2"])
    items += service_objs("steady2", VIP["steady2"], ["b1", "b2"])
    # A server-speaks-first app behind three Services: opaque by annotation, by appProtocol, and undeclared.
    items += service_objs("banner", VIP["banner"], ["plain"], {"weft.dev/opaque-ports": str(BANNER)}, BANNER, BANNER)
    items += service_objs("banner-typed", VIP["banner-typed"], ["plain"], None, BANNER, BANNER, "example.com/banner")
    items += service_objs("banner-undeclared", VIP["banner-undeclared"], ["plain"], None, BANNER, BANNER)
    items += service_objs("banner-gone", VIP["banner-gone"], ["plain"], {"weft.dev/opaque-ports": str(BANNER)}, BANNER,
                          BANNER)
    items += service_objs("typed", VIP["typed"], ["b1", "b2"], None, 80, 8080, "http")
    items += service_objs("typed-h2c", VIP["typed-h2c"], ["plain"], None, 80, H2C, "kubernetes.io/h2c")
    items += service_objs("idle-h2c", VIP["idle-h2c"], ["plain"], {"weft.dev/idle-timeout": "300ms"}, 80, H2C)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def write_objects(d, obj):
    tmp = os.path.join(d, ".cluster.json.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, os.path.join(d, "cluster.json"))


class Discovery:
    def __init__(self, net, ca, workdir, name="discovery", objs=None):
        self.net, self.ca, self.dir = net, ca, workdir
        self.objs = objs or os.path.join(workdir, "objects")
        os.makedirs(self.objs, exist_ok=True)
        self.cert, self.key = self._server_cert(name)
        self.p = None
        self.log = os.path.join(workdir, f"{name}.log")

    def _server_cert(self, name):
        """weft-discovery's serving certificate, for its IP (the proxies verify WEFT_DISCOVERY_SERVER_NAME)."""
        base = os.path.join(self.ca.dir, name)
        with open(base + ".ext", "w") as f:
            f.write(f"subjectAltName=IP:{NODE}\nextendedKeyUsage=serverAuth\n")
        for argv in (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                      base + ".key"],
                     ["openssl", "req", "-new", "-key", base + ".key", "-subj", "/CN=weft-discovery", "-out",
                      base + ".csr"],
                     ["openssl", "x509", "-req", "-in", base + ".csr", "-CA", self.ca.crt, "-CAkey", self.ca.key,
                      "-CAcreateserial", "-days", "1", "-extfile", base + ".ext", "-out", base + ".crt"]):
            subprocess.run(argv, check=True, capture_output=True)
        return base + ".crt", base + ".key"

    def start(self, port=PORT, metrics=METRICS, extra=()):
        self.port, self.metrics_port = port, metrics
        with open(self.log, "ab") as log:
            self.p = self.net.node.popen(
                [DISCOVERY, "serve", "--trust-domain", "cluster.local", "--cert", self.cert, "--key", self.key,
                 "--trust-bundle", self.ca.crt, "--config", os.path.join(REPO, "templates", "mesh.yaml"),
                 "--listen", f"{NODE}:{port}", "--metrics-listen", f"{NODE}:{metrics}", "--objects", self.objs]
                + list(extra), stdout=log, stderr=subprocess.STDOUT, weft_log=self.log)
        assert wait_for(self.ready, 20 * SLOW), open(self.log).read()[-3000:]

    def ready(self):
        assert self.p.poll() is None, open(self.log).read()[-3000:]
        try:
            with netns.inside(self.net.node.netns):
                with urllib.request.urlopen(f"http://{NODE}:{self.metrics_port}/readyz", timeout=2) as r:
                    return r.status == 200
        except OSError:
            return False

    def sample(self, series):
        with netns.inside(self.net.node.netns):
            with urllib.request.urlopen(f"http://{NODE}:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.net.node.checked(self.p)  # killed on purpose: not held to a clean exit

    def stop(self):
        procs.stop_cleanly(self.p, self.log)
        self.net.node.checked(self.p)


def plain_pod(net, name, ca):
    """A pod with the test app and no proxy (no capture rules either)."""
    pod = net.add_pod(name)
    applog = os.path.join(ca.dir, f"app-{net.id}-{name}.log")
    open(applog, "w").close()
    app = pod.popen([sys.executable, APP, name, "8080", "7000"], env={"PATH": "/usr/bin:/bin", "APP_LOG": applog},
                    stderr=subprocess.DEVNULL)
    assert app.stdout.readline().strip() == b"ready"
    pod.applog = applog
    return pod


def disc_env(extra=None):
    env = {"WEFT_DISCOVERY_ADDR": f"{NODE}:{PORT}", "WEFT_DISCOVERY_SERVER_NAME": NODE}
    env.update(extra or {})
    return env


def who(pod, host, port=80, timeout=8):
    """One WHO call from the pod's app: the answering app's name, or "" when the connection was cut."""
    with pod.pod.inside():
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout * SLOW)
        s.connect((host, port))
        s.sendall(b"WHO\n")
        return recv_all(s).decode().split(" ")[0].strip()
    except socket.timeout:
        raise AssertionError(f"no answer from {host}:{port} in {timeout * SLOW} s; the proxy logged:\n"
                             + pod.log()[-4000:]) from None
    finally:
        s.close()


def sample(pod, series):
    for line in pod.metrics().splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def mesh():
    # Under /tmp, not pytest's tmp_path: the proxies run as uid 15100 and read their certificates there.
    with tempfile.TemporaryDirectory(prefix="weft-proxy-discovery-") as work, Network(prefix="wd") as net:
        ca = CA(work)
        disc = Discovery(net, ca, work)
        write_objects(disc.objs, objects())
        disc.start()
        pods = {}
        pods["client"] = MeshPod(net, "client", ca, "shop", "client",
                                 env=disc_env({"WEFT_DISCOVERY_IDLE_SECONDS": "3", "WEFT_LOG_LEVEL": "debug",
                                               # a loaded machine or a sanitizer build may answer slower than the
                                               # 1 s default (seen: 1.4 s, once over 3 s, at a load average of 11
                                               # on 2 cores), and a VIP here black-holes the fallback
                                               "WEFT_DISCOVERY_WAIT_MS": "5000",
                                               # far above the time discovery takes to answer, so a first
                                               # connection that waits it out cannot pass for one that did not
                                               "WEFT_DETECT_TIMEOUT_MS": "5000"}))
        pods["b1"] = MeshPod(net, "b1", ca, "shop", "backend", env=disc_env())
        pods["b2"] = MeshPod(net, "b2", ca, "shop", "backend", env=disc_env())
        pods["impostor"] = MeshPod(net, "impostor", ca, "shop", "impostor", env=disc_env())
        pods["monitor"] = MeshPod(net, "monitor", ca, "ops", "monitor", env=disc_env())
        pods["plain"] = plain_pod(net, "plain", ca)
        pods["stray"] = plain_pod(net, "stray", ca)
        for n in NAMES:
            assert pods[n].ip4 == IP[n] and pods[n].ip6 == IP6[n], (n, pods[n].ip4, pods[n].ip6)
        yield {"net": net, "ca": ca, "disc": disc, "pods": pods, "work": work}


def test_policy_from_discovery_at_start(mesh):
    """Each meshed proxy subscribed to its own pod's policy and swapped it in."""
    for n in ("client", "b1", "b2", "monitor"):
        p = mesh["pods"][n]
        assert wait_for(lambda: sample(p, "weft_proxy_discovery_connected") == 1, 5 * SLOW), p.log()
        assert wait_for(lambda: sample(p, "weft_proxy_discovery_acks_total") >= 1, 5 * SLOW), p.log()


def test_service_round_robin(mesh):
    """Ten calls to the Service's VIP: five answered by each backend, over mTLS."""
    client = mesh["pods"]["client"]
    t0 = time.monotonic()
    first = who(client, VIP["backend"])
    first_s = time.monotonic() - t0
    got, later = [first], []
    for _ in range(9):
        t1 = time.monotonic()
        got.append(who(client, VIP["backend"]))
        later.append(time.monotonic() - t1)
    assert sorted(got) == ["b1"] * 5 + ["b2"] * 5, (got, client.log())
    assert got[0] != got[1]  # alternating, not random
    assert sample(client, 'weft_proxy_discovery_routes_total{route="mtls"}') >= 10
    # The first call's answer came in time: subscribed at accept, it may even be in before the bytes are, and
    # then the dial does not wait at all (weft_proxy_discovery_waits_total stays 0).
    assert sample(client, 'weft_proxy_discovery_routes_total{route="fallback"}') == 0
    assert sample(client, 'weft_proxy_discovery_waits_total{result="fallback"}') == 0
    assert sample(client, 'weft_proxy_tls_handshakes_total{side="client",result="success",reason=""}') >= 10
    later.sort()
    print(f"first call through discovery (subscribe, answer, dial, mTLS): {first_s * 1000:.1f} ms; "
          f"later calls median {later[4] * 1000:.1f} ms, slowest {later[-1] * 1000:.1f} ms")


def http_keepalive(pod, host, paths, port=80, timeout=8):
    """GETs on ONE keep-alive HTTP/1.1 connection from the pod's app: [(status, body)]."""
    with pod.pod.inside():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    try:
        s.settimeout(timeout * SLOW)
        s.connect((host, port))
        c.sock = s
        out = []
        for path in paths:
            c.request("GET", path, headers={"Host": "backend.shop"})
            r = c.getresponse()
            out.append((r.status, r.read().decode()))
        return out
    except socket.timeout:
        raise AssertionError(f"no answer from {host}:{port} in {timeout * SLOW} s; the proxy logged:\n"
                             + pod.log()[-4000:]) from None
    finally:
        c.close()


H2_OK = 'weft_proxy_tls_handshakes_total{side="client",result="success",reason=""}'
RED_IN = r'^weft_proxy_http_requests_total\{direction="inbound",peer="spiffe://cluster.local/ns/shop/sa/client"'


def test_http_keepalive_requests_spread_over_endpoints(mesh):
    """With discovery, HTTP/1.1 is terminated: 8 requests on one keep-alive connection to the Service's VIP are
    routed one by one, round robin over b1 and b2, each as a stream of one pooled weft/h2 connection per endpoint
    (2 client handshakes for 8 requests), and each server proxy counts its 4 in its inbound RED series."""
    pods = mesh["pods"]
    client, b1, b2 = pods["client"], pods["b1"], pods["b2"]
    hs = sample(client, H2_OK)
    routes = sample(client, 'weft_proxy_discovery_routes_total{route="mtls"}')
    red = {n: pods[n].metric(RED_IN) for n in ("b1", "b2")}
    got = http_keepalive(client, VIP["backend"], [f"/r{i}" for i in range(8)])
    names = [body.split()[2] for _, body in got]
    assert [st for st, _ in got] == [200] * 8, (got, client.log()[-4000:])
    assert sorted(names) == ["b1"] * 4 + ["b2"] * 4, (names, client.log()[-4000:])
    assert all(names[i] != names[i + 1] for i in range(7)), names  # per request, alternating
    assert sample(client, 'weft_proxy_discovery_routes_total{route="mtls"}') == routes + 8
    assert sample(client, H2_OK) == hs + 2, client.log()[-4000:]  # one pooled weft/h2 connection per endpoint
    for n, pod in (("b1", b1), ("b2", b2)):
        assert pod.settled_metric(RED_IN, red[n] + 4) == red[n] + 4, pod.metrics()


def test_http_to_non_meshed_endpoint_is_plain(mesh):
    """plain is not meshed (discovery says so) though inside WEFT_MESH_NETWORKS: HTTP to its Service is terminated
    and sent on as plain HTTP/1.1, per request."""
    client, plain = mesh["pods"]["client"], mesh["pods"]["plain"]
    before = sample(client, 'weft_proxy_discovery_routes_total{route="plain"}')
    got = http_keepalive(client, VIP["plain"], ["/a", "/b"])
    assert [(st, body.split()[2]) for st, body in got] == [(200, "plain")] * 2, (got, client.log()[-4000:])
    assert sample(client, 'weft_proxy_discovery_routes_total{route="plain"}') == before + 2
    assert f"peer={IP['client']}\n" in got[0][1]  # from the client pod itself, no proxy in between at plain


def test_http_to_service_without_endpoints_is_answered_503(mesh):
    """A Service with no endpoint: each HTTP request is answered 503 by the client's proxy, the connection kept."""
    client = mesh["pods"]["client"]
    before = sample(client, 'weft_proxy_discovery_routes_total{route="no_endpoint"}')
    try:
        got = http_keepalive(client, VIP["empty"], ["/a", "/b"])
    except http.client.HTTPException as e:
        raise AssertionError(f"{e!r}; the proxy logged:\n" + client.log()[-3000:]) from None
    assert [st for st, _ in got] == [503, 503], (got, client.log()[-3000:])
    assert all("no_upstream: no ready endpoint" in body for _, body in got), got
    assert sample(client, 'weft_proxy_discovery_routes_total{route="no_endpoint"}') == before + 2


def test_meshed_endpoint_with_wrong_identity_is_refused(mesh):
    client, impostor = mesh["pods"]["client"], mesh["pods"]["impostor"]
    before = sample(client, 'weft_proxy_tls_handshakes_total{side="client",result="failure",reason="unexpected_identity"}')
    assert who(client, VIP["impostor"]) == ""
    assert wait_for(lambda: sample(
        client, 'weft_proxy_tls_handshakes_total{side="client",result="failure",reason="unexpected_identity"}')
        == before + 1, 5)
    assert impostor.app_conns() == 0  # refused before any byte reached its app


def test_non_meshed_endpoint_is_plain_tcp(mesh):
    """plain (198.18.0.7) is inside WEFT_MESH_NETWORKS; discovery says it is not meshed."""
    client = mesh["pods"]["client"]
    before = sample(client, 'weft_proxy_discovery_routes_total{route="plain"}')
    assert who(client, VIP["plain"]) == "plain"
    assert sample(client, 'weft_proxy_discovery_routes_total{route="plain"}') == before + 1


def test_unknown_destination_is_plain_tcp(mesh):
    """stray is in no object: discovery answers unknown, the proxy dials it in plain TCP."""
    client = mesh["pods"]["client"]
    assert who(client, IP["stray"], 7000) == "stray"
    assert "spiffe" not in open(mesh["pods"]["stray"].applog).read()


def test_meshed_pod_over_ipv6(mesh):
    """b2's own IPv6 address: discovery answers kind pod (destination:[2001:2::4]:8080), the proxy dials it over
    mTLS requiring shop/backend."""
    client = mesh["pods"]["client"]
    before = sample(client, 'weft_proxy_discovery_routes_total{route="mtls"}')
    assert who(client, IP6["b2"], 8080) == "b2"
    assert sample(client, 'weft_proxy_discovery_routes_total{route="mtls"}') == before + 1
    assert "destination:[2001:2::4]:8080" in client.log()  # the canonical id, logged at debug on subscribe


def test_allow_from_change_applies_without_restart(mesh):
    monitor, b1 = mesh["pods"]["monitor"], mesh["pods"]["b1"]
    pid, gen = b1.pid(), sample(b1, "weft_proxy_config_generation")
    denied = 'weft_proxy_connections_opened_total{direction="inbound",tls="true",authz="denied",' \
             'peer="spiffe://cluster.local/ns/ops/sa/monitor"}'
    assert who(monitor, IP["b1"], 8080) == ""  # same-namespace: ops/monitor denied
    assert wait_for(lambda: sample(b1, denied) == 1, 5)
    write_objects(mesh["disc"].objs, objects(b1_allow="ops/monitor"))
    assert wait_for(lambda: sample(b1, "weft_proxy_config_generation") == gen + 1, 10 * SLOW), b1.log()
    assert who(monitor, IP["b1"], 8080) == "b1"
    assert b1.pid() == pid and b1.proxy.poll() is None
    # SIGHUP re-reads the environment (no allow-from) but keeps discovery's policy over it.
    b1.proxy.send_signal(signal.SIGHUP)
    assert wait_for(lambda: sample(b1, "weft_proxy_config_generation") == gen + 2, 5 * SLOW), b1.log()
    assert who(monitor, IP["b1"], 8080) == "b1"
    write_objects(mesh["disc"].objs, objects())  # and back
    assert wait_for(lambda: sample(b1, "weft_proxy_config_generation") == gen + 3, 10 * SLOW), b1.log()
    assert who(monitor, IP["b1"], 8080) == ""


def timed_get(pod, vip, path):
    t0 = time.monotonic()
    (got,) = http_keepalive(pod, vip, [path])
    return got, time.monotonic() - t0


def disc_metric(disc, name):
    with netns.inside(disc.net.node.netns):
        with urllib.request.urlopen(f"http://{NODE}:{disc.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in discovery's /metrics")


def test_service_timeouts_from_annotations(mesh):
    """weft.dev/request-timeout: 300ms on Service quick: a request its app answers after 1 s is answered 504 by
    the client's proxy at 0.3 s and counted; the same request to Service steady (no annotation: the proxy's
    defaults, no request timeout) is answered 200. weft.dev/response-header-timeout: 200ms on Service header:
    504 response_header_timeout. Service lax's "300 ms" does not parse: discovery names it in the answer,
    counts it, and the default applies (200)."""
    client, disc = mesh["pods"]["client"], mesh["disc"]
    req_to = r'http_upstream_errors_total\{direction="outbound",cause="request_timeout"\}'
    hdr_to = r'http_upstream_errors_total\{direction="outbound",cause="response_header_timeout"\}'
    before_req, before_hdr = client.metric(req_to), client.metric(hdr_to)
    (st, body), took = timed_get(client, VIP["quick"], "/sleep/1000")
    assert (st, body) == (504, "weft-proxy: request_timeout\n"), (st, body, client.log()[-3000:])
    assert 0.29 < took < 0.9, took
    assert client.metric(req_to) == before_req + 1
    (st, body), took = timed_get(client, VIP["steady"], "/sleep/1000")
    assert st == 200 and body.startswith("hello from b"), (st, body)
    assert took >= 1.0, took
    (st, body), took = timed_get(client, VIP["header"], "/sleep/1000")
    assert (st, body) == (504, "weft-proxy: response_header_timeout\n"), (st, body)
    assert 0.19 < took < 0.9, took
    assert client.metric(hdr_to) == before_hdr + 1
    # A fast answer within the short timeout is untouched.
    (st, body), _ = timed_get(client, VIP["quick"], "/sleep/50")
    assert st == 200, (st, body)
    (st, body), took = timed_get(client, VIP["lax"], "/sleep/500")
    assert st == 200 and took >= 0.5, (st, body, took)
    assert client.metric(req_to) == before_req + 1
    assert disc_metric(disc, "weft_discovery_annotations_ignored_total") >= 1
    assert 'weft.dev/request-timeout ?300 ms?: expected a duration' in open(disc.log).read()  # log_clean'd


def idle_close_after(pod, vip):
    """One request on a keep-alive connection, then the seconds until the proxy closes it (None: open after 1.5 s)."""
    with pod.pod.inside():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5 * SLOW)
        s.connect((vip, 80))
        s.sendall(b"GET /x HTTP/1.1\r\nHost: idle.shop\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
        t0 = time.monotonic()
        s.settimeout(1.5)
        try:
            assert s.recv(4096) == b""
        except socket.timeout:
            return None
        return time.monotonic() - t0
    finally:
        s.close()


def test_service_idle_timeout_from_annotation(mesh):
    """weft.dev/idle-timeout: 300ms on Service idle: the caller's keep-alive connection is closed 0.3 s after its
    request to it; after a request to Service steady2 it stays open (WEFT_HTTP_IDLE_TIMEOUT_MS, 75 s)."""
    client = mesh["pods"]["client"]
    took = idle_close_after(client, VIP["idle"])
    assert took is not None and 0.25 < took < 1.0, took
    assert idle_close_after(client, VIP["steady2"]) is None


def test_idle_subscriptions_are_dropped(mesh):
    """The client's WEFT_DISCOVERY_IDLE_SECONDS is 3: unused destinations are unsubscribed, and used again later
    they are subscribed again."""
    client = mesh["pods"]["client"]
    # backend, plain, empty, quick, header, lax, steady, idle, steady2, impostor, stray and b2 over IPv6 were used
    # by the tests before
    assert wait_for(lambda: sample(client, "weft_proxy_discovery_subscriptions") == 1, 10)  # the own policy stays
    assert sample(client, "weft_proxy_discovery_unsubscribes_total") == 12, "\n".join(l.split("msg=")[1] for l in client.log().splitlines() if "discovery subscription" in l)
    assert who(client, VIP["backend"]) in ("b1", "b2")
    assert sample(client, "weft_proxy_discovery_subscriptions") == 2


BANNER_APP = """
import socket, sys
srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    c.sendall(b"220 weft banner\\r\\n")
    c.close()
"""


def banner_time(pod, vip, timeout=5):
    """Connect to vip:BANNER from the pod's app and read the server's banner: (banner, seconds from connect)."""
    with pod.pod.inside():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout * SLOW)
        s.connect((vip, BANNER))
        t0 = time.monotonic()
        got = recv_all(s)
        return got, time.monotonic() - t0
    finally:
        s.close()


def test_declared_ports_skip_detection(mesh):
    """A server-speaks-first app (it sends a banner, the client nothing): behind a Service port discovery marks
    opaque (weft.dev/opaque-ports), or with an appProtocol that is not HTTP, the client's proxy relays at once,
    counted as skipped (reason discovery_opaque, app_protocol), so the banner comes well under the detect timeout
    (5 s here), also on the first connection: it detects while the proxy subscribes, and the answer, once in,
    ends the wait (also when it comes late: discovery stopped meanwhile). The same port undeclared waits
    WEFT_DETECT_TIMEOUT_MS every time. appProtocol http is HTTP/1 without detection. A first connection reset while
    it waits for the answer is closed, and the answer coming after it does not touch it (a sanitizer build would
    catch a use after free)."""
    client, plain = mesh["pods"]["client"], mesh["pods"]["plain"]
    app = plain.popen([sys.executable, "-c", BANNER_APP, str(BANNER)], stderr=subprocess.DEVNULL)
    assert app.stdout.readline().strip() == b"ready"
    skipped = 'weft_proxy_protocol_detection_skipped_total{direction="outbound",reason="%s"}'
    timeouts = 'weft_proxy_protocol_detections_total{direction="outbound",result="timeout"}'
    detected = 'weft_proxy_protocol_detections_total{direction="outbound",result="%s"}'
    d_before = {r: sample(client, detected % r) for r in ("http1", "h2", "opaque")}
    t_before, g_before = sample(client, timeouts), sample(client, skipped % "discovery_opaque")
    # discovery stopped, so its answer comes only once both connections to banner-gone wait: one reset by its
    # caller (closed in detection, nothing counted, never touched again), one that gets the banner as soon as
    # discovery answers.
    disc = mesh["disc"].p
    disc.send_signal(signal.SIGSTOP)
    try:
        with client.pod.inside():
            gone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            waits = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.connect((VIP["banner-gone"], BANNER))
        gone.close()
        closed = f"dst={VIP['banner-gone']}:{BANNER} reason=recv"
        assert wait_for(lambda: closed in client.log(), 5 * SLOW), client.log()[-3000:]
        waits.connect((VIP["banner-gone"], BANNER))
        time.sleep(0.3)  # accepted, detecting, no answer
        waits.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing relayed before the answer
            waits.recv(1, socket.MSG_PEEK)
        waits.settimeout(10 * SLOW)
    finally:
        disc.send_signal(signal.SIGCONT)
    t0 = time.monotonic()
    try:
        got, t = recv_all(waits), time.monotonic() - t0
    finally:
        waits.close()
    print(f"banner {t * 1000:.1f} ms after discovery went on")
    assert got == b"220 weft banner\r\n" and t < 2.0, (got, t, client.log()[-3000:])
    assert sample(client, skipped % "discovery_opaque") == g_before + 1
    before = {r: sample(client, skipped % r) for r in ("discovery_opaque", "app_protocol")}
    for vip, reason in ((VIP["banner"], "discovery_opaque"), (VIP["banner-typed"], "app_protocol")):
        took = []
        for _ in range(6):  # the first with no answer held yet
            got, t = banner_time(client, vip, timeout=10)  # past the detect timeout: a slow first one fails below
            assert got == b"220 weft banner\r\n", (got, client.log()[-3000:])
            took.append(t)
        print(f"{reason}: banner after {', '.join(f'{t * 1000:.1f}' for t in took)} ms (the first brought the answer)")
        assert took[0] < 2.0, (took, client.log()[-3000:])
        assert max(took[1:]) < 0.5, took
        assert sample(client, skipped % reason) == before[reason] + 6
    assert sample(client, timeouts) == t_before
    assert {r: sample(client, detected % r) for r in d_before} == d_before
    got, t = banner_time(client, VIP["banner-undeclared"], timeout=10)
    assert got == b"220 weft banner\r\n" and t >= 4.9, (got, t)
    assert sample(client, timeouts) == t_before + 1
    # appProtocol http: HTTP/1 from the start, terminated and counted as a request.
    http1 = 'weft_proxy_protocol_detections_total{direction="outbound",result="http1"}'
    assert http_keepalive(client, VIP["typed"], ["/warm"])[0][0] == 200  # detected: no answer held yet
    h1_before, ap_before = sample(client, http1), sample(client, skipped % "app_protocol")
    got = http_keepalive(client, VIP["typed"], ["/a", "/b"])
    assert [st for st, _ in got] == [200, 200], got
    assert sample(client, http1) == h1_before
    assert sample(client, skipped % "app_protocol") == ap_before + 1
    assert client.metric(r'http_requests_total\{direction="outbound",dst="198\.19\.0\.23:80"') == 3
    # appProtocol kubernetes.io/h2c: HTTP/2 from the start (curl with prior knowledge), h2c to the plain endpoint.
    h2c_app(mesh)
    det_h2 = 'weft_proxy_protocol_detections_total{direction="outbound",result="h2"}'

    def h2c(path):
        return client.pod.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10",
                               f"http://{VIP['typed-h2c']}{path}"], check=False, timeout=20)

    assert h2c("/warm").stdout == "h2 plain path=/warm weft-proto=-\n"  # detected: no answer held yet
    h2_before, ap_before = sample(client, det_h2), sample(client, skipped % "app_protocol")
    r = h2c("/over-h2")
    assert r.stdout == "h2 plain path=/over-h2 weft-proto=-\n", (r.stdout, r.stderr, client.log()[-3000:])
    assert sample(client, det_h2) == h2_before
    assert sample(client, skipped % "app_protocol") == ap_before + 1


def h2c_app(mesh):
    """The h2c app (h2_app.c) on the plain pod at H2C, started once."""
    if "h2app" not in mesh:
        h2app = os.path.join(mesh["work"], "h2_app")
        kubefake.build_c(os.path.join(os.path.dirname(os.path.abspath(__file__)), "h2_app.c"), h2app, part="proxy")
        h2log = os.path.join(mesh["work"], "h2app.log")
        open(h2log, "w").close()
        mesh["h2app"] = mesh["pods"]["plain"].popen([h2app, "plain", str(H2C), h2log], stderr=subprocess.DEVNULL)
        assert mesh["h2app"].stdout.readline().strip() == b"ready"


def h2load_script(pod, work, vip, offsets_ms):
    """h2load as one h2c caller (one connection, prior knowledge) sending a GET at each offset from its start:
    its output, and (start, end, status) of each request answered (epoch seconds, from its --log-file)."""
    script, log = os.path.join(work, "h2load.script"), os.path.join(work, "h2load.log")
    with open(script, "w") as f:
        f.writelines(f"{ms:.1f}\thttp://{vip}/r{i}\n" for i, ms in enumerate(offsets_ms))
    open(log, "w").close()
    r = pod.pod.run(["h2load", "-c", "1", "-m", "1", "-n", str(len(offsets_ms)), f"--timing-script-file={script}",
                     f"--log-file={log}"], check=False, timeout=30 * SLOW)
    rows = []
    with open(log) as f:
        for line in f:
            start_us, status, took_us = line.split("\t")[:3]
            rows.append((int(start_us) / 1e6, (int(start_us) + int(took_us)) / 1e6, int(status)))
    return r.stdout + r.stderr, rows


def log_time(line):
    """The epoch seconds of a proxy log line's ts= (milliseconds, UTC)."""
    ts = line.split("ts=", 1)[1].split(" ", 1)[0]
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def test_service_idle_timeout_applies_to_h2c_callers(mesh):
    """weft.dev/idle-timeout: 300ms on Service idle-h2c (an h2c app behind it): an h2c caller (h2load, prior
    knowledge, one connection) quiet for 150 ms after a request sends its next one on the same connection; quiet
    past 300 ms, the client's proxy sends it GOAWAY 300 ms after the answer (its clock; the test allows
    0.29-0.6 s), counted in weft_proxy_timeouts_total as an HTTP/1.1 idle close is, and the request due at 1 s
    is never sent. To Service typed-h2c (no annotation: WEFT_HTTP_IDLE_TIMEOUT_MS, 75 s) quiet 1 s is fine."""
    client = mesh["pods"]["client"]
    h2c_app(mesh)
    to = 'weft_proxy_timeouts_total{direction="outbound"}'
    dst = f"dst={VIP['idle-h2c']}:80"
    before = sample(client, to)
    out, rows = h2load_script(client, mesh["work"], VIP["idle-h2c"], [0, 150])
    assert "2 succeeded, 0 failed" in out and [st for _, _, st in rows] == [200, 200], (out, client.log()[-3000:])
    assert sample(client, to) == before
    out, rows = h2load_script(client, mesh["work"], VIP["idle-h2c"], [0, 1000])
    assert "1 succeeded, 1 failed" in out and [st for _, _, st in rows] == [200], (out, client.log()[-3000:])
    assert wait_for(lambda: sample(client, to) == before + 1, 5 * SLOW), client.log()[-3000:]
    drained = [l for l in client.log().splitlines() if "http2 idle, draining" in l and dst in l]
    assert len(drained) == 1 and "idle_ms=300" in drained[0], drained
    quiet = log_time(drained[0]) - rows[0][1]
    print(f"h2c caller connection drained {quiet * 1000:.0f} ms after its answer (Service idle timeout 300 ms)")
    assert 0.29 <= quiet < 0.6, (quiet, drained, rows)
    out, rows = h2load_script(client, mesh["work"], VIP["typed-h2c"], [0, 1000])
    assert "2 succeeded, 0 failed" in out, (out, client.log()[-3000:])
    assert sample(client, to) == before + 1


def test_discovery_down_keeps_last_answers_then_reconnects(mesh):
    client, disc = mesh["pods"]["client"], mesh["disc"]
    assert who(client, VIP["backend"]) in ("b1", "b2")  # held before the outage
    connects = sample(client, "weft_proxy_discovery_connects_total")
    disc.kill()
    assert wait_for(lambda: sample(client, "weft_proxy_discovery_connected") == 0, 5), client.log()
    got = [who(client, VIP["backend"]) for _ in range(4)]
    assert sorted(got) == ["b1", "b1", "b2", "b2"], (got, client.log())
    time.sleep(4)  # longer than the idle timeout: nothing is dropped while the stream is down
    assert who(client, VIP["backend"]) in ("b1", "b2")
    assert "discovery stream lost; serving on the last answers" in client.log()
    t0 = time.monotonic()
    disc.start()
    assert wait_for(lambda: sample(client, "weft_proxy_discovery_connects_total") == connects + 1, 40), client.log()
    print(f"reconnected {time.monotonic() - t0:.1f} s after discovery was ready again")
    assert sample(client, "weft_proxy_discovery_connected") == 1
    assert sorted(who(client, VIP["backend"]) for _ in range(2)) == ["b1", "b2"]


def test_started_while_discovery_unreachable(mesh):
    """Nothing listens on the address: /ready answers 503 for CPC_READY_WAIT_MS (5 s), then 200 with the
    environment's policy; a destination in WEFT_MESH_NETWORKS falls back to mTLS by network."""
    net, ca = mesh["net"], mesh["ca"]
    late = MeshPod(net, "late", ca, "shop", "client", env=disc_env({"WEFT_DISCOVERY_ADDR": f"{NODE}:{PORT + 1}"}),
                   ready=False)
    t0 = time.monotonic()

    def ready():
        try:
            return late.admin("/ready")
        except OSError:
            return (0, "")
    assert wait_for(lambda: ready()[0] == 503, 5), late.log()
    status, text = ready()
    assert "waiting for the inbound policy from discovery" in text
    assert wait_for(lambda: ready()[0] == 200, 10 * SLOW), late.log()
    waited = time.monotonic() - t0
    assert 4.0 <= waited <= 7 * SLOW, waited
    print(f"/ready 503 for {waited:.1f} s while discovery was unreachable")
    assert sample(late, "weft_proxy_discovery_connected") == 0
    assert sample(late, "weft_proxy_discovery_connect_failures_total") >= 2
    assert who(late, IP["b2"], 8080) == "b2"  # the fallback: in the mesh networks, mTLS
    assert sample(late, 'weft_proxy_discovery_routes_total{route="fallback"}') == 1


def test_subscription_limit(mesh):
    """A second weft-discovery allowing 2 subscriptions a stream: the policy and one destination are subscribed, the
    next destination is not (counted), and goes by WEFT_MESH_NETWORKS; the first is still answered."""
    net, ca, work = mesh["net"], mesh["ca"], mesh["work"]
    small = Discovery(net, ca, work, name="discovery-small", objs=mesh["disc"].objs)
    small.start(port=PORT + 2, metrics=METRICS + 2, extra=["--max-subscriptions", "2"])
    try:
        pod = MeshPod(net, "limited", ca, "shop", "client", env=disc_env({"WEFT_DISCOVERY_ADDR": f"{NODE}:{PORT + 2}"}))
        assert wait_for(lambda: sample(pod, "weft_proxy_discovery_connected") == 1, 5 * SLOW), pod.log()
        assert who(pod, VIP["backend"]) in ("b1", "b2")  # subscription 2 of 2
        assert who(pod, IP["b2"], 8080) == "b2"  # one past: not subscribed; in the mesh networks, mTLS by network
        assert sample(pod, "weft_proxy_discovery_over_limit_total") == 1
        assert sample(pod, 'weft_proxy_discovery_routes_total{route="fallback"}') == 1
        assert sample(pod, "weft_proxy_discovery_refusals_total") == 0  # the client kept within the server's limit
        assert "discovery subscription limit reached" in pod.log()
        assert who(pod, VIP["backend"]) in ("b1", "b2")
        pod.stop_proxy()
    finally:
        small.stop()


def test_server_certificate_must_name_the_server(mesh):
    """The real discovery's certificate names only its IP: a proxy told to expect the Service's DNS name refuses
    the stream and stays on the fallback."""
    net, ca = mesh["net"], mesh["ca"]
    pod = MeshPod(net, "picky", ca, "shop", "client",
                  env=disc_env({"WEFT_DISCOVERY_SERVER_NAME": "weft-discovery.weft-system.svc"}), ready=False)
    assert wait_for(lambda: "server certificate" in pod.log(), 10 * SLOW), pod.log()
    pod.wait_ready(timeout=10)  # after CPC_READY_WAIT_MS, on the environment's policy
    assert sample(pod, "weft_proxy_discovery_connected") == 0
    assert sample(pod, "weft_proxy_discovery_connect_failures_total") >= 1
    assert sample(pod, "weft_proxy_discovery_connects_total") == 0
    pod.stop_proxy()


def test_renewed_certificate_reopens_the_stream(mesh):
    """discovery checks a proxy's certificate at the handshake: when the workload certificate is renewed the
    client reopens its stream with the new one (counted as a rotation, not a loss) and goes on."""
    client, ca = mesh["pods"]["client"], mesh["ca"]
    connects = sample(client, "weft_proxy_discovery_connects_total")
    lost = sample(client, "weft_proxy_discovery_disconnects_total")
    crt, key = ca.issue("shop", "client")
    for src, dst in ((key, client.key), (crt, client.cert)):  # the proxy re-reads changed files every second
        tmp = dst + ".new"
        with open(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    assert wait_for(lambda: sample(client, "weft_proxy_discovery_rotations_total") == 1, 10 * SLOW), client.log()
    assert wait_for(lambda: sample(client, "weft_proxy_discovery_connects_total") == connects + 1, 10 * SLOW)
    assert sample(client, "weft_proxy_discovery_disconnects_total") == lost
    assert "discovery stream reconnecting with the renewed certificate" in client.log()
    assert who(client, VIP["backend"]) in ("b1", "b2")


def acks(pod):
    return sample(pod, "weft_proxy_discovery_acks_total")


def test_http_request_in_flight_survives_its_endpoint_leaving(mesh):
    """A request is under way on a pooled weft/h2 stream when discovery pushes that the Service has no endpoint
    any more (the pod was deleted): the request still gets its whole answer; the next one is answered 503."""
    client = mesh["pods"]["client"]
    got = {}

    def call():
        try:
            got["r"] = http_keepalive(client, VIP["backend"], ["/sleep/2500"])
        except Exception as e:  # reported by the assertion below
            got["e"] = e

    before = acks(client)
    t = threading.Thread(target=call)
    t.start()
    try:
        time.sleep(0.8)
        gone = objects()
        for o in gone["items"]:
            if o["kind"] == "EndpointSlice" and o["metadata"]["name"] == "backend-1":
                o["endpoints"] = []
        write_objects(mesh["disc"].objs, gone)
        assert wait_for(lambda: acks(client) > before, 5 * SLOW), client.log()[-3000:]
        t.join(15 * SLOW)
        assert "r" in got and got["r"][0][0] == 200, (got, client.log()[-4000:])
        assert got["r"][0][1].startswith("hello from b"), got
        assert http_keepalive(client, VIP["backend"], ["/a"])[0][0] == 503
    finally:
        t.join(15 * SLOW)
        before = acks(client)
        write_objects(mesh["disc"].objs, objects())
        assert wait_for(lambda: acks(client) > before, 5 * SLOW)


def with_extra_endpoints(n):
    """objects() with n more ready endpoints of backend (no pod, not meshed; addresses nothing answers), in
    EndpointSlices of at most 1,000 as the API server keeps them."""
    objs = objects()
    addrs = [f"198.18.{16 + i // 250}.{1 + i % 250}" for i in range(n)]
    for k in range(0, n, 1000):
        objs["items"].append(
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"backend-x{k // 1000}", "namespace": "shop",
                          "labels": {"kubernetes.io/service-name": "backend"}},
             "addressType": "IPv4", "ports": [{"name": "echo", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addrs[k:k + 1000]]})
    return objs


def test_answer_past_the_endpoint_limit_is_nacked_and_the_last_good_one_kept(mesh):
    """A proxy holds at most 4,096 endpoints of a Service port. discovery pushes backend with 4,097 (b1, b2 and
    4,095 more): the client nacks that version naming the limit, both sides count it, and the client goes on
    routing over the last good answer (b1 and b2 only). At the limit, 4,096, the answer is acknowledged."""
    client, disc = mesh["pods"]["client"], mesh["disc"]
    assert who(client, VIP["backend"]) in ("b1", "b2")  # subscribed, with a good answer
    nacks, d_nacks, ok = (sample(client, "weft_proxy_discovery_nacks_total"),
                          disc.sample("weft_discovery_nacks_total"), acks(client))
    try:
        write_objects(disc.objs, with_extra_endpoints(4095))
        assert wait_for(lambda: sample(client, "weft_proxy_discovery_nacks_total") == nacks + 1, 10 * SLOW), \
            client.log()[-3000:]
        assert wait_for(lambda: disc.sample("weft_discovery_nacks_total") == d_nacks + 1, 5 * SLOW)
        assert acks(client) == ok
        assert "service.endpoints: 4097 endpoints, at most 4096" in client.log()
        assert sorted(who(client, VIP["backend"]) for _ in range(4)) == ["b1", "b1", "b2", "b2"]
        write_objects(disc.objs, with_extra_endpoints(4094))
        assert wait_for(lambda: acks(client) == ok + 1, 10 * SLOW), client.log()[-3000:]
        assert sample(client, "weft_proxy_discovery_nacks_total") == nacks + 1
    finally:
        before = acks(client)
        write_objects(disc.objs, objects())
        assert wait_for(lambda: acks(client) > before, 10 * SLOW)
