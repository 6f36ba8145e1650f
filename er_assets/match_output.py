"""Figures about a matching job's output, read in bulk with DuckDB from its CSV files."""

from __future__ import annotations

from pathlib import Path


def summarize(folder: Path) -> dict:
    """Records, MatchIDs and match rate of the CSV files in `folder` (a job's success/).

    The match rate is the percentage of records that share their MatchID with at least one
    other record: the share of records the job resolved to a duplicate.
    """
    import duckdb

    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        return {"records": 0, "match_ids": 0, "matched_records": 0, "match_rate": 0.0}
    con = duckdb.connect()
    try:
        records, match_ids, matched = con.execute(
            """
            WITH out AS (SELECT "MatchID" FROM read_csv($files, header = true, all_varchar = true)),
                 sizes AS (SELECT "MatchID", count(*) AS n FROM out GROUP BY ALL)
            SELECT coalesce(sum(n), 0), count(*), coalesce(sum(n) FILTER (WHERE n > 1), 0) FROM sizes
            """,
            {"files": [str(f) for f in files]},
        ).fetchone()
    finally:
        con.close()
    rate = round(100.0 * matched / records, 2) if records else 0.0
    return {"records": int(records), "match_ids": int(match_ids), "matched_records": int(matched), "match_rate": rate}


def error_records(folder: Path) -> int:
    """Rows the service rejected (a job's error/ folder)."""
    import duckdb

    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return int(con.execute("SELECT count(*) FROM read_csv($f, header = true, all_varchar = true)",
                               {"f": [str(f) for f in files]}).fetchone()[0])
    finally:
        con.close()
