# SPDX-License-Identifier: Apache-2.0
"""weftctl stat --prometheus against the real Prometheus of Debian's
`prometheus` package: two meshed pods (network namespaces, weft-init rules,
weft-proxy, tests/integration/proxy_app.py), a Prometheus in the node
namespace scraping both proxies every second with the namespace and pod
labels Kubernetes pod discovery would give them, and the pods listed by the
fake API server (kubefake.py, HTTPS, a bearer token in a kubeconfig).
front-0 (over mTLS) or the node (plaintext, web-0 PERMISSIVE) sends web-0
45 GETs answered 200 and 5 answered 500 by the app.

weftctl's row for web-0 must say what Prometheus itself answers for the same
window at the same instant (--at): the success rate, request rate, the
mTLS share of the requests and p50/p95/p99, to the printed digit. And the
success rate is what the caller saw: the share of answers below 500. Until the proxies carry
HTTP between them and record it (proxy/http_*), web-0's proxy records no
inbound request, and that part is skipped with the reason. Needs root;
everything is removed by the fixtures, also on failure."""
import math
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

WEFTCTL = os.path.join(pe.WEFT_BIN, "weftctl")
WINDOW = 30

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not os.access(WEFTCTL, os.X_OK), reason="weftctl not built"),
    pytest.mark.skipif(not promenv.available(), reason="prometheus/promtool missing: make deps installs Debian's prometheus"),
]


def fmt_latency(s):
    """cli/stat.c's fmt_latency."""
    if s is None or math.isnan(s):
        return "-"
    if s < 0.01:
        return "%.2fms" % (s * 1000)
    if s < 1:
        return "%.0fms" % (s * 1000)
    return "%.2fs" % s


def get(caller, host, path):
    """One HTTP/1.1 request from a pod's app (through its proxy) or from the
    node (a caller outside the mesh); the status."""
    if isinstance(caller, pe.MeshPod):
        s = caller.connect(host, 8080, timeout=10)
    else:
        with caller.inside():
            s = socket.create_connection((host, 8080), timeout=10)
    resp = b""
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n".encode())
        # The app keeps the connection open: the answer ends with its
        # Content-Length, not at EOF.
        while True:
            head, sep, body = resp.partition(b"\r\n\r\n")
            n = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if sep and n and len(body) >= int(n.group(1)):
                break
            d = s.recv(65536)
            if not d:
                break
            resp += d
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    assert m, f"GET {path}: no HTTP/1.1 answer: {resp[:200]!r}"
    return int(m.group(1))


def pod_object(name, ns):
    return {"metadata": {"name": name, "namespace": ns, "annotations": {"weft.dev/status": "{}"}},
            "spec": {"containers": [{"name": "app"}]}, "status": {"phase": "Running"}}


@pytest.fixture
def env():
    with tempfile.TemporaryDirectory(prefix="weft-stat-test-") as d, netns.Network() as net:
        os.chmod(d, 0o755)
        ca, crt, key = kubefake.make_tls(d)
        with netns.inside(net.node.netns):  # weftctl runs in the node namespace, next to the Prometheus
            fake = kubefake.KubeFake(crt, key, host="127.0.0.1")
        fake.client_tokens = {"stat-token"}
        fake.start()
        kubeconfig = os.path.join(d, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "https://127.0.0.1:{fake.port}", certificate-authority: "{ca}"}}
users:
- name: jane
  user: {{token: stat-token}}
contexts:
- name: fake
  context: {{cluster: fake, user: jane, namespace: shop}}
current-context: fake
""")
        try:
            yield net, pe.CA(d), d, fake, kubeconfig
        finally:
            fake.stop()


def weftctl_row(net, kubeconfig, name, *extra):
    r = net.node.run([WEFTCTL, "stat", "pod", "-A", "--kubeconfig", kubeconfig, *extra], check=False, timeout=60)
    lines = r.stdout.splitlines()
    head = lines[0].split() if lines else []
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip() and not line.startswith(" ")}
    assert name in rows, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r, dict(zip(head, rows[name]))


def check_against_prometheus(prom, row, at):
    """weftctl's request figures are what Prometheus answers at the same
    instant over the same window, to the printed digit."""
    w = f"[{WINDOW}s]"
    sel = '{pod="web-0",direction="inbound"}'
    total = prom.value(f"sum(increase(weft_proxy_http_requests_total{sel}{w}))", at)
    ok = prom.value(f'sum(increase(weft_proxy_http_responses_total{{pod="web-0",direction="inbound",'
                    f'classification="success"}}{w}))', at)
    mtls = prom.value(f'sum(increase(weft_proxy_http_requests_total{{pod="web-0",direction="inbound",'
                      f'peer!="",peer!="overflow"}}{w}))', at) or 0
    assert row["SUCCESS"] == "%.2f%%" % (100 * min(ok / total, 1)), (row, ok, total)
    assert row["REQ-MTLS"] == "%.0f%%" % (100 * mtls / total), (row, mtls, total)
    assert row["RPS"] == "%.1f" % (total / WINDOW), (row, total)
    for q, col in ((0.5, "P50"), (0.95, "P95"), (0.99, "P99")):
        v = prom.value(f"histogram_quantile({q}, sum by (le) (increase("
                       f"weft_proxy_http_request_duration_seconds_bucket{sel}{w})))", at)
        assert row[col] == fmt_latency(v), (col, row, v)
    # And what the caller saw: 45 of the 50 below 500. increase()
    # extrapolates every counter of web-0 alike (the same scrapes), except
    # that it stops a counter at its zero point when that is closer than
    # 1.1 scrape intervals before the first sample; after the warm-up every
    # counter's first value is far from zero, so the share is exact.
    assert row["SUCCESS"] == "90.00%", row


def load_and_stat(net, web, caller, pods, d, kubeconfig, body):
    """Warms up (every label set exists before Prometheus starts, so all of
    web-0's series share their scrapes: the same extrapolation in
    increase()), starts the Prometheus scraping pods, sends 50 requests from
    caller to web-0 (45 answered 200, 5 answered 500), runs weftctl stat
    --prometheus --at and hands body(prom, row, recorded, seen, at) the row
    of web-0."""
    # Twenty of each: every counter starts far from zero (see
    # check_against_prometheus).
    warm = [get(caller, web.ip4, "/" if i % 2 else "/fail") for i in range(40)]
    targets = [(f"{p.ip4}:{pe.ADMIN}", {"namespace": "shop", "pod": p.name}) for p in pods]
    inbound = 'sum(weft_proxy_http_requests_total{pod="web-0",direction="inbound"})'
    with promenv.Prometheus(net.node, targets, d) as prom:
        prom.wait_scraped()
        recorded = web.metric(r'^weft_proxy_http_requests_total\{direction="inbound"')
        time.sleep(4)  # samples before the load
        seen = []
        for i in range(50):  # bounded: 50 requests
            seen.append(get(caller, web.ip4, "/fail" if i % 10 == 9 else "/"))
        assert sorted(set(seen)) == [200, 500] and seen.count(500) == 5, seen
        if recorded:
            assert web.settled_metric(r'^weft_proxy_http_requests_total\{direction="inbound"', recorded + 50) == \
                recorded + 50
            assert prom.wait_value(inbound, recorded + 50) == recorded + 50
        time.sleep(2.5)  # samples after it
        at = int(time.time())  # weftctl and the comparison evaluate at the same instant
        r, row = weftctl_row(net, kubeconfig, "shop/web-0", "--prometheus", prom.url(), "--window", str(WINDOW),
                             "--at", str(at))
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"Per second over the last {WINDOW} s as Prometheus has it" in r.stdout
        # The connection figures came from the same Prometheus.
        conns = prom.value(f'sum(increase(weft_proxy_connections_opened_total{{pod="web-0",direction="inbound"}}'
                           f'[{WINDOW}s]))', at)
        assert row["CONNS-IN/s"] == "%.1f" % (conns / WINDOW), (row, conns)
        assert row["READY"] == "1/1", row
        body(prom, row, recorded, warm + seen, at)


def test_stat_from_prometheus_over_the_mesh(env):
    net, ca, d, fake, kubeconfig = env
    web = pe.MeshPod(net, "web-0", ca, "shop", "web")
    front = pe.MeshPod(net, "front-0", ca, "shop", "front")
    for p in ("web-0", "front-0"):
        fake.put("/api/v1/pods", pod_object(p, "shop"))

    def body(prom, row, recorded, seen, at):
        if not recorded:
            assert row["SUCCESS"] == "-" and row["RPS"] == "0.0", row
            pytest.skip(f"web-0's proxy recorded no inbound HTTP request from front-0 over the mesh (front-0 saw "
                        f"{seen[:4]}...): HTTP between proxies (proxy/http_*) does not record the server side yet, "
                        "so this case's request figures cannot be compared with Prometheus")
        check_against_prometheus(prom, row, at)
        assert row["REQ-MTLS"] == "100%", row

    load_and_stat(net, web, front, (web, front), d, kubeconfig, body)


def test_stat_from_prometheus_plaintext_callers(env):
    """Callers outside the mesh (the node) reach web-0 in plaintext under
    PERMISSIVE: the same comparison, with no request over mTLS."""
    net, ca, d, fake, kubeconfig = env
    web = pe.MeshPod(net, "web-0", ca, "shop", "web",
                     env={"WEFT_MTLS_MODE": "PERMISSIVE", "WEFT_INBOUND_POLICY": "allow-all"})
    fake.put("/api/v1/pods", pod_object("web-0", "shop"))

    def body(prom, row, recorded, seen, at):
        if not recorded:
            pytest.skip("web-0's proxy recorded no inbound plaintext HTTP request: the inbound HTTP/1.1 stage "
                        "(proxy/http_h1.c) does not call http_metrics_record yet")
        check_against_prometheus(prom, row, at)
        assert row["REQ-MTLS"] == "0%", row

    load_and_stat(net, web, net.node, (web,), d, kubeconfig, body)


def test_stat_names_a_prometheus_that_does_not_answer(env):
    net, ca, d, fake, kubeconfig = env
    fake.put("/api/v1/pods", pod_object("web-0", "shop"))
    # Nothing listens on the Prometheus port in the node namespace.
    r = net.node.run([WEFTCTL, "stat", "pod", "-A", "--kubeconfig", kubeconfig, "--prometheus",
                      f"http://127.0.0.1:{promenv.PORT}"], check=False, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"--prometheus http://127.0.0.1:{promenv.PORT}: connect: Connection refused" in r.stderr, r.stderr


def plaintext_web(net, ca, fake):
    """web-0 taking plaintext callers (the node): PERMISSIVE, allow-all."""
    web = pe.MeshPod(net, "web-0", ca, "shop", "web",
                     env={"WEFT_MTLS_MODE": "PERMISSIVE", "WEFT_INBOUND_POLICY": "allow-all"})
    fake.put("/api/v1/pods", pod_object("web-0", "shop"))
    return web, [(f"{web.ip4}:{pe.ADMIN}", {"namespace": "shop", "pod": "web-0"})]


def test_stat_watch_repeats_the_prometheus_queries(env):
    """-w with --prometheus: every table asks the Prometheus again. Over a
    3 s window, the first table (before the burst) shows no new inbound
    connection, a later one the 30 the node opened after it, and the last
    ones none again once the burst has left the window; --count bounds it."""
    net, ca, d, fake, kubeconfig = env
    web, targets = plaintext_web(net, ca, fake)
    for _ in range(3):  # the counters exist before Prometheus starts: flat from its first scrape
        get(net.node, web.ip4, "/")
    count = 9
    with promenv.Prometheus(net.node, targets, d) as prom:
        prom.wait_scraped()
        time.sleep(3.5)  # a whole window of flat samples
        started = time.monotonic()
        p = net.node.popen([WEFTCTL, "stat", "pod", "-A", "--kubeconfig", kubeconfig, "--prometheus", prom.url(),
                            "--window", "3", "-w", "1", "--count", str(count)], text=True)
        killer = threading.Timer(60, p.kill)  # bounded in time too, should --count not end it
        killer.start()
        try:
            out = ""
            while "shop/web-0" not in out:  # the first table's row
                line = p.stdout.readline()
                assert line, "weftctl ended before its first table: " + p.stderr.read()
                out += line
            for _ in range(30):  # bounded: 30 connections, one request each
                assert get(net.node, web.ip4, "/") == 200
            out += p.stdout.read()  # through the same buffer as readline()
            err = p.stderr.read()
            p.wait()
        finally:
            killer.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
        elapsed = time.monotonic() - started
    assert p.returncode == 0, err
    tables = [t for t in out.split("NAME ") if t.strip()]
    assert len(tables) == count, out
    assert elapsed >= count - 1, elapsed  # a second between readings
    rates = []
    for t in tables:
        head = ("NAME " + t).splitlines()[0].split()
        row = [line.split() for line in t.splitlines() if line.startswith("shop/web-0")]
        assert row and "Per second over the last 3 s as Prometheus has it" in t, t
        rates.append(float(dict(zip(head, row[0]))["CONNS-IN/s"]))
    assert rates[0] == 0.0, (rates, out)
    assert max(rates) >= 5.0, (rates, out)  # 30 in 3 s; increase() extrapolates, so not exactly 10
    assert rates[-1] == 0.0, (rates, out)


def test_stat_from_an_https_prometheus(env):
    """--prometheus https://: the real Prometheus serving TLS
    (--web.config.file, tls_server_config) with a certificate of a test CA
    for 127.0.0.1. With that CA in --prometheus-ca the table is read; another
    CA, the system's CAs, a CA file without a certificate and plain HTTP to
    the TLS port are each refused with a message naming what is wrong."""
    net, ca, d, fake, kubeconfig = env
    web, targets = plaintext_web(net, ca, fake)
    for _ in range(3):  # the counters exist before Prometheus starts
        get(net.node, web.ip4, "/")
    tls_dir, other_dir = os.path.join(d, "prom-tls"), os.path.join(d, "other-ca")
    os.makedirs(tls_dir)
    os.makedirs(other_dir)
    prom_ca, crt, key = kubefake.make_tls(tls_dir)
    other_ca = kubefake.make_tls(other_dir)[0]
    with promenv.Prometheus(net.node, targets, d, tls=(crt, key, prom_ca)) as prom:
        prom.wait_scraped()
        for _ in range(3):  # three more inside the window: a rate the table must show
            get(net.node, web.ip4, "/")
        assert prom.wait_value('sum(weft_proxy_connections_opened_total{direction="inbound"})', 6) == 6
        url = prom.url()
        assert url.startswith("https://")
        r, row = weftctl_row(net, kubeconfig, "shop/web-0", "--prometheus", url, "--prometheus-ca", prom_ca,
                             "--window", "30")
        assert r.returncode == 0, r.stdout + r.stderr
        assert row["READY"] == "1/1" and "Per second over the last 30 s as Prometheus has it" in r.stdout, r.stdout
        assert float(row["CONNS-IN/s"]) > 0, row  # the three connections, scraped

        def refused(*flags):
            r = net.node.run([WEFTCTL, "stat", "pod", "-A", "--kubeconfig", kubeconfig, "--prometheus", *flags],
                             check=False, timeout=60)
            assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
            return r.stderr
        e = refused(url, "--prometheus-ca", other_ca)
        assert (f"--prometheus {url}: the server's certificate is not trusted (unable to get local issuer "
                f"certificate; check --prometheus-ca)") in e, e
        e = refused(url)  # the system's CAs do not know the test CA
        assert f"--prometheus {url}: the server's certificate is not trusted" in e, e
        assert "give the Prometheus' CA with --prometheus-ca" in e, e
        e = refused(url, "--prometheus-ca", kubeconfig)
        assert f"--prometheus-ca {kubeconfig}: no PEM certificate in it" in e, e
        e = refused(url, "--prometheus-ca", os.path.join(d, "missing.crt"))
        assert f"--prometheus-ca {os.path.join(d, 'missing.crt')}: No such file or directory" in e, e
        plain = "http://" + url[len("https://"):]
        e = refused(plain)
        assert f"--prometheus {plain}: HTTP 400, not JSON" in e, e
