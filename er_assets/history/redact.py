"""Keep secrets out of history rows and e-mails.

Error messages and metadata come from drivers and SDKs that happily echo connection strings
and credentials. Everything written to the history or sent by mail passes through here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(r"passw(or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential", re.I)
_PATTERNS = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\g<1>{MASK}@"),
    # password=..., "token": "...", api_key: ...
    (
        re.compile(rf"((?:{_SECRET_NAME.pattern})[\w-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}}]+", re.I),
        rf"\g<1>{MASK}",
    ),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would mask innocent text


def _secret_values() -> list[str]:
    """Values of secret-looking environment variables: the credentials this process holds
    are the ones most likely to leak into an error message, in any format."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first: a secret may contain another


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
