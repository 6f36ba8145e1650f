"""The configuration's limits are botocore's entityresolution model's, not our guesses."""

import pytest

from er_assets import config as cfg
from er_assets.config import ConfigError, load_config
from er_assets.emulator.model import service_model
from er_assets_tests.conftest import write_config

MODEL = service_model("entityresolution")


def _bounds(model, field: str) -> tuple:
    info = model.model_fields[field]
    found = {type(m).__name__: m for m in info.metadata}
    pattern = next((getattr(m, "pattern", None) for m in info.metadata if getattr(m, "pattern", None)), None)
    return (getattr(found.get("MinLen"), "min_length", None), getattr(found.get("MaxLen"), "max_length", None), pattern)


def _shape(name: str):
    return MODEL.shape_for(name).metadata


@pytest.mark.parametrize("model, field, shape", [
    (cfg.RuleCondition, "condition", "RuleConditionConditionString"),
    (cfg.RuleConditionProperties, "rules", "RuleConditionPropertiesRulesList"),
    (cfg.RuleBasedProperties, "rules", "RuleBasedPropertiesRulesList"),
    (cfg.Rule, "matchingKeys", "RuleMatchingKeysList"),
    (cfg.SchemaMapping, "mappedInputFields", "SchemaInputAttributes"),
])
def test_maximum_sizes_are_the_model_s(model, field, shape):
    assert _bounds(model, field)[1] == _shape(shape)["max"]


@pytest.mark.parametrize("shape", ["RuleRuleNameString", "RuleConditionRuleNameString", "AttributeName"])
def test_rule_and_attribute_names_follow_the_model_s_pattern(shape):
    # config.RULES["aws_name"] is the model's pattern and maximum; an empty name, which the
    # model's minimum of 0 would allow, names nothing and is refused.
    metadata = _shape(shape)
    assert metadata["pattern"] == "[a-zA-Z_0-9- ]*"
    assert cfg.RULES["aws_name"][0] == f"^[a-zA-Z_0-9- ]{{1,{metadata['max']}}}$"


def test_the_condition_rule_has_the_model_s_length():
    assert cfg.RULES["condition"][0].endswith(f"{{1,{_shape('RuleConditionConditionString')['max']}}}$")


def _customers(raw):
    return raw["domains"]["customers"]


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: _customers(raw)["resolution"].update(ruleBasedProperties=None, ruleConditionProperties={
        "rules": [{"ruleName": "r", "condition": "Exact(email) OR " * 128 + "Exact(email)"}]}),
     "resolution.ruleConditionProperties.rules[r].condition: 'Exact(email) OR "),
    (lambda raw: _customers(raw)["resolution"]["ruleBasedProperties"]["rules"][0].update(ruleName="email!"),
     "rules[email!].ruleName: 'email!' is not an AWS attribute name"),
    (lambda raw: _customers(raw)["schema"]["mappedInputFields"][1].update(groupName="full/name"),
     "mappedInputFields[first_name].groupName: 'full/name' is not an AWS attribute name"),
    (lambda raw: _customers(raw)["schema"]["mappedInputFields"].extend(
        {"fieldName": f"extra_{i}", "type": "STRING"} for i in range(52)),
     "schema.mappedInputFields: must have at most 60 items"),
])
def test_values_past_the_model_s_limits_are_refused(tmp_path, mutate, message):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, mutate))
    assert message in str(info.value)


def test_a_condition_of_2048_characters_and_60_fields_are_accepted(tmp_path):
    def mutate(raw):
        body = _customers(raw)
        body["resolution"] = {"resolutionType": "RULE_MATCHING", "ruleConditionProperties": {
            "rules": [{"ruleName": "r", "condition": ("Exact(email)" + " " * 2048)[:2048]}]}}
        body["schema"]["mappedInputFields"].extend({"fieldName": f"extra_{i}", "type": "STRING"} for i in range(51))

    domain = load_config(write_config(tmp_path, mutate)).domain("customers")
    assert len(domain.schema.mappedInputFields) == 60
