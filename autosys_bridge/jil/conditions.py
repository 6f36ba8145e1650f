"""AutoSys condition expressions (`condition`, `box_success`, `box_failure`) as a tree.

Grammar, as AE evaluates it:

    expr  := term (OP term)*           OP: & | and  or  | or   (any case)
    term  := '(' expr ')' | atom
    atom  := STATUS '(' job [',' lookback] ')'       s/success f/failure d/done
                                                       t/terminated n/notrunning
           | e|exitcode '(' job ')' CMP number
           | v|value '(' global ')' CMP value
    job   := NAME ['^' INSTANCE]                      cross-instance reference

AutoSys has no operator precedence: operators apply strictly left to right, so
`s(a) | s(b) & s(c)` is `(s(a) | s(b)) & s(c)`. Only parentheses group otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

STATUS_CODES = {
    "s": "success",
    "success": "success",
    "f": "failure",
    "failure": "failure",
    "d": "done",
    "done": "done",
    "t": "terminated",
    "terminated": "terminated",
    "n": "notrunning",
    "notrunning": "notrunning",
}
SHORT = {"success": "s", "failure": "f", "done": "d", "terminated": "t", "notrunning": "n"}
EXITCODE_WORDS = {"e", "exitcode"}
VALUE_WORDS = {"v", "value"}
# A lookback is hours, optionally with minutes: 0, 12, 12.00, 1.30 (`\:` unescapes to 12:00).
LOOKBACK = re.compile(r"^\d{1,4}([.:][0-5]\d)?$")
INSTANCE = re.compile(r"^[A-Za-z0-9]{3}$")
_EXIT_CODE = re.compile(r"-?\d+")
_NEEDS_QUOTES = re.compile(r"[\s()&|=<>!,]")

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,)
      | (?P<and>&) | (?P<or>\|)
      | (?P<cmp><=|>=|!=|<>|=|<|>)
      | (?P<string>"[^"]*")
      | (?P<word>[^\s(),&|=<>!"]+)""",
    re.VERBOSE,
)


class ConditionError(ValueError):
    """A condition that AutoSys would reject; `column` is 1-based within the value."""

    def __init__(self, message: str, column: int):
        super().__init__(f"{message} (column {column})")
        self.column = column


@dataclass(frozen=True)
class JobRef:
    name: str
    instance: str | None = None

    def to_jil(self) -> str:
        return f"{self.name}^{self.instance}" if self.instance else self.name

    def to_json(self) -> dict:
        """The members an atom's JSON gives the job it names."""
        return {"job": self.name, "instance": self.instance}


@dataclass(frozen=True)
class StatusAtom:
    status: str  # success | failure | done | terminated | notrunning
    job: JobRef
    lookback: str | None = None

    @property
    def code(self) -> str:
        return SHORT[self.status]

    def to_jil(self) -> str:
        lookback = f",{self.lookback}" if self.lookback is not None else ""
        return f"{self.code}({self.job.to_jil()}{lookback})"

    def to_json(self) -> dict:
        return {
            "type": "status",
            "status": self.status,
            "code": self.code,
            **self.job.to_json(),
            "lookback": self.lookback,
        }


@dataclass(frozen=True)
class ExitCodeAtom:
    job: JobRef
    operator: str
    value: int
    code = "e"

    def to_jil(self) -> str:
        return f"e({self.job.to_jil()}) {self.operator} {self.value}"

    def to_json(self) -> dict:
        return {
            "type": "exitcode",
            "code": self.code,
            **self.job.to_json(),
            "operator": self.operator,
            "value": self.value,
        }


@dataclass(frozen=True)
class ValueAtom:
    variable: str
    operator: str
    value: str
    code = "v"

    def to_jil(self) -> str:
        value = f'"{self.value}"' if not self.value or _NEEDS_QUOTES.search(self.value) else self.value
        return f"v({self.variable}) {self.operator} {value}"

    def to_json(self) -> dict:
        return {
            "type": "value",
            "code": "v",
            "variable": self.variable,
            "operator": self.operator,
            "value": self.value,
        }


@dataclass(frozen=True)
class BinaryOp:
    operator: str  # "&" or "|"
    left: Condition
    right: Condition

    def to_jil(self) -> str:
        # Left-to-right evaluation makes a left operand never need parentheses, but one with
        # the other operator is wrapped anyway so readers used to precedence are not misled.
        left = self.left.to_jil()
        if isinstance(self.left, BinaryOp) and self.left.operator != self.operator:
            left = f"({left})"
        right = self.right.to_jil()
        if isinstance(self.right, BinaryOp):
            right = f"({right})"
        return f"{left} {self.operator} {right}"

    def to_json(self) -> dict:
        return {
            "type": "and" if self.operator == "&" else "or",
            "left": self.left.to_json(),
            "right": self.right.to_json(),
        }


Atom = StatusAtom | ExitCodeAtom | ValueAtom
Condition = Atom | BinaryOp


def atoms(condition: Condition) -> Iterator[Atom]:
    """The atoms of a condition, left to right."""
    if isinstance(condition, BinaryOp):
        yield from atoms(condition.left)
        yield from atoms(condition.right)
    else:
        yield condition


class _Token(NamedTuple):  # a tuple: a parsed condition makes many, and they are cheap
    kind: str
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    # finditer skips a character no alternative of _TOKEN accepts (none matches the empty
    # string), so a match that does not start where the last one ended marks a bad character.
    for match in _TOKEN.finditer(text):
        if match.start() != position:
            break
        # Every alternative of _TOKEN is a named group, so a match always has a lastgroup.
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position + 1))
        position = match.end()
    if position < len(text):
        raise ConditionError(f"unexpected {text[position]!r}", position + 1)
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.index = 0
        self.end_column = len(text) + 1

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str, what: str) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind:
            found = f"{token.text!r}" if token else "end of condition"
            raise ConditionError(f"expected {what}, found {found}", token.column if token else self.end_column)
        self.index += 1
        return token

    def operator(self) -> str | None:
        token = self.peek()
        if token is None:
            return None
        if token.kind == "and" or (token.kind == "word" and token.text.lower() == "and"):
            return "&"
        if token.kind == "or" or (token.kind == "word" and token.text.lower() == "or"):
            return "|"
        return None

    def expression(self) -> Condition:
        node = self.term()
        while (op := self.operator()) is not None:
            self.index += 1
            node = BinaryOp(op, node, self.term())
        return node

    def term(self) -> Condition:
        token = self.peek()
        if token is not None and token.kind == "lparen":
            self.index += 1
            node = self.expression()
            self.take("rparen", "')'")
            return node
        return self.atom()

    def atom(self) -> Atom:
        word = self.take("word", "a status function such as s(JOB)")
        keyword = word.text.lower()
        if keyword not in STATUS_CODES and keyword not in EXITCODE_WORDS and keyword not in VALUE_WORDS:
            raise ConditionError(f"unknown condition function {word.text!r}", word.column)
        self.take("lparen", f"'(' after {word.text}")
        argument = self.take("word", "a job name" if keyword not in VALUE_WORDS else "a global variable name")
        if keyword in VALUE_WORDS:
            self.take("rparen", "')'")
            operator = self.take("cmp", "a comparison such as =").text
            value = self.peek()
            if value is None or value.kind not in ("word", "string"):
                raise ConditionError("expected a value to compare with", value.column if value else self.end_column)
            self.index += 1
            text = value.text[1:-1] if value.kind == "string" else value.text
            return ValueAtom(argument.text, operator, text)
        job = _job_ref(argument)
        if keyword in EXITCODE_WORDS:
            self.take("rparen", "')'")
            operator = self.take("cmp", "a comparison such as =").text
            number = self.take("word", "an exit code")
            if not _EXIT_CODE.fullmatch(number.text):
                raise ConditionError(f"exit code {number.text!r} is not a whole number", number.column)
            return ExitCodeAtom(job, operator, int(number.text))
        lookback = None
        if (comma := self.peek()) is not None and comma.kind == "comma":
            self.index += 1
            token = self.take("word", "a lookback (hours[.minutes])")
            if not LOOKBACK.match(token.text):
                raise ConditionError(f"lookback {token.text!r} is not hours[.minutes]", token.column)
            lookback = token.text
        self.take("rparen", "')'")
        return StatusAtom(STATUS_CODES[keyword], job, lookback)


def _job_ref(token: _Token) -> JobRef:
    name, caret, instance = token.text.partition("^")
    if not name:
        raise ConditionError("missing job name", token.column)
    if caret and not INSTANCE.match(instance):
        raise ConditionError(f"instance {instance!r} is not three letters or digits", token.column + len(name) + 1)
    return JobRef(name, instance or None)


def parse_condition(text: str) -> Condition:
    """Parse one condition value; raise ConditionError naming the column on bad input."""
    parser = _Parser(text)
    if not parser.tokens:
        raise ConditionError("empty condition", 1)
    node = parser.expression()
    trailing = parser.peek()
    if trailing is not None:
        raise ConditionError(f"expected & or | before {trailing.text!r}", trailing.column)
    return node
