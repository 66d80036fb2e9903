"""The committed protobuf modules are exactly what scripts/gen_proto.py makes from proto/; the client stays light."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (a dev dependency) is not installed")
def test_generated_code_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    gen_proto = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_proto)
    stale = gen_proto.stale_files()
    assert not stale, f"generated code is stale ({stale}); run: .venv/bin/python scripts/gen_proto.py"


def test_client_import_pulls_in_no_server_code_and_changes_no_environment() -> None:
    code = (
        "import os, sys; before = dict(os.environ); import knnserve_client; from knnserve_client import Client; "
        "import knnserve_client.wire.messages; assert dict(os.environ) == before, 'environment changed'; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faiss', 'knnserve', 'sklearn', 'scipy', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_core_imports_the_query_module_without_grpc() -> None:
    code = "import sys, knnserve_client.wire.query, knnserve_client.wire.errors; print('grpc' in sys.modules, 'google.protobuf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
