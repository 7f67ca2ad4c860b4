# SPDX-License-Identifier: Apache-2.0
"""A small fake Kubernetes API server over HTTPS for Weft's integration tests.

It answers the way kube-apiserver does for what Weft asks of it: Namespaces
(GET /api/v1/namespaces/<name>) and TokenReviews (POST
/apis/authentication.k8s.io/v1/tokenreviews, 201 Created with the v1 shapes:
status.authenticated, status.user.{username,uid,groups,extra},
status.audiences, status.error), Status objects on errors, 401 for a missing
or unknown bearer token. Paths under /test/ misbehave on purpose (chunked,
slow, closed, garbage, huge, non-JSON) to test the client's limits.
fail_code answers every API path with that Status as kube-apiserver words it
(401 Unauthorized, 403 Forbidden, 500 InternalError, others
ServiceUnavailable); raw_answer answers them with bytes of our choosing (a
200 that is not JSON, as a proxy in front of the API might).

Collections (Services, Pods, Namespaces, EndpointSlices, HTTPRoutes,
GRPCRoutes, ReferenceGrants: RESOURCES) list and watch as kube-apiserver serves them: a list
is {"kind": "<Kind>List", "metadata": {"resourceVersion", "continue"},
"items": [...]} whose items carry no kind or apiVersion, paged with limit and
continue (an expired continue token is 410 Expired); a watch (?watch=true
&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T) is a 200 with
a chunked stream of one JSON event a line, from RV on, BOOKMARK events when
asked for, an ERROR event with a 410 Status when RV is older than the last
compaction (compact()) or when expire_watches() drops the open watches as a
watch cache does, and the terminating chunk when timeoutSeconds runs out.
put()/delete() write objects with a new resourceVersion each, as the API
server does; "" or "0" as resourceVersion starts a watch with a synthetic
ADDED of every object.

Used as a library (KubeFake) by the tests, or run alone for the benchmark:
    python3 kubefake.py --cert c.pem --key k.pem --config cfg.json
prints "port=<n>" once listening. Only stdlib.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENREVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"

# collection path -> (apiVersion, kind)
RESOURCES = {
    "/api/v1/services": ("v1", "Service"),
    "/api/v1/pods": ("v1", "Pod"),
    "/api/v1/namespaces": ("v1", "Namespace"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "/apis/gateway.networking.k8s.io/v1/httproutes": ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    "/apis/gateway.networking.k8s.io/v1/grpcroutes": ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    "/apis/gateway.networking.k8s.io/v1beta1/referencegrants": ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
}


def status_object(code, reason, message, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


# kube-apiserver's reason and message for the codes fail_code may be set to.
FAIL_STATUS = {
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", 'namespaces is forbidden: User "system:serviceaccount:weft-system:weft-webhook" cannot get '
                       'resource "namespaces" in API group "" at the cluster scope'),
    500: ("InternalError", "the server is currently unable to handle the request"),
}


class Review:
    """What the fake authenticator knows about one token."""

    def __init__(self, username=None, audiences=("weft-identity",), expired=False, uid="uid-1",
                 pod="pod-1"):
        self.username = username
        self.audiences = list(audiences)
        self.expired = expired
        self.uid = uid
        self.pod = pod


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubefake"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    # --- helpers -------------------------------------------------------
    def _send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _record(self, body):
        fake = self.server.fake
        with fake.lock:
            fake.requests.append({
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "host": self.headers.get("Host"),
                "body": body.decode(errors="replace"),
                "t": time.monotonic(),
            })

    def _authorized(self):
        fake = self.server.fake
        if fake.client_tokens is None:
            return True
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer ") and auth[7:] in fake.client_tokens:
            return True
        self._send_json(401, status_object(401, "Unauthorized", "Unauthorized"))
        return False

    # --- routes --------------------------------------------------------
    def do_GET(self):
        self._route(b"")

    def do_POST(self):
        self._route(self._read_body())

    def _route(self, body):
        self._record(body)
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        if path.startswith("/test/"):
            return self._test_route(path, body)
        if fake.delay:
            time.sleep(fake.delay)
        if fake.fail_code:
            reason, message = FAIL_STATUS.get(fake.fail_code, (
                "ServiceUnavailable", "the server is currently unable to handle the request"))
            return self._send_json(fake.fail_code, status_object(fake.fail_code, reason, message))
        if fake.raw_answer:
            code, content_type, data = fake.raw_answer
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if not self._authorized():
            return
        if self.command == "GET" and path in fake.absent:
            # What kube-apiserver answers for a resource no API group serves
            # (a CRD not installed): a plain-text 404, no Status object.
            data = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.command == "GET" and path in RESOURCES:
            return self._collection(path)
        if self.command == "GET" and path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            return self._namespace(path.rsplit("/", 1)[1])
        if self.command == "POST" and path == TOKENREVIEW_PATH:
            return self._tokenreview(body)
        self._send_json(404, status_object(404, "NotFound", "the server could not find the requested resource"))

    def _query(self):
        from urllib.parse import parse_qs
        q = parse_qs(self.path.split("?", 1)[1], keep_blank_values=True) if "?" in self.path else {}
        return {k: v[-1] for k, v in q.items()}

    def _collection(self, path):
        fake = self.server.fake
        q = self._query()
        if q.get("watch") in ("true", "1"):
            return self._watch(path, q)
        if fake.list_fail_code:
            code = fake.list_fail_code
            return self._send_json(code, status_object(code, "InternalError", "list failed (test)"))
        api_version, kind = RESOURCES[path]
        limit = int(q.get("limit") or 0)
        with fake.cond:
            if q.get("continue"):
                try:
                    tok = json.loads(base64.b64decode(q["continue"]))
                    rv, start = int(tok["rv"]), int(tok["start"])
                except (ValueError, KeyError, TypeError):
                    return self._send_json(400, status_object(400, "BadRequest", "continue key is not valid"))
                if rv <= fake.compacted_rv:
                    return self._send_json(410, status_object(
                        410, "Expired", "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter, or use the "
                        "continue token in this response to retrieve the remainder of the results."))
                snap = fake.snapshots.get(rv, [])
            else:
                rv, start = fake.rv, 0
                snap = [fake.objects[k] for k in sorted(fake.objects) if k[0] == path]
                fake.snapshots[rv] = snap
            page = snap[start:start + limit] if limit else snap[start:]
            meta = {"resourceVersion": str(rv)}
            if limit and start + limit < len(snap):
                meta["continue"] = base64.b64encode(json.dumps({"rv": rv, "start": start + limit}).encode()).decode()
            items = []
            for o in page:
                o = json.loads(json.dumps(o))
                o.pop("kind", None)
                o.pop("apiVersion", None)
                items.append(o)
        self._send_json(200, {"kind": kind + "List", "apiVersion": api_version, "metadata": meta, "items": items})

    def _chunk(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, path, q):
        fake = self.server.fake
        if fake.watch_fail_code:
            code = fake.watch_fail_code
            return self._send_json(code, status_object(code, "InternalError", "watch failed (test)"))
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = float(q.get("timeoutSeconds") or 1800)
        try:
            since = int(q.get("resourceVersion") or 0)
        except ValueError:
            return self._send_json(400, status_object(400, "BadRequest", "resourceVersion is not an integer"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        end = time.monotonic() + timeout
        with fake.cond:
            fake.watchers += 1
            my_epoch = fake.expire_epoch
            bm_seen = fake.bookmark_epoch
            end_epoch = fake.end_epoch
            if since == 0:
                pending = [("ADDED", fake.objects[k]) for k in sorted(fake.objects) if k[0] == path]
                pos = len(fake.history)
            elif since < fake.compacted_rv:
                pending, pos = None, 0
            else:
                pending = []
                pos = next((i for i, h in enumerate(fake.history) if h[0] > since), len(fake.history))
        try:
            if pending is None:
                self._chunk({"type": "ERROR", "object": status_object(
                    410, "Expired", "too old resource version: %d (%d)" % (since, fake.compacted_rv))})
                self.wfile.write(b"0\r\n\r\n")
                return
            for t, o in pending:
                self._chunk({"type": t, "object": o})
            while True:
                with fake.cond:
                    while (pos >= len(fake.history) and fake.expire_epoch == my_epoch and
                           fake.bookmark_epoch == bm_seen and fake.end_epoch == end_epoch and
                           not fake.stopping and time.monotonic() < end):
                        fake.cond.wait(0.05)
                    if fake.stopping:
                        return
                    if fake.expire_epoch != my_epoch:
                        self._chunk({"type": "ERROR", "object": status_object(
                            410, "Expired", "too old resource version: %d (%d)" % (since, fake.compacted_rv))})
                        break
                    new = [h for h in fake.history[pos:] if h[1] == path]
                    pos = len(fake.history)
                    bm = fake.bookmark_epoch != bm_seen
                    bm_seen = fake.bookmark_epoch
                    rv = fake.rv
                    raw = fake.raw_events.pop(path, None)
                for h in new:
                    self._chunk({"type": h[2], "object": h[3]})
                if raw is not None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
                    self.wfile.flush()
                if bm and bookmarks:
                    api_version, kind = RESOURCES[path]
                    self._chunk({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": str(rv),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}})
                if time.monotonic() >= end or fake.end_epoch != end_epoch:
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            with fake.cond:
                fake.watchers -= 1
            self.close_connection = True

    def _namespace(self, name):
        ns = self.server.fake.namespaces.get(name)
        if ns is None:
            return self._send_json(404, status_object(
                404, "NotFound", 'namespaces "%s" not found' % name, {"name": name, "kind": "namespaces"}))
        self._send_json(200, {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": name, "uid": "ns-uid-" + name, "resourceVersion": "1",
                         "labels": ns.get("labels", {}), "annotations": ns.get("annotations", {})},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        })

    def _tokenreview(self, body):
        try:
            req = json.loads(body)
        except ValueError as e:
            return self._send_json(400, status_object(400, "BadRequest", "the object provided is unrecognized: %s" % e))
        if not isinstance(req, dict) or req.get("kind") != "TokenReview" or \
                req.get("apiVersion") != "authentication.k8s.io/v1":
            return self._send_json(400, status_object(400, "BadRequest", "the object provided is unrecognized"))
        spec = req.get("spec") or {}
        token = spec.get("token") or ""
        wanted = spec.get("audiences") or []
        if not token:
            return self._send_json(422, status_object(
                422, "Invalid", 'TokenReview.authentication.k8s.io "" is invalid: spec.token: Required value'))
        review = self.server.fake.reviews.get(token)
        status = {"user": {}}
        if review is None:
            status["error"] = "[invalid bearer token, square/go-jose: error in cryptographic primitive]"
        elif review.expired:
            status["error"] = "[invalid bearer token, service account token has expired]"
        else:
            common = [a for a in review.audiences if a in wanted] if wanted else list(review.audiences)
            if not common:
                status["error"] = ("[invalid bearer token, token audiences %s is invalid for the target "
                                   "audiences %s]" % (json.dumps(review.audiences), json.dumps(wanted)))
            else:
                ns = review.username.split(":")[2] if review.username.count(":") >= 3 else ""
                status = {
                    "authenticated": True,
                    "user": {
                        "username": review.username,
                        "uid": review.uid,
                        "groups": ["system:serviceaccounts", "system:serviceaccounts:" + ns,
                                   "system:authenticated"],
                        "extra": {
                            "authentication.kubernetes.io/pod-name": [review.pod],
                            "authentication.kubernetes.io/pod-uid": ["pod-uid-" + review.pod],
                        },
                    },
                    "audiences": common,
                }
        self._send_json(201, {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        })

    def _test_route(self, path, body):
        w = self.wfile
        if path == "/test/echo":
            return self._send_json(200, {"method": self.command, "path": self.path,
                                         "authorization": self.headers.get("Authorization"),
                                         "host": self.headers.get("Host"),
                                         "contentType": self.headers.get("Content-Type"),
                                         "body": json.loads(body) if body else None})
        if path == "/test/chunked":
            data = json.dumps({"kind": "List", "items": list(range(2000))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 777):
                part = data[i:i + 777]
                w.write(b"%x\r\n%s\r\n" % (len(part), part))
            w.write(b"0\r\n\r\n")
            return
        if path == "/test/slow":
            time.sleep(3)
            return self._send_json(200, {})
        if path == "/test/close":
            self.close_connection = True
            return
        if path == "/test/garbage":
            w.write(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
            self.close_connection = True
            return
        if path == "/test/big":
            data = b'{"pad":"' + b"x" * (8 * 1024 * 1024) + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                w.write(data)
            except OSError:
                pass
            return
        if path == "/test/notjson":
            data = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            w.write(data)
            return
        if path == "/test/eofbody":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            w.write(b'{"eof":true}')
            self.close_connection = True
            return
        if path.startswith("/test/status/"):
            code = int(path.rsplit("/", 1)[1])
            return self._send_json(code, status_object(code, "Forbidden" if code == 403 else "Teapot",
                                                       "test status %d" % code))
        self._send_json(404, status_object(404, "NotFound", "no such test route"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, fake, ctx):
        self.fake = fake
        self.ctx = ctx
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return sock, addr

    def finish_request(self, request, client_address):
        # TLS handshake in the per-connection thread, not the accept loop.
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(self.fake.idle_timeout)
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self.fake.lock:
            self.fake.connections += 1
            self.fake.live.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            with self.fake.lock:
                self.fake.live.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):  # quiet on client resets
        pass


class KubeFake:
    """The fake API server. Configure the attributes before or while it runs."""

    def __init__(self, cert, key, host="127.0.0.1", port=0):
        self.lock = threading.Lock()
        self.requests = []
        self.namespaces = {}       # name -> {"labels": {...}, "annotations": {...}}
        self.reviews = {}          # bearer token under review -> Review
        self.client_tokens = None  # tokens the caller may use; None accepts any
        self.delay = 0.0           # seconds before answering API paths
        self.fail_code = 0         # answer API paths with this Status code
        self.raw_answer = None     # or with (code, content type, body bytes)
        self.idle_timeout = 10.0   # seconds a connection may sit idle
        self.connections = 0       # TLS handshakes completed
        self.live = set()          # connections being served
        # Collections (RESOURCES): (path, "ns/name" or "name") -> object, and
        # the event log (rv, path, type, object) watches replay from.
        self.cond = threading.Condition(self.lock)
        self.objects = {}
        self.history = []
        self.snapshots = {}        # list resourceVersion -> the objects, for continue tokens
        self.rv = 1000
        self.compacted_rv = 0      # watches from an older resourceVersion get 410
        self.expire_epoch = 0
        self.bookmark_epoch = 0
        self.end_epoch = 0
        self.raw_events = {}       # path -> bytes written once into its open watches as they are
        self.watchers = 0          # watch streams open
        self.stopping = False
        self.list_fail_code = 0    # answer lists (only) with this Status
        self.watch_fail_code = 0   # answer watches (only) with this Status
        self.absent = set()        # collection paths not served (their CRD not installed): 404
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        self.server = _Server((host, port), Handler, self, ctx)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def go_down(self):
        """Stops, and closes the connections that stop() leaves to finish,
        kept-alive ones included: nothing answers any more."""
        self.stop()
        with self.lock:
            live = list(self.live)
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- collections -------------------------------------------------
    @staticmethod
    def _key(obj):
        m = obj["metadata"]
        return "%s/%s" % (m["namespace"], m["name"]) if m.get("namespace") else m["name"]

    def put(self, path, obj):
        """Creates or updates obj in the collection at path: ADDED or MODIFIED."""
        api_version, kind = RESOURCES[path]
        obj = json.loads(json.dumps(obj))
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        with self.cond:
            key = (path, self._key(obj))
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            obj["metadata"].setdefault("uid", "uid-%s-%d" % (kind.lower(), self.rv))
            t = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = obj
            self.history.append((self.rv, path, t, obj))
            self.cond.notify_all()
            return self.rv

    def delete(self, path, key):
        with self.cond:
            obj = self.objects.pop((path, key), None)
            if obj is None:
                return None
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.history.append((self.rv, path, "DELETED", obj))
            self.cond.notify_all()
            return self.rv

    def uninstall(self, path):
        """As deleting a resource's CRD does: its objects are DELETED, its open
        watches end, and from then on it is not served (404) until
        self.absent.discard(path)."""
        with self.cond:
            keys = [k[1] for k in self.objects if k[0] == path]
        for key in keys:
            self.delete(path, key)
        with self.cond:
            self.absent.add(path)
            self.end_epoch += 1
            self.cond.notify_all()

    def compact(self):
        """Forgets history up to now, as etcd's compaction does: watches from
        an older resourceVersion and continue tokens taken before get 410."""
        with self.cond:
            self.compacted_rv = self.rv
            self.history = []
            self.snapshots = {}

    def expire_watches(self):
        """Compacts and sends every open watch a 410 ERROR event, then ends it."""
        with self.cond:
            self.compacted_rv = self.rv
            self.history = []
            self.snapshots = {}
            self.expire_epoch += 1
            self.cond.notify_all()

    def end_watches(self):
        """Ends every open watch with the terminating chunk, as timeoutSeconds does."""
        with self.cond:
            self.end_epoch += 1
            self.cond.notify_all()

    def bookmark(self):
        """A BOOKMARK at the current resourceVersion to every open watch that asked for them."""
        with self.cond:
            self.bookmark_epoch += 1
            self.cond.notify_all()

    def raw_event(self, path, data):
        """Writes data as it is into the open watches of path (a broken or huge event)."""
        with self.cond:
            self.raw_events[path] = data
            self.bookmark_epoch += 1
            self.cond.notify_all()

    def add_sa(self, token, ns, sa, **kw):
        self.reviews[token] = Review("system:serviceaccount:%s:%s" % (ns, sa), **kw)

    def tokenreviews(self):
        with self.lock:
            return [r for r in self.requests if r["path"] == TOKENREVIEW_PATH]


def make_tls(dirpath, names=("localhost",), ips=("127.0.0.1",)):
    """A CA and a server certificate for the fake (openssl CLI). Returns
    (ca_file, cert_file, key_file)."""
    ca_key = os.path.join(dirpath, "kube-ca.key")
    ca = os.path.join(dirpath, "kube-ca.crt")
    key = os.path.join(dirpath, "kube-server.key")
    csr = os.path.join(dirpath, "kube-server.csr")
    crt = os.path.join(dirpath, "kube-server.crt")
    ext = os.path.join(dirpath, "kube-server.ext")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=kubefake-ca")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver")
    san = ",".join(["DNS:" + n for n in names] + ["IP:" + i for i in ips])
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_c(src, out, part=None):
    """Compiles a test driver (C, one file) against the built libweft.a and,
    with part, that part's objects (all but main.o) and headers."""
    build = os.environ.get("WEFT_BUILD") or os.path.join(REPO, "build")
    objs = []
    if part:
        d = os.path.join(build, "obj", part)
        objs = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".o") and f != "main.o")
    pkgs = os.environ.get("WEFT_PKGS", "").split()  # the Makefile's PKGS: link what the parts link
    if not pkgs:
        raise RuntimeError("WEFT_PKGS is not set: run these tests with make integration")
    cflags = subprocess.run(["pkg-config", "--cflags"] + pkgs, check=True, capture_output=True,
                            text=True).stdout.split()
    libs = subprocess.run(["pkg-config", "--libs"] + pkgs, check=True, capture_output=True,
                          text=True).stdout.split()
    cmd = ["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Werror", "-I" + os.path.join(REPO, "lib")]
    if part:
        cmd.append("-I" + os.path.join(REPO, part))
    sanitizer = os.environ.get("WEFT_SANITIZER")  # set by make SANITIZER=...: link like the objects
    if sanitizer:
        cmd += ["-fsanitize=" + sanitizer, "-fno-sanitize-recover=all"]
    cmd += cflags + ["-o", out, src] + objs + [os.path.join(build, "libweft.a")] + libs + ["-lm", "-lpthread"]
    subprocess.run(cmd, check=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", help='JSON: {"reviews": {token: {"ns":..,"sa":..}}, "namespaces": {...}}')
    args = ap.parse_args()
    fake = KubeFake(args.cert, args.key, port=args.port)
    if args.config:
        with open(args.config) as f:
            cfg = json.load(f)
        for token, r in cfg.get("reviews", {}).items():
            fake.add_sa(token, r["ns"], r["sa"], audiences=r.get("audiences", ["weft-identity"]))
        fake.namespaces.update(cfg.get("namespaces", {}))
        if "client_tokens" in cfg:
            fake.client_tokens = set(cfg["client_tokens"])
    fake.requests = _Dropped()
    print("port=%d" % fake.port, flush=True)
    try:
        fake.server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


class _Dropped(list):
    """Standalone runs keep no request log (the benchmark sends many)."""

    def append(self, item):
        pass


if __name__ == "__main__":
    sys.exit(main())
