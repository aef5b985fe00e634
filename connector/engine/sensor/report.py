"""What GetTaskLogs and GetTaskMetrics tell about one sensor: its story in plain words, and its figures.

Metric data follows flyteidl's ExecutionMetricResult: Prometheus' range-query result shape,
`{"resultType": "matrix", "result": [{"metric": {labels}, "values": [[unix_seconds, "value"], ...]}]}`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, metrics_pb2
from google.protobuf import struct_pb2, timestamp_pb2

from sensors.base import Sensor, human_duration

from ...state.codec import SensorState
from ..base import TimeWindow
from ..errors import InvalidArgument
from .poke import PokeOutcome

ELAPSED = "elapsed_seconds"
POKE_LATENCY = "poke_latency_seconds"
#: Every query this engine answers, in the order answered when a request names none.
QUERIES = (ELAPSED, POKE_LATENCY)
#: Prometheus refuses range queries with more points per series than this; so do we.
MAX_POINTS = 11_000


def story(
    state: SensorState, sensor: Sensor[Any], outcome: PokeOutcome, now: dt.datetime
) -> list[agent_pb2.LogLine]:
    """Which sensor, what it waits for, since when, and what a poke made now found; the verdict comes last."""
    created = state.created_at
    facts = ", ".join(f"{k}={_show(v)}" for k, v in sensor.describe(state.inputs).items()) or "its condition"
    lines = [
        (created, f"{state.sensor} waits for {facts}."),
        (created, f"Created at {_iso(created)}, {human_duration(now - created)} ago."),
    ]
    lines += [(created, f"{link.name}: {link.uri}") for link in sensor.links(state.inputs)]
    if outcome.details:
        lines.append(
            (
                outcome.started_at,
                "Details: " + ", ".join(f"{k}={_show(v)}" for k, v in outcome.details.items()),
            )
        )
    phase = execution_pb2.TaskExecution.Phase.Name(outcome.kind.phase)
    lines.append(
        (
            outcome.started_at,
            f"Poke at {_iso(outcome.started_at)} took {outcome.seconds * 1000:.1f} ms: "
            f"{outcome.kind.verdict} — {outcome.message} Phase {phase}.",
        )
    )
    return [
        agent_pb2.LogLine(timestamp=_ts(ts), message=msg, originator=agent_pb2.SYSTEM) for ts, msg in lines
    ]


def wanted(queries: Iterable[str]) -> tuple[list[str], list[str]]:
    """The known queries asked for (all when none are), once each, and the unknown names."""
    asked = list(dict.fromkeys(queries)) or list(QUERIES)
    return [q for q in asked if q in QUERIES], [q for q in asked if q not in QUERIES]


def results(
    state: SensorState,
    outcome: PokeOutcome | None,
    queries: Sequence[str],
    window: TimeWindow,
    now: dt.datetime,
) -> list[metrics_pb2.ExecutionMetricResult]:
    """One ExecutionMetricResult per known query; `outcome` is needed for poke_latency_seconds."""
    answers = []
    for query in queries:
        if query == ELAPSED:
            points = [
                (t, (t - state.created_at).total_seconds())
                for t in sample_times(state.created_at, window, now)
            ]
            series = [{"metric": {"__name__": ELAPSED, "sensor": state.sensor}, "values": points}]
        elif query == POKE_LATENCY and outcome is not None:
            labels = {"__name__": POKE_LATENCY, "sensor": state.sensor, "outcome": outcome.kind.label}
            series = [{"metric": labels, "values": [(outcome.started_at, outcome.seconds)]}]
        else:
            continue
        answers.append(metrics_pb2.ExecutionMetricResult(metric=query, data=_matrix(series)))
    return answers


def sample_times(created: dt.datetime, window: TimeWindow, now: dt.datetime) -> list[dt.datetime]:
    """Now when no start is given, else every step from start to end, within the task's life."""
    if window.start is None:
        return [now]
    start = max(window.start, created)
    end = min(window.end or now, now)
    if start > end:
        return []
    step = window.step if window.step is not None and window.step > dt.timedelta(0) else None
    if step is None:
        return [start] if start == end else [start, end]
    count = int((end - start) / step) + 1
    if count > MAX_POINTS:
        raise InvalidArgument(
            f"the query asks for {count} points per series, more than {MAX_POINTS}; use a larger step."
        )
    return [start + i * step for i in range(count)]


def _matrix(series: list[dict[str, Any]]) -> struct_pb2.Struct:
    data = struct_pb2.Struct()
    result = [
        {"metric": s["metric"], "values": [[t.timestamp(), _number(v)] for t, v in s["values"]]}
        for s in series
    ]
    data.update({"resultType": "matrix", "result": result})
    return data


def _number(value: float) -> str:
    # Prometheus writes sample values as strings in their shortest exact form.
    return repr(round(value, 6))


def _ts(when: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
