"""TimeSensor through the real server; the test moves the sensor's clock instead of sleeping."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from flyteidl.core import execution_pb2, literals_pb2
from google.protobuf import json_format

import sensors.time
from sensors.flytekit import TimeSensor

from .catalog import expect_rejected, request_for
from .conftest import Connector, literal

Phase = execution_pb2.TaskExecution.Phase


def optional(value: dt.datetime | None) -> literals_pb2.Literal:
    """An Optional[datetime] input as flytekit writes it: a union literal, or none."""
    if value is None:
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(union=literals_pb2.Union(value=literal(value))))


class Clock:
    """The sensor's clock, set by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.value = dt.datetime.now(dt.UTC)
        monkeypatch.setattr(sensors.time, "now", lambda: self.value)


async def test_time_sensor_waits_until_at_then_succeeds(
    connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    at = (clock.value + dt.timedelta(hours=2, minutes=5)).replace(microsecond=0)
    request = request_for(TimeSensor(name="wait_until"))
    request.inputs.literals["at"].CopyFrom(optional(at))
    meta = await connector.create(request)

    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert f"waiting until {at.isoformat()}" in waiting.message and "2h05m left" in waiting.message
    assert json_format.MessageToDict(waiting.custom_info)["awaiting"] == {"at": at.isoformat()}

    clock.value = at
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert f"it is past {at.isoformat()}" in done.message


async def test_time_sensor_delay_counts_from_create(
    connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    request = request_for(TimeSensor(name="wait_a_bit", delay=90))
    request.inputs.literals["at"].CopyFrom(optional(None))
    meta = await connector.create(request)
    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert "left" in waiting.message
    clock.value += dt.timedelta(seconds=91)
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_time_sensor_needs_exactly_one_of_at_and_delay(connector: Connector) -> None:
    both = request_for(TimeSensor(name="both", delay=5), at=dt.datetime(2026, 11, 24, tzinfo=dt.UTC))
    message = await expect_rejected(connector, both, grpc.StatusCode.INVALID_ARGUMENT)
    assert "needs exactly one of the input `at` and the config `delay`, not both" in message

    neither = request_for(TimeSensor(name="neither"))
    neither.inputs.literals["at"].CopyFrom(optional(None))
    message = await expect_rejected(connector, neither, grpc.StatusCode.INVALID_ARGUMENT)
    assert "needs exactly one of the input `at` and the config `delay`." in message


async def test_time_sensor_bad_inputs_and_config(connector: Connector) -> None:
    message = await expect_rejected(
        connector, request_for(TimeSensor(name="t"), at="tomorrow"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "input 'at' must be an ISO 8601 datetime" in message

    negative = request_for(TimeSensor(name="t"))
    negative.template.custom["sensor_config"] = {"delay": -1}
    message = await expect_rejected(connector, negative, grpc.StatusCode.INVALID_ARGUMENT)
    assert "delay must be zero or more seconds" in message
