"""Generate the retryd.v1 Python stubs from the repository's ``proto/`` tree.

The generated modules (``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``) are never edited by hand and
never committed: ``pip install client/python`` runs this from the ``build_py`` hook in
``setup.py``. It uses ``grpc_tools.protoc`` (the ``grpcio-tools`` wheel from PyPI, a build
requirement), so the generated code always matches the ``protobuf``/``grpcio`` runtime installed
alongside it.

Run by hand (e.g. to work from the source tree without installing)::

    python gen_proto.py                 # writes src/retryd/v1/*_pb2*.py
    python gen_proto.py --out DIR       # writes DIR/retryd/v1/*_pb2*.py

The proto directory is ``$RETRYD_PROTO_DIR`` if set, else ``../../proto`` (the repository).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def proto_dir() -> Path:
    """Return the directory holding ``retryd/v1/*.proto``."""
    candidates = []
    if os.environ.get("RETRYD_PROTO_DIR"):
        candidates.append(Path(os.environ["RETRYD_PROTO_DIR"]))
    candidates += [HERE.parent.parent / "proto", HERE / "proto"]
    for c in candidates:
        if (c / "retryd" / "v1").is_dir():
            return c.resolve()
    raise SystemExit(
        "retryd: cannot find proto/retryd/v1 (looked in %s); set RETRYD_PROTO_DIR"
        % ", ".join(str(c) for c in candidates)
    )


def generate(out_root: Path) -> list[Path]:
    """Generate stubs under ``out_root/retryd/v1``; return the generated files."""
    from grpc_tools import protoc  # build requirement

    try:
        from importlib.resources import files

        wkt = str(files("grpc_tools") / "_proto")
    except Exception:  # pragma: no cover - very old Pythons
        import pkg_resources

        wkt = pkg_resources.resource_filename("grpc_tools", "_proto")

    src = proto_dir()
    protos = sorted(str(p.relative_to(src)) for p in (src / "retryd" / "v1").glob("*.proto"))
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "retryd" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{src}",
        f"-I{wkt}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"retryd: protoc failed ({rc}): {' '.join(args)}")
    init = out_root / "retryd" / "v1" / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated retryd.v1 protobuf and gRPC modules."""\n')
    return sorted((out_root / "retryd" / "v1").glob("*_pb2*.py*"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "src", help="output root (default src/)")
    ns = ap.parse_args(argv)
    for f in generate(ns.out):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
