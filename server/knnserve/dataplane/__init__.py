"""Transport-neutral serving: model versions and reloads (``registry``), dynamic batching (``batcher``),
and the request path every protocol calls (``plane.DataPlane``: limits, validation, search, vote).

Names load their module on first use (PEP 562): the CLI reads ``BatchConfig``'s defaults without
loading the models' stack (faiss, pydantic).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "config": ("BatchConfig",),
    "plane": ("DataPlane", "PendingClassify"),
    "registry": ("ModelRegistry", "ReloadReport", "ServedModel", "searcher_factory"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'knnserve.dataplane' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"knnserve.dataplane.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
