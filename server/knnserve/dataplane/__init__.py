"""Transport-neutral serving: model versions and reloads (``registry``), dynamic batching (``batcher``),
and the request path every protocol calls (``plane.DataPlane``: limits, validation, search, vote)."""

from knnserve.dataplane.config import BatchConfig
from knnserve.dataplane.plane import DataPlane, PendingClassify
from knnserve.dataplane.registry import ModelRegistry, ReloadReport, ServedModel, searcher_factory

__all__ = ["BatchConfig", "DataPlane", "ModelRegistry", "PendingClassify", "ReloadReport", "ServedModel", "searcher_factory"]
