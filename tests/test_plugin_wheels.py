"""Both authoring wheels ship every `sensors/` module their own modules import (fast: no build).

The wheels are built from `sensors/` by a list of files in each plugin's pyproject.toml; a module added to
`sensors/` and imported by a shipped one, but left off a list, breaks the package only where it is
installed (a task image, a laptop). The slow tests build and install the wheels; this finds the gap at once.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SENSORS = ROOT / "sensors"


def shipped(plugin: str) -> set[Path]:
    """The `sensors/` files a plugin's wheel carries."""
    config = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    files = {(ROOT / "plugins" / plugin / source).resolve() for source in include}
    return {f for f in files if f.is_relative_to(SENSORS)}


def relative_imports(module: Path) -> set[Path]:
    """The `sensors/` files that `module` imports relatively (`from . import x`, `from ..y import z`)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = module.parent
        for _ in range(node.level - 1):
            base = base.parent
        if node.module:
            target = base.joinpath(*node.module.split("."))
            found.add(target / "__init__.py" if target.is_dir() else target.with_suffix(".py"))
        else:  # `from . import a, b`: each name is a module of that package (or a name in its __init__)
            for alias in node.names:
                candidate = base / f"{alias.name}.py"
                found.add(candidate if candidate.exists() else base / "__init__.py")
    return found


@pytest.mark.parametrize("plugin", ["flytekit", "flyte2"])
def test_every_sensors_module_a_shipped_module_imports_is_shipped(plugin: str) -> None:
    files = shipped(plugin)
    assert files, f"plugins/{plugin} ships no sensors/ module"
    missing = {
        str(imported.relative_to(ROOT)): str(module.relative_to(ROOT))
        for module in files
        if module.suffix == ".py"
        for imported in relative_imports(module)
        if imported not in files and imported != SENSORS / "__init__.py"
    }
    assert not missing, f"plugins/{plugin}/pyproject.toml leaves out (imported by): {missing}"
