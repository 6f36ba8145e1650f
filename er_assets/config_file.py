"""Reading the configuration file so that every error can name its file and line.

`read_document` parses YAML (JSON is read the same way: it is YAML's flow syntax) into plain
data plus the line of every key and list item, and refuses duplicate keys at any level, which
PyYAML would otherwise resolve silently by keeping the last one. `describe_errors` turns
pydantic's validation errors into one plain line each: file:line, domain, field (list items
by their rule or field name, not their index), the bad value and the rule it breaks.
Imports only PyYAML, pydantic and the standard library: the CLI start-up path reads it.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Location = tuple  # a path into the document: keys and list indices


class Problems(ValueError):
    """Several problems found by one cross-field validator, each at its own field:
    `problems` is a list of (location relative to the validated model, message)."""

    def __init__(self, problems: list[tuple[Location, str]]):
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class Document:
    """A parsed configuration file: its data and the line of every key and item."""

    def __init__(self, path: Path, data: Any, lines: dict[Location, int], duplicates: list[str]):
        self.path, self.data, self.lines, self.duplicates = path, data, lines, duplicates

    def line(self, location: Location) -> int:
        """The line of the deepest part of `location` the file has (a missing key: its parent)."""
        for end in range(len(location), 0, -1):
            if location[:end] in self.lines:
                return self.lines[location[:end]]
        return 1

    def error(self, location: Location, message: str) -> str:
        return f"{self.path}:{self.line(location)}: {message}"

    def value(self, location: Location) -> Any:
        node = self.data
        for part in location:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node


class SyntaxProblem(Exception):
    """The file is not YAML (or JSON); the message names file, line and column."""


# libyaml's parser when PyYAML was built with it (ten times faster), the same marks either way.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_document(path: Path, text: str) -> Document:
    kind = "JSON" if path.suffix == ".json" else "YAML"
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Location, int] = {}
        duplicates: list[str] = []
        if node is not None:
            _walk(node, (), lines, duplicates, path, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        column = f" (column {mark.column + 1})" if mark else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        source = text.splitlines()
        if mark and mark.line < len(source) and "\t" in source[mark.line][: mark.column + 1]:
            problem += "; YAML indents with spaces, never tabs"
        raise SyntaxProblem(f"{path}{line}: not valid {kind}: {problem}{column}") from None
    except yaml.YAMLError as exc:
        raise SyntaxProblem(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    return Document(path, data, lines, duplicates)


def _walk(node, location: Location, lines: dict, duplicates: list, path: Path, seen: set[int]) -> None:
    if id(node) in seen:
        return  # an alias (`*anchor`) of a node already walked: once is enough, and ends cycles
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys are merged by the constructor, later keys winning
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first:
                where = ".".join(str(p) for p in location) or "the top level"
                duplicates.append(
                    f"{path}:{line}: duplicate key {key!r} in {where} "
                    f"(first defined on line {first[key]}); each key may appear once"
                )
            first.setdefault(key, line)
            lines[location + (key,)] = line
            _walk(value_node, location + (key,), lines, duplicates, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[location + (index,)] = item.start_mark.line + 1
            _walk(item, location + (index,), lines, duplicates, path, seen)


# ---- validation errors in plain words ----------------------------------------------------


def describe_errors(
    document: Document,
    exc: ValidationError,
    model: type[BaseModel],
    base: Location,
    label: str,
    reported: Collection[Location] = frozenset(),
) -> list[str]:
    """One line per error of validating `document.value(base)` as `model`.

    `label` says where the model sits ("domain 'customers': " or "settings."); errors of a
    field holding a `reported` location (a string already refused) are left out."""

    def known(loc: Location) -> bool:
        return bool(loc) and any(place[: len(base) + len(loc)] == base + loc for place in reported)

    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            lines += [
                _line(document, base, loc + tuple(sub), label, message)
                for sub, message in cause.problems
                if not known(loc + tuple(sub))
            ]
        elif not known(loc):
            lines.append(_line(document, base, loc, label, _message(error, model, loc)))
    return lines


def _line(document: Document, base: Location, loc: Location, label: str, message: str) -> str:
    field = _field_name(document, base, loc)
    where = f"{label}{field}" if field else label.rstrip(". :")
    return document.error(base + loc, f"{where}: {message}")


def _field_name(document: Document, base: Location, loc: Location) -> str:
    """`resolution.ruleBasedProperties.rules[email_match].matchingKeys`: items by name."""
    parts: list[str] = []
    for depth, part in enumerate(loc):
        if isinstance(part, int):
            item = document.value(base + loc[: depth + 1])
            name = next(
                (item[k] for k in ("ruleName", "fieldName") if isinstance(item, dict) and isinstance(item.get(k), str)),
                None,
            )
            label = f"[{name}]" if name else f"[item {part + 1}]"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        else:
            parts.append(str(part))
    return ".".join(parts)


def _message(error: Mapping[str, Any], model: type[BaseModel], loc: Location) -> str:
    kind, value = error["type"], error.get("input")
    shown = f"{value!r}: " if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return unknown_key(str(loc[-1]), _keys_at(model, loc[:-1]))
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "literal_error":
        return f"{shown}expected {error['ctx']['expected']}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{shown}expected a mapping of keys to values"
    if kind == "list_type":
        return f"{shown}expected a list"
    message = (
        error["msg"]
        .replace("Input should be", "must be")
        .replace("List should", "must")
        .replace(" after validation", "")
        .replace(", unable to interpret input", " (true or false)")
        .replace(", unable to parse string as an integer", "")
    )
    return f"{shown}{message[0].lower()}{message[1:]}"


def unknown_key(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
    return f"unknown key {key!r}{hint}"


def _keys_at(model: type[BaseModel], loc: Location) -> list[str]:
    """The keys the model accepts at `loc` (list indices and mapping keys are stepped over)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
    cls = _model_of(annotation)
    if cls is None:
        return []
    return [
        info.alias or name
        for name, info in cls.model_fields.items()
        if not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("from_key"))
    ]


def _step(annotation: Any, part: Any) -> Any:
    cls = _model_of(annotation)
    if cls is not None and isinstance(part, str):
        for name, info in cls.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[-1] if args else None  # list[X] -> X, dict[str, X] -> X


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next((a for a in typing.get_args(annotation) if _model_of(a)), None)
    return None
