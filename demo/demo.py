# SPDX-License-Identifier: Apache-2.0
"""`make demo`: a whole Weft mesh on one machine, in network namespaces.

Starts weft-identity, weft-discovery and weft-webhook (real TLS) beside a
fake Kubernetes API, creates the namespaces shop (opted in, STRICT,
same-namespace), ops (opted in) and legacy (not opted in), sends each pod to
the webhook, runs what comes back with demo/podrunner.py (which writes the
Namespaces, Pods, Services and EndpointSlices into the directory
weft-discovery watches) and prints what happened. Every call is an HTTP/1.1
request, checked by what both proxies counted for it; the metrics section
has, per pod, the rate, success rate and p50/p99 of its requests from the
proxies' histograms. The pod specs and the checks are shared with
tests/integration/test_mesh.py.
"""
import collections
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import podrunner  # noqa: E402

APP_IMAGE = podrunner.DEMO_IMAGE + ":0.1.0"
BACKEND_ID = "spiffe://cluster.local/ns/shop/sa/backend"
FRONTEND_ID = "spiffe://cluster.local/ns/shop/sa/frontend"
MONITOR_ID = "spiffe://cluster.local/ns/ops/sa/monitor"


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


def burst(cl, pod, container, url, count):
    """kubectl exec <pod> -- demo-app get URL --count N: N HTTP/1.1 requests,
    each on a new connection, one after the other. {status or "failed": n}."""
    r = cl.exec(pod, container, ["demo-app", "get", url, "--timeout", "3", "--count", str(count)],
                timeout=10 + count * 3)
    out = {}
    for line in r.stdout.splitlines():
        key = int(line.split()[1]) if line.startswith("HTTP ") else "failed"
        out[key] = out.get(key, 0) + 1
    return out


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


def sample(metrics, series):
    """The value of one series (name and labels exactly); 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(metrics, family):
    """(labels, value) of every sample of one family (with labels) in a proxy's /metrics."""
    for line in metrics.splitlines():
        if line.startswith(family + "{"):
            head, _, value = line.rpartition(" ")
            yield dict(_LABEL.findall(head[len(family):])), float(value)


def http_answers(metrics, direction, by):
    """{tuple of the labels in by: responses} of the HTTP requests the proxy
    counted in this direction (weft_proxy_http_responses_total)."""
    out = {}
    for labels, v in series(metrics, "weft_proxy_http_responses_total"):
        if labels.get("direction") == direction:
            key = tuple(labels.get(b, "") for b in by)
            out[key] = out.get(key, 0) + int(v)
    return out


def _delta(before, after):
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def pool_peers(metrics):
    """SPIFFE ID -> pooled weft/h2 connections the proxy opened outbound to
    a server that presented it (weft_proxy_pool_connections_opened_total)."""
    out = {}
    for labels, v in series(metrics, "weft_proxy_pool_connections_opened_total"):
        if labels.get("direction") == "outbound" and labels.get("tls") == "true" and v:
            out[labels.get("peer", "")] = out.get(labels.get("peer", ""), 0) + int(v)
    return out


def handshakes(metrics, side, result="success"):
    return sum(v for labels, v in series(metrics, "weft_proxy_tls_handshakes_total")
               if labels.get("side") == side and labels.get("result") == result)


def red(before, after, direction):
    """The requests one proxy counted in a direction between two readings of
    its /metrics: (requests, successful, {le: cumulative count}) from
    weft_proxy_http_requests_total, _responses_total{classification="success"}
    and the buckets of _request_duration_seconds, summed over every series."""
    def sums(text):
        req = sum(v for labels, v in series(text, "weft_proxy_http_requests_total")
                  if labels.get("direction") == direction)
        ok = sum(v for labels, v in series(text, "weft_proxy_http_responses_total")
                 if labels.get("direction") == direction and labels.get("classification") == "success")
        buckets = {}
        for labels, v in series(text, "weft_proxy_http_request_duration_seconds_bucket"):
            if labels.get("direction") == direction:
                le = float(labels["le"])   # "+Inf" reads as inf
                buckets[le] = buckets.get(le, 0) + v
        return req, ok, buckets
    r0, s0, b0 = sums(before)
    r1, s1, b1 = sums(after)
    return r1 - r0, s1 - s0, {le: n - b0.get(le, 0) for le, n in b1.items()}


def quantile(buckets, q):
    """histogram_quantile() as Prometheus (and weftctl stat) compute it: linear
    within the bucket holding rank q * total, the highest finite bound when
    that is +Inf. NaN without observations."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0)
    if total <= 0 or len(bounds) < 2:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if math.isinf(le):
                return lower
            # weftctl's order of operations, so both print the same digits
            return lower + (le - lower) * ((rank - below) / (buckets[le] - below)) if buckets[le] > below else lower
        lower, below = le, buckets[le]
    return math.nan


def fmt_latency(s):
    """As weftctl stat prints a latency."""
    if math.isnan(s):
        return "-"
    return "%.2fms" % (s * 1000) if s < 0.01 else "%.0fms" % (s * 1000) if s < 1 else "%.2fs" % s


def stat_snapshot(pods, texts, now):
    """A `weftctl stat --snapshot` file's content: the admitted pods with the
    /metrics text each proxy answered."""
    return {"now": int(now), "kind": "pod", "pods": [
        {"metadata": {k: p.spec["metadata"].get(k) for k in ("namespace", "name", "annotations")},
         "weftctlMetrics": texts[p.key]} for p in pods]}


def weftctl_stat(bindir, pods, before, after, t_before, t_after):
    """weftctl stat --snapshot AFTER --previous BEFORE (kind pod) over the same
    readings: {pod: {column: value}}, or None with what went wrong."""
    with tempfile.TemporaryDirectory(prefix="weft-demo-stat-") as d:
        paths = []
        for name, texts, t in (("before", before, t_before), ("after", after, t_after)):
            paths.append(os.path.join(d, name + ".json"))
            with open(paths[-1], "w") as f:
                json.dump(stat_snapshot(pods, texts, t), f)
        try:
            r = subprocess.run([os.path.join(bindir, "weftctl"), "stat", "--snapshot", paths[1],
                                "--previous", paths[0]], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, "weftctl stat: %s" % e
    lines = r.stdout.splitlines()
    if r.returncode != 0 or not lines or not lines[0].startswith("NAME"):
        return None, "weftctl stat exited %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[-300:])
    head = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cols = line.split()
        if not cols:
            break
        rows[cols[0]] = dict(zip(head, cols))
    return rows, ""


def route_count(metrics, route):
    """Outbound connections the proxy dialled as discovery decided: plain, mtls, fallback, no_endpoint."""
    return sample(metrics, 'weft_proxy_discovery_routes_total{route="%s"}' % route)


def peer_counts(metrics, direction):
    """(peer, authz) -> mTLS connections opened in this direction so far."""
    out = {}
    for line in metrics.splitlines():
        if line.startswith("weft_proxy_connections_opened_total{") and 'direction="%s"' % direction in line \
                and 'tls="true"' in line:
            peer = line.split('peer="', 1)[1].split('"', 1)[0]
            authz = line.split('authz="', 1)[1].split('"', 1)[0]
            out[(peer, authz)] = out.get((peer, authz), 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


class Call:
    """One `demo-app get` (an HTTP/1.1 request on a new connection) from a
    pod, with what the proxies on both ends counted for it: how the client's
    proxy routed it, its outbound answers by status and its TLS handshakes
    (HTTP goes as a stream of a pooled weft/h2 connection, so only a call
    that opened one adds a handshake); the server proxy's inbound answers by
    (caller's verified SPIFFE ID, status). pooled_ids are the SPIFFE IDs the
    servers of the weft/h2 connections opened for the call presented;
    server_ids and client_ids the mTLS connections opened for it (weft/1
    outbound; inbound also weft/h2), with the server's and the caller's
    identity (and the authorization verdict): only a call that opened one."""

    def __init__(self, cl, client, server, url):
        c0 = proxy_metrics(cl, client) if has_proxy(client) else ""
        s0 = proxy_metrics(cl, server) if server is not None and has_proxy(server) else ""
        self.ok, self.line = call(cl, client, client.name, url)
        c1 = proxy_metrics(cl, client) if c0 else ""
        s1 = proxy_metrics(cl, server) if s0 else ""
        self.routes = {r: route_count(c1, r) - route_count(c0, r) for r in ("plain", "mtls", "fallback", "no_endpoint")}
        self.server_ids = _new(peer_counts(c0, "outbound"), peer_counts(c1, "outbound"))
        self.client_ids = _new(peer_counts(s0, "inbound"), peer_counts(s1, "inbound"))
        self.sent = _delta(http_answers(c0, "outbound", ("status",)), http_answers(c1, "outbound", ("status",)))
        self.received = _delta(http_answers(s0, "inbound", ("peer", "status")),
                               http_answers(s1, "inbound", ("peer", "status")))
        self.handshakes = handshakes(c1, "client") - handshakes(c0, "client")
        self.pooled_ids = _new(pool_peers(c0), pool_peers(c1))
        self.handshake_failures = handshakes(c1, "client", "failure") - handshakes(c0, "client", "failure")

    def route(self):
        return ",".join("%s" % r for r, n in self.routes.items() if n) or "none"

    def counted(self):
        """What both proxies counted for the call, for the report."""
        sent = ", ".join("%s x%d" % (st, n) for (st,), n in sorted(self.sent.items()))
        got = ", ".join("%s x%d from %s" % (st, n, peer or "a plaintext caller")
                        for (peer, st), n in sorted(self.received.items()))
        return "client's proxy counted outbound %s; server's proxy inbound %s" % (sent or "nothing", got or "nothing")


def _new(before, after):
    return [pa for pa, n in sorted(after.items()) if n > before.get(pa, 0)]


BURST_OK, BURST_FAIL = 40, 10   # the requests section: GET / and GET /status/500, one connection each


class Tally:
    """The HTTP answers the demo's apps got, by (pod, direction) of the proxy
    that must have counted them: the client's outbound, and the server's
    inbound when the request reached it (not when its proxy refused it)."""

    def __init__(self):
        self.count, self.failures = collections.Counter(), collections.Counter()

    def add(self, c, client, server):
        if not c.line.startswith("HTTP "):
            return
        status = int(c.line.split()[1])
        for pod, direction in ((client, "outbound"), (server, "inbound")):
            if pod is not None and has_proxy(pod):
                self.count[pod.key, direction] += 1
                self.failures[pod.key, direction] += status >= 500


def has_proxy(pod):
    return any(c.name == "weft-proxy" for c in pod.containers)


def wait_policy_update(cl, pod, before, t0, seconds=5.0):
    """Waits until the pod's proxy swapped in a new policy from discovery
    (weft_proxy_discovery_policy_updates_total past `before`). Returns the
    seconds since t0 it took, or None. Bounded."""
    while time.monotonic() - t0 < seconds:
        if sample(proxy_metrics(cl, pod), "weft_proxy_discovery_policy_updates_total") > before:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


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
        rep.head("control plane: fake Kubernetes API, weft-identity, weft-discovery, weft-webhook (TLS, node netns)")
        cl.start()
        setup_namespaces(cl)
        rep.line("  mesh.yaml: templates/mesh.yaml with identity.address=%s:%d, discovery.address=%s:%d, "
                 "meshNetworks=%s,%s" % (podrunner.NODE_IP, podrunner.IDENTITY_PORT, podrunner.NODE_IP,
                                         podrunner.DISCOVERY_PORT, podrunner.POD_NET, podrunner.SERVICE_NET))
        rep.line("  weft-discovery serve --objects %s: the runner writes there the Namespaces, Pods, Services and"
                 % cl.objects_dir)
        rep.line("    EndpointSlices an API server would hold; discovery re-reads it on every change (inotify)")
        rep.line("  namespaces: shop (inject=enabled, STRICT, same-namespace), ops (inject=enabled), "
                 "legacy (not opted in)")

        rep.head("pods: AdmissionReview -> weft-webhook -> JSON Patch -> run")
        pods = {}
        specs = [app_pod("shop", "backend", "backend", 1000), app_pod("shop", "frontend", "frontend", 1001),
                 app_pod("ops", "monitor", "monitor", 1002, serve=False),
                 app_pod("legacy", "client", "client", 1003, serve=False),
                 app_pod("legacy", "web", "web", 1009)]
        for spec in specs:
            t = time.monotonic()
            adm, pod = admit_and_run(cl, spec)
            pods[pod.key] = pod
            names = [c.name + ("(sidecar)" if c.kind == "sidecar" else "") for c in pod.containers]
            what = "%d patch ops" % len(adm.patch) if adm.sent else "not sent: " + adm.message
            rep.line("  %-15s %-11s %s; containers %s; ready in %.2fs" % (
                pod.key, pod.ip, what, " -> ".join(names), time.monotonic() - t))
        backend, frontend, monitor, web = (pods[k] for k in ("shop/backend", "shop/frontend", "ops/monitor",
                                                                "legacy/web"))
        ran = backend.container("weft-init")
        sc = ran.spec.get("securityContext") or {}
        rep.line("  weft-init ran as in the spec (uid %s, capabilities %s): weft-init %s -> exit %d" % (
            sc.get("runAsUser", 0), "+".join((sc.get("capabilities") or {}).get("add", [])) or "none",
            " ".join(ran.spec["args"]), ran.exit_code))
        env = {e["name"]: e.get("value") for e in backend.container("weft-proxy").spec["env"]}
        rep.check(env.get("WEFT_DISCOVERY_ADDR") == "%s:%d" % (podrunner.NODE_IP, podrunner.DISCOVERY_PORT),
                  "the webhook stamped WEFT_DISCOVERY_ADDR=%s from mesh.yaml's discovery.address"
                  % env.get("WEFT_DISCOVERY_ADDR"))
        vip = cl.add_service("shop", "backend", 80, 8080, [backend])
        web_vip = cl.add_service("legacy", "web", 80, 8080, [web])
        url, web_url = "http://%s/" % vip, "http://%s/" % web_vip
        rep.line("  service shop/backend: %s:80 -> %s:8080; legacy/web: %s:80 -> %s:8080 (a Service and its"
                 % (vip, backend.ip, web_vip, web.ip))
        rep.line("    EndpointSlice in discovery's directory, and DNAT in the node netns for pods without a proxy)")
        for pod in pods.values():
            if has_proxy(pod):
                m = proxy_metrics(cl, pod)
                rep.line("  %-15s %s" % (pod.key, certificate_line(m)))
                # The policy answer is acknowledged once applied; it moves the config generation only
                # when it differs from what the webhook stamped into the environment (not here).
                rep.check(sample(m, "weft_proxy_discovery_connected") == 1 and
                          sample(m, "weft_proxy_discovery_acks_total") >= 1,
                          "%-15s weft-proxy's stream to weft-discovery is up (%d answer(s) applied and acknowledged: "
                          "its inbound policy)" % (pod.key, sample(m, "weft_proxy_discovery_acks_total")))

        # Every meshed proxy's counters when the traffic starts: the RED table below is what came after.
        meshed = [p for p in pods.values() if has_proxy(p)]
        red_t0, red_w0, red0 = time.monotonic(), time.time(), {p.key: proxy_metrics(cl, p) for p in meshed}
        sent = Tally()

        rep.head("traffic (kubectl exec <pod> -- demo-app get URL: an HTTP/1.1 request on a new connection; what both "
                 "proxies counted for it, from their metrics)")
        c = Call(cl, frontend, backend, url)
        sent.add(c, frontend, backend)
        rep.check(c.ok, "shop/frontend -> shop/backend (%s): %s" % (url, c.line))
        rep.check(c.routes["mtls"] == 1 and c.handshakes == 1 and not c.handshake_failures and
                  c.pooled_ids == [BACKEND_ID],
                  "  mTLS to the endpoint discovery named (route %s) on a pooled weft/h2 connection it opened (%d "
                  "handshake); the server verified as %s, the identity discovery said it must present" % (
                      c.route(), c.handshakes, ", ".join(c.pooled_ids) or "nobody"))
        rep.check(c.client_ids == [(FRONTEND_ID, "allowed")] and c.received == {(FRONTEND_ID, "200"): 1} and
                  c.sent == {("200",): 1},
                  "  backend's proxy verified the caller as %s (authz %s); %s" % (
                      ", ".join(p for p, _ in c.client_ids) or "nobody",
                      ", ".join(a for _, a in c.client_ids) or "-", c.counted()))

        c = Call(cl, frontend, None, web_url)
        sent.add(c, frontend, None)
        rep.check(c.ok and '"pod": "legacy/web"' in c.line and '"from": "%s"' % frontend.ip in c.line,
                  "shop/frontend -> legacy/web (%s, no proxy there): %s" % (web_url, c.line))
        rep.check(c.routes["plain"] == 1 and not c.server_ids and not c.pooled_ids and c.handshakes == 0 and
                  c.sent == {("200",): 1},
                  "  plain TCP (route %s, no handshake): discovery says the endpoint is not meshed, although %s is "
                  "inside meshNetworks; %s" % (c.route(), web_vip, c.counted()))

        c = Call(cl, pods["legacy/client"], backend, url)
        rep.check(not c.ok and not c.received, "legacy/client -> shop/backend refused (STRICT, plaintext): %s" % c.line)
        bm = proxy_metrics(cl, backend)
        rep.line("       backend's proxy: %s" % "; ".join(podrunner.metrics_lines(bm, ("weft_proxy_inbound_refused_total",))))
        c = Call(cl, monitor, backend, url)
        sent.add(c, monitor, backend)   # answered by backend's proxy, which counts it: nothing reaches the app
        rep.check(c.line.startswith("HTTP 403 ") and "not allowed" in c.line and c.client_ids == [(MONITOR_ID, "denied")]
                  and c.pooled_ids == [BACKEND_ID] and c.sent == {("403",): 1}
                  and c.received == {(MONITOR_ID, "403"): 1},
                  "ops/monitor -> shop/backend denied (same-namespace), answered by backend's proxy: %s" % c.line)
        rep.line("       backend's proxy verified the caller as %s and keeps its weft/h2 connection, answering each "
                 "request 403 without reaching the app; monitor's proxy the server as %s; %s" % (
                     ", ".join("%s (authz %s)" % pa for pa in c.client_ids) or "nobody",
                     ", ".join(c.pooled_ids) or "nobody", c.counted()))

        spec = app_pod("shop", "batch", "batch", 1004, annotations={"weft.dev/inject": "disabled"})
        adm = cl.admit(spec)
        batch = cl.run_pod(adm.pod)
        rep.check(adm.allowed and not adm.patch and [c.name for c in batch.containers] == ["batch"],
                  "shop/batch (weft.dev/inject: disabled): admitted unchanged, runs without a proxy")
        cl.delete_pod(batch, grace=1)
        adm = cl.admit(app_pod("shop", "bad", "bad", 1005, annotations={"weft.dev/mtls-mode": "OFF"}))
        rep.check(not adm.allowed and "mtls-mode" in adm.message,
                  "shop/bad (weft.dev/mtls-mode: OFF) refused: %s" % adm.message)

        rep.head("requests: shop/frontend sends %d HTTP/1.1 requests to shop/backend, each on a new connection: %d "
                 "GET / and %d GET /status/500" % (BURST_OK + BURST_FAIL, BURST_OK, BURST_FAIL))
        f0, b0 = proxy_metrics(cl, frontend), proxy_metrics(cl, backend)
        t = time.monotonic()
        answers = burst(cl, frontend, "frontend", url, BURST_OK)
        for st, n in burst(cl, frontend, "frontend", url + "status/500", BURST_FAIL).items():
            answers[st] = answers.get(st, 0) + n
        took = time.monotonic() - t
        f1, b1 = proxy_metrics(cl, frontend), proxy_metrics(cl, backend)
        answered = sum(n for st, n in answers.items() if st != "failed")
        sent.count[frontend.key, "outbound"] += answered
        sent.count[backend.key, "inbound"] += answered
        sent.failures[frontend.key, "outbound"] += answers.get(500, 0)
        sent.failures[backend.key, "inbound"] += answers.get(500, 0)
        rep.check(answers == {200: BURST_OK, 500: BURST_FAIL},
                  "the app answered %s in %.1f s" % (", ".join("%s x%d" % kv for kv in sorted(answers.items(), key=str)),
                                                     took))
        out = _delta(http_answers(f0, "outbound", ("status",)), http_answers(f1, "outbound", ("status",)))
        rep.check(out == {("200",): BURST_OK, ("500",): BURST_FAIL},
                  "  frontend's proxy counted outbound %s" % (", ".join("%s x%d" % (k[0], n) for k, n in sorted(out.items()))
                                                              or "nothing"))
        got = _delta(http_answers(b0, "inbound", ("peer", "status")), http_answers(b1, "inbound", ("peer", "status")))
        rep.check(got == {(FRONTEND_ID, "200"): BURST_OK, (FRONTEND_ID, "500"): BURST_FAIL},
                  "  backend's proxy counted inbound %s" % (", ".join(
                      "%s x%d from %s" % (k[1], n, k[0]) for k, n in sorted(got.items())) or "nothing"))
        hs = handshakes(f1, "client") - handshakes(f0, "client")
        pooled = sum(pool_peers(f1).values()) - sum(pool_peers(f0).values())
        rep.check(hs <= 1 and pooled <= 1, "  %d app connections, %d new mTLS handshake(s), %d new pooled weft/h2 "
                  "connection(s): the requests went as streams of the pooled one" % (BURST_OK + BURST_FAIL, hs, pooled))

        rep.head("shop names ops/monitor in weft.dev/allow-from: the Namespace in discovery's directory changes, "
                 "no pod restarts")
        pid = backend.pid("weft-proxy")
        for value, allowed in (("ops/monitor", True), (None, False)):
            before = sample(proxy_metrics(cl, backend), "weft_proxy_discovery_policy_updates_total")
            t0 = time.monotonic()
            cl.annotate_namespace("shop", "weft.dev/allow-from", value)
            took = wait_policy_update(cl, backend, before, t0)
            what = "set to %s" % value if value else "removed"
            rep.check(took is not None, "weft.dev/allow-from %s: backend's proxy swapped in discovery's new policy "
                      "%s" % (what, "%.0f ms after the write" % (took * 1000) if took is not None else "(not within 5 s)"))
            c = Call(cl, monitor, backend, url)
            sent.add(c, monitor, backend)
            # The caller's pooled weft/h2 connection outlives the change: the policy in force decides per request.
            if allowed:
                rep.check(c.ok and c.received == {(MONITOR_ID, "200"): 1} and c.handshakes == 0,
                          "ops/monitor -> shop/backend allowed on its open connection: %s" % c.line)
            else:
                rep.check(c.line.startswith("HTTP 403 ") and c.sent == {("403",): 1} and
                          c.received == {(MONITOR_ID, "403"): 1} and
                          c.handshakes == 0, "ops/monitor -> shop/backend denied again on it, answered by backend's "
                          "proxy: %s" % c.line)
            rep.line("       %s; %d new handshake(s)" % (c.counted(), c.handshakes))
            c = Call(cl, frontend, backend, url)
            sent.add(c, frontend, backend)
            rep.check(c.ok and c.received == {(FRONTEND_ID, "200"): 1},
                      "shop/frontend -> shop/backend still allowed: %s" % c.line)
            rep.check(backend.pid("weft-proxy") == pid,
                      "shop/backend's weft-proxy is the same process (pid %s -> %s), never restarted" % (
                          pid, backend.pid("weft-proxy")))

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

        red_t1, red_w1, red1 = time.monotonic(), time.time(), {p.key: proxy_metrics(cl, p) for p in meshed}
        secs = red_t1 - red_t0
        rep.head("requests per pod over the %.1f s since the traffic began (from each proxy's /metrics: "
                 "weft_proxy_http_requests_total, _responses_total, _request_duration_seconds)" % secs)
        rep.line("  %-15s %-9s %8s %7s %9s %8s %8s" % ("POD", "DIRECTION", "REQUESTS", "RATE/s", "SUCCESS", "P50", "P99"))
        figures = {}
        for pod in meshed:
            for direction in ("inbound", "outbound"):
                n, ok, buckets = red(red0[pod.key], red1[pod.key], direction)
                p50, p99 = quantile(buckets, 0.50), quantile(buckets, 0.99)
                figures[pod.key, direction] = (n, ok, p50, p99)
                rep.line("  %-15s %-9s %8d %7s %9s %8s %8s" % (
                    pod.key, direction, n, "%.1f" % (n / secs) if n else "-",
                    "%.2f%%" % (100.0 * min(ok, n) / n) if n else "-", fmt_latency(p50), fmt_latency(p99)))
        rep.line("  SUCCESS: not 5xx (a 403 from the server's proxy to a denied caller is an answer, as in Linkerd); "
                 "P50, P99: to the end of the response, from the histogram buckets")
        for (key, direction), (n, ok, p50, p99) in sorted(figures.items()):
            want, fails = sent.count[key, direction], sent.failures[key, direction]
            if not n and not want:
                continue
            rep.check(n == want and ok == n - fails and 0 < p50 <= p99,
                      "%-15s %-8s %d requests counted, %d answered to the demo's apps; %d successful, %d failed "
                      "(the apps got %d 5xx)" % (key, direction, n, want, ok, n - ok, fails))
        rows, why = weftctl_stat(bindir, meshed, red0, red1, red_w0, red_w1)
        for pod in meshed:
            n, ok, p50, p99 = figures[pod.key, "inbound"]
            if not n:
                continue   # weftctl stat's request figures are the inbound ones
            mine = {"SUCCESS": "%.2f%%" % (100.0 * min(ok, n) / n) if n else "-", "P50": fmt_latency(p50),
                    "P99": fmt_latency(p99)}
            theirs = {k: (rows or {}).get(pod.key, {}).get(k) for k in mine}
            rep.check(rows is not None and mine == theirs,
                      "%-15s weftctl stat --snapshot (inbound, the same two readings): success %s, p50 %s, p99 %s%s"
                      % (pod.key, theirs["SUCCESS"], theirs["P50"], theirs["P99"], "" if rows is not None else ": " + why))

        rep.head("proxy metrics (a few lines each)")
        for pod in pods.values():
            if not has_proxy(pod):
                rep.line("  %s: no proxy (namespace not opted in)" % pod.key)
                continue
            m = proxy_metrics(cl, pod)
            rep.line("  %s:" % pod.key)
            for line in podrunner.metrics_lines(m, ("weft_proxy_connections_opened_total",
                                                    "weft_proxy_inbound_refused_total",
                                                    "weft_proxy_tls_handshakes_total"), limit=4):
                rep.line("    " + line)
            for line in podrunner.metrics_lines(m, ("weft_proxy_pool_connections_opened_total",
                                                    "weft_proxy_discovery_routes_total",
                                                    "weft_proxy_discovery_policy_updates_total")):
                rep.line("    " + line)
        rep.line("  weft-discovery:")
        for line in podrunner.metrics_lines(cl.discovery_metrics(), (
                "weft_discovery_streams", "weft_discovery_subscriptions", "weft_discovery_pushes_total",
                "weft_discovery_acks_total", "weft_discovery_nacks_total", "weft_discovery_source_reloads_total")):
            rep.line("    " + line)

        rep.head("per-pod overhead")
        for pod in pods.values():
            if not has_proxy(pod):
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
