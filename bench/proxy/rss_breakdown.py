# SPDX-License-Identifier: Apache-2.0
"""Where an idle weft-proxy's resident memory lives: one meshed pod pair,
one call through it, then the server proxy's Rss summed per mapping from
/proc/<pid>/smaps (largest first). Root: network namespaces, iptables.

usage: rss_breakdown.py [BIN_DIR]    (default build/bin)
"""
import collections
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
if len(sys.argv) > 1:
    os.environ["WEFT_BIN"] = os.path.abspath(sys.argv[1])
import netns  # noqa: E402
import proxyenv as pe  # noqa: E402


def rss_by_mapping(pid):
    """{mapping name: resident KiB}; anonymous mappings count as [anon]."""
    totals, current = collections.Counter(), None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's header line
                current = fields[5] if len(fields) > 5 else "[anon]"
            elif fields[0] == "Rss:":
                totals[current] += int(fields[1])
    return totals


def status(pid, keys=("VmRSS", "RssAnon", "RssFile")):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.split()[0] for k, v in (line.split(":", 1) for line in f) if k in keys}


def main():
    with tempfile.TemporaryDirectory(prefix="weft-rss-") as d, netns.Network() as net:
        ca = pe.CA(d)
        server = pe.MeshPod(net, "back", ca, "shop", "back")
        client = pe.MeshPod(net, "front", ca, "shop", "front")
        try:
            assert pe.request(client.pod, server.ip4, 7000, b"x") == b"x"
            time.sleep(1)
            pid = server.pid()
            print(" ".join(f"{k}={v}KiB" for k, v in status(pid).items()))
            for name, kib in rss_by_mapping(pid).most_common():
                if kib:
                    print(f"{kib:8d} KiB  {name}")
        finally:
            client.stop_proxy()
            server.stop_proxy()


if __name__ == "__main__":
    main()
