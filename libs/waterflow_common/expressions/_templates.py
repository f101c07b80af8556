"""``${{ }}`` inside workflow strings: finding, rendering, and GitHub's rules for field values.

GitHub decides by the shape of the string: a value that is exactly one ``${{ expr }}`` keeps the
expression's type (a number stays a number, an object an object); a value mixing text and
expressions is a string; a value without any is taken literally. ``if:`` conditions may omit the
braces and get an implicit ``success() &&`` unless they call a status function.

Error columns from these functions are 0-based offsets into the whole template.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ExpressionError
from ._evaluate import Expression, parse
from ._functions import HashFiles, StatusLike, resolve_status
from ._limits import MAX_STRING_LENGTH
from ._values import convert_to_string, is_truthy, to_string

OPEN = "${{"
CLOSE = "}}"


@dataclass(frozen=True, slots=True)
class Span:
    """One ``${{ ... }}`` in a template."""

    start: int
    """Offset of ``${{``."""
    end: int
    """Offset just past the closing ``}}``."""
    text: str
    """The expression between the braces, as written (surrounding spaces included)."""

    @property
    def text_start(self) -> int:
        """Offset of :attr:`text` in the template."""
        return self.start + len(OPEN)


def find_expressions(template: str) -> list[Span]:
    """Every ``${{ ... }}`` in ``template``, in order.

    As in GitHub, the first ``}}`` outside a single-quoted string closes an expression, so
    ``${{ '}}' }}`` is one expression. An ``${{`` that is never closed raises
    :class:`ExpressionError` at its column.
    """
    spans: list[Span] = []
    search_from = 0
    while (start := template.find(OPEN, search_from)) >= 0:
        text_start = start + len(OPEN)
        closing = _find_closing_braces(template, text_start)
        if closing < 0:
            raise ExpressionError(f"unterminated expression: '{OPEN}' without a matching '{CLOSE}'", start)
        spans.append(Span(start, closing + len(CLOSE), template[text_start:closing]))
        search_from = closing + len(CLOSE)
    return spans


def _find_closing_braces(template: str, text_start: int) -> int:
    """Offset of the ``}}`` that ends the expression starting at ``text_start``, or -1.

    A quote toggles "inside a string" (an escaped ``''`` toggles twice, so it needs no care).
    """
    inside_string = False
    for offset in range(text_start, len(template)):
        char = template[offset]
        if char == "'":
            inside_string = not inside_string
        elif char == "}" and not inside_string and offset > text_start and template[offset - 1] == "}":
            return offset - 1
    return -1


@contextlib.contextmanager
def _columns_shifted(offset: int, default: int | None) -> Iterator[None]:
    """Report errors of an expression found at ``offset`` at columns of the whole template."""
    try:
        yield
    except ExpressionError as error:
        raise error.shifted(offset, default=default) from None


def _columns_in_template(span: Span) -> contextlib.AbstractContextManager[None]:
    return _columns_shifted(span.text_start, default=span.start)


def _evaluate_span(span: Span, contexts: Mapping[str, Any], status: StatusLike, hash_files: HashFiles | None) -> Any:
    if not span.text.strip():
        return None  # an empty ``${{ }}`` is null, as on GitHub
    with _columns_in_template(span):
        return parse(span.text).evaluate(contexts, status=status, hash_files=hash_files)


def _render_spans(
    template: str,
    spans: list[Span],
    contexts: Mapping[str, Any],
    status: StatusLike,
    hash_files: HashFiles | None,
) -> str:
    pieces: list[str] = []
    position = produced = 0
    for span in spans:
        pieces.append(template[position : span.start])
        value = _evaluate_span(span, contexts, status, hash_files)
        with _columns_in_template(span):
            text = to_string(value)
        produced += len(text)
        if produced > MAX_STRING_LENGTH:
            raise ExpressionError(f"rendered expressions exceed {MAX_STRING_LENGTH} characters", span.start)
        pieces.append(text)
        position = span.end
    pieces.append(template[position:])
    return "".join(pieces)


def render(
    template: str,
    contexts: Mapping[str, Any],
    *,
    status: StatusLike = None,
    hash_files: HashFiles | None = None,
) -> str:
    """``template`` with every ``${{ }}`` replaced by :func:`to_string` of its value (for ``run:``)."""
    return _render_spans(template, find_expressions(template), contexts, status, hash_files)


def _is_whole(template: str, spans: list[Span]) -> bool:
    return len(spans) == 1 and spans[0].start == 0 and spans[0].end == len(template)


def evaluate_value(
    value: Any,
    contexts: Mapping[str, Any],
    *,
    status: StatusLike = None,
    hash_files: HashFiles | None = None,
) -> Any:
    """A workflow field value with its expressions evaluated, the way GitHub does.

    A string that is exactly one ``${{ expr }}`` gives the typed value; a string with embedded
    expressions is rendered to a string; any other string is returned unchanged. Mapping values
    and list items are evaluated recursively (keys are left alone); other values are returned
    as they are.
    """
    if isinstance(value, str):
        spans = find_expressions(value)
        if not spans:
            return value
        if _is_whole(value, spans):
            return _evaluate_span(spans[0], contexts, status, hash_files)
        return _render_spans(value, spans, contexts, status, hash_files)
    if isinstance(value, Mapping):
        return {
            key: evaluate_value(item, contexts, status=status, hash_files=hash_files)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [evaluate_value(item, contexts, status=status, hash_files=hash_files) for item in value]
    return value


def evaluate_condition(
    condition: Any,
    contexts: Mapping[str, Any],
    *,
    status: StatusLike = None,
    hash_files: HashFiles | None = None,
) -> bool:
    """Whether an ``if:`` condition holds, with GitHub's rules.

    * ``condition`` may be written with or without ``${{ }}``; an empty condition is ``success()``;
      a YAML boolean or number is taken as its text.
    * Unless a status function (``success``, ``failure``, ``cancelled``, ``always``) is called, the
      condition is ``success() && (condition)``.
    * Text mixed with ``${{ }}`` (``if: ${{ a }} && b``) is, as on GitHub, a *string*: true
      whenever it is not empty. Validators should warn about it.
    """
    text = condition if isinstance(condition, str) else convert_to_string(condition)
    if not text.strip():
        return resolve_status(status).success
    spans = find_expressions(text)
    if spans and not _is_whole(text, spans):
        expressions = [_parse_span(span) for span in spans]
        if not _status_allows(expressions, status):
            return False
        return _render_spans(text, spans, contexts, status, hash_files) != ""
    expression_text, offset = (spans[0].text, spans[0].text_start) if spans else (text, 0)
    with _columns_shifted(offset, default=None):
        expression = parse(expression_text)
        if not _status_allows([expression], status):
            return False
        return is_truthy(expression.evaluate(contexts, status=status, hash_files=hash_files))


def _parse_span(span: Span) -> Expression:
    with _columns_in_template(span):
        return parse(span.text)


def _status_allows(expressions: list[Expression], status: StatusLike) -> bool:
    """The implicit ``success() &&``: false only for a failed job and no explicit status function."""
    if any(expression.uses_status_function() for expression in expressions):
        return True
    return resolve_status(status).success
