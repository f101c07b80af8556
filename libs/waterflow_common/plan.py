"""The execution plan: what the compiler makes of a workflow file, immutable once stored.

A plan is the only thing the scheduler reads about a workflow; it never sees YAML. Keeping it a
typed Struct means a field added to the DSL is added here once, and old plans still decode
(every field has a default).
"""

from __future__ import annotations

import msgspec


class StepPlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step of a job, in the order it runs."""

    index: int
    id: str | None = None
    name: str
    run: str | None = None
    shell: str | None = None
    uses: str | None = None
    with_: dict[str, object] = msgspec.field(default_factory=dict, name="with")
    env: dict[str, str] = msgspec.field(default_factory=dict)
    working_directory: str | None = None
    if_: str | None = msgspec.field(default=None, name="if")
    timeout_minutes: float | None = None
    continue_on_error: bool = False
    line: int = 0
    """1-based line of the step in the source file, for messages at run time."""


class JobPlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One job: a list of steps that run on one agent of ``runs_on``."""

    id: str
    name: str
    runs_on: str
    needs: tuple[str, ...] = ()
    if_: str | None = msgspec.field(default=None, name="if")
    env: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_minutes: float | None = None
    continue_on_error: bool = False
    steps: tuple[StepPlan, ...] = ()


class Plan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A whole compiled workflow. Jobs are listed in a valid topological order."""

    version: int = 1
    name: str
    source_name: str = "workflow.yml"
    env: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_minutes: float | None = None
    jobs: dict[str, JobPlan]
    source: str = ""
    """The YAML text as submitted, kept for `waterflow status --source` and re-runs."""
