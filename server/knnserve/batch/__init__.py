"""Batch classification jobs: large inputs streamed in shards, committed atomically, resumable; three engines.

``run_job(JobSpec(...), engine)`` with ``engines.local.LocalEngine`` (this process),
``engines.server.ServerEngine`` (through a knnserve server) or ``engines.ray_data.RayEngine`` (Ray
Data). pyarrow, Pillow and ray are imported only by the parts that need them.
"""

from knnserve.batch.readers.base import ReadOptions
from knnserve.batch.run import run_job
from knnserve.batch.spec import DEFAULT_SHARD_ROWS, JobSpec, ModelFacts

__all__ = ["DEFAULT_SHARD_ROWS", "JobSpec", "ModelFacts", "ReadOptions", "run_job"]
