"""HttpSensor's aiohttp side: sessions, the resolver that re-checks addresses at connect time, reading.

Kept apart from sensors.http so that aiohttp is imported by the first HttpSensor poke (through
sensors.lazy), not at start-up: a connector that runs no HttpSensor never loads it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .base import PermanentError, TransientError
from .http import MAX_BODY_BYTES, RefusedAddress, refusal


class CheckingResolver(AbstractResolver):
    """aiohttp's resolver, refusing answers the policy forbids (the check at connect time)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        reason = refusal(host, [r["host"] for r in results])
        if reason is not None:
            raise RefusedAddress(reason)
        return results

    async def close(self) -> None:
        await self._inner.close()


# One session per event loop, created on first use: connection pooling across pokes, no cookies
# shared between sensors, no proxy settings taken from the environment. Redirects are followed by
# sensors.http itself (allow_redirects=False), hop by hop.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def session() -> aiohttp.ClientSession:
    """This event loop's shared session."""
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop)
    if found is None or found.closed:
        # The system's trust store as OpenSSL finds it when the session is made (SSL_CERT_FILE and
        # SSL_CERT_DIR included), so an operator can trust a private CA.
        connector = aiohttp.TCPConnector(
            resolver=CheckingResolver(), limit=64, ssl=ssl.create_default_context()
        )
        found = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )
        _sessions[loop] = found
    return found


async def close_sessions() -> None:
    """Close this event loop's session (at shutdown, or at the end of a test)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


async def read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, at most MAX_BODY_BYTES of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A total timeout for one request."""
    return aiohttp.ClientTimeout(total=seconds)


def classify(exc: BaseException, shown: str) -> Exception:
    """Sort a request failure into permanent (refused, invalid, untrusted) or transient."""
    refused = getattr(exc, "os_error", None)
    if isinstance(refused, RefusedAddress) or isinstance(exc, RefusedAddress):
        return PermanentError(f"{shown}: refused, {refused or exc}.")
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return PermanentError(f"{shown}: invalid URL ({exc}).")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return PermanentError(f"{shown}: the TLS certificate is not trusted ({exc.certificate_error}).")
    if isinstance(exc, TimeoutError):
        return TransientError(f"{shown}: no answer in time; will poke again.")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransientError(f"{shown}: could not connect ({type(exc).__name__}); will poke again.")
    return TransientError(f"{shown}: {type(exc).__name__}; will poke again.")
