"""Every bad input gets its precise gRPC status and a one-sentence message; never INTERNAL or UNKNOWN."""

from __future__ import annotations

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2

from .conftest import Connector, file_sensor_request, inputs, load_template

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    code, details = info.value.code(), info.value.details() or ""
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), details
    assert details.endswith("."), f"message is not a sentence: {details!r}"
    assert "\n" not in details
    return code, details


async def test_unknown_task_category_on_create(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    request.template.type = "spark"
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == grpc.StatusCode.NOT_FOUND and "spark v0" in msg and "sensor v0" in msg


async def test_unknown_task_category_version_on_get(connector: Connector) -> None:
    meta = await connector.create(file_sensor_request("/tmp/x"))
    request = agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name="sensor", version=3), resource_meta=meta
    )
    code, msg = await status_of(connector.agent.GetTask(request))
    assert code == grpc.StatusCode.NOT_FOUND and "sensor v3" in msg


async def test_no_category_at_all(connector: Connector) -> None:
    meta = await connector.create(file_sensor_request("/tmp/x"))
    code, msg = await status_of(connector.agent.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta)))
    assert code == INVALID and "no task category" in msg


async def test_unknown_agent_name(connector: Connector) -> None:
    code, msg = await status_of(connector.metadata.GetAgent(agent_pb2.GetAgentRequest(name="Spark")))
    assert code == grpc.StatusCode.NOT_FOUND and "'Spark'" in msg and "Sensor" in msg


async def test_user_sensor_unknown_to_the_catalog_is_not_imported(connector: Connector) -> None:
    request = agent_pb2.CreateTaskRequest(
        template=load_template("user_sensor.json"), inputs=inputs(table="t")
    )
    code, msg = await status_of(connector.agent.CreateTask(request))
    # Not in the catalog and its module not allowed: the answer names the module and the option.
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "'tests.vectors.user_sensors' is not allowed" in msg and "--sensor-modules" in msg
    import sys

    assert "tests.vectors.user_sensors" not in sys.modules


async def test_module_named_by_request_is_never_imported(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    request.template.custom["sensor_module"] = "antigravity"
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "'antigravity' is not allowed" in msg
    import sys

    assert "antigravity" not in sys.modules


async def test_missing_input(connector: Connector) -> None:
    request = agent_pb2.CreateTaskRequest(template=load_template("file_sensor.json"))
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and "needs input path" in msg


async def test_mistyped_input(connector: Connector) -> None:
    request = agent_pb2.CreateTaskRequest(template=load_template("file_sensor.json"), inputs=inputs(path=42))
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and "input 'path' must be str" in msg


async def test_unknown_input(connector: Connector) -> None:
    request = agent_pb2.CreateTaskRequest(
        template=load_template("file_sensor.json"), inputs=inputs(path="/tmp/x", colour="red")
    )
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and "no input named colour" in msg


async def test_template_without_custom(connector: Connector) -> None:
    template = load_template("file_sensor.json")
    template.ClearField("custom")
    code, msg = await status_of(
        connector.agent.CreateTask(agent_pb2.CreateTaskRequest(template=template, inputs=inputs(path="/x")))
    )
    assert code == INVALID and "no `custom` field" in msg


async def test_custom_without_sensor_name(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    del request.template.custom["sensor_name"]
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and "sensor_name" in msg


async def test_request_without_template(connector: Connector) -> None:
    code, msg = await status_of(connector.agent.CreateTask(agent_pb2.CreateTaskRequest()))
    assert code == INVALID and "no task template" in msg


@pytest.mark.parametrize(
    ("sensor_config", "needle"),
    [
        ({"min_size": "big"}, "field 'min_size' must be int"),
        ({"colour": 1}, "has no field colour"),
        ({"min_size": -1}, "min_size must be zero or more"),
        ("not a dict", "must be a mapping"),
    ],
)
async def test_bad_sensor_config(connector: Connector, sensor_config: object, needle: str) -> None:
    request = file_sensor_request("/tmp/x")
    request.template.custom["sensor_config"] = sensor_config
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and needle in msg


async def test_declared_output_the_sensor_does_not_produce(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    request.template.interface.outputs.variables["o0"].type.simple = 3  # STRING
    code, msg = await status_of(connector.agent.CreateTask(request))
    assert code == INVALID and "declares output 'o0'" in msg


async def test_oversized_request_is_resource_exhausted(connector: Connector, make_connector) -> None:
    small = await make_connector(max_message_bytes=64 * 1024)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{small.port}") as channel:
        stub = Connector(small, channel).agent
        request = file_sensor_request("/tmp/" + "x" * (100 * 1024))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateTask(request)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_template_of_another_type_with_sensor_custom_is_not_served(connector: Connector) -> None:
    template = tasks_pb2.TaskTemplate()
    template.CopyFrom(load_template("file_sensor.json"))
    template.task_type_version = 1
    code, msg = await status_of(
        connector.agent.CreateTask(agent_pb2.CreateTaskRequest(template=template, inputs=inputs(path="/x")))
    )
    assert code == grpc.StatusCode.NOT_FOUND and "sensor v1" in msg
