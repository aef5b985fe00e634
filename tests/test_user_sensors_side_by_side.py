"""Users' own flytekit sensors side by side: the same stock-flytekit templates and inputs through
flytekit's own connector (`pyflyte serve connector`) and through this one, both with the fixture package
(tests/fixtures/user_pkg) on their PYTHONPATH. Where flytekit's works, both give the same phases; where
it answers an RPC error (a sync poke, a poke that raises), this one answers a phase."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2
from flyteidl.service import agent_pb2 as agent_service_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import SENSOR, free_port, inputs, load_template, spawn

Phase = execution_pb2.TaskExecution.Phase
pytestmark = pytest.mark.slow  # starts connector processes (and flytekit's)
HEALTH_SERVICE = agent_service_pb2.DESCRIPTOR.services_by_name["AsyncAgentService"].full_name


def wait_serving(port: int, proc: subprocess.Popen[bytes], within: float = 120) -> None:
    """Until flytekit's connector says SERVING for AsyncAgentService (it sets no overall status)."""
    deadline = time.monotonic() + within
    request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)
    while time.monotonic() < deadline:
        assert proc.poll() is None, "pyflyte serve connector exited"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                if health_pb2_grpc.HealthStub(channel).Check(request, timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.1)  # polling a child process's readiness
    raise AssertionError("pyflyte serve connector did not serve in time")


@pytest.fixture(scope="module")
def endpoints(user_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """flytekit's connector and this one, each a child process with the fixture package on its path."""
    env = {**os.environ, "PYTHONPATH": str(user_site)}
    port = free_port()
    pyflyte = Path(sys.executable).parent / "pyflyte"
    flytekit = subprocess.Popen(
        [str(pyflyte), "serve", "connector", "--port", str(port), "--prometheus_port", str(free_port())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    key = tmp_path_factory.mktemp("keys") / "signing.key"
    key.write_text("k" * 48)
    ours = spawn(
        # Every Get pokes, as flytekit's does (no answer sharing between Gets of one task).
        "--signing-key-file", str(key), "--metrics-port", "0", "--sensor-modules", "mysensors.markers",
        "--max-staleness", "0",
        env={"PYTHONPATH": str(user_site)},
    )  # fmt: skip
    try:
        wait_serving(port, flytekit)
        yield {"flytekit": port, "ours": ours.port}
    finally:
        flytekit.terminate()
        flytekit.wait(timeout=30)
        ours.stop()


def run(port: int, vector: str, values: literals_pb2.LiteralMap, make_true: Path | None) -> list[str]:
    """Create, Get, make the condition true (if given), Get again: the phases, or the RPC error codes."""
    stub = agent_pb2_grpc.AsyncAgentServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = agent_pb2.CreateTaskRequest(
        template=load_template(vector), inputs=values, output_prefix="s3://bucket/out"
    )
    try:
        meta = stub.CreateTask(request, timeout=30).resource_meta
    except grpc.RpcError as exc:
        return [f"Create {exc.code().name}"]
    seen = []
    for step in range(2):
        if step == 1 and make_true is not None:
            make_true.touch()
        get = agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta)
        try:
            seen.append(Phase.Name(stub.GetTask(get, timeout=30).resource.phase))
        except grpc.RpcError as exc:
            seen.append(f"Get {exc.code().name}")
    return seen


def both(endpoints: dict[str, int], tmp_path: Path, vector: str, suffix: str = "") -> dict[str, list[str]]:
    answers = {}
    for name, port in endpoints.items():
        path = tmp_path / name / "ready"
        path.parent.mkdir()
        answers[name] = run(port, vector, inputs(path=str(path)), Path(f"{path}{suffix}"))
    return answers


def test_an_async_poke_with_str_inputs_gives_the_same_phases(
    endpoints: dict[str, int], tmp_path: Path
) -> None:
    answers = both(endpoints, tmp_path, "user_marker.json")
    assert answers["flytekit"] == answers["ours"] == ["RUNNING", "SUCCEEDED"]


def test_a_sensor_config_gives_the_same_phases(endpoints: dict[str, int], tmp_path: Path) -> None:
    answers = both(endpoints, tmp_path, "user_marker_suffix.json", suffix=".done")
    assert answers["flytekit"] == answers["ours"] == ["RUNNING", "SUCCEEDED"]


def test_a_sync_poke_fails_there_and_works_here(endpoints: dict[str, int], tmp_path: Path) -> None:
    answers = both(endpoints, tmp_path, "user_sync.json")
    assert answers["flytekit"] == ["Get INTERNAL", "Get INTERNAL"]  # it awaits the bool
    assert answers["ours"] == ["RUNNING", "SUCCEEDED"]


def test_a_poke_that_raises_is_an_rpc_error_there_and_a_phase_here(
    endpoints: dict[str, int], tmp_path: Path
) -> None:
    answers = both(endpoints, tmp_path, "user_table.json")  # raises until the path exists
    assert answers["flytekit"] == ["Get INTERNAL", "SUCCEEDED"]
    assert answers["ours"] == ["RUNNING", "SUCCEEDED"]
