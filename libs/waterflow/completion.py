"""Shell completion: ``waterflow completion bash|zsh|fish`` prints a script made by shtab from the
real argparse parser, so it completes every command and option there is.

Run ids (``status``, ``logs``, ``cancel``, ``retry``) and group names complete from the API: the
script calls ``waterflow __complete runs|groups``, which prints one value per line, quickly (a
short timeout) and silently: nothing at all when the API cannot be reached or refuses the key.
It reads ``WATERFLOW_API_URL``/``WATERFLOW_API_KEY`` like every command.

Install (see docs/reference/cli.md, "Shell completion")::

    waterflow completion bash > ~/.local/share/bash-completion/completions/waterflow
    waterflow completion zsh > "${fpath[1]}/_waterflow"
    waterflow completion fish > ~/.config/fish/completions/waterflow.fish
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

SHELLS = ("bash", "zsh", "fish")
COMPLETE_COMMAND = "__complete"
KINDS = ("runs", "groups")
TIMEOUT = 2.0
"""Seconds the API gets to answer a completion (a shell waits for it at every TAB)."""

_SCRIPTS = {
    "bash": """
_waterflow_runs() {{ compgen -W "$({prog} {cmd} runs 2>/dev/null)" -- "$1"; }}
_waterflow_groups() {{ compgen -W "$({prog} {cmd} groups 2>/dev/null)" -- "$1"; }}
""",
    "zsh": """
_waterflow_runs() {{ local -a values; values=(${{(f)"$({prog} {cmd} runs 2>/dev/null)"}}); compadd -a values; }}
_waterflow_groups() {{ local -a values; values=(${{(f)"$({prog} {cmd} groups 2>/dev/null)"}}); compadd -a values; }}
""",
}
_DYNAMIC = {
    "runs": {"bash": "_waterflow_runs", "zsh": "_waterflow_runs", "fish": f"({{prog}} {COMPLETE_COMMAND} runs 2>/dev/null)"},
    "groups": {"bash": "_waterflow_groups", "zsh": "_waterflow_groups", "fish": f"({{prog}} {COMPLETE_COMMAND} groups 2>/dev/null)"},
}

# (command path, argument dest) -> what completes it; the one table of dynamic completions.
COMPLETES: dict[tuple[str, str], str] = {
    ("status", "run_id"): "runs", ("logs", "run_id"): "runs", ("cancel", "run_id"): "runs",
    ("retry", "run_id"): "runs", ("group", "target"): "groups", ("run", "group"): "groups",
    ("node list", "group"): "groups", ("agent", "group"): "groups", ("up", "group"): "groups",
    ("group", "include"): "groups",
}
FILES: set[tuple[str, str]] = {
    ("run", "file"), ("validate", "files"), ("dry-run", "file"), ("trigger add", "file"), ("file put", "path"),
    ("agent", "config"),
}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}".strip())


def script(parser: argparse.ArgumentParser, shell: str, prog: str = "waterflow") -> str:
    """The completion script of ``parser`` for ``shell``."""
    import shtab

    for path, command in _commands(parser):
        for action in command._actions:
            kind = COMPLETES.get((path, action.dest))
            if kind:
                action.complete = {s: f.format(prog=prog) for s, f in _DYNAMIC[kind].items()}  # type: ignore[attr-defined]
            elif (path, action.dest) in FILES:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    preamble = {s: text.format(prog=prog, cmd=COMPLETE_COMMAND) for s, text in _SCRIPTS.items()}
    return str(shtab.complete(parser, shell=shell, preamble=preamble))


def values(kind: str) -> list[str]:
    """What completes ``kind`` (``runs``: recent run ids, newest first; ``groups``: group names);
    empty when the API is unreachable, refuses, or answers anything unexpected."""
    from .client import ApiError, Client

    try:
        client = Client(timeout=TIMEOUT)
        if kind == "runs":
            return [run.id for run in client.list(limit=100)]
        if kind == "groups":
            return [group.name for group in client.groups().groups]
    except (ApiError, OSError, ValueError):
        return []
    return []


def complete_main(argv: list[str]) -> int:
    """``waterflow __complete KIND``: print the values, one per line; never fails (exit 0)."""
    for value in values(argv[0] if argv else ""):
        sys.stdout.write(value + "\n")
    return 0
