"""Answer sharing: pokes asking the store the same question share one request and its answer.

Concurrent pokes asking the same (operation, protocol, key) wait on one request. With a staleness
bound above zero the answer also serves later pokes for at most that many seconds, counted from when
its request *started*, from an LRU bounded in entries (a listing weighs one per item). Nothing here
talks to a store: the request is a coroutine function the caller passes in.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..base import TransientError
from .errors import transient_detail

#: Transient store errors are remembered this long, to explain a poke that runs out of time.
LAST_ERROR_SECONDS = 60.0

Key = tuple[str, str, str]


@dataclass
class Stats:
    """Plain counters an operator reads to see the saving (the connector exports them)."""

    #: (protocol, operation) -> store requests made: info, list, glob.
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (protocol, source) -> answers given to pokes: `own` request, `shared` request, `listing`.
    answers: dict[tuple[str, str], int] = field(default_factory=dict)

    def request(self, protocol: str, operation: str) -> None:
        """Count one request to a store."""
        key = (protocol, operation)
        self.requests[key] = self.requests.get(key, 0) + 1

    def answer(self, protocol: str, source: str) -> None:
        """Count one answer given to a poke."""
        key = (protocol, source)
        self.answers[key] = self.answers.get(key, 0) + 1

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """Copies of both counters, safe to read from another thread."""
        return dict(self.requests), dict(self.answers)


@dataclass
class Answer:
    """One request's answer (or the request still in flight) and when it started."""

    started: float
    future: asyncio.Future[Any]
    weight: int = 1


class Sharing:
    """The shared answers of one event loop (their futures belong to it), bounded by entries and age."""

    def __init__(
        self, max_staleness: float, cache_entries: int, clock: Callable[[], float], stats: Stats
    ) -> None:
        self.max_staleness = max_staleness
        self.cache_entries = cache_entries
        self.clock = clock
        self.stats = stats
        self.answers: OrderedDict[Key, Answer] = OrderedDict()
        self.weight = 0
        #: protocol -> (when, what) of the last transient store failure.
        self.last_error: dict[str, tuple[float, str]] = {}

    @property
    def on(self) -> bool:
        """True when answers may serve later pokes (a staleness bound above zero)."""
        return self.max_staleness > 0

    async def ask(
        self,
        url: str,
        key: Key,
        fetch: Callable[[], Awaitable[Any]],
        budget: float | None,
    ) -> tuple[Any, bool]:
        """The answer to `key` = (operation, protocol, path), shared when allowed; (answer, was_shared).

        `fetch` makes the request; a poke that stops waiting after `budget` seconds gets TransientError
        naming the store's last failure, and the request goes on for the pokes still waiting on it.
        """
        operation, protocol, _ = key
        now = self.clock()
        answer = self.fresh(key, now) if self.on else None
        if answer is not None:
            was_shared = True
        else:
            was_shared = False
            self.stats.request(protocol, operation)

            async def run() -> Any:
                try:
                    return await fetch()
                except Exception as exc:
                    detail = transient_detail(exc)
                    if detail is not None:
                        self.last_error[protocol] = (self.clock(), detail)
                    raise

            task = asyncio.ensure_future(run())
            task.add_done_callback(_retrieve)  # a failure nobody waits for any more is not an error to log
            answer = Answer(now, task)
            if self.on:
                self.remember(key, answer)
        if answer.future.done():  # the common case under load: no timer, no shield, no task switch
            return answer.future.result(), was_shared
        try:
            # Shielded: a poke that gives up must not cancel the request other pokes are waiting on.
            async with asyncio.timeout(budget):
                return await asyncio.shield(answer.future), was_shared
        except TimeoutError:
            raise TransientError(self._no_answer(url, protocol, budget)) from None

    def keep(self, key: Key, started: float, value: Any) -> None:
        """Keep `value`, found without `ask` by a request that started at `started`, for later askers
        (`arrived`), when sharing is on: users' own pokes, which run in worker threads, share this way."""
        if not self.on:
            return
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        self.remember(key, Answer(started, future))

    def fresh(self, key: Key, now: float) -> Answer | None:
        """The shared answer (or request in flight) for `key`, if it started within the staleness bound."""
        answer = self.answers.get(key)
        return answer if answer is not None and now - answer.started <= self.max_staleness else None

    def arrived(self, key: Key, now: float) -> Any:
        """A shared answer that has arrived, is fresh and is not an error; else None (then `ask`)."""
        answer = self.fresh(key, now)
        if answer is None:
            return None
        future = answer.future
        if not future.done() or future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def remember(self, key: Key, answer: Answer) -> None:
        """Keep `answer` for later pokes, within the LRU bound; drop expired ones first."""
        old = self.answers.pop(key, None)
        if old is not None:
            self.weight -= old.weight
        self.answers[key] = answer
        self.weight += answer.weight
        horizon = self.clock() - self.max_staleness
        while self.answers:
            first_key, first = next(iter(self.answers.items()))
            if first.started >= horizon and self.weight <= self.cache_entries:
                break
            del self.answers[first_key]
            self.weight -= first.weight

    def weigh(self, key: Key, weight: int) -> None:
        """Give the answer kept for `key` its weight once known (a listing: one per item)."""
        answer = self.answers.get(key)
        if answer is not None:
            self.weight += weight - answer.weight
            answer.weight = weight

    def _no_answer(self, url: str, protocol: str, budget: float | None) -> str:
        within = f" within {budget:.1f}s" if budget is not None else ""
        last = self.last_error.get(protocol)
        now = self.clock()
        if last is not None and now - last[0] <= LAST_ERROR_SECONDS:
            ago = max(0.0, now - last[0])
            return (
                f"{url}: the store did not answer{within}; its last error, {ago:.0f}s ago, "
                f"was {last[1]}; will poke again."
            )
        return f"{url}: the store did not answer{within}; will poke again."


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
