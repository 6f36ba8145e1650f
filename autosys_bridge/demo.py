"""`python -m autosys_bridge.demo`: a realistic recent history per domain, through real runs.

Per domain, the latest partitions (21 daily, 8 weekly or 6 monthly, by cadence) are seeded
with generated records (with true duplicates) whose volume varies from one partition to the
next (quieter weekends, noise), a few with a planted defect; then extract -> matched -> loaded
runs for each, oldest first, into the local DAGSTER_HOME, exactly as `autosys-bridge run
DOMAIN all` would. The checks block the defective partitions; the summary names them and
why. The exit status is 0 as long as only planted defects were blocked.

    python -m autosys_bridge.demo                                         # the history above
    python -m autosys_bridge.demo --from 2026-06-01 --to 2026-06-30 --seed-only
        # seed every partition whose period overlaps June, for a backfill from the UI
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import sys
import time

# Sized so that the whole demo runs in about two minutes on two cores: ~35 real runs.
HISTORY = {"daily": 21, "weekly": 8, "monthly": 6}
DEFAULT_RECORDS = {"customers": 1_500, "products": 3_000, "vendors": 2_000}
# Planted defects by position from the newest partition (-1): the newest stays clean, and each
# has enough passing partitions before it for the anomaly checks to judge.
DEFECTS = {
    "daily": {-18: "missing_feed", -10: "null_required", -7: "glue_value", -4: "volume_spike"},
    "weekly": {-3: "volume_drop"},
    "monthly": {-2: "duplicate_ids"},
}
WEEKEND = 0.7  # daily volume on Saturdays and Sundays
# Keep Dagster's per-event console log out of the progress lines (the event log keeps it all).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def volume(domain, partition: str, base: int, quiet_weekend: bool = True) -> int:
    """Records in a partition: the base volume, quieter on weekends for daily domains, +/- 10%
    noise. Deterministic per (domain, partition), so a re-seed gives the same figures."""
    day = dt.date.fromisoformat(partition)
    weekend = WEEKEND if quiet_weekend and domain.schedule.cadence == "daily" and day.weekday() >= 5 else 1.0
    noise = random.Random(f"{domain.name}:{partition}").uniform(0.9, 1.1)
    return round(base * weekend * noise)


def recent_partitions(domain, count: int) -> list[str]:
    """The latest `count` complete partitions of the domain, oldest first."""
    from er_assets.partitions import latest_complete_partition, previous_partitions

    latest = latest_complete_partition(domain)
    return [*reversed(previous_partitions(domain, latest, count - 1)), latest]


def partitions_between(domain, first: dt.date, last: dt.date) -> list[str]:
    """Every complete partition whose period overlaps [first, last], oldest first."""
    from er_assets.partitions import business_dates, latest_complete_partition, partition_for_date

    latest = latest_complete_partition(domain)
    key = partition_for_date(domain, max(first, domain.schedule.start_date))
    keys = []
    while key <= latest and dt.date.fromisoformat(key) <= last:
        keys.append(key)
        key = business_dates(domain, key)[1].isoformat()
    return keys


def latest_figures(domain, partition: str) -> dict:
    """The latest partition's rows, MatchIDs and matched records, and over every loaded partition
    the durable entities, the records whose entity spans several partitions (linked across
    days) and one such record to look at (seen on three partitions or more, if any)."""
    import duckdb

    from er_assets.environment import local_paths

    table = f'"{domain.target.table}"'
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        figures = con.execute(
            f"""
            WITH t AS (SELECT "MatchID", count(*) OVER (PARTITION BY "MatchID") AS n
                       FROM {table} WHERE partition_key = ?)
            SELECT count(*), count(DISTINCT "MatchID"), count(*) FILTER (WHERE n > 1) FROM t
            """,
            [partition],
        ).fetchone()
        uid = f'"{domain.schema.unique_id}"'
        registry = con.execute(
            f"""
            WITH t AS (SELECT {uid} AS id, entity_id,
                              count(DISTINCT partition_key) OVER (PARTITION BY entity_id) AS days FROM {table})
            SELECT count(DISTINCT entity_id), count(*) FILTER (WHERE days > 1),
                   coalesce(min(id) FILTER (WHERE days > 2), min(id) FILTER (WHERE days > 1))
            FROM t
            """
        ).fetchone()
    finally:
        con.close()
    # Aggregates without GROUP BY: each query returns exactly one row.
    assert figures is not None and registry is not None
    rows, groups, matched = figures
    entities, linked, example = registry
    return {
        "rows": rows,
        "match_ids": groups,
        "matched": matched,
        "entities": entities,
        "linked": linked,
        "example": example,
    }


def why_blocked(domain, partition: str) -> str:
    """The failing checks of the first stage that blocked the partition, as their results say."""
    import dagster as dg

    from er_assets import stages
    from er_assets.pipeline.gate import failing_checks

    with dg.DagsterInstance.get() as instance:
        for stage in stages.ASSETS:
            failing = failing_checks(instance, domain, stage, partition)
            if failing:
                return f"{stage}: " + "; ".join(f"{name}: {text}" for name, text in failing.items())
    return "no failing check recorded"


def _cpu_seconds() -> float:
    # The matching emulator's workers are child processes; reaped ones count.
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m autosys_bridge.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--domain", action="append", help="only these domains (repeatable)")
    parser.add_argument(
        "--records",
        type=int,
        help="typical records per partition (default: customers 1500, products 3000, vendors 2000)",
    )
    parser.add_argument(
        "--partitions", type=int, help="the latest N partitions per domain (default: 21 daily, 8 weekly, 6 monthly)"
    )
    parser.add_argument("--from", dest="first", type=_date, help="seed the partitions from this date ...")
    parser.add_argument("--to", dest="last", type=_date, help="... to this one (default: today); no planted defects")
    parser.add_argument("--seed-only", action="store_true", help="seed the source table, run nothing")
    args = parser.parse_args(argv)
    if args.last and not args.first:
        parser.error("--to needs --from")
    if args.first and args.partitions:
        parser.error("--partitions and --from/--to choose the partitions two ways; give one")
    if args.first and args.first > (args.last or dt.date.today()):
        parser.error(f"--from {args.first} is after --to {args.last or dt.date.today()}")
    for option in ("records", "partitions"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    return args


def plan(config, args) -> list[tuple]:
    """(domain, partition, records, planted defect or None) for every partition to seed."""
    work = []
    for name in args.domain or list(config.domains):
        domain = config.domain(name)
        cadence = domain.schedule.cadence
        if args.first:
            keys, defects = partitions_between(domain, args.first, args.last or dt.date.today()), {}
        else:
            keys, defects = recent_partitions(domain, args.partitions or HISTORY[cadence]), DEFECTS[cadence]
        base = args.records or DEFAULT_RECORDS.get(name, 1_000)
        for position, key in enumerate(keys):
            defect = defects.get(position - len(keys))
            # The glued records must stay a minority of the partition, or the match-rate checks
            # block it before the load's oversized_entities does: never a quiet weekend's volume.
            work.append((domain, key, volume(domain, key, base, quiet_weekend=defect != "glue_value"), defect))
    return work


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from autosys_bridge.runner import run_stage
    from er_assets import exit_codes, stages
    from er_assets.config import ConfigError, load_config
    from er_assets.defs.instance import ensure_dagster_home
    from er_assets.environment import deployment, local_paths
    from er_assets.ops.sample_data import seed_partition

    if deployment() != "local":
        print("the demo runs on the local deployment only (unset ER_DEPLOYMENT)", file=sys.stderr)
        return exit_codes.USAGE
    try:
        config = load_config()
        work = plan(config, args)
    except (ConfigError, ValueError) as exc:
        print(f"python -m autosys_bridge.demo: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    home = ensure_dagster_home()
    started, cpu = time.monotonic(), _cpu_seconds()
    results = []
    for number, (domain, partition, base, defect) in enumerate(work, start=1):
        began = time.monotonic()
        records = seed_partition(domain, partition, base, local_paths()["warehouse"], defect)
        code = None
        if not args.seed_only:
            assets = [f"{domain.name}/{stage}" for stage in stages.ASSETS]
            # The emulator finishes in seconds: poll it every second, not on AWS's back-off.
            run_config = {**QUIET, "ops": {f"{domain.name}__matched": {"config": {"check_interval": 1}}}}
            code = run_stage(config, domain, "all", assets, partition, run_config, None, trigger="demo")
        results.append((domain, partition, records, defect, code))
        outcome = "seeded" if code is None else exit_codes.DESCRIPTIONS[code]
        planted = f" (planted: {defect})" if defect else ""
        print(
            f"[{number}/{len(work)}] {domain.name} {partition}: {records} records{planted}: {outcome} "
            f"in {time.monotonic() - began:.1f} s",
            flush=True,
        )
    elapsed, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    if args.seed_only:
        print(
            f"\nseeded {len(work)} partitions in {elapsed:.0f} s into {local_paths()['warehouse']}; "
            "materialise or backfill them from the UI (make dev)"
        )
        return exit_codes.OK
    return report(config, results, elapsed, cpu, home)


def report(config, results, elapsed: float, cpu: float, home) -> int:
    from er_assets import exit_codes
    from er_assets.environment import local_paths

    print(
        f"\n== Entity resolution demo: {len(results)} partitions in {elapsed:.0f} s "
        f"(CPU {cpu:.0f} s, matching workers included) =="
    )
    print(
        f"{'domain':<10} {'cadence':<8} {'runs':>4} {'loaded':>6} {'blocked':>7} {'records':>8}  "
        f"{'latest':<10} {'match ids':>9} {'matched':>8} {'entities':>9} {'linked':>7}"
    )
    examples = []
    for name in dict.fromkeys(domain.name for domain, *_ in results):
        mine = [r for r in results if r[0].name == name]
        domain, latest = mine[-1][0], mine[-1][1]
        loaded = sum(code == exit_codes.OK for *_, code in mine)
        figures = (
            latest_figures(domain, latest)
            if mine[-1][-1] == exit_codes.OK
            else {"match_ids": 0, "matched": 0, "entities": 0, "linked": 0, "example": None}
        )
        print(
            f"{name:<10} {domain.schedule.cadence:<8} {len(mine):>4} {loaded:>6} {len(mine) - loaded:>7} "
            f"{sum(r[2] for r in mine):>8}  {latest:<10} {figures['match_ids']:>9} {figures['matched']:>8} "
            f"{figures['entities']:>9} {figures['linked']:>7}"
        )
        if figures["example"]:
            examples.append(f"autosys-bridge entities show {name} {figures['example']}")
    if examples:
        print(
            "\n`entities` are durable entity ids over every loaded partition; `linked` counts records whose "
            "entity spans several partitions. A customer who came back:\n  "
            + "\n  ".join(f".venv/bin/{example}" for example in examples)
        )
    blocked = [r for r in results if r[-1] != exit_codes.OK]
    worst = exit_codes.OK
    if blocked:
        print("\nBlocked partitions (nothing of them reached the target table):")
    for domain, partition, _, defect, code in blocked:
        why = why_blocked(domain, partition) if code == exit_codes.DQ_GATE_FAILED else exit_codes.DESCRIPTIONS[code]
        expected = code == exit_codes.DQ_GATE_FAILED and defect
        worst = worst or (exit_codes.OK if expected else code)
        print(f"  {domain.name} {partition} [{f'planted: {defect}' if defect else 'NOT PLANTED'}] {why}")
    paths = local_paths()
    print(
        f"\nwarehouse (DuckDB):  {paths['warehouse']}  tables: "
        + ", ".join(config.domain(n).target.table for n in dict.fromkeys(d.name for d, *_ in results))
    )
    print(f"object store:        {paths['objects']}")
    print("job history:         autosys-bridge report -o report.html")
    print(f"Dagster instance:    {home}  (explore with: make dev)")
    return worst


if __name__ == "__main__":
    sys.exit(main())
