"""The README stays true to the code: every option is documented with its variable and default."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

from connector.config import Config, env_name

from .conftest import ROOT


def test_readme_documents_every_option_with_its_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{flag}` |")), None)
        assert row is not None, f"README has no row for {flag}"
        assert f"`{env_name(f.name)}`" in row
        if f.default is None:
            assert "| none |" in row, f"README's default for {flag} is not none"
        elif f.default is not dataclasses.MISSING:
            assert f"`{f.default}`" in row, f"README's default for {flag} is not {f.default}"


def test_readme_commands_are_the_ones_dev_py_knows() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 dev.py serve" in readme and "python3 dev.py check" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 dev.py check" in ci


def test_the_readme_workflow_runs_locally_with_stock_flytekit(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "FileSensor" in b)
    module_path = tmp_path / "readme_wf.py"
    module_path.write_text(block)
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    spec = importlib.util.spec_from_file_location("readme_wf", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_wf"] = module
    try:
        spec.loader.exec_module(module)
        assert module.wf(path=str(data)) == 2
    finally:
        del sys.modules["readme_wf"]
