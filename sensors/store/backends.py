"""Which fsspec implementation serves a protocol, and the store clients made from it.

An implementation (s3fs, gcsfs, adlfs and their SDKs) is imported the first time a poke needs it, in a
worker thread while the event loop keeps serving; concurrent first uses share that one import, and
`preload` imports at start-up instead. Imports are process-wide, so the imported classes are kept here,
once per process; the clients made from them belong to a `Store` (one per protocol and event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import fsspec
from fsspec.core import split_protocol
from fsspec.registry import known_implementations, registry

from .. import lazy
from ..base import PermanentError, TransientError
from . import cloud

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

#: Other names fsspec gives the same protocols (what --path-protocols and error messages count as one).
ALIASES = {"local": "file", "s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}

# Process-wide, as the imports they record are: protocol -> its implementation, and per protocol a
# function making options for a new client from work done in the import thread.
_classes: dict[str, type[fsspec.AbstractFileSystem]] = {}
_prepared: dict[str, Callable[[], dict[str, Any]]] = {}


def protocol_of(url: str) -> str:
    """The fsspec protocol of `url`; plain paths are `file`."""
    protocol, _ = split_protocol(url)
    return protocol or "file"


def canonical(cls: type[fsspec.AbstractFileSystem]) -> str:
    """The implementation's main protocol name (s3 for s3a://, gs for gcs://)."""
    names = cls.protocol
    return names if isinstance(names, str) else names[0]


def _load_class(protocol: str) -> type[fsspec.AbstractFileSystem]:
    # gs: never gcsfs' experimental class (cloud's doc says why)
    gcs = protocol in ("gs", "gcs")
    cls: type[fsspec.AbstractFileSystem] = cloud.gcs_class() if gcs else fsspec.get_filesystem_class(protocol)
    if canonical(cls) == "s3":
        _prepared[protocol] = _prepare_s3()
    _classes[protocol] = cls
    return cls


def _prepare_s3() -> Callable[[], dict[str, Any]]:
    # aiobotocore reads S3's service model and endpoint rules from disk when the first client is
    # made (~0.3 s, on the event loop). Read them here into a loader that each client's own
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


def is_known(protocol: str) -> bool:
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


async def implementation(url: str, protocol: str, budget: float | None) -> type[fsspec.AbstractFileSystem]:
    """The fsspec class serving `protocol`, imported off the loop within `budget` on its first use."""
    cls = _classes.get(protocol)
    if cls is not None:
        return cls
    if not is_known(protocol):  # a made-up protocol starts no import (and leaves nothing behind)
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


def _client_options(protocol: str, poke_timeout: float) -> dict[str, Any]:
    # Short, bounded retries and timeouts: the SDKs' defaults (minutes of retrying a dead endpoint)
    # outlast every poke, which then could only say that it ran out of time.
    if protocol == "s3":
        return {
            "config_kwargs": {
                "connect_timeout": max(0.2, poke_timeout * 0.2),
                "read_timeout": max(0.3, poke_timeout * 0.4),
                # s3fs retries on top of botocore: botocore makes one attempt, s3fs two (below).
                "retries": {"total_max_attempts": 1},
            }
        }
    if protocol == "gs":
        return cloud.gcs_options(poke_timeout)
    if protocol == "abfs":
        return cloud.azure_options(poke_timeout)  # MissingCredentials when nothing names an account
    return {}


#: Canonical protocols whose clients may wait on the network when made (gcsfs asks for Google
#: credentials, which may ask the metadata server): the Store makes them off the event loop.
SLOW_TO_MAKE = frozenset({"gs"})


def new_client(
    url: str, protocol: str, cls: type[fsspec.AbstractFileSystem], poke_timeout: float
) -> fsspec.AbstractFileSystem:
    """A new filesystem instance for `protocol`, async where it can be, with short timeouts."""
    # Listing caches off: a sensor must see a file the moment it lands; the store shares answers instead.
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if cls.async_impl:
        options["asynchronous"] = True
    prepared = _prepared.get(protocol)
    if prepared is not None:
        options.update(prepared())
    try:
        options.update(_client_options(canonical(cls), poke_timeout))
        fs = cls(**options)
    except cloud.MissingCredentials as exc:
        raise PermanentError(
            f"{url}: no usable credentials for {protocol}:// on the connector: {exc}."
        ) from None
    except ImportError as exc:
        raise PermanentError(
            f"{url}: {protocol}:// needs {exc.name or exc}, which the connector lacks."
        ) from None
    except Exception as exc:
        if cloud.is_gcs_credentials_error(exc):
            raise PermanentError(
                f"{url}: no usable credentials for {protocol}:// on the connector: it looked for "
                f"{cloud.GCS_CREDENTIALS}."
            ) from None
        raise PermanentError(f"{url}: cannot set up {protocol}:// on the connector ({exc}).") from None
    if canonical(cls) == "s3":
        fs.retries = 2  # s3fs' own retry loop (throttling, dropped connections), on top of botocore's one
    return fs


async def _close_s3(fs: Any) -> None:
    creator = getattr(fs, "_s3creator", None)  # set once the first request opened the session
    if creator is not None:
        await creator.__aexit__(None, None, None)


async def _close_gs(fs: Any) -> None:
    session = getattr(fs, "_session", None)  # an aiohttp session, once the first request opened it
    if session is not None and not session.closed:
        await session.close()


async def _close_abfs(fs: Any) -> None:
    """Close adlfs's service client and credential the way adlfs would, here on the running loop.

    adlfs leaves that to finalizers run at interpreter exit through fsspec's `sync` on the client's loop,
    which is closed by then ("RuntimeError: Loop is not running", a traceback per client at every
    shutdown). The finalizers registered for `fs` are detached and their closers awaited instead.
    """
    closers = []
    for finalizer in list(getattr(weakref.finalize, "_registry", {})):
        held = finalizer.peek()  # (object, func, args, kwargs) while alive
        # adlfs registers weakref.finalize(fs, sync, fs.loop, <async closer>, fs)
        if held is not None and held[0] is fs and len(held[2]) == 3:
            close = held[2][1]
            if inspect.iscoroutinefunction(close) and finalizer.detach() is not None:
                closers.append(close)
    if not closers:  # an adlfs that registers none: close what it holds by name
        service = getattr(fs, "service_client", None)  # an azure aio BlobServiceClient
        if service is not None:
            await service.close()
        return
    for close in closers:
        await close(fs)


#: Canonical protocol -> how to close its async client's network session (s3fs, gcsfs and adlfs keep
#: theirs under their own names; fsspec has no common close). Blocking clients hold none.
CLOSERS: dict[str, Callable[[Any], Awaitable[None]]] = {"s3": _close_s3, "gs": _close_gs, "abfs": _close_abfs}


async def close_client(fs: fsspec.AbstractFileSystem) -> None:
    """Close a client's network session, if it holds one; a failure to close is logged, not raised."""
    closer = CLOSERS.get(canonical(type(fs)))
    if closer is None or not getattr(fs, "asynchronous", False):
        return
    try:
        await closer(fs)
    except Exception:
        log.warning("closing a %s:// client failed", canonical(type(fs)), exc_info=True)
