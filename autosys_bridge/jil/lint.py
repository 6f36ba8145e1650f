"""`autosys-bridge lint`: what AE's `jil` would reject, and what loads but bites in production.

Errors are what `jil` refuses (checked against the AE 12 JIL reference as summarised in
`attributes.py` and the project's checked facts): lines it cannot read, unknown attributes,
values outside their rules (`JIL_RULES`), unquoted times, duplicate `insert_job`, a CMD job
without a command or a BOX with one, an attribute its job's type does not accept
(`ATTRIBUTE_JOB_TYPES`; an `update_job` is judged by the type the job was inserted with),
attributes that exclude each other (`EXCLUSIVE_ATTRIBUTES`, absolute `must_start_times`), a box
inside itself, `box_name` naming a job that is not a box, a condition on the job itself or on a
box it sits in.

Warnings are what loads and then bites: condition cycles (none of the jobs can start),
references to jobs or globals defined in none of the files given (a job defined in another
file is a warning, not an error), conditions on jobs outside the box without a look-back (they
are satisfied by a success from any earlier day), jobs that nothing starts, and permissions
that let every user run or edit a job.

Several files are linted together, as `jil` would load them one after the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autosys_bridge.jil.attributes import (
    ABSOLUTE_MUST_START_NEEDS,
    ATTRIBUTE_JOB_TYPES,
    ATTRIBUTES_NOT_FOR,
    EXCLUSIVE_ATTRIBUTES,
    JIL_RULES,
    JOB_NAME,
    TIME_ATTRIBUTES,
    absolute_deadline,
    normalise_job_type,
    timezone_problem,
)
from autosys_bridge.jil.conditions import ExitCodeAtom, StatusAtom, ValueAtom, atoms
from autosys_bridge.jil.emitter import DATE_GLOBAL, DOMAIN_GLOBAL
from autosys_bridge.jil.model import Attribute, JilFile, Problem, Statement, collector_paused

ERROR, WARNING = "error", "warning"
_GLOBAL_REFERENCE = re.compile(r"\$\$\{?([A-Za-z_][A-Za-z0-9_.#-]*)")
_UNESCAPED_COLON = re.compile(r"(?<!\\):")
_TRUE = {"1", "y", "yes", "true"}
# Status atoms satisfied by a completion from any earlier day unless they have a look-back.
_STALE = {"success", "done", "failure", "terminated"}
_WORLD = {"wx": "run", "we": "edit"}
_GLOBAL_STATEMENTS = {"insert_glob", "insert_global"}
_CHANGES = ("update_job", "override_job")
_TYPED_STATEMENTS = frozenset({"insert_job", *_CHANGES})
# The attributes the schedule rules look at (a job's value of each, when it has one).
_SCHEDULE = frozenset(
    {name for first, second, _ in EXCLUSIVE_ATTRIBUTES for name in (first, second)}
    | {"must_start_times", *ABSOLUTE_MUST_START_NEEDS}
)
# What the job rules look at, one dict lookup per attribute: the job_type itself, attributes valid
# for some job types only, schedule attributes (the last two kinds may overlap).
_JOB_TYPE, _TYPED, _TIMED = 1, 2, 4
_WATCHED: dict[str, int] = {
    "job_type": _JOB_TYPE,
    **{
        name: (_TYPED if name in ATTRIBUTE_JOB_TYPES else 0) | (_TIMED if name in _SCHEDULE else 0)
        for name in (*ATTRIBUTE_JOB_TYPES, *_SCHEDULE)
    },
}


# The bridge's own globals, set by the documented on-demand procedure (docs/on-demand.md).
BRIDGE_GLOBALS = frozenset({DOMAIN_GLOBAL, DATE_GLOBAL})


@dataclass
class Options:
    globals: frozenset[str] = frozenset()  # set with sendevent -E SET_GLOBAL, not in any file
    timezones: frozenset[str] = frozenset()  # the site's own timezone table entries


@dataclass
class _Job:
    path: str
    statement: Statement
    boxes: list[str] = field(default_factory=list)  # enclosing boxes, innermost first


def lint(files: list[JilFile], options: Options | None = None) -> list[Problem]:
    """Every problem of the files, as `jil` would load them in this order, sorted per file."""
    options = options or Options()
    problems = [p for f in files for p in f.problems]
    with collector_paused():
        types: dict[str, str | None] = {}  # job -> its type, as the statements so far leave it
        for jil_file in files:
            for statement in jil_file.statements:
                problems += _values(jil_file.path, statement, options, types)
        problems += _structure(files, options)
    order = {f.path: i for i, f in enumerate(files)}
    unique = dict.fromkeys(problems)  # a problem found twice is reported once
    return sorted(unique, key=lambda p: (order.get(p.path, 0), p.line, p.severity, p.message))


def _problem(path: str, line: int, severity: str, message: str) -> Problem:
    return Problem(path, line, message, severity)


def _values(path: str, statement: Statement, options: Options, types: dict[str, str | None]) -> list[Problem]:
    found = []
    # For the job rules, gathered in the same pass: the job_type (its last value), the
    # attributes valid for some job types only, the schedule attributes.
    subcommand = statement.subcommand
    judged = subcommand in _TYPED_STATEMENTS
    given: str | None = None
    typed: dict[str, Attribute] = {}
    schedule: dict[str, Attribute] = {}
    for attribute in statement.attributes:
        name, value, line = attribute.name, attribute.value, attribute.line
        if judged and (kind := _WATCHED.get(name)) is not None:
            if kind & _JOB_TYPE:
                given = value
            else:
                # The last value of an attribute is the one AutoSys keeps.
                if kind & _TYPED:
                    typed[name] = attribute
                if kind & _TIMED and value:
                    schedule[name] = attribute
        if name == "timezone":
            reason = timezone_problem(value, options.timezones)
        else:
            check = JIL_RULES.get(name)
            reason = check(value) if check is not None else None
        if reason is not None:
            found.append(_problem(path, line, ERROR, f"{name} {value!r}: {reason}"))
        if name in TIME_ATTRIBUTES and _unquoted_colon(attribute.raw):
            found.append(_problem(path, line, ERROR, f'{name}: times must be quoted: {name}: "{value}"'))
        if name == "permission":
            codes = {p.strip().lower() for p in value.split(",")}
            for code, right in _WORLD.items():
                if code in codes:
                    found.append(
                        _problem(
                            path,
                            line,
                            WARNING,
                            f"permission '{code}' lets every user of the instance {right} {statement.name}",
                        )
                    )
    if judged:
        # The job's type: an update_job/override_job is judged by the type the job was inserted
        # with (in these files); a job none of them inserts has no known type.
        job_type: str | None
        if given is not None:
            job_type = normalise_job_type(given)
            if subcommand != "override_job":
                types[statement.name] = job_type
        elif subcommand == "insert_job":
            job_type = types[statement.name] = "CMD"  # AE 12's default type
        else:
            job_type = types.get(statement.name)
        not_for = ATTRIBUTES_NOT_FOR.get(job_type) if typed and job_type is not None else None
        if schedule or (not_for and not not_for.isdisjoint(typed)):
            found += _job_rules(path, subcommand, job_type, not_for, typed, schedule)
    elif subcommand in ("delete_job", "delete_box"):
        types.pop(statement.name, None)
    elif subcommand == "rename_job" and statement.name in types and (new := statement.get("new_name")):
        types[new] = types.pop(statement.name)
    return found


def _job_rules(
    path: str,
    subcommand: str,
    job_type: str | None,
    not_for: frozenset[str] | None,
    typed: dict[str, Attribute],
    schedule: dict[str, Attribute],
) -> list[Problem]:
    """Attributes the job's type does not accept (`not_for`, None when its type is unknown or
    not checked), and schedule attributes that exclude each other within the statement."""
    found = []
    if not_for:
        for attr, attribute in typed.items():
            # A BOX with a command has its own message (_command_rule).
            if attr in not_for and not (attr == "command" and job_type == "BOX"):
                message = f"{attr} does not apply to a {job_type} job (it applies to {ATTRIBUTE_JOB_TYPES[attr][1]})"
                found.append(_problem(path, attribute.line, ERROR, message))
    if schedule:
        # An update_job carries only what changes: what its absolute must_start_times needs may
        # be in the job already (the merged job is judged in _structure).
        found += _schedule_rules(path, schedule, whole=subcommand == "insert_job")
    return found


def _schedule_rules(path: str, schedule: dict[str, Attribute], whole: bool) -> list[Problem]:
    """Exclusive schedule attributes, reported on the line of the later one; with `whole` (the
    attributes of a complete job) also what an absolute must_start_times needs."""
    found = []
    for first, second, why in EXCLUSIVE_ATTRIBUTES:
        if first in schedule and second in schedule:
            line = max(schedule[first].line, schedule[second].line)
            found.append(_problem(path, line, ERROR, f"{first} and {second} exclude each other ({why})"))
    must = schedule.get("must_start_times")
    if must is not None and absolute_deadline(must.value):
        start_mins = schedule.get("start_mins")
        if start_mins is not None:
            found.append(
                _problem(
                    path,
                    max(must.line, start_mins.line),
                    ERROR,
                    f"must_start_times {must.value!r}: absolute times and start_mins exclude each other "
                    "(with start_mins, write +minutes)",
                )
            )
        elif whole and (missing := [n for n in ABSOLUTE_MUST_START_NEEDS if n not in schedule]):
            found.append(
                _problem(
                    path,
                    must.line,
                    ERROR,
                    f"must_start_times {must.value!r}: absolute times need {' and '.join(missing)} "
                    "in the job (or write +minutes)",
                )
            )
    return found


def _unquoted_colon(raw: str) -> bool:
    text = raw.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return False
    return bool(_UNESCAPED_COLON.search(text))


def _structure(files: list[JilFile], options: Options) -> list[Problem]:
    found: list[Problem] = []
    jobs: dict[str, _Job] = {}
    defined_globals = set(options.globals | BRIDGE_GLOBALS)
    for jil_file in files:
        inserted: dict[str, int] = {}
        for statement in jil_file.statements:
            if statement.subcommand in _GLOBAL_STATEMENTS:
                defined_globals.add(statement.name)
            if statement.subcommand in ("delete_job", "delete_box"):
                inserted.pop(statement.name, None)
            if statement.subcommand != "insert_job":
                continue
            previous = jobs.get(statement.name)
            if statement.name in inserted:
                found.append(
                    _problem(
                        jil_file.path,
                        statement.line,
                        ERROR,
                        f"insert_job {statement.name}: already inserted at line "
                        f"{inserted[statement.name]} (use update_job to change it)",
                    )
                )
            elif previous is not None:
                found.append(
                    _problem(
                        jil_file.path,
                        statement.line,
                        WARNING,
                        f"insert_job {statement.name}: also inserted in {previous.path} "
                        f"line {previous.statement.line}; the second insert fails",
                    )
                )
            inserted[statement.name] = statement.line
        effective = jil_file.effective_jobs()
        changed = {s.name for s in jil_file.statements if s.subcommand in _CHANGES}
        # Judged on the job the file leaves behind: an update_job may add the command, or a
        # schedule attribute that excludes one the job already has.
        for statement in effective.values():
            if statement.subcommand == "insert_job":
                found += _command_rule(jil_file.path, statement)
                if statement.name in changed:
                    found += _schedule_rules(jil_file.path, _schedule_of(statement), whole=True)
        # A job this file deletes is gone for the files after it too.
        for statement in jil_file.statements:
            if statement.subcommand in ("delete_job", "delete_box") and statement.name not in effective:
                jobs.pop(statement.name, None)
        jobs.update((name, _Job(jil_file.path, job)) for name, job in effective.items())
    found += _boxes(jobs)  # also fills in each job's enclosing boxes, which the rest use
    found += _conditions(jobs, defined_globals)
    found += _not_started(jobs)
    return found


def _schedule_of(statement: Statement) -> dict[str, Attribute]:
    return {a.name: a for a in statement.attributes if a.name in _SCHEDULE and a.value}


def _command_rule(path: str, statement: Statement) -> list[Problem]:
    job_type = statement.job_type
    command = statement.get("command")
    if job_type == "CMD" and not (command or "").strip():
        return [_problem(path, statement.line, ERROR, f"CMD job {statement.name} has no command")]
    if job_type == "BOX" and command is not None:
        line = next(a.line for a in statement.attributes if a.name == "command")
        return [_problem(path, line, ERROR, f"BOX {statement.name} cannot have a command (a box runs none)")]
    return []


def _attribute_line(job: _Job, name: str) -> int:
    """The line of the attribute's last occurrence (the one AutoSys keeps), else the job's."""
    for attribute in reversed(job.statement.attributes):
        if attribute.name == name:
            return attribute.line
    return job.statement.line


def _boxes(jobs: dict[str, _Job]) -> list[Problem]:
    found = []
    for name, job in jobs.items():
        own_box = box = job.statement.box_name
        seen = [name]
        while box is not None:
            # The box_name line is looked up only for a problem: a scan of the job's attributes.
            if box in seen:
                chain = " -> ".join([*seen, box])
                found.append(_problem(job.path, _attribute_line(job, "box_name"), ERROR, f"box inside itself: {chain}"))
                job.boxes = []
                break
            container = jobs.get(box)
            if container is None:
                if box == own_box and JOB_NAME.match(box):
                    found.append(
                        _problem(
                            job.path,
                            _attribute_line(job, "box_name"),
                            WARNING,
                            f"box_name {box}: defined in none of the files given",
                        )
                    )
                break
            if container.statement.job_type != "BOX":
                if box == own_box:
                    found.append(
                        _problem(
                            job.path,
                            _attribute_line(job, "box_name"),
                            ERROR,
                            f"box_name {box}: {box} is a {container.statement.job_type} job, not a BOX",
                        )
                    )
                break
            job.boxes.append(box)
            seen.append(box)
            box = container.statement.box_name
    return found


def _conditions(jobs: dict[str, _Job], defined_globals: set[str]) -> list[Problem]:
    found = []
    edges: dict[str, list[str]] = {}
    undefined: dict[tuple[str, str], int] = {}  # (file, global) -> first line using it
    for name, job in jobs.items():
        statement = job.statement
        for attribute, condition in statement.conditions.items():
            line = _attribute_line(job, attribute)
            for atom in atoms(condition):
                if isinstance(atom, ValueAtom):
                    undefined.setdefault((job.path, atom.variable), line)
                    continue
                found += _job_reference(jobs, job, name, attribute, line, atom)
                if attribute == "condition" and atom.job.instance is None and atom.job.name != name:
                    edges.setdefault(name, []).append(atom.job.name)  # a self-wait is an error
        for attr in statement.attributes:
            if "$$" not in attr.value:
                continue  # every reference starts with $$: a substring test spares most values the regex
            for variable in _GLOBAL_REFERENCE.findall(attr.value):
                undefined.setdefault((job.path, variable), attr.line)
    for (path, variable), line in undefined.items():
        if variable not in defined_globals:
            found.append(
                _problem(
                    path,
                    line,
                    WARNING,
                    f"global {variable} is defined in none of the files given (set it with "
                    f'sendevent -E SET_GLOBAL -G "{variable}=..."; declare it with '
                    f"--global {variable})",
                )
            )
    found += _cycles(jobs, edges)
    return found


def _job_reference(jobs: dict[str, _Job], job: _Job, name: str, attribute: str, line: int, atom) -> list[Problem]:
    target = atom.job.name
    if atom.job.instance is not None:
        return []  # another AutoSys instance's job: nothing here can know it
    if target == name:
        return [_problem(job.path, line, ERROR, f"{attribute} of {name} waits for {name} itself")]
    if attribute == "condition" and target in job.boxes:
        return [
            _problem(
                job.path,
                line,
                ERROR,
                f"condition of {name} waits for its own box {target}, which is running while {name} waits",
            )
        ]
    if target not in jobs:
        return [
            _problem(
                job.path,
                line,
                WARNING,
                f"{attribute} of {name} refers to {target}, defined in none of the files given",
            )
        ]
    other = jobs[target]
    top = job.boxes[-1] if job.boxes else None
    other_top = (other.boxes or [target])[-1]
    stale = (isinstance(atom, StatusAtom) and atom.status in _STALE) or isinstance(atom, ExitCodeAtom)
    if (
        attribute != "condition"
        or top is None
        or other_top == top
        or not stale
        or getattr(atom, "lookback", None) is not None
    ):
        return []
    fix = (
        f"add a look-back: {atom.code}({target},24)"
        if isinstance(atom, StatusAtom)
        else f"a run of {target} from any earlier day sets it"
    )
    message = (
        f"{atom.to_jil()} in {name}: {target} is outside box {top}, so its last completion, "
        f"however old, satisfies this; {fix}"
    )
    return [_problem(job.path, line, WARNING, message)]


def _cycles(jobs: dict[str, _Job], edges: dict[str, list[str]]) -> list[Problem]:
    """Condition cycles among the jobs: each reported once, at its first job's condition.

    A depth-first search with its own stack: an estate's chain of conditions may be thousands
    of jobs long, deeper than Python's recursion limit."""
    found, state, reported = [], {}, set()

    def report(cycle: list[str]) -> None:
        key = frozenset(cycle)
        if key in reported:
            return
        reported.add(key)
        first = min(cycle)
        job = jobs[first]
        start = cycle.index(first)
        ring = cycle[start:] + cycle[:start] + [first]
        found.append(
            _problem(
                job.path,
                _attribute_line(job, "condition"),
                WARNING,
                f"condition cycle {' -> '.join(ring)}: none of these jobs can start",
            )
        )

    for root in sorted(edges):
        if root in state:
            continue
        state[root] = "open"
        path, pending = [root], [iter(edges.get(root, []))]
        while pending:
            for target in pending[-1]:
                if target not in jobs:
                    continue
                if state.get(target) == "open":
                    report(path[path.index(target) :])
                elif target not in state:
                    state[target] = "open"
                    path.append(target)
                    pending.append(iter(edges.get(target, [])))
                    break  # go deeper; this job's other targets resume afterwards
            else:
                state[path.pop()] = "done"
                pending.pop()
    return found


def _not_started(jobs: dict[str, _Job]) -> list[Problem]:
    found = []
    for name, job in jobs.items():
        statement = job.statement
        if statement.box_name or statement.get("condition"):
            continue  # its box or its condition starts it
        date_conditions = statement.get("date_conditions")
        if date_conditions is not None and date_conditions.lower() in _TRUE:
            if not (statement.get("start_times") or statement.get("start_mins")):
                found.append(
                    _problem(
                        job.path,
                        statement.line,
                        WARNING,
                        f"{name} has date_conditions but no start_times or start_mins: nothing starts it",
                    )
                )
        elif date_conditions is None:
            # An explicit `date_conditions: 0` says "started by hand"; silence says nothing.
            found.append(
                _problem(
                    job.path,
                    statement.line,
                    WARNING,
                    f"{name} has no schedule, no condition and no box: nothing starts it "
                    "(write date_conditions: 0 if it is started by hand)",
                )
            )
    return found
