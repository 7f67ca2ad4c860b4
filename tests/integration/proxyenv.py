# SPDX-License-Identifier: Apache-2.0
"""weft-proxy test environment: a test CA made with the openssl CLI and
meshed pods (netns.Network pods with weft-init rules, a weft-proxy as uid
15100 and tests/integration/proxy_app.py as the app)."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import netns
import procs

WEFT_BIN = os.environ.get("WEFT_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/bin"))
PROXY = os.path.join(WEFT_BIN, "weft-proxy")
INIT = os.path.join(WEFT_BIN, "weft-init")
APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxy_app.py")
PROXY_UID = 15100
ADMIN = 15020
OPENSSL = "openssl"
# Sanitizer builds start and run several times slower: upper time bounds are
# multiplied by this, lower bounds (a timeout really waited) are not.
SANITIZER = os.environ.get("WEFT_SANITIZER", "")
SLOW = 3 if SANITIZER else 1


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30, **kw)


class CA:
    """An ECDSA P-256 CA in `workdir`; issue() signs SPIFFE leaf certificates."""

    def __init__(self, workdir, name="weft-test-ca"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "newcerts"))
        os.chmod(workdir, 0o755)
        os.chmod(self.dir, 0o755)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        self.key = os.path.join(self.dir, "ca.key")
        self.crt = os.path.join(self.dir, "ca.crt")
        self.cnf = os.path.join(self.dir, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(f"""[ca]
default_ca = d
[d]
dir = {self.dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = {self.crt}
private_key = {self.key}
serial = $dir/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = optional
""")
        run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.key])
        run([OPENSSL, "req", "-x509", "-new", "-key", self.key, "-subj", f"/CN={name}", "-days", "3",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", self.crt])
        self.n = 0

    def issue(self, ns, sa, trust_domain="cluster.local", expired=False, uri=None, eku="serverAuth,clientAuth"):
        """Returns (cert_path, key_path) for spiffe://<td>/ns/<ns>/sa/<sa>."""
        self.n += 1
        base = os.path.join(self.dir, f"{ns}-{sa}-{self.n}")
        key, csr, crt, ext = base + ".key", base + ".csr", base + ".crt", base + ".ext"
        uri = uri or f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}"
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    f"extendedKeyUsage={eku}\nsubjectAltName=URI:{uri}\n")
        run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        run([OPENSSL, "req", "-new", "-key", key, "-subj", f"/CN={sa}.{ns}", "-out", csr])
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired else ["-days", "1"]
        run([OPENSSL, "ca", "-config", self.cnf, "-batch", "-notext", "-in", csr, "-out", crt,
             "-extfile", ext, "-extensions", "v3"] + dates)
        for p in (key, crt):
            os.chmod(p, 0o644)  # the proxy runs as uid 15100
        return crt, key


def init_pod(pod, extra=()):
    """weft-init's capture rules in the pod, as the webhook stamps them;
    extra is flag/value pairs overriding the empty skip lists."""
    flags = {"--skip-inbound-ports": "", "--skip-outbound-ports": "", "--skip-outbound-cidrs": ""}
    extra = list(extra)
    for i in range(0, len(extra) - 1, 2):
        flags[extra[i]] = extra[i + 1]
    pod.run([INIT, "--proxy-uid", str(PROXY_UID), "--proxy-gid", str(PROXY_UID), "--inbound-port", "15006",
             "--outbound-port", "15001", *[x for kv in flags.items() for x in kv], "--ipv6", "auto", "--mode", "auto"])


class MeshPod:
    """A pod with weft-init rules, weft-proxy (uid 15100) and the test app."""

    def __init__(self, net, name, ca, ns, sa="default", app_ports=(8080, 7000), env=None, cert=None, init=True,
                 proxy_args=(), popen_kw=None, ready=True):
        self.pod = net.add_pod(name)
        self.name, self.ns, self.sa, self.ca = name, ns, sa, ca
        self.ip4, self.ip6 = self.pod.ip4, self.pod.ip6
        self.applog = os.path.join(ca.dir, f"app-{net.id}-{name}.log")
        open(self.applog, "w").close()
        self.app = self.pod.popen([sys.executable, APP, name] + [str(p) for p in app_ports],
                                  env={"PATH": "/usr/bin:/bin", "APP_LOG": self.applog}, stderr=subprocess.DEVNULL)
        assert self.app.stdout.readline().strip() == b"ready"
        if init:
            init_pod(self.pod)
        self.cert, self.key = cert or ca.issue(ns, sa)
        self.env = {
            "PATH": "/usr/bin:/bin", "WEFT_POD_NAME": name, "WEFT_POD_NAMESPACE": ns, "WEFT_POD_IP": self.ip4,
            "WEFT_SERVICE_ACCOUNT": sa, "WEFT_TRUST_DOMAIN": "cluster.local", "WEFT_MTLS_MODE": "STRICT",
            "WEFT_INBOUND_POLICY": "same-namespace", "WEFT_ALLOW_FROM": "",
            "WEFT_MESH_NETWORKS": "198.18.0.0/24,2001:2::/64", "WEFT_LOG_LEVEL": "info",
            "WEFT_CERT": self.cert, "WEFT_KEY": self.key, "WEFT_TRUST_BUNDLE": ca.crt, "WEFT_RELOAD_SECONDS": "1",
        }
        self.env.update(env or {})
        self.proxy_args = list(proxy_args)
        self.popen_kw = popen_kw or {}
        self.proxy = None
        self.start_proxy(ready)

    def start_proxy(self, ready=True):
        """Starts weft-proxy and (with `ready`) waits for its /ready. The
        network's close() stops it with SIGTERM and fails the test unless it
        exits 0 with a log free of sanitizer reports."""
        # The log goes to a file, not a pipe: nobody reads a pipe while the
        # test runs, and a full one would stall the proxy.
        self.proxylog = os.path.join(self.ca.dir, f"proxy-{self.pod.net.id}-{self.name}.log")
        with open(self.proxylog, "ab") as log:
            self.log_from = log.tell()
            self.proxy = self.pod.popen([PROXY] + self.proxy_args, uid=PROXY_UID, env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=log, weft_log=self._log_since(self.log_from),
                                        **self.popen_kw)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout=10):
        timeout *= SLOW
        port = {"WEFT_ADMIN_PORT": self.env["WEFT_ADMIN_PORT"]} if "WEFT_ADMIN_PORT" in self.env else {}
        r = self.pod.run([PROXY, "wait-ready", "--timeout-seconds", str(timeout)], check=False, timeout=timeout + 5,
                         env={"PATH": "/usr/bin:/bin", **port})
        if r.returncode != 0:
            try:
                err = self.stop_proxy()
            except AssertionError as e:
                err = str(e)
            raise AssertionError(f"proxy of {self.name} not ready: {r.stderr} {err}")

    def stop_proxy(self, sig=15, timeout=40, expect_code=0):
        """Signals the proxy and holds it to a clean exit (procs.stop_cleanly:
        `expect_code`, no sanitizer report, not killed, or AssertionError);
        returns what it logged since it started."""
        if not self.proxy:
            return ""
        try:
            return procs.stop_cleanly(self.proxy, self.log, sig=sig, timeout=timeout, expect_code=expect_code)
        finally:
            self.pod.checked(self.proxy)

    def _log_since(self, offset):
        def read():
            with open(self.proxylog, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        return read

    def log(self):
        """What the proxy has logged since it started."""
        return self._log_since(self.log_from)()

    def access_log(self):
        """The access log (WEFT_ACCESS_LOG=1): every line that starts with '{'
        parsed as one JSON object (json.loads fails the test on a bad one);
        the other lines are the proxy's logfmt."""
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def admin(self, path, method="GET", host=None):
        """An admin request from the node namespace (like the kubelet)."""
        with netns.inside(self.pod.net.node.netns):
            req = urllib.request.Request(f"http://{host or self.ip4}:{ADMIN}{path}", method=method)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

    def metrics(self):
        status, text = self.admin("/metrics")
        assert status == 200
        return text

    def metric(self, pattern):
        """Sum of the samples whose line matches the regex `pattern`."""
        total = 0
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            if re.search(pattern, line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def settled_metric(self, pattern, expected, timeout=5):
        """metric(pattern) once it equals `expected`, or its value after
        `timeout` seconds. A connection is counted closed only after the proxy
        has seen the peer's close, which can come after the caller already has
        its answer."""
        wait_for(lambda: self.metric(pattern) == expected, timeout)
        return self.metric(pattern)

    def app_conns(self):
        """How many connections the app has accepted so far."""
        with open(self.applog) as f:
            return sum(1 for _ in f)

    def pid(self):
        """The weft-proxy process id (the child of ip netns exec/setpriv, which exec)."""
        return self.proxy.pid

    def connect(self, host, port, timeout=5, family=socket.AF_INET):
        """A TCP connection made by the app (captured by the pod's rules)."""
        with self.pod.inside():
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect((host, port))
            return s


def recv_all(s, limit=1 << 26):
    """Everything until EOF; a reset (how a refused connection ends when the
    proxy closes it with our bytes unread) also ends it."""
    out = b""
    while len(out) < limit:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def request(pod_or_host, host, port, payload, timeout=5, family=socket.AF_INET):
    """Sends payload, half-closes, returns everything answered."""
    ctx = pod_or_host.inside() if hasattr(pod_or_host, "inside") else pod_or_host.pod.inside()
    with ctx:
        s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already refused: what follows reads nothing
        return recv_all(s)
    finally:
        s.close()


def wait_for(cond, timeout=10, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
