"""Parsed expressions and their evaluation by simpleeval with GitHub semantics.

simpleeval walks the tree built by :mod:`._parser`: comparisons and ``!`` are its ``operators``, the
GitHub functions its ``functions`` and the contexts its ``names``. Two node handlers are replaced
because simpleeval's own follow Python, not GitHub:

* ``BoolOp`` -- ``&&``/``||`` must short-circuit on GitHub truthiness (``[]`` is truthy, ``NaN``
  falsy) and return an operand, not a bool;
* ``Subscript`` -- property and index access must ignore case, give null when missing (never
  ``KeyError``) and implement ``*`` filters.

and ``_eval`` places any :class:`ExpressionError` at the column of the innermost node raising it.

Every other node type (attributes, f-strings, comprehensions, ...) is removed from the evaluator,
so nothing can reach a Python object's attributes; values are only ever read by
:func:`._values.index`.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from simpleeval import InvalidExpression, SimpleEval

from ._errors import ExpressionError
from ._functions import STATUS_FUNCTIONS, HashFiles, StatusLike, build_functions
from ._lexer import is_legal_keyword
from ._limits import MAX_VALUE_DEPTH
from ._parser import WILDCARD, is_wildcard, operands, parse_tree
from ._indexing import FilteredArray, index, wildcard
from ._values import (
    convert_to_string,
    greater_or_equal,
    greater_than,
    is_collection,
    is_truthy,
    less_or_equal,
    less_than,
    logical_not,
    loose_equal,
    not_equal,
)

_OPERATORS = {
    ast.Eq: loose_equal,
    ast.NotEq: not_equal,
    ast.Lt: less_than,
    ast.LtE: less_or_equal,
    ast.Gt: greater_than,
    ast.GtE: greater_or_equal,
    ast.Not: logical_not,
}
_NODE_TYPES = (ast.Constant, ast.Name, ast.Subscript, ast.Call, ast.UnaryOp, ast.Compare, ast.BoolOp)
_PARSE_CACHE_SIZE = 1024


class _ContextNames(dict[str, Any]):
    """The contexts as simpleeval ``names``: keys lower-cased (the parser lower-cases context
    names), and a context that was not supplied is null rather than simpleeval's NameNotDefined."""

    def __missing__(self, name: str) -> None:
        return None


class _GitHubEvaluator(SimpleEval):  # type: ignore[misc]
    nodes: dict[type[ast.AST], Callable[[Any], Any]]

    def __init__(self, contexts: Mapping[str, Any], status: StatusLike, hash_files: HashFiles | None) -> None:
        names = _ContextNames((key.lower(), value) for key, value in contexts.items() if isinstance(key, str))
        super().__init__(operators=dict(_OPERATORS), functions=build_functions(status, hash_files), names=names)
        self.nodes = {node_type: self.nodes[node_type] for node_type in _NODE_TYPES}

    def _eval_boolop(self, node: ast.BoolOp) -> Any:
        stop_on_truthy = isinstance(node.op, ast.Or)
        value = None
        for operand in node.values:
            value = self._eval(operand)
            if is_truthy(value) is stop_on_truthy:
                return value
        return value

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        if is_wildcard(node.slice):
            return wildcard(container)
        if not is_collection(container):  # like GitHub, the index is then not even evaluated
            return None
        return index(container, self._eval(node.slice))

    def _eval(self, node: ast.expr) -> Any:
        try:
            return super()._eval(node)
        except ExpressionError as error:
            raise error.with_default_column(node.col_offset) from None


class Expression:
    """One parsed expression (the text between ``${{`` and ``}}``), reusable and immutable.

    Made by :func:`parse`, which caches them, so parsing the same text twice is cheap.
    """

    __slots__ = ("_functions", "_references", "_text", "_tree")

    def __init__(self, text: str, tree: ast.expr) -> None:
        self._text = text
        self._tree = tree
        self._references = frozenset(_context_references(tree))
        self._functions = frozenset(
            node.func.id for node in _walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        )

    @property
    def text(self) -> str:
        return self._text

    def evaluate(
        self,
        contexts: Mapping[str, Any],
        *,
        status: StatusLike = None,
        hash_files: HashFiles | None = None,
    ) -> Any:
        """The value of the expression: ``None``, ``bool``, ``int``/``float``, ``str``, or a list or
        mapping (taken from ``contexts`` or made by ``fromJSON``/a ``*`` filter).

        ``contexts`` maps context names (``github``, ``env``, ``steps``...; case ignored) to plain
        data. ``status`` feeds ``success()``/``failure()``/``cancelled()`` (default: a healthy job);
        ``hash_files`` implements ``hashFiles()`` (without it, calling ``hashFiles`` raises).
        Exceptions from ``hash_files`` itself propagate unchanged.
        """
        if not isinstance(contexts, Mapping):
            raise TypeError(f"contexts must be a mapping, not {type(contexts).__name__}")
        evaluator = _GitHubEvaluator(contexts, status, hash_files)
        try:
            result = evaluator.eval(self._text, previously_parsed=self._tree)
        except RecursionError:
            raise ExpressionError(f"a value nests too deeply (limit {MAX_VALUE_DEPTH} levels)") from None
        except InvalidExpression as error:  # simpleeval's own safety checks
            raise ExpressionError(str(error)) from None
        return list(result) if isinstance(result, FilteredArray) else result

    def context_references(self) -> frozenset[str]:
        """Every context path the expression reads, e.g. ``{"inputs.name", "secrets.TOKEN"}``.

        Paths start with the lower-cased context name, then each literal property as written:
        ``.name``, ``.*`` for a filter, ``[0]`` for a number, ``['a b']`` for a string that is no
        valid name. A computed index ends the path (``matrix[inputs.key]`` gives ``matrix`` and
        ``inputs.key``). Only the longest path of each use is listed, not its prefixes.
        """
        return self._references

    def function_names(self) -> frozenset[str]:
        """The lower-cased names of the functions called, e.g. ``{"success", "hashfiles"}``."""
        return self._functions

    def uses_status_function(self) -> bool:
        """Whether ``success()``, ``failure()``, ``cancelled()`` or ``always()`` is called."""
        return not self._functions.isdisjoint(STATUS_FUNCTIONS)

    def __repr__(self) -> str:
        return f"Expression({self._text!r})"


def parse(text: str, *, allowed_contexts: Iterable[str] | None = None) -> Expression:
    """Parse one expression (without ``${{ }}``); raises :class:`ExpressionError` with its column.

    With ``allowed_contexts``, any other context name is an error ("unknown context 'x'");
    without, an unknown context simply evaluates to null.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression text must be a str, not {type(text).__name__}")
    allowed = None if allowed_contexts is None else frozenset(name.lower() for name in allowed_contexts)
    return _parse_cached(text, allowed)


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_cached(text: str, allowed_contexts: frozenset[str] | None) -> Expression:
    return Expression(text, parse_tree(text, allowed_contexts))


def evaluate(
    text: str,
    contexts: Mapping[str, Any],
    *,
    status: StatusLike = None,
    hash_files: HashFiles | None = None,
) -> Any:
    """``parse(text).evaluate(contexts, ...)``."""
    return parse(text).evaluate(contexts, status=status, hash_files=hash_files)


# --- context references --------------------------------------------------------------------------


def _walk(tree: ast.expr) -> Iterable[ast.expr]:
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(operands(node))


def _context_references(tree: ast.expr) -> set[str]:
    references: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if not isinstance(node, (ast.Name, ast.Subscript)):
            pending.extend(operands(node))
            continue
        root, keys = _access_chain(node)
        path = root.id if isinstance(root, ast.Name) else None
        if path is None:
            pending.append(root)
        for key in keys:
            segment = _path_segment(key)
            if segment is None:  # a computed index ends the path and is an expression of its own
                pending.append(key)
                if path is not None:
                    references.add(path)
                    path = None
            elif path is not None:
                path += segment
        if path is not None:
            references.add(path)
    return references


def _access_chain(node: ast.expr) -> tuple[ast.expr, list[ast.expr]]:
    """``a.b[c].d`` as ``(a, [b, c, d])``."""
    keys: list[ast.expr] = []
    while isinstance(node, ast.Subscript):
        keys.append(node.slice)
        node = node.value
    keys.reverse()
    return node, keys


def _path_segment(key: ast.expr) -> str | None:
    """How a literal key extends a path; ``None`` for a computed key."""
    if not isinstance(key, ast.Constant):
        return None
    value = key.value
    if value is WILDCARD:
        return ".*"
    if isinstance(value, str):
        return f".{value}" if is_legal_keyword(value) else "['" + value.replace("'", "''") + "']"
    return f"[{convert_to_string(value) or 'null'}]"  # a number, true/false or null
