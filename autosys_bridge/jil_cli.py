"""The `jil`, `parse`, `lint`, `graph` and `diff` subcommands of `autosys-bridge`.

The main CLI calls `add_parsers(subparsers)` and then `args.func(args)`, which returns an exit
code from `exit_codes`: bad input (unreadable file, bad configuration, --strict problems)
gives USAGE with one line on stderr, never a traceback; `diff` gives DRIFT (1) on drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autosys_bridge.jil.diff import DRIFT, find_drift
from autosys_bridge.jil.emitter import (
    ON_DEMAND_JOB,
    JilEmitError,
    build_statements,
    emit_calendars,
    emit_jil,
    selected_domains,
)
from autosys_bridge.jil.graph import FORMATS, GraphRenderError, build_graph, render, to_dot
from autosys_bridge.jil.lint import ERROR, Options, lint
from autosys_bridge.jil.model import JilFile
from autosys_bridge.jil.parser import JilReadError, read_jil
from er_assets import exit_codes
from er_assets.config import ConfigError, load_config

_INPUT_ERRORS = (ConfigError, JilEmitError, JilReadError, GraphRenderError, OSError)
# `autosys-bridge lint` exits with this when it finds errors (2 means a file is unreadable).
LINT_PROBLEMS = exit_codes.STAGE_FAILED


def add_parsers(subparsers) -> None:
    jil = subparsers.add_parser("jil", help="emit the AutoSys 12 JIL for the configured domains")
    _config_options(jil)
    jil.add_argument("-o", "--output", help="write to this file instead of stdout")
    jil.add_argument(
        "--calendars",
        action="store_true",
        help="emit the run calendars of monthly domains (autocal_asc import format) instead",
    )
    jil.set_defaults(func=_guarded(run_jil, "jil"))

    parse = subparsers.add_parser("parse", help="parse a JIL file and list its jobs and problems")
    parse.add_argument("file", help="JIL file (jil input, autorep -q output, autocal_asc export)")
    parse.add_argument("--json", action="store_true", help="print the jobs and problems as JSON")
    parse.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero on any error `autosys-bridge lint` reports (unreadable lines included)",
    )
    parse.set_defaults(func=_guarded(run_parse, "parse"))

    graph = subparsers.add_parser("graph", help="draw the dependency graph of a JIL file or of the configuration")
    graph.add_argument("file", nargs="?", help="JIL file to draw")
    graph.add_argument("--from-config", action="store_true", help="draw the JIL the configuration emits")
    _config_options(graph)
    graph.add_argument("-f", "--format", choices=FORMATS, default="dot", help="output format (default: dot)")
    graph.add_argument("-o", "--output", help="write to this file instead of stdout")
    graph.set_defaults(func=_guarded(run_graph, "graph"))

    lint = subparsers.add_parser(
        "lint", help="check JIL files for what `jil` would reject, and what bites in production"
    )
    lint.add_argument("files", nargs="+", metavar="FILE", help="JIL files, linted together")
    lint.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    for flag, dest, what in (
        ("--global", "globals", "a global set with sendevent -E SET_GLOBAL, in no file"),
        ("--timezone", "timezones", "an entry of the site's own AE timezone table"),
    ):
        lint.add_argument(flag, dest=dest, action="append", default=[], metavar="NAME", help=f"{what} (repeatable)")
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too, not only on errors")
    lint.set_defaults(func=_guarded(run_lint, "lint"))

    diff = subparsers.add_parser("diff", help="compare a production JIL export with the configuration")
    diff.add_argument("file", help="production export (autorep -q -J ALL > prod.jil)")
    _config_options(diff)
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(func=_guarded(run_diff, "diff"))


def _config_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps a --config given to the main parser from being overwritten by None here.
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="domain configuration (default: $ER_CONFIG or the shipped one)",
    )
    parser.add_argument(
        "--domain",
        action="append",
        default=argparse.SUPPRESS,
        metavar="D",
        help="only this domain (repeatable; default: all)",
    )


def _guarded(command, name: str):
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _INPUT_ERRORS as exc:
            message = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
            # A configuration may have several problems: each gets its own line.
            for line in message.splitlines() or [""]:
                print(f"autosys-bridge {name}: {line}", file=sys.stderr)
            return exit_codes.USAGE

    run.__doc__ = command.__doc__
    return run


def _write(args: argparse.Namespace, data: str | bytes) -> None:
    if getattr(args, "output", None):
        path = Path(args.output)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        sys.stdout.write(data)


def _config_and_domains(args: argparse.Namespace):
    return load_config(getattr(args, "config", None)), getattr(args, "domain", None)


def run_jil(args: argparse.Namespace) -> int:
    """Emit JIL (or with --calendars the autocal_asc calendars) from the configuration."""
    config, domains = _config_and_domains(args)
    text = emit_calendars(config, domains) if args.calendars else emit_jil(config, domains)
    _write(args, text)
    return exit_codes.OK


def _read_and_lint(path: str) -> JilFile:
    """A parsed file whose problems are everything the linter finds in it."""
    parsed = read_jil(path)
    parsed.problems = lint([parsed])
    return parsed


def run_parse(args: argparse.Namespace) -> int:
    """Print the statements of a JIL file; problems go to stderr (or into the JSON)."""
    parsed = _read_and_lint(args.file)
    if args.json:
        _write(args, json.dumps(parsed.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        _write(args, _summary(parsed))
        for problem in parsed.problems:
            print(problem, file=sys.stderr)
    errors = [p for p in parsed.problems if p.severity == ERROR]
    if args.strict and errors:
        print(
            f"autosys-bridge parse: {len(errors)} error(s) in {args.file} (--strict)",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    return exit_codes.OK


def run_lint(args: argparse.Namespace) -> int:
    """Lint JIL files together: 0 clean (or warnings only), 1 errors (--strict: or warnings),
    2 a file cannot be read."""
    files = [read_jil(path) for path in args.files]
    problems = lint(files, Options(frozenset(args.globals), frozenset(t.lower() for t in args.timezones)))
    errors = sum(p.severity == ERROR for p in problems)
    warnings = len(problems) - errors
    if args.format == "json":
        body = {
            "files": [f.path for f in files],
            "errors": errors,
            "warnings": warnings,
            "problems": [{"file": p.path, **p.to_json()} for p in problems],
        }
        _write(args, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    else:
        lines = [str(p) for p in problems]
        lines.append(f"{len(files)} file(s): {errors} error(s), {warnings} warning(s)")
        _write(args, "\n".join(lines) + "\n")
    failed = errors or (args.strict and warnings)
    return LINT_PROBLEMS if failed else exit_codes.OK


def _summary(parsed: JilFile) -> str:
    lines = [f"{parsed.path}: {len(parsed.statements)} statements, {len(parsed.problems)} problems"]
    for statement in parsed.statements:
        line = f"{statement.line:>6}  {statement.subcommand:<18} {statement.name}"
        if statement.is_job:
            line += f"  [{statement.job_type or '-'}]"
            if statement.box_name:
                line += f"  in {statement.box_name}"
            for name, tree in statement.conditions.items():
                line += f"  {name}: {tree.to_jil()}"
        if statement.dates:
            line += f"  ({len(statement.dates)} dates)"
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_graph(args: argparse.Namespace) -> int:
    """Draw a JIL file's (or the configuration's) jobs as DOT, SVG or PNG."""
    if bool(args.file) == bool(args.from_config):
        print("autosys-bridge graph: give either a JIL file or --from-config", file=sys.stderr)
        return exit_codes.USAGE
    if args.from_config:
        config, domains = _config_and_domains(args)
        jobs = {s.name: s for s in build_statements(config, domains) if s.is_job}
        title = "entity resolution (configuration)"
    else:
        parsed = _read_and_lint(args.file)
        for problem in parsed.problems:
            print(problem, file=sys.stderr)
        jobs, title = parsed.effective_jobs(), Path(args.file).name
    _write(args, render(to_dot(build_graph(jobs), title), args.format))
    return exit_codes.OK


def run_diff(args: argparse.Namespace) -> int:
    """Compare a production export with today's emitted JIL; exit DRIFT (1) on any difference."""
    config, domains = _config_and_domains(args)
    expected = build_statements(config, domains)
    production = _read_and_lint(args.file)
    for problem in production.problems:
        print(problem, file=sys.stderr)
    prefixes = [d.autosys.job_prefix for d in selected_domains(config, domains)]
    differences = find_drift(production, expected, prefixes)
    if args.json:
        _write(
            args,
            json.dumps(
                {"drift": bool(differences), "differences": [d.to_json() for d in differences]},
                indent=2,
            )
            + "\n",
        )
    elif differences:
        lines = [f"{len(differences)} difference(s) between {args.file} and {config.path}:"]
        _write(args, "\n".join(lines + [f"  {d}" for d in differences]) + "\n")
    else:
        _write(
            args,
            f"no drift: {len(expected)} objects ({ON_DEMAND_JOB} and the resource included) match {config.path}\n",
        )
    return DRIFT if differences else exit_codes.OK
