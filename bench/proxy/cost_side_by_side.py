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
import statistics
import sys
import time

os.environ.setdefault("WEFT_BIN", os.path.dirname(os.path.abspath(sys.argv[4].split(",")[0])))
import sidebyside  # noqa: E402
from sidebyside import GRPC, GRPC_PATH, H2_PORT  # noqa: E402

H2APP, SECS, ROUNDS, PROXIES = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
cpu_s = sidebyside.cpu_s


def h2load(pod, *args):
    return sidebyside.h2load(pod, *args, timeout=SECS + 120)


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
    with sidebyside.started(H2APP, PROXIES, "wc") as (msg, pairs, _):
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


if __name__ == "__main__":
    main()
