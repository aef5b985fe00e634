"""The README stays true to the code: every option is documented with its variable and default."""

from __future__ import annotations

import dataclasses

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
