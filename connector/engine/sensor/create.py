"""CreateTask for sensors: a template in flytekit's shape and its inputs, checked into a SensorState.

The sensor is looked up by name in the catalog; nothing a request names is ever imported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2
from google.protobuf import json_format

from sensors.base import ConfigError, Sensor
from sensors.policy import Policy
from sensors.registry import SensorRegistry, UnavailableSensorError, UnknownSensorError

from ...state import literals
from ...state.category import TaskCategory
from ...state.codec import Execution, SensorState
from ..errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ..secret_policy import SecretPolicy, task_refusal
from ..user.sensors import UserModules, UserSensor
from .answer import MET_OUTPUT

#: Modules whose classes may be named by their bare class name (our own authoring classes).
_OWN_MODULES = (
    "",
    "sensors",
    "sensors.flytekit",
    "flytekitplugins.sensor_connector.flytekit",
    # The Flyte 2 authoring package (plugins/flyte2).
    "flyteplugins.sensor_connector.flyte2",
)


def check(
    request: agent_pb2.CreateTaskRequest,
    sensors: SensorRegistry,
    category: TaskCategory,
    now: dt.datetime,
    secrets: SecretPolicy | None = None,
    user: UserModules | None = None,
    default_deadline: float | None = None,
) -> SensorState:
    """The state a CreateTask request asks for, or a RequestError saying what is wrong with it.

    The secrets it would use are checked against the operator's secret policy (`secrets`; None
    grants none) before anything is read: PermissionDenied says what the operator would have to allow.
    A task whose policy sets no deadline gets `default_deadline` seconds (None or 0: none) in its
    policy only: the sensor's config, which a user's own sensor class receives whole, stays the
    template's.
    """
    template = request.template
    if not template.HasField("custom") or not template.custom.fields:
        raise InvalidArgument(
            "the task template has no `custom` field; a sensor task names its sensor there."
        )
    custom = json_format.MessageToDict(template.custom)
    module, name = custom.get("sensor_module"), custom.get("sensor_name")
    if not isinstance(name, str) or not name or not isinstance(module, str | None):
        raise InvalidArgument("the task template's custom field has no sensor_name string.")
    cls = resolve(sensors, module or "", name, user)
    outputs = tuple(template.interface.outputs.variables)
    try:
        if issubclass(cls, UserSensor):  # an author's flytekit sensor: its inputs stay literals
            _check_outputs(cls, template)
            policy, config = cls.keep(custom.get("sensor_config"), request.inputs)
            inputs: dict[str, Any] = {}
        else:
            policy, own_config = Policy.split(custom.get("sensor_config"))
            config = cls.parse_config(own_config)
            values = dict(custom.get("inputs") or {})
            values.update(literals.to_dict(request.inputs))
            inputs = cls.check_inputs(values)
            _check_outputs(cls, template)
            config = cls.prepare(config, inputs, tuple(o for o in outputs if o != MET_OUTPUT))
    except (ConfigError, literals.LiteralError) as exc:
        raise InvalidArgument(str(exc)) from None
    if default_deadline and policy.deadline is None:
        policy = dataclasses.replace(policy, deadline=default_deadline)
    execution = execution_of(request)
    refused = task_refusal(secrets, cls, config, inputs, execution)
    if refused is not None:
        raise PermissionDenied(refused)
    return SensorState(
        category=category,
        sensor=cls.name,
        config=config,
        inputs=inputs,
        created_at=now.replace(microsecond=0),
        outputs=outputs,
        policy=policy,
        execution=execution,
    )


def resolve(
    sensors: SensorRegistry, module: str, name: str, user: UserModules | None = None
) -> type[Sensor[Any]]:
    """The catalog sensor a template names, by its flytekit class path or, for our own, its name.

    A user's own flytekit sensor is in the catalog as `module.Class` when the operator allowed its module
    (--sensor-modules); any other module is refused, naming the option, and never imported.
    """
    try:
        return sensors.resolve(f"{module}.{name}" if module else name)
    except UnknownSensorError as exc:
        if module in _OWN_MODULES:
            try:
                return sensors.resolve(name)
            except UnknownSensorError:
                pass
        # A plugin that failed to import registered no aliases; its entry-point name is all we know.
        reason = sensors.unavailable.get(name)
        if reason is not None:
            raise FailedPrecondition(reason) from None
        if module and module not in _OWN_MODULES and not module.startswith("flytekit."):
            raise (user or UserModules()).refusal(module, name) from None
        raise NotFound(str(exc)) from None
    except UnavailableSensorError as exc:
        raise FailedPrecondition(str(exc)) from None


def _check_outputs(cls: type[Sensor[Any]], template: tasks_pb2.TaskTemplate) -> None:
    declared = {**cls.outputs, MET_OUTPUT: bool}
    for out_name, var in template.interface.outputs.variables.items():
        if out_name not in declared:
            offered = ", ".join(declared)
            raise InvalidArgument(
                f"the template declares output {out_name[:64]!r}, but {cls.name} produces {offered}."
            )
        want = literals.literal_type(declared[out_name])
        if var.type != want:
            raise InvalidArgument(
                f"the template declares output {out_name!r} as {json_format.MessageToDict(var.type)}, "
                f"but {cls.name} produces {json_format.MessageToDict(want)}."
            )


def execution_of(request: agent_pb2.CreateTaskRequest) -> Execution:
    """The Flyte execution a CreateTask request names (empty when it names none)."""
    if not request.HasField("task_execution_metadata"):
        return Execution()
    ident = request.task_execution_metadata.task_execution_id
    node = ident.node_execution_id
    run = node.execution_id
    return Execution(run.project, run.domain, run.name, node.node_id, ident.retry_attempt, ident.task_id.name)
