"""The committed generated modules are exactly what `python -m connector.state.protogen` produces."""

from __future__ import annotations

from pathlib import Path

from connector.state import protogen


def test_generated_modules_are_up_to_date(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    assert fresh, "protoc produced nothing"
    for path in fresh:
        committed = protogen.OUT_DIR / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python -m connector.state.protogen"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -m connector.state.protogen"
        )
