"""Write interop/flyte2/testdata: the templates interop/propeller uses, as Flyte 2's executor holds them.

    .venv/bin/python tests/vectors/make_flyte2_vectors.py

The same TaskTemplates that stock flytekit serialized (tests/vectors/file_sensor.json,
interop/propeller/testdata/glob_sensor.json, and the users' own sensors of tests/fixtures/user_pkg that
interop/propeller runs: tests/vectors/user_marker.json, user_table.json, user_suffix.json, and
user_sensor.json, whose module no connector allows), read as flyteidl2 TaskTemplates: every flyteidl
field keeps its number there, so the bytes are the same; only the JSON differs (an interface's
variables are a list in flyteidl2, a map in flyteidl).
"""

from __future__ import annotations

from pathlib import Path

from flyteidl.core import tasks_pb2 as tasks_v1
from flyteidl2.core import tasks_pb2 as tasks_v2
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "file_sensor.json": ROOT / "tests" / "vectors" / "file_sensor.json",
    "glob_sensor.json": ROOT / "interop" / "propeller" / "testdata" / "glob_sensor.json",
    "user_marker.json": ROOT / "tests" / "vectors" / "user_marker.json",
    "user_table.json": ROOT / "tests" / "vectors" / "user_table.json",
    "user_suffix.json": ROOT / "tests" / "vectors" / "user_suffix.json",
    "user_sensor.json": ROOT / "tests" / "vectors" / "user_sensor.json",
}


def main() -> None:
    out = ROOT / "interop" / "flyte2" / "testdata"
    out.mkdir(parents=True, exist_ok=True)
    for name, source in SOURCES.items():
        v1 = json_format.Parse(source.read_text(), tasks_v1.TaskTemplate())
        v2 = tasks_v2.TaskTemplate.FromString(v1.SerializeToString())
        (out / name).write_text(json_format.MessageToJson(v2, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
