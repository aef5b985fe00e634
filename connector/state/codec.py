"""resource_meta: the sensor's whole state, signed, so any replica can answer and a restart loses nothing.

Layout (proto/flyte_sensor_connector/v1/resource_meta.proto): a SignedResourceMeta whose `payload` is
a serialized SensorState and whose `mac` is HMAC-SHA256 over a domain tag, the key id and the
payload. Nothing inside the payload is parsed, and above all nothing is unpickled, before the mac is
checked in constant time; even then the config is unpickled only into classes on an allow-list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from sensors.policy import DEFAULT as DEFAULT_POLICY
from sensors.policy import Policy

from ._proto.flyte_sensor_connector.v1 import resource_meta_pb2 as pb
from .category import TaskCategory
from .keys import KEY_ID_LENGTH, Keyring

_DOMAIN = b"fsc-rm-v1\x00"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Protocol 4 is compact and understood by every supported Python.
PICKLE_PROTOCOL = 4
#: resource_meta lives in the workflow's custom resource in etcd, shared by every running node.
MAX_RESOURCE_META_BYTES = 4096


#: Each execution name field kept in resource_meta is cut to this many characters.
MAX_EXECUTION_FIELD = 128


class InvalidResourceMeta(ValueError):
    """resource_meta that this connector did not sign, or that was changed since: it can never verify."""


class UnknownKey(InvalidResourceMeta):
    """resource_meta signed with a key this replica does not hold; another replica (or a later one) may."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"resource_meta was signed with key {key_id!r}, which this replica does not hold "
            "(a key rotation in progress or a replica missing a key)."
        )


@dataclass(frozen=True)
class Execution:
    """The Flyte execution a task belongs to, from CreateTaskRequest.task_execution_metadata."""

    project: str = ""
    domain: str = ""
    name: str = ""
    node_id: str = ""
    retry_attempt: int = 0
    task_name: str = ""

    def __post_init__(self) -> None:
        for name in ("project", "domain", "name", "node_id", "task_name"):
            value = getattr(self, name)
            if len(value) > MAX_EXECUTION_FIELD:
                object.__setattr__(self, name, value[:MAX_EXECUTION_FIELD])

    @property
    def known(self) -> bool:
        """True when the request named an execution at all."""
        return bool(self.name)

    def log_fields(self) -> dict[str, Any]:
        """The fields every log line about the task carries."""
        if not self.known:
            return {}
        return {
            "execution": f"{self.project}/{self.domain}/{self.name}",
            "node": self.node_id,
            "retry": self.retry_attempt,
            "task_name": self.task_name,
        }


@dataclass(frozen=True)
class SensorState:
    """What a resource_meta carries."""

    category: TaskCategory
    sensor: str
    config: Any
    inputs: Mapping[str, Any]
    created_at: dt.datetime
    #: Output names the template declares; only these are returned.
    outputs: tuple[str, ...] = ()
    #: When to poke and when to give up.
    policy: Policy = DEFAULT_POLICY
    #: Which Flyte execution this task belongs to (empty when the request did not say).
    execution: Execution = Execution()


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: Mapping[tuple[str, str], type[Any]]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not an allowed config class") from None


class Codec:
    """Encodes SensorState into signed resource_meta and back."""

    def __init__(self, keyring: Keyring, config_classes: Iterable[type[Any]]) -> None:
        self._keyring = keyring
        self._allowed = {(c.__module__, c.__qualname__): c for c in config_classes}

    def _mac(self, secret: bytes, key_id: str, payload: bytes) -> bytes:
        return hmac.new(secret, _DOMAIN + key_id.encode() + b"\x00" + payload, hashlib.sha256).digest()

    def encode(self, state: SensorState) -> bytes:
        """Sign and serialize `state`."""
        if (type(state.config).__module__, type(state.config).__qualname__) not in self._allowed:
            raise TypeError(f"{type(state.config).__qualname__} is not a registered config class")
        msg = pb.SensorState(
            category_name=state.category.name,
            category_version=state.category.version,
            sensor=state.sensor,
            config_pickle=pickle.dumps(state.config, protocol=PICKLE_PROTOCOL),
            created_unix_ms=int((state.created_at - _EPOCH) / dt.timedelta(milliseconds=1)),
            outputs=list(state.outputs),
        )
        for name, value in state.inputs.items():
            msg.inputs[name].CopyFrom(_to_value(value))
        if not state.policy.is_default:
            msg.policy.CopyFrom(_policy_to_pb(state.policy))
        if state.execution.known:
            e = state.execution
            msg.execution.CopyFrom(
                pb.Execution(
                    project=e.project,
                    domain=e.domain,
                    name=e.name,
                    node_id=e.node_id,
                    retry_attempt=e.retry_attempt,
                    task_name=e.task_name,
                )
            )
        payload = msg.SerializeToString(deterministic=True)
        key = self._keyring.signing
        signed = pb.SignedResourceMeta(
            key_id=key.key_id, payload=payload, mac=self._mac(key.secret, key.key_id, payload)
        )
        return signed.SerializeToString(deterministic=True)

    def decode(self, blob: bytes) -> SensorState:
        """Verify and deserialize; InvalidResourceMeta for anything this connector did not sign."""
        if not blob:
            raise InvalidResourceMeta("resource_meta is empty.")
        if len(blob) > MAX_RESOURCE_META_BYTES:
            raise InvalidResourceMeta(
                f"resource_meta is {len(blob)} bytes, more than this connector ever writes."
            )
        signed = pb.SignedResourceMeta()
        try:
            signed.ParseFromString(blob)
        except DecodeError:
            raise InvalidResourceMeta("resource_meta is not a signed sensor state.") from None
        if not signed.key_id or not signed.mac:
            raise InvalidResourceMeta("resource_meta is not a signed sensor state.")
        key = self._keyring.accepted.get(signed.key_id)
        if key is None:
            if len(signed.key_id) != KEY_ID_LENGTH or not _is_hex(signed.key_id):
                raise InvalidResourceMeta("resource_meta names a key id this connector never writes.")
            raise UnknownKey(signed.key_id)
        if not hmac.compare_digest(self._mac(key.secret, key.key_id, signed.payload), signed.mac):
            raise InvalidResourceMeta("resource_meta signature does not verify: it was altered or forged.")
        # Verified: from here on the bytes are our own.
        try:
            return _read_state(signed.payload, self._allowed)
        except Exception as exc:  # verified bytes this version cannot read: the task, not a request, fails
            raise InvalidResourceMeta(
                f"resource_meta is signed but unreadable by this version: {str(exc)[:200]}"
            ) from None


def _read_state(payload: bytes, allowed: Mapping[tuple[str, str], type[Any]]) -> SensorState:
    """The state in a verified payload (raises whatever reading it raises)."""
    msg = pb.SensorState()
    msg.ParseFromString(payload)
    config = _AllowListUnpickler(msg.config_pickle, allowed).load()
    policy = _policy_from_pb(msg.policy) if msg.HasField("policy") else DEFAULT_POLICY
    e = msg.execution
    return SensorState(
        category=TaskCategory(msg.category_name, msg.category_version),
        sensor=msg.sensor,
        config=config,
        inputs={name: _from_value(v) for name, v in msg.inputs.items()},
        created_at=_EPOCH + dt.timedelta(milliseconds=msg.created_unix_ms),
        outputs=tuple(msg.outputs),
        policy=policy,
        execution=Execution(e.project, e.domain, e.name, e.node_id, e.retry_attempt, e.task_name),
    )


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else round(seconds * 1000)


def _s(ms: int) -> float | None:
    return None if ms == 0 else ms / 1000


def _policy_to_pb(policy: Policy) -> pb.Policy:
    return pb.Policy(
        poke_interval_ms=_ms(policy.poke_interval),
        backoff=policy.backoff if policy.backoff != 1.0 else 0.0,
        max_poke_interval_ms=_ms(policy.max_poke_interval),
        deadline_ms=_ms(policy.deadline),
        soft_fail=policy.soft_fail,
    )


def _policy_from_pb(msg: pb.Policy) -> Policy:
    return Policy(
        poke_interval=_s(msg.poke_interval_ms),
        backoff=msg.backoff or 1.0,
        max_poke_interval=_s(msg.max_poke_interval_ms),
        deadline=_s(msg.deadline_ms),
        soft_fail=msg.soft_fail,
    )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def task_id(resource_meta: bytes) -> str:
    """A short, stable name for one task in logs: any replica derives the same from its resource_meta."""
    return hashlib.sha256(resource_meta).hexdigest()[:12]


def _us(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _to_value(value: Any) -> pb.Value:
    if value is None:
        return pb.Value(null_value=True)
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(integer_value=value)
    if isinstance(value, float):
        return pb.Value(float_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return pb.Value(datetime_us=_us(aware - _EPOCH))
    if isinstance(value, dt.timedelta):
        return pb.Value(duration_us=_us(value))
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return pb.Value(string_list=pb.StringList(values=list(value)))
    raise TypeError(f"cannot keep an input of type {type(value).__name__} in resource_meta")


def _from_value(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "datetime_us":
        return _EPOCH + dt.timedelta(microseconds=value.datetime_us)
    if kind == "duration_us":
        return dt.timedelta(microseconds=value.duration_us)
    if kind == "string_list":
        return list(value.string_list.values)
    if kind in (None, "null_value"):
        return None
    return getattr(value, kind)
