"""The emulator's matching engine on hand-built records with hand-computed groupings.

Each test states the records, the workflow, and the match groups AWS's documented semantics
give; groups are compared as partitions of record ids, so the MatchID values themselves
only need to be consistent.
"""

from __future__ import annotations

import csv
import hashlib

import pytest

from er_assets.emulator.matching import MatchingError, run_matching
from er_assets_tests.helpers import ARN, field, grouping, groups, run_match, schema, workflow, write_csv

EMAIL_PHONE = schema(field("email", "EMAIL_ADDRESS", "email"), field("phone", "PHONE_NUMBER", "phone"))
EMAIL_PHONE_ROWS = [
    ("a", "e1@x.com", "111"),
    ("b", "e1@x.com", "222"),
    ("c", "e3@x.com", "222"),
    ("d", "e4@x.com", "999"),
]


def test_waterfall_keeps_records_matched_by_an_earlier_rule_away_from_later_rules(tmp_path):
    # Rule 1 groups a+b by email. Rule 2 (phone) would link b and c, but b is taken, so c stays alone.
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"]), ("by_phone", ["phone"])])
    metrics, out, errors = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], EMAIL_PHONE_ROWS)
    assert groups(out) == grouping("a b", "c", "d")
    assert [out[r]["MatchRule"] for r in "abcd"] == ["by_email", "by_email", "", ""]
    assert metrics == {"inputRecords": 4, "totalRecordsProcessed": 4, "recordsNotProcessed": 0, "matchIDs": 3}
    assert errors == []


def test_advanced_rules_without_transitive_matching_are_a_waterfall_too(tmp_path):
    wf = workflow(EMAIL_PHONE, conditions=[("by_email", "Exact(email)"), ("by_phone", "Exact(phone)")])
    _, out, _ = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], EMAIL_PHONE_ROWS)
    assert groups(out) == grouping("a b", "c", "d")


def test_transitive_matching_lets_a_matched_record_link_later_rule_matches(tmp_path):
    # b keeps its rule-1 ID; c, linked to b by phone, joins that group under rule 2.
    wf = workflow(EMAIL_PHONE, conditions=[("by_email", "Exact(email)"), ("by_phone", "Exact(phone)")], transitive=True)
    _, out, _ = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], EMAIL_PHONE_ROWS)
    assert groups(out) == grouping("a b c", "d")
    assert [out[r]["MatchRule"] for r in "abcd"] == ["by_email", "by_email", "by_phone", ""]


def test_transitive_matching_never_merges_earlier_groups_and_prefers_the_earliest_smallest(tmp_path):
    # Rule 1: {a, b} and {c, d}. Rule 2 links a, c and e by phone: a and c keep their IDs
    # (groups are not merged), e joins the group with the smaller ID among rule-1 groups.
    sch = EMAIL_PHONE
    rows = [
        ("a", "e1@x.com", "5"),
        ("b", "e1@x.com", ""),
        ("c", "e2@x.com", "5"),
        ("d", "e2@x.com", ""),
        ("e", "e9@x.com", "5"),
    ]
    wf = workflow(sch, conditions=[("by_email", "Exact(email)"), ("by_phone", "Exact(phone)")], transitive=True)
    _, out, _ = run_match(tmp_path, sch, wf, ["id", "email", "phone"], rows)
    assert groups(out) == grouping("a b e", "c d")
    assert out["e"]["MatchRule"] == "by_phone"


TWO_EMAILS = schema(field("email1", "EMAIL_ADDRESS", "email"), field("email2", "EMAIL_ADDRESS", "email"))
TWO_EMAIL_ROWS = [("a", "x@x.com", ""), ("b", "", "x@x.com"), ("c", "x@x.com", "y@y.com"), ("d", "", "y@y.com")]


def test_one_to_one_compares_a_field_only_with_the_same_field(tmp_path):
    # email1: a=c. email2: c=d. b's email2 equals a's email1, which ONE_TO_ONE does not compare.
    wf = workflow(TWO_EMAILS, rules=[("r", ["email"])], model="ONE_TO_ONE")
    _, out, _ = run_match(tmp_path, TWO_EMAILS, wf, ["id", "email1", "email2"], TWO_EMAIL_ROWS)
    assert groups(out) == grouping("a c d", "b")


def test_many_to_many_compares_fields_of_one_match_key_across_each_other(tmp_path):
    wf = workflow(TWO_EMAILS, rules=[("r", ["email"])], model="MANY_TO_MANY")
    _, out, _ = run_match(tmp_path, TWO_EMAILS, wf, ["id", "email1", "email2"], TWO_EMAIL_ROWS)
    assert groups(out) == grouping("a b c d")


def test_exact_many_to_many_condition_matches_any_listed_key_against_any(tmp_path):
    sch = schema(field("home", "ADDRESS", "home"), field("work", "ADDRESS", "work"))
    rows = [("a", "1 Main St", ""), ("b", "", "1 main st."), ("c", "9 Elm", "8 Oak")]
    wf = workflow(sch, conditions=[("any_address", "ExactManyToMany(home, work)")])
    _, out, _ = run_match(tmp_path, sch, wf, ["id", "home", "work"], rows)
    assert groups(out) == grouping("a b", "c")


NAME_CONTACT = schema(
    field("first", "NAME_FIRST", "name", "full_name"),
    field("last", "NAME_LAST", "name", "full_name"),
    field("email", "EMAIL_ADDRESS", "email"),
    field("phone", "PHONE_NUMBER", "phone", "phone_number"),  # grouped, so normalised
)
NAME_CONTACT_ROWS = [
    ("a", "John", "Smith", " A@X.COM", "(555) 123-4567"),
    ("b", "JOHN ", "smith.", "a@x.com", "555.123.4567"),
]


@pytest.mark.parametrize("key", ["name", "email", "phone"])
def test_normalisation_makes_formatting_differences_irrelevant(tmp_path, key):
    wf = workflow(NAME_CONTACT, rules=[("r", [key])], normalize=True)
    _, out, _ = run_match(tmp_path, NAME_CONTACT, wf, ["id", "first", "last", "email", "phone"], NAME_CONTACT_ROWS)
    assert groups(out) == grouping("a b")


@pytest.mark.parametrize("key", ["name", "email", "phone"])
def test_without_normalisation_values_must_be_identical(tmp_path, key):
    wf = workflow(NAME_CONTACT, rules=[("r", [key])], normalize=False)
    _, out, _ = run_match(tmp_path, NAME_CONTACT, wf, ["id", "first", "last", "email", "phone"], NAME_CONTACT_ROWS)
    assert groups(out) == grouping("a", "b")


def test_grouped_fields_are_one_value_and_a_rule_needs_all_its_keys(tmp_path):
    # Same first name is not the same full name; name AND phone both have to agree.
    rows = [
        ("a", "Ann", "Lee", "", "1"),
        ("b", "Ann", "Kim", "", "1"),
        ("c", "Ann", "Lee", "", "1"),
        ("d", "Ann", "Lee", "", "2"),
    ]
    wf = workflow(NAME_CONTACT, rules=[("name_phone", ["name", "phone"])])
    _, out, _ = run_match(tmp_path, NAME_CONTACT, wf, ["id", "first", "last", "email", "phone"], rows)
    assert groups(out) == grouping("a c", "b", "d")


def test_empty_values_never_match(tmp_path):
    rows = [("a", "", "", "", ""), ("b", "", "", "", ""), ("c", "Al", "Bo", "", "")]
    wf = workflow(NAME_CONTACT, rules=[("by_email", ["email"]), ("by_name", ["name"])])
    metrics, out, _ = run_match(tmp_path, NAME_CONTACT, wf, ["id", "first", "last", "email", "phone"], rows)
    assert groups(out) == grouping("a", "b", "c")
    assert metrics["matchIDs"] == 3


def test_chained_matches_of_one_rule_share_a_match_id(tmp_path):
    # a-b share a phone, b-c an email: one rule links all three through b.
    rows = [("a", "", "", "p@x.com", "1"), ("b", "", "", "q@x.com", "1"), ("c", "", "", "q@x.com", "2")]
    wf = workflow(NAME_CONTACT, conditions=[("either", "Exact(phone) OR Exact(email)")])
    _, out, _ = run_match(tmp_path, NAME_CONTACT, wf, ["id", "first", "last", "email", "phone"], rows)
    assert groups(out) == grouping("a b c")
    assert {row["MatchRule"] for row in out.values()} == {"either"}


FUZZY = schema(field("name", "NAME", "name"), field("zip", "ADDRESS_POSTALCODE", "zip"))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # jonathan/jonathon: distance 1; jonathan/johnathan: 1; jonathon/johnathan: 2; jon: 5 away.
        ("Exact(zip) AND Levenshtein(name, 1)", ("a b c", "d", "e")),
        ("Exact(zip) AND Levenshtein(name)", ("a b c", "d", "e")),  # default threshold 2
        ("Exact(zip) AND Levenshtein(name, 0)", ("a", "b", "c", "d", "e")),
        # Soundex: Jonathan/Jonathon/Johnathan J535; Jon J500.
        ("Exact(zip) AND Soundex(name)", ("a b c", "d", "e")),
        # Bigram-set cosine: jonathan/jonathon 7/sqrt(72)=0.82, jonathan/johnathan 8/sqrt(90)=0.84,
        # jonathon/johnathan 6/sqrt(80)=0.67.
        ("Exact(zip) AND Cosine(name, 80)", ("a b c", "d", "e")),
        ("Exact(zip) AND Cosine(name, 84)", ("a c", "b", "d", "e")),
        # e has the same name as a but another zip: the exact function blocks it out.
        ("Exact(name)", ("a e", "b", "c", "d")),
    ],
)
def test_fuzzy_functions_filter_pairs_inside_exact_blocks(tmp_path, condition, expected):
    rows = [
        ("a", "Jonathan", "10001"),
        ("b", "Jonathon", "10001"),
        ("c", "Johnathan", "10001"),
        ("d", "Jon", "10001"),
        ("e", "Jonathan", "20002"),
    ]
    wf = workflow(FUZZY, conditions=[("r", condition)])
    _, out, _ = run_match(tmp_path, FUZZY, wf, ["id", "name", "zip"], rows)
    assert groups(out) == grouping(*expected)


def test_and_binds_tighter_than_or_and_parentheses_group(tmp_path):
    sch = schema(
        field("name", "NAME", "name"),
        field("zip", "ADDRESS_POSTALCODE", "zip"),
        field("email", "EMAIL_ADDRESS", "email"),
    )
    rows = [("a", "Ann", "1", "a@x"), ("b", "Anne", "1", "b@x"), ("c", "Zed", "2", "a@x"), ("d", "Ann", "3", "d@x")]
    header = ["id", "name", "zip", "email"]
    # a-b by zip+fuzzy name, a-c by email; d shares a's name only.
    wf = workflow(sch, conditions=[("r", "Exact(email) OR Exact(zip) AND Levenshtein(name, 1)")])
    _, out, _ = run_match(tmp_path, sch, wf, header, rows)
    assert groups(out) == grouping("a b c", "d")
    wf = workflow(sch, conditions=[("r", "(Exact(email) OR Exact(zip)) AND Levenshtein(name, 1)")])
    (tmp_path / "grouped").mkdir()
    _, out, _ = run_match(tmp_path / "grouped", sch, wf, header, rows)
    assert groups(out) == grouping("a b", "c", "d")


def test_empty_values_process_lets_empty_values_match_and_ignore_skips_the_function(tmp_path):
    rows = [("a", "Ann", "1"), ("b", "Ann", ""), ("c", "Ann", ""), ("d", "Bob", "1")]
    header = ["id", "name", "zip"]
    default = workflow(FUZZY, conditions=[("r", "Exact(name) AND Exact(zip)")])
    _, out, _ = run_match(tmp_path, FUZZY, default, header, rows)
    assert groups(out) == grouping("a", "b", "c", "d")
    (tmp_path / "process").mkdir()
    process = workflow(FUZZY, conditions=[("r", "Exact(name) AND Exact(zip, EmptyValues=Process)")])
    _, out, _ = run_match(tmp_path / "process", FUZZY, process, header, rows)
    assert groups(out) == grouping("a", "b c", "d")
    (tmp_path / "ignore").mkdir()
    ignore = workflow(FUZZY, conditions=[("r", "Exact(name) AND Exact(zip, EmptyValues=Ignore)")])
    _, out, _ = run_match(tmp_path / "ignore", FUZZY, ignore, header, rows)
    assert groups(out) == grouping("a b c", "d")


def test_invalid_unique_ids_go_to_the_error_folder(tmp_path):
    long_id = "x" * 39
    rows = [
        ("", "a@x.com", "1"),
        ("dup", "b@x.com", "2"),
        ("dup", "c@x.com", "3"),
        (long_id, "d@x.com", "4"),
        ("x" * 38, "e@x.com", "5"),
        ("ok", "e@x.com", "6"),
    ]
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])])
    metrics, out, errors = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], rows)
    assert metrics == {"inputRecords": 6, "totalRecordsProcessed": 2, "recordsNotProcessed": 4, "matchIDs": 1}
    assert groups(out) == {frozenset({"x" * 38, "ok"})}
    reasons = sorted((row["RecordId"], row["ErrorMessage"]) for row in errors)
    assert reasons == [
        ("", "Unique ID is missing"),
        ("dup", "Unique ID is not unique"),
        ("dup", "Unique ID is not unique"),
        (long_id, "Unique ID exceeds 38 characters"),
    ]
    assert {row["InputSourceARN"] for row in errors} == {ARN}


def test_field_names_like_internal_columns_are_plain_fields(tmp_path):
    sch = {
        "schemaName": "people",
        "mappedInputFields": [
            {"fieldName": "rid", "type": "UNIQUE_ID"},
            field("uid", "NAME", "uid"),
            field("k0", "EMAIL_ADDRESS", "k0"),
            field("f1", "STRING", "f1"),
        ],
    }
    wf = workflow(sch, rules=[("r", ["uid", "k0"])])
    _, out, errors = run_match(
        tmp_path,
        sch,
        wf,
        ["rid", "uid", "k0", "f1"],
        [
            ("1", "Al", "a@x", "p"),
            ("2", "AL", "A@X", "q"),
            ("3", "Al", "b@x", "p"),
            ("4", "Bo", "", ""),
            ("4", "Cy", "", ""),
        ],
    )
    assert groups(out) == grouping("1 2", "3")
    assert sorted(row["uid"] for row in errors) == ["Bo", "Cy"]
    assert out["2"]["uid"] == "AL" and out["3"]["f1"] == "p"


def test_a_reserved_field_name_rejects_every_record(tmp_path):
    sch = schema(field("MatchID", "STRING", "m"))
    wf = workflow(sch, rules=[("r", ["m"])])
    metrics, out, errors = run_match(tmp_path, sch, wf, ["id", "MatchID"], [("a", "1"), ("b", "1")])
    assert out == {} and len(errors) == 2
    assert metrics["recordsNotProcessed"] == 2 and metrics["matchIDs"] == 0


def test_every_processed_record_gets_a_match_id_singletons_included(tmp_path):
    rows = [(f"r{i}", f"{i % 3}@x.com", str(i)) for i in range(10)]
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])])
    metrics, out, _ = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], rows + [("solo", "", "")])
    assert len(out) == 11 and all(len(row["MatchID"]) == 32 for row in out.values())
    assert (
        out["solo"]["MatchRule"] == "" and sum(1 for r in out.values() if r["MatchID"] == out["solo"]["MatchID"]) == 1
    )
    assert metrics["matchIDs"] == 4


def test_output_layout_columns_and_hashing(tmp_path):
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])], hashed=("phone",))
    _, out, _ = run_match(
        tmp_path,
        EMAIL_PHONE,
        wf,
        ["id", "email", "phone", "not_in_schema"],
        [("a", "A@x.com", "5", "z"), ("b", "a@x.com", "6", "z")],
    )
    parts = list((tmp_path / "out" / "wf" / "job" / "success").glob("*.csv"))
    with parts[0].open() as fh:
        header = next(csv.reader(fh))
    assert header == ["InputSourceARN", "RecordId", "MatchID", "MatchRule", "id", "email", "phone"]
    assert out["a"]["phone"] == hashlib.sha256(b"5").hexdigest()
    assert out["a"]["email"] == "A@x.com"  # the output's applyNormalization is off
    (tmp_path / "errors").mkdir()
    _, _, errors = run_match(tmp_path / "errors", EMAIL_PHONE, wf, ["id", "email", "phone"], [("", "e@x.com", "7")])
    assert errors[0]["phone"] == hashlib.sha256(b"7").hexdigest()


def test_output_normalisation_formats_values_but_never_the_unique_id(tmp_path):
    wf = workflow(NAME_CONTACT, rules=[("r", ["email"])])
    wf["outputSourceConfig"][0]["applyNormalization"] = True
    _, out, _ = run_match(
        tmp_path,
        NAME_CONTACT,
        wf,
        ["id", "first", "last", "email", "phone"],
        [("Id-1", "Jo-Ann", "O'Neil", " X@Y.COM ", "555 123 4567")],
    )
    assert {k: out["Id-1"][k] for k in ("id", "first", "last", "email", "phone")} == {
        "id": "Id-1",
        "first": "joann",
        "last": "oneil",
        "email": "x@y.com",
        "phone": "(555)-123-4567",
    }


def test_an_input_with_no_records_gives_an_empty_output(tmp_path):
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])])
    metrics, out, errors = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], [])
    assert metrics == {"inputRecords": 0, "totalRecordsProcessed": 0, "recordsNotProcessed": 0, "matchIDs": 0}
    assert out == {} and errors == []
    assert (tmp_path / "out" / "wf" / "job" / "error").is_dir()


def test_match_ids_do_not_depend_on_input_order_and_progress_ends_at_input_size(tmp_path):
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"]), ("by_phone", ["phone"])])
    seen: list[int] = []
    _, first, _ = run_match(tmp_path, EMAIL_PHONE, wf, ["id", "email", "phone"], EMAIL_PHONE_ROWS, progress=seen.append)
    (tmp_path / "again").mkdir()
    _, second, _ = run_match(tmp_path / "again", EMAIL_PHONE, wf, ["id", "email", "phone"], EMAIL_PHONE_ROWS[::-1])
    assert {k: v["MatchID"] for k, v in first.items()} == {k: v["MatchID"] for k, v in second.items()}
    assert seen[-1] == 4 and seen == sorted(seen)


def test_parquet_folders_and_globs_are_read(tmp_path):
    import duckdb

    data = tmp_path / "table" / "partition=1"
    data.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'a' AS id, 'e@x.com' AS email, 1 AS phone) TO '{data / 'one.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT 'b' AS id, 'E@X.com' AS email, 2 AS phone) TO '{data / 'two.parquet'}' (FORMAT parquet)")
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])])
    for source in (tmp_path / "table", str(data / "*.parquet")):
        metrics = run_matching(source, EMAIL_PHONE, wf, tmp_path / "job", "job")
        assert metrics["matchIDs"] == 1 and metrics["inputRecords"] == 2


def test_unusable_input_is_a_matching_error(tmp_path):
    wf = workflow(EMAIL_PHONE, rules=[("by_email", ["email"])])
    with pytest.raises(MatchingError, match="no input data"):
        run_matching(tmp_path / "missing.csv", EMAIL_PHONE, wf, tmp_path / "job", "job")
    source = write_csv(tmp_path / "in.csv", ["id", "email"], [("a", "e")])
    with pytest.raises(MatchingError, match=r"lacks schema fields \['phone'\]"):
        run_matching(source, EMAIL_PHONE, wf, tmp_path / "job", "job")


@pytest.mark.parametrize("configured", [None, "3GB"])
def test_duckdb_gets_a_memory_limit_sized_from_the_machine_or_configured(tmp_path, monkeypatch, configured):
    import os

    import duckdb

    from er_assets.emulator import matching

    seen = []
    real_connect = duckdb.connect

    def connect(*args, config=None, **kwargs):
        seen.append(dict(config or {}))
        return real_connect(*args, config=config, **kwargs)

    monkeypatch.setattr(matching.duckdb, "connect", connect)
    if configured:
        monkeypatch.setenv(matching.MEMORY_LIMIT_ENV, configured)
    else:
        monkeypatch.delenv(matching.MEMORY_LIMIT_ENV, raising=False)
    sch = EMAIL_PHONE
    run_match(tmp_path, sch, workflow(sch, rules=[("email", ["email"])]), ["id", "email", "phone"], EMAIL_PHONE_ROWS)
    [config] = seen
    if configured:
        assert config["memory_limit"] == "3GB"
    else:
        physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        limit_mb = int(config["memory_limit"].removesuffix("MB"))
        assert 0 < limit_mb <= physical_mb * matching.MEMORY_SHARE
        assert limit_mb > 1024 or physical_mb < 4096  # not the old fixed 1 GB on any real machine
    assert config["temp_directory"]  # beyond the limit it spills, into the job's own folder


def test_a_bad_memory_limit_setting_is_one_clear_error(tmp_path, monkeypatch):
    from er_assets.emulator import matching

    monkeypatch.setenv(matching.MEMORY_LIMIT_ENV, "lots")
    sch = EMAIL_PHONE
    with pytest.raises(MatchingError, match="ER_MATCH_MEMORY_LIMIT='lots': expected a size such as 8GB"):
        run_match(
            tmp_path, sch, workflow(sch, rules=[("email", ["email"])]), ["id", "email", "phone"], EMAIL_PHONE_ROWS
        )
