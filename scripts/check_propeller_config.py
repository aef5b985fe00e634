#!/usr/bin/env python3
"""Check that the propeller values files in helm/propeller-values route `sensor` tasks to the connector.

Two modes:

    check_propeller_config.py render CHART RENDERED.yaml VALUES.yaml RECORD.yaml
        RENDERED.yaml is `helm template` of Flyte's real CHART (flyte-core or flyte-binary) with
        VALUES.yaml. Propeller's configuration is read from the rendered ConfigMap the way propeller
        reads it (every file of the ConfigMap, merged in name order, maps deeply), checked, and the
        parts that matter are written to RECORD.yaml with the sha256 of VALUES.yaml.
        (scripts/render-propeller-config.sh runs this; it needs a checkout of Flyte's charts.)

    check_propeller_config.py recorded VALUES.yaml RECORD.yaml
        Offline (CI): the record was made from this very VALUES.yaml (same sha256), and what it
        records passes the same checks.

The checks: connector-service is enabled, `sensor` goes to it, the charts' other plugins and routes
(container, sidecar, k8s-array, echo) are still there, and the connector endpoint is the one given.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

#: What flyte-core and flyte-binary v1.16 enable by default and must still enable.
KEEP_PLUGINS = ("container", "sidecar", "k8s-array", "echo")
KEEP_ROUTES = {"container": "container", "sidecar": "sidecar", "container_array": "k8s-array"}
#: The propeller ConfigMap of each chart: a name, or a suffix of it (flyte-binary prefixes the release).
CONFIGMAPS = {"flyte-core": "flyte-propeller-config", "flyte-binary": "-flyte-binary-config"}


class Failed(Exception):
    """The configuration does not route sensors to the connector."""


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of maps as propeller's config loader (viper) merges its files; lists are replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def propeller_config(chart: str, rendered: str) -> dict[str, Any]:
    """The merged configuration propeller loads from the chart's rendered ConfigMap."""
    suffix = CONFIGMAPS[chart]
    maps = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].endswith(suffix)
    ]
    if len(maps) != 1:
        raise Failed(f"{chart}: expected one ConfigMap named *{suffix}, found {len(maps)}")
    config: dict[str, Any] = {}
    for name in sorted(maps[0]["data"]):
        if name.endswith(".yaml"):
            config = merge(config, yaml.safe_load(maps[0]["data"][name]) or {})
    return config


def essentials(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of propeller's configuration the connector depends on."""
    return {
        "tasks": {"task-plugins": config.get("tasks", {}).get("task-plugins", {})},
        "plugins": {
            "connector-service": config.get("plugins", {}).get("connector-service", {}),
            "other-plugin-sections": sorted(k for k in config.get("plugins", {}) if k != "connector-service"),
        },
    }


def check(record: dict[str, Any], endpoint: str) -> list[str]:
    """Assert the routing facts; returns them as sentences."""
    plugins = record["tasks"]["task-plugins"]
    enabled = plugins.get("enabled-plugins") or []
    routes = plugins.get("default-for-task-types") or {}
    if "connector-service" not in enabled:
        raise Failed(f"connector-service is not enabled: enabled-plugins = {enabled}")
    missing = [p for p in KEEP_PLUGINS if p not in enabled]
    if missing:
        raise Failed(f"the chart's plugins {missing} were dropped: enabled-plugins = {enabled}")
    if routes.get("sensor") != "connector-service":
        raise Failed(f"sensor is routed to {routes.get('sensor')!r}, not connector-service")
    lost = {k: v for k, v in KEEP_ROUTES.items() if routes.get(k) != v}
    if lost:
        raise Failed(f"default routes were lost or changed: {lost}; default-for-task-types = {routes}")
    connector = record["plugins"]["connector-service"].get("defaultConnector") or {}
    if connector.get("endpoint") != endpoint:
        raise Failed(f"defaultConnector.endpoint is {connector.get('endpoint')!r}, not {endpoint!r}")
    return [
        f"enabled-plugins = {enabled}",
        f"default-for-task-types = {dict(sorted(routes.items()))}",
        f"defaultConnector = {connector}",
        f"other plugin sections kept: {record['plugins']['other-plugin-sections']}",
    ]


def endpoint_of(values: dict[str, Any]) -> str:
    """The endpoint the values file gives (either chart's layout)."""
    for path in (
        ("configmap", "enabled_plugins", "plugins"),
        ("configuration", "inline", "plugins"),
    ):
        node: Any = values
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if node:
            return str(node["connector-service"]["defaultConnector"]["endpoint"])
    raise Failed("the values file gives no plugins.connector-service.defaultConnector.endpoint")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    render = sub.add_parser("render")
    render.add_argument("chart", choices=sorted(CONFIGMAPS))
    render.add_argument("rendered", type=Path)
    render.add_argument("values", type=Path)
    render.add_argument("record", type=Path)
    recorded = sub.add_parser("recorded")
    recorded.add_argument("values", type=Path)
    recorded.add_argument("record", type=Path)
    args = parser.parse_args(argv)

    values_bytes = args.values.read_bytes()
    digest = hashlib.sha256(values_bytes).hexdigest()
    endpoint = endpoint_of(yaml.safe_load(values_bytes))
    try:
        if args.mode == "render":
            record = essentials(propeller_config(args.chart, args.rendered.read_text()))
            facts = check(record, endpoint)
            header = (
                f"# Propeller configuration rendered by Flyte's {args.chart} chart with "
                f"helm/propeller-values/{args.values.name}\n"
                "# (scripts/render-propeller-config.sh); CI re-checks it offline (... recorded).\n"
            )
            body = {"chart": args.chart, "values_sha256": digest, "propeller": record}
            args.record.write_text(header + yaml.safe_dump(body, sort_keys=False))
        else:
            saved = yaml.safe_load(args.record.read_text())
            if saved["values_sha256"] != digest:
                raise Failed(
                    f"{args.values} changed since {args.record} was rendered: run "
                    "scripts/render-propeller-config.sh with Flyte's charts again"
                )
            facts = check(saved["propeller"], endpoint)
    except (Failed, KeyError, TypeError) as exc:
        print(f"{args.values.name}: FAILED: {exc}", file=sys.stderr)
        return 1
    for fact in facts:
        print(f"{args.values.name}: {fact}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
