"""The full lifecycle through flyteidl's stubs against the real server, as flytepropeller drives it."""

from __future__ import annotations

from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from .conftest import S3, Connector, file_sensor_request

Phase = execution_pb2.TaskExecution.Phase


async def test_file_sensor_runs_until_the_file_exists_then_succeeds(
    connector: Connector, tmp_path: Path
) -> None:
    target = tmp_path / "landing" / "data.csv"
    meta = await connector.create(file_sensor_request(str(target)))

    first = await connector.get(meta)
    assert first.phase == Phase.RUNNING
    assert str(target) in first.message and "does not exist" in first.message
    info = json_format.MessageToDict(first.custom_info)
    assert info["sensor"] == "FileSensor"
    assert info["awaiting"] == {"path": str(target)}
    assert info["outcome"] == "waiting"

    target.parent.mkdir()
    target.write_text("a,b\n")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert json_format.MessageToDict(done.custom_info)["details"]["size"] == 4

    await connector.agent.DeleteTask(
        agent_pb2.DeleteTaskRequest(task_category=agent_pb2.TaskCategory(name="sensor"), resource_meta=meta)
    )
    # Delete is idempotent: propeller may send it again on cleanup.
    await connector.agent.DeleteTask(agent_pb2.DeleteTaskRequest(task_type="sensor", resource_meta=meta))


async def test_file_url_and_directory_count_as_existing(connector: Connector, tmp_path: Path) -> None:
    meta = await connector.create(file_sensor_request(f"file://{tmp_path}"))
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_deprecated_task_type_alone_means_version_zero(connector: Connector, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))
    response = await connector.agent.GetTask(agent_pb2.GetTaskRequest(task_type="sensor", resource_meta=meta))
    assert response.resource.phase == Phase.SUCCEEDED


async def test_file_sensor_on_s3_compatible_store(connector: Connector, s3: S3) -> None:
    url = f"s3://{s3.bucket}/day=2026-11-24/part-0.parquet"
    meta = await connector.create(file_sensor_request(url))
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING, waiting.message
    assert "does not exist yet" in waiting.message
    assert [link.name for link in waiting.log_links] == ["S3 console"]

    s3.client().put_object(Bucket=s3.bucket, Key="day=2026-11-24/part-0.parquet", Body=b"PAR1")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert json_format.MessageToDict(done.custom_info)["details"]["size"] == 4


async def test_a_missing_bucket_fails_naming_the_path(connector: Connector, s3: S3) -> None:
    # Issue 19: on every store a bucket that does not exist fails the task (no object can land in it),
    # where it used to wait forever as "not there yet".
    url = f"s3://{s3.bucket}-absent/key"
    resource = await connector.get(await connector.create(file_sensor_request(url)))
    assert resource.phase == Phase.FAILED, resource.message
    assert resource.message.startswith(f"{url}: the bucket {s3.bucket}-absent does not exist"), (
        resource.message
    )


async def test_list_agents_and_get_agent_come_from_the_registry(connector: Connector) -> None:
    listed = await connector.metadata.ListAgents(agent_pb2.ListAgentsRequest())
    assert len(listed.agents) == 1
    agent = listed.agents[0]
    assert agent.name == "Sensor" and not agent.is_sync
    assert [(c.name, c.version) for c in agent.supported_task_categories] == [("sensor", 0)]
    assert list(agent.supported_task_types) == ["sensor"]
    got = await connector.metadata.GetAgent(agent_pb2.GetAgentRequest(name="Sensor"))
    assert got.agent == agent


async def test_health_serves_overall_and_per_service(connector: Connector) -> None:
    stub = health_pb2_grpc.HealthStub(connector.channel)
    for service in ("", "flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_services(connector: Connector) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(connector.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in reply.list_services_response.service}
        break
    assert {
        "flyteidl.service.AsyncAgentService",
        "flyteidl.service.AgentMetadataService",
        "grpc.health.v1.Health",
    } <= names


async def test_resource_meta_from_one_replica_is_accepted_by_another(
    connector: Connector, make_connector, tmp_path: Path
) -> None:
    (tmp_path / "ready").write_text("")
    meta = await connector.create(file_sensor_request(str(tmp_path / "ready")))
    other = await make_connector()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
        replica = Connector(other, channel)
        assert (await replica.get(meta)).phase == Phase.SUCCEEDED


async def test_a_sensor_with_min_size_waits_for_enough_bytes(connector: Connector, tmp_path: Path) -> None:
    request = file_sensor_request(str(tmp_path / "big"))
    request.template.custom["sensor_config"] = {"min_size": 10}
    (tmp_path / "big").write_text("short")
    meta = await connector.create(request)
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING and "has 5 bytes, waiting for 10" in waiting.message
    (tmp_path / "big").write_text("long enough now")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_the_request_path_imports_nothing(connector: Connector, s3: S3, tmp_path: Path) -> None:
    import sys

    before = set(sys.modules)
    for path in (str(tmp_path / "local"), f"s3://{s3.bucket}/key", "gs://bucket/key"):
        meta = await connector.create(file_sensor_request(path))
        await connector.agent.DeleteTask(agent_pb2.DeleteTaskRequest(task_type="sensor", resource_meta=meta))
    await connector.get(await connector.create(file_sensor_request(str(tmp_path / "local"))))
    await connector.get(await connector.create(file_sensor_request(f"s3://{s3.bucket}/key")))
    assert set(sys.modules) - before == set()
