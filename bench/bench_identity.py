"""Benchmark: the entity registry's cost for one partition, against registries of growing size.

For each registry size a DuckDB file is built in bulk SQL as if that many customers had been
loaded over the earlier days of the month (PARTITION's month): target rows with their entity
ids, current membership (and 1% closed history), blocking keys, the earlier partitions' job
groups (10% of them context) and their 'created' events. Entities hold one or two records.
Then, for each partition size, on a copy of that file:

- the context query (`registry.context_sql`, as the extract runs it into a temp table) for the
  new partition's slice;
- the identity step as the load runs it: BEGIN, the target's delete and insert of the
  partition's own rows, `Registry.apply`, COMMIT.

The new partition's records: 20% re-describe a known entity (its values, so its blocking keys:
the context query finds that entity), and the job output gives them that entity's context
records under one MatchID; one in 5,000 of those also carries another known entity's email,
whose records join the same MatchID (a merge). Of the rest, 40% pair up as duplicates of each
other. The context records are what the timed context query returned.

The step's cost must grow with the partition, not the registry: at the same partition size
the largest registry should take at most 1.5x the smallest's time (column "x"). Each
measurement runs in a child process of its own, so peak RSS (ru_maxrss) is that run's alone;
each statement `Registry.apply` runs is timed (its execute callable wrapped) and the slowest
are listed per partition size, next to each other across the registry sizes.

    .venv/bin/python bench/bench_identity.py                  # 100k and 1M against 1M and 10M
    .venv/bin/python bench/bench_identity.py --quick          # 10k against 10k and 100k
    .venv/bin/python bench/bench_identity.py --partitions 100000 --registries 1000000,3000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import PARTITION, in_child, parse_or_run_child

DOMAIN = "customers"
DAY = dt.date.fromisoformat(PARTITION)
# The registry was loaded daily over the earlier days of PARTITION's month, the new partition
# being the latest (no later partition to replay).
EARLIER = [(DAY.replace(day=d)).isoformat() for d in range(1, DAY.day)]
RUN = "bench-run"
ABSORBED_EVERY = 5  # one new record in 5 re-describes a known entity
MERGE_EVERY = 5_000  # ... and one in 5,000 two known entities at once
STATEMENTS_SHOWN = 10

# Values of a customer of entity number `e` (an SQL expression), already in the form the
# blocking keys use once lower-cased and stripped of white space and punctuation, so that the
# keys below can be written without regexp_replace over millions of rows (checked against
# `registry.keys_select` when the registry is small).
VALUES = {
    "first_name": "'Fn' || ({e} % 1000)",
    "last_name": "'Ln' || ({e} // 1000)",
    "email": "'user' || ({email}) || '@example.com'",
    "phone": "'555-' || lpad(CAST({e} AS VARCHAR), 10, '0')",
    "address": "CAST({e} % 9899 + 1 AS VARCHAR) || ' Main Street'",
    "city": "'Boston'",
    "state": "'MA'",
    "postal_code": "'02' || lpad(CAST({e} % 1000 AS VARCHAR), 3, '0')",
}
NAME = "'fn' || ({e} % 1000) || 'ln' || ({e} // 1000)"
KEYS = {
    "email_match": "'email_match:user' || ({email}) || 'examplecom'",
    "name_phone_match": f"'name_phone_match:' || {NAME} || '|555' || lpad(CAST({{e}} AS VARCHAR), 10, '0')",
    "name_address_match": f"'name_address_match:' || {NAME} || '|' || CAST({{e}} % 9899 + 1 AS VARCHAR) "
    "|| 'mainstreetbostonma02' || lpad(CAST({e} % 1000 AS VARCHAR), 3, '0')",
}
# Known record i (0-based) belongs to entity i // 5 * 4 + least(i % 5, 3): entities 4m+3 hold two
# records, the others one. Its partition is the i-th share of EARLIER.
KNOWN_ENTITY = "({i} // 5 * 4 + least({i} % 5, 3))"
ENTITY_ID = "'E' || substr(md5('seed:' || CAST({e} AS VARCHAR)), 1, 20)"
# New entities are numbered from here, far above any known one.
NEW_BASE = 10**12


def _domain():
    from er_assets.config import load_config

    return load_config().domain(DOMAIN)


def _columns(e: str, email: str | None = None) -> str:
    return ", ".join(f"{VALUES[c].format(e=e, email=email or e)} AS {c}" for c in VALUES)


def _list(values: list[str]) -> str:
    return "([" + ", ".join(f"'{v}'" for v in values) + "])"


def _connect(path: Path, memory_limit: str):
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{path.parent / (path.name + '.tmp')}'")
    return con


# --- the registry of `registry` records loaded over EARLIER --------------------------------


def build(spec: dict, out: Path) -> Callable[[], dict]:
    """The job of a `build` child: a registry of spec["registry"] records at `out`."""
    from er_assets.resources.warehouses import registry
    from er_assets.resources.warehouses.local import DUCKDB

    domain = _domain()
    tables = registry.Tables.of(domain)
    n, parts = spec["registry"], len(EARLIER)
    partition = f"{_list(EARLIER)}[1 + i * {parts} // {n}]"

    def run() -> dict:
        con = _connect(out, spec["memory_limit"])
        registry.Registry(DUCKDB, domain, con.execute, domain.target.table, "partition_key").create()
        con.execute(
            f"CREATE TEMP TABLE known AS SELECT i, {KNOWN_ENTITY.format(i='i')} AS e, {partition} AS p, "
            f"'C' || CAST(i AS VARCHAR) AS rid FROM range({n}) r(i)"
        )
        eid = ENTITY_ID.format(e="e")
        con.execute(
            f"CREATE TABLE \"{domain.target.table}\" AS SELECT 'arn:bench' AS InputSourceARN, rid AS RecordId, "
            f"'M' || CAST(e AS VARCHAR) AS MatchID, 'email_match' AS MatchRule, rid AS customer_id, {_columns('e')}, "
            f"p AS partition_key, TIMESTAMP '{PARTITION}' AS loaded_at, {eid} AS entity_id FROM known"
        )
        con.execute(
            f"INSERT INTO \"{tables.members}\" SELECT rid, {eid}, p, 'seed', NULL, NULL FROM known "
            # 1% of records moved once before: their closed membership.
            f"UNION ALL SELECT rid, 'E' || substr(md5('old:' || rid), 1, 20), p, 'seed', p, 'seed' FROM known "
            "WHERE i % 100 = 7"
        )
        key = " UNION ALL ".join(
            f"SELECT p, rid, {DUCKDB.hash.format(k.format(e='e', email='e'))} FROM known" for k in KEYS.values()
        )
        con.execute(f'INSERT INTO "{tables.keys}" {key}')
        # Each partition's own groups, and as context 10% of the records of the one before.
        nxt = f"{_list([*EARLIER[1:], ''])}[1 + i * {parts} // {n}]"
        con.execute(
            f"INSERT INTO \"{tables.groups}\" SELECT p, rid, 'M' || CAST(e AS VARCHAR), FALSE FROM known "
            f"UNION ALL SELECT {nxt}, rid, 'M' || CAST(e AS VARCHAR), TRUE FROM known "
            f"WHERE i % 10 = 0 AND {nxt} <> ''"
        )
        con.execute(
            f"INSERT INTO \"{tables.events}\" SELECT p, 'seed', 'created', {eid}, NULL, "
            f"CASE WHEN e % 4 = 3 THEN 2 ELSE 1 END, TIMESTAMP '{PARTITION}' FROM known WHERE i % 5 <> 4"
        )
        checked = None
        if spec["check_keys"]:
            keys = registry.keys_select(DUCKDB, domain, f'SELECT * FROM "{domain.target.table}"')
            sql = f"SELECT record_id, {DUCKDB.hash.format('block_key')} FROM ({keys})"
            checked = con.execute(
                f"SELECT (SELECT COUNT(*) FROM (({sql}) EXCEPT ALL "
                f'(SELECT record_id, block_hash FROM "{tables.keys}"))), '
                f'(SELECT COUNT(*) FROM ((SELECT record_id, block_hash FROM "{tables.keys}") '
                f"EXCEPT ALL ({sql})))"
            ).fetchone()
            if checked != (0, 0):
                raise SystemExit(f"the generated blocking keys differ from keys_select's: {checked}")
        con.execute("DROP TABLE known")
        con.execute("CHECKPOINT")
        con.close()
        return {"bytes": out.stat().st_size, "keys_checked": checked is not None}

    return run


# --- one partition against that registry ----------------------------------------------------


def _slice_sql(n: int) -> str:
    """The new partition's source rows (schema columns) and, per record, the known entity it
    re-describes (`target`, NULL for new entities) and its MatchID."""
    # Absorbing records re-describe entities 4a+3 (two records each), spread over the registry;
    # a merging one takes the email of entity 4a+2 too, which no other record re-describes.
    return f"""
SELECT j, 'N' || CAST(j AS VARCHAR) AS rid, target, merged,
       CASE WHEN target IS NOT NULL THEN 'M' || CAST(target AS VARCHAR)
            ELSE 'MN' || CAST(ne AS VARCHAR) END AS match_id,
       COALESCE(target, ne) AS e, CASE WHEN merged THEN target - 1 ELSE COALESCE(target, ne) END AS email_e
FROM (
    SELECT j, CASE WHEN j % {ABSORBED_EVERY} = 0 THEN (j // {ABSORBED_EVERY} * 7) % $quarter * 4 + 3 END AS target,
           j % {MERGE_EVERY} = 0 AS merged,
           {NEW_BASE} + j // 5 * 4 + least(j % 5, 3) AS ne
    FROM range($n) r(j)
)"""


def measure(spec: dict, out: Path) -> Callable[[], dict]:
    """The job of a `measure` child: on a copy of the registry, the context query and then the
    identity step for a partition of spec["partition"] records."""
    from er_assets.resources.warehouses import registry
    from er_assets.resources.warehouses.local import CONTEXT_IDS, DUCKDB, PARTITION_COLUMN, STAGED_JOB

    domain = _domain()
    table = f'"{domain.target.table}"'
    shutil.copyfile(spec["base"], out)
    con = _connect(out, spec["memory_limit"])
    known_entities = spec["registry"] // 5 * 4
    con.execute(
        f"CREATE TEMP TABLE new_records AS {_slice_sql(spec['partition'])}",
        {"n": spec["partition"], "quarter": max(1, known_entities // 4)},
    )
    con.execute(
        f"CREATE TEMP TABLE extract_slice_rows AS SELECT rid AS customer_id, {_columns('e', 'email_e')} "
        "FROM new_records ORDER BY j"
    )
    con.execute("CREATE TEMP VIEW extract_slice AS SELECT * FROM extract_slice_rows")
    timings: list[tuple[str, float, float]] = []

    def timed(sql: str, params=None):
        start = _clock()
        result = con.execute(sql, params) if params else con.execute(sql)
        timings.append((_label(sql, domain.target.table), *_since(start)))
        return result

    def run() -> dict:
        # The extract: the context of the slice's job.
        start = _clock()
        # As DuckDBWarehouse._unload_context: over the columns the target keeps.
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        query = registry.context_sql(
            DUCKDB, domain, "SELECT * FROM extract_slice", domain.target.table, PARTITION_COLUMN, columns
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE extract_context AS {query}")
        context_rows = con.execute("SELECT COUNT(*) FROM extract_context").fetchone()[0]
        context_s, context_cpu = _since(start)

        # The job's output: the slice's records and the context records, the latter under the
        # MatchID of the known entity they belong to (entity 4a+2's under 4a+3's: merged).
        entity = KNOWN_ENTITY.format(i="CAST(substr(customer_id, 2) AS BIGINT)")
        schema = ", ".join(f"s.{c}" for c in domain.schema.columns)
        con.execute(
            "CREATE TEMP TABLE staged_job AS "
            f"SELECT 'arn:bench' AS InputSourceARN, n.rid AS RecordId, n.match_id AS MatchID, "
            f"'email_match' AS MatchRule, {schema} FROM new_records n "
            "JOIN extract_slice_rows s ON s.customer_id = n.rid "
            f"UNION ALL SELECT 'arn:bench', s.customer_id, 'M' || CAST({entity} + CASE WHEN {entity} % 4 = 2 "
            f"THEN 1 ELSE 0 END AS VARCHAR), 'email_match', {schema} FROM extract_context s"
        )
        con.execute("CREATE TEMP TABLE context_ids AS SELECT customer_id AS record_id FROM extract_context")
        con.execute(f"CREATE TEMP TABLE staged AS SELECT * FROM staged_job WHERE customer_id NOT IN ({CONTEXT_IDS})")
        job_rows = con.execute("SELECT COUNT(*) FROM staged_job").fetchone()[0]
        reg = registry.Registry(DUCKDB, domain, timed, domain.target.table, PARTITION_COLUMN)
        reg.create()
        timings.clear()

        # The load: its transaction, as DuckDBWarehouse.load_matches runs it.
        start = _clock()
        timed("BEGIN")
        timed(f"DELETE FROM {table} WHERE partition_key = $key", {"key": PARTITION})
        timed(
            f"INSERT INTO {table} BY NAME SELECT *, $key AS partition_key, now() AS loaded_at FROM staged",
            {"key": PARTITION},
        )
        identity = reg.apply(PARTITION, RUN, STAGED_JOB, CONTEXT_IDS)
        timed("COMMIT")
        identity_s, identity_cpu = _since(start)
        con.close()
        return {
            "context_s": context_s,
            "context_cpu": context_cpu,
            "identity_s": identity_s,
            "identity_cpu": identity_cpu,
            "context_rows": context_rows,
            "job_rows": job_rows,
            "statements": timings,
            "registry_py": _registry_version(),
            "identity": {k: v for k, v in identity.metadata().items() if k != "replayed_partitions"},
        }

    return run


def _registry_version() -> str:
    """A digest of the registry.py this process imported: runs compared must share it (the
    file may change while a long benchmark runs)."""
    from er_assets.resources.warehouses import registry

    return hashlib.sha1(Path(registry.__file__).read_bytes()).hexdigest()[:10]


def _clock() -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of this process: DuckDB's threads run in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _label(sql: str, target: str) -> str:
    """A statement's first words, the registry's table names shortened."""
    text = " ".join(sql.split())
    text = re.sub(rf'"{target}_entity_(\w+)"', r"\1", text).replace(f'"{target}"', "target")
    if " WITH job AS" in text:
        return "assign: INSERT INTO plan ... WITH job AS (groups LEFT JOIN members) ..."
    text = re.sub(r"^(INSERT INTO \w+) \([^)]*\)", r"\1", text)  # its column list
    return text[:100] + ("..." if len(text) > 100 else "")


def prepare(kind: str, source: Path, out: Path) -> Callable[[], dict]:
    spec = json.loads(source.read_text())
    return {"build": build, "measure": measure}[kind](spec, out)


# --- the parent -----------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.replace("_", "").split(",") if x]


def _best(runs: list[dict]) -> dict:
    """Of repeated runs, the least of each time (a shared machine's noise only adds time), the
    statements of the fastest identity step and the largest peak RSS."""
    results = [run["result"] for run in runs]
    best = dict(min(results, key=lambda r: r["identity_s"]))
    for key in ("context_s", "context_cpu", "identity_s", "identity_cpu"):
        best[key] = min(r[key] for r in results)
    best["registry_py"] = ",".join(sorted({r["registry_py"] for r in results}))
    return {**best, "peak_mb": max(run["peak_mb"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=_sizes, help="new records per partition (default 100000,1000000)")
    parser.add_argument("--registries", type=_sizes, help="records already loaded (default 1000000,10000000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: partition 10000, registries 10000,100000")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each size, the best reported (default 2)")
    parser.add_argument("--memory-limit", default="12GB", help="DuckDB memory_limit of every run (default 12GB)")
    parser.add_argument(
        "--statements",
        type=int,
        default=STATEMENTS_SHOWN,
        help=f"slowest statements listed per partition size (default {STATEMENTS_SHOWN})",
    )
    args = parse_or_run_child(parser, ("build", "measure"), prepare)
    if args is None:
        return
    partitions = args.partitions or ([10_000] if args.quick else [100_000, 1_000_000])
    registries = sorted(args.registries or ([10_000, 100_000] if args.quick else [1_000_000, 10_000_000]))

    print(
        f"{os.cpu_count()} cores, DuckDB memory_limit {args.memory_limit}, best of {args.repeat}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at start; partition {PARTITION} after "
        f"{len(EARLIER)} earlier ones",
        flush=True,
    )
    results: dict[tuple[int, int], dict] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as tmp:
        for n in registries:
            base, spec_path = Path(tmp) / f"registry-{n}.duckdb", Path(tmp) / f"spec-{n}.json"
            spec = {"registry": n, "memory_limit": args.memory_limit, "check_keys": n <= 100_000, "base": str(base)}
            spec_path.write_text(json.dumps(spec))
            built = in_child(__file__, "build", spec_path, base)
            checked = ", keys checked" if built["result"]["keys_checked"] else ""
            print(
                f"registry of {n:,} records built in {built['wall']:.1f} s "
                f"({built['result']['bytes'] / 2**20:,.0f} MB, peak RSS {built['peak_mb']:,.0f} MB{checked})",
                flush=True,
            )
            for p in partitions:
                spec_path.write_text(json.dumps({**spec, "partition": p}))
                work = Path(tmp) / f"work-{n}-{p}.duckdb"
                runs = []
                for _ in range(args.repeat):
                    runs.append(run := in_child(__file__, "measure", spec_path, work))
                    r = run["result"]
                    print(
                        f"  partition {p:,}: context {r['context_s']:.2f} s ({r['context_rows']:,} rows), identity "
                        f"{r['identity_s']:.2f} s (job {r['job_rows']:,} rows: {r['identity']}), peak RSS "
                        f"{run['peak_mb']:,.0f} MB",
                        flush=True,
                    )
                    work.unlink()
                    shutil.rmtree(Path(tmp) / f"{work.name}.tmp", ignore_errors=True)
                results[p, n] = _best(runs)
            base.unlink()
    total = time.perf_counter() - started
    versions = {v for r in results.values() for v in r["registry_py"].split(",")}
    if len(versions) > 1:
        print(
            f"\nWARNING: registry.py changed during the run (digests {sorted(versions)}): the figures compare "
            "different code; run again."
        )

    print()
    print(f"{'':>22} {'identity step':>32}   {'context query':>32}")
    print(
        f"{'partition':>10} {'registry':>11} {'wall s':>9} {'x':>6} {'cpu s':>9} {'x':>6}   "
        f"{'wall s':>9} {'x':>6} {'cpu s':>9} {'x':>6} {'context rows':>13} {'peak MB':>8}"
    )
    for p in partitions:
        first = results[p, registries[0]]
        for n in registries:
            r = results[p, n]
            cells = []
            for kind in ("identity", "context"):
                for unit in ("s", "cpu"):
                    cells.append(f"{r[f'{kind}_{unit}']:>9.2f} {r[f'{kind}_{unit}'] / first[f'{kind}_{unit}']:>6.2f}")
            print(
                f"{p:>10,} {n:>11,} {cells[0]} {cells[1]}   {cells[2]} {cells[3]} {r['context_rows']:>13,} "
                f"{r['peak_mb']:>8,.0f}"
            )
    print(
        f"x: against this registry / against {registries[0]:,} records, at the same partition size (goal: at most "
        f"1.5); cpu: user + sys of the run's process. Whole run {total:.0f} s, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; registry.py {', '.join(sorted(versions))}."
    )

    for p in partitions:
        print()
        print(f"partition {p:,}: the identity step's slowest statements (fastest run), by registry size")
        per_run = {n: _by_statement(results[p, n]["statements"]) for n in registries}
        rows = [
            (
                i,
                label,
                [per_run[n].get((label, k), (0, 0, 0))[1] for n in registries],
                [per_run[n].get((label, k), (0, 0, 0))[2] for n in registries],
            )
            for (label, k), (i, _, _) in per_run[registries[-1]].items()
        ]
        rows.sort(key=lambda row: -row[2][-1])
        names = " ".join(f"{n:>10,}" for n in registries)
        print(f"  wall s {names} {'x':>5} | cpu s {names} {'x':>5} | statement (in order run)")
        for i, label, wall, cpu in rows[: args.statements]:
            print(
                f"  {'':6} {' '.join(f'{s:>10.3f}' for s in wall)} {_ratio(wall):>5} | {'':5} "
                f"{' '.join(f'{s:>10.3f}' for s in cpu)} {_ratio(cpu):>5} | {i:>2} {label}"
            )
        rest_wall = [sum(row[2][k] for row in rows[args.statements :]) for k in range(len(registries))]
        rest_cpu = [sum(row[3][k] for row in rows[args.statements :]) for k in range(len(registries))]
        print(
            f"  {'':6} {' '.join(f'{s:>10.3f}' for s in rest_wall)} {'':>5} | {'':5} "
            f"{' '.join(f'{s:>10.3f}' for s in rest_cpu)} {'':>5} |    the other "
            f"{max(0, len(rows) - args.statements)}"
        )


def _by_statement(timings: list) -> dict[tuple[str, int], tuple[int, float, float]]:
    """(label, occurrence) -> (position, wall, cpu): runs align by statement, not position."""
    seen: dict[str, int] = {}
    out = {}
    for i, (label, wall, cpu) in enumerate(timings):
        seen[label] = seen.get(label, -1) + 1
        out[label, seen[label]] = (i, wall, cpu)
    return out


def _ratio(values: list[float]) -> str:
    return f"{values[-1] / values[0]:.1f}" if values[0] > 0.0005 else "-"


if __name__ == "__main__":
    main()
