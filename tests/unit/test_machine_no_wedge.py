"""No event can wedge a run: an expression that fails wherever the scheduler evaluates it ends
the affected step or job with the reason (one the agent evaluates — a step's script, ``with:`` —
fails the step there: ``test_machine.agent_result`` reports it as the agent does), and any other
error while applying an event ends the run failed with the reason (the agent running a job task
is told to stop)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from test_machine import agent_result, cancels, job_tasks, ran
from waterflow_common.messages import RunCancelRequested, RunCreated, StepStarted
from waterflow_common.plan import JobPlan, Plan, StepPlan
from waterflow_common.state import TERMINAL, initial_state
from waterflow_scheduler import machine

NOW = datetime(2026, 1, 1, tzinfo=UTC)

HASH_FILES = "${{ hashFiles('*.lock') }}"
"""Deferred to the agent in a step's run/with/env; an error where the scheduler decides."""
FAILING = [
    HASH_FILES,
    "${{ fromJSON('not json') }}",
    "${{ fromJSON('{\"a\":') }}",
    "${{ format('{0', 1) }}",
    "${{ format('{1}', 1) }}",
    "${{ toJSON(fromJSON('[1') ) }}",
]


def run(*jobs: JobPlan, env: dict[str, str] | None = None):
    plan = Plan(name="t", jobs={j.id: j for j in jobs}, env=env or {})
    state = initial_state("r1", plan, NOW)
    return plan, state


@pytest.mark.parametrize("expression", FAILING)
@pytest.mark.parametrize("where", ["step env", "job env", "run", "with", "step if", "job if", "job output", "workflow env"])
def test_a_failing_expression_anywhere_ends_the_run_with_the_reason(expression: str, where: str) -> None:
    if expression == HASH_FILES and where in ("step env", "run", "with"):
        pytest.skip("hashFiles() there is computed by the agent (test_hashfiles.py)")
    step_kw: dict = {}
    job_kw: dict = {}
    env = None
    if where == "step env":
        step_kw["env"] = {"X": expression}
    elif where == "job env":
        job_kw["env"] = {"X": expression}
    elif where == "run":
        step_kw["run"] = f"echo {expression}"
    elif where == "with":
        step_kw.update(uses="http@v1", with_={"url": expression})
    elif where == "step if":
        step_kw["if_"] = expression
    elif where == "job if":
        job_kw["if_"] = expression
    elif where == "job output":
        job_kw["outputs"] = {"o": expression}
    else:
        env = {"X": expression}
    step_kw.setdefault("run", "echo ok") if "uses" not in step_kw else None
    plan, state = run(JobPlan(id="j", name="j", runs_on="g", steps=(StepPlan(index=0, name="s", **step_kw),), **job_kw),
                      env=env)
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    if not state.finished:  # the job task was dispatched: its agent runs the step (or fails it) and hands the job back
        (task,) = job_tasks(out)
        machine.apply(state, plan, agent_result(task, agent="a"), NOW)
        machine.apply(state, plan, ran("j", agent="a"), NOW)
    assert state.status == "failed", where
    job = state.jobs["j"]
    reasons = " ".join(filter(None, [state.error, job.error, *(s.error or "" for s in job.steps)]))
    assert reasons.strip(), "no reason given"
    assert all(s.status in TERMINAL for s in job.steps)


def test_an_internal_error_ends_the_run_failed_and_stops_running_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    plan, state = run(JobPlan(id="j", name="j", runs_on="g", steps=(StepPlan(index=0, name="s", run="sleep 100"),
                                                                    StepPlan(index=1, name="t", run="echo"))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="j", step_index=0, attempt=1, task=1, agent="web-1"), NOW)

    def broken(self, event, blocked_by=None):
        raise KeyError("boom")

    monkeypatch.setattr(machine._Run, "apply", broken)
    out = machine.apply(state, plan, RunCancelRequested(run_id="r1", reason="x"), NOW)
    assert state.status == "failed" and "KeyError" in (state.error or "")
    assert [(s, c.task, c.withdraw) for s, c in cancels(out)] == [("wf.control.agent.web-1", 1, True)]
    assert not state.jobs["j"].task_out
    assert any(o.subject.endswith(".run.completed") for o in out)
    assert [s.status for s in state.jobs["j"].steps] == ["cancelled", "skipped"]
