"""The numpy core, the data plane and batch jobs load no protocol: they import with grpc and protobuf unimportable
(and so do the Open Inference Protocol's binding-neutral checks and model view, which the REST binding shares)."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter in which importing grpc or protobuf raises, as in a Python without them.
PROBE = r'''
import importlib, importlib.abc, pkgutil, sys

class NoProtocol(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("grpc", "grpc_tools", "grpc_health", "grpc_reflection") or name.startswith("google.protobuf"):
            raise ImportError(f"{name} is unimportable here")
        return None

sys.meta_path.insert(0, NoProtocol())
modules = ["knnserve.query", "knnserve.model", "knnserve.consistency", "knnserve.answers", "knnserve.bundle",
           "knnserve.vote", "knnserve.index", "knnserve.kernels", "knnserve_client.wire.results",
           "knnserve_client.wire.model_info", "knnserve_client.wire.limits", "knnserve_client.wire.query",
           "knnserve_client.wire.errors", "knnserve_client.wire.inference.tensors", "knnserve.service.inference"]
for package in ("knnserve.dataplane", "knnserve.batch", "knnserve.batch.readers", "knnserve.batch.engines"):
    modules.append(package)
    modules += [f"{package}.{info.name}" for info in pkgutil.iter_modules(importlib.import_module(package).__path__)]
failed = []
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed.append(f"{name}: {error}")
print("\n".join(failed) or "ok")
'''


def test_core_dataplane_and_batch_import_without_grpc_or_protobuf() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    # The one exception by design: the batch engine that sends rows to a server is a gRPC client.
    assert out.splitlines() == ["knnserve.batch.engines.server: grpc is unimportable here"], out
