# SPDX-License-Identifier: Apache-2.0
"""weft-proxy benchmark: client app -> client proxy -> server proxy -> server
app across network namespaces, against the same path with no proxies
(direct) and with a pair of haproxy doing the same mutual TLS (TLS 1.3,
client certificates verified both ways, ALPN weft/1, mode tcp, one thread),
all in one run on the same two pods.

Measures, per setup: HTTP/1.1 keep-alive 1 KB responses at a fixed 1,000
requests/s (bench/loadgen.c, latency from the scheduled send time) and at
maximum rate, a bulk transfer (curl, 1 GiB, best of 3), and the proxies'
RSS idle and with 1,000 open connections. Prints a markdown report.

usage: bench_proxy.py BIN_DIR LOADGEN BENCHSRV [SECONDS [ROUNDS]]

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
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

BIN, LOADGEN, BENCHSRV = sys.argv[1], sys.argv[2], sys.argv[3]
SECS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 3
PROXY, INIT = os.path.join(BIN, "weft-proxy"), os.path.join(BIN, "weft-init")
BULK = 1 << 30


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def loadgen(pod, url, conns, rate=None):
    argv = [LOADGEN, "--url", url, "--method", "GET", "--connections", str(conns), "--duration", str(SECS),
            "--requests", str(SECS * 1000 if rate else 100000000)]
    if rate:
        argv += ["--rate", str(rate)]
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


def measure_load(res, pod, url):
    res.setdefault("fixed", []).append(loadgen(pod, url, 8, rate=1000))
    res.setdefault("max", []).append(loadgen(pod, url, 16))
    res.setdefault("bulk", []).append(bulk(pod, url.rsplit("/", 1)[0] + f"/bulk/{BULK}"))


def measure_rss(res, pod, host, port, pids):
    res["idle_rss"] = [rss_kib(p) for p in pids]
    socks = hold_open(pod, host, port)
    time.sleep(0.5)
    res["rss_1000"] = [rss_kib(p) for p in pids]
    for s in socks:
        s.close()


def haproxy_cfg(path, frontend, backend):
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 5000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend f
    {frontend}
    default_backend b
backend b
    {backend}
""")


def main():
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as d, netns.Network(prefix="wb", ipv6=False) as net:
        ca = pe.CA(d)
        ccert, ckey = ca.issue("bench", "client")
        scert, skey = ca.issue("bench", "server")
        # One client/server pod pair per setup, so the capture rules of the
        # weft pair never touch the others; rounds interleave the setups.
        pods = {k: (net.add_pod(f"{k}c"), net.add_pod(f"{k}s")) for k in ("direct", "haproxy", "weft")}
        for _, spod in pods.values():
            srv = spod.popen([BENCHSRV, "8080"])
            assert srv.stdout.readline().strip() == b"ready"

        # haproxy pair, the same mutual TLS as weft's
        cpod, spod = pods["haproxy"]
        for name, cert, key in (("c", ccert, ckey), ("s", scert, skey)):
            with open(os.path.join(d, f"{name}.pem"), "w") as f:
                f.write(open(cert).read() + open(key).read())
        haproxy_cfg(os.path.join(d, "hs.cfg"),
                    f"bind :10443 ssl crt {d}/s.pem ca-file {ca.crt} verify required ssl-min-ver TLSv1.3 alpn weft/1",
                    "server app 127.0.0.1:8080")
        haproxy_cfg(os.path.join(d, "hc.cfg"), "bind 127.0.0.1:10000",
                    f"server s {spod.ip4}:10443 ssl crt {d}/c.pem ca-file {ca.crt} verify required "
                    "ssl-min-ver TLSv1.3 alpn weft/1")
        # The same netfilter cost as the weft pods (nat tables and conntrack
        # loaded): weft-init rules, haproxy as the proxy uid (not captured),
        # its TLS port skipped inbound.
        pe.init_pod(spod, ["--skip-inbound-ports", "10443"])
        pe.init_pod(cpod)
        # In d: haproxy returns to its starting directory after reading the
        # config and fails if the proxy uid cannot enter it (a checkout in
        # /root, or a 0700 home as Debian 12 makes them).
        hs = spod.popen(["haproxy", "-db", "-f", os.path.join(d, "hs.cfg")], uid=pe.PROXY_UID, cwd=d)
        hc = cpod.popen(["haproxy", "-db", "-f", os.path.join(d, "hc.cfg")], uid=pe.PROXY_UID, cwd=d)
        time.sleep(1)
        for p in (hs, hc):
            if p.poll() is not None:
                raise SystemExit("haproxy did not start: " + p.stderr.read().decode(errors="replace"))

        # weft-proxy pair, transparent (weft-init rules)
        pxs = []
        for pod, cert, key, sa in ((pods["weft"][0], ccert, ckey, "client"), (pods["weft"][1], scert, skey, "server")):
            pe.init_pod(pod)
            env = {"PATH": "/usr/bin:/bin", "WEFT_POD_NAMESPACE": "bench", "WEFT_SERVICE_ACCOUNT": sa,
                   "WEFT_MESH_NETWORKS": "198.18.0.0/24", "WEFT_CERT": cert, "WEFT_KEY": key,
                   "WEFT_TRUST_BUNDLE": ca.crt, "WEFT_LOG_LEVEL": "warn"}
            pxs.append(pod.popen([PROXY], uid=pe.PROXY_UID, env=env, stdout=subprocess.DEVNULL))
            r = pod.run([PROXY, "wait-ready", "--timeout-seconds", "10"], check=False)
            assert r.returncode == 0, r.stderr
        time.sleep(0.5)

        setups = [
            ("direct (no proxy)", pods["direct"][0], f"http://{pods['direct'][1].ip4}:8080/", pods["direct"][1].ip4, 8080, []),
            ("haproxy pair (mTLS)", cpod, "http://127.0.0.1:10000/", "127.0.0.1", 10000, [hc.pid, hs.pid]),
            ("weft-proxy pair (mTLS)", pods["weft"][0], f"http://{pods['weft'][1].ip4}:8080/", pods["weft"][1].ip4, 8080,
             [p.pid for p in pxs]),
        ]
        results = [{"name": s[0]} for s in setups]
        for res, (_, pod, url, host, port, pids) in zip(results, setups):
            res["idle_rss"] = [rss_kib(p) for p in pids]
        for rnd in range(ROUNDS):
            for res, (_, pod, url, host, port, pids) in zip(results, setups):
                measure_load(res, pod, url)
        for res, (_, pod, url, host, port, pids) in zip(results, setups):
            measure_rss(res, pod, host, port, pids)
        report(results)


def med(res, kind, key=None):
    vals = [r[key] for r in res[kind]] if key else res[kind]
    return statistics.median(vals)


def report(results):
    d = results[0]
    print(f"{os.cpu_count()} cores; {ROUNDS} interleaved rounds of {SECS} s per load run; medians over rounds; "
          f"1 KB bodies; bulk {BULK >> 20} MiB (best of 3 per round)\n")
    print("| setup | fixed 1000/s p50 µs | p99 µs | p99.9 µs | errors | max req/s | bulk MB/s | RSS idle KiB | RSS 1000 conns KiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errors = sum(x["errors"] for x in r["fixed"] + r["max"])
        rss_i = " + ".join(str(x) for x in r["idle_rss"]) or "-"
        rss_k = " + ".join(str(x) for x in r["rss_1000"]) or "-"
        print(f"| {r['name']} | {med(r, 'fixed', 'p50_us'):.0f} | {med(r, 'fixed', 'p99_us'):.0f} | "
              f"{med(r, 'fixed', 'p999_us'):.0f} | {errors} | {med(r, 'max', 'rps'):.0f} | {med(r, 'bulk') / 1e6:.0f} | "
              f"{rss_i} | {rss_k} |")
    print()
    for r in results[1:]:
        print(f"- {r['name']}: added latency at 1000/s p50 {med(r, 'fixed', 'p50_us') - med(d, 'fixed', 'p50_us'):+.0f} µs, "
              f"p99 {med(r, 'fixed', 'p99_us') - med(d, 'fixed', 'p99_us'):+.0f} µs; "
              f"max req/s {med(r, 'max', 'rps') / med(d, 'max', 'rps'):.2f}x direct; "
              f"bulk {med(r, 'bulk') / med(d, 'bulk'):.2f}x direct")
    w, h = results[2], results[1]
    print(f"- weft vs haproxy: max req/s {med(w, 'max', 'rps') / med(h, 'max', 'rps'):.2f}x, "
          f"bulk {med(w, 'bulk') / med(h, 'bulk'):.2f}x, "
          f"p50 at 1000/s {med(w, 'fixed', 'p50_us') / med(h, 'fixed', 'p50_us'):.2f}x, "
          f"p99 {med(w, 'fixed', 'p99_us') / med(h, 'fixed', 'p99_us'):.2f}x")
    print("- per round (p50/p99 µs at 1000/s; max req/s; bulk MB/s):")
    for r in results:
        rounds = "; ".join(f"{f['p50_us']:.0f}/{f['p99_us']:.0f}, {m['rps']:.0f}, {b / 1e6:.0f}"
                           for f, m, b in zip(r["fixed"], r["max"], r["bulk"]))
        print(f"  - {r['name']}: {rounds}")


if __name__ == "__main__":
    main()
