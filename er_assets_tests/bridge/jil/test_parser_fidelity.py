"""The parser reads values as AutoSys does: quotes kept where the shell sees them, closed
values never swallow the lines after them, every line it does not take is reported; and the
emitted JIL reads back into the same bytes."""

from autosys_bridge.jil.emitter import build_statements, emit_jil, render_jil
from autosys_bridge.jil.lint import lint
from autosys_bridge.jil.parser import parse_jil


def job(text: str):
    parsed = parse_jil(text)
    return parsed.statements[0], parsed.problems


def test_a_command_is_returned_exactly_as_the_shell_will_see_it():
    cases = {
        'command: "/apps/my script.sh"': '"/apps/my script.sh"',
        "command: /apps/run.sh 'a b' \"c d\"": "/apps/run.sh 'a b' \"c d\"",
        'command: echo "it\\: works"': 'echo "it: works"',
        "command: copy C\\:\\data\\in.txt D\\:\\out": "copy C:\\data\\in.txt D:\\out",
    }
    for line, shell_text in cases.items():
        statement, problems = job(f"insert_job: A   job_type: c\n{line}\n")
        assert statement.get("command") == shell_text and problems == []
    # Other values are unquoted as before: their quotes are JIL syntax, not data.
    statement, _ = job('insert_job: A\ndescription: "two words"\nstd_out_file: "/log/a b.out"\n')
    assert statement.get("description") == "two words"
    assert statement.get("std_out_file") == "/log/a b.out"


def test_a_closed_value_never_swallows_the_prose_after_it():
    text = (
        'insert_job: A   job_type: b\nstart_times: "5:00"\nThe box runs at five,\n'
        "after the feed lands.\nEight lines of notes\nnobody meant as JIL\n"
        "days_of_week: all\n"
    )
    statement, problems = job(text)
    assert statement.get("start_times") == "5:00" and statement.get("days_of_week") == "all"
    assert [p.line for p in problems] == [3, 4, 5, 6]
    assert all(p.message.startswith("cannot read") and p.severity == "error" for p in problems)


def test_open_lists_still_continue_over_lines():
    statement, problems = job(
        'insert_job: A\nstart_times: "03:00,\n  15:00"\ndays_of_week: mo,tu,\n  we\n'
        "start_mins: 10\n  , 40\nmust_start_times: 10:00\n  20:00\n"
    )
    assert problems == []
    assert statement.get("start_times") == "03:00, 15:00"
    assert statement.get("days_of_week") == "mo,tu, we"
    assert statement.get("start_mins") == "10 , 40"
    assert statement.get("must_start_times") == "10:00, 20:00"
    # ... but a list item line after a closed list is a line of its own, reported.
    _, problems = job('insert_job: A\nstart_times: "03:00"\n15:00\n')
    assert [p.line for p in problems] == [3]


def test_every_line_not_taken_is_reported():
    text = (
        "owner: before_any_statement\n"
        "insert_job: A   job_type: c\n"
        "command: /bin/true\n"
        "just some words\n"
        "description: x\n"
        "   more words after a closed value\n"
        "insert_job: B   job_type: c\n"
    )
    problems = parse_jil(text).problems
    assert [p.line for p in problems] == [1, 4, 6]


def test_box_name_with_a_space_is_rejected():
    parsed = parse_jil(
        "insert_job: Nightly_Download   job_type: b\ndate_conditions: 0\n"
        "insert_job: J   job_type: c\nbox_name: Nightly_Download c\ncommand: x\nmachine: m\n"
    )
    [problem] = lint([parsed])
    assert (problem.line, problem.severity) == (4, "error")
    assert "box_name 'Nightly_Download c': not a job name" in problem.message


def test_emit_parse_emit_is_byte_identical(config):
    text = emit_jil(config)
    parsed = parse_jil(text)
    assert parsed.problems == []
    again = render_jil(config, parsed.statements)
    assert again.encode() == text.encode()
    # and it is the statements the emitter built, attribute for attribute
    assert [[(a.name, a.value) for a in s.attributes] for s in parsed.statements] == [
        [(a.name, a.value) for a in s.attributes] for s in build_statements(config)
    ]
