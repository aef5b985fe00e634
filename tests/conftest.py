"""Shared fixtures: a real connector on a loopback port, flyteidl stubs, stock-flytekit templates,
and real object-store servers on loopback: moto in server mode for S3, and fake-gcs-server and
Azurite for GCS and Azure Blob (tests/emulators.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import json_format

from connector.config import Config
from connector.engine.registry import TaskCategory
from connector.engine.sensor import SensorEngine
from connector.server import Server

from .countingfs import counting_filesystem
from .emulators import azure, azurite_server, cloud, gcs, gcs_server  # noqa: F401  (fixtures)

VECTORS = Path(__file__).resolve().parent / "vectors"
ROOT = Path(__file__).resolve().parent.parent
SENSOR = agent_pb2.TaskCategory(name="sensor", version=0)


def load_template(name: str) -> tasks_pb2.TaskTemplate:
    """A TaskTemplate that stock flytekit serialized (see tests/vectors/make_vectors.py)."""
    return json_format.Parse((VECTORS / name).read_text(), tasks_pb2.TaskTemplate())


def literal(value: Any) -> literals_pb2.Literal:
    """A Flyte literal for a plain Python value, as flytekit's type engine writes it."""
    if isinstance(value, list):
        return literals_pb2.Literal(
            collection=literals_pb2.LiteralCollection(literals=[literal(v) for v in value])
        )
    prim = literals_pb2.Primitive()
    if isinstance(value, bool):
        prim.boolean = value
    elif isinstance(value, int):
        prim.integer = value
    elif isinstance(value, float):
        prim.float_value = value
    elif isinstance(value, str):
        prim.string_value = value
    else:
        prim.datetime.FromDatetime(value)
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=prim))


def inputs(**values: Any) -> literals_pb2.LiteralMap:
    """A LiteralMap of plain Python values."""
    return literals_pb2.LiteralMap(literals={k: literal(v) for k, v in values.items()})


def file_sensor_request(path: str) -> agent_pb2.CreateTaskRequest:
    """What propeller sends to start a stock flytekit FileSensor waiting for `path`."""
    return agent_pb2.CreateTaskRequest(
        template=load_template("file_sensor.json"), inputs=inputs(path=path), output_prefix="s3://bucket/out"
    )


@dataclass
class Connector:
    """A running connector and stubs to call it as propeller does."""

    server: Server
    channel: grpc.aio.Channel

    @property
    def agent(self) -> agent_pb2_grpc.AsyncAgentServiceStub:
        return agent_pb2_grpc.AsyncAgentServiceStub(self.channel)

    @property
    def metadata(self) -> agent_pb2_grpc.AgentMetadataServiceStub:
        return agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    async def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        response = await self.agent.CreateTask(request, timeout=10)
        return bytes(response.resource_meta)

    async def get(self, meta: bytes) -> agent_pb2.Resource:
        response = await self.agent.GetTask(
            agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta), timeout=10
        )
        return response.resource


class Clock:
    """A sensor engine's clock, moved by the test."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class StoreClock:
    """A Store's clock (seconds), moved by the test: staleness is checked without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def engine_of(server: Server) -> SensorEngine:
    """The server's sensor engine (task category sensor v0)."""
    return cast(SensorEngine, server.engines.engine_for(TaskCategory("sensor", 0)))


@pytest.fixture
def calls() -> Iterator[list[tuple[str, str]]]:
    """Every call the sensors make to the store, through the counting filesystem `countfs://`."""
    yield from counting_filesystem()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A signing key file as an operator would mount it."""
    path = tmp_path / "signing.key"
    path.write_text(secrets.token_urlsafe(48) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path, key_file: Path) -> Config:
    """Server settings for tests: loopback, any free port, metrics off, a short poke timeout.

    No answer sharing (max_staleness 0): most tests change a file and poke again at once; the
    sharing tests (tests/test_fs_sharing.py) turn it on and drive time with their own clock.
    """
    return Config(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        signing_key_file=[key_file],
        state_dir=tmp_path / "state",
        poke_timeout=2.0,
        grace_period=1.0,
        drain_period=0.0,
        max_staleness=0.0,
        # Local paths are confined to --local-roots: the test's own directory and the system's temporary
        # one (the key file and state directory in them are carved out by the server).
        local_roots=[tmp_path, Path(tempfile.gettempdir())],
        # The tests' own fsspec filesystems (tests/countingfs.py counts store calls, tests/slowfs.py
        # imports slowly) are listed as an operator lists another protocol it wants served.
        path_protocols=["file", "s3", "gs", "abfs", "countfs", "slowfs"],
    )


def with_secret_policy(config: Config, policy: dict[str, Any]) -> Config:
    """`config` with an operator's --secret-policy granting `policy` (written as JSON next to the key)."""
    path = config.signing_key_file[0].with_name("secret-policy.json")
    path.write_text(json.dumps(policy))
    return replace(config, secret_policy=path)


def sqlite_secret(path: Path, monkeypatch: pytest.MonkeyPatch, env: str, *statements: str) -> Path:
    """A SQLite database at `path` made by `statements`, its URL in the environment variable `env` (a
    connector secret, as an operator sets one)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    monkeypatch.setenv(env, f"sqlite:///{path}")
    return path


@contextlib.asynccontextmanager
async def connected(server: Server) -> AsyncIterator[Connector]:
    """A channel to `server`, as propeller opens one, for the time of the `async with`."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Connector(server, channel)


@pytest.fixture
async def connector(config: Config) -> AsyncIterator[Connector]:
    """The real server on a loopback port and a channel to it."""
    server = Server(config)
    await server.startup()
    try:
        async with connected(server) as c:
            yield c
    finally:
        server.request_exit()
        await server.shutdown()


@pytest.fixture
async def make_connector(config: Config) -> AsyncIterator[Any]:
    """Start further connectors (e.g. a second replica) with overridden settings."""
    started: list[Server] = []

    async def start(**overrides: Any) -> Server:
        server = Server(replace(config, **overrides))
        await server.startup()
        started.append(server)
        return server

    yield start
    for server in started:
        server.request_exit()
        await server.shutdown()


@dataclass
class S3:
    """A real S3-compatible server on loopback, with a bucket."""

    endpoint: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def put(self, keys: Iterable[str], body: bytes = b"x") -> None:
        """Objects named `keys` in the bucket, each holding `body`."""
        client = self.client()
        for key in keys:
            client.put_object(Bucket=self.bucket, Key=key, Body=body)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 in server mode on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """Credentials and endpoint for the connector (through the environment, as in a pod) and a new bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    store = S3(s3_server, f"bucket-{secrets.token_hex(4)}")
    store.client().create_bucket(Bucket=store.bucket)
    return store


class Listener:
    """A TCP endpoint on loopback handing each connection it accepts to `take`, in a thread of its own,
    until it is closed."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.take(conn)

    def take(self, conn: socket.socket) -> None:
        """What to do with a connection just accepted."""
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


class SilentStore(Listener):
    """A TCP endpoint that accepts connections and never answers: an object store that hangs."""

    def __init__(self) -> None:
        self.accepted = 0
        self._changed = threading.Condition()
        self._held: list[socket.socket] = []
        super().__init__()

    @property
    def aws_env(self) -> dict[str, str]:
        """The environment that points a child connector's S3 client at this endpoint (dummy credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def take(self, conn: socket.socket) -> None:
        with self._changed:
            self._held.append(conn)
            self.accepted += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> bool:
        """Whether `count` connections have been accepted within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.accepted >= count, timeout)

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_store() -> Iterator[SilentStore]:
    """A hanging object store for the length of a test."""
    store = SilentStore()
    yield store
    store.close()


@dataclass
class Process:
    """A `sensor-connector serve` child process."""

    proc: subprocess.Popen[str]
    port: int
    log: list[str]
    drain: threading.Thread | None = None

    def stop(self, sig: int = 15, timeout: float = 20) -> int:
        """Signal the server, wait for it, and for the last of its log lines."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self.drain is not None:
            self.drain.join(timeout=timeout)
        return code


def spawn(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Process:
    """Run `sensor-connector serve ARGS` and wait until it logs the port it listens on."""
    # No drain unless a test asks for one (a later flag wins): stopping a child then takes no 15 s.
    base = ["serve", "--host", "127.0.0.1", "--port", "0", "--drain-period", "0"]
    cmd = [sys.executable, "-m", "connector.cli", *base, *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Local paths in the system's temporary directory are admitted unless a test says otherwise.
        env={"SENSOR_CONNECTOR_LOCAL_ROOTS": tempfile.gettempdir(), **os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"listening on \S+:(\d+)", line) or re.search(
            r'"message": "listening on \S+:(\d+)', line
        )
        if found:
            # keep draining stderr so a chatty server never blocks on a full pipe
            drain = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
            drain.start()
            return Process(proc, int(found.group(1)), lines, drain)
    proc.kill()
    raise AssertionError("connector did not start:\n" + "".join(lines))


def read_json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON objects among log lines."""
    return [json.loads(line) for line in lines if line.startswith("{")]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Millisecond timings taken in this process without the garbage collector's full passes.

    The test process holds the whole suite's heap (over 300,000 objects), and one full collection of it
    takes 0.13-0.29 s on a 2-CPU machine, landing wherever the allocation count says: inside a 0.1 s
    bound, it fails the test for a cause that is not the one under test. A served connector's own heap
    is about 39,000 objects (15 ms a full collection). Collected once first, then paused until the end.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now (for the metrics endpoint, where 0 means off)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_families(port: int) -> dict[str, Any]:
    """GET /metrics from the real endpoint, parsed: {family name: family}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics from the real endpoint: {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metric_families(port).values()
        for sample in family.samples
    }


def installed_fixture(tmp_path_factory: pytest.TempPathFactory, package: str) -> Path:
    """tests/fixtures/<package> pip-installed (offline, no build isolation) into a directory of its own."""
    import shutil

    source = tmp_path_factory.mktemp(f"{package}_src") / package
    shutil.copytree(ROOT / "tests" / "fixtures" / package, source)  # the build writes into its source tree
    target = tmp_path_factory.mktemp(f"{package}_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
        check=True,
    )  # fmt: skip
    return target


def plugin_venv(
    base: Path, plugin: str, requirements: list[str], *, constraints: Path | None = None, timeout: float = 900
) -> tuple[Path, Path]:
    """plugins/<plugin>'s wheel built from this checkout and installed with `requirements` (and nothing
    of this checkout) into a fresh venv under `base`: (the venv's python, the wheel)."""
    import venv

    def run(cmd: list[str]) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"{cmd[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"

    dist = base / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
         str(ROOT / "plugins" / plugin)]
    )  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pinned = ["-c", str(constraints)] if constraints is not None else []
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *pinned,
            *requirements,
            str(wheel),
        ]
    )
    return python, wheel


@pytest.fixture(scope="session")
def user_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/user_pkg (users' own flytekit sensors) pip-installed into a directory of its own:
    what an operator puts on the connector's path. Never imported here."""
    target = installed_fixture(tmp_path_factory, "user_pkg")
    assert (target / "mysensors" / "markers.py").exists()
    return target
