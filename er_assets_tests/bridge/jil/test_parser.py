"""The JIL parser on the project's JIL corpus (hand-checked expectations), on broken JIL, and on
the syntax corners: header form, quoting, escapes, comments, continuations, blobs, CRLF, non-ASCII."""

import pytest

from autosys_bridge.jil.parser import JilReadError, parse_jil, read_jil
from er_assets_tests.helpers import DATA
from er_assets_tests.helpers import JIL_CORPUS as CORPUS

# file -> [(subcommand, name, job_type, box_name, {attribute: canonical condition})]
EXPECTED = {
    "autorep_q_export.jil": [
        ("insert_job", "LEDGER_NIGHTLY", "BOX", None, {}),
        ("insert_job", "LEDGER_EXTRACT", "CMD", "LEDGER_NIGHTLY", {}),
        ("insert_job", "LEDGER_POST", "CMD", "LEDGER_NIGHTLY", {"condition": "s(LEDGER_EXTRACT)"}),
    ],
    "block_comments.jil": [("insert_job", "SWEEP_TMP", "CMD", None, {})],
    "calendars_export.jil": [
        ("calendar", "hol_settlement", None, None, {}),
        ("cycle", "cyc_month_end", None, None, {}),
        ("extended_calendar", "ext_last_business_day", None, None, {}),
        ("ext_calendar", "ext_first_and_last", None, None, {}),
    ],
    "colons_torture.jil": [
        (
            "insert_job",
            "colon_maze",
            "CMD",
            None,
            {"condition": "s(FEED:EU:DAILY) & d(MASTER_JOB^PR1)"},
        ),
        ("insert_job", "copy_glob", "CMD", None, {}),
    ],
    "every_subcommand.jil": [
        ("insert_machine", "agent01", None, None, {}),
        ("update_machine", "agent01", None, None, {}),
        ("insert_resource", "DB_SLOTS", None, None, {}),
        ("update_resource", "DB_SLOTS", None, None, {}),
        ("insert_job", "EXTRACT_A", "CMD", None, {}),
        ("update_job", "EXTRACT_A", None, None, {}),
        ("override_job", "EXTRACT_A", None, None, {}),
        ("insert_job", "OLD_NAME", "CMD", None, {}),
        ("rename_job", "OLD_NAME", None, None, {}),
        ("insert_job", "GONE_BOX", "BOX", None, {}),
        ("insert_job", "GONE_CHILD", "CMD", "GONE_BOX", {}),
        ("delete_box", "GONE_BOX", None, None, {}),
        ("delete_job", "NEVER_INSERTED", None, None, {}),
        ("delete_resource", "OLD_SLOTS", None, None, {}),
        ("delete_machine", "agent99", None, None, {}),
    ],
    "kitchen_sink.jil": [
        ("insert_job", "risk_batch", "CMD", None, {}),
        ("insert_job", "risk_inbox", "FW", None, {}),
        ("insert_job", "risk_box", "BOX", None, {}),
        ("insert_job", "risk_cleanup", "CMD", "risk_box", {}),
    ],
    "long_conditions.jil": [
        ("insert_job", "RECONCILE", "CMD", None, {"condition": "s(FEED_ARRIVED)"}),
        (
            "insert_job",
            "PUBLISH_REPORT",
            "CMD",
            None,
            {"condition": "s(RECONCILE,06.30) & f(RECONCILE_ALT,48.00) & n(ARCHIVE)"},
        ),
    ],
    "multi_line_values.jil": [("insert_job", "SPREAD_OUT", "CMD", None, {})],
    "no_space_after_colon.jil": [
        ("insert_job", "archive_db", "CMD", None, {}),
        ("update_job", "archive_db", None, None, {}),
    ],
    "watchers_and_dotted_names.jil": [
        ("insert_job", "PAY.RUN.START", "CMD", None, {}),
        ("insert_job", "pay_ft", "FT", None, {}),
        ("insert_job", "pay_ft", "FT", None, {}),
        ("insert_job", "pay_fw", "FW", None, {}),
        ("insert_job", "PAY.RUN.LOG", "CMD", None, {}),
    ],
}


def _summary(statement):
    return (
        statement.subcommand,
        statement.name,
        statement.job_type if statement.is_job else None,
        statement.box_name,
        {name: tree.to_jil() for name, tree in statement.conditions.items()},
    )


def test_every_corpus_file_is_covered():
    assert sorted(p.name for p in CORPUS.glob("*.jil")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name):
    parsed = read_jil(CORPUS / name)
    assert [_summary(s) for s in parsed.statements] == EXPECTED[name]
    assert parsed.problems == []


def test_autorep_q_header_form_lines_and_quoted_values():
    box, extract, post = read_jil(CORPUS / "autorep_q_export.jil").statements
    assert (box.line, box.end_line) == (3, 12)  # the `/* --- */` banner above is a comment
    assert box.get("start_times") == "21:15" and box.get("description") == "Nightly ledger close"
    assert box.get("job_type") == "BOX"  # the trailing blank after the header is not value
    # backslashes kept, and the quotes too: a command is what the shell will see
    assert extract.get("command") == '"D:\\ledger\\bin\\extract.cmd"'
    assert extract.get("description") == "Pull the day's postings"
    assert post.attributes[7].line == 39 and post.attributes[7].name == "condition"


def test_values_quotes_comments_and_attr_without_space():
    pay_start, _, pay_ft, _, pay_log = read_jil(CORPUS / "watchers_and_dotted_names.jil").statements
    assert pay_start.get("command") == 'echo "Payroll window open"'  # inner quotes are the command's
    assert pay_ft.get("watch_file") == "e:\\payroll\\in\\month.csv"
    assert pay_log.get("std_out_file") == "/var/log/pay/$AUTO_JOB_NAME.out"

    sweep = read_jil(CORPUS / "block_comments.jil").statements[0]
    assert sweep.line == 6 and sweep.get("max_run_alarm") == "45"  # trailing comment dropped
    assert sweep.get("term_run_time") == "90"  # after a `#` comment line

    insert, update = read_jil(CORPUS / "no_space_after_colon.jil").statements
    assert insert.get("machine") == "db1"  # `attr:value` without a space
    assert insert.get("start_times") == "23:40"
    assert update.get("command") == "/opt/db/archive.sh --full && logger -t archive done"


def test_corpus_torture_colons_and_comment_lookalikes():
    colon, glob = read_jil(CORPUS / "colons_torture.jil").statements
    assert colon.get("machine") == "host:7"
    assert colon.get("command") == 'printf "x : y" D:\\\\OUT'
    assert colon.get("std_out_file") == "/var/tmp/run:1.log"
    assert colon.get("description") == "a # sign and a /* marker in quotes are value"
    assert glob.get("command") == "mv /data/in/* /data/done/"
    assert glob.get("std_err_file") == "/var/tmp/err /*never-closed-glob"
    assert glob.get("description") == "steps #3 and #4 stay value"


def test_corpus_calendars_keep_date_rows_and_repeated_attributes():
    holidays, cycle, extended, edges = read_jil(CORPUS / "calendars_export.jil").statements
    assert holidays.dates == [
        "01/01/2027 00:00",
        "05/01/2027 00:00",
        "12/25/2027 00:00",
        "12/26/2027 00:00",
    ]
    assert cycle.values("start_date") == ["01/28/2027", "02/25/2027", "03/29/2027"]
    assert cycle.values("end_date") == ["02/01/2027", "03/01/2027", "04/01/2027"]
    assert extended.get("condition") == "CWRK#L" and extended.conditions == {}
    assert extended.get("holcal") == "hol_settlement"
    assert edges.values("condition") == ["FOMWORK", "EOMWORK"]


def test_corpus_kitchen_sink_values():
    sink = read_jil(CORPUS / "kitchen_sink.jil").statements[0]
    assert sink.get("start_times") == "04:10, 16:10"
    assert sink.get("must_complete_times") == "05:30, 17:30"
    assert sink.get("run_window") == "03:00-07:00"
    assert sink.get("envvars") == "DESK=RATES,HORIZON=10D"
    assert sink.get("fail_codes") == "8, 10-13"
    assert len(sink.attributes) == 27


def test_corpus_multi_line_values_join_as_lists():
    job = read_jil(CORPUS / "multi_line_values.jil").statements[0]
    assert job.get("start_times") == "02:00, 08:00, 14:00"  # open quote continues
    assert job.get("days_of_week") == "mo,tu,we, th,fr"  # trailing comma continues
    assert job.get("must_start_times") == "05, 35"
    assert job.get("description") == "one line" and job.end_line == 12


def test_corpus_every_subcommand_applies_to_the_effective_jobs():
    parsed = read_jil(CORPUS / "every_subcommand.jil")
    jobs = parsed.effective_jobs()
    assert sorted(jobs) == ["EXTRACT_A", "NEW_NAME"]  # GONE_BOX deleted with its child
    assert jobs["EXTRACT_A"].get("n_retrys") == "1"
    assert jobs["EXTRACT_A"].get("resources") == "(DB_SLOTS,QUANTITY=1,FREE=A)"
    machine = parsed.statements[0]
    assert machine.get("node_name") == "agent01.bank.example"


def test_broken_jil_problems_are_reported_by_line_and_the_rest_is_read():
    parsed = read_jil(DATA / "broken.jil")
    assert [(p.line, p.message.split(" ")[0]) for p in parsed.problems] == [
        (3, "attribute"),
        (10, "bad"),
        (11, "cannot"),
        (12, "'notification:'"),
        (13, "'define_variable:'"),
        (17, "bad"),
        (18, "bad"),
        (19, "unknown"),
        (20, "job"),
        (23, "comment"),
    ]
    assert all(str(p).startswith(f"{DATA / 'broken.jil'}:{p.line}: ") for p in parsed.problems)
    assert [s.name for s in parsed.statements] == [
        "GOOD_BOX",
        "BAD_CONDITION",
        "WORSE_CONDITION",
        "NOT_A_SUBCOMMAND",
        "bad name with spaces",
        "LAST_GOOD",
    ]
    assert parsed.statements[1].box_name == "GOOD_BOX"
    assert parsed.statements[-1].conditions["condition"].to_jil() == "s(GOOD_BOX)"
    assert "expected ')'" in parsed.problems[1].message


def test_header_form_splits_only_at_known_keywords():
    parsed = parse_jil("insert_job: A   job_type: b   owner: me\ncommand: echo note: x\n")
    job = parsed.statements[0]
    assert [(a.name, a.value) for a in job.attributes] == [
        ("job_type", "b"),
        ("owner", "me"),
        ("command", "echo note: x"),
    ]
    assert job.job_type == "BOX"


def test_quoted_keyword_lookalike_stays_in_the_value():
    job = parse_jil('insert_job: A\ndescription: "see owner: ops"\n').statements[0]
    assert job.get("description") == "see owner: ops"


def test_multi_line_comments_and_hash_comments():
    text = "# full line\n/* one\n   two */ insert_job: A\n  # indented hash\n/* a */ /* b */\nowner: x /* trailing */\n"
    parsed = parse_jil(text)
    assert parsed.problems == []
    assert parsed.statements[0].name == "A" and parsed.statements[0].line == 3
    assert parsed.statements[0].get("owner") == "x"


def test_list_values_continue_over_lines():
    text = 'insert_job: A\nstart_times: "03:00,\n   15:00"\ndays_of_week: mo,tu\n  we\nmust_start_times: 10,\n20\n'
    job = parse_jil(text).statements[0]
    assert job.get("start_times") == "03:00, 15:00"
    assert job.get("days_of_week") == "mo,tu, we"
    assert job.get("must_start_times") == "10, 20"
    assert job.end_line == 7


def test_repeated_attributes_are_kept_in_order():
    job = parse_jil(
        "insert_job: A\nnotification_emailaddress: a@x.io\nnotification_emailaddress: b@x.io\nowner: one\nowner: two\n"
    ).statements[0]
    assert job.values("notification_emailaddress") == ["a@x.io", "b@x.io"]
    assert job.get("owner") == "two"


def test_auto_blobt_block_is_read_verbatim():
    text = (
        "insert_blob: BLOB1\nblob_input: <auto_blobt>line one: with colon\n"
        "/* not a comment */\n# not a comment\n</auto_blobt>\ninsert_job: NEXT\n"
    )
    parsed = parse_jil(text)
    assert parsed.problems == []
    blob, nxt = parsed.statements
    assert blob.get("blob_input") == "line one: with colon\n/* not a comment */\n# not a comment\n"
    assert blob.end_line == 5 and nxt.line == 6


def test_every_subcommand_starts_a_statement():
    verbs = [
        "insert_job",
        "update_job",
        "override_job",
        "delete_job",
        "delete_box",
        "rename_job",
        "insert_machine",
        "update_machine",
        "delete_machine",
        "insert_resource",
        "update_resource",
        "delete_resource",
        "insert_xinst",
        "update_xinst",
        "delete_xinst",
        "insert_job_type",
        "calendar",
        "cycle",
        "extended_calendar",
    ]
    parsed = parse_jil("".join(f"{verb}: N{i}\n" for i, verb in enumerate(verbs)))
    assert [s.subcommand for s in parsed.statements] == verbs
    assert parsed.problems == []


def test_effective_jobs_apply_updates_deletes_and_renames():
    text = """
insert_job: BOX   job_type: b
insert_job: IN_BOX   job_type: c
box_name: BOX
insert_job: A   job_type: c
condition: s(X)
owner: one
update_job: A
owner: two
condition: f(Y)
insert_job: OLD
rename_job: OLD
new_name: NEW
delete_box: BOX
"""
    jobs = parse_jil(text).effective_jobs()
    assert sorted(jobs) == ["A", "NEW"]
    assert jobs["A"].get("owner") == "two"
    assert jobs["A"].conditions["condition"].to_jil() == "f(Y)"


def test_crlf_and_non_ascii(tmp_path):
    path = tmp_path / "w.jil"
    path.write_bytes('insert_job: CAFÉ_JOB\r\ndescription: "Übersicht über Käse"\r\nowner: me\r\n'.encode())
    parsed = read_jil(path)
    job = parsed.statements[0]
    assert job.get("description") == "Übersicht über Käse" and job.get("owner") == "me"
    assert [p.line for p in parsed.problems] == [1]  # É is not a valid job-name character


def test_latin1_file_is_read_with_a_note(tmp_path):
    path = tmp_path / "latin.jil"
    path.write_bytes(b"insert_job: A\ndescription: caf\xe9\n")
    parsed = read_jil(path)
    assert parsed.statements[0].get("description") == "café"
    assert [(p.line, p.message) for p in parsed.problems] == [(2, "not UTF-8; read as Latin-1")]


def test_unreadable_file_raises_one_line_error(tmp_path):
    with pytest.raises(JilReadError, match="cannot read"):
        read_jil(tmp_path / "missing.jil")
