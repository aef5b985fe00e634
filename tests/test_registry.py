"""Who serves what: the engine registry, the sensor catalog and its aliases, literal decoding."""

from __future__ import annotations

import datetime as dt

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2

from connector.engine.errors import InvalidArgument, NotFound
from connector.engine.registry import EngineRegistry, TaskCategory, category_of
from connector.state import literals
from sensors.base import ConfigError, EmptyConfig, PokeResult, Sensor
from sensors.file import FileSensor
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError, load_registry

from .conftest import inputs, literal


def test_category_prefers_task_category_and_falls_back_to_task_type() -> None:
    assert category_of(agent_pb2.TaskCategory(name="sensor", version=2), "other") == TaskCategory("sensor", 2)
    assert category_of(None, "sensor") == TaskCategory("sensor", 0)
    assert category_of(agent_pb2.TaskCategory(), "sensor") == TaskCategory("sensor", 0)
    with pytest.raises(InvalidArgument):
        category_of(None, "")


def test_engine_registry_names_what_it_serves_when_asked_for_something_else() -> None:
    class Fake:
        category = TaskCategory("sensor", 0)
        agent_name = "Sensor"

    registry = EngineRegistry()
    registry.register(Fake())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already served"):
        registry.register(Fake())  # type: ignore[arg-type]
    with pytest.raises(NotFound, match=r"does not serve task category sensor v1; it serves sensor v0\."):
        registry.engine_for(TaskCategory("sensor", 1))
    assert list(registry.agents()) == ["Sensor"]


def test_catalog_resolves_names_and_stock_flytekit_aliases() -> None:
    registry = load_registry()
    assert registry.resolve("FileSensor") is FileSensor
    assert registry.resolve("flytekit.sensor.file_sensor.FileSensor") is FileSensor
    with pytest.raises(UnknownSensorError, match=r"registered sensors: .*FileSensor"):
        registry.resolve("my.module.FileSensor")
    assert FileSensor.config_type in registry.config_classes()


class _Other(Sensor[EmptyConfig]):
    """Another sensor that tries to take a taken name."""

    name = "FileSensor"

    def describe(self, inputs: object) -> dict[str, object]:
        return {}

    async def poke(self, inputs: object, ctx: object) -> PokeResult:
        return PokeResult(True, "")


def test_a_name_cannot_be_taken_twice_unless_clobbered() -> None:
    registry = SensorRegistry()
    registry.register(FileSensor)
    with pytest.raises(ValueError, match="already taken"):
        registry.register(_Other)
    registry.register(_Other, clobber=True)
    assert registry.resolve("FileSensor") is _Other


def test_an_unavailable_sensor_says_why() -> None:
    registry = SensorRegistry()
    registry.mark_unavailable("SqlSensor", "SqlSensor needs the sql extra.")
    with pytest.raises(UnavailableSensorError, match="needs the sql extra"):
        registry.resolve("SqlSensor")


def test_inputs_are_checked_against_the_declared_ones() -> None:
    assert FileSensor.check_inputs({"path": "/x"}) == {"path": "/x"}
    with pytest.raises(ConfigError, match="needs input path"):
        FileSensor.check_inputs({})
    with pytest.raises(ConfigError, match="must be str, not int 3"):
        FileSensor.check_inputs({"path": 3})


def test_literals_decode_to_plain_values() -> None:
    when = dt.datetime(2026, 11, 24, 12, 30, tzinfo=dt.UTC)
    decoded = literals.to_dict(inputs(s="x", i=3, f=1.5, b=True, t=when, names=["a", "b"]))
    assert decoded == {"s": "x", "i": 3, "f": 1.5, "b": True, "t": when, "names": ["a", "b"]}
    none = literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
    assert literals.to_python(none, "n") is None
    union = literals_pb2.Literal(scalar=literals_pb2.Scalar(union=literals_pb2.Union(value=literal("u"))))
    assert literals.to_python(union, "u") == "u"
    with pytest.raises(literals.LiteralError, match="input 'e' is empty"):
        literals.to_python(literals_pb2.Literal(), "e")


def test_outputs_encode_to_their_declared_literal_types() -> None:
    out = literals.outputs_map({"paths": ["a", "b"], "n": 2, "extra": 1}, {"paths": list[str], "n": int})
    assert set(out.literals) == {"paths", "n"}
    assert [v.scalar.primitive.string_value for v in out.literals["paths"].collection.literals] == ["a", "b"]
    assert literals.literal_type(list[str]).collection_type.simple == 3
