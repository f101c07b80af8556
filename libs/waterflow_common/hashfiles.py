"""``hashFiles()`` where the files are: on the agent, in the job's workspace.

A step's ``run:``, ``with:`` and ``env:`` are evaluated by the rules scheduler and agent share
(``steps.concrete``, ``contexts.step_contexts_in_job``), which do not know where the workspace is.
So there a call to ``hashFiles(...)`` yields a *deferred* value: a marker naming the patterns,
which the agent's executor replaces with the hash just before the step runs, in the workspace
the job's earlier steps filled (checkout, then ``key: deps-${{ hashFiles('**/lock') }}``). A
job's first step's ``if:`` is decided by the scheduler, so ``hashFiles`` is not available in
``if:`` (the compiler says so).

The hash is GitHub's: the SHA-256 of the concatenated SHA-256 digests of every matching file,
in path order; ``''`` when nothing matches. Patterns are globs relative to the workspace
(``**`` crosses directories); a pattern starting with ``!`` excludes what it matches.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MARK = "\x1fwaterflow:hashFiles:"
END = "\x1f"
_DEFERRED = re.compile(re.escape(MARK) + r"(\[.*?\])" + re.escape(END))


def deferred(patterns: list[str]) -> str:
    """The marker the scheduler puts where ``hashFiles(patterns)`` was called."""
    return f"{MARK}{json.dumps(patterns)}{END}"


def hash_files(workspace: Path, patterns: Iterable[str]) -> str:
    """GitHub's ``hashFiles`` over the files of ``workspace`` matching ``patterns``."""
    included: set[Path] = set()
    excluded: set[Path] = set()
    root = workspace.resolve()
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            continue  # only files inside the workspace
        for path in root.glob(pattern):
            if path.is_file():
                (excluded if negate else included).add(path)
    files = sorted(included - excluded)
    if not files:
        return ""
    total = hashlib.sha256()
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
        total.update(digest.digest())
    return total.hexdigest()


def resolve(value: Any, workspace: Path) -> Any:
    """``value`` (a string, or lists and mappings of them) with every deferred hash computed."""
    if isinstance(value, str):
        if MARK not in value:
            return value
        return _DEFERRED.sub(lambda m: hash_files(workspace, json.loads(m.group(1))), value)
    if isinstance(value, dict):
        return {key: resolve(item, workspace) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, workspace) for item in value]
    return value
