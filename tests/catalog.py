"""Helpers for catalog tests: serialize flytekit-declared sensors and send them as propeller would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2

from .conftest import ROOT, Connector, inputs
from .vectors.serialize import template_of

EXAMPLES = ROOT / "examples"


def request_for(task_or_template: Any, **values: Any) -> agent_pb2.CreateTaskRequest:
    """A CreateTaskRequest for a flytekit task (or a template) with plain input values."""
    template = (
        task_or_template
        if isinstance(task_or_template, tasks_pb2.TaskTemplate)
        else template_of(task_or_template)
    )
    return agent_pb2.CreateTaskRequest(
        template=template, inputs=inputs(**values), output_prefix="s3://bucket/out"
    )


async def expect_rejected(
    connector: Connector, request: agent_pb2.CreateTaskRequest, code: grpc.StatusCode
) -> str:
    """Create `request`, expecting the connector to refuse it with `code`; returns the message."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await connector.create(request)
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


def load_example(name: str) -> ModuleType:
    """Import examples/NAME.py as a module, the way `pyflyte run examples/NAME.py` loads it."""
    path: Path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
