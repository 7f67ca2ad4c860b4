# SPDX-License-Identifier: Apache-2.0
"""`make demo`: a whole Weft mesh on one machine, in network namespaces.

Starts weft-identity and weft-webhook (real TLS) beside a fake Kubernetes
API, creates the namespaces shop (opted in, STRICT, same-namespace), ops
(opted in) and legacy (not opted in), sends each pod to the webhook, runs
what comes back with demo/podrunner.py and prints what happened. The pod
specs and the checks are shared with tests/integration/test_mesh.py.
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import podrunner  # noqa: E402

APP_IMAGE = podrunner.DEMO_IMAGE + ":0.1.0"


def app_pod(ns, name, sa, uid, serve=True, annotations=None, labels=None):
    """A demo-app pod: the echo server on :8080 with HTTP probes on a named
    port, or an idle client the demo execs `demo-app get` in."""
    c = {
        "name": name,
        "image": APP_IMAGE,
        "command": ["demo-app"],
        "args": ["serve", "--port", "8080"] if serve else ["idle"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "securityContext": {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if serve:
        c["ports"] = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}
        c["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    meta = {"name": name, "namespace": ns, "labels": dict(labels or {"app": name})}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"serviceAccountName": sa, "containers": [c]}}


def setup_namespaces(cl):
    cl.create_namespace("shop", labels={"weft.dev/inject": "enabled"},
                        annotations={"weft.dev/mtls-mode": "STRICT", "weft.dev/inbound-policy": "same-namespace"})
    cl.create_namespace("ops", labels={"weft.dev/inject": "enabled"})
    cl.create_namespace("legacy")


def admit_and_run(cl, spec):
    adm = cl.admit(spec)
    if not adm.allowed:
        raise podrunner.RunnerError("%s/%s refused by the webhook: %s" % (
            spec["metadata"]["namespace"], spec["metadata"]["name"], adm.message))
    return adm, cl.run_pod(adm.pod)


def call(cl, pod, container, url):
    """kubectl exec <pod> -- demo-app get URL: (ok, one line)."""
    r = cl.exec(pod, container, ["demo-app", "get", url, "--timeout", "3"], timeout=10)
    line = (r.stdout.strip() or r.stderr.strip() or "no output").splitlines()[-1]
    return r.returncode == 0 and line.startswith("HTTP 200"), line


def proxy_metrics(cl, pod):
    st, body = pod.admin_get("/metrics")
    return body if st == 200 else ""


def certificate_line(metrics):
    """What the proxy's own identity client got from weft-identity, from its metrics."""
    expiry, renewals = None, {}
    for line in metrics.splitlines():
        if line.startswith("weft_proxy_certificate_expiry_timestamp_seconds"):
            expiry = float(line.rsplit(" ", 1)[1])
        elif line.startswith("weft_proxy_identity_renewals_total{"):
            renewals[line.split('result="', 1)[1].split('"', 1)[0]] = int(float(line.rsplit(" ", 1)[1]))
    if not expiry:
        return "no certificate yet"
    return "weft-proxy got its certificate from weft-identity (renewals %s), valid until %s" % (
        ", ".join("%s=%d" % kv for kv in sorted(renewals.items())) or "none",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)))


def peers(metrics, direction):
    """SPIFFE IDs seen on mTLS connections in this direction (from the
    proxy's connection counters), with their authz label."""
    out = []
    for line in metrics.splitlines():
        if line.startswith("weft_proxy_connections_opened_total{") and 'direction="%s"' % direction in line \
                and 'tls="true"' in line and not line.endswith(" 0"):
            peer = line.split('peer="', 1)[1].split('"', 1)[0]
            authz = line.split('authz="', 1)[1].split('"', 1)[0]
            out.append((peer, authz))
    return out


def wait_namespace_refresh(cl, ns, fresh=10.6, budget=12.0):
    """The webhook caches namespace annotations for 10 s (webhook/nscache.h):
    wait until its last read of `ns` is older than that. Bounded."""
    wait = min(budget, max(0.0, cl.last_namespace_read(ns) + fresh - time.monotonic()))
    if wait > 0:
        time.sleep(wait)
    return wait


class Report:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.t0 = time.monotonic()
        self.failures = []

    def line(self, text=""):
        print(text, file=self.out, flush=True)

    def head(self, text):
        self.line("")
        self.line("== " + text)

    def check(self, ok, text):
        self.line("  %s %s" % ("ok  " if ok else "FAIL", text))
        if not ok:
            self.failures.append(text)


def run_demo(bindir, rep):
    with podrunner.Cluster(bindir, log=lambda m: rep.line("  " + m)) as cl:
        rep.head("control plane: fake Kubernetes API, weft-identity, weft-webhook (TLS, node netns)")
        cl.start()
        setup_namespaces(cl)
        rep.line("  mesh.yaml: templates/mesh.yaml with identity.address=%s:%d, meshNetworks=%s,%s" % (
            podrunner.NODE_IP, podrunner.IDENTITY_PORT, podrunner.POD_NET, podrunner.SERVICE_NET))
        rep.line("  namespaces: shop (inject=enabled, STRICT, same-namespace), ops (inject=enabled), "
                 "legacy (not opted in)")

        rep.head("pods: AdmissionReview -> weft-webhook -> JSON Patch -> run")
        pods = {}
        specs = [app_pod("shop", "backend", "backend", 1000), app_pod("shop", "frontend", "frontend", 1001),
                 app_pod("ops", "monitor", "monitor", 1002, serve=False),
                 app_pod("legacy", "client", "client", 1003, serve=False)]
        for spec in specs:
            t = time.monotonic()
            adm, pod = admit_and_run(cl, spec)
            pods[pod.key] = pod
            names = [c.name + ("(sidecar)" if c.kind == "sidecar" else "") for c in pod.containers]
            what = "%d patch ops" % len(adm.patch) if adm.sent else "not sent: " + adm.message
            rep.line("  %-15s %-11s %s; containers %s; ready in %.2fs" % (
                pod.key, pod.ip, what, " -> ".join(names), time.monotonic() - t))
        backend = pods["shop/backend"]
        ran = backend.container("weft-init")
        sc = ran.spec.get("securityContext") or {}
        rep.line("  weft-init ran as in the spec (uid %s, capabilities %s): weft-init %s -> exit %d" % (
            sc.get("runAsUser", 0), "+".join((sc.get("capabilities") or {}).get("add", [])) or "none",
            " ".join(ran.spec["args"]), ran.exit_code))
        vip = cl.add_service("shop", "backend", 80, 8080, [backend])
        url = "http://%s/" % vip
        rep.line("  service shop/backend: %s:80 -> DNAT %s:8080 (node netns, nat PREROUTING/OUTPUT)" % (
            vip, backend.ip))
        for pod in pods.values():
            if any(c.name == "weft-proxy" for c in pod.containers):
                rep.line("  %-15s %s" % (pod.key, certificate_line(proxy_metrics(cl, pod))))

        rep.head("traffic (kubectl exec <pod> -- demo-app get %s)" % url)
        ok, line = call(cl, pods["shop/frontend"], "frontend", url)
        rep.check(ok, "shop/frontend -> shop/backend: %s" % line)
        fm, bm = proxy_metrics(cl, pods["shop/frontend"]), proxy_metrics(cl, backend)
        rep.check(any(p == "spiffe://cluster.local/ns/shop/sa/backend" for p, _ in peers(fm, "outbound")),
                  "  frontend's proxy saw the server over mTLS as %s" % ", ".join(p for p, _ in peers(fm, "outbound")))
        rep.check(("spiffe://cluster.local/ns/shop/sa/frontend", "allowed") in peers(bm, "inbound"),
                  "  backend's proxy saw the caller over mTLS as %s" % ", ".join(
                      "%s (authz %s)" % pa for pa in peers(bm, "inbound")))

        ok, line = call(cl, pods["legacy/client"], "client", url)
        rep.check(not ok, "legacy/client -> shop/backend refused (STRICT, plaintext): %s" % line)
        bm = proxy_metrics(cl, backend)
        rep.line("       backend's proxy: %s" % "; ".join(podrunner.metrics_lines(bm, ("weft_proxy_inbound_refused_total",))))
        ok, line = call(cl, pods["ops/monitor"], "monitor", url)
        rep.check(not ok, "ops/monitor -> shop/backend denied (same-namespace): %s" % line)
        bm = proxy_metrics(cl, backend)
        rep.line("       backend's proxy: %s" % "; ".join(
            "%s authz=%s" % pa for pa in peers(bm, "inbound") if "ops" in pa[0]))

        spec = app_pod("shop", "batch", "batch", 1004, annotations={"weft.dev/inject": "disabled"})
        adm = cl.admit(spec)
        batch = cl.run_pod(adm.pod)
        rep.check(adm.allowed and not adm.patch and [c.name for c in batch.containers] == ["batch"],
                  "shop/batch (weft.dev/inject: disabled): admitted unchanged, runs without a proxy")
        cl.delete_pod(batch, grace=1)
        adm = cl.admit(app_pod("shop", "bad", "bad", 1005, annotations={"weft.dev/mtls-mode": "OFF"}))
        rep.check(not adm.allowed and "mtls-mode" in adm.message,
                  "shop/bad (weft.dev/mtls-mode: OFF) refused: %s" % adm.message)

        rep.head("shop names ops/monitor in weft.dev/allow-from; shop/backend is re-admitted")
        cl.annotate_namespace("shop", "weft.dev/allow-from", "ops/monitor")
        waited = wait_namespace_refresh(cl, "shop")
        if waited:
            rep.line("  waited %.1fs for the webhook's 10 s namespace cache" % waited)
        spec2 = app_pod("shop", "backend", "backend", 1000)
        adm, new_backend = admit_and_run(cl, spec2)
        env = {e["name"]: e.get("value") for c in adm.pod["spec"]["initContainers"] if c["name"] == "weft-proxy"
               for e in c["env"]}
        rep.line("  new pod %s: WEFT_ALLOW_FROM=%r" % (new_backend.ip, env.get("WEFT_ALLOW_FROM")))
        cl.set_endpoints("shop", "backend", [new_backend])
        cl.delete_pod(backend, grace=2)
        backend = new_backend
        ok, line = call(cl, pods["ops/monitor"], "monitor", url)
        rep.check(ok, "ops/monitor -> shop/backend allowed: %s" % line)
        ok, line = call(cl, pods["shop/frontend"], "frontend", url)
        rep.check(ok, "shop/frontend -> shop/backend still works: %s" % line)
        pods["shop/backend"] = backend

        rep.head("probes now (kubelet-style: from the node netns to the pod IP)")
        for pod in pods.values():
            for ct in pod.containers:
                for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                    probe = ct.spec.get(kind)
                    if not probe:
                        continue
                    ok, target, detail = cl.probe(pod, ct, probe)
                    rewritten = ct.kind == "app" and ":15020/app-health/" in target
                    rep.check(ok, "%-14s %-10s %-14s %s -> %s%s" % (pod.key, ct.name, kind, target, detail,
                                                                 "  (rewritten)" if rewritten else ""))
        pod = pods["shop/backend"]
        env = {e["name"]: e.get("value") for e in pod.container("weft-proxy").spec["env"]}
        rep.line("  %s WEFT_APP_PROBES=%s" % (pod.key, env.get("WEFT_APP_PROBES")))
        original = {"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 1}
        ok, target, detail = cl.probe(pod, pod.container("backend"), original)
        rep.check(not ok, "without the rewrite: %s -> %s (STRICT refuses the kubelet's plaintext)" % (target, detail))

        rep.head("proxy metrics (a few lines each)")
        for pod in pods.values():
            if not any(c.name == "weft-proxy" for c in pod.containers):
                rep.line("  %s: no proxy (namespace not opted in)" % pod.key)
                continue
            m = proxy_metrics(cl, pod)
            rep.line("  %s:" % pod.key)
            for line in podrunner.metrics_lines(m, ("weft_proxy_connections_opened_total",
                                                    "weft_proxy_inbound_refused_total",
                                                    "weft_proxy_tls_handshakes_total"), limit=4):
                rep.line("    " + line)

        rep.head("per-pod overhead")
        for pod in pods.values():
            if not any(c.name == "weft-proxy" for c in pod.containers):
                continue
            rss = pod.rss_kib("weft-proxy")
            rep.line("  %-15s weft-proxy RSS %s KiB; weft-init ran %.0f ms; init containers + proxy "
                     "ready %.0f ms" % (pod.key, rss, pod.init_seconds * 1000, pod.init_phase_seconds * 1000))

        rep.head("stamped but not enforced here, and what each image ran")
        seen = []
        for pod in pods.values():
            for n in pod.not_applied:
                if n not in seen:
                    seen.append(n)
        for n in seen:
            rep.line("  " + n)
        rep.line("")
        rep.line("cleaning up (processes, namespaces, iptables, files)...")
    return rep.failures


def main():
    if os.geteuid() != 0:
        print("weft demo: needs root (network namespaces, iptables); run: sudo make demo", file=sys.stderr)
        return 1
    bindir = os.environ.get("WEFT_BIN") or os.path.join(os.path.dirname(HERE), "build", "bin")

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rep = Report()
    stale = podrunner.reap_stale("wd")
    if stale:
        rep.line("removed what a killed demo run left: %s" % " ".join(stale))
    rep.line("Weft demo: a mesh on this machine (pods are network namespaces in 198.18.0.0/15, nothing routed out)")
    try:
        failures = run_demo(bindir, rep)
    except KeyboardInterrupt:
        print("weft demo: interrupted; everything it made is removed", file=sys.stderr)
        return 130
    except podrunner.RunnerError as e:
        print("weft demo: %s" % e, file=sys.stderr)
        return 1
    took = time.monotonic() - rep.t0
    if failures:
        rep.line("weft demo: %d check(s) failed in %.1fs" % (len(failures), took))
        return 1
    rep.line("weft demo: all checks passed in %.1fs" % took)
    return 0


if __name__ == "__main__":
    sys.exit(main())
