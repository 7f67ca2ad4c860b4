# SPDX-License-Identifier: Apache-2.0
"""weft-proxy's protocol detection end to end: pods as network namespaces
(netns.py) with the real weft-init rules, weft-proxy as uid 15100, the test
app (proxy_app.py) and a server-speaks-first server (a greeting, then echo)
outside the mesh on the node's address or inside a pod. Each outcome
(http1, h2, opaque, timeout) and each skip is asserted with its exact count.
Needs root; everything is removed by the fixtures, also on failure."""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import netns
import proxyenv as pe

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not os.access(pe.INIT, os.X_OK), reason="weft-init not built"),
]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GREETING = b"220 weft-test ready\r\n"
# Server-speaks-first, run inside a pod: the greeting at accept, then echo.
GREETER = """
import socket, sys, threading
srv = socket.create_server(("0.0.0.0", int(sys.argv[1])), backlog=64)
print("ready", flush=True)
def serve(c):
    with c:
        c.sendall(%r)
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""" % GREETING


class Greeter:
    """A server-speaks-first server on the node's outside address (not in
    the mesh networks), on the given ports; stops when the test ends."""

    def __init__(self, net, ports):
        self.socks = []
        with netns.inside(net.node.netns):
            for p in ports:
                self.socks.append(socket.create_server((netns.EXTERNAL4, p)))
        self.stop = False
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    def _serve(self, srv):
        srv.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    @staticmethod
    def _conn(c):
        with c:
            c.settimeout(10)
            try:
                c.sendall(GREETING)
                while True:
                    d = c.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
            except OSError:
                return

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join(5)
        for s in self.socks:
            s.close()


@pytest.fixture
def env():
    with tempfile.TemporaryDirectory(prefix="weft-detect-test-") as d, netns.Network() as net:
        yield net, pe.CA(d), d


def detections(pod, direction):
    return {r: pod.metric(rf'protocol_detections_total\{{direction="{direction}",result="{r}"\}}')
            for r in ("http1", "h2", "opaque", "timeout")}


def skipped(pod, direction, reason):
    return pod.metric(rf'protocol_detection_skipped_total\{{direction="{direction}",reason="{reason}"\}}')


def greeted(pod, host, port, timeout=10):
    """Connects from the pod's app, waits for the server's greeting, checks
    the echo after it; returns the seconds from before the connect until the
    greeting came. Counting from before the connect is what makes a lower
    bound hold: the proxy's detection deadline starts at its accept, which
    follows the handshake but may precede this process's return from the
    pod's namespace (8 ms on a loaded machine, seen as 0.692 s for 0.7)."""
    t0 = time.monotonic()
    s = pod.connect(host, port, timeout=timeout)
    try:
        got = b""
        while len(got) < len(GREETING):
            d = s.recv(100)
            assert d, f"closed after {got!r}"
            got += d
        waited = time.monotonic() - t0
        assert got == GREETING
        s.sendall(b"after the greeting\n")
        assert s.recv(100) == b"after the greeting\n"
        return waited
    finally:
        s.close()


def test_outcomes_from_the_first_bytes_counted_exactly(env):
    net, ca, d = env
    b = pe.MeshPod(net, "back", ca, "shop", "back")
    # A long timeout: every outcome below must come from the bytes, not from it.
    a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_DETECT_TIMEOUT_MS": "5000"})
    t0 = time.monotonic()
    resp = pe.request(a.pod, b.ip4, 8080, b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200")
    # h2c is terminated by the client proxy (proxy/http_h2_server.c): it
    # answers the preface with its own SETTINGS, and with no request on the
    # connection nothing goes to the server proxy.
    h2 = pe.request(a.pod, b.ip4, 7000, H2_PREFACE + b"\0\0\0\4\0\0\0\0\0")
    assert h2[3:5] == b"\x04\x00", h2[:16]  # a SETTINGS frame, not an ACK
    assert pe.request(a.pod, b.ip4, 7000, b"WHO\n") == b"back 127.0.0.6\n"
    tls_like = b"\x16\x03\x01\x00\x05hello"
    assert pe.request(a.pod, b.ip4, 7000, tls_like) == tls_like
    # A client that sends a token and closes: decided at its FIN, not at the timeout.
    assert pe.request(a.pod, b.ip4, 7000, b"token") == b"token"
    assert time.monotonic() - t0 < 4, "an outcome waited for the detection timeout"
    assert detections(a, "outbound") == {"http1": 1, "h2": 1, "opaque": 3, "timeout": 0}
    assert a.metric(r"protocol_detect_seconds_count") == 5
    assert skipped(a, "outbound", "opaque_port") == 0
    # The server proxy does not detect again over weft/1 (opaque by contract).
    assert detections(b, "inbound") == {"http1": 0, "h2": 0, "opaque": 0, "timeout": 0}
    # The three opaque ones; the HTTP/1.1 request went as a weft/h2 stream,
    # and the h2c connection above had no request.
    assert skipped(b, "inbound", "mesh") == 3
    # IPv6 goes the same way.
    resp = pe.request(a.pod, b.ip6, 8080, b"GET /y HTTP/1.0\r\n\r\n", family=socket.AF_INET6)
    assert resp.startswith(b"HTTP/1.1 200")
    assert detections(a, "outbound")["http1"] == 2


def test_request_line_at_the_limit_and_one_past(env):
    net, ca, d = env
    b = pe.MeshPod(net, "back", ca, "shop", "back")
    a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_DETECT_TIMEOUT_MS": "5000"})

    def line(n):  # "GET /aaa... HTTP/1.1\r\n" of n bytes
        return b"GET /" + b"a" * (n - 5 - 11) + b" HTTP/1.1\r\n"

    for n, outcome in ((8192, "http1"), (8193, "opaque")):
        before = detections(a, "outbound")
        resp = pe.request(a.pod, b.ip4, 8080, line(n) + b"Host: b\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 200"), resp[:80]  # relayed either way
        after = detections(a, "outbound")
        assert {k: after[k] - before[k] for k in after} == {k: int(k == outcome) for k in after}, n


def test_server_speaks_first_on_an_undeclared_port_works_after_the_timeout(env):
    net, ca, d = env
    a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_DETECT_TIMEOUT_MS": "1000"})
    g = Greeter(net, [2525, 3306])
    try:
        waited = greeted(a, netns.EXTERNAL4, 2525)
        assert 1.0 <= waited < 1.0 + 2 * pe.SLOW, waited
        assert detections(a, "outbound") == {"http1": 0, "h2": 0, "opaque": 0, "timeout": 1}
        assert a.metric(r"protocol_detect_seconds_count") == 0  # timeouts are not decisions
        # 3306 (MySQL) is one of the default opaque ports: no wait at all.
        waited = greeted(a, netns.EXTERNAL4, 3306)
        assert waited < 0.5 * pe.SLOW, waited
        assert skipped(a, "outbound", "opaque_port") == 1
        assert detections(a, "outbound")["timeout"] == 1
    finally:
        g.close()


def test_configured_opaque_ports_replace_the_default_list(env):
    net, ca, d = env
    a = pe.MeshPod(net, "front", ca, "shop", "front",
                   env={"WEFT_DETECT_TIMEOUT_MS": "600", "WEFT_OPAQUE_PORTS": "2525, 2526"})
    g = Greeter(net, [2525, 2526, 3306])
    try:
        assert greeted(a, netns.EXTERNAL4, 2525) < 0.4 * pe.SLOW
        assert greeted(a, netns.EXTERNAL4, 2526) < 0.4 * pe.SLOW
        assert skipped(a, "outbound", "opaque_port") == 2
        assert greeted(a, netns.EXTERNAL4, 3306) >= 0.6  # no longer in the list
        assert detections(a, "outbound")["timeout"] == 1
    finally:
        g.close()


def test_server_first_across_the_mesh_waits_once(env):
    net, ca, d = env
    b = pe.MeshPod(net, "back", ca, "shop", "back", env={"WEFT_DETECT_TIMEOUT_MS": "1000"})
    a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_DETECT_TIMEOUT_MS": "1000"})
    srv = b.pod.popen([sys.executable, "-c", GREETER, "2600"], env={"PATH": "/usr/bin:/bin"},
                      stderr=subprocess.DEVNULL)
    assert srv.stdout.readline().strip() == b"ready"
    waited = greeted(a, b.ip4, 2600)
    # The client proxy's timeout, not the server proxy's on top of it.
    assert 1.0 <= waited < 1.9, waited
    assert detections(a, "outbound")["timeout"] == 1
    assert skipped(b, "inbound", "mesh") == 1
    assert b.metric(r'tls_handshakes_total\{side="server",result="success"') == 1


def test_permissive_plaintext_inbound_is_detected_within_one_deadline(env):
    net, ca, d = env
    c = pe.MeshPod(net, "legacy", ca, "shop", "legacy",
                   env={"WEFT_MTLS_MODE": "PERMISSIVE", "WEFT_DETECT_TIMEOUT_MS": "1000"})
    resp = pe.request(net.node, c.ip4, 8080, b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200")
    assert pe.request(net.node, c.ip4, 7000, b"WHO\n") == b"legacy 127.0.0.6\n"
    assert detections(c, "inbound") == {"http1": 1, "h2": 0, "opaque": 1, "timeout": 0}
    # A silent caller: the TLS-or-plaintext wait and the protocol wait share
    # one deadline from accept.
    before = c.app_conns()
    with netns.inside(net.node.netns):
        s = socket.create_connection((c.ip4, 8080), timeout=10)
    t0 = time.monotonic()
    try:
        assert pe.wait_for(lambda: c.app_conns() == before + 1, 5 * pe.SLOW), "never dialled the app"
        waited = time.monotonic() - t0
        assert 0.9 <= waited < 1.9, waited
        assert detections(c, "inbound") == {"http1": 1, "h2": 0, "opaque": 1, "timeout": 1}
        s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        s.close()


def test_bad_opaque_ports_are_named(env):
    net, ca, d = env
    pod = net.add_pod("cfg")
    base = {"WEFT_POD_NAMESPACE": "shop", "WEFT_CERT": "/x", "WEFT_KEY": "/y"}
    for bad in ("3306,x", "0", "65536", "1,", ",".join(["1"] * 65)):
        r = pod.run([pe.PROXY], check=False, env={**base, "WEFT_OPAQUE_PORTS": bad})
        assert r.returncode == 2, bad
        assert f'WEFT_OPAQUE_PORTS="{bad[:40]}' in r.stderr and "comma list of ports" in r.stderr, r.stderr
    r = pod.run([pe.PROXY, "--help"])
    assert "WEFT_OPAQUE_PORTS" in r.stdout and "25,587,3306,4444,5432,6379,9300,11211" in r.stdout


def test_sighup_swaps_the_configuration_for_new_connections(env):
    """A reload (SIGHUP) swaps a whole new snapshot in: new connections see
    it, an open one keeps working on the one it pinned; a reload that does
    not load, or that changes a setting read only at start, is refused and
    the current snapshot stays."""
    net, ca, d = env
    conf = os.path.join(ca.dir, "proxy.yaml")

    def write(text):
        with open(conf, "w") as f:
            f.write(text)
        os.chmod(conf, 0o644)

    def reload(expect):
        mark = len(a.log())
        os.kill(a.pid(), 1)
        assert pe.wait_for(lambda: expect in a.log()[mark:], 5 * pe.SLOW), a.log()[mark:]
        return a.log()[mark:]

    write('WEFT_OPAQUE_PORTS: "2525"\nWEFT_DETECT_TIMEOUT_MS: "700"\n')
    a = pe.MeshPod(net, "front", ca, "shop", "front", proxy_args=["--config", conf])
    g = Greeter(net, [2525])
    try:
        assert a.metric(r"^weft_proxy_config_generation ") == 1
        assert greeted(a, netns.EXTERNAL4, 2525) < 0.4 * pe.SLOW  # opaque by the file
        held = a.connect(netns.EXTERNAL4, 2525)
        assert held.recv(100) == GREETING
        write('WEFT_OPAQUE_PORTS: ""\nWEFT_DETECT_TIMEOUT_MS: "700"\n')
        assert "generation=2" in reload('msg="configuration reloaded"')
        assert a.metric(r"^weft_proxy_config_generation ") == 2
        assert greeted(a, netns.EXTERNAL4, 2525) >= 0.7  # detected now, so it waits
        held.sendall(b"still here\n")  # the open connection is untouched
        assert held.recv(100) == b"still here\n"
        held.close()
        # Refused: a value that does not parse, and a setting read only at start.
        write('WEFT_OPAQUE_PORTS: "x"\n')
        assert "WEFT_OPAQUE_PORTS=?x?: must be a comma list of ports" in reload('msg="configuration not reloaded"')
        write('WEFT_OPAQUE_PORTS: ""\nWEFT_DETECT_TIMEOUT_MS: "700"\nWEFT_INBOUND_PORT: "15999"\n')
        assert "WEFT_INBOUND_PORT: read only at start" in reload('msg="configuration not reloaded"')
        assert a.metric(r"^weft_proxy_config_generation ") == 2
        assert greeted(a, netns.EXTERNAL4, 2525) >= 0.7  # generation 2 still in force
        assert skipped(a, "outbound", "opaque_port") == 2
        assert detections(a, "outbound")["timeout"] == 2
    finally:
        g.close()
