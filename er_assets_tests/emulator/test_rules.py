"""Compiling AWS schema/workflow documents: the condition grammar and what is refused."""

from __future__ import annotations

import pytest

from er_assets.emulator.rules import MatchingError, build_plan

SCHEMA = {
    "schemaName": "s",
    "mappedInputFields": [
        {"fieldName": "id", "type": "UNIQUE_ID"},
        {"fieldName": "first", "type": "NAME_FIRST", "matchKey": "name", "groupName": "full"},
        {"fieldName": "last", "type": "NAME_LAST", "matchKey": "name", "groupName": "full"},
        {"fieldName": "email", "type": "EMAIL_ADDRESS", "matchKey": "Email address"},
        {"fieldName": "phone", "type": "PHONE_NUMBER", "matchKey": "phone"},
        {"fieldName": "phone2", "type": "PHONE_NUMBER", "matchKey": "phone"},
    ],
}


def workflow(techniques: dict) -> dict:
    return {
        "workflowName": "wf",
        "inputSourceConfig": [{"inputSourceARN": "arn:aws:glue:us-east-1:123456789012:table/db/t", "schemaName": "s"}],
        "outputSourceConfig": [{"output": [{"name": "id"}]}],
        "resolutionTechniques": {"resolutionType": "RULE_MATCHING", **techniques},
    }


def conditions(*conds: str, **config) -> dict:
    props = {"rules": [{"ruleName": f"r{i}", "condition": c} for i, c in enumerate(conds)]}
    if config:
        props["matchingConfig"] = config
    return workflow({"ruleConditionProperties": props})


def test_conditions_compile_to_or_of_ands_with_functions_and_modifiers():
    plan = build_plan(
        SCHEMA,
        conditions(
            '(Levenshtein("Email address", 3) OR Soundex(name)) and Exact(name, EmptyValues=Process) '
            "OR Cosine(name, 75) AND Exact(name, true)"
        ),
    )
    (rule,) = plan.rules
    described = [[(t.function, t.slots[0][1], t.threshold, t.empty) for t in conj] for conj in rule.conjunctions]
    assert described == [
        [("Levenshtein", "email", 3.0, None), ("Exact", "full", None, "Process")],
        [("Soundex", "full", None, None), ("Exact", "full", None, "Process")],
        [("Cosine", "full", 75.0, None), ("Exact", "full", None, None)],
    ]


def test_simple_rules_tag_values_by_field_only_for_one_to_one():
    def phone_term(model):
        props = {"attributeMatchingModel": model, "rules": [{"ruleName": "p", "matchingKeys": ["phone"]}]}
        return build_plan(SCHEMA, workflow({"ruleBasedProperties": props})).rules[0].conjunctions[0][0]

    assert phone_term("ONE_TO_ONE").slots == (("phone", "phone"), ("phone2", "phone2"))
    assert phone_term("MANY_TO_MANY").slots == (("", "phone"), ("", "phone2"))


def test_transitive_matching_is_read_from_matching_config():
    assert build_plan(SCHEMA, conditions("Exact(name)", enableTransitiveMatching=True)).transitive
    assert not build_plan(SCHEMA, conditions("Exact(name)")).transitive


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (conditions("Levenshtein(name, 2)"), "needs an Exact or ExactManyToMany"),
        (conditions("Exact(name) OR Soundex(name)"), "needs an Exact or ExactManyToMany"),
        (conditions("Exact(name, EmptyValues=Ignore)"), "needs an Exact or ExactManyToMany"),
        (conditions("Fuzzy(name)"), "unknown matching function 'Fuzzy'"),
        (conditions("Exact(nickname)"), "names no matchKey"),
        (conditions("Exact(phone)"), "maps to several fields"),
        (conditions("Exact(name) AND"), "expected more"),
        (conditions("Exact(name))"), r"unexpected '\)'"),
        (conditions("Exact(name) ; Exact(phone)"), "cannot read condition"),
        (conditions("Exact(name, Empty=Process)"), "unknown modifier"),
        (conditions("Exact(name) AND Cosine(name)"), "Cosine needs a threshold"),
        (conditions("Exact(name) AND Levenshtein(name, two)"), "'two' is not a number"),
        (
            conditions('Exact(name, EmptyValues=Ignore) AND Exact("Email address")', enableTransitiveMatching=True),
            "not supported when transitive matching",
        ),
        (
            workflow({"ruleBasedProperties": {"rules": [{"ruleName": "x", "matchingKeys": ["nope"]}]}}),
            "matching key 'nope'",
        ),
        (
            workflow(
                {
                    "ruleBasedProperties": {
                        "rules": [{"ruleName": "x", "matchingKeys": ["name"]}],
                        "matchPurpose": "INDEXING",
                    }
                }
            ),
            "only IDENTIFIER_GENERATION",
        ),
        (
            {**workflow({}), "resolutionTechniques": {"resolutionType": "PROVIDER"}},
            "only RULE_MATCHING and ML_MATCHING",
        ),
        (
            workflow({"resolutionType": "ML_MATCHING", "ruleBasedProperties": {"rules": []}}),
            "an ML_MATCHING workflow takes no ruleBasedProperties",
        ),
        (workflow({}), "exactly one of ruleBasedProperties or ruleConditionProperties"),
        (
            {**conditions("Exact(name)"), "outputSourceConfig": [{"output": [{"name": "ghost"}]}]},
            "'ghost' is not a schema field",
        ),
        (
            {**conditions("Exact(name)"), "inputSourceConfig": [{"inputSourceARN": "arn", "schemaName": "other"}]},
            "is not the schema given",
        ),
        (
            conditions("Exact(name) AND Cosine(name, 0.8)"),
            r"Cosine threshold 0.8 looks like a 0-1 similarity; the scale is 0-100 \(write Cosine\(name, 80\)\)",
        ),
        (conditions("Exact(name) AND Cosine(name, 150)"), "Cosine threshold 150 is outside 0-100"),
        # What botocore's model forbids, though the engine could run it:
        (conditions(*["Exact(name)"] * 26), "rules: the number of items must be between 1 and 25, not 26"),
        (
            workflow({"ruleBasedProperties": {"rules": [{"ruleName": "x", "matchingKeys": ["name"]}]}}),
            "ruleBasedProperties.attributeMatchingModel: missing required member",
        ),
        (conditions("Exact(name) OR " * 170 + "Exact(name)"), "condition: the length must be between 0 and 2048"),
        (
            conditions("Exact(name)")
            | {"inputSourceConfig": [{"inputSourceARN": "arn:aws:s3:::bucket", "schemaName": "s"}]},
            "inputSourceARN 'arn:aws:s3:::bucket' does not match pattern",
        ),
    ],
)
def test_invalid_workflows_are_refused_naming_the_problem(doc, message):
    with pytest.raises(MatchingError, match=message):
        build_plan(SCHEMA, doc)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"fieldName": "a", "type": "STRING"}, {"fieldName": "b", "type": "STRING"}], "exactly one UNIQUE_ID"),
        ([{"fieldName": "a", "type": "UNIQUE_ID"}, {"fieldName": "a", "type": "STRING"}], "must be unique"),
        ([{"fieldName": "a", "type": "UNIQUE_ID"}], "at least 2 fields"),
        (
            [{"fieldName": "a", "type": "UNIQUE_ID"}, {"type": "STRING"}],
            r"mappedInputFields\[1\]: missing required field 'fieldName'",
        ),
        (
            [
                {"fieldName": "a", "type": "UNIQUE_ID"},
                {"fieldName": "b", "type": "NAME_FIRST", "groupName": "g", "matchKey": "x"},
                {"fieldName": "c", "type": "NAME_LAST", "groupName": "g", "matchKey": "y"},
            ],
            "different match keys",
        ),
    ],
)
def test_invalid_schemas_are_refused(fields, message):
    with pytest.raises(MatchingError, match=message):
        build_plan({"schemaName": "s", "mappedInputFields": fields}, conditions("Exact(name)"))
