"""The sensor policy in local runs (`pyflyte run`): the authoring classes poke on the policy's schedule,
give up at the deadline and soft-fail with met=False, through sensors.policy, on a clock the test moves."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flyteidl.core import execution_pb2
from flytekit import conditional, task, workflow
from flytekit.extend.backend.base_connector import local_connector_loop
from flytekit.sensor.base_sensor import SensorMetadata
from flytekit.sensor.sensor_engine import SensorEngine
from google.protobuf import json_format

import sensors.flytekit
from sensors.base import ConfigError
from sensors.flytekit import FileSensor, GlobSensor, LocalClock

from .catalog import load_example, template_of
from .conftest import ROOT

Phase = execution_pb2.TaskExecution.Phase


class FakeLocalClock(LocalClock):
    """Local time that only moves when the loop sleeps; `on_sleep` runs after each sleep."""

    def __init__(self) -> None:
        self.current = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
        self.slept: list[float] = []
        self.on_sleep: Callable[[int], None] = lambda n: None

    def now(self) -> dt.datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.current += dt.timedelta(seconds=seconds)
        self.on_sleep(len(self.slept))

    def advance(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeLocalClock:
    fake = FakeLocalClock()
    monkeypatch.setattr(sensors.flytekit, "local_clock", fake)
    monkeypatch.setattr(sensors.flytekit, "_local_runs", {})
    return fake


def test_the_template_carries_the_policy_beside_the_sensor_config() -> None:
    wait = GlobSensor(
        name="wait_policy_tpl",
        min_count=2,
        poke_interval=dt.timedelta(minutes=5),
        backoff=2,
        max_poke_interval=3600,
        deadline=dt.timedelta(hours=6),
    )
    config = json_format.MessageToDict(template_of(wait).custom)["sensor_config"]
    assert config == {
        "min_count": 2,
        "poke_interval": 300.0,
        "backoff": 2.0,
        "max_poke_interval": 3600.0,
        "deadline": 21600.0,
    }


def test_soft_fail_declares_met_and_refuses_outputs_it_could_not_fill() -> None:
    soft = FileSensor(name="soft_met", deadline=60, soft_fail=True)
    assert soft.python_interface.outputs == {"met": bool}
    asked = FileSensor(name="asked_met", met=True)
    assert asked.python_interface.outputs == {"met": bool}
    with pytest.raises(ConfigError, match=r"with soft_fail can declare only the output 'met'.*paths"):
        GlobSensor(name="soft_paths", deadline=60, soft_fail=True, outputs=True)


def test_local_pokes_follow_the_backoff_schedule_and_the_deadline_fails(
    clock: FakeLocalClock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    # due pokes at 0, 10, 30, 60, 90 (gaps 10, 20, 30 capped), then one last poke at the deadline, 100
    wait = FileSensor(name="local_backoff", poke_interval=10, backoff=2, max_poke_interval=30, deadline=100)
    path = f"countfs://{tmp_path}/never"
    with pytest.raises(Exception, match=rf"waited 1m40s for {path}; its deadline passed, giving up\."):
        wait(path=path)
    assert clock.slept == [10, 20, 30, 30, 10]
    assert len(calls) == 6


def test_a_file_that_lands_between_local_pokes_is_seen_by_the_next_due_one(
    clock: FakeLocalClock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    target = tmp_path / "landing.csv"
    clock.on_sleep = lambda n: target.write_text("x") if n == 2 else None
    FileSensor(name="local_interval", poke_interval=60)(path=f"countfs://{target}")
    assert clock.slept == [60, 60] and len(calls) == 3


def test_a_slow_poke_does_not_push_the_schedule_back(clock: FakeLocalClock, tmp_path: Path) -> None:
    target = tmp_path / "slow.csv"

    wait = FileSensor(name="local_slow", poke_interval=60, deadline=150)
    original = wait.poke_once

    async def slow(inputs, created_at=None):  # type: ignore[no-untyped-def]
        clock.advance(7)  # each poke takes 7 s
        return await original(inputs, created_at)

    wait.poke_once = slow  # type: ignore[method-assign]
    with pytest.raises(Exception, match="deadline passed"):
        wait(path=str(target))
    assert clock.slept == [53, 53, 23]  # pokes start at 0, 60, 120, 150


# -- soft fail and conditional ----------------------------------------------------------------------

skip_or_wait = FileSensor(name="skip_or_wait", poke_interval=30, deadline=120, soft_fail=True)


@task
def count_lines(path: str) -> str:
    with open(path) as f:
        return f"{sum(1 for _ in f)} lines"


@task
def skipped() -> str:
    return "no file today"


@workflow
def maybe_count(path: str) -> str:
    met = skip_or_wait(path=path)
    return conditional("landed").if_(met.is_true()).then(count_lines(path=path)).else_().then(skipped())


def test_soft_fail_lets_a_local_workflow_branch_on_met(clock: FakeLocalClock, tmp_path: Path) -> None:
    assert maybe_count(path=str(tmp_path / "never")) == "no file today"
    assert clock.slept == [30, 30, 30, 30]
    present = tmp_path / "here.csv"
    present.write_text("a\nb\n")
    assert maybe_count(path=str(present)) == "2 lines"


def test_the_policy_example_runs_locally(clock: FakeLocalClock, tmp_path: Path) -> None:
    example = load_example("policy")
    assert example.wf(path=str(tmp_path / "never")) == "no data for today"
    assert clock.current - dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC) == dt.timedelta(hours=6)
    present = tmp_path / "data.csv"
    present.write_text("a\nb\nc\n")
    assert example.wf(path=str(present)) == "3 lines"


def test_the_policy_runs_in_real_time_with_small_intervals(tmp_path: Path) -> None:
    soft = FileSensor(
        name="fast_soft", poke_interval=0.02, backoff=2, max_poke_interval=0.05, deadline=0.2, soft_fail=True
    )
    assert soft(path=str(tmp_path / "never")) is False


# -- flytekit's own local engine (a sensor driven by flytekit's SensorEngine) ----------------------


def test_flytekits_local_engine_pokes_only_when_due_and_stops_at_the_deadline(
    clock: FakeLocalClock, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    engine = SensorEngine()

    def meta(**policy: object) -> SensorMetadata:
        return SensorMetadata(
            sensor_module="sensors.flytekit",
            sensor_name="FileSensor",
            sensor_config={"min_size": 1, **policy},
            inputs={"path": f"countfs://{tmp_path}/never"},
        )

    def phase(m: SensorMetadata) -> int:
        return int(local_connector_loop.run_until_complete(engine.get(m)).phase)

    hard = meta(poke_interval=10, deadline=25)
    assert phase(hard) == Phase.RUNNING and len(calls) == 1
    clock.advance(5)
    assert phase(hard) == Phase.RUNNING and len(calls) == 1  # not due
    clock.advance(5)
    assert phase(hard) == Phase.RUNNING and len(calls) == 2
    clock.advance(15)
    with pytest.raises(sensors.flytekit.SensorDeadlineError, match="deadline passed, giving up"):
        phase(hard)
    soft = meta(deadline=25, soft_fail=True)
    assert phase(soft) == Phase.RUNNING
    clock.advance(25)
    assert phase(soft) == Phase.SUCCEEDED


def test_the_catalog_docs_policy_examples_declare_and_say_their_schedule() -> None:
    text = (ROOT / "docs" / "catalog.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    block = next(b for b in blocks if "wait_or_skip = FileSensor" in b)
    scope: dict[str, object] = {}
    exec(compile(block, "catalog.md", "exec"), scope)
    export = scope["wait_export"]
    assert isinstance(export, GlobSensor)
    assert [export.policy.start(k) / 60 for k in range(7)] == [0, 1, 3, 7, 15, 30, 45]  # as the comment says


def test_one_decision_says_when_a_poke_is_due_and_when_the_deadline_passed() -> None:
    from sensors.policy import AFTER_DEADLINE, EVERY_GET, Policy

    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def at(seconds: float) -> dt.datetime:
        return created + dt.timedelta(seconds=seconds)

    policy = Policy.parse({"poke_interval": 10, "backoff": 2, "deadline": 100})
    first = policy.decide(created, at(0), None)
    assert first.due and not first.expired and first.slot == 0
    assert not policy.decide(created, at(9.9), first.slot).due  # same slot: the last answer stands
    second = policy.decide(created, at(10), first.slot)
    assert second.due and second.slot == 1
    assert not policy.decide(created, at(29.9), second.slot).due  # the gap doubled to 20 s
    assert policy.decide(created, at(30), second.slot).due
    final = policy.decide(created, at(100), 3)
    assert final.due and final.expired and final.slot == AFTER_DEADLINE
    assert not policy.decide(created, at(500), final.slot).due  # the answer after the deadline is final
    every = Policy().decide(created, at(5), EVERY_GET)
    assert every.due and not every.expired and every.slot == EVERY_GET
