"""A catalog sensor declared as a task: the part both authoring packages share, without flytekit or flyte.

`sensors.flytekit.CatalogSensorTask` (flytekit) and `flyteplugins.sensor_connector.flyte2.SensorTask`
(the flyte SDK) are both `CatalogTask`s: they take the same keywords (the sensor's config fields, the
policy, `outputs`, `met`, and their framework's task options), which `declare` sorts and checks once, at
declaration, with the sentences the connector would give at CreateTask; each class then builds its
framework's task from the result (`task_arguments`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from .base import ConfigError, Sensor
from .policy import POLICY_FIELDS, Policy
from .values import jsonable

#: The boolean output that says whether the sensor was met (False when a soft_fail deadline passed).
MET_OUTPUT = "met"


@dataclasses.dataclass(frozen=True)
class Declaration:
    """A checked declaration: the policy, the sensor's own config, the outputs, and the task options."""

    policy: Policy
    #: The sensor's own config fields as the template carries them (plain JSON values).
    own: dict[str, Any]
    #: The catalog sensor's parsed config.
    config: Any
    #: The declared outputs' names, `met` last when declared.
    outputs: tuple[str, ...]
    #: Every output the task may declare, with its type.
    offered: dict[str, Any]
    #: The keywords left for the framework's task class (image, retries, timeout, ...).
    task_options: dict[str, Any]

    @property
    def sensor_config(self) -> dict[str, Any]:
        """The template's `sensor_config`: the sensor's own fields and the policy's non-default ones."""
        return {**self.own, **self.policy.to_dict()}


def declare(
    catalog: type[Sensor[Any]],
    config: Mapping[str, Any] | None,
    keywords: Mapping[str, Any],
    *,
    outputs: bool | Sequence[str],
    met: bool | None,
    task_keywords: Collection[str],
    framework: str,
) -> Declaration:
    """Sort `config` and `keywords` into config fields, policy and task options, and check them.

    A keyword that is neither a config field, a policy field nor one of `task_keywords` (what the
    framework's task class takes) is refused: the task classes would swallow it, and a misspelt config
    field would vanish. `framework` names those options in the sentence ("flytekit", "flyte").
    """
    fields = {f.name for f in dataclasses.fields(catalog.config_type)}
    values = dict(config or {})
    values.update({k: v for k, v in keywords.items() if k in fields or k in POLICY_FIELDS})
    task_options = {k: v for k, v in keywords.items() if k not in fields and k not in POLICY_FIELDS}
    unknown = sorted(set(task_options) - set(task_keywords))
    if unknown:
        raise ConfigError(
            f"{catalog.name} has no config field {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(fields)) or 'none'}, the policy "
            f"({', '.join(POLICY_FIELDS)}) and {framework} task options."
        )
    # Checked as the connector will receive them (plain JSON values), so it fails here, at declaration,
    # with the sentences the connector would give at CreateTask.
    policy, own = Policy.split(jsonable(values))
    parsed = catalog.parse_config(own)
    if outputs is True:
        names: tuple[str, ...] = tuple(catalog.outputs)
    elif outputs is False:
        names = ()
    else:
        names = tuple(outputs)
    offered = {**catalog.outputs, MET_OUTPUT: bool}
    missing = [n for n in names if n not in offered]
    if missing:
        raise ValueError(
            f"{catalog.name} has no output {', '.join(missing)}; it offers {', '.join(offered)}."
        )
    if met if met is not None else policy.soft_fail:
        names = (*(n for n in names if n != MET_OUTPUT), MET_OUTPUT)
    if policy.soft_fail and len(names) > 1:
        # A soft-failed sensor has nothing to put in them; the connector would fail the task then.
        raise ConfigError(
            f"{catalog.name} with soft_fail can declare only the output {MET_OUTPUT!r}: "
            f"at the deadline there is no value for {', '.join(n for n in names if n != MET_OUTPUT)}."
        )
    return Declaration(policy, own, parsed, names, offered, task_options)


class CatalogTask:
    """A catalog sensor declared as a task, the constructor both authoring packages share; mixed in
    before the framework's task class, which it builds with `task_arguments`."""

    catalog: ClassVar[type[Sensor[Any]]]
    #: The framework whose task options the class takes, named in the sentence refusing others.
    framework: ClassVar[str]

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        *,
        outputs: bool | Sequence[str] = False,
        met: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.declaration = declare(
            self.catalog,
            config,
            kwargs,
            outputs=outputs,
            met=met,
            task_keywords=self.task_keywords(),
            framework=self.framework,
        )
        super().__init__(**self.task_arguments(name, self.declaration))
        self.built()

    @classmethod
    def task_keywords(cls) -> Collection[str]:
        """The keywords the framework's task class takes (image, retries, ...), never taken as config."""
        raise NotImplementedError

    def task_arguments(self, name: str, declaration: Declaration) -> dict[str, Any]:
        """The keyword arguments the framework's task class is built with."""
        raise NotImplementedError

    def built(self) -> None:
        """After the framework's task is built: what it must be told besides its arguments (nothing)."""
