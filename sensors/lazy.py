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
from types import ModuleType

_lock = threading.Lock()
#: Module name -> its one import, finished or under way. A failed import is kept too: a missing
#: driver stays missing, and retrying would put the import machinery on every poke.
_imports: dict[str, concurrent.futures.Future[ModuleType]] = {}


def installed(name: str) -> bool:
    """True when top-level package `name` can be imported; nothing is imported to find out."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _start(name: str) -> concurrent.futures.Future[ModuleType]:
    with _lock:
        future = _imports.get(name)
        if future is not None:
            return future
        future = concurrent.futures.Future()
        # Running from the start, so a waiter that gives up (a poke timeout) cannot cancel the import
        # for everyone else.
        future.set_running_or_notify_cancel()
        _imports[name] = future

    def run() -> None:
        try:
            future.set_result(importlib.import_module(name))
        except BaseException as exc:  # handed to every waiter rather than lost in this thread
            future.set_exception(exc)

    # A thread of its own rather than the blocking-call pool: an import cannot be cancelled, and a
    # slow one must not hold a slot that pokes of other sensors need.
    threading.Thread(target=run, name=f"import-{name}", daemon=True).start()
    return future


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
    return future.result()


def loaded(name: str) -> ModuleType | None:
    """Module `name` if `load` has imported it, else None (nothing is imported)."""
    future = _imports.get(name)
    if future is None or not future.done() or future.exception() is not None:
        return None
    return future.result()
