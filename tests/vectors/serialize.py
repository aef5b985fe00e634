"""How the tests serialize flytekit tasks: as `pyflyte register` would, with fixed settings.

Kept apart from make_vectors.py, which imports a user sensor that other tests check is never imported.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flyteidl.core import tasks_pb2
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable


def settings() -> SerializationSettings:
    """Registration settings with a fixed image, so serialized templates are stable."""
    image = Image(name="default", fqn="cr.flyte.org/flyteorg/flytekit", tag="py3.11-vectors")
    return SerializationSettings(
        project="flytesnacks",
        domain="development",
        version="v1",
        image_config=ImageConfig(default_image=image, images=[image]),
    )


def template_of(task: Any) -> tasks_pb2.TaskTemplate:
    """The TaskTemplate flytekit serializes for `task`, as `pyflyte register` would send it."""
    entity = get_serializable(OrderedDict(), settings(), task)
    template: tasks_pb2.TaskTemplate = entity.template.to_flyte_idl()
    return template
