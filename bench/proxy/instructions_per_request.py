# SPDX-License-Identifier: Apache-2.0
"""User-space instructions a weft-proxy pair executes per HTTP/1.1 request,
counted by valgrind's callgrind: a count does not move with the machine's
load the way a latency or a CPU time does, so two builds can be compared
on a noisy shared machine. For each weft-proxy binary in turn: a client and
a server pod (weft-init rules, the proxies as uid 15100, mTLS), benchsrv as
the app on port 8080 (protocol detection on), both proxies under callgrind;
bench/loadgen.c sends keep-alive GETs at 100/s over 8 connections, and
each proxy's count is written as it exits. A pair that served WARMUP
requests and one that served WARMUP + REQUESTS are counted, and the
difference divided by REQUESTS: start-up, handshakes and the pool's set-up
cancel out. Prints per binary the
client and server proxy's instructions per request and, with TOP > 0, the
functions with the largest own share. Every request must succeed.

usage (root): instructions_per_request.py LOADGEN BENCHSRV REQUESTS TOP WEFT_PROXY[,VAR=VALUE...]...
(the VAR=VALUEs go into that binary's proxies' environment)
With KEEP=DIR in the environment the count files are copied there (for
callgrind_annotate --inclusive=yes --tree=calling).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
# proxyenv takes weft-init from WEFT_BIN: the first binary's build.
os.environ.setdefault("WEFT_BIN", os.path.dirname(os.path.abspath(sys.argv[5].split(",")[0])))
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

LOADGEN, BENCHSRV = sys.argv[1:3]
REQUESTS, TOP, PROXIES = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
WARMUP, RATE, CONNS = 400, 100, 8
# The proxy executes itself again to set this tunable (proxy/main.c) unless
# it is already set; under valgrind that exec would leave valgrind behind.
TUNABLES = "glibc.malloc.tcache_count=0"


def load(pod, ip, n):
    argv = [LOADGEN, "--url", f"http://{ip}:8080/", "--method", "GET", "--connections", str(CONNS),
            "--rate", str(RATE), "--duration", str(n / RATE + 30), "--requests", str(n)]
    res = json.loads(pod.run(argv, timeout=n / RATE + 90).stdout.strip().splitlines()[-1])
    assert res["errors"] == 0 and res["requests"] == n, res


def total_ir(path):
    with open(path) as f:
        return int(next(line.split()[1] for line in f if line.startswith("totals:")))


def by_function(path):
    """{function: own instructions} of one count file."""
    out = subprocess.run(["callgrind_annotate", "--tree=none", "--inclusive=no", "--threshold=100", path], capture_output=True, text=True,
                         check=True).stdout
    rows = (re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", x) for x in out.splitlines())
    # "=> callee" rows are a call's inclusive cost inside the caller above
    return {m.group(2): int(m.group(1).replace(",", "")) for m in rows
            if m and ":" in m.group(2) and not m.group(2).startswith("=>")}


def top_per_request(long, base):
    """The TOP functions by own instructions per request (the long run's
    count less the warm-up run's), as table rows."""
    a, b = by_function(long), by_function(base)
    per = sorted(((n - b.get(f, 0)) / REQUESTS, f) for f, n in a.items())
    return [f"| {n:,.0f} | {f} |" for n, f in reversed(per[-TOP:])]


def measure(spec, d, ca, net, tag, n):
    """The callgrind counts of a fresh pair that served n requests, written
    as each proxy exits on SIGTERM: [client's file, server's file]."""
    proxy, *extra = spec.split(",")
    cpod, spod = net.add_pod(f"c{tag}"), net.add_pod(f"s{tag}")
    srv = spod.popen([BENCHSRV, "8080"])
    assert srv.stdout.readline().strip() == b"ready"
    procs, outs = [], []
    try:
        for pod, sa in ((cpod, "client"), (spod, "server")):
            cert, key = ca.issue("bench", sa)
            pe.init_pod(pod)
            env = {"PATH": "/usr/bin:/bin", "WEFT_POD_NAMESPACE": "bench", "WEFT_SERVICE_ACCOUNT": sa,
                   "WEFT_MESH_NETWORKS": "198.18.0.0/16", "WEFT_CERT": cert, "WEFT_KEY": key,
                   "WEFT_TRUST_BUNDLE": ca.crt, "WEFT_LOG_LEVEL": "warn", "GLIBC_TUNABLES": TUNABLES}
            env.update(x.split("=", 1) for x in extra)
            outs.append(os.path.join(d, f"callgrind-{tag}-{sa}.out"))
            procs.append(pod.popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={outs[-1]}", proxy],
                                   uid=pe.PROXY_UID, env=env, stdout=subprocess.DEVNULL,
                                   stderr=open(outs[-1] + ".log", "w")))
            if pod.run([proxy, "wait-ready", "--timeout-seconds", "120"], check=False, timeout=130).returncode:
                with open(outs[-1] + ".log") as f:
                    raise SystemExit(f"{proxy} under callgrind did not become ready:\n{f.read()[-3000:]}")
        load(cpod, spod.ip4, n)
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(timeout=120) == 0, f"{proxy} under callgrind exited {p.returncode}"
        return outs
    finally:
        for p in procs + [srv]:
            p.kill()
            p.wait()


def main():
    with tempfile.TemporaryDirectory(prefix="weft-ipr-") as d, netns.Network(prefix="wi", ipv6=False) as net:
        ca = pe.CA(d)
        os.chmod(d, 0o777)  # after CA, which sets its own mode: the proxies' uid writes its counts here
        print("| weft-proxy | client proxy instructions/request | server proxy | both |")
        print("|---|---|---|---|")
        tops = []
        for i, proxy in enumerate(PROXIES):
            base = measure(proxy, d, ca, net, f"{i}w", WARMUP)
            dumps = measure(proxy, d, ca, net, f"{i}l", WARMUP + REQUESTS)
            per = [(total_ir(f) - total_ir(b)) / REQUESTS for f, b in zip(dumps, base)]
            if os.environ.get("KEEP"):
                os.makedirs(os.environ["KEEP"], exist_ok=True)
                for f in dumps + base:
                    shutil.copy(f, os.environ["KEEP"])
            print(f"| {proxy} | {per[0]:,.0f} | {per[1]:,.0f} | {sum(per):,.0f} |", flush=True)
            if TOP:
                tops.append((proxy, [top_per_request(f, b) for f, b in zip(dumps, base)]))
        for proxy, sides in tops:
            for side, rows in zip(("client", "server"), sides):
                print(f"\n{proxy}, {side} proxy:\n\n| own instructions/request | function |\n|---|---|")
                print("\n".join(rows))


if __name__ == "__main__":
    main()
