"""Compile proto/ into connector/state/_proto with grpcio-tools: `python -m connector.state.protogen`.

The generated modules are committed; tests/test_protogen.py fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "connector" / "state" / "_proto"
PROTOS = ("flyte_sensor_connector/v1/resource_meta.proto",)


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Run protoc (from grpcio-tools) over PROTOS into `out_dir`; returns the files it wrote."""
    from grpc_tools import protoc  # dev-only dependency: imported here, not at module import

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", *PROTOS]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return sorted(p for p in out_dir.rglob("*_pb2.py*"))


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT))
    sys.exit(0)
