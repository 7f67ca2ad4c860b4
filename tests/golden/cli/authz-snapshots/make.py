#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Derives the authz golden cases' snapshots from the ones dumped from a real
cluster (weftctl authz why --dump-snapshot, managedFields stripped): Service
shop/api (port 8080 -> 80, two meshed pods injected before namespace shop
got weft.dev/allow-from: front/web), callers front/web, front/other,
shop/other (front is opted in), outside/x (not opted in) and nowhere/x (no
such namespace). Each variant changes what its name says. Run here."""
import copy
import json

base = json.load(open("front-web.json"))


def write(name, d):
    with open(name + ".json", "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def proxy(pod):
    for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        if c["name"] == "weft-proxy":
            return c


def set_env(pod, name, value):
    for e in proxy(pod)["env"]:
        if e["name"] == name:
            e["value"] = value


def variant(name, fn, src=base):
    d = copy.deepcopy(src)
    fn(d)
    write(name, d)


def reinjected(d):  # the pods' proxies carry the namespace's allow-from, as after a restart
    for p in d["pods"]:
        set_env(p, "WEFT_ALLOW_FROM", "front/web")


def with_ips(d, ip="10.4.0.7"):
    for i, p in enumerate(d["pods"]):
        p["status"]["podIP"] = ip[:-1] + str(int(ip[-1]) + i)


def ns_ann(d, key, value):
    d["namespace"]["metadata"].setdefault("annotations", {})["weft.dev/" + key] = value


def pod_ann(p, key, value):
    p["metadata"].setdefault("annotations", {})["weft.dev/" + key] = value


variant("allowed", lambda d: (reinjected(d), with_ips(d)))


def other_caller(name):
    def f(d):
        reinjected(d)
        with_ips(d)
        ns, sa = name.split("/")
        d["from"] = name
        src = json.load(open(ns + "-" + sa + ".json"))
        d["callerNamespace"] = src["callerNamespace"]
    return f


variant("cross-namespace", other_caller("front/other"))
variant("same-namespace", other_caller("shop/other"))
variant("plaintext-strict", other_caller("outside/x"))
variant("caller-namespace-missing", other_caller("nowhere/x"))


def permissive(d):
    other_caller("outside/x")(d)
    ns_ann(d, "mtls-mode", "PERMISSIVE")
    for p in d["pods"]:
        set_env(p, "WEFT_MTLS_MODE", "PERMISSIVE")


variant("plaintext-permissive", permissive)


def outside_mesh_networks(d):
    reinjected(d)
    with_ips(d, "192.168.9.1")


variant("outside-mesh-networks", outside_mesh_networks)


def skip_port(d):
    reinjected(d)
    with_ips(d)
    other_caller("outside/x")(d)
    pod_ann(d["pods"][0], "skip-inbound-ports", "80,9090")


variant("skip-inbound-port", skip_port)


def one_unmeshed(d):
    reinjected(d)
    with_ips(d)
    other_caller("front/other")(d)
    del d["pods"][1]["metadata"]["annotations"]["weft.dev/status"]


variant("pod-not-meshed", one_unmeshed)


def policy(value):
    def f(d):
        other_caller("front/other")(d)
        ns_ann(d, "inbound-policy", value)
        for p in d["pods"]:
            set_env(p, "WEFT_INBOUND_POLICY", value)
    return f


variant("policy-mesh", policy("mesh"))
variant("policy-deny", policy("deny"))
variant("policy-allow-all", policy("allow-all"))


def wildcard(d):
    other_caller("front/other")(d)
    ns_ann(d, "allow-from", "front/*")
    for p in d["pods"]:
        set_env(p, "WEFT_ALLOW_FROM", "front/*")


variant("allow-from-wildcard", wildcard)


def bad_annotation(d):
    reinjected(d)
    with_ips(d)
    pod_ann(d["pods"][0], "inbound-policy", "everyone")


variant("bad-annotation", bad_annotation)


def named_port(d):
    reinjected(d)
    with_ips(d)
    d["service"]["spec"]["ports"][0]["targetPort"] = "web"
    d["service"]["spec"]["ports"][0]["name"] = "http"
    for p in d["pods"]:
        p["spec"]["containers"][-1]["ports"] = [{"name": "web", "containerPort": 8081}]


variant("named-port", named_port)
variant("no-pods", lambda d: d.update(pods=[]))
variant("no-mesh", lambda d: d.pop("mesh"))
variant("no-such-port", lambda d: d.update(port="9999"))
