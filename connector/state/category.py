"""Task categories: a task type and its version, and the one this connector's sensors are served under."""

from __future__ import annotations

from typing import NamedTuple


class TaskCategory(NamedTuple):
    """A task type and its version, as flyteidl's TaskCategory says them."""

    name: str
    version: int = 0

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


#: The category of every sensor task: flytekit's BaseSensor templates say type "sensor", version 0.
SENSOR_CATEGORY = TaskCategory("sensor", 0)
