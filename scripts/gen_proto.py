"""Generate the Python protobuf/gRPC modules from proto/ into server/knnserve/v1/ (or check they are current).

Usage::

    .venv/bin/python scripts/gen_proto.py           # regenerate
    .venv/bin/python scripts/gen_proto.py --check   # exit 1 if the committed modules are stale

grpcio-tools is a development dependency only: the generated modules are committed, and at run
time only ``protobuf`` and ``grpcio`` are needed. The modules land at ``knnserve.v1`` because protoc
derives a module's path from its .proto path (``knnserve/v1/*.proto``) and the generated ``_grpc``
modules import their ``_pb2`` siblings by that absolute name.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("knnserve") / "v1"
OUT_ROOT = ROOT / "server"
INIT_TEXT = '"""Generated protobuf and gRPC modules of the knnserve.v1 wire contract (scripts/gen_proto.py; do not edit)."""\n'


def proto_files() -> list[Path]:
    """The .proto sources, relative to proto/, sorted."""
    return sorted(path.relative_to(PROTO_ROOT) for path in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) into ``out_root``; return the generated files relative to it."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("grpcio-tools is not installed: pip install 'grpcio-tools>=1.85,<1.86'") from exc
    sources = proto_files()
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE_DIR}")
    # grpc_tools ships the well-known types (google/protobuf/*.proto) as package data.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(source) for source in sources),
    ]
    # protoc resolves the sources against -I, so run it with proto/ as the working directory.
    code = _run_protoc(protoc, args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT_TEXT)
    return sorted(path.relative_to(out_root) for path in (out_root / PACKAGE_DIR).iterdir() if path.is_file())


def _run_protoc(protoc: object, args: list[str]) -> int:
    import os

    cwd = Path.cwd()
    os.chdir(PROTO_ROOT)
    try:
        return int(protoc.main(args))  # type: ignore[attr-defined]
    finally:
        os.chdir(cwd)


def stale_files() -> list[str]:
    """Generated files that differ from (or are missing in, or are extra in) server/knnserve/v1/."""
    with tempfile.TemporaryDirectory(prefix="knnserve-proto-") as tmp:
        fresh_root = Path(tmp)
        fresh = set(generate(fresh_root))
        committed_dir = OUT_ROOT / PACKAGE_DIR
        committed = {
            path.relative_to(OUT_ROOT)
            for path in committed_dir.glob("*")
            if path.is_file() and path.suffix in {".py", ".pyi"}
        }
        problems = [f"{path} missing" for path in sorted(fresh - committed)]
        problems += [f"{path} not produced by the .proto files" for path in sorted(committed - fresh)]
        problems += [
            f"{path} differs"
            for path in sorted(fresh & committed)
            if not filecmp.cmp(fresh_root / path, OUT_ROOT / path, shallow=False)
        ]
        return problems


def main(argv: list[str] | None = None) -> int:
    """Regenerate, or with --check report stale modules and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed modules are current")
    options = parser.parse_args(argv)
    if options.check:
        problems = stale_files()
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print("run: .venv/bin/python scripts/gen_proto.py", file=sys.stderr)
        return 1 if problems else 0
    for path in generate(OUT_ROOT):
        print(OUT_ROOT.relative_to(ROOT) / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
