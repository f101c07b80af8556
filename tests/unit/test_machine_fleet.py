"""Scheduler rules for fleets: job affinity, lost agents, and run retries of matrices and fan-outs.

A job's steps all run on the agent that ran its first step (as on a GitHub runner); an agent lost
with a job's workspace fails the job at once; a retry re-runs only what failed, numbering the new
attempts on so that no task or event of the retry is dropped as a duplicate of the first try.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from waterflow_common.messages import JobStarted, RunCreated, RunRetryRequested, StepFailed, StepSucceeded, StepTask
from waterflow_common.plan import JobPlan, Plan, RetryPolicy, StepPlan
from waterflow_common.state import initial_state
from waterflow_scheduler import machine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def step(index: int, **kw) -> StepPlan:
    return StepPlan(index=index, name=f"s{index}", run="echo", **kw)


def make(*jobs: JobPlan):
    plan = Plan(name="t", jobs={j.id: j for j in jobs})
    return plan, initial_state("r1", plan, NOW)


def tasks(outgoing) -> list[tuple[str, StepTask]]:
    return [(o.subject, msgspec.json.decode(o.data, type=StepTask)) for o in outgoing if ".tasks." in o.subject]


def result(cls, job, index, attempt=1, agent="web-2", **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent=agent, **kw)


def test_the_agent_of_the_first_step_runs_every_later_step_and_retry_of_the_job() -> None:
    policy = RetryPolicy(attempts=2, initial_interval=0)
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1, retry=policy), step(2))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert [s for s, _ in tasks(out)] == ["wf.tasks.group.web"]  # any agent of the group may take the job
    out = machine.apply(state, plan, result(StepSucceeded, "j", 0), NOW)
    assert [s for s, _ in tasks(out)] == ["wf.tasks.agent.web-2"]
    out = machine.apply(state, plan, result(StepFailed, "j", 1, exit_code=1), NOW)  # retried at once
    assert [(s, t.attempt) for s, t in tasks(out)] == [("wf.tasks.agent.web-2", 2)]
    out = machine.apply(state, plan, result(StepSucceeded, "j", 1, attempt=2), NOW)
    assert [s for s, _ in tasks(out)] == ["wf.tasks.agent.web-2"]


def test_a_lost_agent_fails_its_job_at_once_and_a_run_retry_reruns_the_whole_job_anywhere() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(
        step(0), step(1, retry=RetryPolicy(attempts=5)), step(2, if_="${{ always() }}"),
    )))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "j", 0), NOW)
    out = machine.apply(state, plan, result(StepFailed, "j", 1, agent_lost=True, error="agent web-2 lost"), NOW)
    job = state.jobs["j"]
    assert tasks(out) == []  # no retry, no always() step sent to the lost agent
    assert job.status == "failed" and job.lost_agent == "web-2" and "lost communication" in (job.error or "")
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    (subject, task), = tasks(out)
    assert (subject, task.step.index, task.attempt) == ("wf.tasks.group.web", 0, 2)  # from step 0, any agent
    assert job.agent is None and job.lost_agent is None


def test_a_run_retry_keeps_the_agent_of_a_job_that_failed_on_its_own() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "j", 0), NOW)
    machine.apply(state, plan, result(StepFailed, "j", 1, exit_code=2), NOW)
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    assert [(s, t.step.index, t.attempt) for s, t in tasks(out)] == [("wf.tasks.agent.web-2", 1, 2)]


def test_retry_of_a_fan_out_reruns_only_the_failed_servers_with_new_attempt_numbers() -> None:
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, fail_fast=False, steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w1", "w2", "w3"]})
    for agent in ("w1", "w2", "w3"):
        machine.apply(state, plan, result(StepSucceeded, f"h-{agent}", 0, agent=agent), NOW)
    machine.apply(state, plan, result(StepSucceeded, "h-w1", 1, agent="w1"), NOW)
    machine.apply(state, plan, result(StepFailed, "h-w2", 1, agent="w2"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "h-w3", 1, agent="w3"), NOW)
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW, directory={"web": ["w1", "w3"]})
    assert [(s, t.job_id, t.step.index, t.attempt) for s, t in tasks(out)] == [("wf.tasks.agent.w2", "h-w2", 1, 2)]
    started = [msgspec.json.decode(o.data, type=JobStarted) for o in out if o.subject.endswith(".job.started")]
    assert {(e.job_id, e.run_attempt) for e in started} == {("h", 2), ("h-w2", 2)}
    assert len({o.msg_id for o in out}) == len(out)
    machine.apply(state, plan, result(StepSucceeded, "h-w2", 1, attempt=2, agent="w2"), NOW)
    assert state.status == "succeeded"
    assert [a.attempt for a in state.jobs["h-w2"].steps[1].attempts] == [1, 2]


def test_retry_of_a_matrix_right_after_the_failure_dispatches_new_tasks() -> None:
    combos = tuple({"n": n} for n in (1, 2))
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos, fail_fast=False, steps=(step(0),)))
    first = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, result(StepSucceeded, "m-1", 0), NOW)
    machine.apply(state, plan, result(StepFailed, "m-2", 0), NOW)
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    (subject, task), = tasks(out)
    assert task.job_id == "m-2" and task.attempt == 2
    assert {o.msg_id for o in out}.isdisjoint({o.msg_id for o in first})  # nothing dropped as a duplicate


def test_a_job_for_a_group_without_agents_says_it_waits_and_fails_after_the_queue_timeout() -> None:
    from datetime import timedelta

    from waterflow_common.messages import JobWaiting, StepStarted, TimerFired

    plan, state = make(JobPlan(id="j", name="j", runs_on="nobody", steps=(step(0), step(1, if_="${{ always() }}"))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w1"]},
                        queue_timeout_minutes=10)
    waiting, = [msgspec.json.decode(o.data, type=JobWaiting) for o in out if o.subject.endswith(".job.waiting")]
    assert waiting.reason == "no healthy agent in group 'nobody'" and state.jobs["j"].waiting == waiting.reason
    timer, = [msgspec.json.decode(o.data, type=TimerFired) for o in out if ".timers." in o.subject]
    assert timer.kind == "queue-timeout" and timer.due_at == NOW + timedelta(minutes=10)
    machine.apply(state, plan, timer, NOW + timedelta(minutes=10))
    job = state.jobs["j"]
    assert state.status == "failed" and job.status == "failed"
    assert "no healthy agent in group 'nobody'" in job.error and "10 minutes" in job.error
    assert [s.status for s in job.steps] == ["failed", "skipped"]
    # An agent that takes the queued task after all is told to stop.
    out = machine.apply(state, plan, StepStarted(run_id="r1", job_id="j", step_index=0, attempt=1, agent="late"), NOW)
    assert [o.subject for o in out if not o.stored] == ["wf.control.agent.late"]


def test_a_waiting_job_runs_when_an_agent_comes_and_its_queue_timer_is_then_ignored() -> None:
    from waterflow_common.messages import StepStarted, TimerFired

    plan, state = make(JobPlan(id="j", name="j", runs_on="late", steps=(step(0),)))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={})
    timer, = [msgspec.json.decode(o.data, type=TimerFired) for o in out if ".timers." in o.subject]
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="j", step_index=0, attempt=1, agent="late-1"), NOW)
    assert state.jobs["j"].waiting is None
    assert machine.apply(state, plan, timer, NOW) == []
    machine.apply(state, plan, result(StepSucceeded, "j", 0, agent="late-1"), NOW)
    assert state.status == "succeeded"


def test_no_waiting_is_reported_when_the_group_has_a_healthy_agent_or_the_fleet_is_unknown() -> None:
    for directory in ({"web": ["w1"]}, None):
        plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0),)))
        out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory=directory)
        assert not [o for o in out if o.subject.endswith(".job.waiting") or ".timers." in o.subject]


def test_a_redelivered_attempt_becomes_a_new_attempt_without_using_a_retry() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    from waterflow_common.messages import StepStarted

    machine.apply(state, plan, StepStarted(run_id="r1", job_id="j", step_index=0, attempt=1, agent="web-1"), NOW)
    out = machine.apply(state, plan, result(StepFailed, "j", 0, agent="web-3", interrupted=True, error="interrupted: again"), NOW)
    (subject, task), = tasks(out)
    assert (subject, task.attempt) == ("wf.tasks.group.web", 2)  # not pinned by the interrupted report
    step_state = state.jobs["j"].steps[0]
    assert step_state.status == "dispatched" and state.jobs["j"].agent is None
    assert [(a.attempt, a.agent) for a in step_state.attempts] == [(1, "web-1")]
    machine.apply(state, plan, result(StepSucceeded, "j", 0, attempt=2, agent="web-3"), NOW)
    assert state.status == "succeeded"


def test_a_step_interrupted_again_and_again_fails_in_the_end() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    for attempt in range(1, machine.MAX_INTERRUPTIONS + 2):
        machine.apply(state, plan, result(StepFailed, "j", 0, attempt=attempt, interrupted=True, error="interrupted: x"), NOW)
    assert state.status == "failed" and "giving up" in state.jobs["j"].steps[0].error


def test_a_step_name_with_expressions_is_shown_evaluated() -> None:
    combos = ({"server": "web-1"}, {"server": "web-2"})
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos,
                               steps=(StepPlan(index=0, name="Check ${{ matrix.server }}", run="echo"),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert [state.jobs[i].steps[0].name for i in state.jobs["m"].instances] == ["Check web-1", "Check web-2"]
