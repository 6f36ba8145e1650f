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


def confidence_summary(folder: Path, threshold: float) -> dict:
    """ConfidenceLevel of the matched records (those sharing their MatchID) of an ML_MATCHING
    job's output: how many carry one, how many fall below `threshold`, mean and minimum, and
    values outside the documented 0.0-1.0 range. `present` is False when the output has no
    ConfidenceLevel column at all (not an ML matching output)."""
    import duckdb

    from er_assets.warehouses.base import SAMPLE_IDS

    files = [str(f) for f in sorted(folder.glob("*.csv"))] if folder.is_dir() else []
    empty = {"present": bool(files), "matched_records": 0, "with_confidence": 0, "below_threshold": 0,
             "out_of_range": 0, "mean": None, "min": None, "sample_ids": []}
    if not files:
        return empty
    con = duckdb.connect()
    try:
        header = [row[0] for row in con.execute(
            "SELECT column_name FROM (DESCRIBE SELECT * FROM read_csv($f, header = true, all_varchar = true))",
            {"f": files}).fetchall()]
        if "ConfidenceLevel" not in header:
            return {**empty, "present": False}
        row = con.execute(
            f"""
            WITH out AS (SELECT "RecordId" AS id, "MatchID" AS m, TRY_CAST("ConfidenceLevel" AS DOUBLE) AS c
                         FROM read_csv($f, header = true, all_varchar = true)),
                 matched AS (SELECT * FROM out WHERE m IN (SELECT m FROM out GROUP BY m HAVING count(*) > 1))
            SELECT count(*), count(c), count_if(c < $t), count_if(c < 0 OR c > 1), avg(c), min(c),
                   list(id ORDER BY id) FILTER (WHERE c < $t OR c IS NULL)[1:{SAMPLE_IDS}]
            FROM matched
            """,
            {"f": files, "t": threshold},
        ).fetchone()
    finally:
        con.close()
    matched, with_confidence, below, out_of_range, mean, low, samples = row
    return {"present": True, "matched_records": int(matched), "with_confidence": int(with_confidence),
            "below_threshold": int(below), "out_of_range": int(out_of_range),
            "mean": None if mean is None else round(float(mean), 4), "min": low, "sample_ids": list(samples or [])}
