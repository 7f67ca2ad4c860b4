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


# ---------- list + watch (k8s_watch_run) ----------

import queue  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

PODS = "/api/v1/pods"


def pod(ns, name, **labels):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"serviceAccountName": "default", "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.1.0.1"}}


class Watch:
    """k8s_driver's watch mode: its lines, and its stats on demand."""

    def __init__(self, env, path, seconds=30, **envs):
        e = dict(os.environ)
        e.update({k: str(v) for k, v in envs.items()})
        self.p = subprocess.Popen([env["driver"], "127.0.0.1", str(env["fake"].port), env["ca"], env["token"],
                                   "watch", path, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=e)
        self.q = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def next(self, pred, timeout=10):
        """The next line that pred accepts; the lines before it are kept in seen."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if pred(line):
                return line
        raise AssertionError("not seen in %ss; got %s" % (timeout, self.seen[-20:]))

    def ev(self, kind, key=None, timeout=10):
        return self.next(lambda x: x.get("ev") == kind and (key is None or x.get("key") == key), timeout)

    def stats(self):
        self.p.stdin.write("s\n")
        self.p.stdin.flush()
        return self.next(lambda x: "stats" in x)["stats"]

    def connected(self, timeout=5):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.stats()
            if st["connected"]:
                return st
            time.sleep(0.02)
        raise AssertionError("watch not connected in %ss: %s" % (timeout, st))

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        while True:
            line = self.q.get(timeout=5)
            if line is None:
                break
            self.seen.append(line)


@pytest.fixture
def wfake(fake):
    with fake.cond:
        fake.objects.clear()
        fake.history.clear()
        fake.snapshots.clear()
        fake.compacted_rv = 0
        fake.list_fail_code = 0
        fake.watch_fail_code = 0
        fake.raw_events.clear()
    yield fake
    fake.list_fail_code = 0
    fake.watch_fail_code = 0
    fake.expire_watches()  # end what a failed test left open


def watch_requests(fake, watch):
    with fake.lock:
        return [r for r in fake.requests if r["path"].startswith(PODS) and ("watch=true" in r["path"]) == watch]


def test_watch_lists_in_pages_then_watches_from_the_list_version(env, wfake):
    for i in range(5):
        wfake.put(PODS, pod("shop", "p%d" % i))
    list_rv = str(wfake.rv)
    w = Watch(env, PODS, K8S_WATCH_PAGE=2)
    try:
        w.ev("RESET")
        synced = w.ev("SYNCED")
        added = [x for x in w.seen if x.get("ev") == "ADDED"]
        assert [x["key"] for x in added] == ["shop/p%d" % i for i in range(5)]
        assert all(x["kind"] == "Pod" for x in added)  # put back: list items come without kind
        assert synced["rv"] == list_rv
        lists = watch_requests(wfake, False)
        assert len(lists) == 3 and "limit=2" in lists[0]["path"] and "continue=" in lists[1]["path"]
        w.connected()
        watches = watch_requests(wfake, True)
        assert len(watches) == 1
        assert "resourceVersion=%s" % list_rv in watches[0]["path"]
        assert "allowWatchBookmarks=true" in watches[0]["path"]
        rv = wfake.put(PODS, pod("shop", "new"))
        assert w.ev("ADDED", "shop/new")["rv"] == str(rv)
        wfake.put(PODS, pod("shop", "new", app="x"))
        w.ev("MODIFIED", "shop/new")
        wfake.delete(PODS, "shop/p0")
        w.ev("DELETED", "shop/p0")
        wfake.bookmark()
        assert w.ev("BOOKMARK")["rv"] == str(wfake.rv)
        st = w.stats()
        assert st["connected"] == 1 and st["staleness"] == 0
        assert st["lists"] == 1 and st["events"] == 3 and st["bookmarks"] == 1 and st["errors"] == 0
    finally:
        w.close()
    assert w.seen[-1]["stop_ms"] < 1000


def test_watch_drops_managed_fields_from_listed_and_watched_objects(env, wfake):
    def managed(ns, name, **labels):
        p = pod(ns, name, **labels)
        p["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
        return p
    wfake.put(PODS, managed("shop", "b", app="db"))
    for drop, want in (("managedFields", False), ("otherField", True)):
        wfake.put(PODS, managed("shop", "a", app="web"))
        w = Watch(env, PODS, K8S_WATCH_PAGE=1, K8S_WATCH_DROP=drop)
        try:
            w.ev("SYNCED")
            added = [x for x in w.seen if x.get("ev") == "ADDED"]
            assert sorted((x["key"], x["managed"], x["labels"]["app"]) for x in added) == \
                [("shop/a", want, "web"), ("shop/b", want, "db")]
            w.connected()
            wfake.put(PODS, managed("shop", "a", app="web2"))
            ev = w.ev("MODIFIED", "shop/a")
            assert (ev["managed"], ev["labels"]) == (want, {"app": "web2"})
        finally:
            w.close()


def test_watch_410_error_event_lists_again_and_reconciles(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    wfake.put(PODS, pod("shop", "b"))
    w = Watch(env, PODS, K8S_WATCH_BACKOFF_MS=5000)
    try:
        w.ev("SYNCED")
        w.connected()
        # b goes while the watch is told its version is gone: only the new list can say so.
        wfake.expire_watches()
        wfake.delete(PODS, "shop/b")
        w.ev("RESET")
        w.ev("SYNCED")
        w.connected()
        last_reset = max(i for i, x in enumerate(w.seen) if x.get("ev") == "RESET")
        after = w.seen[last_reset:]
        assert [x["key"] for x in after if x.get("ev") == "ADDED"] == ["shop/a"]
        st = w.stats()
        # No backoff: a 410 lists again at once (the backoff here is 5 s).
        assert st["gone"] == 1 and st["lists"] == 2 and st["errors"] == 0 and st["connected"] == 1
    finally:
        w.close()


def test_watch_restart_from_compacted_version_gets_410_and_lists(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    w = Watch(env, PODS, K8S_WATCH_BACKOFF_MS=400, K8S_WATCH_BACKOFF_MAX_MS=400)
    try:
        w.ev("SYNCED")
        w.connected()
        # Away long enough for the version to be compacted: the restart from it gets 410.
        wfake.watch_fail_code = 500
        wfake.end_watches()
        wfake.put(PODS, pod("shop", "c"))
        wfake.put(PODS, pod("shop", "d"))
        wfake.compact()
        wfake.watch_fail_code = 0
        w.ev("RESET", timeout=5)
        w.ev("SYNCED")
        keys = [x["key"] for x in w.seen if x.get("ev") == "ADDED"]
        assert keys == ["shop/a", "shop/a", "shop/c", "shop/d"]
        st = w.connected()
        assert st["gone"] == 1 and st["lists"] == 2
        watches = watch_requests(wfake, True)
        assert "resourceVersion=%d" % (wfake.rv - 2) in watches[-2]["path"]
    finally:
        w.close()


def test_watch_ends_at_timeout_and_resumes_without_a_list(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    w = Watch(env, PODS, K8S_WATCH_TIMEOUT_S=1)
    try:
        w.ev("SYNCED")
        w.connected()
        time.sleep(4.5)  # two or more watches of 1-2 s each
        rv = wfake.put(PODS, pod("shop", "late"))
        assert w.ev("ADDED", "shop/late")["rv"] == str(rv)
        st = w.stats()
        assert st["watches"] >= 3 and st["lists"] == 1 and st["errors"] == 0
        watches = watch_requests(wfake, True)
        assert all("timeoutSeconds=1" in r["path"] for r in watches)
    finally:
        w.close()


def test_list_errors_back_off_exponentially_with_jitter(env, wfake):
    wfake.list_fail_code = 500
    w = Watch(env, PODS, K8S_WATCH_BACKOFF_MS=100, K8S_WATCH_BACKOFF_MAX_MS=800)
    try:
        time.sleep(4.0)
        lists = watch_requests(wfake, False)
        gaps = [(b["t"] - a["t"]) * 1000 for a, b in zip(lists, lists[1:])]
        # delay k is drawn from [d/2, d] with d = 100, 200, 400, 800, 800...; the
        # request itself adds a few ms.
        bounds = [100, 200, 400, 800, 800, 800, 800]
        assert len(gaps) >= 4, gaps
        for g, d in zip(gaps, bounds):
            assert d / 2 - 5 <= g <= d + 150, (gaps, d)
        assert len(set(round(g) for g in gaps[3:])) > 1 or len(gaps) < 5, gaps  # jittered, not in step
        st = w.stats()
        assert st["errors"] == len(lists) and st["lists"] == 0 and st["connected"] == 0
        assert st["staleness"] >= 3.5
        assert "HTTP 500" in st["last_error"]
        wfake.list_fail_code = 0
        w.ev("SYNCED", timeout=3)
        assert w.connected()["staleness"] == 0
    finally:
        w.close()


def test_watch_errors_back_off_and_resume_from_the_last_version(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    w = Watch(env, PODS, K8S_WATCH_BACKOFF_MS=200, K8S_WATCH_BACKOFF_MAX_MS=400)
    try:
        w.ev("SYNCED")
        w.connected()
        wfake.watch_fail_code = 500
        wfake.raw_event(PODS, b"this is not JSON\n")  # the open watch breaks; its successors get 500
        time.sleep(1.0)
        st = w.stats()
        assert st["errors"] >= 2 and st["connected"] == 0 and st["staleness"] > 0.5
        assert st["lists"] == 1  # no list: the resourceVersion is still good
        wfake.watch_fail_code = 0
        rv = wfake.put(PODS, pod("shop", "b"))
        assert w.ev("ADDED", "shop/b", timeout=3)["rv"] == str(rv)
        st = w.stats()
        assert st["lists"] == 1 and st["connected"] == 1 and st["staleness"] == 0
    finally:
        w.close()


def event_of_size(n, rv):
    """A MODIFIED event line of exactly n bytes (the newline not counted)."""
    head = '{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"shop",' \
           '"name":"big","resourceVersion":"%d","annotations":{"pad":"' % rv
    tail = '"}}}}'
    pad = n - len(head) - len(tail)
    assert pad > 0
    return (head + "x" * pad + tail).encode()


def test_watch_event_size_limit_at_and_one_past(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    w = Watch(env, PODS, K8S_WATCH_MAX_EVENT=4096, K8S_WATCH_BACKOFF_MS=2000)
    try:
        w.ev("SYNCED")
        w.connected()
        wfake.raw_event(PODS, event_of_size(4096, 5000) + b"\n")
        assert w.ev("MODIFIED", "shop/big")["rv"] == "5000"
        wfake.raw_event(PODS, event_of_size(4097, 5001) + b"\n")
        time.sleep(0.5)
        st = w.stats()
        assert st["oversize"] == 1 and st["errors"] == 1 and st["connected"] == 0
        assert "4097 bytes, over the 4096-byte limit" in st["last_error"]
        assert not [x for x in w.seen if x.get("rv") == "5001"]
    finally:
        w.close()


def test_watch_partial_event_over_the_limit_is_refused(env, wfake):
    wfake.put(PODS, pod("shop", "a"))
    w = Watch(env, PODS, K8S_WATCH_MAX_EVENT=4096, K8S_WATCH_BACKOFF_MS=2000)
    try:
        w.ev("SYNCED")
        w.connected()
        wfake.raw_event(PODS, b'{"type":"MODIFIED","object":{"pad":"' + b"y" * 40000)  # never ends
        time.sleep(0.5)
        st = w.stats()
        assert st["oversize"] == 1 and st["errors"] == 1
    finally:
        w.close()


def test_watch_stops_promptly_while_backing_off(env, wfake):
    wfake.list_fail_code = 503
    w = Watch(env, PODS, K8S_WATCH_BACKOFF_MS=20000)
    try:
        time.sleep(0.5)
    finally:
        w.close()
    assert w.seen[-1]["stop_ms"] < 1000
