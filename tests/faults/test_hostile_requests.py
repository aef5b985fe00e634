"""Requests a hostile caller would send: each gets a precise status and one short sentence, never
UNKNOWN/INTERNAL, and nothing from them is kept (Create refuses what a poke could trip over)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2

from ..conftest import Connector, file_sensor_request, literal

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MAX_MESSAGE = 300


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand: the library refuses to build what we send."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_literal(depth: int) -> bytes:
    """A Literal that is a collection of a collection of ... `depth` deep, as bytes."""
    collection = literals_pb2.Literal.DESCRIPTOR.fields_by_name["collection"].number
    items = literals_pb2.LiteralCollection.DESCRIPTOR.fields_by_name["literals"].number
    data: bytes = literal("x").SerializeToString()
    for _ in range(depth):
        data = _field(collection, _field(items, data))
    return data


async def refusal(call: object) -> tuple[grpc.StatusCode, str]:
    """The status and message a call was refused with."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    details = info.value.details() or ""
    assert len(details) <= MAX_MESSAGE, f"{len(details)}-character message: {details[:120]}..."
    return info.value.code(), details


async def test_a_literal_nested_1000_deep_is_invalid_argument(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    del request.inputs.literals["path"]
    literals_map = literals_pb2.LiteralMap.DESCRIPTOR.fields_by_name["literals"].number
    inputs = agent_pb2.CreateTaskRequest.DESCRIPTOR.fields_by_name["inputs"].number
    entry = _field(1, b"path") + _field(2, nested_literal(1000))
    data = request.SerializeToString() + _field(inputs, _field(literals_map, entry))
    create = connector.channel.unary_unary("/flyteidl.service.AsyncAgentService/CreateTask")
    code, message = await refusal(create(data, timeout=10))
    assert code == INVALID and "could not be decoded" in message


@pytest.mark.parametrize("method", ["GetTask", "DeleteTask", "CreateTask", "GetTaskMetrics"])
async def test_garbage_bytes_are_invalid_argument(connector: Connector, method: str) -> None:
    call = connector.channel.unary_unary(f"/flyteidl.service.AsyncAgentService/{method}")
    code, message = await refusal(call(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10))
    assert code == INVALID and f"the {method} request could not be decoded" in message
    refused = connector.server.metrics.registry.get_sample_value(
        "flyte_sensor_connector_rpcs_refused_total", {"reason": "undecodable"}
    )
    assert refused == 1


async def test_garbage_bytes_to_the_streaming_logs_call_are_invalid_argument(connector: Connector) -> None:
    call = connector.channel.unary_stream("/flyteidl.service.AsyncAgentService/GetTaskLogs")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10):
            pass
    assert info.value.code() == INVALID


@pytest.mark.parametrize("path", ["/data/a\x00b", "s3://bucket/a\x1b[2Jb", "/data/\x7fx", "/data/\x85x"])
async def test_a_control_character_in_a_path_is_refused_at_create(connector: Connector, path: str) -> None:
    code, message = await refusal(connector.agent.CreateTask(file_sensor_request(path)))
    assert code == INVALID and "control character U+" in message and "input 'path'" in message


async def test_a_control_character_in_a_sensor_config_string_is_refused_at_create(
    connector: Connector,
) -> None:
    request = file_sensor_request("ignored")
    request.template.custom["sensor_name"] = "GlobSensor"
    request.template.custom["sensor_module"] = "sensors"
    request.template.custom["sensor_config"] = {"marker": "_SUCCESS\x00"}
    del request.inputs.literals["path"]
    request.inputs.literals["pattern"].CopyFrom(literal("/data/*.csv"))
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID and "field 'marker'" in message and "U+0000" in message


async def test_a_url_with_a_line_break_is_refused_at_create(connector: Connector) -> None:
    request = file_sensor_request("ignored")
    request.template.custom["sensor_name"] = "HttpSensor"
    request.template.custom["sensor_module"] = "sensors"
    del request.inputs.literals["path"]
    request.inputs.literals["url"].CopyFrom(literal("http://example.com/\r\nHost: evil"))
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID and "input 'url'" in message


async def test_a_multi_line_query_is_still_accepted_where_free_text_is_expected(connector: Connector) -> None:
    # Tab and line breaks are no threat in free text; only the other control characters are refused.
    request = file_sensor_request("/tmp/x")
    request.inputs.literals["path"].CopyFrom(literal("/tmp/report\tfinal\n.csv"))
    assert await connector.create(request)


async def test_10000_unknown_input_names_get_a_short_message(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    for i in range(10_000):
        request.inputs.literals[f"name{i:05d}"].CopyFrom(literal("v"))
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID
    assert (
        "takes no input named name00000, name00001, name00002, name00003, name00004 and 9995 more" in message
    )


async def test_10000_unknown_config_fields_get_a_short_message(connector: Connector) -> None:
    request = file_sensor_request("/tmp/x")
    request.template.custom["sensor_config"] = {f"f{i:05d}": 1 for i in range(10_000)}
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID and "and 9995 more" in message


async def test_long_names_from_the_request_are_cut_short(connector: Connector) -> None:
    long = "x" * 100_000
    request = file_sensor_request("/tmp/x")
    request.inputs.literals[long].CopyFrom(literal("v"))
    code, _ = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID

    request = file_sensor_request("/tmp/x")
    request.template.custom["sensor_name"] = long
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == grpc.StatusCode.NOT_FOUND and message.endswith("SqlSensor, TimeSensor.")

    request = file_sensor_request("/tmp/x")
    request.template.interface.outputs.variables[long].type.simple = 3
    code, _ = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID

    request = file_sensor_request("/tmp/x")
    request.inputs.literals["path"].CopyFrom(literal(10**18))
    request.template.custom["sensor_config"] = {"min_size": long}
    code, message = await refusal(connector.agent.CreateTask(request))
    assert code == INVALID and "min_size" in message

    category = agent_pb2.TaskCategory(name=long, version=0)
    get = agent_pb2.GetTaskRequest(task_category=category, resource_meta=b"x")
    code, _ = await refusal(connector.agent.GetTask(get, timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_made_up_category_names_never_become_metric_labels(connector: Connector) -> None:
    for i in range(20):
        category = agent_pb2.TaskCategory(name=f"made-up-{i}", version=0)
        await refusal(connector.agent.GetTask(agent_pb2.GetTaskRequest(task_category=category), timeout=10))
    labels = {
        value
        for family in connector.server.metrics.registry.collect()
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert not any(value.startswith("made-up") for value in labels)
    assert "unknown" in labels


async def test_a_valid_request_succeeds(connector: Connector, tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("")
    meta = await connector.create(file_sensor_request(str(tmp_path / "ready")))
    assert (await connector.get(meta)).phase == execution_pb2.TaskExecution.SUCCEEDED
