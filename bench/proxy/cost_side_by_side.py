# SPDX-License-Identifier: Apache-2.0
"""What a weft-proxy change costs per request, for one or more weft-proxy
binaries side by side in one run: a meshed pod pair per binary (h2_app.c
and proxy_app.py as the server's apps, as in rss_after_load.py), then
ROUNDS rounds, each driving every pair in turn (the order rotates per
round) with h2load: HTTP/1.1 keep-alive at the maximum rate (4
connections, SECONDS), a new connection for every HTTP/1.1 request (20
runs of 100 connections x 1 request), and gRPC unary at 4 connections x
10 streams (SECONDS). Per load and binary: the median rate over the
rounds, and the median CPU time the two proxies used per request
(utime + stime from /proc/PID/stat, both proxies together), which a
loaded machine disturbs less than the rate. Root: network namespaces,
iptables.

usage: cost_side_by_side.py H2APP SECONDS ROUNDS WEFT_PROXY[,VAR=VALUE...]...
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
os.environ.setdefault("WEFT_BIN", os.path.dirname(os.path.abspath(sys.argv[4].split(",")[0])))
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

H2APP, SECS, ROUNDS, PROXIES = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
H2_PORT, GRPC_PATH = 9090, "/bench.Echo/Unary"
GRPC = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def h2load(pod, *args):
    out = pod.run(["h2load", *args], timeout=SECS + 120).stdout
    line = next(x for x in out.splitlines() if x.startswith("requests:"))
    assert " 0 failed, 0 errored" in line, line
    done = int(re.search(r"(\d+) succeeded", line).group(1))
    return done


def loads(msg, back_ip):
    grpc = f"http://{back_ip}:{H2_PORT}{GRPC_PATH}"
    h1 = f"http://{back_ip}:8080/"
    return {
        "h1 keep-alive max": lambda pod: h2load(pod, "--h1", "-D", str(SECS), "-c", "4", h1),
        "h1 new conn/request": lambda pod: sum(h2load(pod, "--h1", "-n", "100", "-c", "100", h1)
                                               for _ in range(20)),
        "grpc 4x10": lambda pod: h2load(pod, "-D", str(SECS), "-c", "4", "-m", "10", "-d", msg, *GRPC, grpc),
    }


def measure(front, back, run):
    pids = (front.pid(), back.pid())
    c0 = sum(cpu_s(p) for p in pids)
    t0 = time.monotonic()
    n = run(front.pod)
    wall = time.monotonic() - t0
    c1 = sum(cpu_s(p) for p in pids)
    return n / wall, (c1 - c0) / n * 1e6


def main():
    with tempfile.TemporaryDirectory(prefix="weft-cost-") as d, netns.Network(prefix="wc", ipv6=False) as net:
        ca = pe.CA(d)
        msg = os.path.join(d, "grpc.msg")
        body = b"\x0a\x10weft-bench-grpc!"
        with open(msg, "wb") as f:
            f.write(b"\0" + len(body).to_bytes(4, "big") + body)
        os.chmod(d, 0o755)
        pairs = []
        try:
            for i, spec in enumerate(PROXIES):
                pe.PROXY, *env = spec.split(",")
                env = dict(x.split("=", 1) for x in env)
                back = pe.MeshPod(net, f"b{i}", ca, "bench", "back", env=env)
                app = back.pod.popen([H2APP, "b", str(H2_PORT), os.path.join(d, f"h2app{i}.log")],
                                     stderr=subprocess.DEVNULL)
                assert app.stdout.readline().strip() == b"ready"
                pairs.append((spec, pe.MeshPod(net, f"f{i}", ca, "bench", "front", env=env), back))
            results = {}  # (load, spec) -> [(rate, cpu us per request)]
            for r in range(ROUNDS):
                order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
                for spec, front, back in order:
                    for name, run in loads(msg, back.ip4).items():
                        results.setdefault((name, spec), []).append(measure(front, back, run))
            print("| load | binary | req/s (median) | proxies' CPU µs/request (median) | per round req/s |")
            print("|---|---|---|---|---|")
            for (name, spec), v in results.items():
                rates = [x for x, _ in v]
                print(f"| {name} | {spec} | {statistics.median(rates):.0f} | "
                      f"{statistics.median(c for _, c in v):.1f} | {' '.join(f'{x:.0f}' for x in rates)} |")
        finally:
            for _, front, back in pairs:
                front.stop_proxy()
                back.stop_proxy()


if __name__ == "__main__":
    main()
