# SPDX-License-Identifier: Apache-2.0
"""The latency a weft-proxy pair adds at a fixed rate, for one or more
weft-proxy binaries side by side in one run, against the same path with no
proxies: bench/loadgen.c sends HTTP/1.1 keep-alive GETs at 1,000/s over 8
connections (latency from each request's scheduled send time) to
bench/proxy/benchsrv.c (1 KB answers) in the server pod, through each
binary's meshed pod pair, straight between two unmeshed pods (direct), and
through a pair of bench/proxy/nullrelay.c, the floor of any two-proxy path
on this machine: two transparent relays under the same weft-init rules that
only copy bytes (no TLS, no HTTP). ROUNDS
rounds, the order rotating per round; per setup the median p50, p99 and
p99.9 over the rounds, each setup's added latency against direct's medians,
and the median CPU time its two proxies (or relays) used per request. Every request must succeed. Root: network namespaces, iptables.

usage: latency_side_by_side.py LOADGEN BENCHSRV NULLRELAY H2APP SECONDS ROUNDS WEFT_PROXY[,VAR=VALUE...]...
"""
import json
import os
import statistics
import sys

os.environ.setdefault("WEFT_BIN", os.path.dirname(os.path.abspath(sys.argv[7].split(",")[0])))
import sidebyside  # noqa: E402
import proxyenv as pe  # noqa: E402

LOADGEN, BENCHSRV, NULLRELAY, H2APP = sys.argv[1:5]
SECS, ROUNDS, PROXIES = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7:]
APP_PORT, RATE, CONNS = 8082, 1000, 8


def cpu_split(pids):
    """(user, system) CPU seconds the processes have used together."""
    splits = [sidebyside.cpu_split(p) for p in pids]
    return sum(u for u, _ in splits), sum(s for _, s in splits)


def fixed_rate(pod, ip, pids):
    u0, s0 = cpu_split(pids)
    w0 = sum(sidebyside.switches(p) for p in pids)
    f0 = sum(sidebyside.faults(p) for p in pids)
    argv = [LOADGEN, "--url", f"http://{ip}:{APP_PORT}/", "--method", "GET", "--connections", str(CONNS),
            "--rate", str(RATE), "--duration", str(SECS), "--requests", str(SECS * RATE)]
    res = json.loads(pod.run(argv, timeout=SECS + 60).stdout.strip().splitlines()[-1])
    assert res["errors"] == 0 and res["requests"] == SECS * RATE, res
    u1, s1 = cpu_split(pids)
    res["usr_us"], res["sys_us"] = ((u1 - u0) / res["requests"] * 1e6, (s1 - s0) / res["requests"] * 1e6)
    res["cpu_us"] = res["usr_us"] + res["sys_us"]
    res["switches"] = (sum(sidebyside.switches(p) for p in pids) - w0) / res["requests"]
    res["faults"] = (sum(sidebyside.faults(p) for p in pids) - f0) / res["requests"]
    return res


def main():
    with sidebyside.started(H2APP, PROXIES, "wl") as (_, pairs, net):
        client, server = net.add_pod("dc"), net.add_pod("ds")
        floor = net.add_pod("nc"), net.add_pod("ns")
        apps = []
        try:
            for pod in floor:
                pe.init_pod(pod)
                apps.append(pod.popen([NULLRELAY], uid=pe.PROXY_UID))
                assert apps[-1].stdout.readline().strip() == b"ready"
            setups = [("direct (no proxy)", client, server, ()),
                      ("null relay pair (floor)", *floor, [a.pid for a in apps])]
            setups += [(spec, f, b, (f.pid(), b.pid())) for spec, f, b in pairs]
            for _, _, back, _ in setups:
                pod = getattr(back, "pod", back)
                apps.append(pod.popen([BENCHSRV, str(APP_PORT)]))
                assert apps[-1].stdout.readline().strip() == b"ready"
            runs = {name: [] for name, _, _, _ in setups}
            for r in range(ROUNDS):
                for name, front, back, pids in setups[r % len(setups):] + setups[:r % len(setups)]:
                    runs[name].append(fixed_rate(getattr(front, "pod", front), getattr(back, "pod", back).ip4, pids))
        finally:
            for a in apps:
                a.kill()
                a.wait()
    med = {name: {k: statistics.median(x[k] for x in rs) for k in ("p50_us", "p99_us", "p999_us", "cpu_us", "usr_us", "sys_us", "switches", "faults")}
           for name, rs in runs.items()}
    d = med[setups[0][0]]
    print("| setup | p50 µs | p99 µs | p99.9 µs | added p50 / p99 µs | CPU µs/request (user + system) | context switches/request | page faults/request | per round p50/p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in med.items():
        added = "-" if name == setups[0][0] else f"{m['p50_us'] - d['p50_us']:+.0f} / {m['p99_us'] - d['p99_us']:+.0f}"
        rounds = " ".join(f"{x['p50_us']:.0f}/{x['p99_us']:.0f}" for x in runs[name])
        cpu = "-" if name == setups[0][0] else f"{m['cpu_us']:.0f} ({m['usr_us']:.0f} + {m['sys_us']:.0f})"
        sw = "-" if name == setups[0][0] else f"{m['switches']:.2f} | {m['faults']:.2f}"
        print(f"| {name} | {m['p50_us']:.0f} | {m['p99_us']:.0f} | {m['p999_us']:.0f} | {added} | {cpu} | {sw} | {rounds} |")


if __name__ == "__main__":
    main()
