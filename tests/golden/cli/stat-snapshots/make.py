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

# Per-request metrics (docs/proxy.md "Per-request metrics"), in weft-proxy's
# rendering: requests_total by peer, responses_total by classification and
# the request_duration histogram with its 14 fixed bounds.
BOUNDS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
          "10", "+Inf"]


def http(peer, method, status, n, per_bucket, failure=False, origin="upstream", direction="inbound"):
    """Lines of one label set: n requests, per_bucket {bound: count} (not
    cumulative; what is not given is 0)."""
    who = ('peer="%s"' % peer) if direction == "inbound" else ('dst="%s"' % peer)
    route = 'direction="%s",%s,method="%s"' % (direction, who, method)
    resp = route + ',status="%s",grpc_status="",classification="%s",origin="%s"' % (
        status, "failure" if failure else "success", origin)
    lines = ["weft_proxy_http_requests_total{%s} %d" % (route, n)]
    if status == "overflow":
        resp = route + ',status="overflow",grpc_status="overflow",classification="%s",origin="%s"' % (
            "failure" if failure else "success", origin)
    lines.append("weft_proxy_http_responses_total{%s} %d" % (resp, n))
    cum = 0
    for b in BOUNDS:
        cum += per_bucket.get(b, 0)
        lines.append('weft_proxy_http_request_duration_seconds_bucket{%s,le="%s"} %d' % (resp, b, cum))
    lines.append("weft_proxy_http_request_duration_seconds_count{%s} %d" % (resp, cum))
    return lines


FRONT = "spiffe://cluster.local/ns/front/sa/web"
# Pod a: 90 fast GETs from front over mTLS, 10 slow ones (in 0.25-0.5 s),
# 5 answered 503 by the app; an outbound call that the row leaves out.
HTTP_A = (http(FRONT, "GET", "200", 100, {"0.005": 90, "0.5": 10}) +
          http(FRONT, "GET", "503", 5, {"0.01": 5}, failure=True) +
          http("db.cli-stat.svc:5432", "POST", "200", 7, {"0.001": 7}, direction="outbound"))
# Pod b: 20 plaintext requests (no SPIFFE ID), 1 answered 504 by the proxy.
HTTP_B = (http("", "POST", "201", 20, {"0.025": 20}) +
          http("", "POST", "504", 1, {"10": 1}, failure=True, origin="proxy"))
hpods = [
    pod("web-5d8f7c9b4-abcde", web, metrics(HTTP_A)),
    pod("web-5d8f7c9b4-fghij", web, metrics(HTTP_B)),
    pod("api-0", None, metrics()),  # meshed, no HTTP traffic: no request figures
]
write("http", snap("deploy", hpods))
write("http-pods", snap("pod", hpods))
# 10 s on: pod a served 50 more (40 fast, 10 more 503s); pod b restarted.
hl = copy.deepcopy(snap("deploy", hpods))
hl["now"] = base["now"] + 10
hl["pods"][0]["weftctlMetrics"] = metrics(http(FRONT, "GET", "200", 140, {"0.005": 130, "0.5": 10}) +
                                          http(FRONT, "GET", "503", 15, {"0.01": 15}, failure=True))
hl["pods"][1]["weftctlMetrics"] = metrics(http("", "POST", "201", 3, {"0.025": 3}))
write("http-later", hl)
# Every request failed.
write("http-all-failures", snap("pod", [pod("down-0", None, metrics(
    http(FRONT, "GET", "503", 40, {"0.001": 40}, failure=True) +
    http(FRONT, "GET", "502", 2, {"0.005": 2}, failure=True, origin="proxy")))]))
# Past the proxy's budget: the overflow set's callers are not known, so the
# mTLS share counts only the 30 known requests.
write("http-overflow", snap("pod", [pod("busy-0", None, metrics(
    http(FRONT, "GET", "200", 30, {"0.05": 30}) +
    http("overflow", "overflow", "overflow", 70, {"0.1": 70})))]))
# What --prometheus builds: per-pod increases over a 60 s window.
pw = snap("pod", [pod("web-5d8f7c9b4-abcde", web, "\n".join(HTTP_A[:1] + HTTP_A[1:17]) + "\n"
                      + 'weft_proxy_ready{} 1\nweft_proxy_connections_opened_total{direction="inbound",tls="true",'
                      'authz="allowed"} 120\n')])
pw["window"] = 60
write("prom-window", pw)
