"""HttpSensor: waits until a URL answers an expected status (and, optionally, body or JSON value).

Safety: the connector runs inside a cluster, so a template must not be able to make it fetch cloud
metadata or its own loopback ports. Every address a host resolves to is checked, both before the
request and again when aiohttp connects (so a DNS answer that changes in between cannot slip
through), and every redirect hop is checked the same way:

- link-local (169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254,
  metadata.google.internal, ...), loopback, unspecified, multicast, reserved and private ranges
  (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are refused, unless the operator lists the host
  or address on the connector in the environment variable SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS
  (comma-separated host names, addresses or CIDR ranges). Only the operator decides: a template's
  `allow_private` is accepted for old templates, ignored, and logged as such at CreateTask.

Credentials never travel in a template: `auth_secret` names a connector secret (sensors.secrets:
an operator-set `SENSOR_CONNECTOR_SECRET_<NAME>` variable or a file in the secrets directory) that
holds the header value, read at each poke and never logged or put in a message. The connector's
secret policy decides which hosts may receive it (`secret_uses` declares the URL's host); the
secret and every credential header are dropped when a redirect leaves the URL's origin (scheme,
host, port), and a redirect from https to plain http is refused.

aiohttp lives in sensors.http_client, which the first poke imports (sensors.lazy): a connector that
runs no HttpSensor never loads it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
import re
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

from . import lazy, secrets
from .base import (
    ConfigError,
    PermanentError,
    PokeContext,
    PokeResult,
    SecretUse,
    Sensor,
    TransientError,
    set_fields,
)

log = logging.getLogger(__name__)

ALLOW_HOSTS_ENV = "SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS"
#: The most of a body that is read (for body_regex, json_pointer and the `body` output).
MAX_BODY_BYTES = 1 << 20
MAX_REDIRECTS = 5
#: The module that speaks aiohttp, imported by the first poke: this package's own, under whatever
#: name the package is installed (`sensors` here, `flytekitplugins.sensor_connector` in the plugin wheel).
CLIENT = f"{__package__}.http_client"

_METADATA_HOSTS = {
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "metadata.azure.com",
}
_METADATA_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32")
)
_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
_STATUS_SPEC = re.compile(r"^([1-5])xx$|^(\d{3})-(\d{3})$|^(\d{3})$")


def _status_ranges(spec: Iterable[int | str]) -> list[tuple[int, int]]:
    ranges = []
    for item in spec:
        if isinstance(item, int):
            lo = hi = item
        else:
            m = _STATUS_SPEC.match(item.strip().lower())
            if m is None:
                raise ValueError(
                    f"expected_status item {item!r} is not a status, a range like 200-299, or 2xx"
                )
            if m.group(1):
                lo, hi = int(m.group(1)) * 100, int(m.group(1)) * 100 + 99
            elif m.group(2):
                lo, hi = int(m.group(2)), int(m.group(3))
            else:
                lo = hi = int(m.group(4))
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"expected_status item {item!r} is not within 100-599")
        ranges.append((lo, hi))
    return ranges


@dataclass(frozen=True)
class HttpSensorConfig:
    """What a good answer looks like, and how to ask."""

    #: GET or HEAD.
    method: str = "GET"
    #: Statuses that count as an answer: ints, ranges "200-299", or classes "2xx".
    expected_status: tuple[int | str, ...] = ("2xx",)
    #: A regular expression the body must contain (re.search).
    body_regex: str | None = None
    #: An RFC 6901 JSON pointer into the body, e.g. /status; with json_value, the value it must equal,
    #: without, the value must be present and truthy.
    json_pointer: str | None = None
    json_value: str | int | float | bool | None = None
    #: Plain, non-secret request headers.
    headers: dict[str, str] = field(default_factory=dict)
    #: Name of a connector secret (see sensors.secrets) holding the auth header's value.
    auth_secret: str | None = None
    #: The header the secret goes into.
    auth_header_name: str = "Authorization"
    #: Ignored (kept so that old templates still load): the operator's allow-list on the connector
    #: (SENSOR_CONNECTOR_HTTP_ALLOW_HOSTS) alone decides which private addresses a sensor may reach.
    allow_private: bool = False
    #: Seconds one request may take (the connector's poke timeout caps it too).
    request_timeout: float = 10.0
    #: Return the body (at most 1 MiB, as text) as the `body` output; set for you when the task
    #: declares that output.
    return_body: bool = False

    def __post_init__(self) -> None:
        if self.method.upper() not in ("GET", "HEAD"):
            raise ValueError(f"method must be GET or HEAD, not {self.method!r}")
        if not self.expected_status:
            raise ValueError("expected_status must name at least one status")
        _status_ranges(self.expected_status)
        if self.body_regex is not None:
            try:
                re.compile(self.body_regex)
            except re.error as exc:
                raise ValueError(f"body_regex is not a regular expression: {exc}") from None
        if self.json_pointer is not None and self.json_pointer and not self.json_pointer.startswith("/"):
            raise ValueError("json_pointer must be empty or start with '/', e.g. /status")
        if self.json_value is not None and self.json_pointer is None:
            raise ValueError("json_value needs a json_pointer")
        if (self.body_regex is not None or self.json_pointer is not None) and self.method.upper() == "HEAD":
            raise ValueError("body_regex and json_pointer need method GET; a HEAD answer has no body")
        secret = sorted(
            h for h in self.headers if h.lower() in _SECRET_HEADERS | {self.auth_header_name.lower()}
        )
        if secret:
            raise ValueError(
                f"headers must not carry credentials ({', '.join(secret)}); name a connector secret "
                "with auth_secret instead"
            )
        if self.auth_secret is not None:
            secrets.check_name(self.auth_secret)
        if self.allow_private:
            # Said where the config is built from a template: once per CreateTask on the connector,
            # once per declaration in a local run (not at every poke).
            log.warning(
                "HttpSensor config allow_private is ignored: the operator decides which private "
                "addresses the connector may reach (%s)",
                ALLOW_HOSTS_ENV,
            )
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be more than zero seconds")


class HttpSensor(Sensor[HttpSensorConfig]):
    """Waits until `url` answers an expected status, optionally with a body or JSON value that matches."""

    name = "HttpSensor"
    aliases = ("sensors.flytekit.HttpSensor",)
    config_type = HttpSensorConfig
    inputs: ClassVar[Mapping[str, Any]] = {"url": str}
    outputs: ClassVar[Mapping[str, Any]] = {"status": int, "body": str}

    @classmethod
    def secret_uses(cls, config: Any, inputs: Mapping[str, Any]) -> tuple[SecretUse, ...]:
        if config.auth_secret is None:
            return ()
        return (SecretUse(config.auth_secret, urlsplit(inputs["url"]).hostname or ""),)

    @classmethod
    def prepare(cls, config: Any, inputs: Mapping[str, Any], outputs: Collection[str]) -> Any:
        _check_url(inputs["url"], ConfigError)
        if config.allow_private:  # warned when the config was built; kept as what it means
            config = dataclasses.replace(config, allow_private=False)
        if "body" not in outputs:
            return config
        if config.method.upper() == "HEAD":
            raise ConfigError("the template declares output 'body', but a HEAD answer has no body.")
        # The body is read and returned only when the task declares it.
        return dataclasses.replace(config, return_body=True)

    @classmethod
    async def close(cls) -> None:
        await close_sessions()

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": _redact(inputs["url"]),
            "expected_status": list(self.config.expected_status),
            **set_fields(self.config, "body_regex", "json_pointer"),
        }

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        cfg = self.config
        url: str = inputs["url"]
        shown = _redact(url)
        headers = dict(cfg.headers)
        if cfg.auth_secret is not None:
            headers[cfg.auth_header_name] = await secrets.read(cfg.auth_secret, ctx.pools.secrets)
        method = cfg.method.upper()
        client = await lazy.load(CLIENT)
        timeout = client.timeout(min(cfg.request_timeout, ctx.timeout))
        expected = _status_ranges(cfg.expected_status)
        session = client.session()
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            await _check_destination(url)
            try:
                async with session.request(
                    method, url, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    status = response.status
                    ok = any(lo <= status <= hi for lo, hi in expected)
                    location = response.headers.get("Location")
                    if not ok and status in (301, 302, 303, 307, 308) and location:
                        target = urljoin(url, location)
                        if urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http":
                            raise PermanentError(
                                f"{shown} redirects to the plain-http {_redact(target)}; a redirect from "
                                "https to http is refused."
                            )
                        if _origin(target) != origin:
                            # Credentials never cross origins, and once dropped stay dropped.
                            headers = _without_credentials(headers, cfg.auth_header_name)
                        url, shown = target, _redact(target)
                        method = "GET" if status == 303 else method
                        continue
                    if not ok:
                        if status >= 500 or status == 429:
                            raise TransientError(f"{shown} answered {status}; will poke again.")
                        return PokeResult(False, f"{shown} answered {status}; waiting.", {"status": status})
                    body = b"" if method == "HEAD" else await client.read_capped(response)
                    charset = response.charset or "utf-8"
            except (PermanentError, TransientError):
                raise
            except Exception as exc:
                raise client.classify(exc, shown) from None
            return self._judge(shown, status, body.decode(charset, errors="replace"))
        raise PermanentError(f"{shown} redirects more than {MAX_REDIRECTS} times.")

    def _judge(self, shown: str, status: int, text: str) -> PokeResult:
        cfg = self.config
        details = {"status": status}
        if cfg.body_regex is not None and re.search(cfg.body_regex, text) is None:
            return PokeResult(False, f"{shown} answered {status}, but the body does not match yet.", details)
        if cfg.json_pointer is not None:
            try:
                doc = json.loads(text)
            except ValueError:
                return PokeResult(False, f"{shown} answered {status}, but the body is not JSON yet.", details)
            found, value = _resolve_pointer(doc, cfg.json_pointer)
            if not found:
                return PokeResult(False, f"{shown}: {cfg.json_pointer} is not in the answer yet.", details)
            good = value == cfg.json_value if cfg.json_value is not None else bool(value)
            if not good:
                return PokeResult(
                    False, f"{shown}: {cfg.json_pointer} is {json.dumps(value)[:80]}; waiting.", details
                )
        outputs: dict[str, Any] = {"status": status}
        if cfg.return_body:
            outputs["body"] = text
        return PokeResult(True, f"{shown} answered {status}.", details, outputs)


# -- safety -----------------------------------------------------------------------------------------


class RefusedAddress(OSError):
    """The destination is one the connector must not reach."""


def _check_url(url: str, error: type[Exception]) -> None:
    if any(c.isspace() for c in url):  # urlsplit drops tabs and line breaks silently; a URL has none
        raise error("input 'url' must not contain spaces, tabs or line breaks.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise error(f"input 'url' is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(f"input 'url' must be an http:// or https:// URL with a host, not {_redact(url)!r}.")
    if parts.username is not None or parts.password is not None:
        raise error("input 'url' must not carry credentials; name a connector secret with auth_secret.")


def _redact(url: str) -> str:
    """`url` without any user:password part, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, nets = set(), []
    for raw in os.environ.get(ALLOW_HOSTS_ENV, "").split(","):
        item = raw.strip().lower()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.rstrip("."))
    return names, nets


def _origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host and port (the default one filled in): what decides where credentials may go."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").rstrip("."), port


def _without_credentials(headers: Mapping[str, str], auth_header_name: str) -> dict[str, str]:
    secret = _SECRET_HEADERS | {auth_header_name.lower()}
    return {name: value for name, value in headers.items() if name.lower() not in secret}


def refusal(host: str, addresses: Iterable[str]) -> str | None:
    """Why the connector must not connect to `host` at `addresses`, or None when it may."""
    names, nets = _allow_list()
    host = host.lower().rstrip(".").strip("[]")
    if host in names:
        return None
    if host in _METADATA_HOSTS:
        return f"{host} is a cloud metadata service"
    for text in addresses:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in nets):
            continue
        if any(addr in net for net in _METADATA_NETS):
            return f"{host} resolves to {addr}, a link-local or cloud metadata address"
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr.is_reserved:
            return f"{host} resolves to {addr}, which is refused unless {ALLOW_HOSTS_ENV} lists it"
        if any(addr in net for net in _PRIVATE_NETS) or addr.is_private:
            return (
                f"{host} resolves to the private address {addr}, which the connector reaches only if "
                f"the operator lists it in {ALLOW_HOSTS_ENV}"
            )
    return None


async def _check_destination(url: str) -> None:
    _check_url(url, PermanentError)
    parts = urlsplit(url)
    host = parts.hostname or ""
    # Names refused as such are refused before any DNS query is made for them.
    reason = refusal(host, [])
    if reason is not None:
        raise PermanentError(f"{_redact(url)}: refused, {reason}.")
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise PermanentError(f"{_redact(url)}: the host {host} does not resolve.") from None
            raise TransientError(
                f"{_redact(url)}: resolving {host} failed ({exc}); will poke again."
            ) from None
        addresses = [str(info[4][0]) for info in infos]
    reason = refusal(host, addresses)
    if reason is not None:
        raise PermanentError(f"{_redact(url)}: refused, {reason}.")


async def close_sessions() -> None:
    """Close this event loop's shared sessions, if a poke ever opened one (shutdown, end of a test)."""
    client = lazy.loaded(CLIENT)
    if client is not None:
        await client.close_sessions()


def _resolve_pointer(doc: Any, pointer: str) -> tuple[bool, Any]:
    if pointer == "":
        return True, doc
    node = doc
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False, None
    return True, node
