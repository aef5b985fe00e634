"""A workflow author's own flytekit sensor, as found in user code: the connector must not import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flytekit.sensor.base_sensor import BaseSensor


@dataclass
class TableConfig:
    database: str = "analytics"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableConfig:
        return cls(**d)


class WaitForTable(BaseSensor):
    """Waits for a table; lives in user code, unknown to the connector."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, sensor_config=TableConfig(), **kwargs)

    async def poke(self, table: str) -> bool:
        return False
