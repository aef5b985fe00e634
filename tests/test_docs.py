"""The README and docs stay true to the code: options with their variables and defaults,
commands, and the layout and request chain naming what exists."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

from connector.cli import build_parser
from connector.config import Config, env_name, from_env, parse_value

from .conftest import ROOT


def _serve_table(readme: str) -> dict[str, tuple[str, str]]:
    """The README's `serve` options table: flag -> (environment variable, default cell)."""
    rows = re.findall(r"^\| `(--[a-z0-9-]+)` \| `([A-Z0-9_]+)` \| ([^|]+) \|", readme, re.M)
    return {flag: (env, default.strip()) for flag, env, default in rows}


def test_readme_serve_table_is_exactly_the_config_with_its_variables_and_defaults() -> None:
    table = _serve_table((ROOT / "README.md").read_text())
    fields = {"--" + f.name.replace("_", "-"): f for f in dataclasses.fields(Config)}
    assert set(table) == set(fields), (
        f"README lacks {set(fields) - set(table)}, has extra {set(table) - set(fields)}"
    )
    for flag, (env, cell) in table.items():
        f = fields[flag]
        assert env == env_name(f.name), f"{flag}: README says {env}"
        # The default the README shows, read as the CLI would read it, is the field's default.
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if cell == "none":
            assert default in (None, []), f"{flag}: README says none, the default is {default!r}"
        elif cell.startswith("`") and cell.count("`") == 2:
            assert parse_value(f, cell.strip("`")) == default, f"{flag}: README says {cell}, not {default!r}"
        else:  # a computed default, described in words
            assert f.default_factory is not dataclasses.MISSING, f"{flag}: README's default {cell!r}"


def test_every_documented_default_is_taken_by_its_flag_and_its_variable_alike() -> None:
    table = _serve_table((ROOT / "README.md").read_text())
    parser = build_parser()
    for flag, (env, cell) in table.items():
        if not (cell.startswith("`") and cell.count("`") == 2):
            continue
        value = cell.strip("`")
        name = flag.removeprefix("--").replace("-", "_")
        from_flag = getattr(parser.parse_args(["serve", flag, value]), name)
        assert from_flag == from_env({env: value})[name], flag


def test_readme_commands_are_the_ones_dev_py_knows() -> None:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    for path in ("README.md", ".ci/run"):
        named = set(re.findall(r"python3 dev\.py (\w+)", (ROOT / path).read_text()))
        assert named, f"{path} names no dev.py command"
        assert named <= set(dev.COMMANDS), f"{path} names {named - set(dev.COMMANDS)}"
    assert "check" in re.findall(r"python3 dev\.py (\w+)", (ROOT / ".ci" / "run").read_text())


def _layout(readme: str) -> str:
    return readme.split("## Layout", 1)[1].split("```", 2)[1]


def test_readme_layout_names_folders_that_exist_and_every_connector_folder() -> None:
    named, parent = set(), ""
    for line in _layout((ROOT / "README.md").read_text()).splitlines():
        first = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0] if line.strip() else ""
        if not first or line.startswith(" " * 4):  # a continued description
            continue
        for entry in first.split(", "):
            path = parent + entry if line.startswith("  ") else entry
            named.add(path)
            if not line.startswith("  "):
                parent = entry
    assert len(named) > 10, named
    for path in named:
        assert (ROOT / path).exists(), f"README's layout names {path}, which does not exist"
    folders = {
        p.parent.relative_to(ROOT).as_posix() + "/" for p in (ROOT / "connector").glob("*/__init__.py")
    }
    folders |= {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "connector").glob("*.py") if p.name != "__init__.py"
    }
    assert folders <= named, f"README's layout does not name {folders - named}"


def test_the_request_chain_in_readme_and_architecture_names_real_files() -> None:
    readme = (ROOT / "README.md").read_text()
    chain = readme.split("A request goes:", 1)[1].split("\n\n", 1)[0]
    files = re.findall(r"`([\w/<>]+\.py)`", chain)
    assert len(files) >= 4, chain
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    files += re.findall(r"\b((?:connector|sensors)/[\w/]+\.py)\b", architecture)
    for name in files:
        if "<name>" in name:
            continue
        path = ROOT / name if name.startswith(("connector/", "sensors/")) else ROOT / "connector" / name
        assert path.exists(), f"the docs name {name}, which does not exist"


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


def test_readme_documents_every_environment_setting_the_code_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    sources = [*ROOT.glob("connector/**/*.py"), *ROOT.glob("sensors/**/*.py")]
    read = {
        name
        for path in sources
        for name in re.findall(r"\bSENSOR_CONNECTOR_[A-Z_]*[A-Z]\b", path.read_text())
        if name != "SENSOR_CONNECTOR_SECRET"  # the prefix of SENSOR_CONNECTOR_SECRET_<NAME>
    }
    assert read, "found no environment settings in the code"
    missing = sorted(n for n in read if f"`{n}`" not in readme)
    assert not missing, f"README's tables lack {missing}"


def test_the_docs_name_one_service_for_one_release() -> None:
    """README, deploy.md, operations.md and the chart's NOTES agree: release `sensor-connector` in
    namespace `flyte` makes Service `sensor-connector` (flytekit's `flyteconnector` only where the
    text is about it)."""
    texts = {p: (ROOT / p).read_text() for p in ("README.md", "docs/deploy.md", "docs/operations.md")}
    for path, text in texts.items():
        services = set(re.findall(r"svc/([a-z0-9-]+)", text))
        services |= set(re.findall(r"k8s://([a-z0-9-]+)\.flyte:8000", text))
        services |= set(re.findall(r"dns:///([a-z0-9-]+)\.flyte\.svc\.cluster\.local:8000", text))
        services |= set(re.findall(r"deploy/([a-z0-9-]+)", text))
        assert services <= {"sensor-connector", "flyteconnector"}, f"{path} names {services}"
        for install in re.findall(r"helm (?:install|upgrade) (\S+) \S*helm/sensor-connector", text):
            assert install == "sensor-connector", f"{path} installs release {install}"


def test_the_chart_app_version_is_the_project_version() -> None:
    import connector

    chart = (ROOT / "helm" / "sensor-connector" / "Chart.yaml").read_text()
    app_version = re.search(r'^appVersion: "?([^"\n]+)"?$', chart, re.M)
    assert app_version is not None
    assert app_version.group(1) == connector.__version__
