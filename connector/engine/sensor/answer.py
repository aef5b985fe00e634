"""The GetTaskResponse of a sensor task: one message per answer, from the task's fixed part plus a poke.

Propeller drops the RUNNING message and the console keeps what the first RUNNING answer carries, so
`custom_info` says what is awaited, the policy, the creation time and what the last poke found
(`status`, `outcome`, `details`, `last_poke`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2

from sensors.base import Sensor
from sensors.policy import awaited
from sensors.values import jsonable

from ...state import literals
from ...state.codec import SensorState
from .poke import Outcome, PokeOutcome

#: The boolean output any sensor may declare: True when met, False when a soft_fail deadline passed.
MET_OUTPUT = "met"
#: Outputs travel in the GetTask response; keep them well inside gRPC's default 4 MiB message.
MAX_OUTPUT_BYTES = 1024 * 1024

SENSOR_FAILED = agent_pb2.AgentError(
    code="SENSOR_FAILED",
    kind=agent_pb2.AgentError.NON_RECOVERABLE,
    origin=execution_pb2.ExecutionError.USER,
)


def fixed_part(state: SensorState, sensor: Sensor[Any]) -> agent_pb2.GetTaskResponse:
    """What every answer for this task carries: what is awaited, the policy, creation time, links."""
    info: dict[str, Any] = {
        "sensor": state.sensor,
        "awaiting": sensor.describe(state.inputs),
        "created_at": state.created_at.isoformat(),
    }
    policy = state.policy.describe(state.created_at)
    if policy:
        info["policy"] = policy
    response = agent_pb2.GetTaskResponse()
    response.resource.custom_info.update(jsonable(info))
    for link in sensor.links(state.inputs):
        response.resource.log_links.add(name=link.name, uri=link.uri)
    return response


def answer(
    fixed: agent_pb2.GetTaskResponse, outcome: PokeOutcome, outputs: literals_pb2.LiteralMap | None
) -> bytes:
    """The serialized GetTaskResponse for `outcome`: the task's fixed part plus what the poke found."""
    response = agent_pb2.GetTaskResponse()
    response.CopyFrom(fixed)
    resource = response.resource
    resource.phase = outcome.kind.phase
    resource.message = outcome.message
    fields = resource.custom_info.fields
    fields["status"].string_value = outcome.message
    fields["outcome"].string_value = outcome.kind.label
    fields["last_poke"].string_value = outcome.started_at.isoformat(timespec="seconds")
    if outcome.details:
        fields["details"].struct_value.update(jsonable(outcome.details))
    if outputs is not None and outcome.kind.phase == execution_pb2.TaskExecution.SUCCEEDED:
        resource.outputs.CopyFrom(outputs)
    if outcome.kind is Outcome.FAILED:
        resource.agent_error.CopyFrom(SENSOR_FAILED)
    body: bytes = response.SerializeToString()
    return body


def refusal(phase: int, message: str) -> bytes:
    """The serialized answer for a task this replica cannot serve: a phase and why, nothing else."""
    response = agent_pb2.GetTaskResponse()
    response.resource.phase = phase
    response.resource.message = message
    if phase == execution_pb2.TaskExecution.FAILED:
        response.resource.agent_error.CopyFrom(SENSOR_FAILED)
    body: bytes = response.SerializeToString()
    return body


def settle(
    state: SensorState, sensor: Sensor[Any], outcome: PokeOutcome
) -> tuple[PokeOutcome, literals_pb2.LiteralMap | None]:
    """A met outcome with the declared outputs as literals, or FAILED when they cannot be returned."""
    if outcome.kind is not Outcome.MET or not state.outputs:
        return outcome, None
    values = {**outcome.outputs, MET_OUTPUT: True}
    missing = [name for name in state.outputs if name not in values]
    if missing:
        problem = f"{state.sensor} was met but gave no value for output {', '.join(missing)}."
        return replace(outcome, kind=Outcome.FAILED, message=problem), None
    declared = {name: {**type(sensor).outputs, MET_OUTPUT: bool}[name] for name in state.outputs}
    outputs = literals.outputs_map({name: values[name] for name in state.outputs}, declared)
    if outputs.ByteSize() > MAX_OUTPUT_BYTES:
        problem = (
            f"{state.sensor} was met, but its outputs take {outputs.ByteSize()} bytes, more than the "
            f"{MAX_OUTPUT_BYTES} a response may carry; narrow what it matches."
        )
        return replace(outcome, kind=Outcome.FAILED, message=problem), None
    return outcome, outputs


def past_deadline(
    state: SensorState, sensor: Sensor[Any], last: PokeOutcome
) -> tuple[PokeOutcome, literals_pb2.LiteralMap | None]:
    """The final outcome once the deadline passed without the sensor being met: FAILED, or SOFT_FAILED
    with met=false under soft_fail when the task declares no other outputs."""
    message = state.policy.deadline_message(awaited(sensor.describe(state.inputs), state.sensor))
    if last.kind is not Outcome.WAITING:
        message = f"{message} The last poke said: {last.message}"
    if not state.policy.soft_fail:
        return replace(last, kind=Outcome.FAILED, message=message), None
    # Propeller reads outputs.pb when declared outputs are absent: never succeed without them.
    missing = [name for name in state.outputs if name != MET_OUTPUT]
    if missing:
        message = f"{message} Output {', '.join(missing)} cannot be given: the sensor was not met."
        return replace(last, kind=Outcome.FAILED, message=message), None
    outputs = None
    if MET_OUTPUT in state.outputs:
        outputs = literals.outputs_map({MET_OUTPUT: False}, {MET_OUTPUT: bool})
    return replace(last, kind=Outcome.SOFT_FAILED, message=message), outputs
