"""Named secrets on the connector: the only way a sensor gets a credential.

A template may only *name* a secret; the operator decides which names exist, as either
- an environment variable `SENSOR_CONNECTOR_SECRET_<NAME>` (the name upper-cased, `-` and `.` as `_`), or
- a file `<secrets dir>/<name>`, the directory being `$SENSOR_CONNECTOR_SECRETS_DIR` (default
  `/etc/sensor-connector/secrets`, where a Kubernetes Secret is typically mounted).

A template can therefore never point the connector at an arbitrary environment variable (say the
connector's own cloud credentials) or an arbitrary file, and have it sent to a URL of its choosing.
Secret values never appear in messages or logs; only their names do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import PermanentError
from .pools import Pool

ENV_PREFIX = "SENSOR_CONNECTOR_SECRET_"
DIR_ENV = "SENSOR_CONNECTOR_SECRETS_DIR"
DEFAULT_DIR = "/etc/sensor-connector/secrets"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: The connector's own setting (--secret-policy) lives where a secret named "policy" would.
_RESERVED = {"SENSOR_CONNECTOR_SECRET_POLICY"}


def check_name(name: str) -> str:
    """`name` if it can name a secret (letters, digits, `_`, `.`, `-`; no path), else ValueError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a secret name: use letters, digits, '_', '.' or '-' (a name, not a path)"
        )
    if env_name(name) in _RESERVED:
        raise ValueError(f"{name!r} is not a secret name: {env_name(name)} is the connector's secret policy")
    return name


def env_name(name: str) -> str:
    """The environment variable that holds secret `name`."""
    return ENV_PREFIX + re.sub(r"[.-]", "_", name).upper()


def secrets_dir() -> Path:
    """Where secret files are mounted."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def where(name: str) -> str:
    """Where secret `name` is looked for, for messages (names only, never values)."""
    return f"${env_name(name)} or {secrets_dir() / name}"


def _read_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


async def read(name: str, pool: Pool) -> str:
    """The value of secret `name`, a file read in `pool` (the poke's `ctx.pools.secrets`);
    PermanentError when the connector does not hold it."""
    check_name(name)
    value = os.environ.get(env_name(name), "").strip()
    if not value:
        path = secrets_dir() / name
        try:
            # The secrets pool (--secret-threads), joined with a read of the same file in flight.
            value = await pool.blocking(str(path), _read_file, path)
        except OSError as exc:
            raise PermanentError(
                f"the secret {name!r} cannot be read on the connector ({exc.strerror})."
            ) from None
    if not value:
        raise PermanentError(f"the connector holds no secret {name!r} (looked for {where(name)}).")
    return value
