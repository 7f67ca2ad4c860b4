# SPDX-License-Identifier: Apache-2.0
"""How long do client-first clients take to send their first bytes after
connecting? That gap is what weft-proxy's protocol detection waits for, so
it bounds how short WEFT_DETECT_TIMEOUT_MS may be. Real clients (curl, wget,
nghttp with h2c prior knowledge, openssl s_client, Python's http.client) in
one meshed pod call the app of another through the pair; each proxy's
histogram weft_proxy_protocol_detect_seconds (accept to decision, from
bytes) is read from /metrics after every client kind, once on an idle
machine and once with both cores kept busy by two spinning processes.

usage: detect_gap.py BIN_DIR [N]   (N calls per client, default 200; as root)
Prints one markdown table row per (load, client): calls, decisions and the
histogram's upper bound for the slowest, p99 and p50 decision.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
os.environ.setdefault("WEFT_BIN", os.path.abspath(sys.argv[1]))
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass\n"


def buckets(pod):
    out = {}
    for line in pod.metrics().splitlines():
        if line.startswith("weft_proxy_protocol_detect_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def quantile_bound(delta, q):
    """The smallest bucket bound holding at least q of the observations."""
    total = delta["+Inf"]
    for le, v in delta.items():
        if total and v >= q * total:
            return le
    return "-"


def main():
    rows = []
    with tempfile.TemporaryDirectory(prefix="weft-detect-gap-") as d, netns.Network() as net:
        ca = pe.CA(d)
        b = pe.MeshPod(net, "back", ca, "shop", "back")
        a = pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_DETECT_TIMEOUT_MS": "10000"})
        url = f"http://{b.ip4}:8080/x"
        clients = {
            "curl": ["curl", "-s", "-o", "/dev/null", "--max-time", "20", url],
            "wget": ["wget", "-q", "-O", "/dev/null", "-T", "20", url],
            "python http.client": [sys.executable, "-c",
                                   "import http.client,sys;c=http.client.HTTPConnection(sys.argv[1],8080,timeout=20);"
                                   "c.request('GET','/x');c.getresponse().read()", b.ip4],
            "nghttp (h2c prior knowledge)": ["nghttp", "-t", "20", "--no-dep", url.replace(":8080/x", ":7000/")],
            "openssl s_client (TLS)": ["openssl", "s_client", "-connect", f"{b.ip4}:7000", "-brief"],
        }
        for load in ("idle", "2 busy cores"):
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)] if load != "idle" else []
            try:
                for name, argv in clients.items():
                    before = buckets(a)
                    for _ in range(N):
                        # Echo port answers nghttp and s_client with their own bytes; they end at EOF or timeout.
                        a.pod.run(argv, check=False, timeout=30, input="" if "openssl" in argv[0] else None)
                    after = buckets(a)
                    delta = {le: after[le] - before.get(le, 0) for le in after}
                    rows.append((load, name, N, int(delta["+Inf"]), quantile_bound(delta, 1.0),
                                 quantile_bound(delta, 0.99), quantile_bound(delta, 0.5)))
            finally:
                for s in spinners:
                    s.kill()
                    s.wait()
        timeouts = a.metric(r'protocol_detections_total\{direction="outbound",result="timeout"')
    print("| load | client | calls | decided | slowest <= s | p99 <= s | p50 <= s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"\ntimeouts (10 s): {int(timeouts)}")


if __name__ == "__main__":
    main()
