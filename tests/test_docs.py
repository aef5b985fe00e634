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
