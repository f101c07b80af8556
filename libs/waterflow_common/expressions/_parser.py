"""Precedence-climbing parser: GitHub expression text to a Python :mod:`ast` tree for simpleeval.

The tree is built from ``ast`` node objects (never from pasted source text) and uses a handful of
node types, each with GitHub meaning supplied by the evaluator:

=============================  ==============================================================
GitHub                         Python ``ast`` node
=============================  ==============================================================
``null`` ``true`` ``1`` ``'s'``  ``Constant``
``github`` (a context)         ``Name`` (id lower-cased: context names ignore case)
``a.b`` / ``a['b']``           ``Subscript(a, Constant('b'))``
``a.*`` / ``a[*]``             ``Subscript(a, Constant(...))`` (``Ellipsis`` marks the filter)
``f(x, y)``                    ``Call(Name('f'), [x, y])`` (name lower-cased, arity checked)
``!a``                         ``UnaryOp(Not, a)``
``a == b`` ``<`` ``<=`` ...    ``Compare(a, [op], [b])``, one operator each (left-associative,
                               not Python's chained comparison)
``a && b && c`` / ``||``       ``BoolOp(And|Or, [a, b, c])`` (flattened, as GitHub does)
=============================  ==============================================================

Precedence, loosest first: ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``!``, then ``.`` ``[]`` and
calls. Every node carries ``col_offset``: the 0-based column of its token.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from typing import TypeVar

from ._errors import ExpressionError
from ._functions import SIGNATURES
from ._lexer import LITERAL_KINDS, Token, TokenKind, shorten, tokenize
from ._limits import MAX_DEPTH, MAX_EXPRESSION_LENGTH

WILDCARD = ...
"""The ``Constant`` value that stands for ``*`` in a ``Subscript``."""

_BINARY_PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4}
_COMPARISONS: dict[str, type[ast.cmpop]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
}
_LOGICAL: dict[str, type[ast.boolop]] = {"&&": ast.And, "||": ast.Or}


def is_wildcard(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is WILDCARD


def operands(node: ast.expr) -> list[ast.expr]:
    """The sub-expressions of a node of our tree."""
    if isinstance(node, ast.Subscript):
        return [node.value, node.slice]
    if isinstance(node, ast.Call):
        return list(node.args)
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    return []


def parse_tree(text: str, allowed_contexts: frozenset[str] | None) -> ast.expr:
    """The tree of ``text``; ``allowed_contexts`` (lower-cased) makes other context names errors."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", MAX_EXPRESSION_LENGTH)
    tree = _Parser(tokenize(text), allowed_contexts).parse()
    _check_depth(tree)
    return tree


def _check_depth(tree: ast.expr) -> None:
    pending = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels", node.col_offset)
        pending.extend((child, depth + 1) for child in operands(node))


_Node = TypeVar("_Node", bound=ast.expr)


def _at(token: Token, node: _Node) -> _Node:
    """``node``, placed at ``token``'s column."""
    node.lineno = 1
    node.col_offset = token.column
    return node


class _Parser:
    def __init__(self, tokens: list[Token], allowed_contexts: frozenset[str] | None) -> None:
        self._tokens = tokens
        self._position = 0
        self._nesting = 0
        self._allowed_contexts = allowed_contexts

    # --- token stream ----------------------------------------------------------------------------

    def _peek(self) -> Token:
        return self._tokens[self._position]

    def _advance(self) -> Token:
        token = self._tokens[self._position]
        if token.kind is not TokenKind.END:
            self._position += 1
        return token

    def _expect(self, kind: TokenKind, description: str) -> Token:
        token = self._advance()
        if token.kind is not kind:
            raise _expected(description, token)
        return token

    @contextlib.contextmanager
    def _nested(self, token: Token) -> Iterator[None]:
        """Guard the recursion of groups, indexes, calls and ``!`` (each adds a tree level, except
        parentheses, which GitHub does not count but which must not overflow Python's stack)."""
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels", token.column)
        try:
            yield
        finally:
            self._nesting -= 1

    # --- grammar ---------------------------------------------------------------------------------

    def parse(self) -> ast.expr:
        if self._peek().kind is TokenKind.END:
            raise ExpressionError("expected an expression", self._peek().column)
        tree = self._parse_binary(1)
        if self._peek().kind is not TokenKind.END:
            raise _unexpected(self._peek())
        return tree

    def _parse_binary(self, min_precedence: int) -> ast.expr:
        left = self._parse_unary()
        while True:
            token = self._peek()
            precedence = _BINARY_PRECEDENCE.get(token.raw) if token.kind is TokenKind.OPERATOR else None
            if precedence is None or precedence < min_precedence:
                return left
            self._advance()
            right = self._parse_binary(precedence + 1)
            left = _binary_node(token, left, right)

    def _parse_unary(self) -> ast.expr:
        token = self._peek()
        if token.kind is TokenKind.OPERATOR and token.raw == "!":
            self._advance()
            with self._nested(token):
                operand = self._parse_unary()
            return _at(token, ast.UnaryOp(op=ast.Not(), operand=operand))
        return self._parse_postfix()

    def _parse_postfix(self) -> ast.expr:
        if self._peek().kind in LITERAL_KINDS:  # GitHub allows no '.' or '[' right after a literal
            token = self._advance()
            return _at(token, ast.Constant(value=token.value))
        node = self._parse_primary()
        while True:
            token = self._peek()
            if token.kind is TokenKind.DEREFERENCE:
                self._advance()
                node = self._parse_property(node, token)
            elif token.kind is TokenKind.START_INDEX:
                self._advance()
                node = self._parse_index(node, token)
            else:
                return node

    def _parse_property(self, target: ast.expr, dot: Token) -> ast.expr:
        token = self._advance()
        if token.kind is TokenKind.PROPERTY_NAME:
            key: ast.expr = _at(token, ast.Constant(value=token.raw))
        elif token.kind is TokenKind.WILDCARD:
            key = _at(token, ast.Constant(value=WILDCARD))
        else:
            raise _expected("a property name or '*' after '.'", token)
        return _at(dot, ast.Subscript(value=target, slice=key, ctx=ast.Load()))

    def _parse_index(self, target: ast.expr, bracket: Token) -> ast.expr:
        if self._peek().kind is TokenKind.WILDCARD:
            key: ast.expr = _at(self._advance(), ast.Constant(value=WILDCARD))
        else:
            with self._nested(bracket):
                key = self._parse_binary(1)
        self._expect(TokenKind.END_INDEX, "']'")
        return _at(bracket, ast.Subscript(value=target, slice=key, ctx=ast.Load()))

    def _parse_primary(self) -> ast.expr:
        token = self._advance()
        if token.kind is TokenKind.NAMED_VALUE:
            return self._context(token)
        if token.kind is TokenKind.FUNCTION:
            return self._parse_call(token)
        if token.kind is TokenKind.START_GROUP:
            with self._nested(token):
                inner = self._parse_binary(1)
            self._expect(TokenKind.END_GROUP, "')'")
            return inner
        raise _unexpected(token)

    def _context(self, token: Token) -> ast.expr:
        name = token.raw.lower()
        if self._allowed_contexts is not None and name not in self._allowed_contexts:
            available = ", ".join(sorted(self._allowed_contexts)) or "none"
            raise ExpressionError(f"unknown context '{token.raw}' (available: {available})", token.column)
        return _at(token, ast.Name(id=name, ctx=ast.Load()))

    def _parse_call(self, name: Token) -> ast.expr:
        key = name.raw.lower()
        signature = SIGNATURES.get(key)
        if signature is None:
            raise ExpressionError(f"unknown function '{name.raw}'", name.column)
        self._expect(TokenKind.START_GROUP, "'('")
        args = self._parse_arguments(name)
        if not signature.min_args <= len(args) <= signature.max_args:
            raise ExpressionError(
                f"{signature.name}() takes {signature.describe_arity()}, got {len(args)}", name.column
            )
        if key == "case" and len(args) % 2 == 0:
            raise ExpressionError(
                f"case() takes predicate/value pairs and a default: an odd number of arguments, got {len(args)}",
                name.column,
            )
        function = _at(name, ast.Name(id=key, ctx=ast.Load()))
        return _at(name, ast.Call(func=function, args=args, keywords=[]))

    def _parse_arguments(self, name: Token) -> list[ast.expr]:
        args: list[ast.expr] = []
        if self._peek().kind is TokenKind.END_GROUP:
            self._advance()
            return args
        with self._nested(name):
            while True:
                args.append(self._parse_binary(1))
                token = self._advance()
                if token.kind is TokenKind.END_GROUP:
                    return args
                if token.kind is not TokenKind.SEPARATOR:
                    raise _expected("',' or ')'", token)


def _binary_node(operator: Token, left: ast.expr, right: ast.expr) -> ast.expr:
    if operator.raw in _LOGICAL:
        op_type = _LOGICAL[operator.raw]
        values = [*_flattened(left, op_type), *_flattened(right, op_type)]
        return _at(operator, ast.BoolOp(op=op_type(), values=values))
    comparison = _COMPARISONS[operator.raw]
    return _at(operator, ast.Compare(left=left, ops=[comparison()], comparators=[right]))


def _flattened(node: ast.expr, op_type: type[ast.boolop]) -> list[ast.expr]:
    """``(a && b) && c`` is one ``&&`` of three operands, exactly like ``a && b && c``."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, op_type):
        return list(node.values)
    return [node]


def _unexpected(token: Token) -> ExpressionError:
    if token.kind is TokenKind.END:
        return ExpressionError("unexpected end of expression", token.column)
    return ExpressionError(f"unexpected token '{shorten(token.raw)}'", token.column)


def _expected(description: str, token: Token) -> ExpressionError:
    if token.kind is TokenKind.END:
        return ExpressionError(f"expected {description}", token.column)
    return ExpressionError(f"expected {description} but found '{shorten(token.raw)}'", token.column)
