# SPDX-License-Identifier: Apache-2.0
"""Writes the benchmark cluster of issue 13 as manifests for
`weft-discovery serve --objects`: NS namespaces, PODS meshed running pods
(spread evenly), SVCS Services with one EndpointSlice of 10 of their
namespace's pods each, one HTTPRoute per Service, and ids.txt: every
Service's destination id. Service 0's EndpointSlice is alone in
25-bench-slice.json, the file the benchmark changes.
    python3 gen.py DIR NS PODS SVCS"""
import json
import os
import sys

out, ns_n, pods_n, svcs_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)


def ip(base, i):
    return "%d.%d.%d.%d" % (base, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def dump(name, items, per_file=500):
    """As Lists of at most per_file items: a manifest file may hold 1 MiB."""
    stem, ext = name.rsplit(".", 1)
    for k in range(0, max(1, len(items)), per_file):
        part = name if len(items) <= per_file else "%s-%03d.%s" % (stem, k // per_file, ext)
        with open(os.path.join(out, part), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items[k:k + per_file]}, f)


namespaces = ["ns-%d" % i for i in range(ns_n)]
dump("00-namespaces.json", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces])
pods, by_ns = [], {n: [] for n in namespaces}
for i in range(pods_n):
    n = namespaces[i % ns_n]
    name = "pod-%d" % i
    by_ns[n].append((name, ip(10, i + 1)))
    pods.append({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": name, "namespace": n, "labels": {"app": "app-%d" % (i % 7)},
                              "annotations": {"weft.dev/status": "{}"}},
                 "spec": {"serviceAccountName": "sa-%d" % (i % 3), "nodeName": "node-%d" % (i % 50)},
                 "status": {"phase": "Running", "podIP": ip(10, i + 1)}})
dump("30-pods.json", pods)
svcs, slices, routes, ids = [], [], [], []
for i in range(svcs_n):
    n = namespaces[i % ns_n]
    name = "svc-%d" % i
    cip = ip(11, i + 1)
    ids.append("destination:%s:80" % cip)
    svcs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": n},
                 "spec": {"type": "ClusterIP", "clusterIP": cip, "clusterIPs": [cip],
                          "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                                     "appProtocol": "http"}]}})
    members = by_ns[n][(i // ns_n) * 10 % max(1, len(by_ns[n])):][:10] or by_ns[n][:10]
    slices.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": name + "-abcde", "namespace": n,
                                "labels": {"kubernetes.io/service-name": name}},
                   "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                   "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                                  "terminating": False},
                                  "nodeName": "node-1", "targetRef": {"kind": "Pod", "namespace": n, "name": p}}
                                 for p, a in members]})
    routes.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": name, "namespace": n, "creationTimestamp": "2026-12-01T00:00:00Z"},
                   "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name, "port": 80}],
                            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                       "backendRefs": [{"name": name, "port": 80}]}]}})
dump("10-services.json", svcs)
dump("20-slices.json", slices[1:], 200)
dump("25-bench-slice.json", slices[:1])
dump("40-routes.json", routes)
with open(os.path.join(out, "ids.txt"), "w") as f:
    f.write("\n".join(ids) + "\n")
