"""`autosys-bridge`: what AutoSys command jobs call.

At start-up only the standard library and the configuration model (pydantic) are imported,
so `--help` and `--dry-run` answer in a fraction of a second; Dagster, DuckDB and boto3 are
imported only when a stage really runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from er_assets import exit_codes
from er_assets.stages import JOBS, RUNS


class UsageError(Exception):
    """Bad arguments or configuration: exit USAGE with one line on stderr."""


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return int(value)


def _resolve(args, record: bool = False):
    """(configuration, domain, partition key) for a domain and optional business date; with
    `record`, the first job of an AutoSys box run records the partition for the rest of it."""
    from er_assets.config import ConfigError, load_config
    from er_assets.partitions import latest_complete_partition, partition_for_date

    try:
        config = load_config(args.config)
        domain = config.domain(args.domain)
        if args.date:
            partition = partition_for_date(domain, args.date)
        else:
            # Under AutoSys every job of a box run works on the partition its first job chose,
            # however late it is restarted (box_run).
            from autosys_bridge import box_run

            partition = box_run.pinned(
                domain.name, lambda: {"partition": latest_complete_partition(domain)}, record=record
            )["partition"]
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return config, domain, partition


def cmd_params(args) -> int:
    from er_assets import layout
    from er_assets.partitions import business_dates

    config, domain, partition = _resolve(args)
    start, end = business_dates(domain, partition)
    params = {
        "domain": domain.name,
        "project_name": domain.project_name,
        "partition_key": partition,
        "process_date": (args.date or start).isoformat(),
        "first_date": start.isoformat(),
        "end_date": end.isoformat(),
        "source_table": domain.source.table,
        "target_table": domain.target.table,
        "extract_prefix": layout.partition_prefix(domain, partition),
        "output_prefix": layout.output_prefix(domain),
        "workflow_name": domain.workflow_name,
        "glue_table": f"{config.settings.glue_database}.{domain.glue_table}",
        "region": config.settings.region,
        "execution_timeout": config.settings.execution_timeout,
        "check_interval": config.settings.check_interval,
        "dq": domain.dq.model_dump(),
        "config_file": str(config.path),
    }
    print(json.dumps(params, indent=2))
    return exit_codes.OK


def cmd_run(args) -> int:
    _check_override(args)
    config, domain, partition = _resolve(args, record=not args.dry_run)
    assets = [f"{domain.name}/{stage}" for stage in RUNS[args.stage]]
    if args.dry_run:
        run_config = _run_config(args)
        # The plain Dagster CLI reads the configuration from the environment.
        command = [
            f"ER_CONFIG={config.path}",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "er_assets.defs.definitions",
            "--select",
            ",".join(assets),
            "--partition",
            partition,
        ]
        if run_config:
            command += ["--config-json", json.dumps(run_config)]
        print(" ".join(_shell_quote(c) for c in command))
        print(
            json.dumps(
                {
                    "domain": domain.name,
                    "stage": args.stage,
                    "assets": assets,
                    "partition_key": partition,
                    "config_file": str(config.path),
                    "run_config": run_config,
                },
                indent=2,
            )
        )
        return exit_codes.OK
    from autosys_bridge.runner import run_stage

    return run_stage(config, domain, args.stage, assets, partition, _run_config(args), args.date)


def cmd_on_demand(args) -> int:
    """ER_ON_DEMAND's jobs: the domain and date of the AutoSys globals, validated before
    anything uses them (on_demand) and pinned for the box run, so a global set again mid-run
    cannot change what its later stages do."""
    from autosys_bridge import box_run
    from autosys_bridge.jil.emitter import ON_DEMAND_JOB
    from autosys_bridge.on_demand import RequestError, read_request

    try:
        chosen = box_run.pinned(ON_DEMAND_JOB, lambda: read_request(args.config), record=not args.dry_run)
    except RequestError as exc:
        raise UsageError(str(exc)) from None
    args.domain, args.date = chosen["domain"], dt.date.fromisoformat(chosen["date"])
    return cmd_run(args)


def _run_config(args) -> dict:
    ops: dict[str, dict] = {}
    overrides = {}
    if args.timeout:
        overrides["execution_timeout"] = args.timeout
    if args.check_interval:
        overrides["check_interval"] = args.check_interval
    if overrides and args.stage in ("process", "all"):
        ops["matched"] = overrides
    if args.override_gate:
        for stage in RUNS[args.stage]:
            if stage != "extract":  # the first stage has no upstream gate
                ops.setdefault(stage, {}).update(
                    override_gate=True, override_reason=args.reason, override_by=_operator()
                )
    return {"ops": {f"{args.domain}__{stage}": {"config": config} for stage, config in ops.items()}} if ops else {}


def _operator() -> str:
    """Who overrides a gate, for the record: the login running the bridge (the AutoSys owner
    for an AutoSys job, named too)."""
    import getpass
    import os

    job = os.environ.get("AUTO_JOB_NAME")
    return f"{getpass.getuser()} (AutoSys job {job})" if job else getpass.getuser()


def _check_override(args) -> None:
    if args.reason is not None and not args.override_gate:
        raise UsageError("--reason goes with --override-gate")
    if not args.override_gate:
        return
    if args.stage == "extract":
        raise UsageError("--override-gate: extract has no upstream data-quality gate to override")
    if not (args.reason or "").strip():
        raise UsageError("--override-gate needs --reason TEXT: why the reviewed data may go on")


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def cmd_validate(args) -> int:
    from autosys_bridge.jil.emitter import JilEmitError, build_statements
    from er_assets.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        build_statements(config)  # what only the JIL can refuse: an AutoSys condition, a deadline
    except (ConfigError, JilEmitError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{config.path}: {len(config.domains)} domains valid: {', '.join(config.domains)}")
    return exit_codes.OK


def cmd_report(args) -> int:
    from er_assets.history import HistoryError, HistoryStore
    from er_assets.ops.report import render_report

    try:
        with HistoryStore.from_url(args.url) if args.url else HistoryStore.from_env() as store:
            html = render_report(store, days=args.days)
    except HistoryError as exc:
        print(f"autosys-bridge: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exit_codes.SERVICE_UNAVAILABLE
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(html)
    print(f"wrote {args.output} ({args.days} days of job history)")
    return exit_codes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autosys-bridge",
        description="Run entity-resolution stages for AutoSys, and emit, parse and draw JIL.",
        epilog="Exit codes: " + "; ".join(f"{code} {text}" for code, text in exit_codes.DESCRIPTIONS.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def domain_command(name: str, help_text: str):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("domain", help="domain name from the configuration")
        p.add_argument("--date", type=_date, help="business date YYYY-MM-DD (default: latest complete partition)")
        p.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped domains.yaml)")
        return p

    run = domain_command("run", "Materialise one stage of a domain for the partition containing a date.")
    run.add_argument("stage", choices=list(RUNS), help="extract, process (matching), load, or all three")
    run.add_argument("--timeout", type=_positive, help="EXECUTION_TIMEOUT in seconds for the matching job")
    run.add_argument("--check-interval", type=_positive, help="CHECK_INTERVAL: cap in seconds between status polls")
    run.add_argument(
        "--override-gate",
        action="store_true",
        help="run although the upstream stage's latest data-quality checks failed for this partition "
        "(after reviewing the data; logged and recorded with --reason)",
    )
    run.add_argument("--reason", help="why the gate is overridden (required with --override-gate)")
    run.add_argument("--dry-run", action="store_true", help="print the equivalent dagster command and parameters")
    run.set_defaults(func=cmd_run)

    on_demand = sub.add_parser(
        "on-demand", help="Run a stage of ER_ON_DEMAND: the domain and date in $ER_DOMAIN and $ER_PROCESS_DATE."
    )
    on_demand.add_argument("stage", choices=list(JOBS), help="the stage to run")
    on_demand.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped domains.yaml)")
    on_demand.add_argument("--dry-run", action="store_true", help="print the equivalent dagster command and parameters")
    on_demand.set_defaults(func=cmd_on_demand, timeout=None, check_interval=None, override_gate=False, reason=None)

    params = domain_command("params", "Print the resolved parameters of a domain and date as JSON.")
    params.set_defaults(func=cmd_params)

    validate = sub.add_parser("validate", help="Validate a configuration file.")
    validate.add_argument("--config", help="configuration file")
    validate.set_defaults(func=cmd_validate)

    report = sub.add_parser("report", help="Render the job-history dashboard as one offline HTML file.")
    report.add_argument("--days", type=_positive, default=30, help="days of history to show (default 30)")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    report.add_argument("--url", help="history database URL (default: $ER_HISTORY_URL, else the local history.db)")
    report.set_defaults(func=cmd_report)

    from autosys_bridge import aws_cli, jil_cli
    from er_assets.ops import doctor, entities

    jil_cli.add_parsers(sub)
    doctor.add_parser(sub)
    entities.add_parser(sub)
    aws_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from autosys_bridge.box_run import BoxRunError

    try:
        return args.func(args)
    except UsageError as exc:
        # A configuration may have several problems: each gets its own line.
        for line in str(exc).splitlines() or [""]:
            print(f"autosys-bridge: error: {line}", file=sys.stderr)
        return exit_codes.USAGE
    except BoxRunError as exc:
        print(f"autosys-bridge: error: {exc}", file=sys.stderr)
        return exit_codes.SERVICE_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
