# SPDX-License-Identifier: Apache-2.0
"""weft-discovery serve, the real binary, from a directory of manifests and
from kubefake's list+watch, with real TLS 1.3 and HTTP/2 clients (curl, the
operator's tool): workload certificates subscribe and get answers and their
changes; foreign, missing and non-Weft certificates are refused at the
handshake; a proxy may not learn another namespace's inbound policy; the
subscription and message-size limits hold at the limit and one past; bad
messages get a clear error on a stream that stays usable; every refusal is
counted; every weft_discovery_* metric is documented."""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

import kubefake
from ports import reserved_port
from procs import stop_cleanly

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("WEFT_BIN", os.path.join(REPO, "build", "bin"))
CLUSTER = os.path.join(REPO, "tests", "golden", "discovery", "service-ipv4", "objects")
MAX_SUBS = 4
MAX_MSG = 512
OWN_IP = "127.0.0.5"  # the client's own pod IP: curl binds it as the source address


def openssl(*args):
    subprocess.run(("openssl",) + args, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{d}/{name}.key", "-out", f"{d}/{name}.crt", "-days", "2", "-subj", f"/CN={name}")


def make_leaf(d, name, san, ca="ca"):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/{name}.key",
            "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.crt", "-CAkey", f"{d}/{ca}.key",
            "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "2", "-extfile", f"{d}/{name}.ext")
    return (f"{d}/{name}.crt", f"{d}/{name}.key")


OWN_POD = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-local", "namespace": "shop", "labels": {"app": "web"},
                        "annotations": {"weft.dev/status": "{}", "weft.dev/allow-from": "ops/monitor"}},
           "spec": {"serviceAccountName": "web", "nodeName": "node-a"},
           "status": {"phase": "Running", "podIP": OWN_IP}}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("discovery-certs"))
    make_ca(d, "ca")
    make_ca(d, "foreign")
    return {
        "dir": d,
        "driver": kubefake.build_c(os.path.join(HERE, "discovery_driver.c"), f"{d}/discovery_driver"),
        "ca": f"{d}/ca.crt",
        "server": make_leaf(d, "server", "IP:127.0.0.1"),
        "web": make_leaf(d, "web", "URI:spiffe://cluster.local/ns/shop/sa/web"),
        "db": make_leaf(d, "db", "URI:spiffe://cluster.local/ns/shop/sa/db"),
        "foreign": make_leaf(d, "foreign-web", "URI:spiffe://cluster.local/ns/shop/sa/web", ca="foreign"),
        "other_td": make_leaf(d, "other-td", "URI:spiffe://example.org/ns/shop/sa/web"),
        "no_spiffe": make_leaf(d, "plain", "DNS:web.shop.svc"),
    }


class Discovery:
    def __init__(self, certs, tmp, source_args, extra=()):
        self.port = reserved_port()
        self.metrics_port = reserved_port()
        self.log = os.path.join(tmp, "discovery.log")
        cert, key = certs["server"]
        self.p = subprocess.Popen(
            [os.path.join(BIN, "weft-discovery"), "serve", "--trust-domain", "cluster.local", "--cert", cert,
             "--key", key, "--trust-bundle", certs["ca"], "--config", os.path.join(REPO, "templates", "mesh.yaml"),
             "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
             "--max-subscriptions", str(MAX_SUBS), "--max-message-bytes", str(MAX_MSG)] + list(source_args)
            + list(extra), stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.wait_ready()

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_ready(self, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.p.poll() is None, open(self.log).read()
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("not ready in %ss: %s" % (timeout, open(self.log).read()[-3000:]))

    def metrics(self):
        out = {}
        for line in self.get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def metric(self, name):
        return self.metrics().get(name, 0.0)

    def stop(self):
        return stop_cleanly(self.p, self.log)


def curl_args(certs, who, ip=None):
    args = ["curl", "-sS", "--http2", "--cacert", certs["ca"], "--max-time", "20"]
    if who:
        cert, key = certs[who]
        args += ["--cert", cert, "--key", key]
    if ip:
        args += ["--interface", ip]
    return args


class Stream:
    """A proxy's /v1/stream, spoken by discovery_driver (full-duplex HTTP/2):
    its stdin carries our messages, its stdout the server's."""

    def __init__(self, d, certs, who="web", ip=None, env=None):
        cert, key = certs[who]
        self.p = subprocess.Popen([certs["driver"], str(d.port), certs["ca"], cert, key, ip or "127.0.0.1",
                                   "/v1/stream"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, **(env or {})))
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self.next()
        assert self.hello["type"] == "hello", self.hello

    def _read(self):
        try:
            for line in self.p.stdout:
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    self.q.put({"type": "unreadable", "line": line[:200]})  # a stream reset mid-line
        except ValueError:
            pass  # closed by close()
        self.q.put(None)

    def send(self, msg):
        data = msg if isinstance(msg, bytes) else json.dumps(msg).encode() + b"\n"
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def next(self, timeout=10):
        try:
            m = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message in %ss" % timeout)
        assert m is not None, "stream ended: %s" % self.p.stderr.read().decode()
        return m

    def quiet(self, secs=0.5):
        try:
            m = self.q.get(timeout=secs)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %s" % m)

    def subscribe(self, id):
        self.send({"type": "subscribe", "id": id})
        return self.next()

    def close(self):
        self.p.kill()  # a proxy going away: the server sees the connection end
        self.p.wait()
        self.p.stdin.close()
        self.p.stdout.close()
        self.p.stderr.close()


@pytest.fixture(scope="module")
def served(certs, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("discovery"))
    objs = os.path.join(tmp, "objects")
    shutil.copytree(CLUSTER, objs)
    with open(os.path.join(objs, "50-own-pod.json"), "w") as f:
        json.dump(OWN_POD, f)
    d = Discovery(certs, tmp, ["--objects", objs])
    d.objs = objs
    try:
        yield d
    finally:
        d.stop()


def test_subscribe_answer_and_ack(served, certs):
    s = Stream(served, certs)
    try:
        assert s.hello == {"type": "hello", "protocol": 1, "identity": "spiffe://cluster.local/ns/shop/sa/web",
                           "limits": {"subscriptions": MAX_SUBS, "messageBytes": MAX_MSG}}
        a = s.subscribe("destination:10.96.10.10:80")
        assert a["type"] == "answer" and a["id"] == "destination:10.96.10.10:80"
        assert a["answer"]["kind"] == "service" and a["answer"]["service"]["name"] == "web"
        acks = served.metric("weft_discovery_acks_total")
        s.send({"type": "ack", "id": a["id"], "version": a["version"]})
        # an id is answered in its canonical form
        b = s.subscribe("destination:[fd00:96:0::10]:80")
        assert b["id"] == "destination:[fd00:96::10]:80" and b["answer"]["kind"] == "service"
        assert b["version"] > a["version"]
        assert served.metric("weft_discovery_acks_total") == acks + 1
        assert served.metric("weft_discovery_streams") >= 1
        assert served.metric("weft_discovery_subscriptions") >= 2
        s.send({"type": "ack", "id": a["id"], "version": a["version"] + 1000})
        e = s.next()
        assert e == {"type": "error", "code": "bad-version", "id": a["id"],
                     "error": "version %d was never sent (last %d)" % (a["version"] + 1000, a["version"])}
        nacks = served.metric("weft_discovery_nacks_total")
        s.send({"type": "nack", "id": a["id"], "version": a["version"], "reason": "route web-split: unsupported"})
        s.quiet()
        assert served.metric("weft_discovery_nacks_total") == nacks + 1
        assert "proxy rejected an answer" in open(served.log).read()
    finally:
        s.close()


def test_change_in_directory_is_pushed_with_a_new_version(served, certs):
    s = Stream(served, certs)
    try:
        a = s.subscribe("destination:10.96.10.10:80")
        other = s.subscribe("destination:10.96.0.1:443")
        assert other["answer"]["kind"] == "service"
        path = os.path.join(served.objs, "20-endpointslices.yaml")
        text = open(path).read()
        assert "10.1.1.10" in text
        pushes = served.metric("weft_discovery_pushes_total")
        with open(path + ".tmp", "w") as f:
            f.write(text.replace("10.1.1.10", "10.1.1.77"))
        os.rename(path + ".tmp", path)  # as a ConfigMap volume or an editor swaps a file
        b = s.next(timeout=10)
        assert b["id"] == a["id"] and b["version"] > a["version"]
        addrs = [e["address"] for e in b["answer"]["service"]["endpoints"]]
        assert "10.1.1.77" in addrs and "10.1.1.10" not in addrs
        s.quiet(1.0)  # kubernetes.default did not change: not pushed again
        assert served.metric("weft_discovery_pushes_total") >= pushes + 1
        with open(path, "w") as f:
            f.write(text)
        c = s.next(timeout=10)
        assert c["version"] > b["version"] and "10.1.1.10" in json.dumps(c["answer"])
    finally:
        s.close()


def test_a_change_recomputes_only_the_answers_it_touches(certs, tmp_path):
    """Each answer is computed once however many streams hold it, and again
    only when a change touches what it read: a slice of Service web changed
    in the directory recomputes web's answer alone (not kubernetes.default's,
    db's, a pod's or an unknown address's), and a re-read directory that
    changed nothing recomputes and pushes nothing."""
    objs = str(tmp_path / "objects")
    shutil.copytree(CLUSTER, objs)
    d = Discovery(certs, str(tmp_path), ["--objects", objs])
    ids = ["destination:10.96.10.10:80", "destination:10.96.0.1:443", "destination:10.96.10.20:5432",
           "destination:203.0.113.1:80"]
    streams = []
    try:
        for _ in range(2):
            s = Stream(d, certs)
            streams.append(s)
            for i in ids:
                assert s.subscribe(i)["type"] == "answer"
        assert d.metric("weft_discovery_answers_computed_total") == len(ids)  # shared by both streams
        path = os.path.join(objs, "20-endpointslices.yaml")
        text = open(path).read()
        computed = d.metric("weft_discovery_answers_computed_total")
        with open(path + ".tmp", "w") as f:
            f.write(text.replace("10.1.1.10", "10.1.1.77"))
        os.rename(path + ".tmp", path)
        for s in streams:
            b = s.next(timeout=10)
            assert b["id"] == ids[0] and "10.1.1.77" in json.dumps(b["answer"]), b
        for s in streams:
            s.quiet(1.0)
        assert d.metric("weft_discovery_answers_computed_total") == computed + 1
        reloads = d.metric('weft_discovery_source_reloads_total{result="ok"}')
        with open(path + ".tmp", "w") as f:  # the same bytes again: a new file, nothing changed in it
            f.write(text.replace("10.1.1.10", "10.1.1.77"))
        os.rename(path + ".tmp", path)
        end = time.monotonic() + 10
        while d.metric('weft_discovery_source_reloads_total{result="ok"}') == reloads:
            assert time.monotonic() < end
            time.sleep(0.05)
        for s in streams:
            s.quiet(0.5)
        assert d.metric("weft_discovery_answers_computed_total") == computed + 1
    finally:
        for s in streams:
            s.close()
        d.stop()


def test_broken_directory_keeps_the_last_good_objects(served, certs):
    s = Stream(served, certs)
    try:
        a = s.subscribe("destination:10.96.10.10:80")
        errors = served.metric('weft_discovery_source_reloads_total{result="error"}')
        bad = os.path.join(served.objs, "99-broken.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: shop}\nspec: {ports: [{port: 0}]}\n")
        try:
            end = time.monotonic() + 10
            while served.metric('weft_discovery_source_reloads_total{result="error"}') == errors:
                assert time.monotonic() < end, "reload error not counted"
                time.sleep(0.05)
            s.quiet(0.5)
            assert "99-broken.yaml: document 1: Service shop/x: spec.ports[0].port" in open(served.log).read()
            again = s.subscribe("destination:10.96.10.10:80")
            assert again["version"] == a["version"] and again["answer"] == a["answer"]
        finally:
            os.unlink(bad)
    finally:
        s.close()


def handshake_refused(served, certs, who):
    p = subprocess.run(curl_args(certs, who) + [f"https://127.0.0.1:{served.port}/v1/answer?id=destination:10.96.10.10:80"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and p.stdout == "", (p.returncode, p.stdout)
    return p.stderr


@pytest.mark.parametrize("who,reason", [("foreign", "unknown_ca"), (None, "no_client_cert"),
                                        ("other_td", "wrong_trust_domain"), ("no_spiffe", "no_spiffe_id")])
def test_bad_client_certificates_are_refused_and_counted(served, certs, who, reason):
    live = Stream(served, certs)
    try:
        before = served.metric('weft_discovery_tls_failures_total{reason="%s"}' % reason)
        handshake_refused(served, certs, who)
        end = time.monotonic() + 5
        while served.metric('weft_discovery_tls_failures_total{reason="%s"}' % reason) != before + 1:
            assert time.monotonic() < end
            time.sleep(0.05)
        # nothing else disturbed: a stream opened before still works
        assert live.subscribe("destination:10.96.10.10:80")["answer"]["kind"] == "service"
    finally:
        live.close()


def test_tls12_client_is_refused(served, certs):
    cert, key = certs["web"]
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{served.port}", "-tls1_2", "-cert", cert,
                        "-key", key, "-CAfile", certs["ca"], "-alpn", "h2"], input="", capture_output=True,
                       text=True, timeout=30)
    assert "Cipher is (NONE)" in p.stdout or p.returncode != 0, p.stdout


def test_policy_of_own_pod_only(served, certs):
    own = Stream(served, certs, ip=OWN_IP)
    try:
        a = own.subscribe("policy:shop/web-local")
        assert a["answer"]["kind"] == "policy", a
        assert a["answer"]["allowFrom"] == ["ops/monitor"] and a["answer"]["pod"]["ips"] == [OWN_IP]
        forbidden = served.metric('weft_discovery_refusals_total{reason="forbidden"}')
        e = own.subscribe("policy:legacy/old-1")
        assert e == {"type": "error", "code": "forbidden", "id": "policy:legacy/old-1",
                     "error": "spiffe://cluster.local/ns/shop/sa/web may ask only for the inbound policy of its "
                              "own pod, not of namespace legacy"}
        assert served.metric('weft_discovery_refusals_total{reason="forbidden"}') == forbidden + 1
        # same namespace, another service account's pod: an error answer, not its policy
        db = own.subscribe("policy:shop/db-0")
        assert db["answer"]["kind"] == "error" and "service account" in db["answer"]["error"], db
        # the stream is unharmed
        assert own.subscribe("destination:10.96.10.10:80")["answer"]["kind"] == "service"
    finally:
        own.close()
    # its own pod, but from another address: refused (the pod's IP is the proof of being that pod)
    elsewhere = Stream(served, certs)
    try:
        x = elsewhere.subscribe("policy:shop/web-local")
        assert x["answer"]["kind"] == "error" and "127.0.0.1" in x["answer"]["error"], x
    finally:
        elsewhere.close()


def test_policy_change_is_pushed(served, certs):
    own = Stream(served, certs, ip=OWN_IP)
    path = os.path.join(served.objs, "50-own-pod.json")
    try:
        a = own.subscribe("policy:shop/web-local")
        pod = json.loads(json.dumps(OWN_POD))
        pod["metadata"]["annotations"]["weft.dev/allow-from"] = "ops/monitor,shop/*"
        with open(path, "w") as f:
            json.dump(pod, f)
        b = own.next()
        assert b["version"] > a["version"] and b["answer"]["allowFrom"] == ["ops/monitor", "shop/*"]
    finally:
        with open(path, "w") as f:
            json.dump(OWN_POD, f)
        own.close()


def test_subscription_limit_at_and_one_past(served, certs):
    s = Stream(served, certs)
    try:
        ids = ["destination:10.96.10.10:80", "destination:10.96.0.1:443", "destination:10.1.1.10:8080",
               "destination:203.0.113.9:443"]
        assert len(ids) == MAX_SUBS
        for i in ids:
            assert s.subscribe(i)["type"] == "answer"
        before = served.metric('weft_discovery_refusals_total{reason="too-many-subscriptions"}')
        e = s.subscribe("destination:203.0.113.10:443")
        assert e == {"type": "error", "code": "too-many-subscriptions", "id": "destination:203.0.113.10:443",
                     "error": "at most %d subscriptions per stream" % MAX_SUBS}
        assert served.metric('weft_discovery_refusals_total{reason="too-many-subscriptions"}') == before + 1
        # subscribing again to one it has is not a new subscription: the same answer
        again = s.subscribe(ids[0])
        assert again["type"] == "answer"
        s.send({"type": "unsubscribe", "id": ids[3]})
        assert s.subscribe("destination:203.0.113.10:443")["type"] == "answer"
        e = s.subscribe("destination:203.0.113.11:443")
        assert e["code"] == "too-many-subscriptions"
        s.send({"type": "unsubscribe", "id": "destination:198.51.100.1:80"})
        assert s.next()["code"] == "unknown-subscription"
    finally:
        s.close()


def message_of(n):
    """A valid subscribe message of exactly n bytes, newline excluded."""
    head = '{"type":"subscribe","id":"destination:10.96.10.10:80","pad":"'
    tail = '"}'
    return (head + "p" * (n - len(head) - len(tail)) + tail).encode()


def test_message_size_limit_at_and_one_past(served, certs):
    s = Stream(served, certs)
    try:
        at = message_of(MAX_MSG)
        assert len(at) == MAX_MSG
        s.send(at + b"\n")
        assert s.next()["type"] == "answer"
        before = served.metric('weft_discovery_refusals_total{reason="too-large"}')
        s.send(message_of(MAX_MSG + 1) + b"\n")
        e = s.next()
        assert e == {"type": "error", "code": "too-large",
                     "error": "message over %d bytes: skipped to its newline" % MAX_MSG}
        assert served.metric('weft_discovery_refusals_total{reason="too-large"}') == before + 1
        # a huge one in pieces: one error, and the next message is read as usual
        s.send(b'{"type":"subscribe","id":"' + b"x" * 100000)
        s.send(b'"}\n{"type":"subscribe","id":"destination:10.96.0.1:443"}\n')
        assert s.next()["code"] == "too-large"
        assert s.next()["id"] == "destination:10.96.0.1:443"
    finally:
        s.close()


@pytest.mark.parametrize("raw,error", [
    (b"not json\n", "not JSON: '[' or '{' expected near 'not' at byte 3"),
    (b"[1,2]\n", "expected a JSON object"),
    (b'{"type":"watch","id":"destination:10.96.10.10:80"}\n', "type: expected subscribe, unsubscribe, ack or nack"),
    (b'{"type":"subscribe","id":"destination:10.96.10.10"}\n',
     'id "destination:10.96.10.10": expected destination:IPv4:PORT or destination:[IPv6]:PORT'),
    (b'{"type":"ack","id":"destination:10.96.10.10:80"}\n', "version: expected a positive integer"),
])
def test_malformed_messages_get_a_clear_error(served, certs, raw, error):
    s = Stream(served, certs)
    try:
        before = served.metric('weft_discovery_refusals_total{reason="malformed"}')
        s.send(raw)
        assert s.next() == {"type": "error", "code": "malformed", "error": error}
        assert served.metric('weft_discovery_refusals_total{reason="malformed"}') == before + 1
        assert s.subscribe("destination:10.96.10.10:80")["type"] == "answer"
    finally:
        s.close()


def oneshot(served, certs, query, who="web"):
    p = subprocess.run(curl_args(certs, who) + ["-g", "-w", "\n%{http_code} %{http_version}",
                                                f"https://127.0.0.1:{served.port}{query}"],
                       capture_output=True, text=True, timeout=30)
    body, status = p.stdout.rsplit("\n", 1)
    return status, json.loads(body)


def test_oneshot_get_with_curl(served, certs):
    status, a = oneshot(served, certs, "/v1/answer?id=destination:10.96.10.10:80")
    assert status == "200 2" and a["kind"] == "service" and a["version"] == 1
    status, a = oneshot(served, certs, "/v1/answer?id=destination:[fd00:96::10]:80")
    assert status == "200 2" and a["destination"] == "[fd00:96::10]:80"
    status, a = oneshot(served, certs, "/v1/answer?id=destination:93.184.216.34:443")
    assert status == "200 2" and a == {"version": 1, "kind": "unknown", "destination": "93.184.216.34:443",
                                       "reason": "not-found"}
    status, a = oneshot(served, certs, "/v1/answer?id=policy:legacy/old-1")
    assert status == "403 2" and a["kind"] == "error" and "not of namespace legacy" in a["error"]
    status, a = oneshot(served, certs, "/v1/answer?id=policy%3Ashop%2Fweb-local")
    assert status == "403 2" and "127.0.0.1" in a["error"]  # not from its pod's address
    status, a = oneshot(served, certs, "/v1/answer?id=nonsense")
    assert status == "400 2" and "expected destination:ADDR:PORT or policy:NAMESPACE/POD" in a["error"]
    status, a = oneshot(served, certs, "/v2/stream")
    assert status == "404 2"


def test_curl_reads_the_stream_and_its_pushes(served, certs, tmp_path):
    subs = tmp_path / "subs.ndjson"
    subs.write_text('{"type":"subscribe","id":"destination:10.96.10.10:80"}\n')
    p = subprocess.Popen(curl_args(certs, "web") + ["-N", "-T", str(subs), f"https://127.0.0.1:{served.port}/v1/stream"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = os.path.join(served.objs, "20-endpointslices.yaml")
    text = open(path).read()
    try:
        assert json.loads(p.stdout.readline())["type"] == "hello"
        a = json.loads(p.stdout.readline())
        assert a["type"] == "answer" and a["id"] == "destination:10.96.10.10:80"
        with open(path, "w") as f:
            f.write(text.replace("10.1.1.10", "10.1.1.78"))
        b = json.loads(p.stdout.readline())
        assert b["version"] > a["version"] and "10.1.1.78" in json.dumps(b["answer"])
    finally:
        with open(path, "w") as f:
            f.write(text)
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def test_one_stream_per_connection_with_nghttp(served, certs, tmp_path):
    """nghttp puts both requests on one connection: the second stream gets 409."""
    subs = tmp_path / "subs.ndjson"
    subs.write_text('{"type":"subscribe","id":"destination:10.96.10.10:80"}\n')
    cert, key = certs["web"]
    urls = ["https://127.0.0.1:%d/v1/stream?%s" % (served.port, q) for q in ("a", "b")]
    try:
        out = subprocess.run(["nghttp", "-v", "--cert", cert, "--key", key, "-d", str(subs)] + urls,
                             capture_output=True, text=True, timeout=3).stdout
    except subprocess.TimeoutExpired as e:  # the first stream never ends: that is the point
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", out)
    assert sorted(s for _, s in statuses) == ["200", "409"], out[-2000:]
    assert '{"error":"one /v1/stream per connection"}' in out
    assert '"type":"hello"' in out and '"type":"answer"' in out


def test_data_frames_are_at_most_4000_bytes(served, certs, tmp_path):
    """The server caps its DATA frames at 4,000 bytes (so nghttp2's 16 KiB
    frame buffer, in a mapping of its own, is touched on its first page
    only): 8 subscribes to one id are 8 answers of about 2 KB, written in
    frames of at most 4,000 bytes, the fullest at 4,000; read by the
    driver, every answer is whole."""
    line = '{"type":"subscribe","id":"destination:10.96.10.10:80"}\n'
    subs = tmp_path / "subs.ndjson"
    subs.write_text(line * 8)
    cert, key = certs["web"]
    try:
        out = subprocess.run(["nghttp", "-v", "--cert", cert, "--key", key, "-d", str(subs),
                              "https://127.0.0.1:%d/v1/stream" % served.port],
                             capture_output=True, text=True, timeout=3).stdout
    except subprocess.TimeoutExpired as e:  # the stream never ends
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    lengths = [int(n) for n in re.findall(r"recv DATA frame <length=(\d+)", out)]
    assert lengths and max(lengths) == 4000 and sum(lengths) > 8 * 1500, out[-2000:]
    s = Stream(served, certs)
    try:
        s.send(line.encode() * 8)
        answers = [s.next() for _ in range(8)]
        assert all(a["type"] == "answer" and a["id"] == "destination:10.96.10.10:80" for a in answers)
        assert len({json.dumps(a["answer"], sort_keys=True) for a in answers}) == 1
    finally:
        s.close()


def s_client(port, certs, *extra):
    cert, key = certs["web"]
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                           "-CAfile", certs["ca"]] + list(extra), input="", capture_output=True, text=True,
                          timeout=30)


def test_client_without_h2_is_refused(served, certs):
    before = served.metric('weft_discovery_tls_failures_total{reason="no_h2"}')
    p = s_client(served.port, certs, "-alpn", "http/1.1")
    assert "Verify return code: 0" not in p.stdout or "no application protocol" in p.stdout + p.stderr, p.stdout
    end = time.monotonic() + 5
    while served.metric('weft_discovery_tls_failures_total{reason="no_h2"}') != before + 1:
        assert time.monotonic() < end, p.stdout + p.stderr
        time.sleep(0.05)


def test_server_certificate_is_reloaded(certs, tmp_path):
    objs = str(tmp_path / "objects")
    shutil.copytree(CLUSTER, objs)
    d = tmp_path / "tls"
    d.mkdir()
    for f in ("ca.crt", "ca.key"):
        shutil.copy(os.path.join(certs["dir"], f), d / f)
    make_leaf(str(d), "first", "IP:127.0.0.1")
    make_leaf(str(d), "second", "IP:127.0.0.1")
    shutil.copy(d / "first.crt", d / "server.crt")
    shutil.copy(d / "first.key", d / "server.key")
    c = dict(certs, server=(str(d / "server.crt"), str(d / "server.key")))
    srv = Discovery(c, str(tmp_path), ["--objects", objs])
    try:
        assert "subject=CN = first" in s_client(srv.port, certs, "-alpn", "h2").stdout
        live = Stream(srv, certs)
        # key first, then certificate, each by rename, as a Secret volume swaps them
        shutil.copy(d / "second.key", d / "k.tmp")
        os.rename(d / "k.tmp", d / "server.key")
        shutil.copy(d / "second.crt", d / "c.tmp")
        os.rename(d / "c.tmp", d / "server.crt")
        end = time.monotonic() + 10
        while "subject=CN = second" not in s_client(srv.port, certs, "-alpn", "h2").stdout:
            assert time.monotonic() < end, open(srv.log).read()[-2000:]
            time.sleep(0.2)
        assert live.subscribe("destination:10.96.10.10:80")["type"] == "answer"  # open streams go on
        live.close()
    finally:
        srv.stop()


def test_proxy_that_does_not_read_is_reset_alone(served, certs):
    """Answers pile up for a stream whose proxy stops reading: past 8 MiB the
    stream is reset and counted, and other streams are not disturbed."""
    other = Stream(served, certs)
    slow = Stream(served, certs, env={"DRIVER_NO_WINDOW": "1"})  # takes 64 KiB of answers, then no more
    try:
        before = served.metric('weft_discovery_refusals_total{reason="slow-consumer"}')
        line = json.dumps({"type": "subscribe", "id": "destination:10.96.10.10:80"}).encode() + b"\n"
        # each subscribe to a held id sends the answer again (about 2 KB): 6,000 of them pass 8 MiB
        for _ in range(6):
            slow.send(line * 1000)
        end = time.monotonic() + 20
        while served.metric('weft_discovery_refusals_total{reason="slow-consumer"}') != before + 1:
            assert time.monotonic() < end, open(served.log).read()[-2000:]
            time.sleep(0.1)
        assert "stream reset: the proxy does not read its answers" in open(served.log).read()
        assert other.subscribe("destination:10.96.10.10:80")["type"] == "answer"
    finally:
        slow.close()
        other.close()


def test_path_limit_at_and_one_past(served, certs):
    base = "/v1/answer?id="
    status, a = oneshot(served, certs, base + "x" * (2048 - len(base)))
    assert status == "400 2", (status, a)  # read, and refused as an id
    status, a = oneshot(served, certs, base + "x" * (2049 - len(base)))
    assert status == "414 2" and a == {"error": "path too long"}


def test_connection_limit_at_and_one_past(certs, tmp_path):
    objs = str(tmp_path / "objects")
    shutil.copytree(CLUSTER, objs)
    d = Discovery(certs, str(tmp_path), ["--objects", objs], extra=["--max-connections", "2"])
    streams = []
    try:
        streams = [Stream(d, certs), Stream(d, certs)]  # at the limit
        cert, key = certs["web"]
        p = subprocess.run([certs["driver"], str(d.port), certs["ca"], cert, key, "127.0.0.1", "/v1/stream"],
                           input=b"", capture_output=True, timeout=30)
        assert p.returncode != 0 and p.stdout == b"", p
        assert d.metric("weft_discovery_connections_over_limit_total") == 1
        assert streams[0].subscribe("destination:10.96.10.10:80")["type"] == "answer"  # the others go on
        streams.pop().close()
        end = time.monotonic() + 5
        while d.metric("weft_discovery_connections") != 1:
            assert time.monotonic() < end
            time.sleep(0.05)
        streams.append(Stream(d, certs))  # room again
        assert streams[-1].subscribe("destination:10.96.10.10:80")["type"] == "answer"
    finally:
        for st in streams:
            st.close()
        d.stop()


def test_metrics_are_documented(served):
    doc = open(os.path.join(REPO, "docs", "discovery.md")).read()
    names = set()
    for line in served.get("/metrics")[1].splitlines():
        m = re.match(r"# TYPE (\S+) ", line)
        if m:
            names.add(m.group(1))
    assert names and all(n.startswith("weft_discovery_") for n in names), names
    missing = [n for n in sorted(names) if "`%s`" % n not in doc]
    assert not missing, missing


# ---------- from the API server (kubefake's list+watch) ----------

SVC = {"metadata": {"name": "api", "namespace": "shop"},
       "spec": {"type": "ClusterIP", "clusterIP": "10.96.50.5", "clusterIPs": ["10.96.50.5"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}


def slice_of(ip):
    return {"metadata": {"name": "api-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": "n1"}]}


def test_kubernetes_source_lists_watches_and_relists(certs, tmp_path):
    ca, crt, key = kubefake.make_tls(str(tmp_path))
    token = tmp_path / "token"
    token.write_text("discovery-token\n")
    fake = kubefake.KubeFake(crt, key).start()
    d = None
    try:
        fake.put("/api/v1/namespaces", {"metadata": {"name": "shop"}})
        fake.put("/api/v1/services", SVC)
        fake.put("/apis/discovery.k8s.io/v1/endpointslices", slice_of("10.1.5.1"))
        d = Discovery(certs, str(tmp_path), ["--kubernetes", "--api-server", f"127.0.0.1:{fake.port}", "--api-ca",
                                             ca, "--api-token", str(token)])
        s = Stream(d, certs)
        try:
            a = s.subscribe("destination:10.96.50.5:80")
            assert [e["address"] for e in a["answer"]["service"]["endpoints"]] == ["10.1.5.1"]
            fake.put("/apis/discovery.k8s.io/v1/endpointslices", slice_of("10.1.5.2"))
            b = s.next()
            assert b["version"] > a["version"]
            assert [e["address"] for e in b["answer"]["service"]["endpoints"]] == ["10.1.5.2"]
            # The Service goes while the watches are told their version is gone:
            # only the new list can say so, and the answer follows.
            fake.expire_watches()
            fake.delete("/api/v1/services", "shop/api")
            c = s.next(timeout=15)
            assert c["answer"]["kind"] == "unknown" and c["answer"]["reason"] == "not-found", c
            m = d.metrics()
            assert m['weft_discovery_watch_gone_total{resource="services"}'] >= 1
            assert m['weft_discovery_watch_lists_total{resource="services"}'] >= 2
            assert m['weft_discovery_store_objects{kind="Service"}'] == 0
            with fake.lock:
                paths = [r["path"] for r in fake.requests]
            assert any("watch=true" in p and "allowWatchBookmarks=true" in p for p in paths)
            assert all(r["authorization"] == "Bearer discovery-token" for r in fake.requests)
        finally:
            s.close()
        end = time.monotonic() + 10
        while d.metric('weft_discovery_watch_up{resource="pods"}') != 1:  # re-listing after the 410
            assert time.monotonic() < end
            time.sleep(0.05)
        ready = d.metrics()
        assert ready['weft_discovery_watch_staleness_seconds{resource="pods"}'] == 0
        fake.go_down()
        time.sleep(1.5)
        down = d.metrics()
        assert down['weft_discovery_watch_up{resource="pods"}'] == 0
        assert down['weft_discovery_watch_staleness_seconds{resource="pods"}'] >= 1
        assert down['weft_discovery_watch_errors_total{resource="pods"}'] >= 1
    finally:
        if d:
            d.stop()
        fake.stop() if fake.thread.is_alive() else None


GRANT = {"metadata": {"name": "from-shop", "namespace": "store"},
         "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                  "to": [{"group": "", "kind": "Service", "name": "back"}]}}


def test_kubernetes_source_reference_grant(certs, tmp_path):
    """A route's backend in another namespace resolves once a watched
    ReferenceGrant there permits it, and is unresolved again (no
    destination, RefNotPermitted) when the grant is deleted: both pushed."""
    ca, crt, key = kubefake.make_tls(str(tmp_path))
    token = tmp_path / "token"
    token.write_text("discovery-token\n")
    fake = kubefake.KubeFake(crt, key).start()
    d = None
    try:
        for ns in ("shop", "store"):
            fake.put("/api/v1/namespaces", {"metadata": {"name": ns}})
        fake.put("/api/v1/services", SVC)
        fake.put("/api/v1/services", {"metadata": {"name": "back", "namespace": "store"},
                                      "spec": {"clusterIP": "10.96.50.9", "clusterIPs": ["10.96.50.9"],
                                               "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        fake.put("/apis/gateway.networking.k8s.io/v1/httproutes", {
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}],
                     "rules": [{"backendRefs": [{"name": "back", "namespace": "store", "port": 80}]}]}})
        d = Discovery(certs, str(tmp_path), ["--kubernetes", "--api-server", f"127.0.0.1:{fake.port}", "--api-ca",
                                             ca, "--api-token", str(token)])
        s = Stream(d, certs)
        try:
            def backend(m):
                return m["answer"]["service"]["httpRoutes"][0]["rules"][0]["backends"][0]
            a = s.subscribe("destination:10.96.50.5:80")
            assert backend(a)["resolved"] is False and backend(a)["reason"] == "RefNotPermitted", a
            fake.put("/apis/gateway.networking.k8s.io/v1beta1/referencegrants", GRANT)
            b = s.next(timeout=15)
            assert b["version"] > a["version"]
            assert backend(b)["resolved"] is True and backend(b)["destination"] == "10.96.50.9:80", b
            assert d.metric('weft_discovery_store_objects{kind="ReferenceGrant"}') == 1
            fake.delete("/apis/gateway.networking.k8s.io/v1beta1/referencegrants", "store/from-shop")
            c = s.next(timeout=15)
            assert backend(c)["resolved"] is False and backend(c)["reason"] == "RefNotPermitted", c
            assert "destination" not in backend(c)
            m = d.metrics()
            assert m['weft_discovery_watch_events_total{resource="referencegrants"}'] >= 2
            assert m['weft_discovery_store_objects{kind="ReferenceGrant"}'] == 0
        finally:
            s.close()
        with fake.lock:
            paths = [r["path"] for r in fake.requests]
        assert any(p.startswith("/apis/gateway.networking.k8s.io/v1beta1/referencegrants?") for p in paths), paths
    finally:
        if d:
            d.stop()
        fake.stop() if fake.thread.is_alive() else None


GATEWAY_API = ("/apis/gateway.networking.k8s.io/v1/httproutes", "/apis/gateway.networking.k8s.io/v1/grpcroutes",
               "/apis/gateway.networking.k8s.io/v1beta1/referencegrants")
ROUTE = {"metadata": {"name": "api", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}],
                  "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]}}
RECHECK_MS = 500


def test_kubernetes_source_without_gateway_api_crds(certs, tmp_path):
    """The Gateway API CRDs not installed (kube-apiserver's plain 404 on
    their lists): ready at once, serving Services without routes, each
    resource logged once and shown as not installed, not as a watch error.
    Installed later, the next check (--crd-recheck-ms, jittered by a
    quarter) watches them and the route is pushed with no restart; the CRD
    deleted again (its objects DELETED, its watch ended, then 404) takes
    the route away and the resource back to not installed."""
    ca, crt, key = kubefake.make_tls(str(tmp_path))
    token = tmp_path / "token"
    token.write_text("discovery-token\n")
    fake = kubefake.KubeFake(crt, key).start()
    fake.absent.update(GATEWAY_API)
    d = None
    try:
        fake.put("/api/v1/namespaces", {"metadata": {"name": "shop"}})
        fake.put("/api/v1/services", SVC)
        fake.put("/apis/discovery.k8s.io/v1/endpointslices", slice_of("10.1.5.1"))
        t0 = time.monotonic()
        d = Discovery(certs, str(tmp_path), ["--kubernetes", "--api-server", f"127.0.0.1:{fake.port}", "--api-ca",
                                             ca, "--api-token", str(token), "--crd-recheck-ms", str(RECHECK_MS)])
        assert time.monotonic() - t0 < 15  # ready while the CRDs are absent (before: never; wait_ready's 20 s)
        s = Stream(d, certs)
        try:
            a = s.subscribe("destination:10.96.50.5:80")
            assert [e["address"] for e in a["answer"]["service"]["endpoints"]] == ["10.1.5.1"], a
            assert not a["answer"]["service"].get("httpRoutes"), a
            with fake.lock:
                n0 = sum(1 for r in fake.requests if r["path"].startswith(GATEWAY_API[0] + "?"))
            t1 = time.monotonic()
            time.sleep(3)
            with fake.lock:
                n1 = sum(1 for r in fake.requests if r["path"].startswith(GATEWAY_API[0] + "?"))
            secs = time.monotonic() - t1
            # Rechecked every 375-625 ms (plus the request's own time, up to
            # 375 ms allowed on a loaded machine): not a retry storm, not never.
            assert secs / 1.0 - 1 <= n1 - n0 <= secs / 0.375 + 1, (n0, n1, secs)
            m = d.metrics()
            for res in ("httproutes", "grpcroutes", "referencegrants"):
                assert m['weft_discovery_resource_installed{resource="%s"}' % res] == 0, m
                assert m['weft_discovery_watch_errors_total{resource="%s"}' % res] == 0, m
                assert m['weft_discovery_watch_staleness_seconds{resource="%s"}' % res] < 1, m
            assert m['weft_discovery_resource_installed{resource="services"}'] == 1
            log = open(d.log).read()
            for path in GATEWAY_API:
                lines = [l for l in log.splitlines() if "not served (404)" in l and path in l]
                assert len(lines) == 1, (path, lines)
            # The CRDs installed, and a route for the Service.
            fake.absent.clear()
            fake.put(GATEWAY_API[0], ROUTE)
            b = s.next(timeout=RECHECK_MS * 1.25 / 1000 + 5)
            assert b["version"] > a["version"]
            assert [r["name"] for r in b["answer"]["service"]["httpRoutes"]] == ["api"], b
            end = time.monotonic() + 5
            while any(d.metric('weft_discovery_resource_installed{resource="%s"}' % res) != 1
                      for res in ("httproutes", "grpcroutes", "referencegrants")):
                assert time.monotonic() < end
                time.sleep(0.05)
            m = d.metrics()
            assert m['weft_discovery_watch_errors_total{resource="httproutes"}'] == 0, m
            assert "now served" in open(d.log).read()
            # The HTTPRoute CRD deleted again.
            fake.uninstall(GATEWAY_API[0])
            c = s.next(timeout=10)
            assert not c["answer"]["service"].get("httpRoutes"), c
            end = time.monotonic() + 10
            while d.metric('weft_discovery_resource_installed{resource="httproutes"}') != 0:
                assert time.monotonic() < end
                time.sleep(0.05)
            assert d.get("/readyz")[0] == 200
        finally:
            s.close()
    finally:
        if d:
            d.stop()
        fake.stop() if fake.thread.is_alive() else None


def test_kubernetes_source_no_gateway_api_flag(certs, tmp_path):
    """--no-gateway-api still watches no Gateway API resource at all."""
    ca, crt, key = kubefake.make_tls(str(tmp_path))
    token = tmp_path / "token"
    token.write_text("discovery-token\n")
    fake = kubefake.KubeFake(crt, key).start()
    fake.absent.update(GATEWAY_API)
    d = None
    try:
        d = Discovery(certs, str(tmp_path), ["--kubernetes", "--api-server", f"127.0.0.1:{fake.port}", "--api-ca",
                                             ca, "--api-token", str(token), "--no-gateway-api"])
        assert "httproutes" not in d.get("/metrics")[1]
        with fake.lock:
            assert not [r for r in fake.requests if r["path"].startswith("/apis/gateway.networking.k8s.io/")]
    finally:
        if d:
            d.stop()
        fake.stop() if fake.thread.is_alive() else None


PING_INTERVAL_MS = 100  # the flag's lower limit
PING_TIMEOUT_MS = 1000


def test_keepalive_ping_closes_silent_peers(certs, tmp_path):
    """Connections quiet for the interval get an HTTP/2 PING; one that does
    not ACK it within the timeout is closed and counted: a client that never
    answers PINGs, and one stopped (SIGSTOP: it neither reads nor answers,
    as a proxy that vanished without a FIN). A client that answers stays
    connected through many intervals and keeps being served."""
    d = Discovery(certs, str(tmp_path), ["--objects", CLUSTER],
                  extra=["--ping-interval-ms", str(PING_INTERVAL_MS), "--ping-timeout-ms", str(PING_TIMEOUT_MS)])
    good = mute = stopped = None
    try:
        good = Stream(d, certs)
        assert good.subscribe("destination:10.96.10.10:80")["type"] == "answer"
        mute = Stream(d, certs, env={"DRIVER_NO_PING_ACK": "1"})
        stopped = Stream(d, certs)
        t0 = time.monotonic()
        os.kill(stopped.p.pid, signal.SIGSTOP)
        assert d.metric("weft_discovery_streams") == 3
        time.sleep(0.5)
        m = d.metrics()
        if time.monotonic() - t0 < (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000 - 0.1:
            # Pinged, but not closed before interval + timeout.
            assert m["weft_discovery_pings_total"] >= 3, m
            assert m["weft_discovery_ping_timeouts_total"] == 0, m
            assert m["weft_discovery_streams"] == 3, m
        end = time.monotonic() + 10
        while d.metric("weft_discovery_ping_timeouts_total") < 2:
            assert time.monotonic() < end, open(d.log).read()[-2000:]
            time.sleep(0.05)
        closed_after = time.monotonic() - t0
        assert closed_after >= (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000 - 0.15, closed_after
        time.sleep(3 * PING_INTERVAL_MS / 1000)
        m = d.metrics()
        assert m["weft_discovery_ping_timeouts_total"] == 2, m  # the answering client is not closed
        assert m["weft_discovery_streams"] == 1 and m["weft_discovery_connections"] == 1, m
        assert m["weft_discovery_subscriptions"] == 1, m
        # The stream that answered PINGs all along is still served.
        assert good.subscribe("destination:10.96.10.20:5432")["type"] == "answer"
        assert mute.p.wait(timeout=10) == 4  # it saw the connection closed
        os.kill(stopped.p.pid, signal.SIGCONT)
        assert stopped.p.wait(timeout=10) == 4
        log = open(d.log).read()
        assert log.count("connection closed: no answer to PING") == 2, log[-2000:]
    finally:
        if stopped and stopped.p.poll() is None:
            os.kill(stopped.p.pid, signal.SIGCONT)
        for st in (good, mute, stopped):
            if st:
                st.close()
        d.stop()


def test_keepalive_flag_limits_accepted(certs, tmp_path):
    """--ping-interval-ms and --ping-timeout-ms at their limits start the
    server (one past them is in test_bad_flags)."""
    for interval, timeout in (("3600000", "100"), ("100", "600000")):
        d = Discovery(certs, str(tmp_path), ["--objects", CLUSTER],
                      extra=["--ping-interval-ms", interval, "--ping-timeout-ms", timeout])
        try:
            s = Stream(d, certs)
            s.close()
        finally:
            d.stop()


def test_bad_flags(certs, tmp_path):
    cert, key = certs["server"]
    base = [os.path.join(BIN, "weft-discovery"), "serve", "--trust-domain", "cluster.local", "--cert", cert,
            "--key", key, "--trust-bundle", certs["ca"], "--config", os.path.join(REPO, "templates", "mesh.yaml")]
    cases = [
        ([], "exactly one of --objects DIR and --kubernetes is required"),
        (["--objects", str(tmp_path), "--max-subscriptions", "0"], '--max-subscriptions "0": expected an integer 1-1000000'),
        (["--objects", str(tmp_path / "missing")], "--objects %s: No such file or directory" % (tmp_path / "missing")),
        (["--objects", str(tmp_path), "--listen", "nowhere"], '--listen "nowhere": expected HOST:PORT'),
        (["--objects", str(tmp_path), "--ping-interval-ms", "99"], '--ping-interval-ms "99": expected an integer 100-3600000'),
        (["--objects", str(tmp_path), "--ping-interval-ms", "3600001"], '--ping-interval-ms "3600001": expected an integer 100-3600000'),
        (["--objects", str(tmp_path), "--ping-timeout-ms", "99"], '--ping-timeout-ms "99": expected an integer 100-600000'),
        (["--objects", str(tmp_path), "--ping-timeout-ms", "600001"], '--ping-timeout-ms "600001": expected an integer 100-600000'),
        (["--objects", str(tmp_path), "--ping-timeout-ms", "10s"], '--ping-timeout-ms "10s": expected an integer 100-600000'),
        (["--objects", str(tmp_path), "--crd-recheck-ms", "99"], '--crd-recheck-ms "99": expected an integer 100-3600000'),
        (["--objects", str(tmp_path), "--crd-recheck-ms", "3600001"], '--crd-recheck-ms "3600001": expected an integer 100-3600000'),
    ]
    for args, msg in cases:
        p = subprocess.run(base + args, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and msg in p.stderr, (args, p.stderr)
