"""OpenBLAS kernel selection for faiss-cpu's bundled OpenBLAS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from knnserve.blas import coretype_for, cpu_flags, select_openblas_coretype


def test_coretype_follows_the_instruction_sets() -> None:
    assert coretype_for(frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma"})) == "SkylakeX"
    assert coretype_for(frozenset({"avx2", "fma", "sse4_2"})) == "Haswell"
    assert coretype_for(frozenset({"sse4_2"})) is None


def test_a_value_the_user_set_is_kept() -> None:
    env = {"OPENBLAS_CORETYPE": "Zen"}
    assert select_openblas_coretype(env, frozenset({"avx2", "fma"})) is None
    assert env["OPENBLAS_CORETYPE"] == "Zen"
    env = {"KNNSERVE_KEEP_OPENBLAS_CORETYPE": "1"}
    assert select_openblas_coretype(env, frozenset({"avx2", "fma"})) is None
    assert "OPENBLAS_CORETYPE" not in env


def test_faiss_openblas_is_not_on_generic_kernels_after_importing_knnserve() -> None:
    if coretype_for(cpu_flags()) is None:
        pytest.skip("CPU without AVX2: OpenBLAS's own choice stands")
    code = (
        "import json, knnserve, faiss\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps([i.get('architecture') for i in threadpool_info() if i['user_api'] == 'blas']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    architectures = json.loads(out.stdout)
    assert architectures and "Prescott" not in architectures
