"""Reusable workflows and templates: a job with ``uses:`` + ``with:`` is inlined at compile time.

The called file is an ordinary workflow with ``inputs`` (what ``with:`` fills) and top-level
``outputs`` (``name: ${{ jobs.<job>.outputs.<name> }}``). Its jobs become jobs of the caller named
``<calling job>-<job>``; every one of them also needs what the calling job needs, and its
expressions are rewritten: ``inputs.x`` becomes the caller's ``with.x`` (or the input's default),
``needs.<job>`` the renamed job. In the caller, a job that needs the calling job needs all inlined
jobs, ``needs.<call>.outputs.<name>`` becomes the called output's expression, and
``needs.<call>.result`` the combined result. The scheduler therefore never sees a call: only jobs.

Where files come from is the caller's business (:data:`WorkflowLoader`): ``waterflow validate`` and
``dry-run`` read them from disk (:func:`file_loader`); the compiler service only from the files sent
with the request (:func:`mapping_loader`), never from its own disk.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, NamedTuple

import msgspec

from waterflow_common.plan import InputSpec, JobPlan

from . import rewrite
from .report import Report, did_you_mean
from .yaml_source import Path


class WorkflowSource(NamedTuple):
    name: str
    """How diagnostics name the file (a normalized relative path, or the template reference)."""
    source: str


WorkflowLoader = Callable[[str, str], WorkflowSource | None]
"""``(reference as written in uses:, name of the calling file) -> the called file, or None``."""

MAX_DEPTH = 4
"""Calls nest at most this deep (GitHub's limit too)."""

_TEMPLATE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_./-]*)@(?P<version>v\d+(?:\.\d+)*)$")
_ALLOWED_WITH_USES = frozenset({"name", "needs", "if", "uses", "with", "secrets"})


def resolve_name(reference: str, caller: str) -> str | None:
    """The key of a reference: ``./x.yml`` relative to the caller's directory, ``name@v1`` as is."""
    reference = reference.strip()
    if reference.startswith(("./", "../")):
        caller = caller.replace(os.sep, "/")
        # Files called by a template are relative to the template: "name@v1/<path>".
        base = caller if _TEMPLATE.match(caller) else posixpath.dirname(caller)
        return posixpath.normpath(posixpath.join(base, reference))
    if _TEMPLATE.match(reference):
        return reference
    return None


def mapping_loader(files: Mapping[str, str]) -> WorkflowLoader:
    """Look references up in ``files`` (keys as :func:`resolve_name` gives them)."""

    def load(reference: str, caller: str) -> WorkflowSource | None:
        key = resolve_name(reference, caller)
        return WorkflowSource(key, files[key]) if key is not None and key in files else None

    return load


def file_loader(template_dirs: Sequence[FilePath] = ()) -> WorkflowLoader:
    """Read ``./relative.yml`` from disk next to the caller, and ``name@vN`` templates from
    ``<dir>/<name>@<vN>.yml`` or ``<dir>/<name>/<vN>.yml`` in ``template_dirs``."""

    template_roots: dict[str, FilePath] = {}

    def load(reference: str, caller: str) -> WorkflowSource | None:
        key = resolve_name(reference, caller)
        if key is None:
            return None
        match = _TEMPLATE.match(key)
        if match:
            candidates = ([d / f"{match['name']}@{match['version']}.yml" for d in template_dirs]
                          + [d / match["name"] / f"{match['version']}.yml" for d in template_dirs])
        else:
            head, _, rest = key.partition("/")
            candidates = [template_roots[head] / rest] if head in template_roots else [FilePath(key)]
        for candidate in candidates:
            try:
                source = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if match:
                template_roots[key] = candidate.parent
            return WorkflowSource(key, source)
        return None

    return load


def builtin_loader() -> WorkflowLoader:
    """The built-in template library only (``name@vN``, and the files such a template calls):
    what the compiler service resolves by itself when a client sent no file for a reference (a
    plain ``Client.submit`` of a workflow calling ``inspect@v1``). It never reads any other file
    of the service's machine: a reference that is not a template, or that leaves the template's
    directory, is not found."""
    load = file_loader(builtin_template_dirs())

    def guarded(reference: str, caller: str) -> WorkflowSource | None:
        key = resolve_name(reference, caller)
        if key is None or not _TEMPLATE.match(key.partition("/")[0]):
            return None
        return load(reference, caller)

    return guarded


def first_found(*loaders: WorkflowLoader) -> WorkflowLoader:
    """Ask each loader in turn (the files a client sent win over the built-in templates)."""

    def load(reference: str, caller: str) -> WorkflowSource | None:
        for loader in loaders:
            found = loader(reference, caller)
            if found is not None:
                return found
        return None

    return load


class FileWorkflows:
    """A :func:`file_loader` that remembers what it read, so diagnostics in called files can be
    shown with their source lines (``waterflow validate``)."""

    def __init__(self, template_dirs: Sequence[FilePath] = ()) -> None:
        self._load = file_loader(template_dirs)
        self.loaded: dict[str, str] = {}

    def __call__(self, reference: str, caller: str) -> WorkflowSource | None:
        found = self._load(reference, caller)
        if found is not None:
            self.loaded[found.name] = found.source
        return found


def template_dirs(workflow_path: str, environ: Mapping[str, str] | None = None) -> list[FilePath]:
    """Where ``name@vN`` templates are looked up: ``WATERFLOW_TEMPLATE_PATH`` (``os.pathsep``-
    separated), then ``templates/`` next to the workflow, then the built-in library shipped with
    the ``waterflow`` package (last, so a team's own ``inspect@v1`` wins over the built-in one)."""
    environ = os.environ if environ is None else environ
    dirs = [FilePath(p) for p in environ.get("WATERFLOW_TEMPLATE_PATH", "").split(os.pathsep) if p]
    return [*dirs, FilePath(workflow_path).parent / "templates", *builtin_template_dirs()]


def builtin_template_dirs() -> list[FilePath]:
    """``libs/waterflow/templates`` (package data), found without importing the SDK package."""
    import importlib.util

    spec = importlib.util.find_spec("waterflow")
    return [FilePath(location) / "templates" for location in (spec.submodule_search_locations or [])] if spec else []


def collect(path: str, loader: WorkflowLoader) -> dict[str, str]:
    """Every workflow file ``path`` calls, directly or not, by key: what a client sends with a
    submitted workflow so the compiler service can inline them (see :func:`mapping_loader`)."""
    from . import yaml_source

    found: dict[str, str] = {}
    pending = [(path, loader(f"./{posixpath.basename(path)}", path))]
    while pending:
        caller, loaded = pending.pop()
        if loaded is None:
            continue
        document, _, _ = yaml_source.load(loaded.source, loaded.name)
        jobs = document.get("jobs") if isinstance(document, dict) else None
        for job in (jobs or {}).values() if isinstance(jobs, dict) else ():
            reference = job.get("uses") if isinstance(job, dict) else None
            if isinstance(reference, str):
                called = loader(reference, loaded.name)
                if called is not None and called.name not in found:
                    found[called.name] = called.source
                    pending.append((loaded.name, called))
    return found


@dataclass
class Called:
    """A calling job after inlining."""

    ids: list[str]
    outputs: dict[str, str] = field(default_factory=dict)
    """Output name -> expression text (no braces) over the inlined jobs."""

    @property
    def result(self) -> str:
        def any_is(status: str) -> str:
            return " || ".join(f"needs.{i}.result == '{status}'" for i in self.ids)

        return f"({any_is('failure')}) && 'failure' || ({any_is('cancelled')}) && 'cancelled' || 'success'"


def link_replacer(called: Mapping[str, Called]) -> rewrite.Replace:
    """Rewrites ``needs.<call>.outputs.<x>`` and ``needs.<call>.result`` in the caller."""
    lowered = {k.lower(): v for k, v in called.items()}

    def replace(parts: list[str]) -> tuple[int, str] | None:
        if len(parts) < 3 or parts[0].lower() != "needs" or parts[1].lower() not in lowered:
            return None
        call = lowered[parts[1].lower()]
        if parts[2].lower() == "result":
            return 3, call.result
        if parts[2].lower() == "outputs" and len(parts) >= 4:
            outputs = {k.lower(): v for k, v in call.outputs.items()}
            return 4, outputs.get(parts[3].lower(), "null")
        return None

    return replace


def link(job: JobPlan, called: Mapping[str, Called]) -> JobPlan:
    """A caller job that needs calling jobs, pointed at the inlined jobs instead."""
    if not any(need in called for need in job.needs):
        return job
    needs = tuple(dict.fromkeys(i for need in job.needs for i in (called[need].ids if need in called else [need])))
    return _rewritten(job, link_replacer(called), needs=needs)


def _rewritten(job: JobPlan, replace: rewrite.Replace, **changes: Any) -> JobPlan:
    def text(value: str | None, condition: bool = False) -> str | None:
        return None if value is None else rewrite.rewrite_template(value, replace, condition=condition)

    steps = tuple(msgspec.structs.replace(
        step,
        name=text(step.name) or step.name,
        run=text(step.run),
        with_=rewrite.rewrite_value(step.with_, replace),
        env={k: text(v) or "" for k, v in step.env.items()},
        working_directory=text(step.working_directory),
        if_=text(step.if_, True),
    ) for step in job.steps)
    return msgspec.structs.replace(
        job,
        name=text(job.name) or job.name,
        runs_on=text(job.runs_on) or job.runs_on,
        if_=text(job.if_, True),
        env={k: text(v) or "" for k, v in job.env.items()},
        outputs={k: text(v) or "" for k, v in job.outputs.items()},
        matrix_expression=text(job.matrix_expression),
        matrix_template=None if job.matrix_template is None else rewrite.rewrite_value(job.matrix_template, replace),
        steps=steps,
        **changes,
    )


def check_call_shape(report: Report, job_id: str, job: dict[str, Any]) -> None:
    for key in job:
        if key not in _ALLOWED_WITH_USES:
            report.error(("jobs", job_id, key), "reusable-workflow", f"'{key}' cannot be used in a job that calls a workflow with 'uses'",
                         "set it in the called workflow's jobs instead", key=True)


def bind_inputs(report: Report, job_id: str, job: dict[str, Any], inputs: Mapping[str, InputSpec], reference: str) -> dict[str, str]:
    """Input name (lower case) -> expression text, from the caller's ``with:`` and the defaults."""
    path: Path = ("jobs", job_id)
    with_ = job.get("with") if isinstance(job.get("with"), dict) else {}
    declared = {name.lower(): name for name in inputs}
    for key in with_:
        if key.lower() not in declared:
            report.error((*path, "with", key), "reusable-workflow", f"{reference} has no input {key!r}",
                         did_you_mean(key, inputs, listing="its inputs"), key=True)
    given = {key.lower(): value for key, value in with_.items()}
    bound: dict[str, str] = {}
    for lower, name in declared.items():
        spec = inputs[name]
        if lower in given:
            value = given[lower]
            if not (isinstance(value, str) and "${{" in value) and not _fits(value, spec):
                report.error((*path, "with", name), "reusable-workflow",
                             f"input {name!r} of {reference} is a {spec.type}, found {value!r}",
                             f"options: {', '.join(map(str, spec.options))}" if spec.type == "choice" else None)
            bound[lower] = rewrite.as_expression(value)
        elif spec.required and spec.default is None:
            report.error((*path, "with") if "with" in job else (*path, "uses"), "reusable-workflow",
                         f"{reference} requires the input {name!r}", f"add '{name}:' under 'with:'", key="with" in job)
            bound[lower] = "null"
        else:
            fallback = {"boolean": False, "number": 0}.get(spec.type, "")
            bound[lower] = rewrite.literal(spec.default if spec.default is not None else fallback)
    return bound


def _fits(value: object, spec: InputSpec) -> bool:
    if spec.type == "boolean":
        return isinstance(value, bool)
    if spec.type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.type == "choice":
        return not spec.options or value in spec.options
    return isinstance(value, (str, int, float, bool))


def inline(caller_id: str, caller: dict[str, Any], called_jobs: Mapping[str, JobPlan], called_env: Mapping[str, str],
           bound: Mapping[str, str], caller_needs: tuple[str, ...], outputs: Mapping[str, str],
           link_replace: rewrite.Replace) -> tuple[dict[str, JobPlan], Called]:
    """The called workflow's jobs as jobs of the caller, and what later jobs need to know.

    ``bound`` maps inputs to expressions over the caller's contexts; ``link_replace`` rewrites the
    caller's references to jobs that were themselves calls.
    """
    ids = {wid: f"{caller_id}-{wid}" for wid in called_jobs}
    lowered_ids = {k.lower(): v for k, v in ids.items()}
    linked = {name: rewrite.rewrite_expression(expr, link_replace) for name, expr in bound.items()}

    def replace(parts: list[str]) -> tuple[int, str] | None:
        head = parts[0].lower()
        if head == "inputs" and len(parts) >= 2 and parts[1].lower() in linked:
            return 2, linked[parts[1].lower()]
        if head in ("needs", "jobs") and len(parts) >= 2 and parts[1].lower() in lowered_ids:
            return 2, f"needs.{lowered_ids[parts[1].lower()]}"
        return None

    raw_if = caller.get("if")
    caller_if = None
    if isinstance(raw_if, bool):
        caller_if = "true" if raw_if else "false"
    elif isinstance(raw_if, str) and raw_if.strip():
        caller_if = rewrite.rewrite_template(raw_if, link_replace, condition=True)
    caller_name = caller.get("name") if isinstance(caller.get("name"), str) else caller_id
    jobs: dict[str, JobPlan] = {}
    for wid, job in called_jobs.items():
        merged = msgspec.structs.replace(job, env={**called_env, **job.env})
        renamed = _rewritten(
            merged, replace,
            id=ids[wid],
            needs=tuple(dict.fromkeys([*caller_needs, *(ids[n] for n in job.needs if n in ids)])),
        )
        condition = renamed.if_ if caller_if is None else _both(caller_if, renamed.if_)
        jobs[ids[wid]] = msgspec.structs.replace(renamed, if_=condition, name=f"{caller_name} / {renamed.name}")
    call = Called(ids=list(jobs), outputs={name: rewrite.rewrite_expression(expr, replace) for name, expr in outputs.items()})
    return jobs, call


def _strip(condition: str) -> str:
    text = condition.strip()
    return text[3:-2].strip() if text.startswith("${{") and text.endswith("}}") else text


def _both(first: str, second: str | None) -> str:
    return _strip(first) if second is None else f"({_strip(first)}) && ({_strip(second)})"

