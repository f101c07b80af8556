"""The run state machine, without any I/O: how runs advance, and idempotency.

The scheduler sends each job as one job task; the agent that takes it reports its steps (events
carrying the task's number) and hands the job back with ``job.ran``. The helpers here build what
a real agent sends; the other test_machine_* modules import them."""

from __future__ import annotations

import msgspec

from waterflow_common import contexts
from waterflow_common import steps as step_policy
from waterflow_common.expressions import ExpressionError
from waterflow_common.messages import (
    CancelJob,
    JobRan,
    RunCreated,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    decode_event,
)
from waterflow_common.plan import StepPlan
from waterflow_common.state import initial_state
from waterflow_common.tasks import JobTask
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


# --- what an agent sends (shared by the test_machine_* modules) ----------------------------------
def job_tasks(outgoing) -> list[JobTask]:
    """The job tasks among what the scheduler decided to publish."""
    return [msgspec.json.decode(o.data, type=JobTask) for o in outgoing if ".tasks." in o.subject]


def cancels(outgoing) -> list[tuple[str, CancelJob]]:
    """(subject, command) of the CancelJob commands decided (core NATS, not stored)."""
    return [(o.subject, msgspec.json.decode(o.data, type=CancelJob)) for o in outgoing if not o.stored]


def ran(job: str, task: int = 1, agent: str = "x", run_id: str = "r1", **kw) -> JobRan:
    """The agent hands the job back (``job.ran``)."""
    return JobRan(run_id=run_id, job_id=job, task=task, agent=agent, **kw)


def skipped(job: str, index: int, task: int = 1, run_id: str = "r1") -> StepSkipped:
    """The agent found the step's ``if`` false."""
    return StepSkipped(run_id=run_id, job_id=job, step_index=index, reason="condition false", task=task)


def as_agent(task: JobTask, index: int | None = None) -> tuple[StepPlan, dict[str, object]]:
    """Step ``index`` (default: the task's first) as the agent running ``task`` makes it concrete
    (script rendered, ``with:`` evaluated) and the step's contexts; ExpressionError as the agent gets it."""
    index = task.from_step if index is None else index
    ctx = contexts.step_contexts_in_job(task.contexts, task.plan, task.job, index)
    return step_policy.concrete(task.plan.steps[index], ctx), ctx


def agent_result(task: JobTask, agent: str = "x") -> StepSucceeded | StepFailed:
    """The result an agent reports for the task's first step when the command itself succeeds:
    a failure when the agent cannot make the step concrete or read its timeout (as services/agent/job.py)."""
    common = dict(run_id=task.run_id, job_id=task.job.id, step_index=task.from_step, attempt=task.attempt,
                  task=task.task, agent=agent)
    try:
        step_plan, ctx = as_agent(task)
    except ExpressionError as error:
        return StepFailed(**common, retryable=False, error=f"expression error: {error}")
    try:
        step_policy.timeout_seconds(step_plan, ctx, task.timeout_minutes)
    except ValueError as error:
        return StepFailed(**common, retryable=False, error=f"timeout-minutes: {error}")
    return StepSucceeded(**common, exit_code=0)


def _setup():
    plan, diagnostics = compile_workflow(WORKFLOW, "w.yml")
    assert plan is not None, diagnostics
    created = RunCreated(run_id="r1", workflow=plan.name)
    return plan, initial_state("r1", plan, created.at), created


def _types(outgoing):
    return [o.subject.split(".", 3)[-1] if o.subject.startswith("wf.events") else o.subject for o in outgoing]


def _result(cls, job, index, attempt=1, task=1, **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, task=task, agent="x", **kw)


def test_created_starts_jobs_without_needs() -> None:
    plan, state, created = _setup()
    out = machine.apply(state, plan, created)
    assert state.status == "running"
    assert state.jobs["a"].status == "running" and state.jobs["b"].status == "pending"
    assert _types(out) == ["job.started", "wf.tasks.group.g1", "step.dispatched"]
    task = msgspec.json.decode(out[1].data, type=JobTask)
    assert (task.job.id, task.from_step, task.attempt, task.group, task.task) == ("a", 0, 1, "g1", 1)
    assert [s.index for s in task.plan.steps] == [0, 1]  # the whole job goes to one agent
    dispatched = decode_event(out[2].data)
    assert (dispatched.step_index, dispatched.attempt, dispatched.task) == (0, 1, 1)  # one per job task
    assert state.jobs["a"].task == 1 and state.jobs["a"].task_out


def test_steps_then_needs_then_completion() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    assert machine.apply(state, plan, _result(StepSucceeded, "a", 0, exit_code=0)) == []
    assert state.jobs["a"].steps[1].status == "pending"  # the agent goes on with it: nothing dispatched
    machine.apply(state, plan, _result(StepStarted, "a", 1))
    assert state.jobs["a"].steps[1].status == "running"
    out = machine.apply(state, plan, _result(StepSucceeded, "a", 1, exit_code=0))
    assert out == [] and state.jobs["a"].status == "running"  # until the agent hands the job back
    out = machine.apply(state, plan, ran("a"))
    assert "job.completed" in _types(out) and "wf.tasks.group.g2" in _types(out)
    machine.apply(state, plan, _result(StepSucceeded, "b", 0, exit_code=0))
    machine.apply(state, plan, ran("b"))
    machine.apply(state, plan, _result(StepSucceeded, "c", 0, exit_code=0))
    out = machine.apply(state, plan, ran("c"))
    assert state.status == "succeeded"
    assert _types(out)[-1] == "run.completed"


def test_failure_skips_rest_and_dependents() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=3))
    machine.apply(state, plan, skipped("a", 1))  # the agent found success() false
    out = machine.apply(state, plan, ran("a"))
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
    machine.apply(state, plan, first)
    before = machine.snapshot(state)
    assert machine.snapshot(state) != machine.snapshot(_setup()[1])
    assert machine.apply(state, plan, first) == []  # redelivered result
    assert machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=1)) == []  # second agent
    assert machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, task=1, agent="y")) == []
    assert machine.apply(state, plan, _result(StepSucceeded, "a", 1, task=2)) == []  # unknown task
    assert machine.apply(state, plan, ran("a", task=2)) == []
    assert machine.snapshot(state) == before
    machine.apply(state, plan, _result(StepSucceeded, "a", 1))
    out = machine.apply(state, plan, ran("a"))
    assert "job.completed" in _types(out)
    before = machine.snapshot(state)
    assert machine.apply(state, plan, ran("a")) == []  # job.ran delivered twice
    assert machine.snapshot(state) == before


def test_events_of_a_stale_task_are_ignored() -> None:
    """A job task the scheduler replaced (here: withdrawn by a cancel and the job's ``always()``
    step sent as task 2) may still report: nothing of it is recorded."""
    plan, diagnostics = compile_workflow("""
jobs:
  a:
    runs-on: g1
    steps:
      - run: echo one
      - run: echo two
      - run: echo cleanup
        if: always()
""", "w.yml")
    assert plan is not None, diagnostics
    state = initial_state("r1", plan, RunCreated(run_id="r1", workflow=plan.name).at)
    machine.apply(state, plan, RunCreated(run_id="r1", workflow=plan.name))
    from waterflow_common.messages import RunCancelRequested

    out = machine.apply(state, plan, RunCancelRequested(run_id="r1"))  # task 1 still queued: withdrawn
    (task,) = job_tasks(out)
    assert (task.task, task.from_step) == (2, 2)
    job = state.jobs["a"]
    before = machine.snapshot(state)
    for event in (
        _result(StepSucceeded, "a", 0), _result(StepFailed, "a", 1), _result(StepSucceeded, "a", 2),
        skipped("a", 1), ran("a"), _result(StepSucceeded, "a", 2, task=0), _result(StepSucceeded, "a", 2, task=3),
    ):
        assert not [o for o in machine.apply(state, plan, event) if o.stored], event
    assert machine.snapshot(state) == before
    assert [s.status for s in job.steps] == ["cancelled", "skipped", "dispatched"]
    machine.apply(state, plan, _result(StepSucceeded, "a", 2, task=2))
    machine.apply(state, plan, ran("a", task=2))
    assert job.status == "cancelled" and state.status == "cancelled"


def test_a_started_step_of_a_withdrawn_task_is_told_to_stop() -> None:
    """A job task withdrawn while queued (the run was cancelled) that an agent takes after all:
    the agent is told to run nothing of it (``CancelJob(withdraw=True)``), and nothing is recorded."""
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    from waterflow_common.messages import RunCancelRequested

    machine.apply(state, plan, RunCancelRequested(run_id="r1"))
    assert state.status == "cancelled" and not state.jobs["a"].task_out
    before = machine.snapshot(state)
    out = machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, task=1, agent="late"))
    ((subject, command),) = cancels(out)
    assert subject == "wf.control.agent.late"
    assert (command.job_id, command.task, command.withdraw) == ("a", 1, True)
    assert [o for o in out if o.stored] == []
    assert machine.snapshot(state) == before


def test_started_marks_running() -> None:
    plan, state, created = _setup()
    machine.apply(state, plan, created)
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, task=1, agent="agent-7"))
    step = state.jobs["a"].steps[0]
    assert (step.status, step.agent) == ("running", "agent-7")
    assert (state.jobs["a"].agent, state.jobs["a"].affinity) == ("agent-7", True)  # it holds the job's workspace


def test_run_level_contexts_follow_a_run_retry() -> None:
    """The run-level contexts are evaluated once per event and shared by every job and step
    (EventContexts): they must never outlive the event — a retried run's job task carries the new
    ``github.run_attempt``, seen in the workflow and job env its agent evaluates."""
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
    (first,) = job_tasks(out)
    env = as_agent(first)[1]["env"]
    assert (env["ATTEMPT"], env["JOB_ATTEMPT"]) == ("1", "attempt 1")
    machine.apply(state, plan, _result(StepFailed, "a", 0, exit_code=1))
    machine.apply(state, plan, ran("a"))
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"))
    (retried,) = job_tasks(out)
    assert (retried.task, retried.attempt) == (2, 2)
    env = as_agent(retried)[1]["env"]
    assert (env["ATTEMPT"], env["JOB_ATTEMPT"]) == ("2", "attempt 2")
