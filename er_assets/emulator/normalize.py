"""Per-attribute-type normalisation, as DuckDB SQL expressions: exactly what AWS documents.

What AWS says, and nothing more:

- Which types: "Normalization is only supported for NAME, ADDRESS, PHONE, and
  EMAIL_ADDRESS. If you want to normalize NAME_FIRST, NAME_MIDDLE, and NAME_LAST, you must
  group them by assigning them to the NAME groupName. [...] ADDRESS_STREET1 [...]
  ADDRESS_POSTALCODE [...] to the ADDRESS groupName. [...] PHONE_NUMBER and
  PHONE_COUNTRYCODE [...] to the PHONE groupName." (botocore model, SchemaInputAttribute
  `type`). A sub-type is normalised only when its field has a `groupName` (the console and
  the glossary name groups freely, e.g. `full_name`); an ungrouped sub-type, a STRING, DATE,
  UNIQUE_ID or any other type is compared exactly as it is, not even trimmed.
- What it does: "Normalization standardizes the input data, such as removing extra spaces
  or special characters and standardizing to lowercase format. For example, if an input
  field has an input type of PHONE_NUMBER, and the values in the input are formatted as
  (123) 456-7890, AWS Entity Resolution will normalize the values to 1234567890." (AWS
  Solutions Library, "Guidance for Customizing Normalization Library for AWS Entity
  Resolution", describing the service's standard rules.)

So: names and addresses are lowercased, special characters (Unicode punctuation and
symbols) removed, runs of spaces made one and the ends trimmed: "Mary  O'Brien-Smith" ->
"mary obriensmith". Letters and digits of every script are kept as they are, accents
included: AWS says nothing about accents or other scripts, so "José" stays "josé" and
"محمد" stays "محمد" (never a letter outside a-z mapped to nothing). Phones keep their digits
(of any script). Emails are lowercased and trimmed: "removing extra spaces" and
"lowercase" are all AWS says of them.

Every expression maps "" to NULL: an empty value is a missing value and never matches
(unless a rule condition asks for `EmptyValues=Process`).
"""

from __future__ import annotations

_TEXT_TYPES = ("NAME", "ADDRESS")  # the group types; their sub-types start with NAME_ / ADDRESS_
_PHONE_SUBTYPES = ("PHONE_NUMBER", "PHONE_COUNTRYCODE")


def quote_ident(name: str) -> str:
    """A SQL identifier for any column name (schema names may contain spaces or dashes)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def normalization(attribute_type: str, grouped: bool) -> str | None:
    """How AWS normalises a field of this type: "text", "phone", "email" or None (not at all)."""
    if attribute_type in _TEXT_TYPES or (grouped and attribute_type.startswith(tuple(t + "_" for t in _TEXT_TYPES))):
        return "text"
    if attribute_type == "PHONE" or (grouped and attribute_type in _PHONE_SUBTYPES):
        return "phone"
    if attribute_type == "EMAIL_ADDRESS":
        return "email"
    return None


def normalized(column_sql: str, attribute_type: str, grouped: bool, apply: bool) -> str:
    """SQL for the comparable value of one input column of the given AWS attribute type."""
    kind = normalization(attribute_type, grouped) if apply else None
    if kind == "text":
        # \pP punctuation and \pS symbols are the special characters; letters (\pL), marks
        # (\pM, e.g. Arabic vowel signs, Devanagari matras) and digits (\pN) stay.
        cleaned = f"regexp_replace(lower({column_sql}), '[\\pP\\pS]', '', 'g')"
        return f"NULLIF(trim(regexp_replace({cleaned}, '\\s+', ' ', 'g')), '')"
    if kind == "phone":
        return f"NULLIF(regexp_replace({column_sql}, '[^\\p{{Nd}}]', '', 'g'), '')"
    if kind == "email":
        return f"NULLIF(lower(trim({column_sql})), '')"
    return f"NULLIF({column_sql}, '')"


def output_value(normalized_sql: str, attribute_type: str, grouped: bool) -> str:
    """How a normalised value is written when the output asks for normalised data.

    The one output format AWS documents is the phone number: "if an attribute has an
    AttributeType of PHONE_NUMBER, and the data in the input table is in a format of
    1234567890, AWS Entity Resolution will normalize this field in the output to
    (123)-456-7890" (CloudFormation, MatchingWorkflow InputSource ApplyNormalization).
    """
    if attribute_type == "PHONE_NUMBER" and normalization(attribute_type, grouped) == "phone":
        v = normalized_sql
        return f"CASE WHEN length({v}) = 10 THEN '(' || {v}[1:3] || ')-' || {v}[4:6] || '-' || {v}[7:10] ELSE {v} END"
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
