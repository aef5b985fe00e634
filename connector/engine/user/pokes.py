"""Where users' own pokes run: worker threads, each running an event loop of its own, off the gRPC loop.

A user's `poke` may block its thread (`time.sleep`, a sync client inside `async def`) or never return.
So it never runs on the serving event loop: each poke is handed to an idle worker (at most `threads`
of them, started on demand; daemons, so a hung poke never holds the process at exit), one poke per
worker at a time, on the worker's own loop, which lives as long as the worker (clients a poke keeps
stay bound to it). At most `per_sensor` pokes of one sensor class are in flight at once, so one class
cannot take every worker.

The caller bounds the wait (the engine's `--poke-timeout`). A poke still waiting for a worker is simply
dropped; one already running is *abandoned*: it keeps its worker and its slot until it returns (an
async one is cancelled on its loop, which frees both at its next `await`), and the abandonment is
counted and logged. While every slot of a class is held by abandoned pokes, a new poke of that class is
refused at once with a sentence saying so (`SlotsHung`), rather than waiting for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class SlotsHung(Exception):
    """Every poke slot of a sensor class is held by an abandoned poke that has not returned yet."""


@dataclass(eq=False)
class _Slots:
    """The pokes of one sensor class in flight; `hung` of them abandoned and not returned yet."""

    limit: int
    semaphore: asyncio.Semaphore
    hung: int = 0


@dataclass(eq=False)
class _Job:
    """One poke: what to call, and the serving loop's future that gets its outcome."""

    call: Callable[[], Any]
    done: asyncio.Future[Any]
    main: asyncio.AbstractEventLoop
    abandoned: bool = False
    #: The task running it on the worker's loop, once started (touched on the worker's thread only).
    task: asyncio.Task[Any] | None = None


class _Worker:
    """A daemon thread running an event loop of its own, one poke at a time."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, job: _Job) -> None:
        """On the worker's loop: run the job, and hand its outcome back to the serving loop."""
        if job.abandoned:  # given up before it started: nothing of the author's code ran
            _hand_back(job, None, asyncio.CancelledError())
            return
        job.task = self.loop.create_task(_call(job.call))
        job.task.add_done_callback(lambda task: _hand_back(job, *_outcome(task)))

    def cancel(self, job: _Job) -> None:
        """On the worker's loop: cancel an abandoned async poke at its next `await`."""
        if job.task is not None:
            job.task.cancel()


async def _call(call: Callable[[], Any]) -> Any:
    result = call()
    if inspect.isawaitable(result):
        result = await result
    return result


def _outcome(task: asyncio.Task[Any]) -> tuple[Any, BaseException | None]:
    if task.cancelled():
        return None, asyncio.CancelledError()
    exc = task.exception()
    return (None, exc) if exc is not None else (task.result(), None)


def _hand_back(job: _Job, result: Any, exc: BaseException | None) -> None:
    def settle() -> None:
        if job.done.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            job.done.cancel()
        elif exc is not None:
            job.done.set_exception(exc)
        else:
            job.done.set_result(result)

    # RuntimeError: the serving loop is gone (shutdown); nobody waits for this any more.
    with contextlib.suppress(RuntimeError):
        job.main.call_soon_threadsafe(settle)


class PokeRunner:
    """Runs users' pokes in bounded worker threads; see the module docstring."""

    def __init__(
        self,
        *,
        threads: int,
        per_sensor: int,
        on_abandoned: Callable[[str], None] | None = None,
    ) -> None:
        self.max_threads = threads
        self.per_sensor = per_sensor
        #: Called with the sensor name each time a poke is abandoned (the server counts them).
        self.on_abandoned = on_abandoned
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._waiting: deque[asyncio.Future[_Worker]] = deque()
        #: sensor name -> its slots; names are those of the classes the operator allowed: bounded.
        self._slots: dict[str, _Slots] = {}

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        return len(self._workers)

    async def run(
        self, sensor: str, call: Callable[[], Any], log_extra: Mapping[str, Any] | None = None
    ) -> Any:
        """`call()` in a worker (awaited there if it returns an awaitable): its result, or its exception.

        Cancelling the caller (a timeout) drops the poke if it has not started, else abandons it; the
        line logged then carries `log_extra` (the execution the poke was for).
        """
        slots = self._slots.get(sensor)
        if slots is None:
            slots = self._slots[sensor] = _Slots(self.per_sensor, asyncio.Semaphore(self.per_sensor))
        if slots.hung >= slots.limit:
            raise SlotsHung(
                f"all {slots.limit} poke slots of {sensor} are held by pokes that never returned "
                "(abandoned after --poke-timeout); will poke again once one returns."
            )
        await slots.semaphore.acquire()
        try:
            worker = await self._worker()
        except BaseException:
            slots.semaphore.release()
            raise
        loop = asyncio.get_running_loop()
        job = _Job(call, loop.create_future(), loop)
        job.done.add_done_callback(lambda _: self._finished(worker, slots, job))
        worker.loop.call_soon_threadsafe(worker.start, job)
        try:
            return await asyncio.shield(job.done)
        except asyncio.CancelledError:
            if not job.done.done():
                self._abandon(sensor, slots, worker, job, log_extra)
            raise

    async def _worker(self) -> _Worker:
        if self._idle:
            return self._idle.pop()
        if len(self._workers) < self.max_threads:
            worker = _Worker(f"user-poke-{len(self._workers)}")
            self._workers.append(worker)
            return worker
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a worker just as it gave up
                self._give_back(waiter.result())
            raise

    def _give_back(self, worker: _Worker) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _finished(self, worker: _Worker, slots: _Slots, job: _Job) -> None:
        """The poke has returned (on the serving loop): its worker and its slot are free again."""
        if job.abandoned:
            slots.hung -= 1
            if not job.done.cancelled():
                job.done.exception()  # nobody awaits it any more: mark it retrieved
        slots.semaphore.release()
        self._give_back(worker)

    def _abandon(
        self, sensor: str, slots: _Slots, worker: _Worker, job: _Job, log_extra: Mapping[str, Any] | None
    ) -> None:
        job.abandoned = True
        slots.hung += 1
        worker.loop.call_soon_threadsafe(worker.cancel, job)
        if self.on_abandoned is not None:
            self.on_abandoned(sensor)
        log.warning(
            "abandoned a poke of %s that outlived its budget; it keeps a thread and a slot until it returns "
            "(%d of %d slots held by abandoned pokes)",
            sensor,
            slots.hung,
            slots.limit,
            extra={**(log_extra or {}), "sensor": sensor},
        )

    def close(self) -> None:
        """Stop the workers' loops; a busy one stops when its poke returns (daemons: never waited for)."""
        for worker in self._workers:
            with contextlib.suppress(RuntimeError):
                worker.loop.call_soon_threadsafe(worker.loop.stop)
