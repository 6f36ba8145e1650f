"""The jil, parse, graph and diff subcommands through a bare argparse parser, as the main CLI
mounts them: exit codes, one-line errors, DOT/PNG output and drift detection."""

import json
import shutil
from pathlib import Path

import pytest

from autosys_bridge.jil.diff import DRIFT
from autosys_bridge.jil.graph import build_graph, to_dot
from autosys_bridge.jil.parser import parse_jil
from er_assets import exit_codes
from er_assets_tests.helpers import DATA, run_jil_cli
from er_assets_tests.helpers import JIL_CORPUS as CORPUS


def test_jil_writes_the_golden_file(tmp_path):
    out = tmp_path / "er.jil"
    assert run_jil_cli("jil", "-o", str(out)) == exit_codes.OK
    assert out.read_text() == (DATA / "seed_domains.jil").read_text()
    assert run_jil_cli("jil", "--calendars", "-o", str(tmp_path / "er.cal")) == exit_codes.OK
    assert (tmp_path / "er.cal").read_text().startswith("calendar: ER_VENDORS_MONTHLY\n01/01/2024 00:00\n")


def test_jil_bad_configuration_is_a_usage_error_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains: [")
    assert run_jil_cli("jil", "--config", str(bad)) == exit_codes.USAGE
    assert run_jil_cli("jil", "--domain", "nope") == exit_codes.USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("autosys-bridge jil: Domain 'nope' not found")


def test_parse_json_and_strict(capsys):
    assert run_jil_cli("parse", str(CORPUS / "autorep_q_export.jil"), "--json") == exit_codes.OK
    body = json.loads(capsys.readouterr().out)
    job = body["statements"][2]
    assert (job["name"], job["job_type"], job["box_name"], job["line"]) == (
        "LEDGER_POST",
        "CMD",
        "LEDGER_NIGHTLY",
        32,
    )
    assert job["conditions"]["condition"]["job"] == "LEDGER_EXTRACT"
    # the export's permissions (we, wx) are world-wide: warnings, not errors
    assert {p["severity"] for p in body["problems"]} == {"warning"}

    broken = str(DATA / "broken.jil")
    assert run_jil_cli("parse", broken) == exit_codes.OK
    captured = capsys.readouterr()
    assert f"{broken}:10: error: bad condition" in captured.err
    assert run_jil_cli("parse", broken, "--strict") == exit_codes.USAGE
    assert "13 error(s)" in capsys.readouterr().err
    assert run_jil_cli("parse", broken, "--json") == exit_codes.OK
    assert [p["line"] for p in json.loads(capsys.readouterr().out)["problems"]][:3] == [3, 4, 10]


def test_parse_missing_file_is_one_line_usage_error(tmp_path, capsys):
    assert run_jil_cli("parse", str(tmp_path / "none.jil")) == exit_codes.USAGE
    assert (
        capsys.readouterr().err.strip()
        == f"autosys-bridge parse: {tmp_path / 'none.jil'}: cannot read: No such file or directory"
    )


def test_graph_dot_has_clusters_labelled_edges_and_unknown_jobs():
    text = """
insert_job: BOX   job_type: b
insert_job: A   job_type: c
box_name: BOX
insert_job: B   job_type: c
box_name: BOX
condition: s(A) & f(MISSING, 12) | e(A) > 3 & v(G) = go & n(OTHER^PRD)
"""
    dot = to_dot(build_graph(parse_jil(text).effective_jobs()))
    assert 'subgraph "cluster_BOX"' in dot
    assert '"A" -> "B" [label="s", color=darkgreen];' in dot
    assert '"MISSING" -> "B" [label="f (12)", color=firebrick, style=dashed];' in dot
    assert '"A" -> "B" [label="e > 3", color=grey30, style=dashed];' in dot
    assert '"$$G" -> "B" [label="v = go"' in dot
    assert '"MISSING" [label="MISSING\\n(not defined here)", style="dotted", color=grey50' in dot
    assert '"OTHER^PRD" [label="OTHER\\n(instance PRD)", style="dotted"' in dot


def test_graph_from_config_dot_is_deterministic(capsys):
    assert run_jil_cli("graph", "--from-config") == exit_codes.OK
    first = capsys.readouterr().out
    assert run_jil_cli("graph", "--from-config") == exit_codes.OK
    assert capsys.readouterr().out == first
    assert '"ER_CUSTOMER_EXTRACT" -> "ER_CUSTOMER_PROCESS" [label="s"' in first
    assert '"@ER_MATCHING_SLOT" -> "ER_VENDOR_PROCESS"' in first


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_png_of_a_corpus_file(tmp_path):
    out = tmp_path / "g.png"
    assert (
        run_jil_cli(
            "graph",
            str(CORPUS / "autorep_q_export.jil"),
            "-f",
            "png",
            "-o",
            str(out),
        )
        == exit_codes.OK
    )
    assert out.read_bytes().startswith(b"\x89PNG")


def test_graph_without_graphviz_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    assert run_jil_cli("graph", "--from-config", "-f", "svg") == exit_codes.USAGE
    assert capsys.readouterr().err.strip() == (
        "autosys-bridge graph: Graphviz 'dot' not found on PATH: install graphviz, or use -f dot"
    )


def test_graph_needs_a_file_or_from_config(capsys):
    assert run_jil_cli("graph") == exit_codes.USAGE
    assert "either a JIL file or --from-config" in capsys.readouterr().err


def test_diff_without_drift(capsys):
    assert run_jil_cli("diff", str(DATA / "seed_domains.jil")) == exit_codes.OK
    assert capsys.readouterr().out.startswith("no drift: 17 objects")


def test_diff_reports_missing_extra_and_changed_but_ignores_spelling_and_strangers(tmp_path, capsys):
    production = (DATA / "seed_domains.jil").read_text()
    production = production.replace("term_run_time: 195", "term_run_time: 180", 1)  # customers PROCESS
    production = production.replace("alarm_if_fail: 1", "alarm_if_fail: y")  # same meaning
    production = production.replace("condition: s(ER_PRODUCT_EXTRACT)", "condition: SUCCESS(ER_PRODUCT_EXTRACT)")
    start = production.index("insert_job: ER_VENDOR_LOAD")
    production = production[:start] + production[production.index("\n\n", start) + 2 :]
    production += "\ninsert_job: ER_CUSTOMER_OLD   job_type: c\ninsert_job: SOMEONE_ELSES   job_type: c\n"
    path = tmp_path / "prod.jil"
    path.write_text(production)

    assert run_jil_cli("diff", str(path)) == DRIFT == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"3 difference(s) between {path} and {Path('er_assets/domains.yaml').resolve()}:"
    assert out[1:] == [
        "  extra    insert_job ER_CUSTOMER_OLD: in production, not in the configuration",
        "  changed  ER_CUSTOMER_PROCESS term_run_time: production '180', configuration '195'",
        "  missing  insert_job ER_VENDOR_LOAD: in the configuration, not in production",
    ]
    assert run_jil_cli("diff", str(path), "--json", "--domain", "products") == exit_codes.OK
    assert json.loads(capsys.readouterr().out) == {"drift": False, "differences": []}
