# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 through a pair of weft-proxies end to end: pods as network
namespaces (netns.py) with the real weft-init rules, weft-proxy as uid 15100
on both sides, real mTLS between them. The client pod's app is a real client
(curl --http2-prior-knowledge, nghttp, h2load, grpcio); the server pod runs
an h2c app on proxy/http_h2.c (h2_app.c, built here) and the gRPC health
server (grpc_health_app.py, grpcio). Between the proxies the requests are
streams of one pooled weft/h2 connection: counted on both proxies' /metrics
(weft_proxy_tls_handshakes_total). Needs root; the fixtures remove
everything, also on failure."""
import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import kubefake
import netns
import proxyenv as pe

HERE = os.path.dirname(os.path.abspath(__file__))
H2_PORT = 9090
GRPC_PORT = 50051

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not os.access(pe.INIT, os.X_OK), reason="weft-init not built"),
]

HS_CLIENT = r'tls_handshakes_total\{side="client",result="success"'
HS_SERVER = r'tls_handshakes_total\{side="server",result="success"'


@pytest.fixture(scope="module")
def h2_app(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("h2app") / "h2_app")
    kubefake.build_c(os.path.join(HERE, "h2_app.c"), out, part="proxy")
    os.chmod(os.path.dirname(out), 0o755)
    return out


class Pair:
    def __init__(self, net, d, h2_app, back_env=None, front_env=None):
        self.net, self.d = net, d
        self.ca = pe.CA(d)
        self.back = pe.MeshPod(net, "back", self.ca, "shop", "back", env=back_env)
        self.applog = os.path.join(d, "h2app.log")
        open(self.applog, "w").close()
        app = self.back.pod.popen([h2_app, "back", str(H2_PORT), self.applog], stderr=subprocess.DEVNULL)
        assert app.stdout.readline().strip() == b"ready"
        grpc = self.back.pod.popen([sys.executable, os.path.join(HERE, "grpc_health_app.py"), str(GRPC_PORT)],
                                   stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert grpc.stdout.readline().strip() == b"ready"
        self.front = pe.MeshPod(net, "front", self.ca, "shop", "front", env=front_env)
        self.url = f"http://{self.back.ip4}:{H2_PORT}"

    def curl(self, path, *args, check=True, timeout=20):
        return self.front.pod.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", *args,
                                   self.url + path], check=check, timeout=timeout)

    def app_conns(self):
        with open(self.applog) as f:
            return sum(1 for _ in f)


@pytest.fixture
def pair(h2_app):
    with tempfile.TemporaryDirectory(prefix="weft-h2-test-") as d, netns.Network() as net:
        yield Pair(net, d, h2_app)


def test_h2c_through_the_pair_with_trailers(pair):
    r = pair.curl("/hello")
    # The app saw the request over HTTP/2 without the proxies' own header.
    assert r.stdout == "h2 back path=/hello weft-proto=-\n"
    assert pair.front.metric(r'protocol_detections_total\{direction="outbound",result="h2"\}') == 1
    v = pair.front.pod.run(["nghttp", "-v", pair.url + "/trailers"], timeout=20).stdout
    assert "with trailers" in v
    assert re.search(r"recv \(stream_id=\d+\) x-checksum: abc", v), v  # the trailer reached the client
    assert re.search(r"recv HEADERS frame <length=\d+, flags=0x05", v), v  # ... as trailers: END_STREAM|END_HEADERS
    # Two client connections, one proxy-to-proxy connection and handshake.
    assert pair.front.metric(HS_CLIENT) == 1
    assert pair.back.metric(HS_SERVER) == 1
    # The inbound proxy did not treat it as opaque weft/1.
    assert pair.back.metric(r'protocol_detection_skipped_total\{direction="inbound",reason="mesh"\}') == 0
    # A status and a body through both proxies.
    r = pair.curl("/status/404", "-o", "/dev/null", "-w", "%{http_code} %{http_version}")
    assert r.stdout == "404 2"


def test_rst_stream_propagated(pair):
    v = pair.front.pod.run(["nghttp", "-v", pair.url + "/rst"], check=False, timeout=20).stdout
    # The app answered 200 and "partial", then reset: the client gets all three.
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", v), v
    assert "partial" in v, v
    assert re.search(r"recv RST_STREAM frame <length=4, flags=0x00, stream_id=\d+>\s*\(error_code=INTERNAL_ERROR",
                     v), v
    r = pair.curl("/rst", check=False)
    assert r.returncode == 92, (r.returncode, r.stderr)  # CURLE_HTTP2_STREAM: the stream was reset
    # The connection lives on: the next request on the pool works.
    assert pair.curl("/after").stdout == "h2 back path=/after weft-proto=-\n"
    assert pair.front.metric(HS_CLIENT) == 1


def test_new_connection_per_request_costs_one_proxy_handshake(pair):
    n = 50
    script = "for i in $(seq %d); do curl -sS --http2-prior-knowledge --max-time 10 %s/n$i || exit 1; done" % (
        n, pair.url)
    t0 = time.monotonic()
    out = pair.front.pod.run(["sh", "-c", script], timeout=120).stdout
    took = time.monotonic() - t0
    assert out.count("h2 back path=/n") == n
    assert pair.front.metric(r'protocol_detections_total\{direction="outbound",result="h2"\}') == n
    assert pair.front.metric(HS_CLIENT) == 1, "one weft/h2 handshake for 50 client connections"
    assert pair.back.metric(HS_SERVER) == 1
    assert pair.app_conns() == 1, "the server proxy keeps one h2c connection to the app"
    print(f"{n} sequential client connections in {took:.2f} s, 1 proxy-to-proxy handshake")
    # Many streams at once (h2load: 4 connections x 10 streams): still one.
    h = pair.front.pod.run(["h2load", "-n", "400", "-c", "4", "-m", "10", pair.url + "/load"], timeout=60).stdout
    assert "400 succeeded" in h, h
    assert pair.front.metric(HS_CLIENT) == 1
    assert pair.back.metric(HS_SERVER) == 1


def test_goaway_drain_with_a_stream_in_flight(pair):
    slow = pair.front.pod.popen(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "20",
                                 pair.url + "/slow/1500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)  # the request is at the app
    t0 = time.monotonic()
    # The server proxy drains: GOAWAY to the client proxy, the stream finishes.
    log = pair.back.stop_proxy(sig=signal.SIGTERM)
    out, err = slow.communicate(timeout=20)
    assert slow.returncode == 0, err
    assert out == b"slow done\n"
    assert time.monotonic() - t0 >= 0.5  # it waited for the stream
    assert "drain deadline reached" not in log
    # The client proxy stopped using the drained connection: a new request
    # needs a new one, and the server proxy is gone.
    r = pair.curl("/after", "-o", "/dev/null", "-w", "%{http_code}", check=False)
    assert r.stdout == "502", (r.stdout, r.stderr)
    assert pair.front.metric(r'http_upstream_errors_total\{direction="outbound",cause="refused"\}') == 1


GRPC_CLIENT = """
import sys, grpc
ch = grpc.insecure_channel(sys.argv[1])
call = ch.unary_unary("/grpc.health.v1.Health/Check")
out = []
for svc in ("app", "nosuch"):
    try:
        r = call(b"\\x0a" + bytes([len(svc)]) + svc.encode(), timeout=10)
        out.append("OK %s" % r.hex())
    except grpc.RpcError as e:
        out.append("ERR %s" % e.code().name)
print(" ".join(out))
"""


def test_grpc_unary_ok_and_error_status(pair):
    r = pair.front.pod.run([sys.executable, "-c", GRPC_CLIENT, f"{pair.back.ip4}:{GRPC_PORT}"], timeout=30)
    assert r.stdout.strip() == "OK 0801 ERR NOT_FOUND"  # SERVING (1); an unknown service: NOT_FOUND (5)
    for p, d in ((pair.front, "outbound"), (pair.back, "inbound")):
        m = p.metrics()
        ok = re.search(r'weft_proxy_http_responses_total\{direction="%s"[^}]*status="200",grpc_status="0"[^}]*\} 1'
                       % d, m)
        bad = re.search(r'weft_proxy_http_responses_total\{direction="%s"[^}]*status="200",grpc_status="5"[^}]*\} 1'
                        % d, m)
        assert ok and bad, m
    assert pair.front.metric(HS_CLIENT) == 1


def test_denied_caller_gets_403_per_request(pair):
    # same-namespace policy: a caller from another namespace is authorized
    # per connection, as over weft/1, but an HTTP caller gets an answer.
    other = pe.MeshPod(pair.net, "other", pair.ca, "ops", "monitor")
    before = pair.app_conns()
    r = other.pod.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", "-w", " %{http_code}",
                       pair.url + "/secret"], timeout=20)
    assert r.stdout == ("weft-proxy: denied: caller spiffe://cluster.local/ns/ops/sa/monitor not allowed: "
                        "cross-namespace\n 403"), r.stdout
    assert pair.app_conns() == before
    assert pair.back.metric(r'connections_opened_total\{direction="inbound",tls="true",authz="denied"') == 1


@pytest.fixture(scope="module")
def weft_h2_client(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("h2client") / "weft_h2_client")
    kubefake.build_c(os.path.join(HERE, "weft_h2_client.c"), out, part="proxy")
    return out


def test_server_proxy_hands_the_app_the_version_the_caller_spoke(pair, weft_h2_client):
    """A client proxy's side of weft/h2 (weft_h2_client.c, with a workload
    certificate): weft-proto h1 reaches the HTTP/1.1 app (proxy_app.py on
    8080) over the server proxy's HTTP/1.1 client side, h2 the h2c app;
    without it the request is refused."""
    cert, key = pair.ca.issue("shop", "front")

    def call(port, path, proto):
        return pair.net.node.run([weft_h2_client, pair.back.ip4, str(port), pair.ca.crt, cert, key, path, proto],
                                 timeout=20).stdout

    assert call(8080, "/h1-app", "h1") == "200 hello from back peer=127.0.0.6\n"  # from the passthrough source
    assert call(H2_PORT, "/h2-app", "h2") == "200 h2 back path=/h2-app weft-proto=-\n"
    assert call(8080, "/none", "-").startswith("400 weft-proxy: weft-proto missing")
    assert pair.back.metric(HS_SERVER) == 3


def test_access_log_turns_bytes_that_are_not_utf8_into_u_fffd(h2_app, weft_h2_client):
    """nghttp2 lets bytes past 0x7f through in :path: the server proxy's
    access log line stays one valid JSON object, those bytes U+FFFD, and
    valid UTF-8 (an e-acute) kept."""
    with tempfile.TemporaryDirectory(prefix="weft-h2-test-") as d, netns.Network() as net:
        p = Pair(net, d, h2_app, back_env={"WEFT_ACCESS_LOG": "1"})
        cert, key = p.ca.issue("shop", "front")
        raw = b'/a\xff\xfe\\"\xc3\xa9\xc0\xaf?token=sekrit'
        # The app echoes the path's bytes: base64 keeps them from the text decoding of the output.
        r = net.node.run(["sh", "-c", '"$0" "$@" | base64 -w0', weft_h2_client, p.back.ip4, str(H2_PORT), p.ca.crt,
                          cert, key, os.fsdecode(raw), "h2"], timeout=20)
        assert base64.b64decode(r.stdout) == b"200 h2 back path=" + raw + b" weft-proto=-\n"
        assert pe.wait_for(lambda: len(p.back.access_log()) == 1, 5)
        (e,) = p.back.access_log()
        assert e["path"] == '/a\ufffd\ufffd\\"\u00e9\ufffd\ufffd' and e["direction"] == "inbound"
        assert e["peer"] == "spiffe://cluster.local/ns/shop/sa/front" and e["status"] == 200
        line = next(line for line in p.back.log().splitlines() if line.startswith("{"))
        assert line.isascii() and "sekrit" not in p.back.log()


def test_a_full_pooled_connection_makes_the_pool_dial_another(pair):
    # 2 client connections x 100 streams held 500 ms by the app: 200 at once
    # against the server proxy's 100 concurrent streams per connection.
    h = pair.front.pod.run(["h2load", "-n", "200", "-c", "2", "-m", "100", pair.url + "/slow/500"],
                           timeout=60).stdout
    assert "200 succeeded" in h, h
    assert pair.front.metric(HS_CLIENT) == 2
    assert pair.back.metric(HS_SERVER) == 2
    # The server proxy's h2c connections to the app spill the same way.
    assert pair.app_conns() == 2
