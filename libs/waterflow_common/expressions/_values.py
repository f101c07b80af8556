"""GitHub's value model: kinds, coercion, truthiness, comparison, string and JSON forms.

Why not Python's semantics: GitHub compares loosely (``1 == '1'``, ``null == 0``), compares strings
case-insensitively, treats ``NaN`` as falsy but empty arrays and objects as truthy, looks properties
up case-insensitively and yields null (never an error) when they are missing, and prints numbers
with .NET's ``G15`` format (``3`` not ``3.0``). Every operator and function of the engine goes
through the helpers below (and :mod:`._indexing`), so these rules live in one place. They mirror
actions/runner's ``EvaluationResult``, ``ExpressionUtility`` and ``ToJson``.

Values are plain Python data: ``None``, ``bool``, ``int``/``float``, ``str``, mappings (objects) and
lists/tuples (arrays).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import ExpressionError
from ._limits import MAX_STRING_LENGTH, MAX_VALUE_DEPTH


class Kind(enum.StrEnum):
    """GitHub's value kinds; the value of each is its name in GitHub's own messages."""

    NULL = "Null"
    BOOLEAN = "Boolean"
    NUMBER = "Number"
    STRING = "String"
    ARRAY = "Array"
    OBJECT = "Object"


PRIMITIVE_KINDS = frozenset({Kind.NULL, Kind.BOOLEAN, Kind.NUMBER, Kind.STRING})


def kind_of(value: Any) -> Kind:
    if value is None:
        return Kind.NULL
    if isinstance(value, bool):
        return Kind.BOOLEAN
    if isinstance(value, (int, float)):
        return Kind.NUMBER
    if isinstance(value, str):
        return Kind.STRING
    if isinstance(value, Mapping):
        return Kind.OBJECT
    if isinstance(value, (list, tuple)):
        return Kind.ARRAY
    raise ExpressionError(f"unsupported value of Python type '{type(value).__name__}'")


def is_primitive(value: Any) -> bool:
    return kind_of(value) in PRIMITIVE_KINDS


def is_collection(value: Any) -> bool:
    return kind_of(value) in (Kind.ARRAY, Kind.OBJECT)


# --- numbers -------------------------------------------------------------------------------------

_DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_NUMBER = re.compile(r"0x([0-9a-fA-F]+)")
_OCTAL_NUMBER = re.compile(r"0o([0-7]+)")
_INFINITY = re.compile(r"([+-]?)infinity", re.IGNORECASE)
_MAX_EXACT_INTEGER = 2**53


def parse_number(text: str) -> float:
    """GitHub's string-to-number conversion (like JavaScript's ``Number()``).

    Surrounding whitespace is ignored, ``''`` is 0, ``0x``/``0o`` prefixes are 32-bit integers,
    ``Infinity`` is accepted, and anything else unparsable is NaN. Python's ``float()`` is not
    used on its own because it also accepts ``1_000``, ``nan`` or non-ASCII digits.
    """
    text = text.strip()
    if not text:
        return 0.0
    if _DECIMAL_NUMBER.fullmatch(text):
        return float(text)
    if match := _HEX_NUMBER.fullmatch(text):
        return _as_int32(int(match[1], 16))
    if match := _OCTAL_NUMBER.fullmatch(text):
        return _as_int32(int(match[1], 8))
    if match := _INFINITY.fullmatch(text):
        return -math.inf if match[1] == "-" else math.inf
    return math.nan


def _as_int32(value: int) -> float:
    """.NET reads hex and octal as 32-bit two's complement (``0xFFFFFFFF`` is -1) and fails beyond."""
    if value >= 2**32:
        return math.nan
    return float(value - 2**32 if value >= 2**31 else value)


def as_float(number: int | float) -> float:
    """A number as GitHub holds it: a double (huge ints become infinities, not OverflowError)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def normalize_number(number: float) -> int | float:
    """Integral numbers as ``int`` so typed results read naturally (``3``, not ``3.0``)."""
    if number.is_integer() and abs(number) <= _MAX_EXACT_INTEGER:
        return int(number)
    return number


def to_number(value: Any) -> float:
    kind = kind_of(value)
    if kind is Kind.NULL:
        return 0.0
    if kind is Kind.BOOLEAN:
        return 1.0 if value else 0.0
    if kind is Kind.NUMBER:
        return as_float(value)
    if kind is Kind.STRING:
        return parse_number(value)
    return math.nan


def format_number(number: int | float) -> str:
    """.NET's ``G15``: 15 significant digits, no trailing ``.0``, exponent form beyond that."""
    number = as_float(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return format(number, ".15G")


# --- strings and truthiness ----------------------------------------------------------------------


def convert_to_string(value: Any) -> str:
    """GitHub's own string conversion, used by ``format``, ``join``, ``contains``...: arrays and
    objects become the words ``Array`` and ``Object``."""
    kind = kind_of(value)
    if kind is Kind.NULL:
        return ""
    if kind is Kind.BOOLEAN:
        return "true" if value else "false"
    if kind is Kind.NUMBER:
        return format_number(value)
    if kind is Kind.STRING:
        return str(value)
    return kind.value


def to_string(value: Any) -> str:
    """The text a ``${{ }}`` leaves in a rendered template: null is ``''``, booleans ``true`` and
    ``false``, numbers GitHub-formatted, strings as they are, arrays and objects as ``toJSON``.

    (GitHub itself writes ``Array``/``Object`` there, which no script can use; JSON is what
    ``toJSON`` would give, so that is what a ``run:`` script gets here.)
    """
    if kind_of(value) in (Kind.ARRAY, Kind.OBJECT):
        return to_json(value)
    return convert_to_string(value)


def is_truthy(value: Any) -> bool:
    """GitHub truthiness: ``false``, ``0``, ``-0``, ``''``, ``null`` and ``NaN`` are falsy; every
    array and object, even an empty one, is truthy."""
    kind = kind_of(value)
    if kind is Kind.NULL:
        return False
    if kind is Kind.BOOLEAN:
        return bool(value)
    if kind is Kind.NUMBER:
        number = as_float(value)
        return not (number == 0 or math.isnan(number))
    if kind is Kind.STRING:
        return len(value) > 0
    return True


def fold_case(text: str) -> str:
    """.NET ``OrdinalIgnoreCase``: upper-case character by character, simple (1:1) mappings only."""
    if text.isascii():
        return text.upper()
    return "".join(map(_simple_upper, text))


@functools.lru_cache(maxsize=4096)
def _simple_upper(char: str) -> str:
    upper = char.upper()
    # One-to-one mappings only, and never from outside ASCII into it: .NET's ordinal casing keeps
    # the Turkish dotless 'ı' and the long 's' 'ſ' as they are, so 'ı' == 'I' is false on GitHub.
    return upper if len(upper) == 1 and not (upper.isascii() and not char.isascii()) else char


# --- comparison ----------------------------------------------------------------------------------


def _coerce(left: Any, right: Any) -> tuple[Kind, Any, Kind, Any]:
    """GitHub's coercion before comparing: number vs string compares as numbers; a boolean or null
    on either side becomes a number first. Arrays and objects are never converted."""
    left_kind, right_kind = kind_of(left), kind_of(right)
    while left_kind is not right_kind:
        if left_kind is Kind.NUMBER and right_kind is Kind.STRING:
            right, right_kind = to_number(right), Kind.NUMBER
        elif (left_kind is Kind.STRING and right_kind is Kind.NUMBER) or left_kind in (Kind.BOOLEAN, Kind.NULL):
            left, left_kind = to_number(left), Kind.NUMBER
        elif right_kind in (Kind.BOOLEAN, Kind.NULL):
            right, right_kind = to_number(right), Kind.NUMBER
        else:
            break
    return left_kind, left, right_kind, right


def loose_equal(left: Any, right: Any) -> bool:
    """``==``: after coercion; strings ignore case, NaN equals nothing, arrays and objects are
    equal only to themselves (same reference)."""
    left_kind, left, right_kind, right = _coerce(left, right)
    if left_kind is not right_kind:
        return False
    if left_kind is Kind.NULL:
        return True
    if left_kind is Kind.NUMBER:
        return as_float(left) == as_float(right)
    if left_kind is Kind.STRING:
        return fold_case(left) == fold_case(right)
    if left_kind is Kind.BOOLEAN:
        return bool(left) == bool(right)
    return left is right


def _ordering(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 after coercion; ``None`` when GitHub does not order the pair (different kinds,
    NaN, nulls, arrays, objects)."""
    left_kind, left, right_kind, right = _coerce(left, right)
    if left_kind is not right_kind:
        return None
    if left_kind is Kind.NUMBER:
        left, right = as_float(left), as_float(right)
        if math.isnan(left) or math.isnan(right):
            return None
    elif left_kind is Kind.STRING:
        left, right = fold_case(left), fold_case(right)
    elif left_kind is Kind.BOOLEAN:
        left, right = bool(left), bool(right)
    else:
        return None
    return int(left > right) - int(left < right)


def not_equal(left: Any, right: Any) -> bool:
    return not loose_equal(left, right)


def less_than(left: Any, right: Any) -> bool:
    return _ordering(left, right) == -1


def greater_than(left: Any, right: Any) -> bool:
    return _ordering(left, right) == 1


def less_or_equal(left: Any, right: Any) -> bool:
    """GitHub defines ``<=`` as ``==`` or ``<`` (so ``null <= null`` is true)."""
    return loose_equal(left, right) or less_than(left, right)


def greater_or_equal(left: Any, right: Any) -> bool:
    return loose_equal(left, right) or greater_than(left, right)


def logical_not(value: Any) -> bool:
    return not is_truthy(value)


# --- JSON ----------------------------------------------------------------------------------------

# Json.NET escapes these three even though JSON does not require it; so does GitHub's toJSON.
_EXTRA_JSON_ESCAPES = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class BoundedText:
    """A string built piece by piece that refuses to outgrow :data:`MAX_STRING_LENGTH`."""

    def __init__(self, producer: str) -> None:
        self._producer = producer
        self._pieces: list[str] = []
        self._length = 0

    def append(self, piece: str) -> None:
        self._length += len(piece)
        if self._length > MAX_STRING_LENGTH:
            raise ExpressionError(f"{self._producer} result exceeds {MAX_STRING_LENGTH} characters")
        self._pieces.append(piece)

    def text(self) -> str:
        return "".join(self._pieces)


def to_json(value: Any) -> str:
    """GitHub's ``toJSON``: 2-space indented, numbers GitHub-formatted."""
    out = BoundedText("toJSON()")
    _write_json(value, 0, out)
    return out.text()


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_EXTRA_JSON_ESCAPES)


def _write_json(value: Any, level: int, out: BoundedText) -> None:
    if level > MAX_VALUE_DEPTH:
        raise ExpressionError(f"toJSON(): value nests deeper than {MAX_VALUE_DEPTH} levels")
    kind = kind_of(value)
    if kind is Kind.ARRAY:
        _write_json_collection("[", "]", [(None, item) for item in value], level, out)
    elif kind is Kind.OBJECT:
        _write_json_collection("{", "}", list(value.items()), level, out)
    elif kind is Kind.STRING:
        out.append(_json_string(value))
    elif kind is Kind.NULL:
        out.append("null")
    else:
        out.append(convert_to_string(value))


def _write_json_collection(
    opening: str, closing: str, entries: list[tuple[Any, Any]], level: int, out: BoundedText
) -> None:
    if not entries:
        out.append(opening + closing)
        return
    out.append(opening)
    indent = "\n" + "  " * (level + 1)
    for position, (key, item) in enumerate(entries):
        out.append(("," if position else "") + indent)
        if opening == "{":
            out.append(_json_string(convert_to_string(key)) + ": ")
        _write_json(item, level + 1, out)
    out.append("\n" + "  " * level + closing)


def from_json(text: str) -> Any:
    """GitHub's ``fromJSON``: numbers are doubles (integral ones come back as ``int``)."""
    try:
        value = json.loads(text, parse_int=_json_number, parse_float=_json_number)
    except RecursionError:
        raise ExpressionError(f"fromJSON(): JSON nests deeper than {MAX_VALUE_DEPTH} levels") from None
    except ValueError as error:
        raise ExpressionError(f"fromJSON(): invalid JSON: {error}") from None
    _check_value_depth(value)
    return value


def _json_number(text: str) -> int | float:
    return normalize_number(float(text))


def _check_value_depth(value: Any) -> None:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_VALUE_DEPTH:
            raise ExpressionError(f"fromJSON(): JSON nests deeper than {MAX_VALUE_DEPTH} levels")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
