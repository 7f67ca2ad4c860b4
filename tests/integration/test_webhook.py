# SPDX-License-Identifier: Apache-2.0
"""weft-webhook as a real process over real TLS: reviews sent with curl, the
patch applied with an independent JSON Patch implementation (python3-jsonpatch),
limits at the edge and one past it (body size, connections), TLS versions
against a control server that does accept the old ones, every start-up error,
certificate rotation under load, namespace annotations through a Kubernetes
API (and each way it can fail to answer), and the metrics that count it all.
Every webhook started here is stopped with SIGTERM and must exit 0 with no
sanitizer report."""
import base64
import copy
import json
import os
import resource
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
from ports import reserved_port
from procs import sanitizer_report, stop_cleanly
from proxyenv import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("WEFT_BIN", os.path.join(REPO, "build", "bin"))
GOLDEN = os.path.join(REPO, "tests", "golden", "webhook")
MAX_BODY = 4 * 1024 * 1024
MAX_CONNECTIONS = 1024  # webhook/server.h SERVER_MAX_CONNECTIONS
METRICS_MAX_CONNECTIONS = 64  # webhook/server.h SERVER_METRICS_MAX_CONNECTIONS
NS_FRESH_SECONDS = 10   # webhook/nscache.h NSCACHE_FRESH_SECONDS
# OpenSSL's client refuses TLS 1.0 and 1.1 by itself at its default security
# level; only with this does a refusal come from the server under test.
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"


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
    started = 0

    def __init__(self, tmp, *extra, config=f"{REPO}/templates/mesh.yaml", templates=f"{REPO}/templates", env=None):
        self.tmp = tmp
        self.ca = f"{tmp}/ca.crt"
        self.cert, self.key = f"{tmp}/tls.crt", f"{tmp}/tls.key"
        Webhook.started += 1
        self.log_path = f"{tmp}/webhook-{Webhook.started}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [f"{BIN}/weft-webhook", "--config", config, "--templates", templates,
                 "--tls-cert", self.cert, "--tls-key", self.key, "--listen", "127.0.0.1:0",
                 "--metrics-listen", "127.0.0.1:0", *extra], stderr=log, env=env)
        wait_for(lambda: "weft-webhook started" in self.text() or self.proc.poll() is not None, 30)
        text = self.text()
        if "weft-webhook started" not in text:
            self.stop()  # fails with its exit status and log if it exited
            raise AssertionError("weft-webhook did not start:\n" + text[-3000:])
        fields = dict(kv.split("=", 1) for kv in text.split("weft-webhook started")[1].split("\n")[0].split()
                      if "=" in kv)
        self.port, self.metrics_port = int(fields["port"]), int(fields["metrics_port"])

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; the webhook must exit 0 by itself (under ASan: with no
        leak or error). Returns its log."""
        if getattr(self, "stopped", None) is None:
            self.stopped = ""  # once: a failed stop is reported by the first call
            self.stopped = stop_cleanly(self.proc, self.log_path, timeout=30)
        return self.stopped

    def url(self, path="/inject"):
        return f"https://127.0.0.1:{self.port}{path}"

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


# Named, not read from the golden outputs: a bad `make golden-update` that
# stopped injecting one of these must fail here, not drop it from the list.
INJECTED_CASES = ["deployment-pod", "dry-run", "grpc-probes", "job-pod", "minimal-pod", "named-probe-ports",
                  "non-native-sidecar", "opt-in-label", "pod-security-context", "probes-not-rewritten",
                  "statefulset-pod", "user-init-containers", "valid-overrides", "volumes-and-annotations"]


def test_every_pod_shape_is_injected_correctly_and_idempotently(webhook):
    for case in INJECTED_CASES:  # namespace-annotations needs the API: test_namespace_annotations_come_from_the_api
        req = golden_request(case)
        orig = copy.deepcopy(req["request"]["object"])
        resp = webhook.review(req)
        assert resp["uid"] == req["request"]["uid"] and resp["allowed"] is True and "patch" in resp, case
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


def s_client(port, ca, *args):
    """openssl s_client to 127.0.0.1:port; the protocol it negotiated, or None."""
    r = subprocess.run(["openssl", "s_client", *args, "-connect", f"127.0.0.1:{port}", "-CAfile", ca,
                        "-verify_return_error"], input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace").splitlines()
    # "Protocol  :" in the session summary; for TLS 1.3 only the "New, TLSv1.3, Cipher is" line says it
    # (that line names the cipher's version, not the protocol's, for the older ones).
    protocol = [line.split(":", 1)[1].strip() for line in out if line.strip().startswith("Protocol  :")]
    protocol += [line.split(",")[1].strip() for line in out if line.startswith("New, TLSv1.3,")]
    return protocol[0] if r.returncode == 0 and protocol else None


def test_tls_1_2_and_1_3_only(tmp, webhook):
    # Control: a server that accepts TLS 1.0 and 1.1, so the client below is
    # shown able to speak them; without LEGACY_CIPHERS it refuses by itself.
    port = reserved_port()
    with open(f"{tmp}/s_server.log", "w") as log:
        control = subprocess.Popen(["openssl", "s_server", "-cipher", LEGACY_CIPHERS, "-accept", f"127.0.0.1:{port}",
                                    "-cert", webhook.cert, "-key", webhook.key], stdin=subprocess.PIPE,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "ACCEPT" in open(f"{tmp}/s_server.log").read(), 20)
        assert s_client(port, webhook.ca, "-tls1", "-cipher", LEGACY_CIPHERS) == "TLSv1"
        assert s_client(port, webhook.ca, "-tls1_1", "-cipher", LEGACY_CIPHERS) == "TLSv1.1"
        assert s_client(port, webhook.ca, "-tls1_1") is None  # why the cipher string is needed
    finally:
        control.terminate()
        control.wait(10)
    # The same client against the webhook: 1.0 and 1.1 refused, 1.2 and 1.3 served.
    assert s_client(webhook.port, webhook.ca, "-tls1", "-cipher", LEGACY_CIPHERS) is None
    assert s_client(webhook.port, webhook.ca, "-tls1_1", "-cipher", LEGACY_CIPHERS) is None
    assert s_client(webhook.port, webhook.ca, "-tls1_2") == "TLSv1.2"
    assert s_client(webhook.port, webhook.ca, "-tls1_3") == "TLSv1.3"


def test_plain_http_on_the_tls_port_gets_no_answer(tmp):
    """The connection is closed at once, with not one byte sent back: no
    HTTP answer, no TLS alert, and not left open until the idle timeout."""
    w = Webhook(tmp, "--no-namespace-lookup", "--idle-timeout", "30")
    try:
        with socket.create_connection(("127.0.0.1", w.port), timeout=20) as s:
            start = time.monotonic()
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = b""
            while chunk := s.recv(4096):
                got += chunk
            assert got == b"" and time.monotonic() - start < 10  # well before the 30 s idle timeout
        r = subprocess.run(["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{w.port}/healthz"],
                           capture_output=True, text=True)
        assert r.returncode == 52 and "Empty reply from server" in r.stderr, (r.returncode, r.stderr)
        # The port still serves TLS afterwards.
        code, _ = w.post(b"{}", path="/nope")
        assert code == 404
    finally:
        w.stop()


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


def raise_open_files(need):
    """The test holds `need` sockets, and so does the webhook, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the hard open-files limit {hard} is below the {need} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_connection_cap_at_the_limit_and_one_past(tmp):
    """1,024 connections are served at once; the 1,025th waits unaccepted
    and is served as soon as one of them closes."""
    raise_open_files(MAX_CONNECTIONS + 512)
    w = Webhook(tmp, "--no-namespace-lookup", "--idle-timeout", "600")
    ctx = ssl.create_default_context(cafile=w.ca)
    name = "weft-webhook.weft-system.svc"
    held = []
    try:
        deadline = time.monotonic() + 300  # 1,024 handshakes; slow under a sanitizer
        for _ in range(MAX_CONNECTIONS):
            assert time.monotonic() < deadline, f"only {len(held)} connections in 300 s"
            raw = socket.create_connection(("127.0.0.1", w.port), timeout=60)
            held.append(ctx.wrap_socket(raw, server_hostname=name))  # the handshake proves it was accepted
        # One past the cap: the kernel completes its TCP handshake, the webhook does not take it.
        extra = {}

        def connect_past_the_cap():
            try:
                raw = socket.create_connection(("127.0.0.1", w.port), timeout=120)
                extra["conn"] = ctx.wrap_socket(raw, server_hostname=name)
            except (OSError, ssl.SSLError) as e:
                extra["error"] = repr(e)

        t = threading.Thread(target=connect_past_the_cap)
        t.start()
        t.join(3)
        assert t.is_alive() and not extra, f"connection {MAX_CONNECTIONS + 1} was not held back: {extra}"
        held.pop(0).close()  # one leaves: the waiting one is served
        t.join(60)
        assert "conn" in extra, extra
        body = json.dumps(golden_request("minimal-pod")).encode()
        s = extra["conn"]
        s.settimeout(30)
        s.sendall(b"POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        held.append(s)
        # The 1,023 still open were served all along: the oldest of them answers too.
        s = held[0]
        s.settimeout(30)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
        w.stop()


def test_metrics_connection_cap_at_the_limit_and_one_past(tmp):
    """64 connections to --metrics-listen are taken at once; the 65th waits
    unaccepted and is served as soon as one of them is done. The webhook
    closes a metrics connection after its answer, so the 64 hold
    unfinished requests; the listen backlog is served in order, so a cap
    of 63 would serve the 64th first, one of 65 the 65th at once."""
    w = Webhook(tmp, "--no-namespace-lookup", "--idle-timeout", "600")
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"

    def answer(s):
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data

    held = []
    try:
        for _ in range(METRICS_MAX_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", w.metrics_port), timeout=30))
            held[-1].sendall(head)  # no blank line yet: the request is not over
        extra = socket.create_connection(("127.0.0.1", w.metrics_port), timeout=2)
        held.append(extra)
        extra.sendall(head + b"\r\n")
        with pytest.raises(socket.timeout):
            extra.recv(4096)  # the kernel took it; the webhook did not
        first = held.pop(0)
        first.sendall(b"\r\n")
        assert answer(first).startswith(b"HTTP/1.1 200")
        first.close()
        extra.settimeout(30)
        assert answer(extra).startswith(b"HTTP/1.1 200")
        held[0].sendall(b"\r\n")
        assert answer(held[0]).startswith(b"HTTP/1.1 200"), "a connection held all along was not served"
    finally:
        for s in held:
            s.close()
        w.stop()


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
            time.sleep(0.05)  # not a wait: the mismatched pair stays on disk this long, under load
            shutil.copy(f"{tmp}/{name}.key", f"{tmp}/tls.key.new")
            os.replace(f"{tmp}/tls.key.new", f"{tmp}/tls.key")
            assert wait_for(lambda: serials[-1] != served, 10), f"{name} was never served"
        done = len(results)
        assert wait_for(lambda: len(results) >= done + 5, 20)  # requests go on after the last rotation
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


def kube_api(tmp):
    """A fake API server that knows the webhook's token; the webhook flags for it."""
    kca, kcrt, kkey = kubefake.make_tls(tmp)
    with open(f"{tmp}/token", "w") as f:
        f.write("webhook-token\n")
    fake = kubefake.KubeFake(kcrt, kkey).start()
    fake.client_tokens = {"webhook-token"}
    return fake, ["--api-server", f"127.0.0.1:{fake.port}", "--api-ca", kca, "--api-token", f"{tmp}/token"]


def namespace_reads(fake, ns):
    with fake.lock:
        return [r["path"] for r in fake.requests].count(f"/api/v1/namespaces/{ns}")


def proxy_env(pod):
    return {e["name"]: e.get("value") for e in pod["spec"]["initContainers"][1]["env"]}


def unavailable(ns, why):
    """The documented refusal for a namespace that cannot be read."""
    return (f"cannot read namespace {ns} from the Kubernetes API ({why}); refusing to inject without its "
            f"weft.dev annotations")


def test_namespace_annotations_come_from_the_api(tmp):
    fake, flags = kube_api(tmp)
    fake.namespaces["shop"] = {"labels": {"weft.dev/inject": "enabled"},
                               "annotations": {"weft.dev/allow-from": "ops/monitor", "weft.dev/mtls-mode": "PERMISSIVE"}}
    w = Webhook(tmp, *flags)
    try:
        req = golden_request("minimal-pod")
        req["request"]["namespace"] = "shop"
        env = proxy_env(apply(req, w.review(req)))
        assert env["WEFT_ALLOW_FROM"] == "ops/monitor" and env["WEFT_MTLS_MODE"] == "PERMISSIVE"
        # The pod's own annotation beats the namespace's.
        req["request"]["object"]["metadata"]["annotations"] = {"weft.dev/mtls-mode": "STRICT"}
        env = proxy_env(apply(req, w.review(req)))
        assert env["WEFT_MTLS_MODE"] == "STRICT" and env["WEFT_ALLOW_FROM"] == "ops/monitor"
        assert namespace_reads(fake, "shop") == 1  # the second pod came from the cache
        # The golden case whose namespace annotations `check` reads from a file
        # gets the same answer when they come from the API.
        case = os.path.join(GOLDEN, "namespace-annotations")
        fake.namespaces["shop-golden"] = {"annotations": json.load(open(os.path.join(case, "namespace.json")))}
        req = golden_request("namespace-annotations")
        req["request"]["namespace"] = "shop-golden"
        resp = w.review(req)
        assert json.loads(base64.b64decode(resp["patch"])) == json.load(open(os.path.join(case, "patch.json")))
        # A bad namespace annotation refuses the pod (400), naming the namespace.
        fake.namespaces["bad"] = {"annotations": {"weft.dev/inbound-policy": "open"}}
        req = golden_request("minimal-pod")
        req["request"]["namespace"] = "bad"
        resp = w.review(req)
        assert not resp["allowed"] and resp["status"]["code"] == 400
        assert 'weft.dev/inbound-policy "open" on namespace bad' in resp["status"]["message"]
        # API gone: the cached namespace still serves (fresh), an unknown one is refused with 503.
        fake.go_down()
        req["request"]["namespace"] = "shop"
        assert w.review(req)["allowed"] is True
        req["request"]["namespace"] = "other"
        resp = w.review(req)
        assert resp["allowed"] is False and resp["status"]["code"] == 503
        assert resp["status"]["message"] == unavailable("other", f"connect 127.0.0.1:{fake.port}: Connection refused")
        # Opted-out pods need no lookup, so they pass even now.
        req["request"]["object"]["metadata"]["annotations"] = {"weft.dev/inject": "disabled"}
        resp = w.review(req)
        assert resp["allowed"] is True and "patch" not in resp
        assert 'weft_webhook_reviews_total{outcome="error",reason="namespace-unavailable"} 1' in w.metrics()
    finally:
        w.stop()


def test_unreadable_namespace_is_refused_with_503(tmp):
    """Every way the API can fail to give a namespace refuses the pod with
    503 and the API's own words; none passes as a namespace without
    annotations."""
    fake, flags = kube_api(tmp)
    w = Webhook(tmp, *flags)
    down_port = reserved_port()  # bound, never listening: connections to it are refused
    down = Webhook(tmp, "--api-server", f"127.0.0.1:{down_port}", *flags[2:])
    forbidden = kubefake.FAIL_STATUS[403][1]
    cases = [
        ("unauthorized", {"client_tokens": {"another-token"}}, "HTTP 401: Unauthorized (reason Unauthorized)"),
        ("forbidden", {"fail_code": 403}, f"HTTP 403: {forbidden} (reason Forbidden)"),
        ("internal-error", {"fail_code": 500},
         "HTTP 500: the server is currently unable to handle the request (reason InternalError)"),
        ("not-found", {}, "namespace not-found not found"),
        ("html-200", {"raw_answer": (200, "text/html", b"<html>sign in</html>\n")},
         "HTTP 200: response body is not JSON: '[' or '{' expected near '<'"),
        ("status-200", {"raw_answer": (200, "application/json", b'{"kind":"Status","status":"Success"}')},
         "HTTP 200: the answer is not Namespace status-200"),
    ]
    try:
        for ns, setup, why in cases:
            fake.client_tokens, fake.fail_code, fake.raw_answer = {"webhook-token"}, 0, None
            for k, v in setup.items():
                setattr(fake, k, v)
            req = golden_request("minimal-pod")
            req["request"]["namespace"] = ns
            resp = w.review(req)
            assert resp["allowed"] is False and "patch" not in resp, ns
            assert resp["status"] == {"code": 503, "message": unavailable(ns, why)}, ns
            assert namespace_reads(fake, ns) == 1, ns
        m = w.metrics()
        assert f'weft_webhook_reviews_total{{outcome="error",reason="namespace-unavailable"}} {len(cases)}' in m
        assert 'weft_webhook_reviews_total{outcome="injected",reason="injected"} 0' in m
        # The API server not listening at all.
        req = golden_request("minimal-pod")
        req["request"]["namespace"] = "shop"
        resp = down.review(req)
        assert resp["allowed"] is False and resp["status"] == {
            "code": 503, "message": unavailable("shop", f"connect 127.0.0.1:{down_port}: Connection refused")}
    finally:
        w.stop()
        down.stop()
        fake.stop()


def test_cached_namespace_outlives_api_failures(tmp):
    """Read once, a namespace is served from the cache for 10 s without a
    read; after that a failing read falls back to the cached annotations
    (up to 300 s: tests/unit/webhook/test_nscache.c checks that bound with a
    clock it moves)."""
    fake, flags = kube_api(tmp)
    fake.namespaces["shop"] = {"annotations": {"weft.dev/mtls-mode": "PERMISSIVE"}}
    w = Webhook(tmp, *flags)
    try:
        req = golden_request("minimal-pod")
        req["request"]["namespace"] = "shop"
        start = time.monotonic()
        assert proxy_env(apply(req, w.review(req)))["WEFT_MTLS_MODE"] == "PERMISSIVE"
        fake.fail_code = 500
        served = []

        def reviewed_until_read_again():
            resp = w.review(req)
            assert resp["allowed"] is True, resp.get("status")  # the failed read must not refuse it
            served.append(proxy_env(apply(req, resp))["WEFT_MTLS_MODE"])
            return namespace_reads(fake, "shop") == 2

        assert wait_for(reviewed_until_read_again, 60, step=0.25)
        took = time.monotonic() - start
        assert NS_FRESH_SECONDS <= took < NS_FRESH_SECONDS + 20, took  # not read again while fresh
        assert len(served) > 5 and set(served) == {"PERMISSIVE"}
        assert wait_for(lambda: "namespace read failed, using the cached annotations" in w.text())
        line = [x for x in w.text().splitlines() if "using the cached annotations" in x][0]
        assert "namespace=shop" in line and "HTTP 500" in line
        assert 'reason="namespace-unavailable"} 0' in w.metrics()
    finally:
        w.stop()
        fake.stop()


def test_flags(tmp):
    r = subprocess.run([f"{BIN}/weft-webhook", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--tls-cert" in r.stdout and "--metrics-listen" in r.stdout
    r = subprocess.run([f"{BIN}/weft-webhook", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("weft-webhook ")


@pytest.fixture
def port_in_use():
    """A port with a listener on it, so binding it fails."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


# Every way weft-webhook refuses to start: (name, arguments after the good
# ones, environment, exit status, message). 2 is a configuration error, 1 a
# server that could not listen. {tmp} and {port} are filled in.
START_ERRORS = [
    ("bad-threads", ["--threads", "zero"], {}, 2, 'weft-webhook: --threads "zero": expected 1-64'),
    ("threads-past-max", ["--threads", "65"], {}, 2, 'weft-webhook: --threads "65": expected 1-64'),
    ("bad-idle-timeout", ["--idle-timeout", "0"], {}, 2, 'weft-webhook: --idle-timeout "0": expected 1-3600 seconds'),
    ("bad-log-level", ["--log-level", "loud"], {}, 2,
     'weft-webhook: --log-level "loud": expected debug, info, warn or error'),
    ("unknown-flag", ["--bogus"], {}, 2, "unrecognized option '--bogus'"),
    ("extra-argument", ["extra"], {}, 2, 'weft-webhook: unexpected argument "extra"'),
    ("no-tls-pair", None, {}, 2, "weft-webhook: --tls-cert and --tls-key are required"),
    ("config-missing", ["--config", "{tmp}/nope.yaml"], {}, 2, "weft-webhook: {tmp}/nope.yaml: No such file or directory"),
    ("config-invalid", ["--config", "{tmp}/bad-mesh.yaml"], {}, 2,
     'weft-webhook: mesh.yaml: defaults.mtlsMode: invalid value "SOMETIMES": expected STRICT or PERMISSIVE'),
    ("templates-missing", ["--templates", "{tmp}/nodir"], {}, 2,
     "weft-webhook: {tmp}/nodir/init-container.yaml: No such file or directory"),
    ("cert-missing", ["--tls-cert", "{tmp}/nope.crt"], {}, 2, "weft-webhook: cannot stat {tmp}/nope.crt or {tmp}/tls.key"),
    ("cert-not-pem", ["--tls-cert", "{tmp}/junk.pem"], {}, 2, "weft-webhook: {tmp}/junk.pem: No certificate was found."),
    ("key-mismatch", ["--tls-key", "{tmp}/ca.key"], {}, 2,
     "weft-webhook: {tmp}/ca.key does not hold the key of {tmp}/tls.crt"),
    ("api-server-not-host-port", ["--api-server", "127.0.0.1"], {}, 2,
     'weft-webhook: --api-server "127.0.0.1": expected host:port'),
    ("api-ca-required", ["--api-server", "127.0.0.1:6443"], {}, 2,
     "weft-webhook: Kubernetes API client: a CA file is required"),
    ("api-ca-missing", ["--api-server", "127.0.0.1:6443", "--api-ca", "{tmp}/nope.crt"], {}, 2,
     "weft-webhook: Kubernetes API client: CA file {tmp}/nope.crt: No such file or directory"),
    ("api-token-missing", ["--api-server", "127.0.0.1:6443", "--api-ca", "{tmp}/ca.crt", "--api-token",
                           "{tmp}/nope"], {}, 2,
     "weft-webhook: Kubernetes API client: token file {tmp}/nope: No such file or directory"),
    ("in-cluster-without-service-account", [], {"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                                                "KUBERNETES_SERVICE_PORT": "443"}, 2,
     "weft-webhook: Kubernetes API client: CA file /var/run/secrets/kubernetes.io/serviceaccount/ca.crt: "),
    ("template-unknown-value", ["--templates", "{tmp}/bad-templates"], {}, 2,
     "weft-webhook: template proxy-container.yaml: unknown value ${no_such_value}"),
    ("listen-not-host-port", ["--listen", "127.0.0.1"], {}, 1,
     'weft-webhook: listen address "127.0.0.1" is not host:port'),
    ("listen-bad-host", ["--listen", "no-such-host:8443"], {}, 1, 'weft-webhook: listen address "no-such-host:8443": '),
    ("listen-in-use", ["--listen", "127.0.0.1:{port}"], {}, 1,
     "weft-webhook: listen on 127.0.0.1:{port}: Address already in use"),
    ("metrics-listen-in-use", ["--metrics-listen", "127.0.0.1:{port}"], {}, 1,
     "weft-webhook: listen on 127.0.0.1:{port}: Address already in use"),
]


@pytest.mark.parametrize("name,args,env,code,message", START_ERRORS, ids=[c[0] for c in START_ERRORS])
def test_start_up_errors(tmp, port_in_use, name, args, env, code, message):
    if name == "in-cluster-without-service-account" and os.path.exists("/var/run/secrets/kubernetes.io"):
        pytest.skip("this machine has a service account")
    with open(f"{tmp}/bad-mesh.yaml", "w") as f:
        f.write(open(f"{REPO}/templates/mesh.yaml").read().replace("mtlsMode: STRICT", "mtlsMode: SOMETIMES"))
    with open(f"{tmp}/junk.pem", "w") as f:
        f.write("not a certificate\n")
    shutil.copytree(f"{REPO}/templates", f"{tmp}/bad-templates")
    with open(f"{tmp}/bad-templates/proxy-container.yaml", "a") as f:
        f.write("weftUnknown: \"${no_such_value}\"\n")
    fill = lambda a: a.replace("{tmp}", tmp).replace("{port}", str(port_in_use))  # noqa: E731
    base = ["--config", f"{REPO}/templates/mesh.yaml", "--templates", f"{REPO}/templates",
            "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
    cmd = [f"{BIN}/weft-webhook"] + base + (["--tls-cert", f"{tmp}/tls.crt", "--tls-key", f"{tmp}/tls.key"]
                                            + [fill(a) for a in args] if args is not None else [])
    e = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    e.update(env)
    log = f"{tmp}/start.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stderr=f, env=e)
    wait_for(lambda: proc.poll() is not None or "weft-webhook started" in open(log).read(), 30)
    if proc.poll() is None:
        stop_cleanly(proc, log)  # stopped as its users would, then the test fails
        raise AssertionError(f"{name}: weft-webhook started instead of refusing")
    stderr = open(log).read()
    assert proc.returncode == code, (proc.returncode, stderr)
    assert fill(message) in stderr, stderr
    assert "weft-webhook started" not in stderr
    assert sanitizer_report(stderr) is None, stderr


CHECK_ERRORS = [
    # name, check arguments, stdin, exit status, message on stderr, answer on stdout
    ("config-missing", ["--config", "{tmp}/nope.yaml"], b"{}", 2,
     "weft-webhook: {tmp}/nope.yaml: No such file or directory", ""),
    ("namespace-annotations-not-an-object", ["--namespace-annotations", "{tmp}/list.json"], b"{}", 2,
     "weft-webhook: {tmp}/list.json: not a JSON object of annotations", ""),
    ("stdin-past-4-MiB", [], b" " * (MAX_BODY + 1), 2, "weft-webhook: stdin: larger than 4 MiB", ""),
    ("not-a-review", [], b"{}", 1, "",
     '{"error":"body is not an AdmissionReview: apiVersion must be admission.k8s.io/v1"}\n'),
]


@pytest.mark.parametrize("name,args,stdin,code,message,stdout", CHECK_ERRORS, ids=[c[0] for c in CHECK_ERRORS])
def test_check_errors(tmp, name, args, stdin, code, message, stdout):
    with open(f"{tmp}/list.json", "w") as f:
        f.write("[1]\n")
    fill = lambda a: a.replace("{tmp}", tmp)  # noqa: E731
    cmd = [f"{BIN}/weft-webhook", "check", "--config", f"{REPO}/templates/mesh.yaml", "--templates",
           f"{REPO}/templates"] + [fill(a) for a in args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=30)
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert (fill(message) in err) if message else sanitizer_report(err) is None and err == "", err
    assert r.stdout.decode() == stdout
    assert sanitizer_report(err) is None, err
    # Exactly 4 MiB is read and answered.
    if name == "stdin-past-4-MiB":
        review = json.dumps(golden_request("minimal-pod")).encode()
        r = subprocess.run(cmd, input=review + b" " * (MAX_BODY - len(review)), capture_output=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)["response"]["allowed"] is True, r.stderr


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


def test_template_with_an_unknown_value_is_not_swapped_in(tmp):
    """Checked when loaded, not when a pod is rendered: the reload is refused
    and pods go on with the last good templates."""
    conf = f"{tmp}/config"
    shutil.copytree(f"{REPO}/templates", conf)
    w = Webhook(tmp, "--no-namespace-lookup", config=f"{conf}/mesh.yaml", templates=conf)
    try:
        text = open(f"{conf}/proxy-container.yaml").read() + 'weftUnknown: "${no_such_value}"\n'
        with open(f"{conf}/proxy-container.yaml.new", "w") as f:
            f.write(text)
        os.replace(f"{conf}/proxy-container.yaml.new", f"{conf}/proxy-container.yaml")
        reloaded = wait_for(lambda: 'weft_webhook_config_reloads_total{result="error"} 1' in w.metrics()
                            or 'weft_webhook_config_reloads_total{result="ok"} 1' in w.metrics(), 20)
        assert reloaded and 'weft_webhook_config_reloads_total{result="error"} 1' in w.metrics()
        assert w.review(golden_request("minimal-pod"))["allowed"] is True
        assert "template proxy-container.yaml: unknown value ${no_such_value}" in w.text()
    finally:
        w.stop()
