"""SqlSensor: waits until a query's first cell is truthy (e.g. `select count(*) > 0 from ...`).

The connection URL holds credentials, so it never travels in a template: the config names a connector
secret (sensors.secrets) that holds it. SQLAlchemy is imported by the first poke (sensors.lazy), so a
connector that runs no SqlSensor never loads it; one engine (with its connection pool) is kept per URL.

A query cannot hurt other tenants:
- it runs in the server's `sql` thread pool (`ctx.pools.sql`: --sql-threads), never in the threads the
  local filesystem or secrets use, and at most --sql-queries-per-database at once per database URL;
  the same query on the same URL already in flight is joined, never issued again;
- the database itself stops it at its budget (a share of the poke budget): PostgreSQL's
  `statement_timeout` (SET LOCAL), SQLite's `interrupt()` from a timer; other dialects only get the
  pool and per-database bounds;
- it runs read-only where the dialect allows (PostgreSQL `SET TRANSACTION READ ONLY`; SQLite
  `PRAGMA query_only`, with ATTACH and PRAGMA refused) in a transaction that is always rolled back;
- its answer shows whether the first cell was truthy, never the cell itself, and a failure shows
  the error's class and SQLSTATE rather than the database's text (which may quote data), but for
  syntax errors, which quote only the author's own query.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from . import lazy, secrets
from .base import PermanentError, PokeContext, PokeResult, SecretUse, Sensor, TransientError
from .pools import Pool

if TYPE_CHECKING:
    import sqlalchemy

#: Share of the poke budget a query may wait for a free slot on its database.
SLOT_SHARE = 0.2
#: Share of the poke budget a statement may run before the database stops it. Slot wait and
#: statement together stay inside the budget, so the poke reports what happened.
STATEMENT_SHARE = 0.6
#: Socket timeout of pg8000 connections: a database host that stops answering frees the thread.
SOCKET_TIMEOUT = 30.0
#: SQLSTATEs that mean the database stopped the statement at its timeout (PostgreSQL).
_CANCELLED = {"57014"}
#: SQLSTATE of a write attempted in a read-only transaction (PostgreSQL).
_READ_ONLY = {"25006"}


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
            options: dict[str, Any] = {"pool_pre_ping": True}
            parsed = sa.engine.make_url(url)
            if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "pg8000":
                options["connect_args"] = {"timeout": SOCKET_TIMEOUT}
            engine = sa.create_engine(url, **options)
            _engines[url] = engine
        return engine


def _sqlite_guard(action: int, *_: Any) -> int:
    import sqlite3

    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Interrupt:
    """Interrupts a SQLite connection's statement from `limit` seconds on, until cancelled.

    SQLite ignores an interrupt that arrives while no statement runs, so it is repeated every
    `REPEAT` seconds: a statement that starts just after the deadline is stopped too.
    """

    REPEAT = 0.05

    def __init__(self, raw: Any, limit: float) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(limit,), name="sql-interrupt", daemon=True).start()

    def _run(self, limit: float) -> None:
        if self._done.wait(limit):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                self._raw.interrupt()
            if self._done.wait(self.REPEAT):
                return

    def cancel(self) -> None:
        """Disarm before the connection goes back to the pool (it must never stop another query)."""
        with self._lock:
            self._done.set()


class NotStarted(Exception):
    """The query's budget was spent waiting for a thread: it is not run at all."""


def _first_cell(sa: ModuleType, url: str, query: str, limit: float, not_after: float) -> bool | None:
    """Whether the first cell of `query` is truthy (None: no row), stopped by the database after `limit`
    seconds, and never running past the monotonic time `not_after` (not started at all if it is past)."""
    deadline = min(time.monotonic() + limit, not_after)
    if deadline - time.monotonic() <= 0.01:
        raise NotStarted
    with _engine(sa, url).connect() as conn:
        dialect = conn.dialect.name
        raw: Any = None
        stop: _Interrupt | None = None
        try:
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                left = max(0.001, deadline - time.monotonic())
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")
            elif dialect == "sqlite":
                raw = conn.connection.dbapi_connection
                raw.set_authorizer(None)
                conn.exec_driver_sql("PRAGMA query_only = ON")
                raw.set_authorizer(_sqlite_guard)
                # sqlite3_interrupt from a timer: the query runs without the GIL, nothing calls back.
                stop = _Interrupt(raw, max(0.001, deadline - time.monotonic()))
            row = conn.execute(sa.text(query)).first()
        finally:
            if raw is not None:
                if stop is not None:
                    stop.cancel()
                raw.set_authorizer(None)
            conn.rollback()
    return None if row is None else bool(row[0])


async def _query(pool: Pool, sa: ModuleType, url: str, query: str, budget: float) -> bool | None:
    """Run `query` in the sql `pool` once one of its slots for the database is free; the slot is held
    until the query ends."""
    not_after = time.monotonic() + budget * (SLOT_SHARE + STATEMENT_SHARE)
    slots = pool.slots(url)
    try:
        async with asyncio.timeout(max(0.01, budget * SLOT_SHARE)):
            await slots.acquire()
    except TimeoutError:
        n = pool.per_key
        raise TransientError(
            f"{n} {'query' if n == 1 else 'queries'} already run on this database "
            "(--sql-queries-per-database); will poke again."
        ) from None
    try:
        limit = max(0.05, budget * STATEMENT_SHARE)
        return await pool.run(_first_cell, sa, url, query, limit, not_after)
    except NotStarted:
        raise TransientError(
            "no thread was free for the query within its budget (--sql-threads); will poke again."
        ) from None
    finally:
        slots.release()


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
        url = await secrets.read(self.config.connection_secret, ctx.pools.secrets)
        try:
            sa = await lazy.load("sqlalchemy")
        except ImportError as exc:
            raise PermanentError(f"SQLAlchemy cannot be loaded on the connector ({exc}).") from None
        sa_exc = sa.exc
        budget = ctx.timeout
        try:
            # Joined with the same query on the same database already in flight (never issued twice).
            pool = ctx.pools.sql
            truthy = await pool.once((url, query), lambda: _query(pool, sa, url, query, budget))
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
            raise _classify(sa_exc, exc, budget * STATEMENT_SHARE) from None
        except sa_exc.SQLAlchemyError as exc:
            raise PermanentError(f"the query cannot run: {type(exc).__name__}.") from None
        if truthy is None:
            return PokeResult(False, "the query returned no row yet.", {"truthy": False})
        if not truthy:
            return PokeResult(
                False,
                "the query's first value is false, zero, empty or NULL; waiting for a true one.",
                {"truthy": False},
            )
        return PokeResult(True, "the query's first value is true.", {"truthy": True})

    def _where(self) -> str:
        return f"secret {self.config.connection_secret!r}"


def _sqlstate(err: BaseException | None) -> str | None:
    """The SQLSTATE of a driver error, where the driver tells it (pg8000, psycopg)."""
    for attr in ("sqlstate", "pgcode"):
        code = getattr(err, attr, None)
        if isinstance(code, str) and code:
            return code
    args = getattr(err, "args", ())
    if args and isinstance(args[0], dict) and isinstance(args[0].get("C"), str):
        return str(args[0]["C"])
    return None


def _classify(sa_exc: Any, exc: Any, limit: float) -> Exception:
    """A driver error as a poke outcome, showing no more of the database's text than the author's own."""
    orig = exc.orig
    text = str(orig or "").lower()
    code = _sqlstate(orig)
    if code in _CANCELLED or text.startswith("interrupted"):
        return TransientError(
            f"the query ran past its {limit:.1f}s budget and the database stopped it; will poke again."
        )
    if code in _READ_ONLY or "readonly database" in text or "read-only transaction" in text:
        return PermanentError("the query tried to write; SqlSensor runs queries read-only.")
    if "not authorized" in text:
        return PermanentError("the query uses ATTACH or PRAGMA, which SqlSensor does not run.")
    syntax = "syntax error" in text or (code or "").startswith("42601")
    if syntax:
        return PermanentError(f"the query failed: {_first_line(orig)}")
    if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return TransientError(
            f"the database is not reachable or not ready ({type(orig).__name__}); will poke again."
        )
    where = f", SQLSTATE {code}" if code else ""
    return PermanentError(f"the query failed ({type(orig).__name__}{where}).")


def _first_line(err: BaseException | None) -> str:
    text = str(err or "unknown error").strip().splitlines()
    return (text[0] if text else "unknown error")[:200]
