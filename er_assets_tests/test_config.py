"""Configuration validation: every broken file is refused with a message naming file, domain and field."""

import pytest

from er_assets.config import ConfigError, load_config
from er_assets_tests.conftest import write_config


def test_shipped_configuration_has_the_seed_domains(config):
    assert list(config.domains) == ["customers", "products", "vendors"]
    customers, products, vendors = (config.domain(n) for n in config.domains)
    assert (customers.schedule.cadence, customers.schedule.time, customers.schedule.timezone) == ("daily", "03:00", "US/Eastern")
    assert (products.schedule.cadence, products.schedule.day_of_week, products.schedule.time) == ("weekly", "sunday", "05:00")
    assert (vendors.schedule.cadence, vendors.schedule.day_of_month) == ("monthly", 1)
    assert customers.schema.unique_id == "customer_id"


def test_unknown_domain_message(config):
    with pytest.raises(ConfigError, match=r"^Domain 'xyz' not found in configuration"):
        config.domain("xyz")


def _set(path, value):
    def mutate(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


BROKEN = [
    (_set(["domains", "customers", "schedule", "cadence"], "hourly"), "domain 'customers': schedule.cadence"),
    (_set(["domains", "customers", "schedule", "time"], "25:00"), "domain 'customers': schedule.time"),
    (_set(["domains", "customers", "schedule", "timezone"], "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    (_delete(["domains", "products", "schedule", "day_of_week"]), "a weekly schedule needs day_of_week"),
    (_set(["domains", "vendors", "schedule", "day_of_month"], 31), "domain 'vendors': schedule.day_of_month"),
    (_set(["domains", "customers", "source", "table"], "x; DROP TABLE y"), "is not a plain SQL identifier"),
    (_set(["domains", "customers", "target", "table"], 'a"b'), "domain 'customers': target.table"),
    (_set(["domains", "customers", "dq", "min_match_rate"], 90), "min_match_rate 90.0 is above max_match_rate 60.0"),
    (_set(["domains", "customers", "dq", "required_fields"], ["nope"]), "domain 'customers': dq.required_fields: ['nope'] are not fields"),
    (_set(["domains", "customers", "workflow_name"], "bad name!"), "domain 'customers': workflow_name"),
    (_set(["domains", "customers", "notifications", "emails"], ["not-an-email"]), "'not-an-email' is not an email address"),
    (_delete(["domains", "customers", "autosys"]), "domain 'customers': autosys: required, but missing"),
    (_set(["domains", "customers", "unexpected"], 1), "domain 'customers': unexpected: unknown key 'unexpected'"),
    (_set(["settings", "check_interval"], 0), "settings.check_interval"),
    (_set(["domains", "products", "autosys", "job_prefix"], "ER_CUSTOMER"), "domain 'products': autosys.job_prefix: 'ER_CUSTOMER' is already used by domain 'customers'"),
    (_set(["domains", "customers", "schema", "mappedInputFields", 1, "type"], "NAME_NICK"), "unknown attribute type 'NAME_NICK'"),
    (_set(["domains", "customers", "schema", "mappedInputFields", 0, "type"], "STRING"), "exactly one UNIQUE_ID field"),
    (_set(["domains", "customers", "resolution", "ruleBasedProperties", "rules", 0, "matchingKeys"], ["shoe_size"]),
     "uses matching keys ['shoe_size'] that no schema field has"),
    (_set(["domains", "customers", "resolution", "ruleBasedProperties", "attributeMatchingModel"], "SOME"),
     "attributeMatchingModel"),
    (_set(["domains", "customers", "source", "partition_column"], "email"), "source.partition_column: 'email' must not be a schema field"),
    (_set(["domains", "customers", "schema", "mappedInputFields", 1, "fieldName"], "MatchID"),
     "field names ['MatchID'] are reserved"),
    (_set(["domains"], {}), "domains: required: a non-empty mapping"),
]


@pytest.mark.parametrize("mutate, message", BROKEN)
def test_broken_configuration_is_refused_with_a_precise_message(tmp_path, mutate, message):
    path = write_config(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(str(path)), text
    assert message in text
    assert "\n" not in text


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_environment_variable_selects_the_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, _set(["domains", "customers", "dq", "min_records"], 7))
    monkeypatch.setenv("ER_CONFIG", str(path))
    assert load_config().domain("customers").dq.min_records == 7
