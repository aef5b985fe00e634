"""fsspec access shared by the file-based sensors: one filesystem instance per protocol, async
where the filesystem is async and off the event loop where it is not, and every failure sorted into
"not there yet", transient or permanent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import fsspec
from fsspec.core import split_protocol

from .base import Link, PermanentError, SensorError, TransientError

T = TypeVar("T")

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

# Filesystem instances, created once per (protocol, event loop) and reused by every poke. Listing
# caches are off: a sensor must see a file the moment it lands, not what a listing said earlier.
_instances: dict[tuple[str, int], fsspec.AbstractFileSystem] = {}

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


def warm_up() -> list[str]:
    """Import the filesystem implementations that are installed, once; returns their protocols."""
    ready = ["file"]
    for protocol in ("s3", "gs", "abfs"):
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError):
            continue
        ready.append(protocol)
    return ready


def protocol_of(url: str) -> str:
    """The fsspec protocol of `url`; plain paths are `file`."""
    protocol, _ = split_protocol(url)
    return protocol or "file"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The shared filesystem for `url` and the path within it; PermanentError when it has none."""
    if not isinstance(url, str) or not url.strip():
        raise PermanentError("the path is empty.")
    protocol = protocol_of(url)
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    fs = _instances.get((protocol, loop_id))
    if fs is None:
        try:
            cls = fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise PermanentError(f"{url}: unknown protocol {protocol!r}.") from None
        except ImportError:
            extra = EXTRAS.get(protocol)
            hint = f"; install flyte-sensor-connector[{extra}]" if extra else ""
            raise PermanentError(
                f"{url}: the connector has no support for {protocol}:// installed{hint}."
            ) from None
        options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
        if cls.async_impl and loop_id:
            options["asynchronous"] = True
        try:
            fs = cls(**options)
        except ImportError as exc:
            raise PermanentError(
                f"{url}: {protocol}:// needs {exc.name or exc}, which the connector lacks."
            ) from None
        except Exception as exc:
            raise PermanentError(f"{url}: cannot set up {protocol}:// on the connector ({exc}).") from None
        _instances[(protocol, loop_id)] = fs
    try:
        path = fs._strip_protocol(url)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{url}: malformed path ({exc}).") from None
    if not str(path).strip("/"):
        raise PermanentError(f"{url}: the path names no file or object to wait for.")
    return fs, path


async def call(fs: fsspec.AbstractFileSystem, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call filesystem `method`: its async form when the filesystem is async, else in a thread."""
    if getattr(fs, "asynchronous", False):
        return await getattr(fs, f"_{method}")(*args, **kwargs)
    func: Callable[..., Any] = getattr(fs, method)
    return await asyncio.to_thread(func, *args, **kwargs)


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


async def info(url: str) -> dict[str, Any] | None:
    """The object's metadata, None when it does not exist (yet)."""
    fs, path = filesystem(url)
    try:
        result: dict[str, Any] = await call(fs, "info", path)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise classify(exc, url) from exc
    return result


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
