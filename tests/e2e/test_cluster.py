# SPDX-License-Identifier: Apache-2.0
"""The control plane under test is real and usable: the pinned release
answers, and a Namespace and a Pod go in and come back."""
import json


def test_server_is_the_pinned_release(cluster):
    v = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    with open(cluster.bin + "/STAMP") as f:
        stamp = dict(kv.split("=", 1) for kv in f.read().split())
    assert v["serverVersion"]["gitVersion"] == stamp["k8s"]
    assert v["clientVersion"]["gitVersion"] == stamp["k8s"]


def test_namespace_and_pod_round_trip(cluster):
    cluster.create_namespace("e2e-plain")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "hello", "namespace": "e2e-plain"},
           "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}
    cluster.create_json(pod)
    got = cluster.get_json("pod", "hello", "-n", "e2e-plain")
    assert got["spec"]["containers"][0]["image"] == "registry.invalid/app:1"
    # Stored, not run: there is no kubelet and no scheduler.
    assert got["status"]["phase"] == "Pending"
    assert "nodeName" not in got["spec"]
    # The ServiceAccount admission plugin and the controller-manager work.
    assert got["spec"]["serviceAccountName"] == "default"
    cluster.wait_for(lambda: cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n",
                                             "e2e-plain", check=False).returncode == 0,
                     30, "kube-root-ca.crt")
