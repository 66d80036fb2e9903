"""The committed protobuf modules are exactly what scripts/gen_proto.py makes from proto/; the client stays light."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (a dev dependency) is not installed")
def test_generated_code_is_current() -> None:
    stale = _script("gen_proto").stale_files()
    assert not stale, f"generated code is stale ({stale}); run: .venv/bin/python scripts/gen_proto.py"


def test_staleness_ignores_the_generator_version_and_sees_a_changed_contract() -> None:
    gen_proto = _script("gen_proto")
    committed = (gen_proto.WIRE_DIR / "v1" / "knnserve_pb2_grpc.py").read_text()
    restamped = re.sub(r"GRPC_GENERATED_VERSION = '[^']+'", "GRPC_GENERATED_VERSION = '1.99.7'", committed)
    assert restamped != committed
    assert gen_proto.without_stamps(restamped) == gen_proto.without_stamps(committed)
    messages = (gen_proto.WIRE_DIR / "v1" / "knnserve_pb2.py").read_text()
    newer_protobuf = re.sub(r"(Domain\.PUBLIC,\s*)\d+,\s*\d+,\s*\d+,", r"\g<1>7,\n    99,\n    0,", messages)
    newer_protobuf = re.sub(r"# Protobuf Python Version: \S+", "# Protobuf Python Version: 7.99.0", newer_protobuf)
    assert newer_protobuf != messages
    assert gen_proto.without_stamps(newer_protobuf) == gen_proto.without_stamps(messages)
    renamed_method = committed.replace("'/knnserve.v1.KnnServe/Classify'", "'/knnserve.v1.KnnServe/Classify2'")
    assert renamed_method != committed
    assert gen_proto.without_stamps(renamed_method) != gen_proto.without_stamps(committed)
    changed_message = messages.replace("ClassifyRequest", "ClassifyRequesT", 1)
    assert gen_proto.without_stamps(changed_message) != gen_proto.without_stamps(messages)


def _floor(pyproject: Path, package: str) -> Version:
    """The lowest version ``pyproject``'s dependencies allow for ``package`` (its ``>=`` bound)."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(text) for text in dependencies if Requirement(text).name == package]
    (bound,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return Version(bound)


@pytest.mark.parametrize("package", ["grpcio", "protobuf"])
@pytest.mark.parametrize("pyproject", ["client/pyproject.toml", "pyproject.toml"])
def test_dependency_floors_are_what_the_generated_code_needs(pyproject: str, package: str) -> None:
    # The generated modules refuse to import under a runtime older than the one that generated them; a
    # lower floor lets pip install a client that fails at import, a higher one refuses runtimes that work.
    needed = Version(_script("gen_proto").generated_versions()[package])
    assert _floor(ROOT / pyproject, package) == needed, f"{pyproject}: {package}>= should be {needed}"


def test_client_import_pulls_in_no_server_code_and_changes_no_environment() -> None:
    code = (
        "import os, sys; before = dict(os.environ); import knnserve_client; from knnserve_client import Client; "
        "import knnserve_client.wire.v1.codec; assert dict(os.environ) == before, 'environment changed'; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faiss', 'knnserve', 'sklearn', 'scipy', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_core_imports_the_query_module_without_grpc() -> None:
    code = "import sys, knnserve_client.wire.query, knnserve_client.wire.errors; print('grpc' in sys.modules, 'google.protobuf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
