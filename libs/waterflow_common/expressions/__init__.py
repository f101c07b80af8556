"""The ``${{ }}`` expression engine: GitHub Actions expressions, exactly, as a pure library.

Waterflow workflows are written for people who know GitHub Actions, so an expression must mean here
what it means there, and GitHub's rules are not Python's: ``1 == '1'`` and ``null == 0`` are true,
``'abc' == 'ABC'`` is true, ``[]`` is truthy and ``NaN`` falsy, ``a && b`` returns ``a`` or ``b`` (not
a bool), a missing property is null rather than an error, property names ignore case, ``3.0``
prints as ``3``, and ``steps.*.outcome`` filters. The rules follow actions/runner's expression code
(``Expressions2``) and GitHub's documentation, including its limits (21,000 characters, 50 levels).

How it works: a tokenizer (:mod:`._lexer`) and a precedence-climbing parser (:mod:`._parser`) turn
the text into a Python ``ast`` tree, which ``simpleeval`` evaluates with GitHub operators, functions
and context lookups (:mod:`._evaluate`, :mod:`._functions`, :mod:`._values`, :mod:`._indexing`).
Nothing can reach a Python attribute, and strings and nesting are bounded (:mod:`._limits`). No
I/O: ``hashFiles`` and the job status come from the caller.

Entry points::

    parse(text, *, allowed_contexts=None) -> Expression     # .evaluate(), .context_references()
    evaluate(text, contexts, *, status=None, hash_files=None) -> Any
    find_expressions(template) -> list[Span]
    render(template, contexts, ...) -> str                  # run: scripts
    evaluate_value(value, contexts, ...) -> Any             # with:, env:, ... field values
    evaluate_condition(condition, contexts, ...) -> bool    # if:
    to_string(value) -> str;  is_truthy(value) -> bool

Errors are :class:`ExpressionError` (a ``UserError``) with a 0-based ``column``.
"""

from ._errors import ExpressionError
from ._evaluate import Expression, evaluate, parse
from ._functions import HashFiles, JobStatus, StatusLike
from ._templates import Span, evaluate_condition, evaluate_value, find_expressions, render
from ._values import is_truthy, to_string

__all__ = [
    "Expression",
    "ExpressionError",
    "HashFiles",
    "JobStatus",
    "Span",
    "StatusLike",
    "evaluate",
    "evaluate_condition",
    "evaluate_value",
    "find_expressions",
    "is_truthy",
    "parse",
    "render",
    "to_string",
]
