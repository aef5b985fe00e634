"""The shipped Grafana dashboard queries only metrics the connector really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import ROOT, Connector, file_sensor_request, free_port

DASHBOARD = ROOT / "helm" / "sensor-connector" / "dashboards" / "sensor-connector.json"


def exported_names(port: int) -> set[str]:
    """Every series name the endpoint declares, sampled yet or not (a labelled counter that never
    moved has its HELP/TYPE but no sample)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"),
        }
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


async def test_every_dashboard_metric_is_exported_after_a_lifecycle(make_connector, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import grpc

    port = free_port()
    server = await make_connector(metrics_port=port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        c = Connector(server, channel)
        meta = await c.create(file_sensor_request(str(tmp_path / "f")))
        await c.get(meta)
        (tmp_path / "f").write_text("x")
        await c.get(meta)
    exported = exported_names(port)

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b((?:flyte|process|python)_[a-z_]+)\b", expr)}
    assert used, "the dashboard queries nothing"
    missing = sorted(used - exported)
    assert not missing, f"the dashboard queries metrics the connector does not export: {missing}"
    assert "process_resident_memory_bytes" in used
    # Request latency is read as a quantile over the histogram's buckets, never as a plain average only.
    latency = [e for e in exprs if "flyte_connector_request_latency_seconds" in e]
    assert any(
        e.startswith("histogram_quantile(0.99,") and "flyte_connector_request_latency_seconds_bucket" in e
        for e in latency
    ), latency
