"""Configuration validation: every broken file is refused with a message naming file, domain and field."""

import re

import pytest

from er_assets.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from er_assets_tests.helpers import write_config


def test_shipped_configuration_has_the_seed_domains(config):
    assert list(config.domains) == ["customers", "products", "vendors"]
    customers, products, vendors = (config.domain(n) for n in config.domains)
    assert (customers.schedule.cadence, customers.schedule.time, customers.schedule.timezone) == (
        "daily",
        "03:00",
        "US/Eastern",
    )
    assert (products.schedule.cadence, products.schedule.day_of_week, products.schedule.time) == (
        "weekly",
        "sunday",
        "05:00",
    )
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
    (
        _set(["domains", "customers", "dq", "required_fields"], ["nope"]),
        "domain 'customers': dq.required_fields: ['nope'] are not fields",
    ),
    (_set(["domains", "customers", "workflow_name"], "bad name!"), "domain 'customers': workflow_name"),
    (
        _set(["domains", "customers", "notifications", "emails"], ["not-an-email"]),
        "'not-an-email' is not an email address",
    ),
    (_delete(["domains", "customers", "autosys"]), "domain 'customers': autosys: required, but missing"),
    (_set(["domains", "customers", "unexpected"], 1), "domain 'customers': unexpected: unknown key 'unexpected'"),
    (_set(["settings", "check_interval"], 0), "settings.check_interval"),
    (
        _set(["domains", "products", "autosys", "job_prefix"], "ER_CUSTOMER"),
        "domain 'products': autosys.job_prefix: 'ER_CUSTOMER' is already used by domain 'customers'",
    ),
    (
        _set(["domains", "customers", "schema", "mappedInputFields", 1, "type"], "NAME_NICK"),
        "unknown attribute type 'NAME_NICK'",
    ),
    (_set(["domains", "customers", "schema", "mappedInputFields", 0, "type"], "STRING"), "exactly one UNIQUE_ID field"),
    (
        _set(["domains", "customers", "resolution", "ruleBasedProperties", "rules", 0, "matchingKeys"], ["shoe_size"]),
        "uses matching keys ['shoe_size'] that no schema field has",
    ),
    (
        _set(["domains", "customers", "resolution", "ruleBasedProperties", "attributeMatchingModel"], "SOME"),
        "attributeMatchingModel",
    ),
    (
        _set(["domains", "customers", "source", "partition_column"], "email"),
        "source.partition_column: 'email' must not be a schema field",
    ),
    (
        _set(["domains", "customers", "schema", "mappedInputFields", 1, "fieldName"], "MatchID"),
        "field names ['MatchID'] are reserved",
    ),
    (
        _set(["domains", "customers", "schema", "mappedInputFields", 1, "fieldName"], "Entity_ID"),
        "field names ['Entity_ID'] are reserved for the columns the load adds to the target table",
    ),
    (_set(["domains"], {}), "domains: required: a non-empty mapping"),
    (
        _set(["domains", "customers", "name"], "clients"),
        "domain 'customers': name: unknown key 'name'; a domain is named by its key",
    ),
]


@pytest.mark.parametrize("mutate, message", BROKEN)
def test_broken_configuration_is_refused_with_a_precise_message(tmp_path, mutate, message):
    path = write_config(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert re.match(rf"{re.escape(str(path))}:[0-9]+: ", text), text  # file:line first
    assert message in text
    assert "\n" not in text
    assert not any(word in text for word in JARGON), text


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    broken_json = tmp_path / "bad.json"
    broken_json.write_text('{"domains": {\n  "customers": [1,\n')
    with pytest.raises(ConfigError, match=rf"^{broken_json}:3: not valid JSON"):
        load_config(broken_json)


def test_environment_variable_selects_the_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, _set(["domains", "customers", "dq", "min_records"], 7))
    monkeypatch.setenv("ER_CONFIG", str(path))
    assert load_config().domain("customers").dq.min_records == 7


# ---- messages a person can act on: file:line, domain, field, the rule ------------------------

SHIPPED = DEFAULT_CONFIG_PATH.read_text()
JARGON = ("Value error", "Input should", "validation error", "String should match", "^[", "[type=", "pydantic")


def _edit(tmp_path, *replacements):
    """The shipped file with text replaced; returns (path, {marker: line of the marker})."""
    text = SHIPPED
    for old, new in replacements:
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path, text.splitlines()


def _line_of(lines, marker, after=0):
    return next(i + 1 for i, line in enumerate(lines) if i >= after and marker in line)


def _errors(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    for line in lines:
        assert line.startswith(f"{path}:"), line
        assert not any(word in line for word in JARGON), line
    return lines


@pytest.mark.parametrize(
    "old, new, marker, expected",
    [
        ("domains:\n", "domians:\n", "domians:", "top level: unknown key 'domians'; did you mean 'domains'?"),
        (
            "  region: us-east-1",
            "  regoin: us-east-1",
            "regoin",
            "settings.regoin: unknown key 'regoin'; did you mean 'region'?",
        ),
        (
            "    workflow_name: customer-matching-workflow",
            "    workflow_nme: customer-matching-workflow",
            "workflow_nme",
            "domain 'customers': workflow_nme: unknown key 'workflow_nme'; did you mean 'workflow_name'?",
        ),
        (
            "        - {fieldName: first_name, type: NAME_FIRST,",
            "        - {fieldName: first_name, typ: NAME_FIRST,",
            "typ: NAME_FIRST",
            "domain 'customers': schema.mappedInputFields[first_name].typ: unknown key 'typ'; did you mean 'type'?",
        ),
        (
            "          - {ruleName: email_match, matchingKeys: [email]}",
            "          - {ruleName: email_match, matchingKey: [email]}",
            "matchingKey:",
            "domain 'customers': resolution.ruleBasedProperties.rules[email_match].matchingKey: "
            "unknown key 'matchingKey'; did you mean 'matchingKeys'?",
        ),
        (
            "        max_deviation: 0.5",
            "        max_deviaton: 0.5",
            "max_deviaton",
            "domain 'customers': dq.anomaly.max_deviaton: unknown key 'max_deviaton'; did you mean 'max_deviation'?",
        ),
        (
            "      machine: autosys-er-host",
            "      machnie: autosys-er-host",
            "machnie",
            "domain 'customers': autosys.machnie: unknown key 'machnie'; did you mean 'machine'?",
        ),
    ],
)
def test_a_misspelt_key_is_named_with_its_line_and_the_nearest_valid_key(tmp_path, old, new, marker, expected):
    path, lines = _edit(tmp_path, (old, new))
    errors = _errors(path)
    assert f"{path}:{_line_of(lines, marker)}: {expected}" in errors, errors


def test_yaml_syntax_errors_name_their_line(tmp_path):
    path, lines = _edit(tmp_path, ("    target: {table: customers_resolved}", "    target: {table: customers_resolved"))
    (error,) = _errors(path)
    assert error.startswith(f"{path}:{_line_of(lines, 'target: {table: customers_resolved') + 1}: not valid YAML:"), (
        error
    )
    path.write_text("domains:\n  customers:\n\tproject_name: x\n")
    (error,) = _errors(path)
    assert error.startswith(f"{path}:3: not valid YAML:") and "tab" in error, error


@pytest.mark.parametrize(
    "old, new, marker, field",
    [
        ("  products:\n", "  customers:\n", "  customers:", "'customers' in domains"),
        (
            "    target: {table: customers_resolved}",
            "    target: {table: customers_resolved}\n    target: {table: other}",
            "    target:",
            "'target' in domains.customers",
        ),
        (
            "      min_records: 100 ",
            "      min_records: 100\n      min_records: 5 ",
            "      min_records:",
            "'min_records' in domains.customers.dq",
        ),
        ("settings:\n", "settings: {}\nsettings:\n", "settings:", "'settings' in the top level"),
    ],
)
def test_duplicate_keys_are_refused_at_any_level(tmp_path, old, new, marker, field):
    path, lines = _edit(tmp_path, (old, new))
    first = _line_of(lines, marker)
    (error,) = _errors(path)
    assert error.startswith(f"{path}:{_line_of(lines, marker, after=first)}: duplicate key {field}"), error
    assert f"first defined on line {first}" in error, error


def test_every_error_of_a_file_is_reported_at_once_each_on_its_line(tmp_path):
    path, lines = _edit(
        tmp_path,
        ("  check_interval: 300", "  check_interval: 0"),
        (
            "    bucket: er-data-lake\n    prefix: entity-resolution/customers",
            "    bucket: er-data-lake\n    prefix: ../../../../tmp/escaped",
        ),
        (
            '    schedule: {cadence: daily, time: "03:00", timezone: US/Eastern',
            '    schedule: {cadence: daily, time: "03:00", timezone: Mars/Olympus',
        ),
        ("      min_records: 50", "      min_records: -1"),
        ("      job_prefix: ER_PRODUCT", "      job_prefix: ER_PRODUCT_RESOLUTION_NIGHTLY_FOR_THE_RETAIL_BANK_EU_WEST"),
    )
    errors = _errors(path)
    expected = [
        (_line_of(lines, "check_interval: 0"), "settings.check_interval: 0: must be greater than 0"),
        (
            _line_of(lines, "../../../../tmp/escaped"),
            "domain 'customers': prefix: '../../../../tmp/escaped' is not an object-store prefix",
        ),
        (_line_of(lines, "Mars/Olympus"), "domain 'customers': schedule.timezone: unknown time zone 'Mars/Olympus'"),
        (
            _line_of(lines, "job_prefix: ER_PRODUCT_"),
            "domain 'products': autosys.job_prefix: job name "
            "ER_PRODUCT_RESOLUTION_NIGHTLY_FOR_THE_RETAIL_BANK_EU_WEST_EXTRACT would be 65 characters; "
            "AutoSys allows 64",
        ),
        (
            _line_of(lines, "min_records: -1"),
            "domain 'vendors': dq.min_records: -1: must be greater than or equal to 0",
        ),
    ]
    assert len(errors) == len(expected), errors
    for (line, text), error in zip(expected, errors):
        assert error.startswith(f"{path}:{line}: {text}"), (error, line, text)


def test_a_cross_field_error_names_the_rule_not_a_list_index(tmp_path):
    path, lines = _edit(
        tmp_path,
        (
            "          - {ruleName: name_phone_match, matchingKeys: [name, phone]}",
            "          - {ruleName: name_phone_match, matchingKeys: [name, fax]}",
        ),
    )
    (error,) = _errors(path)
    assert error == (
        f"{path}:{_line_of(lines, 'matchingKeys: [name, fax]')}: domain 'customers': "
        "resolution.ruleBasedProperties.rules[name_phone_match].matchingKeys: rule 'name_phone_match' "
        "uses matching keys ['fax'] that no schema field has"
    ), error


def test_the_validate_command_prints_each_error_on_its_own_line(tmp_path, capsys):
    from autosys_bridge.cli import main

    path, _ = _edit(
        tmp_path, ("  check_interval: 300", "  check_interval: 0"), ("      min_records: 50", "      min_records: -1")
    )
    assert main(["validate", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"autosys-bridge: error: {path}:") for line in lines), lines


def test_the_validate_command_reads_the_box_condition_as_autosys_would(tmp_path, capsys):
    from autosys_bridge.cli import main

    path = write_config(tmp_path, lambda raw: raw["domains"]["vendors"]["autosys"].update(condition="s(FEED) &"))
    assert main(["validate", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"autosys-bridge: error: {path}: domain 'vendors': autosys.condition 's(FEED) &': ")


def test_anchors_and_merge_keys_work_and_a_cyclic_alias_is_refused_plainly(tmp_path):
    path, _ = _edit(
        tmp_path,
        ("    autosys:\n      job_prefix: ER_CUSTOMER", "    autosys: &autosys\n      job_prefix: ER_CUSTOMER"),
        (
            "    autosys:\n      job_prefix: ER_PRODUCT",
            "    autosys:\n      <<: *autosys\n      job_prefix: ER_PRODUCT",
        ),
    )
    assert load_config(path).domain("products").autosys.machine == "autosys-er-host"
    path.write_text("settings: &s [*s]\ndomains: {}\n")
    errors = _errors(path)
    assert errors and all(line.startswith(f"{path}:") for line in errors)
