"""The JIL parser on the public corpus (hand-checked expectations), on broken JIL, and on the
syntax corners: header form, quoting, escapes, comments, continuations, blobs, CRLF, non-ASCII."""

from pathlib import Path

import pytest

from autosys_bridge.jil.parser import parse_jil, read_jil, JilReadError

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "jil-corpus"
DATA = Path(__file__).with_name("data")

# file -> [(subcommand, name, job_type, box_name, {attribute: canonical condition})]
EXPECTED = {
    "astronomer__jilutil__tests_four.jil": [
        ("insert_job", "EOD_post", "CMD", None, {"condition": "s(EOD_watch)"}),
        (
            "insert_job",
            "test_sample_04",
            "CMD",
            None,
            {"condition": "s(test_sample_01,12.00) & f(test_sample_02,24.00) & s(test_sample_03)"},
        ),
    ],
    "astronomer__jilutil__tests_one.jil": [
        ("insert_job", "TEST.ECHO", "CMD", None, {}),
        ("insert_job", "ft_job", "FT", None, {}),
        ("insert_job", "ft_job", "FT", None, {}),
        ("insert_job", "fw_job", "FW", None, {}),
        ("insert_job", "TEST.ECHO.UNX.CD", "CMD", None, {}),
    ],
    "astronomer__jilutil__tests_sample.jil": [
        ("insert_job", "SAMPLE_BOX_JOB", "BOX", None, {}),
        ("insert_job", "SAMPLE_CMD_JOB_1", "CMD", "SAMPLE_BOX_JOB", {}),
        (
            "insert_job",
            "SAMPLE_CMD_JOB_2",
            "CMD",
            "SAMPLE_BOX_JOB",
            {"condition": "s(SAMPLE_CMD_JOB_1)"},
        ),
    ],
    "astronomer__jilutil__tests_three.jil": [
        ("insert_job", "WATCH_DONE_FILE", "CMD", None, {}),
    ],
    "astronomer__jilutil__tests_two.jil": [
        ("insert_job", "prodbackup", "CMD", None, {}),
        ("insert_job", "prodbackup", "CMD", None, {}),
    ],
    "mrbald__dsl41__tests_corpus_calendars_autocal.jil": [
        ("calendar", "cal_exchange_holidays", None, None, {}),
        ("cycle", "cyc_quarter_close", None, None, {}),
        ("extended_calendar", "cal_last_workday", None, None, {}),
        ("ext_calendar", "cal_month_edges", None, None, {}),
    ],
    "mrbald__dsl41__tests_corpus_kitchen_sink.jil": [
        ("insert_job", "sink_cmd", "CMD", None, {}),
        ("insert_job", "sink_fw", "FW", None, {}),
        ("insert_job", "sink_box", "BOX", None, {}),
        ("insert_job", "sink_boxed", "CMD", "sink_box", {}),
    ],
    "mrbald__dsl41__tests_corpus_torture_colon.jil": [
        (
            "insert_job",
            "colon_torture",
            "CMD",
            None,
            {"condition": "s(JOB:WITH:COLONS) & s(DB_BACKUP^PRD)"},
        ),
        ("insert_job", "glob_shell", "CMD", None, {}),
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


def test_corpus_statement_lines_and_values():
    sample = read_jil(CORPUS / "astronomer__jilutil__tests_sample.jil")
    box = sample.statements[0]
    assert (box.line, box.end_line) == (3, 11)  # the `/* --- */` banner above is a comment
    assert box.get("start_times") == "20:00" and box.get("description") == "Sample box job"
    assert sample.statements[2].attributes[0].line == 35

    one = read_jil(CORPUS / "astronomer__jilutil__tests_one.jil")
    assert (
        one.statements[0].get("command") == 'echo "Hello World"'
    )  # inner quotes are the command's
    assert one.statements[2].get("watch_file") == "c:\\data\\monthly.log"

    three = read_jil(CORPUS / "astronomer__jilutil__tests_three.jil").statements[0]
    assert three.line == 6 and three.get("max_run_alarm") == "600"  # trailing comment dropped

    two = read_jil(CORPUS / "astronomer__jilutil__tests_two.jil").statements
    assert two[0].get("machine") == "prod1"  # `attr:value` without a space
    assert two[1].get("command") == "/root/backup.sh && curl -sm 30 k.wdt.io/123abc/backupdb"


def test_corpus_torture_colons_and_comment_lookalikes():
    colon, glob = read_jil(CORPUS / "mrbald__dsl41__tests_corpus_torture_colon.jil").statements
    assert colon.get("machine") == "m:01"
    assert colon.get("command") == 'echo "a : b" C:\\\\TEMP'
    assert colon.get("std_out_file") == "/tmp/out:file.err"
    assert colon.get("description") == "hash # and /* markers inside quotes stay value"
    assert glob.get("command") == "cp /tmp/in/* /tmp/out/"
    assert glob.get("std_err_file") == "/tmp/log /*unclosed-glob-lookalike"
    assert glob.get("description") == "results #1 and #2 stay value"


def test_corpus_calendars_keep_date_rows_and_repeated_attributes():
    holidays, cycle, extended, edges = read_jil(
        CORPUS / "mrbald__dsl41__tests_corpus_calendars_autocal.jil"
    ).statements
    assert holidays.dates == ["01/01/2026 00:00", "07/03/2026 00:00", "12/25/2026 00:00"]
    assert cycle.values("start_date") == ["03/28/2026", "06/27/2026"]
    assert extended.get("condition") == "CWRK#L" and extended.conditions == {}
    assert edges.values("condition") == ["FOMWORK", "EOMWORK"]


def test_corpus_kitchen_sink_values():
    sink = read_jil(CORPUS / "mrbald__dsl41__tests_corpus_kitchen_sink.jil").statements[0]
    assert sink.get("start_times") == "03:30, 15:30"
    assert sink.get("must_complete_times") == "04:40, 16:40"
    assert sink.get("run_window") == "02:00-06:00"
    assert sink.get("envvars") == "REGION=EU,MODE=full"
    assert len(sink.attributes) == 27


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
    path.write_bytes(
        'insert_job: CAFÉ_JOB\r\ndescription: "Übersicht über Käse"\r\nowner: me\r\n'.encode()
    )
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
