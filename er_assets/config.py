"""The domain configuration: one validated file from which everything else is derived.

Partitions, schedules, asset checks, JIL and notifications all come from the models here.
Errors name the file and line, the domain and the field, all of a file's at once, so an
operator can fix them without a traceback (reading and wording: `config_file`). This module
imports only pydantic and PyYAML: the CLI start-up path reads it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from er_assets.config_file import Document, Problems, SyntaxProblem, describe_errors, read_document, unknown_key

CONFIG_ENV_VAR = "ER_CONFIG"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("domains.yaml")

# AWS Entity Resolution attribute types (SchemaInputAttribute.type).
ATTRIBUTE_TYPES = frozenset(
    {
        "NAME",
        "NAME_FIRST",
        "NAME_MIDDLE",
        "NAME_LAST",
        "ADDRESS",
        "ADDRESS_STREET1",
        "ADDRESS_STREET2",
        "ADDRESS_STREET3",
        "ADDRESS_CITY",
        "ADDRESS_STATE",
        "ADDRESS_COUNTRY",
        "ADDRESS_POSTALCODE",
        "PHONE",
        "PHONE_NUMBER",
        "PHONE_COUNTRYCODE",
        "EMAIL_ADDRESS",
        "UNIQUE_ID",
        "DATE",
        "STRING",
        "PROVIDER_ID",
        "IPV4",
        "IPV6",
        "MAID",
    }
)
# Output names the service reserves for itself.
RESERVED_OUTPUT_NAMES = frozenset(
    {"EmailAddress", "InputSourceARN", "MatchRule", "MatchID", "HashingProtocol", "ConfidenceLevel", "Source"}
)
# Columns the load adds to every target row (compared case-insensitively: Snowflake folds case).
LOAD_COLUMNS = frozenset({"partition_key", "loaded_at", "entity_id"})
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
ER_NAME = re.compile(r"^[a-zA-Z_0-9-]{1,255}$")  # workflow and schema names, as the service allows
# Addresses reach JIL (notification_emailaddress) and SMTP: plain ones only, no quoting.
EMAIL = re.compile(r"^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

# AutoSys job names are at most 64 characters; the longest the bridge derives from a
# job_prefix ends in _EXTRACT or _PROCESS (stages.command_job).
MAX_JOB_NAME = 64
LONGEST_JOB_SUFFIX = "_EXTRACT"

# Data-quality checks by stage; `dq.severity` may name any of them.
CHECK_NAMES = {
    "extract": (
        "source_schema",
        "min_records",
        "required_fields",
        "unique_ids",
        "value_formats",
        "record_count_anomaly",
    ),
    "matched": ("match_rate", "no_data_loss", "match_rate_baseline", "min_confidence", "confidence_baseline"),
    "loaded": (
        "row_count",
        "no_duplicate_ids",
        "match_ids_assigned",
        "no_value_loss",
        "entity_assigned",
        "entity_churn",
        "oversized_entities",
        "delivered",
    ),
}
# Without the configured columns nothing can be extracted, so this check always blocks.
ALWAYS_BLOCKING = frozenset({"source_schema"})
# Full-match regular expressions for the attribute types whose values have a checkable shape.
# They run in the warehouse (DuckDB RE2, Snowflake POSIX ERE), so they stay in the syntax both
# share: bracket expressions instead of backslash classes. Values are trimmed first, as the
# service normalises them.
DEFAULT_VALUE_FORMATS = {
    "EMAIL_ADDRESS": "[^@ ]+@[^@ ]+[.][^@ ]+",
    # 7 to 15 digits (E.164 allows 15), with the usual separators and an optional leading +.
    "PHONE_NUMBER": "[+]?[ ().-]*([0-9][ ().-]*){7,15}",
    "PHONE": "[+]?[ ().-]*([0-9][ ().-]*){7,15}",
    # Any country's postcode: 3 to 10 letters and digits, with inner spaces or hyphens.
    "ADDRESS_POSTALCODE": "[A-Za-z0-9][A-Za-z0-9 -]{1,8}[A-Za-z0-9]",
}


class ConfigError(Exception):
    """A configuration that cannot be used; the message names file, domain and field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- safe strings -------------------------------------------------------------------------
# Configuration strings reach JIL (one attribute per line), the shell AutoSys runs commands
# in, object-store paths and SQL. One rule for all of them: no control or format characters
# anywhere (newline, CR, tab, NUL, zero-width and bidirectional marks), checked on every string
# of the file by `unsafe_characters`; then each field has an allow-list (RULES, named per
# model by `_rules`) that leaves out shell syntax (; $ ` | & < > quotes), empty or `..` path
# segments and spaces where JIL or a path would need them quoted.


def unsafe_characters(value: str) -> str | None:
    """Why `value` cannot be used anywhere, or None: the control characters it holds."""
    bad = sorted({c for c in value if unicodedata.category(c) in _UNSAFE_CATEGORIES})
    if not bad:
        return None
    return f"{value!r} contains control characters ({', '.join(repr(c) for c in bad)}); none are allowed"


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SEGMENT = r"[A-Za-z0-9._+-]+"  # a path segment; `.` and `..` are refused by check_rule
_HOST = r"[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*"
_ARG = r"[A-Za-z0-9_+,@%=./-]+"  # a shell word that needs no quoting and expands to itself
RULES = {
    "identifier": (IDENTIFIER.pattern, "a plain SQL identifier (a letter or '_', then letters, digits, '_')"),
    "aws_name": (r"^[a-zA-Z_0-9- ]{1,255}$", "an AWS attribute name (1-255 letters, digits, '_', '-', spaces)"),
    "er_name": (ER_NAME.pattern, "an AWS Entity Resolution name (1-255 letters, digits, '_', '-')"),
    "project": (
        r"^[A-Za-z0-9_-]+( [A-Za-z0-9_-]+){0,20}$",
        "a project name (letters, digits, '_', '-', single spaces)",
    ),
    "domain": (
        r"^[a-z][a-z0-9_]{0,30}$",
        "a domain name (a lower-case letter, then up to 30 lower-case letters, digits, '_')",
    ),
    "bucket": (
        r"^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        "an S3 bucket name (3-63 lower-case letters, digits, '.', '-'; no '..')",
    ),
    "prefix": (
        rf"^{_SEGMENT}(/{_SEGMENT})*$",
        "an object-store prefix of plain segments (letters, digits, '.', '_', '-', '+'; "
        "no empty, '.' or '..' segment, no leading or trailing '/')",
    ),
    "abs_path": (
        rf"^(/{_SEGMENT})+$",
        "an absolute path of plain segments (letters, digits, '.', '_', '-', '+'; no '..')",
    ),
    # A host or AutoSys machine name: DNS's shape and length (253), underscores allowed.
    "machine": (rf"^(?=.{{1,253}}$){_HOST}$", "a machine name (letters, digits, '-', '_', dot-separated)"),
    "owner": (rf"^[A-Za-z0-9_][A-Za-z0-9._-]*(@{_HOST})?$", "an AutoSys owner (user or user@host)"),
    "command": (
        rf"^/?{_SEGMENT}(/{_SEGMENT})*( {_ARG})*$",
        "a program path followed by plain arguments separated by single spaces "
        "(letters, digits and _ + , @ % = . / -; no shell syntax such as ; $ ` | & < > quotes)",
    ),
    "autosys_name": (r"^[A-Za-z0-9._#-]{1,64}$", "an AutoSys name (1-64 letters, digits, '.', '_', '-', '#')"),
    "calendar_prefix": (
        r"^[A-Za-z0-9._#-]{0,25}$",
        "an AutoSys calendar-name prefix (up to 25 letters, digits, '.', '_', '-', '#', "
        "so PREFIX + DOMAIN + _MONTHLY stays within AutoSys's 64)",
    ),
    "permission": (
        r"^(gx|ge|wx|we|mx|me|ex|ee)(,(gx|ge|wx|we|mx|me|ex|ee))*$",
        "an AutoSys permission list (gx, ge, wx, we, mx, me, ex, ee, comma-separated)",
    ),
    "region": (r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", "an AWS region (such as us-east-1)"),
    "pool": (r"^[A-Za-z0-9_-]{1,64}$", "a pool name (1-64 letters, digits, '_', '-')"),
    "glue_name": (r"^[A-Za-z0-9_]{1,255}$", "a Glue database name (letters, digits, '_')"),
    "role_arn": (
        r"^(?!.*(\.\.|//))arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
        "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
    ),
    # The tokens of AWS's condition language (names, numbers, "quoted" names, ( ) , =).
    "condition": (
        r'^(?!.*\.\.)[A-Za-z0-9_ (),=."-]{1,2048}$',
        'an AWS rule condition (names, numbers, "quoted" names, ( ) , =)',
    ),
    "email": (EMAIL.pattern, "an email address (a plain name@domain: letters, digits, '.', '_', '%', '+', '-')"),
}


def check_rule(kind: str, value: str) -> str:
    """`value` if it follows the rule `kind` of RULES, else ValueError in plain words."""
    pattern, words = RULES[kind]
    traverses = kind in _PATH_KINDS and {".", ".."} & set(re.split(r"[/ =]", value))
    if traverses or not re.fullmatch(pattern, value):
        raise ValueError(f"{value!r} is not {words}")
    return value


_PATH_KINDS = frozenset({"prefix", "abs_path", "command"})


def _rules(**kinds: str):
    """A model's one field validator: each field named holds a string (or a list of them, or
    None) that must follow the rule `kinds[field]` of RULES. It runs after the field's own
    constraints (lengths, types), as every field validator does."""

    def check(cls, value, info: ValidationInfo):
        # A field validator is always called for a field, so field_name is set.
        assert info.field_name is not None
        kind = kinds[info.field_name]
        if isinstance(value, list):
            return _each(value, lambda item: check_rule(kind, item))
        return value if value is None else check_rule(kind, value)

    return field_validator(*kinds)(classmethod(check))


def _each(values: list[str], check) -> list[str]:
    """Apply `check` to every item, reporting each bad one at its own position (and line)."""
    problems = []
    for index, item in enumerate(values):
        try:
            check(item)
        except ValueError as exc:
            problems.append(((index,), str(exc)))
    if problems:
        raise Problems(problems)
    return values


class SchemaField(_Model):
    """One `mappedInputFields` entry of an AWS schema mapping."""

    fieldName: str
    type: str
    groupName: str | None = Field(default=None, max_length=255)
    matchKey: str | None = Field(default=None, max_length=255)
    subType: str | None = None
    hashed: bool = False

    _check = _rules(fieldName="identifier", groupName="aws_name", matchKey="aws_name", subType="aws_name")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ATTRIBUTE_TYPES:
            raise ValueError(f"unknown attribute type {value!r}; expected one of {sorted(ATTRIBUTE_TYPES)}")
        return value


class SchemaMapping(_Model):
    """The AWS `get_schema_mapping` shape, minus the service-managed fields."""

    schemaName: str
    # SchemaInputAttributes in botocore's model: 2 to 60 fields.
    mappedInputFields: list[SchemaField] = Field(min_length=2, max_length=60)

    _check = _rules(schemaName="er_name")

    @model_validator(mode="after")
    def _one_unique_id(self) -> SchemaMapping:
        ids = [f.fieldName for f in self.mappedInputFields if f.type == "UNIQUE_ID"]
        if len(ids) != 1:
            raise ValueError(f"exactly one UNIQUE_ID field is required, found {len(ids)}")
        names = [f.fieldName for f in self.mappedInputFields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        reserved = sorted(set(names) & RESERVED_OUTPUT_NAMES)
        if reserved:
            raise ValueError(f"field names {reserved} are reserved for the service's own output columns")
        ours = sorted(n for n in names if n.lower() in LOAD_COLUMNS)
        if ours:
            raise ValueError(f"field names {ours} are reserved for the columns the load adds to the target table")
        return self

    @property
    def unique_id(self) -> str:
        return next(f.fieldName for f in self.mappedInputFields if f.type == "UNIQUE_ID")

    @property
    def columns(self) -> list[str]:
        return [f.fieldName for f in self.mappedInputFields]

    @property
    def match_keys(self) -> set[str]:
        return {f.matchKey for f in self.mappedInputFields if f.matchKey}


class Rule(_Model):
    ruleName: str = Field(min_length=1, max_length=255)
    matchingKeys: list[str] = Field(min_length=1, max_length=15)

    _check = _rules(ruleName="aws_name", matchingKeys="aws_name")


class RuleBasedProperties(_Model):
    rules: list[Rule] = Field(min_length=1, max_length=25)
    attributeMatchingModel: Literal["ONE_TO_ONE", "MANY_TO_MANY"] = "ONE_TO_ONE"
    matchPurpose: Literal["IDENTIFIER_GENERATION", "INDEXING"] = "IDENTIFIER_GENERATION"


class RuleCondition(_Model):
    ruleName: str = Field(min_length=1, max_length=255)
    condition: str = Field(min_length=1, max_length=2048)  # RuleConditionConditionString

    _check = _rules(ruleName="aws_name", condition="condition")


class RuleConditionProperties(_Model):
    rules: list[RuleCondition] = Field(min_length=1, max_length=25)


class ResolutionTechniques(_Model):
    """The AWS `resolutionTechniques` shape: rule-based techniques, or ML_MATCHING (no rules:
    the schema's attribute types and match keys drive the model)."""

    resolutionType: Literal["RULE_MATCHING", "ML_MATCHING"] = "RULE_MATCHING"
    ruleBasedProperties: RuleBasedProperties | None = None
    ruleConditionProperties: RuleConditionProperties | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ResolutionTechniques:
        if self.resolutionType == "ML_MATCHING":
            if self.ruleBasedProperties is not None or self.ruleConditionProperties is not None:
                raise ValueError("an ML_MATCHING workflow takes no ruleBasedProperties or ruleConditionProperties")
            return self
        if (self.ruleBasedProperties is None) == (self.ruleConditionProperties is None):
            raise ValueError("give exactly one of ruleBasedProperties or ruleConditionProperties")
        return self


class Source(_Model):
    table: str
    partition_column: str = Field(description="DATE column that places a record in a partition")

    _check = _rules(table="identifier", partition_column="identifier")


class Target(_Model):
    table: str

    _check = _rules(table="identifier")


class Schedule(_Model):
    cadence: Literal["daily", "weekly", "monthly"]
    time: str = "00:00"
    timezone: str = "UTC"
    day_of_week: str | None = None  # weekly only
    day_of_month: int | None = Field(default=None, ge=1, le=28)  # monthly only
    start_date: dt.date = dt.date(2024, 1, 1)
    sla_minutes: int = Field(default=180, gt=0, description="minutes from a partition's first stage start to its load")

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        try:
            parsed = dt.time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day (HH:MM)") from None
        if parsed.second or parsed.microsecond:
            raise ValueError(f"{value!r}: schedules run on whole minutes")
        return parsed.strftime("%H:%M")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("day_of_week")
    @classmethod
    def _dow(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in WEEKDAYS:
            raise ValueError(f"{value!r} is not a day of the week")
        return value.lower() if value else value

    @model_validator(mode="before")
    @classmethod
    def _monthly_default_day(cls, data):
        # A monthly schedule without a day runs on the 1st, in partitions and JIL alike.
        if isinstance(data, dict) and data.get("cadence") == "monthly" and data.get("day_of_month") is None:
            return {**data, "day_of_month": 1}
        return data

    @model_validator(mode="after")
    def _cadence_fields(self) -> Schedule:
        if self.cadence == "weekly" and self.day_of_week is None:
            raise ValueError("a weekly schedule needs day_of_week")
        if self.cadence != "weekly" and self.day_of_week is not None:
            raise ValueError(f"day_of_week applies to weekly schedules, not {self.cadence}")
        if self.cadence != "monthly" and self.day_of_month is not None:
            raise ValueError(f"day_of_month applies to monthly schedules, not {self.cadence}")
        return self

    @property
    def hour(self) -> int:
        return int(self.time[:2])

    @property
    def minute(self) -> int:
        return int(self.time[3:])


class Anomaly(_Model):
    """Record count and match rate against the history of earlier partitions."""

    enabled: bool = True
    min_history: int = Field(default=5, ge=1)
    window: int = Field(default=30, ge=1)
    max_deviation: float = Field(default=0.5, gt=0, description="allowed relative distance from the trailing median")


class MinConfidence(_Model):
    """ML_MATCHING only: matched records whose group's ConfidenceLevel is below `threshold`
    may be at most `max_rate` percent of the matched records."""

    threshold: float = Field(default=0.7, ge=0, le=1, description="ConfidenceLevel, 0.0-1.0 as the service writes it")
    max_rate: float = Field(default=10.0, ge=0, le=100, description="percent of matched records")


class DataQuality(_Model):
    min_records: int = Field(default=1, ge=0)
    required_fields: list[str] = Field(default_factory=list)
    min_match_rate: float = Field(default=0.0, ge=0, le=100, description="percent of records matched to another")
    max_match_rate: float = Field(default=100.0, ge=0, le=100)
    max_invalid_format_rate: float = Field(
        default=5.0, ge=0, le=100, description="percent of non-empty values per field"
    )
    value_formats: dict[str, str] = Field(
        default_factory=dict, description="regex per attribute type, over the defaults"
    )
    severity: dict[str, Literal["ERROR", "WARN"]] = Field(default_factory=dict, description="per check; default ERROR")
    anomaly: Anomaly = Anomaly()
    min_confidence: MinConfidence = MinConfidence()

    @model_validator(mode="after")
    def _range(self) -> DataQuality:
        if self.min_match_rate > self.max_match_rate:
            raise ValueError(f"min_match_rate {self.min_match_rate} is above max_match_rate {self.max_match_rate}")
        return self

    @field_validator("value_formats")
    @classmethod
    def _formats(cls, value: dict[str, str]) -> dict[str, str]:
        for attr_type, pattern in value.items():
            if attr_type not in DEFAULT_VALUE_FORMATS:
                raise ValueError(f"{attr_type!r} has no format check; expected one of {sorted(DEFAULT_VALUE_FORMATS)}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{attr_type}: {pattern!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: dict[str, str]) -> dict[str, str]:
        known = {name for names in CHECK_NAMES.values() for name in names}
        for name, level in value.items():
            if name not in known:
                raise ValueError(f"{name!r} is not a check; expected one of {sorted(known)}")
            if name in ALWAYS_BLOCKING and level != "ERROR":
                raise ValueError(f"{name} cannot be a warning: without its columns nothing can be extracted")
        return value

    def format_of(self, attr_type: str) -> str | None:
        """The full-match pattern values of this attribute type must have, if any."""
        return self.value_formats.get(attr_type, DEFAULT_VALUE_FORMATS.get(attr_type))


class Identity(_Model):
    """Durable entity ids across partitions (README, "Entity ids").

    `context_per_entity`: the latest records of each known entity a partition's records could
    match that its matching job receives as context (AWS puts at most 500 records in one
    MatchID); `max_entity_size`: an entity above this many records fails oversized_entities (a
    placeholder value such as N/A gluing unrelated records); `max_churn_rate`: known records a
    partition may move to another entity, in percent of the partition's records."""

    context_per_entity: int = Field(default=50, ge=1, le=500)
    max_entity_size: int = Field(default=500, ge=2)
    # Merges and splits are the service's verdicts, a few percent of a partition in the tests'
    # data (waterfall rules split an entity when a new record links one of its records first):
    # the limit catches a regrouping out of proportion to the partition, such as a rule change.
    max_churn_rate: float = Field(default=20.0, ge=0, description="percent of the partition's records")


class Notifications(_Model):
    emails: list[str] = Field(default_factory=list, description="domain team: failures and final success")
    on_failure: list[str] = Field(default_factory=list, description="extra recipients of failures only")
    on_success: list[str] = Field(default_factory=list, description="extra recipients of the final success only")

    _check = _rules(emails="email", on_failure="email", on_success="email")


class AutosysJob(_Model):
    """How the bridge names and runs this domain's AutoSys jobs."""

    job_prefix: str
    machine: str
    owner: str
    # Least privilege: the owner may do everything, its group may start and stop the jobs
    # (sendevent, for recovery); nobody else may edit or run them (docs/jil.md).
    permission: str = "gx"
    log_dir: str
    profile: str
    command: str = "autosys-bridge"
    # The AutoSys condition the box waits for besides its start time, typically the job that
    # loads its source: `s(FEED_CUSTOMERS_LOAD, 12.00)`. Parsed when the JIL is emitted (the
    # condition grammar lives with the JIL reader in autosys_bridge, which `validate` runs).
    condition: str | None = Field(default=None, min_length=1, max_length=4096)

    _check = _rules(
        machine="machine",
        owner="owner",
        log_dir="abs_path",
        profile="abs_path",
        command="command",
        permission="permission",
    )

    @field_validator("job_prefix")
    @classmethod
    def _job_prefix(cls, value: str) -> str:
        check_rule("autosys_name", value)
        longest = f"{value}{LONGEST_JOB_SUFFIX}"
        if len(longest) > MAX_JOB_NAME:
            raise ValueError(f"job name {longest} would be {len(longest)} characters; AutoSys allows {MAX_JOB_NAME}")
        return value


class Settings(_Model):
    """Settings shared by all domains."""

    region: str = "us-east-1"
    execution_timeout: int = Field(default=10800, gt=0, description="seconds before a matching job is abandoned")
    check_interval: int = Field(default=300, gt=0, description="cap on seconds between status polls")
    concurrency_pool: str = "entity_resolution"
    admin_emails: list[str] = Field(default_factory=list)
    role_arn: str = "arn:aws:iam::000000000000:role/entity-resolution"
    # Customer-managed key of the bucket, if any: the workflow encrypts its output with it
    # (OutputSource.KMSArn) and its role may use it (`autosys-bridge aws export`).
    kms_key_arn: str | None = Field(default=None, pattern=r"^arn:aws:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
    glue_database: str = "entity_resolution"
    autosys_resource: str = "ER_MATCHING_SLOT"
    autosys_calendar_prefix: str = "ER_"

    _check = _rules(
        admin_emails="email",
        region="region",
        concurrency_pool="pool",
        role_arn="role_arn",
        glue_database="glue_name",
        autosys_resource="autosys_name",
        autosys_calendar_prefix="calendar_prefix",
    )

    @model_validator(mode="after")
    def _interval(self) -> Settings:
        if self.check_interval > self.execution_timeout:
            raise ValueError("check_interval must not exceed execution_timeout")
        return self


class Domain(_Model):
    name: str = Field(json_schema_extra={"from_key": True})  # the domain's key in the file
    project_name: str
    bucket: str
    prefix: str
    workflow_name: str
    glue_table: str
    schema_: SchemaMapping = Field(alias="schema")
    resolution: ResolutionTechniques
    source: Source
    target: Target
    schedule: Schedule
    dq: DataQuality = DataQuality()
    identity: Identity = Identity()
    notifications: Notifications = Notifications()
    autosys: AutosysJob

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _check = _rules(
        name="domain",
        project_name="project",
        bucket="bucket",
        prefix="prefix",
        workflow_name="er_name",
        glue_table="identifier",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Domain:
        problems: list[tuple[tuple, str]] = []
        columns = set(self.schema_.columns)
        missing = [f for f in self.dq.required_fields if f not in columns]
        if missing:
            problems.append((("dq", "required_fields"), f"{missing} are not fields of the schema"))
        if self.source.partition_column in columns:
            problems.append(
                (
                    ("source", "partition_column"),
                    f"{self.source.partition_column!r} must not be a schema field (it is not sent to matching)",
                )
            )
        rules = self.resolution.ruleBasedProperties
        if rules is not None:
            keys = self.schema_.match_keys
            for index, rule in enumerate(rules.rules):
                unknown = [k for k in rule.matchingKeys if k not in keys]
                if unknown:
                    problems.append(
                        (
                            ("resolution", "ruleBasedProperties", "rules", index, "matchingKeys"),
                            f"rule {rule.ruleName!r} uses matching keys {unknown} that no schema field has",
                        )
                    )
        if problems:
            raise Problems(problems)
        return self

    @property
    def ml_matching(self) -> bool:
        return self.resolution.resolutionType == "ML_MATCHING"

    @property
    def schema(self) -> SchemaMapping:  # type: ignore[override]  # replaces pydantic's deprecated v1 classmethod
        return self.schema_

    @property
    def format_fields(self) -> list[tuple[str, str, str]]:
        """(field, attribute type, pattern) of every schema field whose values have a checkable format."""
        fields = [(f.fieldName, f.type, self.dq.format_of(f.type)) for f in self.schema_.mappedInputFields]
        return [(name, attr_type, pattern) for name, attr_type, pattern in fields if pattern]

    @property
    def profile_key(self) -> str:
        """A digest of what the extract profile measures (columns, unique id, required fields,
        format rules): an unchanged source slice reuses an earlier extract, profile included,
        only while the profile would still measure the same things."""
        import hashlib
        import json

        measured = [self.schema.columns, self.schema.unique_id, self.dq.required_fields, self.format_fields]
        return hashlib.sha256(json.dumps(measured).encode()).hexdigest()[:16]


class Configuration(_Model):
    path: Path
    settings: Settings
    domains: dict[str, Domain]

    def domain(self, name: str) -> Domain:
        try:
            return self.domains[name]
        except KeyError:
            raise ConfigError(f"Domain '{name}' not found in configuration ({self.path})") from None


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike | None = None) -> Configuration:
    """Read and validate the configuration file.

    Raises ConfigError listing every problem of the file, one per line, each naming
    file:line, the domain and the field."""
    path = config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = read_document(path, text)
    except SyntaxProblem as exc:
        raise ConfigError(str(exc)) from None
    unsafe = _unsafe_strings(document, document.data, (), set())
    errors = list(unsafe.values())
    if document.duplicates:
        # Which of two definitions was meant is the operator's call: judge neither.
        raise ConfigError("\n".join(document.duplicates + errors))
    raw = document.data
    if not isinstance(raw, dict):
        raise ConfigError("\n".join(errors + [document.error((), "expected a mapping with 'settings' and 'domains'")]))
    for key in raw:
        if key not in ("settings", "domains"):
            errors.append(document.error((key,), f"top level: {unknown_key(str(key), ['settings', 'domains'])}"))
    bodies = raw.get("domains")
    if not isinstance(bodies, dict) or not bodies:
        errors.append(
            document.error(("domains",), "domains: required: a non-empty mapping of domain names to their settings")
        )
        bodies = {}
    settings = _validated(document, Settings, ("settings",), raw.get("settings") or {}, "settings.", errors, unsafe)
    domains = {}
    for name, body in bodies.items():
        if not isinstance(body, dict):
            errors.append(document.error(("domains", name), f"domain '{name}': expected a mapping of keys to values"))
            continue
        if "name" in body:  # it would silently rename the domain
            errors.append(
                document.error(
                    ("domains", name, "name"),
                    f"domain '{name}': name: unknown key 'name'; a domain is named by its key",
                )
            )
            continue
        domain = _validated(
            document, Domain, ("domains", name), {"name": str(name), **body}, f"domain '{name}': ", errors, unsafe
        )
        if domain is not None:
            domains[name] = domain
    errors += _distinct(document, domains, ("autosys", "job_prefix"), lambda d: d.autosys.job_prefix.upper())
    errors += _distinct(document, domains, ("workflow_name",), lambda d: d.workflow_name)
    if errors:
        raise ConfigError("\n".join(dict.fromkeys(errors)))
    return Configuration(path=path, settings=settings, domains=domains)


def _validated(document: Document, model, base: tuple, data: dict, label: str, errors: list[str], unsafe: dict):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors += describe_errors(document, exc, model, base, label, set(unsafe))
        return None


def _unsafe_strings(document: Document, node: Any, location: tuple, seen: set[int]) -> dict[tuple, str]:
    """The one rule every string of the file obeys, keys included, wherever it goes:
    {location: error line}. A container met again through a YAML alias is judged once."""
    found: dict[tuple, str] = {}
    if isinstance(node, (dict, list)):
        if id(node) in seen:
            return found
        seen.add(id(node))
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = location + (key,)
        for text in (key, value):
            reason = unsafe_characters(text) if isinstance(text, str) else None
            if reason:
                found[here] = document.error(here, f"{_where(here)}: {reason}")
        found.update(_unsafe_strings(document, value, here, seen))
    return found


def _where(location: tuple) -> str:
    if len(location) >= 2 and location[0] == "domains":
        field = ".".join(str(p) for p in location[2:])
        return f"domain '{location[1]}'" + (f": {field}" if field else "")
    return ".".join(str(p) for p in location)


def _distinct(document: Document, domains: dict[str, Domain], field: tuple, key) -> list[str]:
    seen: dict[str, str] = {}
    errors = []
    for name, domain in domains.items():
        value = key(domain)
        if value in seen:
            errors.append(
                document.error(
                    ("domains", name) + field,
                    f"domain '{name}': {'.'.join(field)}: {value!r} is already used by "
                    f"domain '{seen[value]}'; it must differ between domains",
                )
            )
        seen.setdefault(value, name)
    return errors
