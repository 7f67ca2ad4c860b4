# SPDX-License-Identifier: Apache-2.0
"""A gRPC server (grpcio, the C core) with the standard health service
grpc.health.v1.Health/Check, for weft-proxy's gRPC probe tests.

usage: grpc_health_app.py PORT
Serves "" and "app" as SERVING and "down" as NOT_SERVING; any other service
is NOT_FOUND, as the reference health server answers. A line "SET <service>
<SERVING|NOT_SERVING>" on stdin changes a status. Prints "ready" once it
listens. The messages are encoded by hand (one field each), so no generated
code is needed.
"""
import sys
from concurrent import futures

import grpc

STATUS = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2}
statuses = {"": 1, "app": 1, "down": 2}


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def decode_request(data):
    """HealthCheckRequest: field 1, the service name."""
    service, i = "", 0
    while i < len(data):
        key, i = read_varint(data, i)
        if key & 7 != 2:
            raise ValueError("unexpected wire type")
        n, i = read_varint(data, i)
        if key >> 3 == 1:
            service = data[i:i + n].decode()
        i += n
    return service


def encode_response(status):
    return b"\x08" + varint(status) if status else b""


def check(service, context):
    if service not in statuses:
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    return statuses[service]


def main():
    port = int(sys.argv[1])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=decode_request, response_serializer=encode_response)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("0.0.0.0:%d" % port)
    server.start()
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "SET":
            statuses[parts[1]] = STATUS[parts[2]]
            print("ok", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
