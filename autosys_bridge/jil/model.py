"""The JIL object model shared by the parser, the emitter, the graph and the drift check."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from autosys_bridge.jil.attributes import (
    CALENDAR_STATEMENTS,
    CONDITION_ATTRIBUTES,
    JOB_SUBCOMMANDS,
    normalise_job_type,
)
from autosys_bridge.jil.conditions import Condition


@dataclass(frozen=True)
class Attribute:
    name: str  # lower case
    value: str  # unquoted, `\:` unescaped (a command keeps its quotes: the shell sees them)
    line: int = 0  # 0 when the attribute was built, not read
    raw: str = field(default="", compare=False)  # as written in the file, for the linter


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str
    severity: str = "error"  # error: `jil` would reject it; warning: it loads, and may bite

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"

    def to_json(self) -> dict:
        return {"line": self.line, "severity": self.severity, "message": self.message}


@dataclass
class Statement:
    """One JIL statement: a subcommand line (`insert_job: NAME`) and the attributes after it."""

    subcommand: str  # insert_job, update_job, insert_resource, calendar, ...
    name: str
    line: int = 0
    end_line: int = 0
    attributes: list[Attribute] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)  # date rows of an autocal_asc calendar
    conditions: dict[str, Condition] = field(default_factory=dict)  # parsed condition attributes

    @property
    def is_job(self) -> bool:
        return self.subcommand in JOB_SUBCOMMANDS

    @property
    def is_calendar(self) -> bool:
        return self.subcommand in CALENDAR_STATEMENTS

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of an attribute; a repeated attribute gives its last value, as in AutoSys."""
        for attribute in reversed(self.attributes):
            if attribute.name == name:
                return attribute.value
        return default

    def values(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) attribute, in order."""
        return [a.value for a in self.attributes if a.name == name]

    @property
    def job_type(self) -> str | None:
        """The normalised job type; an insert_job without one is a CMD job, as in AutoSys."""
        value = self.get("job_type")
        if value is not None:
            return normalise_job_type(value)
        return "CMD" if self.subcommand == "insert_job" else None

    @property
    def box_name(self) -> str | None:
        return self.get("box_name") or None

    def add(self, name: str, value: str, line: int = 0, raw: str = "") -> None:
        self.attributes.append(Attribute(name, value, line, raw))

    def to_json(self) -> dict:
        body = {
            "subcommand": self.subcommand,
            "name": self.name,
            "line": self.line,
            "end_line": self.end_line,
            "attributes": [{"name": a.name, "value": a.value, "line": a.line} for a in self.attributes],
        }
        if self.is_job:
            body["job_type"] = self.job_type
            body["box_name"] = self.box_name
            body["conditions"] = {name: tree.to_json() for name, tree in self.conditions.items()}
        if self.dates:
            body["dates"] = list(self.dates)
        return body


@dataclass
class JilFile:
    path: str
    statements: list[Statement] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def jobs(self) -> list[Statement]:
        return [s for s in self.statements if s.is_job]

    def effective_jobs(self) -> dict[str, Statement]:
        """The job definitions the file leaves behind when `jil` runs it top to bottom.

        insert_job defines, update_job/override_job change attributes (the last value of a
        single-valued attribute wins), delete_job and delete_box remove, rename_job renames.
        Conditions of the survivors are re-attached from the statements that set them.
        """
        jobs: dict[str, Statement] = {}
        for statement in self.jobs:
            name = statement.name
            if statement.subcommand == "insert_job":
                jobs[name] = _copy(statement)
            elif statement.subcommand in ("update_job", "override_job") and name in jobs:
                jobs[name] = _merged(jobs[name], statement)
            elif statement.subcommand == "delete_job":
                jobs.pop(name, None)
            elif statement.subcommand == "delete_box":
                members = _box_members(jobs, name)
                for member in members | {name}:
                    jobs.pop(member, None)
            elif statement.subcommand == "rename_job" and name in jobs and (new_name := statement.get("new_name")):
                renamed = _copy(jobs.pop(name))
                renamed.name = new_name
                jobs[renamed.name] = renamed
        return jobs

    def to_json(self) -> dict:
        return {
            "file": self.path,
            "statements": [s.to_json() for s in self.statements],
            "problems": [p.to_json() for p in self.problems],
        }


def _copy(statement: Statement) -> Statement:
    return Statement(
        statement.subcommand,
        statement.name,
        statement.line,
        statement.end_line,
        list(statement.attributes),
        list(statement.dates),
        dict(statement.conditions),
    )


def _merged(base: Statement, update: Statement) -> Statement:
    changed = {a.name for a in update.attributes}
    merged = _copy(base)
    merged.attributes = [a for a in base.attributes if a.name not in changed] + list(update.attributes)
    for name in CONDITION_ATTRIBUTES:
        if name in changed:
            merged.conditions.pop(name, None)
            if name in update.conditions:
                merged.conditions[name] = update.conditions[name]
    return merged


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a whole file is parsed or linted.

    A 10,000-job file makes a few hundred thousand small objects (attributes, condition trees,
    statement copies) and no reference cycles; as they pile up the collector walks all of them
    again and again, finding nothing: a third of the parse and lint time. Reference counting
    still frees every object as usual; the collector is switched back on afterwards, unless
    someone else had switched it off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _box_members(jobs: dict[str, Statement], box: str) -> set[str]:
    """Every job inside `box`, nested boxes included (delete_box removes them all)."""
    members, frontier = set(), {box}
    while frontier:
        inside = {name for name, job in jobs.items() if job.box_name in frontier and name not in members}
        members |= inside
        frontier = inside
    return members
