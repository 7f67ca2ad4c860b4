# SPDX-License-Identifier: Apache-2.0
"""The e2e node (node.py) runs pods for real: the kubelet, containerd and
runc, the CNI bridge, kube-proxy's ClusterIPs and CoreDNS's names work, pods
reach the API server through the `kubernetes` Service, nothing is routed out,
and a stopped node leaves nothing behind in the host."""
import glob
import os
import subprocess
import sys
import time

import node as nd


def kubepods_pids():
    pids = set()
    for f in glob.glob("/sys/fs/cgroup/pids/kubepods/**/cgroup.procs", recursive=True):
        try:
            pids |= {int(x) for x in open(f).read().split()}
        except OSError:
            pass
    return pids


def test_node_processes_die_with_a_killed_test_process(node_bindir, node_images):
    """A node in a child process (node.py, as `cluster.py --node` runs it)
    with a pod running; the child is SIGKILLed (no cleanup runs): no process
    of the node, no container is left, and the next start undoes the rest."""
    # LOCK held from before the first look at the host to after the last: another run's node (a .ci/run next
    # to a make fresh-check shares the host) would otherwise be in `before` and gone by the end.
    lock = nd.take_lock()
    try:
        before = nd.host_footprint()
        env = dict(os.environ, WEFT_E2E_NODE_IMAGES=node_images, **{nd.LOCK_FD_ENV: str(lock)})
        child = subprocess.Popen([sys.executable, os.path.join(nd.HERE, "node.py")], env=env, pass_fds=(lock,),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        killed_node_leaves_nothing_running(child, node_bindir)
        nd.reap_stale_nodes(node_bindir)  # as nd.reap, with LOCK held here
        assert nd.host_footprint() == before
    finally:
        os.close(lock)


def killed_node_leaves_nothing_running(child, node_bindir):
    try:
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("KUBECONFIG="):
                break
        assert lines and lines[-1].startswith("KUBECONFIG="), "".join(lines)
        kc = lines[-1].strip().split("=", 1)[1]
        kubectl = [os.path.join(node_bindir, "kubectl"), "--kubeconfig", kc]
        subprocess.run(kubectl + ["run", "sleeper", "--image", nd.BUSYBOX, "--restart=Never",
                                  "--command", "--", "sleep", "600"], check=True,
                       stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while subprocess.run(kubectl + ["get", "pod", "sleeper", "-o",
                                        "jsonpath={.status.phase}"], stdout=subprocess.PIPE,
                             text=True).stdout != "Running":
            assert time.monotonic() < deadline, "sleeper never ran"
            time.sleep(0.3)
        assert kubepods_pids()  # the container and the pause process
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while (nd.host_footprint()["processes"] or kubepods_pids()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nd.host_footprint()["processes"] == []
    assert kubepods_pids() == set()


def test_node_teardown_leaves_host_as_found(node_bindir, node_images):
    """First in this file, before the session's node (conftest.py) starts:
    a node of its own (CoreDNS running on it) is started, stopped, and the
    host compared with what it was before."""
    n = nd.NodeCluster(node_bindir, node_images)  # takes the node lock: no other node runs from here on
    before = nd.host_footprint()
    try:
        n.start(timeout=180)
        during = nd.host_footprint()
        assert nd.BRIDGE in during["links"] and during["iptables"] and during["mounts"]
        dns = n.get_json("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
        assert [p["status"]["phase"] for p in dns] == ["Running"]
    finally:
        n.stop(release_lock=False)
    try:
        after = nd.host_footprint()
        assert after == before
        assert not after["links"] and not after["mounts"] and not after["cgroups"]
        assert not [l for l in after["iptables"] if "KUBE-" in l or nd.GUARD in l]
        assert after["sysctl"]["ip_forward"] == "0"
    finally:
        n.release_lock()


def test_node_is_ready_with_the_pinned_parts(node):
    got = node.get_json("node", nd.NODE_NAME)
    info = got["status"]["nodeInfo"]
    with open(node.bin + "/NODE-STAMP") as f:
        stamp = dict(kv.split("=", 1) for kv in f.read().split())
    assert info["kubeletVersion"] == stamp["k8s"]
    assert info["kubeProxyVersion"] in ("", stamp["k8s"])
    assert info["containerRuntimeVersion"] == "containerd://" + stamp["containerd"].lstrip("v")
    addrs = {a["type"]: a["address"] for a in got["status"]["addresses"]}
    assert addrs["InternalIP"] == nd.NODE_IP
    # Once built, the whole node is up well within a minute.
    assert node.timings["total"] < 60, node.timings


def test_kubernetes_service_has_the_api_server_as_endpoint(node):
    eps = node.get_json("endpointslices", "-n", "default",
                        "-l", "kubernetes.io/service-name=kubernetes")["items"]
    addrs = [(a, p["port"]) for s in eps for e in s["endpoints"] for a in e["addresses"]
             for p in s["ports"]]
    assert addrs == [(nd.NODE_IP, node.port)]


def test_pod_reaches_api_server_by_service_name(node):
    """DNS (CoreDNS) -> ClusterIP (kube-proxy) -> the API server on the
    node's address; a plain HTTP request to its TLS port gets Go's answer.
    nslookup first, so that a failure shows which of the two failed."""
    node.create_namespace("node-api")
    phase, logs = node.run_pod("node-api", "api", [
        "sh", "-c",
        "nslookup kubernetes.default.svc.cluster.local && "
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 kubernetes.default.svc.cluster.local 443"])
    assert phase == "Succeeded", logs
    assert "Client sent an HTTP request to an HTTPS server" in logs


def test_pod_has_no_route_out(node):
    node.create_namespace("node-routes")
    phase, logs = node.run_pod("node-routes", "routes", ["cat", "/proc/net/route"])
    assert phase == "Succeeded", logs
    dests = [l.split()[1] for l in logs.splitlines()[1:] if l.strip()]
    assert "00000000" not in dests, logs  # no default route


def test_service_clusterip_between_pods_logs_and_exec(node):
    ns = "node-svc"
    node.create_namespace(ns)
    node.apply_json({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "web", "image": nd.BUSYBOX,
                                      "imagePullPolicy": "IfNotPresent",
                                      "command": ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"],
                                      "ports": [{"containerPort": 8080}],
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                         "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]})
    node.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s", timeout=90)
    phase, logs = node.run_pod(ns, "client", ["wget", "-q", "-O-",
                                              "http://web.%s.svc.cluster.local/" % ns])
    assert phase == "Succeeded", logs
    assert logs.strip() == "ok"
    web = node.get_json("pods", "-n", ns, "-l", "app=web")["items"][0]["metadata"]["name"]
    # kubectl logs and exec go API server -> kubelet (its InternalIP)
    assert "response:200" in node.kubectl("logs", "-n", ns, web).stdout
    assert node.kubectl("exec", "-n", ns, web, "--", "id", "-u").stdout.strip() == "65534"
