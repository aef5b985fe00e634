"""SQLAlchemy and aiohttp are imported by the first poke that needs them, never at start-up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from flyteidl.core import execution_pb2

from sensors import http, lazy
from sensors.flytekit import HttpSensor, SqlSensor
from sensors.registry import Builtin, load_registry

from .catalog import request_for
from .conftest import ROOT
from .httpserver import Answer, serve

#: Starts processes: left out of the fast tier (`python3 dev.py check --fast`).
pytestmark = pytest.mark.slow

Phase = execution_pb2.TaskExecution.Phase


def test_an_idle_server_has_not_imported_them_and_first_uses_work(tmp_path: Path, key_file: Path) -> None:
    db = tmp_path / "ready.db"
    policy = tmp_path / "secret-policy.yaml"
    policy.write_text("ready-db: {}\n")
    env = {
        **os.environ,
        "SENSOR_CONNECTOR_SECRET_POLICY": str(policy),
        "SENSOR_CONNECTOR_SECRET_READY_DB": f"sqlite:///{db}",
        http.ALLOW_HOSTS_ENV: "127.0.0.1",
    }
    sql = tmp_path / "sql.pb"
    sql.write_bytes(
        request_for(
            SqlSensor(name="rows", connection_secret="ready-db"), query="select 1"
        ).SerializeToString()
    )
    with serve() as web:
        web.routes["/ready"] = Answer(200, b"ok")
        get = tmp_path / "http.pb"
        get.write_bytes(request_for(HttpSensor(name="up"), url=web.url("/ready")).SerializeToString())
        probe = [
            sys.executable,
            "-m",
            "tests.lazy_probe",
            str(key_file),
            str(tmp_path / "state"),
            str(sql),
            str(get),
        ]
        done = subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["idle"] == []
    assert report["answers"] == [
        [Phase.SUCCEEDED, "the query's first value is true."],
        [Phase.SUCCEEDED, f"{web.url('/ready')} answered 200."],
    ]
    assert report["after"] == ["sqlalchemy", "aiohttp", "sensors.http_client"]


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, SimpleNamespace]:
    """A module whose import counts itself, says it started, then waits until the test releases it."""
    name = f"slow_{uuid.uuid4().hex}"
    gate = SimpleNamespace(started=threading.Event(), release=threading.Event(), runs=0)
    monkeypatch.setitem(sys.modules, f"{name}_gate", gate)
    (tmp_path / f"{name}.py").write_text(
        f"import {name}_gate as gate\ngate.runs += 1\ngate.started.set()\ngate.release.wait(30)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, gate


async def test_first_uses_share_one_import_made_off_the_event_loop(
    slow_module: tuple[str, SimpleNamespace],
) -> None:
    name, gate = slow_module
    first = asyncio.ensure_future(lazy.load(name))
    second = asyncio.ensure_future(lazy.load(name))
    # The loop keeps running other work while the import is under way.
    assert await asyncio.to_thread(gate.started.wait, 30)
    assert lazy.loaded(name) is None
    assert not first.done() and not second.done()
    # A waiter that gives up (a poke timeout) does not cancel the import for the others.
    first.cancel()
    gate.release.set()
    module = await second
    assert module.__name__ == name and gate.runs == 1
    assert lazy.loaded(name) is module
    assert await lazy.load(name) is module


async def test_a_failed_import_fails_every_use_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('no native library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    errors = []
    for _ in range(2):
        with pytest.raises(ImportError, match="no native library") as info:
            await lazy.load(name)
        errors.append(info.value)
    # Each use gets its own exception, so a poke that fails forever does not grow one traceback.
    assert errors[0] is not errors[1]
    assert lazy.loaded(name) is None


def test_a_missing_package_is_found_without_importing_and_says_what_to_install() -> None:
    builtin = Builtin("sensors.sql:SqlSensor", "SqlSensor needs SQLAlchemy; install it.", ("no_such_pkg_zz",))
    registry = load_registry([builtin], plugins=False)
    assert registry.unavailable == {"SqlSensor": "SqlSensor needs SQLAlchemy; install it."}
    assert "no_such_pkg_zz" not in sys.modules
    assert lazy.installed("sqlalchemy") and not lazy.installed("no_such_pkg_zz")


async def test_a_made_up_protocol_fails_without_starting_an_import() -> None:
    from sensors.base import PermanentError
    from sensors.store import Store

    store = Store()
    before = dict(lazy._imports)
    for n in range(3):
        with pytest.raises(PermanentError, match=f"unknown protocol 'zz{n}'"):
            await store.info(f"zz{n}://bucket/key")
    assert lazy._imports == before
