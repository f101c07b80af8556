"""GitHub's expression functions, and the job status that the status functions report.

Each function takes and returns plain values and follows actions/runner's implementation: string
arguments go through GitHub's own string conversion (arrays and objects become ``Array`` and
``Object``), string matching ignores case, and nothing raises for a value of the "wrong" kind (the
result is simply ``false`` or ``''``). Only ``format`` with a bad format string, ``fromJSON`` with bad
JSON and ``hashFiles`` without a workspace raise :class:`ExpressionError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ._errors import ExpressionError
from ._lexer import shorten
from ._values import (
    BoundedText,
    Kind,
    convert_to_string,
    fold_case,
    from_json,
    is_primitive,
    kind_of,
    loose_equal,
    to_json,
)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What ``success()``, ``failure()`` and ``cancelled()`` return (``always()`` is always true).

    The caller decides what the flags mean where the expression is evaluated, as GitHub does: for a
    step, whether every previous step of the job succeeded / one of them failed; for a job, the
    same over the jobs it ``needs``; ``cancelled`` when the run was cancelled (then ``success`` is
    normally false). The default is a healthy job: ``success=True``.
    """

    success: bool = True
    failure: bool = False
    cancelled: bool = False

    @classmethod
    def from_result(cls, result: Literal["success", "failure", "cancelled"]) -> JobStatus:
        """The status after an outcome, e.g. ``JobStatus.from_result("failure")``."""
        if result not in ("success", "failure", "cancelled"):
            raise ValueError(f"unknown result {result!r}: expected success, failure or cancelled")
        return cls(success=result == "success", failure=result == "failure", cancelled=result == "cancelled")


StatusLike: TypeAlias = JobStatus | Mapping[str, bool] | None
"""A :class:`JobStatus`, a mapping with some of its keys (the others default), or ``None``
(a healthy job)."""

HashFiles: TypeAlias = Callable[[list[str]], str]
"""``hashFiles`` callback: receives the patterns as strings, returns the hash (``''`` when no file
matches, as GitHub does)."""


def resolve_status(status: StatusLike) -> JobStatus:
    if status is None:
        return JobStatus()
    if isinstance(status, JobStatus):
        return status
    if isinstance(status, Mapping):
        unknown = set(status) - {"success", "failure", "cancelled"}
        if unknown:
            raise TypeError(f"unknown status keys {sorted(map(str, unknown))}: expected success, failure, cancelled")
        return JobStatus(**{key: bool(value) for key, value in status.items()})
    raise TypeError(f"status must be a JobStatus, a mapping or None, not {type(status).__name__}")


@dataclass(frozen=True, slots=True)
class FunctionSignature:
    name: str  # GitHub's spelling, for messages
    min_args: int
    max_args: int

    def describe_arity(self) -> str:
        if self.max_args == 0:
            return "no arguments"
        if self.min_args == self.max_args:
            return f"exactly {self.min_args} argument{'s' if self.min_args > 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


SIGNATURES: dict[str, FunctionSignature] = {
    signature.name.lower(): signature
    for signature in (
        FunctionSignature("case", 3, 255),
        FunctionSignature("contains", 2, 2),
        FunctionSignature("startsWith", 2, 2),
        FunctionSignature("endsWith", 2, 2),
        FunctionSignature("format", 1, 255),
        FunctionSignature("join", 1, 2),
        FunctionSignature("toJSON", 1, 1),
        FunctionSignature("fromJSON", 1, 1),
        FunctionSignature("hashFiles", 1, 255),
        FunctionSignature("success", 0, 0),
        FunctionSignature("failure", 0, 0),
        FunctionSignature("cancelled", 0, 0),
        FunctionSignature("always", 0, 0),
    )
}
"""Known functions by lower-cased name (GitHub's function names are case-insensitive)."""

STATUS_FUNCTIONS = frozenset({"success", "failure", "cancelled", "always"})


def contains(search: Any, item: Any) -> bool:
    """Substring test ignoring case, or (when ``search`` is an array) an element loosely equal."""
    if is_primitive(search):
        return is_primitive(item) and fold_case(convert_to_string(item)) in fold_case(convert_to_string(search))
    if kind_of(search) is Kind.ARRAY:
        return any(loose_equal(element, item) for element in search)
    return False


def starts_with(text: Any, prefix: Any) -> bool:
    if not (is_primitive(text) and is_primitive(prefix)):
        return False
    return fold_case(convert_to_string(text)).startswith(fold_case(convert_to_string(prefix)))


def ends_with(text: Any, suffix: Any) -> bool:
    if not (is_primitive(text) and is_primitive(suffix)):
        return False
    return fold_case(convert_to_string(text)).endswith(fold_case(convert_to_string(suffix)))


_NO_SEPARATOR = object()


def join(items: Any, separator: Any = _NO_SEPARATOR) -> str:
    """Array items joined with ``separator`` (default ``,``); a primitive is returned as a string."""
    if kind_of(items) is Kind.ARRAY:
        glue = convert_to_string(separator) if separator is not _NO_SEPARATOR and is_primitive(separator) else ","
        out = BoundedText("join()")
        for position, item in enumerate(items):
            if position:
                out.append(glue)
            out.append(convert_to_string(item))
        return out.text()
    return convert_to_string(items) if is_primitive(items) else ""


def format_string(template: Any, *args: Any) -> str:
    """``format('{0} {1}', a, b)``: ``{N}`` is replaced by argument N, ``{{`` and ``}}`` are braces."""
    text = convert_to_string(template)
    out = BoundedText("format()")
    position = 0
    while position < len(text):
        left, right = text.find("{", position), text.find("}", position)
        if left >= 0 and (right < 0 or right > left):
            if text.startswith("{", left + 1):
                out.append(text[position : left + 1])
                position = left + 2
                continue
            arg_index, closing = _read_placeholder(text, left, len(args))
            out.append(text[position:left])
            out.append(convert_to_string(args[arg_index]))
            position = closing + 1
        elif right >= 0:
            if not text.startswith("}", right + 1):
                raise _invalid_format(text)
            out.append(text[position : right + 1])
            position = right + 2
        else:
            out.append(text[position:])
            break
    return out.text()


def _read_placeholder(text: str, left: int, arg_count: int) -> tuple[int, int]:
    """``(argument index, offset of the closing brace)`` of the ``{N}`` starting at ``left``."""
    digits_end = left + 1
    while digits_end < len(text) and "0" <= text[digits_end] <= "9":
        digits_end += 1
    digits = text[left + 1 : digits_end]
    significant = digits.lstrip("0") or "0"
    if not digits or len(significant) > 3 or int(significant) > 255:  # GitHub reads a byte
        raise _invalid_format(text)
    closing, specifiers = _read_format_specifiers(text, digits_end)
    arg_index = int(significant)
    if arg_index >= arg_count:
        raise ExpressionError(
            f"format(): the format string references argument {{{arg_index}}} but only "
            f"{arg_count} argument(s) follow it: '{shorten(text)}'"
        )
    if specifiers:
        raise ExpressionError(f"format(): format specifiers are not supported: '{{{digits}:{shorten(specifiers)}}}'")
    return arg_index, closing


def _read_format_specifiers(text: str, start: int) -> tuple[int, str]:
    """GitHub parses (then rejects) ``{0:spec}``; ``}}`` inside the spec is an escaped brace."""
    if text.startswith("}", start):
        return start, ""
    if not text.startswith(":", start):
        raise _invalid_format(text)
    specifiers: list[str] = []
    position = start + 1
    while position < len(text):
        if text[position] != "}":
            specifiers.append(text[position])
            position += 1
        elif text.startswith("}", position + 1):
            specifiers.append("}")
            position += 2
        else:
            return position, "".join(specifiers)
    raise _invalid_format(text)


def _invalid_format(text: str) -> ExpressionError:
    return ExpressionError(f"format(): invalid format string '{shorten(text)}'")


def from_json_value(text: Any) -> Any:
    return from_json(convert_to_string(text))


def case(*args: Any) -> Any:
    """GitHub's ``case(pred1, val1, pred2, val2, ..., default)``: the value of the first predicate
    that is true, else the default. Each predicate must be a boolean (actions/languageservices)."""
    for position in range(0, len(args) - 1, 2):
        predicate = args[position]
        if kind_of(predicate) is not Kind.BOOLEAN:
            raise ExpressionError(f"case(): predicate {position // 2 + 1} must be a boolean, "
                                  f"got {kind_of(predicate).name.lower()} {shorten(str(predicate))}")
        if predicate:
            return args[position + 1]
    return args[-1]


_PURE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "case": case,
    "contains": contains,
    "startswith": starts_with,
    "endswith": ends_with,
    "format": format_string,
    "join": join,
    "tojson": to_json,
    "fromjson": from_json_value,
}


def build_functions(status: StatusLike, hash_files: HashFiles | None) -> dict[str, Callable[..., Any]]:
    """The function table of one evaluation, keyed by lower-cased name."""
    job_status = resolve_status(status)

    def success() -> bool:
        return job_status.success

    def failure() -> bool:
        return job_status.failure

    def cancelled() -> bool:
        return job_status.cancelled

    def always() -> bool:
        return True

    def hash_files_function(*patterns: Any) -> Any:
        if hash_files is None:
            raise ExpressionError("hashFiles() is only available on the agent, where the workspace is")
        return hash_files([convert_to_string(pattern) for pattern in patterns])

    return {
        **_PURE_FUNCTIONS,
        "success": success,
        "failure": failure,
        "cancelled": cancelled,
        "always": always,
        "hashfiles": hash_files_function,
    }
