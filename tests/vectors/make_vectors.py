"""Serialize sensor tasks with stock flytekit into the TaskTemplate JSON the tests replay.

Run from the repository root:  .venv/bin/python tests/vectors/make_vectors.py
Each vector is what flytepropeller would send in CreateTaskRequest.template for that task.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flytekit.sensor import FileSensor
from google.protobuf import json_format

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT.parent.parent))  # so user_sensors is importable as tests.vectors.user_sensors
# The fixture package of users' own sensors (tests/fixtures/user_pkg), as its author would import it.
sys.path.insert(0, str(OUT.parent / "fixtures" / "user_pkg"))

from tests.vectors.serialize import template_of  # noqa: E402
from tests.vectors.user_sensors import WaitForTable  # noqa: E402


def template_json(task: object) -> dict[str, object]:
    """The TaskTemplate of `task` as flytekit serializes it, in protobuf JSON form."""
    return json.loads(json_format.MessageToJson(template_of(task)))


def vectors() -> dict[str, object]:
    """Every task template the tests replay, by file name."""
    import flytekit

    out: dict[str, object] = {"flytekit_version.txt": flytekit.__version__}
    out["file_sensor.json"] = template_json(FileSensor(name="wait_for_file"))
    out["file_sensor_timeout.json"] = template_json(FileSensor(name="wait_with_timeout", timeout=3600))
    out["user_sensor.json"] = template_json(WaitForTable(name="wait_for_table"))
    out.update(user_vectors())
    return out


def user_vectors() -> dict[str, object]:
    """Templates of the fixture package's own flytekit sensors (tests/test_user_sensors.py)."""
    from mysensors import markers

    return {
        "user_marker.json": template_json(markers.MarkerSensor(name="wait_marker")),
        "user_marker_suffix.json": template_json(
            markers.MarkerSensor(name="wait_marker_done", config=markers.MarkerConfig(suffix=".done"))
        ),
        "user_suffix.json": template_json(
            markers.SuffixSensor(name="wait_suffix", config=markers.SuffixConfig(suffix=".done"))
        ),
        "user_partition.json": template_json(markers.PartitionSensor(name="wait_partition")),
        "user_sync.json": template_json(markers.SyncMarkerSensor(name="wait_sync")),
        "user_table.json": template_json(
            markers.TableSensor(name="wait_table", config=markers.MarkerConfig(deadline=3.0))
        ),
        "user_gone.json": template_json(markers.GoneSensor(name="wait_gone")),
        "user_sleepy.json": template_json(markers.SleepySensor(name="wait_sleepy")),
        "user_stuck.json": template_json(markers.StuckSensor(name="wait_stuck")),
        "user_slow_input.json": template_json(markers.SlowInputSensor(name="wait_slow_input")),
        "user_maybe.json": template_json(markers.MaybeSensor(name="wait_maybe")),
    }


def main() -> int:
    for name, value in vectors().items():
        path = OUT / name
        text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
        path.write_text(text + "\n")
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
