"""The execution plan: what the compiler makes of a workflow file, immutable once stored.

A plan is the only thing the scheduler reads about a workflow; it never sees YAML. Keeping it a
typed Struct means a field added to the DSL is added here once, and old plans still decode
(every field has a default).
"""

from __future__ import annotations

import msgspec


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``retry:`` of a step. Delay before attempt n+1 = min(initial * coefficient**(n-1), max)."""

    attempts: int = 1
    """Total attempts including the first (1 = no retry)."""
    initial_interval: float = 1.0
    """Seconds before the first retry."""
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0


class InputSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One declared workflow input (``inputs.<name>``), validated when a run is submitted."""

    type: str = "string"
    """string | number | boolean | choice"""
    required: bool = False
    default: object = None
    description: str = ""
    options: tuple[object, ...] = ()


class Concurrency(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    group: str
    """May contain ${{ }} expressions (evaluated at submit)."""
    cancel_in_progress: bool = False


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
    timeout_minutes: float | str | None = None
    """Minutes, or a ${{ }} expression evaluated when the step is dispatched."""
    continue_on_error: bool | str = False
    """A boolean, or a ${{ }} expression evaluated when the step fails."""
    retry: RetryPolicy | None = None
    line: int = 0
    """1-based line of the step in the source file, for messages at run time."""


class JobPlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One job: a list of steps that run on one agent of ``runs_on``."""

    id: str
    name: str
    runs_on: str
    """A server group name, or a ${{ }} expression evaluated when the job becomes ready."""
    each: bool = False
    """Fan-out: run the job once on every healthy agent of the group (``runs-on: {group, each: true}``)."""
    labels: tuple[str, ...] = ()
    """Only agents with all these labels qualify."""
    needs: tuple[str, ...] = ()
    if_: str | None = msgspec.field(default=None, name="if")
    env: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_minutes: float | str | None = None
    """Minutes, or a ${{ }} expression evaluated when the job (each instance) starts."""
    continue_on_error: bool | str = False
    """A boolean, or a ${{ }} expression (e.g. ``${{ matrix.experimental }}``) evaluated per instance."""
    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    """Job outputs: name -> template with ${{ }} (usually ``steps.<id>.outputs.<name>``)."""
    matrix: tuple[dict[str, object], ...] = ()
    """The expanded matrix combinations (include/exclude applied); empty = no matrix."""
    matrix_expression: str | None = None
    """A matrix given as one ${{ }} expression (e.g. fromJSON(needs.x.outputs.list)), expanded at run time."""
    matrix_template: dict[str, object] | None = None
    """A matrix mapping with ``${{ }}`` inside (``os: ${{ fromJSON(needs.setup.outputs.os) }}``,
    ``include: [{env: "${{ inputs.env }}"}]``): evaluated when the job starts, then expanded by the
    same rules as a static one (GitHub evaluates these with ``needs``, ``inputs`` and ``vars``)."""
    fail_fast: bool = True
    max_parallel: int | None = None
    steps: tuple[StepPlan, ...] = ()

    @property
    def expands(self) -> bool:
        """A matrix or fan-out job: it runs as instances, made when it starts."""
        return bool(self.matrix or self.matrix_expression or self.matrix_template or self.each)


class Plan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A whole compiled workflow. Jobs are listed in a valid topological order."""

    version: int = 1
    name: str
    source_name: str = "workflow.yml"
    env: dict[str, str] = msgspec.field(default_factory=dict)
    vars: dict[str, object] = msgspec.field(default_factory=dict)
    inputs: dict[str, InputSpec] = msgspec.field(default_factory=dict)
    on: dict[str, object] = msgspec.field(default_factory=dict)
    """Triggers as written (manual, schedule, webhook); recorded for the trigger services."""
    concurrency: Concurrency | None = None
    timeout_minutes: float | None = None
    jobs: dict[str, JobPlan]
    source: str = ""
    """The YAML text as submitted, kept for `waterflow status --source` and re-runs."""
    secrets: tuple[str, ...] | None = None
    """Names of the secrets the plan's expressions read (``secrets.NAME``), found by the compiler:
    the scheduler resolves these and no others. None in plans made before it was recorded."""
