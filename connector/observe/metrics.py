"""Prometheus metrics: flytekit's connector request metrics under their names, plus sensor pokes.

Each Server owns one CollectorRegistry (not prometheus_client's global one), so several servers in
one process (tests, a second replica) keep separate counts. That registry also gets the collectors
prometheus_client's global registry has by default (`process_*`, `python_info`, `python_gc_*`), as
flytekit's connector exports them, and a `flyte_sensor_connector_build_info` gauge.

The request path never calls `.labels()` nor takes a lock: requests, pokes and engine events are
plain numbers, changed on the event loop only and read at scrape time (`TallyCollector`), so counting
a call is a dict lookup and a few additions. Rare counts (failures, refusals) are prometheus_client
counters with their children bound once.
"""

from __future__ import annotations

import logging
import platform
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import grpc
import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .. import __version__

log = logging.getLogger(__name__)

#: flytekit's prefix (flytekit/extend/backend/connector_service.py): dashboards built for it keep working.
FLYTEKIT_PREFIX = "flyte_connector_"
OWN_PREFIX = "flyte_sensor_connector_"

#: flytekit labels failures with an HTTP status code; these are the usual gRPC-to-HTTP equivalents.
HTTP_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

#: Poke latency buckets: local stat calls take microseconds, object stores tens of milliseconds,
#: and the default poke timeout is 5 s.
POKE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Request latency buckets: a Get that finds a local file answers in well under a millisecond, one
#: that waits on an object store in tens of milliseconds, and propeller's deadline is 10 s.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Input literal sizes: a path is tens of bytes, the largest accepted request is 4 MiB by default.
BYTES_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

#: Task types come from requests (an unknown one is answered NOT_FOUND but still counted), so the
#: label values are capped: past this many distinct task types, new ones are counted as "other".
MAX_TASK_TYPES = 32
OTHER = "other"


def http_code(code: grpc.StatusCode) -> str:
    """The error_code label flytekit would give a failure with gRPC status `code`."""
    return str(HTTP_CODE.get(code, 500))


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class _RequestTally:
    """One (task_type, operation): latency bucket counts, their sum, successes; failures by code."""

    __slots__ = ("counts", "failures", "metrics", "operation", "success", "sum", "task_type")

    def __init__(self, metrics: Metrics, task_type: str, operation: str) -> None:
        self.metrics, self.task_type, self.operation = metrics, task_type, operation
        #: counts[i]: requests that took at most REQUEST_BUCKETS[i] (and more than the bound before);
        #: the last one counts those beyond every bound.
        self.counts = [0] * (len(REQUEST_BUCKETS) + 1)
        self.sum = 0.0
        self.success = 0
        # Failures are rare: prometheus_client counters, bound on first use (a zero series for every
        # code that never happened would only be noise).
        self.failures: dict[grpc.StatusCode, Any] = {}

    def failure(self, code: grpc.StatusCode) -> Any:
        child = self.failures.get(code)
        if child is None:
            child = self.failures[code] = self.metrics.requests_failure.labels(
                self.task_type, self.operation, http_code(code)
            )
        return child


class _PokeTally:
    """One sensor: poke latency bucket counts and their sum, pokes by outcome."""

    __slots__ = ("counts", "outcomes", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(POKE_BUCKETS) + 1)
        self.sum = 0.0
        self.outcomes: dict[str, int] = {}


class Metrics:
    """All metrics of one server, in its own registry."""

    def __init__(self) -> None:
        # Without this every counter, histogram and summary child also exports a `<name>_created`
        # gauge (its creation time): a second series per child that no dashboard or alert of
        # flytekit's uses. It is process-wide in prometheus_client; this process is the connector.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # What prometheus_client's default registry carries and flytekit's connector therefore exports:
        # process_* (CPU, memory, open fds, start time), python_info, python_gc_*.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.requests_failure = Counter(
            f"{FLYTEKIT_PREFIX}requests_failure_total",
            "Total number of failed requests",
            ["task_type", "operation", "error_code"],
            registry=r,
        )
        self.input_literal_bytes = Histogram(
            f"{FLYTEKIT_PREFIX}input_literal_bytes",
            "Size of input literal",
            ["task_type"],
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.refused = Counter(
            f"{OWN_PREFIX}rpcs_refused_total",
            "Calls refused before reaching a servicer, by reason (overload: beyond --max-concurrent-rpcs, "
            "answered RESOURCE_EXHAUSTED; undecodable: INVALID_ARGUMENT)",
            ["reason"],
            registry=r,
        )
        self.build_info = Gauge(
            f"{OWN_PREFIX}build_info",
            "Always 1; the labels name the connector's version and what it runs on",
            ["version", "python", "flyteidl", "grpcio"],
            registry=r,
        )
        self.build_info.labels(
            __version__, platform.python_version(), _dist_version("flyteidl"), _dist_version("grpcio")
        ).set(1)
        self._task_types: set[str] = set()
        self._inputs: dict[str, Any] = {}
        # The hot counts: plain numbers changed on the event loop only, exported at scrape time.
        #: (task_type as the request said it, operation) -> its tally; bounded (see request_done).
        self._requests: dict[tuple[str, str], _RequestTally] = {}
        #: (task_type as exported, operation) -> its tally: what the scrape reads.
        self.requests: dict[tuple[str, str], _RequestTally] = {}
        #: sensor -> its tally. Sensor names come from the fixed catalog: bounded.
        self.pokes: dict[str, _PokeTally] = {}
        #: (event, label) -> count, for "rejected" (by reason) and "remembered" (by sensor).
        self.events: dict[tuple[str, str], int] = {}
        self.registry.register(TallyCollector(self))
        self._http: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _task_type(self, task_type: str) -> str:
        """`task_type`, or "other" once MAX_TASK_TYPES distinct ones have been seen."""
        if task_type in self._task_types:
            return task_type
        if len(self._task_types) >= MAX_TASK_TYPES:
            return OTHER
        self._task_types.add(task_type)
        return task_type

    def request_done(
        self, task_type: str, operation: str, seconds: float, code: grpc.StatusCode | None
    ) -> None:
        """Count one RPC; `code` is None on success, else the status it was answered with."""
        tally = self._requests.get((task_type, operation))
        if tally is None:
            tally = self._request_tally(task_type, operation)
        tally.counts[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        tally.sum += seconds
        if code is None:
            tally.success += 1
        else:
            tally.failure(code).inc()

    def _request_tally(self, task_type: str, operation: str) -> _RequestTally:
        exported = (self._task_type(task_type), operation)
        tally = self.requests.get(exported)
        if tally is None:
            tally = self.requests[exported] = _RequestTally(self, *exported)
        # Task types come from requests: past the cap, unknown ones are looked up the slow way.
        if len(self._requests) < MAX_TASK_TYPES * 8:
            self._requests[(task_type, operation)] = tally
        return tally

    def input_bytes(self, task_type: str, size: int) -> None:
        """Record the size of one CreateTask's inputs."""
        child = self._inputs.get(task_type)
        if child is None:
            child = self.input_literal_bytes.labels(self._task_type(task_type))
            if len(self._inputs) < MAX_TASK_TYPES:
                self._inputs[task_type] = child
        child.observe(size)

    def poked(self, sensor: str, kind: str, seconds: float) -> None:
        """Count one poke of `sensor` with outcome `kind` that took `seconds`."""
        tally = self.pokes.get(sensor)
        if tally is None:
            tally = self.pokes[sensor] = _PokeTally()
        tally.counts[bisect_left(POKE_BUCKETS, seconds)] += 1
        tally.sum += seconds
        outcomes = tally.outcomes
        outcomes[kind] = outcomes.get(kind, 0) + 1

    def engine_event(self, event: str, label: str) -> None:
        """Count what the engine reports besides pokes: "rejected" (by reason) or "remembered" (by sensor)."""
        # Labels are reasons and catalog sensor names: a small fixed set.
        key = (event, label)
        self.events[key] = self.events.get(key, 0) + 1

    def watch_store(self, read: StoreCounts) -> None:
        """Export the object-store counters `read` returns (kept as plain counters by the sensors)."""
        self.registry.register(StoreCollector(read))

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP on a daemon thread; returns the bound port."""
        addr = host.strip("[]") or "0.0.0.0"  # noqa: S104 (the operator chose the address)
        self._http, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        self.port = int(self._http.server_port)
        return self.port

    def stop(self) -> None:
        """Stop the HTTP endpoint, if it runs."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class TallyCollector:
    """The request, poke and engine-event counts of `metrics`, as metric families at scrape time.

    They are plain numbers changed only on the event loop (no lock per call, unlike prometheus_client's
    own metrics); a scrape, on the HTTP thread, copies each before reading it.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """flytekit's request families under its names, then the sensor families."""
        requests = dict(self.metrics.requests).items()
        # Spelled with `_total` as flytekit does; the exposition is the same either way.
        yield _counters(
            f"{FLYTEKIT_PREFIX}requests_success_total",
            "Total number of successful requests",
            ["task_type", "operation"],
            [(key, tally.success) for key, tally in requests],
        )
        # flytekit's is a Summary without quantiles (count and sum only); a histogram keeps both series
        # and adds buckets, so p99 can be computed and aggregated across replicas.
        yield _histograms(
            f"{FLYTEKIT_PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            ["task_type", "operation"],
            REQUEST_BUCKETS,
            [(key, tally.counts, tally.sum) for key, tally in requests],
        )
        pokes = dict(self.metrics.pokes).items()
        yield _counters(
            f"{OWN_PREFIX}pokes_total",
            "Sensor pokes by outcome (met, waiting, transient, timeout, failed, error)",
            ["sensor", "outcome"],
            [((sensor, kind), n) for sensor, poke in pokes for kind, n in dict(poke.outcomes).items()],
        )
        yield _histograms(
            f"{OWN_PREFIX}poke_latency_seconds",
            "Time one poke took",
            ["sensor"],
            POKE_BUCKETS,
            [((sensor,), poke.counts, poke.sum) for sensor, poke in pokes],
        )
        yield _counters(
            f"{OWN_PREFIX}poke_timeouts_total",
            "Pokes that ran out of their --poke-timeout budget",
            ["sensor"],
            [((sensor,), poke.outcomes.get("timeout", 0)) for sensor, poke in pokes],
        )
        events = dict(self.metrics.events).items()
        yield _counters(
            f"{OWN_PREFIX}resource_meta_rejected_total",
            "GetTask calls whose resource_meta this replica could not serve, by reason (unknown_key: "
            "signed with a key it lacks; invalid, category, sensor_unavailable: the task fails)",
            ["reason"],
            [((label,), n) for (event, label), n in events if event == "rejected"],
        )
        yield _counters(
            f"{OWN_PREFIX}answers_remembered_total",
            "GetTask calls answered from the last answer because the sensor policy said no poke was due",
            ["sensor"],
            [((label,), n) for (event, label), n in events if event == "remembered"],
        )


def _histograms(
    name: str,
    documentation: str,
    labels: list[str],
    bounds: tuple[float, ...],
    tallies: Iterable[tuple[tuple[str, ...], list[int], float]],
) -> HistogramMetricFamily:
    """A histogram family from (label values, per-bucket counts, sum) tallies."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, counts, total in tallies:
        family.add_metric(list(values), *_buckets(bounds, counts, total))
    return family


def _buckets(
    bounds: tuple[float, ...], counts: list[int], total: float
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative `le` buckets (ending with +Inf) and the sum, from per-bucket counts."""
    snapshot = list(counts)
    cumulative, running = [], 0
    for bound, count in zip((*bounds, float("inf")), snapshot, strict=True):
        running += count
        cumulative.append((floatToGoString(bound), float(running)))  # type: ignore[no-untyped-call]
    return cumulative, total


#: Returns (store requests by (protocol, operation), pokes answered by (protocol, source)).
StoreCounts = Callable[[], tuple[Mapping[tuple[str, str], int], Mapping[tuple[str, str], int]]]


class StoreCollector:
    """Object-store requests and how pokes were answered, read at scrape time from plain counters."""

    def __init__(self, read: StoreCounts) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        """The two counter families, as of now."""
        requests, answers = self.read()
        yield _counters(
            f"{OWN_PREFIX}store_requests",
            "Requests made to object stores and filesystems, by protocol and operation (info, list, glob)",
            ["protocol", "operation"],
            dict(requests).items(),
        )
        yield _counters(
            f"{OWN_PREFIX}store_answers",
            "Filesystem answers given to pokes, by source: own request, shared request, shared listing",
            ["protocol", "source"],
            dict(answers).items(),
        )


def _counters(
    name: str, documentation: str, labels: list[str], counts: Iterable[tuple[tuple[str, ...], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in sorted(counts):
        family.add_metric(list(values), count)
    return family
