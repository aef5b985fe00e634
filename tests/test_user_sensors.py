"""Users' own flytekit sensors, served unchanged: a package written as flytekit's docs show
(tests/fixtures/user_pkg, never imported here) pip-installed into a directory of its own, put on the
connector's PYTHONPATH and allowed with --sensor-modules, as an operator would; templates serialized by
stock flytekit (tests/vectors/user_*.json); the real `sensor-connector serve` driven by flyteidl stubs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2
from flyteidl.service import agent_pb2_grpc
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import literals_pb2 as literals_v2
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as tasks_v2
from flyteidl2.task import common_pb2
from google.protobuf import json_format

from .conftest import (
    ROOT,
    SENSOR,
    Connector,
    Process,
    collector_paused,
    file_sensor_request,
    free_port,
    inputs,
    load_template,
    scrape,
    spawn,
)

Phase = execution_pb2.TaskExecution.Phase
pytestmark = pytest.mark.slow  # starts connector processes (and flytekit's)
MODULES = "mysensors.markers,mysensors.broken"
MARKER = "mysensors.markers.MarkerSensor"


@dataclass
class Served:
    """A `sensor-connector serve` child serving the fixture's sensors, and stubs to call it."""

    process: Process
    metrics_port: int

    @property
    def stub(self) -> agent_pb2_grpc.AsyncAgentServiceStub:
        return agent_pb2_grpc.AsyncAgentServiceStub(grpc.insecure_channel(f"127.0.0.1:{self.process.port}"))

    def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        return bytes(self.stub.CreateTask(request, timeout=10).resource_meta)

    def get(self, meta: bytes) -> agent_pb2.Resource:
        request = agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta)
        return self.stub.GetTask(request, timeout=10).resource

    def until(self, meta: bytes, phase: int, within: float = 15) -> agent_pb2.Resource:
        """Get, as propeller polls, until the phase is `phase` (failing on another final phase)."""
        return poll_until(self.get, meta, phase, within)


R = TypeVar("R", agent_pb2.Resource, connector_pb2.Resource)


def poll_until(get: Callable[[bytes], R], meta: bytes, phase: int, within: float) -> R:
    """`get(meta)` until the phase is `phase`, failing on another final phase or after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        resource = get(meta)
        if resource.phase == phase:
            return resource
        assert resource.phase == Phase.RUNNING, resource
        assert time.monotonic() < deadline, f"still {Phase.Name(resource.phase)}: {resource.message}"
        time.sleep(0.2)  # the poll interval of this client, as propeller's (and Flyte 2 plugin's) resync


def serve_user_sensors(site: Path, key_file: Path, *args: str) -> Served:
    metrics = free_port()
    env = {"PYTHONPATH": str(site), "SENSOR_CONNECTOR_SENSOR_MODULES": MODULES}
    process = spawn(
        "--signing-key-file", str(key_file), "--metrics-port", str(metrics), "--log-format", "json", *args,
        env=env,
    )  # fmt: skip
    return Served(process, metrics)


@pytest.fixture
def served(user_site: Path, key_file: Path) -> Iterator[Served]:
    up = serve_user_sensors(user_site, key_file, "--poke-timeout", "3")
    yield up
    up.process.stop()


def request(vector: str, values: literals_pb2.LiteralMap, run: str = "run-17") -> agent_pb2.CreateTaskRequest:
    """What propeller sends for a stock-flytekit template, with an execution to name in logs."""
    execution = agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id="n0",
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project="flytesnacks", domain="development", name=run
                ),
            ),
            retry_attempt=0,
        )
    )
    return agent_pb2.CreateTaskRequest(
        template=load_template(vector),
        inputs=values,
        output_prefix="s3://bucket/out",
        task_execution_metadata=execution,
    )


def log_records(process: Process) -> list[dict[str, object]]:
    return [json.loads(line) for line in list(process.log) if line.startswith("{")]


def test_a_documented_base_sensor_runs_then_succeeds(served: Served, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    meta = served.create(request("user_marker.json", inputs(path=str(marker))))
    waiting = served.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == f"{MARKER}.poke answered False; will poke again."
    assert waiting.custom_info["sensor"] == MARKER
    assert waiting.custom_info["awaiting"] == {"path": str(marker)}
    marker.touch()
    done = served.until(meta, Phase.SUCCEEDED)
    assert done.message == f"{MARKER}.poke answered True."
    records = log_records(served.process)
    created = [r for r in records if r.get("operation") == "create" and r.get("sensor") == MARKER]
    assert created and created[0]["execution"] == "flytesnacks/development/run-17"
    assert "mysensors" not in sys.modules


def test_the_sensor_config_reaches_the_class_as_flytekit_passes_it(served: Served, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    meta = served.create(request("user_marker_suffix.json", inputs(path=str(marker))))
    marker.touch()  # the config says to wait for `ready.done`
    assert served.get(meta).phase == Phase.RUNNING
    (tmp_path / "ready.done").touch()
    served.until(meta, Phase.SUCCEEDED)


@dataclass
class Partition:
    """The same fields as the fixture's dataclass: flytekit writes a dataclass literal by its fields."""

    table: str
    day: int


def partition_inputs(root: Path, after: dt.datetime) -> literals_pb2.LiteralMap:
    """Inputs as flytekit's TypeEngine writes them for the declared python types."""
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    values = {
        "root": (str(root), str),
        "count": (3, int),
        "after": (after, dt.datetime),
        "names": (["a", "b"], list[str]),
        "sizes": ({"x": 1, "y": 2}, dict[str, int]),
        "part": (Partition("sales", 24), Partition),
    }
    lits = {}
    for name, (value, tp) in values.items():
        lit = TypeEngine.to_literal(ctx, value, tp, TypeEngine.to_literal_type(tp))
        lits[name] = lit.to_flyte_idl()
    return literals_pb2.LiteralMap(literals=lits)


def test_inputs_arrive_as_the_types_poke_declares(served: Served, tmp_path: Path) -> None:
    after = dt.datetime(2026, 11, 24, 6, 30, tzinfo=dt.UTC)
    meta = served.create(request("user_partition.json", partition_inputs(tmp_path, after)))
    waiting = served.get(meta)
    # The poke raises TypeError naming any input of the wrong type; it found them all right.
    assert waiting.phase == Phase.RUNNING and "poke answered False" in waiting.message, waiting.message
    (tmp_path / "sales-24-3-202611240630-a+b-3").touch()
    served.until(meta, Phase.SUCCEEDED)


def test_a_sync_poke_works(served: Served, tmp_path: Path) -> None:
    meta = served.create(request("user_sync.json", inputs(path=str(tmp_path / "x"))))
    assert served.get(meta).phase == Phase.RUNNING
    (tmp_path / "x").touch()
    served.until(meta, Phase.SUCCEEDED)


def test_a_poke_that_raises_is_running_with_one_sentence_then_fails_at_the_deadline(
    served: Served, tmp_path: Path
) -> None:
    path = tmp_path / "service"
    meta = served.create(request("user_table.json", inputs(path=str(path))))  # deadline 3 s (sensor_config)
    waiting = served.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == (
        f"mysensors.markers.TableSensor poke raised ConnectionError: table service for {path} is "
        "unreachable; will poke again."
    )
    assert "Traceback" not in waiting.message
    failed = served.until(meta, Phase.FAILED, within=20)
    assert failed.message.startswith(f"waited 3s for {path}; its deadline passed, giving up."), failed.message
    assert "The last poke said: mysensors.markers.TableSensor poke raised ConnectionError" in failed.message
    records = log_records(served.process)
    raised = [r for r in records if "poke raised ConnectionError" in str(r.get("message"))]
    assert raised and raised[0]["execution"] == "flytesnacks/development/run-17"
    assert "Traceback" in str(raised[0]["exception"]) and raised[0]["level"] == "ERROR"


def test_a_permanent_error_from_user_code_fails_the_task_at_once(served: Served, tmp_path: Path) -> None:
    meta = served.create(request("user_gone.json", inputs(path="sales")))
    failed = served.get(meta)
    assert failed.phase == Phase.FAILED
    assert failed.message == "mysensors.markers.GoneSensor: table sales was dropped"
    assert failed.agent_error.kind == agent_pb2.AgentError.NON_RECOVERABLE


def test_an_answer_that_is_not_a_bool_is_running_saying_so(served: Served) -> None:
    meta = served.create(request("user_maybe.json", inputs(path="x")))
    waiting = served.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == (
        "mysensors.markers.MaybeSensor.poke answered str 'yes', not True or False; will poke again."
    )


def test_pokes_asking_the_same_share_an_answer_within_max_staleness(
    user_site: Path, key_file: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    for staleness, second in (("60", Phase.RUNNING), ("0", Phase.SUCCEEDED)):
        marker.unlink(missing_ok=True)
        up = serve_user_sensors(user_site, key_file, "--max-staleness", staleness)
        try:
            served = Served(up.process, up.metrics_port)
            first = served.create(request("user_marker.json", inputs(path=str(marker))))
            assert served.get(first).phase == Phase.RUNNING
            marker.touch()
            # Another task asking the same (class, config, inputs): the first one's answer, if fresh.
            same = served.create(request("user_marker.json", inputs(path=str(marker)), run="run-18"))
            assert same != first
            other = served.create(request("user_marker.json", inputs(path=str(tmp_path))))
            assert served.get(same).phase == second
            assert served.get(other).phase == Phase.SUCCEEDED
        finally:
            up.process.stop()


def test_a_missing_input_is_refused_at_create(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as info:
        served.create(request("user_marker.json", inputs()))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"{MARKER} needs input path and the request does not give it."


async def test_a_blocking_poke_never_delays_other_calls(
    user_site: Path, key_file: Path, tmp_path: Path
) -> None:
    # No answer sharing: every Get of a user sensor here pokes in a worker thread.
    up = serve_user_sensors(
        user_site, key_file, "--poke-timeout", "1", "--user-pokes-per-sensor", "1", "--max-staleness", "0"
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{up.process.port}") as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)

            async def create(req: agent_pb2.CreateTaskRequest) -> bytes:
                return bytes((await stub.CreateTask(req, timeout=10)).resource_meta)

            async def get(meta: bytes) -> tuple[agent_pb2.Resource, float]:
                t0 = time.perf_counter()
                reply = await stub.GetTask(agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta))
                return reply.resource, time.perf_counter() - t0

            (tmp_path / "there").touch()
            sleepy = await create(request("user_sleepy.json", inputs(seconds=30)))
            others = [
                await create(file_sensor_request(str(tmp_path / "there"))),
                await create(file_sensor_request(str(tmp_path / "missing"))),
                await create(request("user_marker.json", inputs(path=str(tmp_path / "there")))),
                await create(request("user_sync.json", inputs(path=str(tmp_path / "missing")))),
            ]
            for meta in others:  # first uses (flytekit's TypeEngine, the sensor objects) out of the way
                await get(meta)
            with collector_paused():  # this process's heap, not the poke, is what a full collection pauses on
                blocked = asyncio.ensure_future(get(sleepy))
                answers = [await get(others[i % len(others)]) for i in range(25)]
                hung, seconds = await blocked
                assert hung.phase == Phase.RUNNING and "ran out of its 1s budget" in hung.message
                assert seconds < 2
                # The poke still sleeps in its thread, holding the class's only slot.
                answers += [await get(others[i % len(others)]) for i in range(25)]
                again, seconds = await get(sleepy)
                assert again.phase == Phase.RUNNING and seconds < 0.1
                assert again.message == (
                    "all 1 poke slots of mysensors.markers.SleepySensor are held by pokes that never "
                    "returned (abandoned after --poke-timeout); will poke again once one returns."
                )
        slow = [(r.message, s) for r, s in answers if s >= 0.1]
        assert not slow, slow
        assert [r.phase for r, _ in answers[:4]] == [Phase.SUCCEEDED, Phase.RUNNING] * 2
        sleepy = (("sensor", "mysensors.markers.SleepySensor"),)
        assert scrape(up.metrics_port)[("flyte_sensor_connector_user_pokes_abandoned_total", sleepy)] == 1
        warned = [r for r in log_records(up.process) if "abandoned a poke" in str(r.get("message"))]
        assert warned and warned[0]["level"] == "WARNING" and warned[0]["sensor"] == sleepy[0][1]
        # The line names the execution whose poke it abandoned, as every other line about a task does.
        assert warned[0]["execution"] == "flytesnacks/development/run-17"
        assert (warned[0]["node"], warned[0]["operation"]) == ("n0", "get")
    finally:
        up.process.stop()


@dataclass
class Slow:
    """The fixture's `Slow` input by its fields (the fixture's own blocks when built, as it must there)."""

    seconds: int


def test_an_input_that_never_decodes_fails_create_and_its_line_names_the_execution(
    user_site: Path, key_file: Path
) -> None:
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    lit = TypeEngine.to_literal(ctx, Slow(30), Slow, TypeEngine.to_literal_type(Slow))
    values = literals_pb2.LiteralMap(literals={"slow": lit.to_flyte_idl()})
    up = serve_user_sensors(user_site, key_file, "--poke-timeout", "1")
    try:
        with pytest.raises(grpc.RpcError) as info:
            up.create(request("user_slow_input.json", values, run="run-18"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "inputs could not be read within --poke-timeout (1s)" in str(info.value.details())
    finally:
        up.process.stop()  # its log, read whole
    warned = [r for r in log_records(up.process) if "abandoned a poke" in str(r.get("message"))]
    assert warned and warned[0]["sensor"] == "mysensors.markers.SlowInputSensor"
    assert warned[0]["execution"] == "flytesnacks/development/run-18"
    assert (warned[0]["node"], warned[0]["operation"]) == ("n0", "create")


async def test_a_module_that_is_not_allowed_is_refused_naming_the_option(connector: Connector) -> None:
    # The in-process server here serves no user modules; the request names the fixture's module.
    req = request("user_marker.json", inputs(path="/tmp/x"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await connector.create(req)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "sensor module 'mysensors.markers' is not allowed on this connector; the operator allows a "
        "module's flytekit sensors with --sensor-modules (SENSOR_CONNECTOR_SENSOR_MODULES, chart value "
        "sensorModules)."
    )
    assert "mysensors" not in sys.modules and "mysensors.markers" not in sys.modules


def test_a_module_that_fails_to_import_is_logged_and_the_rest_keeps_serving(
    served: Served, tmp_path: Path
) -> None:
    records = log_records(served.process)
    failed = [r for r in records if "mysensors.broken" in str(r.get("message")) and "import" in str(r)]
    assert failed and "No module named 'mysensors_vendor_sdk'" in str(failed[0]["message"])
    req = request("user_marker.json", inputs(path="x"))
    req.template.custom["sensor_module"] = "mysensors.broken"
    req.template.custom["sensor_name"] = "VendorSensor"
    with pytest.raises(grpc.RpcError) as info:
        served.create(req)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "sensor module 'mysensors.broken' is allowed by --sensor-modules but failed to import at start-up "
        "(ModuleNotFoundError: No module named 'mysensors_vendor_sdk'); fix the connector's image and "
        "restart it."
    )
    (tmp_path / "x").touch()
    meta = served.create(file_sensor_request(str(tmp_path / "x")))
    assert served.get(meta).phase == Phase.SUCCEEDED
    meta = served.create(request("user_marker.json", inputs(path=str(tmp_path / "x"))))
    assert served.get(meta).phase == Phase.SUCCEEDED


def test_a_class_the_allowed_module_does_not_define_is_not_found(served: Served) -> None:
    req = request("user_marker.json", inputs(path="x"))
    req.template.custom["sensor_name"] = "os"  # imported by the module, not defined there
    with pytest.raises(grpc.RpcError) as info:
        served.create(req)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details().startswith(
        "sensor module 'mysensors.markers' defines no BaseSensor subclass named 'os'; it defines GoneSensor"
    )


def test_any_replica_with_the_key_answers_and_tampering_fails(
    served: Served, user_site: Path, key_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "x").touch()
    meta = served.create(request("user_marker.json", inputs(path=str(tmp_path / "x"))))
    other = serve_user_sensors(user_site, key_file)
    try:
        other_served = Served(other.process, other.metrics_port)
        assert other_served.get(meta).phase == Phase.SUCCEEDED
        tampered = meta.replace(str(tmp_path).encode(), str(tmp_path).upper().encode())
        assert other_served.get(tampered).phase == Phase.FAILED
    finally:
        other.process.stop()


def env_with_site(site: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(site)}


def test_the_sensors_command_lists_user_sensors(user_site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "sensors", "--json", "--sensor-modules", MODULES],
        cwd=ROOT, env=env_with_site(user_site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    marker = next(s for s in data["sensors"] if s["name"] == MARKER)
    assert marker["inputs"] == [{"name": "path", "type": "str"}]
    assert marker["summary"] == "Waits until a marker file (path + suffix) exists."
    assert {"name": "mysensors.broken", "reason": "sensor module failed to import: ModuleNotFoundError: "
            "No module named 'mysensors_vendor_sdk'"} in data["unavailable"]  # fmt: skip


def test_try_runs_a_user_sensor(served: Served, user_site: Path, tmp_path: Path) -> None:
    (tmp_path / "x").touch()
    base = [sys.executable, "-m", "connector.cli", "try", f"127.0.0.1:{served.process.port}", MARKER]
    options = ["--interval", "0.2", "--timeout", "30", "--sensor-modules", "mysensors.markers"]
    done = subprocess.run(
        [*base, "--input", f"path={tmp_path / 'x'}", *options],
        cwd=ROOT, env=env_with_site(user_site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED" in done.stdout + done.stderr
    # Typed from the module where `try` runs: a wrong input name is a usage error before any call.
    wrong = subprocess.run(
        [*base, "--input", "table=sales", *options],
        cwd=ROOT, env=env_with_site(user_site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert wrong.stderr == f"sensor-connector try: {MARKER} takes no input table; it takes path.\n"


def test_an_async_poke_that_never_returns_is_cancelled_and_frees_its_slot(
    user_site: Path, key_file: Path
) -> None:
    up = serve_user_sensors(
        user_site, key_file, "--poke-timeout", "1", "--user-pokes-per-sensor", "1", "--max-staleness", "0"
    )
    try:
        served = Served(up.process, up.metrics_port)
        meta = served.create(request("user_stuck.json", inputs(path="x")))
        answers = [served.get(meta).message for _ in range(3)]
        # Each poke awaits forever, runs out of its budget and is cancelled at its `await`: the class's
        # one slot comes back, so later Gets poke again rather than being told every slot is held.
        assert answers[0] == answers[2] == "the poke ran out of its 1s budget; will poke again."
        stuck = (("sensor", "mysensors.markers.StuckSensor"),)
        assert scrape(up.metrics_port)[("flyte_sensor_connector_user_pokes_abandoned_total", stuck)] >= 2
    finally:
        up.process.stop()


# -- Flyte 2 (flyteidl2.connector), through the same server ----------------------------------------------


def v2_inputs(values: literals_pb2.LiteralMap) -> common_pb2.Inputs:
    """Inputs as Flyte 2's connector plugin sends them: one named literal per input, in no set order."""
    return common_pb2.Inputs(
        literals=[
            common_pb2.NamedLiteral(name=name, value=literals_v2.Literal.FromString(lit.SerializeToString()))
            for name, lit in sorted(values.literals.items(), reverse=True)
        ]
    )


class OverFlyte2:
    """Calls to a Served connector as Flyte 2's connector plugin makes them, through flyteidl2's stubs."""

    def __init__(self, served: Served) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{served.process.port}")
        self.stub = service_pb2_grpc.AsyncConnectorServiceStub(self.channel)

    def create_request(self, vector: str, values: literals_pb2.LiteralMap) -> connector_pb2.CreateTaskRequest:
        """A stock-flytekit template as Flyte 2's executor holds it, with an execution to name in logs."""
        v1 = request(vector, values, run="run-21")
        return connector_pb2.CreateTaskRequest(
            template=tasks_v2.TaskTemplate.FromString(v1.template.SerializeToString()),
            inputs=v2_inputs(values),
            output_prefix="s3://bucket/out",
            task_execution_metadata=connector_pb2.TaskExecutionMetadata.FromString(
                v1.task_execution_metadata.SerializeToString()
            ),
            connection=security_pb2.Connection(task_type="sensor"),
        )

    def create(self, vector: str, values: literals_pb2.LiteralMap) -> bytes:
        return bytes(self.stub.CreateTask(self.create_request(vector, values), timeout=10).resource_meta)

    def raw_get(self, meta: bytes) -> bytes:
        """The GetTask answer's bytes as they came over the wire."""
        call = self.channel.unary_unary(
            "/flyteidl2.connector.AsyncConnectorService/GetTask",
            request_serializer=connector_pb2.GetTaskRequest.SerializeToString,
            response_deserializer=None,
        )
        category = connector_pb2.TaskCategory(name="sensor", version=0)
        answer: bytes = call(
            connector_pb2.GetTaskRequest(task_category=category, resource_meta=meta), timeout=10
        )
        return answer

    def get(self, meta: bytes) -> connector_pb2.Resource:
        return connector_pb2.GetTaskResponse.FromString(self.raw_get(meta)).resource

    def until(self, meta: bytes, phase: int, within: float = 15) -> connector_pb2.Resource:
        """Get, as Flyte 2's plugin polls, until the phase is `phase` (failing on another final phase)."""
        return poll_until(self.get, meta, phase, within)


@pytest.fixture
def flyte2(served: Served) -> Iterator[OverFlyte2]:
    client = OverFlyte2(served)
    yield client
    client.channel.close()


def test_a_user_sensor_runs_then_succeeds_over_flyte2(
    served: Served, flyte2: OverFlyte2, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    meta = flyte2.create("user_marker.json", inputs(path=str(marker)))
    waiting = flyte2.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == f"{MARKER}.poke answered False; will poke again."
    info = json_format.MessageToDict(waiting.custom_info)
    assert info["sensor"] == MARKER and info["awaiting"] == {"path": str(marker)}
    # Flyte 2's executor has no timeout of its own: the connector's default deadline is the task's.
    deadline = dt.datetime.fromisoformat(info["policy"]["deadline"].replace("Z", "+00:00"))
    assert deadline - dt.datetime.fromisoformat(info["created_at"]) == dt.timedelta(days=1)
    marker.touch()
    done = flyte2.until(meta, Phase.SUCCEEDED)
    assert done.message == f"{MARKER}.poke answered True."
    assert not done.HasField("outputs"), "the template declares no outputs"
    created = [
        r for r in log_records(served.process) if r.get("operation") == "create" and r.get("sensor") == MARKER
    ]
    assert (
        created[-1]["execution"] == "flytesnacks/development/run-21" and created[-1]["protocol"] == "flyte2"
    )


def test_a_user_sensor_created_over_one_protocol_is_answered_over_the_other(
    served: Served, flyte2: OverFlyte2, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    from_flyte1 = served.create(request("user_marker.json", inputs(path=str(one))))
    from_flyte2 = flyte2.create("user_marker.json", inputs(path=str(two)))
    assert flyte2.get(from_flyte1).phase == Phase.RUNNING
    assert served.get(from_flyte2).phase == Phase.RUNNING
    one.touch()
    two.touch()
    assert flyte2.until(from_flyte1, Phase.SUCCEEDED).message == f"{MARKER}.poke answered True."
    assert served.until(from_flyte2, Phase.SUCCEEDED).message == f"{MARKER}.poke answered True."


def test_over_flyte2_the_class_gets_its_sensor_config_as_the_template_has_it(
    flyte2: OverFlyte2, tmp_path: Path
) -> None:
    # SuffixConfig.from_dict is cls(**d): a key its author never wrote (such as the deadline the connector
    # gives Flyte 2 tasks) would make every poke raise TypeError.
    path = tmp_path / "ready"
    meta = flyte2.create("user_suffix.json", inputs(path=str(path)))
    path.touch()  # the config says to wait for `ready.done`
    waiting = flyte2.get(meta)
    assert waiting.phase == Phase.RUNNING
    assert waiting.message == "mysensors.markers.SuffixSensor.poke answered False; will poke again."
    assert "deadline" in json_format.MessageToDict(waiting.custom_info)["policy"]
    (tmp_path / "ready.done").touch()
    flyte2.until(meta, Phase.SUCCEEDED)


def test_inputs_arrive_as_the_types_poke_declares_over_flyte2(flyte2: OverFlyte2, tmp_path: Path) -> None:
    after = dt.datetime(2026, 11, 24, 6, 30, tzinfo=dt.UTC)
    meta = flyte2.create("user_partition.json", partition_inputs(tmp_path, after))
    waiting = flyte2.get(meta)
    assert waiting.phase == Phase.RUNNING and "poke answered False" in waiting.message, waiting.message
    (tmp_path / "sales-24-3-202611240630-a+b-3").touch()
    flyte2.until(meta, Phase.SUCCEEDED)


def test_user_code_failures_over_flyte2_are_phases(flyte2: OverFlyte2, tmp_path: Path) -> None:
    path = tmp_path / "service"
    raising = flyte2.create("user_table.json", inputs(path=str(path)))
    for _ in range(2):  # every Get pokes again: a RUNNING phase each time, never an RPC error
        waiting = flyte2.get(raising)
        assert waiting.phase == Phase.RUNNING
        assert waiting.message == (
            f"mysensors.markers.TableSensor poke raised ConnectionError: table service for {path} is "
            "unreachable; will poke again."
        )
    # PermanentError: FAILED at once, in words flyteidl2 carries (its Resource has no agent_error).
    raw = flyte2.raw_get(flyte2.create("user_gone.json", inputs(path="sales")))
    failed = connector_pb2.GetTaskResponse.FromString(raw).resource
    assert failed.phase == Phase.FAILED
    assert failed.message == "mysensors.markers.GoneSensor: table sales was dropped"
    assert not agent_pb2.GetTaskResponse.FromString(raw).resource.HasField("agent_error")


def test_modules_that_cannot_serve_are_refused_over_flyte2_naming_why(flyte2: OverFlyte2) -> None:
    # Flyte 2's plugin turns any Create error into a retryable failure whose message carries these words.
    with pytest.raises(grpc.RpcError) as info:
        flyte2.create("user_sensor.json", inputs(table="sales"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "sensor module 'tests.vectors.user_sensors' is not allowed on this connector; the operator allows a "
        "module's flytekit sensors with --sensor-modules (SENSOR_CONNECTOR_SENSOR_MODULES, chart value "
        "sensorModules)."
    )
    broken = flyte2.create_request("user_marker.json", inputs(path="x"))
    broken.template.custom["sensor_module"] = "mysensors.broken"
    broken.template.custom["sensor_name"] = "VendorSensor"
    with pytest.raises(grpc.RpcError) as info:
        flyte2.stub.CreateTask(broken, timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details().startswith(
        "sensor module 'mysensors.broken' is allowed by --sensor-modules but"
    )
