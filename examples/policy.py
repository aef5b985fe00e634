"""Poll a quota-limited store gently, give up after six hours, and branch on whether the file came.

pyflyte run examples/policy.py wf --path /tmp/landing/data.csv
pyflyte run examples/policy.py wf --path s3://bucket/landing/data.csv

The sensor pokes at once, then 5 minutes later, the gap doubling after each miss up to an hour.
Six hours after it started it gives up; `soft_fail` makes that a success with `met` False, so the
workflow goes on down the other branch instead of failing (or being retried, as a task `timeout`
would be). Locally, `pyflyte run` follows the same schedule.
"""

from __future__ import annotations

import datetime as dt

import fsspec
from flytekit import conditional, task, workflow

from sensors.flytekit import FileSensor

#: Met once the file exists; output `met` (declared because of soft_fail) is False after six hours.
wait_for_data = FileSensor(
    name="wait_for_data",
    poke_interval=dt.timedelta(minutes=5),
    backoff=2,
    max_poke_interval=dt.timedelta(hours=1),
    deadline=dt.timedelta(hours=6),
    soft_fail=True,
)


@task
def count_lines(path: str) -> str:
    """How many lines the file at `path` has."""
    with fsspec.open(path, "rt") as f:
        return f"{sum(1 for _ in f)} lines"


@task
def no_data() -> str:
    """What the day's report says when the file never came."""
    return "no data for today"


@workflow
def wf(path: str) -> str:
    """Wait up to six hours for `path`; count its lines if it came."""
    met = wait_for_data(path=path)
    return conditional("landed").if_(met.is_true()).then(count_lines(path=path)).else_().then(no_data())
