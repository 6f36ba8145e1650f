"""`autosys-bridge lint`: one JIL file per rule under er_assets_tests/jil/lint/, each line that
must be reported marked `/* expect: SEVERITY: text */`, and a clean file that must not be.
The linter must report exactly the marked lines, with the marked severity and text."""

import json
import re
from pathlib import Path

import pytest

from autosys_bridge.jil.emitter import emit_jil
from autosys_bridge.jil.lint import lint
from autosys_bridge.jil.parser import parse_jil, read_jil
from er_assets import exit_codes
from er_assets_tests.helpers import JIL_LINT as LINT
from er_assets_tests.helpers import run_jil_cli

RULE_FILES = sorted(p.name for p in LINT.glob("*.jil") if not p.name.startswith("cross_file"))
EXPECT = re.compile(r"/\* expect: (error|warning): (.*?) \*/")


def expected(path: Path) -> list[tuple[int, str, str]]:
    marks = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        marks += [(number, severity, text) for severity, text in EXPECT.findall(line)]
    return sorted(marks)


def assert_reports_exactly_the_marks(problems, marks) -> None:
    assert sorted((p.line, p.severity) for p in problems) == [(n, s) for n, s, _ in marks], [str(p) for p in problems]
    for number, severity, text in marks:
        assert any(p.line == number and p.severity == severity and text in p.message for p in problems), (
            number,
            severity,
            text,
            [str(p) for p in problems if p.line == number],
        )


def test_every_rule_has_a_file_with_marked_lines():
    assert "clean.jil" in RULE_FILES and len(RULE_FILES) >= 20
    for name in RULE_FILES:
        if name != "clean.jil":
            assert expected(LINT / name), f"{name} marks no line"


@pytest.mark.parametrize("name", RULE_FILES)
def test_rule_file_reports_exactly_its_marked_lines(name):
    path = LINT / name
    assert_reports_exactly_the_marks(lint([read_jil(path)]), expected(path))


def test_cross_file_references_are_warnings_alone_and_nothing_together():
    main, other = LINT / "cross_file_main.jil", LINT / "cross_file_other.jil"
    alone = lint([read_jil(main)])
    assert_reports_exactly_the_marks(alone, expected(main))
    assert {p.severity for p in alone} == {"warning"}
    assert lint([read_jil(main), read_jil(other)]) == []
    assert lint([read_jil(other), read_jil(main)]) == []


def test_duplicates_across_files_are_warned_at_the_second_insert(tmp_path):
    first, second = tmp_path / "a.jil", tmp_path / "b.jil"
    first.write_text("insert_job: SAME   job_type: c\ncommand: x\nmachine: m\ndate_conditions: 0\n")
    second.write_text(first.read_text())
    [problem] = lint([read_jil(first), read_jil(second)])
    assert (problem.path, problem.line, problem.severity) == (str(second), 1, "warning")
    assert f"also inserted in {first} line 1" in problem.message


def test_the_emitted_jil_lints_clean(config):
    assert lint([parse_jil(emit_jil(config), "er.jil")]) == []


def test_cli_text_json_and_exit_codes(tmp_path, capsys):
    clean, broken = str(LINT / "clean.jil"), str(LINT / "unquoted_times.jil")
    assert run_jil_cli("lint", clean) == exit_codes.OK
    assert capsys.readouterr().out == "1 file(s): 0 error(s), 0 warning(s)\n"

    assert run_jil_cli("lint", clean, broken) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'{broken}:5: error: start_times: times must be quoted: start_times: "10:30"'
    assert out[-1] == "2 file(s): 3 error(s), 0 warning(s)"

    assert run_jil_cli("lint", broken, "--format", "json") == 1
    body = json.loads(capsys.readouterr().out)
    assert (body["errors"], body["warnings"], body["files"]) == (3, 0, [broken])
    assert body["problems"][0] == {
        "file": broken,
        "line": 5,
        "severity": "error",
        "message": 'start_times: times must be quoted: start_times: "10:30"',
    }

    warnings_only = str(LINT / "nothing_starts.jil")
    assert run_jil_cli("lint", warnings_only) == exit_codes.OK
    assert run_jil_cli("lint", warnings_only, "--strict") == 1
    capsys.readouterr()

    assert run_jil_cli("lint", clean, str(tmp_path / "missing.jil")) == exit_codes.USAGE
    assert capsys.readouterr().err.strip() == (
        f"autosys-bridge lint: {tmp_path / 'missing.jil'}: cannot read: No such file or directory"
    )


def test_declared_globals_and_site_timezones(tmp_path, capsys):
    path = tmp_path / "g.jil"
    path.write_text(
        "insert_job: G   job_type: c\ncommand: run $$MODE\nmachine: m\ndate_conditions: 0\ntimezone: HeadOffice\n"
    )
    assert run_jil_cli("lint", str(path)) == 1
    out = capsys.readouterr().out
    assert "warning: global MODE" in out and "error: timezone 'HeadOffice'" in out
    assert run_jil_cli("lint", str(path), "--global", "MODE", "--timezone", "headoffice") == 0


@pytest.mark.parametrize("name", ["unquoted_times.jil", "box_name.jil", "condition_cycle.jil"])
def test_parse_strict_graph_and_diff_report_the_same_problems(name, capsys):
    path = str(LINT / name)
    reported = [str(p) for p in lint([read_jil(path)])]
    errors = any(" error: " in line for line in reported)
    assert run_jil_cli("parse", path, "--strict") == (exit_codes.USAGE if errors else exit_codes.OK)
    assert capsys.readouterr().err.splitlines()[: len(reported)] == reported
    assert run_jil_cli("graph", path) == exit_codes.OK
    assert capsys.readouterr().err.splitlines() == reported
    run_jil_cli("diff", path)
    assert capsys.readouterr().err.splitlines() == reported
    assert run_jil_cli("parse", path, "--json") == exit_codes.OK
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [f"{path}:{p['line']}: {p['severity']}: {p['message']}" for p in problems] == reported


def test_a_chain_of_conditions_thousands_of_jobs_long_is_linted(tmp_path):
    """Deeper than Python's recursion limit: each job waits for the next, and the last for the
    first closes one ring through all of them."""
    count = 3000

    def chain(closed: bool) -> str:
        jobs = []
        for i in range(count):
            after = f"J{i + 1:05d}" if i + 1 < count else ("J00000" if closed else None)
            condition = f"condition: s({after})\n" if after else "date_conditions: 0\n"
            jobs.append(f"insert_job: J{i:05d}   job_type: CMD\ncommand: x\nmachine: m\n{condition}")
        return "\n".join(jobs)

    assert lint([parse_jil(chain(closed=False), "open.jil")]) == []
    [ring] = lint([parse_jil(chain(closed=True), "ring.jil")])
    assert ring.severity == "warning" and ring.message.startswith("condition cycle J00000 -> J00001 -> ")
    assert ring.message.endswith(f"J{count - 1:05d} -> J00000: none of these jobs can start")
