# SPDX-License-Identifier: Apache-2.0
"""Times weft-init writing a full rule set (IPv4 and IPv6) into a fresh
network namespace, against the baseline of one iptables/ip6tables call per
rule of the same rule set, measured in the same run, interleaved. Each
sample gets a new namespace (created and deleted outside the timed part).
Prints one JSON object; exits 1 if the median is above 50 ms or not below
the baseline's."""
import ctypes
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

BIN = os.environ.get("WEFT_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
INIT = os.path.join(BIN, "weft-init")
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
ARGS = ["--proxy-uid", "15100", "--proxy-gid", "15100", "--inbound-port", "15006",
        "--outbound-port", "15001", "--skip-inbound-ports", "22,8443",
        "--skip-outbound-ports", "5432,6379", "--skip-outbound-cidrs",
        "169.254.169.254/32,10.96.0.0/12,fd00:10:96::/112", "--ipv6", "true", "--mode", "auto"]
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def baseline_commands():
    """The dry-run text as one iptables command per chain and rule."""
    text = subprocess.run([INIT, *ARGS, "--dry-run"], check=True, capture_output=True,
                          text=True).stdout
    cmds, tool = [], None
    for line in text.splitlines():
        if line.startswith("# ipv4"):
            tool = "iptables-nft"
        elif line.startswith("# ipv6"):
            tool = "ip6tables-nft"
        elif line.startswith(":"):
            cmds.append([tool, "-t", "nat", "-N", line[1:].split()[0]])
        elif line.startswith("-A "):
            cmds.append([tool, "-t", "nat", *shlex.split(line)])
    return cmds


class Netns:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        libc.setns(self.home, CLONE_NEWNET)
        os.close(self.home)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def timed(cmds):
    """Milliseconds to run cmds one after the other, in this namespace."""
    t0 = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - t0) * 1000


def rules_in_ns():
    out = subprocess.run(["iptables-nft-save", "-t", "nat"], check=True, capture_output=True,
                         text=True).stdout
    out6 = subprocess.run(["ip6tables-nft-save", "-t", "nat"], check=True, capture_output=True,
                          text=True).stdout
    return sum(l.startswith("-A ") for l in (out + out6).splitlines())


def main():
    base = baseline_commands()
    nrules = sum(c[3] == "-A" for c in base)
    weft, baseline = [], []
    for i in range(RUNS):
        for kind in ("weft", "baseline"):
            with Netns(f"wfbench-{os.getpid()}-{i}-{kind}"):
                if kind == "weft":
                    weft.append(timed([[INIT, *ARGS]]))
                else:
                    baseline.append(timed(base))
                got = rules_in_ns()
                if got != nrules:
                    sys.exit(f"bench/init: {kind} left {got} rules, expected {nrules}")
    res = {
        "runs": RUNS,
        "rules": nrules,
        "baseline_commands": len(base),
        "weft_median_ms": round(statistics.median(weft), 2),
        "weft_p90_ms": round(sorted(weft)[int(0.9 * (RUNS - 1))], 2),
        "baseline_median_ms": round(statistics.median(baseline), 2),
        "baseline_p90_ms": round(sorted(baseline)[int(0.9 * (RUNS - 1))], 2),
    }
    res["ratio_weft_to_baseline"] = round(res["weft_median_ms"] / res["baseline_median_ms"], 3)
    res["pass"] = res["weft_median_ms"] <= 50 and res["weft_median_ms"] < res["baseline_median_ms"]
    print(json.dumps(res))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
