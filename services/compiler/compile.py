"""compile_workflow: YAML text -> (Plan, diagnostics). Never raises for a user's mistake.

Order of work: parse YAML with positions, check against the JSON Schema, then the rules a schema
cannot express (job graph, matrix, nodes, every ``${{ }}``). Schema violations do not stop the
later checks: those run on every part of the document that is well-formed, and all problems are
returned together, sorted by position, like actionlint, so one round trip shows everything.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from waterflow_common.diagnostics import Diagnostic, has_errors
from waterflow_common.plan import JobPlan, Plan

from . import expression_check, graph, jobs, schema, toplevel, yaml_source
from .expression_check import Facts, JobFacts
from .nodes import NodeCatalog, default_catalog
from .report import Report

__all__ = ["compile_workflow"]


def compile_workflow(source: str, filename: str = "workflow.yml", *,
                     nodes: NodeCatalog | None = None) -> tuple[Plan | None, list[Diagnostic]]:
    """Compile a workflow; the plan is None whenever there is at least one error.

    ``nodes`` is the catalog ``uses:`` steps are checked against (default: the node library's).

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
    plan = _build(report, document, source, filename, default_catalog() if nodes is None else nodes)
    return (None if report.failed else plan), report.sorted()


def _build(report: Report, document: dict[str, Any], source: str, filename: str, catalog: NodeCatalog) -> Plan | None:
    raw_jobs = document.get("jobs")
    job_map: dict[str, Any] = raw_jobs if isinstance(raw_jobs, dict) else {}
    inputs = toplevel.inputs(report, document.get("inputs"))
    triggers = toplevel.triggers(report, document.get("on"))
    concurrency = toplevel.concurrency(report, document.get("concurrency"))
    order = graph.check(report, job_map)
    defaults = jobs.RunDefaults().merged(document.get("defaults"))

    plan_jobs: dict[str, JobPlan] = {}
    for job_id in order:
        job = job_map[job_id]
        if isinstance(job, dict):
            built = jobs.build_job(report, job_id, job, defaults, catalog)
            if built is not None:
                plan_jobs[job_id] = built
    expression_check.check(report, document, _facts(document, job_map, plan_jobs))

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


def _facts(document: dict[str, Any], job_map: dict[str, Any], plan_jobs: dict[str, JobPlan]) -> Facts:
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
            for kind in ("include",):
                for entry in matrix.get(kind) or [] if isinstance(matrix.get(kind), list) else []:
                    if isinstance(entry, dict):
                        names.update(entry)
            if built is not None:
                for combination in built.matrix:
                    names.update(combination)
            keys = frozenset(names)
        raw_steps = job.get("steps")
        steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
        outputs = job.get("outputs")
        facts.jobs[job_id] = JobFacts(
            needs=frozenset(graph.needs_of(job)),
            has_matrix=matrix is not None,
            matrix_keys=keys,
            step_ids=[(i, s["id"]) for i, s in enumerate(steps) if isinstance(s, dict) and isinstance(s.get("id"), str)],
            outputs=frozenset(outputs) if isinstance(outputs, dict) else (frozenset() if "uses" not in job else None),
        )
    return facts
