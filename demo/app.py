#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Weft's demo app, the program behind the demo's app image: an HTTP echo
server and a one-shot HTTP client. Python 3 stdlib only.

    app.py serve --port 8080      answers GET /healthz with "ok", GET
                                  /status/<code> (200-599) with that status, and
                                  any other GET with 200 and JSON naming this pod
                                  (from POD_NAME, POD_NAMESPACE) and what it
                                  received
    app.py get URL [--timeout S] [--count N]
                                  prints the answer's status line and body;
                                  exit 0 on an HTTP answer, 1 on a refused,
                                  reset or closed connection (with the reason);
                                  N requests (HTTP/1.1), each on a new connection
    app.py idle                   sleeps until terminated (a client pod's
                                  main container; the demo execs `get` in it)
"""
import argparse
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "weft-demo-echo"
    sys_version = ""
    # Buffered, so head and body leave in one write when the handler returns: written apart (the
    # default), the body waits for the ACK of the head (Nagle), which the reader delays ~40 ms.
    wbufsize = -1

    def log_message(self, fmt, *args):
        sys.stderr.write("echo: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        status = 200
        code = self.path[len("/status/"):] if self.path.startswith("/status/") else ""
        if self.path == "/healthz":
            body = b"ok\n"
            ctype = "text/plain"
        elif self.path.startswith("/status/"):
            # A chosen status, so the demo's success rate has failures it made and can count.
            if code.isdigit() and len(code) == 3 and 200 <= int(code) <= 599:
                status = int(code)
                body = b"status %d\n" % status
            else:
                status = 400
                body = ("expected /status/<code>, a code from 200 to 599, not %r\n" % code).encode()
            ctype = "text/plain"
        else:
            body = (json.dumps({
                "pod": "%s/%s" % (os.environ.get("POD_NAMESPACE", "?"), os.environ.get("POD_NAME", "?")),
                "path": self.path,
                "from": self.client_address[0],
                "uid": os.getuid(),
            }) + "\n").encode()
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(port):
    srv = ThreadingHTTPServer(("0.0.0.0", port), Echo)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write("echo: listening on 0.0.0.0:%d as uid %d\n" % (port, os.getuid()))
    sys.stderr.flush()
    srv.serve_forever(poll_interval=0.2)


def get(url, timeout, count=1):
    rc = 0
    for _ in range(count):
        rc |= get_one(url, timeout)
    return rc


def get_one(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            print("HTTP %d %s" % (r.status, r.read().decode(errors="replace").strip()))
            return 0
    except urllib.error.HTTPError as e:
        print("HTTP %d %s" % (e.code, e.read().decode(errors="replace").strip()))
        return 0
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, (ConnectionResetError, ConnectionAbortedError)) or \
                isinstance(reason, (ConnectionResetError, ConnectionAbortedError)):
            print("failed: connection reset")
        elif "Remote end closed" in str(e):
            print("failed: connection closed without an answer")
        elif isinstance(reason, socket.timeout) or "timed out" in str(reason):
            print("failed: timed out")
        else:
            print("failed: %s" % reason)
        return 1


def count_arg(text):
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError("%r is not a whole number from 1 to 100" % text)
    return int(text)


def main():
    ap = argparse.ArgumentParser(description="Weft demo app")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=8080)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--timeout", type=float, default=5.0)
    g.add_argument("--count", type=count_arg, default=1, metavar="1..100", help="requests, one connection each")
    sub.add_parser("idle")
    a = ap.parse_args()
    if a.cmd == "serve":
        return serve(a.port)
    if a.cmd == "get":
        return get(a.url, a.timeout, a.count)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
