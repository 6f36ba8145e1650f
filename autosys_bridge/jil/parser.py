"""A tolerant reader for any AutoSys JIL: `jil` input, `autorep -q` output, `autocal_asc` exports.

JIL is line oriented and context sensitive (raw values to the end of the line, escaped colons,
comments that look like shell globs), so this is a hand-written scanner, not a grammar:

- a statement starts at a subcommand (`insert_job: NAME`, `insert_resource: NAME`,
  `calendar: NAME` ...) and owns the attribute lines up to the next one;
- several `attribute: value` pairs may share a line (`insert_job: X   job_type: CMD`); a pair
  starts at a known keyword after whitespace, outside double quotes;
- a value wholly in double quotes is unquoted, and `\\:` stands for a literal colon;
- `/* ... */` comments may span lines when they start a line; a trailing `/*` after a value is
  a comment only if it closes on the same line (`/tmp/in/*` and `/*unclosed` stay value text);
  `#` starts a comment only as the first character of a line;
- a line that is not `key: value` continues a list value (`start_times`, a trailing comma, an
  open quote), is a date row of a calendar export, or is reported as a problem;
- `<auto_blobt> ... </auto_blobt>` blocks are read verbatim across lines.

Nothing is dropped silently: every line that cannot be read becomes a Problem with its line
number, and the rest of the file is still read.
"""

from __future__ import annotations

import re
from pathlib import Path

from autosys_bridge.jil.attributes import (
    CONDITION_ATTRIBUTES,
    JOB_NAME,
    JOB_NAME_RULE,
    JOB_SUBCOMMANDS,
    KNOWN_ATTRIBUTES,
    LIST_VALUED,
    NOT_JIL,
    STATEMENT_KEYWORDS,
    SUBCOMMAND_SHAPE,
)
from autosys_bridge.jil.conditions import ConditionError, parse_condition
from autosys_bridge.jil.model import Attribute, JilFile, Problem, Statement, collector_paused

_KEY_AT_START = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)[ \t]*:")
_KEY_INLINE = re.compile(r"(?<=\s)([A-Za-z_][A-Za-z0-9_]*)[ \t]*:")
# A line that can only be more items of a list (`15:00`, `we, th`, `, 20`), never prose.
_LIST_FRAGMENT = re.compile(r',?\s*[^\s,"]+(\s*,\s*[^\s,"]+)*\s*,?')
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')  # a `"` not preceded by a backslash
SHELL_ATTRIBUTES = frozenset({"command"})
# The words that start a new pair when they follow whitespace on a line.
_PAIR_KEYWORDS = KNOWN_ATTRIBUTES | STATEMENT_KEYWORDS
# The known attributes SUBCOMMAND_SHAPE does not match (all of them today): `_pair` needs no
# regex to tell one of these from a misspelt subcommand.
_PLAIN_ATTRIBUTES = frozenset(name for name in KNOWN_ATTRIBUTES if not SUBCOMMAND_SHAPE.match(name))
BLOB_OPEN, BLOB_CLOSE = "<auto_blobt>", "</auto_blobt>"


class JilReadError(Exception):
    """The file itself cannot be read (missing, unreadable); the message names it."""


def read_jil(path: str | Path) -> JilFile:
    """Parse a JIL file; problems inside it are in the result, an unreadable file raises."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise JilReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_jil(data.decode("utf-8-sig"), str(path))
    except UnicodeDecodeError as exc:
        # Exports from old Windows estates are often cp1252/Latin-1: read on, but say so.
        parsed = parse_jil(data.decode("latin-1"), str(path))
        line = data[: exc.start].count(b"\n") + 1
        parsed.problems.insert(0, Problem(str(path), line, "not UTF-8; read as Latin-1", "warning"))
        return parsed


def parse_jil(text: str, path: str = "<jil>") -> JilFile:
    reader = _Reader(path)
    with collector_paused():
        for number, line in enumerate(text.split("\n"), start=1):
            reader.feed(number, line.rstrip("\r"))
        return reader.finish()


def unquote(raw: str) -> str:
    """The logical value of a raw JIL value: outer double quotes removed, `\\:` unescaped."""
    value = raw.strip()
    if _closed_quotes(value):
        value = value[1:-1]
    return value.replace("\\:", ":")


def value_of(key: str, raw: str) -> str:
    """The value of attribute `key`. A command keeps its quotes: the agent hands the command
    text to the shell as written, so `"/apps/my script.sh"` (one word) is not
    `/apps/my script.sh` (a program and an argument)."""
    if key in SHELL_ATTRIBUTES:
        return raw.strip().replace("\\:", ":")
    return unquote(raw)


def _closed_quotes(value: str) -> bool:
    return len(value) >= 2 and value[0] == '"' and value[-1] == '"' and '"' not in value[1:-1]


def _quote_positions(text: str) -> list[int]:
    if '"' not in text:
        return []
    # The regex scans in C; a Python loop over every character of every quoted line cost more.
    return [match.start() for match in _UNESCAPED_QUOTE.finditer(text)]


def _inside_quotes(position: int, quotes: list[int]) -> bool:
    return sum(1 for q in quotes if q < position) % 2 == 1


def _open_quote(raw: str) -> bool:
    return len(_quote_positions(raw)) % 2 == 1


def _strip_trailing_comments(line: str) -> str:
    """Remove `/* ... */` comments that start after whitespace, outside quotes, and close."""
    if "/*" not in line:
        return line
    position = 0
    while (start := line.find("/*", position)) >= 0:
        if (start > 0 and not line[start - 1].isspace()) or _inside_quotes(start, _quote_positions(line)):
            position = start + 2
            continue
        end = line.find("*/", start + 2)
        if end < 0:
            break  # never closes on this line: a shell glob or similar, keep it as value text
        line = line[:start] + line[end + 2 :]
        position = start
    return line


def _split_pairs(content: str, first: re.Match[str]) -> list[tuple[str, str]]:
    """Split a line into (key, raw value) pairs at known keywords outside quotes; `first` is
    the line's `_KEY_AT_START` match, which the caller has already made."""
    rest_start = first.end()
    if content.find(":", rest_start) < 0:  # most lines: one pair, no second colon to look at
        return [(first.group(1), content[rest_start:])]
    keywords = [
        match for match in _KEY_INLINE.finditer(content, rest_start) if match.group(1).lower() in _PAIR_KEYWORDS
    ]
    # Quotes matter only around a keyword; a colon in prose (`"Step 1: load"`) finds none.
    quotes = _quote_positions(content) if keywords else []
    cuts = [match for match in keywords if not _inside_quotes(match.start(), quotes)]
    pairs, key, value_start = [], first.group(1), rest_start
    for cut in cuts:
        pairs.append((key, content[value_start : cut.start()]))
        key, value_start = cut.group(1), cut.end()
    pairs.append((key, content[value_start:]))
    return pairs


def _continues(name: str, raw: str, text: str) -> bool:
    """Does `text`, a line without `key:`, continue the value `raw` of attribute `name`?

    Only an open quote, a trailing comma, or -- for a list-valued attribute whose value is
    not closed by quotes -- a line that can only be list items. A closed value such as
    `start_times: "5:00"` never swallows the prose that follows it.
    """
    raw = raw.rstrip()
    if _open_quote(raw) or raw.endswith(","):
        return True
    return name in LIST_VALUED and not _closed_quotes(raw) and bool(_LIST_FRAGMENT.fullmatch(text))


def _join_continuation(raw: str, more: str) -> str:
    # A list split over lines reads as one list: add the comma the line break stood for.
    if _open_quote(raw) or raw.rstrip().endswith(",") or more.startswith(","):
        return f"{raw.rstrip()} {more}"
    return f"{raw.rstrip()}, {more}"


class _Reader:
    def __init__(self, path: str):
        self.file = JilFile(path)
        self.current: Statement | None = None
        self.last_raw: str | None = None  # raw value of the current statement's last attribute
        self.comment_start: int | None = None
        self.blob: tuple[Statement, str, int, list[str]] | None = None

    def problem(self, line: int, message: str) -> None:
        self.file.problems.append(Problem(self.file.path, line, message))

    def feed(self, number: int, line: str) -> None:
        if self.blob is not None:
            self._blob_line(number, line)
            return
        if self.comment_start is not None:
            end = line.find("*/")
            if end < 0:
                return
            self.comment_start = None
            line = line[end + 2 :]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return
        if stripped.startswith("/*"):
            end = stripped.find("*/", 2)
            if end < 0:
                self.comment_start = number
            elif stripped[end + 2 :].strip():
                self.feed(number, stripped[end + 2 :])
            return
        content = _strip_trailing_comments(line)
        first = _KEY_AT_START.match(content)
        if first:
            for key, raw in _split_pairs(content, first):
                self._pair(number, key.lower(), raw.strip())
        elif content.strip():
            self._other_line(number, content.strip())

    def _pair(self, number: int, key: str, raw: str) -> None:
        # A set lookup settles the common case, a known attribute, without running the regex.
        if key in STATEMENT_KEYWORDS or (key not in _PLAIN_ATTRIBUTES and SUBCOMMAND_SHAPE.match(key)):
            self._start_statement(number, key, raw)
            return
        statement = self.current
        if statement is None:
            self.problem(number, f"attribute '{key}' comes before any insert_job or other subcommand")
            return
        if key in NOT_JIL:
            self.problem(number, f"'{key}:' is not JIL ({NOT_JIL[key]})")
        elif key not in KNOWN_ATTRIBUTES:
            self.problem(number, f"unknown attribute '{key}'")
        if BLOB_OPEN in raw and BLOB_CLOSE not in raw:
            self.blob = (statement, key, number, [raw])
            return
        if BLOB_OPEN in raw:
            raw = raw[raw.index(BLOB_OPEN) + len(BLOB_OPEN) : raw.index(BLOB_CLOSE)]
            statement.add(key, raw, number)
        else:
            statement.add(key, value_of(key, raw), number, raw)
        statement.end_line = number
        self.last_raw = raw

    def _start_statement(self, number: int, key: str, raw: str) -> None:
        name = unquote(raw)
        if key not in STATEMENT_KEYWORDS:
            self.problem(number, f"unknown subcommand '{key}'")
        if not name:
            self.problem(number, f"'{key}:' needs a name")
        elif key in JOB_SUBCOMMANDS and not JOB_NAME.match(name):
            self.problem(number, f"job name '{name}' is not valid ({JOB_NAME_RULE})")
        self.current = Statement(key, name, number, number)
        self.file.statements.append(self.current)
        self.last_raw = None

    def _other_line(self, number: int, text: str) -> None:
        statement = self.current
        if statement is not None and statement.is_calendar:
            statement.dates.append(text)
            statement.end_line = number
            return
        if statement is not None and self.last_raw is not None and statement.attributes:
            last = statement.attributes[-1]
            if _continues(last.name, self.last_raw, text):
                self.last_raw = _join_continuation(self.last_raw, text)
                statement.attributes[-1] = Attribute(
                    last.name, value_of(last.name, self.last_raw), last.line, self.last_raw
                )
                statement.end_line = number
                return
        self.problem(number, f"cannot read {text[:60]!r}: expected 'attribute: value'")

    def _blob_line(self, number: int, line: str) -> None:
        assert self.blob is not None  # feed calls it only while a blob is open
        statement, key, start, parts = self.blob
        if BLOB_CLOSE in line:
            parts.append(line[: line.index(BLOB_CLOSE)])
            text = "\n".join(parts)
            statement.add(key, text[text.index(BLOB_OPEN) + len(BLOB_OPEN) :], start)
            statement.end_line = number
            self.blob = None
            self.last_raw = None
        else:
            parts.append(line)

    def finish(self) -> JilFile:
        if self.comment_start is not None:
            self.problem(self.comment_start, "comment '/*' is never closed")
        if self.blob is not None:
            self.problem(self.blob[2], f"'{BLOB_OPEN}' is never closed by '{BLOB_CLOSE}'")
        for statement in self.file.jobs:
            for attribute in statement.attributes:
                if attribute.name in CONDITION_ATTRIBUTES and attribute.value.strip():
                    try:
                        statement.conditions[attribute.name] = parse_condition(attribute.value)
                    except ConditionError as exc:
                        self.problem(attribute.line, f"bad {attribute.name} '{attribute.value}': {exc}")
        self.file.problems.sort(key=lambda p: p.line)
        return self.file
