"""`Store`: the one door through which sensors reach files and object stores.

A server makes one `Store` from its settings and hands it to every poke (`PokeContext.store`); a local
`pyflyte run` uses `default_store()`. The Store admits a path, finds its client (`backends`), asks the
store once for all pokes asking the same (`sharing`, `listings`) and sorts failures (`errors`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import functools
import os
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .. import local_roots
from ..base import ConfigError, PermanentError, SensorError, TransientError, short
from ..local_roots import LocalRoots
from ..pools import Pool
from . import backends, cloud, listings
from .errors import classify, raise_if_no_bucket
from .listings import Demand, Listing
from .sharing import Sharing, Stats

T = TypeVar("T")


@dataclass(frozen=True)
class StoreSettings:
    """How a Store reaches stores and shares their answers; fixed for the Store's life."""

    #: Seconds an answer may serve later pokes, counted from when its request started; 0 = no sharing.
    #: Off by default: a local `pyflyte run` pokes exactly (the server passes --max-staleness).
    max_staleness: float = 0.0
    #: Answers and listed items kept at most (an LRU); expired ones are dropped as new ones arrive.
    cache_entries: int = 50_000
    #: Protocols (canonical names) whose prefix listings are trusted to answer many sensors at once.
    listing_protocols: frozenset[str] = frozenset(listings.LISTERS)
    #: Protocols whose implementations are imported when the Store is made, not on first use.
    preload: tuple[str, ...] = ()
    #: The poke budget, from which store clients' timeouts are derived.
    poke_timeout: float = 5.0
    #: Threads for blocking filesystem calls (the local filesystem), kept off the event loop.
    blocking_threads: int = 32
    #: The share of a poke's budget a store question may wait, so the poke can say what it waited for
    #: before the engine's own deadline; never less than `min_wait` seconds.
    wait_share: float = 0.9
    min_wait: float = 0.05
    #: Where local paths may lead (--local-roots, the connector's own files carved out); None admits
    #: every local path (a local run, where the files are the author's own).
    local_roots: LocalRoots | None = None
    #: The protocols paths may name (canonical names, --path-protocols); None admits every protocol
    #: fsspec knows (a local run, where the credentials and the network are the author's own).
    protocols: frozenset[str] | None = None

    def __post_init__(self) -> None:
        # The numbers are checked with every other option by the server's Config; the protocols here,
        # where the listers are known.
        named = (p.strip() for p in self.listing_protocols if p.strip())
        wanted = frozenset(listings.ALIASES.get(p, p) for p in named)
        unknown = sorted(wanted - frozenset(listings.LISTERS))
        if unknown:
            raise ValueError(
                f"--listing-protocols: no bounded listing for {', '.join(unknown)}; "
                f"choose among {', '.join(sorted(listings.LISTERS))}"
            )
        object.__setattr__(self, "listing_protocols", wanted)
        object.__setattr__(self, "preload", tuple(p.strip() for p in self.preload if p.strip()))


@dataclass(frozen=True)
class Target:
    """An admitted, resolved URL: its client, the path within it and the protocol's canonical name."""

    url: str
    fs: fsspec.AbstractFileSystem
    path: str
    protocol: str
    #: The path's parent prefix and last part, worked out once.
    parent: str = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        parent, _, name = self.path.rstrip("/").rpartition("/")
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "name", name)


class _Loop:
    """What a Store keeps per event loop: async clients and in-flight requests belong to one loop."""

    def __init__(self, store: Store) -> None:
        settings = store.settings
        self.clients: dict[str, fsspec.AbstractFileSystem] = {}
        #: protocol -> a client being made off the loop (clients that look for credentials when made).
        #: A failure is kept with the URL it named, so each waiting poke names its own.
        self.making: dict[str, asyncio.Future[tuple[fsspec.AbstractFileSystem | PermanentError, str]]] = {}
        self.sharing = Sharing(settings.max_staleness, settings.cache_entries, store.now, store.stats)
        self.demand = Demand(settings.cache_entries)
        #: url -> its resolved Target (bounded by cache_entries), so a poke of a known URL parses nothing.
        self.targets: dict[str, Target] = {}


class Store:
    """Files and object stores for sensors: settings, clients, counters and shared answers in one object.

    Two Stores share nothing but the process-wide imports of fsspec implementations.
    """

    def __init__(
        self, settings: StoreSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or StoreSettings()
        #: Monotonic seconds for staleness and demand; tests set their own.
        self.clock = clock
        #: Requests made and answers given, read by the connector's metrics.
        self.stats = Stats()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()
        # The loop that asked last: a poke asks several times, and loops rarely change.
        self._last: tuple[asyncio.AbstractEventLoop | None, _Loop | None] = (None, None)
        #: The local filesystem's blocking calls (--blocking-threads), threads made on first use.
        self._pool = Pool("store", self.settings.blocking_threads)
        roots = self.settings.local_roots
        #: How a local directory is listed under --local-roots (resolved, inside a root, no links).
        self._local_lister = listings.lister_within(roots) if roots is not None else None

    def now(self) -> float:
        """The Store's clock."""
        return self.clock()

    def preload(self) -> list[str]:
        """Import the implementations of `settings.preload` now; ValueError names one that cannot load."""
        return backends.preload(self.settings.preload)

    # -- admission and resolution --------------------------------------------------------------
    def admit(self, url: str) -> None:
        """Refuse (PermanentError) a path this Store must not touch; called before any access to it.

        Local paths are admitted again, resolved, by `info` and `glob` at every poke (`_admit_local`).
        """
        if not isinstance(url, str) or not url.strip():
            raise PermanentError("the path is empty.")
        allowed = self.settings.protocols
        protocol = backends.protocol_of(url)
        refused = allowed is not None and backends.ALIASES.get(protocol, protocol) not in allowed
        if refused and backends.is_known(protocol):  # an unknown one fails as such when resolved
            raise PermanentError(
                f"{short(url, 120)}: the connector does not read {short(protocol, 40)}:// paths; "
                f"it reads {', '.join(f'{p}://' for p in sorted(allowed or ()))} (--path-protocols)."
            )

    async def admit_at_create(self, sensor: str, urls: Iterable[str], budget: float) -> None:
        """ConfigError naming the first local path or pattern of a new task that lies outside the roots.

        A pattern is judged by its fixed part before the first wildcard. A filesystem that does not
        answer within `budget`, or a path that cannot be resolved (permission denied on a link), leaves
        the decision to the first poke, which admits it again or fails saying why.
        """
        roots = self.settings.local_roots
        if roots is None:
            return
        for url in urls:
            path = local_roots.local_path(url)
            if path is None:
                continue
            fixed = local_roots.fixed_part(path)
            try:
                async with asyncio.timeout(budget):
                    real = await self.blocking(os.path.realpath, fixed)
            except (TimeoutError, OSError):
                return
            if not roots.contains(real):
                raise ConfigError(f"{sensor}: {roots.refusal(url, real, fixed)}")

    async def _admit_local(self, state: _Loop, target: Target, budget: float | None) -> Target:
        """`target` read by its resolved path if it lies inside the roots; Refused (the task fails) if not.

        For a path asked about on its own; a shared listing of its directory admits the children it
        answers for (`listings.lister_within`). Resolving takes a worker thread, so the resolution is
        shared like an answer (same key space, same --max-staleness bound): a thread hop per poke of
        every local sensor cost more CPU than the rest of the Get (docs/performance.md, "Local
        paths"). The read that follows uses the resolved path, so a link changed within the bound
        still leads nowhere outside a root.
        """
        roots = self.settings.local_roots
        if roots is None or not _is_local(target):
            return target

        async def resolve() -> str:
            return await self.blocking(roots.admit, target.path)

        key = ("admit", target.protocol, target.path)
        real, _ = await state.sharing.ask(target.url, key, resolve, budget)
        return target if real == target.path else Target(target.url, target.fs, real, target.protocol)

    async def resolve(self, url: str, budget: float | None = None) -> Target:
        """The client for `url` and the path within it; PermanentError when there is none.

        The first use of a protocol imports its implementation off the event loop (within `budget`
        seconds, else TransientError); later uses import nothing and create nothing.
        """
        state = self._state()
        target = state.targets.get(url)
        if target is not None:
            return target
        self.admit(url)
        protocol = backends.protocol_of(url)
        cls = await backends.implementation(url, protocol, budget)
        fs = state.clients.get(protocol)
        if fs is None:
            fs = state.clients[protocol] = await self._new_client(state, url, protocol, cls, budget)
        try:
            path = fs._strip_protocol(url)
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"{url}: malformed path ({exc}).") from None
        if not str(path).strip("/"):
            raise PermanentError(f"{url}: the path names no file or object to wait for.")
        target = Target(url, fs, str(path), backends.canonical(cls))
        if len(state.targets) >= self.settings.cache_entries:
            state.targets.clear()  # bounded; a URL still polled is resolved again on its next poke
        state.targets[url] = target
        return target

    # -- what sensors ask ----------------------------------------------------------------------
    async def info(self, url: str, budget: float | None = None) -> dict[str, Any] | None:
        """The object's metadata, None when it does not exist (yet); do not mutate the answer.

        `budget` is the poke's time budget in seconds: a store that does not answer within it gives
        TransientError naming its last failure.
        """
        budget = self._wait(budget)
        state = self._state()
        target = state.targets.get(url) or await self.resolve(url, budget)
        try:
            parent, protocol = target.parent, target.protocol
            now = self.clock()
            if self._listable(target) and state.demand.wants_listing(protocol, parent, target.name, now):
                listing: Listing | None = state.sharing.arrived(("list", protocol, parent), now)
                if listing is None:
                    listing = await self._listing(state, target, budget)
                if listing.truncated:
                    state.demand.too_big(protocol, parent, self.clock())
                if listing.settles(target.name):  # under --local-roots, also its admission
                    self.stats.answer(protocol, "listing")
                    found: dict[str, Any] | None = listing.items.get(target.name)
                    return found
            # Asked on its own: a local path is admitted first (a link may have changed since), and
            # read by its resolved path.
            target = await self._admit_local(state, target, budget)
            meta: dict[str, Any] | None = await self._shared_call(state, target, "info", None, budget)
            return meta
        except SensorError:
            raise
        except Exception as exc:
            raise classify(exc, url) from exc

    async def exists(self, url: str, budget: float | None = None) -> bool:
        """True when the object (or directory) at `url` exists; shared like `info`."""
        return await self.info(url, budget) is not None

    async def glob(self, pattern: str, budget: float | None = None) -> list[str]:
        """Paths (without protocol) matching the glob `pattern`, shared like `info`."""
        return sorted(await self.glob_info(pattern, budget))

    async def glob_info(self, pattern: str, budget: float | None = None) -> dict[str, dict[str, Any]]:
        """Path (without protocol) -> info for each match of the glob `pattern`, shared like `info`.

        A pattern whose only wildcards are in its last part is answered from the parent's shared
        listing on listing protocols (sizes and modification times included); other patterns make
        one shared glob request. Do not mutate the answer.
        """
        budget = self._wait(budget)
        target = await self.resolve(pattern, budget)
        try:
            roots = self.settings.local_roots
            if roots is not None and _is_local(target):
                # Walked by the roots themselves: every directory and link crossed is admitted first.
                async def walk() -> dict[str, dict[str, Any]]:
                    return await self.blocking(roots.glob_info, target.path)

                key = ("glob", target.protocol, target.path)
                walked: dict[str, dict[str, Any]]
                walked, was_shared = await self._state().sharing.ask(target.url, key, walk, budget)
                self.stats.answer(target.protocol, "shared" if was_shared else "own")
                return walked
            parent, last, protocol = target.parent, target.name, target.protocol
            if self._listable(target) and not has_magic(parent) and "**" not in last:
                state = self._state()
                if not state.demand.is_big(protocol, parent, self.clock()):
                    listing = state.sharing.arrived(("list", protocol, parent), self.clock())
                    if listing is None:
                        listing = await self._listing(state, target, budget)
                    if not listing.truncated:
                        self.stats.answer(protocol, "listing")
                        return {
                            item["name"]: item
                            for name, item in listing.items.items()
                            if fnmatch.fnmatchcase(name, last)
                        }
                    state.demand.too_big(protocol, parent, self.clock())

            found: dict[str, dict[str, Any]] = await self._shared_call(
                self._state(), target, "glob", {}, budget
            )
            return found
        except SensorError:
            raise
        except Exception as exc:
            raise classify(exc, pattern) from exc

    @staticmethod
    def modified_at(meta: dict[str, Any]) -> dt.datetime | None:
        """Last-modified time of an `info` answer, across local, S3, GCS and Azure spellings."""
        return modified_at(meta)

    # -- lifecycle -----------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the clients made on the running loop and stop the thread pool; the Store may be reused."""
        loop = asyncio.get_running_loop()
        state = self._loops.pop(loop, None)
        self._last = (None, None)
        if state is not None:
            for fs in state.clients.values():
                await backends.close_client(fs)
        self._pool.close()

    # -- inside --------------------------------------------------------------------------------
    async def blocking(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking filesystem call in the Store's bounded thread pool, joined with the same call
        (same function, same arguments) already in flight: a call that hangs is made once."""
        key = (func, args)
        try:
            hash(key)
        except TypeError:
            return await self._pool.run(func, *args)
        return await self._pool.blocking(key, func, *args)

    async def _call(self, fs: fsspec.AbstractFileSystem, method: str, path: str, **kwargs: Any) -> Any:
        """Client `method` on `path`: its async form when the client is async, else in the thread pool."""
        if getattr(fs, "asynchronous", False):
            return await getattr(fs, f"_{method}")(path, **kwargs)
        return await self.blocking(functools.partial(getattr(fs, method), **kwargs), path)

    async def _new_client(
        self,
        state: _Loop,
        url: str,
        protocol: str,
        cls: type[fsspec.AbstractFileSystem],
        budget: float | None,
    ) -> fsspec.AbstractFileSystem:
        """A new client for `protocol`; made off the loop where making it may wait on the network."""
        timeout = self.settings.poke_timeout
        if backends.canonical(cls) not in backends.SLOW_TO_MAKE:
            return backends.new_client(url, protocol, cls, timeout)
        # gcsfs looks for Google credentials when its client is made, which may ask the metadata server
        # (seconds, with retries, where there is none): in the thread pool, shared by concurrent pokes,
        # and waited for within the poke's budget.
        pending = state.making.get(protocol)
        if pending is None:

            def make() -> tuple[fsspec.AbstractFileSystem | PermanentError, str]:
                try:
                    return backends.new_client(url, protocol, cls, timeout), url
                except PermanentError as exc:
                    return exc, url

            pending = state.making[protocol] = asyncio.ensure_future(self.blocking(make))

            def keep(future: asyncio.Future[tuple[fsspec.AbstractFileSystem | PermanentError, str]]) -> None:
                state.making.pop(protocol, None)
                if not future.cancelled() and future.exception() is None:
                    client, _ = future.result()
                    if not isinstance(client, PermanentError):  # kept even if every poke gave up waiting
                        state.clients.setdefault(protocol, client)

            pending.add_done_callback(keep)
        try:
            async with asyncio.timeout(budget):
                made, named = await asyncio.shield(pending)
        except TimeoutError:
            raise TransientError(
                f"{url}: the connector is still setting up its {protocol}:// client (looking for "
                "credentials); will poke again."
            ) from None
        if isinstance(made, PermanentError):
            raise PermanentError(str(made).replace(named, url, 1))
        return made

    def _state(self) -> _Loop:
        loop = asyncio.get_running_loop()
        last_loop, last = self._last
        if loop is last_loop and last is not None:
            return last
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _Loop(self)
        self._last = (loop, state)
        return state

    def _wait(self, budget: float | None) -> float | None:
        # Leave the engine's own deadline a margin, so the poke reports what it waited for.
        return None if budget is None else max(self.settings.min_wait, budget * self.settings.wait_share)

    def _listable(self, target: Target) -> bool:
        """True when a shared listing of target's parent may answer questions about what is under it
        (under --local-roots, a directory resolving outside them answers nothing: `lister_within`)."""
        return (
            self.settings.max_staleness > 0
            and target.protocol in self.settings.listing_protocols
            and bool(target.parent)
        )

    async def _listing(self, state: _Loop, target: Target, budget: float | None) -> Listing:
        """The shared first-page listing of target's parent."""
        parent, protocol = target.parent, target.protocol
        key = ("list", protocol, parent)
        lister = listings.LISTERS[protocol]
        if self._local_lister is not None and _is_local(target):
            lister = self._local_lister

        async def fetch() -> Listing:
            try:
                listing = await lister(target.fs, parent, self.blocking)
            except FileNotFoundError as exc:  # nothing under it, as info would say; NoSuchBucket fails
                raise_if_no_bucket(exc, parent)
                listing = Listing({}, truncated=False)
            except cloud.StoreHTTPError as exc:
                if exc.status not in (401, 403):
                    raise
                # Not allowed to list (an identity that may only read objects): an unreadable listing
                # answers nothing, and each object is asked about on its own.
                listing = Listing({}, truncated=True)
            state.sharing.weigh(key, 1 + len(listing.items))
            return listing

        result: Listing
        result, _ = await state.sharing.ask(target.url, key, fetch, budget)
        return result

    async def _shared_call(
        self, state: _Loop, target: Target, method: str, missing: Any, budget: float | None
    ) -> Any:
        """Client `method` on target's path, shared as allowed; `missing` when there is nothing."""

        async def fetch() -> Any:
            try:
                if method == "info" and target.protocol in _CLOUD_INFO:
                    return await _CLOUD_INFO[target.protocol](target.fs, target.path)
                if method == "glob":  # with each match's info: GlobSensor's quiet_for reads the times
                    return await self._call(target.fs, "glob", target.path, detail=True)
                return await self._call(target.fs, method, target.path)
            except FileNotFoundError as exc:
                raise_if_no_bucket(exc, target.path)
                return missing

        answer, was_shared = await state.sharing.ask(
            target.url, (method, target.protocol, target.path), fetch, budget
        )
        self.stats.answer(target.protocol, "shared" if was_shared else "own")
        return answer


#: Protocols whose one-object info is asked through `cloud` (one attempt, a missing bucket told apart).
_CLOUD_INFO = {"gs": cloud.gcs_info, "abfs": cloud.azure_info}


def _is_local(target: Target) -> bool:
    """True when target's client reads the connector's own disk (confined to the local roots)."""
    return isinstance(target.fs, LocalFileSystem)


def has_magic(text: str) -> bool:
    """True when `text` holds a glob wildcard."""
    return any(ch in text for ch in "*?[")


def modified_at(meta: dict[str, Any]) -> dt.datetime | None:
    """Last-modified time from fsspec `info` across local, S3, GCS and Azure spellings."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "mtime_ns", "modified"):
        value = meta.get(key)
        if value is None:
            continue
        if key == "mtime_ns" and isinstance(value, int):
            return dt.datetime.fromtimestamp(value / 1e9, dt.UTC)
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


_default: Store | None = None


def default_store() -> Store:
    """The Store of local runs (`pyflyte run`, `run_locally`), where no server owns one: no sharing."""
    global _default
    if _default is None:
        _default = Store()
    return _default
