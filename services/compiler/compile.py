"""compile_workflow: YAML text -> (Plan, diagnostics). Never raises for a user's mistake.

Order of work: parse YAML with positions, check against the JSON Schema, then the rules a schema
cannot express (job graph, matrix, nodes, reusable workflows, every ``${{ }}``). Schema violations
do not stop the later checks: those run on every part of the document that is well-formed, and all
problems are returned together, sorted by position, like actionlint, so one round trip shows
everything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import msgspec

from waterflow_common.diagnostics import Diagnostic, has_errors
from waterflow_common.expressions import ExpressionError, find_expressions, parse
from waterflow_common.limits import MAX_PLAN_BYTES
from waterflow_common.plan import JobPlan, Plan
from waterflow_common.state import encode_plan

from . import expression_check, graph, jobs, names, reuse, schema, toplevel, yaml_source
from .contexts import split_reference
from .expression_check import Facts, JobFacts
from .nodes import NodeCatalog, default_catalog
from .report import Report
from .reuse import WorkflowLoader
from .yaml_source import Path

__all__ = ["compile_workflow"]


@dataclass(frozen=True)
class _Options:
    catalog: NodeCatalog
    loader: WorkflowLoader | None
    chain: tuple[str, ...]
    """The files being compiled, outermost first (to detect a workflow calling itself)."""


def compile_workflow(source: str, filename: str = "workflow.yml", *, nodes: NodeCatalog | None = None,
                     workflows: WorkflowLoader | None = None) -> tuple[Plan | None, list[Diagnostic]]:
    """Compile a workflow; the plan is None whenever there is at least one error.

    ``nodes`` is the catalog ``uses:`` steps are checked against (default: the node library's);
    ``workflows`` loads the files that jobs call with ``uses:`` (default: none can be called).

    >>> plan, diagnostics = compile_workflow("jobs: {a: {runs-on: web, steps: [{run: echo hi}]}}")
    >>> plan.jobs["a"].runs_on, diagnostics
    ('web', [])
    """
    document, positions, diagnostics = yaml_source.load(source, filename)
    if document is None and has_errors(diagnostics):
        return None, diagnostics
    report = Report(filename, positions)
    report.extend(diagnostics)
    if not isinstance(document, dict):
        report.error((), "type", "a workflow must be a mapping with at least a 'jobs' key",
                     "start with 'jobs:' and define jobs under it")
        return None, report.sorted()
    report.extend(schema.check(document, positions, filename))
    names.check(report, document)
    if report.failed and any(d.rule == "limit" for d in report.sorted()):
        return None, report.sorted()  # over a bound: do not build (it may be huge)
    options = _Options(default_catalog() if nodes is None else nodes, workflows, (filename,))
    plan = _build(report, document, source, filename, options)
    if not report.failed:
        plan = msgspec.structs.replace(plan, secrets=tuple(sorted(secret_names(plan))))
        size = len(encode_plan(plan))
        if size > MAX_PLAN_BYTES:  # it must fit in one NATS message, with room for the run's state
            report.error(("jobs",), "limit", f"the compiled workflow is {size} bytes, over the limit of {MAX_PLAN_BYTES}",
                         "split it into workflows that call each other, or use a matrix instead of repeated jobs", key=True)
    return (None if report.failed else plan), report.sorted()


def secret_names(plan: Plan) -> set[str]:
    """The secrets the plan's expressions read, after called workflows were inlined: what the
    scheduler resolves at dispatch (a computed name, ``secrets[inputs.x]``, is not supported)."""
    names: set[str] = set()

    def visit(value: Any, key: str | None = None) -> None:
        if isinstance(value, dict):
            for item_key, item in value.items():
                visit(item, item_key)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, str) and ("${{" in value or key == "if"):
            try:
                texts = [span.text for span in find_expressions(value)] or ([value] if key == "if" and value.strip() else [])
                references = [ref for text in texts for ref in parse(text).context_references()]
            except ExpressionError:
                return
            for reference in references:
                parts = split_reference(reference)
                if parts[0] == "secrets" and len(parts) > 1 and parts[1] != "*":
                    names.add(parts[1])

    visit(msgspec.to_builtins(msgspec.structs.replace(plan, source="")))
    return names


def _build(report: Report, document: dict[str, Any], source: str, filename: str, options: _Options) -> Plan:
    inputs = toplevel.inputs(report, document.get("inputs"))
    triggers = toplevel.triggers(report, document.get("on"))
    concurrency = toplevel.concurrency(report, document.get("concurrency"))
    plan_jobs = _jobs(report, document, options)
    timeout = document.get("timeout-minutes")
    vars_ = document.get("vars")
    return Plan(
        name=document["name"] if isinstance(document.get("name"), str) and document["name"] else PurePath(filename).stem,
        source_name=filename,
        env=jobs.env_of(document.get("env")),
        vars=dict(vars_) if isinstance(vars_, dict) else {},
        inputs=inputs,
        on=triggers,
        concurrency=concurrency,
        timeout_minutes=jobs.literal_number(report, ("timeout-minutes",), timeout, "timeout-minutes"),
        jobs=plan_jobs,
        source=source,
    )


def _jobs(report: Report, document: dict[str, Any], options: _Options) -> dict[str, JobPlan]:
    """The jobs of one workflow file (calls inlined), in topological order; expressions checked."""
    raw_jobs = document.get("jobs")
    job_map: dict[str, Any] = raw_jobs if isinstance(raw_jobs, dict) else {}
    order = graph.check(report, job_map)
    defaults = jobs.RunDefaults().merged(document.get("defaults"))
    plan_jobs: dict[str, JobPlan] = {}
    called: dict[str, reuse.Called] = {}
    for job_id in order:
        job = job_map[job_id]
        if not isinstance(job, dict):
            continue
        if "uses" in job:
            result = _call(report, job_id, job, options, called, job_map)
            if result is not None:
                plan_jobs.update(result[0])
                called[job_id] = result[1]
            continue
        built = jobs.build_job(report, job_id, job, defaults, options.catalog)
        if built is not None:
            plan_jobs[job_id] = reuse.link(built, called)
    expression_check.check(report, document, _facts(document, job_map, plan_jobs, called))
    return plan_jobs


def _call(report: Report, job_id: str, job: dict[str, Any], options: _Options, called: dict[str, reuse.Called],
          job_map: dict[str, Any]) -> tuple[dict[str, JobPlan], reuse.Called] | None:
    """Inline the workflow a job calls; None (and diagnostics) when it cannot be."""
    reuse.check_call_shape(report, job_id, job)
    reference = job.get("uses")
    path: Path = ("jobs", job_id, "uses")
    if not isinstance(reference, str):
        return None
    if reuse.resolve_name(reference, report.filename) is None:
        report.error(path, "reusable-workflow", f"invalid workflow reference {reference!r}",
                     "call a file next to this one with './path/file.yml', or a template with 'name@v1'")
        return None
    if options.loader is None:
        report.error(path, "reusable-workflow", f"cannot read {reference!r}: no workflow files were given with this workflow",
                     "submit the called files with the workflow (the CLI does), or inline the jobs")
        return None
    loaded = options.loader(reference, report.filename)
    if loaded is None:
        report.error(path, "reusable-workflow", f"workflow {reference!r} not found",
                     "paths are relative to this file, and a client must send the called files with the workflow "
                     "(the CLI does); templates are looked up in the template directories, then the built-in library")
        return None
    if loaded.name in options.chain:
        report.error(path, "reusable-workflow", f"workflows call each other in a cycle: {' -> '.join([*options.chain, loaded.name])}")
        return None
    if len(options.chain) > reuse.MAX_DEPTH:
        report.error(path, "reusable-workflow", f"workflow calls nest deeper than {reuse.MAX_DEPTH} levels")
        return None
    document, positions, diagnostics = yaml_source.load(loaded.source, loaded.name)
    sub = Report(loaded.name, positions)
    sub.extend(diagnostics)
    if not isinstance(document, dict):
        if document is not None or not diagnostics:
            sub.error((), "type", "a workflow must be a mapping with at least a 'jobs' key")
        report.extend(sub.diagnostics)
        report.error(path, "reusable-workflow", f"{loaded.name} is not a valid workflow (see its diagnostics)")
        return None
    sub.extend(schema.check(document, positions, loaded.name))
    inputs = toplevel.inputs(sub, document.get("inputs"))
    called_jobs = _jobs(sub, document, replace(options, chain=(*options.chain, loaded.name)))
    report.extend(sub.diagnostics)
    bound = reuse.bind_inputs(report, job_id, job, inputs, loaded.name)
    if sub.failed:
        errors = sum(1 for d in sub.diagnostics if d.severity == "error")
        report.error(path, "reusable-workflow", f"{loaded.name} has {errors} error{'s' if errors != 1 else ''}",
                     f"see the diagnostics of {loaded.name}")
        return None
    caller_needs = tuple(dict.fromkeys(i for need in graph.needs_of(job) if need in job_map
                                       for i in (called[need].ids if need in called else [need])))
    inlined, call = reuse.inline(job_id, job, called_jobs, jobs.env_of(document.get("env")), bound, caller_needs,
                                 _workflow_outputs(document), reuse.link_replacer(called))
    for new_id in inlined:
        if new_id in job_map:
            report.error(("jobs", new_id), "reusable-workflow", f"job {new_id!r} clashes with a job of {loaded.name} called by {job_id!r}",
                         f"rename {new_id!r}: called jobs are named '<calling job>-<job>'", key=True)
    return inlined, call


def _workflow_outputs(document: dict[str, Any]) -> dict[str, str]:
    """Top-level ``outputs`` of a called workflow as expression texts (``name: ${{ … }}`` or
    ``name: {value: ${{ … }}}``)."""
    raw = document.get("outputs")
    out: dict[str, str] = {}
    for name, value in raw.items() if isinstance(raw, dict) else ():
        text = value.get("value") if isinstance(value, dict) else value
        if isinstance(text, str):
            from .rewrite import as_expression

            out[name] = as_expression(text)
    return out


def _facts(document: dict[str, Any], job_map: dict[str, Any], plan_jobs: dict[str, JobPlan],
           called: dict[str, reuse.Called]) -> Facts:
    """What expressions may refer to, read from the document (also from jobs that failed to build)."""
    raw_inputs = document.get("inputs")
    facts = Facts(inputs=frozenset(raw_inputs) if isinstance(raw_inputs, dict) else None)
    for job_id, job in job_map.items():
        if not isinstance(job, dict):
            continue
        strategy = job.get("strategy")
        matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
        keys: frozenset[str] | None = None
        if isinstance(matrix, dict):
            built = plan_jobs.get(job_id)
            names = {k for k in matrix if k not in ("include", "exclude")}
            include = matrix.get("include")
            for entry in include if isinstance(include, list) else []:
                if isinstance(entry, dict):
                    names.update(entry)
            if built is not None:
                for combination in built.matrix:
                    names.update(combination)
            keys = frozenset(names)
        raw_steps = job.get("steps")
        steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
        outputs = job.get("outputs")
        if "uses" in job:
            declared: frozenset[str] | None = frozenset(called[job_id].outputs) if job_id in called else None
        else:
            declared = frozenset(outputs) if isinstance(outputs, dict) else frozenset()
        facts.jobs[job_id] = JobFacts(
            needs=frozenset(graph.needs_of(job)),
            has_matrix=matrix is not None,
            matrix_keys=keys,
            step_ids=[(i, s["id"]) for i, s in enumerate(steps) if isinstance(s, dict) and isinstance(s.get("id"), str)],
            outputs=declared,
        )
    return facts
