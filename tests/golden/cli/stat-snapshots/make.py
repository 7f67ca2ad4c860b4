#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Derives the stat golden cases' snapshots from one-proxy.json, dumped by
weftctl stat pod --dump-snapshot from a real API server whose pod's status
points at a real weft-proxy in a network namespace (one mTLS connection
denied by policy). The variants copy that pod and change its proxy's
metrics text, owner and state as their names say. Run here."""
import copy
import json
import re

base = json.load(open("one-proxy.json"))
pod0 = base["pods"][0]
text0 = pod0["weftctlMetrics"]


def write(name, d):
    with open(name + ".json", "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def metrics(extra_lines=(), expiry=None):
    t = text0
    if expiry is not None:
        t = re.sub(r"^weft_proxy_certificate_expiry_timestamp_seconds .*$",
                   "weft_proxy_certificate_expiry_timestamp_seconds %d" % expiry, t, flags=re.M)
    return t + "".join(line + "\n" for line in extra_lines)


TRAFFIC = [
    'weft_proxy_connections_opened_total{direction="inbound",tls="true",authz="allowed",peer="spiffe://cluster.local/ns/front/sa/web"} 40',
    'weft_proxy_connections_opened_total{direction="outbound",tls="true",authz="none",peer="spiffe://cluster.local/ns/db/sa/pg"} 10',
    'weft_proxy_connections_opened_total{direction="outbound",tls="false",authz="none",peer="other"} 10',
    'weft_proxy_connections_open{direction="inbound",tls="true",authz="allowed",peer="spiffe://cluster.local/ns/front/sa/web"} 3',
    'weft_proxy_received_bytes_total{direction="inbound",tls="true",authz="allowed",peer="spiffe://cluster.local/ns/front/sa/web"} 1048576',
    'weft_proxy_sent_bytes_total{direction="inbound",tls="true",authz="allowed",peer="spiffe://cluster.local/ns/front/sa/web"} 5242880',
    'weft_proxy_inbound_refused_total{kind="plaintext"} 2',
]


def pod(name, owner=None, text=None, running=True, meshed=True):
    p = copy.deepcopy(pod0)
    p["metadata"]["name"] = name
    if owner:
        rs, h = owner
        p["metadata"]["labels"] = {"pod-template-hash": h}
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                             "controller": True, "uid": "x"}]
    if not meshed:
        del p["metadata"]["annotations"]["weft.dev/status"]
        p.pop("weftctlMetrics")
    elif not running:
        p["status"]["phase"] = "Pending"
        p["weftctlMetrics"] = None
    elif text is not None:
        p["weftctlMetrics"] = text
    return p


def snap(kind, pods):
    return {"kind": kind, "now": base["now"], "pods": pods}


web = ("web-5d8f7c9b4", "5d8f7c9b4")
pods = [
    pod("web-5d8f7c9b4-abcde", web, metrics(TRAFFIC)),
    pod("web-5d8f7c9b4-fghij", web, metrics(TRAFFIC, expiry=base["now"] + 1800)),
    pod("web-5d8f7c9b4-klmno", web, running=False),
    pod("db-0", None, metrics()),
    pod("legacy", None, meshed=False),
]
write("deploy", snap("deploy", pods))
write("namespace", snap("ns", pods))
write("pods", snap("pod", pods))
write("bad-metrics", snap("pod", [pod("web-0", None, "weft_proxy_ready 1\nthis is not prometheus {\n")]))
write("expired", snap("pod", [pod("old-0", None, metrics(expiry=base["now"] - 60))]))
forbidden = pod("app-0")
forbidden["weftctlMetrics"] = {"fetchError": 'HTTP 403: pods "app-0" is forbidden: User "jane" cannot get resource '
                                             '"pods/proxy" in API group "" in the namespace "cli-stat"'}
write("forbidden", snap("pod", [forbidden]))


# A later reading of the deploy snapshot, 10 s on: more connections and
# bytes on one pod, and the other pod's proxy restarted (its counters
# start again from zero).
def later(d):
    d["now"] = base["now"] + 10
    p0 = d["pods"][0]
    p0["weftctlMetrics"] = p0["weftctlMetrics"].replace("} 40\n", "} 60\n").replace("} 1048576\n", "} 2097152\n")
    d["pods"][1]["weftctlMetrics"] = metrics()


later_d = copy.deepcopy(json.load(open("deploy.json")))
later(later_d)
write("deploy-later", later_d)
