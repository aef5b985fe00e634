"""Backends on first use: an idle server has imported no cloud SDK, and a backend's first import
runs off the event loop while other calls are answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
from flyteidl.core import execution_pb2

from . import slowfs_gate
from .conftest import ROOT, Connector, file_sensor_request

Phase = execution_pb2.TaskExecution.Phase
BACKENDS = ("s3fs", "gcsfs", "adlfs", "botocore", "aiobotocore", "google.auth", "google.cloud", "azure")

IDLE_SERVER = """
import asyncio, json, sys
from pathlib import Path
from connector.config import Config
from connector.server import Server

async def main():
    state = Path(sys.argv[1])
    config = Config(host="127.0.0.1", port=0, metrics_port=0, state_dir=state, preload=sys.argv[2:])
    server = Server(config)
    await server.startup()
    print(json.dumps(sorted(sys.modules)))
    server.request_exit()
    await server.shutdown()

asyncio.run(main())
"""


def idle_modules(tmp_path: Path, *preload: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", IDLE_SERVER, str(tmp_path / "state"), *preload],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def backends_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in BACKENDS or m.startswith(BACKENDS))


@pytest.mark.slow
def test_an_idle_server_has_imported_no_object_store_backend(tmp_path: Path) -> None:
    assert backends_in(idle_modules(tmp_path)) == []


@pytest.mark.slow
def test_preload_imports_the_named_backend_at_start(tmp_path: Path) -> None:
    loaded = backends_in(idle_modules(tmp_path, "s3"))
    assert "s3fs" in loaded and "botocore" in loaded
    assert not any(m.startswith(("gcsfs", "adlfs", "azure", "google.cloud")) for m in loaded)


async def test_a_backend_imports_off_the_loop_while_other_calls_are_answered(
    connector: Connector, tmp_path: Path
) -> None:
    fsspec.register_implementation("slowfs", "tests.slowfs.SlowFileSystem", clobber=True)
    local = tmp_path / "here"
    local.write_text("x")
    slow_metas = [await connector.create(file_sensor_request(f"slowfs://{tmp_path}/wait")) for _ in range(3)]
    local_meta = await connector.create(file_sensor_request(str(local)))

    first_uses = [asyncio.ensure_future(connector.get(meta)) for meta in slow_metas]
    try:
        assert await asyncio.to_thread(slowfs_gate.importing.wait, 30), "the backend import never started"
        # the import is under way and blocked: the loop still answers other calls, several times over
        for _ in range(5):
            assert (await connector.get(local_meta)).phase == Phase.SUCCEEDED
        assert not any(f.done() for f in first_uses)
    finally:
        slowfs_gate.release.set()
    resources = await asyncio.gather(*first_uses)
    assert {r.phase for r in resources} == {Phase.RUNNING}
    assert len(slowfs_gate.importers) == 1 and slowfs_gate.importers[0] == "import-fsspec:slowfs"
    settled = await connector.get(slow_metas[0])
    assert settled.phase == Phase.RUNNING and "does not exist yet" in settled.message


def test_gcs_support_is_gcsfs_json_api_client_without_the_experimental_layout_probe(tmp_path: Path) -> None:
    # gcsfs 2026.x would otherwise import (and use) its experimental class, whose first use of each
    # bucket probes the bucket's layout over gRPC: 60 s against an emulator or private endpoint.
    loaded = idle_modules(tmp_path, "gs")
    assert "gcsfs.core" in loaded
    assert "gcsfs.extended_gcsfs" not in loaded and "google.cloud.storage_control_v2" not in loaded
