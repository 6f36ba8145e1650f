"""Drift between a production JIL export (`autorep -q`) and what the configuration emits today.

Only the objects the bridge owns are compared: the emitted jobs and resource, and anything in
production named with a configured job prefix or sitting in one of the emitted boxes. The rest
of an instance's export is someone else's and is ignored.

Values are compared by meaning, not spelling: `y` and `1` are the same flag, `c` and `CMD`
the same job type, `success(A) AND s(B)` the same condition as `s(A) & s(B)`, and a repeated
attribute (one email address per line) is compared as a set.
"""

from __future__ import annotations

from dataclasses import dataclass

from autosys_bridge.jil.attributes import CONDITION_ATTRIBUTES
from autosys_bridge.jil.conditions import ConditionError, parse_condition
from autosys_bridge.jil.model import JilFile, Statement
from er_assets import exit_codes

# `autosys-bridge diff` exits with this when it finds drift (0 when there is none).
DRIFT = exit_codes.STAGE_FAILED

_FLAGS = frozenset(
    {
        "date_conditions",
        "alarm_if_fail",
        "alarm_if_terminated",
        "box_terminator",
        "job_terminator",
        "auto_hold",
        "auto_delete",
    }
)
_REPEATED = frozenset(
    {
        "notification_emailaddress",
        "notification_emailaddress_on_failure",
        "notification_emailaddress_on_success",
        "notification_emailaddress_on_terminated",
        "notification_emailaddress_on_alarm",
        "resources",
    }
)


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | extra | changed
    subcommand: str
    name: str
    attribute: str | None = None
    production: str | None = None
    configuration: str | None = None

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"missing  {self.subcommand} {self.name}: in the configuration, not in production"
        if self.kind == "extra":
            return f"extra    {self.subcommand} {self.name}: in production, not in the configuration"
        return (
            f"changed  {self.name} {self.attribute}: production {_show(self.production)}, "
            f"configuration {_show(self.configuration)}"
        )

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _show(value: str | None) -> str:
    return "(not set)" if value is None else repr(value)


def find_drift(production: JilFile, expected: list[Statement], prefixes: list[str]) -> list[Difference]:
    """Differences between the production file and the expected statements, sorted by name."""
    wanted = {_key(s): s for s in expected}
    boxes = {s.name for s in expected if s.is_job and s.job_type == "BOX"}
    actual = {("insert_job", name): job for name, job in production.effective_jobs().items()}
    for statement in production.statements:
        if statement.subcommand == "insert_resource":
            actual[_key(statement)] = statement
        elif statement.subcommand == "delete_resource":
            actual.pop(("insert_resource", statement.name), None)

    def ours(key: tuple[str, str], statement: Statement) -> bool:
        name = key[1]
        return key in wanted or any(name.startswith(p + "_") for p in prefixes) or statement.box_name in boxes

    differences = []
    for key, statement in actual.items():
        if key not in wanted and ours(key, statement):
            differences.append(Difference("extra", key[0], key[1]))
    for key, statement in wanted.items():
        if key not in actual:
            differences.append(Difference("missing", key[0], key[1]))
        else:
            differences += _attribute_drift(actual[key], statement)
    return sorted(differences, key=lambda d: (d.name, d.kind, d.attribute or ""))


def _key(statement: Statement) -> tuple[str, str]:
    return ("insert_job" if statement.is_job else statement.subcommand, statement.name)


def _attribute_drift(production: Statement, expected: Statement) -> list[Difference]:
    differences = []
    names = dict.fromkeys([a.name for a in expected.attributes] + [a.name for a in production.attributes])
    for name in names:
        have, want = _normalised(production, name), _normalised(expected, name)
        if have != want:
            differences.append(Difference("changed", expected.subcommand, expected.name, name, have, want))
    return differences


def _normalised(statement: Statement, name: str) -> str | None:
    if name == "job_type":
        return statement.job_type
    values = statement.values(name)
    if not values:
        return None
    if name in _REPEATED:
        return ", ".join(sorted(_value(name, v) for v in values))
    return _value(name, values[-1])


def _value(name: str, value: str) -> str:
    value = value.strip()
    if name in _FLAGS:
        return {"y": "1", "yes": "1", "n": "0", "no": "0"}.get(value.lower(), value)
    if name in CONDITION_ATTRIBUTES:
        try:
            return parse_condition(value).to_jil()
        except ConditionError:
            return value
    if name in ("days_of_week", "start_times", "resources", "permission"):
        return ",".join(part.strip() for part in value.split(",")).lower()
    if name in ("send_notification", "res_type"):
        return value.lower()
    return value
