"""Where a matching job's output is: found by listing, since its place is not promised.

AWS documents the output only as "a folder named after the job id" holding `success/`
(and `error/`) under the workflow's outputS3Path (user guide, "Viewing the output of a
matching workflow"); today's service puts it at `<outputS3Path>/<workflowName>/<jobId>/`,
but nothing promises that. So the folder is found by listing, and every data file in it is
read, whatever its name: the service writes CSV with a header, in as many parts as it likes.
The names (success/, error/, what a data file is) are er_assets.layout's; the figures about
the output are each warehouse's `match_output_figures`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from er_assets import layout
from er_assets.errors import MatchOutputMissing


@dataclass(frozen=True)
class JobOutput:
    success_uri: str  # the job's success/ folder, ending in "/"
    error_uri: str


def _job_folder(uri: str, base: str, job_id: str, folder: str) -> str | None:
    """The `.../<job_id>/<folder>/` prefix a listed object lies under, if it does."""
    parts = uri[len(base) :].split("/")
    for i in range(len(parts) - 2):
        if parts[i] == job_id and parts[i + 1] == folder:
            return base + "/".join(parts[: i + 2]) + "/"
    return None


def find_output(
    list_files: Callable[[str], list[str]], output_path: str, workflow_name: str, job_id: str, records_processed: int
) -> JobOutput:
    """Find the job's success/ folder under `output_path` by listing.

    The usual place is listed first (one cheap listing); only if it holds nothing is the whole
    output path listed. Raises MatchOutputMissing when a job that processed records left no
    data file: loading nothing would silently empty the partition.
    """
    base = output_path.rstrip("/") + "/"
    usual = layout.job_folder(output_path, workflow_name, job_id)
    for prefix in (usual, base):
        found = {
            folder
            for uri in list_files(prefix)
            if layout.is_data_file(uri) and (folder := _job_folder(uri, base, job_id, layout.SUCCESS))
        }
        if found:
            break
    if len(found) > 1:
        raise MatchOutputMissing(f"matching job {job_id}: several success/ folders under {base}: {sorted(found)}")
    if not found:
        if records_processed:
            raise MatchOutputMissing(
                f"matching job {job_id} SUCCEEDED with {records_processed} records processed, but no data file is in "
                f"a {job_id}/success/ folder under {base}; check the workflow's outputS3Path and that its role may "
                "write there"
            )
        found = {layout.success_uri(usual)}
    (success,) = found
    return JobOutput(success, layout.error_uri(success))
