# SPDX-License-Identifier: Apache-2.0
"""weft-proxy benchmark: client app -> client proxy -> server proxy -> server
app across network namespaces, against the same path with no proxies
(direct), with a pair of haproxy doing the same mutual TLS (TLS 1.3, client
certificates verified both ways, one thread) in `mode tcp` (ALPN weft/1) and
in `mode http` (h2 between the two, as weft/h2), all in one run.

Measures, per setup: HTTP/1.1 keep-alive 1 KB responses at a fixed 1,000
requests/s (bench/loadgen.c, latency from the scheduled send time) and at
maximum rate; a new connection for every request (loadgen
--new-connection, at maximum rate); a bulk transfer (curl, 1 GiB, best of
3) on the opaque setups; gRPC unary calls over h2c with h2load (POSTs of one
length-prefixed message, latency from its per-request log; each weft run's
gRPC OK answers checked against the client proxy's metrics); the proxies' RSS idle after start, idle again after the
load runs (right after them and 75 s later), and with 1,000 open HTTP/1.1 keep-alive connections. The weft pair is measured twice on the same two
proxies: port 8080 (protocol detection: HTTP as the proxy handles it
today) and port 8081 (in WEFT_OPAQUE_PORTS: the opaque weft/1 relay); which
path the HTTP/1.1 requests took is read from the client proxy's metrics.
Prints a markdown report.

usage: bench_proxy.py BIN_DIR LOADGEN BENCHSRV [SECONDS [ROUNDS]]
WEFT_BENCH_H2APP=<tests/integration/h2_app built> enables the gRPC part;
WEFT_BENCH_NULLRELAY=<bench/proxy/nullrelay.c built> adds the floor of any
two-proxy path to the 1,000/s run: a pair of relays under the same capture
rules that only copy bytes (no TLS, no HTTP).

Setups run on separate pod pairs, interleaved round by round (the machine is
shared and noisy); the report gives the median over rounds.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
# proxyenv takes weft-init from WEFT_BIN: the same build as the proxies.
os.environ["WEFT_BIN"] = os.path.abspath(sys.argv[1])
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

BIN, LOADGEN, BENCHSRV = sys.argv[1], sys.argv[2], sys.argv[3]
SECS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 3
PROXY, INIT = os.path.join(BIN, "weft-proxy"), os.path.join(BIN, "weft-init")
BULK = 1 << 30
H2APP = os.environ.get("WEFT_BENCH_H2APP")
NULLRELAY = os.environ.get("WEFT_BENCH_NULLRELAY")
H2_PORT, OPAQUE_PORT = 9090, 8081
SETTLE_S = 75  # weft's UPSTREAM_H2_IDLE_MS and WORKER_TRIM_MS, and a margin
# One unary call: the 5-byte gRPC prefix (not compressed, length) and a
# protobuf-shaped message (field 1, 16 bytes), which h2_app.c echoes.
GRPC_PATH, GRPC_MSG = "/bench.Echo/Unary", b"\x0a\x10weft-bench-grpc!"
GRPC_H2LOAD = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
GRPC_CLIENT = """
import sys, grpc
msg = bytes.fromhex(sys.argv[3])
r, call = grpc.insecure_channel(sys.argv[1]).unary_unary(sys.argv[2]).with_call(msg, timeout=10)
assert r == msg and call.code() == grpc.StatusCode.OK, (r, call.code())
print("OK")
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def loadgen(pod, url, conns, rate=None, new_connection=False):
    argv = [LOADGEN, "--url", url, "--method", "GET", "--connections", str(conns), "--duration", str(SECS),
            "--requests", str(SECS * 1000 if rate else 100000000)]
    if rate:
        argv += ["--rate", str(rate)]
    if new_connection:
        argv.append("--new-connection")
    out = pod.run(argv, timeout=SECS + 60).stdout
    return json.loads(out.strip().splitlines()[-1])


def bulk(pod, url):
    speeds = []
    for _ in range(3):
        r = pod.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", "--max-time", "60", url],
                    timeout=90)
        speeds.append(float(r.stdout))
    return max(speeds)


def hold_open(pod, host, port, n=1000):
    """n connections through the path, each having done one request."""
    socks = []
    with pod.inside():
        for _ in range(n):
            socks.append(socket.socket())
    for s in socks:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        got = b""
        while not got.endswith(b"a" * 16) or len(got) < 1024:
            got += s.recv(4096)
    return socks


def h2load_counts(out):
    """(succeeded, abandoned): calls h2load saw succeed, and those still in
    flight when its -D duration ended (started, never done)."""
    # "requests: 100 total, 140 started, 100 done, 100 succeeded, 0 failed, ..."
    line = next(x for x in out.splitlines() if x.startswith("requests:"))
    n = [int(x.split()[0]) for x in line.split(":", 1)[1].split(",")]
    return n[3], n[1] - n[2]


def h2load(pod, url, conns, streams, logdir):
    """gRPC unary calls for SECS seconds (bounded by -D and the timeout):
    rate from h2load's summary, percentiles from its per-request log."""
    log = os.path.join(logdir, "h2load.log")
    out = pod.run(["h2load", "-D", str(SECS), "-c", str(conns), "-m", str(streams), "--log-file", log,
                   "-d", os.path.join(logdir, "grpc.msg"), *GRPC_H2LOAD, url], timeout=SECS + 60).stdout
    lat, failed = [], 0
    with open(log) as f:
        for line in f:
            cols = line.split("\t")
            if cols[1] != "200":
                failed += 1
            else:
                lat.append(int(cols[2]))
    os.unlink(log)
    lat.sort()
    # "finished in 5.00s, 12345.60 req/s, 1.23MB/s"
    rps = float(next(line for line in out.splitlines() if line.startswith("finished in")).split()[3])
    pct = (lambda q: lat[int(q / 100 * (len(lat) - 1))] if lat else 0)
    ok, abandoned = h2load_counts(out)
    return {"rps": rps, "p50_us": pct(50), "p99_us": pct(99), "errors": failed, "requests": len(lat),
            "succeeded": ok, "abandoned": abandoned}


def measure_load(res, setup, logdir, counted):
    """One round of setup's tests; counted(part, fn) runs fn, for a weft
    setup noting how the client proxy's counters moved over it (returned
    with fn's value; None for the other setups)."""
    pod, url, tests = setup["pod"], setup["url"], setup["tests"]
    counted("h1", lambda: measure_h1(res, pod, url, tests))
    if "h2" in tests and H2APP:
        moved = counted("h2", lambda: measure_h2(res, pod, setup["h2url"], logdir))
        # Every call h2load saw succeed must be one the client proxy counted
        # as a gRPC OK answer (grpc-status 0 read from the trailers), and
        # no answer another status. A call h2load abandoned in flight when
        # its duration ended may have been answered to the proxy or not.
        if moved:
            (ok, abandoned), c = moved
            if not ok <= c["grpc_ok"] <= ok + abandoned or c["grpc_not_ok"]:
                raise SystemExit(f"{setup['name']}: h2load counted {ok} calls succeeded and {abandoned} abandoned "
                                 f"in flight; the client proxy {c['grpc_ok']:.0f} outbound gRPC OK responses and "
                                 f"{c['grpc_not_ok']:.0f} of another grpc-status")


def measure_h1(res, pod, url, tests):
    if "fixed" in tests:
        res.setdefault("fixed", []).append(loadgen(pod, url, 8, rate=1000))
    if "max" in tests:
        res.setdefault("max", []).append(loadgen(pod, url, 16))
    if "bulk" in tests:
        res.setdefault("bulk", []).append(bulk(pod, url.rsplit("/", 1)[0] + f"/bulk/{BULK}"))
    if "newconn" in tests:
        res.setdefault("newconn", []).append(loadgen(pod, url, 8, new_connection=True))


def h2_newconn(pod, url, logdir):
    """gRPC with a new connection for every call: h2load runs of 100
    connections making one request each, repeated for SECS seconds (at most
    200 runs); the rate counts the runs' whole wall time."""
    t0, ok, abandoned, runs = time.monotonic(), 0, 0, 0
    while time.monotonic() - t0 < SECS and runs < 200:
        out = pod.run(["h2load", "-n", "100", "-c", "100", "-m", "1", "-d", os.path.join(logdir, "grpc.msg"),
                       *GRPC_H2LOAD, url], timeout=60).stdout
        got = h2load_counts(out)
        ok, abandoned, runs = ok + got[0], abandoned + got[1], runs + 1
    return {"rps": ok / (time.monotonic() - t0), "requests": ok, "succeeded": ok, "abandoned": abandoned, "runs": runs}


def measure_h2(res, pod, url, logdir):
    """The gRPC runs of one round; returns how many calls succeeded and how
    many were abandoned in flight."""
    runs = [("h2_load", h2load(pod, url, 4, 10, logdir)), ("h2_one", h2load(pod, url, 1, 1, logdir)),
            ("h2_new", h2_newconn(pod, url, logdir))]
    for kind, r in runs:
        res.setdefault(kind, []).append(r)
    return sum(r["succeeded"] for _, r in runs), sum(r["abandoned"] for _, r in runs)


def measure_rss(res, pod, host, port, pids):
    socks = hold_open(pod, host, port)
    time.sleep(0.5)
    res["rss_1000"] = [rss_kib(p) for p in pids]
    for s in socks:
        s.close()


def haproxy_cfg(path, frontend, backend, mode="tcp", extra=""):
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 5000
defaults
    mode {mode}
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend f
    {frontend}
    default_backend b
backend b
    {backend}
{extra}""")


def start_haproxy(pods, d, name, cfgs):
    """Starts the server side then the client side of a haproxy pair; cfgs
    are the two config texts' paths."""
    procs = []
    for pod, cfg in zip(pods, cfgs):
        # In d: haproxy returns to its starting directory after reading the
        # config and fails if the proxy uid cannot enter it (a checkout in
        # /root, or a 0700 home as Debian 12 makes them).
        procs.append(pod.popen(["haproxy", "-db", "-f", cfg], uid=pe.PROXY_UID, cwd=d))
    time.sleep(1)
    for p in procs:
        if p.poll() is not None:
            raise SystemExit(f"haproxy ({name}) did not start: " + p.stderr.read().decode(errors="replace"))
    return procs


def metrics_sum(net, ip, pattern):
    """Sum of a weft-proxy's /metrics samples matching the regex, read from
    the node namespace like the kubelet."""
    import re
    import urllib.request
    with netns.inside(net.node.netns):
        text = urllib.request.urlopen(f"http://{ip}:{pe.ADMIN}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if not line.startswith("#") and re.search(pattern, line))


def tune_pod(pod):
    """A new connection per request leaves TIME_WAIT sockets behind on the
    side that closes; let connects reuse them and widen the port range so
    the runs do not exhaust the ephemeral ports."""
    pod.run(["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"])


def main():
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as d, netns.Network(prefix="wb", ipv6=False) as net:
        os.chmod(d, 0o755)
        ca = pe.CA(d)
        ccert, ckey = ca.issue("bench", "client")
        scert, skey = ca.issue("bench", "server")
        # One client/server pod pair per setup, so the capture rules of the
        # weft pair never touch the others; rounds interleave the setups.
        kinds = ("direct", "haproxy", "hahttp", "weft") + (("null",) if NULLRELAY else ())
        pods = {k: (net.add_pod(f"{k}c"), net.add_pod(f"{k}s")) for k in kinds}
        for k, (cpod, spod) in pods.items():
            tune_pod(cpod)
            tune_pod(spod)
            ports = [8080] + ([OPAQUE_PORT] if k == "weft" else [])
            for port in ports:
                srv = spod.popen([BENCHSRV, str(port)])
                assert srv.stdout.readline().strip() == b"ready"
            if H2APP and k not in ("haproxy", "null"):
                applog = os.path.join(d, f"h2app-{k}.log")
                app = spod.popen([H2APP, k, str(H2_PORT), applog], stderr=subprocess.DEVNULL)
                assert app.stdout.readline().strip() == b"ready"

        for name, cert, key in (("c", ccert, ckey), ("s", scert, skey)):
            with open(os.path.join(d, f"{name}.pem"), "w") as f:
                f.write(open(cert).read() + open(key).read())
        tls = f"ca-file {ca.crt} verify required ssl-min-ver TLSv1.3"

        # haproxy pair in mode tcp, the same mutual TLS as weft's
        cpod, spod = pods["haproxy"]
        haproxy_cfg(os.path.join(d, "hs.cfg"), f"bind :10443 ssl crt {d}/s.pem {tls} alpn weft/1",
                    "server app 127.0.0.1:8080")
        haproxy_cfg(os.path.join(d, "hc.cfg"), "bind 127.0.0.1:10000",
                    f"server s {spod.ip4}:10443 ssl crt {d}/c.pem {tls} alpn weft/1")
        # The same netfilter cost as the weft pods (nat tables and conntrack
        # loaded): weft-init rules, haproxy as the proxy uid (not captured),
        # its TLS port skipped inbound.
        pe.init_pod(spod, ["--skip-inbound-ports", "10443"])
        pe.init_pod(cpod)
        hs, hc = start_haproxy((spod, cpod), d, "tcp", (os.path.join(d, "hs.cfg"), os.path.join(d, "hc.cfg")))

        # haproxy pair in mode http: HTTP/1.1 from the app, h2 over the same
        # mutual TLS between the two (as weft/h2), HTTP/1.1 or h2c to the
        # app. Port 10000 keeps haproxy's default http-reuse (safe: a
        # client connection's first request gets a server connection of its
        # own), 10002 the same with http-reuse always (idle server
        # connections shared by any request), 10001 h2c from the app.
        cpod, spod = pods["hahttp"]
        haproxy_cfg(os.path.join(d, "hhs.cfg"), f"bind :10443 ssl crt {d}/s.pem {tls} alpn h2",
                    "server app 127.0.0.1:8080", mode="http",
                    extra=f"frontend f2\n    bind :10444 ssl crt {d}/s.pem {tls} alpn h2\n    default_backend b2\n"
                          f"backend b2\n    server app2 127.0.0.1:{H2_PORT} proto h2\n")
        up = f"ssl crt {d}/c.pem {tls} alpn h2"
        haproxy_cfg(os.path.join(d, "hhc.cfg"), "bind 127.0.0.1:10000", f"server s {spod.ip4}:10443 {up}",
                    mode="http",
                    extra="frontend f2\n    bind 127.0.0.1:10001 proto h2\n    default_backend b2\n"
                          f"backend b2\n    server s2 {spod.ip4}:10444 {up}\n"
                          "frontend f3\n    bind 127.0.0.1:10002\n    default_backend b3\n"
                          f"backend b3\n    http-reuse always\n    server s3 {spod.ip4}:10443 {up}\n")
        pe.init_pod(spod, ["--skip-inbound-ports", "10443,10444"])
        pe.init_pod(cpod)
        hhs, hhc = start_haproxy((spod, cpod), d, "http", (os.path.join(d, "hhs.cfg"), os.path.join(d, "hhc.cfg")))

        # weft-proxy pair, transparent (weft-init rules); OPAQUE_PORT skips
        # detection, so it is the opaque weft/1 relay whatever HTTP does.
        pxs = []
        for pod, cert, key, sa in ((pods["weft"][0], ccert, ckey, "client"), (pods["weft"][1], scert, skey, "server")):
            pe.init_pod(pod)
            env = {"PATH": "/usr/bin:/bin", "WEFT_POD_NAMESPACE": "bench", "WEFT_SERVICE_ACCOUNT": sa,
                   "WEFT_MESH_NETWORKS": "198.18.0.0/24", "WEFT_CERT": cert, "WEFT_KEY": key,
                   "WEFT_TRUST_BUNDLE": ca.crt, "WEFT_LOG_LEVEL": "warn", "WEFT_OPAQUE_PORTS": str(OPAQUE_PORT)}
            pxs.append(pod.popen([PROXY], uid=pe.PROXY_UID, env=env, stdout=subprocess.DEVNULL))
            r = pod.run([PROXY, "wait-ready", "--timeout-seconds", "10"], check=False)
            assert r.returncode == 0, r.stderr
        if NULLRELAY:
            for pod in pods["null"]:
                pe.init_pod(pod)
                relay = pod.popen([NULLRELAY], uid=pe.PROXY_UID)
                assert relay.stdout.readline().strip() == b"ready"
        time.sleep(0.5)

        ds, ws = pods["direct"][1].ip4, pods["weft"][1].ip4
        setups = [
            {"name": "direct (no proxy)", "pod": pods["direct"][0], "url": f"http://{ds}:8080/",
             "h2url": f"http://{ds}:{H2_PORT}{GRPC_PATH}", "tests": {"fixed", "max", "bulk", "newconn", "h2"}},
            {"name": "haproxy pair, mode tcp (mTLS)", "pod": pods["haproxy"][0], "url": "http://127.0.0.1:10000/",
             "tests": {"fixed", "max", "bulk", "newconn"}, "rss": ("127.0.0.1", 10000), "pids": [hc.pid, hs.pid]},
            {"name": "haproxy pair, mode http (mTLS, h2 between)", "pod": pods["hahttp"][0],
             "url": "http://127.0.0.1:10000/", "h2url": f"http://127.0.0.1:10001{GRPC_PATH}",
             "tests": {"fixed", "max", "newconn", "h2"}, "rss": ("127.0.0.1", 10000), "pids": [hhc.pid, hhs.pid]},
            {"name": "haproxy pair, mode http, http-reuse always", "pod": pods["hahttp"][0],
             "url": "http://127.0.0.1:10002/", "tests": {"newconn"}},
            {"name": "weft-proxy pair, port 8080 (detected: HTTP)", "pod": pods["weft"][0], "url": f"http://{ws}:8080/",
             "h2url": f"http://{ws}:{H2_PORT}{GRPC_PATH}", "tests": {"fixed", "max", "newconn", "h2"},
             "rss": (ws, 8080), "pids": [p.pid for p in pxs], "weft": True},
            {"name": f"weft-proxy pair, port {OPAQUE_PORT} (opaque weft/1)", "pod": pods["weft"][0],
             "url": f"http://{ws}:{OPAQUE_PORT}/", "tests": {"fixed", "max", "bulk", "newconn"}, "weft": True},
        ]
        if NULLRELAY:
            setups.append({"name": "null relay pair (the floor: no TLS, no HTTP)", "pod": pods["null"][0],
                           "url": f"http://{pods['null'][1].ip4}:8080/", "tests": {"fixed"}})
        wc = pods["weft"][0].ip4
        counters = {"http1": r'protocol_detections_total\{direction="outbound",result="http1"\}',
                    "h2": r'protocol_detections_total\{direction="outbound",result="h2"\}',
                    "http_req": r'^weft_proxy_http_requests_total\{.*direction="outbound"',
                    "handshakes": r'tls_handshakes_total\{side="client",result="success"',
                    "grpc_ok": r'^weft_proxy_http_responses_total\{direction="outbound",.*,status="200",'
                               r'grpc_status="0"',
                    "grpc_not_ok": r'^weft_proxy_http_responses_total\{direction="outbound",.*,'
                                   r'grpc_status="(?!0")[^"]'}
        results = [{"name": s["name"]} for s in setups]
        for res, s in zip(results, setups):
            res["idle_rss"] = [rss_kib(p) for p in s.get("pids", [])]
        with open(os.path.join(d, "grpc.msg"), "wb") as f:
            f.write(b"\0" + len(GRPC_MSG).to_bytes(4, "big") + GRPC_MSG)
        for res, s in zip(results, setups):
            if "h2" in s["tests"] and H2APP:
                # Once with a real gRPC client (grpcio), so what h2load
                # drives is gRPC as grpcio reads it, end to end (after the
                # at-start RSS sample: the call warms the proxies).
                addr = s["h2url"].split("/")[2]
                r = s["pod"].run([sys.executable, "-c", GRPC_CLIENT, addr, GRPC_PATH, GRPC_MSG.hex()], timeout=30)
                assert r.stdout.strip() == "OK", (s["name"], r.stdout, r.stderr)
                res["grpcio"] = "OK"
        t0 = time.monotonic()
        for rnd in range(ROUNDS):
            for res, s in zip(results, setups):
                def counted(part, fn, res=res, weft=s.get("weft")):
                    if not weft:
                        fn()
                        return None
                    before = {k: metrics_sum(net, wc, v) for k, v in counters.items()}
                    got = fn()
                    path, moved = res.setdefault("path_" + part, {}), {}
                    for k, v in counters.items():
                        moved[k] = metrics_sum(net, wc, v) - before[k]
                        path[k] = path.get(k, 0) + moved[k]
                    return got, moved
                measure_load(res, s, d, counted)
        # Idle again, but after the load runs: right after them, and once
        # weft's pooled upstream connections have closed idle (60 s) and a
        # trim tick (10 s) has passed.
        for res, s in zip(results, setups):
            res["after_rss"] = [rss_kib(p) for p in s.get("pids", [])]
        time.sleep(SETTLE_S)
        for res, s in zip(results, setups):
            res["settled_rss"] = [rss_kib(p) for p in s.get("pids", [])]
        for res, s in zip(results, setups):
            if "rss" in s:
                measure_rss(res, s["pod"], *s["rss"], s["pids"])
        report(results, time.monotonic() - t0)
        raw = os.environ.get("WEFT_BENCH_RAW")
        if raw:
            with open(raw, "w") as f:
                json.dump(results, f, indent=1)


def med(res, kind, key=None):
    vals = [r[key] for r in res[kind]] if key else res[kind]
    return statistics.median(vals)


def fmt(res, kind, key=None, scale=1, digits=0):
    return f"{med(res, kind, key) / scale:.{digits}f}" if kind in res else "-"


def report(results, elapsed):
    d = results[0]
    hat, hah, hal, wh, wo = results[1:6]
    print(f"{os.cpu_count()} cores; {ROUNDS} interleaved rounds of {SECS} s per load run ({elapsed:.0f} s in all); "
          f"medians over rounds; 1 KB bodies; bulk {BULK >> 20} MiB (best of 3 per round)\n")
    print("| setup | 1000/s p50 µs | p99 µs | p99.9 µs | max req/s | new conn/request req/s | its p50 µs | p99 µs "
          f"| errors | bulk MB/s | RSS idle KiB | idle after the runs | {SETTLE_S} s later | RSS 1000 conns KiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errors = sum(x["errors"] for k in ("fixed", "max", "newconn") for x in r.get(k, []))
        rss_i = " + ".join(str(x) for x in r["idle_rss"]) or "-"
        rss_k = " + ".join(str(x) for x in r.get("rss_1000", [])) or "-"
        rss_a = " + ".join(str(x) for x in r.get("after_rss", [])) or "-"
        rss_s = " + ".join(str(x) for x in r.get("settled_rss", [])) or "-"
        print(f"| {r['name']} | {fmt(r, 'fixed', 'p50_us')} | {fmt(r, 'fixed', 'p99_us')} | "
              f"{fmt(r, 'fixed', 'p999_us')} | {fmt(r, 'max', 'rps')} | {fmt(r, 'newconn', 'rps')} | "
              f"{fmt(r, 'newconn', 'p50_us')} | {fmt(r, 'newconn', 'p99_us')} | {errors} | "
              f"{fmt(r, 'bulk', scale=1e6)} | {rss_i} | {rss_a} | {rss_s} | {rss_k} |")
    print()
    for r in (hat, hah, wh, wo):
        print(f"- {r['name']}: added at 1000/s p50 {med(r, 'fixed', 'p50_us') - med(d, 'fixed', 'p50_us'):+.0f} µs, "
              f"p99 {med(r, 'fixed', 'p99_us') - med(d, 'fixed', 'p99_us'):+.0f} µs; "
              f"max req/s {med(r, 'max', 'rps') / med(d, 'max', 'rps'):.2f}x direct")
    if len(results) > 6:
        fl = results[6]
        fa50, fa99 = (med(fl, 'fixed', k) - med(d, 'fixed', k) for k in ("p50_us", "p99_us"))
        print(f"- {fl['name']}: added at 1000/s p50 {fa50:+.0f} µs, p99 {fa99:+.0f} µs; so weft (8080) adds "
              f"p50 {med(wh, 'fixed', 'p50_us') - med(fl, 'fixed', 'p50_us'):+.0f} µs and p99 "
              f"{med(wh, 'fixed', 'p99_us') - med(fl, 'fixed', 'p99_us'):+.0f} µs over the floor")
    print(f"- weft (8080) vs haproxy http: max req/s {med(wh, 'max', 'rps') / med(hah, 'max', 'rps'):.2f}x; "
          f"new connection per request {med(wh, 'newconn', 'rps') / med(hah, 'newconn', 'rps'):.2f}x "
          f"({med(wh, 'newconn', 'rps') / med(hal, 'newconn', 'rps'):.2f}x haproxy with http-reuse always)")
    print(f"- weft opaque ({OPAQUE_PORT}) vs haproxy tcp: max req/s {med(wo, 'max', 'rps') / med(hat, 'max', 'rps'):.2f}x, "
          f"bulk {med(wo, 'bulk') / med(hat, 'bulk'):.2f}x, new connection per request "
          f"{med(wo, 'newconn', 'rps') / med(hat, 'newconn', 'rps'):.2f}x, added p50 "
          f"{med(wo, 'fixed', 'p50_us') - med(d, 'fixed', 'p50_us'):+.0f} µs vs haproxy's "
          f"{med(hat, 'fixed', 'p50_us') - med(d, 'fixed', 'p50_us'):+.0f} µs")
    for r in (wh, wo):
        sent = sum(x["requests"] for k in ("fixed", "max", "newconn") for x in r.get(k, []))
        p = r["path_h1"]
        print(f"- path, {r['name']}: over its HTTP/1.1 runs {sent:.0f} requests answered; the client proxy "
              f"counted {p['http1']:.0f} outbound connections detected http1, {p['http_req']:.0f} outbound HTTP "
              f"requests (terminated) and {p['handshakes']:.0f} client TLS handshakes")
    if "path_h2" in wh:
        sent = sum(x["requests"] for k in ("h2_load", "h2_one", "h2_new") for x in wh[k])
        p = wh["path_h2"]
        ok = sum(x["succeeded"] for k in ("h2_load", "h2_one", "h2_new") for x in wh[k])
        gone = sum(x["abandoned"] for k in ("h2_load", "h2_one", "h2_new") for x in wh[k])
        print(f"- path, {wh['name']}, gRPC runs: {sent:.0f} calls answered ({ok} succeeded as h2load counts, "
              f"{gone} abandoned in flight at the end of a run); the "
              f"client proxy counted {p['h2']:.0f} outbound connections detected h2, {p['http_req']:.0f} outbound "
              f"HTTP requests (terminated), {p['grpc_ok']:.0f} gRPC OK responses and {p['grpc_not_ok']:.0f} with "
              f"another grpc-status, and {p['handshakes']:.0f} client TLS handshakes")
    print("- per round (p50/p99 µs at 1000/s; max req/s; new-connection req/s; bulk MB/s):")
    for r in results:
        rounds = []
        for i in range(ROUNDS):
            parts = [f"{r['fixed'][i]['p50_us']:.0f}/{r['fixed'][i]['p99_us']:.0f}" if "fixed" in r else "-",
                     f"{r['max'][i]['rps']:.0f}" if "max" in r else "-",
                     f"{r['newconn'][i]['rps']:.0f}" if "newconn" in r else "-",
                     f"{r['bulk'][i] / 1e6:.0f}" if "bulk" in r else "-"]
            rounds.append(", ".join(parts))
        print(f"  - {r['name']}: " + "; ".join(rounds))
    h2 = [r for r in results if "h2_load" in r]
    if not h2:
        print("\ngRPC: skipped (WEFT_BENCH_H2APP not set)")
        return
    print(f"\ngRPC unary calls over h2c (h2load POSTs of one {5 + len(GRPC_MSG)}-byte length-prefixed message to "
          f"{GRPC_PATH}, tests/integration/h2_app.c echoing it with grpc-status 0; latency from h2load's "
          "per-request log; checked once per setup with a grpcio client: "
          + ", ".join(f"{r['name']} {r['grpcio']}" for r in h2) + "):\n")
    print("| setup | 4 conns x 10 streams req/s | p50 µs | p99 µs | 1 conn x 1 stream req/s | p50 µs | p99 µs "
          "| new conn/request req/s | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in h2:
        failed = sum(x["errors"] for k in ("h2_load", "h2_one") for x in r[k])
        print(f"| {r['name']} | {fmt(r, 'h2_load', 'rps')} | {fmt(r, 'h2_load', 'p50_us')} | {fmt(r, 'h2_load', 'p99_us')} "
              f"| {fmt(r, 'h2_one', 'rps')} | {fmt(r, 'h2_one', 'p50_us')} | {fmt(r, 'h2_one', 'p99_us')} "
              f"| {fmt(r, 'h2_new', 'rps')} | {failed} |")
    print()
    for r in h2[1:]:
        print(f"- {r['name']}: {med(r, 'h2_load', 'rps') / med(d, 'h2_load', 'rps'):.2f}x direct's rate at 4x10, "
              f"p99 {med(r, 'h2_load', 'p99_us') - med(d, 'h2_load', 'p99_us'):+.0f} µs; at 1x1 p50 "
              f"{med(r, 'h2_one', 'p50_us') - med(d, 'h2_one', 'p50_us'):+.0f} µs, p99 "
              f"{med(r, 'h2_one', 'p99_us') - med(d, 'h2_one', 'p99_us'):+.0f} µs; new connection per request "
              f"{med(r, 'h2_new', 'rps') / med(d, 'h2_new', 'rps'):.2f}x direct")
    print(f"- weft vs haproxy http, gRPC: 4x10 rate {med(h2[2], 'h2_load', 'rps') / med(h2[1], 'h2_load', 'rps'):.2f}x, "
          f"new connection per request {med(h2[2], 'h2_new', 'rps') / med(h2[1], 'h2_new', 'rps'):.2f}x")
    print("- per round (4x10 req/s, p99 µs; 1x1 p50/p99 µs; new-connection req/s):")
    for r in h2:
        print(f"  - {r['name']}: " + "; ".join(f"{a['rps']:.0f}, {a['p99_us']:.0f}; {b['p50_us']:.0f}/{b['p99_us']:.0f}; "
                                            f"{c['rps']:.0f}" for a, b, c in zip(r["h2_load"], r["h2_one"], r["h2_new"])))


if __name__ == "__main__":
    main()
