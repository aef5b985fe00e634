"""`sensor-connector sensors` and `sensor-connector try`, run as a user runs them."""

from __future__ import annotations

import datetime as dt
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.client.trycmd import Progress, TryOptions, UsageError, build_request, convert
from sensors.registry import load_registry

from .conftest import ROOT, free_port, load_template, scrape, spawn


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `sensor-connector ARGS` to completion."""
    cmd = [sys.executable, "-m", "connector.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)


class Running:
    """A `sensor-connector try` child whose output is read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "connector.cli", "try", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Block until a line containing `text` is printed; fail if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"try exited before printing {text!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"try did not print {text!r} in {timeout}s:\n{''.join(self.lines)}")

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit and collect every remaining line."""
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return code


@dataclass
class Served:
    """A `sensor-connector serve` child and the port of its metrics endpoint."""

    port: int
    metrics_port: int


@pytest.fixture
def server(key_file: Path) -> Iterator[Served]:
    """`sensor-connector serve` as the README runs it, with a metrics port to observe it by."""
    metrics_port = free_port()
    proc = spawn("--signing-key-file", str(key_file), "--metrics-port", str(metrics_port))
    yield Served(proc.port, metrics_port)
    assert proc.stop() == 0


def requests(metrics_port: int, operation: str) -> float:
    figures = scrape(metrics_port)
    key = ("flyte_connector_requests_success_total", (("operation", operation), ("task_type", "sensor")))
    return figures.get(key, 0.0)


@pytest.mark.slow
def test_sensors_prints_a_table_of_inputs_config_outputs_and_categories() -> None:
    done = cli("sensors")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["SENSOR", "INPUTS", "CONFIG", "(type", "=", "default)", "OUTPUTS", "SERVES"]
    first = ["FileSensor", "path:", "str", "min_size:", "int", "|", "None", "=", "None", "-", "sensor", "v0"]
    assert rows[0].split() == first
    assert rows[1].split() == ["min_age:", "float", "|", "None", "=", "None"]
    assert any(r.startswith("FileSensor: Waits until a file") for r in rows)


@pytest.mark.slow
def test_sensors_json_is_for_scripts() -> None:
    done = cli("sensors", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    [file_sensor] = [s for s in data["sensors"] if s["name"] == "FileSensor"]
    assert file_sensor["inputs"] == [{"name": "path", "type": "str"}]
    assert file_sensor["config"] == [
        {"name": "min_size", "type": "int | None", "required": False, "default": None},
        {"name": "min_age", "type": "float | None", "required": False, "default": None},
    ]
    assert file_sensor["outputs"] == []
    assert file_sensor["task_categories"] == [{"name": "sensor", "version": 0}]
    assert "flytekit.sensor.file_sensor.FileSensor" in file_sensor["aliases"]


def test_try_builds_the_template_stock_flytekit_serializes() -> None:
    request = build_request(load_registry(), TryOptions("unused:1", "FileSensor", ["path=/data/x"]))
    flytekit = load_template("file_sensor.json")
    assert request.template.type == flytekit.type and request.template.task_type_version == 0
    assert request.template.custom == flytekit.custom
    assert request.template.interface == flytekit.interface
    assert request.inputs.literals["path"].scalar.primitive.string_value == "/data/x"


def test_try_converts_strings_to_the_declared_types() -> None:
    assert convert("42", int, "x") == 42
    assert convert("off", bool, "x") is False
    assert convert("2.5", float | None, "x") == 2.5
    assert convert("none", float | None, "x") is None
    assert convert("90", dt.timedelta, "x") == dt.timedelta(seconds=90)
    assert convert("2026-11-24T10:00:00", dt.datetime, "x") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    assert convert("a, b", list[str], "x") == ["a", "b"]
    with pytest.raises(UsageError, match="input 'n' must be int, not 'ten'"):
        convert("ten", int, "input 'n'")


@pytest.mark.slow
def test_try_sees_running_then_succeeded_and_exits_0(server: Served, tmp_path: Path) -> None:
    target = tmp_path / "landing" / "data.csv"
    run = Running(f"127.0.0.1:{server.port}", "FileSensor", "--input", f"path={target}", "--interval", "0.2")
    running = run.wait_for("RUNNING")
    assert f"{target} does not exist yet." in running
    target.parent.mkdir()
    target.write_text("a,b\n")
    assert run.finish() == 0, "".join(run.lines)
    assert run.lines[-1] == f"SUCCEEDED: {target} exists.\n"
    assert requests(server.metrics_port, "delete") == 0


@pytest.mark.slow
def test_try_ctrl_c_sends_delete_and_exits_130(server: Served, tmp_path: Path) -> None:
    run = Running(
        f"127.0.0.1:{server.port}", "FileSensor", "-i", f"path={tmp_path / 'never'}", "--interval", "0.2"
    )
    run.wait_for("RUNNING")
    assert requests(server.metrics_port, "delete") == 0
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, "".join(run.lines)
    assert run.lines[-1] == "interrupted; sent DeleteTask.\n"
    assert requests(server.metrics_port, "delete") == 1


@pytest.mark.slow
def test_try_timeout_sends_delete_and_exits_1(server: Served, tmp_path: Path) -> None:
    args = ("-i", f"path={tmp_path / 'never'}", "--interval", "0.1", "--timeout", "0.5")
    run = Running(f"127.0.0.1:{server.port}", "FileSensor", *args)
    assert run.finish() == 1, "".join(run.lines)
    assert run.lines[-1] == "still RUNNING after the 0.5s timeout; sent DeleteTask.\n"
    assert requests(server.metrics_port, "delete") == 1


@pytest.mark.slow
def test_try_exits_1_when_the_sensor_fails(server: Served) -> None:
    run = Running(f"127.0.0.1:{server.port}", "FileSensor", "-i", "path=nosuchproto://bucket/key")
    assert run.finish() == 1, "".join(run.lines)
    assert run.lines[-1] == "FAILED: nosuchproto://bucket/key: unknown protocol 'nosuchproto'.\n"


@pytest.mark.slow
def test_try_says_clearly_when_no_connector_answers() -> None:
    done = cli("try", f"127.0.0.1:{free_port()}", "FileSensor", "-i", "path=/x")
    assert done.returncode == 1
    assert done.stderr.startswith("sensor-connector try: cannot reach a connector at 127.0.0.1:")
    assert done.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "nope=1"], "FileSensor takes no input nope; it takes path."),
        ([], "FileSensor needs input path and the request does not give it."),
        (["-i", "path=/x", "-c", "min_size=big"], "config 'min_size' must be int, not 'big'."),
        (
            ["-i", "path=/x", "-c", "color=red"],
            "FileSensor config has no field color; it takes min_size, min_age.",
        ),
        (["-i", "path"], "--input 'path' must look like name=value."),
        (["-i", "path=/x", "--interval", "0"], "--interval must be more than 0 seconds."),
    ],
)
def test_try_usage_errors_exit_2_with_one_sentence(args: list[str], message: str) -> None:
    done = cli("try", f"127.0.0.1:{free_port()}", "FileSensor", *args)
    assert done.returncode == 2
    assert done.stderr == f"sensor-connector try: {message}\n"


@pytest.mark.slow
def test_try_rejected_by_the_connector_exits_2(server: Served) -> None:
    done = cli("try", f"127.0.0.1:{server.port}", "NoSuchSensor", "-i", "x=1")
    assert done.returncode == 2
    assert done.stderr.startswith("sensor-connector try: the connector refused the task (NOT_FOUND): ")
    assert "'NoSuchSensor'" in done.stderr


async def test_progress_on_a_terminal_is_one_updating_line_with_a_spinner() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.show("RUNNING", "waiting for /x")
    progress.tick()
    progress.show("RUNNING", "waiting for /x")
    progress.done("SUCCEEDED: /x exists.")
    frames = out.getvalue().split("\r\x1b[K")
    assert frames[0] == "" and "\n" not in "".join(frames[:-1])
    spinners = [frame[0] for frame in frames[1:-1]]
    assert len(spinners) == 3 and len(set(spinners)) == 3
    assert all("RUNNING   waiting for /x" in frame for frame in frames[1:-1])
    assert frames[-1] == "SUCCEEDED: /x exists.\n"


async def test_progress_elsewhere_prints_a_plain_line_per_change() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=False)
    progress.show("RUNNING", "waiting")
    progress.show("RUNNING", "waiting")
    progress.tick()
    progress.show("RUNNING", "5 bytes, waiting for 10")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].endswith("RUNNING   waiting") and lines[1].endswith("RUNNING   5 bytes, waiting for 10")
