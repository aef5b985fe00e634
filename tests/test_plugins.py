"""Third-party sensors: a real package (tests/fixtures/plugin_pkg) installed with pip from local files,
found through the `flyte_sensor_connector.sensors` entry points and served by the real server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from .catalog import request_for, template_of
from .conftest import ROOT, Connector, installed_fixture

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase
FIXTURE = ROOT / "tests" / "fixtures" / "plugin_pkg"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture package pip-installed (offline, no build isolation) into a directory of its own."""
    target = installed_fixture(tmp_path_factory, "plugin_pkg")
    assert list(target.glob("fsc_plugin_fixture-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def plugin_installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The installed plugin on sys.path, as if in site-packages, for this test only."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield
    for name in [m for m in sys.modules if m == "plugin_pkg" or m.startswith("plugin_pkg.")]:
        del sys.modules[name]


async def test_a_plugin_sensor_is_served_through_its_entry_point(
    plugin_installed: None, make_connector, tmp_path: Path
) -> None:
    from plugin_pkg.authoring import LineCountSensor

    server = await make_connector()
    assert "LineCountSensor" in [cls.name for cls in server.sensors]
    target = tmp_path / "log.txt"
    task = LineCountSensor(name="wait_lines", min_lines=2, outputs=True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        meta = await connector.create(request_for(task, path=str(target)))
        assert (await connector.get(meta)).message == f"{target} does not exist yet."
        target.write_text("one\n")
        waiting = await connector.get(meta)
        assert waiting.phase == Phase.RUNNING and "has 1 line(s), waiting for 2" in waiting.message
        target.write_text("one\ntwo\n")
        done = await connector.get(meta)
        assert done.phase == Phase.SUCCEEDED
        assert done.outputs.literals["lines"].scalar.primitive.integer == 2


def test_the_plugin_authoring_class_runs_locally(plugin_installed: None, tmp_path: Path) -> None:
    from plugin_pkg.authoring import LineCountSensor

    (tmp_path / "log.txt").write_text("a\nb\nc\n")
    assert LineCountSensor(name="lines", min_lines=3, outputs=True)(path=str(tmp_path / "log.txt")) == 3


async def test_a_plugin_that_cannot_import_gives_a_clear_failed_precondition(
    plugin_installed: None, make_connector, tmp_path: Path
) -> None:
    from plugin_pkg.authoring import LineCountSensor

    server = await make_connector()
    assert "BrokenSensor" in server.sensors.unavailable
    template = template_of(LineCountSensor(name="x"))
    template.custom["sensor_module"] = "plugin_pkg.broken_authoring"
    template.custom["sensor_name"] = "BrokenSensor"
    request = agent_pb2.CreateTaskRequest(template=template)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await Connector(server, channel).create(request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "BrokenSensor (from plugin_pkg.broken:BrokenSensor) needs a package that is not installed: "
        "fsc_dependency_that_is_not_installed."
    )
    assert "plugin_pkg.broken_authoring" not in sys.modules
