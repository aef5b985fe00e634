"""The sensor policy (poke interval, backoff, deadline, soft fail): its schedule, its checks, and how the
real connector applies it, driven through flyteidl stubs with the engine on a clock the test moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2
from flytekit.sensor import FileSensor as StockFileSensor
from google.protobuf import json_format

from connector.config import Config
from sensors import http
from sensors.base import ConfigError
from sensors.flytekit import FileSensor, GlobSensor, HttpSensor, SqlSensor, TimeSensor, sensor_policy
from sensors.policy import Policy

from .catalog import expect_rejected, request_for, template_of
from .conftest import Clock, Connector, engine_of, sqlite_secret, with_secret_policy
from .httpserver import Answer, HttpServer, serve

Phase = execution_pb2.TaskExecution.Phase
START = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)


# -- the schedule ----------------------------------------------------------------------------------


def test_a_fixed_interval_pokes_every_interval_from_creation() -> None:
    p = Policy.parse({"poke_interval": 60})
    assert [p.slot(e) for e in (0, 59.999, 60, 119.9, 120, 3600)] == [0, 0, 1, 1, 2, 60]
    assert [p.next_due(e) for e in (0, 59.999, 60, 3600)] == [60, 60, 120, 3660]


def test_backoff_doubles_the_interval_up_to_the_cap() -> None:
    # gaps 10, 20, 40 -> capped at 60, 60, ...: due pokes at 0, 10, 30, 70, 130, 190, 250
    p = Policy.parse({"poke_interval": 10, "backoff": 2, "max_poke_interval": 60})
    assert [p.start(k) for k in range(7)] == [0, 10, 30, 70, 130, 190, 250]
    assert [p.slot(e) for e in (0, 9.99, 10, 29.99, 30, 69.99, 70, 129.99, 130, 190, 250)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 6,
    ]  # fmt: skip
    assert [p.next_due(e) for e in (0, 10, 30, 70, 130, 200)] == [10, 30, 70, 130, 190, 250]


def test_backoff_without_a_cap_grows_for_ever_and_boundaries_are_exact() -> None:
    # gaps 1, 10, 100, 1000: log(1000, 10) is 2.9999999999999996 in floats; slot 3 still starts at 111.
    p = Policy.parse({"poke_interval": 1, "backoff": 10})
    assert [p.start(k) for k in range(5)] == [0, 1, 11, 111, 1111]
    assert [p.slot(e) for e in (0.5, 1, 10.99, 11, 110.99, 111, 1110.99, 1111)] == [0, 1, 1, 2, 2, 3, 3, 4]
    assert p.next_due(111) == 1111


def test_a_cap_reached_exactly_and_a_cap_equal_to_the_interval() -> None:
    exact = Policy.parse({"poke_interval": 1, "backoff": 5, "max_poke_interval": 125})
    assert [exact.start(k) for k in range(7)] == [0, 1, 6, 31, 156, 281, 406]
    flat = Policy.parse({"poke_interval": 30, "backoff": 3, "max_poke_interval": 30})
    assert [flat.start(k) for k in range(4)] == [0, 30, 60, 90]
    assert flat.slot(89.9) == 2 and flat.next_due(89.9) == 90


def test_without_an_interval_every_get_pokes() -> None:
    p = Policy.parse({"deadline": 60})
    assert p.slot(0) == p.slot(1e6) == -1 and p.next_due(5) is None


def test_timedelta_and_milliseconds() -> None:
    p = Policy.parse({"poke_interval": dt.timedelta(minutes=5), "deadline": 0.0004 + 1})
    assert p.poke_interval == 300.0 and p.deadline == 1.0  # kept to the millisecond, as resource_meta does


BAD_POLICIES = [
    ({"poke_interval": -5}, "'poke_interval' must not be negative"),
    ({"poke_interval": 0}, "'poke_interval' must be at least 0.001 seconds"),
    ({"poke_interval": "5m"}, "'poke_interval' must be a number of seconds, not str"),
    ({"poke_interval": True}, "'poke_interval' must be a number of seconds, not bool"),
    ({"deadline": -1}, "'deadline' must not be negative"),
    ({"deadline": 1e12}, "'deadline' must be at most"),
    ({"poke_interval": 10, "backoff": 0.5}, "'backoff' must be from 1 to 100, not 0.5"),
    ({"poke_interval": 10, "backoff": "2"}, "'backoff' must be a number, not str"),
    ({"backoff": 2}, "'backoff' needs a 'poke_interval'"),
    (
        {"poke_interval": 60, "max_poke_interval": 30},
        "'max_poke_interval' (30s) is below 'poke_interval' (60s)",
    ),
    ({"max_poke_interval": 30}, "'max_poke_interval' needs a 'poke_interval'"),
    ({"soft_fail": True}, "'soft_fail' needs a 'deadline'"),
    ({"soft_fail": "yes", "deadline": 5}, "'soft_fail' must be true or false, not str"),
]


@pytest.mark.parametrize(("fields", "needle"), BAD_POLICIES)
def test_bad_policies_fail_at_declaration_with_one_sentence(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        FileSensor(name="bad_policy", **fields)
    assert needle in str(info.value) and _one_sentence(str(info.value))


# -- through the real connector --------------------------------------------------------------------


@pytest.fixture
def clock(connector: Connector) -> Clock:
    """The connector's sensor engine on a test clock."""
    fake = Clock(START)
    engine_of(connector.server).clock = fake
    return fake


def _one_sentence(text: str) -> bool:
    return text.endswith(".") and len(text) < 300 and "\n" not in text


def _policy_template(sensor_config: dict[str, Any]) -> tasks_pb2.TaskTemplate:
    """A FileSensor template whose sensor_config says what the test needs (valid or not)."""
    template = template_of(FileSensor(name="raw_policy"))
    template.custom.fields["sensor_config"].struct_value.update(sensor_config)
    return template


async def test_a_poke_before_it_is_due_does_not_touch_the_store_and_a_due_one_sees_the_file(
    connector: Connector, clock: Clock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    target = tmp_path / "landing.csv"
    wait = FileSensor(name="wait_every_minute", poke_interval=60)
    meta = await connector.create(request_for(wait, path=f"countfs://{target}"))
    first = await connector.get(meta)
    assert first.phase == Phase.RUNNING and len(calls) == 1
    target.write_text("x")  # lands between due pokes
    clock.advance(59)
    remembered = await connector.get(meta)
    assert remembered.phase == Phase.RUNNING and len(calls) == 1  # not due: the store is not touched
    assert remembered == first
    clock.advance(1)
    done = await connector.get(meta)
    assert done.phase == Phase.SUCCEEDED, done.message
    assert len(calls) == 2


async def test_the_first_running_answer_shows_the_policy(connector: Connector, clock: Clock) -> None:
    wait = FileSensor(
        name="wait_policy", poke_interval=300, backoff=2, max_poke_interval=3600, deadline=6 * 3600
    )
    meta = await connector.create(request_for(wait, path="/tmp/nonexistent/x"))
    info = json_format.MessageToDict((await connector.get(meta)).custom_info)
    assert info["policy"] == {
        "poke_interval": "5m00s",
        "backoff": 2.0,
        "max_poke_interval": "1h00m",
        "deadline": "2026-11-25T14:00:00Z",
        "at_deadline": "fail",
    }


async def test_backoff_schedule_through_the_server(
    connector: Connector, clock: Clock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    # gaps 10, 20, 30 (capped), 30: due pokes at 0, 10, 30, 60, 90
    wait = FileSensor(name="wait_backoff", poke_interval=10, backoff=2, max_poke_interval=30)
    meta = await connector.create(request_for(wait, path=f"countfs://{tmp_path}/never"))
    poked_at = []
    for t in (0, 5, 9, 10, 20, 29, 30, 45, 59, 60, 75, 89, 90):
        clock.now = START + dt.timedelta(seconds=t)
        before = len(calls)
        assert (await connector.get(meta)).phase == Phase.RUNNING
        if len(calls) > before:
            poked_at.append(t)
    assert poked_at == [0, 10, 30, 60, 90]


async def test_each_replica_pokes_at_most_once_per_interval(
    connector: Connector, clock: Clock, calls: list[tuple[str, str]], make_connector: Any, tmp_path: Path
) -> None:
    other = await make_connector()
    engine_of(other).clock = clock
    wait = FileSensor(name="wait_replicas", poke_interval=60)
    meta = await connector.create(request_for(wait, path=f"countfs://{tmp_path}/never"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
        replica = Connector(other, channel)
        for t in (0, 20, 40, 59):  # one interval, each replica asked four times
            clock.now = START + dt.timedelta(seconds=t)
            await connector.get(meta)
            await replica.get(meta)
        assert len(calls) == 2
        clock.now = START + dt.timedelta(seconds=60)
        await connector.get(meta)
        await replica.get(meta)
        assert len(calls) == 4


async def test_the_deadline_fails_the_task_for_good_with_its_message(
    connector: Connector, clock: Clock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    path = f"countfs://{tmp_path}/x"
    wait = FileSensor(name="wait_six_hours", poke_interval=600, deadline=dt.timedelta(hours=6))
    meta = await connector.create(request_for(wait, path=path))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    clock.advance(6 * 3600 - 1)
    assert (await connector.get(meta)).phase == Phase.RUNNING
    pokes = len(calls)
    clock.advance(1)
    failed = await connector.get(meta)
    assert failed.phase == Phase.FAILED
    assert failed.message == f"waited 6h00m for {path}; its deadline passed, giving up."
    assert failed.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE
    assert len(calls) == pokes + 1  # one last poke at the deadline
    assert json_format.MessageToDict(failed.custom_info)["outcome"] == "failed"
    assert await connector.get(meta) == failed and len(calls) == pokes + 1  # final: not poked again here


async def test_a_file_that_lands_by_the_deadline_still_succeeds(
    connector: Connector, clock: Clock, tmp_path: Path
) -> None:
    target = tmp_path / "late.csv"
    meta = await connector.create(request_for(FileSensor(name="wait_late", deadline=60), path=str(target)))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    target.write_text("x")
    clock.advance(61)
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED


async def test_soft_fail_succeeds_with_met_false_at_the_deadline_and_met_true_when_met(
    connector: Connector, clock: Clock, tmp_path: Path
) -> None:
    wait = FileSensor(name="wait_or_skip", poke_interval=60, deadline=3600, soft_fail=True)
    assert list(template_of(wait).interface.outputs.variables) == ["met"]
    missing = await connector.create(request_for(wait, path=str(tmp_path / "never")))
    present = tmp_path / "here"
    present.write_text("x")
    found = await connector.create(request_for(wait, path=str(present)))
    met = await connector.get(found)
    assert met.phase == Phase.SUCCEEDED and met.outputs.literals["met"].scalar.primitive.boolean is True
    info = json_format.MessageToDict((await connector.get(missing)).custom_info)
    assert info["policy"]["at_deadline"] == "succeed with met=false"
    clock.advance(3600)
    soft = await connector.get(missing)
    assert soft.phase == Phase.SUCCEEDED, soft.message
    assert soft.outputs.literals["met"].scalar.primitive.boolean is False
    assert soft.message.startswith("waited 1h00m for ") and "succeeding with met=false" in soft.message
    assert json_format.MessageToDict(soft.custom_info)["outcome"] == "soft_failed"


async def test_soft_fail_without_a_met_output_just_succeeds(connector: Connector, clock: Clock) -> None:
    wait = FileSensor(name="wait_soft_quiet", deadline=10, soft_fail=True, met=False)
    assert not template_of(wait).interface.outputs.variables
    meta = await connector.create(request_for(wait, path="/tmp/nonexistent/quiet"))
    clock.advance(10)
    soft = await connector.get(meta)
    assert soft.phase == Phase.SUCCEEDED and not soft.outputs.literals


async def test_a_permanent_error_at_the_deadline_stays_a_failure_even_with_soft_fail(
    connector: Connector, clock: Clock
) -> None:
    wait = FileSensor(name="wait_bad_proto", deadline=10, soft_fail=True)
    meta = await connector.create(request_for(wait, path="nosuchproto://bucket/key"))
    clock.advance(10)
    failed = await connector.get(meta)
    assert failed.phase == Phase.FAILED and "unknown protocol" in failed.message


@pytest.mark.parametrize(("fields", "needle"), BAD_POLICIES)
async def test_bad_policies_are_invalid_argument_at_create(
    connector: Connector, fields: dict[str, Any], needle: str
) -> None:
    message = await expect_rejected(
        connector, request_for(_policy_template(fields), path="/tmp/x"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert needle in message and _one_sentence(message), message


async def test_stock_flytekit_file_sensor_carries_the_policy_in_sensor_config(
    connector: Connector, clock: Clock, tmp_path: Path
) -> None:
    stock = StockFileSensor(name="stock_wait", sensor_config=sensor_policy(poke_interval=60, deadline=120))
    template = template_of(stock)
    custom = json_format.MessageToDict(template.custom)
    assert custom["sensor_module"] == "flytekit.sensor.file_sensor"
    assert custom["sensor_config"] == {"poke_interval": 60.0, "deadline": 120.0}
    path = str(tmp_path / "never")
    meta = await connector.create(request_for(stock, path=path))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    clock.advance(120)
    failed = await connector.get(meta)
    assert (
        failed.phase == Phase.FAILED
        and failed.message == f"waited 2m00s for {path}; its deadline passed, giving up."
    )


# -- every catalog sensor takes the policy ---------------------------------------------------------


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpServer]:
    monkeypatch.setenv(http.ALLOW_HOSTS_ENV, "127.0.0.1")
    with serve() as server:
        server.routes["/health"] = Answer(503, b"starting")
        yield server


@pytest.fixture
def config(config: Config) -> Config:
    """The operator grants SqlSensor's database secret."""
    return with_secret_policy(config, {"policy-db": {}})


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_secret(
        tmp_path / "empty.db",
        monkeypatch,
        "SENSOR_CONNECTOR_SECRET_POLICY_DB",
        "create table sales (day text)",
    )


CATALOG = {
    "FileSensor": lambda kw: (FileSensor(name="p_file", **kw), {"path": "/tmp/nonexistent/p"}),
    "GlobSensor": lambda kw: (GlobSensor(name="p_glob", **kw), {"pattern": "/tmp/nonexistent/*.csv"}),
    "TimeSensor": lambda kw: (TimeSensor(name="p_time", delay=10 * 86400, **kw), {}),
    "HttpSensor": lambda kw: (HttpSensor(name="p_http", **kw), {"url": "WEB"}),
    "SqlSensor": lambda kw: (
        SqlSensor(name="p_sql", connection_secret="policy-db", **kw),
        {"query": "select count(*) from sales"},
    ),
}


@pytest.mark.parametrize("sensor", sorted(CATALOG))
async def test_every_catalog_sensor_takes_the_policy_and_a_deadline_fails_it(
    connector: Connector, clock: Clock, web: HttpServer, empty_db: None, sensor: str
) -> None:
    task, values = CATALOG[sensor](
        {"poke_interval": 30, "backoff": 1.5, "max_poke_interval": 300, "deadline": 600}
    )
    values = {k: web.url("/health") if v == "WEB" else v for k, v in values.items()}
    meta = await connector.create(request_for(task, **values))
    try:
        first = await connector.get(meta)
        assert first.phase == Phase.RUNNING, first.message
        assert json_format.MessageToDict(first.custom_info)["policy"]["poke_interval"] == "30s"
        clock.advance(600)
        failed = await connector.get(meta)
        assert failed.phase == Phase.FAILED
        assert "its deadline passed, giving up." in failed.message and _one_sentence(
            failed.message.split(". ")[0] + "."
        )
        assert failed.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE
    finally:
        await http.close_sessions()
