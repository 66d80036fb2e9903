"""Generate the Python protobuf/gRPC modules from proto/ into the client's wire package (or check they are current).

Usage::

    .venv/bin/python scripts/gen_proto.py           # regenerate
    .venv/bin/python scripts/gen_proto.py --check   # exit 1 if the committed modules are stale

grpcio-tools is a development dependency only: the generated modules are committed, and at run
time only ``protobuf`` and ``grpcio`` are needed. Both ends import them from
``knnserve_client.wire`` (the client distribution), so each proto package maps to a sub-package
there (``knnserve/v1/*.proto`` -> ``knnserve_client/wire/v1/``). protoc writes imports by the proto
path (``from knnserve.v1 import tensor_pb2``); within one package they are rewritten to relative
imports (``from . import tensor_pb2``), the same rewrite the protoletariat tool makes. The
descriptors keep their proto paths, so reflection and other languages see the same contract.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
WIRE_DIR = ROOT / "client" / "knnserve_client" / "wire"
# proto package folder (relative to proto/) -> sub-package of knnserve_client.wire
PACKAGES: dict[str, str] = {"knnserve/v1": "v1", "inference": "inference"}
INIT_TEXT = '"""Generated protobuf and gRPC modules of the {package} wire contract (scripts/gen_proto.py; do not edit)."""\n'


def proto_files() -> list[Path]:
    """The .proto sources of every mapped package, relative to proto/, sorted."""
    return sorted(path.relative_to(PROTO_ROOT) for folder in PACKAGES for path in (PROTO_ROOT / folder).glob("*.proto"))


def _relative_imports(text: str, proto_package: str) -> str:
    """Rewrite ``from knnserve.v1 import x`` (the proto path as a module path) to ``from . import x``."""
    dotted = re.escape(proto_package.replace("/", "."))
    return re.sub(rf"^from {dotted} import ", "from . import ", text, flags=re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) and lay the modules out under ``out_dir`` as the wire package has them.

    Returns the generated files relative to ``out_dir``.
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("grpcio-tools is not installed: pip install 'grpcio-tools>=1.85,<2'") from exc
    sources = proto_files()
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    # grpc_tools ships the well-known types (google/protobuf/*.proto) as package data.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="knnserve-protoc-") as tmp:
        raw = Path(tmp)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *(str(source) for source in sources),
        ]
        code = _run_protoc(protoc, args)
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        for proto_package, sub_package in PACKAGES.items():
            target = out_dir / sub_package
            target.mkdir(parents=True, exist_ok=True)
            for module in sorted((raw / proto_package).iterdir()):
                (target / module.name).write_text(_relative_imports(module.read_text(), proto_package))
                written.append(Path(sub_package) / module.name)
            (target / "__init__.py").write_text(INIT_TEXT.format(package=proto_package.replace("/", ".")))
            written.append(Path(sub_package) / "__init__.py")
    return sorted(written)


def _run_protoc(protoc: object, args: list[str]) -> int:
    # protoc resolves the sources against -I, so run it with proto/ as the working directory.
    cwd = Path.cwd()
    os.chdir(PROTO_ROOT)
    try:
        return int(protoc.main(args))  # type: ignore[attr-defined]
    finally:
        os.chdir(cwd)


# The version stamps protoc and grpcio-tools write: which release generated a module, not what it contains.
# They are masked before comparing, so a patch release of grpcio-tools does not make the modules "stale";
# what they require of the run time is checked against the client's dependency floors instead
# (generated_versions, and the test beside the client's pyproject.toml).
_STAMPS = (
    re.compile(r"^(# Protobuf Python Version: ).*$", flags=re.MULTILINE),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*)\d+,\s*\d+,\s*\d+,\s*'[^']*',", flags=re.MULTILINE),
    re.compile(r"^(GRPC_GENERATED_VERSION = ).*$", flags=re.MULTILINE),
)
_PROTOBUF_FLOOR = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),")
_GRPC_FLOOR = re.compile(r"^GRPC_GENERATED_VERSION = '([^']+)'$", flags=re.MULTILINE)


def without_stamps(text: str) -> str:
    """A generated module's text with its generator-version stamps masked: the messages and services only."""
    for stamp in _STAMPS:
        text = stamp.sub(lambda match: match.group(1) + "<version>", text)
    return text


def generated_versions(wire_dir: Path | None = None) -> dict[str, str]:
    """The newest runtime each committed module demands: {"protobuf": "7.35.1", "grpcio": "1.85.1"}.

    The ``_pb2`` modules refuse a protobuf older than the one that generated them, the ``_pb2_grpc`` modules a
    grpcio older than theirs; so these are the lowest versions the client can declare.
    """
    wire_dir = WIRE_DIR if wire_dir is None else wire_dir
    found: dict[str, list[tuple[int, ...]]] = {"protobuf": [], "grpcio": []}
    for sub_package in PACKAGES.values():
        for path in sorted((wire_dir / sub_package).glob("*.py")):
            text = path.read_text()
            found["protobuf"] += [tuple(int(part) for part in match) for match in _PROTOBUF_FLOOR.findall(text)]
            found["grpcio"] += [tuple(int(part) for part in match.split(".")) for match in _GRPC_FLOOR.findall(text)]
    return {name: ".".join(map(str, max(versions))) for name, versions in found.items() if versions}


def _is_generated(name: str) -> bool:
    """Whether a file of a wire sub-package is protoc's (the codec modules beside them are written by hand)."""
    return name == "__init__.py" or re.fullmatch(r"\w+_pb2(_grpc)?\.pyi?", name) is not None


def stale_files() -> list[str]:
    """Generated files whose messages or services differ from (or are missing in, or extra in) the committed package.

    Version stamps are not compared (``without_stamps``).
    """
    with tempfile.TemporaryDirectory(prefix="knnserve-proto-") as tmp:
        fresh_root = Path(tmp)
        fresh = set(generate(fresh_root))
        committed = {
            path.relative_to(WIRE_DIR)
            for sub_package in PACKAGES.values()
            for path in (WIRE_DIR / sub_package).glob("*")
            if path.is_file() and _is_generated(path.name)
        }
        problems = [f"{path} missing" for path in sorted(fresh - committed)]
        problems += [f"{path} not produced by the .proto files" for path in sorted(committed - fresh)]
        problems += [
            f"{path} differs"
            for path in sorted(fresh & committed)
            if without_stamps((fresh_root / path).read_text()) != without_stamps((WIRE_DIR / path).read_text())
        ]
        return problems


def main(argv: list[str] | None = None) -> int:
    """Regenerate, or with --check report stale modules and return 1."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed modules are current")
    options = parser.parse_args(argv)
    if options.check:
        problems = stale_files()
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print("run: .venv/bin/python scripts/gen_proto.py", file=sys.stderr)
        return 1 if problems else 0
    for path in generate(WIRE_DIR):
        print(WIRE_DIR.relative_to(ROOT) / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
