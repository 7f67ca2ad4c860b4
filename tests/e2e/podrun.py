# SPDX-License-Identifier: Apache-2.0
"""Runs a Pod as the API server stored it, the way a kubelet would, in a
network namespace (tests/integration/netns.py): weft-init with the args the
webhook stamped, then weft-proxy as the stamped user with the stamped
environment (downward API fields resolved) and volumes, then the app.

Only what Weft's containers need is implemented:
- volumes: projected service-account token (a real token from the API
  server's TokenRequest, with the audience and expiry the pod asks for),
  ConfigMap (read from the API server in the pod's namespace), emptyDir;
  each becomes a directory, and environment values under a mount path are
  mapped to it (no mount namespace, so the binary sees host paths);
- the app is tests/integration/proxy_app.py on the container's ports.
- Certificates: weft-identity runs on the host's loopback; a forwarder in
  the node namespace makes it reachable at the stamped WEFT_IDENTITY_ADDR
  (198.18.0.1:8444, what a Service would do), and weft-proxy's identity
  client gets its certificate with the pod's projected token, checked by a
  real TokenReview. A weft-proxy built without an identity client gets the
  same certificate fetched by the runner, as static WEFT_CERT/WEFT_KEY.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
sys.path.insert(0, INTEGRATION)
import netns  # noqa: E402

APP = os.path.join(INTEGRATION, "proxy_app.py")


def _find(containers, name):
    for c in containers or []:
        if c["name"] == name:
            return c
    raise AssertionError("no container %s in %s" % (name, [c["name"] for c in containers or []]))


class Forwarder:
    """TCP from (netns, addr, port) to 127.0.0.1:target_port of this
    process's own namespace. Bounded: at most 64 connections, each closed
    with the forwarder."""

    def __init__(self, ns, addr, port, target_port):
        with netns.inside(ns):
            self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, port))
        self.lsock.listen(16)
        self.target = ("127.0.0.1", target_port)
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed and len(self.conns) < 64:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.lsock.close()
        for c in self.conns:
            c.close()


class RunningPod:
    def __init__(self, host, pod, proxy, tmp, admin_port):
        self.host, self.pod, self.proxy, self.dir = host, pod, proxy, tmp
        self.ip4 = host.ip4
        self.admin_port = admin_port

    def metrics(self):
        import urllib.request
        with netns.inside(self.host.net.node.netns):
            url = "http://%s:%d/metrics" % (self.ip4, self.admin_port)
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read().decode()

    def metric(self, prefix):
        """Sum of the samples whose line starts with prefix."""
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.metrics().splitlines()
                   if line.startswith(prefix))


class PodRunner:
    def __init__(self, cluster, identity, weft_bin, workdir):
        self.cluster, self.identity, self.bin = cluster, identity, weft_bin
        self.workdir = workdir
        self.net = netns.Network(prefix="we")
        self.forwarder = None

    def close(self):
        if self.forwarder:
            self.forwarder.close()
        self.net.close()

    def _forward_identity(self, addr):
        if self.forwarder is None:
            host, port = addr.rsplit(":", 1)
            self.forwarder = Forwarder(self.net.node.netns, host, int(port), self.identity.port)

    def run(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        name, ns = meta["name"], meta["namespace"]
        sa = spec.get("serviceAccountName", "default")
        host = self.net.add_pod(name)
        tmp = tempfile.mkdtemp(prefix="pod-%s-" % name, dir=self.workdir)
        os.chmod(tmp, 0o755)

        # The app first: the proxy's readiness does not depend on it.
        app = _find(spec["containers"], "app")
        ports = [str(p["containerPort"]) for p in app.get("ports", [])] or ["8080"]
        p = host.popen([sys.executable, APP, name, *ports], env={"PATH": "/usr/bin:/bin"},
                       stderr=subprocess.DEVNULL)
        assert p.stdout.readline().strip() == b"ready"

        init = _find(spec.get("initContainers"), "weft-init")
        assert init["command"] == ["weft-init"]
        r = host.run([os.path.join(self.bin, "weft-init"), *init.get("args", [])], check=False)
        assert r.returncode == 0, "weft-init %s: %s" % (init.get("args"), r.stderr)

        allc = spec.get("initContainers", []) + spec["containers"]
        proxy = _find(allc, "weft-proxy")
        assert proxy["command"] == ["weft-proxy"]
        uid = proxy["securityContext"]["runAsUser"]
        mounts = self._volumes(pod, proxy, tmp, uid)
        fields = {"metadata.name": name, "metadata.namespace": ns, "status.podIP": host.ip4,
                  "spec.serviceAccountName": sa}
        env = {"PATH": "/usr/bin:/bin"}
        for e in proxy.get("env", []):
            if "valueFrom" in e:
                env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                v = e.get("value", "")
                for mpath, hdir in mounts.items():
                    if v == mpath or v.startswith(mpath + "/"):
                        v = hdir + v[len(mpath):]
                env[e["name"]] = v
        self._forward_identity(env["WEFT_IDENTITY_ADDR"])
        admin = next(pt["containerPort"] for pt in proxy.get("ports", [])
                     if pt["name"] == "weft-admin")
        log = open(os.path.join(tmp, "proxy.log"), "wb")
        px = host.popen([os.path.join(self.bin, "weft-proxy"), *proxy.get("args", [])], uid=uid,
                        env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        r = host.run([os.path.join(self.bin, "weft-proxy"), "wait-ready", "--timeout-seconds", "20"],
                     check=False, timeout=30)
        if r.returncode != 0:
            with open(os.path.join(tmp, "proxy.log")) as f:
                raise AssertionError("weft-proxy of %s not ready: %s\n%s" % (name, r.stderr, f.read()))
        return RunningPod(host, pod, px, tmp, admin)

    def _volumes(self, pod, container, tmp, uid):
        """mountPath -> host directory for each of the container's mounts."""
        vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        ns = pod["metadata"]["namespace"]
        sa = pod["spec"].get("serviceAccountName", "default")
        out = {}
        for m in container.get("volumeMounts", []):
            v = vols[m["name"]]
            d = os.path.join(tmp, "vol-" + m["name"])
            os.makedirs(d, exist_ok=True)
            if "projected" in v:
                for src in v["projected"]["sources"]:
                    if "serviceAccountToken" in src:
                        t = src["serviceAccountToken"]
                        args = ["create", "token", sa, "-n", ns,
                                "--duration", "%ds" % t.get("expirationSeconds", 3600)]
                        if t.get("audience"):
                            args += ["--audience", t["audience"]]
                        with open(os.path.join(d, t["path"]), "w") as f:
                            f.write(self.cluster.kubectl(*args).stdout.strip())
                    # (other projected sources are not needed by Weft's containers)
            elif "configMap" in v:
                cm = self.cluster.get_json("configmap", v["configMap"]["name"], "-n", ns)
                for k, val in cm.get("data", {}).items():
                    with open(os.path.join(d, k), "w") as f:
                        f.write(val)
            elif "emptyDir" in v:
                os.chown(d, uid, uid)
            for root, dirs, files in os.walk(d):
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
            os.chmod(d, 0o755 if "emptyDir" not in v else 0o700)
            out[m["mountPath"].rstrip("/")] = d
        return out
