"""The catalog stays consistent: every built-in sensor has its authoring class, alias and doc row."""

from __future__ import annotations

import dataclasses

import pytest

import sensors.flytekit
from sensors.registry import load_registry

from .conftest import ROOT

CATALOG = list(load_registry(plugins=False))


def test_every_builtin_loads() -> None:
    assert [cls.name for cls in CATALOG] == [
        "FileSensor",
        "GlobSensor",
        "HttpSensor",
        "SqlSensor",
        "TimeSensor",
    ]


@pytest.mark.parametrize("cls", CATALOG, ids=lambda c: c.name)
def test_authoring_class_and_alias(cls) -> None:
    authoring = getattr(sensors.flytekit, cls.name)
    assert authoring.catalog is cls
    assert f"sensors.flytekit.{cls.name}" in cls.aliases
    assert cls.one_line() and not cls.one_line().startswith(cls.name + "\n")


@pytest.mark.parametrize("cls", CATALOG, ids=lambda c: c.name)
def test_docs_table_lists_inputs_config_and_outputs(cls) -> None:
    doc = (ROOT / "docs" / "catalog.md").read_text()
    row = next((line for line in doc.splitlines() if line.startswith(f"| `{cls.name}`")), None)
    assert row is not None, f"docs/catalog.md has no row for {cls.name}"
    names = [*cls.inputs, *(f.name for f in dataclasses.fields(cls.config_type)), *cls.outputs]
    missing = [name for name in names if f"`{name}" not in row]
    assert not missing, f"docs/catalog.md's {cls.name} row does not mention {missing}"
