"""The Flyte 2 authoring package (flyteplugins-sensor-connector), built from this repository, with flyte.

The test builds the plugin wheel and installs it with `flyte` 2.12.1 (the version this project is
checked against) into a fresh virtualenv, without flytekit, and there:

- runs examples/flyte2_file_sensor.py with `flyte.run` in local mode: the sensor pokes in-process through
  the package's AsyncConnector until the file lands, then the workflow finishes;
- serializes a GlobSensor task with the SDK, as `flyte deploy` would, and the real connector (this
  process) serves that template over flyteidl2, outputs included.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import subprocess
import textwrap
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl2.task import common_pb2

from .conftest import ROOT, Clock, Connector, engine_of, plugin_venv

pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase
FLYTE = "flyte[connector]==2.12.1"
#: Bounds for the steps that run pip (network-free when pip's cache has the wheels).
PIP_TIMEOUT = 900
#: Bound for the example's whole run, once its file has landed.
RUN_TIMEOUT = 120

SERIALIZE = textwrap.dedent(
    """
    # In the plugin's venv: the TaskTemplate the SDK makes of a GlobSensor task, as deploying it would.
    import pathlib, sys
    import flyte
    from flyte._internal.runtime.task_serde import get_proto_task
    from flyte.models import SerializationContext
    from flyteplugins.sensor_connector import GlobSensor

    wait = GlobSensor(name="wait_parts", min_count=2, marker="_SUCCESS", outputs=True, poke_interval=1)
    flyte.TaskEnvironment.from_task("sensors", wait)
    context = SerializationContext(project="p", domain="d", version="v1", root_dir=pathlib.Path.cwd())
    sys.stdout.buffer.write(get_proto_task(wait, context).SerializeToString())
    """
)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(cmd, capture_output=True, timeout=PIP_TIMEOUT, check=False, **kwargs)
    assert done.returncode == 0, f"{cmd[:4]} failed ({done.returncode}):\n{done.stdout!r}\n{done.stderr!r}"
    return done


@pytest.fixture(scope="module")
def flyte2_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv with only the flyte SDK and the plugin wheel."""
    base = tmp_path_factory.mktemp("flyte2-plugin")
    python, wheel = plugin_venv(base, "flyte2", [FLYTE], timeout=PIP_TIMEOUT)
    return {"python": python, "wheel": wheel, "base": base}


def clean_env(**extra: str) -> dict[str, str]:
    """The venv's environment, not the test runner's (a PYTHONPATH would reach this checkout)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def test_the_wheel_holds_only_flyteplugins_sensor_connector(flyte2_env: dict[str, Path]) -> None:
    with zipfile.ZipFile(flyte2_env["wheel"]) as wheel:
        names = wheel.namelist()
        entry_points = next(
            wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
        built = wheel.read("flyteplugins/sensor_connector/file.py")
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"flyteplugins"}
    assert built == (ROOT / "sensors" / "file.py").read_bytes()  # built from sensors/, not copied
    assert "[flyte.connectors]" in entry_points
    assert "sensor = flyteplugins.sensor_connector.flyte2:SensorConnector" in entry_points
    for absent in ("flytekit", "connector", "sensors"):
        done = subprocess.run(
            [str(flyte2_env["python"]), "-c", f"import {absent}"],
            cwd=flyte2_env["base"],
            env=clean_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, f"{absent} is importable in the Flyte 2 venv"


def test_the_example_waits_for_its_file_then_succeeds(flyte2_env: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "landing" / "data.csv"
    # The SDK's own logging at INFO, plain, so the sensor's pokes can be read as they happen.
    env = clean_env(FLYTE_RESET_ROOT_LOGGER="1", LOG_LEVEL="INFO", DISABLE_RICH_LOGGING="1")
    proc = subprocess.Popen(
        [str(flyte2_env["python"]), str(ROOT / "examples" / "flyte2_file_sensor.py"), str(data)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        waiting = f"FileSensor: {data} does not exist yet."
        while not any(waiting in line for line in output):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "the run ended before its sensor poked:\n" + "".join(output)
            output.append(line)
        data.parent.mkdir()
        data.write_text("a\nb\nc\n")
        assert proc.wait(timeout=RUN_TIMEOUT) == 0, "".join(output)
        while (line := lines.get(timeout=10)) is not None:
            output.append(line)
    finally:
        proc.kill()
    text = "".join(output)
    assert f"FileSensor: {data} exists." in text
    assert text.rstrip().endswith("lines: 3"), text[-2000:]


async def test_the_connector_serves_a_template_the_sdk_serialized(
    flyte2_env: dict[str, Path], connector: Connector, tmp_path: Path
) -> None:
    script = tmp_path / "serialize.py"
    script.write_text(SERIALIZE)
    raw = run([str(flyte2_env["python"]), str(script)], cwd=tmp_path, env=clean_env()).stdout
    template = tasks_pb2.TaskTemplate.FromString(raw)
    assert (template.type, template.task_type_version) == ("sensor", 0)

    clock = Clock(dt.datetime.now(dt.UTC))
    engine_of(connector.server).clock = clock
    stub = service_pb2_grpc.AsyncConnectorServiceStub(connector.channel)
    pattern = literals_pb2.Literal(
        scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=f"{tmp_path}/*.parquet"))
    )
    request = connector_pb2.CreateTaskRequest(
        template=template,
        inputs=common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="pattern", value=pattern)]),
    )
    meta = (await stub.CreateTask(request, timeout=10)).resource_meta
    category = connector_pb2.TaskCategory(name="sensor", version=0)
    get = connector_pb2.GetTaskRequest(task_category=category, resource_meta=meta)
    assert (await stub.GetTask(get, timeout=10)).resource.phase == Phase.RUNNING
    for name in ("part-0.parquet", "part-1.parquet", "_SUCCESS"):
        (tmp_path / name).write_bytes(b"")
    clock.advance(1.5)  # the policy's next poke (poke_interval=1) is due
    done = (await stub.GetTask(get, timeout=10)).resource
    assert done.phase == Phase.SUCCEEDED, done
    [paths] = done.outputs.literals
    got = [item.scalar.primitive.string_value for item in paths.value.collection.literals]
    assert (paths.name, got) == ("paths", [f"{tmp_path}/part-0.parquet", f"{tmp_path}/part-1.parquet"])
