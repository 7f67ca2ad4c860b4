# SPDX-License-Identifier: Apache-2.0
"""Ports for the processes under test, kept reserved so nothing else takes
them between the choice and the process's bind.

reserved_port() binds port 0 with SO_REUSEADDR and never listens on it: the
kernel hands that port to no other bind(0) or connect while the socket lives,
yet a server that sets SO_REUSEADDR itself (all of Weft's do) can still bind
and listen on it, because a bound socket that is not listening does not
conflict. The holding socket stays open until the test process exits, so a
port is never chosen twice in one run.

    from ports import reserved_port
    port = reserved_port()               # 127.0.0.1
    port6 = reserved_port("::1")
"""
import socket

_held = []


def reserved_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    _held.append(s)
    return s.getsockname()[1]
