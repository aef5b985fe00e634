"""The authoring side: each example runs locally with flytekit, and the same declarations are served
by the real connector (RUNNING, then SUCCEEDED with the declared outputs once the condition holds)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2
from flytekit.extend.backend.base_connector import local_connector_loop
from flytekit.sensor.base_sensor import SensorMetadata
from flytekit.sensor.sensor_engine import SensorEngine
from google.protobuf import json_format

from connector.config import Config
from sensors import http
from sensors.flytekit import FileSensor, GlobSensor, HttpSensor, TimeSensor

from .catalog import load_example, request_for, template_of
from .conftest import S3, Connector, with_secret_policy
from .httpserver import Answer, HttpServer, serve

Phase = execution_pb2.TaskExecution.Phase


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpServer]:
    monkeypatch.setenv(http.ALLOW_HOSTS_ENV, "127.0.0.1")
    with serve() as server:
        yield server


def sales_db(path: Path, *days: str) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("create table if not exists sales (day text, amount real)")
        conn.executemany("insert into sales values (?, 1.0)", [(d,) for d in days])
    return f"sqlite:///{path}"


# -- the serialized template is what the connector resolves ------------------------------------------


@pytest.mark.parametrize(
    ("task", "config"),
    [
        (FileSensor(name="f", min_size=1), {"min_size": 1}),
        (GlobSensor(name="g", min_count=3, marker="_SUCCESS"), {"min_count": 3, "marker": "_SUCCESS"}),
        (TimeSensor(name="t", delay=30), {"delay": 30}),
        (HttpSensor(name="h", expected_status=(200, "3xx")), {"expected_status": [200, "3xx"]}),
        (HttpSensor(name="hj", json_pointer="/ok", outputs=("body",)), {"json_pointer": "/ok"}),
    ],
)
def test_templates_name_the_authoring_class_and_carry_the_config(task, config) -> None:
    template = template_of(task)
    custom = json_format.MessageToDict(template.custom)
    assert template.type == "sensor"
    assert custom["sensor_module"] == "sensors.flytekit"
    assert custom["sensor_name"] == type(task).__name__
    assert custom["sensor_config"] == config


def test_flytekits_local_engine_runs_the_catalog_poke_with_the_config_dict(tmp_path: Path) -> None:
    # What `pyflyte run` does for a sensor without outputs: flytekit's SensorEngine imports
    # sensor_module, builds sensor_name("sensor", config=<dict>) and awaits poke(**inputs).
    engine = SensorEngine()
    meta = SensorMetadata(
        sensor_module="sensors.flytekit",
        sensor_name="GlobSensor",
        sensor_config={"min_count": 2},
        inputs={"pattern": f"{tmp_path}/*.csv"},
    )
    (tmp_path / "a.csv").write_text("")
    assert local_connector_loop.run_until_complete(engine.get(meta)).phase == Phase.RUNNING
    (tmp_path / "b.csv").write_text("")
    assert local_connector_loop.run_until_complete(engine.get(meta)).phase == Phase.SUCCEEDED


def test_a_permanent_error_fails_a_local_run() -> None:
    task = FileSensor(name="bad_path")
    # flytekit wraps what the poke raised; the catalog's sentence reaches the user unchanged.
    with pytest.raises(Exception, match="nosuchproto://bucket/key: unknown protocol 'nosuchproto'"):
        task(path="nosuchproto://bucket/key")


def test_time_sensor_with_a_delay_runs_locally_and_is_met() -> None:
    # `met=True` declares the output that says so: the local run returns it.
    assert TimeSensor(name="no_wait", delay=0, met=True)() is True


# -- each example, locally and through the connector ---------------------------------------------


def test_file_example_runs_locally(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_text("a\nb\nc\n")
    assert load_example("file_sensor").wf(path=str(target)) == 3


async def test_file_example_is_served(connector: Connector, s3: S3) -> None:
    example = load_example("file_sensor")
    url = f"s3://{s3.bucket}/landing/data.csv"
    meta = await connector.create(request_for(example.wait_for_file, path=url))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    s3.client().put_object(Bucket=s3.bucket, Key="landing/data.csv", Body=b"")
    empty = await connector.get(meta)
    assert empty.phase == Phase.RUNNING and "has 0 bytes, waiting for 1" in empty.message
    s3.client().put_object(Bucket=s3.bucket, Key="landing/data.csv", Body=b"a\n")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


def test_glob_example_runs_locally(tmp_path: Path) -> None:
    for name in ("part-0.parquet", "part-1.parquet", "_SUCCESS"):
        (tmp_path / name).write_bytes(b"")
    assert load_example("glob_sensor").wf(pattern=f"{tmp_path}/*.parquet") == 2


def test_glob_example_local_outputs_are_the_paths(tmp_path: Path) -> None:
    for name in ("part-1.parquet", "part-0.parquet", "_SUCCESS"):
        (tmp_path / name).write_bytes(b"")
    paths = load_example("glob_sensor").wait_for_parts(pattern=f"{tmp_path}/*.parquet")
    assert paths == [f"{tmp_path}/part-0.parquet", f"{tmp_path}/part-1.parquet"]


async def test_glob_example_is_served_with_its_paths_output(connector: Connector, s3: S3) -> None:
    example = load_example("glob_sensor")
    pattern = f"s3://{s3.bucket}/day=2026-11-24/*.parquet"
    meta = await connector.create(request_for(example.wait_for_parts, pattern=pattern))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    for key in ("part-0.parquet", "part-1.parquet"):
        s3.client().put_object(Bucket=s3.bucket, Key=f"day=2026-11-24/{key}", Body=b"PAR1")
    assert "_SUCCESS" in (await connector.get(meta)).message
    s3.client().put_object(Bucket=s3.bucket, Key="day=2026-11-24/_SUCCESS", Body=b"")
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    paths = [lit.scalar.primitive.string_value for lit in done.outputs.literals["paths"].collection.literals]
    assert paths == [
        f"s3://{s3.bucket}/day=2026-11-24/part-0.parquet",
        f"s3://{s3.bucket}/day=2026-11-24/part-1.parquet",
    ]


def test_time_example_runs_locally() -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert load_example("time_sensor").wf(at=past) == "at: done waiting"


async def test_time_example_is_served(connector: Connector, monkeypatch: pytest.MonkeyPatch) -> None:
    import sensors.time

    example = load_example("time_sensor")
    now = dt.datetime.now(dt.UTC)
    monkeypatch.setattr(sensors.time, "now", lambda: now)
    meta = await connector.create(request_for(example.wait_a_little))
    assert "left" in (await connector.get(meta)).message
    now += dt.timedelta(seconds=4)
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


def test_http_example_runs_locally(web: HttpServer) -> None:
    web.routes["/health"] = Answer(200, b'{"status": "ready"}')
    try:
        assert load_example("http_sensor").wf(url=web.url("/health")) == "service ready (HTTP 200)"
    finally:
        local_connector_loop.run_until_complete(http.close_sessions())


async def test_http_example_is_served_with_its_status_output(connector: Connector, web: HttpServer) -> None:
    example = load_example("http_sensor")
    meta = await connector.create(request_for(example.wait_ready, url=web.url("/health")))
    try:
        assert (await connector.get(meta)).phase == Phase.RUNNING
        web.routes["/health"] = Answer(200, b'{"status": "starting"}')
        assert (await connector.get(meta)).phase == Phase.RUNNING
        web.routes["/health"] = Answer(200, b'{"status": "ready"}')
        done = await connector.get(meta)
        assert done.phase == Phase.SUCCEEDED, done.message
        assert done.outputs.literals["status"].scalar.primitive.integer == 200
    finally:
        await http.close_sessions()


def test_sql_example_runs_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_SALES_DB_URL", sales_db(tmp_path / "sales.db", "2026-11-24"))
    assert load_example("sql_sensor").wf(day="2026-11-24") == "sales for 2026-11-24 are in"


async def test_sql_example_is_served(
    make_connector: Any, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "sales.db"
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRET_SALES_DB_URL", sales_db(db))
    # The operator grants the example's secret (a database URL names its own destination).
    granted = with_secret_policy(config, {"sales-db-url": {}})
    server = await make_connector(secret_policy=granted.secret_policy)
    example = load_example("sql_sensor")
    query = "select count(*) > 0 from sales where day = '2026-11-24'"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        meta = await connector.create(request_for(example.wait_for_rows, query=query))
        assert (await connector.get(meta)).phase == Phase.RUNNING
        sales_db(db, "2026-11-24")
        assert (await connector.get(meta)).phase == Phase.SUCCEEDED
