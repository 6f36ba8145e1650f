"""The configuration's limits are botocore's entityresolution model's, not our guesses."""

import re

import pytest

from er_assets import config as cfg
from er_assets.config import ConfigError, load_config
from er_assets.emulator.model import service_model
from er_assets_tests.helpers import write_config

MODEL = service_model("entityresolution")


def _max(model, field: str) -> int | None:
    return next((m.max_length for m in model.model_fields[field].metadata if hasattr(m, "max_length")), None)


def _shape(name: str):
    return MODEL.shape_for(name).metadata


@pytest.mark.parametrize(
    "model, field, shape",
    [
        (cfg.RuleCondition, "condition", "RuleConditionConditionString"),
        (cfg.RuleConditionProperties, "rules", "RuleConditionPropertiesRulesList"),
        (cfg.RuleBasedProperties, "rules", "RuleBasedPropertiesRulesList"),
        (cfg.Rule, "matchingKeys", "RuleMatchingKeysList"),
        (cfg.SchemaMapping, "mappedInputFields", "SchemaInputAttributes"),
    ],
)
def test_maximum_sizes_are_the_model_s(model, field, shape):
    assert _max(model, field) == _shape(shape)["max"]


@pytest.mark.parametrize("shape", ["RuleRuleNameString", "RuleConditionRuleNameString", "AttributeName"])
def test_rule_and_attribute_names_follow_the_model_s_pattern(shape):
    # config.RULES["aws_name"] is the model's pattern and maximum; an empty name, which the
    # model's minimum of 0 would allow, names nothing and is refused.
    metadata = _shape(shape)
    assert metadata["pattern"] == "[a-zA-Z_0-9- ]*"
    assert cfg.RULES["aws_name"][0] == f"^[a-zA-Z_0-9- ]{{1,{metadata['max']}}}$"


def test_the_condition_rule_has_the_model_s_length():
    assert cfg.RULES["condition"][0].endswith(f"{{1,{_shape('RuleConditionConditionString')['max']}}}$")


@pytest.mark.parametrize("name", ["email_match", "name and phone", "rule-1", "email!", "naïve", "a/b", "x" * 256])
def test_rule_names_are_refused_exactly_when_the_model_refuses_them(tmp_path, name):
    pattern = _shape("RuleRuleNameString")["pattern"]
    allowed = re.fullmatch(pattern, name) is not None and len(name) <= _shape("RuleRuleNameString")["max"]

    def mutate(raw):
        _customers(raw)["resolution"]["ruleBasedProperties"]["rules"][0]["ruleName"] = name

    try:
        load_config(write_config(tmp_path, mutate))
        accepted = True
    except ConfigError as exc:
        accepted = False
        assert "ruleName" in str(exc)
    assert accepted == allowed


def _customers(raw):
    return raw["domains"]["customers"]


@pytest.mark.parametrize(
    "mutate, says",
    [
        (
            lambda raw: _customers(raw)["resolution"].update(
                ruleBasedProperties=None,
                ruleConditionProperties={
                    "rules": [{"ruleName": "r", "condition": "Exact(email) OR " * 128 + "Exact(email)"}]
                },
            ),
            ("condition", "2048"),
        ),
        (lambda raw: _customers(raw)["schema"]["mappedInputFields"][1].update(groupName="full/name"), ("groupName",)),
        (
            lambda raw: _customers(raw)["schema"]["mappedInputFields"].extend(
                {"fieldName": f"extra_{i}", "type": "STRING"} for i in range(52)
            ),
            ("mappedInputFields", "60"),
        ),
    ],
)
def test_values_past_the_model_s_limits_are_refused_naming_field_and_limit(tmp_path, mutate, says):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, mutate))
    assert all(part in str(info.value) for part in says), str(info.value)


def test_a_condition_of_2048_characters_and_60_fields_are_accepted(tmp_path):
    def mutate(raw):
        body = _customers(raw)
        body["resolution"] = {
            "resolutionType": "RULE_MATCHING",
            "ruleConditionProperties": {
                "rules": [{"ruleName": "r", "condition": ("Exact(email)" + " " * 2048)[:2048]}]
            },
        }
        body["schema"]["mappedInputFields"].extend({"fieldName": f"extra_{i}", "type": "STRING"} for i in range(51))

    domain = load_config(write_config(tmp_path, mutate)).domain("customers")
    assert len(domain.schema.mappedInputFields) == 60
