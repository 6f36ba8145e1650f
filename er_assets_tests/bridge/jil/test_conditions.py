"""AutoSys condition expressions: forms, cases, lookbacks, comparisons, instances, grouping."""

import pytest

from autosys_bridge.jil.conditions import (
    BinaryOp,
    ConditionError,
    ExitCodeAtom,
    JobRef,
    StatusAtom,
    ValueAtom,
    atoms,
    parse_condition,
)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("s(A)", "success"),
        ("success(A)", "success"),
        ("SUCCESS(A)", "success"),
        ("S(A)", "success"),
        ("f(A)", "failure"),
        ("failure(A)", "failure"),
        ("Failure(A)", "failure"),
        ("d(A)", "done"),
        ("done(A)", "done"),
        ("t(A)", "terminated"),
        ("terminated(A)", "terminated"),
        ("n(A)", "notrunning"),
        ("notrunning(A)", "notrunning"),
        ("NOTRUNNING(A)", "notrunning"),
    ],
)
def test_short_and_long_status_forms_in_any_case(text, status):
    assert parse_condition(text) == StatusAtom(status, JobRef("A"))


@pytest.mark.parametrize("lookback", ["0", "12", "12.00", "01.30", "1.05"])
def test_lookbacks(lookback):
    atom = parse_condition(f"s(JOB_A, {lookback})")
    assert atom == StatusAtom("success", JobRef("JOB_A"), lookback)
    assert atom.to_jil() == f"s(JOB_A,{lookback})"


def test_escaped_colon_lookback_reads_as_hours_and_minutes():
    assert parse_condition("s(A,12:30)").lookback == "12:30"


@pytest.mark.parametrize(
    ("text", "operator", "value"),
    [
        ("e(A) = 0", "=", 0),
        ("exitcode(A)>4", ">", 4),
        ("E(A) != 3", "!=", 3),
        ("e(A) <= -1", "<=", -1),
        ("e(A) >= 10", ">=", 10),
        ("e(A) < 2", "<", 2),
    ],
)
def test_exit_code_comparisons(text, operator, value):
    assert parse_condition(text) == ExitCodeAtom(JobRef("A"), operator, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v(ER_DOMAIN) = products", ValueAtom("ER_DOMAIN", "=", "products")),
        ('value(ER_DOMAIN) != "two words"', ValueAtom("ER_DOMAIN", "!=", "two words")),
        ("V(COUNT) > 100", ValueAtom("COUNT", ">", "100")),
    ],
)
def test_global_variable_comparisons(text, expected):
    assert parse_condition(text) == expected


def test_value_with_spaces_is_quoted_when_rendered():
    assert parse_condition('v(G) = "a b"').to_jil() == 'v(G) = "a b"'


def test_cross_instance_reference():
    atom = parse_condition("s(DB_BACKUP^PRD, 24)")
    assert atom.job == JobRef("DB_BACKUP", "PRD")
    assert atom.lookback == "24"
    assert atom.to_jil() == "s(DB_BACKUP^PRD,24)"
    assert parse_condition("e(LOAD^QA1) = 0").job == JobRef("LOAD", "QA1")


def test_operators_in_both_spellings_and_cases():
    a, b = StatusAtom("success", JobRef("a")), StatusAtom("failure", JobRef("b"))
    for text in ("s(a) & f(b)", "s(a) and f(b)", "s(a) AND f(b)", "s(a)&f(b)", "s(a) And f(b)"):
        assert parse_condition(text) == BinaryOp("&", a, b), text
    for text in ("s(a) | f(b)", "s(a) or f(b)", "s(a) OR f(b)", "s(a)|f(b)"):
        assert parse_condition(text) == BinaryOp("|", a, b), text


def _s(name):
    return StatusAtom("success", JobRef(name))


def test_strictly_left_to_right_without_precedence():
    # AutoSys has no precedence: & does not bind tighter than |.
    assert parse_condition("s(a) & s(b) | f(c)") == BinaryOp(
        "|", BinaryOp("&", _s("a"), _s("b")), StatusAtom("failure", JobRef("c"))
    )
    assert parse_condition("s(a) | s(b) & s(c)") == BinaryOp("&", BinaryOp("|", _s("a"), _s("b")), _s("c"))


def test_parentheses_group():
    assert parse_condition("s(a) | (s(b) & s(c))") == BinaryOp("|", _s("a"), BinaryOp("&", _s("b"), _s("c")))
    assert parse_condition("((s(a)))") == _s("a")


def test_canonical_rendering_round_trips_and_shows_grouping():
    text = "SUCCESS(a, 12.00) AND (failure(b) OR e(c) > 2) or v(G) = x"
    tree = parse_condition(text)
    assert tree.to_jil() == "(s(a,12.00) & (f(b) | e(c) > 2)) | v(G) = x"
    assert parse_condition(tree.to_jil()) == tree


def test_atoms_left_to_right_and_json():
    tree = parse_condition("s(a) & (f(b^PRD) | v(G) = 1)")
    assert [atom.code for atom in atoms(tree)] == ["s", "f", "v"]
    assert tree.to_json()["type"] == "and"
    assert tree.to_json()["right"]["left"] == {
        "type": "status",
        "status": "failure",
        "code": "f",
        "job": "b",
        "instance": "PRD",
        "lookback": None,
    }


def test_job_names_with_awkward_characters():
    assert parse_condition("s(JOB:WITH:COLONS)").job.name == "JOB:WITH:COLONS"
    assert parse_condition("s(TEST.ECHO#1-x)").job.name == "TEST.ECHO#1-x"


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("", 1),
        ("s(A", 4),
        ("s(A) &", 7),
        ("s(A) s(B)", 6),
        ("x(A)", 1),
        ("s(A, 12.75)", 6),
        ("s(A^TOOLONG)", 5),
        ("e(A) = high", 8),
        ("e(A)", 5),
        ("v(G) =", 7),
        ("s(A) & (f(B)", 13),
        ("s(A) ! s(B)", 6),
    ],
)
def test_bad_conditions_name_the_column(text, column):
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.column == column
