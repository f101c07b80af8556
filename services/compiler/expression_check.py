"""Every ``${{ }}`` in the workflow, checked at compile time.

For each string in the document: syntax (with the line and column of the culprit inside the file,
also inside ``run: |`` blocks), contexts available in that field (GitHub's availability table in
:mod:`.contexts`), references that can be resolved statically (``needs.<job>`` must be a direct
need, ``steps.<id>`` an earlier step of the same job, ``inputs.<name>`` a declared input,
``matrix.<key>`` a key of the job's matrix, ``needs.<job>.outputs.<name>`` a declared output) and
functions allowed there. Untrusted values pasted into a ``run:`` script get a warning, since
``${{ }}`` in a script is substituted as text (GitHub's script-injection problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from waterflow_common.expressions import (
    Expression,
    ExpressionError,
    find_expressions,
    parse,
)

from .contexts import (
    KNOWN_CONTEXTS,
    RENAMED_CONTEXTS,
    STATUS_FUNCTIONS,
    Field,
    field_of,
    split_reference,
)
from .report import Report, did_you_mean
from .yaml_source import Path

UNTRUSTED_PREFIXES = ("inputs", "github.event")
_STEP_PROPERTIES = ("outputs", "outcome", "conclusion")
_NEEDS_PROPERTIES = ("outputs", "result")


@dataclass
class JobFacts:
    """What references into a job may name."""

    needs: frozenset[str] = frozenset()
    has_matrix: bool = False
    matrix_keys: frozenset[str] | None = None
    """Keys of a static matrix; None when the matrix is an expression (any key may exist)."""
    step_ids: list[tuple[int, str]] = field(default_factory=list)
    outputs: frozenset[str] | None = None


@dataclass
class Facts:
    inputs: frozenset[str] | None = None
    """Declared workflow inputs; None when the workflow declares none."""
    jobs: dict[str, JobFacts] = field(default_factory=dict)


def check(report: Report, document: dict[str, Any], facts: Facts) -> None:
    """Check every expression in ``document``."""
    _walk(report, facts, document, ())


def _walk(report: Report, facts: Facts, value: Any, path: Path) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(report, facts, item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(report, facts, item, (*path, index))
    elif isinstance(value, str):
        if "${{" in value or (len(path) in (3, 5) and path[-1] == "if" and path[0] == "jobs"):
            where = field_of(path)
            if where is not None:
                _check_string(report, facts, where, path, value)


def _position(report: Report, path: Path, value: str, offset: int, anchor: int, anchor_end: int) -> tuple[int, int]:
    return report.positions.locate(path, value, offset, anchor, value[anchor:anchor_end])


def _check_string(report: Report, facts: Facts, where: Field, path: Path, value: str) -> None:
    try:
        spans = find_expressions(value)
    except ExpressionError as error:
        column = error.column or 0
        report.error(path, "expression", error.message, "close it with '}}'",
                     at=_position(report, path, value, column, column, column + 3))
        return
    if where.condition:
        stripped = value.strip()
        if not spans:
            # ``if:`` without braces: the whole string is one expression.
            start = value.find(stripped) if stripped else 0
            _check_expression(report, facts, where, path, value, stripped, start, start, start + len(stripped))
            return
        whole = len(spans) == 1 and value[:spans[0].start].strip() == "" and value[spans[0].end:].strip() == ""
        if not whole:
            report.warning(path, "if-always-true",
                           "this condition is always true: text outside '${{ }}' makes it a non-empty string",
                           "put the whole condition inside one '${{ }}', or write it without braces")
    if spans and not where.contexts:
        report.error(path, "expression", f"expressions are not allowed in '{where.name}'",
                     "write a literal value here", at=_position(report, path, value, spans[0].start, spans[0].start, spans[0].end))
        return
    for span in spans:
        _check_expression(report, facts, where, path, value, span.text, span.text_start, span.start, span.end)


def _check_expression(report: Report, facts: Facts, where: Field, path: Path, value: str, text: str,
                      text_start: int, anchor: int, anchor_end: int) -> None:
    def at(offset: int) -> tuple[int, int]:
        return _position(report, path, value, text_start + offset, anchor, anchor_end)

    if not text.strip() and not (where.condition and text is value):
        return  # ``${{ }}`` is null, as on GitHub

    try:
        expression = parse(text)
    except ExpressionError as error:
        report.error(path, "expression", f"invalid expression: {error.message}",
                     "see docs/reference/dsl.md#expressions for the syntax", at=at(error.column or 0))
        return
    _check_functions(report, where, path, expression, text, at)
    job = facts.jobs.get(where.job_id) if where.job_id is not None else None
    for reference in sorted(expression.context_references()):
        parts = split_reference(reference)
        offset = _find_reference(text, parts)
        problem = _check_reference(facts, where, job, parts)
        if problem is not None:
            report.error(path, problem[0], problem[1], problem[2], at=at(offset))
        elif where.name.endswith(".run") and _untrusted(parts):
            shown = ".".join(parts)
            env_name = re.sub(r"[^A-Za-z0-9]+", "_", parts[-1]).upper() or "VALUE"
            report.warning(path, "untrusted-input-in-script",
                           f"'{shown}' is pasted into the script as text; a crafted value can run commands",
                           f"pass it through the environment: add '{env_name}: ${{{{ {shown} }}}}' under the step's 'env:' and use \"${env_name}\" in the script",
                           at=at(offset))


def _untrusted(parts: list[str]) -> bool:
    head = parts[0].lower()
    return head == "inputs" or (head in ("github", "waterflow") and len(parts) > 1 and parts[1].lower() == "event")


def _check_functions(report: Report, where: Field, path: Path, expression: Expression, text: str, at: Any) -> None:
    for name in sorted(expression.function_names()):
        if name in STATUS_FUNCTIONS and not where.condition:
            report.error(path, "function", f"{name}() can only be used in 'if' conditions",
                         "status functions describe the job or previous steps; use them in 'if:'",
                         at=at(_find_word(text, name)))
        elif name == "hashfiles" and not where.hash_files:
            report.error(path, "function", f"hashFiles() is not available in '{where.name}'",
                         "hashFiles is computed on the agent, in a step's 'run', 'with' and 'env'", at=at(_find_word(text, name)))


def _find_word(text: str, word: str) -> int:
    match = re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", text, re.IGNORECASE)
    return match.start() if match else 0


def _find_reference(text: str, parts: list[str]) -> int:
    """Column of a reference in ``text`` (its context name, as close to its first property as possible)."""
    head = re.escape(parts[0])
    if len(parts) > 1:
        second = re.escape(parts[1])
        match = re.search(rf"(?<![\w.'-]){head}\s*(?:\.\s*{second}(?![\w-])|\[\s*'{second}'\s*\])", text, re.IGNORECASE)
        if match:
            return match.start()
    return _find_word(text, parts[0])


def _check_reference(facts: Facts, where: Field, job: JobFacts | None, parts: list[str]) -> tuple[str, str, str | None] | None:
    """(rule, message, hint) of what is wrong with a reference, or None."""
    context = parts[0].lower()
    if context not in where.contexts:
        if context in RENAMED_CONTEXTS:
            return ("unknown-context", f"unknown context {parts[0]!r}",
                    f"Waterflow calls it {RENAMED_CONTEXTS[context]!r}")
        if context not in KNOWN_CONTEXTS:
            return ("unknown-context", f"unknown context {parts[0]!r}",
                    did_you_mean(context, KNOWN_CONTEXTS, listing="contexts"))
        available = ", ".join(sorted(where.contexts)) or "none"
        return ("unavailable-context", f"context {context!r} is not available in '{where.name}'",
                f"available here: {available} (see GitHub's context availability table)")
    name = parts[1] if len(parts) > 1 else None
    if context == "inputs" and name is not None and name != "*":
        if facts.inputs is None:
            return ("undefined-input", f"input {name!r} is not declared: the workflow has no 'inputs'",
                    f"declare it: 'inputs: {{{name}: {{type: string}}}}'")
        if name.lower() not in {i.lower() for i in facts.inputs}:
            return ("undefined-input", f"input {name!r} is not declared",
                    did_you_mean(name, facts.inputs, listing="declared inputs"))
    if context == "jobs" and name is not None and name != "*":
        jobs = {j.lower(): j for j in facts.jobs}
        if name.lower() not in jobs:
            return ("undefined-job", f"no job {name!r} in this workflow", did_you_mean(name, facts.jobs, listing="jobs"))
        prop = parts[2] if len(parts) > 2 else None
        declared = facts.jobs[jobs[name.lower()]].outputs
        if prop is not None and prop.lower() == "outputs" and len(parts) > 3 and parts[3] != "*" and declared is not None:
            if parts[3].lower() not in {o.lower() for o in declared}:
                return ("undefined-output", f"job {jobs[name.lower()]!r} declares no output {parts[3]!r}",
                        did_you_mean(parts[3], declared, listing="its outputs"))
        elif prop is not None and prop.lower() not in _NEEDS_PROPERTIES:
            return ("undefined-property", f"'jobs.{name}' has no property {prop!r}", "use 'outputs.<name>' or 'result'")
    if job is None:
        return None
    if context == "matrix":
        if not job.has_matrix:
            return ("unavailable-context", f"job {where.job_id!r} has no matrix, so 'matrix' is not available",
                    "add 'strategy: {matrix: ...}' to the job, or remove the reference")
        if name is not None and name != "*" and job.matrix_keys is not None and name.lower() not in {k.lower() for k in job.matrix_keys}:
            return ("undefined-matrix-key", f"the matrix of job {where.job_id!r} has no key {name!r}",
                    did_you_mean(name, job.matrix_keys, listing="matrix keys"))
    if context == "needs" and name is not None and name != "*":
        needs = {n.lower(): n for n in job.needs}
        if name.lower() not in needs:
            listing = ", ".join(sorted(job.needs)) or "none"
            hint = f"add {name!r} to 'needs' of job {where.job_id!r} (its needs: {listing})" if name in facts.jobs else did_you_mean(name, job.needs, listing="its needs")
            return ("undefined-need", f"job {name!r} is not in the 'needs' of job {where.job_id!r}", hint)
        prop = parts[2] if len(parts) > 2 else None
        if prop is not None and prop.lower() not in _NEEDS_PROPERTIES:
            return ("undefined-property", f"'needs.{name}' has no property {prop!r}", "use 'outputs.<name>' or 'result'")
        needed = facts.jobs.get(needs[name.lower()])
        if prop is not None and prop.lower() == "outputs" and len(parts) > 3 and parts[3] != "*" and needed is not None and needed.outputs is not None:
            if parts[3].lower() not in {o.lower() for o in needed.outputs}:
                return ("undefined-output", f"job {needs[name.lower()]!r} declares no output {parts[3]!r}",
                        did_you_mean(parts[3], needed.outputs, listing="its outputs"))
    if context == "steps" and name is not None and name != "*":
        limit = where.step_index if where.step_index is not None else 1 << 30
        earlier = {sid.lower() for index, sid in job.step_ids if index < limit}
        if name.lower() not in earlier:
            all_ids = [sid for _, sid in job.step_ids]
            own = [sid for index, sid in job.step_ids if index == where.step_index]
            if own and own[0].lower() == name.lower():
                return ("undefined-step", f"step {name!r} cannot read its own results",
                        "use them in a later step, or in the job's 'outputs'")
            if where.step_index is not None and name.lower() in {s.lower() for s in all_ids}:
                return ("undefined-step", f"step {name!r} runs after this one, so its results are not available yet",
                        "only earlier steps of the same job can be referenced")
            return ("undefined-step", f"no step with id {name!r} in job {where.job_id!r}",
                    did_you_mean(name, all_ids, listing="step ids") or "give the step an 'id:' to reference it")
        prop = parts[2] if len(parts) > 2 else None
        if prop is not None and prop.lower() not in _STEP_PROPERTIES:
            return ("undefined-property", f"'steps.{name}' has no property {prop!r}",
                    did_you_mean(prop, _STEP_PROPERTIES, listing="step properties"))
    return None
