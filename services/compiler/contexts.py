"""Which ``${{ }}`` contexts and functions each workflow field may use.

This is GitHub's context availability table ("Contexts reference > Context availability") with
Waterflow's names: ``agent`` is the machine a job runs on (GitHub's ``runner``), ``workflow``, ``run``
and ``waterflow`` describe the run, and ``github`` is kept as an alias of ``waterflow`` so copied
workflows (``github.event.*`` for webhook payloads, ``github.run_id``) still read the same.
"""

from __future__ import annotations

from .yaml_source import Path

KNOWN_CONTEXTS = frozenset({
    "github", "waterflow", "workflow", "run", "inputs", "vars", "secrets", "env", "needs", "strategy",
    "matrix", "job", "steps", "agent", "jobs",
})
RENAMED_CONTEXTS = {"runner": "agent"}
"""GitHub context names that Waterflow spells differently."""
STATUS_FUNCTIONS = frozenset({"success", "failure", "cancelled", "always"})

_BASE = frozenset({"github", "waterflow", "workflow", "run", "inputs", "vars"})
_JOB = _BASE | {"needs", "strategy", "matrix"}
_STEP = _JOB | {"job", "agent", "env", "secrets", "steps"}

NONE: frozenset[str] = frozenset()

# (field, contexts, status functions allowed, hashFiles allowed)
_WORKFLOW_FIELDS: dict[str, frozenset[str]] = {
    "run-name": _BASE,
    "env": _BASE | {"secrets"},
    "concurrency": _BASE,
    "timeout-minutes": _BASE,
    "outputs": _BASE | {"jobs"},
    "defaults": NONE,
    "name": NONE,
    "on": NONE,
    "inputs": NONE,
    "vars": NONE,
}
_JOB_FIELDS: dict[str, frozenset[str]] = {
    "name": _JOB,
    "if": _BASE | {"needs"},
    "runs-on": _JOB,
    "env": _JOB | {"secrets"},
    "outputs": _STEP,
    "timeout-minutes": _JOB,
    "continue-on-error": _JOB,
    "strategy": _BASE | {"needs"},
    "defaults": _JOB | {"env"},
    "with": _JOB,
    "secrets": _JOB | {"secrets"},
    "needs": NONE,
    "uses": NONE,
}
_STEP_FIELDS: dict[str, frozenset[str]] = {
    "if": _STEP - {"secrets"},
    "id": NONE,
    "uses": NONE,
}


class Field:
    """Where a string sits, as far as expressions care."""

    __slots__ = ("name", "job_id", "step_index", "contexts", "condition", "hash_files")

    def __init__(self, name: str, contexts: frozenset[str], *, job_id: str | None = None,
                 step_index: int | None = None, condition: bool = False, hash_files: bool = False) -> None:
        self.name = name
        """The field as users know it, e.g. ``jobs.<job>.runs-on``."""
        self.job_id = job_id
        self.step_index = step_index
        self.contexts = contexts
        self.condition = condition
        """An ``if:``: braces are optional and status functions are allowed."""
        self.hash_files = hash_files


def field_of(path: Path) -> Field | None:
    """The field a value at ``path`` belongs to; None outside any known field."""
    if not path or not isinstance(path[0], str):
        return None
    top = path[0]
    if top != "jobs":
        contexts = _WORKFLOW_FIELDS.get(top)
        return None if contexts is None else Field(top, contexts)
    if len(path) < 3 or not isinstance(path[1], str) or not isinstance(path[2], str):
        return None
    job_id, key = path[1], path[2]
    if key != "steps":
        contexts = _JOB_FIELDS.get(key)
        if contexts is None:
            return None
        return Field(f"jobs.<job>.{key}", contexts, job_id=job_id, condition=key == "if")
    if len(path) < 5 or not isinstance(path[3], int) or not isinstance(path[4], str):
        return None
    step_key = path[4]
    contexts = _STEP_FIELDS.get(step_key, _STEP)
    return Field(f"jobs.<job>.steps[*].{step_key}", contexts, job_id=job_id, step_index=path[3],
                 condition=step_key == "if", hash_files=step_key in HASH_FILES_FIELDS)


HASH_FILES_FIELDS = frozenset({"run", "with", "env"})
"""Step fields whose hashFiles() the agent computes in the workspace (waterflow_common.hashfiles);
the others (``if``, timeouts) are decided by the scheduler before the step reaches an agent."""


def split_reference(reference: str) -> list[str]:
    """``"steps.build.outputs['a b']"`` -> ``["steps", "build", "outputs", "a b"]`` (``*`` kept)."""
    parts: list[str] = []
    i, n = 0, len(reference)
    current = ""
    while i < n:
        char = reference[i]
        if char == ".":
            parts.append(current)
            current = ""
            i += 1
        elif char == "[":
            parts.append(current)
            current = ""
            end = i + 1
            if reference[end:end + 1] == "'":
                end += 1
                text = ""
                while end < n:
                    if reference[end] == "'":
                        if reference[end + 1:end + 2] == "'":
                            text += "'"
                            end += 2
                            continue
                        break
                    text += reference[end]
                    end += 1
                current = text
                i = reference.find("]", end) + 1 or n
            else:
                close = reference.find("]", end)
                current = reference[end:close if close >= 0 else n]
                i = close + 1 if close >= 0 else n
            if i >= n or reference[i] != ".":
                parts.append(current)
                current = ""
            else:
                i += 1
                parts.append(current)
                current = ""
        else:
            current += char
            i += 1
    if current or (reference and reference[-1] == "."):
        parts.append(current)
    return [p for p in parts if p != ""] if parts else [reference]
