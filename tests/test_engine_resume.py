"""The engine pokes without a timer until a poke waits: `_resume` must then behave exactly as `await`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flyteidl.core import execution_pb2

from connector.engine.sensor.engine import _resume
from sensors.base import PokeResult
from sensors.file import FileSensor

from .conftest import Connector, file_sensor_request

T = TypeVar("T")


async def _started(coroutine: Coroutine[Any, Any, T]) -> T:
    """Send to `coroutine` by hand, as the engine does, then await the rest through `_resume`."""
    try:
        waits_on = coroutine.send(None)
    except StopIteration as finished:
        value: T = finished.value
        return value
    return await _resume(coroutine, waits_on)


async def test_a_poke_that_never_waits_finishes_on_the_first_send() -> None:
    async def at_once() -> str:
        return "met"

    assert await _started(at_once()) == "met"


async def test_every_wait_and_its_result_pass_through() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()

    async def twice() -> int:
        a = await first
        await asyncio.sleep(0)  # a bare yield: the task goes round the loop once
        b = await second
        return a + b

    running = asyncio.ensure_future(_started(twice()))
    await asyncio.sleep(0)
    assert not running.done()
    first.set_result(40)
    await asyncio.sleep(0)
    second.set_result(2)
    assert await running == 42


async def test_an_error_of_what_it_waits_on_reaches_the_poke() -> None:
    loop = asyncio.get_running_loop()
    answer = loop.create_future()

    async def handles() -> str:
        try:
            await answer
        except ConnectionError as exc:
            return f"transient: {exc}"
        return "met"

    running = asyncio.ensure_future(_started(handles()))
    await asyncio.sleep(0)
    answer.set_exception(ConnectionError("reset"))
    assert await running == "transient: reset"


async def test_a_timeout_cancels_the_waiting_poke_inside_and_out() -> None:
    cleaned_up = []

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await _started(hangs())
    assert cleaned_up == [True]


async def test_a_cancelled_caller_cancels_the_poke() -> None:
    inside = asyncio.Event()
    seen = []

    async def waits() -> None:
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    running = asyncio.ensure_future(_started(waits()))
    await inside.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert seen == ["cancelled"]


async def test_a_poke_that_returns_another_awaitable_is_awaited_as_it_is(
    connector: Connector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def poke(self: Any, inputs: Any, ctx: Any) -> asyncio.Future[PokeResult]:
        answer: asyncio.Future[PokeResult] = asyncio.get_running_loop().create_future()
        answer.set_result(PokeResult(True, "answered by a future."))
        return answer

    monkeypatch.setattr(FileSensor, "poke", poke)
    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))
    resource = await connector.get(meta)
    assert resource.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert resource.message == "answered by a future."
