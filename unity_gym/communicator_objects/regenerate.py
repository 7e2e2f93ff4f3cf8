"""Regenerate the committed ``*_pb2.py`` / ``*_pb2_grpc.py`` files from the ``.proto`` files.

Run it by path (it must not import ``unity_gym``) with grpcio-tools::

    python -m venv /tmp/protoc && /tmp/protoc/bin/pip install grpcio-tools==1.73.1
    /tmp/protoc/bin/python unity_gym/communicator_objects/regenerate.py

That grpcio-tools release writes protobuf 6.31 gencode. Generated code refuses a protobuf
runtime older than the protoc that wrote it, so the oldest protoc we can use sets the floor of
the supported protobuf range (>=6.31): newer runtimes, 7.x included, load it fine.
``tests/test_protocol_codegen.py`` fails when the committed code no longer matches the protos.
"""

from __future__ import annotations

import sys
from pathlib import Path

PINNED_GRPCIO_TOOLS = "1.73.1"
HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent.parent  # proto imports are relative to the repository root


def proto_files() -> list[Path]:
    """Every .proto of the package, sorted so output order is stable."""
    return sorted(HERE.glob("*.proto"))


def run_protoc(out_dir: Path) -> None:
    """Compile every proto into ``out_dir`` (which mirrors the repository root).

    Messages get ``_pb2.py`` plus ``.pyi`` stubs; only the file declaring the service gets
    ``_pb2_grpc.py``.
    """
    from grpc_tools import protoc  # imported lazily: only needed when regenerating

    include = Path(protoc.__file__).resolve().parent / "_proto"
    base = ["protoc", f"-I{SOURCE_ROOT}", f"-I{include}"]
    protos = proto_files()
    jobs = [
        [f"--python_out={out_dir}", f"--pyi_out={out_dir}", *map(_relative, protos)],
        [f"--grpc_python_out={out_dir}", *(_relative(p) for p in protos if _has_service(p))],
    ]
    for job in jobs:
        code = protoc.main(base + job)
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")


def _relative(proto: Path) -> str:
    return str(proto.relative_to(SOURCE_ROOT))


def _has_service(proto: Path) -> bool:
    return any(line.startswith("service ") for line in proto.read_text().splitlines())


def main() -> None:
    from importlib.metadata import version

    installed = version("grpcio-tools")
    if installed != PINNED_GRPCIO_TOOLS:
        raise SystemExit(
            f"grpcio-tools {installed} is installed, but the committed code is generated with "
            f"grpcio-tools=={PINNED_GRPCIO_TOOLS} so that protobuf 6.31+ and 7.x both load it. "
            "Create a throw-away venv, `pip install grpcio-tools=="
            f"{PINNED_GRPCIO_TOOLS}` there and run this script with that venv's python."
        )
    run_protoc(SOURCE_ROOT)
    print(f"regenerated {len(proto_files())} protos into {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
