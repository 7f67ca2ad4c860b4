# SPDX-License-Identifier: Apache-2.0
"""weft-discovery against the real kube-apiserver of the e2e suite, with the
directory source on the same objects in the same run as the baseline.

Starts the pinned etcd + kube-apiserver of tests/e2e (cluster.py, no
controller-manager, no node: pods are API objects only, their status
patched to Running with an IP, as a kubelet would report), installs the
Gateway API standard-channel CRDs of the pinned release (HTTPRoute,
GRPCRoute, ReferenceGrant) and the ClusterRole of manifests/discovery/
for a service account, and creates through the API: NS namespaces, 3
service accounts in each, PODS meshed pods (in batches of 100), SVCS
Services (ClusterIPs allocated by the API server), one EndpointSlice of 10
pods and one HTTPRoute per Service. The same objects, read back from the
API, become a directory of manifests. Then, ROUNDS times, alternating:

  dir:  weft-discovery serve --objects DIR; the change rewrites Service 0's
        EndpointSlice file (the directory is re-read whole);
  api:  weft-discovery serve --kubernetes with that service account's token;
        the change is one PUT of Service 0's EndpointSlice to the API server;

each with CONNS simulated proxies (load.c) subscribed to SUBS destinations
(Service 0's on every stream). Measured: the time to /readyz (every
resource listed, or the directory loaded), the time until every stream
holds its first answers, the change's arrival at every stream (p50, p99,
max: from the file's rename, or from the PUT being sent), RSS after the
load and with every stream open, CPU over 10 s idle; in api rounds then
CPU under 10 endpoint changes a second for BENCH_CHURN_S (default 10)
seconds, every push acknowledged. "restart_s" is ready_s + synced_s: from
a new process's start to every stream holding its first answers, a fleet
that reconnects at once (the proxies' own backoff not counted). Prints one JSON line
per round and the ratios api/dir of the medians.

Only the API server and etcd run: the e2e node (node.py, its lock
/run/weft-e2e-node.lock) is neither started nor taken.

    BENCH_NS=50 BENCH_PODS=1000 BENCH_SVCS=100 BENCH_CONNS=500 BENCH_SUBS=20 \\
    BENCH_ROUNDS=2 WEFT_BIN=build/bin /usr/bin/python3 bench/discovery/apiserver.py

To compare builds in one run on the same cluster, BENCH_BINS=before=DIR1,after=DIR2
(each round runs every mode with every build, in that order; medians and
ratios are per build) and BENCH_MODES=api (or dir, or dir,api, the default).
With BENCH_PERF_DIR=DIR, each api round's push (the PUT and 3 s after it)
is recorded with perf into DIR/perf-LABEL-ROUND.data.
Each round's line also carries the server's own part of the push
(server_push_mean_ms: weft_discovery_push_latency_seconds' sum over its
count, from the watch event's receipt to each answer queued).
"""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import cluster as cl  # noqa: E402
from weft import metric_series  # noqa: E402

N_NS = int(os.environ.get("BENCH_NS", "50"))
N_PODS = int(os.environ.get("BENCH_PODS", "1000"))
N_SVCS = int(os.environ.get("BENCH_SVCS", "100"))
CONNS = int(os.environ.get("BENCH_CONNS", "500"))
SUBS = int(os.environ.get("BENCH_SUBS", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
BIN = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "bin"))
BINS = [tuple(b.split("=", 1)) for b in os.environ.get("BENCH_BINS", "").split(",") if b] or [("", BIN)]
PERF_DIR = os.environ.get("BENCH_PERF_DIR")  # perf record of each api round's push, into this directory
MODES = [m for m in os.environ.get("BENCH_MODES", "dir,api").split(",") if m]
CHURN_S = int(os.environ.get("BENCH_CHURN_S", "10"))  # api rounds: seconds of 10 endpoint changes per second
CHURN_RATE = 10
if any(len(b) != 2 or not b[0] for b in BINS) and BINS != [("", BIN)]:
    raise SystemExit("bench/discovery/apiserver.py: BENCH_BINS: expected LABEL=DIR[,LABEL=DIR...]")
if not MODES or any(m not in ("dir", "api") for m in MODES):
    raise SystemExit("bench/discovery/apiserver.py: BENCH_MODES: expected dir, api or dir,api")
BATCH = 100
for name, v, lo, hi in (("BENCH_NS", N_NS, 1, 500), ("BENCH_PODS", N_PODS, 10, 10000),
                        ("BENCH_SVCS", N_SVCS, 1, 1000), ("BENCH_CONNS", CONNS, 1, 2000),
                        ("BENCH_SUBS", SUBS, 1, 100), ("BENCH_ROUNDS", ROUNDS, 1, 5),
                        ("BENCH_CHURN_S", CHURN_S, 0, 60)):
    if not lo <= v <= hi:
        raise SystemExit("bench/discovery/apiserver.py: %s=%d: expected %d-%d" % (name, v, lo, hi))


def log(msg):
    print("apiserver bench: " + msg, file=sys.stderr, flush=True)


class Api:
    """The API server over one keep-alive HTTPS connection per thread, as
    the cluster's admin (a client certificate of system:masters)."""

    def __init__(self, c):
        self.port = c.port
        self.ctx = ssl.create_default_context(cafile=c.ca_crt)
        self.ctx.load_cert_chain(os.path.join(c.dir, "pki", "admin.crt"), os.path.join(c.dir, "pki", "admin.key"))
        self.local = threading.local()

    def req(self, method, path, body=None, ctype="application/json", ok=(200, 201)):
        for attempt in range(20):  # a dropped kept-alive connection, or a 429 (a new CRD's storage starting)
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                                                     timeout=30)
            try:
                data = json.dumps(body).encode() if body is not None else None
                conn.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
                r = conn.getresponse()
                text = r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt >= 2:
                    raise
                continue
            if r.status == 429 and attempt < 19:
                time.sleep(0.5)
                continue
            if r.status not in ok:
                raise RuntimeError("%s %s: %d %s" % (method, path, r.status, text[:500]))
            return json.loads(text) if text else None


def ip(base, i):
    return "%d.%d.%d.%d" % (base, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def in_batches(pool, fn, items):
    """fn over items, BATCH at a time; the first failure ends the bench."""
    for k in range(0, len(items), BATCH):
        for f in [pool.submit(fn, it) for it in items[k:k + BATCH]]:
            f.result()


def install(c, api, pool, work):
    gw = cl.gateway_api_dir()
    for crd in cl.GATEWAY_CRDS:
        c.kubectl("apply", "--server-side", "-f", cl.gateway_api_crd(gw, crd))
    c.kubectl("wait", "--for", "condition=established", "--timeout=60s",
              *["crd/%s.gateway.networking.k8s.io" % crd for crd in cl.GATEWAY_CRDS])
    # The shipped RBAC, as shipped: a watch it does not allow fails the api round.
    api.req("POST", "/api/v1/namespaces", {"metadata": {"name": "weft-system"}})
    with open(os.path.join(ROOT, "manifests", "discovery", "discovery.yaml")) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
                c.apply_json(doc)
    token = os.path.join(work, "token")
    with open(token, "w") as f:
        f.write(c.token("weft-discovery", "weft-system", duration="2h") + "\n")

    namespaces = ["ns-%d" % i for i in range(N_NS)]
    in_batches(pool, lambda n: api.req("POST", "/api/v1/namespaces", {"metadata": {"name": n}}), namespaces)
    in_batches(pool, lambda a: api.req("POST", "/api/v1/namespaces/%s/serviceaccounts" % a[0],
                                       {"metadata": {"name": a[1]}}),
               [(n, "sa-%d" % k) for n in namespaces for k in range(3)])
    pods, by_ns = [], {n: [] for n in namespaces}
    for i in range(N_PODS):
        n = namespaces[i % N_NS]
        by_ns[n].append(("pod-%d" % i, ip(10, i + 1)))
        pods.append((n, "pod-%d" % i, ip(10, i + 1), i))

    def create_pod(p):
        n, name, addr, i = p
        api.req("POST", "/api/v1/namespaces/%s/pods" % n, {
            "metadata": {"name": name, "labels": {"app": "app-%d" % (i % 7)},
                         "annotations": {"weft.dev/status": "{}"}},
            "spec": {"serviceAccountName": "sa-%d" % (i % 3), "nodeName": "node-%d" % (i % 50),
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
        # What a kubelet reports once the pod runs.
        api.req("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (n, name),
                {"status": {"phase": "Running", "podIP": addr, "podIPs": [{"ip": addr}]}},
                ctype="application/merge-patch+json")
    t = time.monotonic()
    in_batches(pool, create_pod, pods)
    log("%d pods created and running in %.1f s" % (N_PODS, time.monotonic() - t))

    def create_service(i):
        n, name = namespaces[i % N_NS], "svc-%d" % i
        svc = api.req("POST", "/api/v1/namespaces/%s/services" % n, {
            "metadata": {"name": name},
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                                     "targetPort": 8080, "appProtocol": "http"}]}})
        members = by_ns[n][(i // N_NS) * 10 % max(1, len(by_ns[n])):][:10] or by_ns[n][:10]
        api.req("POST", "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % n, {
            "metadata": {"name": name + "-abcde", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": "node-1", "targetRef": {"kind": "Pod", "namespace": n, "name": p}}
                          for p, a in members]})
        api.req("POST", "/apis/gateway.networking.k8s.io/v1/namespaces/%s/httproutes" % n, {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name, "port": 80}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [{"name": name, "port": 80}]}]}})
        return "destination:%s:80" % svc["spec"]["clusterIP"]
    ids = [None] * N_SVCS
    for k in range(0, N_SVCS, BATCH):
        futs = {pool.submit(create_service, i): i for i in range(k, min(N_SVCS, k + BATCH))}
        for f, i in futs.items():
            ids[i] = f.result()
    with open(os.path.join(work, "ids.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    log("%d Services, EndpointSlices and HTTPRoutes created" % N_SVCS)


COLLECTIONS = (("/api/v1/namespaces", "v1", "Namespace"), ("/api/v1/services", "v1", "Service"),
               ("/apis/discovery.k8s.io/v1/endpointslices", "discovery.k8s.io/v1", "EndpointSlice"),
               ("/api/v1/pods", "v1", "Pod"),
               ("/apis/gateway.networking.k8s.io/v1/httproutes", "gateway.networking.k8s.io/v1", "HTTPRoute"),
               ("/apis/gateway.networking.k8s.io/v1/grpcroutes", "gateway.networking.k8s.io/v1", "GRPCRoute"),
               ("/apis/gateway.networking.k8s.io/v1beta1/referencegrants", "gateway.networking.k8s.io/v1beta1",
                "ReferenceGrant"))
SLICE0 = ("ns-0", "svc-0-abcde")


def dump_directory(api, d):
    """Every watched object as the API server serves it, as Lists of at most
    100 items (a manifest may hold 1 MiB); Service 0's slice in its own file."""
    os.makedirs(d)
    for k, (path, av, kind) in enumerate(COLLECTIONS):
        items = api.req("GET", path)["items"]
        for it in items:
            it["apiVersion"], it["kind"] = av, kind
        if kind == "EndpointSlice":
            with open(os.path.join(d, "25-bench-slice.json"), "w") as f:
                json.dump([it for it in items if (it["metadata"]["namespace"], it["metadata"]["name"]) == SLICE0][0], f)
            items = [it for it in items if (it["metadata"]["namespace"], it["metadata"]["name"]) != SLICE0]
        for j in range(0, len(items), 100):
            with open(os.path.join(d, "%02d-%s-%03d.json" % (k, kind.lower(), j // 100)), "w") as f:
                json.dump({"apiVersion": "v1", "kind": "List", "items": items[j:j + 100]}, f)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def credentials(work):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "1", "-subj", "/CN=bench-ca", cwd=work)
    for name, san in (("server", "IP:127.0.0.1"), ("proxy", "URI:spiffe://cluster.local/ns/ns-0/sa/sa-0")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=" + name, cwd=work)
        with open(os.path.join(work, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext", cwd=work)


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def wait_s(pid):
    """Seconds pid was runnable but waited for a CPU (schedstat's second field)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[1]) / 1e9


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def churn(api, pid, mport):
    """Steady state under change: CHURN_RATE EndpointSlice writes a second
    for CHURN_S seconds (bounded by count), each flipping the last
    endpoint's ready and serving of Service k's slice (k = 1, 2, ...: each
    subscribed on about CONNS * (SUBS - 1) / SVCS streams), as pods going
    unready and back would. weft-discovery's CPU over the window and 2 s
    after it (its pushes drained), in cores; every push it makes in that
    time must be acknowledged by the streams."""
    if CHURN_S == 0 or N_SVCS < 2:
        return {}
    namespaces = ["ns-%d" % i for i in range(N_NS)]
    before, c0, t0 = metric_series(mport, timeout=10), cpu_s(pid), time.monotonic()
    n = CHURN_S * CHURN_RATE
    for i in range(n):
        pause = t0 + i / CHURN_RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        k = 1 + i % (N_SVCS - 1)
        path = "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/svc-%d-abcde" % (namespaces[k % N_NS], k)
        s = api.req("GET", path)
        cond = s["endpoints"][-1]["conditions"]
        cond["ready"] = cond["serving"] = not cond["ready"]
        api.req("PUT", path, s)
    writes_s = time.monotonic() - t0
    time.sleep(2)
    window = time.monotonic() - t0
    cpu = (cpu_s(pid) - c0) / window
    after = metric_series(mport, timeout=10)
    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in ("weft_discovery_pushes_total",
                                                                  "weft_discovery_acks_total")}
    return {"churn_changes": n, "churn_writes_s": round(writes_s, 2), "churn_cpu_core": round(cpu, 4),
            "churn_pushes": delta["weft_discovery_pushes_total"], "churn_acks": delta["weft_discovery_acks_total"]}


def one_round(mode, rnd, c, api, work, label="", bindir=BIN):
    """One weft-discovery process under load; returns the round's figures."""
    d = os.path.join(work, "round-%d-%s%s" % (rnd, mode, "-" + label if label else ""))
    os.makedirs(d)
    lport, mport = port(), port()
    src = ["--objects", os.path.join(work, "objects-%d" % rnd)] if mode == "dir" else \
        ["--kubernetes", "--api-server", "127.0.0.1:%d" % c.port, "--api-ca", c.ca_crt,
         "--api-token", os.path.join(work, "token")]
    if mode == "dir":
        subprocess.run(["rm", "-rf", src[1]], check=True)
        subprocess.run(["cp", "-a", os.path.join(work, "objects"), src[1]], check=True)
    t0 = time.monotonic()
    dlog = open(os.path.join(d, "discovery.log"), "w")
    p = subprocess.Popen(["taskset", "-c", "0", os.path.join(bindir, "weft-discovery"), "serve", *src,
                          "--trust-domain", "cluster.local", "--cert", os.path.join(work, "server.crt"),
                          "--key", os.path.join(work, "server.key"), "--trust-bundle", os.path.join(work, "ca.crt"),
                          "--config", os.path.join(ROOT, "templates", "mesh.yaml"), "--listen", "127.0.0.1:%d" % lport,
                          "--metrics-listen", "127.0.0.1:%d" % mport, "--max-connections", str(CONNS + 100),
                          "--log-level", "warn"], stdout=dlog, stderr=subprocess.STDOUT)
    lp = changer = None
    try:
        deadline = time.monotonic() + 120
        while True:
            if p.poll() is not None:
                raise RuntimeError("weft-discovery exited: " + open(dlog.name).read()[-2000:])
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % mport, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("not ready in 120 s: " + open(dlog.name).read()[-2000:])
            time.sleep(0.02)
        ready_s = time.monotonic() - t0
        rss_loaded = rss_mib(p.pid)
        cpu_ready, wait_ready = cpu_s(p.pid), wait_s(p.pid)
        env = dict(os.environ, LOAD_HOLD_S=str(15 + (CHURN_S + 10 if mode == "api" else 0)))
        if mode == "api":
            fifo = os.path.join(d, "change")
            os.mkfifo(fifo)
            env["LOAD_CHANGE_FIFO"] = fifo

            path = "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/%s" % SLICE0
            s = api.req("GET", path)
            s["endpoints"][0]["addresses"] = [ip(10, (9 << 16) + (1 + rnd * 16 + [b[0] for b in BINS].index(label)) % 65536)]  # as the file's 10.0. -> 10.9.

            def change():
                with open(fifo) as f:
                    if f.readline():
                        prof = None
                        if PERF_DIR:  # the push alone, profiled: from the PUT until every stream has it
                            prof = subprocess.Popen(["perf", "record", "-q", "-F", "1999", "-g", "-p", str(p.pid), "-o",
                                                     os.path.join(PERF_DIR, "perf-%s-%d.data" % (label or "bin", rnd))],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            time.sleep(0.5)  # perf attached
                        api.req("PUT", path, s)
                        if prof:
                            time.sleep(3)
                            prof.send_signal(signal.SIGINT)
                            prof.wait(timeout=30)
            changer = threading.Thread(target=change, daemon=True)
            changer.start()
        out = open(os.path.join(d, "load.json"), "w")
        lp = subprocess.Popen(["taskset", "-c", "1", os.path.join(work, "load"), str(lport),
                               os.path.join(work, "ca.crt"), os.path.join(work, "proxy.crt"),
                               os.path.join(work, "proxy.key"), str(CONNS), str(SUBS), os.path.join(work, "ids.txt"),
                               os.path.join(src[1] if mode == "dir" else d, "25-bench-slice.json"),
                               '"10.0.', '"10.9.', "120"], stdout=out, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 180
        while os.path.getsize(out.name) == 0:
            if lp.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("load: %s %s" % (lp.stderr.read().decode()[-2000:], open(dlog.name).read()[-2000:]))
            time.sleep(0.1)
        result = json.loads(open(out.name).read())
        # The server's CPU from ready to the load's report: the fleet's sync and the one change.
        result["server_cpu_sync_s"] = round(cpu_s(p.pid) - cpu_ready, 3)
        # ... and the time it was ready to run but another process had its CPU.
        result["server_wait_sync_s"] = round(wait_s(p.pid) - wait_ready, 3)
        time.sleep(1)
        rss_streams = rss_mib(p.pid)
        c0 = cpu_s(p.pid)
        time.sleep(10)
        idle = (cpu_s(p.pid) - c0) / 10
        churned = churn(api, p.pid, mport) if mode == "api" else {}
        if churned and churned["churn_acks"] < churned["churn_pushes"]:
            raise RuntimeError("under churn %d pushes but %d acks: %s" %
                               (churned["churn_pushes"], churned["churn_acks"], open(dlog.name).read()[-3000:]))
        metrics = metric_series(mport, timeout=10)
        objects = int(sum(v for k, v in metrics.items() if k.startswith("weft_discovery_store_objects{")))
        errors = int(sum(v for k, v in metrics.items() if k.startswith("weft_discovery_watch_errors_total{")))
        pcount = metrics.get("weft_discovery_push_latency_seconds_count", 0)
        server_push = 1000 * metrics.get("weft_discovery_push_latency_seconds_sum", 0) / pcount if pcount else None
        if lp.wait(timeout=60) != 0:
            raise RuntimeError("not every proxy got the change: %s\nweft-discovery's log: %s" %
                               (result, open(dlog.name).read()[-3000:]))
        result.update(churned, restart_s=round(ready_s + result["synced_s"], 3))
        result.update(mode=mode, build=label, round=rnd, server_push_mean_ms=server_push and round(server_push, 1),
                      objects=objects, watch_errors=errors, ready_s=round(ready_s, 3), rss_loaded_mib=round(rss_loaded, 1),
                      rss_streams_mib=round(rss_streams, 1), cpu_idle_core=round(idle, 4),
                      cpu_total_s=round(cpu_s(p.pid), 2), load_avg=os.getloadavg()[0])
        return result
    finally:
        for proc in (lp, p):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        dlog.close()


def main():
    bindir = cl.control_plane_bin(build=False)
    if not bindir:
        raise SystemExit("bench/discovery/apiserver.py: the e2e control plane is not built: "
                         "run tests/e2e/setup-control-plane.sh")
    for _, wbin in BINS:
        if not os.access(os.path.join(wbin, "weft-discovery"), os.X_OK):
            raise SystemExit("bench/discovery/apiserver.py: no %s/weft-discovery: build first (make)" % wbin)
    work = tempfile.mkdtemp(prefix="weft-bench-discovery-")
    c = cl.Cluster(bindir, controller_manager=False)
    try:
        c.start()
        api = Api(c)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            install(c, api, pool, work)
        dump_directory(api, os.path.join(work, "objects"))
        credentials(work)
        subprocess.run(["cc", "-O2", "-o", os.path.join(work, "load"), os.path.join(ROOT, "bench", "discovery", "load.c"),
                        *subprocess.run(["pkg-config", "--cflags", "--libs", "openssl", "libnghttp2"],
                                        check=True, capture_output=True, text=True).stdout.split()], check=True)
        # The load's check of every answer, on lines it must take and lines it must refuse.
        subprocess.run([os.path.join(work, "load"), "--self-test"], check=True)
        results = []
        for rnd in range(ROUNDS):
            for mode in MODES:
                for label, wbin in BINS:
                    r = one_round(mode, rnd, c, api, work, label, wbin)
                    print(json.dumps(r), flush=True)
                    results.append(r)
        medians = {}
        for key in ("ready_s", "synced_s", "push_p50_ms", "push_p99_ms", "push_max_ms", "server_push_mean_ms",
                    "rss_loaded_mib", "rss_streams_mib", "cpu_total_s", "restart_s", "churn_cpu_core"):
            med = {}
            for mode in MODES:
                for label, _ in BINS:
                    vals = [r[key] for r in results if r["mode"] == mode and r["build"] == label and r.get(key) is not None]
                    if vals:
                        med[(mode + " " + label).strip()] = statistics.median(vals)
            if "dir" in med and "api" in med and med["dir"]:
                med["api/dir"] = round(med["api"] / med["dir"], 3)
            medians[key] = med
        print(json.dumps({"pods": N_PODS, "namespaces": N_NS, "services": N_SVCS, "conns": CONNS, "subs": SUBS,
                          "rounds": ROUNDS, "medians": medians}), flush=True)
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
