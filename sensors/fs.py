"""fsspec access shared by the file-based sensors, and the one place that speaks fsspec.

- Backends on first use: a protocol's implementation (s3fs, gcsfs, adlfs and their SDKs) is imported
  the first time a sensor needs it, in a worker thread while the event loop keeps serving; concurrent
  first uses share that one import, and `preload` imports at start-up for operators who want it.
- One filesystem instance per protocol and event loop, async where the filesystem is async and off
  the event loop where it is not; store clients get short retries and timeouts so a poke can say
  "could not reach the store" within its budget.
- Sharing: pokes asking the same store the same question at once share one request; an answer
  serves later pokes for at most `max_staleness` seconds from when its request started; when
  several waiting sensors ask about objects under one parent prefix, one delimited, first-page
  listing of that prefix answers them all. Never an object reported present that the store did not
  list or describe.
- Every failure sorted into "not there yet", transient or permanent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import errno
import fnmatch
import logging
import os
import stat
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import fsspec
from fsspec.core import split_protocol
from fsspec.registry import known_implementations, registry

from . import lazy
from .base import Link, PermanentError, SensorError, TransientError, short

log = logging.getLogger(__name__)


#: The package to install for each protocol whose implementation is an optional extra.
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "abfs": "azure",
    "abfss": "azure",
    "az": "azure",
}

#: Protocols whose prefix listings this module can bound to one page (and so may share). Local
#: directories are read with os.scandir, strongly consistent like S3's listings.
LISTABLE = frozenset({"file", "s3"})
#: Items asked for in one shared listing; a prefix holding more is answered object by object.
LISTING_PAGE = 1000
#: Two different objects asked about under one parent within this many seconds make the parent
#: worth listing. Propeller polls each task every ~30 s, so sensors waiting side by side show up
#: within one resync.
DEMAND_WINDOW = 60.0
#: A prefix whose listing came back truncated is answered object by object for this long.
BIG_PREFIX_SECONDS = 300.0
#: Transient store errors are remembered this long, to explain a poke that runs out of time.
LAST_ERROR_SECONDS = 60.0


@dataclass
class Settings:
    """How sharing behaves; set once at start-up through `configure`."""

    #: Seconds an answer may serve later pokes, counted from when its request started; 0 = no sharing.
    #: Off unless the server turns it on (--max-staleness): a local `pyflyte run` pokes exactly.
    max_staleness: float = 0.0
    #: Answers and listed items kept at most (an LRU); expired ones are dropped as new ones arrive.
    cache_entries: int = 50_000
    #: Protocols (canonical names) whose prefix listings are trusted to answer many sensors at once.
    listing_protocols: frozenset[str] = LISTABLE
    #: The poke budget, from which store clients' timeouts are derived.
    poke_timeout: float = 5.0
    #: Monotonic seconds; tests inject their own.
    clock: Callable[[], float] = time.monotonic


SETTINGS = Settings()


def configure(
    *,
    max_staleness: float | None = None,
    cache_entries: int | None = None,
    listing_protocols: Iterable[str] | None = None,
    poke_timeout: float | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """Apply settings (those given; the rest keep their value). Call before serving."""
    if max_staleness is not None:
        if max_staleness < 0:
            raise ValueError("--max-staleness must be zero (no sharing) or more seconds")
        SETTINGS.max_staleness = max_staleness
    if cache_entries is not None:
        if cache_entries < 1:
            raise ValueError("--fs-cache-entries must be at least 1")
        SETTINGS.cache_entries = cache_entries
    if listing_protocols is not None:
        wanted = frozenset(p.strip() for p in listing_protocols if p.strip())
        unknown = sorted(wanted - LISTABLE)
        if unknown:
            raise ValueError(
                f"--listing-protocols: no bounded listing for {', '.join(unknown)}; "
                f"choose among {', '.join(sorted(LISTABLE))}"
            )
        SETTINGS.listing_protocols = wanted
    if poke_timeout is not None:
        SETTINGS.poke_timeout = poke_timeout
    if clock is not None:
        SETTINGS.clock = clock


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


STATS = Stats()


# -- backends on first use ----------------------------------------------------------------------
# One import per protocol name for the whole process (imports are process-wide); event loops await it.
_classes: dict[str, type[fsspec.AbstractFileSystem]] = {}


# Per protocol: a function making options for a new instance from work done in the import thread.
_prepared: dict[str, Callable[[], dict[str, Any]]] = {}


def _load_class(protocol: str) -> type[fsspec.AbstractFileSystem]:
    cls: type[fsspec.AbstractFileSystem] = fsspec.get_filesystem_class(protocol)
    if canonical(cls) == "s3":
        _prepared[protocol] = _prepare_s3()
    _classes[protocol] = cls
    return cls


def _prepare_s3() -> Callable[[], dict[str, Any]]:
    # aiobotocore reads S3's service model and endpoint rules from disk when the first client is
    # made (~0.3 s, on the event loop). Read them here into a loader that each instance's own
    # session (own credentials, as before) borrows.
    try:
        from aiobotocore.session import AioSession
        from botocore.loaders import create_loader

        loader = create_loader()
        for name in ("service-2", "endpoint-rule-set-1"):
            loader.load_service_model("s3", name)
        for data in ("partitions", "endpoints", "sdk-default-configuration", "_retry"):
            loader.load_data(data)
    except Exception:  # an optimisation only: s3fs makes its own session as usual
        log.debug("S3 service model not preloaded; each S3 client reads its own", exc_info=True)
        return dict

    def options() -> dict[str, Any]:
        session = AioSession()
        session.register_component("data_loader", loader)
        return {"session": session}

    return options


def _known(protocol: str) -> bool:
    """True when fsspec has an implementation registered or known for `protocol` (imported or not)."""
    return protocol in registry or protocol in known_implementations


def _import_future(protocol: str) -> concurrent.futures.Future[type[fsspec.AbstractFileSystem]]:
    return lazy.once(f"fsspec:{protocol}", lambda: _load_class(protocol))


def preload(protocols: Iterable[str]) -> list[str]:
    """Import these protocols' implementations now (at start-up); ValueError names one that cannot load."""
    loaded = []
    for protocol in (p.strip() for p in protocols):
        if not protocol:
            continue
        try:
            _import_future(protocol).result()
        except ImportError:
            raise ValueError(f"--preload {protocol}: {_missing(protocol)}") from None
        except ValueError:
            raise ValueError(f"--preload {protocol}: unknown protocol") from None
        loaded.append(protocol)
    return loaded


def _missing(protocol: str) -> str:
    extra = EXTRAS.get(protocol)
    hint = f"; install flyte-sensor-connector[{extra}]" if extra else ""
    return f"the connector has no support for {protocol}:// installed{hint}"


async def _filesystem_class(url: str, protocol: str, budget: float | None) -> type[fsspec.AbstractFileSystem]:
    cls = _classes.get(protocol)
    if cls is not None:
        return cls
    if not _known(protocol):  # a made-up protocol starts no import (and leaves nothing behind)
        raise PermanentError(f"{url}: unknown protocol {protocol!r}.")
    try:
        async with asyncio.timeout(budget):
            return await asyncio.wrap_future(_import_future(protocol))
    except TimeoutError:
        raise TransientError(
            f"{url}: the connector is still loading its {protocol}:// support; will poke again."
        ) from None
    except ValueError:
        raise PermanentError(f"{url}: unknown protocol {protocol!r}.") from None
    except ImportError:
        raise PermanentError(f"{url}: {_missing(protocol)}.") from None


# -- filesystem instances -------------------------------------------------------------------------
@dataclass
class _Answer:
    """One request's answer (or the request still in flight) and when it started."""

    started: float
    future: asyncio.Future[Any]
    weight: int = 1


@dataclass
class _Listing:
    """A prefix's first page: child name -> info, and whether the store had more."""

    items: dict[str, dict[str, Any]]
    truncated: bool


@dataclass
class _Demand:
    """Recent questions under one parent prefix, kept in O(1) space."""

    last_name: str
    last_asked: float
    hot_until: float = float("-inf")
    big_until: float = float("-inf")


@dataclass
class _LoopState:
    """Everything bound to one event loop: filesystem instances and the shared answers."""

    instances: dict[str, fsspec.AbstractFileSystem] = field(default_factory=dict)
    answers: OrderedDict[tuple[str, str, str], _Answer] = field(default_factory=OrderedDict)
    weight: int = 0
    demand: OrderedDict[tuple[str, str], _Demand] = field(default_factory=OrderedDict)
    #: protocol -> (when, what) of the last transient store failure.
    last_error: dict[str, tuple[float, str]] = field(default_factory=dict)
    #: url -> its resolved Target, so a poke of a known URL parses nothing.
    targets: dict[str, Target] = field(default_factory=dict)

    def remember(self, key: tuple[str, str, str], answer: _Answer) -> None:
        """Keep `answer` for later pokes, within the LRU bound; drop expired ones first."""
        old = self.answers.pop(key, None)
        if old is not None:
            self.weight -= old.weight
        self.answers[key] = answer
        self.weight += answer.weight
        horizon = SETTINGS.clock() - SETTINGS.max_staleness
        while self.answers:
            first_key, first = next(iter(self.answers.items()))
            if first.started >= horizon and self.weight <= SETTINGS.cache_entries:
                break
            del self.answers[first_key]
            self.weight -= first.weight

    def resize(self, key: tuple[str, str, str], answer: _Answer, weight: int) -> None:
        """A listing's weight is known once it arrives: its item count."""
        if self.answers.get(key) is answer:
            self.weight += weight - answer.weight
        answer.weight = weight


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


#: The loop that asked last and its state: a poke asks several times, and loops rarely change.
_last: tuple[asyncio.AbstractEventLoop | None, _LoopState] = (None, _LoopState())


def _state() -> _LoopState:
    global _last
    loop = asyncio.get_running_loop()
    if loop is _last[0]:
        return _last[1]
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _LoopState()
    _last = (loop, state)
    return state


def protocol_of(url: str) -> str:
    """The fsspec protocol of `url`; plain paths are `file`."""
    protocol, _ = split_protocol(url)
    return protocol or "file"


def canonical(cls: type[fsspec.AbstractFileSystem]) -> str:
    """The implementation's main protocol name (s3 for s3a://, gs for gcs://)."""
    names = cls.protocol
    return names if isinstance(names, str) else names[0]


def _client_options(protocol: str) -> dict[str, Any]:
    # Short, bounded retries and timeouts: the SDKs' defaults (minutes of retrying a dead endpoint)
    # outlast every poke, which then could only say that it ran out of time.
    budget = SETTINGS.poke_timeout
    if protocol == "s3":
        return {
            "config_kwargs": {
                "connect_timeout": max(0.2, budget * 0.2),
                "read_timeout": max(0.3, budget * 0.4),
                # s3fs retries on top of botocore: botocore makes one attempt, s3fs two (below).
                "retries": {"total_max_attempts": 1},
            }
        }
    if protocol == "gs":
        return {"requests_timeout": max(0.3, budget * 0.4)}
    return {}


def _instance(url: str, protocol: str, cls: type[fsspec.AbstractFileSystem]) -> fsspec.AbstractFileSystem:
    state = _state()
    fs = state.instances.get(protocol)
    if fs is not None:
        return fs
    # Listing caches off: a sensor must see a file the moment it lands; sharing is done here instead.
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if cls.async_impl:
        options["asynchronous"] = True
    options.update(_client_options(canonical(cls)))
    prepared = _prepared.get(protocol)
    if prepared is not None:
        options.update(prepared())
    try:
        fs = cls(**options)
    except ImportError as exc:
        raise PermanentError(
            f"{url}: {protocol}:// needs {exc.name or exc}, which the connector lacks."
        ) from None
    except Exception as exc:
        raise PermanentError(f"{url}: cannot set up {protocol}:// on the connector ({exc}).") from None
    if canonical(cls) == "s3":
        fs.retries = 2  # s3fs' own retry loop (throttling, dropped connections), on top of botocore's one
    state.instances[protocol] = fs
    return fs


@dataclass(frozen=True)
class Target:
    """A resolved URL: its filesystem, the path within it and the protocol's canonical name."""

    url: str
    fs: fsspec.AbstractFileSystem
    path: str
    protocol: str
    #: The path's parent prefix and last part, worked out once.
    parent: str = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        parent, name = _split(self.path)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "name", name)


async def resolve(url: str, budget: float | None = None) -> Target:
    """The shared filesystem for `url` and the path within it; PermanentError when it has none.

    The first use of a protocol imports its implementation off the event loop (within `budget`
    seconds, else TransientError); later uses import nothing and create nothing.
    """
    state = _state()
    target = state.targets.get(url)
    if target is not None:
        return target
    if not isinstance(url, str) or not url.strip():
        raise PermanentError("the path is empty.")
    protocol = protocol_of(url)
    cls = await _filesystem_class(url, protocol, budget)
    fs = _instance(url, protocol, cls)
    try:
        path = fs._strip_protocol(url)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{url}: malformed path ({exc}).") from None
    if not str(path).strip("/"):
        raise PermanentError(f"{url}: the path names no file or object to wait for.")
    target = Target(url, fs, str(path), canonical(cls))
    if len(state.targets) >= SETTINGS.cache_entries:
        state.targets.clear()  # bounded; a URL still polled is resolved again on its next poke
    state.targets[url] = target
    return target


async def call(fs: fsspec.AbstractFileSystem, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call filesystem `method`: its async form when the filesystem is async, else in a thread."""
    if getattr(fs, "asynchronous", False):
        return await getattr(fs, f"_{method}")(*args, **kwargs)
    func: Callable[..., Any] = getattr(fs, method)
    return await asyncio.to_thread(func, *args, **kwargs)


_TRANSIENT_ERRNOS = {
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EAGAIN,
    errno.EBUSY,
    errno.EIO,
    getattr(errno, "EREMOTEIO", errno.EIO),
}
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EROFS}
# Raised by cloud SDKs (botocore, google-auth, azure-identity) when no usable credentials exist;
# matched by name so that this module imports none of them.
_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "NoRegionError",
    "CredentialRetrievalError",
    "DefaultCredentialsError",
    "ClientAuthenticationError",
    "CredentialUnavailableError",
}
_NETWORK_ERRORS = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "TransportError",
    "ServiceRequestError",
}
_THROTTLING_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
}


def classify(exc: BaseException, url: str) -> SensorError:
    """Sort a filesystem failure into permanent (the task fails) or transient (keep waiting)."""
    if isinstance(exc, SensorError):
        return exc
    name = type(exc).__name__
    detail = str(exc) or name
    if name in _CREDENTIAL_ERRORS:
        return PermanentError(
            f"{url}: no usable credentials for {protocol_of(url)}:// on the connector ({detail})."
        )
    if isinstance(exc, PermissionError):
        return PermanentError(f"{url}: permission denied ({detail}).")
    status, code = _http_status(exc)
    if status is not None:
        if status >= 500 or status == 429 or code in _THROTTLING_CODES:
            return TransientError(f"{url}: the store answered {status} {code}; will poke again.")
        if status in (401, 403):
            return PermanentError(f"{url}: permission denied ({status} {code}).")
        return PermanentError(f"{url}: the store rejected the request ({status} {code}: {detail}).")
    if isinstance(exc, TimeoutError | ConnectionError) or name in _NETWORK_ERRORS:
        return TransientError(f"{url}: could not reach the store ({detail}); will poke again.")
    if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
        return PermanentError(f"{url}: {detail}.")
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"{url}: {detail}; will poke again.")
    if isinstance(exc, ValueError | TypeError):
        return PermanentError(f"{url}: malformed path ({detail}).")
    return TransientError(f"{url}: {name}: {detail}; will poke again.")


def _http_status(exc: BaseException) -> tuple[int | None, str]:
    # botocore's ClientError (directly or as the cause of an s3fs OSError) carries a response dict;
    # gcsfs's HttpError and aiohttp's ClientResponseError carry `code`/`status`.
    for err in (exc, exc.__cause__, exc.__context__):
        if err is None:
            continue
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            meta = response.get("ResponseMetadata", {})
            code = str(response.get("Error", {}).get("Code", ""))
            status = meta.get("HTTPStatusCode")
            if isinstance(status, int):
                return status, code
        for attr in ("status", "code"):
            status = getattr(err, attr, None)
            if isinstance(status, int) and 100 <= status < 600:
                return status, type(err).__name__
    return None, ""


def _transient_detail(exc: BaseException) -> str | None:
    """A short account of a failure worth remembering to explain a later timeout."""
    if isinstance(exc, FileNotFoundError | PermissionError):
        return None
    return short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 120)


async def _ask(
    target: Target, operation: str, key: str, fetch: Callable[[], Awaitable[Any]], budget: float | None
) -> tuple[Any, bool]:
    """The answer to (operation, key) on target's store, shared when allowed; (answer, was_shared)."""
    state = _state()
    now = SETTINGS.clock()
    cache_key = (operation, target.protocol, key)
    shared = SETTINGS.max_staleness > 0
    answer = _fresh(state, cache_key, now) if shared else None
    if answer is not None:
        was_shared = True
    else:
        was_shared = False
        STATS.request(target.protocol, operation)

        async def run() -> Any:
            try:
                return await fetch()
            except Exception as exc:
                detail = _transient_detail(exc)
                if detail is not None:
                    state.last_error[target.protocol] = (SETTINGS.clock(), detail)
                raise

        task = asyncio.ensure_future(run())
        task.add_done_callback(_retrieve)  # a failure nobody waits for any more is not an error to log
        answer = _Answer(now, task)
        if shared:
            state.remember(cache_key, answer)
    if answer.future.done():  # the common case under load: no timer, no shield, no task switch
        return answer.future.result(), was_shared
    try:
        # Shielded: a poke that gives up must not cancel the request other pokes are waiting on.
        async with asyncio.timeout(budget):
            return await asyncio.shield(answer.future), was_shared
    except TimeoutError:
        raise TransientError(_no_answer(target, state, budget)) from None


def _fresh(state: _LoopState, key: tuple[str, str, str], now: float) -> _Answer | None:
    """The shared answer (or request in flight) for `key`, if it started within the staleness bound."""
    answer = state.answers.get(key)
    return answer if answer is not None and now - answer.started <= SETTINGS.max_staleness else None


def _arrived(state: _LoopState, key: tuple[str, str, str], now: float) -> Any:
    """A shared answer that has arrived, is fresh and is not an error; else None (ask `_ask`)."""
    answer = _fresh(state, key, now)
    if answer is None:
        return None
    future = answer.future
    if not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _no_answer(target: Target, state: _LoopState, budget: float | None) -> str:
    within = f" within {budget:.1f}s" if budget is not None else ""
    last = state.last_error.get(target.protocol)
    if last is not None and SETTINGS.clock() - last[0] <= LAST_ERROR_SECONDS:
        ago = max(0.0, SETTINGS.clock() - last[0])
        return (
            f"{target.url}: the store did not answer{within}; its last error, {ago:.0f}s ago, "
            f"was {last[1]}; will poke again."
        )
    return f"{target.url}: the store did not answer{within}; will poke again."


def _margin(budget: float | None) -> float | None:
    # Leave the engine's own deadline a margin, so the poke reports what it waited for.
    return None if budget is None else max(0.05, budget * 0.9)


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent, name


def _wants_listing(state: _LoopState, protocol: str, parent: str, name: str, now: float) -> bool:
    """Note that `name` under `parent` was asked about; True when a shared listing should answer it."""
    key = (protocol, parent)
    demand = state.demand.get(key)
    if demand is None:
        state.demand[key] = _Demand(name, now)
        while len(state.demand) > SETTINGS.cache_entries:
            state.demand.popitem(last=False)
        return False
    state.demand.move_to_end(key)
    if name != demand.last_name and now - demand.last_asked <= DEMAND_WINDOW:
        demand.hot_until = now + DEMAND_WINDOW
    demand.last_name, demand.last_asked = name, now
    return now <= demand.hot_until and now > demand.big_until


def _too_big(state: _LoopState, protocol: str, parent: str) -> None:
    """Answer objects under `parent` one by one for a while: its listing does not fit one page."""
    now = SETTINGS.clock()
    demand = state.demand.setdefault((protocol, parent), _Demand("", now))
    demand.big_until = now + BIG_PREFIX_SECONDS


def _is_big(state: _LoopState, protocol: str, parent: str) -> bool:
    demand = state.demand.get((protocol, parent))
    return demand is not None and SETTINGS.clock() <= demand.big_until


async def _listing(target: Target, parent: str, budget: float | None) -> tuple[_Listing, bool]:
    """The shared first-page listing of `parent` (a path within target's filesystem)."""
    state = _state()

    async def fetch() -> _Listing:
        try:
            if target.protocol == "file":
                listing = await asyncio.to_thread(_scan_local, parent)
            else:
                listing = await _list_s3(target.fs, parent)
        except FileNotFoundError:  # no such bucket: nothing under it, as info would say
            listing = _Listing({}, truncated=False)
        cache_key = ("list", target.protocol, parent)
        answer = state.answers.get(cache_key)
        if answer is not None:
            state.resize(cache_key, answer, 1 + len(listing.items))
        return listing

    result: _Listing
    result, was_shared = await _ask(target, "list", parent, fetch, budget)
    return result, was_shared


def _scan_local(parent: str) -> _Listing:
    """A local directory's first page, as LocalFileSystem.info describes each entry (blocking)."""
    items: dict[str, dict[str, Any]] = {}
    base = parent.rstrip("/")
    try:
        with os.scandir(parent or "/") as entries:
            for entry in entries:
                if len(items) >= LISTING_PAGE:
                    return _Listing(items, truncated=True)
                try:
                    st = entry.stat()  # follows links: a dangling one is absent, as info says
                except FileNotFoundError:
                    continue
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                path = f"{base}/{entry.name}"
                items[entry.name] = {"name": path, "type": kind, "size": st.st_size, "mtime": st.st_mtime}
    except FileNotFoundError:
        raise
    except OSError:
        # An unreadable directory may still let its entries be looked up one by one (mode 0711):
        # a truncated listing sends every question under it back to per-object info.
        return _Listing({}, truncated=True)
    return _Listing(items, truncated=False)


async def _list_s3(fs: Any, parent: str) -> _Listing:
    # One list_objects_v2 call through s3fs' async client wrapper: one page, delimited, so the
    # listing costs exactly one request however large the prefix (s3fs' _lsdir would page on).
    bucket, key, _ = fs.split_path(parent)
    prefix = f"{key.rstrip('/')}/" if key else ""
    out = await fs._call_s3(
        "list_objects_v2", Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=LISTING_PAGE, **fs.req_kw
    )
    items: dict[str, dict[str, Any]] = {}
    for common in out.get("CommonPrefixes", []):
        name = common["Prefix"][len(prefix) :].rstrip("/")
        if name:
            items[name] = {"name": f"{bucket}/{prefix}{name}", "type": "directory", "size": 0}
    for obj in out.get("Contents", []):
        name = obj["Key"][len(prefix) :]
        if name and "/" not in name:  # files win over a same-named "directory", as info does
            items[name] = {
                "name": f"{bucket}/{obj['Key']}",
                "type": "file",
                "size": obj.get("Size", 0),
                "LastModified": obj.get("LastModified"),
                "ETag": obj.get("ETag", ""),
            }
    return _Listing(items, truncated=bool(out.get("IsTruncated")))


def _listable(target: Target, parent: str) -> bool:
    """True when a shared listing of `parent` may answer questions about what is under it."""
    return SETTINGS.max_staleness > 0 and target.protocol in SETTINGS.listing_protocols and bool(parent)


async def _shared_call(target: Target, method: str, missing: Any, budget: float | None) -> Any:
    """Filesystem `method` on target's path, shared as `_ask` allows; `missing` when there is nothing."""

    async def fetch() -> Any:
        try:
            return await call(target.fs, method, target.path)
        except FileNotFoundError:
            return missing

    answer, was_shared = await _ask(target, method, target.path, fetch, budget)
    STATS.answer(target.protocol, "shared" if was_shared else "own")
    return answer


async def info(url: str, budget: float | None = None) -> dict[str, Any] | None:
    """The object's metadata, None when it does not exist (yet); do not mutate the answer.

    `budget` is the poke's time budget in seconds: a store that does not answer within it gives
    TransientError naming its last failure.
    """
    budget = _margin(budget)
    state = _state()
    target = state.targets.get(url) or await resolve(url, budget)
    try:
        parent = target.parent
        now = SETTINGS.clock()
        if _listable(target, parent) and _wants_listing(state, target.protocol, parent, target.name, now):
            listing: _Listing | None = _arrived(state, ("list", target.protocol, parent), now)
            if listing is None:
                listing, _ = await _listing(target, parent, budget)
            if listing.truncated:
                _too_big(state, target.protocol, parent)
            found: dict[str, Any] | None = listing.items.get(target.name)
            if found is not None or not listing.truncated:
                STATS.answer(target.protocol, "listing")
                return found

        meta: dict[str, Any] | None = await _shared_call(target, "info", None, budget)
        return meta
    except SensorError:
        raise
    except Exception as exc:
        raise classify(exc, url) from exc


def has_magic(text: str) -> bool:
    """True when `text` holds a glob wildcard."""
    return any(ch in text for ch in "*?[")


async def glob(pattern: str, budget: float | None = None) -> list[str]:
    """Paths (without protocol) matching the glob `pattern`, shared like `info`.

    A pattern whose only wildcards are in its last part is answered from the parent's shared
    listing on listing protocols; other patterns make one shared glob request.
    """
    budget = _margin(budget)
    target = await resolve(pattern, budget)
    try:
        parent, last = target.parent, target.name
        if _listable(target, parent) and not has_magic(parent) and "**" not in last:
            state = _state()
            if not _is_big(state, target.protocol, parent):
                listing = _arrived(state, ("list", target.protocol, parent), SETTINGS.clock())
                if listing is None:
                    listing, _ = await _listing(target, parent, budget)
                if not listing.truncated:
                    STATS.answer(target.protocol, "listing")
                    return sorted(
                        item["name"]
                        for name, item in listing.items.items()
                        if fnmatch.fnmatchcase(name, last)
                    )
                _too_big(state, target.protocol, parent)

        return list(await _shared_call(target, "glob", [], budget))
    except SensorError:
        raise
    except Exception as exc:
        raise classify(exc, pattern) from exc


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


def console_links(url: str) -> list[Link]:
    """A link to the object store's web console for a bucket path, where the store has one."""
    protocol, rest = split_protocol(url)
    if not protocol or not rest:
        return []
    bucket, _, key = rest.partition("/")
    if protocol in ("s3", "s3a"):
        return [
            Link("S3 console", f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(key)}")
        ]
    if protocol in ("gs", "gcs"):
        return [
            Link("GCS console", f"https://console.cloud.google.com/storage/browser/{bucket}/{quote(key)}")
        ]
    return []
