# SPDX-License-Identifier: Apache-2.0
"""Issue 5's rotation test with the real pieces: two meshed pods (network
namespaces, weft-init rules, weft-proxy as uid 15100 with WEFT_IDENTITY_ADDR)
get their certificates from weft-identity (running on the node, TokenReview
answered by the fake API server) with a lifetime of a few seconds. A
long-lived mTLS connection between them carries data across several
renewals, and each new handshake shows the newest certificate. Needs root."""
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

import kubefake
import netns
import proxyenv as pe
from procs import stop_cleanly
from test_identity import IDENTITY, make_ca

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not os.access(pe.INIT, os.X_OK), reason="weft-init not built"),
]

SHOP_BACK = "spiffe://cluster.local/ns/shop/sa/back"
TTL = 6  # seconds: renewals every 3.0-4.2 s


@pytest.fixture
def mesh():
    with tempfile.TemporaryDirectory(prefix="weft-idmesh-") as d, netns.Network() as net:
        os.chmod(d, 0o755)  # the proxies (uid 15100) read the bundle and their tokens
        ca = make_ca(pathlib.Path(d) / "mesh-ca")
        os.chmod(ca, 0o755)
        for name, text in (("kube-token", "identity-sa-token"), ("front-token", "tok-front"),
                           ("back-token", "tok-back")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text + "\n")
            os.chmod(os.path.join(d, name), 0o644)
        kca, kcrt, kkey = kubefake.make_tls(d)
        with net.node.inside():  # the fake API server listens on the node's loopback
            fake = kubefake.KubeFake(kcrt, kkey)
        fake.client_tokens = {"identity-sa-token"}
        fake.add_sa("tok-front", "shop", "front")
        fake.add_sa("tok-back", "shop", "back")
        fake.start()
        log_path = os.path.join(d, "identity.log")
        log = open(log_path, "w")
        ident = net.node.popen([IDENTITY, "--listen", f"{netns.NODE4}:8444", "--metrics-listen", "127.0.0.1:9090",
                                "--tls-cert", str(ca / "identity.crt"), "--tls-key", str(ca / "identity.key"),
                                "--issuer-cert", str(ca / "intermediate.crt"), "--issuer-key",
                                str(ca / "intermediate.key"), "--trust-bundle", str(ca / "ca.crt"),
                                "--kube-api", f"127.0.0.1:{fake.port}", "--kube-ca", kca,
                                "--kube-token", os.path.join(d, "kube-token"),
                                "--cert-ttl", f"{TTL}s", "--clock-skew", "0"], stdout=log, stderr=subprocess.STDOUT)
        try:
            assert pe.wait_for(lambda: _ready(net), timeout=30), open(log_path).read()
            yield net, d, ca, log_path
        finally:
            try:
                stop_cleanly(ident, log_path, timeout=30)  # exit 0, no sanitizer report
            finally:
                net.node.checked(ident)
                log.close()
                fake.stop()


def _ready(net):
    with net.node.inside():
        try:
            with urllib.request.urlopen("http://127.0.0.1:9090/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False


def identity_pod(net, d, ca, name, sa):
    """A meshed pod whose proxy has no static certificate, only weft-identity."""
    tca = pe.CA(d, name=f"unused-{name}")  # MeshPod wants one for its app log; never issues here
    return pe.MeshPod(net, name, tca, "shop", sa, cert=("", ""), env={
        "WEFT_CERT": "", "WEFT_KEY": "", "WEFT_TRUST_BUNDLE": str(ca / "ca.crt"),
        "WEFT_IDENTITY_ADDR": f"{netns.NODE4}:8444", "WEFT_TOKEN_FILE": os.path.join(d, f"{sa}-token"),
    })


def issued(log_path, sa):
    with open(log_path) as f:
        return re.findall(r'certificate issued" spiffe_id=spiffe://cluster.local/ns/shop/sa/%s .*serial ([0-9A-F]+)' % sa,
                          f.read())


def client_cert(net, ca, d):
    """A shop/front certificate straight from weft-identity, for a test client on the node."""
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                         check=True, capture_output=True, text=True).stdout
    kpath = os.path.join(d, "probe.key")
    with open(kpath, "w") as f:
        f.write(key)
    csr = subprocess.run(["openssl", "req", "-new", "-key", kpath, "-subj", "/", "-addext",
                          "subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/front"],
                         check=True, capture_output=True, text=True).stdout
    ctx = ssl.create_default_context(cafile=str(ca / "ca.crt"))
    with net.node.inside():
        raw = socket.create_connection((netns.NODE4, 8444), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="weft-identity.weft-system.svc") as s:
        body = json.dumps({"csr": csr, "ttlSeconds": 300}).encode()
        s.sendall(b"POST /v1/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-front\r\n"
                  b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        data = pe.recv_all(s)
    doc = json.loads(data.split(b"\r\n\r\n", 1)[1])
    cpath = os.path.join(d, "probe.crt")
    with open(cpath, "w") as f:
        f.write(doc["certificate"] + "".join(doc["chain"]))
    return cpath, kpath


def peer_serial(net, ca, host, port, cert, key):
    """The serial of the certificate a new mTLS handshake with the pod's proxy shows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca / "ca.crt"))
    ctx.check_hostname = False  # SPIFFE: no DNS name; the chain is verified
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["weft/1"])
    ctx.load_cert_chain(cert, key)
    with net.node.inside():
        raw = socket.create_connection((host, port), timeout=5)
    with ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    from cryptography import x509
    return "%X" % x509.load_der_x509_certificate(der).serial_number


def test_rotation_keeps_connections_and_new_handshakes_show_newest(mesh):
    net, d, ca, log_path = mesh
    a = identity_pod(net, d, ca, "front", "front")  # ready only once it holds a certificate
    b = identity_pod(net, d, ca, "back", "back")
    assert issued(log_path, "front") and issued(log_path, "back")

    long_conn = a.connect(b.ip4, 7000)
    long_conn.sendall(b"one")
    assert long_conn.recv(10) == b"one"
    cert, key = client_cert(net, ca, d)

    seen = []
    end = time.monotonic() + 3.5 * TTL
    i = 0
    while time.monotonic() < end:
        i += 1
        msg = b"msg-%d" % i
        long_conn.sendall(msg)
        assert long_conn.recv(64) == msg, "the long-lived connection broke at a renewal"
        assert pe.request(a.pod, b.ip4, 7000, b"WHO\n") == b"back 127.0.0.6\n"
        before = issued(log_path, "back")
        serial = peer_serial(net, ca, b.ip4, 7000, cert, key)
        after = issued(log_path, "back")
        # The newest at the time of the handshake. A renewal may land in
        # between, and weft-identity logs a certificate before the proxy has
        # received and installed it, so the one before the last logged counts too.
        assert serial in before[-2:] + after[-1:], (serial, before[-3:], after[-3:])
        seen.append(serial)
        time.sleep(0.7)

    backs = issued(log_path, "back")
    assert len(backs) >= 4, backs  # several renewals happened during the test
    assert len(set(seen)) >= 3, seen
    long_conn.sendall(b"last")
    assert long_conn.recv(10) == b"last"
    long_conn.close()
    assert a.admin("/ready")[0] == 200 and b.admin("/ready")[0] == 200
