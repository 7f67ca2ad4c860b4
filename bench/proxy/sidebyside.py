# SPDX-License-Identifier: Apache-2.0
"""Meshed pod pairs, one per weft-proxy binary, for the benches that run
binaries side by side (rss_after_load.py, cost_side_by_side.py): each
pair's server pod runs h2_app.c (gRPC unary on H2_PORT) next to
proxyenv's HTTP/1.1 app on 8080, and each spec "WEFT_PROXY[,VAR=VALUE...]"
puts its VAR=VALUEs into that pair's proxies' environment. The caller sets
WEFT_BIN before importing this (proxyenv reads it) and is root (network
namespaces, iptables)."""
import contextlib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/integration"))
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402

H2_PORT, GRPC_PATH = 9090, "/bench.Echo/Unary"
TICK = os.sysconf("SC_CLK_TCK")
GRPC = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def cpu_split(pid):
    """(user, system) CPU seconds the process has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def switches(pid):
    """Context switches of all the process's threads so far: each wake-up
    from a blocking wait is one (voluntary), each preemption one more."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            n += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
    return n


def faults(pid):
    """Page faults (minor and major) the process has taken so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[9])


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    return sum(cpu_split(pid))


def h2load(pod, *args, timeout):
    """h2load in pod; every request must succeed. Returns how many did."""
    out = pod.run(["h2load", *args], timeout=timeout).stdout
    line = next(x for x in out.splitlines() if x.startswith("requests:"))
    assert " 0 failed, 0 errored" in line, line
    return int(re.search(r"(\d+) succeeded", line).group(1))


@contextlib.contextmanager
def started(h2app, specs, prefix):
    """Yields (msg, [(spec, front, back), ...], net): msg the path of one
    length-prefixed gRPC message for h2load -d, net the pods' network (for
    a bench's unmeshed pods); every proxy stopped after."""
    with tempfile.TemporaryDirectory(prefix="weft-%s-" % prefix) as d, \
            netns.Network(prefix=prefix, ipv6=False) as net:
        ca = pe.CA(d)
        msg = os.path.join(d, "grpc.msg")
        body = b"\x0a\x10weft-bench-grpc!"
        with open(msg, "wb") as f:
            f.write(b"\0" + len(body).to_bytes(4, "big") + body)
        os.chmod(d, 0o755)
        pairs = []
        try:
            for i, spec in enumerate(specs):
                pe.PROXY, *env = spec.split(",")  # MeshPod starts pe.PROXY
                env = dict(x.split("=", 1) for x in env)
                back = pe.MeshPod(net, f"b{i}", ca, "bench", "back", env=env)
                app = back.pod.popen([h2app, "b", str(H2_PORT), os.path.join(d, f"h2app{i}.log")],
                                     stderr=subprocess.DEVNULL)
                assert app.stdout.readline().strip() == b"ready"
                pairs.append((spec, pe.MeshPod(net, f"f{i}", ca, "bench", "front", env=env), back))
            yield msg, pairs, net
        finally:
            for _, front, back in pairs:
                front.stop_proxy()
                back.stop_proxy()
