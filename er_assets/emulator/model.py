"""The service model's constraints, enforced where botocore does not enforce them.

botocore's client-side validation checks required members, types and minimum lengths; it
skips maximum lengths, list sizes, patterns and enums, which the service enforces with a
ValidationException. `problems` checks all of them against any shape of botocore's model, so
the emulator answers like the service, `er-match` refuses documents the service would
refuse, and exported requests are known to be valid before they reach AWS.
"""

from __future__ import annotations

import functools
import re


@functools.cache
def service_model(name: str):
    from botocore.session import get_session

    return get_session().get_service_model(name)


@functools.cache
def _pattern(text: str | None):
    """The model's pattern as a Python regex; None where it has none or uses Java-only syntax
    (some Glue patterns), which is then not enforced."""
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error:
        return None


def _length(where: str, size: int, meta: dict, what: str) -> list[str]:
    low, high = meta.get("min", 0), meta.get("max")
    if size < low or (high is not None and size > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        return [f"{where}: {what} must be {bound}, not {size}"]
    return []


def problems(shape, value, where: str = "", required: bool = True) -> list[str]:
    """Every violation of `shape`'s constraints in `value`, each naming its path.

    `required=False` skips the required members of the top-level structure only (documents
    such as a GetMatchingWorkflow answer saved by hand may omit createdAt and the like).
    """
    meta = shape.metadata
    found: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        if required:
            found += [
                f"{where + '.' if where else ''}{name}: missing required member"
                for name in shape.required_members
                if name not in value
            ]
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                found += problems(member, value[name], f"{where}.{name}" if where else name)
    elif shape.type_name == "list" and isinstance(value, list):
        found += _length(where, len(value), meta, "the number of items")
        for i, item in enumerate(value):
            found += problems(shape.member, item, f"{where}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        found += _length(where, len(value), meta, "the number of entries")
    elif shape.type_name == "string" and isinstance(value, str):
        pattern = _pattern(meta.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"{where} '{value}' does not match pattern {meta['pattern']}")
        found += _length(where, len(value), meta, "the length")
        if shape.enum and value not in shape.enum:
            found.append(f"{where} '{value}' is not one of {shape.enum}")
    elif (
        shape.type_name in ("integer", "long")
        and isinstance(value, int)
        and (value > meta.get("max", value) or value < meta.get("min", value))
    ):
        found.append(f"{where} must be between {meta.get('min')} and {meta.get('max')}, not {value}")
    return found
