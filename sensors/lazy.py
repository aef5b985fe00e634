"""Optional packages imported the first time a sensor needs them, never at start-up.

A server that never runs SqlSensor never pays SQLAlchemy's import time and memory. The first poke
that needs a package imports it in a thread of its own while the event loop keeps serving other
calls; pokes that arrive during that import wait for the same import, and once it is done every
later poke finds the module in a dict (no import machinery on the request path).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
#: Key -> its one piece of work (an import), finished or under way. A failure is kept too: a missing
#: driver stays missing, and retrying would put the import machinery on every poke.
_imports: dict[str, concurrent.futures.Future[Any]] = {}


def installed(name: str) -> bool:
    """True when top-level package `name` can be imported; nothing is imported to find out."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def once(key: str, work: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Run `work` (an import) once per `key`, in a thread of its own; every caller gets its future."""
    with _lock:
        future = _imports.get(key)
        if future is not None:
            return future
        future = concurrent.futures.Future()
        # Running from the start, so a waiter that gives up (a poke timeout) cannot cancel the work
        # for everyone else.
        future.set_running_or_notify_cancel()
        _imports[key] = future

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to every waiter rather than lost in this thread
            future.set_exception(exc)

    # A thread of its own rather than the blocking-call pool: an import cannot be cancelled, and a
    # slow one must not hold a slot that pokes of other sensors need.
    threading.Thread(target=run, name=f"import-{key}", daemon=True).start()
    return future


def _start(name: str) -> concurrent.futures.Future[ModuleType]:
    return once(name, lambda: importlib.import_module(name))


async def load(name: str) -> ModuleType:
    """Module `name`, imported off the event loop on first use (ImportError if it cannot be)."""
    future = _imports.get(name)
    if future is None or not future.done():
        future = _start(name)
        # wait() never raises the import's error: it is raised below, alike for every caller.
        await asyncio.wait([asyncio.wrap_future(future)])
    failure = future.exception()
    if failure is not None:
        # A fresh exception per call: raising the stored one again would grow its traceback per poke.
        raise ImportError(f"{name} cannot be imported: {failure}", name=name) from None
    module: ModuleType = future.result()
    return module


def loaded(name: str) -> ModuleType | None:
    """Module `name` if `load` has imported it, else None (nothing is imported)."""
    future = _imports.get(name)
    if future is None or not future.done() or future.exception() is not None:
        return None
    module: ModuleType = future.result()
    return module
