"""Keep secrets out of every message: exceptions, logs, history rows, e-mails, stderr.

Error messages and metadata come from drivers and SDKs that happily echo connection strings
and credentials. Redaction happens at the source: our own errors mask their message when
they are made (`Redacting`), every stage scrubs any exception leaving it before Dagster logs
it (`scrub_exception`), and everything written to the history or sent by mail passes
through `redact`. Secrets come only from the environment, so the environment says what to
mask: the values of secret-named variables and the password inside any URL or libpq DSN.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any, overload
from urllib.parse import unquote, urlsplit

MASK = "***"
_SECRET_NAME = re.compile(r"passw(or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential", re.I)
_PATTERNS = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\g<1>{MASK}@"),
    # password=..., "token": "...", api_key: ... but not an error's name such as
    # "ExpiredTokenException: The security token ...", whose message would lose its first word
    (
        re.compile(
            rf"((?:{_SECRET_NAME.pattern})(?![\w-]*(?:Exception|Error)\b)[\w-]*[\"']?\s*[:=]\s*[\"']?)"
            rf"[^\s\"',;&}}]+",
            re.I,
        ),
        rf"\g<1>{MASK}",
    ),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would mask innocent text


_DSN_PASSWORD = re.compile(r"""\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)""", re.I)


def _secret_values() -> list[str]:
    """Values of secret-looking environment variables, and passwords inside URLs and DSNs
    held by any variable (ER_HISTORY_URL): the credentials this process holds are the ones
    most likely to leak into an error message, in any format or quoting."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k)}
    for value in os.environ.values():
        if "://" in value:
            try:
                password = urlsplit(value.strip()).password
            except ValueError:
                password = None
            values.update({password, unquote(password)} if password else ())
        values.update(m.strip("'") for m in _DSN_PASSWORD.findall(value))
    values = {v for v in values if len(v) >= _MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first: a secret may contain another


@overload
def redact_text(text: str) -> str: ...
@overload
def redact_text(text: None) -> None: ...
def redact_text(text: str | None) -> str | None:
    if text is None:
        return None
    for secret in _secret_values():
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """Redact a JSON-like value: secret-named keys lose their values, strings are scrubbed."""
    if isinstance(value, Mapping):
        return {str(k): MASK if _SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class Redacting(Exception):
    """Base of errors whose message is masked when they are made, so no log, event or
    traceback of them ever holds a secret, whoever prints them."""

    def __init__(self, *args: object):
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


def scrub_exception(exc: BaseException) -> bool:
    """Mask secrets in `exc` and the exceptions it was raised from, in place, so what Dagster
    serialises into its event log, compute logs and stderr is clean. Returns False when
    `exc` itself still shows a secret (its __str__ reads what cannot be masked): the caller
    must then raise something else.

    Messages live in `args` for most exceptions; drivers keep them in attributes too
    (`msg`, `message`, `raw_msg`). A cause that still shows a secret after that is cut from
    the chain rather than logged."""
    node: BaseException | None = exc
    seen: set[int] = set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        _scrub(node)
        following = node.__cause__ or node.__context__
        if following is not None:
            _scrub(following)
            if _leaks(following):
                node.__cause__ = node.__context__ = None
                node.__suppress_context__ = True
                following = None
        node = following
    return not _leaks(exc)


def _leaks(exc: BaseException) -> bool:
    try:
        text = str(exc)
    except Exception:  # an exception that cannot even print itself shows nothing
        return False
    return redact_text(text) != text


def _scrub(exc: BaseException) -> None:
    if not _leaks(exc):
        return
    exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
    for name in ("msg", "message", "raw_msg", "strerror"):
        value = getattr(exc, name, None)
        if isinstance(value, str):
            with contextlib.suppress(AttributeError):  # a read-only property
                setattr(exc, name, redact_text(value))
