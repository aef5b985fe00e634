"""The `sensor-connector serve` process: restarts, replicas, signals, and settings from the environment."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import SENSOR, SilentStore, file_sensor_request, spawn

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase


def _stub(port: int) -> agent_pb2_grpc.AsyncAgentServiceStub:
    return agent_pb2_grpc.AsyncAgentServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def _get(port: int, meta: bytes) -> agent_pb2.Resource:
    reply = _stub(port).GetTask(
        agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta), timeout=10
    )
    return reply.resource


def test_a_restart_with_the_generated_key_keeps_running_sensors_valid(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    (tmp_path / "f").write_text("")
    first = spawn("--state-dir", state, "--metrics-port", "0")
    try:
        meta = (
            _stub(first.port).CreateTask(file_sensor_request(str(tmp_path / "f")), timeout=10).resource_meta
        )
    finally:
        assert first.stop() == 0
    assert any("Replicas must share one key" in line for line in first.log)
    assert (tmp_path / "state" / "signing.key").stat().st_mode & 0o777 == 0o600

    second = spawn("--state-dir", state, "--metrics-port", "0")
    try:
        assert _get(second.port, meta).phase == Phase.SUCCEEDED
    finally:
        second.stop()


def test_replicas_sharing_a_key_file_from_the_environment_accept_each_others_meta(
    tmp_path: Path, key_file: Path
) -> None:
    env = {
        "SENSOR_CONNECTOR_SIGNING_KEY_FILE": str(key_file),
        "SENSOR_CONNECTOR_METRICS_PORT": "0",
        "SENSOR_CONNECTOR_LOG_FORMAT": "json",
    }
    a = spawn(env={**env, "SENSOR_CONNECTOR_STATE_DIR": str(tmp_path / "a")})
    b = spawn(env={**env, "SENSOR_CONNECTOR_STATE_DIR": str(tmp_path / "b")})
    try:
        meta = _stub(a.port).CreateTask(file_sensor_request(str(tmp_path)), timeout=10).resource_meta
        assert _get(b.port, meta).phase == Phase.SUCCEEDED
        other = spawn("--state-dir", str(tmp_path / "c"), "--metrics-port", "0")  # a replica with its own key
        try:
            # Signed with a key it lacks: Running (another replica may hold it), never an RPC error.
            waiting = _get(other.port, meta)
            assert waiting.phase == Phase.RUNNING and "does not hold" in waiting.message
        finally:
            other.stop()
    finally:
        a.stop()
        b.stop()
    assert a.log[0].startswith("{"), "SENSOR_CONNECTOR_LOG_FORMAT=json was not applied"
    assert not (tmp_path / "a").exists(), "a key file was given, so no key may be generated"


async def test_sigterm_drains_then_refuses_new_calls_and_finishes_in_flight_ones(
    key_file: Path, tmp_path: Path, silent_store: SilentStore
) -> None:
    proc = spawn(
        "--signing-key-file",
        str(key_file),
        "--poke-timeout",
        "6",
        "--drain-period",
        "60",  # ended below by a second SIGTERM, as an impatient operator would
        "--grace-period",
        "15",
        "--metrics-port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        env=silent_store.aws_env,
    )
    (tmp_path / "data").mkdir()  # a directory that exists inside the local roots (the state directory is not)
    hanging = agent_pb2.GetTaskRequest(task_category=SENSOR)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            hanging.resource_meta = (
                await stub.CreateTask(file_sensor_request("s3://bucket/key"))
            ).resource_meta
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

            os.kill(proc.proc.pid, signal.SIGTERM)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            # Draining: NOT_SERVING, yet every call is still served, new ones included.
            created = await stub.CreateTask(file_sensor_request(str(tmp_path / "data")), timeout=10)
            resource = (
                await stub.GetTask(
                    agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=created.resource_meta),
                    timeout=10,
                )
            ).resource
            assert resource.phase == Phase.SUCCEEDED

            in_flight = asyncio.ensure_future(stub.GetTask(hanging, timeout=20))
            assert await asyncio.to_thread(silent_store.wait_for, 1), "the poke never reached the store"
            os.kill(proc.proc.pid, signal.SIGTERM)  # the second signal ends the drain

            # Now the port refuses new calls (UNAVAILABLE) while the poke in flight still runs.
            refused = None
            deadline = asyncio.get_running_loop().time() + 10
            while refused is None and asyncio.get_running_loop().time() < deadline:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as fresh:
                    try:
                        await agent_pb2_grpc.AsyncAgentServiceStub(fresh).CreateTask(
                            file_sensor_request(str(tmp_path / "data")), timeout=5
                        )
                    except grpc.aio.AioRpcError as exc:
                        # A call racing the GOAWAY by a millisecond is cancelled by grpc core; the drain
                        # period is there so that no client is still sending by then.
                        if exc.code() != grpc.StatusCode.CANCELLED:
                            refused = exc
            assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE
            assert not in_flight.done(), "the poke in flight should still be waiting on the store"

            resource = (await in_flight).resource
            # The store client's read timeout is bounded inside the poke budget, so it says why.
            assert resource.phase == Phase.RUNNING
            assert "could not reach the store (Read timeout" in resource.message
        assert proc.proc.wait(timeout=20) == 0
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
    assert any("draining: health NOT_SERVING" in line for line in proc.log)


def test_a_bad_setting_is_refused_with_a_sentence(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad_env = {**os.environ, "SENSOR_CONNECTOR_POKE_TIMEOUT": "soon"}
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "serve"],
        env=bad_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "SENSOR_CONNECTOR_POKE_TIMEOUT='soon' is not a valid poke_timeout" in result.stderr
    short = tmp_path / "k"
    short.write_text("short")
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "serve", "--signing-key-file", str(short)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "at least 32 are needed" in result.stderr


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_either_event_loop_serves_a_sensor_to_the_end(tmp_path: Path, event_loop: str) -> None:
    args = ("--state-dir", str(tmp_path / "state"), "--metrics-port", "0", "--max-staleness", "0")
    server = spawn(*args, "--event-loop", event_loop)
    try:
        assert any(f"(plaintext, {event_loop})" in line for line in server.log), server.log
        target = tmp_path / "ready"
        meta = _stub(server.port).CreateTask(file_sensor_request(str(target)), timeout=10).resource_meta
        assert _get(server.port, meta).phase == Phase.RUNNING
        target.write_text("x")
        assert _get(server.port, meta).phase == Phase.SUCCEEDED
    finally:
        code = server.stop()
    assert code == 0
