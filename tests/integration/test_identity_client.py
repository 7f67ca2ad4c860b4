# SPDX-License-Identifier: Apache-2.0
"""proxy/identity_client.c against the real weft-identity (fake API server for
TokenReview), with the proxy's real credential store: first certificate,
renewals every few seconds while a long-lived mTLS connection keeps working
and new handshakes present the newest certificate, server-name
verification, a CA that comes up late, a refused token."""
import json
import os
import re
import subprocess
import time

import pytest

import kubefake
from ports import reserved_port
from test_identity import make_ca, start_identity, stop_identity

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("idc")
    ca = make_ca(d / "ca")
    kca, crt, key = kubefake.make_tls(str(d))
    fake = kubefake.KubeFake(crt, key)
    fake.client_tokens = {"identity-sa-token"}
    (d / "kube-token").write_text("identity-sa-token\n")
    (d / "pod-token").write_text("pod-token\n")
    (d / "bad-token").write_text("forged\n")
    fake.add_sa("pod-token", "shop", "backend")
    fake.start()
    driver = kubefake.build_c(os.path.join(HERE, "idc_driver.c"), str(d / "idc_driver"), part="proxy")
    try:
        yield {"dir": d, "ca": ca, "kube": {"fake": fake, "ca": kca, "token": str(d / "kube-token")},
               "driver": driver}
    finally:
        fake.stop()


def run_driver(env, addr, seconds, step_ms=250, server_name="weft-identity.weft-system.svc", token="pod-token",
               ns="shop", sa="backend"):
    p = subprocess.run([env["driver"], addr, server_name, str(env["dir"] / token), str(env["ca"] / "ca.crt"), ns, sa,
                        str(seconds), str(step_ms)], capture_output=True, text=True, timeout=seconds + 30)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    assert lines[0] == {"start": 0}, lines[0]
    metrics = lines[-1]["metrics"]
    counts = {m.group(1): int(m.group(2))
              for m in re.finditer(r'weft_proxy_identity_renewals_total\{result="(\w+)"\} (\d+)', metrics)}
    return lines[1:-1], counts, p.stderr


def issued_serials(ident):
    ident.log.flush()
    with open(ident.log.name) as f:
        return re.findall(r"certificate issued\".*serial ([0-9A-F]+)", f.read())


def test_renewals_keep_connections_and_new_handshakes_get_newest(tmp_path, env):
    ident = start_identity(tmp_path, env["ca"], env["kube"], extra=["--cert-ttl", "6s", "--clock-skew", "0"])
    try:
        lines, counts, log = run_driver(env, "127.0.0.1:%d" % ident.port, seconds=14)
        serials = issued_serials(ident)
    finally:
        stop_identity(ident)
    ready = [x for x in lines if x["ready"]]
    assert ready and ready[0]["t"] <= 3000, lines[:5]  # the first certificate comes at once
    # 6 s certificates renewed at 3.0-4.2 s: at least 3 certificates in 14 s, and never expired.
    gens = sorted({x["gen"] for x in ready})
    assert len(gens) >= 3, (gens, log)
    assert all(x["ready"] for x in lines[lines.index(ready[0]):]), ("a certificate expired before its renewal",
                                                                    lines, log)
    assert counts["success"] >= 3 and counts["failure"] == 0, (counts, log)
    # The long-lived connection carried data after every renewal and kept its first certificate.
    assert all(x["long"] is True for x in ready), [x for x in ready if x["long"] is not True][:3]
    assert len({x["long_serial"] for x in ready}) == 1
    # New handshakes present the newest certificate: each serial seen is one weft-identity issued,
    # they follow the issue order, and after a renewal the new one appears.
    seen = [x["new_serial"] for x in ready]
    assert all(s in serials for s in seen), (seen, serials)
    order = [serials.index(s) for s in seen]
    assert order == sorted(order)
    assert len(set(seen)) >= 3
    assert ready[0]["long_serial"] == seen[0]
    assert "certificate installed" in log


def test_server_name_is_verified(tmp_path, env):
    ident = start_identity(tmp_path, env["ca"], env["kube"])
    try:
        lines, counts, log = run_driver(env, "127.0.0.1:%d" % ident.port, seconds=2, server_name="evil.example")
        issued = ident.metrics()["weft_identity_certificates_issued_total"]
    finally:
        stop_identity(ident)
    assert not any(x["ready"] for x in lines)
    assert counts["success"] == 0 and counts["failure"] >= 2
    assert "not verified" in log
    assert issued == 0  # the token never reached a server that could not prove its name


def test_identity_comes_up_late(tmp_path, env):
    port = reserved_port()  # held, not listening: the driver's dials are refused until weft-identity binds it
    p = subprocess.Popen([env["driver"], "127.0.0.1:%d" % port, "weft-identity.weft-system.svc",
                          str(env["dir"] / "pod-token"), str(env["ca"] / "ca.crt"), "shop", "backend", "12", "250"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ident = None
    try:
        time.sleep(2)
        ident = start_identity(tmp_path, env["ca"], env["kube"], port=port)
        out, err = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if ident:
            stop_identity(ident)
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    body = lines[1:-1]
    first_ready = next(x["t"] for x in body if x["ready"])
    assert first_ready >= 1500  # not before the CA existed
    # Backoff stays short while no certificate is held: 0.5, 1, 2 s (each
    # ±20 %), then 4 s; the retry at about 3.5 s or the one after it succeeds.
    retries = [int(ms) for ms in re.findall(r"retry_in_ms=(\d+)", err)]
    assert retries[:3] and all(ms <= 2400 for ms in retries[:3]), retries
    assert first_ready <= 9500
    counts = dict(re.findall(r'result="(\w+)"\} (\d+)', lines[-1]["metrics"]))
    assert int(counts["failure"]) >= 2 and int(counts["success"]) >= 1
    assert "no certificate yet from weft-identity" in err


def test_refused_token(tmp_path, env):
    ident = start_identity(tmp_path, env["ca"], env["kube"])
    try:
        lines, counts, log = run_driver(env, "127.0.0.1:%d" % ident.port, seconds=2, token="bad-token")
    finally:
        stop_identity(ident)
    assert not any(x["ready"] for x in lines)
    assert counts["failure"] >= 1 and counts["success"] == 0
    assert "401 token_invalid" in log
    assert "forged" not in log  # the token is never logged


def test_bad_address_fails_at_start(env):
    p = subprocess.run([env["driver"], "no-port", "x", "t", str(env["ca"] / "ca.crt"), "shop", "backend", "0", "100"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert json.loads(p.stdout.splitlines()[0])["start"] == -22
    assert "WEFT_IDENTITY_ADDR" in p.stderr


def test_bad_server_name_fails_at_start(env):
    p = subprocess.run([env["driver"], "127.0.0.1:1", "bad name!", "t", str(env["ca"] / "ca.crt"), "shop", "backend",
                        "0", "100"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert json.loads(p.stdout.splitlines()[0])["start"] == -22
    assert "WEFT_IDENTITY_SERVER_NAME" in p.stderr
