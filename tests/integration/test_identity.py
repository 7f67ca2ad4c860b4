# SPDX-License-Identifier: Apache-2.0
"""weft-identity end to end on loopback: the real binary, a CA from
scripts/make-ca.sh, and a fake API server answering TokenReviews as
Kubernetes does. Covers issuing, every bad input of issue 5 with its exact
status and metrics reason, TokenReview outages, hot reload of the issuer and
of the serving certificate, flags."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

import kubefake
from ports import reserved_port
from procs import read_log, stop_cleanly

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("WEFT_BIN") or os.path.join(REPO, "build", "bin")
IDENTITY = os.path.join(BIN, "weft-identity")
SERVER_NAME = "weft-identity.weft-system.svc"
ID = "spiffe://cluster.local/ns/shop/sa/backend"


# Debian 12's python3-cryptography (38) has neither the *_utc validity
# properties nor verify_directly_issued_by (both came later): these do the
# same with what it has.
def not_after(cert):
    return cert.not_valid_after.replace(tzinfo=timezone.utc)


def not_before(cert):
    return cert.not_valid_before.replace(tzinfo=timezone.utc)


def verify_issued_by(leaf, issuer):
    """Raises unless `issuer` names and signed `leaf` (ECDSA or RSA)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    if leaf.issuer != issuer.subject:
        raise ValueError("issuer name %s is not %s" % (leaf.issuer.rfc4514_string(), issuer.subject.rfc4514_string()))
    key = issuer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    else:
        key.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), leaf.signature_hash_algorithm)


def make_ca(path):
    subprocess.run(["bash", os.path.join(REPO, "scripts", "make-ca.sh"), str(path), "--days", "30"],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    d = tmp_path_factory.mktemp("kube")
    kca, crt, key = kubefake.make_tls(str(d))
    fake = kubefake.KubeFake(crt, key)
    fake.client_tokens = {"identity-sa-token"}
    token = d / "token"
    token.write_text("identity-sa-token\n")
    fake.add_sa("pod-token", "shop", "backend")
    fake.add_sa("expired-token", "shop", "backend", expired=True)
    fake.add_sa("api-token", "shop", "backend", audiences=["https://kubernetes.default.svc"])
    fake.reviews["user-token"] = kubefake.Review("kubernetes-admin")
    fake.start()
    try:
        yield {"fake": fake, "ca": kca, "token": str(token)}
    finally:
        fake.stop()


class Identity:
    def __init__(self, proc, port, metrics_port, log):
        self.proc, self.port, self.metrics_port, self.log = proc, port, metrics_port, log

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body


def identity_args(ca_dir, kube, port, mport, kube_api=None, listen_host="127.0.0.1", files=None, extra=()):
    """weft-identity's command line; `files` overrides any of the four
    certificate flags (tls-cert, tls-key, issuer-cert, issuer-key)."""
    f = {"tls-cert": ca_dir / "identity.crt", "tls-key": ca_dir / "identity.key",
         "issuer-cert": ca_dir / "intermediate.crt", "issuer-key": ca_dir / "intermediate.key"}
    f.update(files or {})
    args = [IDENTITY, "--listen", "%s:%d" % (listen_host, port), "--metrics-listen", "127.0.0.1:%d" % mport]
    for flag in ("tls-cert", "tls-key", "issuer-cert", "issuer-key"):
        args += ["--" + flag, str(f[flag])]
    return args + ["--kube-api", kube_api or "127.0.0.1:%d" % kube["fake"].port, "--kube-ca", kube["ca"],
                   "--kube-token", kube["token"], "--kube-timeout", "4s"] + list(extra)


def start_identity(tmp_path, ca_dir, kube, extra=(), kube_api=None, wait_ready=True, listen_host="127.0.0.1",
                   port=None):
    """The real weft-identity on reserved ports (or `port`), logging to a file;
    stop it with stop_identity, which holds it to a clean exit."""
    port = port or reserved_port(listen_host.strip("[]"))
    mport = reserved_port()
    log = open(tmp_path / ("identity-%d.log" % port), "w+")
    args = identity_args(ca_dir, kube, port, mport, kube_api=kube_api, listen_host=listen_host, extra=extra)
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    ident = Identity(proc, port, mport, log)
    if wait_ready:
        deadline = time.monotonic() + 30  # generous: start-up under ASan
        while True:
            try:
                if ident.get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_identity(ident, expect_code=None)
                raise AssertionError("weft-identity did not become ready: " + read_log(log.name))
            time.sleep(0.05)
    return ident


def stop_identity(ident, expect_code=0):
    """SIGTERM, then exit status `expect_code` and no sanitizer report
    (procs.stop_cleanly); `expect_code=None` only makes sure it is gone."""
    try:
        if expect_code is None:
            if ident.proc.poll() is None:
                ident.proc.kill()
            ident.proc.wait()
            return read_log(ident.log.name)
        return stop_cleanly(ident.proc, ident.log.name, timeout=30, expect_code=expect_code)
    finally:
        ident.log.close()


@pytest.fixture(scope="module")
def identity(tmp_path_factory, ca, kube):
    d = tmp_path_factory.mktemp("identity")
    ident = start_identity(d, ca, kube, extra=["--trust-bundle", str(ca / "ca.crt")])
    try:
        yield ident
    finally:
        stop_identity(ident)


def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=str(ca_file))
    return ctx


class Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 (or addr) that verifies the server as weft-identity.weft-system.svc."""

    def __init__(self, port, ca_file, server_name=SERVER_NAME, addr="127.0.0.1"):
        super().__init__(server_name, port, context=tls_context(ca_file), timeout=10)
        self._port = port
        self._addr = addr

    def connect(self):
        sock = socket.create_connection((self._addr, self._port), timeout=self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(ident, ca_dir, body, token="pod-token", method="POST", path="/v1/certificates", headers=None):
    c = Conn(ident.port, ca_dir / "ca.crt")
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    return r.status, doc, r


def csr_pem(key=None, uris=(ID,), dns=(), corrupt=False, extra_ext=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = b.sign(key, hashes.SHA256())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    if corrupt:
        der[-2] ^= 0x01  # inside the signature's last INTEGER
    import base64
    b64 = base64.encodebytes(bytes(der)).decode()
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + b64 + "-----END CERTIFICATE REQUEST-----\n"


def reason_count(ident, reason):
    return ident.metrics().get('weft_identity_requests_denied_total{reason="%s"}' % reason, 0)


# ---------------------------------------------------------------- issuing


def test_issue(identity, ca, kube):
    key = ec.generate_private_key(ec.SECP256R1())
    issued_before = identity.metrics()["weft_identity_certificates_issued_total"]
    t0 = time.time()
    status, doc, _ = post(identity, ca, {"csr": csr_pem(key)})
    assert status == 200, doc
    assert doc["spiffeId"] == ID
    leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in doc["chain"]]
    root = x509.load_pem_x509_certificate((ca / "ca.crt").read_bytes())
    inter = x509.load_pem_x509_certificate((ca / "intermediate.crt").read_bytes())
    # Chain: the intermediate, not the trust anchor.
    assert [c.subject for c in chain] == [inter.subject]
    assert root.subject not in [c.subject for c in chain]
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.UniformResourceIdentifier) == [ID]
    assert len(list(san.value)) == 1
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.key_encipherment
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # 24 h from now; notBefore backdated (but never before the issuer's).
    leaf_end = not_after(leaf).timestamp()
    leaf_start = not_before(leaf).timestamp()
    assert abs(leaf_end - (t0 + 86400)) < 10
    assert leaf_start <= t0
    assert leaf_start >= not_before(inter).timestamp()
    assert doc["notAfter"] == datetime.fromtimestamp(leaf_end, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # openssl verifies it for both uses, against the root only.
    d = ca / "verify"
    d.mkdir(exist_ok=True)
    (d / "leaf.pem").write_text(doc["certificate"])
    (d / "chain.pem").write_text("".join(doc["chain"]))
    for purpose in ("sslclient", "sslserver"):
        subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca / "ca.crt"), "-untrusted",
                        str(d / "chain.pem"), str(d / "leaf.pem")], check=True, capture_output=True)
    # The TokenReview the API server saw.
    tr = kube["fake"].tokenreviews()[-1]
    assert tr["authorization"] == "Bearer identity-sa-token"
    assert json.loads(tr["body"]) == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                      "spec": {"token": "pod-token", "audiences": ["weft-identity"]}}
    assert identity.metrics()["weft_identity_certificates_issued_total"] == issued_before + 1


def test_ttl_seconds_shortens(identity, ca):
    t0 = time.time()
    status, doc, _ = post(identity, ca, {"csr": csr_pem(), "ttlSeconds": 30})
    assert status == 200, doc
    leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
    assert abs(not_after(leaf).timestamp() - (t0 + 30)) < 5


def test_parallel_requests(identity, ca):
    results = []

    def one():
        results.append(post(identity, ca, {"csr": csr_pem()})[0])

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 16


def test_body_at_limit_is_accepted(identity, ca):
    body = json.dumps({"csr": csr_pem()})
    body = body + " " * (65536 - len(body))
    assert len(body) == 65536
    status, doc, _ = post(identity, ca, body)
    assert status == 200, doc


def test_ttl_seconds_at_the_maximum(tmp_path, ca, kube):
    """With --cert-ttl 7d (its maximum): ttlSeconds 604800 gets exactly 7 days,
    604801 is refused; with the default 24 h, 604800 is lowered to 24 h."""
    ident = start_identity(tmp_path, ca, kube, extra=["--cert-ttl", "7d", "--clock-skew", "0"])
    try:
        t0 = time.time()
        status, doc, _ = post(ident, ca, {"csr": csr_pem(), "ttlSeconds": 604800})
        assert status == 200, doc
        leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
        lifetime = (not_after(leaf) - not_before(leaf)).total_seconds()
        assert lifetime == 604800
        assert abs(not_after(leaf).timestamp() - (t0 + 604800)) < 10
        status, doc, _ = post(ident, ca, {"csr": csr_pem(), "ttlSeconds": 604801})
        assert status == 400, doc
        assert doc["error"]["reason"] == "bad_ttl"
        assert "604800" in doc["error"]["message"]
        assert ident.metrics()["weft_identity_certificates_issued_total"] == 1
    finally:
        stop_identity(ident)


def test_ttl_seconds_maximum_lowered_to_cert_ttl(identity, ca):
    t0 = time.time()
    status, doc, _ = post(identity, ca, {"csr": csr_pem(), "ttlSeconds": 604800})
    assert status == 200, doc
    leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
    assert abs(not_after(leaf).timestamp() - (t0 + 86400)) < 10


def tls_conn(port, ca_file):
    """A finished TLS handshake with weft-identity, or the error it ended in."""
    ctx = tls_context(ca_file)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=SERVER_NAME)
    except Exception:
        raw.close()
        raise


def keepalive_get(s):
    """One request on an open connection, kept open: the server is serving it."""
    s.sendall(b"GET /v1/certificates HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, "connection closed before an answer"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        rest += s.recv(4096)
    return int(head.split()[1])


def refused(port, ca_file):
    """Whether a new connection is closed by the server instead of served."""
    try:
        s = tls_conn(port, ca_file)
    except (ssl.SSLError, OSError):
        return True
    try:
        return keepalive_get(s) != 405
    except (AssertionError, ssl.SSLError, OSError):
        return True
    finally:
        s.close()


def test_max_connections_at_the_limit_and_one_past(tmp_path, ca, kube):
    """--max-connections 3: three open connections are served, the fourth is
    closed at once (libmicrohttpd logs why), and when one of the three closes
    a new one is served again."""
    ident = start_identity(tmp_path, ca, kube, extra=["--max-connections", "3", "--log-level", "debug"])
    held = []
    try:
        for _ in range(3):
            held.append(tls_conn(ident.port, ca / "ca.crt"))
            assert keepalive_get(held[-1]) == 405
        assert refused(ident.port, ca / "ca.crt")
        assert "Server reached connection limit" in read_log(ident.log.name)
        for s in held:  # the three are still served
            assert keepalive_get(s) == 405
        held.pop().close()
        deadline = time.monotonic() + 20
        while True:  # the server counts the closed one gone once its thread has seen the close
            s = None
            try:
                s = tls_conn(ident.port, ca / "ca.crt")
                if keepalive_get(s) == 405:
                    held.append(s)
                    break
            except (AssertionError, ssl.SSLError, OSError):
                if s:
                    s.close()
            assert time.monotonic() < deadline, "no connection served after one of three closed"
            time.sleep(0.1)
        assert refused(ident.port, ca / "ca.crt")  # three again: the limit holds
    finally:
        for s in held:
            s.close()
        stop_identity(ident)


# ---------------------------------------------------------------- bad input

P384 = ec.generate_private_key(ec.SECP384R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cert_pem(ca):
    return (ca / "root.crt").read_text()


BAD = [
    # name, body (callable of ca), token, status, reason
    ("too_large", lambda ca: "x" * 65537, "pod-token", 413, "body_too_large"),
    ("not_json", lambda ca: "csr=hello", "pod-token", 400, "bad_json"),
    ("json_not_object", lambda ca: "[1,2]", "pod-token", 400, "bad_json"),
    ("no_csr_field", lambda ca: {"certificateRequest": csr_pem()}, "pod-token", 400, "bad_json"),
    ("not_pem", lambda ca: {"csr": "MIIBhello"}, "pod-token", 400, "csr_not_pem"),
    ("not_a_csr", lambda ca: {"csr": cert_pem(ca)}, "pod-token", 400, "not_csr"),
    ("bad_signature", lambda ca: {"csr": csr_pem(corrupt=True)}, "pod-token", 400, "csr_bad_signature"),
    ("rsa_key", lambda ca: {"csr": csr_pem(key=RSA)}, "pod-token", 400, "csr_key_type"),
    ("p384_key", lambda ca: {"csr": csr_pem(key=P384)}, "pod-token", 400, "csr_key_type"),
    ("bad_ttl", lambda ca: {"csr": csr_pem(), "ttlSeconds": 0}, "pod-token", 400, "bad_ttl"),
    ("no_token", lambda ca: {"csr": csr_pem()}, None, 401, "token_missing"),
    ("invalid_token", lambda ca: {"csr": csr_pem()}, "forged-token", 401, "token_invalid"),
    ("expired_token", lambda ca: {"csr": csr_pem()}, "expired-token", 401, "token_expired"),
    ("wrong_audience", lambda ca: {"csr": csr_pem()}, "api-token", 401, "token_audience"),
    ("not_a_service_account", lambda ca: {"csr": csr_pem()}, "user-token", 403, "not_service_account"),
    ("other_identity", lambda ca: {"csr": csr_pem(uris=["spiffe://cluster.local/ns/shop/sa/admin"])}, "pod-token",
     403, "san_mismatch"),
    ("other_trust_domain", lambda ca: {"csr": csr_pem(uris=["spiffe://evil.example/ns/shop/sa/backend"])},
     "pod-token", 403, "san_mismatch"),
    ("no_san", lambda ca: {"csr": csr_pem(uris=[])}, "pod-token", 403, "san_mismatch"),
    ("extra_dns_san", lambda ca: {"csr": csr_pem(dns=["backend.shop.svc"])}, "pod-token", 403, "san_extra"),
    ("two_uris", lambda ca: {"csr": csr_pem(uris=[ID, ID])}, "pod-token", 403, "san_extra"),
]


@pytest.mark.parametrize("name,body,token,status,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_input(identity, ca, name, body, token, status, reason):
    before = reason_count(identity, reason)
    issued = identity.metrics()["weft_identity_certificates_issued_total"]
    got, doc, resp = post(identity, ca, body(ca), token=token)
    assert got == status, doc
    assert doc["error"]["code"] == status
    assert doc["error"]["reason"] == reason
    assert doc["error"]["message"]
    assert "certificate" not in doc
    if status == 401:
        assert resp.getheader("WWW-Authenticate") == "Bearer"
    m = identity.metrics()
    assert m['weft_identity_requests_denied_total{reason="%s"}' % reason] == before + 1
    assert m["weft_identity_certificates_issued_total"] == issued


def test_too_large_chunked(identity, ca):
    """No Content-Length: the body is cut at 64 KiB while it streams in."""
    before = reason_count(identity, "body_too_large")
    c = Conn(identity.port, ca / "ca.crt")
    c.putrequest("POST", "/v1/certificates")
    c.putheader("Authorization", "Bearer pod-token")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    chunk = b"x" * 16384
    for _ in range(5):
        c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    assert r.status == 413
    assert json.loads(r.read())["error"]["reason"] == "body_too_large"
    c.close()
    assert reason_count(identity, "body_too_large") == before + 1


def test_huge_declared_body_refused_at_once(identity, ca):
    """Content-Length over 1 MiB: 413 before reading any of it."""
    before = reason_count(identity, "body_too_large")
    c = Conn(identity.port, ca / "ca.crt")
    c.putrequest("POST", "/v1/certificates")
    c.putheader("Authorization", "Bearer pod-token")
    c.putheader("Content-Length", str(8 * 1024 * 1024))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413
    assert json.loads(r.read())["error"]["reason"] == "body_too_large"
    c.close()
    assert reason_count(identity, "body_too_large") == before + 1


def test_method_and_path(identity, ca):
    status, doc, resp = post(identity, ca, None, method="GET")
    assert status == 405 and doc["error"]["reason"] == "method_not_allowed"
    assert resp.getheader("Allow") == "POST"
    status, doc, _ = post(identity, ca, {"csr": csr_pem()}, path="/v1/other")
    assert status == 404 and doc["error"]["reason"] == "not_found"


def test_bad_input_never_reaches_tokenreview(identity, ca, kube):
    n = len(kube["fake"].tokenreviews())
    for body in ("x", {"csr": "nope"}, {"csr": csr_pem(key=RSA)}, {"csr": csr_pem(corrupt=True)}):
        assert post(identity, ca, body)[0] == 400
    assert post(identity, ca, {"csr": csr_pem()}, token=None)[0] == 401
    assert len(kube["fake"].tokenreviews()) == n


# ---------------------------------------------------------------- TokenReview outages


def test_tokenreview_unreachable(tmp_path, ca, kube):
    ident = start_identity(tmp_path, ca, kube, kube_api="127.0.0.1:%d" % reserved_port())
    try:
        status, doc, resp = post(ident, ca, {"csr": csr_pem()})
        assert status == 503
        assert doc["error"]["reason"] == "tokenreview_unavailable"
        assert int(resp.getheader("Retry-After")) > 0
        assert reason_count(ident, "tokenreview_unavailable") == 1
        assert ident.metrics()["weft_identity_certificates_issued_total"] == 0
    finally:
        stop_identity(ident)


def test_tokenreview_failing_or_slow(identity, ca, kube):
    fake = kube["fake"]
    try:
        fake.fail_code = 500
        status, doc, resp = post(identity, ca, {"csr": csr_pem()})
        assert status == 503 and doc["error"]["reason"] == "tokenreview_unavailable"
        assert resp.getheader("Retry-After")
        fake.fail_code = 0
        fake.delay = 20  # well over --kube-timeout 4s
        t0 = time.monotonic()
        status, doc, _ = post(identity, ca, {"csr": csr_pem()})
        assert status == 503 and doc["error"]["reason"] == "tokenreview_unavailable"
        assert 3.5 < time.monotonic() - t0 < 15  # the timeout, not the delay (room for ASan)
    finally:
        fake.fail_code = 0
        fake.delay = 0
    assert post(identity, ca, {"csr": csr_pem()})[0] == 200


def test_identity_credentials_refused(tmp_path, ca, kube):
    """The API server refuses weft-identity's own token: 503, not the caller's fault."""
    bad = tmp_path / "badtoken"
    bad.write_text("not-the-identity-token\n")
    k = dict(kube, token=str(bad))
    ident = start_identity(tmp_path, ca, k)
    try:
        status, doc, _ = post(ident, ca, {"csr": csr_pem()})
        assert status == 503 and doc["error"]["reason"] == "tokenreview_unavailable"
    finally:
        stop_identity(ident)


# ---------------------------------------------------------------- metrics and health


def test_metrics_and_health(identity):
    assert identity.get("/healthz") == (200, "ok\n")
    assert identity.get("/readyz") == (200, "ok\n")
    assert identity.get("/nope")[0] == 404
    m = identity.metrics()
    assert m["weft_identity_signing_duration_seconds_count"] >= 1
    assert m['weft_identity_signing_duration_seconds_bucket{le="+Inf"}'] == \
        m["weft_identity_signing_duration_seconds_count"]
    assert m["weft_identity_issuer_not_after_timestamp_seconds"] > time.time()
    assert m['weft_identity_reloads_total{what="issuer",result="ok"}'] == 1
    for reason in ("body_too_large", "bad_json", "csr_not_pem", "not_csr", "csr_bad_signature", "csr_key_type",
                   "token_missing", "token_invalid", "token_expired", "token_audience", "san_mismatch",
                   "san_extra", "tokenreview_unavailable"):
        assert 'weft_identity_requests_denied_total{reason="%s"}' % reason in m


# ---------------------------------------------------------------- hot reload


def test_hot_reload_issuer_and_serving(tmp_path, ca, kube):
    live = tmp_path / "live"
    live.mkdir()
    for f in ("identity.crt", "identity.key", "intermediate.crt", "intermediate.key", "ca.crt"):
        shutil.copy(ca / f, live / f)
    ident = start_identity(tmp_path, live, kube, extra=["--reload-interval", "1s"])
    try:
        status, doc, _ = post(ident, live, {"csr": csr_pem()})
        assert status == 200
        first_issuer = x509.load_pem_x509_certificate(doc["chain"][0].encode()).fingerprint(hashes.SHA256())

        ca2 = make_ca(tmp_path / "ca2")
        # A broken pair (key of another CA) is refused; the old issuer keeps working.
        shutil.copy(ca2 / "intermediate.key", live / "intermediate.key.tmp")
        os.replace(live / "intermediate.key.tmp", live / "intermediate.key")
        deadline = time.monotonic() + 10
        while ident.metrics().get('weft_identity_reloads_total{what="issuer",result="error"}', 0) < 1:
            assert time.monotonic() < deadline, "bad issuer key not noticed"
            time.sleep(0.2)
        status, doc, _ = post(ident, live, {"csr": csr_pem()})
        assert status == 200
        assert x509.load_pem_x509_certificate(doc["chain"][0].encode()).fingerprint(hashes.SHA256()) == first_issuer

        # The matching certificate arrives: the new issuer signs.
        shutil.copy(ca2 / "intermediate.crt", live / "intermediate.crt.tmp")
        os.replace(live / "intermediate.crt.tmp", live / "intermediate.crt")
        # And the serving certificate rotates to the new CA.
        for f in ("identity.key", "identity.crt"):
            shutil.copy(ca2 / f, live / (f + ".tmp"))
            os.replace(live / (f + ".tmp"), live / f)
        deadline = time.monotonic() + 10
        while True:
            m = ident.metrics()
            if m.get('weft_identity_reloads_total{what="issuer",result="ok"}') == 2 and \
                    m.get('weft_identity_reloads_total{what="serving",result="ok"}') == 2:
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        # New handshakes verify against the new root only.
        status, doc, _ = post(ident, ca2, {"csr": csr_pem()})
        assert status == 200
        leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
        assert leaf.issuer == x509.load_pem_x509_certificate((ca2 / "intermediate.crt").read_bytes()).subject
        with pytest.raises(ssl.SSLCertVerificationError):
            post(ident, ca, {"csr": csr_pem()})
    finally:
        stop_identity(ident)


def write_in_place(path, data, pieces, pause):
    """Rewrites `path` the way a non-atomic copy does: truncated, then filled
    in `pieces` with `pause` seconds between them, each piece visible."""
    with open(path, "wb") as f:
        for i in range(pieces):
            f.write(data[len(data) * i // pieces:len(data) * (i + 1) // pieces])
            f.flush()
            time.sleep(pause)


def test_rotation_under_concurrent_load(tmp_path, ca, kube):
    """Six clients make new connections and certificate requests while both
    pairs, serving and issuer, are rewritten in place a dozen times,
    alternately certificate first and key first, each file in pieces (empty,
    a cut leaf, a whole leaf with a cut chain), with SIGHUP in the windows so
    the issuer is reloaded there too: the server sees every half-written
    state, yet no handshake fails, every request is answered 200, every leaf
    presented is one of the two whole serving pairs, and every certificate
    issued is signed by the key of the issuer its chain names."""
    live = tmp_path / "live"
    live.mkdir()
    for f in ("identity.crt", "identity.key", "intermediate.crt", "intermediate.key"):
        shutil.copy(ca / f, live / f)
    ca2 = make_ca(tmp_path / "ca2")
    trust = tmp_path / "both.crt"
    trust.write_bytes((ca / "ca.crt").read_bytes() + (ca2 / "ca.crt").read_bytes())
    serving = [((d / "identity.crt").read_bytes(), (d / "identity.key").read_bytes()) for d in (ca, ca2)]
    issuers = [((d / "intermediate.crt").read_bytes(), (d / "intermediate.key").read_bytes()) for d in (ca, ca2)]
    leaves = [x509.load_pem_x509_certificate(c).public_bytes(serialization.Encoding.DER) for c, _ in serving]
    inters = {x509.load_pem_x509_certificate(c).public_bytes(serialization.Encoding.DER) for c, _ in issuers}
    ident = start_identity(tmp_path, live, kube, extra=["--reload-interval", "1s"])
    done = threading.Event()
    lock = threading.Lock()
    errors, seen, answered, chains = [], [], [], set()

    def client(n):
        ctx = ssl.create_default_context(cafile=str(trust))
        body = json.dumps({"csr": csr_pem()}).encode()
        deadline = time.monotonic() + 90
        for _ in range(2000):  # bounded in count and time; normally ends with the rotations
            if done.is_set() or time.monotonic() > deadline:
                break
            try:
                with socket.create_connection(("127.0.0.1", ident.port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as s:
                        der = s.getpeercert(binary_form=True)
                        s.sendall(b"POST /v1/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pod-token\r\n"
                                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                        data = b""
                        while True:
                            chunk = s.recv(65536)
                            if not chunk:
                                break
                            data += chunk
                status = int(data.split(b" ", 2)[1]) if data else 0
                if status == 200:
                    doc = json.loads(data.split(b"\r\n\r\n", 1)[1])
                    leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
                    issuer = x509.load_pem_x509_certificate(doc["chain"][0].encode())
                    verify_issued_by(leaf, issuer)  # raises on a mismatched issuer pair
                with lock:
                    seen.append(der)
                    answered.append(status)
                    if status == 200:
                        chains.add(issuer.public_bytes(serialization.Encoding.DER))
            except Exception as e:  # noqa: BLE001 -- every failure is the finding
                with lock:
                    errors.append("client %d: %r" % (n, e))

    def rewrite(crt, key, pair, pieces, key_first):
        order = [(key, pair[1], 2), (crt, pair[0], pieces)] if key_first else [(crt, pair[0], pieces),
                                                                               (key, pair[1], 2)]
        write_in_place(*order[0], 0.05)
        ident.proc.send_signal(signal.SIGHUP)  # the issuer is reloaded in the window, too
        time.sleep(0.15)  # the window: one file new, the other old
        write_in_place(*order[1], 0.05)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        for r in range(12):
            nxt = (r + 1) % 2
            rewrite(live / "identity.crt", live / "identity.key", serving[nxt], 3, r % 2)
            rewrite(live / "intermediate.crt", live / "intermediate.key", issuers[nxt], 2, r % 2)
            ident.proc.send_signal(signal.SIGHUP)
            time.sleep(0.25)
        done.set()
        for t in threads:
            t.join(60)
        # The last pairs written (ca's, the 12th rotation) are what new handshakes and requests get now.
        assert peer_leaf(ident.port, trust, SERVER_NAME) == leaves[0]
        deadline = time.monotonic() + 10
        while ident.metrics().get('weft_identity_reloads_total{what="issuer",result="ok"}', 0) < 13:
            assert time.monotonic() < deadline, ident.metrics()
            time.sleep(0.1)
        m = ident.metrics()
    finally:
        done.set()
        log = stop_identity(ident)
    assert not errors, (len(errors), errors[:5])
    assert len(answered) >= 100, len(answered)  # enough load to have met the windows
    assert set(answered) == {200}, sorted(set(answered))
    assert set(seen) == set(leaves)  # both serving pairs presented, nothing else
    assert chains == inters  # both issuers signed, each leaf by the issuer its chain names
    # The half-written states were seen and refused, not served.
    assert "serving certificate not reloaded, keeping the previous one" in log
    assert log.count("serving certificate reloaded") >= 12
    assert m['weft_identity_reloads_total{what="issuer",result="error"}'] >= 12


def test_sighup_reloads_now(tmp_path, ca, kube):
    live = tmp_path / "live"
    live.mkdir()
    for f in ("identity.crt", "identity.key", "intermediate.crt", "intermediate.key", "ca.crt"):
        shutil.copy(ca / f, live / f)
    ident = start_identity(tmp_path, live, kube, extra=["--reload-interval", "1h"])
    try:
        ca2 = make_ca(tmp_path / "ca2")
        for f in ("intermediate.key", "intermediate.crt"):
            shutil.copy(ca2 / f, live / (f + ".tmp"))
            os.replace(live / (f + ".tmp"), live / f)
        ident.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while ident.metrics().get('weft_identity_reloads_total{what="issuer",result="ok"}') != 2:
            assert time.monotonic() < deadline, "SIGHUP did not reload the issuer"
            time.sleep(0.1)
        status, doc, _ = post(ident, live, {"csr": csr_pem()})
        assert status == 200
        leaf = x509.load_pem_x509_certificate(doc["certificate"].encode())
        assert leaf.issuer == x509.load_pem_x509_certificate((ca2 / "intermediate.crt").read_bytes()).subject
    finally:
        stop_identity(ident)


def test_ipv6_listen(tmp_path, ca, kube):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    ident = start_identity(tmp_path, ca, kube, listen_host="[::1]")
    try:
        c = Conn(ident.port, ca / "ca.crt", addr="::1")
        c.request("POST", "/v1/certificates", body=json.dumps({"csr": csr_pem()}),
                  headers={"Authorization": "Bearer pod-token"})
        r = c.getresponse()
        assert r.status == 200, r.read()
        c.close()
    finally:
        stop_identity(ident)


# ---------------------------------------------------------------- start-up errors


def expired_ca(d):
    """A root and an intermediate CA (keyCertSign) that expired yesterday."""
    d.mkdir(exist_ok=True)
    now = datetime.now(timezone.utc)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "expired root")])
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "expired intermediate")])
    ca_ext = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                           encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=10)).not_valid_after(now - timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_ext, critical=True)
            .sign(root_key, hashes.SHA256()))
    (d / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "expired.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return d / "expired.crt", d / "expired.key"


def cut_file(src, dst):
    """dst: the first two thirds of src (for identity.crt: the whole leaf, a cut chain)."""
    data = src.read_bytes()
    dst.write_bytes(data[:len(data) * 2 // 3])
    return dst


def run_identity(ca, kube, files=None, extra=(), port=None, mport=None):
    """weft-identity expected to stop by itself at start: (exit status, output)."""
    args = identity_args(ca, kube, port or reserved_port(), mport or reserved_port(), files=files, extra=extra)
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)  # one that starts fails here
    out = p.stdout + p.stderr
    from procs import sanitizer_report
    assert sanitizer_report(out) is None, out
    return p.returncode, out


START_ERRORS = [
    # name, files (callable of ca, tmp_path), extra flags (callable), expected log line, expected error text
    ("issuer_cert_missing", lambda ca, t: {"issuer-cert": t / "nope.crt"}, None,
     "issuer not loaded", "nope.crt: No such file or directory"),
    ("issuer_key_missing", lambda ca, t: {"issuer-key": t / "nope.key"}, None,
     "issuer not loaded", "nope.key: No such file or directory"),
    ("issuer_not_a_ca", lambda ca, t: {"issuer-cert": ca / "identity.crt", "issuer-key": ca / "identity.key"}, None,
     "issuer not loaded", "the first certificate is not a CA allowed to sign certificates"),
    ("issuer_expired", lambda ca, t: dict(zip(("issuer-cert", "issuer-key"), expired_ca(t / "old"))), None,
     "issuer not loaded", "the issuer certificate is expired"),
    ("issuer_key_mismatch", lambda ca, t: {"issuer-key": ca / "root.key"}, None,
     "issuer not loaded", "root.key does not match the first certificate of"),
    ("issuer_key_not_a_key", lambda ca, t: {"issuer-key": ca / "intermediate.crt"}, None,
     "issuer not loaded", "no unencrypted PEM private key"),
    ("issuer_outside_trust_bundle", lambda ca, t: {}, lambda ca, t: ["--trust-bundle", str(make_ca(t / "o") / "ca.crt")],
     "issuer not loaded", "does not chain to"),
    ("serving_pair_mismatch", lambda ca, t: {"tls-key": ca / "intermediate.key"}, None,
     "serving certificate not loaded", "intermediate.key does not hold the key of"),
    ("serving_cert_missing", lambda ca, t: {"tls-cert": t / "nope.crt"}, None,
     "serving certificate not loaded", "cannot stat"),
    ("serving_chain_cut", lambda ca, t: {"tls-cert": cut_file(ca / "identity.crt", t / "cut.crt")}, None,
     "serving certificate not loaded", "cut.crt: Base64 unexpected header error"),
    ("serving_cert_not_pem", lambda ca, t: {"tls-cert": ca / "identity.key"}, None,
     "serving certificate not loaded", "identity.key: No certificate was found"),
]


@pytest.mark.parametrize("name,files,extra,event,detail", START_ERRORS, ids=[e[0] for e in START_ERRORS])
def test_start_up_error(tmp_path, ca, kube, name, files, extra, event, detail):
    code, out = run_identity(ca, kube, files=files(ca, tmp_path), extra=extra(ca, tmp_path) if extra else ())
    assert code == 1, out
    line = next((l for l in out.splitlines() if event in l), None)
    assert line and "level=error" in line, out
    assert detail in line, line
    assert "keeping the previous one" not in out  # at start there is none to keep
    assert "weft-identity started" not in out


@pytest.mark.parametrize("which", ["api", "metrics"])
def test_port_in_use(tmp_path, ca, kube, which):
    """A port another process listens on: exit 1, naming the address."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        code, out = run_identity(ca, kube, **({"port": port} if which == "api" else {"mport": port}))
    finally:
        busy.close()
    assert code == 1, out
    want = "cannot listen on 127.0.0.1:%d%s" % (port, " (HTTPS)" if which == "api" else "")
    assert any("cannot start" in l and want in l for l in out.splitlines()), out


def test_port_served_by_another_weft_identity(tmp_path, ca, kube):
    """A second weft-identity on the port of a running one exits 1 instead of
    listening beside it (with SO_REUSEPORT it did, sharing the connections)."""
    first = start_identity(tmp_path, ca, kube)
    try:
        code, out = run_identity(ca, kube, port=first.port)
        assert code == 1, out
        assert "cannot listen on 127.0.0.1:%d (HTTPS)" % first.port in out
        assert post(first, ca, {"csr": csr_pem()})[0] == 200  # the first one is untouched
    finally:
        stop_identity(first)


def peer_leaf(port, ca_file, server_name):
    """The DER of the leaf weft-identity presents for SNI `server_name`
    (chain verified against ca_file, name not checked by the client)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            return s.getpeercert(binary_form=True)


def test_serving_certificate_names_the_service(identity, ca):
    """What the server presents: its --tls-cert leaf, with its chain (verified
    against the root alone), naming weft-identity.weft-system.svc and nothing a
    client might dial instead; the same whatever name the client sends."""
    own = x509.load_pem_x509_certificate((ca / "identity.crt").read_bytes())
    for sni in (SERVER_NAME, "evil.example"):
        der = peer_leaf(identity.port, ca / "ca.crt", sni)
        assert der == own.public_bytes(serialization.Encoding.DER), sni
    leaf = x509.load_der_x509_certificate(der)
    dns = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert SERVER_NAME in dns and "evil.example" not in dns
    assert ExtendedKeyUsageOID.SERVER_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # And a client that checks names accepts it for the service, refuses it for another.
    assert post(identity, ca, {"csr": csr_pem()})[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        Conn(identity.port, ca / "ca.crt", server_name="evil.example").request("POST", "/v1/certificates", body=b"{}")


def test_tls_1_1_refused(identity, ca):
    ctx = tls_context(ca / "ca.crt")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    s = socket.create_connection(("127.0.0.1", identity.port), timeout=5)
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(s, server_hostname=SERVER_NAME)
    s.close()


# ---------------------------------------------------------------- flags


def run_flags(*args):
    return subprocess.run([IDENTITY] + list(args), capture_output=True, text=True, timeout=10)


def test_help_and_version():
    p = run_flags("--help")
    assert p.returncode == 0 and "Usage: weft-identity" in p.stdout and "--cert-ttl" in p.stdout
    p = run_flags("--version")
    assert p.returncode == 0 and re.match(r"weft-identity \d", p.stdout)


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "Usage"),
    (["--cert-ttl", "8d"], "--cert-ttl 8d"),
    (["--cert-ttl", "soon"], "not a duration"),
    (["--clock-skew", "1h"], "--clock-skew"),
    (["--trust-domain", "Bad_Domain"], "trust domain"),
    (["--log-level", "loud"], "--log-level"),
    ([], "--tls-cert is required"),
    (["--tls-cert", "a", "--tls-key", "b", "--issuer-cert", "c"], "--issuer-key is required"),
    (["--tls-cert", "a", "--tls-key", "b", "--issuer-cert", "c", "--issuer-key", "d", "--kube-api", "h:1"],
     "--kube-ca"),
    (["extra-arg"], "unexpected argument"),
])
def test_bad_flags(args, needle):
    p = run_flags(*args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr


def test_not_in_cluster(tmp_path, ca):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    p = subprocess.run([IDENTITY, "--listen", "127.0.0.1:%d" % reserved_port(), "--metrics-listen",
                        "127.0.0.1:%d" % reserved_port(), "--tls-cert", str(ca / "identity.crt"), "--tls-key",
                        str(ca / "identity.key"), "--issuer-cert", str(ca / "intermediate.crt"), "--issuer-key",
                        str(ca / "intermediate.key")], capture_output=True, text=True, timeout=10, env=env)
    assert p.returncode == 1
    assert "not running in a Kubernetes cluster" in p.stderr
