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

#: by_kind's name for the secret policy ConfigMap (the Grafana dashboard's is "ConfigMap").
SECRET_POLICY = "ConfigMap/secret-policy"  # noqa: S105 (a manifest kind, no password)

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
        kind = doc["kind"]
        # The chart's two ConfigMaps (Grafana dashboard, secret policy) are told apart by name.
        if kind == "ConfigMap" and doc["metadata"]["name"].endswith("-secret-policy"):
            kind = SECRET_POLICY
        if kind in kinds:
            raise Failed(f"two {kind} manifests")
        kinds[kind] = doc
    return kinds


def ingress_ports(kinds: dict[str, dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The NetworkPolicy's peers by port; every rule must name its sources."""
    peers: dict[int, list[dict[str, Any]]] = {}
    for rule in kinds["NetworkPolicy"]["spec"]["ingress"]:
        expect(bool(rule.get("from")), "a NetworkPolicy rule admits every source")
        for port in rule.get("ports", []):
            peers.setdefault(port["port"], []).extend(rule["from"])
    return peers


def admits(peers: list[dict[str, Any]], namespace: str, labels: dict[str, str]) -> bool:
    """Whether a pod with `labels` in `namespace` is among `peers` (namespaceSelector by name)."""
    for peer in peers:
        ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        pods = peer.get("podSelector", {}).get("matchLabels", {})
        if ns == namespace and pods.items() <= labels.items():
            return True
    return False


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
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["", "0"])
    needed = (
        float(pre_stop[-1])
        + float(env["SENSOR_CONNECTOR_DRAIN_PERIOD"])
        + float(env["SENSOR_CONNECTOR_GRACE_PERIOD"])
    )
    expect(grace >= needed + 2, f"{source}: terminationGracePeriodSeconds {grace} < preStop+drain+grace+2")
    expect(float(env["SENSOR_CONNECTOR_MAX_CONNECTION_AGE"]) >= 0, f"{source}: max connection age")
    return container


def check_test_pod(kinds: dict[str, dict[str, Any]], source: str, tls: bool) -> None:
    """The `helm test` Pod: `try` through the Service with a TimeSensor met at once (no local path)."""
    pod = kinds["Pod"]
    expect(pod["metadata"]["annotations"].get("helm.sh/hook") == "test", f"{source}: test Pod is no hook")
    service = kinds["Service"]
    expect(
        not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items(),
        f"{source}: the Service selects the test Pod",
    )
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    target = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{grpc_port}"
    expect(
        args[:5] == ["try", target, "TimeSensor", "--config", "delay=0"], f"{source}: test Pod args {args}"
    )
    connector = pod_spec(kinds)["containers"][0]
    expect(("--tls" in args) == tls, f"{source}: test Pod --tls does not match the connector's TLS")
    expect(container["image"] == connector["image"], f"{source}: the test Pod runs another image")
    csc = container["securityContext"]
    expect(
        csc.get("readOnlyRootFilesystem") is True and csc.get("runAsNonRoot") is True, f"{source}: test Pod"
    )


def check_propeller_rbac(kinds: dict[str, dict[str, Any]], source: str, account: str) -> None:
    """propeller's ServiceAccount may watch exactly this Service's Endpoints."""
    role, binding = kinds["Role"], kinds["RoleBinding"]
    (rule,) = role["rules"]
    name = kinds["Service"]["metadata"]["name"]
    expect(
        rule["resources"] == ["endpoints"]
        and rule["resourceNames"] == [name]
        and set(rule["verbs"]) == {"get", "list", "watch"},
        f"{source}: Role rule {rule}",
    )
    expect(binding["roleRef"]["name"] == role["metadata"]["name"], f"{source}: RoleBinding roleRef")
    subjects = [f"{s['namespace']}/{s['name']}" for s in binding["subjects"]]
    expect(subjects == [account], f"{source}: RoleBinding subjects {subjects}, not [{account}]")


def check_default(docs: list[dict[str, Any]]) -> str:
    kinds = by_kind(docs)
    container = check_common(kinds, "default")
    expect(
        set(kinds)
        == {
            "Deployment",
            "Service",
            "ServiceAccount",
            "Secret",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Pod",
            "NetworkPolicy",
        },
        f"default: unexpected kinds {sorted(kinds)}",
    )
    env = env_of(container)
    # The port is propeller's: flyte-core's flytepropeller and flyte-binary's pod in namespace flyte,
    # Prometheus (namespace monitoring) on the metrics port, nobody else.
    peers = ingress_ports(kinds)
    expect(set(peers) == {8000, 9090}, f"default: NetworkPolicy ports {sorted(peers)}")
    for labels in ({"app.kubernetes.io/name": "flytepropeller"}, {"app.kubernetes.io/name": "flyte-binary"}):
        expect(admits(peers[8000], "flyte", labels), f"default: the NetworkPolicy does not admit {labels}")
    expect(not admits(peers[8000], "flyte", {"app": "other"}), "default: any pod in flyte may call gRPC")
    expect(not admits(peers[8000], "default", {"app.kubernetes.io/name": "flytepropeller"}), "default: ns")
    expect(admits(peers[9090], "monitoring", {"app": "prometheus"}), "default: Prometheus cannot scrape")
    expect(not admits(peers[9090], "flyte", {}), "default: metrics open beyond Prometheus")
    # No secret is granted unless the operator writes a policy.
    expect(SECRET_POLICY not in kinds, "default: a secret policy ConfigMap although secretPolicy is {}")
    expect("SENSOR_CONNECTOR_SECRET_POLICY" not in env, "default: a secret policy is passed")
    expect(env["SENSOR_CONNECTOR_DRAIN_PERIOD"] == "15", "default: drain period")
    expect(env["SENSOR_CONNECTOR_MAX_CONNECTION_AGE"] == "300", "default: max connection age")
    unset = [
        n
        for n in (
            "MAX_PENDING_RPCS",
            "MAX_STALENESS",
            "FS_CACHE_ENTRIES",
            "STATE_CACHE_ENTRIES",
            "PRELOAD",
            "SENSOR_MODULES",
            "USER_POKES_PER_SENSOR",
            "USER_POKE_THREADS",
            "SQL_THREADS",
            "SECRET_THREADS",
            "SQL_QUERIES_PER_DATABASE",
            # No local paths at all unless the operator names roots.
            "LOCAL_ROOTS",
        )
        if f"SENSOR_CONNECTOR_{n}" in env
    ]
    expect(not unset, f"default: options left null are passed anyway: {unset}")
    check_test_pod(kinds, "default", tls=False)
    check_propeller_rbac(kinds, "default", "flyte/flytepropeller")
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
    return (
        "headless Service, generated key >= 32 bytes with a matching checksum, grpc probes, non-root, "
        "terminationGracePeriodSeconds >= preStop+drain+grace+2, helm test Pod (try a TimeSensor met at "
        "once, not selected by the Service), Role: flyte/flytepropeller may watch this Service's Endpoints, "
        "NetworkPolicy: gRPC from flyte-core's and flyte-binary's propeller in flyte, metrics from "
        "monitoring, no secret policy (no secret granted)"
    )


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
        "Pod",
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
    test_labels = kinds["Pod"]["metadata"]["labels"]
    expect(
        any(
            peer.get("podSelector", {}).get("matchLabels", {}).items() <= test_labels.items()
            and "namespaceSelector" not in peer
            for rule in netpol["ingress"]
            for peer in rule["from"]
            if peer.get("podSelector", {}).get("matchLabels")
        ),
        "all-features: the NetworkPolicy does not admit the helm test Pod",
    )
    check_test_pod(kinds, "all-features", tls=True)
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
    expect(
        env.get("SENSOR_CONNECTOR_LOCAL_ROOTS") == "/data" and mounts.get("/data") == "data",
        "all-features: localRoots not passed or its volume not mounted",
    )
    pools = {
        n: env.get(f"SENSOR_CONNECTOR_{n}")
        for n in ("SQL_THREADS", "SECRET_THREADS", "SQL_QUERIES_PER_DATABASE")
    }
    expect(
        pools == {"SQL_THREADS": "4", "SECRET_THREADS": "2", "SQL_QUERIES_PER_DATABASE": "2"},
        f"all-features: {pools}",
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
    policy = kinds[SECRET_POLICY]
    expect(
        json.loads(policy["data"]["secret-policy.json"])
        == {"status-token": {"hosts": ["status.internal"], "projects": ["analytics"]}, "sales-db-url": {}},
        "all-features: the secret policy ConfigMap does not hold secretPolicy",
    )
    config_maps = {v["name"]: v.get("configMap", {}).get("name") for v in pod_spec(kinds)["volumes"]}
    expect(
        env.get("SENSOR_CONNECTOR_SECRET_POLICY") == "/etc/sensor-connector/policy/secret-policy.json"
        and config_maps[mounts["/etc/sensor-connector/policy"]] == policy["metadata"]["name"],
        "all-features: the secret policy is not mounted and passed",
    )
    expect(
        "checksum/secret-policy" in kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"],
        "all-features: a changed secret policy would not roll the pods",
    )
    peers = ingress_ports(kinds)
    expect(
        admits(peers[9090], "observability", {"app.kubernetes.io/name": "prometheus"}), "all-features: prom"
    )
    expect(not admits(peers[9090], "observability", {"app": "other"}), "all-features: prometheus podLabels")
    return (
        "HPA (no fixed replicas), NetworkPolicy 8000+9090 with sources, ServiceMonitor, Grafana dashboard, "
        "TLS with tcpSocket probes, sensor secrets, secret policy ConfigMap mounted and passed, extras passed"
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
    expect(
        9090 not in ingress_ports(kinds), "existing-secret: the NetworkPolicy opens the disabled metrics port"
    )
    return "ClusterIP Service, existing Secret with two keys in order, metrics off (not in the NetworkPolicy)"


def check_tuned(docs: list[dict[str, Any]]) -> str:
    kinds = by_kind(docs)
    container = check_common(kinds, "tuned")
    env = env_of(container)
    want = {
        "SENSOR_CONNECTOR_MAX_PENDING_RPCS": "1000000",
        "SENSOR_CONNECTOR_MAX_STALENESS": "0.5",
        "SENSOR_CONNECTOR_FS_CACHE_ENTRIES": "4096",
        "SENSOR_CONNECTOR_STATE_CACHE_ENTRIES": "100000",
        "SENSOR_CONNECTOR_PRELOAD": "s3,gcs",
        "SENSOR_CONNECTOR_SENSOR_MODULES": "mysensors.tables,mysensors.vendor",
        "SENSOR_CONNECTOR_USER_POKES_PER_SENSOR": "2",
        "SENSOR_CONNECTOR_USER_POKE_THREADS": "8",
    }
    got = {k: env.get(k) for k in want}
    expect(got == want, f"tuned: options passed as {got}, not {want}")
    expect(kinds["Service"]["metadata"]["name"] == "flyteconnector", "tuned: fullnameOverride")
    expect("Role" not in kinds and "Pod" not in kinds, "tuned: RBAC or test Pod although not wanted")
    return "options set are passed as plain numbers; fullnameOverride=flyteconnector names the Service"


def notes_block(lines: list[str], first: str, stop: str) -> dict[str, Any]:
    start = lines.index(first)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(stop))
    block: dict[str, Any] = yaml.safe_load("\n".join(line[3:] for line in lines[start:end]))
    return block


def check_notes(path: Path, propeller_values: Path) -> str:
    """NOTES.txt prints, for each Flyte chart, the values in helm/propeller-values with this release's
    endpoint (the files name release sensor-connector in namespace flyte, as this render does)."""
    lines = path.read_text().splitlines()
    endpoint = "k8s://sensor-connector.flyte:8000"
    blocks = {
        "flyte-core": notes_block(lines, "   configmap:", "   flyte-binary:"),
        "flyte-binary": notes_block(lines, "   enabled_plugins:", "   Both charts"),
    }
    for chart, block in blocks.items():
        values = yaml.safe_load((propeller_values / f"{chart}.yaml").read_text())
        expect(block == values, f"NOTES: the {chart} values differ from helm/propeller-values/{chart}.yaml")
    expect(endpoint in path.read_text(), f"NOTES: no endpoint {endpoint}")
    return f"flyte-core and flyte-binary values equal helm/propeller-values/*.yaml, endpoint {endpoint}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kube-versions", nargs="+", required=True)
    parser.add_argument("--default", type=Path, required=True)
    parser.add_argument("--all-features", type=Path, required=True)
    parser.add_argument("--existing-secret", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, required=True)
    parser.add_argument("--notes", type=Path, required=True)
    parser.add_argument("--propeller-values", type=Path, required=True)
    args = parser.parse_args(argv)

    scenarios: list[tuple[str, Path, Callable[[list[dict[str, Any]]], str]]] = [
        ("default", args.default, check_default),
        ("all-features", args.all_features, check_all_features),
        ("existing-secret", args.existing_secret, check_existing_secret),
        ("tuned", args.tuned, check_tuned),
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
        print(f"check: NOTES.txt: {check_notes(args.notes, args.propeller_values)}")
        passed += 1
    except (Failed, KeyError, TypeError, ValueError, StopIteration, yaml.YAMLError) as exc:
        print(f"check: NOTES.txt: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        failed += 1
    print(f"check: {manifests} manifests, {validations} schema validations")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
