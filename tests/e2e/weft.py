# SPDX-License-Identifier: Apache-2.0
"""Weft's binaries run on this machine as the e2e cluster's webhook and CA.

A pod would reach the API server with its service-account mount at
/var/run/secrets/kubernetes.io/serviceaccount and KUBERNETES_SERVICE_HOST/PORT.
Here the binary gets exactly that: it runs in a private mount namespace
(unshare) where a tmpfs hides the host's /run and a directory holding a real
token of its service account (kubectl create token) is bind-mounted at that
path. Nothing on the host is changed; the namespace dies with the process.
"""
import base64
import json
import ssl
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import yaml

import cluster as cl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(REPO, "manifests")
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
IDENTITY_ADDR = "198.18.0.1:8444"  # the demo runner's node (demo/podrunner.py)

# Runs "$@" with $1 (a directory) mounted where a pod's service account is.
_POD_FS = r'''
set -e
sa="$1"; shift
run=$(readlink -f /var/run)
mount -t tmpfs -o size=1m,mode=755 weft-e2e "$run"
mkdir -p "$run/secrets/kubernetes.io/serviceaccount"
mount --bind -o ro "$sa" "$run/secrets/kubernetes.io/serviceaccount"
exec "$@"
'''


def spawn_in_pod_fs(argv, sa_dir, env, log_path):
    """Starts argv as if in a pod of the cluster (see the module comment)."""
    log = open(log_path, "ab")
    wrapped = ["unshare", "--mount", "--propagation", "private", "--",
               "sh", "-c", _POD_FS, "sh", sa_dir, *argv]
    p = subprocess.Popen(wrapped, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env, preexec_fn=cl.die_with_parent)
    log.close()
    return p


def spawn(argv, env, log_path):
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, preexec_fn=cl.die_with_parent)
    log.close()
    return p


def stop_cleanly(p, log_path, timeout=30):
    """SIGTERM, as the kubelet stops a container; the process must exit 0 by
    itself (a sanitizer build would report at that exit). One that had to be
    killed, or exited otherwise, fails the test with its log's tail."""
    if p is None:
        return
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=timeout)
            raise AssertionError("pid %d did not exit within %d s of SIGTERM and was killed:\n%s"
                                 % (p.pid, timeout, tail_file(log_path, 3000)))
        except ProcessLookupError:
            pass
    assert p.returncode == 0, "exit status %s after SIGTERM:\n%s" % (p.returncode, tail_file(log_path, 3000))


def http_ok(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_ready(name, proc, metrics_port, logs, timeout):
    """Until /readyz on the metrics port answers 200; fails with the logs if
    the process exits or the timeout passes."""
    ready = "http://127.0.0.1:%d/readyz" % metrics_port
    deadline = time.monotonic() + timeout
    while not http_ok(ready):
        if proc.poll() is not None:
            raise RuntimeError("%s exited %s:\n%s" % (name, proc.returncode, logs()))
        if time.monotonic() > deadline:
            raise TimeoutError("%s not ready:\n%s" % (name, logs()))
        time.sleep(0.1)


def tail_file(path, n):
    """The last n bytes of a log file, or "" when it is not there."""
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def metrics_text(metrics_port, timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=timeout) as r:
        return r.read().decode()


def metric_sum(metrics_port, prefix):
    """The sum of every /metrics sample whose line starts with prefix."""
    text = metrics_text(metrics_port)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def metric_series(metrics_port, timeout=5):
    """Every /metrics sample: {'name{labels}': value}."""
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in
            metrics_text(metrics_port, timeout).splitlines() if line and not line.startswith("#"))}


class Webhook:
    """weft-webhook on 127.0.0.1:<port>, reached by the API server through
    manifests/overlays/e2e with this run's port and CA."""

    def __init__(self, cluster, exe, namespace_lookup=True):
        self.cluster = cluster
        self.exe = exe
        self.lookup = namespace_lookup
        self.dir = cl.make_tempdir("webhook")
        self.ca = cl.CA(os.path.join(self.dir, "pki"), "weft-e2e-webhook-ca")
        self.cert, self.key = self.ca.issue(
            "serving", "weft-webhook.weft-system.svc", server=True,
            dns=("weft-webhook.weft-system.svc",), ips=("127.0.0.1",))
        self.port = cl.free_port()
        self.metrics_port = cl.free_port()
        self.url = "https://127.0.0.1:%d/inject" % self.port
        self.ca_b64 = base64.b64encode(open(self.ca.crt, "rb").read()).decode()
        self.proc = None
        self.log = os.path.join(self.dir, "webhook.log")
        # Pods stored here run in network namespaces (podrun.py, and the
        # demo's runner whose node serves weft-identity on 198.18.0.1:8444):
        # this cluster's pod network is 198.18.0.0/15. Everything else is
        # templates/mesh.yaml as shipped.
        with open(os.path.join(REPO, "templates", "mesh.yaml")) as f:
            mesh = yaml.safe_load(f)
        mesh["meshNetworks"] = "198.18.0.0/15"
        mesh["identity"]["address"] = IDENTITY_ADDR
        # No weft-discovery runs here (no kubelet runs its Deployment): the
        # proxies decide mTLS by meshNetworks, as without discovery.
        mesh["discovery"]["address"] = ""
        self.config = os.path.join(self.dir, "mesh.yaml")
        with open(self.config, "w") as f:
            yaml.safe_dump(mesh, f, sort_keys=False)

    # --- install -------------------------------------------------------------
    def kustomization(self):
        """A kustomization on top of manifests/overlays/e2e with this run's
        URL and caBundle; returns its directory."""
        d = os.path.join(self.dir, "overlay")
        os.makedirs(d, exist_ok=True)
        k = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(os.path.join(MANIFESTS, "overlays", "e2e"), d)],
            "patches": [{
                "target": {"group": "admissionregistration.k8s.io", "version": "v1",
                           "kind": "MutatingWebhookConfiguration", "name": "weft-webhook"},
                "patch": json.dumps([
                    {"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": self.url},
                    {"op": "add", "path": "/webhooks/0/clientConfig/caBundle",
                     "value": self.ca_b64},
                ]),
            }],
        }
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            json.dump(k, f)
        return d

    def install(self):
        r = self.cluster.kubectl("apply", "-k", self.kustomization())
        return r

    def installed(self):
        r = self.cluster.kubectl("get", "mutatingwebhookconfiguration", "weft-webhook",
                                 "-o", "json", check=False)
        if r.returncode != 0:
            return False
        cc = json.loads(r.stdout)["webhooks"][0]["clientConfig"]
        return cc.get("url") == self.url and cc.get("caBundle") == self.ca_b64

    # --- process -------------------------------------------------------------
    def start(self, timeout=30):
        env = dict(os.environ)
        args = [self.exe,
                "--config", self.config,
                "--templates", os.path.join(REPO, "templates"),
                "--tls-cert", self.cert, "--tls-key", self.key,
                "--listen", "127.0.0.1:%d" % self.port,
                "--metrics-listen", "127.0.0.1:%d" % self.metrics_port]
        if self.lookup and os.geteuid() == 0:
            env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
            env["KUBERNETES_SERVICE_PORT"] = str(self.cluster.port)
            sa = self.cluster.service_account_dir("weft-webhook", "weft-system")
            self.proc = spawn_in_pod_fs(args, sa, env, self.log)
        elif self.lookup:
            # Not root (no mount namespace): the same token, by flags.
            sa = self.cluster.service_account_dir("weft-webhook", "weft-system")
            args += ["--api-server", "127.0.0.1:%d" % self.cluster.port,
                     "--api-ca", os.path.join(sa, "ca.crt"),
                     "--api-token", os.path.join(sa, "token")]
            self.proc = spawn(args, env, self.log)
        else:
            env.pop("KUBERNETES_SERVICE_HOST", None)
            args.append("--no-namespace-lookup")
            self.proc = spawn(args, env, self.log)
        wait_ready("weft-webhook", self.proc, self.metrics_port, self.logs, timeout)

    def reviews_total(self):
        """Sum of weft_webhook_reviews_total over all outcomes."""
        return metric_sum(self.metrics_port, "weft_webhook_reviews_total")

    def stop_process(self):
        p, self.proc = self.proc, None
        stop_cleanly(p, self.log)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure(self):
        if not self.installed():
            self.install()
        if not self.running():
            self.start()

    def logs(self, tail=4000):
        return tail_file(self.log, tail)

    def stop(self):
        try:
            self.stop_process()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Identity:
    """weft-identity on 127.0.0.1:<port>, checking tokens with TokenReviews
    against the cluster as the service account weft-system/weft-identity
    (the manifests must be applied first: they create it and its RBAC)."""

    def __init__(self, cluster, exe):
        self.cluster = cluster
        self.exe = exe
        self.dir = cl.make_tempdir("identity")
        self.root = cl.CA(os.path.join(self.dir, "pki"), "weft-e2e-mesh-root")
        self.issuer_cert, self.issuer_key = self.root.issue("issuer", "weft-e2e-issuer", ca=True)
        self.cert, self.key = self.root.issue(
            "serving", "weft-identity.weft-system.svc", server=True,
            dns=("weft-identity.weft-system.svc",), ips=("127.0.0.1",))
        # The bundle it publishes: a copy of the root that a test may rotate.
        self.bundle = os.path.join(self.dir, "trust-bundle.pem")
        shutil.copyfile(self.root.crt, self.bundle)
        self.port = cl.free_port()
        self.metrics_port = cl.free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "identity.log")

    def start(self, timeout=30):
        args = [self.exe,
                "--listen", "127.0.0.1:%d" % self.port,
                "--metrics-listen", "127.0.0.1:%d" % self.metrics_port,
                "--tls-cert", self.cert, "--tls-key", self.key,
                "--issuer-cert", self.issuer_cert, "--issuer-key", self.issuer_key,
                "--trust-bundle", self.bundle,
                "--publish-namespaces", "weft.dev/inject=enabled", "--publish-interval", "1s"]
        env = dict(os.environ)
        sa = self.cluster.service_account_dir("weft-identity", "weft-system")
        if os.geteuid() == 0:
            env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
            env["KUBERNETES_SERVICE_PORT"] = str(self.cluster.port)
            self.proc = spawn_in_pod_fs(args, sa, env, self.log)
        else:
            args += ["--kube-api", "127.0.0.1:%d" % self.cluster.port,
                     "--kube-ca", os.path.join(sa, "ca.crt"),
                     "--kube-token", os.path.join(sa, "token")]
            self.proc = spawn(args, env, self.log)
        wait_ready("weft-identity", self.proc, self.metrics_port, self.logs, timeout)

    def published(self, result):
        return metric_sum(self.metrics_port, 'weft_identity_trust_bundle_publish_total{result="%s"}' % result)

    def issued_total(self):
        return metric_sum(self.metrics_port, "weft_identity_certificates_issued_total")

    def request(self, csr_pem, token):
        """POST /v1/certificates; returns (HTTP status, JSON answer)."""
        ctx = ssl.create_default_context(cafile=self.root.crt)
        body = json.dumps({"csr": csr_pem}).encode()
        req = urllib.request.Request("https://127.0.0.1:%d/v1/certificates" % self.port,
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, timeout=15, context=ctx) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def logs(self, tail=4000):
        return tail_file(self.log, tail)

    def stop(self):
        p, self.proc = self.proc, None
        try:
            stop_cleanly(p, self.log)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
