"""Wait for a day's parquet parts and their _SUCCESS marker, then use the matched paths.

pyflyte run examples/glob_sensor.py wf --pattern '/tmp/day=2026-11-24/*.parquet'
pyflyte run examples/glob_sensor.py wf --pattern 's3://bucket/day=2026-11-24/*.parquet'
"""

from __future__ import annotations

from flytekit import task, workflow

from sensors.flytekit import GlobSensor

#: Met once at least two parts match and `_SUCCESS` stands beside them; returns the matched paths.
wait_for_parts = GlobSensor(name="wait_for_parts", min_count=2, marker="_SUCCESS", outputs=True)


@task
def load(paths: list[str]) -> int:
    """Stand-in for a loader: how many parts it was given."""
    return len(paths)


@workflow
def wf(pattern: str) -> int:
    """Wait for the parts matching `pattern`, then load them."""
    paths = wait_for_parts(pattern=pattern)
    return load(paths=paths)
