#!/usr/bin/env python3
"""Set-up and entry point for developers: needs only Python >= 3.11.

    python3 dev.py serve [SERVE OPTIONS]   run the connector locally (:8000 gRPC, :9090 metrics)
    python3 dev.py check                   install, then ruff, mypy and the whole test suite (what CI runs)
    python3 dev.py check --fast            the same with the fast tier only: tests not marked `slow`
    python3 dev.py install                 only the install step

The first call creates ./.venv and installs the project with its dev extras; later calls
reinstall only when pyproject.toml changes. `install` and `check` also install the object-store
emulators the tests start (fake-gcs-server, built with Go; Azurite, from npm) into ./.cache with
scripts/install-emulators.sh, which skips what is already there. Without `go` or `npm` on PATH that
step is left out with a warning, and the GCS and Azure tests then fail saying how to install them.
They also install PostgreSQL's server binaries (Debian's `postgresql`, for SqlSensor's tests) with
scripts/ci-deps.sh when missing; that needs root (CI's case), else it says to run it with sudo.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SENSOR_CONNECTOR_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
#: The commands `python3 dev.py` takes.
COMMANDS = ("serve", "check", "install")


def _ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python >= 3.11 is needed, this is {sys.version.split()[0]}.")
    stamp = VENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing flyte-sensor-connector[dev] (first run takes a minute)", flush=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(want)


def _ensure_emulators() -> None:
    missing = [tool for tool in ("go", "npm") if shutil.which(tool) is None]
    if missing:
        print(
            f"dev.py: WARNING: {' and '.join(missing)} not found, so the GCS and Azure emulators are not "
            "installed and their tests will fail; install Go >= 1.24 and Node >= 20, then run "
            "scripts/install-emulators.sh",
            file=sys.stderr,
            flush=True,
        )
        return
    subprocess.run([str(ROOT / "scripts" / "install-emulators.sh")], check=True)


def _ensure_postgres() -> None:
    # SqlSensor's isolation tests start a PostgreSQL server of their own from Debian's binaries;
    # scripts/ci-deps.sh installs them when missing (as root) and says what to run otherwise.
    if subprocess.run([str(ROOT / "scripts" / "ci-deps.sh")]).returncode != 0:
        print("dev.py: WARNING: no PostgreSQL; its tests will fail", file=sys.stderr, flush=True)


def _run(*cmd: str) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    _ensure_venv()
    what, rest = argv[0], argv[1:]
    if what in {"install", "check"}:
        _ensure_emulators()
        _ensure_postgres()
    if what == "install":
        return 0
    if what == "serve":
        if not os.environ.get("SENSOR_CONNECTOR_SECRET_POLICY") and not any(
            arg.split("=", 1)[0] == "--secret-policy" for arg in rest
        ):
            # One command locally: any secret the developer sets may be used. Deployments grant none
            # unless given a policy.
            local = ROOT / "examples" / "secret-policy.local.yaml"
            print(f"dev.py: serving with {local.relative_to(ROOT)}: every secret, any host", flush=True)
            rest = ["--secret-policy", str(local), *rest]
        # Local paths: the working tree and the temporary directory, unless --local-roots (or its
        # variable) says otherwise. An image or the chart admits none by default.
        os.environ.setdefault("SENSOR_CONNECTOR_LOCAL_ROOTS", f"{ROOT},{tempfile.gettempdir()}")
        os.execv(str(BIN / "sensor-connector"), [str(BIN / "sensor-connector"), "serve", *rest])
    if "--fast" in rest:
        rest = [arg for arg in rest if arg != "--fast"] + ["-m", "not slow"]
    for step in (
        (str(BIN / "ruff"), "check", "."),
        (str(BIN / "ruff"), "format", "--check", "."),
        (str(BIN / "mypy"),),
        (str(PY), "-m", "pytest", *rest),
    ):
        if rc := _run(*step):
            print(f"dev.py: check failed at: {' '.join(step)}", file=sys.stderr)
            return rc
    print("dev.py: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
