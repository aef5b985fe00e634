"""Serialize the catalog sensors with stock flytekit for the propeller interop suite (interop/propeller).

Run from the repository root:  .venv/bin/python tests/vectors/make_interop_vectors.py
Each file is the TaskTemplate (protobuf JSON) flytepropeller would send in CreateTaskRequest.template;
the Go suite loads them with protojson. FileSensor's template is tests/vectors/file_sensor.json
(flytekit's own FileSensor), so it is not repeated here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "interop" / "propeller" / "testdata"
sys.path.insert(0, str(ROOT))

from sensors.flytekit import GlobSensor, HttpSensor, SqlSensor, TimeSensor  # noqa: E402
from tests.vectors.serialize import template_of  # noqa: E402


def vectors() -> dict[str, object]:
    """The catalog declarations the suite drives, as the README examples declare them."""
    tasks = {
        "glob_sensor.json": GlobSensor(name="wait_for_parts", min_count=2, marker="_SUCCESS", outputs=True),
        "time_sensor.json": TimeSensor(name="wait_until"),
        "http_sensor.json": HttpSensor(
            name="wait_ready", json_pointer="/status", json_value="ready", outputs=("status",)
        ),
        "sql_sensor.json": SqlSensor(name="wait_for_rows", connection_secret="sales-db-url"),
    }
    return {name: json.loads(json_format.MessageToJson(template_of(t))) for name, t in tasks.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, value in vectors().items():
        path = OUT / name
        path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
