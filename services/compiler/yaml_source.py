"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives nodes with marks; we convert nodes to plain values ourselves so that
(1) every value has a (line, col) for diagnostics, (2) YAML 1.1's surprises do not apply — ``on``,
``yes`` and ``no`` stay strings, as GitHub reads them — and (3) duplicate keys are reported
instead of silently overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from waterflow_common.diagnostics import Diagnostic

Path = tuple[str | int, ...]


@dataclass
class Positions:
    """Where each value (and each mapping key) starts, by its path from the document root."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def of_value(self, path: Path) -> tuple[int, int]:
        """The position of the value at ``path``, or of its nearest known parent."""
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def of_key(self, path: Path) -> tuple[int, int]:
        return self.keys.get(path) or self.of_value(path)


class _Resolver(yaml.resolver.BaseResolver):
    """YAML 1.2-like scalars: only true/false are booleans, only ~/null are null."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
for _first_char, _resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        if _tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:null"):
            _Resolver.yaml_implicit_resolvers.setdefault(_first_char, []).append((_tag, _regexp))


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, yaml.constructor.SafeConstructor, _Resolver):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load(source: str, filename: str) -> tuple[Any, Positions, list[Diagnostic]]:
    """Parse ``source``; on a syntax error return (None, ..., [diagnostic at the error])."""
    positions = Positions()
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
    finally:
        loader.dispose()
    if root is None:
        return None, positions, [
            Diagnostic(path=filename, line=1, col=1, rule="syntax", message="the workflow file is empty")
        ]

    def convert(node: yaml.Node, path: Path) -> Any:
        positions.values[path] = _pos(node)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None:
                    line, col = _pos(key_node)
                    diagnostics.append(Diagnostic(path=filename, line=line, col=col, rule="syntax", message="mapping keys must be plain strings"))
                    continue
                child = (*path, key)
                if key in result:
                    line, col = _pos(key_node)
                    diagnostics.append(Diagnostic(
                        path=filename, line=line, col=col, rule="syntax", key=_dotted(child),
                        message=f"key {key!r} is defined twice", hint="remove one of the two definitions",
                    ))
                positions.keys[child] = _pos(key_node)
                result[key] = convert(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"):
            try:
                return loader.construct_object(node, deep=True)
            except yaml.YAMLError:
                return node.value
        return node.value

    return convert(root, ()), positions, diagnostics


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


dotted = _dotted
