"""The run state machine, without any I/O: how runs advance, and idempotency."""

from __future__ import annotations

import msgspec

from waterflow_common.messages import RunCreated, StepFailed, StepStarted, StepSucceeded, StepTask, decode_event
from waterflow_common.state import initial_state
from waterflow_compiler import compile_workflow
from waterflow_scheduler import machine

WORKFLOW = """
jobs:
  a:
    runs-on: g1
    steps:
      - run: echo a1
      - run: echo a2
  b:
    runs-on: g2
    needs: a
    steps:
      - run: echo b1
  c:
    runs-on: g1
    needs: [b]
    steps:
      - run: echo c1
"""


def _setup():
    plan, diagnostics = compile_workflow(WORKFLOW, "w.yml")
    assert plan is not None, diagnostics
    created = RunCreated(run_id="r1", workflow=plan.name)
    return plan, initial_state("r1", plan, created.at), created


def _types(outgoing):
    return [o.subject.split(".", 3)[-1] if o.subject.startswith("wf.events") else o.subject for o in outgoing]


def _result(cls, job, index, attempt=1, **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent="x", **kw)


def test_created_starts_jobs_without_needs() -> None:
    plan, state, created = _setup()
    out = machine.apply(state, plan, created)
    assert state.status == "running"
    assert state.jobs["a"].status == "running" and state.jobs["b"].status == "pending"
    assert _types(out) == ["job.started", "wf.tasks.group.g1", "step.dispatched"]
    task = msgspec.json.decode(out[1].data, type=StepTask)
    assert (task.job_id, task.step.index, task.attempt, task.group) == ("a", 0, 1, "g1")


def test_steps_then_needs_then_completion() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    machine.apply(state, plan, _result(StepSucceeded, "a", 0, exit_code=0))
    assert state.jobs["a"].steps[1].status == "dispatched"
    out = machine.apply(state, plan, _result(StepSucceeded, "a", 1, exit_code=0))
    assert "job.completed" in _types(out) and "wf.tasks.group.g2" in _types(out)
    machine.apply(state, plan, _result(StepSucceeded, "b", 0, exit_code=0))
    out = machine.apply(state, plan, _result(StepSucceeded, "c", 0, exit_code=0))
    assert state.status == "succeeded"
    assert _types(out)[-1] == "run.completed"


def test_failure_skips_rest_and_dependents() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    out = machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=3))
    assert state.jobs["a"].steps[1].status == "skipped"
    assert state.jobs["a"].status == "failed"
    assert state.jobs["b"].status == "skipped" and state.jobs["c"].status == "skipped"
    assert state.status == "failed"
    completed = decode_event(out[-1].data)
    assert completed.type == "run.completed" and completed.status == "failed"


def test_duplicate_and_stale_events_change_nothing() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    assert machine.apply(state, plan, created) == []
    first = _result(StepSucceeded, "a", 0, exit_code=0)
    assert machine.apply(state, plan, first)
    before = machine.snapshot(state)
    assert machine.apply(state, plan, first) == []  # redelivered result
    assert machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=1)) == []  # second agent
    assert machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, agent="y")) == []
    assert machine.apply(state, plan, _result(StepSucceeded, "a", 1, attempt=7)) == []  # unknown attempt
    assert machine.snapshot(state) == before


def test_started_marks_running() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, agent="agent-7"))
    step = state.jobs["a"].steps[0]
    assert (step.status, step.agent) == ("running", "agent-7")


def test_run_level_contexts_follow_a_run_retry() -> None:
    """The run-level contexts are evaluated once per event and shared by every job and step
    (EventContexts): they must never outlive the event — a retried run's steps see the new
    ``github.run_attempt`` in the workflow and job env."""
    from waterflow_common.messages import RunRetryRequested

    plan, diagnostics = compile_workflow("""
env:
  ATTEMPT: ${{ github.run_attempt }}
jobs:
  a:
    runs-on: g1
    env:
      JOB_ATTEMPT: attempt ${{ github.run_attempt }}
    steps:
      - run: echo a
""", "w.yml")
    assert plan is not None, diagnostics
    state = initial_state("r1", plan, RunCreated(run_id="r1", workflow=plan.name).at)
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow=plan.name))
    first = msgspec.json.decode(out[1].data, type=StepTask)
    assert (first.env["ATTEMPT"], first.env["JOB_ATTEMPT"]) == ("1", "attempt 1")
    machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=1))
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"))
    retried = next(msgspec.json.decode(o.data, type=StepTask) for o in out if o.subject.startswith("wf.tasks"))
    assert (retried.env["ATTEMPT"], retried.env["JOB_ATTEMPT"]) == ("2", "attempt 2")
