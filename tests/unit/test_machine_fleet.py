"""Scheduler rules for fleets: job affinity, lost agents, and run retries of matrices and fan-outs.

A job's steps all run on the agent that took its job task (as on a GitHub runner), and a job
resumed after a durable wait goes back to that agent; an agent lost with a job's workspace fails
the job at once; a retry re-runs only what failed, numbering the new attempts and job tasks on
so that no task or event of the retry is dropped as a duplicate of the first try.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from test_machine import job_tasks, ran, skipped
from waterflow_common.messages import (
    JobStarted,
    StepOutcome,
    RunCreated,
    RunRetryRequested,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerFired,
)
from waterflow_common.plan import JobPlan, Plan, RetryPolicy, StepPlan
from waterflow_common.state import initial_state
from waterflow_common.tasks import JobTask
from waterflow_scheduler import machine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def step(index: int, **kw) -> StepPlan:
    return StepPlan(index=index, name=f"s{index}", run="echo", **kw)


def make(*jobs: JobPlan):
    plan = Plan(name="t", jobs={j.id: j for j in jobs})
    return plan, initial_state("r1", plan, NOW)


def tasks(outgoing) -> list[tuple[str, JobTask]]:
    return [(o.subject, t) for o, t in zip([o for o in outgoing if ".tasks." in o.subject], job_tasks(outgoing))]


def result(cls, job, index, attempt=1, agent="web-2", task=1, **kw):
    return cls(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent=agent, task=task, **kw)


def started(job, index, attempt=1, agent="web-2", task=1):
    return StepStarted(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent=agent, task=task)


def apply_all(state, plan, *events, **kw) -> list:
    out: list = []
    for event in events:
        out = machine.apply(state, plan, event, NOW, **kw)
    return out


def test_the_agent_that_took_the_job_runs_every_later_step_and_retry_of_the_job() -> None:
    policy = RetryPolicy(attempts=2, initial_interval=60)
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1, retry=policy), step(2))))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert [s for s, _ in tasks(out)] == ["wf.tasks.group.web"]  # any agent of the group may take the job
    out = apply_all(state, plan, started("j", 0), result(StepSucceeded, "j", 0), started("j", 1))
    assert tasks(out) == [] and state.jobs["j"].agent == "web-2"
    apply_all(state, plan, result(StepFailed, "j", 1, exit_code=1, retry_delay=60.0))
    out = machine.apply(state, plan, ran("j", agent="web-2", next_step=1, retry_delay=60.0), NOW)
    timer = [msgspec.json.decode(o.data, type=TimerFired) for o in out if ".timers." in o.subject][0]
    out = machine.apply(state, plan, timer, NOW)  # the retry goes back to the agent with the workspace
    assert [(s, t.from_step, t.attempt, t.task) for s, t in tasks(out)] == [("wf.tasks.agent.web-2", 1, 2, 2)]
    apply_all(state, plan, result(StepSucceeded, "j", 1, attempt=2, task=2), result(StepSucceeded, "j", 2, task=2),
              ran("j", task=2, agent="web-2"))
    assert state.status == "succeeded"
    assert {s.agent for s in state.jobs["j"].steps} == {"web-2"}


def test_a_lost_agent_fails_its_job_at_once_and_a_run_retry_reruns_the_whole_job_anywhere() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(
        step(0), step(1, retry=RetryPolicy(attempts=5)), step(2, if_="${{ always() }}"),
    )))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepSucceeded, "j", 0), started("j", 1))
    out = machine.apply(state, plan, result(StepFailed, "j", 1, agent_lost=True, error="agent web-2 lost"), NOW)
    job = state.jobs["j"]
    assert tasks(out) == []  # no retry, no always() step sent to the lost agent
    assert job.status == "failed" and job.lost_agent == "web-2" and "lost communication" in (job.error or "")
    assert [s.status for s in job.steps] == ["succeeded", "failed", "skipped"] and not job.task_out
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    (subject, task), = tasks(out)
    assert (subject, task.from_step, task.attempt, task.task) == ("wf.tasks.group.web", 0, 2, 2)  # from step 0, any agent
    assert job.agent is None and job.lost_agent is None


def test_a_lost_agent_reported_on_a_step_that_had_ended_still_fails_its_job() -> None:
    """The lost agent's last heartbeat listed step 0 (or the drained job task names its first
    step), but the agent had finished it and moved on before it died: the job task is still the
    current one, the workspace is gone, so the job fails (else it would wait forever)."""
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, steps=(step(0), step(1), step(2))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w1"]})
    apply_all(state, plan, started("h-w1", 0, agent="w1"), result(StepSucceeded, "h-w1", 0, agent="w1"),
              started("h-w1", 1, agent="w1"))
    machine.apply(state, plan, result(StepFailed, "h-w1", 0, agent="w1", agent_lost=True, error="agent w1 lost"), NOW)
    job = state.jobs["h-w1"]
    assert job.status == "failed" and job.lost_agent == "w1" and not job.task_out
    assert state.status == "failed"


def test_a_run_retry_keeps_the_agent_of_a_job_that_failed_on_its_own() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepSucceeded, "j", 0), result(StepFailed, "j", 1, exit_code=2), ran("j", agent="web-2"))
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    assert [(s, t.from_step, t.attempt, t.task) for s, t in tasks(out)] == [("wf.tasks.agent.web-2", 1, 2, 2)]


def test_retry_of_a_fan_out_reruns_only_the_failed_servers_with_new_attempt_numbers() -> None:
    plan, state = make(JobPlan(id="h", name="h", runs_on="web", each=True, fail_fast=False, steps=(step(0), step(1))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={"web": ["w1", "w2", "w3"]})
    for agent, second in (("w1", StepSucceeded), ("w2", StepFailed), ("w3", StepSucceeded)):
        apply_all(state, plan, result(StepSucceeded, f"h-{agent}", 0, agent=agent), result(second, f"h-{agent}", 1, agent=agent),
                  ran(f"h-{agent}", agent=agent))
    assert state.status == "failed"
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW, directory={"web": ["w1", "w3"]})
    assert [(s, t.job.id, t.from_step, t.attempt, t.task) for s, t in tasks(out)] == [("wf.tasks.agent.w2", "h-w2", 1, 2, 2)]
    started_ = [msgspec.json.decode(o.data, type=JobStarted) for o in out if o.subject.endswith(".job.started")]
    assert {(e.job_id, e.run_attempt) for e in started_} == {("h", 2), ("h-w2", 2)}
    assert len({o.msg_id for o in out}) == len(out)
    apply_all(state, plan, result(StepSucceeded, "h-w2", 1, attempt=2, agent="w2", task=2), ran("h-w2", task=2, agent="w2"))
    assert state.status == "succeeded"
    assert [a.attempt for a in state.jobs["h-w2"].steps[1].attempts] == [1, 2]


def test_retry_of_a_matrix_right_after_the_failure_dispatches_new_tasks() -> None:
    combos = tuple({"n": n} for n in (1, 2))
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos, fail_fast=False, steps=(step(0),)))
    first = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, result(StepSucceeded, "m-1", 0), ran("m-1", agent="web-2"))
    apply_all(state, plan, result(StepFailed, "m-2", 0), ran("m-2", agent="web-2"))
    out = machine.apply(state, plan, RunRetryRequested(run_id="r1"), NOW)
    (subject, task), = tasks(out)
    assert (task.job.id, task.attempt, task.task) == ("m-2", 2, 2)
    assert {o.msg_id for o in out}.isdisjoint({o.msg_id for o in first})  # nothing dropped as a duplicate


def test_a_job_for_a_group_without_agents_says_it_waits_and_fails_after_the_queue_timeout() -> None:
    from datetime import timedelta

    from test_machine import cancels
    from waterflow_common.messages import JobWaiting

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
    # An agent that takes the queued task after all is told to stop and run nothing of it.
    out = machine.apply(state, plan, started("j", 0, agent="late"), NOW)
    assert [(s, c.task, c.withdraw) for s, c in cancels(out)] == [("wf.control.agent.late", 1, True)]


def test_a_waiting_job_runs_when_an_agent_comes_and_its_queue_timer_is_then_ignored() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="late", steps=(step(0),)))
    out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory={})
    timer, = [msgspec.json.decode(o.data, type=TimerFired) for o in out if ".timers." in o.subject]
    machine.apply(state, plan, started("j", 0, agent="late-1"), NOW)
    assert state.jobs["j"].waiting is None
    assert machine.apply(state, plan, timer, NOW) == []
    apply_all(state, plan, result(StepSucceeded, "j", 0, agent="late-1"), ran("j", agent="late-1"))
    assert state.status == "succeeded"


def test_no_waiting_is_reported_when_the_group_has_a_healthy_agent_or_the_fleet_is_unknown() -> None:
    for directory in ({"web": ["w1"]}, None):
        plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0),)))
        out = machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory=directory)
        assert not [o for o in out if o.subject.endswith(".job.waiting") or ".timers." in o.subject]


def test_a_redelivered_attempt_becomes_a_new_attempt_without_using_a_retry() -> None:
    """web-1 took the job and stopped answering before any step ended; the task, delivered again
    to web-3, is reported interrupted: the step runs again as a new attempt, on any agent (nothing
    of the job's workspace is lost), without using the step's ``retry:``."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0, retry=RetryPolicy(attempts=1)),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    machine.apply(state, plan, started("j", 0, agent="web-1"), NOW)
    out = machine.apply(state, plan, ran("j", agent="web-3", interrupted=True), NOW)
    (subject, task), = tasks(out)
    assert (subject, task.from_step, task.attempt, task.task, task.tried) == ("wf.tasks.group.web", 0, 2, 2, 0)
    step_state = state.jobs["j"].steps[0]
    assert step_state.status == "dispatched" and state.jobs["j"].agent is None  # not pinned by the interrupted report
    assert [(a.attempt, a.agent, a.interrupted) for a in step_state.attempts] == [(1, "web-1", True)]
    assert machine.apply(state, plan, result(StepSucceeded, "j", 0, agent="web-1"), NOW) == []  # the old task's
    apply_all(state, plan, result(StepSucceeded, "j", 0, attempt=2, agent="web-3", task=2), ran("j", task=2, agent="web-3"))
    assert state.status == "succeeded"


def test_an_interrupted_job_task_redelivered_to_its_own_agent_runs_again_there() -> None:
    """The agent that held the job (and its workspace) got its own task again (it restarted):
    the step in progress becomes an interrupted attempt and the job goes on, pinned to it."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1), step(2))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, started("j", 0, agent="web-1"), result(StepSucceeded, "j", 0, agent="web-1"),
              started("j", 1, agent="web-1"))
    out = machine.apply(state, plan, ran("j", agent="web-1", interrupted=True), NOW)
    (subject, task), = tasks(out)
    assert (subject, task.from_step, task.attempt, task.task) == ("wf.tasks.agent.web-1", 1, 2, 2)
    job = state.jobs["j"]
    assert job.status == "running" and job.agent == "web-1"
    assert [(a.attempt, a.interrupted) for a in job.steps[1].attempts] == [(1, True)]
    apply_all(state, plan, result(StepSucceeded, "j", 1, attempt=2, agent="web-1", task=2),
              result(StepSucceeded, "j", 2, agent="web-1", task=2), ran("j", task=2, agent="web-1"))
    assert state.status == "succeeded"


def test_an_interrupted_job_task_taken_by_another_agent_after_steps_ran_fails_the_job() -> None:
    """Earlier steps ran on web-1 (the job's workspace is there); the task, delivered again to
    web-3, cannot go on without it: the job fails, saying it lost communication with web-1."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1), step(2, if_="always()"))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, started("j", 0, agent="web-1"), result(StepSucceeded, "j", 0, agent="web-1"),
              started("j", 1, agent="web-1"))
    out = machine.apply(state, plan, ran("j", agent="web-3", interrupted=True), NOW)
    assert tasks(out) == []
    job = state.jobs["j"]
    assert job.status == "failed" and job.lost_agent == "web-1"
    assert "lost communication with agent 'web-1'" in (job.error or "")
    assert [s.status for s in job.steps] == ["succeeded", "failed", "skipped"]
    assert state.status == "failed"


def test_a_step_interrupted_again_and_again_fails_in_the_end() -> None:
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    for task in range(1, machine.MAX_INTERRUPTIONS + 2):
        assert state.jobs["j"].task == task
        machine.apply(state, plan, ran("j", task=task, agent=f"web-{task}", interrupted=True), NOW)
    assert state.status == "failed" and "giving up" in state.jobs["j"].steps[0].error


def test_a_step_name_with_expressions_is_shown_evaluated() -> None:
    combos = ({"server": "web-1"}, {"server": "web-2"})
    plan, state = make(JobPlan(id="m", name="m", runs_on="g", matrix=combos,
                               steps=(StepPlan(index=0, name="Check ${{ matrix.server }}", run="echo"),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    assert [state.jobs[i].steps[0].name for i in state.jobs["m"].instances] == ["Check web-1", "Check web-2"]


def test_a_job_resuming_on_an_agent_that_is_not_healthy_says_so_and_is_bounded() -> None:
    """After a durable wait the job goes back to the agent holding its workspace; if that agent
    is not healthy then, the job says it waits for it (and the queue timeout bounds the wait),
    instead of sitting silently on the agent's subject."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(
        step(0), StepPlan(index=1, name="wait", uses="sleep@v1", with_={"seconds": 60}), step(2))))
    fleet = {"web": ["web-1", "web-2"]}
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW, directory=fleet)
    out = apply_all(state, plan, started("j", 0), result(StepSucceeded, "j", 0), ran("j", agent="web-2", next_step=1),
                    directory=fleet)
    timer = next(msgspec.json.decode(o.data, type=TimerFired) for o in out if ".timers." in o.subject)
    out = machine.apply(state, plan, timer, NOW, directory={"web": ["web-1"]})  # web-2 went quiet meanwhile
    assert [s for s, _ in tasks(out)] == ["wf.tasks.agent.web-2"]
    waiting = [msgspec.json.decode(o.data) for o in out if o.subject.endswith(".job.waiting")]
    assert [w["reason"] for w in waiting] == ["agent 'web-2', which this job runs on, is not healthy"]
    assert state.jobs["j"].waiting == waiting[0]["reason"]
    assert [msgspec.json.decode(o.data)["kind"] for o in out if ".timers." in o.subject] == ["queue-timeout"]


def test_a_hand_back_applied_before_the_step_events_it_follows_waits_for_them() -> None:
    """Schedulers may apply a run's events out of order (one redelivered after a scheduler was
    killed, two schedulers at once): a ``job.ran`` that comes before the results it follows is
    kept, and acted on when the last of them comes in."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0), step(1), step(2, if_="failure()"))))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    hand_back = ran("j", agent="web-2", outcomes=(StepOutcome(0, 1, "succeeded"), StepOutcome(1, 1, "succeeded"),
                                                  StepOutcome(2, 0, "skipped")))
    apply_all(state, plan, started("j", 0), result(StepSucceeded, "j", 0), hand_back)
    job = state.jobs["j"]
    assert job.status == "running" and job.task_out and job.handed_back == hand_back
    apply_all(state, plan, skipped("j", 2))
    assert job.status == "running"  # step 1's result is still on its way
    apply_all(state, plan, started("j", 1), result(StepSucceeded, "j", 1))
    assert job.status == "succeeded" and not job.task_out and job.handed_back is None
    assert [s.status for s in job.steps] == ["succeeded", "succeeded", "skipped"] and state.status == "succeeded"
    assert machine.apply(state, plan, hand_back, NOW) == []  # the hand-back delivered again


def test_a_retried_attempt_applied_before_the_failure_it_retries_still_ends_the_step() -> None:
    """Out of order: the agent's attempt 2 (started, succeeded) is applied before attempt 1's
    failure (redelivered late); the step ends with attempt 2 and the job is handed back."""
    plan, state = make(JobPlan(id="j", name="j", runs_on="web", steps=(step(0, retry=RetryPolicy(attempts=2)),)))
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="t"), NOW)
    apply_all(state, plan, started("j", 0), started("j", 0, attempt=2), result(StepSucceeded, "j", 0, attempt=2),
              ran("j", agent="web-2", outcomes=(StepOutcome(0, 2, "succeeded"),)),
              result(StepFailed, "j", 0, attempt=1, exit_code=1, retry_delay=1.0))
    step_state = state.jobs["j"].steps[0]
    assert (step_state.status, step_state.attempt) == ("succeeded", 2) and state.status == "succeeded"
