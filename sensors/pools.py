"""Blocking work off the event loop: one bounded thread pool per kind, owned by whoever serves.

A `Pool` is one kind of blocking work: a `ThreadPoolExecutor` of its own, the calls in flight on it
(joined by key), and, where the kind asks for it, a bound on calls at once per key. The owners:

- the local filesystem (`os.stat`, `os.scandir`, `os.path.realpath`): the Store's own pool
  (`--blocking-threads`, sensors/store/store.py);
- `Pools.sql`: SqlSensor's queries (`--sql-threads`), at most `--sql-queries-per-database` at once on
  one database URL;
- `Pools.secrets`: reading secret files (`--secret-threads`).

The server builds one `Pools` from its options, hands it to every poke in its `PokeContext` and closes it
at shutdown; two servers in one process share no threads and no limits. A kind whose calls hang (a
database that never answers, a stuck mount) fills its own pool and no other: a FileSensor's `stat` never
waits behind thirty-two `pg_sleep(3600)`.

`Pool.once(key, start)` joins a call already in flight for the same key (same secret, same local path and
operation, same database URL and query) instead of issuing it again, so a call that hangs is made once,
however many pokes ask while it hangs. Waiters that give up (a poke timeout) never cancel it.

Where no server owns one (a local `pyflyte run`, a sensor's own unit test), `default_pools()` runs the
work in the event loop's default executor, as `asyncio.to_thread` would.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads of a low-priority pool run this much nicer (Linux niceness), so the event loop's thread wins
#: the CPU when they contend.
NICENESS = 10
#: SqlSensor's queries at once on one database URL unless told (--sql-queries-per-database's default).
QUERIES_PER_DATABASE = 4


@dataclass
class _OnLoop:
    """What a pool keeps per event loop (futures and semaphores belong to one loop)."""

    #: key -> the shared call in flight.
    flights: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)
    #: key -> the slots of its calls at once (pools with `per_key`).
    slots: dict[Hashable, asyncio.Semaphore] = field(default_factory=dict)


class Pool:
    """One kind of blocking work: at most `threads` calls at once (the loop's default executor when None),
    calls in flight joined by key, and at most `per_key` at once on one key when set."""

    def __init__(
        self, kind: str, threads: int | None = None, *, per_key: int | None = None, low_priority: bool = False
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"the {kind} thread pool needs at least 1 thread, not {threads}")
        if per_key is not None and per_key < 1:
            raise ValueError(f"the {kind} pool needs at least 1 call at once per key, not {per_key}")
        self.kind = kind
        self.threads = threads
        self.per_key = per_key
        self.low_priority = low_priority
        self._executor: ThreadPoolExecutor | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OnLoop] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in this pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads(), func, *args)

    async def once(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> T:
        """The result of `start()`, shared with every caller asking for `key` while it is in flight.

        The call runs as a task of its own: a caller that stops waiting (its poke ran out of time) leaves
        it running for the others, and it is never started again for `key` until it has finished.
        """
        flights = self._on_loop().flights
        future = flights.get(key)
        if future is None:
            future = asyncio.ensure_future(start())
            flights[key] = future
            future.add_done_callback(functools.partial(_landed, flights, key))
        if future.done():
            return future.result()  # type: ignore[no-any-return]
        return await asyncio.shield(future)

    async def blocking(self, key: Hashable, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in this pool, joined with a call for the same `key` already in flight."""
        return await self.once(key, lambda: self.run(func, *args))

    def slots(self, key: Hashable) -> asyncio.Semaphore:
        """The `per_key` slots of `key` on the running loop (unbounded pools have none to give)."""
        if self.per_key is None:
            raise ValueError(f"the {self.kind} pool has no bound per key")
        slots = self._on_loop().slots
        found = slots.get(key)
        if found is None:
            found = slots[key] = asyncio.Semaphore(self.per_key)
        return found

    def close(self) -> None:
        """Stop the threads (calls still running finish on their own, queued ones are dropped); the pool
        makes new threads if used again."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _threads(self) -> ThreadPoolExecutor | None:
        if self.threads is None:
            return None  # the loop's default executor
        if self._executor is None:
            initializer = _lower_priority if self.low_priority else None
            self._executor = ThreadPoolExecutor(
                self.threads, thread_name_prefix=self.kind, initializer=initializer
            )
        return self._executor

    def _on_loop(self) -> _OnLoop:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is None:
            found = self._loops[loop] = _OnLoop()
        return found


def _landed(flights: dict[Hashable, asyncio.Future[Any]], key: Hashable, done: asyncio.Future[Any]) -> None:
    if flights.get(key) is done:
        del flights[key]
    if not done.cancelled():
        done.exception()  # retrieved: a failure nobody waits for any more is not an error to log


def _lower_priority() -> None:
    try:  # Linux: a thread's own niceness, by its thread id; elsewhere best effort
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS)
    except (AttributeError, OSError):
        pass


@dataclass(frozen=True)
class Pools:
    """The pools a server's sensors run blocking work in, besides the Store's."""

    #: SqlSensor's queries, bounded per database URL. Low priority: SQLite runs its queries in this
    #: process, and the event loop's thread must win the CPU when they contend.
    sql: Pool
    #: Reading secret files.
    secrets: Pool

    @classmethod
    def sized(cls, *, sql_threads: int, secret_threads: int, queries_per_database: int) -> Pools:
        """A server's pools, from its options."""
        return cls(
            sql=Pool("sql", sql_threads, per_key=queries_per_database, low_priority=True),
            secrets=Pool("secrets", secret_threads),
        )

    def close(self) -> None:
        """Stop every pool's threads (at shutdown)."""
        self.sql.close()
        self.secrets.close()


@functools.cache
def default_pools() -> Pools:
    """The pools of a process no server owns: the loop's default executor, the default bound per database."""
    return Pools(sql=Pool("sql", per_key=QUERIES_PER_DATABASE), secrets=Pool("secrets"))
