"""Serialize sensor tasks with stock flytekit into the TaskTemplate JSON the tests replay.

Run from the repository root:  .venv/bin/python tests/vectors/make_vectors.py
Each vector is what flytepropeller would send in CreateTaskRequest.template for that task.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.sensor import FileSensor
from flytekit.tools.translator import get_serializable
from google.protobuf import json_format

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT.parent.parent))  # so user_sensors is importable as tests.vectors.user_sensors

from tests.vectors.user_sensors import WaitForTable  # noqa: E402


def settings() -> SerializationSettings:
    """Settings as `pyflyte register` would use them, with a fixed image so output is stable."""
    image = Image(name="default", fqn="cr.flyte.org/flyteorg/flytekit", tag="py3.11-vectors")
    return SerializationSettings(
        project="flytesnacks",
        domain="development",
        version="v1",
        image_config=ImageConfig(default_image=image, images=[image]),
    )


def template_json(task: object) -> dict[str, object]:
    """The TaskTemplate of `task` as flytekit serializes it, in protobuf JSON form."""
    entity = get_serializable(OrderedDict(), settings(), task)
    return json.loads(json_format.MessageToJson(entity.template.to_flyte_idl()))


def vectors() -> dict[str, object]:
    """Every task template the tests replay, by file name."""
    import flytekit

    out: dict[str, object] = {"flytekit_version.txt": flytekit.__version__}
    out["file_sensor.json"] = template_json(FileSensor(name="wait_for_file"))
    out["file_sensor_timeout.json"] = template_json(FileSensor(name="wait_with_timeout", timeout=3600))
    out["user_sensor.json"] = template_json(WaitForTable(name="wait_for_table"))
    return out


def main() -> int:
    for name, value in vectors().items():
        path = OUT / name
        text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
        path.write_text(text + "\n")
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
