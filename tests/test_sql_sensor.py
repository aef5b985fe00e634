"""SqlSensor through the real server against a SQLite file whose rows the test writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pytest
from flyteidl.core import execution_pb2
from google.protobuf import json_format

from connector.config import Config
from sensors.flytekit import SqlSensor

from .catalog import expect_rejected, request_for
from .conftest import Connector, sqlite_secret, with_secret_policy

Phase = execution_pb2.TaskExecution.Phase
QUERY = "select count(*) > 0 from sales where day = '2026-11-24'"


@pytest.fixture
def config(config: Config) -> Config:
    """The operator grants the database secrets these tests name (a URL names its own destination)."""
    return with_secret_policy(
        config, {name: {} for name in ("sales-db-url", "db-url", "SALES_DB_URL", "warehouse", "X")}
    )


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty sales table in a SQLite file, its URL in the connector secret sales-db-url."""
    env = "SENSOR_CONNECTOR_SECRET_SALES_DB_URL"
    return sqlite_secret(
        tmp_path / "sales.db", monkeypatch, env, "create table sales (day text, amount real)"
    )


def insert(db: Path, day: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("insert into sales values (?, 1.5)", (day,))


async def test_sql_waits_until_the_first_cell_is_truthy(connector: Connector, db: Path) -> None:
    sensor = SqlSensor(name="wait_for_rows", connection_secret="sales-db-url")
    request = request_for(sensor, query=QUERY)
    assert str(db) not in str(request)
    meta = await connector.create(request)

    waiting = await connector.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == "the query's first value is false, zero, empty or NULL; waiting for a true one."
    info = json_format.MessageToDict(waiting.custom_info)
    assert info["awaiting"] == {"query": QUERY, "connection": "sales-db-url"}

    insert(db, "2026-11-23")
    assert (await connector.get(meta)).phase == Phase.RUNNING
    insert(db, "2026-11-24")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    # Whether the condition held, never what the query read.
    assert json_format.MessageToDict(done.custom_info)["details"] == {"truthy": True}


async def test_sql_url_from_a_mounted_file_and_no_row_means_not_yet(
    connector: Connector, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRETS_DIR", str(tmp_path / "secrets"))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db-url").write_text(f"sqlite:///{db}\n")
    sensor = SqlSensor(name="wait_for_row", connection_secret="db-url")
    meta = await connector.create(request_for(sensor, query="select day from sales limit 1"))
    assert (await connector.get(meta)).message == "the query returned no row yet."
    insert(db, "2026-11-24")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_sql_missing_table_is_transient_and_a_syntax_error_fails(
    connector: Connector, db: Path
) -> None:
    sensor = SqlSensor(name="s", connection_secret="SALES_DB_URL")
    meta = await connector.create(request_for(sensor, query="select count(*) from later"))
    later = await connector.get(meta)
    assert later.phase == Phase.RUNNING
    assert json_format.MessageToDict(later.custom_info)["outcome"] == "transient"

    meta = await connector.create(request_for(sensor, query="selec 1"))
    broken = await connector.get(meta)
    assert broken.phase == Phase.FAILED
    assert broken.message.startswith("the query failed:") and "syntax error" in broken.message


async def test_sql_connection_problems_never_show_the_url(
    connector: Connector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRETS_DIR", str(tmp_path))
    sensor = SqlSensor(name="s", connection_secret="warehouse")
    meta = await connector.create(request_for(sensor, query="select 1"))
    unset = await connector.get(meta)
    assert unset.phase == Phase.FAILED
    assert unset.message == (
        f"the connector holds no secret 'warehouse' (looked for $SENSOR_CONNECTOR_SECRET_WAREHOUSE or "
        f"{tmp_path / 'warehouse'})."
    )

    for url, fragment in [
        ("nonsense://u:hunter2@db/x", "is not installed on the connector"),
        ("not a url hunter2", "is not a valid SQLAlchemy URL"),
    ]:
        monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_WAREHOUSE", url)
        failed = await connector.get(meta)
        assert failed.phase == Phase.FAILED
        assert fragment in failed.message and "hunter2" not in str(failed), failed.message


async def test_sql_bad_config_and_inputs_are_invalid_arguments(connector: Connector) -> None:
    good = request_for(SqlSensor(name="s", connection_secret="X"), query="select 1")
    for config, fragment in [
        ({}, "connection_secret must name the connector secret"),
        ({"connection_secret": "/var/run/db-url"}, "is not a secret name"),
        ({"connection_url": "sqlite://"}, "has no field connection_url"),
    ]:
        request = request_for(good.template, query="select 1")
        request.template.custom["sensor_config"] = config
        message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
        assert fragment in message, message
    message = await expect_rejected(
        connector, request_for(good.template, query=7), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "input 'query' must be str" in message


async def test_a_query_too_long_to_keep_in_resource_meta_is_refused_at_create(connector: Connector) -> None:
    request = request_for(SqlSensor(name="s", connection_secret="X"), query="select 1 -- " + "x" * 5000)
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "SqlSensor config and inputs take" in message and "more than the 4096 allowed" in message
