"""Scheduler rules beyond the happy path: conditions, retries, timers, cancel, run retry, matrix.

Plans are built directly (not compiled) so these tests pin the scheduler's behaviour alone. Each
job runs as one job task: the events its agent would send (steps' results with the task's
number, ``job.ran`` when it hands the job back) are built with test_machine's helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from test_machine import agent_result, as_agent, cancels, job_tasks, ran, skipped
from waterflow_common import steps as step_policy
from waterflow_common.messages import (
    RunCancelRequested,
    RunCreated,
    RunRetryRequested,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerFired,
)
from waterflow_common.plan import JobPlan, Plan, RetryPolicy, StepPlan
from waterflow_common.state import initial_state
from waterflow_scheduler import machine
from waterflow_scheduler.machine import backoff_delay

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def step(index: int, run: str = "echo", **kw) -> StepPlan:
    return StepPlan(index=index, name=f"s{index}", run=run, **kw)


def make(*jobs: JobPlan, **kw) -> tuple[Plan, object]:
    plan = Plan(name="t", jobs={j.id: j for j in jobs}, **kw)
    state = initial_state("r1", plan, NOW)
    return plan, state


tasks = job_tasks


def timers(outgoing) -> list[TimerFired]:
    return [msgspec.json.decode(o.data, type=TimerFired) for o in outgoing if ".timers." in o.subject]


def result(cls, job, index, attempt=1, task=1, agent="a1", **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, task=task, agent=agent, **kw)


def started(job, index, attempt=1, task=1, agent="a1"):
    return StepStarted(run_id="r1", job_id=job, step_index=index, attempt=attempt, task=task, agent=agent)


def apply_all(state, plan, *events, now=NOW) -> list:
    """Apply events in order; what the last one decided."""
    out: list = []
    for event in events:
        out = machine.apply(state, plan, event, now)
    return out


def test_step_if_always_runs_cleanup_after_failure_and_skips_others() -> None:
    """The agent decides the later steps' ``if`` and the scheduler records what it reports; when
    the scheduler walks the job itself (here the task was withdrawn by a cancel), it decides the
    same way (test_cancel_...)."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0), step(1), step(2, if_="${{ always() }}"), step(3, if_="failure()"), step(4, if_="success()"),
    )))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = apply_all(state, plan, result(StepFailed, "j", 0, exit_code=1), skipped("j", 1), started("j", 2))
    statuses = [s.status for s in state.jobs["j"].steps]
    assert statuses == ["failed", "skipped", "running", "pending", "pending"]
    assert tasks(out) == []  # one job task: the agent goes on
    apply_all(state, plan, result(StepSucceeded, "j", 2), started("j", 3), result(StepSucceeded, "j", 3), skipped("j", 4))
    assert [s.status for s in state.jobs["j"].steps] == ["failed", "skipped", "succeeded", "succeeded", "skipped"]
    assert state.jobs["j"].status == "running"  # until the agent hands the job back
    machine.apply(state, plan, ran("j", agent="a1"), NOW)
    assert state.jobs["j"].status == "failed" and state.status == "failed"


def test_continue_on_error_keeps_the_job_going_and_green() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, continue_on_error=True, id="a"), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepFailed, "j", 0, exit_code=2, continue_on_error=True), NOW)  # the agent's decision
    first = state.jobs["j"].steps[0]
    assert (first.outcome, first.conclusion) == ("failure", "success")
    apply_all(state, plan, result(StepSucceeded, "j", 1), ran("j", agent="a1"))
    assert state.status == "succeeded"


def test_outputs_flow_between_steps_and_jobs() -> None:
    from waterflow_common import contexts

    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", outputs={"v": "${{ steps.make.outputs.version }}"},
                steps=(step(0, id="make"), step(1, run="echo ${{ steps.make.outputs.version }}"))),
        JobPlan(id="b", name="b", runs_on="h", needs=("a",),
                steps=(step(0, run="deploy ${{ needs.a.outputs.v }}", env={"V": "${{ needs.a.outputs.v }}"}),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "a", 0, outputs={"version": "1.2.3"}), NOW)
    job = state.jobs["a"]  # recorded: a job task resuming this job (after a timer) carries them
    ctx = contexts.step_contexts(state, plan, job, job.steps[1])
    assert step_policy.concrete(plan.jobs["a"].steps[1], ctx).run == "echo 1.2.3"
    out = apply_all(state, plan, result(StepSucceeded, "a", 1), ran("a", agent="a1"))
    assert state.jobs["a"].outputs == {"v": "1.2.3"}
    (task,) = tasks(out)
    concrete, ctx = as_agent(task)
    assert (concrete.run, ctx["env"]["V"], task.group) == ("deploy 1.2.3", "1.2.3", "h")


def test_retry_with_backoff_uses_durable_timers() -> None:
    """The agent decides a retry (``retry_delay`` on its step.failed) and hands the job back for a
    backoff too long to wait in its process: the scheduler waits on a durable timer, then sends the
    job again, at that step's next attempt, as a new job task to the same agent."""
    policy = RetryPolicy(attempts=3, initial_interval=2, backoff_coefficient=3, max_interval=5)
    assert [backoff_delay(policy, n) for n in (1, 2, 3)] == [2, 5, 5]
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=policy),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    failed = result(StepFailed, "j", 0, attempt=1, exit_code=1, retry_delay=2.0)
    assert tasks(apply_all(state, plan, started("j", 0), failed)) == []
    assert state.jobs["j"].steps[0].status == "retrying"
    out = machine.apply(state, plan, ran("j", agent="a1", next_step=0, retry_delay=2.0), NOW)
    assert tasks(out) == []
    (timer,) = timers(out)
    assert timer.kind == "retry" and timer.due_at == NOW + timedelta(seconds=2)
    schedule = [o for o in out if ".timers." in o.subject][0]
    assert schedule.headers["Nats-Schedule"] == "@at 2026-01-01T00:00:02Z"
    assert schedule.headers["Nats-Schedule-Target"] == "wf.events.r1.timer.fired"
    assert machine.apply(state, plan, failed, NOW) == []  # duplicate result
    assert machine.apply(state, plan, ran("j", agent="a1", next_step=0, retry_delay=2.0), NOW) == []  # duplicate hand-back
    out = machine.apply(state, plan, timer, NOW)
    (task,) = tasks(out)
    assert (task.from_step, task.attempt, task.task, task.tried) == (0, 2, 2, 1)
    assert [o.subject for o in out if ".tasks." in o.subject] == ["wf.tasks.agent.a1"]  # the job's agent
    assert machine.apply(state, plan, timer, NOW) == []  # timer delivered twice
    apply_all(state, plan, started("j", 0, attempt=2, task=2),
              result(StepFailed, "j", 0, attempt=2, task=2, exit_code=1, retry_delay=5.0))
    out = machine.apply(state, plan, ran("j", task=2, agent="a1", next_step=0, retry_delay=5.0), NOW)
    assert timers(out)[0].due_at == NOW + timedelta(seconds=5)  # 2 * 3 = 6, capped at 5
    step_state = state.jobs["j"].steps[0]
    assert step_state.status == "retrying" and step_state.attempt == 2
    fire = TimerFired(run_id="r1", timer_id="t", kind="retry", job_id="j", step_index=0, attempt=2, due_at=NOW)
    (task,) = tasks(machine.apply(state, plan, fire, NOW))
    assert (task.attempt, task.task, task.tried) == (3, 3, 2)
    apply_all(state, plan, result(StepFailed, "j", 0, attempt=3, task=3, exit_code=1), ran("j", task=3, agent="a1"))
    assert step_state.status == "failed" and state.status == "failed"
    assert [a.attempt for a in step_state.attempts] == [1, 2, 3]


def test_a_short_retry_runs_on_within_the_same_job_task() -> None:
    """A backoff the agent waits itself: it reports the failure (``retry_delay``), then the next
    attempt in the same task; the scheduler records both and sets no timer."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=RetryPolicy(attempts=2)), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = apply_all(state, plan, started("j", 0), result(StepFailed, "j", 0, exit_code=1, retry_delay=1.0),
                    started("j", 0, attempt=2), result(StepSucceeded, "j", 0, attempt=2),
                    result(StepSucceeded, "j", 1), ran("j", agent="a1"))
    assert timers(out) == [] and tasks(out) == []
    step_state = state.jobs["j"].steps[0]
    assert [(a.attempt, a.status) for a in step_state.attempts] == [(1, "failed"), (2, "succeeded")]
    assert state.status == "succeeded"


def test_a_cancel_before_the_agent_hands_back_for_a_retry_cancels_the_retry() -> None:
    """The agent reports a failure it will retry after a long backoff and hands the job back; the
    run is cancelled in between (its CancelJob finds no job on the agent any more). The retry
    must not run: the step ends cancelled and only ``always()`` steps go on."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0, retry=RetryPolicy(attempts=3, initial_interval=60)), step(1), step(2, if_="always()"))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, started("j", 0), result(StepFailed, "j", 0, exit_code=1, retry_delay=60.0))
    machine.apply(state, plan, RunCancelRequested(run_id="r1"), NOW)
    out = machine.apply(state, plan, ran("j", agent="a1", next_step=0, retry_delay=60.0), NOW)
    assert [t.from_step for t in tasks(out)] == [2] and timers(out) == []
    assert [s.status for s in state.jobs["j"].steps][1:] == ["skipped", "dispatched"]
    assert state.jobs["j"].steps[0].status in ("cancelled", "failed")  # no attempt runs after the cancel


def test_not_retryable_failure_is_final() -> None:
    policy = RetryPolicy(attempts=5)
    assert step_policy.retry_delay(policy, 1, retryable=False) is None  # the agent's rule: no retry_delay
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=policy),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = apply_all(state, plan, result(StepFailed, "j", 0, retryable=False), ran("j", agent="a1"))
    assert tasks(out) == [] and timers(out) == []
    assert state.status == "failed"


def test_sleep_is_a_timer_not_a_task() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        StepPlan(index=0, name="wait", uses="sleep@v1", with_={"seconds": 600}), step(1))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert tasks(out) == []
    (timer,) = timers(out)
    assert timer.due_at == NOW + timedelta(minutes=10)
    out = machine.apply(state, plan, timer, NOW + timedelta(minutes=10))
    assert [t.from_step for t in tasks(out)] == [1]


def test_a_sleep_after_steps_is_waited_by_the_scheduler_and_the_job_resumes_on_its_agent() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0), StepPlan(index=1, name="wait", uses="sleep@v1", with_={"seconds": 60}), step(2))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "j", 0), NOW)
    out = machine.apply(state, plan, ran("j", agent="a1", next_step=1), NOW)  # the agent stops at the sleep
    assert tasks(out) == []
    (timer,) = timers(out)
    assert (timer.kind, timer.step_index, timer.due_at) == ("sleep", 1, NOW + timedelta(minutes=1))
    out = machine.apply(state, plan, timer, NOW + timedelta(minutes=1))
    (task,) = tasks(out)
    assert (task.from_step, task.task, task.attempt) == (2, 2, 1)
    assert [o.subject for o in out if ".tasks." in o.subject] == ["wf.tasks.agent.a1"]
    apply_all(state, plan, result(StepSucceeded, "j", 2, task=2), ran("j", task=2, agent="a1"))
    assert [s.status for s in state.jobs["j"].steps] == ["succeeded"] * 3 and state.status == "succeeded"


def test_cancel_stops_running_step_skips_rest_and_runs_always_jobs() -> None:
    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", steps=(step(0), step(1), step(2, if_="always()"))),
        JobPlan(id="b", name="b", runs_on="g", needs=("a",), steps=(step(0),)),
        JobPlan(id="cleanup", name="c", runs_on="g", needs=("a",), if_="always()", steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, started("a", 0, agent="a7"), NOW)
    out = machine.apply(state, plan, RunCancelRequested(run_id="r1"), NOW)
    ((subject, command),) = cancels(out)
    assert subject == "wf.control.agent.a7"
    assert (command.job_id, command.task, command.withdraw) == ("a", 1, False)
    # The agent stops step 0, finds step 1's success() false and runs the always() step.
    apply_all(state, plan, result(StepFailed, "a", 0, cancelled=True, error="cancelled"), skipped("a", 1), started("a", 2))
    assert [s.status for s in state.jobs["a"].steps] == ["cancelled", "skipped", "running"]
    apply_all(state, plan, result(StepSucceeded, "a", 2), ran("a", agent="a7"))
    assert state.jobs["a"].status == "cancelled"
    assert state.jobs["b"].status == "cancelled"
    assert state.jobs["cleanup"].status == "running"
    apply_all(state, plan, result(StepSucceeded, "cleanup", 0), ran("cleanup", agent="a7"))
    assert state.status == "cancelled"


def test_cancel_of_a_queued_job_withdraws_its_task_and_sends_the_always_steps() -> None:
    """The scheduler walks the job itself when it withdraws a task: the queued step is cancelled,
    steps without ``always()`` are skipped, and the rest goes out as a new job task."""
    plan, state = make(JobPlan(id="a", name="a", runs_on="g", steps=(
        step(0), step(1), step(2, if_="always()"), step(3, if_="cancelled()"), step(4, if_="success()"))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.apply(state, plan, RunCancelRequested(run_id="r1"), NOW)
    assert cancels(out) == []  # no agent had it
    (task,) = tasks(out)
    assert (task.from_step, task.task) == (2, 2) and task.job.cancelled
    assert [s.status for s in state.jobs["a"].steps] == ["cancelled", "skipped", "dispatched", "pending", "pending"]
    out = machine.apply(state, plan, started("a", 0, agent="late"), NOW)  # task 1 taken after all
    assert [(s, c.task, c.withdraw) for s, c in cancels(out)] == [("wf.control.agent.late", 1, True)]
    apply_all(state, plan, result(StepSucceeded, "a", 2, task=2), result(StepSucceeded, "a", 3, task=2),
              skipped("a", 4, task=2), ran("a", task=2, agent="a1"))
    assert [s.status for s in state.jobs["a"].steps] == ["cancelled", "skipped", "succeeded", "succeeded", "skipped"]
    assert state.status == "cancelled"


def test_retry_of_failed_run_resumes_from_the_failed_step() -> None:
    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", steps=(step(0, id="one"), step(1), step(2))),
        JobPlan(id="b", name="b", runs_on="g", needs=("a",), steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepSucceeded, "a", 0, outputs={"k": "v"}), result(StepFailed, "a", 1),
              skipped("a", 2), ran("a", agent="a1"))
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    assert state.status == "running" and state.attempt == 2
    (task,) = tasks(out)
    assert (task.job.id, task.from_step, task.attempt, task.task) == ("a", 1, 2, 2)
    assert state.jobs["a"].steps[0].status == "succeeded" and state.jobs["a"].steps[0].outputs == {"k": "v"}
    assert task.job.steps[0].outputs == {"k": "v"}  # the agent sees steps.one.outputs
    apply_all(state, plan, result(StepSucceeded, "a", 1, attempt=2, task=2), result(StepSucceeded, "a", 2, attempt=1, task=2),
              ran("a", task=2, agent="a1"))
    apply_all(state, plan, result(StepSucceeded, "b", 0, attempt=1), ran("b", agent="a1"))
    assert state.status == "succeeded"
    assert machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW) == []  # nothing to retry


def test_a_run_retry_gives_a_step_its_retry_budget_again() -> None:
    """A step that used up its ``retry:`` attempts fails the run; retrying the run sends it with
    ``tried`` 0 (the earlier failures belong to run attempt 1), so the agent retries it again."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=RetryPolicy(attempts=2)),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, started("j", 0), result(StepFailed, "j", 0, exit_code=1, retry_delay=1.0),
              started("j", 0, attempt=2), result(StepFailed, "j", 0, attempt=2, exit_code=1), ran("j", agent="a1"))
    assert state.status == "failed"
    assert [(a.attempt, a.run_attempt) for a in state.jobs["j"].steps[0].attempts] == [(1, 1), (2, 1)]
    (task,) = tasks(machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW))
    assert (task.attempt, task.task, task.tried) == (3, 2, 0)


def test_matrix_instances_max_parallel_and_fail_fast() -> None:
    combos = tuple({"os": o} for o in ("a", "b", "c"))
    plan, state = make(
        JobPlan(id="m", name="m", runs_on="g", matrix=combos, max_parallel=2, fail_fast=True,
                steps=(step(0, run="echo ${{ matrix.os }}"),)),
        JobPlan(id="after", name="after", runs_on="g", needs=("m",), steps=(step(0),)),
    )
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert sorted((t.job.id, as_agent(t)[0].run) for t in tasks(out)) == [("m-1", "echo a"), ("m-2", "echo b")]
    out = apply_all(state, plan, result(StepSucceeded, "m-1", 0), ran("m-1", agent="a1"))
    assert [(t.job.id, as_agent(t)[0].run) for t in tasks(out)] == [("m-3", "echo c")]
    machine.apply(state, plan, started("m-3", 0, agent="x"), NOW)
    out = apply_all(state, plan, result(StepFailed, "m-2", 0), ran("m-2", agent="a1"))
    assert [(s, c.job_id) for s, c in cancels(out)] == [("wf.control.agent.x", "m-3")]  # fail-fast stops m-3
    apply_all(state, plan, result(StepFailed, "m-3", 0, cancelled=True), ran("m-3", agent="x"))
    assert state.jobs["m"].status == "failed" and state.jobs["after"].status == "skipped"
    assert state.status == "failed"


def test_fail_fast_ends_a_sibling_whose_task_is_still_queued() -> None:
    combos = tuple({"os": o} for o in ("a", "b"))
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos, fail_fast=True, steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepFailed, "m-1", 0), ran("m-1", agent="a1"))  # m-2's task never started
    sibling = state.jobs["m-2"]
    assert not sibling.task_out and sibling.steps[0].status == "cancelled"
    assert sibling.status in ("cancelled", "failed") and state.jobs["m"].status == "failed"
    assert state.status == "failed"


def test_fan_out_runs_once_per_healthy_agent_on_its_own_subject() -> None:
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, fail_fast=False, steps=(step(0),)))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w2", "w1"]})
    subjects_ = sorted(o.subject for o in out if ".tasks." in o.subject)
    assert subjects_ == ["wf.tasks.agent.w1", "wf.tasks.agent.w2"]
    apply_all(state, plan, result(StepFailed, "h-w1", 0), ran("h-w1", agent="w1"))
    assert state.jobs["h-w1"].status == "failed"
    assert state.jobs["h-w2"].status == "running"  # one server failing does not stop the others
    apply_all(state, plan, result(StepSucceeded, "h-w2", 0), ran("h-w2", agent="w2"))
    assert state.jobs["h"].status == "failed" and state.status == "failed"


def test_fan_out_without_agents_fails_with_reason() -> None:
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={})
    assert "no healthy agent" in state.jobs["h"].error
    assert state.status == "failed"


def test_job_timeout_stops_the_step_and_fails_the_job() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", timeout_minutes=1, steps=(step(0), step(1))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    (timer,) = timers(out)
    machine.apply(state, plan, started("j", 0), NOW)
    out = machine.apply(state, plan, timer, NOW)
    assert [(s, c.withdraw) for s, c in cancels(out)] == [("wf.control.agent.a1", False)]
    apply_all(state, plan, result(StepFailed, "j", 0, cancelled=True), skipped("j", 1), ran("j", agent="a1"))
    assert state.jobs["j"].status == "failed" and "timed out" in state.jobs["j"].error
    assert state.jobs["j"].steps[1].status == "skipped"


def test_bad_expression_fails_the_step_with_a_message() -> None:
    """The script is rendered by the agent (with ``steps.concrete``): it fails the step with the
    reason and the scheduler records it."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, run="echo ${{ fromJSON('nope') }}"),)))
    (task,) = tasks(machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW))
    failure = agent_result(task, agent="a1")
    assert isinstance(failure, StepFailed)
    apply_all(state, plan, failure, ran("j", agent="a1"))
    failed = state.jobs["j"].steps[0]
    assert failed.status == "failed" and "expression" in failed.error
    assert state.status == "failed"


def test_an_oversized_run_fails_with_a_reason() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.fail_oversized(state, 2_000_000, 1_048_576)
    assert state.status == "failed" and "max_payload" in state.error
    assert [s.status for s in state.jobs["j"].steps] == ["cancelled", "skipped"]  # the queued one never starts
    assert out[-1].subject == "wf.events.r1.run.completed"


def test_an_oversized_run_withdraws_the_task_its_agent_runs() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, started("j", 0, agent="w1"), NOW)
    out = machine.fail_oversized(state, 2_000_000, 1_048_576)
    assert [(s, c.task, c.withdraw) for s, c in cancels(out)] == [("wf.control.agent.w1", 1, True)]
    assert not state.jobs["j"].task_out
    assert machine.apply(state, plan, result(StepSucceeded, "j", 0, agent="w1"), NOW) == []


def test_continue_on_error_from_the_matrix_spares_the_run_and_fail_fast_siblings() -> None:
    """GitHub's ``continue-on-error: ${{ matrix.experimental }}``: an experimental instance may fail."""
    combos = ({"v": "1", "experimental": False}, {"v": "2", "experimental": True}, {"v": "3", "experimental": False})
    plan, state = make(
        JobPlan(id="m", name="m", runs_on="g", matrix=combos, max_parallel=2, continue_on_error="${{ matrix.experimental }}",
                steps=(step(0),)),
        JobPlan(id="after", name="after", runs_on="g", needs=("m",), steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = apply_all(state, plan, result(StepFailed, "m-2", 0, exit_code=1), ran("m-2", agent="a1"))
    assert [t.job.id for t in tasks(out)] == ["m-3"]  # no fail-fast: the failure was allowed
    assert cancels(out) == []
    apply_all(state, plan, result(StepSucceeded, "m-1", 0), ran("m-1", agent="a1"))
    apply_all(state, plan, result(StepSucceeded, "m-3", 0), ran("m-3", agent="a1"))
    assert state.jobs["m"].status == "succeeded" and state.jobs["m-2"].status == "failed"
    apply_all(state, plan, result(StepSucceeded, "after", 0), ran("after", agent="a1"))
    assert state.status == "succeeded"


def test_a_failing_instance_without_continue_on_error_still_fails_the_matrix() -> None:
    combos = ({"experimental": False},)
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos, continue_on_error="${{ matrix.experimental }}",
                               steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepFailed, "m-1", 0, exit_code=1), ran("m-1", agent="a1"))
    assert state.jobs["m"].status == "failed" and state.status == "failed"


def test_step_continue_on_error_and_timeout_from_expressions() -> None:
    """The agent evaluates a step's ``timeout-minutes`` and ``continue-on-error`` from the job
    task's contexts (the inputs here), and the scheduler keeps the conclusion it reports."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0, continue_on_error="${{ inputs.lenient }}", timeout_minutes="${{ inputs.minutes }}"),
        step(1, timeout_minutes="${{ fromJSON(inputs.minutes) }}"),
    )))
    state.inputs = {"lenient": True, "minutes": "1.5"}
    (task,) = tasks(machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW))
    timeouts = [step_policy.timeout_seconds(task.plan.steps[i], as_agent(task, i)[1], task.timeout_minutes) for i in (0, 1)]
    assert timeouts == [90.0, 90.0]
    assert step_policy.continues_on_error(task.plan.steps[0], as_agent(task)[1]) == (True, None)
    out = machine.apply(state, plan, result(StepFailed, "j", 0, exit_code=1, continue_on_error=True), NOW)
    assert state.jobs["j"].steps[0].conclusion == "success" and tasks(out) == []
    apply_all(state, plan, result(StepSucceeded, "j", 1), ran("j", agent="a1"))
    assert state.status == "succeeded"


def test_a_timeout_expression_that_is_not_a_number_fails_the_step_with_the_reason() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, timeout_minutes="${{ inputs.minutes }}"),)))
    state.inputs = {"minutes": "soon"}
    (task,) = tasks(machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW))
    apply_all(state, plan, agent_result(task, agent="a1"), ran("j", agent="a1"))
    failed = state.jobs["j"].steps[0]
    assert failed.status == "failed" and "timeout-minutes" in failed.error and "'soon'" in failed.error
    assert state.status == "failed"


def test_job_timeout_from_an_expression_sets_the_job_timer() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", timeout_minutes="${{ inputs.minutes }}", steps=(step(0),)))
    state.inputs = {"minutes": 2}
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    (timer,) = timers(out)
    assert timer.kind == "job-timeout" and timer.due_at == NOW + timedelta(minutes=2)
    (task,) = tasks(out)
    assert task.timeout_minutes == 2  # each step's default timeout on the agent
    assert step_policy.timeout_seconds(task.plan.steps[0], as_agent(task)[1], task.timeout_minutes) == 120.0


def test_a_job_task_too_big_for_one_message_fails_its_step_with_the_reason() -> None:
    """Outputs of earlier steps travel in the job task when an expression can name them (the
    step has an ``id``): a job resuming after a ``sleep`` whose task would be over
    MAX_JOB_TASK_BYTES (never publishable) fails the step without running, saying why."""
    from waterflow_common.limits import MAX_JOB_TASK_BYTES, MAX_STEP_RESULT_BYTES

    big = "x" * (MAX_STEP_RESULT_BYTES - 1024)
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0, id="a"), step(1, id="b"), StepPlan(index=2, name="wait", uses="sleep@v1", with_={"seconds": 5}),
        step(3))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = apply_all(state, plan, result(StepSucceeded, "j", 0, outputs={"v": big}),
                    result(StepSucceeded, "j", 1, outputs={"v": big}), ran("j", agent="a1", next_step=2))
    assert 2 * len(big) > MAX_JOB_TASK_BYTES
    (timer,) = timers(out)
    assert tasks(machine.apply(state, plan, timer, NOW)) == []
    last = state.jobs["j"].steps[3]
    assert last.status == "failed" and "over the limit of" in (last.error or "") and "file/upload" in last.error
    assert state.status == "failed"
