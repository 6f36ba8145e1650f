"""Turn AWS GetSchemaMapping / GetMatchingWorkflow documents into a matching plan.

The plan is what the engine executes: the comparable values ("slots") of each match key and,
per rule, a disjunction of conjunctions of matching functions. Both AWS rule styles compile
to the same plan:

- `ruleBasedProperties` (Simple rules): a rule is the AND of `Exact` on each matching key.
  With ONE_TO_ONE a value only meets the value of the same field (or group) in the other
  record; with MANY_TO_MANY every field sharing the match key is compared with every other.
- `ruleConditionProperties` (Advanced rules): `Exact`, `ExactManyToMany`, `Levenshtein`,
  `Cosine`, `Soundex`, `AND`, `OR` and parentheses, with the `EmptyValues=Process|Ignore`
  modifier. AWS requires every fuzzy function to be ANDed with an exact one: the exact
  functions form the blocks, the fuzzy ones filter pairs inside them.

Anything the emulator cannot execute faithfully is refused with a `MatchingError` naming
the field, rather than approximated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any, cast

RESERVED_NAMES = frozenset(
    {"EmailAddress", "InputSourceARN", "MatchRule", "MatchID", "HashingProtocol", "ConfidenceLevel", "Source"}
)
EXACT_FUNCTIONS = frozenset({"Exact", "ExactManyToMany"})
FUZZY_FUNCTIONS = frozenset({"Levenshtein", "Cosine", "Soundex"})
DEFAULT_LEVENSHTEIN = 2  # "the default Levenshtein Distance algorithm threshold of 2"
EMPTY_MODES = frozenset({"Process", "Ignore"})


class MatchingError(ValueError):
    """A schema, workflow or input the service would reject; the message says which part."""


@dataclass(frozen=True)
class InputField:
    name: str
    type: str
    group: str | None
    match_key: str | None


@dataclass(frozen=True)
class Slot:
    """One comparable value of a match key: an ungrouped field, or a group's fields joined."""

    name: str
    fields: tuple[InputField, ...]


@dataclass(frozen=True)
class Term:
    """One matching function applied to a record pair.

    `slots` are (tag, slot name) alternatives: two records agree on an exact term when some
    alternative of one equals some alternative of the other with the same tag. Fuzzy terms
    have exactly one slot.
    """

    function: str
    slots: tuple[tuple[str, str], ...]
    threshold: float | None = None
    empty: str | None = None  # None (empty never matches), "Process" or "Ignore"

    @property
    def blocking(self) -> bool:
        return self.function in EXACT_FUNCTIONS and self.empty != "Ignore"


@dataclass(frozen=True)
class Rule:
    name: str
    conjunctions: tuple[tuple[Term, ...], ...]  # OR of ANDs


@dataclass(frozen=True)
class Plan:
    workflow_name: str
    input_source_arn: str
    unique_id: str
    fields: tuple[InputField, ...]
    slots: tuple[Slot, ...]
    rules: tuple[Rule, ...]
    transitive: bool
    apply_normalization: bool
    outputs: tuple[tuple[str, bool], ...]  # (field name, hashed)
    output_normalized: bool
    reserved_field: str | None  # AWS sends every record to error/ when one is present
    resolution_type: str = "RULE_MATCHING"  # or ML_MATCHING: no rules, see ml.py


def _get(doc: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return doc[key]
    except (KeyError, TypeError):
        raise MatchingError(f"{where}: missing required field '{key}'") from None


def _parse_fields(schema: Mapping[str, Any]) -> tuple[InputField, ...]:
    raw = _get(schema, "mappedInputFields", "schema")
    if not isinstance(raw, list) or len(raw) < 2:
        raise MatchingError("schema.mappedInputFields: expected a list of at least 2 fields")
    fields = []
    for i, f in enumerate(raw):
        where = f"schema.mappedInputFields[{i}]"
        fields.append(
            InputField(
                name=str(_get(f, "fieldName", where)),
                type=str(_get(f, "type", where)),
                group=f.get("groupName") or None,
                match_key=f.get("matchKey") or None,
            )
        )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise MatchingError("schema.mappedInputFields: field names must be unique")
    ids = [f for f in fields if f.type == "UNIQUE_ID"]
    if len(ids) != 1:
        raise MatchingError(f"schema.mappedInputFields: exactly one UNIQUE_ID field is required, found {len(ids)}")
    return tuple(fields)


def _slots(fields: tuple[InputField, ...]) -> tuple[Slot, ...]:
    """Group fields into comparable values; a group keeps its fields in schema order."""
    order: list[str] = []
    members: dict[str, list[InputField]] = {}
    for f in fields:
        if f.match_key is None or f.type == "UNIQUE_ID":
            continue
        name = f.group or f.name
        if name not in members:
            order.append(name)
            members[name] = []
        members[name].append(f)
    for name in order:
        # Fields without a match key were skipped above.
        keys = {cast(str, f.match_key) for f in members[name]}
        if len(keys) > 1:
            raise MatchingError(f"schema: fields of group '{name}' have different match keys {sorted(keys)}")
    return tuple(Slot(name, tuple(members[name])) for name in order)


def _slots_by_key(slots: tuple[Slot, ...]) -> dict[str, list[Slot]]:
    by_key: dict[str, list[Slot]] = {}
    for slot in slots:
        key = slot.fields[0].match_key
        assert key is not None  # _slots takes only fields with a match key
        by_key.setdefault(key, []).append(slot)
    return by_key


def _simple_rules(props: Mapping[str, Any], by_key: dict[str, list[Slot]]) -> tuple[Rule, ...]:
    model = props.get("attributeMatchingModel", "ONE_TO_ONE")
    if model not in ("ONE_TO_ONE", "MANY_TO_MANY"):
        raise MatchingError(f"ruleBasedProperties.attributeMatchingModel: unknown value {model!r}")
    if props.get("matchPurpose", "IDENTIFIER_GENERATION") != "IDENTIFIER_GENERATION":
        raise MatchingError("ruleBasedProperties.matchPurpose: only IDENTIFIER_GENERATION is emulated")
    rules = []
    for i, rule in enumerate(_get(props, "rules", "ruleBasedProperties")):
        where = f"ruleBasedProperties.rules[{i}]"
        name = str(_get(rule, "ruleName", where))
        keys = _get(rule, "matchingKeys", where)
        if not keys:
            raise MatchingError(f"{where}: matchingKeys is empty")
        terms = []
        for key in keys:
            if key not in by_key:
                raise MatchingError(f"{where}: matching key '{key}' is not a matchKey of the schema")
            # ONE_TO_ONE tags each value with its field so only like meets like.
            one_to_one = model == "ONE_TO_ONE"
            terms.append(Term("Exact", tuple((s.name if one_to_one else "", s.name) for s in by_key[key])))
        rules.append(Rule(name, (tuple(terms),)))
    return tuple(rules)


# --- Advanced rule conditions -------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<word>[A-Za-z0-9_.\-]+)|(?P<punct>[(),=]))')


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise MatchingError(f"cannot read condition at character {pos + 1}: {text[pos : pos + 20]!r}")
        assert m.lastgroup is not None  # every alternative of _TOKEN is a named group
        tokens.append(m.group(m.lastgroup))
        pos = m.end()
    return tokens


@dataclass(frozen=True)
class _Call:
    function: str
    args: tuple[str, ...]
    modifiers: tuple[tuple[str, str], ...]


class _ConditionParser:
    """Recursive descent over `expr := and (OR and)*; and := atom (AND atom)*`, into DNF."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> list[list[_Call]]:
        dnf = self._or()
        if self.pos != len(self.tokens):
            raise MatchingError(f"unexpected {self.tokens[self.pos]!r} in condition {self.text!r}")
        return dnf

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise MatchingError(f"expected {expected or 'more'} in condition {self.text!r}")
        self.pos += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.upper() == word:
            self.pos += 1
            return True
        return False

    def _or(self) -> list[list[_Call]]:
        dnf = self._and()
        while self._keyword("OR"):
            dnf = dnf + self._and()
        return dnf

    def _and(self) -> list[list[_Call]]:
        dnf = self._atom()
        while self._keyword("AND"):
            right = self._atom()
            dnf = [a + b for a, b in product(dnf, right)]
        return dnf

    def _atom(self) -> list[list[_Call]]:
        if self._peek() == "(":
            self._take("(")
            dnf = self._or()
            self._take(")")
            return dnf
        name = self._take()
        if name not in EXACT_FUNCTIONS | FUZZY_FUNCTIONS:
            raise MatchingError(
                f"unknown matching function {name!r} in condition {self.text!r}; "
                f"expected one of {sorted(EXACT_FUNCTIONS | FUZZY_FUNCTIONS)}"
            )
        self._take("(")
        args: list[str] = []
        modifiers: list[tuple[str, str]] = []
        while True:
            token = self._take()
            if self._peek() == "=":
                self._take("=")
                modifiers.append((token, self._take()))
            else:
                args.append(token[1:-1] if token.startswith('"') else token)
            if self._peek() == ",":
                self._take(",")
                continue
            self._take(")")
            break
        return [[_Call(name, tuple(args), tuple(modifiers))]]


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise MatchingError(f"{what}: {value!r} is not a number") from None


def _term(call: _Call, by_key: dict[str, list[Slot]], where: str) -> Term:
    empty = None
    for key, value in call.modifiers:
        if key != "EmptyValues" or value not in EMPTY_MODES:
            raise MatchingError(f"{where}: unknown modifier {key}={value} (expected EmptyValues=Process|Ignore)")
        empty = value

    def single_slot(key: str) -> tuple[str, str]:
        slots = by_key.get(key)
        if not slots:
            raise MatchingError(f"{where}: {call.function}({key}) names no matchKey of the schema")
        if len(slots) > 1:
            raise MatchingError(
                f"{where}: match key '{key}' maps to several fields; advanced rules need one field "
                "or one group per match key"
            )
        return ("", slots[0].name)

    args = list(call.args)
    if call.function == "ExactManyToMany":
        if empty == "Ignore":
            raise MatchingError(f"{where}: EmptyValues=Ignore on ExactManyToMany is not emulated")
        return Term(call.function, tuple(single_slot(k) for k in args), empty=empty)
    if not args:
        raise MatchingError(f"{where}: {call.function}() needs a match key")
    slot = single_slot(args.pop(0))
    if call.function == "Exact":
        # AWS's API reference writes `Exact(b, true)` without saying what the flag means;
        # it is accepted and changes nothing.
        if any(a.lower() not in ("true", "false") for a in args):
            raise MatchingError(f"{where}: unexpected arguments {args} to Exact")
        return Term("Exact", (slot,), empty=empty)
    if call.function == "Soundex":
        if args:
            raise MatchingError(f"{where}: Soundex takes only a match key")
        return Term("Soundex", (slot,), empty=empty)
    if call.function == "Levenshtein":
        threshold = _number(args[0], where) if args else DEFAULT_LEVENSHTEIN
        return Term("Levenshtein", (slot,), threshold=threshold, empty=empty)
    # Cosine: AWS documents no default threshold, so one is required. Its scale is 0-100, as
    # the API reference's example `Cosine(a, 10)` shows: 0.8 would match nearly everything.
    if not args:
        raise MatchingError(f"{where}: Cosine needs a threshold, e.g. Cosine(name, 80)")
    threshold = _number(args[0], where)
    if 0 < threshold < 1:
        raise MatchingError(
            f"{where}: Cosine threshold {args[0]} looks like a 0-1 similarity; the scale is 0-100 "
            f"(write Cosine({call.args[0]}, {threshold * 100:g}))"
        )
    if not 0 <= threshold <= 100:
        raise MatchingError(f"{where}: Cosine threshold {args[0]} is outside 0-100")
    return Term("Cosine", (slot,), threshold=threshold, empty=empty)


def _condition_rules(props: Mapping[str, Any], by_key: dict[str, list[Slot]]) -> tuple[Rule, ...]:
    rules = []
    for i, rule in enumerate(_get(props, "rules", "ruleConditionProperties")):
        where = f"ruleConditionProperties.rules[{i}]"
        name = str(_get(rule, "ruleName", where))
        text = str(_get(rule, "condition", where))
        try:
            dnf = _ConditionParser(text).parse()
        except MatchingError as exc:
            raise MatchingError(f"{where}: {exc}") from None
        conjunctions = []
        for calls in dnf:
            terms = tuple(_term(c, by_key, where) for c in calls)
            if not any(t.blocking for t in terms):
                raise MatchingError(
                    f"{where}: every alternative of {text!r} needs an Exact or ExactManyToMany function "
                    "(without EmptyValues=Ignore) ANDed with its fuzzy functions"
                )
            conjunctions.append(terms)
        rules.append(Rule(name, tuple(conjunctions)))
    return tuple(rules)


def _check_model(schema: Mapping[str, Any], workflow: Mapping[str, Any]) -> None:
    """Refuse what botocore's model forbids (26 rules, a missing attributeMatchingModel, a
    2049-character condition...): the service would refuse the workflow, so must we."""
    from er_assets.emulator.model import problems, service_model

    model = service_model("entityresolution")
    for what, document, shape in (
        ("schema", schema, "GetSchemaMappingOutput"),
        ("workflow", workflow, "GetMatchingWorkflowOutput"),
    ):
        # Top-level members are checked above with the engine's own messages.
        found = problems(model.shape_for(shape), document, required=False)
        if found:
            raise MatchingError(f"{what}.{found[0]} (botocore's entityresolution model)")


def build_plan(schema: Mapping[str, Any], workflow: Mapping[str, Any]) -> Plan:
    """Validate the two AWS documents and compile them; raise MatchingError on anything invalid."""
    fields = _parse_fields(schema)
    slots = _slots(fields)
    by_key = _slots_by_key(slots)

    sources = _get(workflow, "inputSourceConfig", "workflow")
    if not sources:
        raise MatchingError("workflow.inputSourceConfig: at least one input source is required")
    source = sources[0]
    if source.get("schemaName") not in (None, schema.get("schemaName")):
        raise MatchingError(
            f"workflow.inputSourceConfig[0].schemaName {source.get('schemaName')!r} is not the schema "
            f"given ({schema.get('schemaName')!r})"
        )
    outputs_cfg = _get(workflow, "outputSourceConfig", "workflow")
    if not outputs_cfg:
        raise MatchingError("workflow.outputSourceConfig: exactly one output source is required")
    output_cfg = outputs_cfg[0]
    known = {f.name for f in fields}
    outputs = []
    for i, attr in enumerate(_get(output_cfg, "output", "workflow.outputSourceConfig[0]")):
        name = _get(attr, "name", f"workflow.outputSourceConfig[0].output[{i}]")
        if name not in known:
            raise MatchingError(f"workflow.outputSourceConfig[0].output[{i}]: '{name}' is not a schema field")
        outputs.append((name, bool(attr.get("hashed", False))))

    techniques = _get(workflow, "resolutionTechniques", "workflow")
    resolution_type = techniques.get("resolutionType")
    if resolution_type not in ("RULE_MATCHING", "ML_MATCHING"):
        raise MatchingError(
            f"resolutionTechniques.resolutionType {resolution_type!r}: only RULE_MATCHING and ML_MATCHING are emulated"
        )
    simple, advanced = techniques.get("ruleBasedProperties"), techniques.get("ruleConditionProperties")
    transitive = False
    if resolution_type == "ML_MATCHING":
        given = [
            k for k in ("ruleBasedProperties", "ruleConditionProperties", "providerProperties") if techniques.get(k)
        ]
        if given:
            raise MatchingError(f"resolutionTechniques: an ML_MATCHING workflow takes no {' or '.join(given)}")
        rules: tuple[Rule, ...] = ()
    elif (simple is None) == (advanced is None):
        raise MatchingError("resolutionTechniques: give exactly one of ruleBasedProperties or ruleConditionProperties")
    elif simple is not None:
        rules = _simple_rules(simple, by_key)
    else:
        rules = _condition_rules(advanced, by_key)
        transitive = bool((advanced.get("matchingConfig") or {}).get("enableTransitiveMatching", False))
        if transitive and any(t.empty == "Ignore" for r in rules for c in r.conjunctions for t in c):
            raise MatchingError("EmptyValues=Ignore is not supported when transitive matching is enabled")

    # Last, so the engine's own messages above explain what they can.
    _check_model(schema, workflow)
    reserved = next((f.name for f in fields if f.name in RESERVED_NAMES), None)
    return Plan(
        workflow_name=str(_get(workflow, "workflowName", "workflow")),
        input_source_arn=str(_get(source, "inputSourceARN", "workflow.inputSourceConfig[0]")),
        unique_id=next(f.name for f in fields if f.type == "UNIQUE_ID"),
        fields=fields,
        slots=slots,
        rules=rules,
        transitive=transitive,
        apply_normalization=bool(source.get("applyNormalization", False)),
        outputs=tuple(outputs),
        output_normalized=bool(output_cfg.get("applyNormalization", False)),
        reserved_field=reserved,
        resolution_type=resolution_type,
    )
