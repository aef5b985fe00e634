"""GetTaskLogs, GetTaskMetrics, the Prometheus endpoint and the logs, through the real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import logging
import platform
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from google.protobuf import duration_pb2, json_format, timestamp_pb2

from connector.observe.logs import TextFormatter
from sensors.store import console_links

from .conftest import (
    SENSOR,
    Clock,
    Connector,
    connected,
    engine_of,
    file_sensor_request,
    free_port,
    metric_families,
    read_json_lines,
    scrape,
    spawn,
)

Phase = execution_pb2.TaskExecution.Phase


async def logs(connector: Connector, meta: bytes, lines: int = 0) -> list[agent_pb2.GetTaskLogsResponse]:
    request = agent_pb2.GetTaskLogsRequest(task_category=SENSOR, resource_meta=meta, lines=lines)
    return [reply async for reply in connector.agent.GetTaskLogs(request, timeout=10)]


async def metrics(connector: Connector, meta: bytes, *queries: str, **window: Any) -> dict[str, Any]:
    request = agent_pb2.GetTaskMetricsRequest(
        task_category=SENSOR, resource_meta=meta, queries=queries, **window
    )
    reply = await connector.agent.GetTaskMetrics(request, timeout=10)
    return {r.metric: json_format.MessageToDict(r.data) for r in reply.results}


def body_lines(replies: list[agent_pb2.GetTaskLogsResponse]) -> list[str]:
    assert replies[0].HasField("header") and replies[0].header.token == ""
    assert all(r.HasField("body") for r in replies[1:])
    structured = [line for r in replies[1:] for line in r.body.structured_lines]
    plain = [text for r in replies[1:] for text in r.body.results]
    assert plain == [line.message for line in structured]  # older clients read the same lines
    assert all(line.originator == agent_pb2.SYSTEM and line.timestamp.seconds > 0 for line in structured)
    return plain


async def test_logs_of_a_running_sensor_say_what_it_waits_for_since_when_and_not_yet(
    connector: Connector, tmp_path: Path
) -> None:
    target = tmp_path / "in" / "data.csv"
    meta = await connector.create(file_sensor_request(str(target)))
    lines = body_lines(await logs(connector, meta))
    assert lines[0] == f"FileSensor waits for path={target}."
    assert lines[1].startswith("Created at ") and lines[1].endswith(" ago.")
    assert f": not yet — {target} does not exist yet." in lines[-1]
    assert lines[-1].endswith("Phase RUNNING.")


async def test_logs_of_a_met_sensor_show_details_and_success(connector: Connector, tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_text("a,b\n")
    meta = await connector.create(file_sensor_request(str(target)))
    lines = body_lines(await logs(connector, meta))
    assert "Details: size=4" in lines
    assert (
        ": met — " in lines[-1]
        and f"{target} exists." in lines[-1]
        and lines[-1].endswith("Phase SUCCEEDED.")
    )


async def test_logs_honour_lines_by_keeping_the_last_ones(connector: Connector, tmp_path: Path) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "absent")))
    everything = body_lines(await logs(connector, meta))
    last_two = body_lines(await logs(connector, meta, lines=2))
    assert len(everything) > 2 and len(last_two) == 2
    assert last_two[0] == everything[-2] and "not yet" in last_two[1]


async def test_logs_of_an_s3_sensor_carry_the_console_link(connector: Connector, s3: Any) -> None:
    meta = await connector.create(file_sensor_request(f"s3://{s3.bucket}/a/b.csv"))
    lines = body_lines(await logs(connector, meta))
    assert f"S3 console: https://s3.console.aws.amazon.com/s3/buckets/{s3.bucket}?prefix=a/b.csv" in lines


async def test_logs_and_metrics_reject_forged_resource_meta(connector: Connector, tmp_path: Path) -> None:
    meta = bytearray(await connector.create(file_sensor_request(str(tmp_path / "x"))))
    meta[-1] ^= 1
    with pytest.raises(grpc.aio.AioRpcError) as logs_error:
        await logs(connector, bytes(meta))
    assert logs_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature does not verify" in (logs_error.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as metrics_error:
        await metrics(connector, bytes(meta), "elapsed_seconds")
    assert metrics_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def created_at(resource: agent_pb2.Resource) -> dt.datetime:
    return dt.datetime.fromisoformat(json_format.MessageToDict(resource.custom_info)["created_at"])


async def test_metrics_of_a_running_sensor_give_elapsed_and_poke_latency(
    connector: Connector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "absent")))
    created = created_at(await connector.get(meta))
    before = dt.datetime.now(dt.UTC)
    with caplog.at_level(logging.INFO):
        got = await metrics(connector, meta, "elapsed_seconds", "poke_latency_seconds", "cpu_usage")
    after = dt.datetime.now(dt.UTC)
    assert set(got) == {"elapsed_seconds", "poke_latency_seconds"}

    elapsed = got["elapsed_seconds"]
    assert elapsed["resultType"] == "matrix"
    [series] = elapsed["result"]
    assert series["metric"] == {"__name__": "elapsed_seconds", "sensor": "FileSensor"}
    [[when, value]] = series["values"]
    assert before.timestamp() <= when <= after.timestamp()
    assert float(value) == pytest.approx(when - created.timestamp(), abs=1e-3)

    [latency] = got["poke_latency_seconds"]["result"]
    assert latency["metric"] == {
        "__name__": "poke_latency_seconds",
        "sensor": "FileSensor",
        "outcome": "waiting",
    }
    [[poked, seconds]] = latency["values"]
    assert before.timestamp() <= poked <= after.timestamp()
    assert 0 < float(seconds) < (after - before).total_seconds()

    ignored = [r for r in caplog.records if "unknown queries" in r.getMessage()]
    assert len(ignored) == 1 and "cpu_usage" in ignored[0].getMessage()


async def test_metrics_of_a_met_sensor_over_a_window_step_from_creation_to_now(
    connector: Connector, tmp_path: Path
) -> None:
    (tmp_path / "ready").write_text("")
    meta = await connector.create(file_sensor_request(str(tmp_path / "ready")))
    created = created_at(await connector.get(meta))
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(created - dt.timedelta(hours=1))  # before creation: clipped to it
    end = timestamp_pb2.Timestamp()
    end.FromDatetime(created + dt.timedelta(hours=1))  # after now: clipped to now
    step = duration_pb2.Duration(nanos=100_000_000)
    before = dt.datetime.now(dt.UTC)
    got = await metrics(connector, meta, start_time=start, end_time=end, step=step)  # no queries: all
    after = dt.datetime.now(dt.UTC)
    assert list(got) == ["elapsed_seconds", "poke_latency_seconds"]
    [series] = got["elapsed_seconds"]["result"]
    points = series["values"]
    fewest, most = (int((t - created).total_seconds() * 10) + 1 for t in (before, after))
    assert fewest <= len(points) <= most
    expected = [[created.timestamp() + i / 10, repr(round(i / 10, 6))] for i in range(len(points))]
    assert [[pytest.approx(t), v] for t, v in points] == expected
    [latency] = got["poke_latency_seconds"]["result"]
    assert latency["metric"]["outcome"] == "met"


async def test_metrics_refuse_a_window_that_ends_before_it_starts(
    connector: Connector, tmp_path: Path
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "x")))
    start, end = (
        timestamp_pb2.Timestamp(seconds=2_000_000_000),
        timestamp_pb2.Timestamp(seconds=1_000_000_000),
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await metrics(connector, meta, start_time=start, end_time=end)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "end_time is before start_time."


async def test_prometheus_endpoint_counts_a_lifecycle_exactly(make_connector: Any, tmp_path: Path) -> None:
    server = await make_connector(metrics_port=free_port())
    target = tmp_path / "data.csv"
    async with connected(server) as c:
        meta = await c.create(file_sensor_request(str(target)))
        assert (await c.get(meta)).phase == Phase.RUNNING
        target.write_text("x")
        assert (await c.get(meta)).phase == Phase.SUCCEEDED
        await c.agent.DeleteTask(agent_pb2.DeleteTaskRequest(task_category=SENSOR, resource_meta=meta))
        unknown = file_sensor_request(str(target))
        unknown.template.custom["sensor_name"] = "NoSuchSensor"
        with pytest.raises(grpc.aio.AioRpcError):
            await c.create(unknown)
        # resource_meta that can never verify fails the task: a phase, not an RPC error.
        assert (await c.get(b"not a resource meta")).phase == Phase.FAILED
        with pytest.raises(grpc.aio.AioRpcError):
            await c.agent.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta))  # names no category

    figures = scrape(server.metrics.port)

    def value(name: str, **labels: str) -> float:
        return figures.get((name, tuple(sorted(labels.items()))), 0.0)

    ok = "flyte_connector_requests_success_total"
    assert value(ok, task_type="sensor", operation="create") == 1
    assert value(ok, task_type="sensor", operation="get") == 3
    assert value(ok, task_type="sensor", operation="delete") == 1
    failed = "flyte_connector_requests_failure_total"
    assert value(failed, task_type="sensor", operation="create", error_code="404") == 1
    assert value(failed, task_type="unknown", operation="get", error_code="400") == 1
    assert value("flyte_connector_request_latency_seconds_count", task_type="sensor", operation="get") == 3
    assert value("flyte_sensor_connector_resource_meta_rejected_total", reason="invalid") == 1
    assert value("flyte_connector_input_literal_bytes_count", task_type="sensor") == 2
    pokes = "flyte_sensor_connector_pokes_total"
    assert value(pokes, sensor="FileSensor", outcome="waiting") == 1
    assert value(pokes, sensor="FileSensor", outcome="met") == 1
    assert value("flyte_sensor_connector_poke_latency_seconds_count", sensor="FileSensor") == 2
    assert value("flyte_sensor_connector_poke_timeouts_total", sensor="FileSensor") == 0


async def test_prometheus_endpoint_has_the_conventional_series_once_each(
    make_connector: Any, tmp_path: Path
) -> None:
    import connector
    from connector.observe.metrics import REQUEST_BUCKETS

    server = await make_connector(metrics_port=free_port())
    target = tmp_path / "data.csv"
    target.write_text("x")
    async with connected(server) as c:
        meta = await c.create(file_sensor_request(str(target)))
        assert (await c.get(meta)).phase == Phase.SUCCEEDED
    families = metric_families(server.metrics.port)
    samples = [(s.name, tuple(sorted(s.labels.items()))) for f in families.values() for s in f.samples]

    # What prometheus_client's default collectors give flytekit's connector, in this server's registry.
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_start_time_seconds",
                 "python_gc_objects_collected", "python_gc_collections", "python_info"):  # fmt: skip
        assert name in families, f"{name} is not exported"
    # Latency is a histogram under flytekit's name: buckets for p99, count and sum as before.
    latency = families["flyte_connector_request_latency_seconds"]
    assert latency.type == "histogram"
    get = (("operation", "get"), ("task_type", "sensor"))
    buckets = [s for s in latency.samples if s.name.endswith("_bucket") and s.labels["operation"] == "get"]
    assert [float(s.labels["le"]) for s in buckets] == [*REQUEST_BUCKETS, float("inf")]
    count = [
        s.value
        for s in latency.samples
        if s.name.endswith("_count") and tuple(sorted(s.labels.items())) == get
    ]
    assert count == [1] and buckets[-1].value == 1
    info = families["flyte_sensor_connector_build_info"].samples
    assert len(info) == 1 and info[0].value == 1
    assert info[0].labels["version"] == connector.__version__
    assert info[0].labels["python"] == platform.python_version()
    assert info[0].labels["flyteidl"] == importlib.metadata.version("flyteidl")
    # No series twice, and no `_created` companions duplicating every child.
    assert len(samples) == len(set(samples))
    assert not [n for n, _ in samples if n.endswith("_created")]


async def test_every_get_and_poke_is_counted_once(make_connector: Any, tmp_path: Path) -> None:
    server = await make_connector(metrics_port=free_port())
    target = tmp_path / "data.csv"
    async with connected(server) as c:
        meta = await c.create(file_sensor_request(str(target)))
        for _ in range(6):
            assert (await c.get(meta)).phase == Phase.RUNNING
    figures = scrape(server.metrics.port)
    get = (("operation", "get"), ("task_type", "sensor"))
    assert figures[("flyte_connector_requests_success_total", get)] == 6
    assert figures[("flyte_connector_request_latency_seconds_count", get)] == 6
    assert (
        figures[("flyte_sensor_connector_pokes_total", (("outcome", "waiting"), ("sensor", "FileSensor")))]
        == 6
    )


async def test_a_poke_over_budget_counts_a_timeout_and_logs_a_warning(
    make_connector: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def hangs(url: str, budget: float | None = None) -> None:
        await asyncio.Event().wait()  # never set: the engine's budget must end it

    server = await make_connector(metrics_port=free_port(), poke_timeout=0.05)
    monkeypatch.setattr(server.store, "info", hangs)
    async with connected(server) as c:
        meta = await c.create(file_sensor_request(str(tmp_path / "slow")))
        with caplog.at_level(logging.INFO):
            resource = await c.get(meta)
    assert resource.phase == Phase.RUNNING and "ran out of its 0.05s budget" in resource.message
    figures = scrape(server.metrics.port)
    assert figures[("flyte_sensor_connector_poke_timeouts_total", (("sensor", "FileSensor"),))] == 1
    key = ("flyte_sensor_connector_pokes_total", (("outcome", "timeout"), ("sensor", "FileSensor")))
    assert figures[key] == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "budget" in r.getMessage()]
    assert warning.sensor == "FileSensor" and warning.phase == "RUNNING"  # type: ignore[attr-defined]


async def test_a_healthy_running_poke_logs_nothing_at_info(
    connector: Connector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "later"
    with caplog.at_level(logging.INFO):
        meta = await connector.create(file_sensor_request(str(target)))
        created = [r.getMessage() for r in caplog.records]
        caplog.clear()
        assert (await connector.get(meta)).phase == Phase.RUNNING
        assert (await connector.get(meta)).phase == Phase.RUNNING
        running = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        target.write_text("")
        assert (await connector.get(meta)).phase == Phase.SUCCEEDED
        succeeded = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(created) == 1 and created[0].startswith("created FileSensor task ")
    assert running == []
    assert succeeded == [f"FileSensor SUCCEEDED (met): {target} exists."]


def test_json_logs_parse_and_carry_task_fields(tmp_path: Path, key_file: Path) -> None:
    proc = spawn(
        "--log-format",
        "json",
        "--metrics-port",
        "0",
        "--signing-key-file",
        str(key_file),
        "--max-staleness",
        "0",
    )
    target = tmp_path / "data.csv"

    async def lifecycle() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
            c = Connector(None, channel)  # type: ignore[arg-type]
            meta = await c.create(file_sensor_request(str(target)))
            await c.get(meta)
            target.write_text("")
            await c.get(meta)
            await c.agent.DeleteTask(agent_pb2.DeleteTaskRequest(task_category=SENSOR, resource_meta=meta))

    try:
        asyncio.run(lifecycle())
    finally:
        assert proc.stop() == 0
    assert all(line.startswith("{") for line in proc.log), proc.log
    entries = read_json_lines(proc.log)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    by_op = {e.get("operation"): e for e in entries if e.get("operation")}
    assert set(by_op) == {"create", "get", "delete"}  # one get line: the healthy RUNNING poke stays quiet
    task = by_op["create"]["task"]
    create = by_op["create"]
    assert (create["category"], create["sensor"], create["level"]) == ("sensor v0", "FileSensor", "INFO")
    assert by_op["get"]["task"] == by_op["delete"]["task"] == task
    assert by_op["get"]["phase"] == "SUCCEEDED" and by_op["get"]["sensor"] == "FileSensor"
    assert dt.datetime.fromisoformat(by_op["get"]["time"]).tzinfo is not None


async def test_a_failed_sensor_answers_failed_with_a_user_error_and_says_so(
    connector: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    meta = await connector.create(file_sensor_request("nosuchproto://bucket/key"))
    with caplog.at_level(logging.INFO):
        resource = await connector.get(meta)
    assert resource.phase == Phase.FAILED
    assert resource.message == "nosuchproto://bucket/key: unknown protocol 'nosuchproto'."
    assert resource.agent_error.code == "SENSOR_FAILED"
    assert resource.agent_error.origin == execution_pb2.ExecutionError.USER
    [line] = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert line.levelno == logging.WARNING and line.getMessage().startswith("FileSensor FAILED (failed): ")
    story = body_lines(await logs(connector, meta))
    assert ": failed — nosuchproto://bucket/key: unknown protocol" in story[-1] and story[-1].endswith(
        "Phase FAILED."
    )


async def test_every_get_fills_the_console_view_with_custom_info_and_store_links(
    connector: Connector, s3: Any
) -> None:
    meta = await connector.create(file_sensor_request(f"s3://{s3.bucket}/day=1/part 0.csv"))
    before = dt.datetime.now(dt.UTC)
    resource = await connector.get(meta)
    info = json_format.MessageToDict(resource.custom_info)
    assert info["sensor"] == "FileSensor" and info["outcome"] == "waiting"
    assert info["awaiting"] == {"path": f"s3://{s3.bucket}/day=1/part 0.csv"}
    last_poke = dt.datetime.fromisoformat(info["last_poke"])
    assert before.replace(microsecond=0) <= last_poke <= dt.datetime.now(dt.UTC)
    assert info["status"] == resource.message
    assert dt.datetime.fromisoformat(info["created_at"]) <= last_poke
    assert [(link.name, link.uri) for link in resource.log_links] == [
        (
            "S3 console",
            f"https://s3.console.aws.amazon.com/s3/buckets/{s3.bucket}?prefix=day%3D1/part%200.csv",
        )
    ]


async def test_the_same_finding_is_answered_alike_but_for_its_poke_time_and_a_new_one_shows(
    connector: Connector, tmp_path: Path
) -> None:
    clock = Clock(dt.datetime(2026, 11, 25, 9, 0, 0, 400_000, tzinfo=dt.UTC))
    engine_of(connector.server).clock = clock
    target = tmp_path / "data.csv"
    meta = await connector.create(file_sensor_request(str(target)))
    first = json_format.MessageToDict(await connector.get(meta))
    clock.advance(7)
    second = json_format.MessageToDict(await connector.get(meta))
    assert first["customInfo"].pop("last_poke") == "2026-11-25T09:00:00+00:00"
    assert second["customInfo"].pop("last_poke") == "2026-11-25T09:00:07+00:00"
    assert first == second and second["phase"] == "RUNNING"
    assert second["customInfo"]["status"] == f"{target} does not exist yet."
    target.write_text("x")
    found = await connector.get(meta)
    info = json_format.MessageToDict(found.custom_info)
    assert found.phase == Phase.SUCCEEDED and found.message == f"{target} exists."
    assert info["outcome"] == "met" and info["status"] == found.message and info["details"] == {"size": 1}
    assert info["last_poke"] == "2026-11-25T09:00:07+00:00" and info["sensor"] == "FileSensor"


def test_gcs_paths_link_to_the_gcs_console_and_local_paths_to_nothing() -> None:
    assert [(link.name, link.uri) for link in console_links("gs://bkt/a/b c.csv")] == [
        ("GCS console", "https://console.cloud.google.com/storage/browser/bkt/a/b%20c.csv")
    ]
    assert console_links("/data/x.csv") == [] and console_links("file:///data/x.csv") == []


async def test_metrics_port_in_use_is_a_clear_start_up_error_and_zero_disables(
    make_connector: Any, connector: Connector
) -> None:
    assert connector.server.metrics.port == 0  # the fixture runs with --metrics-port 0: no endpoint
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as error:
            await make_connector(metrics_port=port)
    assert str(error.value) == f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"


async def test_a_get_the_caller_abandons_counts_as_cancelled_not_as_success(
    make_connector: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poking, unwound = asyncio.Event(), asyncio.Event()

    async def hangs(url: str, budget: float | None = None) -> None:
        poking.set()
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    server = await make_connector(metrics_port=free_port(), poke_timeout=60)
    monkeypatch.setattr(server.store, "info", hangs)
    async with connected(server) as c:
        meta = await c.create(file_sensor_request(str(tmp_path / "slow")))
        call = c.agent.GetTask(agent_pb2.GetTaskRequest(task_category=SENSOR, resource_meta=meta))
        await poking.wait()
        call.cancel()
        await unwound.wait()  # the server's handler unwinds, and counts, in the same step
    figures = scrape(server.metrics.port)
    ok = ("flyte_connector_requests_success_total", (("operation", "get"), ("task_type", "sensor")))
    cancelled = (
        "flyte_connector_requests_failure_total",
        (("error_code", "499"), ("operation", "get"), ("task_type", "sensor")),
    )
    assert figures.get(ok, 0.0) == 0 and figures[cancelled] == 1


async def test_at_debug_each_running_poke_has_its_line(
    connector: Connector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta = await connector.create(file_sensor_request(str(tmp_path / "later")))
    with caplog.at_level(logging.DEBUG, logger="connector"):
        await connector.get(meta)
    [line] = [r for r in caplog.records if r.name == "connector.engine.sensor.engine"]
    assert line.levelno == logging.DEBUG
    assert line.getMessage() == f"FileSensor RUNNING (waiting): {tmp_path / 'later'} does not exist yet."


def test_text_logs_append_the_task_fields_after_the_message() -> None:
    record = logging.LogRecord(
        "connector.wire.services", logging.INFO, __file__, 1, "created %s", ("x",), None
    )
    record.operation, record.sensor, record.task = "create", "FileSensor", "0123456789ab"
    line = TextFormatter().format(record)
    assert line.endswith(
        " INFO    connector.wire.services: created x [operation=create sensor=FileSensor task=0123456789ab]"
    )


def test_two_servers_metrics_are_apart_and_no_process_wide_setting_changes() -> None:
    from prometheus_client import Counter, generate_latest

    from connector.observe.metrics import Metrics

    one, two = Metrics(), Metrics()
    one.request_done("sensor", "get", 0.001, None)
    success = "flyte_connector_requests_success_total"
    labels = {"task_type": "sensor", "operation": "get"}
    assert one.registry.get_sample_value(success, labels) == 1
    assert two.registry.get_sample_value(success, labels) is None
    # A counter of anyone else's in this process still has its `_created` series.
    from prometheus_client import CollectorRegistry

    theirs = CollectorRegistry()
    Counter("someone_elses", "a counter outside the connector", registry=theirs).inc()
    assert b"someone_elses_created" in generate_latest(theirs)
    assert b"_created" not in generate_latest(one.registry)


def test_tallied_latencies_fall_in_prometheus_le_buckets_and_sum() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from connector.observe.metrics import REQUEST_BUCKETS, Metrics

    metrics = Metrics()
    # On a bound (le is inclusive), between two bounds, and beyond the last one.
    for seconds in (REQUEST_BUCKETS[0], 0.003, 100.0):
        metrics.request_done("sensor", "get", seconds, None)
    metrics.request_done("sensor", "get", 0.003, grpc.StatusCode.INVALID_ARGUMENT)
    metrics.poked("FileSensor", "timeout", 6.0)
    metrics.engine_event("remembered", "FileSensor")
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    get = {"task_type": "sensor", "operation": "get"}
    samples = families["flyte_connector_request_latency_seconds"].samples
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets[str(REQUEST_BUCKETS[0])] == 1  # exactly on the first bound: counted there
    assert buckets["0.0025"] == 1 and buckets["0.005"] == 3 and buckets["10.0"] == 3
    assert buckets["+Inf"] == 4
    [total] = [s.value for s in samples if s.name.endswith("_sum") and s.labels == get]
    assert total == pytest.approx(REQUEST_BUCKETS[0] + 0.003 + 100.0 + 0.003)
    success = families["flyte_connector_requests_success"].samples
    assert [(s.labels, s.value) for s in success] == [(get, 3)]
    failure = families["flyte_connector_requests_failure"].samples
    assert [(s.labels["error_code"], s.value) for s in failure] == [("400", 1)]
    pokes = families["flyte_sensor_connector_pokes"].samples
    assert [(s.labels, s.value) for s in pokes] == [({"sensor": "FileSensor", "outcome": "timeout"}, 1)]
    assert families["flyte_sensor_connector_poke_timeouts"].samples[0].value == 1
    remembered = families["flyte_sensor_connector_answers_remembered"].samples
    assert [(s.labels, s.value) for s in remembered] == [({"sensor": "FileSensor"}, 1)]
