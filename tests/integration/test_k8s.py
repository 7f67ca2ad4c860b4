# SPDX-License-Identifier: Apache-2.0
"""lib/k8s.c against a fake Kubernetes API server over real TLS: status codes,
JSON, Status objects, chunked bodies, keep-alive reuse, token rotation,
timeouts, limits, certificate verification, and many threads at once."""
import json
import os
import subprocess

import pytest

import kubefake
from ports import reserved_port

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("k8s")
    ca, crt, key = kubefake.make_tls(str(d))
    driver = kubefake.build_c(os.path.join(HERE, "k8s_driver.c"), str(d / "k8s_driver"))
    token = d / "token"
    token.write_text("client-token-1\n")
    fake = kubefake.KubeFake(crt, key).start()
    try:
        yield {"dir": d, "ca": ca, "driver": driver, "token": str(token), "fake": fake}
    finally:
        fake.stop()


@pytest.fixture
def fake(env):
    f = env["fake"]
    f.client_tokens = None
    f.delay = 0
    f.fail_code = 0
    f.namespaces.clear()
    f.reviews.clear()
    with f.lock:
        f.requests.clear()
    return f


def run(env, *args, host="127.0.0.1", port=None, ca=None, token=None, extra_env=None, timeout=30):
    e = dict(os.environ)
    e.update(extra_env or {})
    cmd = [env["driver"], host, str(port or env["fake"].port), ca or env["ca"], token or env["token"]] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return p.returncode, lines


def request(env, method, path, body=None, **kw):
    args = ["request", method, path] + ([json.dumps(body)] if body is not None else [])
    rc, lines = run(env, *args, **kw)
    assert rc == 0, lines
    assert len(lines) == 1
    return lines[0]


def test_get_namespace(env, fake):
    fake.namespaces["shop"] = {"labels": {"weft.dev/inject": "enabled"}, "annotations": {"weft.dev/x": "1"}}
    r = request(env, "GET", "/api/v1/namespaces/shop")
    assert r["rc"] == 0 and r["status"] == 200, r
    assert r["response"]["metadata"]["labels"] == {"weft.dev/inject": "enabled"}
    req = fake.requests[-1]
    assert req["authorization"] == "Bearer client-token-1"
    assert req["host"] == "127.0.0.1:%d" % fake.port


def test_not_found_status_object(env, fake):
    r = request(env, "GET", "/api/v1/namespaces/missing")
    assert r["rc"] == 0 and r["status"] == 404
    assert r["response"]["kind"] == "Status"
    assert r["err"] == 'HTTP 404: namespaces "missing" not found (reason NotFound)'


def test_unauthorized(env, fake):
    fake.client_tokens = {"other"}
    r = request(env, "GET", "/api/v1/namespaces/x")
    assert r["status"] == 401 and r["rc"] == 0
    assert "Unauthorized" in r["err"]


def test_post_tokenreview(env, fake):
    fake.add_sa("pod-token", "shop", "backend")
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "pod-token", "audiences": ["weft-identity"]}}
    r = request(env, "POST", kubefake.TOKENREVIEW_PATH, body)
    assert r["rc"] == 0 and r["status"] == 201, r
    st = r["response"]["status"]
    assert st["authenticated"] is True
    assert st["user"]["username"] == "system:serviceaccount:shop:backend"
    assert st["audiences"] == ["weft-identity"]
    assert json.loads(fake.tokenreviews()[-1]["body"]) == body


def test_echo_body_and_headers(env, fake):
    r = request(env, "POST", "/test/echo?x=1", {"a": [1, 2, {"b": "ü"}]})
    assert r["status"] == 200
    assert r["response"]["body"] == {"a": [1, 2, {"b": "ü"}]}
    assert r["response"]["contentType"] == "application/json"
    assert r["response"]["path"] == "/test/echo?x=1"


def test_no_token_file(env, fake):
    r = request(env, "GET", "/test/echo", token="-")
    assert r["response"]["authorization"] is None


def test_chunked_body(env, fake):
    r = request(env, "GET", "/test/chunked")
    assert r["status"] == 200
    assert r["response"]["items"] == list(range(2000))


def test_body_until_eof(env, fake):
    r = request(env, "GET", "/test/eofbody")
    assert r["status"] == 200 and r["response"] == {"eof": True}


def test_not_json_body(env, fake):
    r = request(env, "GET", "/test/notjson")
    assert r["rc"] == 0 and r["status"] == 404 and r.get("response") is None
    assert "not JSON" in r["err"]


def test_other_status(env, fake):
    r = request(env, "GET", "/test/status/403")
    assert r["status"] == 403 and r["err"] == "HTTP 403: test status 403 (reason Forbidden)"


def test_response_too_large(env, fake):
    r = request(env, "GET", "/test/big")
    assert r["rc"] == -27  # -EFBIG
    assert "larger than" in r["err"]
    r = request(env, "GET", "/test/echo", extra_env={"K8S_MAX_RESPONSE": "64"})
    assert r["rc"] == -27


def test_read_timeout(env, fake):
    r = request(env, "GET", "/test/slow", extra_env={"K8S_IO_MS": "500", "K8S_CONNECT_MS": "500"})
    assert r["rc"] == -110, r  # -ETIMEDOUT
    # The request itself, timed by the driver (not the process's start-up, slow under a sanitizer):
    # the 500 ms timeout, not the 3 s the server takes.
    assert 450 <= r["ms"] < 2500, r["ms"]


def test_closed_without_answer(env, fake):
    r = request(env, "GET", "/test/close")
    assert r["rc"] < 0 and r["status"] == 0
    assert "closed" in r["err"]


def test_not_http(env, fake):
    r = request(env, "GET", "/test/garbage")
    assert r["rc"] == -74, r  # -EBADMSG
    assert "malformed" in r["err"]


def test_connection_refused(env, fake):
    port = reserved_port()  # bound, never listening: refused, and taken by nothing else
    r = request(env, "GET", "/", port=port)
    assert r["rc"] == -111 and "refused" in r["err"].lower()  # -ECONNREFUSED


def test_unknown_host(env, fake):
    r = request(env, "GET", "/", host="no-such-host.invalid")
    assert r["rc"] < 0 and "resolve" in r["err"]


def test_wrong_ca_is_rejected(env, fake, tmp_path):
    other_ca, _, _ = kubefake.make_tls(str(tmp_path))
    r = request(env, "GET", "/api/v1/namespaces/x", ca=other_ca)
    assert r["rc"] == -71, r  # -EPROTO
    assert "not verified" in r["err"]
    assert not fake.requests


def test_wrong_name_is_rejected(env, fake, tmp_path):
    # Same CA, but the certificate names neither 127.0.0.1 nor localhost.
    d = env["dir"]
    key, csr, crt, ext = (str(tmp_path / n) for n in ("o.key", "o.csr", "o.crt", "o.ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:other.example,IP:127.0.0.9\n")
    for cmd in (["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=other"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", env["ca"], "-CAkey", str(d / "kube-ca.key"),
                 "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext]):
        subprocess.run(cmd, check=True, capture_output=True)
    other = kubefake.KubeFake(crt, key).start()
    try:
        for host in ("127.0.0.1", "localhost"):
            r = request(env, "GET", "/api/v1/namespaces/x", host=host, port=other.port)
            assert r["rc"] == -71, r
            assert "not verified" in r["err"]
        assert not other.requests
    finally:
        other.stop()


def test_server_name_override(env, fake):
    # Connect to the address, verify another name (a Service reached by IP).
    r = request(env, "GET", "/test/echo", extra_env={"K8S_SERVER_NAME": "localhost"})
    assert r["rc"] == 0 and r["status"] == 200, r
    assert r["response"]["host"] == "localhost:%d" % fake.port
    r = request(env, "GET", "/test/echo", extra_env={"K8S_SERVER_NAME": "weft-identity.weft-system.svc"})
    assert r["rc"] == -71 and "not verified" in r["err"], r


def test_dns_name_verified(env, fake):
    r = request(env, "GET", "/test/echo", host="localhost")
    assert r["rc"] == 0 and r["status"] == 200, r


def test_bad_path_refused_locally(env, fake):
    r = request(env, "GET", "no-slash")
    assert r["rc"] == -22  # -EINVAL
    assert not fake.requests


def test_keepalive_reuse(env, fake):
    before = fake.connections
    rc, lines = run(env, "repeat", "5", "0", "GET", "/test/echo")
    assert rc == 0 and [line["status"] for line in lines] == [200] * 5
    assert fake.connections - before == 1


def test_connection_closed_by_server_is_replaced(env, fake):
    # The server drops idle connections after 0.2 s; the pooled one must not be used.
    fake.idle_timeout = 0.2
    try:
        before = fake.connections
        rc, lines = run(env, "repeat", "3", "1500", "GET", "/test/echo")
        assert rc == 0 and [line["status"] for line in lines] == [200] * 3
        assert fake.connections - before == 3
    finally:
        fake.idle_timeout = 10.0


def test_body_until_eof_connection_not_reused(env, fake):
    before = fake.connections
    rc, lines = run(env, "repeat", "3", "0", "GET", "/test/eofbody")
    assert rc == 0 and [line["status"] for line in lines] == [200, 200, 200]
    assert fake.connections - before == 3


def replace_file(path, text):
    """As the kubelet swaps a projected token: never a half-written file."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_token_rotation(env, fake, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("first\n")
    fake.client_tokens = {"first", "second"}
    p = subprocess.Popen([env["driver"], "127.0.0.1", str(fake.port), env["ca"], str(tok), "repeat", "6", "400",
                          "GET", "/test/echo"], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, K8S_REFRESH_S="1"))
    try:
        first = p.stdout.readline()  # the token is changed only after the first request used it
        replace_file(tok, "second\n")
        out, _ = p.communicate(timeout=20)
        out = first + out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    seen = [json.loads(line)["response"]["authorization"] for line in out.splitlines()]
    assert seen[0] == "Bearer first"
    assert seen[-1] == "Bearer second"
    # Re-read at most once a second here: the first request after the change may still use the old one.
    assert seen.index("Bearer second") >= 1


def test_token_file_disappears_keeps_old_token(env, fake, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("first\n")
    p = subprocess.Popen([env["driver"], "127.0.0.1", str(fake.port), env["ca"], str(tok), "repeat", "3", "700",
                          "GET", "/test/echo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, K8S_REFRESH_S="1"))
    try:
        first = p.stdout.readline()
        tok.unlink()
        out, errout = p.communicate(timeout=20)
        out = first + out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    seen = [json.loads(line)["response"]["authorization"] for line in out.splitlines()]
    assert seen == ["Bearer first"] * 3
    assert "token not refreshed" in errout


def test_parallel_threads(env, fake):
    rc, lines = run(env, "parallel", "8", "25", "GET", "/test/echo", timeout=60)
    assert rc == 0 and lines == [{"ok": 200, "fail": 0}]


def test_missing_ca_fails_at_start(env, fake, tmp_path):
    rc, lines = run(env, "request", "GET", "/", ca=str(tmp_path / "nope.crt"))
    assert rc == 1 and "nope.crt" in lines[0]["new"]
