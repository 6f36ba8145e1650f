"""Runs one emulated matching job in its own process, reporting progress to the job file.

Started detached by `Emulator.start_matching_job`, so the job outlives the process that
started it, as an AWS job outlives its caller.
"""

from __future__ import annotations

import sys
import time
import traceback


def run(state_root: str, objects_root: str, config_path: str, job_id: str) -> int:
    from er_assets.config import load_config
    from er_assets.emulator.matching import run_matching
    from er_assets.emulator.service import Emulator

    emulator = Emulator(state_root, objects_root, load_config(config_path))
    job = emulator.update_job(job_id, status="RUNNING")
    try:
        # A slow job (ER_EMULATOR_FAULTS job.running_seconds, validated when it was started)
        # stays RUNNING that long first.
        time.sleep((job.get("fault") or {}).get("running_seconds", 0))
        workflow = emulator.workflow(job["workflowName"])
        schema = emulator.schema_mapping(workflow["inputSourceConfig"][0]["schemaName"])
        metrics = dict(job["metrics"])

        def progress(done: int) -> None:
            metrics["totalRecordsProcessed"] = done
            emulator.update_job(job_id, metrics=dict(metrics))

        result = run_matching(
            emulator.local_path(job["input"]),
            schema,
            workflow,
            emulator.local_path(job["outputDir"]),
            job_id,
            progress=progress,
        )
        metrics.update(
            {k: result[k] for k in ("inputRecords", "totalRecordsProcessed", "recordsNotProcessed", "matchIDs")}
        )
        emulator.update_job(job_id, status="SUCCEEDED", endTime=time.time(), metrics=metrics)
        return 0
    except Exception as exc:  # the service reports any failure as a FAILED job with a message
        traceback.print_exc()
        emulator.update_job(
            job_id,
            status="FAILED",
            endTime=time.time(),
            errorDetails={"errorMessage": f"{type(exc).__name__}: {exc}"[:2000]},
        )
        return 1


if __name__ == "__main__":
    sys.exit(run(*sys.argv[1:5]))
