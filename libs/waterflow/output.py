"""How every command prints its result: ``-o table`` (the default, for people), ``-o json`` or
``-o yaml`` (for scripts; ``--json`` is ``-o json``). One decision, here, for all commands.

The JSON/YAML document of a command is its SDK model as plain data (``msgspec.to_builtins``):
the shape :mod:`waterflow.models` documents, the same a script gets from :class:`waterflow.Client`.
Each command declares its model with :func:`add_output_options` (``shape=``), and
docs/reference/cli.md documents the shape from that declaration.

Tables never cut or fold an id: id-like columns (:func:`table` ``keep=``) are as wide as their
longest value, and piped output is printed at full width, one row per line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from rich.table import Table
from rich.text import Text

from .terminal import console, wide

FORMATS = ("table", "json", "yaml")
T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """What ``-o json|yaml`` prints for a command: ``model`` (a Struct type), a list of it, or
    ``{"key": model}``; ``note``: a sentence on anything beyond the model."""

    model: Any
    many: bool = False
    note: str = ""


def add_output_options(parser: argparse.ArgumentParser, shape: Shape | dict[str, Shape], default: str = "table") -> None:
    """``-o/--output table|json|yaml`` and ``--json``, and the shape the reference documents
    (a command with an ``action`` argument: the shape of each action). ``default``:
    ``argparse.SUPPRESS`` on a sub-command that also takes the options its parent command takes
    (``dead-letters --json list`` and ``dead-letters list --json`` both work)."""
    parser.add_argument("-o", "--output", choices=FORMATS, default=default,
                        help="table (default), or json/yaml: the documented shape, for scripts")
    parser.add_argument("--json", dest="output", action="store_const", const="json", default=default,
                        help="same as -o json")
    parser.set_defaults(output_shape=shape)


def wants_data(args: argparse.Namespace) -> bool:
    """True when the command prints a document (json/yaml) instead of text for people."""
    return getattr(args, "output", "table") != "table"


def plain(result: Any) -> Any:
    return msgspec.to_builtins(result)


def document(result: Any, output: str) -> str:
    """``result`` as a JSON or YAML document."""
    data = plain(result)
    if output == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")
    return json.dumps(data, indent=2, ensure_ascii=False)


def emit(args: argparse.Namespace, result: T, show: Callable[[T], None]) -> None:
    """Print ``result`` as the user asked: ``show(result)`` for a table, else the document."""
    output = getattr(args, "output", "table")
    if output == "table":
        show(result)
    else:
        sys.stdout.write(document(result, output) + "\n")
        sys.stdout.flush()


def emit_item(output: str, item: Any) -> None:
    """One item of a stream (``logs -f``): a JSON line, or one entry of a YAML list."""
    if output == "json":
        sys.stdout.write(json.dumps(plain(item), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(document([item], "yaml") + "\n")
    sys.stdout.flush()


def table(*columns: str | Text, keep: Iterable[str] = ("id",), **options: Any) -> Table:
    """A table whose ``keep`` columns (ids, names) are never cut nor folded. A header may be a
    ``Text`` (a user's name for a column, never read as markup)."""
    kept = set(keep)
    result = Table(**options)
    for column in columns:
        result.add_column(column, no_wrap=str(column) in kept, overflow="fold")
    return result


def show_table(shown: Table) -> None:
    """Print a table: kept columns as wide as their longest cell; piped, at full width (a script
    reads one row per line, whatever width a pipe is assumed to have)."""
    for column in shown.columns:
        if column.no_wrap:
            cells = [str(getattr(cell, "plain", cell)) for cell in column._cells]
            column.min_width = max([len(str(column.header)), *map(len, cells)])
    (console if console.is_terminal else wide).print(shown)
