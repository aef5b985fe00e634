"""Sorting a store failure into permanent (the task fails) or transient (keep waiting), the path named.

"Not there yet" is not a failure: the store answers it as None (info) or [] (glob) before this is asked.
"""

from __future__ import annotations

import errno

from ..base import PermanentError, SensorError, TransientError, short
from .backends import protocol_of
from .cloud import MissingBucket

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
    "ServiceResponseError",
    "ServiceRequestTimeoutError",
    "ServiceResponseTimeoutError",
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
    if isinstance(exc, MissingBucket):
        return PermanentError(f"{url}: {exc}; create it or correct the path.")
    if name in _CREDENTIAL_ERRORS:
        return PermanentError(
            f"{url}: no usable credentials for {protocol_of(url)}:// on the connector ({detail})."
        )
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and detail.startswith("Forbidden")):
        # gcsfs spells a 403 as OSError("Forbidden: ...")
        return PermanentError(f"{url}: permission denied ({short(detail, 120)}).")
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
        for attr in ("status", "status_code", "code"):
            status = getattr(err, attr, None)
            if isinstance(status, int) and 100 <= status < 600:
                return status, str(getattr(err, "error_code", "") or type(err).__name__)
    return None, ""


def raise_if_no_bucket(exc: FileNotFoundError, path: str) -> None:
    """MissingBucket when S3 said NoSuchBucket (s3fs keeps botocore's error as the cause)."""
    err: BaseException | None = exc
    for _ in range(4):
        if err is None:
            return
        response = getattr(err, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise MissingBucket("bucket", path.split("/", 1)[0]) from exc
        err = err.__cause__ or err.__context__


def transient_detail(exc: BaseException) -> str | None:
    """A short account of a failure worth remembering to explain a later timeout."""
    if isinstance(exc, FileNotFoundError | PermissionError):
        return None
    return short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 120)
