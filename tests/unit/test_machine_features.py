"""Scheduler rules beyond the happy path: conditions, retries, timers, cancel, run retry, matrix.

Plans are built directly (not compiled) so these tests pin the scheduler's behaviour alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from waterflow_common.messages import (
    CancelStep,
    RunCancelRequested,
    RunCreated,
    RunRetryRequested,
    StepFailed,
    StepStarted,
    StepSucceeded,
    StepTask,
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


def tasks(outgoing) -> list[StepTask]:
    return [msgspec.json.decode(o.data, type=StepTask) for o in outgoing if ".tasks." in o.subject]


def timers(outgoing) -> list[TimerFired]:
    return [msgspec.json.decode(o.data, type=TimerFired) for o in outgoing if ".timers." in o.subject]


def result(cls, job, index, attempt=1, **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent="a1", **kw)


def test_step_if_always_runs_cleanup_after_failure_and_skips_others() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0), step(1), step(2, if_="${{ always() }}"), step(3, if_="failure()"), step(4, if_="success()"),
    )))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.apply(state, plan, result(StepFailed, "j", 0, exit_code=1), NOW)
    statuses = [s.status for s in state.jobs["j"].steps]
    assert statuses == ["failed", "skipped", "dispatched", "pending", "pending"]
    assert [t.step.index for t in tasks(out)] == [2]
    out = machine.apply(state, plan, result(StepSucceeded, "j", 2), NOW)
    assert [t.step.index for t in tasks(out)] == [3]
    machine.apply(state, plan, result(StepSucceeded, "j", 3), NOW)
    assert [s.status for s in state.jobs["j"].steps] == ["failed", "skipped", "succeeded", "succeeded", "skipped"]
    assert state.jobs["j"].status == "failed" and state.status == "failed"


def test_continue_on_error_keeps_the_job_going_and_green() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, continue_on_error=True, id="a"), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepFailed, "j", 0, exit_code=2), NOW)
    first = state.jobs["j"].steps[0]
    assert (first.outcome, first.conclusion) == ("failure", "success")
    machine.apply(state, plan, result(StepSucceeded, "j", 1), NOW)
    assert state.status == "succeeded"


def test_outputs_flow_between_steps_and_jobs() -> None:
    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", outputs={"v": "${{ steps.make.outputs.version }}"},
                steps=(step(0, id="make"), step(1, run="echo ${{ steps.make.outputs.version }}"))),
        JobPlan(id="b", name="b", runs_on="h", needs=("a",),
                steps=(step(0, run="deploy ${{ needs.a.outputs.v }}", env={"V": "${{ needs.a.outputs.v }}"}),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.apply(state, plan, result(StepSucceeded, "a", 0, outputs={"version": "1.2.3"}), NOW)
    assert tasks(out)[0].step.run == "echo 1.2.3"
    out = machine.apply(state, plan, result(StepSucceeded, "a", 1), NOW)
    assert state.jobs["a"].outputs == {"v": "1.2.3"}
    task = tasks(out)[0]
    assert (task.step.run, task.env["V"], task.group) == ("deploy 1.2.3", "1.2.3", "h")


def test_retry_with_backoff_uses_durable_timers() -> None:
    policy = RetryPolicy(attempts=3, initial_interval=2, backoff_coefficient=3, max_interval=5)
    assert [backoff_delay(policy, n) for n in (1, 2, 3)] == [2, 5, 5]
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=policy),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.apply(state, plan, result(StepFailed, "j", 0, attempt=1, exit_code=1), NOW)
    assert state.jobs["j"].steps[0].status == "retrying"
    (timer,) = timers(out)
    assert timer.kind == "retry" and timer.due_at == NOW + timedelta(seconds=2)
    schedule = [o for o in out if ".timers." in o.subject][0]
    assert schedule.headers["Nats-Schedule"] == "@at 2026-01-01T00:00:02Z"
    assert schedule.headers["Nats-Schedule-Target"] == "wf.events.r1.timer.fired"
    assert machine.apply(state, plan, result(StepFailed, "j", 0, attempt=1), NOW) == []  # duplicate result
    out = machine.apply(state, plan, timer, NOW)
    assert [t.attempt for t in tasks(out)] == [2]
    assert machine.apply(state, plan, timer, NOW) == []  # timer delivered twice
    out = machine.apply(state, plan, result(StepFailed, "j", 0, attempt=2, exit_code=1), NOW)
    assert timers(out)[0].due_at == NOW + timedelta(seconds=5)  # 2 * 3 = 6, capped at 5
    step_state = state.jobs["j"].steps[0]
    assert step_state.status == "retrying" and step_state.attempt == 2
    fire = TimerFired(run_id="r1", timer_id="t", kind="retry", job_id="j", step_index=0, attempt=2, due_at=NOW)
    machine.apply(state, plan, fire, NOW)
    machine.apply(state, plan, result(StepFailed, "j", 0, attempt=3, exit_code=1), NOW)
    assert step_state.status == "failed" and state.status == "failed"
    assert [a.attempt for a in step_state.attempts] == [1, 2, 3]


def test_not_retryable_failure_is_final() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, retry=RetryPolicy(attempts=5)),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepFailed, "j", 0, retryable=False), NOW)
    assert state.status == "failed"


def test_sleep_is_a_timer_not_a_task() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        StepPlan(index=0, name="wait", uses="sleep@v1", with_={"seconds": 600}), step(1))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert tasks(out) == []
    (timer,) = timers(out)
    assert timer.due_at == NOW + timedelta(minutes=10)
    out = machine.apply(state, plan, timer, NOW + timedelta(minutes=10))
    assert [t.step.index for t in tasks(out)] == [1]


def test_cancel_stops_running_step_skips_rest_and_runs_always_jobs() -> None:
    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", steps=(step(0), step(1), step(2, if_="always()"))),
        JobPlan(id="b", name="b", runs_on="g", needs=("a",), steps=(step(0),)),
        JobPlan(id="cleanup", name="c", runs_on="g", needs=("a",), if_="always()", steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="a", step_index=0, attempt=1, agent="a7"), NOW)
    out = machine.apply(state, plan, RunCancelRequested(run_id="r1"), NOW)
    (control,) = [o for o in out if not o.stored]
    assert control.subject == "wf.control.agent.a7"
    assert msgspec.json.decode(control.data, type=CancelStep).step_index == 0
    out = machine.apply(state, plan, result(StepFailed, "a", 0, cancelled=True, error="cancelled"), NOW)
    assert [s.status for s in state.jobs["a"].steps] == ["cancelled", "skipped", "dispatched"]
    machine.apply(state, plan, result(StepSucceeded, "a", 2), NOW)
    assert state.jobs["a"].status == "cancelled"
    assert state.jobs["b"].status == "cancelled"
    assert state.jobs["cleanup"].status == "running"
    machine.apply(state, plan, result(StepSucceeded, "cleanup", 0), NOW)
    assert state.status == "cancelled"


def test_retry_of_failed_run_resumes_from_the_failed_step() -> None:
    plan, state = make(
        JobPlan(id="a", name="a", runs_on="g", steps=(step(0, id="one"), step(1), step(2))),
        JobPlan(id="b", name="b", runs_on="g", needs=("a",), steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "a", 0, outputs={"k": "v"}), NOW)
    machine.apply(state, plan, result(StepFailed, "a", 1), NOW)
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    assert state.status == "running" and state.attempt == 2
    (task,) = tasks(out)
    assert (task.job_id, task.step.index, task.attempt) == ("a", 1, 2)
    assert state.jobs["a"].steps[0].status == "succeeded" and state.jobs["a"].steps[0].outputs == {"k": "v"}
    machine.apply(state, plan, result(StepSucceeded, "a", 1, attempt=2), NOW)
    machine.apply(state, plan, result(StepSucceeded, "a", 2, attempt=1), NOW)
    machine.apply(state, plan, result(StepSucceeded, "b", 0, attempt=1), NOW)
    assert state.status == "succeeded"
    assert machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW) == []  # nothing to retry


def test_matrix_instances_max_parallel_and_fail_fast() -> None:
    combos = tuple({"os": o} for o in ("a", "b", "c"))
    plan, state = make(
        JobPlan(id="m", name="m", runs_on="g", matrix=combos, max_parallel=2, fail_fast=True,
                steps=(step(0, run="echo ${{ matrix.os }}"),)),
        JobPlan(id="after", name="after", runs_on="g", needs=("m",), steps=(step(0),)),
    )
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert sorted((t.job_id, t.step.run) for t in tasks(out)) == [("m-1", "echo a"), ("m-2", "echo b")]
    out = machine.apply(state, plan, result(StepSucceeded, "m-1", 0), NOW)
    assert [(t.job_id, t.step.run) for t in tasks(out)] == [("m-3", "echo c")]
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="m-3", step_index=0, attempt=1, agent="x"), NOW)
    out = machine.apply(state, plan, result(StepFailed, "m-2", 0), NOW)
    assert [o.subject for o in out if not o.stored] == ["wf.control.agent.x"]  # fail-fast stops m-3
    machine.apply(state, plan, result(StepFailed, "m-3", 0, cancelled=True), NOW)
    assert state.jobs["m"].status == "failed" and state.jobs["after"].status == "skipped"
    assert state.status == "failed"


def test_fan_out_runs_once_per_healthy_agent_on_its_own_subject() -> None:
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, fail_fast=False, steps=(step(0),)))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w2", "w1"]})
    subjects_ = sorted(o.subject for o in out if ".tasks." in o.subject)
    assert subjects_ == ["wf.tasks.agent.w1", "wf.tasks.agent.w2"]
    machine.apply(state, plan, result(StepFailed, "h-w1", 0), NOW)
    assert state.jobs["h-w2"].status == "running"  # one server failing does not stop the others
    machine.apply(state, plan, result(StepSucceeded, "h-w2", 0), NOW)
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
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="j", step_index=0, attempt=1, agent="a1"), NOW)
    out = machine.apply(state, plan, timer, NOW)
    assert [o.subject for o in out if not o.stored] == ["wf.control.agent.a1"]
    machine.apply(state, plan, result(StepFailed, "j", 0, cancelled=True), NOW)
    assert state.jobs["j"].status == "failed" and "timed out" in state.jobs["j"].error
    assert state.jobs["j"].steps[1].status == "skipped"


def test_bad_expression_fails_the_step_with_a_message() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, run="echo ${{ fromJSON('nope') }}"),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
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


def test_continue_on_error_from_the_matrix_spares_the_run_and_fail_fast_siblings() -> None:
    """GitHub's ``continue-on-error: ${{ matrix.experimental }}``: an experimental instance may fail."""
    combos = ({"v": "1", "experimental": False}, {"v": "2", "experimental": True}, {"v": "3", "experimental": False})
    plan, state = make(
        JobPlan(id="m", name="m", runs_on="g", matrix=combos, max_parallel=2, continue_on_error="${{ matrix.experimental }}",
                steps=(step(0),)),
        JobPlan(id="after", name="after", runs_on="g", needs=("m",), steps=(step(0),)),
    )
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    out = machine.apply(state, plan, result(StepFailed, "m-2", 0, exit_code=1), NOW)
    assert [t.job_id for t in tasks(out)] == ["m-3"]  # no fail-fast: the failure was allowed
    machine.apply(state, plan, result(StepSucceeded, "m-1", 0), NOW)
    machine.apply(state, plan, result(StepSucceeded, "m-3", 0), NOW)
    assert state.jobs["m"].status == "succeeded" and state.jobs["m-2"].status == "failed"
    machine.apply(state, plan, result(StepSucceeded, "after", 0), NOW)
    assert state.status == "succeeded"


def test_a_failing_instance_without_continue_on_error_still_fails_the_matrix() -> None:
    combos = ({"experimental": False},)
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos, continue_on_error="${{ matrix.experimental }}",
                               steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepFailed, "m-1", 0, exit_code=1), NOW)
    assert state.jobs["m"].status == "failed" and state.status == "failed"


def test_step_continue_on_error_and_timeout_from_expressions() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(
        step(0, continue_on_error="${{ inputs.lenient }}", timeout_minutes="${{ inputs.minutes }}"),
        step(1, timeout_minutes="${{ fromJSON(inputs.minutes) }}"),
    )))
    state.inputs = {"lenient": True, "minutes": "1.5"}
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert [t.timeout_seconds for t in tasks(out)] == [90.0]
    out = machine.apply(state, plan, result(StepFailed, "j", 0, exit_code=1), NOW)
    assert state.jobs["j"].steps[0].conclusion == "success"
    assert [t.timeout_seconds for t in tasks(out)] == [90.0]


def test_a_timeout_expression_that_is_not_a_number_fails_the_step_with_the_reason() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", steps=(step(0, timeout_minutes="${{ inputs.minutes }}"),)))
    state.inputs = {"minutes": "soon"}
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert tasks(out) == []
    failed = state.jobs["j"].steps[0]
    assert failed.status == "failed" and "timeout-minutes" in failed.error and "'soon'" in failed.error
    assert state.status == "failed"


def test_job_timeout_from_an_expression_sets_the_job_timer() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="g", timeout_minutes="${{ inputs.minutes }}", steps=(step(0),)))
    state.inputs = {"minutes": 2}
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    (timer,) = timers(out)
    assert [t.timeout_seconds for t in tasks(out)] == [120.0]
