"""Prometheus metrics: flytekit's connector request metrics under their names, plus sensor pokes.

Each Server owns its Metrics, and so its own registries (not prometheus_client's global one): two
servers in one process keep separate counts, and nothing here changes a process-wide setting. The
exported registry also gets the collectors prometheus_client's global registry has by default
(`process_*`, `python_info`, `python_gc_*`), as flytekit's connector exports them, and a
`flyte_sensor_connector_build_info` gauge.

All counts are prometheus_client's own Counter and Histogram. They are declared in a registry of their
own and exported through `WithoutCreated`, which leaves out the `<name>_created` series
prometheus_client adds to every counter and histogram child (no dashboard or alert of flytekit's uses
them; `disable_created_metrics()` would do the same for the whole process).

The request path binds label children once per label values (`_bound`): on the shared 2-core machine a
histogram `observe()` plus a counter `inc()` took 6.5 µs on bound children and 16.8 µs through
`.labels()` (timeit, 200,000 pairs), and a GetTask makes two such pairs. Label values are bounded:
task types are capped (MAX_TASK_TYPES), sensors come from the catalog, operations and outcomes from
the code.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import grpc
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
from prometheus_client.core import CounterMetricFamily, Metric

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


class Metrics:
    """All metrics of one server, in registries of its own."""

    def __init__(self) -> None:
        #: What /metrics serves: the process collectors, build info and `own` without `_created`.
        self.registry = CollectorRegistry(auto_describe=True)
        own = CollectorRegistry(auto_describe=True)
        self.registry.register(WithoutCreated(own))
        r = self.registry
        # What prometheus_client's default registry carries and flytekit's connector therefore exports:
        # process_* (CPU, memory, open fds, start time), python_info, python_gc_*.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            f"{OWN_PREFIX}build_info",
            "Always 1; the labels name the connector's version and what it runs on",
            ["version", "python", "flyteidl", "grpcio"],
            registry=r,
        )
        self.build_info.labels(
            __version__, platform.python_version(), _dist_version("flyteidl"), _dist_version("grpcio")
        ).set(1)
        request = ["task_type", "operation"]
        self.requests_success = Counter(
            f"{FLYTEKIT_PREFIX}requests_success", "Total number of successful requests", request, registry=own
        )
        self.requests_failure = Counter(
            f"{FLYTEKIT_PREFIX}requests_failure",
            "Total number of failed requests",
            [*request, "error_code"],
            registry=own,
        )
        # flytekit's is a Summary without quantiles (count and sum only); a histogram keeps both series
        # and adds buckets, so p99 can be computed and aggregated across replicas.
        self.request_latency = Histogram(
            f"{FLYTEKIT_PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            request,
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.input_literal_bytes = Histogram(
            f"{FLYTEKIT_PREFIX}input_literal_bytes",
            "Size of input literal",
            ["task_type"],
            buckets=BYTES_BUCKETS,
            registry=own,
        )
        self.pokes = Counter(
            f"{OWN_PREFIX}pokes",
            "Sensor pokes by outcome (met, waiting, transient, timeout, failed, error)",
            ["sensor", "outcome"],
            registry=own,
        )
        self.poke_latency = Histogram(
            f"{OWN_PREFIX}poke_latency_seconds",
            "Time one poke took",
            ["sensor"],
            buckets=POKE_BUCKETS,
            registry=own,
        )
        self.poke_timeouts = Counter(
            f"{OWN_PREFIX}poke_timeouts",
            "Pokes that ran out of their --poke-timeout budget",
            ["sensor"],
            registry=own,
        )
        self.rejected = Counter(
            f"{OWN_PREFIX}resource_meta_rejected",
            "GetTask calls whose resource_meta this replica could not serve, by reason (unknown_key: "
            "signed with a key it lacks; invalid, category, sensor_unavailable, secret_policy: "
            "the task fails)",
            ["reason"],
            registry=own,
        )
        self.remembered = Counter(
            f"{OWN_PREFIX}answers_remembered",
            "GetTask calls answered from the last answer because the sensor policy said no poke was due",
            ["sensor"],
            registry=own,
        )
        self.user_pokes_abandoned = Counter(
            f"{OWN_PREFIX}user_pokes_abandoned",
            "Pokes of users' own sensors (--sensor-modules) that outlived --poke-timeout and were left "
            "running in their worker thread",
            ["sensor"],
            registry=own,
        )
        self.protocol_requests = Counter(
            f"{OWN_PREFIX}protocol_requests",
            "Calls answered, by protocol (flyte1: flyteidl AsyncAgentService, flyte2: flyteidl2 "
            "AsyncConnectorService), operation and gRPC status code",
            ["protocol", "operation", "code"],
            registry=own,
        )
        self.refused = Counter(
            f"{OWN_PREFIX}rpcs_refused",
            "Calls refused before reaching a servicer, by reason (overload: beyond --max-concurrent-rpcs, "
            "answered RESOURCE_EXHAUSTED; undecodable: INVALID_ARGUMENT)",
            ["reason"],
            registry=own,
        )
        self._task_types: set[str] = set()
        #: (metric, label values) -> its bound child (see the module docstring); bounded as labels are.
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._http: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _bound(self, metric: Any, *labels: str) -> Any:
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def _task_type(self, task_type: str) -> str:
        """`task_type`, or "other" past MAX_TASK_TYPES distinct ones (they come from requests)."""
        if task_type in self._task_types:
            return task_type
        if len(self._task_types) >= MAX_TASK_TYPES:
            return OTHER
        self._task_types.add(task_type)
        return task_type

    def request_done(
        self,
        task_type: str,
        operation: str,
        seconds: float,
        code: grpc.StatusCode | None,
        protocol: str = "flyte1",
    ) -> None:
        """Count one RPC; `code` is None on success, else the status it was answered with.

        `protocol` is "flyte1" (flyteidl's AsyncAgentService) or "flyte2" (flyteidl2's
        AsyncConnectorService); flytekit's families count both alike, as one connector's work.
        """
        self._bound(self.protocol_requests, protocol, operation, "OK" if code is None else code.name).inc()
        task_type = self._task_type(task_type)
        self._bound(self.request_latency, task_type, operation).observe(seconds)
        if code is None:
            self._bound(self.requests_success, task_type, operation).inc()
        else:
            self._bound(self.requests_failure, task_type, operation, http_code(code)).inc()

    def input_bytes(self, task_type: str, size: int) -> None:
        """Record the size of one CreateTask's inputs."""
        self._bound(self.input_literal_bytes, self._task_type(task_type)).observe(size)

    def poked(self, sensor: str, outcome: str, seconds: float) -> None:
        """Count one poke of `sensor` with outcome label `outcome` that took `seconds`."""
        self._bound(self.poke_latency, sensor).observe(seconds)
        self._bound(self.pokes, sensor, outcome).inc()
        timeouts = self._bound(self.poke_timeouts, sensor)  # exported at 0 until the first timeout
        if outcome == "timeout":
            timeouts.inc()

    def engine_event(self, event: str, label: str) -> None:
        """Count what the engine reports besides pokes: "rejected" (by reason) or "remembered" (by sensor)."""
        self._bound(self.rejected if event == "rejected" else self.remembered, label).inc()

    def user_poke_abandoned(self, sensor: str) -> None:
        """Count one poke of a user sensor abandoned past --poke-timeout (still running in its thread)."""
        self._bound(self.user_pokes_abandoned, sensor).inc()

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


class WithoutCreated:
    """The families of `registry` without their `<name>_created` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        """The families, for the exporting registry's name-collision check."""
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        """Every family of the wrapped registry, as of now, minus `_created`."""
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


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
