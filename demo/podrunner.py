# SPDX-License-Identifier: Apache-2.0
"""A small pod runner for Weft's demo and end-to-end test: runs Pods as the
webhook returned them, the way a kubelet and kube-proxy would, on one
machine, with network namespaces instead of a cluster.

- The "node" is a network namespace with the node address 198.18.0.1 on its
  loopback (answered on every veth); each pod is a network namespace with a veth to the node
  (pod 198.18.1.N/32, default route via the node; the node routes each /32
  to its veth). Nothing is routed out: the node has no uplink.
- The control plane runs in the node namespace: a fake Kubernetes API
  (tests/integration/kubefake.py: Namespaces, TokenReview), weft-identity
  (198.18.0.1:8444, reachable from pods) and weft-webhook (127.0.0.1:8443 of
  the node). admit() sends an AdmissionReview over HTTPS, as the API server
  does under manifests/base/mutatingwebhook.yaml (namespaceSelector and
  objectSelector applied here), and applies the JSON Patch.
- run_pod() runs init containers in order, native sidecars (restartPolicy
  Always) waited for through their startupProbe, then the app containers,
  each as its securityContext's uid/gid/capabilities (setpriv), with the
  spec's env (downward API filled in) and volumes as real files, bind-mounted
  at their mountPath in a private mount namespace per container. Mount
  points missing on this machine are created empty and removed at close().
- weft-discovery (198.18.0.1:8445) runs there too, reading the cluster from
  a directory it watches: the runner writes into it the Namespaces, the Pods
  it runs (once they have an IP), the Services and their EndpointSlices, and
  waits for each re-read. The mesh config's discovery.address points the
  proxies at it.
- Probes run from the node namespace against the pod IP, as the kubelet's.
- Services: a virtual IP (198.19.0.N) in the node namespace with DNAT rules
  to the backend pods, in the nat PREROUTING and OUTPUT chains (kube-proxy's
  iptables mode).
- Images map to programs through IMAGES; what the spec asks for and this
  runner cannot do (resources, seccomp, read-only root, ...) is collected in
  Pod.not_applied and shown, never silently dropped.

close() removes everything: processes, the node's iptables chains, the
namespaces, mount-point directories it made, the temporary directory. Needs
root.
"""
import base64
import contextlib
import copy
import fcntl
import http.client
import itertools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import jsonpatch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import kubefake  # noqa: E402  (the fake API server, shared with the integration tests)
from netns import inside  # noqa: E402  (this thread into a network namespace)

PYTHON = "/usr/bin/python3"
IP = shutil.which("ip") or "/usr/sbin/ip"
IPTABLES = shutil.which("iptables") or "/usr/sbin/iptables"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
_ids = itertools.count()

NODE_IP = "198.18.0.1"
POD_NET = "198.18.1.0/24"
SERVICE_NET = "198.19.0.0/24"
IDENTITY_PORT = 8444
WEBHOOK_PORT = 8443
DISCOVERY_PORT = 8445
DISCOVERY_METRICS_PORT = 9092
WEBHOOK_NAME = "weft-webhook.weft-system.svc"
IDENTITY_NAME = "weft-identity.weft-system.svc"
DISCOVERY_NAME = "weft-discovery.weft-system.svc"   # weft-proxy's default WEFT_DISCOVERY_SERVER_NAME
DEMO_IMAGE = "weft-demo/app"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_PODS = 200


def image_table(bindir):
    """Image (without tag) -> {"entrypoint": argv, command name -> argv prefix}."""
    return {
        "ghcr.io/weft-mesh/weft-proxy": {"weft-proxy": [os.path.join(bindir, "weft-proxy")],
                                         "entrypoint": [os.path.join(bindir, "weft-proxy")]},
        "ghcr.io/weft-mesh/weft-init": {"weft-init": [os.path.join(bindir, "weft-init")],
                                        "entrypoint": [os.path.join(bindir, "weft-init")]},
        DEMO_IMAGE: {"demo-app": [PYTHON, os.path.join(bindir, "app.py")],
                     "entrypoint": [PYTHON, os.path.join(bindir, "app.py")]},
    }


def image_name(image):
    """Drops the tag and digest: registry/repo:tag@sha256:... -> registry/repo."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


class RunnerError(Exception):
    """Something a kubelet would report as a pod event (one line)."""


def sh(argv, check=True, timeout=30, **kw):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RunnerError("%s: exit %d: %s" % (" ".join(argv[:6]), r.returncode, (r.stderr or r.stdout).strip()[-300:]))
    return r


def http_get(netns, host, port, path, timeout=2.0, tls=None, server_name=None):
    """GET from inside `netns`; returns (status, body) or raises OSError."""
    with inside(netns):
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if tls:
            sock = tls.wrap_socket(sock, server_hostname=server_name)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        conn.request("GET", path, headers={"User-Agent": "kube-probe/1.30"})
        r = conn.getresponse()
        return r.status, r.read(1 << 20).decode(errors="replace")
    finally:
        sock.close()


def http_post_json(netns, host, port, path, body, tls, server_name, headers=None, timeout=10.0):
    with inside(netns):
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock = tls.wrap_socket(sock, server_hostname=server_name)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        data = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request("POST", path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read(4 << 20).decode(errors="replace")
    finally:
        sock.close()


class Admission:
    """What the webhook answered for one pod."""

    def __init__(self, sent, allowed, pod, message="", patch=None):
        self.sent = sent          # False: the namespace/object selector kept it from the webhook
        self.allowed = allowed
        self.pod = pod            # the pod after the patch (the original when nothing was patched)
        self.message = message
        self.patch = patch or []


class Container:
    def __init__(self, spec, kind):
        self.spec = spec
        self.name = spec["name"]
        self.kind = kind          # "init", "sidecar" or "app"
        self.proc = None
        self.log = None
        self.started = self.finished = None
        self.exit_code = None


class Pod:
    def __init__(self, cluster, spec, ip, netns, veth, podid):
        self.cluster = cluster
        self.spec = spec
        self.ns = spec["metadata"]["namespace"]
        self.name = spec["metadata"]["name"]
        self.ip = ip
        self.netns = netns
        self.veth = veth
        self.id = podid
        self.dir = os.path.join(cluster.tmp, "pods", "%s_%s_%s" % (self.ns, self.name, podid))
        self.volumes = {}         # volume name -> host path
        self.containers = []      # Container, in start order
        self.not_applied = []     # what the spec asks that this runner cannot do here
        self.probes = []          # (container, kind, target, result)
        self.events = []          # one-line notes (deviations, waits)
        self.token = None
        self.sa = spec["spec"].get("serviceAccountName") or "default"
        self.init_seconds = None

    @property
    def key(self):
        return "%s/%s" % (self.ns, self.name)

    def container(self, name):
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    def pid(self, name):
        c = self.container(name)
        return c.proc.pid if c.proc and c.proc.poll() is None else None

    def rss_kib(self, name):
        pid = self.pid(name)
        if not pid:
            return None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def admin_get(self, path, port=15020):
        return http_get(self.cluster.node_ns, self.ip, port, path)


class Cluster:
    """One node, a control plane and the pods run on it. Use as a context
    manager; close() runs also on failure."""

    def __init__(self, bindir, log=None, prefix="wd"):
        if os.geteuid() != 0:
            raise RunnerError("needs root (network namespaces, iptables, setpriv)")
        self.log = log or (lambda msg: None)
        self.id = "%s%dx%d" % (prefix, os.getpid(), next(_ids))   # reap_stale() reads the pid back
        self.tmp = tempfile.mkdtemp(prefix="weft-demo-%s-" % self.id)
        try:
            self._init(bindir)
        except BaseException:
            with contextlib.suppress(Exception):
                mount_points_release(self.id)
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _init(self, bindir):
        os.chmod(self.tmp, 0o755)   # containers run as other uids and read what they need from here
        # "Pull" the images: a copy of the binaries and the demo app, so a rebuild during the run
        # changes nothing and the containers' uids can read them wherever the repository is.
        self.bindir = os.path.join(self.tmp, "bin")
        os.makedirs(self.bindir)
        os.chmod(self.bindir, 0o755)
        try:
            for b in ("weft-webhook", "weft-identity", "weft-discovery", "weft-proxy", "weft-init"):
                shutil.copy2(os.path.join(bindir, b), os.path.join(self.bindir, b))
            shutil.copy(os.path.join(HERE, "app.py"), os.path.join(self.bindir, "app.py"))
            os.chmod(os.path.join(self.bindir, "app.py"), 0o644)
        except OSError as e:
            raise RunnerError("cannot copy the weft binaries from %s: %s (run make first)" % (bindir, e))
        self.images = image_table(self.bindir)
        self.node_ns = self.id + "-node"
        self.netns = []
        self.pods = {}            # "ns/name" -> Pod
        self.services = {}        # "ns/name" -> dict
        self.configmaps = {}      # name -> {key: text}, cluster-wide for the demo
        self.namespaces = {}      # name -> {"labels", "annotations"}
        self.procs = []           # control-plane processes
        self.made_dirs = []       # mount points this cluster created on this machine (see REGISTRY)
        with _registry_lock():
            open(os.path.join(REGISTRY, "live", self.id), "w").close()
        self.fake = None
        self._ip_next = 2
        self._vip_next = 10
        self._veth_next = 0
        self.closed = False

    # --- lifecycle -----------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        t0 = time.monotonic()
        self._start_node()
        self._start_control_plane()
        self.log("control plane up in %.1fs (node %s, identity %s:%d, discovery %s:%d, webhook :%d)" % (
            time.monotonic() - t0, NODE_IP, NODE_IP, IDENTITY_PORT, NODE_IP, DISCOVERY_PORT, WEBHOOK_PORT))
        return self

    def close(self):
        if self.closed:
            return
        self.closed = True
        held = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):   # a second Ctrl-C must not cut cleanup short
                held[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            self._close()
        finally:
            for sig, h in held.items():
                signal.signal(sig, h)

    def _close(self):
        for pod in list(self.pods.values()):
            with contextlib.suppress(Exception):
                self._stop_pod_processes(pod, grace=0.5)
        for p in self.procs:
            _kill(p, grace=1.0)
        if self.fake:
            with contextlib.suppress(Exception):
                self.fake.stop()
        if self.node_ns in self.netns:
            for chain_cmd in (["-D", "PREROUTING", "-j", "WEFT-SERVICES"], ["-D", "OUTPUT", "-j", "WEFT-SERVICES"],
                              ["-F", "WEFT-SERVICES"]):
                self._node_iptables(chain_cmd, check=False)
            for svc in self.services.values():
                self._node_iptables(["-F", svc["chain"]], check=False)
                self._node_iptables(["-X", svc["chain"]], check=False)
            self._node_iptables(["-X", "WEFT-SERVICES"], check=False)
        for ns in reversed(self.netns):
            for _ in range(50):
                if sh([IP, "netns", "del", ns], check=False).returncode == 0:
                    break
                time.sleep(0.1)
        self.netns = []
        mount_points_release(self.id)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- node and control plane ----------------------------------------------
    def _ns_exec(self, netns, argv):
        return [NSENTER, "--net=/run/netns/" + netns, "--"] + list(argv)

    def _node_iptables(self, args, check=True):
        return sh(self._ns_exec(self.node_ns, [IPTABLES, "-w", "5", "-t", "nat"] + list(args)), check=check)

    def _add_netns(self, name):
        sh([IP, "netns", "add", name])
        self.netns.append(name)
        sh([IP, "-n", name, "link", "set", "lo", "up"])

    def _start_node(self):
        ns = self.node_ns
        self._add_netns(ns)
        sh([IP, "-n", ns, "addr", "add", NODE_IP + "/32", "dev", "lo"])
        for k, v in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                     ("net.ipv4.conf.default.rp_filter", "0")):
            sh(self._ns_exec(ns, ["sysctl", "-q", "-w", "%s=%s" % (k, v)]))
        self._node_iptables(["-N", "WEFT-SERVICES"])
        self._node_iptables(["-A", "PREROUTING", "-j", "WEFT-SERVICES"])
        self._node_iptables(["-A", "OUTPUT", "-j", "WEFT-SERVICES"])

    def _start_control_plane(self):
        ca = os.path.join(self.tmp, "ca")
        sh(["bash", os.path.join(REPO, "scripts", "make-ca.sh"), ca, "--days", "2"])
        self.ca_dir = ca
        with open(os.path.join(ca, "ca.crt")) as f:
            self.configmaps["weft-trust-bundle"] = {"ca.crt": f.read()}
        kdir = os.path.join(self.tmp, "kube")
        wdir = os.path.join(self.tmp, "webhook")
        os.makedirs(kdir)
        os.makedirs(wdir)
        kca, kcrt, kkey = kubefake.make_tls(kdir)
        with open(kca) as f:   # what the kubelet projects into kube-api-access-* volumes
            self.configmaps["kube-root-ca.crt"] = {"ca.crt": f.read()}
        self.webhook_ca, wcrt, wkey = kubefake.make_tls(wdir, names=(WEBHOOK_NAME,), ips=("127.0.0.1",))
        with inside(self.node_ns):   # the API listens on the node's loopback
            self.fake = kubefake.KubeFake(kcrt, kkey, host="127.0.0.1", port=0)
        api_token = secrets.token_urlsafe(24)
        self.fake.client_tokens = {api_token}
        self.fake.start()
        tokfile = os.path.join(kdir, "token")
        with open(tokfile, "w") as f:
            f.write(api_token)
        api = "127.0.0.1:%d" % self.fake.port

        with open(os.path.join(REPO, "templates", "mesh.yaml")) as f:
            mesh = yaml.safe_load(f)
        mesh["identity"]["address"] = "%s:%d" % (NODE_IP, IDENTITY_PORT)
        mesh["meshNetworks"] = "%s,%s" % (POD_NET, SERVICE_NET)
        mesh.setdefault("discovery", {})["address"] = "%s:%d" % (NODE_IP, DISCOVERY_PORT)
        self.mesh_path = os.path.join(self.tmp, "mesh.yaml")
        with open(self.mesh_path, "w") as f:
            yaml.safe_dump(mesh, f, sort_keys=False)

        logs = os.path.join(self.tmp, "logs")
        os.makedirs(logs)
        self.identity_log = os.path.join(logs, "weft-identity.log")
        self.webhook_log = os.path.join(logs, "weft-webhook.log")
        ident = [os.path.join(self.bindir, "weft-identity"), "--listen", "%s:%d" % (NODE_IP, IDENTITY_PORT),
                 "--metrics-listen", "127.0.0.1:9091", "--tls-cert", os.path.join(ca, "identity.crt"),
                 "--tls-key", os.path.join(ca, "identity.key"), "--issuer-cert", os.path.join(ca, "intermediate.crt"),
                 "--issuer-key", os.path.join(ca, "intermediate.key"), "--trust-bundle", os.path.join(ca, "ca.crt"),
                 "--kube-api", api, "--kube-ca", kca, "--kube-token", tokfile]
        hook = [os.path.join(self.bindir, "weft-webhook"), "--config", self.mesh_path,
                "--templates", os.path.join(REPO, "templates"), "--tls-cert", wcrt, "--tls-key", wkey,
                "--listen", "127.0.0.1:%d" % WEBHOOK_PORT, "--metrics-listen", "127.0.0.1:9090",
                "--api-server", api, "--api-ca", kca, "--api-token", tokfile]
        for argv, logf in ((ident, self.identity_log), (hook, self.webhook_log)):
            out = open(logf, "w")
            p = subprocess.Popen(self._ns_exec(self.node_ns, argv), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            out.close()
            self.procs.append(p)
        self.identity_proc, self.webhook_proc = self.procs[-2], self.procs[-1]
        self._start_discovery(ca, logs)
        self._wait_http(self.node_ns, "127.0.0.1", 9091, "/readyz", self.identity_proc, self.identity_log, 10)
        self._wait_http(self.node_ns, "127.0.0.1", 9090, "/readyz", self.webhook_proc, self.webhook_log, 10)
        self._wait_http(self.node_ns, "127.0.0.1", DISCOVERY_METRICS_PORT, "/readyz", self.discovery_proc,
                        self.discovery_log, 10)
        self.webhook_tls = ssl.create_default_context(cafile=self.webhook_ca)
        self.identity_tls = ssl.create_default_context(cafile=os.path.join(ca, "ca.crt"))

    def _start_discovery(self, ca, logs):
        """weft-discovery reading the cluster's objects from a directory it
        watches (docs/discovery.md, `serve --objects`): the runner writes
        there what an API server would hold (Namespaces, Pods, Services and
        their EndpointSlices). Its serving certificate is signed by the
        mesh's issuer for the name the proxies expect by default, as
        manifests/discovery/gen-discovery-cert.sh makes it in a cluster."""
        base = os.path.join(ca, "discovery")
        with open(base + ".ext", "w") as f:
            f.write("subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth\n"
                    "keyUsage=critical,digitalSignature\n" % (DISCOVERY_NAME, NODE_IP))
        sh([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            base + ".key", "-out", base + ".csr", "-subj", "/CN=" + DISCOVERY_NAME])
        sh([OPENSSL, "x509", "-req", "-in", base + ".csr", "-CA", os.path.join(ca, "intermediate.crt"),
            "-CAkey", os.path.join(ca, "intermediate.key"), "-CAcreateserial", "-CAserial", base + ".srl",
            "-days", "2", "-extfile", base + ".ext", "-out", base + ".leaf"])
        with open(base + ".crt", "w") as out:
            for part in (base + ".leaf", os.path.join(ca, "intermediate.crt")):
                with open(part) as f:
                    out.write(f.read())
        self.objects_dir = os.path.join(self.tmp, "objects")
        os.makedirs(self.objects_dir)
        self.objects = {}         # file name -> the object written there
        for name in self.namespaces:
            self._put_object(self._namespace_object(name), wait=False)
        self.discovery_log = os.path.join(logs, "weft-discovery.log")
        argv = [os.path.join(self.bindir, "weft-discovery"), "serve", "--trust-domain", "cluster.local",
                "--cert", base + ".crt", "--key", base + ".key", "--trust-bundle", os.path.join(ca, "ca.crt"),
                "--config", self.mesh_path, "--listen", "%s:%d" % (NODE_IP, DISCOVERY_PORT),
                "--metrics-listen", "127.0.0.1:%d" % DISCOVERY_METRICS_PORT, "--objects", self.objects_dir]
        out = open(self.discovery_log, "w")
        self.discovery_proc = subprocess.Popen(self._ns_exec(self.node_ns, argv), stdout=out,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True)
        out.close()
        self.procs.append(self.discovery_proc)

    def discovery_metrics(self):
        st, body = http_get(self.node_ns, "127.0.0.1", DISCOVERY_METRICS_PORT, "/metrics")
        if st != 200:
            raise RunnerError("weft-discovery /metrics: HTTP %d" % st)
        return body

    def _reloads(self):
        """weft-discovery's directory reloads so far: (ok, error)."""
        text = self.discovery_metrics()
        return tuple(int(float(_sample(text, 'weft_discovery_source_reloads_total{result="%s"}' % r) or 0))
                     for r in ("ok", "error"))

    def _put_object(self, obj, wait=True):
        """Writes one API object into discovery's directory (a rename, so it
        never reads half a file) and waits until discovery has re-read it."""
        meta = obj["metadata"]
        fname = "%s_%s_%s.json" % (obj["kind"].lower(), meta.get("namespace", ""), meta["name"])
        before = self._reloads() if wait else None
        tmp = os.path.join(self.objects_dir, "." + fname + ".tmp")   # hidden files are not read
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        os.rename(tmp, os.path.join(self.objects_dir, fname))
        self.objects[fname] = obj
        if wait:
            self._wait_reload(before, fname)

    def _drop_object(self, kind, ns, name):
        fname = "%s_%s_%s.json" % (kind.lower(), ns, name)
        if fname not in self.objects:
            return
        before = self._reloads()
        os.unlink(os.path.join(self.objects_dir, fname))
        del self.objects[fname]
        self._wait_reload(before, fname)

    def _wait_reload(self, before, fname, seconds=5.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = self._reloads()
            if now[1] > before[1]:
                raise RunnerError("weft-discovery refused the objects directory after %s: %s" % (
                    fname, _tail(self.discovery_log)))
            if now[0] > before[0]:
                return
            time.sleep(0.01)
        raise RunnerError("weft-discovery did not re-read %s within %.0fs: %s" % (
            fname, seconds, _tail(self.discovery_log)))

    def _namespace_object(self, name):
        n = self.namespaces[name]
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(n["labels"]), "annotations": dict(n["annotations"])}}

    def _wait_http(self, netns, host, port, path, proc, logf, seconds):
        deadline = time.monotonic() + seconds
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RunnerError("%s exited %d: %s" % (os.path.basename(logf), proc.returncode, _tail(logf)))
            try:
                st, _ = http_get(netns, host, port, path, timeout=1)
                if st == 200:
                    return
                last = "HTTP %d" % st
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise RunnerError("%s not ready after %ds (%s): %s" % (os.path.basename(logf), seconds, last, _tail(logf)))

    # --- API objects -----------------------------------------------------------
    def create_namespace(self, name, labels=None, annotations=None):
        labels = dict(labels or {})
        labels["kubernetes.io/metadata.name"] = name
        self.namespaces[name] = {"labels": labels, "annotations": dict(annotations or {})}
        self.fake.namespaces[name] = self.namespaces[name]
        self._put_object(self._namespace_object(name))

    def annotate_namespace(self, name, key, value):
        """Sets (value None: removes) an annotation, in the API the webhook
        reads and in discovery's directory."""
        if value is None:
            self.namespaces[name]["annotations"].pop(key, None)
        else:
            self.namespaces[name]["annotations"][key] = value
        self._put_object(self._namespace_object(name))

    def admit(self, pod):
        """Sends the pod to the webhook as the API server would and applies
        the answer. Returns an Admission."""
        pod = copy.deepcopy(pod)
        ns = pod["metadata"]["namespace"]
        labels = self.namespaces.get(ns, {}).get("labels", {})
        if labels.get("weft.dev/inject") != "enabled" or ns in ("weft-system", "kube-system"):
            return Admission(False, True, pod, "namespace %s not selected (weft.dev/inject != enabled)" % ns)
        if pod["metadata"].get("labels", {}).get("weft.dev/inject") == "disabled":
            return Admission(False, True, pod, "pod label weft.dev/inject=disabled (objectSelector)")
        review = {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "demo-%s" % secrets.token_hex(8),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": ns, "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod, "oldObject": None, "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        st, body = http_post_json(self.node_ns, "127.0.0.1", WEBHOOK_PORT, "/inject", review, self.webhook_tls,
                                  WEBHOOK_NAME)
        if st != 200:
            raise RunnerError("webhook answered HTTP %d: %s" % (st, body[:300]))
        resp = json.loads(body)["response"]
        if not resp.get("allowed"):
            return Admission(True, False, pod, (resp.get("status") or {}).get("message", ""))
        patch = []
        if resp.get("patch"):
            patch = json.loads(base64.b64decode(resp["patch"]))
            pod = jsonpatch.apply_patch(pod, patch)
        return Admission(True, True, pod, "", patch)

    def add_service(self, ns, name, port, target_port, backends):
        """A ClusterIP Service: VIP:port -> DNAT to each backend pod's IP:target_port."""
        key = "%s/%s" % (ns, name)
        vip = "198.19.0.%d" % self._vip_next
        self._vip_next += 1
        svc = {"vip": vip, "port": port, "target_port": target_port, "chain": "WEFT-SVC-%d" % len(self.services),
               "backends": []}
        self.services[key] = svc
        self._node_iptables(["-N", svc["chain"]])
        self._node_iptables(["-A", "WEFT-SERVICES", "-d", vip + "/32", "-p", "tcp", "--dport", str(port),
                             "-j", svc["chain"]])
        self._put_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                          "spec": {"type": "ClusterIP", "clusterIP": vip, "clusterIPs": [vip],
                                   "ports": [{"name": "http", "port": port, "targetPort": target_port,
                                              "protocol": "TCP"}]}})
        self.set_endpoints(ns, name, backends)
        return vip

    def set_endpoints(self, ns, name, backends):
        """Rewrites the Service's DNAT rules for these pods (kube-proxy's
        random split: rule i of n matches with probability 1/(n-i))."""
        svc = self.services["%s/%s" % (ns, name)]
        self._node_iptables(["-F", svc["chain"]])
        n = len(backends)
        for i, pod in enumerate(backends):
            rule = ["-A", svc["chain"], "-p", "tcp"]
            if i < n - 1:
                rule += ["-m", "statistic", "--mode", "random", "--probability", "%.5f" % (1.0 / (n - i))]
            rule += ["-j", "DNAT", "--to-destination", "%s:%d" % (pod.ip, svc["target_port"])]
            self._node_iptables(rule)
        svc["backends"] = [p.key for p in backends]
        # The EndpointSlice the endpointslice controller would write for these pods.
        self._put_object({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name + "-demo", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": svc["target_port"], "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": self.node_ns, "targetRef": {"kind": "Pod", "namespace": p.ns, "name": p.name}}
                          for p in backends]})

    # --- pods --------------------------------------------------------------------
    def run_pod(self, spec, timeout=20.0):
        """Runs an admitted pod (Admission.pod). Returns the Pod once its
        containers are started and its startup/readiness probes have passed
        (or raises RunnerError, the pod left in place for close())."""
        spec = copy.deepcopy(spec)
        ns, name = spec["metadata"]["namespace"], spec["metadata"]["name"]
        if len(self.pods) >= MAX_PODS or self._ip_next > 250:
            raise RunnerError("pod limit reached")
        podid = "p%d" % self._ip_next
        ip = "198.18.1.%d" % self._ip_next
        self._ip_next += 1
        netns = "%s-%s" % (self.id, podid)
        veth = "v" + podid   # lives in this cluster's node namespace only
        pod = Pod(self, spec, ip, netns, veth, podid)
        self.pods[pod.key] = pod
        os.makedirs(pod.dir)
        os.chmod(pod.dir, 0o755)
        deadline = time.monotonic() + timeout
        self._pod_network(pod)
        self._put_object(self._pod_object(pod))   # what the API holds once the pod has its IP
        self._pod_checks(pod)
        self._pod_volumes(pod)
        self._pod_containers(pod, deadline)
        return pod

    def delete_pod(self, pod, grace=5.0):
        """Stops the pod (SIGTERM, then SIGKILL after `grace`) and removes
        its namespace and files."""
        if self.pods.get(pod.key) is pod:   # a newer pod of the same name owns the object otherwise
            self._drop_object("Pod", pod.ns, pod.name)
        self._stop_pod_processes(pod, grace)
        if pod.token and self.fake:
            self.fake.reviews.pop(pod.token, None)
        for _ in range(50):
            if sh([IP, "netns", "del", pod.netns], check=False).returncode == 0:
                break
            time.sleep(0.1)
        if pod.netns in self.netns:
            self.netns.remove(pod.netns)
        shutil.rmtree(pod.dir, ignore_errors=True)
        if self.pods.get(pod.key) is pod:
            del self.pods[pod.key]

    def _stop_pod_processes(self, pod, grace):
        # Apps first, then sidecars, as the kubelet does on deletion.
        for c in sorted(pod.containers, key=lambda c: 0 if c.kind == "app" else 1):
            if c.proc:
                _kill(c.proc, grace)

    def _pod_object(self, pod):
        obj = copy.deepcopy(pod.spec)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "Pod")
        obj["metadata"].setdefault("uid", "uid-" + pod.id)
        obj["spec"]["nodeName"] = self.node_ns
        obj["spec"].setdefault("serviceAccountName", pod.sa)
        obj["status"] = {"phase": "Running", "hostIP": NODE_IP, "podIP": pod.ip, "podIPs": [{"ip": pod.ip}]}
        return obj

    def _pod_network(self, pod):
        self._add_netns(pod.netns)
        node = self.node_ns
        sh([IP, "-n", node, "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns])
        sh([IP, "-n", node, "link", "set", pod.veth, "up"])
        sh([IP, "-n", node, "route", "add", pod.ip + "/32", "dev", pod.veth])
        sh([IP, "-n", pod.netns, "addr", "add", pod.ip + "/32", "dev", "eth0"])
        sh([IP, "-n", pod.netns, "link", "set", "eth0", "up"])
        sh([IP, "-n", pod.netns, "route", "add", NODE_IP + "/32", "dev", "eth0"])
        sh([IP, "-n", pod.netns, "route", "add", "default", "via", NODE_IP, "dev", "eth0"])

    def _pod_checks(self, pod):
        """Collects what this runner does not enforce, for the report."""
        spec = pod.spec["spec"]
        seen = set()

        def note(what):
            if what not in seen:
                seen.add(what)
                pod.not_applied.append(what)
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            image = c.get("image", "")
            if image_name(image) in self.images:
                note("image %s runs %s" % (image, " ".join(os.path.basename(a) for a in
                                                           self.images[image_name(image)]["entrypoint"])))
            res = c.get("resources") or {}
            if res:
                note("%s: resources %s (not enforced)" % (c["name"], _compact(res)))
            sc = c.get("securityContext") or {}
            if sc.get("readOnlyRootFilesystem"):
                note("%s: readOnlyRootFilesystem (host filesystem, not enforced)" % c["name"])
            if sc.get("seccompProfile"):
                note("%s: seccompProfile %s (not applied)" % (c["name"], sc["seccompProfile"].get("type")))
            if c.get("imagePullPolicy"):
                note("imagePullPolicy (nothing is pulled)")
        for v in spec.get("volumes", []):
            if v.get("emptyDir", {}).get("medium") or v.get("emptyDir", {}).get("sizeLimit"):
                note("volume %s: emptyDir %s (a plain directory here)" % (v["name"], _compact(v["emptyDir"])))

    def _pod_volumes(self, pod):
        meta = pod.spec["metadata"]
        for v in pod.spec["spec"].get("volumes", []):
            path = os.path.join(pod.dir, "volumes", v["name"])
            os.makedirs(path)
            os.chmod(path, 0o755)
            if "emptyDir" in v:
                os.chmod(path, 0o777)   # kubelet makes emptyDirs world-writable
            elif "configMap" in v:
                cm = self.configmaps.get(v["configMap"]["name"])
                if cm is None:
                    raise RunnerError("volume %s: configmap %s not found" % (v["name"], v["configMap"]["name"]))
                items = v["configMap"].get("items") or [{"key": k, "path": k} for k in cm]
                for it in items:
                    _write(os.path.join(path, it["path"]), cm[it["key"]], 0o644)
            elif "projected" in v:
                for src in v["projected"].get("sources", []):
                    if "serviceAccountToken" in src:
                        t = src["serviceAccountToken"]
                        pod.token = "demo-token-" + secrets.token_urlsafe(24)
                        self.fake.add_sa(pod.token, pod.ns, pod.sa, audiences=[t.get("audience") or "api"],
                                         pod=meta["name"])
                        _write(os.path.join(path, t.get("path", "token")), pod.token, 0o644)
                        pod.not_applied.append("volume %s: token rotation every %ss (not done; the demo is short)" % (
                            v["name"], t.get("expirationSeconds", 3600)))
                    elif "configMap" in src:
                        cm = self.configmaps.get(src["configMap"]["name"])
                        if cm is None:
                            raise RunnerError("volume %s: configmap %s not found" % (
                                v["name"], src["configMap"]["name"]))
                        for it in src["configMap"].get("items") or [{"key": k, "path": k} for k in cm]:
                            _write(os.path.join(path, it["path"]), cm[it["key"]], 0o644)
                    elif "downwardAPI" in src:
                        fields = self._fields(pod)
                        for it in src["downwardAPI"].get("items", []):
                            fp = (it.get("fieldRef") or {}).get("fieldPath")
                            if fp not in fields:
                                raise RunnerError("volume %s: downwardAPI %s not supported here" % (v["name"], fp))
                            _write(os.path.join(path, it["path"]), fields[fp], 0o644)
                    else:
                        pod.not_applied.append("volume %s: projected source %s (not supported here)" % (
                            v["name"], list(src)))
            else:
                raise RunnerError("volume %s: kind %s is not supported by this runner" % (
                    v["name"], [k for k in v if k != "name"]))
            pod.volumes[v["name"]] = path

    # --- containers ----------------------------------------------------------------
    def _pod_containers(self, pod, deadline):
        spec = pod.spec["spec"]
        t_init = time.monotonic()
        for c in spec.get("initContainers", []):
            sidecar = c.get("restartPolicy") == "Always"
            ct = Container(c, "sidecar" if sidecar else "init")
            pod.containers.append(ct)
            self._start(pod, ct)
            if sidecar:
                self._probe_until(pod, ct, "startupProbe", deadline)
                pod.events.append("sidecar %s started before the app containers (startupProbe passed)" % c["name"])
            else:
                try:
                    ct.exit_code = ct.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise RunnerError("%s: init container %s did not finish in time" % (pod.key, c["name"]))
                ct.finished = time.monotonic()
                if ct.exit_code != 0:
                    raise RunnerError("%s: init container %s exited %d: %s" % (
                        pod.key, c["name"], ct.exit_code, _tail(ct.log)))
                if c["name"] == "weft-init":
                    pod.init_seconds = ct.finished - ct.started
        pod.init_phase_seconds = time.monotonic() - t_init
        for c in spec.get("containers", []):
            ct = Container(c, "app")
            pod.containers.append(ct)
            self._start(pod, ct)
            hook = ((c.get("lifecycle") or {}).get("postStart") or {}).get("exec")
            if hook:   # the kubelet starts the next container only once postStart returns
                r = self.exec(pod, c["name"], hook["command"], timeout=max(1, deadline - time.monotonic()))
                if r.returncode != 0:
                    raise RunnerError("%s: %s postStart hook exited %d: %s" % (
                        pod.key, c["name"], r.returncode, (r.stdout + r.stderr).strip()[-200:]))
                pod.events.append("%s postStart hook %s returned 0" % (c["name"], " ".join(hook["command"])))
        for ct in pod.containers:
            if ct.kind == "app":
                self._probe_until(pod, ct, "startupProbe", deadline)
        for ct in pod.containers:
            if ct.kind != "init":
                self._probe_until(pod, ct, "readinessProbe", deadline)
                if ct.spec.get("livenessProbe"):
                    self._probe_until(pod, ct, "livenessProbe", deadline)

    def _fields(self, pod):
        """The downward API's field paths this runner fills in."""
        meta = pod.spec["metadata"]
        return {"metadata.name": meta["name"], "metadata.namespace": pod.ns, "status.podIP": pod.ip,
                "spec.serviceAccountName": pod.sa, "spec.nodeName": self.node_ns, "status.hostIP": NODE_IP,
                "metadata.uid": meta.get("uid", "uid-" + pod.id)}

    def _container_env(self, pod, c):
        """The env the kubelet gives: PATH (the image's), then the spec's
        env in order with $(VAR) expansion and the downward API filled."""
        meta = pod.spec["metadata"]
        fields = self._fields(pod)
        env = {"PATH": PATH_ENV, "HOSTNAME": meta["name"]}
        for e in c.get("env", []):
            if "valueFrom" not in e:   # no value stored means "" (the API server drops empty values)
                env[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                        lambda m: env.get(m.group(1), m.group(0)), e.get("value", ""))
            elif "fieldRef" in e.get("valueFrom", {}):
                fp = e["valueFrom"]["fieldRef"]["fieldPath"]
                if fp not in fields:
                    raise RunnerError("%s: env %s: fieldPath %s not supported here" % (c["name"], e["name"], fp))
                env[e["name"]] = fields[fp]
            else:
                raise RunnerError("%s: env %s: %s not supported here" % (c["name"], e["name"], list(e.get("valueFrom", {}))))
        return env

    def _argv(self, c, argv_override=None):
        table = self.images.get(image_name(c.get("image", "")))
        if table is None:
            raise RunnerError("%s: image %s cannot run here (known images: %s)" % (
                c["name"], c.get("image"), ", ".join(sorted(self.images))))
        if argv_override is not None:
            argv = list(argv_override)
        else:
            argv = list(c.get("command") or []) + list(c.get("args") or [])
        if not argv or (not c.get("command") and argv_override is None):
            return table["entrypoint"] + argv
        prog = table.get(argv[0])
        if prog is None:
            raise RunnerError("%s: command %s is not in image %s here" % (c["name"], argv[0], c.get("image")))
        return prog + argv[1:]

    def _wrap(self, pod, c, argv):
        """nsenter (pod netns) + unshare (private mount ns) + sh (bind the
        volumes at their mountPath) + setpriv (uid, gid, groups, caps)."""
        psc = pod.spec["spec"].get("securityContext") or {}
        sc = c.get("securityContext") or {}
        uid = sc.get("runAsUser", psc.get("runAsUser", 0))
        gid = sc.get("runAsGroup", psc.get("runAsGroup", 0))
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) and uid == 0:
            raise RunnerError("%s: runAsNonRoot with uid 0 (the kubelet refuses this container)" % c["name"])
        groups = [str(g) for g in psc.get("supplementalGroups", [])]
        if "fsGroup" in psc:
            groups.append(str(psc["fsGroup"]))
        caps = sc.get("capabilities") or {}
        drop = [x.lower() for x in caps.get("drop", [])]
        add = [x.lower() for x in caps.get("add", [])]
        if sc.get("privileged"):
            bounding = "+all"
        elif "all" in drop:
            bounding = ",".join(["-all"] + ["+" + a for a in add])
        else:   # the container runtime's default set, minus what is dropped, plus what is added
            base = ["chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
                    "net_bind_service", "sys_chroot", "mknod", "audit_write", "setfcap"]
            keep = [x for x in base + add if x not in drop]
            bounding = ",".join(["-all"] + ["+" + k for k in dict.fromkeys(keep)])
        priv = [SETPRIV, "--reuid=%d" % uid, "--regid=%d" % gid]
        priv += ["--groups=" + ",".join(groups)] if groups else ["--clear-groups"]
        priv += ["--bounding-set=" + bounding, "--inh-caps=-all"]
        if sc.get("allowPrivilegeEscalation") is False:
            priv.append("--no-new-privs")
        script = ["set -e"]
        for m in c.get("volumeMounts", []):
            src = pod.volumes.get(m["name"])
            if src is None:
                raise RunnerError("%s: volumeMount %s names no volume" % (c["name"], m["name"]))
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            dst = m["mountPath"]
            self._make_mount_point(dst)
            script.append("mount --bind %s %s" % (shlex.quote(src), shlex.quote(dst)))
            if m.get("readOnly"):
                script.append("mount -o remount,bind,ro %s" % shlex.quote(dst))
        wd = c.get("workingDir") or "/"
        script.append("cd %s" % shlex.quote(wd))
        script.append('exec "$@"')
        return ([NSENTER, "--net=/run/netns/" + pod.netns, "--", UNSHARE, "--mount", "--propagation", "private",
                 "/bin/sh", "-c", "\n".join(script), "container"] + priv + ["--"] + argv)

    def _make_mount_point(self, path):
        missing = []
        p = path
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        if not missing:
            return
        with _registry_lock():
            for d in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(d, 0o755)
                    self.made_dirs.append(d)
                    with open(os.path.join(REGISTRY, "made-dirs"), "a") as f:
                        f.write(d + "\n")

    def _start(self, pod, ct):
        c = ct.spec
        argv = self._argv(c)
        env = self._container_env(pod, c)
        ct.log = os.path.join(pod.dir, "%s.log" % c["name"])
        out = open(ct.log, "w")
        ct.started = time.monotonic()
        ct.proc = subprocess.Popen(self._wrap(pod, c, argv), env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def exec(self, pod, container, argv, timeout=10):
        """kubectl exec: argv in the container (its netns, mounts, uid, env)."""
        c = pod.container(container).spec
        full = self._argv(c, argv_override=argv)
        return subprocess.run(self._wrap(pod, c, full), env=self._container_env(pod, c), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # --- probes --------------------------------------------------------------------
    def probe(self, pod, ct, probe):
        """One kubelet probe from the node namespace: (ok, target, detail)."""
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            h = probe["httpGet"]
            port = _port(ct.spec, h["port"])
            target = "GET http://%s:%d%s" % (pod.ip, port, h.get("path", "/"))
            try:
                st, _ = http_get(self.node_ns, pod.ip, port, h.get("path", "/"), timeout=timeout)
            except OSError as e:
                return False, target, str(e)
            return 200 <= st < 400, target, "HTTP %d" % st
        if "tcpSocket" in probe:
            port = _port(ct.spec, probe["tcpSocket"]["port"])
            target = "TCP %s:%d" % (pod.ip, port)
            try:
                with inside(self.node_ns):
                    s = socket.create_connection((pod.ip, port), timeout=timeout)
                s.close()
                return True, target, "connected"
            except OSError as e:
                return False, target, str(e)
        if "exec" in probe:
            cmd = probe["exec"]["command"]
            r = self.exec(pod, ct.name, cmd, timeout=timeout + 1)
            return r.returncode == 0, "exec " + " ".join(cmd), "exit %d" % r.returncode
        return False, "?", "probe kind %s not supported" % list(probe)

    def _probe_until(self, pod, ct, kind, deadline):
        probe = ct.spec.get(kind)
        if not probe:
            return
        period = min(float(probe.get("periodSeconds", 10)), 0.05)   # faster than the kubelet, same verdict
        t0 = time.monotonic()
        detail = target = ""
        while time.monotonic() < deadline:
            if ct.proc.poll() is not None:
                raise RunnerError("%s: container %s exited %d before its %s passed: %s" % (
                    pod.key, ct.name, ct.proc.returncode, kind, _tail(ct.log)))
            ok, target, detail = self.probe(pod, ct, probe)
            if ok:
                pod.probes.append((ct.name, kind, target, "%s after %.2fs" % (detail, time.monotonic() - t0)))
                return
            time.sleep(period)
        raise RunnerError("%s: %s %s failed: %s %s; log: %s" % (pod.key, ct.name, kind, target, detail,
                                                                _tail(ct.log)))


def reap_stale(prefix):
    """Removes what a runner killed with SIGKILL left behind: namespaces
    named <prefix><pid>x<n>-* whose pid is gone, the processes in them, and
    their temporary directories. Returns what it removed."""
    gone = []
    out = sh([IP, "netns", "list"], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)x\d+-" % re.escape(prefix), name)
        if not m or os.path.exists("/proc/" + m.group(1)):
            continue
        for pid in sh([IP, "netns", "pids", name], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(20):
            if sh([IP, "netns", "del", name], check=False).returncode == 0:
                gone.append(name)
                break
            time.sleep(0.1)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(r"^weft-demo-%s(\d+)x\d+-" % re.escape(prefix), d)
        if m and not os.path.exists("/proc/" + m.group(1)):
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)
            gone.append(os.path.join(tmp, d))
    gone += mount_points_release(None)
    return gone


# Mount points missing on this machine (/etc/weft/trust, /var/run/weft, ...)
# are created empty for the bind mounts. Several runners (the demo, a test)
# may share them, so they are removed only by the last live runner: each
# runner has a file in REGISTRY/live named by its id (which holds its pid),
# made directories are listed in REGISTRY/made-dirs, all under an flock.
REGISTRY = "/run/weft-podrunner"


@contextlib.contextmanager
def _registry_lock():
    for _ in range(100):
        os.makedirs(os.path.join(REGISTRY, "live"), exist_ok=True)
        fd = os.open(os.path.join(REGISTRY, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(os.path.join(REGISTRY, "lock")).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)   # the last runner removed the registry meanwhile: start over
    else:
        raise RunnerError("cannot lock %s/lock" % REGISTRY)
    try:
        yield
    finally:
        os.close(fd)


def mount_points_release(runner_id):
    """Drops this runner (None: none, just reap); when no live runner is
    left, removes the mount points runners made (if empty, as they were made)
    and the registry. Returns the directories removed."""
    if not os.path.isdir(REGISTRY):
        return []
    removed = []
    with _registry_lock():
        live = os.path.join(REGISTRY, "live")
        for name in os.listdir(live):
            m = re.match(r"^[a-z]+(\d+)x\d+$", name)
            if name == runner_id or not m or not os.path.exists("/proc/" + m.group(1)):
                os.unlink(os.path.join(live, name))
        if os.listdir(live):
            return removed
        made = os.path.join(REGISTRY, "made-dirs")
        with contextlib.suppress(FileNotFoundError), open(made) as f:
            for d in reversed(f.read().split("\n")):
                if d.startswith("/"):
                    with contextlib.suppress(OSError):
                        os.rmdir(d)
                        removed.append(d)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(made)
        os.rmdir(live)
        os.unlink(os.path.join(REGISTRY, "lock"))
        os.rmdir(REGISTRY)
    return removed


def _port(c, port):
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for p in c.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise RunnerError("%s: named port %s not found" % (c["name"], port))


def _write(path, text, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _tail(path, n=400):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip().replace("\n", " | ")
    except OSError:
        return ""


def _kill(p, grace):
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(timeout=5)


def _sample(text, series):
    """The value of one series (name and labels exactly) in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def metrics_lines(text, prefixes, limit=8):
    """A few non-zero sample lines of Prometheus text with these prefixes."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if any(line.startswith(p) for p in prefixes) and not line.endswith(" 0"):
            out.append(line)
    return out[:limit]
