# SPDX-License-Identifier: Apache-2.0
"""weft-proxy's per-request RED metrics (proxy/http_metrics.c) read by the
real Prometheus of Debian's `prometheus` package: `promtool check metrics`
over a live proxy's /metrics and over a store filled with every kind of
outcome (http_metrics_driver.c), and a real `prometheus` (own configuration
and data directory, loopback of the node namespace, 1 s scrapes) scraping a
meshed pod's admin port, where PromQL returns the request count, success
rate and p99 of a known load sent through the proxy to a plain HTTP/1.1
upstream outside the mesh (90 fast requests, 10 that the upstream holds for
300 ms, 5 answered 503); and between two meshed pods, where HTTP/1.1
travels as weft/h2 streams, the server proxy's inbound series counted by
status and caller. Needs root; everything is removed by the fixtures, also
on failure."""
import http.server
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import kubefake
import netns
import promenv
import proxyenv as pe

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not promenv.available(), reason="prometheus/promtool missing: make deps installs Debian's prometheus"),
]

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM_PORT = 8090
FAST, SLOW, FAIL = 90, 10, 5
SLOW_S = 0.3  # well clear of the fast ones' bucket, on a loaded machine too


class Upstream:
    """A plain HTTP/1.1 server (Python's http.server) on the node's outside
    address: / answers 200 at once, /slow after 300 ms, /fail 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/slow":
                time.sleep(SLOW_S)
            code = 503 if self.path == "/fail" else 200
            body = b"ok\n" if code == 200 else b"unavailable\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    def __init__(self, net):
        with netns.inside(net.node.netns):
            self.srv = http.server.ThreadingHTTPServer((netns.EXTERNAL4, UPSTREAM_PORT), self.Handler)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(5)


@pytest.fixture
def env():
    with tempfile.TemporaryDirectory(prefix="weft-red-test-") as d, netns.Network() as net:
        up = Upstream(net)
        try:
            yield net, pe.CA(d), d
        finally:
            up.close()


def get(pod, path, timeout=10):
    """One HTTP/1.1 request from the pod's app to the upstream (captured by
    the pod's rules, so it goes through weft-proxy); the status code."""
    s = pod.connect(netns.EXTERNAL4, UPSTREAM_PORT, timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n".encode())
        resp = pe.recv_all(s)
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    assert m, f"GET {path}: no HTTP/1.1 answer: {resp[:200]!r}"
    return int(m.group(1))


def series_of(text):
    """name{labels} of every sample line; duplicates would make the
    exposition invalid (promtool 2.42 does not catch them)."""
    return [line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]


def check_exposition(text):
    ok, said = promenv.check_metrics(text)
    assert ok, f"promtool check metrics: {said}\n{text[:3000]}"
    names = series_of(text)
    dups = {n for n in names if names.count(n) > 1}
    assert not dups, f"duplicate series: {sorted(dups)[:5]}"


def test_every_kind_of_outcome_passes_promtool(tmp_path):
    drv = kubefake.build_c(os.path.join(HERE, "http_metrics_driver.c"), str(tmp_path / "http_metrics_driver"),
                           part="proxy")
    text = subprocess.run([drv], check=True, capture_output=True, text=True, timeout=30).stdout
    check_exposition(text)
    # The driver's store: what the unit tests assert line by line, here
    # only that every family and the overflow sets are there to be checked.
    for family in ("requests_total", "responses_total", "response_headers_seconds_bucket",
                   "request_duration_seconds_bucket", "label_sets"):
        assert f"weft_proxy_http_{family}{{" in text, family
    assert 'peer="overflow"' in text and 'dst="overflow"' in text
    assert 'dst="we\\"ird\\\\host:80"' in text


def test_live_proxy_passes_promtool_and_is_scraped_by_prometheus(env):
    net, ca, d = env
    a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_HTTP_METRICS_BUDGET": "64"})
    assert get(a, "/") == 200  # recorded or not, the exposition stays valid
    check_exposition(a.metrics())
    assert a.metric(r'^weft_proxy_http_label_sets\{kind="budget"\}') == 64
    with promenv.Prometheus(net.node, [f"{a.ip4}:{pe.ADMIN}"], d) as prom:
        prom.wait_scraped()
        assert prom.value('weft_proxy_ready{job="weft-proxy"}') == 1
        assert prom.value('weft_proxy_http_label_sets{kind="budget"}') == 64
        # The connection families came through the same scrape.
        assert prom.value('sum(weft_proxy_connections_opened_total{direction="outbound"})') >= 1


def test_request_count_success_rate_and_p99_through_prometheus(env):
    net, ca, d = env
    a = pe.MeshPod(net, "front", ca, "shop", "front")
    total = FAST + SLOW + FAIL
    out = r'^weft_proxy_http_requests_total\{direction="outbound"'
    assert get(a, "/") == 200
    # A request is recorded when its exchange is done, which may come a moment
    # after the client has read the answer.
    assert a.settled_metric(out, 1, timeout=5) == 1, a.metrics()
    q_total = 'sum(weft_proxy_http_requests_total{direction="outbound"})'
    with promenv.Prometheus(net.node, [f"{a.ip4}:{pe.ADMIN}"], d) as prom:
        prom.wait_scraped()
        assert prom.wait_value(q_total, 1) == 1  # Prometheus has the counter before the load
        sent = {200: 1, 503: 0}
        t0 = time.monotonic()
        for i in range(1, total):  # bounded: 104 more requests, a few seconds
            path = "/slow" if i % 10 == 9 else "/fail" if i >= FAST + SLOW else "/"
            code = get(a, path)
            assert code == (503 if path == "/fail" else 200), (path, code)
            sent[code] += 1
            assert time.monotonic() - t0 < 30 * pe.SLOW, "the load took too long"
        assert sent == {200: FAST + SLOW, 503: FAIL}
        seen = a.settled_metric(out, total, timeout=5)
        assert seen == total, f"requests_total shows {seen}, {total} were sent:\n{a.metrics()}"
        text = a.metrics()
        check_exposition(text)  # now with labelled histograms of real requests
        ok = 'direction="outbound",.*status="200",grpc_status="",classification="success",origin="upstream"'
        assert a.metric(rf'^weft_proxy_http_responses_total\{{{ok}') == FAST + SLOW
        assert a.metric(r'^weft_proxy_http_responses_total\{direction="outbound",.*status="503",'
                        r'grpc_status="",classification="failure",origin="upstream"') == FAIL
        # Where the 200s fell: the fast ones at or under 250 ms, the slow ones
        # in (0.25, 0.5]. That is what makes the p99 below exact.
        dur = rf'^weft_proxy_http_request_duration_seconds_bucket\{{{ok},le="%s"\}}'
        assert a.metric(dur % "0.25") == FAST, text
        assert a.metric(dur % "0.5") == FAST + SLOW, text

        assert prom.wait_value(q_total, total) == total
        q_ok = 'sum(weft_proxy_http_responses_total{direction="outbound",classification="success"})'
        assert prom.value(q_ok + " / " + q_total) == pytest.approx((FAST + SLOW) / total, abs=1e-12)
        # p99 of the 100 successful requests: rank 99 lies in the (0.25, 0.5]
        # bucket holding ranks 91-100, so Prometheus interpolates
        # 0.25 + 0.25 * (99 - 90) / 10 = 0.475.
        succ = '{direction="outbound",classification="success"}'
        p99 = prom.value(f"histogram_quantile(0.99, sum by (le) (weft_proxy_http_request_duration_seconds_bucket{succ}))")
        assert p99 == pytest.approx(0.475, abs=1e-9)
        p50 = prom.value(f"histogram_quantile(0.5, sum by (le) (weft_proxy_http_request_duration_seconds_bucket{succ}))")
        assert 0 < p50 <= 0.25
        # Prometheus saw the counter at 1 and then at 105 within the window:
        # the rate is that rise over the scrapes between (extrapolated by
        # rate(), so only its sign and bound are exact).
        rate = prom.value(f"sum(rate(weft_proxy_http_requests_total{{direction=\"outbound\"}}[1m]))")
        assert rate is not None and 0 < rate <= (total - 1) / 1.0, rate


def test_server_proxy_counts_meshed_http1_requests_inbound_through_prometheus(env):
    """Between two meshed pods (front calls back's app on 8080), HTTP/1.1
    travels as streams of the pooled weft/h2 connection: the SERVER proxy
    terminates it and its inbound series count exactly what was sent, by
    status and the caller's identity, scraped by Prometheus."""
    net, ca, d = env
    back = pe.MeshPod(net, "back", ca, "shop", "back")
    front = pe.MeshPod(net, "front", ca, "shop", "front")
    ok_n, fail_n = 40, 6
    sent = {200: 0, 500: 0}
    t0 = time.monotonic()
    for i in range(ok_n + fail_n):  # bounded: 46 requests, a new connection each
        path = "/fail" if i < fail_n else "/"
        s = front.connect(back.ip4, 8080, timeout=10)
        try:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: back\r\nConnection: close\r\n\r\n".encode())
            resp = pe.recv_all(s)
        finally:
            s.close()
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
        assert m, resp[:200]
        sent[int(m.group(1))] += 1
        assert time.monotonic() - t0 < 30 * pe.SLOW, "the load took too long"
    assert sent == {200: ok_n, 500: fail_n}
    total = ok_n + fail_n
    inbound = r'^weft_proxy_http_requests_total\{direction="inbound",peer="spiffe://cluster.local/ns/shop/sa/front"'
    assert back.settled_metric(inbound, total) == total, back.metrics()
    assert back.metric(r'^weft_proxy_http_responses_total\{direction="inbound",.*status="200",.*'
                       r'classification="success"') == ok_n
    assert back.metric(r'^weft_proxy_http_responses_total\{direction="inbound",.*status="500",.*'
                       r'classification="failure"') == fail_n
    assert front.settled_metric(r'^weft_proxy_http_requests_total\{direction="outbound"', total) == total
    assert front.metric(r'tls_handshakes_total\{side="client",result="success"') == 1  # one pooled connection
    check_exposition(back.metrics())
    with promenv.Prometheus(net.node, [f"{back.ip4}:{pe.ADMIN}"], d) as prom:
        prom.wait_scraped()
        q = 'sum(weft_proxy_http_requests_total{direction="inbound"})'
        assert prom.wait_value(q, total) == total
        q_fail = 'sum(weft_proxy_http_responses_total{direction="inbound",classification="failure"})'
        assert prom.value(q_fail) == fail_n
