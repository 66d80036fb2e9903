"""Transport-neutral serving: model versions and reloads (``registry``), dynamic batching (``batcher``),
and the request path every protocol calls (``plane.DataPlane``: limits, validation, search, vote;
``writes.ExampleWriter``: examples added and removed online, snapshots).

Names load their module on first use (PEP 562): the CLI reads ``BatchConfig``'s defaults without
loading the models' stack (faiss, pydantic).
"""

from __future__ import annotations

from knnserve.lazy import lazy_exports

_HOMES = {
    "config": ("BatchConfig",),
    "plane": ("DataPlane", "PendingClassify"),
    "registry": ("ModelRegistry", "ReloadReport", "ServedModel", "searcher_factory"),
    "writes": ("ExampleWriter",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
