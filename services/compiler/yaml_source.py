"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives nodes with marks; we convert nodes to plain values ourselves so that
(1) every value has a (line, col) for diagnostics, (2) YAML 1.1's surprises do not apply — ``on``,
``yes`` and ``no`` stay strings, as GitHub reads them — and (3) duplicate keys are reported
instead of silently overwritten. libyaml's parser is used when PyYAML was built with it: it is
about ten times faster, which keeps a 1000-line workflow well under the compile-time budget.

Besides the start of every value, the source span of every string scalar is kept so that a
position *inside* a string (a ``${{ }}`` expression in a ``run: |`` block) maps back to its real
line and column: see :meth:`Positions.locate`.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from waterflow_common.diagnostics import Diagnostic

Path = tuple[str | int, ...]

# PyYAML without libyaml: the pure-Python parser gives the same nodes, only slower.
try:
    from yaml import cyaml

    _Parser: Any = cyaml.CParser  # type: ignore[attr-defined]
except (ImportError, AttributeError):
    _Parser = None


@dataclass
class Positions:
    """Where each value (and each mapping key) starts, by its path from the document root."""

    source: str = ""
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    spans: dict[Path, tuple[int, int]] = field(default_factory=dict)
    """Character span ``[start, end)`` in ``source`` of every string scalar."""
    _line_starts: list[int] = field(default_factory=list)

    def of_value(self, path: Path) -> tuple[int, int]:
        """The position of the value at ``path``, or of its nearest known parent."""
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def of_key(self, path: Path) -> tuple[int, int]:
        return self.keys.get(path) or self.of_value(path)

    def line_col(self, index: int) -> tuple[int, int]:
        """1-based (line, col) of a character index in the source."""
        if not self._line_starts:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.source)]
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line + 1, index - self._line_starts[line] + 1

    def locate(self, path: Path, value: str, offset: int, anchor: int, anchor_text: str) -> tuple[int, int]:
        """The source position of ``value[offset]``, the string at ``path``.

        ``anchor_text`` is the piece of ``value`` starting at ``anchor`` that contains ``offset``
        (a whole ``${{ }}``). Scalars in YAML may be indented, folded or escaped, so instead of
        re-implementing YAML's scalar rules we find the same occurrence of ``anchor_text`` in the
        scalar's source text; that is exact for plain, quoted and block (``|``) scalars whenever the
        expression is written on one line without escapes, which is how expressions are written.
        Otherwise the start of the scalar is returned.
        """
        span = self.spans.get(path)
        if span is None or not anchor_text:
            return self.of_value(path)
        raw = self.source[span[0]:span[1]]
        # The whole expression first; if escapes changed it (``''`` in a quoted scalar), its part
        # before ``offset``, which usually has no escapes.
        for needle in (anchor_text, value[anchor:offset]):
            if not needle:
                continue
            occurrence = value.count(needle, 0, anchor)
            found = -1
            for _ in range(occurrence + 1):
                found = raw.find(needle, found + 1)
                if found < 0:
                    break
            if found >= 0:
                return self.line_col(span[0] + found + (offset - anchor))
        return self.of_value(path)


class _Resolver(yaml.resolver.BaseResolver):
    """YAML 1.2-like scalars: only true/false are booleans, only ~/null are null."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
for _first_char, _resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        if _tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:null"):
            _Resolver.yaml_implicit_resolvers.setdefault(_first_char, []).append((_tag, _regexp))


class _PyLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, yaml.constructor.SafeConstructor, _Resolver):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)


if _Parser is not None:
    class _CLoader(_Parser, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)

    _Loader: type = _CLoader
else:
    _Loader = _PyLoader

_CONSTRUCTED_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


_MAX_DEPTH = 64
_MAX_NODES = 200_000
"""YAML aliases can make a tiny file expand exponentially ("billion laughs"); stop well before."""


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load(source: str, filename: str) -> tuple[Any, Positions, list[Diagnostic]]:
    """Parse ``source``; on a syntax error return (None, ..., [diagnostic at the error])."""
    positions = Positions(source=source)
    diagnostics: list[Diagnostic] = []
    loader = _Loader(source)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        return None, positions, [
            Diagnostic(path=filename, line=line, col=col, rule="syntax", message=f"YAML syntax error: {problem}")
        ]
    except yaml.YAMLError as error:  # e.g. a reader error on a control character
        return None, positions, [
            Diagnostic(path=filename, line=1, col=1, rule="syntax", message=f"YAML syntax error: {error}")
        ]
    finally:
        loader.dispose()
    if root is None:
        return None, positions, [
            Diagnostic(path=filename, line=1, col=1, rule="syntax", message="the workflow file is empty")
        ]

    budget = [_MAX_NODES]

    def convert(node: yaml.Node, path: Path, depth: int) -> Any:
        positions.values[path] = _pos(node)
        budget[0] -= 1
        if depth > _MAX_DEPTH or budget[0] < 0:
            if budget[0] == -1 or depth > _MAX_DEPTH:
                what = f"nests deeper than {_MAX_DEPTH} levels" if depth > _MAX_DEPTH else f"has more than {_MAX_NODES} values (aliases expanded)"
                diagnostics.append(Diagnostic(path=filename, line=_pos(node)[0], col=_pos(node)[1], rule="syntax",
                                              message=f"the document {what}"))
            return None
        if isinstance(node, yaml.MappingNode):
            try:
                loader.flatten_mapping(node)
            except yaml.YAMLError as error:
                line, col = _pos(node)
                diagnostics.append(Diagnostic(path=filename, line=line, col=col, rule="syntax", message=f"YAML merge error: {error}"))
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    line, col = _pos(key_node)
                    diagnostics.append(Diagnostic(path=filename, line=line, col=col, rule="syntax", message="mapping keys must be plain strings"))
                    continue
                key = str(key_node.value)
                child = (*path, key)
                if key in result:
                    line, col = _pos(key_node)
                    diagnostics.append(Diagnostic(
                        path=filename, line=line, col=col, rule="syntax", key=dotted(child),
                        message=f"key {key!r} is defined twice", hint="remove one of the two definitions",
                    ))
                positions.keys[child] = _pos(key_node)
                result[key] = convert(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag in _CONSTRUCTED_TAGS:
            try:
                return loader.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError):
                return node.value
        positions.spans[path] = (node.start_mark.index, node.end_mark.index)
        return node.value

    return convert(root, (), 0), positions, diagnostics


def dotted(path: Path) -> str:
    """``("jobs", "build", "steps", 0, "run")`` -> ``jobs.build.steps[0].run``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
