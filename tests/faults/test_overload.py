"""A burst far beyond --max-concurrent-rpcs: every call is served or refused RESOURCE_EXHAUSTED (which
clients may retry), none is CANCELLED by grpc core's pending queue, and discovery and health still answer."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..conftest import SENSOR, SilentStore, file_sensor_request, free_port, scrape, spawn

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase
BURST = 2000
LIMIT = 100


async def test_a_2000_call_burst_at_100_concurrent_gets_only_answers_or_resource_exhausted(
    key_file: Path, tmp_path: Path, silent_store: SilentStore
) -> None:
    # Every poke waits on a store that never answers, so calls stay in flight for the poke budget and the
    # burst really exceeds the limit.
    metrics_port = free_port()
    proc = spawn(
        "--signing-key-file",
        str(key_file),
        "--state-dir",
        str(tmp_path),
        "--metrics-port",
        str(metrics_port),
        "--max-concurrent-rpcs",
        str(LIMIT),
        "--poke-timeout",
        "1",
        env=silent_store.aws_env,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            meta = (await stub.CreateTask(file_sensor_request("s3://bucket/key"), timeout=10)).resource_meta
            request = agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta)

            async def one() -> str:
                try:
                    reply = await stub.GetTask(request, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    return str(exc.code().name)
                return "answered" if reply.resource.phase == Phase.RUNNING else "wrong phase"

            burst = [asyncio.ensure_future(one()) for _ in range(BURST)]
            # While the burst is under way, discovery and health are not refused.
            metadata = agent_pb2_grpc.AgentMetadataServiceStub(channel)
            agents = await metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=30)
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=30
            )
            outcomes = collections.Counter(await asyncio.gather(*burst))
        refused = scrape(metrics_port)[
            ("flyte_sensor_connector_rpcs_refused_total", (("reason", "overload"),))
        ]
    finally:
        proc.stop()

    assert set(outcomes) <= {"answered", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["RESOURCE_EXHAUSTED"] > 0, "the burst never exceeded the limit"
    assert outcomes["answered"] >= LIMIT, outcomes
    assert refused == outcomes["RESOURCE_EXHAUSTED"]
    assert agents.agents and health.status == health_pb2.HealthCheckResponse.SERVING
