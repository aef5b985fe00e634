"""Signing keys for resource_meta: loaded from files (several, for rotation) or generated once."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 32
GENERATED_KEY_NAME = "signing.key"
#: Key ids are this many hex digits of SHA-256 over the key.
KEY_ID_LENGTH = 8


class SigningKeyError(ValueError):
    """A signing key file is missing, unreadable or too short."""


@dataclass(frozen=True, repr=False)
class SigningKey:
    """One HMAC key; its id is public, its secret never printed."""

    key_id: str
    secret: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> SigningKey:
        """A key whose id is derived from the secret, so every replica names it alike."""
        return cls(hashlib.sha256(secret).hexdigest()[:KEY_ID_LENGTH], secret)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class Keyring:
    """The key that signs new resource_meta and every key accepted when verifying."""

    signing: SigningKey
    accepted: dict[str, SigningKey]

    @classmethod
    def of(cls, keys: Sequence[SigningKey]) -> Keyring:
        """The first key signs; all verify."""
        if not keys:
            raise SigningKeyError("at least one signing key is needed")
        return cls(keys[0], {k.key_id: k for k in keys})


def read_key_file(path: Path) -> SigningKey:
    """A key from a file: its bytes with surrounding whitespace stripped, at least 32 of them."""
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key file {path}: {exc.strerror or exc}") from None
    if len(secret) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"signing key file {path} holds {len(secret)} bytes; at least {MIN_KEY_BYTES} are needed"
        )
    return SigningKey.from_secret(secret)


def load_keyring(key_files: Sequence[Path], state_dir: Path) -> Keyring:
    """Keys from `key_files` (the first signs), or else the generated key kept in `state_dir`."""
    if key_files:
        return Keyring.of([read_key_file(Path(p)) for p in key_files])
    path = state_dir / GENERATED_KEY_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs below
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_urlsafe(48).encode())
            log.info("generated a signing key at %s", path)
    key = read_key_file(path)
    log.warning(
        "no --signing-key-file given: using the generated key %s (id %s). Replicas must share one key: "
        "give every replica the same --signing-key-file.",
        path,
        key.key_id,
    )
    return Keyring.of([key])
