"""SqlSensor cannot hurt other tenants, through the real server against a real SQLite file: endless
queries are stopped by the database at their budget, fill only their own thread pool (local FileSensors
keep answering at once), are capped per database and joined when the same, run read-only, and the
console never shows what a query read."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pg8000.dbapi
import pytest
from flyteidl.core import execution_pb2

from connector.config import Config
from connector.server import Server
from sensors.flytekit import SqlSensor

from .catalog import request_for
from .conftest import Connector, collector_paused, file_sensor_request, sqlite_secret, with_secret_policy
from .postgres import postgres_server

Phase = execution_pb2.TaskExecution.Phase
#: A query that never ends, reading the table on every step (so SQLite holds its read lock throughout).
ENDLESS = (
    "with recursive c(x) as (select 1 union all select x + 1 from c where (select count(*) from sales) >= 0) "
    "select count(*) > {n} from c"
)
STOPPED = "the query ran past its 1.2s budget and the database stopped it; will poke again."
NO_THREAD = "no thread was free for the query within its budget (--sql-threads); will poke again."
POKE_TIMEOUT = 2.0
#: Seconds past the poke budget within which every query must have ended (a busy machine's scheduling).
MARGIN = 0.5


@pytest.fixture
def config(config: Config) -> Config:
    """The operator grants the database URL secret (it names its own destination: no hosts)."""
    return with_secret_policy(config, {"sales-db-url": {}})


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return sqlite_secret(
        tmp_path / "sales.db",
        monkeypatch,
        "SENSOR_CONNECTOR_SECRET_SALES_DB_URL",
        "create table sales (day text, amount real, note text)",
        "insert into sales values ('2026-11-24', 1.5, 'hunter2')",
    )


def reading(db: Path) -> bool:
    """True while some connection reads the database: SQLite then refuses an exclusive lock at once."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("begin exclusive")
        conn.execute("rollback")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        conn.close()


def sql_request(query: str) -> Any:
    return request_for(SqlSensor(name="wait_rows", connection_secret="sales-db-url"), query=query)


async def started(make_connector: Any, **overrides: Any) -> tuple[Server, grpc.aio.Channel]:
    server: Server = await make_connector(poke_timeout=POKE_TIMEOUT, **overrides)
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")


BUSY = "4 queries already run on this database (--sql-queries-per-database); will poke again."


async def endless_rounds(
    make_connector: Any, tmp_path: Path, queries: list[str], running: Any, **options: Any
) -> None:
    """Poke sensors whose queries never end, twice; while they run (the database says so: `running()`),
    local FileSensors answer within 100 ms; once their answers are in, the database runs none of them."""
    server, channel = await started(make_connector, **options)
    async with channel:
        connector = Connector(server, channel)
        metas = [await connector.create(sql_request(query)) for query in queries]
        (tmp_path / "ready").write_text("x")
        file_meta = await connector.create(file_sensor_request(str(tmp_path / "ready")))
        waiting_meta = await connector.create(file_sensor_request(str(tmp_path / "not-yet")))

        for round_ in range(2):
            with collector_paused():  # the suite's heap, not SQL, is what a full collection pauses on
                start = time.monotonic()
                gets = [asyncio.ensure_future(connector.get(meta)) for meta in metas]
                # Measured once the database runs queries and the burst of SQL calls has been taken in: the
                # server holds them all, or the first of them has been answered already (refused a slot).
                deadline = time.monotonic() + 5
                while not (
                    running() and (server.limiters[0].active >= len(metas) or any(g.done() for g in gets))
                ):
                    assert time.monotonic() < deadline, (
                        "the SQL calls never reached the server and the database"
                    )
                    await asyncio.sleep(0.01)
                latencies = []
                for meta in (file_meta, waiting_meta) * 10:
                    t0 = time.monotonic()
                    answer = await connector.get(meta)
                    latencies.append(time.monotonic() - t0)
                    assert answer.phase in (Phase.SUCCEEDED, Phase.RUNNING), answer.message
                assert running(), "the queries ended before the FileSensors were measured"
                slowest = max(latencies)
                assert slowest < 0.1, (
                    f"round {round_}: FileSensor GetTask took up to {slowest:.3f}s: {latencies}"
                )

                answers = await asyncio.gather(*gets)
                took = time.monotonic() - start
                assert took < POKE_TIMEOUT + 1.0, took
                outcomes = Counter(a.message for a in answers)
                # Each query's budget ends inside the poke's (0.8 of it): within the poke budget and a margin
                # for a loaded machine, the database runs none of them any more.
                while running():
                    late = time.monotonic() - start
                    assert late < POKE_TIMEOUT + MARGIN, (
                        f"round {round_}: a query still runs {late:.2f}s in: {outcomes}"
                    )
                    await asyncio.sleep(0.01)
                assert all(a.phase == Phase.RUNNING for a in answers)
                assert set(outcomes) <= {STOPPED, NO_THREAD, BUSY}, outcomes
                assert outcomes[STOPPED] >= 2, outcomes


@pytest.mark.parametrize(
    "options",
    [
        # The defaults: 8 SQL threads, 4 queries at once per database.
        {},
        # No cap per database: the SQL pool itself is full (2 threads, 30 queries queued behind them).
        {"sql_threads": 2, "sql_queries_per_database": 32},
    ],
    ids=["defaults", "sql-pool-full"],
)
async def test_32_endless_sqlite_queries_leave_local_file_sensors_answering_and_stop_at_their_budget(
    make_connector: Any, db: Path, tmp_path: Path, options: dict[str, int]
) -> None:
    queries = [ENDLESS.format(n=n) for n in range(32)]
    await endless_rounds(make_connector, tmp_path, queries, lambda: reading(db), **options)


async def test_queries_on_one_database_are_capped_and_the_same_query_is_joined(
    make_connector: Any, db: Path
) -> None:
    server, channel = await started(make_connector, sql_queries_per_database=1)
    async with channel:
        connector = Connector(server, channel)
        busy = "1 query already run on this database (--sql-queries-per-database); will poke again."

        different = [await connector.create(sql_request(ENDLESS.format(n=n))) for n in range(5)]
        answers = await asyncio.gather(*(connector.get(meta) for meta in different))
        assert Counter(a.message for a in answers) == {STOPPED: 1, busy: 4}
        assert not reading(db)

        # Five sensors asking the same database the same question share one query: nobody waits for a slot.
        same = [await connector.create(sql_request(ENDLESS.format(n=7))) for _ in range(5)]
        answers = await asyncio.gather(*(connector.get(meta) for meta in same))
        assert Counter(a.message for a in answers) == {STOPPED: 5}
        assert not reading(db)


async def test_two_servers_in_one_process_keep_their_own_query_limits(make_connector: Any, db: Path) -> None:
    # Started one after the other in one process and on one event loop, against the same database.
    capped, channel_a = await started(make_connector, sql_queries_per_database=1)
    default, channel_b = await started(make_connector)
    async with channel_a, channel_b:
        one, four = Connector(capped, channel_a), Connector(default, channel_b)
        metas_one = [await one.create(sql_request(ENDLESS.format(n=n))) for n in range(5)]
        metas_four = [await four.create(sql_request(ENDLESS.format(n=n))) for n in range(10, 15)]
        answers = await asyncio.gather(
            *(one.get(meta) for meta in metas_one), *(four.get(meta) for meta in metas_four)
        )
        busy = "{n} already run on this database (--sql-queries-per-database); will poke again."
        assert Counter(a.message for a in answers[:5]) == {STOPPED: 1, busy.format(n="1 query"): 4}
        assert Counter(a.message for a in answers[5:]) == {STOPPED: 4, busy.format(n="4 queries"): 1}
        assert not reading(db)


async def test_queries_are_read_only_and_the_console_never_shows_what_they_read(
    connector: Connector, db: Path, tmp_path: Path
) -> None:
    wrote = await connector.get(await connector.create(sql_request("delete from sales returning 1")))
    assert wrote.phase == Phase.FAILED
    assert wrote.message == "the query tried to write; SqlSensor runs queries read-only."
    other = tmp_path / "other.db"
    attach = await connector.get(await connector.create(sql_request(f"attach database '{other}' as other")))
    assert attach.phase == Phase.FAILED
    assert attach.message == "the query uses ATTACH or PRAGMA, which SqlSensor does not run."
    assert not other.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from sales").fetchone() == (1,)

    met = await connector.get(await connector.create(sql_request("select note from sales")))
    assert met.phase == Phase.SUCCEEDED
    assert met.message == "the query's first value is true."
    assert "hunter2" not in str(met)


# -- PostgreSQL: a real server (tests/postgres.py), pg8000 as in the connector's image ---------------------
#: An hour of sleeping, per sensor (the text differs so that no two sensors share one query).
PG_ENDLESS = "select count(*) > {n} from (select pg_sleep(3600)) as hour"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def pg_connect(url: str) -> Any:
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    return pg8000.dbapi.connect(
        user=parsed.username, host=parsed.host, port=parsed.port, database=parsed.database
    )


@pytest.fixture
def pg(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A sales table with one row, the server's URL in the connector secret sales-db-url."""
    conn = pg_connect(postgres_url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("drop table if exists sales")
    cur.execute("create table sales (day text, amount real, note text)")
    cur.execute("insert into sales values ('2026-11-24', 1.5, 'hunter2')")
    conn.close()
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_SALES_DB_URL", postgres_url)
    return postgres_url


def sleeping(url: str) -> int:
    """Sensor queries PostgreSQL is running right now (pg_stat_activity)."""
    conn = pg_connect(url)
    try:
        cur = conn.cursor()
        cur.execute(
            "select count(*) from pg_stat_activity where state = 'active' and query like '%pg_sleep(3600)%' "
            "and pid <> pg_backend_pid()"
        )
        return int(cur.fetchone()[0])
    finally:
        conn.close()


async def test_32_hour_long_postgres_queries_leave_local_file_sensors_answering_and_stop_at_their_budget(
    make_connector: Any, pg: str, tmp_path: Path
) -> None:
    queries = [PG_ENDLESS.format(n=n) for n in range(32)]
    await endless_rounds(make_connector, tmp_path, queries, lambda: sleeping(pg) > 0)


async def test_postgres_queries_are_read_only_and_errors_never_quote_data(
    connector: Connector, pg: str
) -> None:
    wrote = await connector.get(await connector.create(sql_request("delete from sales returning 1")))
    assert wrote.phase == Phase.FAILED
    assert wrote.message == "the query tried to write; SqlSensor runs queries read-only."
    conn = pg_connect(pg)
    cur = conn.cursor()
    cur.execute("select count(*) from sales")
    assert cur.fetchone()[0] == 1
    conn.close()

    # PostgreSQL's text would be: invalid input syntax for type integer: "hunter2".
    failed = await connector.get(await connector.create(sql_request("select cast(note as int) from sales")))
    assert failed.phase == Phase.FAILED
    assert "SQLSTATE 22P02" in failed.message and "hunter2" not in str(failed), failed.message
    met = await connector.get(await connector.create(sql_request("select note from sales")))
    assert met.phase == Phase.SUCCEEDED and "hunter2" not in str(met)
