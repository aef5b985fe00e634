"""resource_meta: round trip, tampering, keys, rotation, size, and forged pickles that must never run."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest

from connector.engine.registry import TaskCategory
from connector.state._proto.flyte_sensor_connector.v1 import resource_meta_pb2 as pb
from connector.state.codec import Codec, InvalidResourceMeta, SensorState
from connector.state.keys import Keyring, SigningKey, SigningKeyError, load_keyring, read_key_file
from sensors.file import FileSensorConfig

KEY_A = SigningKey.from_secret(b"a" * 32)
KEY_B = SigningKey.from_secret(b"b" * 40)
CREATED = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)


def codec(*keys: SigningKey) -> Codec:
    return Codec(Keyring.of(list(keys or [KEY_A])), [FileSensorConfig])


def state(path: str = "s3://bucket/key", **inputs: object) -> SensorState:
    return SensorState(
        category=TaskCategory("sensor", 0),
        sensor="FileSensor",
        config=FileSensorConfig(min_size=3),
        inputs={"path": path, **inputs},
        created_at=CREATED,
    )


def test_round_trip_keeps_every_field() -> None:
    values = {
        "n": 7,
        "ratio": 0.5,
        "flag": True,
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        "wait": dt.timedelta(minutes=3, microseconds=5),
        "names": ["a", "b"],
        "nothing": None,
    }
    original = state(**values)
    decoded = codec().decode(codec().encode(original))
    assert decoded == original


def test_file_sensor_with_a_100_character_path_fits_in_512_bytes() -> None:
    path = "s3://" + "p" * 95
    assert len(path) == 100
    blob = codec().encode(state(path))
    assert len(blob) <= 512, len(blob)


@pytest.mark.parametrize("position", [0, 5, 20, 60, -40, -1])
def test_any_flipped_byte_is_rejected(position: int) -> None:
    blob = bytearray(codec().encode(state()))
    blob[position] ^= 0x01
    with pytest.raises(InvalidResourceMeta):
        codec().decode(bytes(blob))


def test_payload_changed_and_mac_kept_is_rejected() -> None:
    signed = pb.SignedResourceMeta.FromString(codec().encode(state()))
    inner = pb.SensorState.FromString(signed.payload)
    inner.inputs["path"].string_value = "/etc/shadow"
    signed.payload = inner.SerializeToString()
    with pytest.raises(InvalidResourceMeta, match="altered or forged"):
        codec().decode(signed.SerializeToString())


def test_a_key_this_connector_does_not_hold_is_rejected() -> None:
    blob = codec(KEY_B).encode(state())
    with pytest.raises(InvalidResourceMeta, match="does not hold"):
        codec(KEY_A).decode(blob)


def test_a_claimed_key_id_with_a_mac_from_another_key_is_rejected() -> None:
    signed = pb.SignedResourceMeta.FromString(codec(KEY_B).encode(state()))
    signed.key_id = KEY_A.key_id
    with pytest.raises(InvalidResourceMeta, match="altered or forged"):
        codec(KEY_A).decode(signed.SerializeToString())


def test_rotation_old_key_still_verifies_new_key_signs() -> None:
    old_blob = codec(KEY_A).encode(state())
    rotated = codec(KEY_B, KEY_A)
    assert rotated.decode(old_blob) == state()
    new_blob = rotated.encode(state())
    assert pb.SignedResourceMeta.FromString(new_blob).key_id == KEY_B.key_id
    with pytest.raises(InvalidResourceMeta):
        codec(KEY_A).decode(new_blob)


@pytest.mark.parametrize("blob", [b"", b"\x00", b"garbage that is not protobuf \xff\xff", b"\n\x08deadbeef"])
def test_empty_and_garbage_are_rejected(blob: bytes) -> None:
    with pytest.raises(InvalidResourceMeta):
        codec().decode(blob)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(_Boom.marker),))

    marker = Path("/nonexistent")


def _forge(c: Codec, key: SigningKey, config_pickle: bytes) -> bytes:
    payload = pb.SensorState(
        category_name="sensor", sensor="FileSensor", config_pickle=config_pickle, created_unix_ms=1
    ).SerializeToString()
    mac = c._mac(key.secret, key.key_id, payload)
    return pb.SignedResourceMeta(key_id=key.key_id, payload=payload, mac=mac).SerializeToString()


def test_forged_pickle_with_a_guessed_mac_never_runs(tmp_path: Path) -> None:
    _Boom.marker = tmp_path / "pwned"
    evil = pickle.dumps(_Boom())
    attacker_key = SigningKey(KEY_A.key_id, b"x" * 32)  # right id, wrong secret
    with pytest.raises(InvalidResourceMeta):
        codec().decode(_forge(codec(), attacker_key, evil))
    assert not _Boom.marker.exists()


def test_even_a_validly_signed_pickle_only_builds_registered_config_classes(tmp_path: Path) -> None:
    _Boom.marker = tmp_path / "pwned"
    evil = pickle.dumps(_Boom())
    with pytest.raises(InvalidResourceMeta, match="not an allowed config class"):
        codec().decode(_forge(codec(), KEY_A, evil))
    assert not _Boom.marker.exists()


def test_encode_refuses_a_config_class_that_is_not_registered() -> None:
    bad = SensorState(TaskCategory("sensor"), "FileSensor", object(), {}, CREATED)
    with pytest.raises(TypeError):
        codec().encode(bad)


def test_key_files_short_missing_and_whitespace(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("too short")
    with pytest.raises(SigningKeyError, match="at least 32"):
        read_key_file(short)
    with pytest.raises(SigningKeyError, match="cannot read"):
        read_key_file(tmp_path / "absent")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("k" * 40 + "\n")
    b.write_text("k" * 40)
    assert read_key_file(a).key_id == read_key_file(b).key_id
    assert "k" * 40 not in repr(read_key_file(a))


def test_generated_key_is_private_and_survives_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = load_keyring([], state_dir)
    key_path = state_dir / "signing.key"
    assert key_path.stat().st_mode & 0o777 == 0o600
    again = load_keyring([], state_dir)
    assert again.signing == first.signing


def test_several_key_files_first_signs(tmp_path: Path) -> None:
    a, b = tmp_path / "new.key", tmp_path / "old.key"
    a.write_bytes(b"n" * 32)
    b.write_bytes(b"o" * 32)
    ring = load_keyring([a, b], tmp_path / "unused")
    assert ring.signing.secret == b"n" * 32
    assert set(ring.accepted) == {ring.signing.key_id, SigningKey.from_secret(b"o" * 32).key_id}
    assert not (tmp_path / "unused").exists()
