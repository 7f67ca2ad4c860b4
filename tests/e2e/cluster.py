# SPDX-License-Identifier: Apache-2.0
"""A real, throw-away Kubernetes control plane on loopback for the e2e suite.

etcd, kube-apiserver and kube-controller-manager (built by
setup-control-plane.sh) run as child processes of the test, bound to
127.0.0.1 only, with certificates and service-account keys made here with the
openssl CLI. There is no kubelet and no scheduler: the API server stores pods,
it does not run them. `Cluster.stop()` kills every process it started and
removes its directory; use it through the `cluster` fixture (conftest.py) so
that happens on failure too.

Run directly (`python3 tests/e2e/cluster.py`) it starts a cluster, prints a
kubeconfig path and waits for Ctrl-C: handy to poke at by hand. With
`--node` it also starts a node that runs pods (node.py).
"""
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP = os.path.join(HERE, "setup-control-plane.sh")

# Service IPs are only allocated (nothing runs behind them here); take them
# from the range the project's tests use, never a routed one.
SERVICE_CIDR = "198.19.0.0/20"
API_SERVICE_IP = "198.19.0.1"  # the `kubernetes` Service: the range's first address
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def control_plane_bin(build=False):
    """The directory with the control-plane binaries, or None when they are
    not built. With build=True, builds them (long, the first time)."""
    args = [SETUP] if build else [SETUP, "--check"]
    r = subprocess.run(["bash"] + args, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip().splitlines()[-1]


GATEWAY_CRDS = ("httproutes", "grpcroutes", "referencegrants")  # the kinds weft-discovery watches


def gateway_api_version():
    """The Gateway API release setup-apps.sh pins (its GATEWAY_API_VERSION;
    WEFT_GATEWAY_API_VERSION overrides it there and here)."""
    with open(os.path.join(HERE, "setup-apps.sh")) as f:
        pinned = re.search(r'^GATEWAY_API_VERSION="\$\{WEFT_GATEWAY_API_VERSION:-(v[0-9.]+)\}"$', f.read(), re.M)
    if not pinned:
        raise RuntimeError("setup-apps.sh: no GATEWAY_API_VERSION line")
    return os.environ.get("WEFT_GATEWAY_API_VERSION") or pinned.group(1)


def gateway_api_dir():
    """The directory of the sigs.k8s.io/gateway-api module at that release,
    from the Go module cache, downloaded through the module proxy if it is
    not there yet (go verifies the zip's checksum). RuntimeError names what
    failed. config/crd/ holds the release's standard-channel install."""
    mod = "sigs.k8s.io/gateway-api@" + gateway_api_version()
    with tempfile.TemporaryDirectory() as cwd:   # outside any module: go.mod files play no part
        try:
            r = subprocess.run(["go", "mod", "download", "-json", mod], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=300,
                               env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false"))
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError("go mod download %s: %s" % (mod, e))
    if r.returncode != 0:
        raise RuntimeError("go mod download %s failed (%d): %s%s" % (mod, r.returncode, r.stdout, r.stderr))
    d = json.loads(r.stdout)["Dir"]
    if not os.path.isfile(os.path.join(d, "config", "crd", "kustomization.yaml")):
        raise RuntimeError("%s has no config/crd/kustomization.yaml (the standard channel's install)" % d)
    return d


def gateway_api_crd(d, kind):
    """One standard-channel CRD file of the module at d (gateway_api_dir)."""
    return os.path.join(d, "config", "crd", "standard", "gateway.networking.k8s.io_%s.yaml" % kind)


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies first
    (killed pytest, CI timeout), so no etcd or API server outlives a run."""
    os.setsid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def make_tempdir(kind):
    """A temp directory that names its owner process: a later run removes it
    when that process is gone (a run killed with SIGKILL cannot clean up)."""
    d = tempfile.mkdtemp(prefix="weft-e2e-%s-" % kind)
    with open(os.path.join(d, ".owner"), "w") as f:
        f.write(str(os.getpid()))
    return d


def reap_stale_tempdirs():
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "weft-e2e-*")):
        try:
            with open(os.path.join(d, ".owner")) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            continue
        # A dead node's directory (node.py) may still hold mounts: node.py
        # unmounts before it removes; rmtree must never walk into one.
        if not os.path.exists("/proc/%d" % pid) and not mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)


def mounts_under(d):
    """Mount points at or below directory d (this mount namespace), deepest first."""
    d = os.path.realpath(d)
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f]
    return sorted((m for m in mps if m == d or m.startswith(d + "/")), key=len, reverse=True)


def free_port(address="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class CA:
    """A throw-away certificate authority in a directory (openssl CLI)."""

    def __init__(self, d, name="weft-e2e-ca"):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.crt = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", self.crt, "-days", "2",
                 "-subj", "/CN=" + name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

    def issue(self, name, cn, org=None, dns=(), ips=(), server=False, client=False, ca=False):
        """Signs a new P-256 key; returns (cert path, key path). ca=True makes
        an intermediate CA."""
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        subj = ("/O=" + org if org else "") + "/CN=" + cn
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", subj, cwd=self.dir)
        eku = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        if ca:
            lines = ["basicConstraints=critical,CA:TRUE,pathlen:0",
                     "keyUsage=critical,keyCertSign,cRLSign"]
        else:
            lines = ["basicConstraints=critical,CA:FALSE",
                     "keyUsage=critical,digitalSignature,keyEncipherment",
                     "extendedKeyUsage=" + ",".join(eku)]
        sans = ["DNS:" + n for n in dns] + ["IP:" + i for i in ips]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key,
                 "-CAcreateserial", "-out", crt, "-days", "2", "-sha256",
                 "-extfile", ext, cwd=self.dir)
        return crt, key


def write_kubeconfig(path, server, ca, crt=None, key=None, token=None, user="admin"):
    u = {}
    if crt:
        u = {"client-certificate": crt, "client-key": key}
    if token:
        u = {"token": token}
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": u}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    with open(path, "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    os.chmod(path, 0o600)


class Cluster:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1."""

    def __init__(self, bindir, controller_manager=True, address="127.0.0.1"):
        """address: where the API server listens and what it advertises.
        127.0.0.1 (no node): the `kubernetes` Service gets no endpoints (the
        API server refuses to advertise loopback). node.py passes the node's
        bridge address, which pods reach, and the Service gets it."""
        self.bin = bindir
        self.with_cm = controller_manager
        self.address = address
        reap_stale_tempdirs()
        self.dir = make_tempdir("cluster")
        self.procs = []  # (name, Popen, log file)
        self.kubectl_bin = os.path.join(bindir, "kubectl")

    # --- lifecycle ---------------------------------------------------------
    def start(self, timeout=120):
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        # Own process group, so stop() can kill children it may have.
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.procs.append((name, p, log))
        return p

    def _start(self, timeout):
        d = self.dir
        pki = os.path.join(d, "pki")
        self.ca = CA(pki)
        self.ca_crt = self.ca.crt
        serving = self.ca.issue("apiserver", "kube-apiserver", server=True,
                                dns=("localhost", "kubernetes", "kubernetes.default",
                                     "kubernetes.default.svc",
                                     "kubernetes.default.svc.cluster.local"),
                                ips=tuple(sorted({"127.0.0.1", self.address,
                                                  API_SERVICE_IP})))
        admin = self.ca.issue("admin", "weft-e2e-admin", org="system:masters", client=True)
        kcm = self.ca.issue("kcm", "system:kube-controller-manager", client=True)
        self.sa_key = os.path.join(pki, "sa.key")
        self.sa_pub = os.path.join(pki, "sa.pub")
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", self.sa_key, cwd=pki)
        _openssl("pkey", "-in", self.sa_key, "-pubout", "-out", self.sa_pub, cwd=pki)

        etcd_port, etcd_peer = free_port(), free_port()
        self.port = free_port(self.address)
        self.server = "https://%s:%d" % (self.address, self.port)
        etcd_url = "http://127.0.0.1:%d" % etcd_port
        peer_url = "http://127.0.0.1:%d" % etcd_peer
        self._spawn("etcd", [
            os.path.join(self.bin, "etcd"), "--name", "e2e",
            "--data-dir", os.path.join(d, "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", "e2e=" + peer_url,
            "--listen-metrics-urls", "",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self._wait_http(etcd_url + "/health", timeout, "etcd")

        self._spawn("kube-apiserver", [
            os.path.join(self.bin, "kube-apiserver"),
            "--etcd-servers", etcd_url,
            "--bind-address", self.address, "--advertise-address", self.address,
            "--secure-port", str(self.port),
            "--tls-cert-file", serving[0], "--tls-private-key-file", serving[1],
            "--client-ca-file", self.ca_crt,
            "--service-account-issuer", SA_ISSUER,
            "--service-account-key-file", self.sa_pub,
            "--service-account-signing-key-file", self.sa_key,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--authorization-mode", "RBAC",
            "--enable-admission-plugins",
            "NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,LimitRanger",
            "--endpoint-reconciler-type", "none" if self.address == "127.0.0.1" else "lease",
            *self.apiserver_args(),
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ])
        self.kubeconfig = os.path.join(d, "admin.kubeconfig")
        write_kubeconfig(self.kubeconfig, self.server, self.ca_crt, *admin)
        self._wait_ready(timeout)

        if self.with_cm:
            kcm_cfg = os.path.join(d, "kcm.kubeconfig")
            write_kubeconfig(kcm_cfg, self.server, self.ca_crt, *kcm,
                             user="system:kube-controller-manager")
            self._spawn("kube-controller-manager", [
                os.path.join(self.bin, "kube-controller-manager"),
                "--kubeconfig", kcm_cfg,
                "--bind-address", "127.0.0.1", "--secure-port", "0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                "--service-account-private-key-file", self.sa_key,
                "--root-ca-file", self.ca_crt,
                "--service-cluster-ip-range", SERVICE_CIDR,
                "--profiling=false",
                "--v=1",
            ])
            # The service-account controller makes "default" in every namespace;
            # pods cannot be created before it exists.
            def default_sa():
                self._check_alive()
                return self.kubectl("get", "serviceaccount", "default", "-n", "default",
                                    check=False).returncode == 0
            self.wait_for(default_sa, timeout,
                          "controller-manager to create serviceaccount default/default")

    def apiserver_args(self):
        """More kube-apiserver flags (node.py: how to reach the kubelet)."""
        return []

    def stop(self, remove_dir=True):
        # One at a time, last started first: the API server stops quickly
        # while etcd still answers (about 10 s less than stopping them together).
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
            log.close()
        self.procs = []
        if os.environ.get("WEFT_E2E_KEEP"):
            print("e2e: kept", self.dir)
        elif remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self, name, tail=4000):
        try:
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                return f.read()[-tail:].decode(errors="replace")
        except OSError:
            return ""

    def _check_alive(self):
        for name, p, _ in self.procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (name, p.returncode, self.logs(name)))

    def _wait_http(self, url, timeout, what, ctx=None):
        def ok():
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                    return r.status == 200
            except OSError:
                return False
        self.wait_for(ok, timeout, what)

    def _wait_ready(self, timeout):
        ctx = ssl.create_default_context(cafile=self.ca_crt)
        ctx.load_cert_chain(os.path.join(self.dir, "pki", "admin.crt"),
                            os.path.join(self.dir, "pki", "admin.key"))
        self._wait_http(self.server + "/readyz", timeout, "kube-apiserver /readyz", ctx)

    def wait_for(self, cond, timeout, what, interval=0.2):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
            time.sleep(interval)

    # --- clients -----------------------------------------------------------
    def kubectl(self, *args, input=None, check=True, timeout=60, kubeconfig=None):
        """Runs kubectl against this cluster; returns CompletedProcess (text)."""
        r = subprocess.run([self.kubectl_bin, "--kubeconfig", kubeconfig or self.kubeconfig,
                            "--request-timeout=30s", *args],
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("kubectl %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                              r.stdout, r.stderr))
        return r

    def get_json(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply_json(self, obj, *extra, check=True):
        return self.kubectl("apply", "-f", "-", *extra, input=json.dumps(obj), check=check)

    def create_json(self, obj, *extra, check=True):
        return self.kubectl("create", "-f", "-", *extra, input=json.dumps(obj), check=check)

    def create_namespace(self, name, labels=None, annotations=None, timeout=60):
        """Creates a namespace and waits for its default service account."""
        ns = {"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": name, "labels": labels or {},
                           "annotations": annotations or {}}}
        self.create_json(ns)
        if self.with_cm:
            self.wait_for(lambda: self.kubectl("get", "serviceaccount", "default", "-n", name,
                                               check=False).returncode == 0,
                          timeout, "serviceaccount %s/default" % name)

    def token(self, sa, namespace, audience=None, duration="10m"):
        args = ["create", "token", sa, "-n", namespace, "--duration", duration]
        if audience:
            args += ["--audience", audience]
        return self.kubectl(*args).stdout.strip()

    def service_account_dir(self, sa, namespace, audience=None):
        """A directory shaped like a pod's service-account mount (token,
        ca.crt, namespace) holding a real token of sa: lets a Weft binary that
        runs outside the cluster use its in-cluster API access."""
        d = tempfile.mkdtemp(prefix="sa-%s-" % sa, dir=self.dir)
        with open(os.path.join(d, "token"), "w") as f:
            f.write(self.token(sa, namespace, audience))
        shutil.copy(self.ca_crt, os.path.join(d, "ca.crt"))
        with open(os.path.join(d, "namespace"), "w") as f:
            f.write(namespace)
        return d


def main():
    if "--node" in os.sys.argv[1:]:  # the control plane and a node (node.py)
        import node
        return node.main()
    bindir = control_plane_bin(build=bool(os.environ.get("WEFT_E2E_BUILD")))
    if not bindir:
        raise SystemExit("control plane not built: run tests/e2e/setup-control-plane.sh")
    c = Cluster(bindir).start()
    try:
        print("KUBECONFIG=%s" % c.kubeconfig, flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        c.stop()


if __name__ == "__main__":
    main()
