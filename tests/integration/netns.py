# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for tests that need several hosts: "pods" as network
namespaces joined by veth pairs to one bridge in a "node" namespace.

Addresses: 198.18.0.0/24 (node 198.18.0.1, pods .2, .3, ...) and
2001:2::/64 (node ::1, pods ::2, ...); the node also has 198.18.1.1, which
pods reach through their default route (a host "outside" the pod network). Nothing is routed out: the node
namespace has no uplink. Everything a Network creates (namespaces, and with
them interfaces, iptables rules and sockets; processes started through it)
is removed by close(), which the context manager calls also on failure.

Weft binaries started with popen(..., weft_log=<path or callable>) are
stopped as their users stop them: close() sends them SIGTERM (all at once, so
their drains overlap), kills the plain helpers (apps, sleeps), then waits for
each Weft process and raises AssertionError when one had to be killed, exited
with anything but 0 or left a sanitizer report in its log (procs.stop_cleanly):
a test that leaves a Weft process unable to stop fails in its teardown, and
AddressSanitizer's leak check, which runs at exit only, sees every such exit.

    from netns import Network
    with Network() as net:
        a = net.add_pod("a")
        a.run(["ip", "addr"])
        p = a.popen(["sleep", "10"], uid=15100)
        with a.inside():
            s = socket.create_connection((net.pods["b"].ip4, 80))

Needs root. Names are unique per process and call, so parallel tests do not
collide.
"""
import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import time

import procs

IP = shutil.which("ip") or "/usr/sbin/ip"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()

NODE4, NODE6 = "198.18.0.1", "2001:2::1"
BRIDGE_MAC = "02:57:46:00:00:01"  # the node's bridge, locally administered
EXTERNAL4 = "198.18.1.1"  # a second node address outside the pods' /24 (an "outside" service)
# How long close() waits for a Weft process after SIGTERM: the proxy's default
# drain is 25 s, and sanitizers slow the exit.
WEFT_STOP_TIMEOUT = 45


def sh(argv, check=True, timeout=30, **kw):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=timeout, **kw)


@contextlib.contextmanager
def inside(netns):
    """Runs the block with this thread in `netns`: sockets created in it keep
    that namespace after the block ends."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        os.close(target)
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(home)


class Host:
    """A network namespace and the processes started in it."""

    def __init__(self, net, name, netns, ip4, ip6):
        self.net, self.name, self.netns, self.ip4, self.ip6 = net, name, netns, ip4, ip6
        self.procs = []
        self.weft = []  # [proc, log]: Weft binaries that must stop cleanly on SIGTERM

    def run(self, argv, check=True, timeout=30, uid=None, env=None, input=None):
        return sh(self._wrap(argv, uid), check=check, timeout=timeout, env=env, input=input)

    def popen(self, argv, uid=None, env=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, weft_log=None, **kw):
        """Starts a process in the namespace (as uid/gid `uid` with no
        supplementary groups when given). A plain process is killed by
        Network.close(); one with `weft_log` (a path or a callable returning
        its log's text) is a Weft binary: close() stops it with SIGTERM and
        fails unless it exits 0 with no sanitizer report (see the module
        doc). `ip netns exec` and setpriv exec, so the pid is the binary's."""
        p = subprocess.Popen(self._wrap(argv, uid), env=env, stdout=stdout, stderr=stderr,
                             start_new_session=True, **kw)
        self.procs.append(p)
        if weft_log is not None:
            self.weft.append([p, weft_log])
        return p

    def checked(self, proc):
        """The caller has stopped and checked `proc` itself: close() leaves it."""
        self.weft = [w for w in self.weft if w[0] is not proc]

    def _signal_weft(self):
        for p, _ in self.weft:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    def _stop_weft(self):
        """Waits for the (already signalled) Weft processes; their failures."""
        failures = []
        for p, log in self.weft:
            try:
                procs.stop_cleanly(p, log, sig=None, timeout=WEFT_STOP_TIMEOUT)
            except AssertionError as e:
                failures.append(f"{self.name}: {' '.join(map(str, p.args[-8:]))}: {e}")
        self.weft = []
        return failures

    def _wrap(self, argv, uid):
        prefix = [IP, "netns", "exec", self.netns]
        if uid is not None:
            prefix += [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
        return prefix + list(argv)

    def inside(self):
        return inside(self.netns)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.procs = []


class Network:
    """A node namespace with a bridge, and pods attached to it."""

    def __init__(self, prefix="wt", ipv6=True):
        self.id = f"{prefix}{os.getpid() % 100000}x{next(_counter)}"
        self.ipv6 = ipv6
        self.pods = {}
        self.node = None
        self._netns = []
        try:
            self._create_node()
        except Exception:
            self.close()
            raise

    def _add_netns(self, suffix):
        name = f"{self.id}-{suffix}"
        sh([IP, "netns", "add", name])
        self._netns.append(name)
        sh([IP, "-n", name, "link", "set", "lo", "up"])
        return name

    def _create_node(self):
        ns = self._add_netns("node")
        # A fixed address: a bridge without one takes its lowest port's, so
        # it would change as pods come and go, and the pods' neighbour
        # entries for the node would point at a MAC nobody answers for.
        sh([IP, "-n", ns, "link", "add", "br0", "address", BRIDGE_MAC, "type", "bridge"])
        sh([IP, "-n", ns, "addr", "add", f"{NODE4}/24", "dev", "br0"])
        sh([IP, "-n", ns, "addr", "add", f"{EXTERNAL4}/24", "dev", "br0"])
        if self.ipv6:
            sh([IP, "-n", ns, "addr", "add", f"{NODE6}/64", "dev", "br0", "nodad"])
        sh([IP, "-n", ns, "link", "set", "br0", "up"])
        self.node = Host(self, "node", ns, NODE4, NODE6 if self.ipv6 else None)

    def add_pod(self, name):
        """A new pod namespace with eth0 on the bridge; returns its Host."""
        n = len(self.pods) + 2
        ip4 = f"198.18.0.{n}"
        ip6 = f"2001:2::{n:x}" if self.ipv6 else None
        ns = self._add_netns(name)
        veth = f"v{self.id[-8:]}{n}"[-15:]
        node = self.node.netns
        sh([IP, "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh([IP, "-n", node, "link", "set", veth, "master", "br0", "up"])
        sh([IP, "-n", ns, "addr", "add", f"{ip4}/24", "dev", "eth0"])
        if ip6:
            sh([IP, "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])
        sh([IP, "-n", ns, "link", "set", "eth0", "up"])
        sh([IP, "-n", ns, "route", "add", "default", "via", NODE4])
        pod = Host(self, name, ns, ip4, ip6)
        self.pods[name] = pod
        return pod

    def close(self):
        """Stops Weft processes cleanly and kills the rest, removes every
        namespace, then raises AssertionError if a Weft process did not stop
        cleanly (after the cleanup, so a failure leaves nothing behind)."""
        hosts = list(self.pods.values()) + ([self.node] if self.node else [])
        for h in hosts:
            h._signal_weft()
        weft = {id(p) for h in hosts for p, _ in h.weft}
        for h in hosts:  # helpers first: a Weft process must not depend on them to exit
            for p in h.procs:
                if id(p) not in weft and p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
        failures = []
        for h in hosts:
            failures += h._stop_weft()
        for h in hosts:
            h.kill_all()
        for ns in reversed(self._netns):
            # Processes may linger a moment after SIGKILL; retry briefly.
            for _ in range(50):
                if sh([IP, "netns", "del", ns], check=False).returncode == 0:
                    break
                time.sleep(0.1)
        self._netns = []
        if failures:
            raise AssertionError("Weft processes did not stop cleanly:\n" + "\n".join(failures))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
