"""The domain configuration: one validated file from which everything else is derived.

Partitions, schedules, asset checks, JIL and notifications all come from the models here.
Errors name the file, the domain and the field, so an operator can fix them without a
traceback. This module imports only pydantic and PyYAML: the CLI start-up path reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV_VAR = "ER_CONFIG"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("domains.yaml")

# AWS Entity Resolution attribute types (SchemaInputAttribute.type).
ATTRIBUTE_TYPES = frozenset(
    {
        "NAME", "NAME_FIRST", "NAME_MIDDLE", "NAME_LAST", "ADDRESS", "ADDRESS_STREET1",
        "ADDRESS_STREET2", "ADDRESS_STREET3", "ADDRESS_CITY", "ADDRESS_STATE", "ADDRESS_COUNTRY",
        "ADDRESS_POSTALCODE", "PHONE", "PHONE_NUMBER", "PHONE_COUNTRYCODE", "EMAIL_ADDRESS",
        "UNIQUE_ID", "DATE", "STRING", "PROVIDER_ID", "IPV4", "IPV6", "MAID",
    }
)
# Output names the service reserves for itself.
RESERVED_OUTPUT_NAMES = frozenset(
    {"EmailAddress", "InputSourceARN", "MatchRule", "MatchID", "HashingProtocol", "ConfidenceLevel", "Source"}
)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
ER_NAME = re.compile(r"^[a-zA-Z_0-9-]{1,255}$")  # workflow and schema names, as the service allows
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

# Data-quality checks by stage; `dq.severity` may name any of them.
CHECK_NAMES = {
    "extract": ("source_schema", "min_records", "required_fields", "unique_ids", "value_formats",
                "record_count_anomaly"),
    "matched": ("match_rate", "no_data_loss", "match_rate_baseline", "min_confidence", "confidence_baseline"),
    "loaded": ("row_count", "no_duplicate_ids", "match_ids_assigned"),
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


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (letters, digits, underscore)")
    return value


class SchemaField(_Model):
    """One `mappedInputFields` entry of an AWS schema mapping."""

    fieldName: str
    type: str
    groupName: str | None = None
    matchKey: str | None = None
    subType: str | None = None
    hashed: bool = False

    _check_name = field_validator("fieldName")(classmethod(lambda cls, v: _identifier(v)))

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ATTRIBUTE_TYPES:
            raise ValueError(f"unknown attribute type {value!r}; expected one of {sorted(ATTRIBUTE_TYPES)}")
        return value


class SchemaMapping(_Model):
    """The AWS `get_schema_mapping` shape, minus the service-managed fields."""

    schemaName: str
    mappedInputFields: list[SchemaField] = Field(min_length=2, max_length=35)

    @field_validator("schemaName")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ER_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid schema name ([a-zA-Z_0-9-], at most 255)")
        return value

    @model_validator(mode="after")
    def _one_unique_id(self) -> "SchemaMapping":
        ids = [f.fieldName for f in self.mappedInputFields if f.type == "UNIQUE_ID"]
        if len(ids) != 1:
            raise ValueError(f"exactly one UNIQUE_ID field is required, found {len(ids)}")
        names = [f.fieldName for f in self.mappedInputFields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        reserved = sorted(set(names) & RESERVED_OUTPUT_NAMES)
        if reserved:
            raise ValueError(f"field names {reserved} are reserved for the service's own output columns")
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


class RuleBasedProperties(_Model):
    rules: list[Rule] = Field(min_length=1, max_length=25)
    attributeMatchingModel: Literal["ONE_TO_ONE", "MANY_TO_MANY"] = "ONE_TO_ONE"
    matchPurpose: Literal["IDENTIFIER_GENERATION", "INDEXING"] = "IDENTIFIER_GENERATION"


class RuleCondition(_Model):
    ruleName: str = Field(min_length=1, max_length=255)
    condition: str = Field(min_length=1, max_length=4096)


class RuleConditionProperties(_Model):
    rules: list[RuleCondition] = Field(min_length=1, max_length=25)


class ResolutionTechniques(_Model):
    """The AWS `resolutionTechniques` shape: rule-based techniques, or ML_MATCHING (no rules:
    the schema's attribute types and match keys drive the model)."""

    resolutionType: Literal["RULE_MATCHING", "ML_MATCHING"] = "RULE_MATCHING"
    ruleBasedProperties: RuleBasedProperties | None = None
    ruleConditionProperties: RuleConditionProperties | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "ResolutionTechniques":
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

    _check = field_validator("table", "partition_column")(classmethod(lambda cls, v: _identifier(v)))


class Target(_Model):
    table: str

    _check = field_validator("table")(classmethod(lambda cls, v: _identifier(v)))


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
    def _cadence_fields(self) -> "Schedule":
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
    max_invalid_format_rate: float = Field(default=5.0, ge=0, le=100, description="percent of non-empty values per field")
    value_formats: dict[str, str] = Field(default_factory=dict, description="regex per attribute type, over the defaults")
    severity: dict[str, Literal["ERROR", "WARN"]] = Field(default_factory=dict, description="per check; default ERROR")
    anomaly: Anomaly = Anomaly()
    min_confidence: MinConfidence = MinConfidence()

    @model_validator(mode="after")
    def _range(self) -> "DataQuality":
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


def _emails(values: list[str]) -> list[str]:
    for value in values:
        if not EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
    return values


class Notifications(_Model):
    emails: list[str] = Field(default_factory=list, description="domain team: failures and final success")
    on_failure: list[str] = Field(default_factory=list, description="extra recipients of failures only")
    on_success: list[str] = Field(default_factory=list, description="extra recipients of the final success only")

    _check = field_validator("emails", "on_failure", "on_success")(classmethod(lambda cls, v: _emails(v)))


class AutosysJob(_Model):
    """How the bridge names and runs this domain's AutoSys jobs."""

    job_prefix: str = Field(pattern=r"^[A-Za-z0-9._#-]{1,50}$")
    machine: str
    owner: str
    permission: str = "gx,ge,wx,we"
    log_dir: str
    profile: str
    command: str = "autosys-bridge"


class Settings(_Model):
    """Settings shared by all domains."""

    region: str = "us-east-1"
    execution_timeout: int = Field(default=10800, gt=0, description="seconds before a matching job is abandoned")
    check_interval: int = Field(default=300, gt=0, description="cap on seconds between status polls")
    concurrency_pool: str = "entity_resolution"
    admin_emails: list[str] = Field(default_factory=list)
    role_arn: str = "arn:aws:iam::000000000000:role/entity-resolution"
    glue_database: str = "entity_resolution"
    autosys_resource: str = "ER_MATCHING_SLOT"
    autosys_calendar_prefix: str = "ER_"

    _check = field_validator("admin_emails")(classmethod(lambda cls, v: _emails(v)))

    @model_validator(mode="after")
    def _interval(self) -> "Settings":
        if self.check_interval > self.execution_timeout:
            raise ValueError("check_interval must not exceed execution_timeout")
        return self


class Domain(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    project_name: str
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(pattern=r"^[A-Za-z0-9._/-]+[^/]$")
    workflow_name: str = Field(pattern=ER_NAME.pattern)
    glue_table: str
    schema_: SchemaMapping = Field(alias="schema")
    resolution: ResolutionTechniques
    source: Source
    target: Target
    schedule: Schedule
    dq: DataQuality = DataQuality()
    notifications: Notifications = Notifications()
    autosys: AutosysJob

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _check = field_validator("glue_table")(classmethod(lambda cls, v: _identifier(v)))

    @model_validator(mode="after")
    def _cross_field(self) -> "Domain":
        columns = set(self.schema_.columns)
        missing = [f for f in self.dq.required_fields if f not in columns]
        if missing:
            raise ValueError(f"dq.required_fields {missing} are not fields of the schema")
        if self.source.partition_column in columns:
            raise ValueError("source.partition_column must not be a schema field (it is not sent to matching)")
        rules = self.resolution.ruleBasedProperties
        if rules is not None:
            keys = self.schema_.match_keys
            for rule in rules.rules:
                unknown = [k for k in rule.matchingKeys if k not in keys]
                if unknown:
                    raise ValueError(f"rule {rule.ruleName!r} uses matching keys {unknown} that no schema field has")
        return self

    @property
    def ml_matching(self) -> bool:
        return self.resolution.resolutionType == "ML_MATCHING"

    @property
    def schema(self) -> SchemaMapping:  # noqa: D401 - the field is aliased to dodge BaseModel.schema
        return self.schema_

    @property
    def format_fields(self) -> list[tuple[str, str, str]]:
        """(field, attribute type, pattern) of every schema field whose values have a checkable format."""
        fields = [(f.fieldName, f.type, self.dq.format_of(f.type)) for f in self.schema_.mappedInputFields]
        return [(name, attr_type, pattern) for name, attr_type, pattern in fields if pattern]

    @property
    def extract_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/extract"

    @property
    def output_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/output"

    def partition_prefix(self, partition_key: str) -> str:
        return f"{self.extract_prefix}/partition={partition_key}/"

    def extract_uri(self, partition_key: str, run_id: str) -> str:
        """Where one run's extract of a partition goes. Every run writes its own prefix, so
        an extract that fails halfway never mixes files into the one the last checked
        materialisation points at (S3 has no atomic rename)."""
        return f"{self.partition_prefix(partition_key)}run={run_id}/"


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


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def load_config(path: str | os.PathLike | None = None) -> Configuration:
    """Read and validate the configuration file; raise ConfigError with file/domain/field."""
    path = config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("domains"), dict) or not raw["domains"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'domains' mapping")
    unknown = set(raw) - {"settings", "domains"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}")
    try:
        settings = Settings.model_validate(raw.get("settings") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{path}: settings.{_location(err)}: {err['msg']}") from None
    domains = {}
    for name, body in raw["domains"].items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: domain '{name}': expected a mapping")
        try:
            domains[name] = Domain.model_validate({"name": name, **body})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = _location(err)
            raise ConfigError(f"{path}: domain '{name}': {field}: {err['msg']}") from None
    prefixes = [d.autosys.job_prefix.upper() for d in domains.values()]
    if len(set(prefixes)) != len(prefixes):
        raise ConfigError(f"{path}: autosys.job_prefix must differ between domains")
    workflows = [d.workflow_name for d in domains.values()]
    if len(set(workflows)) != len(workflows):
        raise ConfigError(f"{path}: workflow_name must differ between domains")
    return Configuration(path=path, settings=settings, domains=domains)
