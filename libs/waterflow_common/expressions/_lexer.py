"""Tokenizer for ``${{ }}`` expressions, following actions/runner's ``LexicalAnalyzer``.

GitHub's lexer is context-sensitive and this one is too: a word after ``.`` is always a property name
(``steps.null`` is fine), a word followed by ``(`` is a function, ``.`` starts a number only where an
operand is expected (``.5``), and numbers and words run to the next boundary character, so
``steps.my-step`` is one name and ``1abc`` one (invalid) number.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any

from ._errors import ExpressionError
from ._values import normalize_number, parse_number


class TokenKind(enum.Enum):
    NULL = enum.auto()
    BOOLEAN = enum.auto()
    NUMBER = enum.auto()
    STRING = enum.auto()
    NAMED_VALUE = enum.auto()  # a context name, e.g. ``github``
    FUNCTION = enum.auto()  # a word followed by "("
    PROPERTY_NAME = enum.auto()  # a word after "."
    WILDCARD = enum.auto()  # "*"
    DEREFERENCE = enum.auto()  # "."
    START_INDEX = enum.auto()  # "["
    END_INDEX = enum.auto()  # "]"
    START_GROUP = enum.auto()  # "("
    END_GROUP = enum.auto()  # ")"
    SEPARATOR = enum.auto()  # ","
    OPERATOR = enum.auto()  # ! == != < <= > >= && ||
    END = enum.auto()


LITERAL_KINDS = frozenset({TokenKind.NULL, TokenKind.BOOLEAN, TokenKind.NUMBER, TokenKind.STRING})


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    raw: str
    column: int
    value: Any = None


_PUNCTUATION = {
    "(": TokenKind.START_GROUP,
    ")": TokenKind.END_GROUP,
    "[": TokenKind.START_INDEX,
    "]": TokenKind.END_INDEX,
    ",": TokenKind.SEPARATOR,
    "*": TokenKind.WILDCARD,
}
_TWO_CHARACTER_OPERATORS = frozenset({"==", "!=", "<=", ">=", "&&", "||"})
_ONE_CHARACTER_OPERATORS = frozenset({"!", "<", ">"})
_OPERATOR_CHARACTERS = frozenset("!<>=&|")
_BOUNDARY_CHARACTERS = frozenset("([)],.!<>=&|")
_KEYWORD_LITERALS: dict[str, tuple[TokenKind, Any]] = {
    "null": (TokenKind.NULL, None),
    "true": (TokenKind.BOOLEAN, True),
    "false": (TokenKind.BOOLEAN, False),
    "NaN": (TokenKind.NUMBER, math.nan),
    "Infinity": (TokenKind.NUMBER, math.inf),
}
# Where an operand is expected, "." starts a number (".5"); elsewhere it dereferences.
_OPERAND_EXPECTED_AFTER = frozenset(
    {None, TokenKind.SEPARATOR, TokenKind.START_GROUP, TokenKind.START_INDEX, TokenKind.OPERATOR}
)
_LEGAL_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FUNCTION_CALL_AHEAD = re.compile(r"\s*\(")


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_legal_keyword(text: str) -> bool:
    """Whether ``text`` can be a context, function or property name (``[A-Za-z_][A-Za-z0-9_-]*``)."""
    return _LEGAL_KEYWORD.fullmatch(text) is not None


def _is_boundary(char: str) -> bool:
    return char in _BOUNDARY_CHARACTERS or char.isspace()


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an ``END`` token at ``len(text)``."""
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0
        self._last_kind: TokenKind | None = None

    def run(self) -> list[Token]:
        tokens: list[Token] = []
        while True:
            self._skip_whitespace()
            if self._position >= len(self._text):
                tokens.append(Token(TokenKind.END, "", len(self._text)))
                return tokens
            token = self._read_token()
            tokens.append(token)
            self._last_kind = token.kind

    def _skip_whitespace(self) -> None:
        while self._position < len(self._text) and self._text[self._position].isspace():
            self._position += 1

    def _read_token(self) -> Token:
        char = self._text[self._position]
        if char in _PUNCTUATION:
            self._position += 1
            return Token(_PUNCTUATION[char], char, self._position - 1)
        if char == "'":
            return self._read_string()
        if char in _OPERATOR_CHARACTERS:
            return self._read_operator()
        if char == "." and self._last_kind not in _OPERAND_EXPECTED_AFTER:
            self._position += 1
            return Token(TokenKind.DEREFERENCE, char, self._position - 1)
        if char in ".+-" or "0" <= char <= "9":
            return self._read_number()
        return self._read_keyword()

    def _read_until_boundary(self, *, allow_dot: bool) -> tuple[str, int]:
        start = self._position
        self._position += 1
        while self._position < len(self._text):
            char = self._text[self._position]
            if _is_boundary(char) and not (allow_dot and char == "."):
                break
            self._position += 1
        return self._text[start : self._position], start

    def _read_number(self) -> Token:
        raw, start = self._read_until_boundary(allow_dot=True)
        number = parse_number(raw)
        if math.isnan(number):
            raise ExpressionError(f"invalid number '{shorten(raw)}'", start)
        return Token(TokenKind.NUMBER, raw, start, normalize_number(number))

    def _read_keyword(self) -> Token:
        raw, start = self._read_until_boundary(allow_dot=False)
        if not is_legal_keyword(raw):
            raise ExpressionError(f"unexpected token '{shorten(raw)}'", start)
        if self._last_kind is TokenKind.DEREFERENCE:
            return Token(TokenKind.PROPERTY_NAME, raw, start)
        if raw in _KEYWORD_LITERALS:
            kind, value = _KEYWORD_LITERALS[raw]
            return Token(kind, raw, start, value)
        if _FUNCTION_CALL_AHEAD.match(self._text, self._position):
            return Token(TokenKind.FUNCTION, raw, start)
        return Token(TokenKind.NAMED_VALUE, raw, start)

    def _read_string(self) -> Token:
        start = self._position
        chars: list[str] = []
        position = start + 1
        while position < len(self._text):
            char = self._text[position]
            position += 1
            if char == "'":
                if self._text[position : position + 1] != "'":
                    self._position = position
                    return Token(TokenKind.STRING, self._text[start:position], start, "".join(chars))
                position += 1  # '' is an escaped quote
            chars.append(char)
        raise ExpressionError("unterminated string literal", start)

    def _read_operator(self) -> Token:
        start = self._position
        pair = self._text[start : start + 2]
        if pair in _TWO_CHARACTER_OPERATORS:
            self._position += 2
            return Token(TokenKind.OPERATOR, pair, start)
        char = self._text[start]
        if char in _ONE_CHARACTER_OPERATORS:
            self._position += 1
            return Token(TokenKind.OPERATOR, char, start)
        raise ExpressionError(f"unexpected token '{char}'", start)
