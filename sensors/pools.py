"""Blocking work off the event loop: one bounded thread pool per kind, and single-flight joining.

Each kind of blocking work has a `ThreadPoolExecutor` of its own, sized by the server's options:

- the local filesystem (`os.stat`, `os.scandir`, `os.path.realpath`): the Store's own pool
  (`--blocking-threads`, sensors/store/store.py), which joins calls in flight with `once` too;
- `sql`: SqlSensor's queries (`--sql-threads`);
- `secrets`: reading secret files (`--secret-threads`).

So a kind whose calls hang (a database that never answers, a stuck mount) fills its own pool and no
other: a FileSensor's `stat` never waits behind thirty-two `pg_sleep(3600)`.

`once(key, start)` joins a call already in flight for the same key (same secret, same local path and
operation, same database URL and query) instead of issuing it again, so a call that hangs is made
once, however many pokes ask while it hangs. Waiters that give up (a poke timeout) never cancel it.

Unconfigured (a local `pyflyte run`, where there is no server), work runs in the event loop's default
executor, as `asyncio.to_thread` would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
V = TypeVar("V")

#: The kinds of blocking work, each with a pool of its own once configured.
KINDS = ("sql", "secrets")

#: Kinds whose threads may burn CPU in this process (SQLite runs its queries here): their threads run at
#: a lower scheduling priority (nice +10), so the event loop's thread wins the CPU when they contend.
LOW_PRIORITY = frozenset({"sql"})
#: How much lower.
NICENESS = 10

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}

#: Per event loop: key -> the shared call in flight.
_flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


def configure(**sizes: int) -> None:
    """Size the pools, e.g. `configure(sql=8, secrets=4)`; a pool of unchanged size is kept."""
    for kind, size in sizes.items():
        if kind not in KINDS:
            raise ValueError(f"no thread pool for {kind!r}; the kinds are {', '.join(KINDS)}")
        if size < 1:
            raise ValueError(f"the {kind} thread pool needs at least 1 thread, not {size}")
        current = _pools.get(kind)
        if current is None or current[0] != size:
            # A pool replaced here is not shut down: another server in this process may still use it;
            # its idle threads end when it is collected.
            initializer = _lower_priority if kind in LOW_PRIORITY else None
            pool = ThreadPoolExecutor(size, thread_name_prefix=f"{kind}-blocking", initializer=initializer)
            _pools[kind] = (size, pool)


def _lower_priority() -> None:
    try:  # Linux: a thread's own niceness, by its thread id; elsewhere best effort
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS)
    except (AttributeError, OSError):
        pass


def size(kind: str) -> int | None:
    """The configured size of `kind`'s pool, None when it runs in the default executor."""
    current = _pools.get(kind)
    return None if current is None else current[0]


async def run(kind: str, func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in `kind`'s pool (the loop's default executor when unconfigured)."""
    current = _pools.get(kind)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None if current is None else current[1], func, *args)


def per_loop(table: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, V], make: Callable[[], V]) -> V:
    """The running event loop's entry of `table`, made by `make()` on first use (what a loop's futures
    and semaphores belong to stays with that loop, and goes with it)."""
    loop = asyncio.get_running_loop()
    found = table.get(loop)
    if found is None:
        found = table[loop] = make()
    return found


async def once(key: Hashable, start: Callable[[], Awaitable[T]]) -> T:
    """The result of `start()`, shared with every caller asking for `key` while it is in flight.

    The call runs as a task of its own: a caller that stops waiting (its poke ran out of time) leaves
    it running for the others, and it is never started again for `key` until it has finished.
    """
    flights = per_loop(_flights, dict)
    future = flights.get(key)
    if future is None:
        future = asyncio.ensure_future(start())
        flights[key] = future
        future.add_done_callback(lambda done: _landed(flights, key, done))
    if future.done():
        return future.result()  # type: ignore[no-any-return]
    return await asyncio.shield(future)


async def blocking(kind: str, key: Hashable, func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in `kind`'s pool, joined with a call for the same `key` already in flight."""
    return await once((kind, key), lambda: run(kind, func, *args))


def _landed(flights: dict[Hashable, asyncio.Future[Any]], key: Hashable, done: asyncio.Future[Any]) -> None:
    if flights.get(key) is done:
        del flights[key]
    if not done.cancelled():
        done.exception()  # retrieved: a failure nobody waits for any more is not an error to log


def in_flight() -> int:
    """Calls in flight on the running loop (for tests and diagnostics)."""
    flights = _flights.get(asyncio.get_running_loop())
    return 0 if flights is None else len(flights)
