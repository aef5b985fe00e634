"""Local paths are confined to --local-roots, through the real server: refused at CreateTask when they
lie outside (after symbolic links and `..`), checked again at every poke, and the connector's own files
(state directory, secrets directory, signing key) are never admitted, even inside a root."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.core import execution_pb2

from connector.config import Config
from connector.server import Server
from sensors.flytekit import GlobSensor

from .catalog import expect_rejected, request_for
from .conftest import Connector, StoreClock, file_sensor_request

Phase = execution_pb2.TaskExecution.Phase


def glob_request(pattern: str, **config: Any) -> Any:
    return request_for(GlobSensor(name="wait_parts", outputs=True, **config), pattern=pattern)


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """The suite's settings with one root only: this test's directory."""
    return replace(config, local_roots=[tmp_path])


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside every root, holding a file."""
    path = tmp_path_factory.mktemp("outside")
    (path / "secret.txt").write_text("not for sensors")
    return path


def paths_of(resource: Any) -> list[str]:
    return [v.scalar.primitive.string_value for v in resource.outputs.literals["paths"].collection.literals]


async def refused(connector: Connector, request: Any) -> str:
    message = await expect_rejected(connector, request, grpc.StatusCode.INVALID_ARGUMENT)
    assert "--local-roots" in message and len(message) < 300, message
    return message


async def test_paths_inside_a_root_work(connector: Connector, tmp_path: Path) -> None:
    (tmp_path / "in" / "day=1").mkdir(parents=True)
    meta = await connector.create(file_sensor_request(str(tmp_path / "in" / "ready")))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    (tmp_path / "in" / "ready").write_text("x")
    assert (await connector.get(meta)).phase == Phase.SUCCEEDED

    (tmp_path / "in" / "day=1" / "a.csv").write_text("x")
    (tmp_path / "in" / "link.csv").symlink_to(tmp_path / "in" / "day=1" / "a.csv")  # a link within the root
    for pattern, found in [
        (f"{tmp_path}/in/**/*.csv", [f"{tmp_path}/in/day=1/a.csv", f"{tmp_path}/in/link.csv"]),
        (f"file://{tmp_path}/in/*/a.csv", [f"file://{tmp_path}/in/day=1/a.csv"]),
    ]:
        done = await connector.get(await connector.create(glob_request(pattern)))
        assert done.phase == Phase.SUCCEEDED, done.message
        assert paths_of(done) == found


async def test_the_connectors_own_files_are_refused_even_inside_a_root(
    make_connector: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tmp_path is the root, and it holds the state directory, the signing key and the secrets directory.
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "db-url").write_text("sqlite://")
    monkeypatch.setenv("SENSOR_CONNECTOR_SECRETS_DIR", str(secrets_dir))
    server: Server = await make_connector()
    state_dir = server.config.state_dir
    state_dir.mkdir(exist_ok=True)
    (state_dir / "signing.key").write_text("k" * 48)
    key_file = server.config.signing_key_file[0]
    assert str(tmp_path) in str(key_file) and str(tmp_path) in str(state_dir)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        for path in (
            state_dir / "signing.key",
            key_file,
            secrets_dir / "db-url",
            secrets_dir,
            f"file://{state_dir}",
        ):
            message = await refused(connector, file_sensor_request(str(path)))
            own = "is one of the connector's own files, which no sensor may read (--local-roots)."
            assert message == f"FileSensor: {path} {own}"
        for pattern in (f"{secrets_dir}/*", f"{state_dir}/**", f"{tmp_path}/../{tmp_path.name}/secrets/*"):
            assert "connector's own files" in await refused(connector, glob_request(pattern))

        # A wildcard over the root passes the connector's own entries over: they are not there for sensors.
        (tmp_path / "part-1.csv").write_text("x")
        done = await connector.get(await connector.create(glob_request(f"{tmp_path}/*")))
        assert done.phase == Phase.SUCCEEDED, done.message
        names = paths_of(done)
        assert f"{tmp_path}/part-1.csv" in names
        assert not {str(secrets_dir), str(state_dir), str(key_file)} & set(names), names


async def test_dot_dot_and_symlink_escapes_are_refused_at_create(
    connector: Connector, tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "door").symlink_to(outside)
    (tmp_path / "file-door").symlink_to(outside / "secret.txt")
    escapes = [
        file_sensor_request(f"{tmp_path}/../{outside.name}/secret.txt"),
        file_sensor_request(f"{tmp_path}/door/secret.txt"),
        file_sensor_request(f"{tmp_path}/file-door"),
        file_sensor_request(f"file://{tmp_path}/door/later.txt"),
        file_sensor_request(str(outside / "secret.txt")),
        file_sensor_request("/etc/passwd"),
        glob_request(f"{tmp_path}/door/*.txt"),
        glob_request(f"{tmp_path}/../{outside.name}/**"),
    ]
    for request in escapes:
        await refused(connector, request)
    message = await refused(connector, file_sensor_request(f"{tmp_path}/door/secret.txt"))
    # The roots are named (long ones cut short) and so is where the path really leads.
    assert message.startswith(
        f"FileSensor: {tmp_path}/door/secret.txt is outside the connector's --local-roots ("
    )
    assert message.endswith(f") (it resolves to {outside}/secret.txt).")


async def test_a_link_that_appears_later_fails_the_task_and_is_never_followed(
    connector: Connector, tmp_path: Path, outside: Path
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "later.txt")))
    assert (await connector.get(meta)).phase == Phase.RUNNING
    (tmp_path / "later.txt").symlink_to(outside / "secret.txt")
    failed = await connector.get(meta)
    assert failed.phase == Phase.FAILED
    assert f"{tmp_path}/later.txt is outside the connector's --local-roots" in failed.message

    (tmp_path / "parts").mkdir()
    glob_meta = await connector.create(glob_request(f"{tmp_path}/parts/*.txt"))
    assert (await connector.get(glob_meta)).phase == Phase.RUNNING
    (tmp_path / "parts" / "leak.txt").symlink_to(outside / "secret.txt")
    failed = await connector.get(glob_meta)
    assert failed.phase == Phase.FAILED and f"{tmp_path}/parts/leak.txt is outside" in failed.message

    # A wildcard that would cross a linked directory stops at the link instead of listing what it leads to.
    (tmp_path / "tree" / "a").mkdir(parents=True)
    walk_meta = await connector.create(glob_request(f"{tmp_path}/tree/*/secret.txt"))
    assert (await connector.get(walk_meta)).phase == Phase.RUNNING
    (tmp_path / "tree" / "b").symlink_to(outside)
    failed = await connector.get(walk_meta)
    assert failed.phase == Phase.FAILED and f"{tmp_path}/tree/b is outside" in failed.message


async def test_no_roots_means_no_local_paths(make_connector: Any, tmp_path: Path) -> None:
    server: Server = await make_connector(local_roots=[])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        for request in (file_sensor_request(str(tmp_path / "x")), glob_request("relative/*.csv")):
            message = await refused(connector, request)
            assert "this connector admits none (its --local-roots is empty)" in message
        # Object stores are not local paths.
        assert await connector.create(file_sensor_request("s3://bucket/key"))


def test_a_root_that_is_not_a_directory_stops_the_server(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--local-roots: .*missing is not a directory"):
        Server(Config(**{**config.__dict__, "local_roots": [tmp_path / "missing"]}))


def test_a_confined_glob_matches_what_fsspec_matches(tmp_path: Path) -> None:
    """Inside the roots, the walk that checks every link answers as fsspec's own glob (used locally)."""
    import fsspec

    from sensors.local_roots import LocalRoots

    for name in (".hidden", "x.csv", "a/y.csv", "a/b/z.csv", "c/.h.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    roots, local = LocalRoots.build([tmp_path]), fsspec.filesystem("file")
    patterns = ("*", "**", "**/*.csv", "*/*.csv", "a/**", "?.csv", "[xy].csv", "**/b", "*/**", "a/b/z.csv")
    for pattern in patterns:
        full = f"{tmp_path}/{pattern}"
        assert roots.glob(full) == sorted(local.glob(full)), pattern


async def test_a_shared_directory_listing_admits_only_what_lies_inside(
    make_connector: Any, tmp_path: Path, outside: Path
) -> None:
    # With answer sharing on, sensors side by side in one directory are answered by one listing of it:
    # that listing admits what it answers for, and must refuse exactly what a poke on its own refuses.
    clock = StoreClock()
    server: Server = await make_connector(max_staleness=1.0)
    server.store.clock = clock
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "plain.csv").write_text("x")
    (tmp_path / "elsewhere.csv").write_text("x")
    (folder / "inner-link.csv").symlink_to(tmp_path / "elsewhere.csv")  # a link within the root
    names = ("plain.csv", "inner-link.csv", "missing.csv", "later.csv")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        connector = Connector(server, channel)
        metas = {name: await connector.create(file_sensor_request(str(folder / name))) for name in names}

        async def phases() -> dict[str, tuple[int, str]]:
            answers = {name: await connector.get(meta) for name, meta in metas.items()}
            return {name: (a.phase, a.message) for name, a in answers.items()}

        first = await phases()
        assert {n: p for n, (p, _) in first.items()} == {
            "plain.csv": Phase.SUCCEEDED,
            "inner-link.csv": Phase.SUCCEEDED,
            "missing.csv": Phase.RUNNING,
            "later.csv": Phase.RUNNING,
        }
        assert server.store.stats.requests.get(("file", "list"), 0) == 1  # the directory was listed once

        # A link pointing out of the roots appears beside sensors the listing answers: it fails its own.
        (folder / "later.csv").symlink_to(outside / "secret.txt")
        clock.advance(1.01)
        second = await phases()
        assert second["later.csv"][0] == Phase.FAILED
        assert f"{folder}/later.csv is outside the connector's --local-roots" in second["later.csv"][1]
        assert second["missing.csv"][0] == Phase.RUNNING

        # The directory itself swapped for a link leading out: it is not listed, and its sensors fail
        # rather than find the file waiting outside.
        (outside / "missing.csv").write_text("x")
        folder.rename(tmp_path / "was-in")
        folder.symlink_to(outside)
        clock.advance(1.01)
        third = await phases()
        assert third["missing.csv"][0] == Phase.FAILED
        assert f"{folder}/missing.csv is outside the connector's --local-roots" in third["missing.csv"][1]
