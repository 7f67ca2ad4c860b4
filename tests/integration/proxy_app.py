# SPDX-License-Identifier: Apache-2.0
"""A small app for weft-proxy tests, run inside a pod namespace.

usage: proxy_app.py NAME PORT...  -- every port (IPv4 and IPv6) serves:
  "GET ..."  -> HTTP/1.1: /healthz 200, /fail 500, /bytes/N N bytes, other
                paths 200 "hello from NAME peer=<ip>:<port>" (/sleep/MS after MS
                milliseconds), keep-alive
  "WHO\\n"   -> one line "NAME <peer ip>" and close
  "SLOW N\\n" -> N bytes over about N/65536 * 0.1 s (a transfer to drain)
  else       -> echo until EOF
Prints "ready" once every port listens. With APP_LOG=<path> it appends
one line per accepted connection there.
"""
import os
import socket
import socketserver
import sys
import threading
import time

NAME = sys.argv[1]
LOG = os.environ.get("APP_LOG")  # one line per accepted connection, when set
_log_lock = threading.Lock()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.client_address[0]
        if LOG:
            with _log_lock, open(LOG, "a") as f:
                f.write(f"conn {peer}\n")
        first = s.recv(65536)
        if not first:
            return
        if first.startswith(b"WHO\n"):
            s.sendall(f"{NAME} {peer}\n".encode())
            return
        if first.startswith(b"SLOW "):
            n = int(first.split()[1])
            chunk = b"x" * 65536
            while n > 0:
                k = min(n, len(chunk))
                s.sendall(chunk[:k])
                n -= k
                time.sleep(0.1)
            return
        if first.startswith(b"GET "):
            return self.http(s, first, peer)
        while first:
            s.sendall(first)
            first = s.recv(65536)

    def http(self, s, data, peer):
        while True:
            while b"\r\n\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    return
                data += more
            head, _, data = data.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            status, body = 200, f"hello from {NAME} peer={peer}\n".encode()
            if path == "/healthz":
                body = b"ok\n"
            elif path == "/fail":
                status, body = 500, b"fail\n"
            elif path.startswith("/bytes/"):
                body = b"x" * int(path[7:])
            elif path.startswith("/sleep/"):
                time.sleep(int(path[7:]) / 1000)
            s.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body)
            if not data:
                data = s.recv(65536)
                if not data:
                    return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 2048


class Server6(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


servers = [Server(("0.0.0.0", int(p)), Handler) for p in sys.argv[2:]]
try:
    servers += [Server6(("::", int(p)), Handler) for p in sys.argv[2:]]
except OSError:
    pass  # no IPv6 in this namespace
for srv in servers[1:]:
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
