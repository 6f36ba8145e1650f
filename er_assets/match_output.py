"""Figures about a matching job's output in a local folder, read in bulk with DuckDB.

The local warehouse's half of `Warehouse.match_output_figures`; in production Snowflake
computes the same figures over the stage (er_assets/warehouses/snowflake.py).
"""

from __future__ import annotations

from pathlib import Path


def _csv_files(folder: Path) -> list[str]:
    return [str(f) for f in sorted(folder.glob("*.csv"))] if folder.is_dir() else []


def match_counts(folder: Path) -> tuple[int, int, int]:
    """(records, MatchIDs, records sharing their MatchID with another) of the CSV files in
    `folder` (a job's success/)."""
    import duckdb

    files = _csv_files(folder)
    if not files:
        return 0, 0, 0
    con = duckdb.connect()
    try:
        return con.execute(
            """
            WITH out AS (SELECT "MatchID" FROM read_csv($files, header = true, all_varchar = true)),
                 sizes AS (SELECT "MatchID", count(*) AS n FROM out GROUP BY ALL)
            SELECT coalesce(sum(n), 0), count(*), coalesce(sum(n) FILTER (WHERE n > 1), 0) FROM sizes
            """,
            {"files": files},
        ).fetchone()
    finally:
        con.close()


def error_records(folder: Path) -> int:
    """Rows the service rejected (a job's error/ folder)."""
    import duckdb

    files = _csv_files(folder)
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return int(con.execute("SELECT count(*) FROM read_csv($f, header = true, all_varchar = true)",
                               {"f": files}).fetchone()[0])
    finally:
        con.close()
