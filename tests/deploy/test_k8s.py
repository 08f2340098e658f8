"""deploy/k8s: built-in kinds validated strictly by kubernetes-validate (the API server's OpenAPI schemas,
unknown fields rejected), the KServe objects against the field list of KServe's API reference (a small
schema kept here: the CRDs are not in kubernetes-validate), and the wiring between the objects checked:
selectors, probes on routes the app really has, secret keys, settings names, ports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest version still in upstream support when this was written


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def builtin() -> dict[str, dict[str, Any]]:
    """kind/name → object, for every manifest in deploy/k8s/ (kustomization aside)."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in documents(path):
                objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


def kserve() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for p in sorted((K8S / "kserve").glob("*.yaml")) for d in documents(p)}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "ServingRuntime":
        found: list[dict[str, Any]] = obj["spec"]["containers"]
        return found
    if obj["kind"] in ("Deployment", "Job"):
        found = obj["spec"]["template"]["spec"]["containers"]
        return found
    return []


@pytest.mark.parametrize("key", sorted(builtin()))
def test_builtin_kinds_validate_strictly(key: str) -> None:
    kubernetes_validate.validate(builtin()[key], KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_misspelled_field() -> None:
    bad = copy.deepcopy(builtin()["Deployment/calibserve"])
    container = bad["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_deployment_probes_hit_the_v2_health_routes(client: Any) -> None:
    deployment = builtin()["Deployment/calibserve"]
    (container,) = containers(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    for path in ("/v2/health/ready", "/v2/health/live", annotations["prometheus.io/path"]):
        assert client.get(path).status_code == 200, path
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["CALIBSERVE_PORT"]) == ports["http"]


def test_objects_point_at_each_other() -> None:
    objs = builtin()
    deployment = objs["Deployment/calibserve"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for name in ("Service/calibserve", "Service/calibserve-headless"):
        assert objs[name]["spec"]["selector"].items() <= pod_labels.items(), name
    assert objs["Service/calibserve-headless"]["spec"]["clusterIP"] == "None"
    assert objs["HorizontalPodAutoscaler/calibserve"]["spec"]["scaleTargetRef"]["name"] == "calibserve"
    assert objs["PodDisruptionBudget/calibserve"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    job = objs["Job/calibserve-migrate"]
    assert containers(job)[0]["command"] == ["calibserve", "db", "upgrade"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims <= {n.split("/")[1] for n in objs if n.startswith("PersistentVolumeClaim/")}


def test_secret_keys_and_settings_names_exist() -> None:
    secret = builtin()["Secret/calibserve"]
    keys = set(secret["stringData"])
    fields = set(Settings.model_fields)
    for obj in [*builtin().values(), *kserve().values()]:
        for container in containers(obj):
            for env in container.get("env", []):
                if env["name"].startswith("CALIBSERVE_"):
                    assert env["name"].removeprefix("CALIBSERVE_").lower() in fields, env["name"]
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys, env
    deployment = builtin()["Deployment/calibserve"]
    mounted = [v["secret"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert all(item["key"] in keys for s in mounted for item in s["items"])


# KServe objects: the fields of ServingRuntimeSpec and InferenceService's PredictorSpec/ModelSpec as listed
# in KServe's API reference (serving.kserve.io/v1alpha1 and v1beta1). A subset, closed where we use it, so a
# misspelled or invented field fails here as it would in the CRD's structural schema.
_CONTAINER = {"type": "object", "required": ["name", "image"],
              "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}
_MODEL_FORMAT = {"type": "object", "required": ["name"], "additionalProperties": False,
                 "properties": {"name": {"type": "string"}, "version": {"type": "string"}}}
KSERVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServingRuntime": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
            "spec": {
                "type": "object", "required": ["supportedModelFormats", "containers"], "additionalProperties": False,
                "properties": {
                    "supportedModelFormats": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["name"], "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                       "autoSelect": {"type": "boolean"}, "priority": {"type": "integer"}}}},
                    "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
                    "multiModel": {"type": "boolean"}, "disabled": {"type": "boolean"},
                    "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
                    "volumes": {"type": "array"}, "nodeSelector": {"type": "object"},
                    "affinity": {"type": "object"}, "tolerations": {"type": "array"},
                    "labels": {"type": "object"}, "annotations": {"type": "object"},
                    "imagePullSecrets": {"type": "array"}, "grpcEndpoint": {"type": "string"},
                    "grpcDataEndpoint": {"type": "string"}, "httpDataEndpoint": {"type": "string"},
                    "replicas": {"type": "integer"}, "storageHelper": {"type": "object"},
                    "builtInAdapter": {"type": "object"}, "workerSpec": {"type": "object"},
                    "hostIPC": {"type": "boolean"},
                },
            },
        },
    },
    "InferenceService": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "serving.kserve.io/v1beta1"},
            "spec": {
                "type": "object", "required": ["predictor"],
                "properties": {"predictor": {
                    "type": "object", "required": ["model"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "scaleTarget": {"type": "integer"},
                        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
                        "containerConcurrency": {"type": "integer"}, "timeout": {"type": "integer"},
                        "canaryTrafficPercent": {"type": "integer"}, "serviceAccountName": {"type": "string"},
                        "model": {
                            "type": "object", "required": ["modelFormat"], "additionalProperties": False,
                            "properties": {
                                "modelFormat": _MODEL_FORMAT, "runtime": {"type": "string"},
                                "runtimeVersion": {"type": "string"},
                                "protocolVersion": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]},
                                "storageUri": {"type": "string", "pattern": "^(pvc|s3|gs|https?|hdfs|webhdfs|oci)://"},
                                "storage": {"type": "object"}, "args": {"type": "array"}, "env": {"type": "array"},
                                "resources": {"type": "object"}, "ports": {"type": "array"},
                                "name": {"type": "string"}, "image": {"type": "string"},
                            },
                        },
                    },
                }},
            },
        },
    },
}


@pytest.mark.parametrize("kind", sorted(KSERVE_SCHEMAS))
def test_kserve_objects_match_the_documented_fields(kind: str) -> None:
    jsonschema.validate(kserve()[kind], KSERVE_SCHEMAS[kind])
    if kind == "ServingRuntime":  # its containers are core/v1 Containers: validate them as such
        for container in containers(kserve()[kind]):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [container]}}
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_kserve_schema_rejects_an_unknown_model_field() -> None:
    bad = copy.deepcopy(kserve()["InferenceService"])
    bad["spec"]["predictor"]["model"]["storageURI"] = bad["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, KSERVE_SCHEMAS["InferenceService"])


def test_inference_service_uses_the_runtime_it_names() -> None:
    runtime, isvc = kserve()["ServingRuntime"], kserve()["InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    (container,) = containers(runtime)
    assert container["name"] == "kserve-container"  # the name KServe's webhook merges predictor fields into
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CALIBSERVE_MODEL_REPOSITORY"] == "/mnt/models"  # where the storage initializer writes
    assert int(env["CALIBSERVE_PORT"]) == container["ports"][0]["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
