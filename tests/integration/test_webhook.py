# SPDX-License-Identifier: Apache-2.0
"""weft-webhook as a real process over real TLS: reviews sent with curl, the
patch applied with an independent JSON Patch implementation (python3-jsonpatch),
limits at the edge and one past it, certificate rotation under load, namespace
annotations through a Kubernetes API, and the metrics that count it all."""
import base64
import copy
import glob
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import jsonpatch
import pytest

import kubefake
from proxyenv import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("WEFT_BIN", os.path.join(REPO, "build", "bin"))
GOLDEN = os.path.join(REPO, "tests", "golden", "webhook")
MAX_BODY = 4 * 1024 * 1024


def openssl(*args):
    subprocess.run(("openssl",) + args, check=True, capture_output=True)


def make_ca(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "2", "-subj", "/CN=weft-test-ca")
    return f"{d}/ca.crt"


def make_serving_cert(d, name):
    """A serving certificate for the webhook's Service name and 127.0.0.1."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/{name}.key",
            "-out", f"{d}/{name}.csr", "-subj", "/CN=weft-webhook.weft-system.svc")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("subjectAltName=DNS:weft-webhook.weft-system.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "1", "-extfile", f"{d}/{name}.ext")
    return f"{d}/{name}.crt", f"{d}/{name}.key"


class Webhook:
    def __init__(self, tmp, *extra, config=f"{REPO}/templates/mesh.yaml", templates=f"{REPO}/templates"):
        self.tmp = tmp
        self.ca = f"{tmp}/ca.crt"
        self.cert, self.key = f"{tmp}/tls.crt", f"{tmp}/tls.key"
        self.log = open(f"{tmp}/webhook.log", "w+")
        self.proc = subprocess.Popen(
            [f"{BIN}/weft-webhook", "--config", config, "--templates", templates,
             "--tls-cert", self.cert, "--tls-key", self.key, "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", *extra], stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            self.log.seek(0)
            text = self.log.read()
            if "weft-webhook started" in text:
                fields = dict(kv.split("=", 1) for kv in text.split("weft-webhook started")[1].split() if "=" in kv)
                self.port, self.metrics_port = int(fields["port"]), int(fields["metrics_port"])
                return
            assert self.proc.poll() is None, text
            time.sleep(0.02)
        raise AssertionError("weft-webhook did not start")

    def url(self, path="/inject"):
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self):
        """SIGTERM; the webhook must exit 0 (under ASan: with no leak or error)."""
        self.proc.terminate()
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "killed"
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        assert code == 0 and "Sanitizer" not in text, text[-3000:]

    def post(self, body, content_type="application/json", method="POST", path="/inject", extra=()):
        """curl over HTTPS; returns (status, body)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with tempfile.NamedTemporaryFile(dir=self.tmp) as f:
            f.write(data)
            f.flush()
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", self.ca, "-X", method,
                                "-H", f"Content-Type: {content_type}", "--data-binary", f"@{f.name}",
                                "-o", "-", "-w", "\n%{http_code}", *extra, self.url(path)],
                               capture_output=True)
        out = r.stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def review(self, req):
        code, body = self.post(req)
        assert code == 200, body
        return json.loads(body)["response"]

    def metrics(self):
        r = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{self.metrics_port}/metrics"], capture_output=True,
                           text=True, check=True)
        return r.stdout


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="weft-webhook-")
    try:
        make_ca(d)
        c, k = make_serving_cert(d, "first")
        shutil.copy(c, f"{d}/tls.crt")
        shutil.copy(k, f"{d}/tls.key")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def webhook(tmp):
    w = Webhook(tmp, "--idle-timeout", "2")
    try:
        yield w
    finally:
        w.stop()


def golden_request(case):
    with open(os.path.join(GOLDEN, case, "request.json")) as f:
        return json.load(f)


def apply(req, resp):
    pod = req["request"]["object"]
    if "patch" not in resp:
        return pod
    assert resp["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))


def names(items):
    return [i["name"] for i in items or []]


INJECTED_CASES = sorted(
    os.path.basename(os.path.dirname(p)) for p in glob.glob(f"{GOLDEN}/*/request.json")
    if "patch" in json.load(open(os.path.join(os.path.dirname(p), "response.json")))["response"])


def test_every_pod_shape_is_injected_correctly_and_idempotently(webhook):
    assert len(INJECTED_CASES) >= 12
    for case in INJECTED_CASES:
        if os.path.exists(os.path.join(GOLDEN, case, "namespace.json")):
            continue  # needs namespace annotations: covered with the API below
        req = golden_request(case)
        orig = copy.deepcopy(req["request"]["object"])
        resp = webhook.review(req)
        assert resp["uid"] == req["request"]["uid"] and resp["allowed"] is True, case
        pod = apply(req, resp)
        spec, ospec = pod["spec"], orig["spec"]
        native = orig["metadata"].get("annotations", {}).get("weft.dev/native-sidecar") != "false"
        inits, containers = names(spec.get("initContainers")), names(spec["containers"])
        # The user's lists keep their items and order; ours come first.
        if native:
            assert inits == ["weft-init", "weft-proxy"] + names(ospec.get("initContainers")), case
            assert containers == names(ospec["containers"]), case
            assert spec["initContainers"][1]["restartPolicy"] == "Always"
            assert "startupProbe" in spec["initContainers"][1]
        else:
            assert inits == ["weft-init"] + names(ospec.get("initContainers")), case
            assert containers == ["weft-proxy"] + names(ospec["containers"]), case
            assert spec["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][:2] == ["weft-proxy", "wait-ready"]
        assert names(spec["volumes"]) == names(ospec.get("volumes")) + ["weft-token", "weft-trust-bundle", "weft-run"]
        for key, value in orig["metadata"].get("annotations", {}).items():
            assert pod["metadata"]["annotations"][key] == value, case
        assert orig["metadata"].get("labels") == pod["metadata"].get("labels"), case
        assert spec.get("securityContext") == ospec.get("securityContext"), case
        status = json.loads(pod["metadata"]["annotations"]["weft.dev/status"])
        assert status["initContainers"][0] == "weft-init"
        # The init container has exactly NET_ADMIN and NET_RAW and is not privileged.
        init = spec["initContainers"][0]["securityContext"]
        assert init["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}
        assert init["privileged"] is False and init["allowPrivilegeEscalation"] is False
        proxy = next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "weft-proxy")
        sc = proxy["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"], sc["readOnlyRootFilesystem"]) == (15100, 15100, True, True)
        assert sc["capabilities"] == {"drop": ["ALL"]}
        env = {e["name"]: e for e in proxy["env"]}
        assert env["WEFT_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        # Reinvocation: the injected pod comes back unchanged.
        again = copy.deepcopy(req)
        again["request"]["object"] = pod
        resp2 = webhook.review(again)
        assert resp2["allowed"] is True and "patch" not in resp2, case


def test_probes_are_rewritten_and_originals_travel_to_the_proxy(webhook):
    req = golden_request("named-probe-ports")
    pod = apply(req, webhook.review(req))
    api = pod["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"] == {"path": "/app-health/api/livez", "port": 15020, "scheme": "HTTP"}
    assert api["livenessProbe"]["failureThreshold"] == 3
    assert "tcpSocket" not in api["readinessProbe"]
    proxy = pod["spec"]["initContainers"][1]
    probes = json.loads(next(e["value"] for e in proxy["env"] if e["name"] == "WEFT_APP_PROBES"))
    assert probes["api/livez"] == {"httpGet": {"path": "/healthz", "port": 9001, "scheme": "HTTP"}, "timeoutSeconds": 2}
    assert probes["api/readyz"] == {"tcpSocket": {"port": 9000}, "timeoutSeconds": 1}
    # A gRPC probe goes the same way.
    assert pod["spec"]["containers"][1]["readinessProbe"] == {
        "httpGet": {"path": "/app-health/sidecar-app/readyz", "port": 15020, "scheme": "HTTP"}}
    assert probes["sidecar-app/readyz"] == {"grpc": {"port": 9090}, "timeoutSeconds": 1}


def test_skips_and_refusals(webhook):
    for case in ["host-network", "opt-out-annotation", "opt-out-label", "not-a-pod", "ignored-namespace"]:
        resp = webhook.review(golden_request(case))
        assert resp["allowed"] is True and "patch" not in resp, case
    for case, needle in [("invalid-skip-inbound-ports", 'weft.dev/skip-inbound-ports "http"'),
                         ("invalid-cpu-request", 'weft.dev/proxy-cpu-request "lots"'),
                         ("invalid-mtls-mode", 'weft.dev/mtls-mode "OFF"')]:
        resp = webhook.review(golden_request(case))
        assert resp["allowed"] is False and needle in resp["status"]["message"], case
    dry = webhook.review(golden_request("dry-run"))
    assert dry["allowed"] is True and "patch" in dry


def test_http_errors_and_body_limit(webhook):
    code, body = webhook.post(golden_request("minimal-pod"), method="GET")
    assert code == 405
    code, body = webhook.post(golden_request("minimal-pod"), content_type="text/plain")
    assert code == 415 and "application/json" in json.loads(body)["error"]
    code, body = webhook.post(b'{"kind": "Pod"}')
    assert code == 400 and "AdmissionReview" in json.loads(body)["error"]
    code, body = webhook.post(b"not json")
    assert code == 400 and "not JSON" in json.loads(body)["error"]
    code, _ = webhook.post(b"{}", path="/nope")
    assert code == 404
    # Exactly 4 MiB (a review padded with spaces) is answered; one byte more is 413.
    review = json.dumps(golden_request("minimal-pod")).encode()
    at_limit = review + b" " * (MAX_BODY - len(review))
    assert len(at_limit) == MAX_BODY
    code, body = webhook.post(at_limit)
    assert code == 200 and json.loads(body)["response"]["allowed"] is True
    code, body = webhook.post(at_limit + b" ")
    assert code == 413
    # Chunked upload, so the limit is enforced on bytes read, not on Content-Length.
    code, body = webhook.post(at_limit + b" ", extra=("-H", "Transfer-Encoding: chunked"))
    assert code == 413


def test_tls_only_and_versions(webhook):
    r = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{webhook.port}/healthz"],
                       capture_output=True)
    assert r.returncode != 0  # plain HTTP on the TLS port gets no HTTP answer
    for version, ok in [("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)]:
        r = subprocess.run(["openssl", "s_client", version, "-connect", f"127.0.0.1:{webhook.port}",
                            "-CAfile", webhook.ca, "-verify_return_error"], input=b"", capture_output=True,
                           timeout=10)
        assert (r.returncode == 0) == ok, (version, r.stderr[-300:])


def test_stalled_client_is_dropped_without_holding_up_others(tmp):
    webhook = Webhook(tmp, "--idle-timeout", "5")
    try:
        stalled = socket.create_connection(("127.0.0.1", webhook.port))
        stalled.sendall(b"\x16\x03\x01")  # the start of a TLS record, then nothing
        start = time.time()
        resp = webhook.review(golden_request("minimal-pod"))
        assert resp["allowed"] and time.time() - start < 4  # not after the stalled one's 5 s
        stalled.settimeout(15)
        while stalled.recv(4096):  # at most a TLS alert, then the close after --idle-timeout 5
            pass
        assert 4 < time.time() - start < 12
        stalled.close()
    finally:
        webhook.stop()


def test_certificate_rotation_under_load_fails_no_request(tmp, webhook):
    make_serving_cert(tmp, "second")
    make_serving_cert(tmp, "third")
    body = json.dumps(golden_request("minimal-pod")).encode()
    ctx = ssl.create_default_context(cafile=webhook.ca)
    results, serials, stop = [], [], threading.Event()

    def client():
        deadline = time.time() + 30
        while not stop.is_set() and len(results) < 3000 and time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", webhook.port), timeout=5) as raw:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with ctx.wrap_socket(raw, server_hostname="weft-webhook.weft-system.svc") as s:
                        serials.append(s.getpeercert()["serialNumber"])
                        s.sendall(b"POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                        data = b""
                        while chunk := s.recv(65536):
                            data += chunk
                results.append(data.startswith(b"HTTP/1.1 200"))
            except (OSError, ssl.SSLError) as e:
                results.append(repr(e))

    t = threading.Thread(target=client)
    t.start()
    try:
        assert wait_for(lambda: serials, 10)
        for name in ["second", "third", "first", "second"]:
            served = serials[-1]
            # Cert first, key second: for a moment the pair does not match.
            shutil.copy(f"{tmp}/{name}.crt", f"{tmp}/tls.crt.new")
            os.replace(f"{tmp}/tls.crt.new", f"{tmp}/tls.crt")
            time.sleep(0.05)
            shutil.copy(f"{tmp}/{name}.key", f"{tmp}/tls.key.new")
            os.replace(f"{tmp}/tls.key.new", f"{tmp}/tls.key")
            assert wait_for(lambda: serials[-1] != served, 10), f"{name} was never served"
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    failures = [r for r in results if r is not True]
    assert len(results) > 20 and not failures, failures[:5]
    assert len(set(serials)) == 3  # first, second and third were each served
    assert "weft_webhook_certificate_reloads_total 4" in webhook.metrics()


def test_metrics_count_outcomes(webhook):
    webhook.review(golden_request("minimal-pod"))
    webhook.review(golden_request("host-network"))
    webhook.review(golden_request("invalid-mtls-mode"))
    webhook.post(b"nope")
    m = webhook.metrics()
    assert 'weft_webhook_reviews_total{outcome="injected",reason="injected"} 1' in m
    assert 'weft_webhook_reviews_total{outcome="skipped",reason="host-network"} 1' in m
    assert 'weft_webhook_reviews_total{outcome="denied",reason="invalid-override"} 1' in m
    assert 'weft_webhook_reviews_total{outcome="error",reason="bad-request"} 1' in m
    assert "weft_webhook_review_duration_seconds_count 4" in m
    for path in ["/healthz", "/readyz"]:
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{webhook.metrics_port}{path}"], capture_output=True, text=True)
        assert r.stdout == "200"


def test_namespace_annotations_come_from_the_api(tmp):
    kca, kcrt, kkey = kubefake.make_tls(tmp)
    with open(f"{tmp}/token", "w") as f:
        f.write("webhook-token\n")
    fake = kubefake.KubeFake(kcrt, kkey).start()
    fake.namespaces["shop"] = {"labels": {"weft.dev/inject": "enabled"},
                               "annotations": {"weft.dev/allow-from": "ops/monitor", "weft.dev/mtls-mode": "PERMISSIVE"}}
    w = Webhook(tmp, "--api-server", f"127.0.0.1:{fake.port}", "--api-ca", kca, "--api-token", f"{tmp}/token")
    try:
        req = golden_request("minimal-pod")
        req["request"]["namespace"] = "shop"
        pod = apply(req, w.review(req))
        env = {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][1]["env"]}
        assert env["WEFT_ALLOW_FROM"] == "ops/monitor" and env["WEFT_MTLS_MODE"] == "PERMISSIVE"
        # The pod's own annotation beats the namespace's.
        req["request"]["object"]["metadata"]["annotations"] = {"weft.dev/mtls-mode": "STRICT"}
        env = {e["name"]: e.get("value") for e in apply(req, w.review(req))["spec"]["initContainers"][1]["env"]}
        assert env["WEFT_MTLS_MODE"] == "STRICT" and env["WEFT_ALLOW_FROM"] == "ops/monitor"
        # A bad namespace annotation refuses the pod, naming the namespace.
        fake.namespaces["bad"] = {"annotations": {"weft.dev/inbound-policy": "open"}}
        req["request"]["namespace"] = "bad"
        resp = w.review(req)
        assert not resp["allowed"] and 'weft.dev/inbound-policy "open" on namespace bad' in resp["status"]["message"]
        # API gone: the cached namespace still serves, an unknown one is refused and says why.
        fake.stop()
        req["request"]["namespace"] = "shop"
        assert w.review(req)["allowed"] is True
        req["request"]["namespace"] = "other"
        resp = w.review(req)
        assert resp["allowed"] is False and "cannot read namespace other" in resp["status"]["message"]
        # Opted-out pods need no lookup, so they pass even now.
        req["request"]["object"]["metadata"]["annotations"] = {"weft.dev/inject": "disabled"}
        assert w.review(req)["allowed"] is True
        assert 'reason="namespace-unavailable"} 1' in w.metrics()
        assert [r["path"] for r in fake.requests].count("/api/v1/namespaces/shop") == 1  # cached
    finally:
        w.stop()
        fake.server.server_close()


def test_flags(tmp):
    r = subprocess.run([f"{BIN}/weft-webhook", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--tls-cert" in r.stdout and "--metrics-listen" in r.stdout
    r = subprocess.run([f"{BIN}/weft-webhook", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("weft-webhook ")
    r = subprocess.run([f"{BIN}/weft-webhook", "--threads", "zero"], capture_output=True, text=True)
    assert r.returncode == 2 and '--threads "zero"' in r.stderr
    r = subprocess.run([f"{BIN}/weft-webhook", "--tls-cert", f"{tmp}/tls.crt", "--tls-key", f"{tmp}/ca.key",
                        "--config", f"{REPO}/templates/mesh.yaml", "--templates", f"{REPO}/templates"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "does not hold the key" in r.stderr


def test_config_changes_apply_without_restart(tmp):
    """mesh.yaml and the templates are re-read when they change on disk (a
    ConfigMap update); a change that does not load keeps the last good one."""
    conf = f"{tmp}/config"
    shutil.copytree(f"{REPO}/templates", conf)
    w = Webhook(tmp, "--no-namespace-lookup", config=f"{conf}/mesh.yaml", templates=conf)
    try:
        req = golden_request("minimal-pod")

        def proxy_env():
            pod = apply(req, w.review(req))
            return {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][1]["env"]}

        def replace(path, text):
            with open(path + ".new", "w") as f:
                f.write(text)
            os.replace(path + ".new", path)  # as a ConfigMap volume swaps its files

        assert proxy_env()["WEFT_MTLS_MODE"] == "STRICT"
        mesh = open(f"{conf}/mesh.yaml").read()
        replace(f"{conf}/mesh.yaml", mesh.replace("mtlsMode: STRICT", "mtlsMode: PERMISSIVE"))
        assert wait_for(lambda: proxy_env()["WEFT_MTLS_MODE"] == "PERMISSIVE")
        # A broken file is refused and counted; reviews go on with the last good config.
        replace(f"{conf}/mesh.yaml", mesh.replace("mtlsMode: STRICT", "mtlsMode: SOMETIMES"))
        assert wait_for(lambda: 'weft_webhook_config_reloads_total{result="error"} 1' in w.metrics())
        assert proxy_env()["WEFT_MTLS_MODE"] == "PERMISSIVE"
        # A template change shows in the injected pod and in its status version.
        tmpl = open(f"{conf}/proxy-container.yaml").read()
        replace(f"{conf}/proxy-container.yaml", tmpl.replace("periodSeconds: 2", "periodSeconds: 3"))
        replace(f"{conf}/mesh.yaml", mesh)
        assert wait_for(lambda: apply(req, w.review(req))["spec"]["initContainers"][1]["readinessProbe"]
                        ["periodSeconds"] == 3)
        assert proxy_env()["WEFT_MTLS_MODE"] == "STRICT"
        assert 'weft_webhook_config_reloads_total{result="ok"}' in w.metrics()
    finally:
        w.stop()
