# SPDX-License-Identifier: Apache-2.0
"""Writes a realistic ~6 KB AdmissionReview: a Deployment's pod with an app
container, a log shipper, env, volumes, probes and the usual controller
metadata, to the path given."""
import json
import sys

env = [{"name": f"APP_SETTING_{i:02d}", "value": f"value-{i:02d}-" + "x" * 24} for i in range(52)]
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
        "generateName": "checkout-5d8f9c7b6-", "namespace": "shop",
        "labels": {"app": "checkout", "pod-template-hash": "5d8f9c7b6", "app.kubernetes.io/part-of": "shop",
                   "app.kubernetes.io/version": "4.2.0"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9102"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-5d8f9c7b6",
                             "uid": "6b1e8f7a-3c2d-4e5f-8a9b-0c1d2e3f4a5b", "controller": True,
                             "blockOwnerDeletion": True}]},
    "spec": {
        "serviceAccountName": "checkout", "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "containers": [
            {"name": "checkout", "image": "registry.example/shop/checkout:4.2.0", "env": env,
             "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9102}],
             "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
             "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
             "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "periodSeconds": 10},
             "volumeMounts": [{"name": "config", "mountPath": "/etc/checkout"},
                              {"name": "kube-api-access-x2x9q", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}]},
            {"name": "log-shipper", "image": "registry.example/infra/shipper:1.9",
             "args": ["--input=/var/log/app", "--output=collector.logging.svc:24224"],
             "readinessProbe": {"tcpSocket": {"port": 24231}},
             "volumeMounts": [{"name": "logs", "mountPath": "/var/log/app"}]}],
        "volumes": [{"name": "config", "configMap": {"name": "checkout-config"}}, {"name": "logs", "emptyDir": {}},
                    {"name": "kube-api-access-x2x9q", "projected": {"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]}}
review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
          "request": {"uid": "b7a1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",
                      "kind": {"group": "", "version": "v1", "kind": "Pod"},
                      "resource": {"group": "", "version": "v1", "resource": "pods"},
                      "namespace": "shop", "operation": "CREATE",
                      "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                      "object": pod, "dryRun": False}}
with open(sys.argv[1], "w") as f:
    json.dump(review, f)
