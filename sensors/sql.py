"""SqlSensor: waits until a query's first cell is truthy (e.g. `select count(*) > 0 from ...`).

The connection URL holds credentials, so it never travels in a template: the config names an
environment variable or a mounted secret file on the connector that holds it. The query runs in a
transaction that is always rolled back. SQLAlchemy's engines are synchronous here, so each query
runs in a worker thread; one engine (with its connection pool) is kept per URL.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy
from sqlalchemy import exc as sa_exc

from .base import PermanentError, PokeContext, PokeResult, Sensor, TransientError


@dataclass(frozen=True)
class SqlSensorConfig:
    """Where the connection URL is kept on the connector (exactly one of the two)."""

    #: Name of an environment variable on the connector holding the SQLAlchemy URL.
    connection_env: str | None = None
    #: Path of a mounted secret file on the connector holding the SQLAlchemy URL.
    connection_file: str | None = None

    def __post_init__(self) -> None:
        if (self.connection_env is None) == (self.connection_file is None):
            raise ValueError("give exactly one of connection_env and connection_file")


_engines: dict[str, sqlalchemy.Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> sqlalchemy.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def _first_cell(url: str, query: str) -> tuple[bool, Any]:
    with _engine(url).connect() as conn:
        try:
            row = conn.execute(sqlalchemy.text(query)).first()
        finally:
            conn.rollback()
    return (False, None) if row is None else (True, row[0])


class SqlSensor(Sensor[SqlSensorConfig]):
    """Waits until the first cell of the first row of `query` is truthy, on a database named by a secret."""

    name = "SqlSensor"
    aliases = ("sensors.flytekit.SqlSensor",)
    config_type = SqlSensorConfig
    inputs: ClassVar[Mapping[str, Any]] = {"query": str}

    def describe(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        where = self.config.connection_env or self.config.connection_file
        return {"query": inputs["query"], "connection": where}

    def _url(self) -> str:
        cfg = self.config
        if cfg.connection_env is not None:
            url = os.environ.get(cfg.connection_env, "").strip()
            if not url:
                raise PermanentError(
                    f"the environment variable {cfg.connection_env} is not set on the connector."
                )
            return url
        try:
            url = Path(cfg.connection_file or "").read_text().strip()
        except OSError as exc:
            raise PermanentError(
                f"the secret file {cfg.connection_file} cannot be read on the connector ({exc.strerror})."
            ) from None
        if not url:
            raise PermanentError(f"the secret file {cfg.connection_file} is empty.")
        return url

    async def poke(self, inputs: Mapping[str, Any], ctx: PokeContext) -> PokeResult:
        query: str = inputs["query"]
        url = self._url()
        try:
            has_row, value = await asyncio.to_thread(_first_cell, url, query)
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
        cfg = self.config
        return f"${cfg.connection_env}" if cfg.connection_env is not None else str(cfg.connection_file)


def _first_line(err: BaseException | None) -> str:
    text = str(err or "unknown error").strip().splitlines()
    return (text[0] if text else "unknown error")[:200]
