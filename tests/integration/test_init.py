# SPDX-License-Identifier: Apache-2.0
"""weft-init against real iptables, real sockets and real network namespaces.

Each test builds an "app" namespace (the pod, where weft-init runs) and a
"peer" namespace joined by a veth pair, with addresses in 198.18.0.0/15 and
2001:2::/48 and no route out, runs the real build/bin/weft-init inside the
app namespace, and checks where real TCP connections land: on the proxy's
outbound (15001) or inbound (15006) listener, with SO_ORIGINAL_DST equal to
what was dialled, or directly on the server that was dialled. Namespaces
(and with them every rule and socket in them) are deleted in fixtures, also
when a test fails. Needs root.
"""
import ctypes
import ipaddress
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

import pytest

WEFT_BIN = os.environ.get("WEFT_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
INIT = os.path.join(WEFT_BIN, "weft-init")
PROXY_UID = 15100
OUTBOUND, INBOUND, ADMIN = 15001, 15006, 15020
SO_ORIGINAL_DST = 80        # SOL_IP
IP6T_SO_ORIGINAL_DST = 80   # SOL_IPV6
CLONE_NEWNET = 0x40000000
TIMEOUT = 3.0               # seconds for any one connect/accept

APP4, PEER4, FAR4 = "198.18.0.1", "198.18.0.2", "198.18.1.2"      # FAR: the peer's second subnet
APP6, PEER6, FAR6 = "2001:2::1", "2001:2::2", "2001:2:0:1::2"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(INIT, os.X_OK), reason="weft-init not built"),
]

_libc = ctypes.CDLL(None, use_errno=True)
IP = shutil.which("ip") or "/usr/sbin/ip"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30, **kw)


class NetNs:
    """Runs socket creation inside a named namespace: a socket keeps the
    namespace it was created in, so the test process drives every socket
    from its main thread."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        try:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self._home)

    def run(self, *args, check=True, env=None):
        return sh(IP, "netns", "exec", self.name, *args, check=check, env=env)

    def listen(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with self:
            s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(16)
        s.setblocking(False)
        return s

    def connect(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with self:
            c = socket.socket(fam, socket.SOCK_STREAM)
        c.settimeout(TIMEOUT)
        c.connect((host, port))
        return c

    def connect_as(self, uid, host, port, gid=None):
        """Connects from a process of uid `uid` and gid `gid` (default: uid)
        in this namespace; the connection is held open until the caller has
        looked at it."""
        gid = uid if gid is None else gid
        code = (
            "import socket,sys\n"
            f"c=socket.create_connection(({host!r},{port}),timeout={TIMEOUT})\n"
            "print('connected',flush=True)\nsys.stdin.read()\n"
        )
        p = subprocess.Popen(
            [IP, "netns", "exec", self.name, SETPRIV, f"--reuid={uid}", f"--regid={gid}",
             "--clear-groups", sys.executable, "-c", code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if line.strip() != "connected":
            p.kill()
            p.wait(timeout=10)
            raise AssertionError(f"uid {uid} connect failed: {p.stderr.read()}")
        return p


def _nsname(role):
    return f"wfinit-{role}-{os.getpid()}-{os.urandom(2).hex()}"


@pytest.fixture
def net():
    """app <-veth-> peer. The peer owns 198.18.0.2/24 and 198.18.1.2/24 (and
    the IPv6 equivalents); the app reaches both subnets on-link only."""
    app, peer = NetNs(_nsname("app")), NetNs(_nsname("peer"))
    created = []
    try:
        for ns in (app, peer):
            sh("ip", "netns", "add", ns.name)
            created.append(ns)
            ns.run("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "wfi0", "netns", app.name, "type", "veth", "peer", "name", "wfi1",
           "netns", peer.name)
        app.run("ip", "addr", "add", f"{APP4}/24", "dev", "wfi0")
        app.run("ip", "-6", "addr", "add", f"{APP6}/64", "dev", "wfi0", "nodad")
        app.run("ip", "link", "set", "wfi0", "up")
        app.run("ip", "route", "add", "198.18.1.0/24", "dev", "wfi0")
        app.run("ip", "-6", "route", "add", "2001:2:0:1::/64", "dev", "wfi0")
        peer.run("ip", "addr", "add", f"{PEER4}/24", "dev", "wfi1")
        peer.run("ip", "addr", "add", f"{FAR4}/24", "dev", "wfi1")
        peer.run("ip", "-6", "addr", "add", f"{PEER6}/64", "dev", "wfi1", "nodad")
        peer.run("ip", "-6", "addr", "add", f"{FAR6}/64", "dev", "wfi1", "nodad")
        peer.run("ip", "link", "set", "wfi1", "up")
        yield app, peer
    finally:
        for ns in created:
            sh("ip", "netns", "del", ns.name, check=False)


@pytest.fixture
def lone():
    """A namespace with nothing but loopback: no IPv6 address to capture."""
    ns = NetNs(_nsname("lone"))
    sh("ip", "netns", "add", ns.name)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        sh("ip", "netns", "del", ns.name, check=False)


@pytest.fixture
def socks():
    """Every socket a test opens, closed at the end."""
    opened = []
    yield opened
    for s in opened:
        s.close()


class Listeners:
    """The app's proxy listeners plus servers in app and peer."""

    def __init__(self, app, peer, socks, extra_app=(), extra_peer=()):
        self.by_sock = {}
        for ns, where, ports in ((app, "app", (OUTBOUND, INBOUND, ADMIN, *extra_app)),
                                 (peer, "peer", extra_peer)):
            for port in ports:
                for host in ("0.0.0.0", "::"):
                    s = ns.listen(host, port)
                    socks.append(s)
                    self.by_sock[s] = (where, port)

    def accept(self):
        """(where, port, accepted socket) of the one listener that got a
        connection within TIMEOUT."""
        r, _, _ = select.select(list(self.by_sock), [], [], TIMEOUT)
        assert r, "no listener accepted the connection"
        s = r[0]
        conn, _ = s.accept()
        where, port = self.by_sock[s]
        return where, port, conn


def original_dst(conn):
    if conn.family == socket.AF_INET6:
        raw = conn.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
        port = struct.unpack("!H", raw[2:4])[0]
        return str(ipaddress.IPv6Address(raw[8:24])), port
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def weft_init(ns, *args, env=None, check=True):
    r = ns.run(INIT, *args, check=False, env=env)
    if check:
        assert r.returncode == 0, f"weft-init {args} failed ({r.returncode}): {r.stderr}"
    return r


def saved(ns, family=4, legacy=False):
    """iptables-save -t nat without comments and counters, as a list of lines."""
    tool = ("ip6tables" if family == 6 else "iptables") + ("-legacy" if legacy else "-nft") + "-save"
    out = ns.run(tool, "-t", "nat").stdout
    return [l.split(" [")[0] if l.startswith(":") else l
            for l in out.splitlines() if l and not l.startswith("#")]


STD = ["--skip-inbound-ports", "8081", "--skip-outbound-ports", "9001",
       "--skip-outbound-cidrs", "198.18.1.0/24,2001:2:0:1::/64", "--ipv6", "auto", "--mode", "auto"]


@pytest.mark.parametrize("fam", [4, 6])
def test_capture(net, socks, fam):
    app, peer = net
    weft_init(app, *STD)
    L = Listeners(app, peer, socks, extra_app=(8080, 8081, 7000), extra_peer=(9000, 9001))
    app_ip, peer_ip, far_ip = (APP4, PEER4, FAR4) if fam == 4 else (APP6, PEER6, FAR6)
    loop = "127.0.0.1" if fam == 4 else "::1"

    def lands(conn_sock):
        socks.append(conn_sock)
        where, port, conn = L.accept()
        socks.append(conn)
        return where, port, conn

    # Outbound from the app: captured, SO_ORIGINAL_DST is what was dialled.
    where, port, conn = lands(app.connect(peer_ip, 9000))
    assert (where, port) == ("app", OUTBOUND)
    assert original_dst(conn) == (peer_ip, 9000)

    # The same connection from the proxy's uid, or only its gid, goes
    # straight out; another unprivileged uid is captured like root.
    for uid, gid, expect in ((PROXY_UID, PROXY_UID, ("peer", 9000)),
                             (1000, PROXY_UID, ("peer", 9000)),
                             (1000, 1000, ("app", OUTBOUND))):
        p = app.connect_as(uid, peer_ip, 9000, gid=gid)
        try:
            where, port, conn = L.accept()
            socks.append(conn)
            assert (where, port) == expect, (uid, gid)
        finally:
            p.kill()
            p.wait(timeout=10)

    # Inbound to an app port: lands on the inbound port, original port kept.
    where, port, conn = lands(peer.connect(app_ip, 8080))
    assert (where, port) == ("app", INBOUND)
    assert original_dst(conn) == (app_ip, 8080)

    # Skipped inbound port and the admin port reach their servers directly.
    assert lands(peer.connect(app_ip, 8081))[:2] == ("app", 8081)
    assert lands(peer.connect(app_ip, ADMIN))[:2] == ("app", ADMIN)

    # Skipped outbound port and CIDR bypass the proxy.
    assert lands(app.connect(peer_ip, 9001))[:2] == ("peer", 9001)
    assert lands(app.connect(far_ip, 9000))[:2] == ("peer", 9000)

    # App-to-app on loopback (and to its own pod IP) is untouched.
    assert lands(app.connect(loop, 7000))[:2] == ("app", 7000)
    assert lands(app.connect(app_ip, 8080))[:2] == ("app", 8080)

    # The proxy dialling its own pod IP goes back through inbound (a pod
    # calling its own Service meets inbound policy); to loopback it does not.
    for target, expect in (((app_ip, 8080), ("app", INBOUND)), ((loop, 8080), ("app", 8080))):
        p = app.connect_as(PROXY_UID, *target)
        try:
            where, port, conn = L.accept()
            socks.append(conn)
            assert (where, port) == expect, target
            if expect[1] == INBOUND:
                assert original_dst(conn) == target
        finally:
            p.kill()
            p.wait(timeout=10)


def lo_has_passthrough(pod):
    """Whether ::6/128, the IPv6 inbound passthrough source, is on lo."""
    return "inet6 ::6/128" in pod.run("ip", "-6", "addr", "show", "dev", "lo").stdout


@pytest.mark.parametrize("mode", ["nft", "legacy"])
def test_second_run_and_cleanup(net, mode):
    app, _ = net
    legacy = mode == "legacy"
    tool = "iptables-legacy" if legacy else "iptables-nft"
    tool6 = "ip6tables-legacy" if legacy else "ip6tables-nft"
    wait = ["-w", "10"] if legacy else []
    # Rules that are not weft's and must survive everything below.
    app.run(tool, *wait, "-t", "nat", "-N", "KEEP_ME")
    app.run(tool, *wait, "-t", "nat", "-A", "KEEP_ME", "-p", "udp", "-j", "RETURN")
    app.run(tool, *wait, "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "KEEP_ME")
    app.run(tool6, *wait, "-t", "nat", "-A", "PREROUTING", "-p", "udp", "-j", "RETURN")
    before = (saved(app, 4, legacy), saved(app, 6, legacy))

    weft_init(app, *STD[:-1], mode)
    first = (saved(app, 4, legacy), saved(app, 6, legacy))
    for rules in first:
        assert rules.count("-A PREROUTING -p tcp -j WEFT_INBOUND") == 1
        assert rules.count("-A OUTPUT -p tcp -j WEFT_OUTPUT") == 1
        assert any("REDIRECT --to-ports 15001" in l for l in rules)
    assert lo_has_passthrough(app)
    weft_init(app, *STD[:-1], mode)
    assert (saved(app, 4, legacy), saved(app, 6, legacy)) == first

    weft_init(app, "--cleanup", "--mode", mode)
    assert (saved(app, 4, legacy), saved(app, 6, legacy)) == before
    assert not lo_has_passthrough(app)
    # Nothing of ours left: a second cleanup is a no-op that succeeds.
    weft_init(app, "--cleanup", "--mode", mode)
    assert (saved(app, 4, legacy), saved(app, 6, legacy)) == before


def test_duplicate_jumps_are_repaired(net):
    app, _ = net
    weft_init(app, *STD)
    good = saved(app)
    app.run("iptables-nft", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-j", "WEFT_OUTPUT")
    app.run("iptables-nft", "-t", "nat", "-I", "PREROUTING", "-i", "wfi0", "-j", "WEFT_INBOUND")
    weft_init(app, *STD)
    assert sorted(saved(app)) == sorted(good)


def test_auto_picks_legacy_when_legacy_holds_rules(net):
    app, _ = net
    app.run("iptables-legacy", "-w", "10", "-t", "filter", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "DROP")
    r = weft_init(app, *STD)
    assert "backend=legacy" in r.stderr
    assert "-A OUTPUT -p tcp -j WEFT_OUTPUT" in saved(app, 4, legacy=True)
    assert not any("WEFT" in l for l in saved(app, 4, legacy=False))


def test_auto_without_ipv6_is_ipv4_only(lone):
    before6 = saved(lone, 6)
    r = weft_init(lone, *STD)
    assert "IPv4 only" in r.stderr
    assert "-A OUTPUT -p tcp -j WEFT_OUTPUT" in saved(lone, 4)
    assert saved(lone, 6) == before6


def test_ipv6_requested_but_unavailable(lone):
    lone.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    before = saved(lone, 4)
    r = weft_init(lone, "--ipv6", "true", check=False)
    assert r.returncode == 1
    assert "IPv6 requested" in r.stderr
    assert saved(lone, 4) == before


@pytest.mark.parametrize("args, flag, value", [
    (["--skip-inbound-ports", "80,http"], "--skip-inbound-ports", "80,http"),
    (["--skip-outbound-ports", "70000"], "--skip-outbound-ports", "70000"),
    (["--skip-outbound-cidrs", "10.0.0.1/8"], "--skip-outbound-cidrs", "10.0.0.1/8"),
    (["--proxy-uid", "0"], "--proxy-uid", "0"),
    (["--outbound-port=0"], "--outbound-port", "0"),
])
def test_bad_input_applies_nothing(net, args, flag, value):
    app, _ = net
    before = (saved(app, 4), saved(app, 6))
    r = weft_init(app, *STD, *args, check=False)
    assert r.returncode == 2
    assert flag in r.stderr and f'"{value}"' in r.stderr
    assert (saved(app, 4), saved(app, 6)) == before


def test_missing_iptables_restore(net):
    app, _ = net
    before = saved(app)
    with tempfile.TemporaryDirectory() as empty:
        r = weft_init(app, *STD, env={"PATH": empty}, check=False)
    assert r.returncode == 1
    assert "iptables not found" in r.stderr
    assert saved(app) == before


NFT_TOOLS = ("iptables-nft-save", "iptables-nft-restore", "ip6tables-nft-save", "ip6tables-nft-restore")


def fake_path(d, **fakes):
    """A PATH directory holding the real nft tools, except those named in
    `fakes` (tool name with - as _, e.g. ip6tables_nft_restore=script), which
    are shell scripts. A script may run the real tool as $REAL."""
    for tool in NFT_TOOLS:
        key = tool.replace("-", "_")
        path = os.path.join(d, tool)
        if key in fakes:
            with open(path, "w") as f:
                f.write("#!/bin/sh\nREAL=/usr/sbin/%s\n%s\n" % (tool, fakes[key]))
            os.chmod(path, 0o755)
        else:
            os.symlink(f"/usr/sbin/{tool}", path)
    return {"PATH": d}


FAIL = "cat >/dev/null\necho 'fake %s: line 3 failed' >&2\nexit 4"


def failing_run(app, **fakes):
    """weft-init (IPv4 and IPv6, nft) with some tools replaced: its result."""
    with tempfile.TemporaryDirectory() as d:
        return weft_init(app, "--skip-outbound-ports", "1234", "--ipv6", "true", "--mode", "nft",
                         env=fake_path(d, **fakes), check=False)


def test_failing_restore_rolls_back(net):
    """IPv4 applies, ip6tables-restore fails: its stderr is reported, the exit
    is non-zero and IPv4 is put back to what it was (foreign rule included);
    ::6, there before, stays."""
    app, _ = net
    app.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-p", "udp", "-j", "RETURN")
    weft_init(app, *STD)  # a first, good run: rollback must restore exactly this
    assert lo_has_passthrough(app)
    before = (saved(app, 4), saved(app, 6))
    r = failing_run(app, ip6tables_nft_restore=FAIL % "ip6tables-restore")
    assert r.returncode == 1
    assert "fake ip6tables-restore: line 3 failed" in r.stderr
    assert 'msg="rolled back" family=ipv4' in r.stderr
    assert (saved(app, 4), saved(app, 6)) == before
    assert lo_has_passthrough(app)  # not added by this run, so not removed by it


def test_failing_ipv6_restore_removes_the_address_it_added(net):
    """A namespace without ::6: weft-init adds it, IPv4 applies, IPv6 fails:
    IPv4 is rolled back and ::6 removed again."""
    app, _ = net
    assert not lo_has_passthrough(app)
    before = (saved(app, 4), saved(app, 6))
    r = failing_run(app, ip6tables_nft_restore=FAIL % "ip6tables-restore")
    assert r.returncode == 1
    assert 'msg="rolled back" family=ipv4' in r.stderr
    assert (saved(app, 4), saved(app, 6)) == before
    assert not lo_has_passthrough(app)
    assert "address added" not in r.stderr


def test_failing_ipv4_restore_changes_nothing(net):
    """The first family fails: nothing to roll back, ::6 removed again."""
    app, _ = net
    before = (saved(app, 4), saved(app, 6))
    r = failing_run(app, iptables_nft_restore=FAIL % "iptables-restore",
                    ip6tables_nft_restore=FAIL % "ip6tables-restore")
    assert r.returncode == 1
    assert "fake iptables-restore: line 3 failed" in r.stderr
    assert 'msg="iptables-restore failed" family=ipv4' in r.stderr
    assert "rolled back" not in r.stderr and "fake ip6tables-restore" not in r.stderr  # IPv6 never tried
    assert (saved(app, 4), saved(app, 6)) == before
    assert not lo_has_passthrough(app)


def test_failing_rollback_is_reported(net):
    """IPv4 applies, IPv6 fails, and restoring IPv4 fails too: exit 1 and an
    error naming the family whose rules may be incomplete (they are: IPv4
    keeps the new rules), ::6 removed all the same."""
    app, _ = net
    before6 = saved(app, 6)
    # --noflush (the apply) goes to the real tool; the plain restore of the rollback fails.
    only_noflush = 'if [ "$1" = --noflush ]; then exec $REAL "$@"; fi\n' + FAIL % "iptables-restore (rollback)"
    r = failing_run(app, iptables_nft_restore=only_noflush, ip6tables_nft_restore=FAIL % "ip6tables-restore")
    assert r.returncode == 1
    assert "fake iptables-restore (rollback): line 3 failed" in r.stderr
    assert 'msg="rollback failed; rules may be incomplete" family=ipv4' in r.stderr
    assert "-A OUTPUT -p tcp -j WEFT_OUTPUT" in saved(app, 4)  # what "incomplete" means here
    assert saved(app, 6) == before6
    assert not lo_has_passthrough(app)


@pytest.mark.parametrize("tool", ["iptables-nft-save", "ip6tables-nft-save"])
def test_failing_save_changes_nothing(net, tool):
    """iptables-save of either family fails: reported with its stderr, exit 1,
    nothing written and ::6 never added (every save runs before any change)."""
    app, _ = net
    before = (saved(app, 4), saved(app, 6))
    restores = {"iptables_nft_restore": FAIL % "iptables-restore", "ip6tables_nft_restore": FAIL % "ip6tables-restore"}
    r = failing_run(app, **restores, **{tool.replace("-", "_"): "echo 'fake save: no table' >&2\nexit 3"})
    assert r.returncode == 1
    family = "ipv6" if tool.startswith("ip6") else "ipv4"
    assert f'msg="iptables-save failed" family={family} cmd="{tool} -t nat" exit=3 stderr="fake save: no table"' \
        in r.stderr, r.stderr
    assert "fake iptables-restore" not in r.stderr and "fake ip6tables-restore" not in r.stderr  # no restore ran
    assert (saved(app, 4), saved(app, 6)) == before
    assert not lo_has_passthrough(app)


def test_failing_address_changes_nothing(net):
    """::6 cannot be added to lo (IPv6 disabled there): exit 1 with the
    kernel's reason, and no rules written in either family."""
    app, _ = net
    app.run("sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1")
    before = (saved(app, 4), saved(app, 6))
    r = weft_init(app, *STD, check=False)
    assert r.returncode == 1
    assert 'msg="cannot add the inbound passthrough source" error="adding ::6/128 on lo:' in r.stderr, r.stderr
    assert "rules applied" not in r.stderr
    assert (saved(app, 4), saved(app, 6)) == before


def test_dry_run_changes_nothing(net):
    app, _ = net
    before = (saved(app, 4), saved(app, 6))
    r = weft_init(app, *STD, "--dry-run")
    assert "-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in r.stdout
    assert "# ipv6" in r.stdout  # auto: the app namespace has 2001:2::1
    assert (saved(app, 4), saved(app, 6)) == before
