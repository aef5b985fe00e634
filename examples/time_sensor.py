"""Wait until a point in time, or for a fixed delay, then go on.

pyflyte run examples/time_sensor.py wf --at 2026-11-24T06:00:00
pyflyte run examples/time_sensor.py wf_delay
"""

from __future__ import annotations

import datetime as dt

from flytekit import task, workflow

from sensors.flytekit import TimeSensor

#: Met once the `at` input has passed.
wait_until = TimeSensor(name="wait_until")
#: Met three seconds after the sensor started (no input).
wait_a_little = TimeSensor(name="wait_a_little", delay=3)


@task
def report(label: str) -> str:
    """Say that the wait is over."""
    return f"{label}: done waiting"


@workflow
def wf(at: dt.datetime) -> str:
    """Wait until `at`, then report."""
    waited = wait_until(at=at)
    done = report(label="at")
    waited >> done
    return done


@workflow
def wf_delay() -> str:
    """Wait three seconds, then report."""
    waited = wait_a_little()
    done = report(label="delay")
    waited >> done
    return done
