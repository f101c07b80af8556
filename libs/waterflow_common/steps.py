"""What a step is about to do, decided the same way by the scheduler and by the agent.

A job runs on one agent as one job task (``tasks.JobTask``): the agent walks the job's steps
itself, and the scheduler walks them only where no agent is involved (a job's first step, after
a durable wait, after a cancel). Both sides decide with these functions, over the same contexts
(``contexts.step_contexts``), so a step's ``if``, ``with``, script, timeout, ``continue-on-error``
and retry policy mean one thing wherever they are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from . import hashfiles
from .contexts import step_status
from .durations import DURATION_HINT, parse_duration
from .expressions import ExpressionError, evaluate_condition, evaluate_value, is_truthy, render
from .plan import RetryPolicy, StepPlan
from .state import JobState, StepState

SLEEP_NODE = "sleep"
"""``uses: sleep``: a durable timer held by JetStream, never a process on an agent."""


def is_sleep(step: StepPlan) -> bool:
    return bool(step.uses) and step.uses.split("@")[0] == SLEEP_NODE  # type: ignore[union-attr]


def should_run(job: JobState, step: StepPlan, ctx: dict[str, object]) -> bool:
    """The step's ``if:`` (ExpressionError when it cannot be evaluated)."""
    return evaluate_condition(step.if_ or "", ctx, status=step_status(job))


def concrete(step: StepPlan, ctx: dict[str, object]) -> StepPlan:
    """The step with its script rendered and its ``with:`` evaluated (``hashFiles()`` left for the
    executor, which has the workspace: see hashfiles.py). ExpressionError names what failed."""
    return msgspec.structs.replace(
        step,
        run=None if step.run is None else render(step.run, ctx, hash_files=hashfiles.deferred),
        with_=evaluate_value(dict(step.with_), ctx, hash_files=hashfiles.deferred) if step.with_ else {},
    )


def display_name(step: StepPlan, ctx: dict[str, object]) -> str | None:
    """A name with expressions, evaluated (as GitHub shows it); None when it has none or fails."""
    if "${{" not in step.name:
        return None
    try:
        return render(step.name, ctx)
    except ExpressionError:
        return None


def timeout_seconds(step: StepPlan, ctx: dict[str, object], default_minutes: float | None) -> float | None:
    """The step's ``timeout-minutes`` (else the job's or workflow's), in seconds; ValueError says
    what is wrong with an expression."""
    value = minutes(step.timeout_minutes, lambda: ctx) or default_minutes
    return None if value is None else float(value) * 60


def continues_on_error(step: StepPlan, ctx: dict[str, object]) -> tuple[bool, str | None]:
    """The step's ``continue-on-error`` and, if it could not be evaluated, why (counts as false)."""
    value = step.continue_on_error
    if not isinstance(value, str):
        return bool(value), None
    try:
        return is_truthy(evaluate_value(value, ctx)), None
    except ExpressionError as error:
        return False, f"continue-on-error: {error}"


def tried(step: StepState, run_attempt: int) -> int:
    """Failed attempts of the step in this attempt of the run, which count against its
    ``retry:`` (redeliveries do not; a run retry starts the count again)."""
    return sum(1 for a in step.attempts if a.status == "failed" and not a.interrupted and a.run_attempt == run_attempt)


def retry_delay(policy: RetryPolicy | None, failed_attempts: int, retryable: bool) -> float | None:
    """Seconds before the next attempt after ``failed_attempts`` failures, or None: no retry."""
    if policy is None or not retryable or failed_attempts >= policy.attempts:
        return None
    return backoff_delay(policy, failed_attempts)


def backoff_delay(policy: RetryPolicy, failed_attempts: int) -> float:
    """Seconds before the next attempt after ``failed_attempts`` failures (1 = first retry)."""
    return min(policy.initial_interval * policy.backoff_coefficient ** (failed_attempts - 1), policy.max_interval)


def minutes(value: float | str | None, contexts_of: Callable[[], Mapping[str, object]]) -> float | None:
    """A ``timeout-minutes`` value: a number, or an expression evaluated now (ValueError names
    what is wrong with it; 0 or an empty result means no timeout)."""
    if not isinstance(value, str):
        return value
    try:
        result = evaluate_value(value, contexts_of())
    except ExpressionError as error:
        raise ValueError(str(error)) from error
    if result in (None, ""):
        return None
    try:
        number = float(result)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value} evaluated to {result!r}, not a number of minutes") from None
    if number < 0:
        raise ValueError(f"{value} evaluated to {number:g}, a negative number of minutes")
    return number or None


def sleep_seconds(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(f"'seconds' must be a duration ({DURATION_HINT}), got {value!r}")
    return seconds
