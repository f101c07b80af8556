"""docs/reference/cli.md documents every ``waterflow`` subcommand and every option of each.

The commands are read from the real parser (``waterflow.cli.build_parser``). The reference's
usage blocks are generated from it too; after changing the CLI, regenerate them with::

    python tests/unit/test_cli_reference.py --write
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from waterflow.cli import EXIT_CODES, build_parser
from waterflow.output import Shape

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def commands(parser: argparse.ArgumentParser | None = None, prefix: str = "waterflow") -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(full command, its parser, its help line) for every subcommand, depth first."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub, helps.get(name, "")
                yield from commands(sub, f"{prefix} {name}")


def options(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option and positional of a parser (not -h/--help)."""
    found = set()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue  # a suppressed option is a kept alias (validate --format), not documented
        if action.option_strings:
            found.add(max(action.option_strings, key=len))
        elif action.choices:
            found.add("{" + ",".join(map(str, action.choices)) + "}")
        else:
            found.add(action.metavar if isinstance(action.metavar, str) else action.dest)
    return found


def shape_text(shape: Shape) -> str:
    """One sentence: the document ``-o json|yaml`` prints, linked to the model's fields in sdk.md."""
    name = shape.model.__name__
    if shape.model.__module__ == "waterflow.models":
        link = f"[`{name}`](sdk.md#{name.lower()})"
    else:  # the compiled plan: its fields are documented with the code
        link = f"`{name}` (`{shape.model.__module__}`)"
    text = f"a list of {link}" if shape.many else f"one {link}"
    return text + (f". {shape.note}" if shape.note else ".")


def output_doc(parser: argparse.ArgumentParser) -> list[str]:
    """The "Output" paragraph of a command with ``-o``: from the shape it declares (output.Shape)."""
    shape = parser.get_default("output_shape")
    if shape is None:
        return []
    if isinstance(shape, dict):
        lines = ["Output with `-o json` or `-o yaml` (`--json`), by action:", ""]
        lines += [f"- `{action}`: {shape_text(each)}" for action, each in shape.items()]
        return lines + [""]
    return [f"Output with `-o json` or `-o yaml` (`--json`): {shape_text(shape)}", ""]


def generate() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    parts = [BEGIN, ""]
    top = build_parser()
    parts += ["## waterflow", "", "```text", top.format_help().rstrip(), "```", ""]
    for name, sub, help_line in commands(top):
        sub.prog = name
        parts += [f"## {name}", "", help_line[:1].upper() + help_line[1:] + "." if help_line else "", "", "```text", sub.format_help().rstrip(), "```", ""]
        parts += output_doc(sub)
    parts.append(END)
    return "\n".join(parts)


def _sections(text: str) -> dict[str, str]:
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0] if BEGIN in text else ""
    chunks = re.split(r"^## (waterflow[^\n]*)$", generated, flags=re.M)
    return {chunks[i].strip(): chunks[i + 1] for i in range(1, len(chunks) - 1, 2)}


def test_every_subcommand_has_a_section() -> None:
    documented = _sections(DOC.read_text())
    missing = [name for name, _, _ in commands() if name not in documented]
    assert not missing, f"docs/reference/cli.md lacks {missing}: run `python {Path(__file__).relative_to(DOC.parents[2])} --write`"


def test_every_option_is_documented_in_its_section() -> None:
    documented = _sections(DOC.read_text())
    for name, sub, _ in commands():
        section = documented.get(name, "")
        missing = sorted(o for o in options(sub) if o not in section)
        assert not missing, f"docs/reference/cli.md, {name}: options {missing} are not documented (regenerate with --write)"


def test_every_output_shape_is_documented_in_its_section() -> None:
    documented = _sections(DOC.read_text())
    for name, sub, _ in commands():
        for line in output_doc(sub):
            assert line in documented.get(name, ""), f"docs/reference/cli.md, {name}: output shape not documented (regenerate with --write)"


def test_no_section_for_a_command_that_does_not_exist() -> None:
    existing = {"waterflow"} | {name for name, _, _ in commands()}
    stale = set(_sections(DOC.read_text())) - existing
    assert not stale, f"docs/reference/cli.md documents commands that no longer exist: {sorted(stale)}"


CODES_BEGIN, CODES_END = "<!-- exit-codes:begin -->", "<!-- exit-codes:end -->"


def exit_codes() -> str:
    """The exit-code table, from ``waterflow.cli.EXIT_CODES`` (what main() returns)."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join([CODES_BEGIN, "| code | meaning |", "|---|---|", *rows, CODES_END])


def test_the_exit_codes_are_documented_as_main_returns_them() -> None:
    assert exit_codes() in DOC.read_text(), "docs/reference/cli.md: the exit codes table is stale (regenerate with --write)"


def write() -> None:  # pragma: no cover - a maintenance helper
    text = DOC.read_text() if DOC.exists() else f"# CLI reference\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    text = head + generate() + tail
    before, rest = text.split(CODES_BEGIN, 1)
    text = before + exit_codes() + rest.split(CODES_END, 1)[1]
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":  # pragma: no cover
    if "--write" in sys.argv:
        write()
    else:
        print(generate())
