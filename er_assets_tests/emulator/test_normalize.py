"""Normalisation exactly as AWS documents it, per attribute type and grouping, in any script.

The documented sentences these tests hold the emulator to (quoted in
er_assets/emulator/normalize.py):
- "Normalization is only supported for NAME, ADDRESS, PHONE, and EMAIL_ADDRESS"; sub-types
  such as NAME_FIRST or PHONE_NUMBER are normalised only when grouped (groupName).
- "if an input field has an input type of PHONE_NUMBER, and the values in the input are
  formatted as (123) 456-7890, AWS Entity Resolution will normalize the values to 1234567890".
- "if the data in the input table is in a format of 1234567890, AWS Entity Resolution will
  normalize this field in the output to (123)-456-7890".
"""

import duckdb
import pytest

from er_assets.emulator.normalize import normalization, normalized
from er_assets_tests.helpers import field, grouping, groups, run_match, schema, workflow

CON = duckdb.connect()


def norm(value: str, attr_type: str, grouped: bool = False) -> str | None:
    return CON.execute(f"SELECT {normalized('$v', attr_type, grouped, True)}", {"v": value}).fetchone()[0]


def test_the_documented_phone_example():
    assert norm("(123) 456-7890", "PHONE_NUMBER", grouped=True) == "1234567890"
    assert norm("(123) 456-7890", "PHONE") == "1234567890"


def test_the_documented_phone_output_format(tmp_path):
    sch = schema(field("phone", "PHONE_NUMBER", "phone", "phone_group"), field("email", "EMAIL_ADDRESS", "email"))
    wf = workflow(sch, rules=[("r", ["phone"])])
    wf["outputSourceConfig"][0]["applyNormalization"] = True
    _, out, _ = run_match(tmp_path, sch, wf, ["id", "phone", "email"], [("a", "1234567890", "a@x.com")])
    assert out["a"]["phone"] == "(123)-456-7890"


@pytest.mark.parametrize(
    "attr_type, grouped, kind",
    [
        ("NAME", False, "text"),
        ("ADDRESS", False, "text"),
        ("PHONE", False, "phone"),
        ("EMAIL_ADDRESS", False, "email"),
        ("NAME_FIRST", True, "text"),
        ("ADDRESS_POSTALCODE", True, "text"),
        ("PHONE_COUNTRYCODE", True, "phone"),
        # Sub-types are normalised only when grouped; other types never.
        ("NAME_FIRST", False, None),
        ("NAME_LAST", False, None),
        ("ADDRESS_CITY", False, None),
        ("PHONE_NUMBER", False, None),
        ("STRING", False, None),
        ("STRING", True, None),
        ("DATE", False, None),
        ("UNIQUE_ID", False, None),
        ("PROVIDER_ID", False, None),
        ("IPV4", False, None),
    ],
)
def test_only_the_documented_types_are_normalised(attr_type, grouped, kind):
    assert normalization(attr_type, grouped) == kind


def test_an_ungrouped_sub_type_or_a_string_is_compared_exactly_as_it_is(tmp_path):
    sch = schema(field("first", "NAME_FIRST", "first"), field("code", "STRING", "code"))
    rows = [("a", "John", "X1"), ("b", "JOHN", "X1 "), ("c", "John", "X1")]
    _, out, _ = run_match(tmp_path, sch, workflow(sch, rules=[("r", ["first"])]), ["id", "first", "code"], rows)
    assert groups(out) == grouping("a c", "b")  # case is not folded for an ungrouped NAME_FIRST
    (tmp_path / "s").mkdir()
    _, out, _ = run_match(tmp_path / "s", sch, workflow(sch, rules=[("r", ["code"])]), ["id", "first", "code"], rows)
    assert groups(out) == grouping("a c", "b")  # a STRING is not even trimmed


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Mary  O'Brien-Smith", "mary obriensmith"),  # lowercase, special characters removed, extra spaces removed
        ("  12 Main St. ", "12 main st"),
        ("JOSÉ GARCÍA", "josé garcía"),  # accents are letters: kept
        ("François Müller", "françois müller"),
        ("محمد عبد الله", "محمد عبد الله"),  # Arabic
        ("דוד לוי", "דוד לוי"),  # Hebrew
        ("王小明", "王小明"),  # Chinese
        ("Łódź", "łódź"),
        ("!!!", None),  # nothing left: a missing value
    ],
)
def test_names_and_addresses_keep_every_letter_of_every_script(value, expected):
    assert norm(value, "NAME") == expected
    assert norm(value, "ADDRESS_STREET1", grouped=True) == expected


def test_spaces_separate_words_and_accents_still_distinguish(tmp_path):
    sch = schema(field("name", "NAME", "name"), field("email", "EMAIL_ADDRESS", "email"))
    rows = [
        ("a", "Mary Ann", "1"),
        ("b", "MARY  ANN.", "2"),
        ("c", "Maryann", "3"),
        ("d", "Müller", "4"),
        ("e", "MÜLLER", "5"),
        ("f", "Muller", "6"),
        ("g", "محمد", "7"),
        ("h", "محمد ", "8"),
    ]
    _, out, _ = run_match(tmp_path, sch, workflow(sch, rules=[("r", ["name"])]), ["id", "name", "email"], rows)
    assert groups(out) == grouping("a b", "c", "d e", "f", "g h")


def test_emails_are_lowercased_and_trimmed_only():
    assert norm("  John.Doe+tag@Example.COM ", "EMAIL_ADDRESS") == "john.doe+tag@example.com"


def test_phone_digits_of_any_script_are_kept():
    assert norm("+44 (20) 7946-0958", "PHONE") == "442079460958"
    assert norm("٠١٢٣ ٤٥٦", "PHONE") == "٠١٢٣٤٥٦"
