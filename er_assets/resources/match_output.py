"""Where a matching job's output is, and figures about it, read in bulk with DuckDB.

AWS documents the output only as "a folder named after the job id" holding `success/`
(and `error/`) under the workflow's outputS3Path (user guide, "Viewing the output of a
matching workflow"); today's service puts it at `<outputS3Path>/<workflowName>/<jobId>/`,
but nothing promises that. So the folder is found by listing, and every data file in it is
read, whatever its name: the service writes CSV with a header, in as many parts as it likes.

The figures are the local warehouse's half of `Warehouse.match_output_figures`; in production
Snowflake computes the same figures over the stage (er_assets/resources/warehouses/snowflake.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from er_assets.errors import MatchOutputMissing


@dataclass(frozen=True)
class JobOutput:
    success_uri: str  # the job's success/ folder, ending in "/"
    error_uri: str


# A data file is any object of success/ (or error/) that is not a folder placeholder or a
# marker such as `_SUCCESS` or `.part.crc`: the rule the loaders list by, and, as Snowflake's
# PATTERN (matched against the file's path), the files Snowflake counts and copies.
DATA_FILE_PATTERN = "(.*/)?[^/_.][^/]*"


def is_data_file(key: str) -> bool:
    return re.fullmatch(DATA_FILE_PATTERN, key) is not None


def _job_folder(uri: str, base: str, job_id: str, folder: str) -> str | None:
    """The `.../<job_id>/<folder>/` prefix a listed object lies under, if it does."""
    parts = uri[len(base):].split("/")
    for i in range(len(parts) - 2):
        if parts[i] == job_id and parts[i + 1] == folder:
            return base + "/".join(parts[: i + 2]) + "/"
    return None


def find_output(list_files: Callable[[str], list[str]], output_path: str, workflow_name: str, job_id: str,
                records_processed: int) -> JobOutput:
    """Find the job's success/ folder under `output_path` by listing.

    The usual place is listed first (one cheap listing); only if it holds nothing is the whole
    output path listed. Raises MatchOutputMissing when a job that processed records left no
    data file: loading nothing would silently empty the partition.
    """
    base = output_path.rstrip("/") + "/"
    for prefix in (f"{base}{workflow_name}/{job_id}/", base):
        found = {folder for uri in list_files(prefix)
                 if is_data_file(uri) and (folder := _job_folder(uri, base, job_id, "success"))}
        if found:
            break
    if len(found) > 1:
        raise MatchOutputMissing(f"matching job {job_id}: several success/ folders under {base}: {sorted(found)}")
    if not found:
        if records_processed:
            raise MatchOutputMissing(
                f"matching job {job_id} SUCCEEDED with {records_processed} records processed, but no data file is in "
                f"a {job_id}/success/ folder under {base}; check the workflow's outputS3Path and that its role may "
                "write there")
        success = f"{base}{workflow_name}/{job_id}/success/"
        return JobOutput(success, success.replace("/success/", "/error/"))
    (success,) = found
    return JobOutput(success, success[: -len("success/")] + "error/")


def data_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_data_file(p.name))




def match_counts(folder: Path) -> tuple[int, int, int]:
    """(records, MatchIDs, records sharing their MatchID with another) of the data files in
    `folder` (a job's success/). A blank MatchID (`blank_sql`) is none, as the load counts it."""
    import duckdb

    from er_assets.resources.warehouses.base import blank_sql

    files = data_files(folder)
    if not files:
        return 0, 0, 0
    con = duckdb.connect()
    try:
        return con.execute(
            f"""
            WITH out AS (SELECT "MatchID" AS m FROM read_csv($files, header = true, all_varchar = true)),
                 sizes AS (SELECT m, count(*) AS n, NOT {blank_sql('m')} AS assigned FROM out GROUP BY m)
            SELECT coalesce(sum(n), 0), count_if(assigned), coalesce(sum(n) FILTER (WHERE assigned AND n > 1), 0)
            FROM sizes
            """,
            {"files": files},
        ).fetchone()
    finally:
        con.close()


def error_records(folder: Path) -> int:
    """Rows the service rejected (a job's error/ folder)."""
    import duckdb

    files = data_files(folder)
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return int(con.execute("SELECT count(*) FROM read_csv($f, header = true, all_varchar = true)",
                               {"f": files}).fetchone()[0])
    finally:
        con.close()


def confidence_summary(folder: Path, threshold: float) -> dict:
    """`confidence_figures` of the output in `folder` (an ML_MATCHING job's success/)."""
    import duckdb

    from er_assets.resources.warehouses.base import SAMPLE_IDS, blank_sql, confidence_figures

    files = data_files(folder)
    if not files:
        return confidence_figures(None)
    con = duckdb.connect()
    try:
        header = [row[0] for row in con.execute(
            "SELECT column_name FROM (DESCRIBE SELECT * FROM read_csv($f, header = true, all_varchar = true))",
            {"f": files}).fetchall()]
        if "ConfidenceLevel" not in header:
            return confidence_figures(header)
        row = con.execute(
            f"""
            WITH out AS (SELECT "RecordId" AS id, "MatchID" AS m, TRY_CAST("ConfidenceLevel" AS DOUBLE) AS c
                         FROM read_csv($f, header = true, all_varchar = true)),
                 matched AS (SELECT * FROM out WHERE NOT {blank_sql('m')}
                             AND m IN (SELECT m FROM out GROUP BY m HAVING count(*) > 1))
            SELECT count(*), count(c), count_if(c < $t), count_if(c < 0 OR c > 1), avg(c), min(c),
                   list(id ORDER BY id) FILTER (WHERE c < $t OR c IS NULL)[1:{SAMPLE_IDS}]
            FROM matched
            """,
            {"f": files, "t": threshold},
        ).fetchone()
    finally:
        con.close()
    return confidence_figures(header, row)
