"""The authoring package for task images: flytekitplugins-sensor-connector, built from this repository.

A workflow module that declares catalog sensors is imported by every task pod of the workflow, so the
task image needs the authoring classes, and nothing named `connector` or `sensors` (folders many
workflow repositories have). This test builds the plugin wheel, installs it with flytekit alone into a
fresh virtualenv (flytekit at the version this project's venv has, so pip takes it from its cache),
and there:

- runs a regular task of a module that declares catalog sensors with `pyflyte-execute`, as a task pod
  would, and reads its outputs;
- finds that `connector` and `sensors` cannot be imported;
- serializes the module's sensor, which the real connector (this process) then serves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import zipfile
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2
from google.protobuf import json_format

from .conftest import ROOT, Connector, inputs, plugin_venv

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase

#: Bounds for the steps that run pip (network-free when pip's cache has the wheels).
PIP_TIMEOUT = 600

WORKFLOW = textwrap.dedent(
    '''
    """A workflow module as an author writes it: catalog sensors and a regular task side by side."""
    from pathlib import Path

    from flytekit import task, workflow
    from flytekitplugins.sensor_connector import FileSensor, GlobSensor

    wait_for_file = FileSensor(name="wait_for_file", min_size=1)
    wait_for_parts = GlobSensor(name="wait_for_parts", min_count=2)


    @task
    def count_lines(path: str) -> int:
        return len(Path(path).read_text().splitlines())


    @workflow
    def wf(path: str) -> int:
        return wait_for_file(path=path) >> count_lines(path=path)
    '''
)

RUN_TASK = textwrap.dedent(
    """
    # In the task image's venv: write the inputs propeller would, run pyflyte-execute, read the outputs.
    import json, subprocess, sys
    from pathlib import Path
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flyteidl.core import literals_pb2

    work, data = Path(sys.argv[1]), sys.argv[2]
    ctx = FlyteContextManager.current_context()
    lm = TypeEngine.dict_to_literal_map(ctx, {"path": data}, {"path": str})
    (work / "inputs.pb").write_bytes(lm.to_flyte_idl().SerializeToString())
    cmd = [
        str(Path(sys.executable).parent / "pyflyte-execute"),
        "--inputs", str(work / "inputs.pb"),
        "--output-prefix", str(work / "out"),
        "--raw-output-data-prefix", str(work / "raw"),
        "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
        "--", "task-module", "workflow_module", "task-name", "count_lines",
    ]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"pyflyte-execute failed ({done.returncode}):\\n{done.stdout}\\n{done.stderr}")
    out = literals_pb2.LiteralMap()
    out.ParseFromString((work / "out" / "outputs.pb").read_bytes())
    print(json.dumps({"o0": out.literals["o0"].scalar.primitive.integer}))
    """
)

SERIALIZE = textwrap.dedent(
    """
    # In the task image's venv: the template `pyflyte register` would send for the module's sensor.
    import sys
    from collections import OrderedDict
    from google.protobuf import json_format
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable
    import workflow_module

    image = Image(name="default", fqn="cr.flyte.org/flyteorg/flytekit", tag="task-image")
    settings = SerializationSettings(
        project="p", domain="d", version="v1", image_config=ImageConfig(default_image=image, images=[image])
    )
    entity = get_serializable(OrderedDict(), settings, workflow_module.wait_for_file)
    print(json_format.MessageToJson(entity.template.to_flyte_idl()))
    """
)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `cmd`, failing the test with its output if it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False, **kwargs)
    assert done.returncode == 0, f"{cmd[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def pins() -> list[str]:
    """This venv's versions as pip constraints, so the fresh venv resolves to wheels pip has cached."""
    own = {"flyte-sensor-connector", "flytekitplugins-sensor-connector"}
    out = []
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in own and dist.read_text("direct_url.json") is None:
            out.append(f"{name}=={dist.version}")
    return sorted(set(out))


@pytest.fixture(scope="module")
def task_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv with only flytekit and the plugin wheel, and a work dir holding the workflow."""
    base = tmp_path_factory.mktemp("task-image")
    constraints = base / "constraints.txt"
    constraints.write_text("\n".join(pins()) + "\n")
    flytekit = f"flytekit=={version('flytekit')}"
    python, wheel = plugin_venv(base, "flytekit", [flytekit], constraints=constraints, timeout=PIP_TIMEOUT)
    work = base / "work"
    work.mkdir()
    (work / "workflow_module.py").write_text(WORKFLOW)
    return {"python": python, "work": work, "wheel": wheel}


def test_the_wheel_holds_only_flytekitplugins_sensor_connector(task_image: dict[str, Path]) -> None:
    with zipfile.ZipFile(task_image["wheel"]) as wheel:
        names = wheel.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"flytekitplugins"}
    modules = {n.removeprefix("flytekitplugins/sensor_connector/") for n in names if n.endswith(".py")}
    # Every module of sensors/ but the connector's catalog loader (a new one must be mapped in
    # plugins/flytekit/pyproject.toml, or the authoring classes fail to import in task images).
    wanted = {p.name for p in (ROOT / "sensors").glob("*.py")} - {"registry.py"}
    assert wanted <= modules, f"not in the wheel: {sorted(wanted - modules)}"
    assert "registry.py" not in modules  # the connector's catalog loader stays out
    # The package's modules are this repository's sensors/*.py, byte for byte (built, not copied).
    with zipfile.ZipFile(task_image["wheel"]) as wheel:
        built = wheel.read("flytekitplugins/sensor_connector/flytekit.py")
    assert built == (ROOT / "sensors" / "flytekit.py").read_bytes()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_a_task_of_a_module_declaring_catalog_sensors_runs_with_pyflyte_execute(
    task_image: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\nb\nc\n")
    (tmp_path / "run_task.py").write_text(RUN_TASK)
    shutil.copy(task_image["work"] / "workflow_module.py", tmp_path / "workflow_module.py")
    done = run([str(task_image["python"]), str(tmp_path / "run_task.py"), str(tmp_path), str(data)],
               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"o0": 3}


@pytest.mark.parametrize("package", ["connector", "sensors"])
def test_the_task_image_has_no_connector_or_sensors_package(
    task_image: dict[str, Path], package: str
) -> None:
    done = subprocess.run(
        [str(task_image["python"]), "-c", f"import {package}"],
        cwd=task_image["work"],
        # The image's environment, not the test runner's (a PYTHONPATH there would reach this checkout).
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"No module named '{package}'" in done.stderr


async def test_the_connector_serves_a_sensor_serialized_in_the_task_image(
    task_image: dict[str, Path], connector: Connector, tmp_path: Path
) -> None:
    (tmp_path / "serialize.py").write_text(SERIALIZE)
    done = run([str(task_image["python"]), str(tmp_path / "serialize.py")], cwd=task_image["work"],
               env={**os.environ, "PYTHONPATH": str(task_image["work"])})  # fmt: skip
    template = json_format.Parse(done.stdout, tasks_pb2.TaskTemplate())
    custom = json_format.MessageToDict(template.custom)
    assert custom["sensor_module"] == "flytekitplugins.sensor_connector.flytekit"
    assert custom["sensor_name"] == "FileSensor"
    target = tmp_path / "landed"
    request = agent_pb2.CreateTaskRequest(template=template, inputs=inputs(path=str(target)))
    meta = await connector.create(request)
    assert (await connector.get(meta)).phase == Phase.RUNNING
    target.write_text("x")  # min_size=1 from the declaration
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED
