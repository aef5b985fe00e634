#!/usr/bin/env python3
"""Validate the Helm chart's rendered manifests and assert what the deployment relies on.

Run by scripts/ci-helm.sh with a Python that has kubernetes-validate (and so jsonschema and PyYAML):

    check_manifests.py --kube-versions 1.27.0 1.35.0 --default D.yaml --all-features A.yaml \
        --existing-secret E.yaml

Every manifest is validated strictly (unknown fields are errors) against the Kubernetes schemas of each
version. ServiceMonitor is a prometheus-operator CRD, absent from those schemas: it is validated against
the small schema below, which covers the fields this chart writes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}

GRPC_SERVICE = "flyteidl.service.AsyncAgentService"


class Failed(Exception):
    """A manifest is invalid or a fact does not hold."""


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate(docs: list[dict[str, Any]], versions: list[str], source: str) -> int:
    """Validate every document against every version; return how many validations passed."""
    count = 0
    for doc in docs:
        name = f"{source}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in versions:
            if doc.get("kind") == "ServiceMonitor":
                try:
                    jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
                except jsonschema.ValidationError as exc:
                    raise Failed(
                        f"{name}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}"
                    ) from None
            else:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    where = "/".join(map(str, exc.path))
                    raise Failed(f"{name} (Kubernetes {version}): {exc.message} at {where}") from None
                except kubernetes_validate.SchemaNotFoundError as exc:
                    raise Failed(f"{name}: no schema in Kubernetes {version}: {exc}") from None
            count += 1
    return count


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] in kinds:
            raise Failed(f"two {doc['kind']} manifests")
        kinds[doc["kind"]] = doc
    return kinds


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def pod_spec(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = kinds["Deployment"]["spec"]["template"]["spec"]
    return spec


def check_common(kinds: dict[str, dict[str, Any]], source: str) -> dict[str, Any]:
    """Facts every rendering must show; returns the connector container."""
    deploy = kinds.get("Deployment")
    expect(deploy is not None, f"{source}: no Deployment")
    assert deploy is not None
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    grpc_port = int(env["SENSOR_CONNECTOR_PORT"])
    tls = "SENSOR_CONNECTOR_TLS_CERT_FILE" in env
    # The kubelet's gRPC probe speaks plaintext only: with TLS on, the probes check the TCP port.
    kind = "tcpSocket" if tls else "grpc"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        spec = container.get(probe)
        expect(spec is not None, f"{source}: no {probe}")
        assert spec is not None
        expect(kind in spec, f"{source}: {probe} is not a {kind} probe: {spec}")
        expect(spec[kind]["port"] == grpc_port, f"{source}: {probe} asks port {spec[kind]['port']}")
    if not tls:
        readiness = container["readinessProbe"]["grpc"].get("service")
        expect(readiness == GRPC_SERVICE, f"{source}: readiness service")
    psc, csc = pod["securityContext"], container["securityContext"]
    expect(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, f"{source}: runAsNonRoot")
    expect(psc.get("runAsUser") == 65532 == csc.get("runAsUser"), f"{source}: runAsUser is not 65532")
    expect(csc.get("readOnlyRootFilesystem") is True, f"{source}: readOnlyRootFilesystem")
    expect(csc.get("allowPrivilegeEscalation") is False, f"{source}: allowPrivilegeEscalation")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{source}: capabilities.drop ALL")
    expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{source}: seccomp RuntimeDefault")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/var/lib/sensor-connector", "/tmp"):  # noqa: S108 (paths in the pod, not here)
        expect(path in mounts, f"{source}: nothing writable mounted at {path}")
        expect("emptyDir" in volumes[mounts[path]["name"]], f"{source}: {path} is not an emptyDir")
    expect(container["args"][0] == "serve", f"{source}: args do not start with serve")
    keys = env["SENSOR_CONNECTOR_SIGNING_KEY_FILE"].split(",")
    key_volume = volumes[mounts["/etc/sensor-connector/keys"]["name"]]["secret"]
    expect(
        [f"/etc/sensor-connector/keys/{item['path']}" for item in key_volume["items"]] == keys,
        f"{source}: SENSOR_CONNECTOR_SIGNING_KEY_FILE {keys} does not match the mounted Secret items",
    )
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    expect("checksum/signing-key" in annotations, f"{source}: no checksum/signing-key annotation")
    service = kinds["Service"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    expect(ports["grpc"]["port"] == grpc_port, f"{source}: Service grpc port")
    expect(ports["grpc"].get("appProtocol") == "grpc", f"{source}: Service grpc appProtocol")
    expect(
        service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items(),
        f"{source}: the Service selector does not match the pods",
    )
    grace = pod["terminationGracePeriodSeconds"]
    expect(grace > float(env["SENSOR_CONNECTOR_GRACE_PERIOD"]), f"{source}: terminationGracePeriodSeconds")
    return container


def check_default(docs: list[dict[str, Any]]) -> str:
    kinds = by_kind(docs)
    container = check_common(kinds, "default")
    expect(
        set(kinds) == {"Deployment", "Service", "ServiceAccount", "Secret", "PodDisruptionBudget"},
        f"default: unexpected kinds {sorted(kinds)}",
    )
    expect(kinds["Service"]["spec"].get("clusterIP") == "None", "default: the Service is not headless")
    secret = kinds["Secret"]
    key = base64.b64decode(secret["data"]["signing.key"]).strip()
    expect(len(key) >= 32, f"default: the generated key has {len(key)} bytes")
    checksum = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/signing-key"]
    expect(
        checksum == hashlib.sha256(secret["data"]["signing.key"].encode()).hexdigest(),
        "default: checksum/signing-key is not the checksum of the Secret's key",
    )
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    expect(annotations.get("prometheus.io/scrape") == "true", "default: no prometheus.io/scrape annotation")
    expect(env_of(container)["SENSOR_CONNECTOR_METRICS_PORT"] == "9090", "default: metrics port")
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    expect(len(pod.get("topologySpreadConstraints", [])) == 2, "default: topologySpreadConstraints")
    for tsc in pod["topologySpreadConstraints"]:
        expect(
            tsc["labelSelector"]["matchLabels"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"],
            "default: topologySpreadConstraints' labelSelector does not select the pods",
        )
    return "headless Service, generated key >= 32 bytes with a matching checksum, grpc probes, non-root"


def check_all_features(docs: list[dict[str, Any]]) -> str:
    kinds = by_kind(docs)
    container = check_common(kinds, "all-features")
    want = {
        "Deployment",
        "Service",
        "ServiceAccount",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceMonitor",
        "ConfigMap",
    }
    expect(want <= set(kinds), f"all-features: missing {sorted(want - set(kinds))}")
    expect(
        "replicas" not in kinds["Deployment"]["spec"], "all-features: replicas set although the HPA owns it"
    )
    expect(kinds["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2", "all-features: HPA apiVersion")
    netpol = kinds["NetworkPolicy"]["spec"]
    ports = [[p["port"] for p in rule.get("ports", [])] for rule in netpol["ingress"]]
    expect([8000] in ports and [9090] in ports, f"all-features: NetworkPolicy ports {ports}")
    for rule in netpol["ingress"]:
        expect(bool(rule.get("from")), "all-features: a NetworkPolicy rule admits every source")
    env = env_of(container)
    expect("AWS_ENDPOINT_URL" in env, "all-features: extraEnv not passed")
    expect(any(a.startswith("--") for a in container["args"][1:]), "all-features: extraArgs not passed")
    expect(any(m["name"] == "extra" for m in container["volumeMounts"]), "all-features: extraVolumeMounts")
    sa = kinds["ServiceAccount"]["metadata"].get("annotations", {})
    expect("eks.amazonaws.com/role-arn" in sa, "all-features: ServiceAccount annotations")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secret_names = {v["name"]: v.get("secret", {}).get("secretName") for v in pod_spec(kinds)["volumes"]}
    expect(
        env.get("SENSOR_CONNECTOR_TLS_CERT_FILE") == "/etc/sensor-connector/tls/tls.crt"
        and secret_names[mounts["/etc/sensor-connector/tls"]] == "sensor-connector-tls",
        "all-features: TLS Secret not mounted and configured",
    )
    expect(
        env.get("SENSOR_CONNECTOR_SECRETS_DIR") == "/etc/sensor-connector/secrets"
        and secret_names[mounts["/etc/sensor-connector/secrets"]] == "sensor-connector-sensor-secrets",
        "all-features: sensor secrets not mounted and configured",
    )
    expect(
        env.get("SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS") == "status.internal,10.20.0.0/16",
        "all-features: httpAllowHosts not passed",
    )
    dashboard = json.loads(kinds["ConfigMap"]["data"]["sensor-connector.json"])
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expect(
        kinds["ConfigMap"]["metadata"]["labels"].get("grafana_dashboard") == "1"
        and any("flyte_connector_requests_success_total" in e for e in exprs)
        and any("flyte_sensor_connector_pokes_total" in e for e in exprs),
        "all-features: Grafana dashboard ConfigMap",
    )
    monitor = kinds["ServiceMonitor"]["spec"]
    expect(monitor["endpoints"][0]["port"] == "metrics", "all-features: ServiceMonitor port")
    return (
        "HPA (no fixed replicas), NetworkPolicy 8000+9090 with sources, ServiceMonitor, Grafana dashboard, "
        "TLS with tcpSocket probes, sensor secrets, extras passed"
    )


def check_existing_secret(docs: list[dict[str, Any]]) -> str:
    kinds = by_kind(docs)
    container = check_common(kinds, "existing-secret")
    expect("Secret" not in kinds, "existing-secret: the chart still made a Secret")
    expect("PodDisruptionBudget" not in kinds, "existing-secret: PDB although disabled")
    expect(kinds["Service"]["spec"].get("clusterIP") != "None", "existing-secret: headless although disabled")
    env = env_of(container)
    expect(
        env["SENSOR_CONNECTOR_SIGNING_KEY_FILE"]
        == "/etc/sensor-connector/keys/new.key,/etc/sensor-connector/keys/old.key",
        "existing-secret: rotation keys not in order",
    )
    expect(env["SENSOR_CONNECTOR_METRICS_PORT"] == "0", "existing-secret: metrics not disabled")
    expect(
        [p["name"] for p in kinds["Service"]["spec"]["ports"]] == ["grpc"], "existing-secret: metrics port"
    )
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    expect(pod["volumes"][0]["secret"]["secretName"] == "connector-keys", "existing-secret: secret name")
    return "ClusterIP Service, existing Secret with two keys in order, metrics off"


def check_notes(path: Path) -> str:
    """NOTES.txt holds propeller configuration, as YAML, naming this release's endpoint."""
    lines = path.read_text().splitlines()
    start = lines.index("   tasks:")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("   Keep "))
    config = yaml.safe_load("\n".join(line[3:] for line in lines[start:end]))
    plugins = config["tasks"]["task-plugins"]
    expect("connector-service" in plugins["enabled-plugins"], "NOTES: connector-service not enabled")
    expect(plugins["default-for-task-types"].get("sensor") == "connector-service", "NOTES: sensor not routed")
    connector = config["plugins"]["connector-service"]["defaultConnector"]
    endpoint = "dns:///sensors-sensor-connector.flyte.svc.cluster.local:8000"
    expect(connector["endpoint"] == endpoint, f"NOTES: endpoint {connector['endpoint']}, not {endpoint}")
    expect(connector["insecure"] is True, "NOTES: insecure is not true")
    return f"propeller config with endpoint {endpoint}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kube-versions", nargs="+", required=True)
    parser.add_argument("--default", type=Path, required=True)
    parser.add_argument("--all-features", type=Path, required=True)
    parser.add_argument("--existing-secret", type=Path, required=True)
    parser.add_argument("--notes", type=Path, required=True)
    args = parser.parse_args(argv)

    scenarios: list[tuple[str, Path, Callable[[list[dict[str, Any]]], str]]] = [
        ("default", args.default, check_default),
        ("all-features", args.all_features, check_all_features),
        ("existing-secret", args.existing_secret, check_existing_secret),
    ]
    manifests = validations = 0
    passed = failed = 0
    for name, path, check in scenarios:
        docs = load(path)
        try:
            count = validate(docs, args.kube_versions, name)
            facts = check(docs)
        except (Failed, KeyError, TypeError, ValueError) as exc:
            print(f"check: {name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        manifests += len(docs)
        validations += count
        passed += 1
        kinds = ", ".join(sorted(d["kind"] for d in docs))
        print(
            f"check: {name}: {len(docs)} manifests valid on Kubernetes {', '.join(args.kube_versions)} "
            f"({kinds}); {facts}"
        )
    try:
        print(f"check: NOTES.txt: {check_notes(args.notes)}")
        passed += 1
    except (Failed, KeyError, TypeError, ValueError, StopIteration, yaml.YAMLError) as exc:
        print(f"check: NOTES.txt: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        failed += 1
    print(f"check: {manifests} manifests, {validations} schema validations")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
