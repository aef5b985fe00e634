"""A Flyte 2 workflow (the `flyte` SDK 2.12) that waits for a file, then reads it.

    pip install flyteplugins-sensor-connector          # built from plugins/flyte2
    python examples/flyte2_file_sensor.py /tmp/in/data.csv     # a local run: pokes in this process

On a cluster, Flyte 2's executor sends `wait_for_file` to flyte-sensor-connector (docs/deploy.md,
section 18), which waits without a pod; the other tasks run as usual.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import flyte
from flyteplugins.sensor_connector import FileSensor

# Poke every 2 s; give up after 10 minutes (without a deadline the connector gives Flyte 2 sensors one day).
wait_for_file = FileSensor(name="wait_for_file", poke_interval=2, deadline=600)
sensors = flyte.TaskEnvironment.from_task("sensors", wait_for_file)
env = flyte.TaskEnvironment(name="file_sensor_example", depends_on=[sensors])


@env.task
async def count_lines(path: str) -> int:
    text = await asyncio.to_thread(Path(path).read_text)
    return len(text.splitlines())


@env.task
async def main(path: str) -> int:
    await wait_for_file(path=path)
    return await count_lines(path=path)


if __name__ == "__main__":
    flyte.init()
    run = flyte.with_runcontext(mode="local").run(main, path=sys.argv[1])
    print(f"lines: {run.outputs()[0]}")
