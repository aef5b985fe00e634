"""Flyte 2's protocol (flyteidl2.connector) through the real server, driven by flyteidl2's own stubs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2
from flyteidl.core import tasks_pb2 as tasks_v1
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import execution_pb2 as execution_v2
from flyteidl2.core import literals_pb2 as literals_v2
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as tasks_v2
from flyteidl2.task import common_pb2
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from connector.observe import logs
from sensors.flytekit import GlobSensor

from .conftest import Connector, file_sensor_request, load_template
from .vectors.serialize import template_of

Phase = execution_v2.TaskExecution.Phase
CATEGORY = connector_pb2.TaskCategory(name="sensor", version=0)
V2_SERVICES = ("flyteidl2.connector.AsyncConnectorService", "flyteidl2.connector.ConnectorMetadataService")
V1_SERVICES = ("flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService")


def v2_template(template: tasks_v1.TaskTemplate) -> tasks_v2.TaskTemplate:
    """The same template as Flyte 2's executor sends it: flyteidl2 has every flyteidl field under its
    number (its JSON differs: an interface's variables are a list there)."""
    return tasks_v2.TaskTemplate.FromString(template.SerializeToString())


def named(**values: str) -> common_pb2.Inputs:
    """Flyte 2 inputs: a list of named literals."""
    literals = [
        common_pb2.NamedLiteral(
            name=name,
            value=literals_v2.Literal(
                scalar=literals_v2.Scalar(primitive=literals_v2.Primitive(string_value=value))
            ),
        )
        for name, value in values.items()
    ]
    return common_pb2.Inputs(literals=literals)


def file_sensor(path: str, **connection: Any) -> connector_pb2.CreateTaskRequest:
    template = v2_template(load_template("file_sensor.json"))
    return connector_pb2.CreateTaskRequest(
        template=template,
        inputs=named(path=path),
        output_prefix="s3://bucket/out",
        connection=security_pb2.Connection(**connection),
    )


class Flyte2:
    """Calls as Flyte 2's connector plugin makes them."""

    def __init__(self, connector: Connector) -> None:
        self.channel = connector.channel
        self.tasks = service_pb2_grpc.AsyncConnectorServiceStub(self.channel)
        self.metadata = service_pb2_grpc.ConnectorMetadataServiceStub(self.channel)
        self.connection = security_pb2.Connection(task_type="sensor", secrets={"token": "s3cr3t-value"})

    async def create(self, request: connector_pb2.CreateTaskRequest) -> bytes:
        response = await self.tasks.CreateTask(request, timeout=10)
        return bytes(response.resource_meta)

    async def get(self, meta: bytes) -> connector_pb2.Resource:
        request = connector_pb2.GetTaskRequest(
            task_category=CATEGORY,
            resource_meta=meta,
            output_prefix="s3://bucket/out",
            connection=self.connection,
        )
        response = await self.tasks.GetTask(request, timeout=10)
        return response.resource

    async def raw_get(self, meta: bytes) -> bytes:
        """The GetTask answer's bytes as they came over the wire."""
        call = self.channel.unary_unary(
            "/flyteidl2.connector.AsyncConnectorService/GetTask",
            request_serializer=connector_pb2.GetTaskRequest.SerializeToString,
            response_deserializer=None,
        )
        answer: bytes = await call(connector_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=meta))
        return answer

    async def delete(self, meta: bytes) -> None:
        request = connector_pb2.DeleteTaskRequest(
            task_category=CATEGORY, resource_meta=meta, connection=self.connection
        )
        await self.tasks.DeleteTask(request, timeout=10)


@pytest.fixture
def flyte2(connector: Connector) -> Flyte2:
    return Flyte2(connector)


def test_the_messages_converted_at_the_edge_are_wire_compatible() -> None:
    """What connector/flyte2.py relies on: the same field numbers and types on both sides."""

    def fields(descriptor: Any) -> dict[int, tuple[int, bool]]:
        return {f.number: (f.type, f.is_repeated) for f in descriptor.fields}

    def subset(v1: Any, v2: Any, seen: set[str]) -> None:
        if v1.full_name in seen:
            return
        seen.add(v1.full_name)
        theirs = {f.number: f for f in v2.fields}
        for field in v1.fields:
            other = theirs.get(field.number)
            if other is None:
                continue  # a flyteidl field flyteidl2 dropped: ignored on the way in, never sent back
            assert (field.type, field.is_repeated) == (other.type, other.is_repeated), field.full_name
            if field.message_type is not None:
                subset(field.message_type, other.message_type, seen)
            if field.enum_type is not None:
                ours = {v.number: v.name for v in field.enum_type.values}
                assert ours.items() <= {v.number: v.name for v in other.enum_type.values}.items()

    seen: set[str] = set()
    subset(tasks_v1.TaskTemplate.DESCRIPTOR, tasks_v2.TaskTemplate.DESCRIPTOR, seen)
    subset(agent_pb2.CreateTaskRequest.DESCRIPTOR, connector_pb2.CreateTaskRequest.DESCRIPTOR, seen)
    subset(agent_pb2.GetTaskResponse.DESCRIPTOR, connector_pb2.GetTaskResponse.DESCRIPTOR, seen)
    for name in (
        "GetTaskMetricsRequest",
        "GetTaskMetricsResponse",
        "GetTaskLogsRequest",
        "GetTaskLogsResponse",
    ):
        subset(getattr(agent_pb2, name).DESCRIPTOR, getattr(connector_pb2, name).DESCRIPTOR, seen)
    # A LiteralMap's map entry is {key = 1, value = 2}: a NamedLiteral {name = 1, value = 2} on the wire.
    entry = literals_pb2.LiteralMap.DESCRIPTOR.fields_by_name["literals"].message_type
    for io in (common_pb2.Inputs, common_pb2.Outputs):
        assert fields(io.DESCRIPTOR)[1] == (11, True)
        assert fields(io.DESCRIPTOR.fields_by_name["literals"].message_type) == fields(entry)
    # The phases the engine answers mean the same in both.
    v1_phase = execution_pb2.TaskExecution.Phase
    for name in ("RUNNING", "SUCCEEDED", "FAILED"):
        assert v1_phase.Value(name) == Phase.Value(name)


async def test_file_sensor_lifecycle_over_flyte2(
    connector: Connector, flyte2: Flyte2, tmp_path: Path
) -> None:
    target = tmp_path / "landing" / "data.csv"
    meta = await flyte2.create(file_sensor(str(target), task_type="sensor", secrets={"k": "s3cr3t-value"}))

    first = await flyte2.get(meta)
    assert first.phase == Phase.RUNNING
    assert str(target) in first.message and "does not exist" in first.message
    info = json_format.MessageToDict(first.custom_info)
    assert info["sensor"] == "FileSensor" and info["awaiting"] == {"path": str(target)}

    target.parent.mkdir()
    target.write_text("a,b\n")
    done = await flyte2.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert not done.HasField("outputs"), "the template declares no outputs"
    # Delete is idempotent: the plugin may abort twice, then finalize.
    await flyte2.delete(meta)
    await flyte2.delete(meta)


async def test_connection_secrets_never_reach_logs(
    connector: Connector, flyte2: Flyte2, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    caplog.handler.addFilter(logs.ProtocolFilter())  # as logs.setup() installs it on the server's handler
    meta = await flyte2.create(file_sensor(str(tmp_path / "x"), secrets={"token": "s3cr3t-value"}))
    await flyte2.get(meta)
    await flyte2.delete(meta)
    assert "s3cr3t-value" not in caplog.text
    engine_lines = [r for r in caplog.records if r.name.startswith("connector.")]
    assert engine_lines and all(getattr(r, "protocol", None) == "flyte2" for r in engine_lines)


async def test_no_answer_is_undefined_or_retryable(flyte2: Flyte2, tmp_path: Path) -> None:
    """Flyte 2's plugin fails UNDEFINED answers and treats RETRYABLE_FAILED as final."""
    answers = []
    for path in (str(tmp_path / "missing"), str(tmp_path), "nosuchproto://bucket/key"):
        answers.append((await flyte2.get(await flyte2.create(file_sensor(path)))).phase)
    answers.append((await flyte2.get(b"garbage")).phase)
    assert answers == [Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED, Phase.FAILED]


async def test_tampered_resource_meta_is_a_failed_phase_without_agent_error(
    flyte2: Flyte2, tmp_path: Path
) -> None:
    meta = bytearray(await flyte2.create(file_sensor(str(tmp_path / "never"))))
    meta[len(meta) // 2] ^= 0x01
    raw = await flyte2.raw_get(bytes(meta))
    resource = connector_pb2.GetTaskResponse.FromString(raw).resource
    assert resource.phase == Phase.FAILED
    assert "resource_meta" in resource.message
    # flyteidl2's Resource has no agent_error: the answer carries nothing flyteidl2 does not know.
    assert not agent_pb2.GetTaskResponse.FromString(raw).resource.HasField("agent_error")


async def test_a_task_created_over_one_protocol_is_answered_over_the_other(
    connector: Connector, flyte2: Flyte2, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    from_flyte1 = await connector.create(file_sensor_request(str(one)))
    from_flyte2 = await flyte2.create(file_sensor(str(two)))
    assert (await flyte2.get(from_flyte1)).phase == Phase.RUNNING
    assert (await connector.get(from_flyte2)).phase == Phase.RUNNING
    one.write_text("")
    two.write_text("")
    over_v2, over_v1 = await flyte2.get(from_flyte1), await connector.get(from_flyte2)
    assert over_v2.phase == Phase.SUCCEEDED and over_v1.phase == Phase.SUCCEEDED
    assert over_v2.message == over_v1.message.replace(str(two), str(one))


async def test_glob_sensor_outputs_are_task_outputs(flyte2: Flyte2, tmp_path: Path) -> None:
    sensor = GlobSensor(name="wait_parts", min_count=2, outputs=True)
    request = connector_pb2.CreateTaskRequest(
        template=v2_template(template_of(sensor)), inputs=named(pattern=f"{tmp_path}/*.parquet")
    )
    meta = await flyte2.create(request)
    (tmp_path / "part-1.parquet").write_bytes(b"PAR1")
    (tmp_path / "part-0.parquet").write_bytes(b"PAR1")
    done = await flyte2.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    [paths] = done.outputs.literals
    assert paths.name == "paths"
    got = [item.scalar.primitive.string_value for item in paths.value.collection.literals]
    assert got == [f"{tmp_path}/part-0.parquet", f"{tmp_path}/part-1.parquet"]


async def test_default_deadline_applies_to_flyte2_tasks_that_set_none(
    connector: Connector, flyte2: Flyte2, tmp_path: Path
) -> None:
    meta = await flyte2.create(file_sensor(str(tmp_path / "never")))
    policy = json_format.MessageToDict((await flyte2.get(meta)).custom_info)["policy"]
    created = json_format.MessageToDict((await flyte2.get(meta)).custom_info)["created_at"]
    deadline = dt.datetime.fromisoformat(policy["deadline"].replace("Z", "+00:00"))
    assert deadline - dt.datetime.fromisoformat(created) == dt.timedelta(days=1)
    assert policy["at_deadline"] == "fail"

    # A deadline of the task's own is kept; Flyte 1 tasks (propeller has its own timeouts) get none.
    own = file_sensor(str(tmp_path / "never"))
    own.template.custom.fields["sensor_config"].struct_value.update({"deadline": 60})
    own_policy = json_format.MessageToDict((await flyte2.get(await flyte2.create(own))).custom_info)["policy"]
    assert own_policy["deadline"] != policy["deadline"]
    v1_meta = await connector.create(file_sensor_request(str(tmp_path / "never")))
    assert "policy" not in json_format.MessageToDict((await connector.get(v1_meta)).custom_info)


async def test_soft_fail_needs_a_deadline_of_the_tasks_own_as_over_flyte1(
    connector: Connector, flyte2: Flyte2, tmp_path: Path
) -> None:
    """The default deadline is the connector's, not the task's: one template is refused alike on both."""
    v2 = file_sensor(str(tmp_path / "never"))
    v2.template.custom.fields["sensor_config"].struct_value.update({"soft_fail": True})
    v1 = file_sensor_request(str(tmp_path / "never"))
    v1.template.custom.fields["sensor_config"].struct_value.update({"soft_fail": True})
    refusals = []
    for create in (lambda: flyte2.create(v2), lambda: connector.create(v1)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await create()
        refusals.append((info.value.code(), info.value.details()))
    assert (
        refusals == [(grpc.StatusCode.INVALID_ARGUMENT, "policy field 'soft_fail' needs a 'deadline'.")] * 2
    )


async def test_default_deadline_zero_means_none(make_connector: Any, tmp_path: Path) -> None:
    server = await make_connector(flyte2_default_deadline=0.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        flyte2 = Flyte2(Connector(server, channel))
        meta = await flyte2.create(file_sensor(str(tmp_path / "never")))
        assert "policy" not in json_format.MessageToDict((await flyte2.get(meta)).custom_info)


async def test_bad_requests_get_a_precise_status(flyte2: Flyte2, tmp_path: Path) -> None:
    twice = file_sensor(str(tmp_path / "x"))
    twice.inputs.literals.extend(named(path="/elsewhere").literals)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await flyte2.create(twice)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "the request's inputs name path more than once."

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await flyte2.tasks.GetTask(connector_pb2.GetTaskRequest(resource_meta=b"x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "the request names no task category (task_category is empty)."

    unknown = connector_pb2.TaskCategory(name="spark", version=0)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await flyte2.tasks.DeleteTask(connector_pb2.DeleteTaskRequest(task_category=unknown), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_logs_and_metrics_over_flyte2(flyte2: Flyte2, tmp_path: Path) -> None:
    meta = await flyte2.create(file_sensor(str(tmp_path / "never")))
    request = connector_pb2.GetTaskLogsRequest(task_category=CATEGORY, resource_meta=meta)
    header, body = [reply async for reply in flyte2.tasks.GetTaskLogs(request, timeout=10)]
    assert header.HasField("header") and body.body.lines
    assert any(str(tmp_path / "never") in line.message for line in body.body.lines)
    metrics = await flyte2.tasks.GetTaskMetrics(
        connector_pb2.GetTaskMetricsRequest(
            task_category=CATEGORY, resource_meta=meta, queries=["elapsed_seconds"]
        ),
        timeout=10,
    )
    assert [result.metric for result in metrics.results] == ["elapsed_seconds"]


async def test_calls_are_counted_by_protocol(connector: Connector, flyte2: Flyte2, tmp_path: Path) -> None:
    meta = await flyte2.create(file_sensor(str(tmp_path / "x")))
    await flyte2.get(meta)
    await flyte2.get(meta)
    await connector.get(meta)

    def counted(protocol: str, operation: str) -> float | None:
        labels = {"protocol": protocol, "operation": operation, "code": "OK"}
        name = "flyte_sensor_connector_protocol_requests_total"
        return connector.server.metrics.registry.get_sample_value(name, labels)

    assert counted("flyte2", "create") == 1
    assert counted("flyte2", "get") == 2
    assert counted("flyte1", "get") == 1


async def test_list_and_get_connector(flyte2: Flyte2) -> None:
    listed = await flyte2.metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=10)
    assert [
        (c.name, [(t.name, t.version) for t in c.supported_task_categories]) for c in listed.connectors
    ] == [("Sensor", [("sensor", 0)])]
    got = await flyte2.metadata.GetConnector(connector_pb2.GetConnectorRequest(name="Sensor"), timeout=10)
    assert got.connector == listed.connectors[0]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await flyte2.metadata.GetConnector(connector_pb2.GetConnectorRequest(name="Spark"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no connector is named 'Spark'; this deployment runs Sensor."


async def test_health_and_reflection_list_both_protocols(connector: Connector) -> None:
    health = health_pb2_grpc.HealthStub(connector.channel)
    for service in (*V1_SERVICES, *V2_SERVICES):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    reflection = reflection_pb2_grpc.ServerReflectionStub(connector.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [reply] = [r async for r in reflection.ServerReflectionInfo(iter([request]), timeout=10)]
    listed = {s.name for s in reply.list_services_response.service}
    assert {*V1_SERVICES, *V2_SERVICES} <= listed
    # Reflection also describes the Flyte 2 services (grpcurl needs their files).
    files = reflection_pb2.ServerReflectionRequest(file_containing_symbol=V2_SERVICES[0])
    [reply] = [r async for r in reflection.ServerReflectionInfo(iter([files]), timeout=10)]
    assert reply.file_descriptor_response.file_descriptor_proto
