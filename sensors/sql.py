"""SqlSensor: waits until a query's first cell is truthy (e.g. `select count(*) > 0 from ...`).

The connection URL holds credentials, so it never travels in a template: the config names a connector
secret (sensors.secrets) that holds it. The query runs in a
transaction that is always rolled back. SQLAlchemy's engines are synchronous here, so each query
runs in a worker thread; one engine (with its connection pool) is kept per URL. SQLAlchemy itself is
imported by the first poke (sensors.lazy), so a connector that runs no SqlSensor never loads it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from . import lazy, secrets
from .base import PermanentError, PokeContext, PokeResult, SecretUse, Sensor, TransientError

if TYPE_CHECKING:
    import sqlalchemy


@dataclass(frozen=True)
class SqlSensorConfig:
    """Which connector secret holds the connection URL."""

    #: Name of a connector secret (see sensors.secrets) holding the SQLAlchemy URL.
    connection_secret: str = ""

    def __post_init__(self) -> None:
        if not self.connection_secret:
            raise ValueError("connection_secret must name the connector secret that holds the database URL")
        secrets.check_name(self.connection_secret)


_engines: dict[str, sqlalchemy.Engine] = {}
_engines_lock = threading.Lock()


def _engine(sa: ModuleType, url: str) -> sqlalchemy.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def _first_cell(sa: ModuleType, url: str, query: str) -> tuple[bool, Any]:
    with _engine(sa, url).connect() as conn:
        try:
            row = conn.execute(sa.text(query)).first()
        finally:
            conn.rollback()
    return (False, None) if row is None else (True, row[0])


class SqlSensor(Sensor[SqlSensorConfig]):
    """Waits until the first cell of the first row of `query` is truthy, on a database named by a secret."""

    name = "SqlSensor"
    aliases = ("sensors.flytekit.SqlSensor",)
    config_type = SqlSensorConfig
    inputs: ClassVar[Mapping[str, Any]] = {"query": str}

    @classmethod
    def secret_uses(cls, config: Any, inputs: Mapping[str, Any]) -> tuple[SecretUse, ...]:
        # The URL names its own destination: the policy needs no hosts for it.
        return (SecretUse(config.connection_secret),)

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"query": inputs["query"], "connection": self.config.connection_secret}

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        query: str = inputs["query"]
        url = await secrets.read(self.config.connection_secret)
        try:
            sa = await lazy.load("sqlalchemy")
        except ImportError as exc:
            raise PermanentError(f"SQLAlchemy cannot be loaded on the connector ({exc}).") from None
        sa_exc = sa.exc
        try:
            has_row, value = await asyncio.to_thread(_first_cell, sa, url, query)
        except sa_exc.NoSuchModuleError:
            raise PermanentError(
                f"the database driver named by the URL in {self._where()} is not installed on the connector."
            ) from None
        except sa_exc.ArgumentError:
            # The message may quote the URL, which is secret: say only where it came from.
            raise PermanentError(
                f"the connection URL in {self._where()} is not a valid SQLAlchemy URL."
            ) from None
        except ImportError as exc:
            raise PermanentError(
                f"the database driver {exc.name} is not installed on the connector."
            ) from None
        except sa_exc.DBAPIError as exc:
            syntax = "syntax error" in str(exc.orig).lower()
            if not syntax and (
                exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            ):
                raise TransientError(
                    f"the database is not reachable ({type(exc.orig).__name__}); will poke again."
                ) from None
            raise PermanentError(f"the query failed: {_first_line(exc.orig)}") from None
        except sa_exc.SQLAlchemyError as exc:
            raise PermanentError(f"the query cannot run: {type(exc).__name__}.") from None
        if not has_row:
            return PokeResult(False, "the query returned no row yet.")
        details = {
            "value": value if isinstance(value, str | int | float | bool) or value is None else str(value)
        }
        if not value:
            return PokeResult(
                False, f"the query returned {str(value)[:80]!r}; waiting for a truthy value.", details
            )
        return PokeResult(True, f"the query returned {str(value)[:80]!r}.", details)

    def _where(self) -> str:
        return f"secret {self.config.connection_secret!r}"


def _first_line(err: BaseException | None) -> str:
    text = str(err or "unknown error").strip().splitlines()
    return (text[0] if text else "unknown error")[:200]
