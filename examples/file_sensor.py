"""Wait for a file, then count its lines.

pyflyte run examples/file_sensor.py wf --path /tmp/landing/data.csv
pyflyte run examples/file_sensor.py wf --path s3://bucket/landing/data.csv
"""

from __future__ import annotations

import fsspec
from flytekit import task, workflow

from sensors.flytekit import FileSensor

#: Met once the file exists and holds at least one byte.
wait_for_file = FileSensor(name="wait_for_file", min_size=1)


@task
def count_lines(path: str) -> int:
    """Lines in the file at `path`."""
    with fsspec.open(path, "rt") as f:
        return sum(1 for _ in f)


@workflow
def wf(path: str) -> int:
    """Wait until `path` exists and is not empty, then count its lines."""
    waited = wait_for_file(path=path)
    lines = count_lines(path=path)
    waited >> lines
    return lines
