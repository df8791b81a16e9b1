#!/usr/bin/env python3
"""Writes the shared inputs of the JMESPath and CEL comparisons into DIR: review.json (a ~3 KB
Pod AdmissionReview, 3 containers) and pod.json (its Pod)."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def container(name, image):
    return {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["--model", "/models/llama", "--port", "8080"],
        "env": [{"name": "MODEL_PATH", "value": "/models/llama"}, {"name": "LOG_LEVEL", "value": "info"},
                {"name": "DATASET_SHA256", "value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                      "requests": {"cpu": "2", "memory": "8Gi"}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    }


pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "llama-server-7d9f8", "namespace": "inference",
                 "labels": {"app": "llama-server", "team": "ml-platform", "tier": "gpu"},
                 "annotations": {"provenance.dev/model": "registry.example.com/ml/llama3:8b"}},
    "spec": {"serviceAccountName": "llama",
             "containers": [container("server", "registry.example.com/ml/llama-server:1.0"),
                            container("sidecar", "x"),
                            container("metrics", "registry.example.com/ml/exporter:2.1")],
             "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models-pvc"}}]},
}
review = {
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "inference", "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
                "object": pod},
}
(out / "pod.json").write_text(json.dumps(pod))
(out / "review.json").write_text(json.dumps(review))
