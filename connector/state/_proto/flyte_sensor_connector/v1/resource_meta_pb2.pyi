from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignedResourceMeta(_message.Message):
    __slots__ = ("key_id", "payload", "mac")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    payload: bytes
    mac: bytes
    def __init__(self, key_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class SensorState(_message.Message):
    __slots__ = ("category_name", "category_version", "sensor", "config_pickle", "inputs", "created_unix_ms", "outputs", "policy", "execution")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    CATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PICKLE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    category_name: str
    category_version: int
    sensor: str
    config_pickle: bytes
    inputs: _containers.MessageMap[str, Value]
    created_unix_ms: int
    outputs: _containers.RepeatedScalarFieldContainer[str]
    policy: Policy
    execution: Execution
    def __init__(self, category_name: _Optional[str] = ..., category_version: _Optional[int] = ..., sensor: _Optional[str] = ..., config_pickle: _Optional[bytes] = ..., inputs: _Optional[_Mapping[str, Value]] = ..., created_unix_ms: _Optional[int] = ..., outputs: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("poke_interval_ms", "backoff", "max_poke_interval_ms", "deadline_ms", "soft_fail")
    POKE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_POKE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    SOFT_FAIL_FIELD_NUMBER: _ClassVar[int]
    poke_interval_ms: int
    backoff: float
    max_poke_interval_ms: int
    deadline_ms: int
    soft_fail: bool
    def __init__(self, poke_interval_ms: _Optional[int] = ..., backoff: _Optional[float] = ..., max_poke_interval_ms: _Optional[int] = ..., deadline_ms: _Optional[int] = ..., soft_fail: _Optional[bool] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("project", "domain", "name", "node_id", "retry_attempt", "task_name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    domain: str
    name: str
    node_id: str
    retry_attempt: int
    task_name: str
    def __init__(self, project: _Optional[str] = ..., domain: _Optional[str] = ..., name: _Optional[str] = ..., node_id: _Optional[str] = ..., retry_attempt: _Optional[int] = ..., task_name: _Optional[str] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("string_value", "integer_value", "float_value", "bool_value", "datetime_us", "duration_us", "string_list", "null_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_US_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    STRING_LIST_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    integer_value: int
    float_value: float
    bool_value: bool
    datetime_us: int
    duration_us: int
    string_list: StringList
    null_value: bool
    def __init__(self, string_value: _Optional[str] = ..., integer_value: _Optional[int] = ..., float_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., datetime_us: _Optional[int] = ..., duration_us: _Optional[int] = ..., string_list: _Optional[_Union[StringList, _Mapping]] = ..., null_value: _Optional[bool] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...
