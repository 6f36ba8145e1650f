"""Per-attribute-type normalisation, as DuckDB SQL expressions.

AWS documents *that* inputs are normalised per attribute type when `applyNormalization` is
true (and that names, addresses and phones are normalised as groups), but not the exact
rules. The rules below are the conservative reading of what it describes: case, accents,
punctuation and spacing never distinguish two names or addresses; an email compares
case-insensitively after trimming; a phone number is its digits. Other types are trimmed
only, because a STRING or DATE may be case- or punctuation-sensitive.

Every expression maps "" to NULL: an empty value is a missing value and never matches
(unless a rule condition asks for `EmptyValues=Process`).
"""

from __future__ import annotations

_TEXT_TYPES = ("NAME", "ADDRESS")  # prefixes: NAME, NAME_FIRST, ..., ADDRESS_POSTALCODE
_PHONE_TYPES = ("PHONE",)


def quote_ident(name: str) -> str:
    """A SQL identifier for any column name (schema names may contain spaces or dashes)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def normalized(column_sql: str, attribute_type: str, apply: bool) -> str:
    """SQL for the comparable value of one input column of the given AWS attribute type."""
    if not apply:
        return f"NULLIF({column_sql}, '')"
    if attribute_type.startswith(_TEXT_TYPES):
        # Letters and digits only: "O'Brien" = "obrien", "12 Main St." = "12mainst".
        return f"NULLIF(regexp_replace(lower(strip_accents({column_sql})), '[^a-z0-9]', '', 'g'), '')"
    if attribute_type.startswith(_PHONE_TYPES):
        return f"NULLIF(regexp_replace({column_sql}, '[^0-9]', '', 'g'), '')"
    if attribute_type == "EMAIL_ADDRESS":
        return f"NULLIF(lower(trim({column_sql})), '')"
    return f"NULLIF(trim({column_sql}), '')"


def output_value(normalized_sql: str, attribute_type: str) -> str:
    """How a normalised value is written when the output asks for normalised data.

    The one output format AWS documents is the phone number: 1234567890 -> (123)-456-7890.
    """
    if attribute_type == "PHONE_NUMBER":
        v = normalized_sql
        return (
            f"CASE WHEN length({v}) = 10 THEN '(' || {v}[1:3] || ')-' || {v}[4:6] || '-' || {v}[7:10] "
            f"ELSE {v} END"
        )
    return normalized_sql


def soundex(value_sql: str) -> str:
    """American Soundex (letter + 3 digits) of the letters in a value, as set-based SQL.

    H and W after the first letter are dropped before collapsing runs (so letters with the
    same code separated by H/W are coded once); vowels are coded 0 so they separate runs,
    then dropped. Runs collapse with one regexp_replace per code: RE2 has no backreferences.
    """
    letters = f"upper(regexp_replace(strip_accents({value_sql}), '[^A-Za-z]', '', 'g'))"
    # The first letter is kept as-is (and stays distinct), H/W after it are dropped.
    kept = f"({letters}[1] || regexp_replace({letters}[2:], '[HW]', '', 'g'))"
    runs = f"translate({kept}, 'AEIOUYBFPVCGJKQSXZDTLMNR', '000000111122222222334556')"
    for code in "0123456":
        runs = f"regexp_replace({runs}, '{code}+', '{code}', 'g')"
    tail = f"replace({runs}[2:], '0', '')"
    return f"CASE WHEN {letters} = '' THEN NULL ELSE rpad({letters}[1] || {tail}, 4, '0')[1:4] END"


def bigrams(value_sql: str) -> str:
    """Character bigrams of ' value ' (padding gives one-letter values two bigrams)."""
    padded = f"(' ' || {value_sql} || ' ')"
    return f"list_transform(range(1, length({padded})), lambda i: {padded}[i:i + 1])"


def cosine_similarity(grams_a: str, grams_b: str) -> str:
    """Cosine similarity (0..1) of two values' bigram sets: |A & B| / sqrt(|A| |B|).

    AWS does not say how Cosine turns strings into vectors; binary bigram vectors are the
    usual choice for short identifiers, and need no per-element lambdas (fast per pair).
    """
    return (
        f"(len(list_intersect({grams_a}, {grams_b})) / "
        f"sqrt(len(list_distinct({grams_a})) * len(list_distinct({grams_b}))))"
    )
