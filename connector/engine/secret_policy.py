"""The operator's secret policy: which named secret may be used where (`--secret-policy FILE`).

A template only ever *names* a secret (sensors.secrets); this policy decides whether that name may be
used by this task at all. It maps each secret name to a grant:

    status-token:                        # HttpSensor auth_secret: sent to a URL the template names,
      hosts: [status.example.com, "*.example.org"]   # so `hosts` is required
      projects: [analytics]              # optional: Flyte projects (task_execution_metadata)
      domains: [production]              # optional: Flyte domains
    sales-db-url: {}                     # SqlSensor: the URL names its own destination; every project

A secret the policy does not grant (every secret, when no policy is given) is refused at CreateTask,
before anything is read or sent, and a task whose grant was withdrawn since fails at its next GetTask.
`*` as a secret name grants any name and `*` as a host any host: meant for local development only.

The file is JSON or YAML (JSON is YAML; PyYAML reads both). It is read once at start-up; a bad file
stops the server with a sentence naming the problem.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensors.base import SecretUse, Sensor, short, short_list
from sensors.secrets import check_name

from ..state.codec import Execution

log = logging.getLogger(__name__)

#: The option that names the policy file, for messages.
OPTION = "--secret-policy"
ANY = "*"
_FIELDS = ("hosts", "projects", "domains")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the problem."""


def _host_pattern(raw: str) -> str:
    host = raw.strip().lower().rstrip(".").strip("[]")
    if host == ANY:
        return host
    bare = host[2:] if host.startswith("*.") else host
    valid = bool(bare) and not any(c in bare for c in "*/@ ")
    if valid and ":" in bare:  # only an IPv6 address holds colons; a port is not part of a host
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            valid = False
    if not valid:
        raise ValueError(f"host {raw!r} is not a host name, an address or a '*.domain' pattern")
    return host


@dataclass(frozen=True)
class Grant:
    """Where one secret may be used; an empty tuple means no restriction (hosts: not sendable to a URL)."""

    hosts: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()

    def allows_host(self, host: str) -> bool:
        """Whether a secret with this grant may be sent to `host`."""
        host = host.lower().rstrip(".").strip("[]")
        for pattern in self.hosts:
            if pattern in (ANY, host):
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        return False


@dataclass(frozen=True)
class SecretPolicy:
    """Secret name -> Grant; `None` as a policy (no file given) grants nothing."""

    grants: Mapping[str, Grant]
    source: str = OPTION

    @classmethod
    def load(cls, path: Path) -> SecretPolicy:
        """Read and check a policy file (JSON or YAML)."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyError(f"{OPTION} {path}: cannot be read ({exc.strerror or exc})") from None
        import yaml  # only a connector given a policy needs it

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise PolicyError(f"{OPTION} {path}: not valid YAML or JSON{at}") from None
        try:
            return cls.parse(raw if raw is not None else {}, source=f"{OPTION} {path}")
        except ValueError as exc:
            raise PolicyError(f"{OPTION} {path}: {exc}") from None

    @classmethod
    def parse(cls, raw: Any, source: str = OPTION) -> SecretPolicy:
        """A policy from its decoded form: {secret name: {hosts, projects, domains}}."""
        if not isinstance(raw, Mapping):
            raise ValueError('must be a mapping of secret names to grants, e.g. {"db": {}}')
        grants = {}
        for name, body in raw.items():
            if not isinstance(name, str):
                raise ValueError(f"secret name {name!r} is not a string")
            if name != ANY:
                check_name(name)
            if body is None:
                body = {}
            if not isinstance(body, Mapping):
                raise ValueError(f"secret {name!r}: the grant must be a mapping (hosts, projects, domains)")
            unknown = sorted(set(body) - set(_FIELDS))
            if unknown:
                raise ValueError(
                    f"secret {name!r}: unknown field {short_list(unknown)}; "
                    "a grant takes hosts, projects and domains"
                )
            lists: dict[str, tuple[str, ...]] = {}
            for key in _FIELDS:
                value = body.get(key) or []
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise ValueError(f"secret {name!r}: {key} must be a list of non-empty strings")
                lists[key] = tuple(v.strip() for v in value)
            hosts = tuple(_host_pattern(h) for h in lists["hosts"])
            grants[name] = Grant(hosts, lists["projects"], lists["domains"])
        policy = cls(grants, source)
        wide = sorted(n for n, g in grants.items() if n == ANY or ANY in g.hosts)
        if wide:
            log.warning(
                "the secret policy grants %s to any secret name or host: for local development only",
                short_list(wide),
            )
        return policy


def task_refusal(
    policy: SecretPolicy | None,
    cls: type[Sensor[Any]],
    config: Any,
    inputs: Mapping[str, Any],
    execution: Execution,
) -> str | None:
    """Why a task of sensor `cls` with this config and these inputs may not use the secrets it would,
    for its Flyte execution; None when it may (or uses none)."""
    uses = cls.secret_uses(config, inputs)
    if not uses:
        return None
    return refusal(policy, uses, execution.project, execution.domain, cls.name)


def refusal(
    policy: SecretPolicy | None, uses: Iterable[SecretUse], project: str, domain: str, sensor: str
) -> str | None:
    """Why this task may not use the secrets it names, in one sentence, or None when it may."""
    for use in uses:
        reason = _refuse_one(policy, use, project, domain, sensor)
        if reason is not None:
            return reason
    return None


def _refuse_one(
    policy: SecretPolicy | None, use: SecretUse, project: str, domain: str, sensor: str
) -> str | None:
    name = use.name
    hint = f"{name}: {{hosts: [{use.host}]}}" if use.host is not None else f"{name}: {{}}"
    if policy is None:
        return (
            f"the connector has no secret policy, so no task may use secret {name!r}; the operator "
            f"would have to grant it with {OPTION} (e.g. `{hint}`)."
        )
    grant = policy.grants.get(name) or policy.grants.get(ANY)
    if grant is None:
        return (
            f"the connector's secret policy does not grant secret {name!r}; the operator would have to add "
            f"`{hint}` to {OPTION}."
        )
    if use.host is not None and not grant.allows_host(use.host):
        if not grant.hosts:
            return (
                f"the secret policy grants secret {name!r} to no host, and {sensor} sends it to "
                f"{short(use.host)}; the operator would have to list that host under its hosts."
            )
        return (
            f"the secret policy lets secret {name!r} go only to {_names(grant.hosts)}, not "
            f"{short(use.host)}; the operator would have to add that host to its hosts."
        )
    for what, allowed, value in (("project", grant.projects, project), ("domain", grant.domains, domain)):
        if allowed and value not in allowed:
            asked = f"{what} {short(value)!r}" if value else f"a task that names no {what}"
            return (
                f"the secret policy grants secret {name!r} only to {what}s {_names(allowed)}, not to "
                f"{asked}; the operator would have to add it to the secret's {what}s."
            )
    return None


def _names(values: Sequence[str]) -> str:
    return short_list(values, 4)
