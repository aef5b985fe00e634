"""A poke is a plain `await` under one time budget: what it waits on, its result, its errors, its
timeout and its caller's cancellation all reach it as they would any coroutine (through the server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from sensors.base import PokeResult
from sensors.file import FileSensor

from .conftest import SENSOR, Connector, file_sensor_request

Phase = execution_pb2.TaskExecution


async def test_a_poke_that_waits_answers_with_what_it_waited_for(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def poke(self: Any, inputs: Any, ctx: Any) -> PokeResult:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[str] = loop.create_future()
        second: asyncio.Future[str] = loop.create_future()
        loop.call_soon(first.set_result, "landed")
        word = await first
        await asyncio.sleep(0)  # a bare yield: round the loop once more
        loop.call_soon(second.set_result, f"{word} twice.")
        return PokeResult(True, await second)

    monkeypatch.setattr(FileSensor, "poke", poke)
    resource = await connector.get(await connector.create(file_sensor_request(str(tmp_path / "x"))))
    assert resource.phase == Phase.SUCCEEDED
    assert resource.message == "landed twice."


async def test_an_error_of_what_a_poke_waits_on_reaches_the_poke(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def poke(self: Any, inputs: Any, ctx: Any) -> PokeResult:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(answer.set_exception, ConnectionError("reset"))
        try:
            await answer
        except ConnectionError as exc:
            return PokeResult(False, f"handled: {exc}")
        return PokeResult(True, "never")

    monkeypatch.setattr(FileSensor, "poke", poke)
    resource = await connector.get(await connector.create(file_sensor_request(str(tmp_path / "x"))))
    assert resource.phase == Phase.RUNNING
    assert resource.custom_info["status"] == "handled: reset"


async def test_a_poke_past_its_budget_is_cancelled_inside_and_answers_running(
    make_connector: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaned_up: list[bool] = []

    async def poke(self: Any, inputs: Any, ctx: Any) -> PokeResult:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)
        return PokeResult(True, "never")

    monkeypatch.setattr(FileSensor, "poke", poke)
    server = await make_connector(poke_timeout=0.05)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        resource = await connector.get(await connector.create(file_sensor_request(str(tmp_path / "x"))))
    assert resource.phase == Phase.RUNNING
    assert resource.custom_info["outcome"] == "timeout"
    assert "ran out of its 0.05s budget" in resource.custom_info["status"]
    assert cleaned_up == [True]


async def test_a_caller_that_gives_up_cancels_the_poke(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, cancelled = asyncio.Event(), asyncio.Event()

    async def poke(self: Any, inputs: Any, ctx: Any) -> PokeResult:
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return PokeResult(True, "never")

    monkeypatch.setattr(FileSensor, "poke", poke)
    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))
    call = connector.agent.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta, task_category=SENSOR))
    await asyncio.wait_for(inside.wait(), 10)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(cancelled.wait(), 10)


async def test_a_poke_that_returns_another_awaitable_is_awaited_as_it_is(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def poke(self: Any, inputs: Any, ctx: Any) -> asyncio.Future[PokeResult]:
        answer: asyncio.Future[PokeResult] = asyncio.get_running_loop().create_future()
        answer.set_result(PokeResult(True, "answered by a future."))
        return answer

    monkeypatch.setattr(FileSensor, "poke", poke)
    resource = await connector.get(await connector.create(file_sensor_request(str(tmp_path / "x"))))
    assert resource.phase == Phase.SUCCEEDED
    assert resource.message == "answered by a future."
