# SPDX-License-Identifier: Apache-2.0
"""What an idle weft-proxy keeps resident after load, for one or more
weft-proxy binaries side by side in one run: a meshed pod pair per binary
(h2_app.c and proxy_app.py as the server's apps), the same load through
each pair in turn (gRPC unary over h2c with h2load: 4 connections x 10
streams for SECONDS, then 20 runs of 100 connections of one call each;
HTTP/1.1 with h2load --h1: 10 runs of 100 connections of one request), and
each proxy's VmRSS, RssAnon, RssFile and weft_proxy_heap_bytes sampled idle
after start, after one call ("warm": what first use allocates once), right
after the load, and once the pooled upstream connections have closed idle
and a trim period has passed. Then the mappings whose Rss grew from warm
to the end. Root: network namespaces, iptables.

usage: rss_after_load.py H2APP SECONDS WEFT_PROXY[,VAR=VALUE...]...
(each VAR=VALUE goes into that pair's proxies' environment, e.g. a
GLIBC_TUNABLES setting to compare)
"""
import os
import sys
import time

os.environ.setdefault("WEFT_BIN", os.path.dirname(os.path.abspath(sys.argv[3].split(",")[0])))
import sidebyside  # noqa: E402
from sidebyside import GRPC, GRPC_PATH, H2_PORT  # noqa: E402
from rss_breakdown import rss_by_mapping, status  # noqa: E402

H2APP, SECS, PROXIES = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
# UPSTREAM_H2_IDLE_MS (60 s) closes the pooled connections, then the next
# WORKER_TRIM_MS (10 s) tick trims.
SETTLE_S = 75


def sample(mp):
    pid = mp.pid()
    st = {k: int(v) for k, v in status(pid).items()}
    st["heap_in_use"] = int(mp.metric(r'^weft_proxy_heap_bytes\{kind="in_use"\}')) // 1024
    st["heap_held"] = int(mp.metric(r'^weft_proxy_heap_bytes\{kind="held"\}')) // 1024
    return st, rss_by_mapping(pid)


def h2load(pod, *args):
    return sidebyside.h2load(pod, *args, timeout=SECS + 60)


def load(front, back_ip, msg):
    url = f"http://{back_ip}:{H2_PORT}{GRPC_PATH}"
    h2load(front.pod, "-D", str(SECS), "-c", "4", "-m", "10", "-d", msg, *GRPC, url)
    for _ in range(20):
        h2load(front.pod, "-n", "100", "-c", "100", "-m", "1", "-d", msg, *GRPC, url)
    for _ in range(10):
        h2load(front.pod, "--h1", "-n", "100", "-c", "100", f"http://{back_ip}:8080/")


def main():
    with sidebyside.started(H2APP, PROXIES, "wr") as (msg, pairs, _):
        time.sleep(1)
        samples = [{} for _ in pairs]
        for s, (_, front, back) in zip(samples, pairs):
            s["start"] = [sample(p) for p in (front, back)]
        for s, (_, front, back) in zip(samples, pairs):
            h2load(front.pod, "-n", "1", "-d", msg, *GRPC, f"http://{back.ip4}:{H2_PORT}{GRPC_PATH}")
            h2load(front.pod, "--h1", "-n", "1", f"http://{back.ip4}:8080/")
        time.sleep(1)
        for s, (_, front, back) in zip(samples, pairs):
            s["warm"] = [sample(p) for p in (front, back)]
        for _, front, back in pairs:
            load(front, back.ip4, msg)
        time.sleep(1)
        for s, (_, front, back) in zip(samples, pairs):
            s["after load"] = [sample(p) for p in (front, back)]
        time.sleep(SETTLE_S)
        for s, (_, front, back) in zip(samples, pairs):
            s[f"{SETTLE_S} s later"] = [sample(p) for p in (front, back)]
        report(pairs, samples)


def report(pairs, samples):
    print("KiB, client proxy + server proxy:\n")
    print("| binary | when | VmRSS | RssAnon | RssFile | heap in use | heap held |")
    print("|---|---|---|---|---|---|---|")
    for (proxy, _, _), s in zip(pairs, samples):
        for when, both in s.items():
            cols = [" + ".join(str(st[k]) for st, _ in both)
                    for k in ("VmRSS", "RssAnon", "RssFile", "heap_in_use", "heap_held")]
            print(f"| {proxy} | {when} | " + " | ".join(cols) + " |")
    for (proxy, _, _), s in zip(pairs, samples):
        last = list(s)[-1]
        for side, (warm, end) in zip(("client", "server"), zip(s["warm"], s[last])):
            grew = {k: end[1][k] - warm[1].get(k, 0) for k in end[1]}
            top = sorted(((v, k) for k, v in grew.items() if v), reverse=True)[:5]
            print(f"\n{proxy}, {side} proxy, Rss grown from warm to {last}: "
                  + ", ".join(f"{os.path.basename(k)} {v:+d}" for v, k in top))


if __name__ == "__main__":
    main()
