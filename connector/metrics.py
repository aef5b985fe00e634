"""Prometheus metrics: flytekit's connector request metrics under their names, plus sensor pokes.

Each Server owns one CollectorRegistry (not prometheus_client's global one), so several servers in
one process (tests, a second replica) keep separate counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric

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


def http_code(code: grpc.StatusCode) -> str:
    """The error_code label flytekit would give a failure with gRPC status `code`."""
    return str(HTTP_CODE.get(code, 500))


class Metrics:
    """All metrics of one server, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Spelled with `_total` as flytekit does; prometheus_client exposes the same names either way.
        self.requests_success = Counter(
            f"{FLYTEKIT_PREFIX}requests_success_total",
            "Total number of successful requests",
            ["task_type", "operation"],
            registry=r,
        )
        self.requests_failure = Counter(
            f"{FLYTEKIT_PREFIX}requests_failure_total",
            "Total number of failed requests",
            ["task_type", "operation", "error_code"],
            registry=r,
        )
        self.request_latency = Summary(
            f"{FLYTEKIT_PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            ["task_type", "operation"],
            registry=r,
        )
        self.input_literal_bytes = Summary(
            f"{FLYTEKIT_PREFIX}input_literal_bytes", "Size of input literal", ["task_type"], registry=r
        )
        self.pokes = Counter(
            f"{OWN_PREFIX}pokes_total",
            "Sensor pokes by outcome (met, waiting, transient, timeout, failed, error)",
            ["sensor", "outcome"],
            registry=r,
        )
        self.poke_latency = Histogram(
            f"{OWN_PREFIX}poke_latency_seconds",
            "Time one poke took",
            ["sensor"],
            buckets=POKE_BUCKETS,
            registry=r,
        )
        self.poke_timeouts = Counter(
            f"{OWN_PREFIX}poke_timeouts_total",
            "Pokes that ran out of their --poke-timeout budget",
            ["sensor"],
            registry=r,
        )
        self._http: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def request_done(
        self, task_type: str, operation: str, seconds: float, code: grpc.StatusCode | None
    ) -> None:
        """Count one RPC; `code` is None on success, else the status it was answered with."""
        self.request_latency.labels(task_type, operation).observe(seconds)
        if code is None:
            self.requests_success.labels(task_type, operation).inc()
        else:
            self.requests_failure.labels(task_type, operation, http_code(code)).inc()

    def poked(self, sensor: str, kind: str, seconds: float) -> None:
        """Count one poke of `sensor` with outcome `kind` that took `seconds`."""
        self.pokes.labels(sensor, kind).inc()
        self.poke_latency.labels(sensor).observe(seconds)
        if kind == "timeout":
            self.poke_timeouts.labels(sensor).inc()

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


#: Returns (store requests by (protocol, operation), pokes answered by (protocol, source)).
StoreCounts = Callable[[], tuple[Mapping[tuple[str, str], int], Mapping[tuple[str, str], int]]]


class StoreCollector:
    """Object-store requests and how pokes were answered, read at scrape time from plain counters."""

    def __init__(self, read: StoreCounts) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        """The two counter families, as of now."""
        requests, answers = self.read()
        made = CounterMetricFamily(
            f"{OWN_PREFIX}store_requests",
            "Requests made to object stores and filesystems, by protocol and operation (info, list, glob)",
            labels=["protocol", "operation"],
        )
        for (protocol, operation), count in sorted(requests.items()):
            made.add_metric([protocol, operation], count)
        yield made
        answered = CounterMetricFamily(
            f"{OWN_PREFIX}store_answers",
            "Filesystem answers given to pokes, by source: own request, shared request, shared listing",
            labels=["protocol", "source"],
        )
        for (protocol, source), count in sorted(answers.items()):
            answered.add_metric([protocol, source], count)
        yield answered
