"""GlobSensor through the real server: flytekit-declared, served, met with its `paths` output."""

from __future__ import annotations

from pathlib import Path

import grpc
from flyteidl.core import execution_pb2
from google.protobuf import json_format

from sensors.flytekit import GlobSensor

from .catalog import expect_rejected, request_for
from .conftest import S3, Connector

Phase = execution_pb2.TaskExecution.Phase


def paths_output(resource) -> list[str]:
    literal = resource.outputs.literals["paths"]
    return [item.scalar.primitive.string_value for item in literal.collection.literals]


async def test_glob_waits_for_enough_matches_and_the_marker_then_returns_paths(
    connector: Connector, tmp_path: Path
) -> None:
    day = tmp_path / "day=2026-11-24"
    sensor = GlobSensor(name="wait_parts", min_count=2, marker="_SUCCESS", outputs=True)
    meta = await connector.create(request_for(sensor, pattern=f"{day}/*.parquet"))

    nothing = await connector.get(meta)
    assert nothing.phase == Phase.RUNNING
    assert "matches 0 path(s), waiting for 2" in nothing.message

    day.mkdir()
    (day / "part-1.parquet").write_bytes(b"PAR1")
    (day / "part-0.parquet").write_bytes(b"PAR1")
    no_marker = await connector.get(meta)
    assert no_marker.phase == Phase.RUNNING
    assert f"waiting for {day}/_SUCCESS" in no_marker.message

    (day / "_SUCCESS").write_text("")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert paths_output(done) == [f"{day}/part-0.parquet", f"{day}/part-1.parquet"]
    assert json_format.MessageToDict(done.custom_info)["details"] == {"matches": 2}


async def test_glob_without_declared_outputs_succeeds_without_outputs(
    connector: Connector, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("x")
    template_outputs = request_for(GlobSensor(name="wait_csv"), pattern="x").template.interface.outputs
    assert not template_outputs.variables
    meta = await connector.create(request_for(GlobSensor(name="wait_csv"), pattern=f"{tmp_path}/*.csv"))
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert not done.HasField("outputs"), "outputs the template does not declare must not be sent"


async def test_glob_keeps_the_file_protocol_of_the_pattern(connector: Connector, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x")
    sensor = GlobSensor(name="wait_csv", outputs=True)
    meta = await connector.create(request_for(sensor, pattern=f"file://{tmp_path}/*.csv"))
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED
    assert paths_output(done) == [f"file://{tmp_path}/a.csv"]


async def test_glob_on_s3_restores_the_protocol(connector: Connector, s3: S3) -> None:
    sensor = GlobSensor(name="wait_s3_parts", outputs=True)
    meta = await connector.create(request_for(sensor, pattern=f"s3://{s3.bucket}/day=1/*.parquet"))
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING, waiting.message
    assert [link.name for link in waiting.log_links] == ["S3 console"]
    s3.client().put_object(Bucket=s3.bucket, Key="day=1/p.parquet", Body=b"PAR1")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert paths_output(done) == [f"s3://{s3.bucket}/day=1/p.parquet"]


async def test_glob_bad_config_and_inputs_are_invalid_arguments(connector: Connector, tmp_path: Path) -> None:
    request = request_for(GlobSensor(name="g"), pattern=f"{tmp_path}/*")
    request.template.custom["sensor_config"] = {"min_count": 0}
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "min_count must be 1 or more" in message

    request.template.custom["sensor_config"] = {"marker": "a/_SUCCESS"}
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "marker must be a plain file name" in message

    request.template.custom["sensor_config"] = {"min_cnt": 2}
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "has no field min_cnt" in message

    wrong = request_for(GlobSensor(name="g2"), pattern=3)
    message = await expect_rejected(connector, wrong, grpc.StatusCode.INVALID_ARGUMENT)
    assert "input 'pattern' must be str" in message


async def test_declared_outputs_that_the_sensor_does_not_produce_are_refused_at_create(
    connector: Connector, tmp_path: Path
) -> None:
    request = request_for(GlobSensor(name="g", outputs=True), pattern=f"{tmp_path}/*")
    request.template.interface.outputs.variables["count"].CopyFrom(
        request.template.interface.outputs.variables["paths"]
    )
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "declares output 'count', but GlobSensor produces paths" in message

    request = request_for(GlobSensor(name="g", outputs=True), pattern=f"{tmp_path}/*")
    request.template.interface.outputs.variables["paths"].type.Clear()
    request.template.interface.outputs.variables["paths"].type.simple = 3  # STRING, not a list
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "declares output 'paths' as" in message


def test_a_bad_config_fails_at_declaration_with_the_same_sentence() -> None:
    import pytest

    from sensors.base import ConfigError

    with pytest.raises(ConfigError, match="min_count must be 1 or more"):
        GlobSensor(name="bad", min_count=0)
    with pytest.raises(ValueError, match="GlobSensor has no output size"):
        GlobSensor(name="bad", outputs=("size",))
    # flytekit would silently drop an unknown keyword; a misspelt config field must not vanish
    with pytest.raises(
        ConfigError, match="GlobSensor has no config field min_cout; it takes marker, min_count"
    ):
        GlobSensor(name="bad", min_cout=3)
    assert GlobSensor(name="ok", min_count=3, timeout=60).metadata.timeout.total_seconds() == 60


async def test_outputs_too_large_for_a_response_fail_the_task_with_a_reason(
    connector: Connector, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6000):
        (folder / f"{i:05d}-{'x' * 180}.csv").touch()
    sensor = GlobSensor(name="wait_many", outputs=True)
    meta = await connector.create(request_for(sensor, pattern=f"{folder}/*.csv"))
    resource = await connector.get(meta)
    assert resource.phase == Phase.FAILED
    assert "GlobSensor was met, but its outputs take" in resource.message
    assert "narrow what it matches" in resource.message
    assert not resource.HasField("outputs")
