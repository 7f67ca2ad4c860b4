# SPDX-License-Identifier: Apache-2.0
"""Where a weft-proxy pair's time goes under one bench_proxy.py load: a
client and a server pod (weft-init rules, the proxies as uid 15100, mTLS),
benchsrv as the app, one loadgen run while `perf record` samples both
proxies; prints the top of `perf report` per proxy (by shared object, and
by symbol).

usage (root): profile_pair.py BIN_DIR LOADGEN BENCHSRV MODE [SECONDS]
MODE: max (16 keep-alive connections, maximum rate) | newconn (8
connections, a new connection for every request) | fixed (8 connections,
1,000/s). Port 8080 (protocol detection on) is used.
"""
import json
import os
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

BIN, LOADGEN, BENCHSRV, MODE = sys.argv[1:5]
SECS = int(sys.argv[5]) if len(sys.argv) > 5 else 5
PROXY = os.path.join(BIN, "weft-proxy")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time the process has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    if MODE not in ("max", "newconn", "fixed"):
        raise SystemExit(f"profile_pair: MODE must be max, newconn or fixed, not {MODE!r}")
    with tempfile.TemporaryDirectory(prefix="weft-prof-") as d, netns.Network(prefix="wp", ipv6=False) as net:
        os.chmod(d, 0o755)
        ca = pe.CA(d)
        cpod, spod = net.add_pod("pc"), net.add_pod("ps")
        srv = spod.popen([BENCHSRV, "8080"])
        assert srv.stdout.readline().strip() == b"ready"
        pids = []
        for pod, sa in ((cpod, "client"), (spod, "server")):
            pod.run(["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"])
            cert, key = ca.issue("bench", sa)
            pe.init_pod(pod)
            env = {"PATH": "/usr/bin:/bin", "WEFT_POD_NAMESPACE": "bench", "WEFT_SERVICE_ACCOUNT": sa,
                   "WEFT_MESH_NETWORKS": "198.18.0.0/24", "WEFT_CERT": cert, "WEFT_KEY": key,
                   "WEFT_TRUST_BUNDLE": ca.crt, "WEFT_LOG_LEVEL": "warn"}
            pids.append(pod.popen([PROXY], uid=pe.PROXY_UID, env=env, stdout=subprocess.DEVNULL).pid)
            assert pod.run([PROXY, "wait-ready", "--timeout-seconds", "10"], check=False).returncode == 0
        argv = [LOADGEN, "--url", f"http://{spod.ip4}:8080/", "--method", "GET", "--duration", str(SECS),
                "--requests", str(SECS * 1000 if MODE == "fixed" else 100000000)]
        argv += {"max": ["--connections", "16"], "newconn": ["--connections", "8", "--new-connection"],
                 "fixed": ["--connections", "8", "--rate", "1000"]}[MODE]
        datas = [os.path.join(d, f"perf-{i}.data") for i in range(2)]
        perfs = [subprocess.Popen(["perf", "record", "-q", "-g", "-F", "999", "-p", str(p), "-o", f, "--",
                                   "sleep", str(SECS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for p, f in zip(pids, datas)]
        time.sleep(0.2)
        cpu0 = [cpu_seconds(p) for p in pids]
        out = cpod.run(argv, timeout=SECS + 60).stdout.strip().splitlines()[-1]
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0)]
        n = json.loads(out)["requests"]
        print(out)
        print(f"CPU: client proxy {cpu[0]:.2f} s, server proxy {cpu[1]:.2f} s over the run (with perf sampling): "
              f"{cpu[0] / max(n, 1) * 1e6:.0f} and {cpu[1] / max(n, 1) * 1e6:.0f} µs per request")
        for p in perfs:
            p.wait(timeout=SECS + 60)
        for side, f in zip(("client proxy", "server proxy"), datas):
            for sort in ("dso", "dso,sym"):
                out = subprocess.run(["perf", "report", "-i", f, "--no-children", "--sort", sort, "--stdio",
                                      "-g", "none", "--percent-limit", "1.5"], capture_output=True, text=True,
                                     timeout=120).stdout
                lines = [x for x in out.splitlines() if x.strip() and not x.startswith("#")]
                print(f"\n{side}, by {sort}:")
                print("\n".join(lines[:25]))


if __name__ == "__main__":
    main()
