"""Running a job: plan the input, open (or resume, or refuse) the output, run the engine, write the summary."""

from __future__ import annotations

import logging
import time

from knnserve.batch.engines import Engine
from knnserve.batch.inputs import plan_inputs
from knnserve.batch.output import JobOutput
from knnserve.batch.progress import Progress, Summary, note
from knnserve.batch.results import ResultBatch
from knnserve.batch.schema import OutputMeta
from knnserve.batch.spec import JobSpec, job_identity

log = logging.getLogger(__name__)


def run_job(spec: JobSpec, engine: Engine) -> Summary:
    """Classify every row of the input into ``spec.out`` with ``engine``; resumes a job killed earlier.

    Raises JobConflictError (before writing anything) when ``spec.out`` holds committed shards of
    another job, and whatever the engine raises for a model or option it refuses.
    """
    started = time.perf_counter()
    try:
        facts = engine.open(spec)
        plan = plan_inputs(spec.inputs, facts.row_spec, spec.read, spec.shard_rows, out=spec.out)
        identity = job_identity(spec, facts, plan.fingerprint(), len(plan.files), plan.rows)
        meta = OutputMeta(facts.name, facts.version, facts.class_names, spec.heads, spec.neighbors)
        output = JobOutput.open(spec.out, identity, plan, spec.fmt, meta)
        manifest = output.manifest
        if output.complete:
            note(f"{spec.out} already holds this job, complete; nothing to do")
            return Summary(manifest.rows, manifest.committed_errors, 0, 0.0, plan.shards_total, engine.name,
                           str(spec.out), spec.fmt, {})
        pending = output.pending
        if manifest.committed:
            note(f"resuming: {len(manifest.committed)} of {plan.shards_total} shards ({manifest.committed_rows} rows) already committed")
        progress = Progress(plan.rows, manifest.committed_rows, enabled=spec.progress)

        def commit(result: ResultBatch) -> None:
            record = output.commit(result)
            progress.advance(record.rows, record.errors)

        try:
            engine.run(plan, list(plan.shards(pending)), commit)
        finally:
            progress.close()
        report = engine.report()
        elapsed = time.perf_counter() - started
        if progress.first_commit_s is not None:
            report["first_shard_s"] = round(progress.started - started + progress.first_commit_s, 3)
        summary = Summary(manifest.rows, manifest.committed_errors, progress.rows, elapsed, plan.shards_total,
                          engine.name, str(spec.out), spec.fmt, report)
        output.finish(summary.to_dict())
        return summary
    finally:
        engine.close()


__all__ = ["run_job"]
