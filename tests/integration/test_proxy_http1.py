# SPDX-License-Identifier: Apache-2.0
"""weft-proxy's HTTP/1.1 data plane end to end: a pod (a network namespace
with the real weft-init rules and weft-proxy as uid 15100) calls an HTTP/1.1
origin outside the mesh (on the node's outside address), with curl and with
raw sockets, so the proxy terminates HTTP/1 on both sides. The origin is a
small threaded server written here so that every byte it receives and sends
is known: it counts its connections, records request heads and bodies, and
answers chunked, bodiless, slow, upgraded, tunnelled and broken responses.
Needs root; every namespace, process and socket is removed by the fixtures,
also on failure."""
import os
import re
import resource
import socket
import sys
import tempfile
import threading
import time

import pytest

import netns
import proxyenv as pe

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.access(pe.PROXY, os.X_OK), reason="weft-proxy not built"),
    pytest.mark.skipif(not os.access(pe.INIT, os.X_OK), reason="weft-init not built"),
]

EXT = netns.EXTERNAL4
PORT = 9080          # the origin
CLOSED = 9081        # nothing listens: refused
BLACKHOLE = "198.18.2.250"  # routed to the node, which does not forward: the connect times out
BIG = 32 << 20       # /big's body


def read_head(c, buf):
    """(head bytes, rest) or (None, buf) at EOF."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def read_exact(c, buf, n):
    while len(buf) < n:
        d = c.recv(65536)
        if not d:
            raise EOFError("short body")
        buf += d
    return buf[:n], buf[n:]


def read_line(c, buf):
    while b"\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            raise EOFError("short chunk line")
        buf += d
    line, rest = buf.split(b"\r\n", 1)
    return line, rest


def read_chunked(c, buf):
    """(body, trailer lines, rest)"""
    body = b""
    while True:
        line, buf = read_line(c, buf)
        n = int(line.split(b";")[0], 16)
        if n == 0:
            trailers = []
            while True:
                line, buf = read_line(c, buf)
                if not line:
                    return body, trailers, buf
                trailers.append(line)
        data, buf = read_exact(c, buf, n + 2)
        body += data[:-2]


def fields_of(head):
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        k, v = line.split(b":", 1)
        fields.setdefault(k.strip().lower().decode(), []).append(v.strip().decode())
    return lines[0].decode(), fields


class Origin:
    """The HTTP/1.1 server the pod calls. requests: (request line, fields,
    body, trailers) in arrival order; conns: connections accepted."""

    def __init__(self, net, where=None, addr=EXT):
        """where: the namespace to listen in (the node's by default)."""
        with netns.inside(where or net.node.netns):
            self.srv = socket.create_server((addr, PORT), backlog=64)
        self.srv.settimeout(0.2)
        self.conns = 0
        self.requests = []
        self.lock = threading.Lock()
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def close(self):
        self.stop = True
        self.t.join(5)
        self.srv.close()

    def _serve(self, c):
        c.settimeout(15)
        buf = b""
        try:
            with c:
                while True:
                    head, buf = read_head(c, buf)
                    if head is None:
                        return
                    line, f = fields_of(head)
                    method, target, _ = line.split(" ")
                    if f.get("expect") == ["100-continue"]:
                        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    trailers = []
                    if "content-length" in f:
                        body, buf = read_exact(c, buf, int(f["content-length"][0]))
                    elif f.get("transfer-encoding") == ["chunked"]:
                        body, trailers, buf = read_chunked(c, buf)
                    else:
                        body = b""
                    with self.lock:
                        self.requests.append((line, f, body, trailers))
                    if not self._answer(c, method, target, f, body, buf):
                        return
        except (OSError, EOFError):
            return

    def _answer(self, c, method, target, f, body, rest):
        path = target.split("?")[0]
        if method == "CONNECT" or path == "/ws":
            if method == "CONNECT":
                c.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            c.sendall(b"tunnel-open:" + rest)
            while True:
                d = c.recv(65536)
                if not d:
                    return False
                c.sendall(d)
        if path == "/echo":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif path == "/chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        elif path == "/head":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (b"" if method == "HEAD" else b"hello"))
        elif path == "/204":
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == "/304":
            c.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n")
        elif path == "/slowhead":
            time.sleep(1.5)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        elif path == "/slowbody":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
            time.sleep(1.5)
            c.sendall(b"later")
        elif path == "/big":
            n = BIG
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            piece = b"b" * (1 << 20)
            while n:
                k = min(n, len(piece))
                c.sendall(piece[:k])
                n -= k
        elif path == "/untilclose":
            c.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of it until the close")
            return False
        elif path == "/cgi":  # as busybox httpd answers for a CGI: its LF-only header lines, until the close
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\n\ndone\n")
            return False
        elif path == "/reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        elif path == "/garbage":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
            return False
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n"
                      b"Keep-Alive: timeout=5\r\n\r\nhello")
        return True


def read_response(s, buf=b"", head_request=False):
    """(status, fields, body, rest) of one response on s."""
    head, buf = read_head(s, buf)
    assert head is not None, f"closed before a response: {buf!r}"
    line, f = fields_of(head)
    status = int(line.split(" ")[1])
    if head_request or status in (204, 304) or 100 <= status < 200:
        return status, f, b"", buf
    if "content-length" in f:
        body, buf = read_exact(s, buf, int(f["content-length"][0]))
    elif f.get("transfer-encoding") == ["chunked"]:
        body, _, buf = read_chunked(s, buf)
    else:
        body = buf + pe.recv_all(s)
        buf = b""
    return status, f, body, buf


@pytest.fixture
def env():
    with tempfile.TemporaryDirectory(prefix="weft-http1-test-") as d, netns.Network() as net:
        origin = Origin(net)
        try:
            yield net, pe.CA(d), origin
        finally:
            origin.close()


def pod(net, ca, **env):
    return pe.MeshPod(net, "front", ca, "shop", "front", env={"WEFT_ACCESS_LOG": "1", **env})


def errors(p, cause):
    return p.metric(rf'http_upstream_errors_total\{{direction="outbound",cause="{cause}"\}}')


def test_keep_alive_reuses_one_upstream_connection_and_drops_hop_by_hop_fields(env):
    net, ca, origin = env
    a = pod(net, ca)
    r = a.pod.run(["curl", "-s", "-H", "Connection: x-secret", "-H", "X-Secret: s", "-H", "Keep-Alive: 1",
                   "-H", "Proxy-Connection: keep-alive", "-H", "TE: trailers", "-H", "X-End: kept",
                   "-w", "|%{num_connects}\n", f"http://{EXT}:{PORT}/a", f"http://{EXT}:{PORT}/b",
                   f"http://{EXT}:{PORT}/c"])
    assert r.stdout.split("\n")[:3] == ["hello|1", "hello|0", "hello|0"]
    assert origin.conns == 1  # three requests, one upstream connection
    assert [q[0] for q in origin.requests] == [f"GET /{p} HTTP/1.1" for p in "abc"]
    for _, f, _, _ in origin.requests:
        assert f["x-end"] == ["kept"] and f["host"] == [f"{EXT}:{PORT}"]
        for hop in ("connection", "x-secret", "keep-alive", "proxy-connection", "te"):
            assert hop not in f, hop
    # The response's hop-by-hop fields do not reach the client either.
    s = a.connect(EXT, PORT)
    s.sendall(f"GET /d HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    st, f, body, _ = read_response(s)
    s.close()
    assert (st, body) == (200, b"hello") and "x-hop" not in f and "keep-alive" not in f
    assert a.metric(r'protocol_detections_total\{direction="outbound",result="http1"\}') == 2
    # A new caller connection takes the idle upstream connection (pooled per worker).
    assert origin.conns == 1
    r = a.pod.run(["curl", "-s", f"http://{EXT}:{PORT}/e"])
    assert r.stdout == "hello" and origin.conns == 1
    # Not after HTTP_H1_CLIENT_IDLE_MS (4 s): then it is closed and a new one dialed.
    time.sleep(4.5)
    r = a.pod.run(["curl", "-s", f"http://{EXT}:{PORT}/f"])
    assert r.stdout == "hello" and origin.conns == 2
    # One the origin closes is never reused: the next request dials.
    r = a.pod.run(["curl", "-s", f"http://{EXT}:{PORT}/untilclose", f"http://{EXT}:{PORT}/g"])
    assert r.stdout == "all of it until the closehello" and origin.conns == 3


def test_pipelined_requests_are_answered_in_order(env):
    net, ca, origin = env
    a = pod(net, ca)
    s = a.connect(EXT, PORT)
    s.sendall((f"GET /slowhead HTTP/1.1\r\nHost: {EXT}\r\n\r\n" f"HEAD /head HTTP/1.1\r\nHost: {EXT}\r\n\r\n"
               f"GET /204 HTTP/1.1\r\nHost: {EXT}\r\n\r\n" f"GET /304 HTTP/1.1\r\nHost: {EXT}\r\n\r\n"
               f"GET /head HTTP/1.1\r\nHost: {EXT}\r\n\r\n").encode())
    st, _, body, rest = read_response(s)
    assert (st, body) == (200, b"late")
    st, f, body, rest = read_response(s, rest, head_request=True)
    assert (st, body, f["content-length"]) == (200, b"", ["5"])  # HEAD: the length, no body
    st, f, body, rest = read_response(s, rest)
    assert (st, body) == (204, b"") and "content-length" not in f and "transfer-encoding" not in f
    st, f, body, rest = read_response(s, rest)
    assert (st, body, f["etag"]) == (304, b"", ['"e"'])
    st, _, body, rest = read_response(s, rest)
    assert (st, body, rest) == (200, b"hello", b"")
    s.close()
    assert origin.conns == 1


def test_chunked_bodies_both_ways_with_trailers(env):
    net, ca, origin = env
    a = pod(net, ca)
    s = a.connect(EXT, PORT)
    s.sendall(f"POST /echo HTTP/1.1\r\nHost: {EXT}\r\nTransfer-Encoding: chunked\r\n\r\n"
              "4\r\nWeft\r\n3;ext=1\r\n rq\r\n0\r\nX-Sum: 7\r\n\r\n".encode())
    st, _, body, rest = read_response(s)
    assert (st, body) == (200, b"Weft rq")
    line, f, got, trailers = origin.requests[-1]
    assert f["transfer-encoding"] == ["chunked"] and got == b"Weft rq" and trailers == [b"X-Sum: 7"]
    s.sendall(f"GET /chunked HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    head, rest = read_head(s, rest)
    _, f = fields_of(head)
    assert f["transfer-encoding"] == ["chunked"] and "keep-alive" not in f
    body, trailers, rest = read_chunked(s, rest)
    assert body == b"hello world" and trailers == [b"X-Trailer: t"]
    s.close()
    # An HTTP/1.0 client cannot read chunks: the body ends with the connection.
    resp = pe.request(a.pod, EXT, PORT, b"GET /chunked HTTP/1.0\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in resp
    assert resp.endswith(b"\r\n\r\nhello world") and b"Transfer-Encoding" not in resp
    assert origin.requests[-1][1]["host"] == [f"{EXT}:{PORT}"]  # HTTP/1.1 upstream: Host from the destination
    # A response that runs until the upstream closes reaches an HTTP/1.1 client chunked.
    s = a.connect(EXT, PORT)
    s.sendall(f"GET /untilclose HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    st, f, body, _ = read_response(s)
    assert (st, body, f["transfer-encoding"]) == (200, b"all of it until the close", ["chunked"])
    s.close()


def test_expect_100_continue(env):
    net, ca, origin = env
    a = pod(net, ca)
    s = a.connect(EXT, PORT)
    s.sendall(f"POST /echo HTTP/1.1\r\nHost: {EXT}\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n".encode())
    st, _, _, rest = read_response(s)
    assert st == 100  # before any body byte was sent
    s.sendall(b"the body!")
    st, _, body, _ = read_response(s, rest)
    assert (st, body) == (200, b"the body!")
    s.close()
    # curl waits for the 100 (up to its 1 s) before sending: it came.
    t0 = time.monotonic()
    r = a.pod.run(["curl", "-s", "-H", "Expect: 100-continue", "--data-binary", "x" * 1000,
                   f"http://{EXT}:{PORT}/echo"])
    assert r.stdout == "x" * 1000 and time.monotonic() - t0 < 0.9


def test_upgrade_and_connect_continue_as_tcp(env):
    net, ca, origin = env
    a = pod(net, ca)
    s = a.connect(EXT, PORT)
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: {EXT}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".encode())
    head, rest = read_head(s, b"")
    line, f = fields_of(head)
    assert line.startswith("HTTP/1.1 101") and f["upgrade"] == ["websocket"]
    assert origin.requests[-1][1]["upgrade"] == ["websocket"]
    got = rest
    s.sendall(b"\x81\x04ping")
    while len(got) < len(b"tunnel-open:\x81\x04ping"):
        got += s.recv(100)
    assert got == b"tunnel-open:\x81\x04ping"
    s.close()
    s = a.connect(EXT, PORT)
    s.sendall(f"CONNECT {EXT}:{PORT} HTTP/1.1\r\nHost: {EXT}:{PORT}\r\n\r\n".encode())
    head, rest = read_head(s, b"")
    assert head.startswith(b"HTTP/1.1 200")
    assert origin.requests[-1][0] == f"CONNECT {EXT}:{PORT} HTTP/1.1"
    s.sendall(b"raw bytes")
    got = rest
    while len(got) < len(b"tunnel-open:raw bytes"):
        got += s.recv(100)
    assert got == b"tunnel-open:raw bytes"
    s.close()
    assert a.metric(r'connections_opened_total\{direction="outbound"') == 2


SMUGGLING = [
    ("CL and TE", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two CL", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("CL list", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    ("bad CL", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("TE not chunked last", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
    ("TE in 1.0", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("CONNECT target no Host may hold", b"CONNECT >>db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n", 400),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
]


def test_smuggling_attempts_are_refused_with_400_and_closed(env):
    net, ca, origin = env
    a = pod(net, ca)
    for name, req, status in SMUGGLING:
        resp = pe.request(a.pod, EXT, PORT, req)
        assert resp.startswith(b"HTTP/1.1 %d " % status), (name, resp[:100])
        assert b"Connection: close\r\n" in resp, name
        assert b"weft-proxy: bad_request: " in resp, name
    # None reached the origin. Only the last one's head went on (its error
    # is in the body): its dial was cut, before or just after the origin
    # accepted it.
    assert origin.requests == [] and origin.conns <= 1
    assert a.metric(r'http_bad_requests_total\{direction="outbound"\}') == len(SMUGGLING)
    # A request after a refused one on the same connection is never read.
    resp = pe.request(a.pod, EXT, PORT, SMUGGLING[0][1] + f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.count(b"HTTP/1.1 ") == 1 and origin.requests == []


def test_head_limits_at_the_limit_and_one_past(env):
    net, ca, origin = env
    a = pod(net, ca, WEFT_HTTP_MAX_HEAD_BYTES="2048", WEFT_HTTP_MAX_HEADERS="10")

    def ask(req):
        resp = pe.request(a.pod, EXT, PORT, req)
        return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else resp

    def with_fields(n):  # Host and n-1 others
        return f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n".encode() + b"".join(b"F%d: v\r\n" % i for i in range(n - 1)) + b"\r\n"

    assert ask(with_fields(10)) == 200
    assert ask(with_fields(11)) == 431

    def sized(n):  # a head of exactly n bytes, the padding in one field
        base = f"GET /x HTTP/1.1\r\nHost: {EXT}\r\nPad: \r\n\r\n".encode()
        return base.replace(b"Pad: ", b"Pad: " + b"p" * (n - len(base)))

    assert len(sized(2048)) == 2048
    assert ask(sized(2048)) == 200
    assert ask(sized(2049)) == 431
    line = b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert ask(line) == 414
    assert a.metric(r'http_bad_requests_total\{direction="outbound"\}') == 3
    assert len(origin.requests) == 2


def test_timeouts_are_answered_504_and_counted(env):
    net, ca, origin = env
    # The response-header clock includes the connect: it is set longer than
    # the connect timeout so that each cause shows on its own.
    a = pod(net, ca, WEFT_HTTP_RESPONSE_HEADER_TIMEOUT_MS="700", WEFT_CONNECT_TIMEOUT_MS="300",
            WEFT_HTTP_IDLE_TIMEOUT_MS="500")
    t0 = time.monotonic()
    resp = pe.request(a.pod, EXT, PORT, f"GET /slowhead HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    took = time.monotonic() - t0
    assert resp.startswith(b"HTTP/1.1 504 ") and b"weft-proxy: response_header_timeout" in resp
    assert 0.65 < took < 1.4
    assert errors(a, "response_header_timeout") == 1
    # The connect timeout, for a destination that never answers.
    t0 = time.monotonic()
    resp = pe.request(a.pod, BLACKHOLE, 80, b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 504 ") and b"weft-proxy: connect_timeout" in resp
    assert 0.25 < time.monotonic() - t0 < 3
    assert errors(a, "connect_timeout") == 1
    # The keep-alive idle timeout closes a quiet connection between requests.
    s = a.connect(EXT, PORT)
    s.sendall(f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert read_response(s)[:3:2] == (200, b"hello")
    t0 = time.monotonic()
    assert pe.recv_all(s) == b""
    assert 0.4 < time.monotonic() - t0 < 2
    s.close()
    # So does a head that never completes.
    s = a.connect(EXT, PORT)
    s.sendall(f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n".encode())
    t0 = time.monotonic()
    assert pe.recv_all(s) == b""
    assert 0.4 < time.monotonic() - t0 < 2
    s.close()
    b = pe.MeshPod(net, "front2", ca, "shop", "front", env={"WEFT_HTTP_REQUEST_TIMEOUT_MS": "400"})
    t0 = time.monotonic()
    resp = pe.request(b.pod, EXT, PORT, f"GET /slowhead HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 504 ") and b"weft-proxy: request_timeout" in resp
    assert 0.35 < time.monotonic() - t0 < 1.4
    # Past the response head the answer cannot change: the response is cut.
    resp = pe.request(b.pod, EXT, PORT, f"GET /slowbody HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 200 ") and resp.endswith(b"\r\n\r\nfirst")
    assert errors(b, "request_timeout") == 2


def test_failed_upstreams_are_answered_502_naming_the_cause(env):
    net, ca, origin = env
    a = pod(net, ca)
    with pytest.raises(ConnectionRefusedError), netns.inside(net.node.netns):
        socket.create_connection((EXT, CLOSED), timeout=2)
    resp = pe.request(a.pod, EXT, CLOSED, f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 502 ") and b"\r\n\r\nweft-proxy: refused: Connection refused\n" in resp
    assert errors(a, "refused") == 1
    resp = pe.request(a.pod, EXT, PORT, f"GET /reset HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 502 ") and b"weft-proxy: reset" in resp
    resp = pe.request(a.pod, EXT, PORT, f"GET /garbage HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 502 ") and b"weft-proxy: bad_response" in resp
    assert errors(a, "reset") == 1 and errors(a, "bad_response") == 1


ACCESS_KEYS = ["ts", "level", "msg", "direction", "method", "authority", "path", "status", "cause", "proxy_error",
               "headers_us", "total_us", "request_bytes", "response_bytes", "peer", "dst"]


def test_access_log_is_one_json_object_a_line_without_query_or_headers(env):
    net, ca, origin = env
    a = pod(net, ca)
    r = a.pod.run(["curl", "-s", "-H", "Authorization: Bearer sekrit-token", "-H", "Cookie: session=sekrit-cookie",
                   f"http://{EXT}:{PORT}/items/7?token=sekrit-query"])
    assert r.stdout == "hello"
    assert pe.wait_for(lambda: len(a.access_log()) == 1, 5)
    (e,) = a.access_log()
    assert list(e) == ACCESS_KEYS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"])
    assert type(e["headers_us"]) is int and type(e["total_us"]) is int and 0 <= e["headers_us"] <= e["total_us"]
    del e["ts"], e["headers_us"], e["total_us"]
    assert e == {"level": "info", "msg": "http request", "direction": "outbound", "method": "GET",
                 "authority": f"{EXT}:{PORT}", "path": "/items/7", "status": 200, "cause": "none",
                 "proxy_error": False, "request_bytes": 0, "response_bytes": 5, "peer": "", "dst": f"{EXT}:{PORT}"}
    assert "sekrit" not in a.log()
    # The proxy's own answer is logged as one too.
    resp = pe.request(a.pod, EXT, CLOSED, f"GET /gone?x=sekrit HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 502 ")
    assert pe.wait_for(lambda: len(a.access_log()) == 2, 5)
    e = a.access_log()[1]
    assert (e["path"], e["status"], e["cause"], e["proxy_error"], e["dst"]) == ("/gone", 502, "refused", True,
                                                                                f"{EXT}:{CLOSED}")
    assert (e["request_bytes"], e["response_bytes"]) == (0, 0)  # body bytes relayed; the proxy's own are not
    assert "sekrit" not in a.log()
    # Off by default.
    b = pe.MeshPod(net, "quiet", ca, "shop", "front")
    b.pod.run(["curl", "-s", f"http://{EXT}:{PORT}/x"])
    assert b.access_log() == [] and "http request" not in b.log()


def test_access_log_escapes_hostile_bytes_in_path_and_authority(env):
    """What lib/http1 lets through in a target ('"', '\\', braces) and in a
    Host (sub-delims, '%', brackets) cannot forge a field or break the line;
    bytes that are not UTF-8 (over HTTP/2, test_proxy_http2.py) become
    U+FFFD."""
    net, ca, origin = env
    a = pod(net, ca)
    path = '/x","status":999,"peer":"forged\\"}{%0a'
    host = "h'(!$&*+,;=%00)[::1]"
    resp = pe.request(a.pod, EXT, PORT, f"GET {path}?q=sekrit HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 200 "), resp
    assert pe.wait_for(lambda: len(a.access_log()) == 1, 5)
    (e,) = a.access_log()
    assert list(e) == ACCESS_KEYS
    assert (e["path"], e["authority"], e["status"], e["peer"]) == (path, host, 200, "")
    assert "sekrit" not in a.log()


def test_inbound_plaintext_under_permissive_is_terminated_too(env):
    net, ca, origin = env
    c = pe.MeshPod(net, "legacy", ca, "shop", "legacy",
                   env={"WEFT_MTLS_MODE": "PERMISSIVE", "WEFT_ACCESS_LOG": "1"})
    before = c.app_conns()
    r = net.node.run(["curl", "-s", "-w", "|%{num_connects}\n", f"http://{c.ip4}:8080/healthz",
                      f"http://{c.ip4}:8080/bytes/3"])
    assert r.stdout == "ok\n|1\nxxx|0\n"
    assert c.app_conns() == before + 1  # both requests on one connection to the app
    r = net.node.run(["curl", "-s", f"http://{c.ip4}:8080/healthz"])
    assert r.stdout == "ok\n" and c.app_conns() == before + 1  # a new caller, the same app connection
    assert pe.wait_for(lambda: len(c.access_log()) == 3, 5)
    assert [(e["direction"], e["path"], e["status"]) for e in c.access_log()] == [
        ("inbound", "/healthz", 200), ("inbound", "/bytes/3", 200), ("inbound", "/healthz", 200)]
    assert c.metric(r'protocol_detections_total\{direction="inbound",result="http1"\}') == 2


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_backpressure_keeps_memory_bounded_both_ways(env):
    net, ca, origin = env
    a = pod(net, ca)
    base = rss_kib(a.pid())
    s = a.connect(EXT, PORT, timeout=30)
    s.sendall(f"GET /big HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    time.sleep(1.5)  # the origin sends 32 MiB; nobody reads
    held = rss_kib(a.pid()) - base
    got = 0
    head, rest = read_head(s, b"")
    got = len(rest)
    while got < BIG:
        d = s.recv(1 << 20)
        assert d
        got += len(d)
    assert got == BIG
    # An upload the origin reads only after its head: the same bound.
    body = b"u" * BIG
    s.sendall(f"POST /echo HTTP/1.1\r\nHost: {EXT}\r\nContent-Length: {BIG}\r\n\r\n".encode() + body[: 1 << 20])
    s.sendall(body[1 << 20:])
    st, _, echoed, _ = read_response(s)
    s.close()
    assert st == 200 and echoed == body
    assert held < 4096, f"the proxy held {held} KiB of a response nobody read"


def test_draining_closes_idle_connections_and_finishes_requests_under_way(env):
    net, ca, origin = env
    a = pod(net, ca)
    idle = a.connect(EXT, PORT, timeout=10)
    idle.sendall(f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    st, f, body, _ = read_response(idle)
    assert (st, body) == (200, b"hello") and "connection" not in f
    busy = a.connect(EXT, PORT, timeout=10)
    busy.sendall(f"GET /slowhead HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
    assert pe.wait_for(lambda: len(origin.requests) == 2, 5)
    t0 = time.monotonic()
    a.proxy.send_signal(15)
    # Between requests: closed at once, nothing lost.
    assert pe.recv_all(idle) == b""
    assert time.monotonic() - t0 < 1
    idle.close()
    # Under way: answered, with Connection: close, then closed.
    st, f, body, rest = read_response(busy)
    assert (st, body, f["connection"]) == (200, b"late", ["close"])
    assert pe.recv_all(busy) == b""
    busy.close()
    log = a.stop_proxy(sig=None)
    assert 'msg="drained, exiting"' in log and "drain deadline reached" not in log
    assert time.monotonic() - t0 < 5


def test_1000_idle_keep_alive_callers_cost_little_memory_and_one_upstream(env):
    net, ca, origin = env
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    a = pod(net, ca)
    base = rss_kib(a.pid())
    socks = []
    try:
        for _ in range(1000):
            s = a.connect(EXT, PORT, timeout=10)
            socks.append(s)
            s.sendall(f"GET /x HTTP/1.1\r\nHost: {EXT}\r\n\r\n".encode())
            assert read_response(s)[:3:2] == (200, b"hello")
        held = rss_kib(a.pid()) - base
        # One after the other, so each new caller takes the one idle upstream connection.
        assert origin.conns == 1
        # Measured 3.0 MiB (7.3 -> 10.3 MiB); the budget is 48 MiB.
        assert held < 8 * 1024, f"1000 idle HTTP/1.1 connections hold {held} KiB"
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------- between two meshed pods: HTTP/1.1 over weft/h2 ----------

HS_CLIENT = r'tls_handshakes_total\{side="client",result="success"'
HS_SERVER = r'tls_handshakes_total\{side="server",result="success"'
INBOUND_REQS = r'^weft_proxy_http_requests_total\{direction="inbound"'
MESH_SKIP = r'protocol_detection_skipped_total\{direction="inbound",reason="mesh"\}'


class MeshPair:
    """front calls the Origin inside back (all addresses of the pod), each
    pod with its weft-proxy: an HTTP/1.1 client reaches an HTTP/1.1 server
    through both proxies, as a stream of the pooled weft/h2 connection."""

    def __init__(self, net, ca):
        self.net, self.ca = net, ca
        self.back = pe.MeshPod(net, "back", ca, "shop", "back")
        self.origin = Origin(net, where=self.back.pod.netns, addr="0.0.0.0")
        self.front = pe.MeshPod(net, "front", ca, "shop", "front")
        self.host = self.back.ip4
        self.url = f"http://{self.host}:{PORT}"

    def connect(self, pod=None):
        return (pod or self.front).connect(self.host, PORT, timeout=10)

    def curl(self, path, *args, pod=None, check=True):
        return (pod or self.front).pod.run(["curl", "-sS", "--max-time", "10", *args, self.url + path],
                                           check=check, timeout=20)


@pytest.fixture
def mesh_pair():
    with tempfile.TemporaryDirectory(prefix="weft-http1-mesh-") as d, netns.Network() as net:
        pair = MeshPair(net, pe.CA(d))
        try:
            yield pair
        finally:
            pair.origin.close()


HTTP_CLIENT = """
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
out = []
for path in ("/", "/chunked", "/echo"):
    body = b"abc" * 1000 if path == "/echo" else None
    c.request("POST" if body else "GET", path, body=body)
    r = c.getresponse()
    data = r.read()
    out.append("%d %s %d %s" % (r.status, path, len(data), r.getheader("Transfer-Encoding", "-")))
print(" | ".join(out))
"""


def test_meshed_http1_keep_alive_chunked_and_no_invented_trailers(mesh_pair):
    p = mesh_pair
    s = p.connect()
    try:
        s.sendall(b"GET /plain HTTP/1.1\r\nHost: back\r\n\r\n")
        st, f, body, rest = read_response(s)
        assert (st, body) == (200, b"hello")
        assert "x-hop" not in f and "keep-alive" not in f  # hop-by-hop fields stay behind, on both proxies
        assert "trailer" not in f
        s.sendall(b"GET /chunked HTTP/1.1\r\nHost: back\r\n\r\n")
        head, rest = read_head(s, rest)
        _, f = fields_of(head)
        assert f.get("transfer-encoding") == ["chunked"]
        body, trailers, rest = read_chunked(s, rest)
        # The origin's trailer, carried (lower case: HTTP/2 between the proxies).
        assert body == b"hello world" and trailers == [b"x-trailer: t"]
        # A chunked request with a trailer, and one without: the origin
        # gets exactly what was sent, no trailer invented.
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: back\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\nX-Req-Trailer: r\r\n\r\n")
        st, f, body, rest = read_response(s, rest)
        assert (st, body) == (200, b"abc")
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: back\r\nContent-Length: 4\r\n\r\nwxyz")
        st, f, body, rest = read_response(s, rest)
        assert (st, body) == (200, b"wxyz")
        assert rest == b""
    finally:
        s.close()
    reqs = p.origin.requests
    assert [r[0] for r in reqs] == ["GET /plain HTTP/1.1", "GET /chunked HTTP/1.1", "POST /echo HTTP/1.1",
                                    "POST /echo HTTP/1.1"]
    assert reqs[2][2] == b"abc" and reqs[2][3] == [b"x-req-trailer: r"]
    assert reqs[3][2] == b"wxyz" and reqs[3][3] == [] and reqs[3][1]["content-length"] == ["4"]
    assert all("weft-proto" not in r[1] for r in reqs)  # the proxies' own field stays between them
    assert p.front.metric(r'protocol_detections_total\{direction="outbound",result="http1"\}') == 1
    assert p.back.metric(MESH_SKIP) == 0  # weft/h2, not the opaque weft/1
    # curl and Python's http.client (keep-alive) through the pair.
    r = p.curl("/status", "-w", " %{http_code} %{http_version}")
    assert r.stdout == "hello 200 1.1"
    r = p.front.pod.run([sys.executable, "-c", HTTP_CLIENT, p.host, str(PORT)], timeout=30)
    assert r.stdout.strip() == "200 / 5 - | 200 /chunked 11 chunked | 200 /echo 3000 -"
    assert p.front.metric(HS_CLIENT) == 1 and p.back.metric(HS_SERVER) == 1  # one pooled connection throughout
    assert p.back.settled_metric(INBOUND_REQS, 8) == 8  # 4 + 1 + 3, each once
    # That connection, with the identity back's proxy presented; back's own pool to the app is h2c-free (HTTP/1.1).
    pool = 'weft_proxy_pool_connections_%s{direction="outbound",tls="true",peer="spiffe://cluster.local/ns/shop/sa/back"}'
    assert p.front.metric(re.escape(pool % "opened_total")) == 1
    assert p.front.metric(re.escape(pool % "open")) == 1
    assert p.back.metric(r"weft_proxy_pool_connections_opened_total\{") == 0


def test_meshed_http1_answer_with_lf_only_header_lines(mesh_pair):
    """An app that ends its response's header lines with a bare LF (busybox httpd's CGI answers) is answered
    through both proxies, re-written with CRLF (lib/http1 still refuses a bare LF in a request)."""
    p = mesh_pair
    s = p.connect()
    try:
        s.sendall(b"GET /cgi HTTP/1.1\r\nHost: back\r\n\r\n")
        st, f, body, _ = read_response(s)  # its head found by CRLF CRLF: re-written
    finally:
        s.close()
    assert (st, f.get("content-type"), body) == (200, ["text/plain"], b"done\n")
    r = p.curl("/cgi", "-w", " %{http_code}")
    assert r.stdout == "done\n 200"


def test_meshed_http1_new_connection_per_request_costs_one_proxy_handshake(mesh_pair):
    p = mesh_pair
    n = 50
    script = "for i in $(seq %d); do curl -sS --max-time 10 %s/n$i || exit 1; done" % (n, p.url)
    t0 = time.monotonic()
    out = p.front.pod.run(["sh", "-c", script], timeout=120).stdout
    took = time.monotonic() - t0
    assert out == "hello" * n
    assert p.front.metric(r'protocol_detections_total\{direction="outbound",result="http1"\}') == n
    assert p.front.metric(HS_CLIENT) == 1, "one weft/h2 handshake for 50 client connections"
    assert p.back.metric(HS_SERVER) == 1
    # The server proxy's inbound RED series count exactly what was sent.
    assert p.back.settled_metric(INBOUND_REQS, n) == n
    assert p.back.metric(r'^weft_proxy_http_responses_total\{direction="inbound",.*status="200"') == n
    assert p.front.settled_metric(r'^weft_proxy_http_requests_total\{direction="outbound"', n) == n
    assert p.origin.conns == 1, "the server proxy keeps its HTTP/1.1 connection to the app"
    print(f"{n} sequential HTTP/1.1 client connections in {took:.2f} s, 1 proxy-to-proxy handshake")


def test_meshed_upgrade_and_connect_fall_back_to_their_own_weft1_connection(mesh_pair):
    p = mesh_pair
    s = p.connect()
    try:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: back\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
        head, rest = read_head(s, b"")
        assert head.startswith(b"HTTP/1.1 101 "), head
        want = b"tunnel-open:early"
        while len(rest) < len(want):
            rest += s.recv(65536)
        assert rest == want
        for msg in (b"ping", b"\x00\xffbinary", b"x" * 100000):  # bytes after the 101, both ways
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(65536)
                assert d, "tunnel closed"
                got += d
            assert got == msg
    finally:
        s.close()
    line, f, _, _ = p.origin.requests[0]
    assert line == "GET /ws HTTP/1.1"
    assert f["upgrade"] == ["websocket"] and f["connection"] == ["upgrade"]
    assert p.back.metric(MESH_SKIP) == 1  # it came as opaque weft/1
    assert p.back.metric(INBOUND_REQS) == 0  # ... so the server proxy saw no HTTP request
    # A CONNECT, the same way.
    s = p.connect()
    try:
        s.sendall(b"CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n")
        head, rest = read_head(s, b"")
        assert head.startswith(b"HTTP/1.1 200 "), head
        while len(rest) < len(b"tunnel-open:"):
            rest += s.recv(65536)
        s.sendall(b"through")
        while len(rest) < len(b"tunnel-open:through"):
            rest += s.recv(65536)
        assert rest == b"tunnel-open:through"
    finally:
        s.close()
    assert p.back.metric(MESH_SKIP) == 2
    assert p.front.metric(HS_CLIENT) == 2  # one weft/1 connection each
    # An ordinary request still goes on weft/h2 (a third handshake, the pool's).
    assert p.curl("/after").stdout == "hello"
    assert p.front.metric(HS_CLIENT) == 3 and p.back.metric(MESH_SKIP) == 2
    assert p.back.settled_metric(INBOUND_REQS, 1) == 1


def test_meshed_denied_http1_caller_gets_403_per_request(mesh_pair):
    p = mesh_pair
    # same-namespace policy: a caller from another namespace is authorized
    # per connection as over weft/1, but an HTTP caller gets an answer.
    other = pe.MeshPod(p.net, "other", p.ca, "ops", "monitor")
    s = p.connect(other)
    try:
        for _ in range(2):  # per request, on one connection
            s.sendall(b"GET /secret HTTP/1.1\r\nHost: back\r\n\r\n")
            st, _, body, rest = read_response(s)
            assert st == 403
            assert body == (b"weft-proxy: denied: caller spiffe://cluster.local/ns/ops/sa/monitor not allowed: "
                            b"cross-namespace\n"), body
            assert rest == b""
    finally:
        s.close()
    assert p.origin.requests == [] and p.origin.conns == 0
    assert p.back.metric(r'connections_opened_total\{direction="inbound",tls="true",authz="denied"') == 1
    # Each denied request is in back's inbound RED series (and its access log), answered by the proxy: a 4xx,
    # so not a failure of back.
    denied = ('weft_proxy_http_responses_total{direction="inbound",peer="spiffe://cluster.local/ns/ops/sa/monitor",'
              'method="GET",status="403",grpc_status="",classification="success",origin="proxy"}')
    assert p.back.settled_metric(re.escape(denied), 2) == 2, p.back.metrics()
    assert p.back.metric(r'http_upstream_errors_total\{direction="inbound"') == 0  # not an upstream's failure
    # Opaque TCP (the echo port of back's app) is still cut: weft/1.
    s = other.connect(p.host, 7000, timeout=10)
    try:
        s.sendall(b"echo me\n")
        assert pe.recv_all(s) == b""
    finally:
        s.close()
    assert p.back.metric(r'connections_opened_total\{direction="inbound",tls="true",authz="denied"') == 2
