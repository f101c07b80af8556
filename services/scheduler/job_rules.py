"""The job layer of the run state machine: a job starts (or is skipped) when its ``needs`` are
done, expands into matrix combinations or fan-out servers, walks its steps one at a time, and
ends with its result and outputs; timeouts, fail-fast and cancel stop its current step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta

from waterflow_common import steps as step_policy
from waterflow_common import subjects
from waterflow_common.matrix import from_value as matrix_from_value
from waterflow_common.expressions import ExpressionError, evaluate_condition, evaluate_value
from waterflow_common.messages import (
    JobCompleted,
    JobStarted,
    StepSkipped,
)
from waterflow_common.plan import JobPlan
from waterflow_common.secrets import mask
from waterflow_common.state import TERMINAL, JobState, StepState

from waterflow_common import contexts
from .rules import IN_PROGRESS, RunRules


class JobRules(RunRules):
    """Job and instance life cycle (mixed into ``machine._Run``)."""

    def _start_or_skip_job(self, job: JobState) -> None:
        job_plan = self.plan.jobs[job.job]
        try:
            ctx = self.contexts.job(job_plan)
        except ExpressionError as error:
            self._fail_job(job, mask(f"env: {error}", self.secrets.values()))
            return
        try:
            run_it = evaluate_condition(job_plan.if_ or "", ctx, status=contexts.job_status(self.state, self.plan, job_plan))
        except ExpressionError as error:
            self._fail_job(job, mask(f"job 'if' could not be evaluated: {error}", self.secrets.values()))
            return
        if not run_it:
            self._skip_job(job, "cancelled" if self.state.cancel_requested else "skipped")
            return
        per_combination = job.is_aggregate and not job_plan.each and "matrix" in job_plan.runs_on
        try:  # ``runs-on: ${{ matrix.os }}`` names a group per combination: resolved in _expand
            group = job_plan.runs_on if per_combination else self._resolve_group(job_plan, ctx)
        except (ExpressionError, ValueError) as error:
            self._fail_job(job, f"runs-on: {error}")
            return
        job.runs_on = group
        if group in self.defined_groups and not job_plan.each and not job.is_aggregate:
            members = self.healthy(group, job_plan)
            if not members:
                self._fail_job(job, f"no healthy agent in server group {group!r}")
                return
            job.agent = members[hash_index(f"{self.state.run_id}/{job.id}", len(members))]
        if job.is_aggregate:
            self._expand(job, job_plan, ctx)
        else:
            self._start_job(job)

    def _resolve_group(self, job_plan: JobPlan, ctx: dict[str, object]) -> str:
        value = evaluate_value(job_plan.runs_on, ctx)
        if isinstance(value, Mapping):
            value = value.get("group")
        if not isinstance(value, str) or not value:
            raise ValueError(f"evaluated to {value!r}, expected a server group name")
        return subjects.check_group(value)

    def _expand(self, job: JobState, job_plan: JobPlan, ctx: dict[str, object]) -> None:
        """Turn a matrix or fan-out job into its instances, and start as many as allowed."""
        if job.instances:  # a run retry: the instances exist, the failed ones are pending again
            job.status = "running"
            job.started_at = self.now
            self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
            self._fill_slots(job)
            return
        if job_plan.each:
            agents = self.healthy(job.runs_on, job_plan)
            if not agents:
                self._fail_job(job, f"no healthy agent in server group {job.runs_on!r} to fan out to")
                return
            combos: list[tuple[str, dict[str, object] | None, str | None, str]] = [
                (f"{job.id}-{agent}", {"agent": agent}, agent, job.runs_on) for agent in agents
            ]
        else:
            matrix = list(job_plan.matrix)
            dynamic = job_plan.matrix_expression or job_plan.matrix_template
            if dynamic:
                try:
                    matrix = matrix_from_value(_with_evaluated_keys(evaluate_value(dynamic, ctx), dynamic, ctx))
                except (ExpressionError, ValueError) as error:
                    self._fail_job(job, f"strategy.matrix: {error}")
                    return
            if not matrix:
                self._fail_job(job, "strategy.matrix expanded to no combinations")
                return
            combos = []
            for i, combo in enumerate(matrix):
                instance_id = f"{job.id}-{i + 1}"
                try:
                    group = (self._resolve_group(job_plan, {**ctx, "matrix": combo}) if "matrix" in job_plan.runs_on
                             else job.runs_on)
                except (ExpressionError, ValueError) as error:
                    self._fail_job(job, f"runs-on of {instance_id}: {error}")
                    return
                members = self.healthy(group, job_plan) if group in self.defined_groups else []
                if group in self.defined_groups and not members:
                    self._fail_job(job, f"no healthy agent in server group {group!r}")
                    return
                agent = members[hash_index(f"{self.state.run_id}/{instance_id}", len(members))] if members else None
                combos.append((instance_id, combo, agent, group))
        job.status = "running"
        job.started_at = self.now
        self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
        for instance_id, combo, agent, group in combos:
            label = ", ".join(str(v) for v in (combo or {}).values())
            self.state.jobs[instance_id] = JobState(
                id=instance_id, job=job.id, name=f"{job.name} ({label})", runs_on=group, parent=job.id,
                matrix=combo, agent=agent,
                steps=[StepState(index=s.index, name=s.name, id=s.id) for s in job_plan.steps],
            )
            job.instances.append(instance_id)
        self._fill_slots(job)

    def _fill_slots(self, aggregate: JobState) -> None:
        limit = self.plan.jobs[aggregate.job].max_parallel or len(aggregate.instances)
        instances = [self.state.jobs[i] for i in aggregate.instances]
        running = sum(1 for i in instances if i.status == "running")
        for instance in instances:
            if running >= limit:
                break
            if instance.status == "pending":
                self._start_job(instance)
                running += 1

    def _start_job(self, job: JobState) -> None:
        job.status = "running"
        job.started_at = self.now
        self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
        try:
            minutes = self._job_timeout(job)
        except ValueError as error:
            self._fail_job(job, f"timeout-minutes: {error}")
            return
        if minutes:
            self.effects.timer("job-timeout", self.now + timedelta(minutes=minutes), job=job.id)
        self.continue_job(job)

    def _job_timeout(self, job: JobState) -> float | None:
        """The job's ``timeout-minutes`` (an expression is evaluated over the job's contexts)."""
        job_plan = self.plan.jobs[job.job]
        return step_policy.minutes(job_plan.timeout_minutes, lambda: self.contexts.job(job_plan, job))

    def continue_job(self, job: JobState) -> None:
        """Run the job's next step whose ``if`` holds; finish the job when no step is left.

        Not while a job task is out: the agent running it walks the steps until it hands the
        job back (``job.ran``)."""
        if job.status != "running" or job.is_aggregate or job.task_out:
            return
        job_plan = self.plan.jobs[job.job]
        for step in job.steps:
            if step.status in TERMINAL:
                continue
            if step.status in IN_PROGRESS:
                return
            step_plan = job_plan.steps[step.index]
            try:
                ctx = self.contexts.step(job, step)
            except ExpressionError as error:
                self._fail_without_running(job, step, f"env: {error}")
                continue
            try:
                run_it = step_policy.should_run(job, step_plan, ctx)
            except ExpressionError as error:
                self._fail_without_running(job, step, f"step 'if' could not be evaluated: {error}")
                continue
            if not run_it:
                step.status = "skipped"
                step.outcome = step.conclusion = "skipped"
                self.effects.event(StepSkipped(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                               reason="condition false", at=self.now))
                continue
            if self._start_step(job, step, step_plan, ctx):
                return
        self._finish_job(job)

    def _finish_job(self, job: JobState) -> None:
        job_plan = self.plan.jobs[job.job]
        if job.error:
            result = "failed"
        elif any(s.conclusion == "failure" for s in job.steps):
            result = "failed"
        elif job.cancelled:
            result = "cancelled"
        else:
            result = "succeeded"
        try:
            ctx = self.contexts.job(job_plan, job)
            ctx["steps"] = contexts.steps_context(job, len(job.steps))
        except ExpressionError as error:
            job.error = job.error or f"env: {error}"
            self._complete_job(job, "failed")
            return
        for name, template in job_plan.outputs.items():
            try:
                job.outputs[name] = evaluate_value(template, ctx)
            except ExpressionError as error:
                job.error = job.error or f"output {name!r}: {error}"
                result = "failed"
        self._complete_job(job, result)

    def _complete_job(self, job: JobState, result: str) -> None:
        job.status = result  # type: ignore[assignment]
        job.finished_at = self.now
        self.effects.event(JobCompleted(
            run_id=self.state.run_id, job_id=job.id, result=result, run_attempt=self.state.attempt, at=self.now,
            error=job.error,
        ))
        if job.parent is not None:
            self._instance_done(self.state.jobs[job.parent], job)

    def _instance_done(self, aggregate: JobState, instance: JobState) -> None:
        job_plan = self.plan.jobs[aggregate.job]
        instances = [self.state.jobs[i] for i in aggregate.instances]
        if (instance.status == "failed" and job_plan.fail_fast and not job_plan.each
                and not contexts.continues_on_error(self.state, self.plan, instance)):
            for sibling in instances:
                if sibling.status == "pending":
                    self._skip_job(sibling, "cancelled")
                elif sibling.status == "running" and sibling is not instance:
                    sibling.error = sibling.error or f"cancelled by fail-fast: {instance.name} failed"
                    self._stop_current_step(sibling, "fail-fast")
                    self.continue_job(sibling)  # a withdrawn or timer-waiting sibling ends here
        self._fill_slots(aggregate)
        if all(i.status in TERMINAL for i in instances) and aggregate.status == "running":
            for i in instances:
                aggregate.outputs.update(i.outputs)
            failed = any(
                i.status == "cancelled" or (i.status == "failed" and not contexts.continues_on_error(self.state, self.plan, i))
                for i in instances
            )
            result = "failed" if failed else ("cancelled" if self.state.cancel_requested else "succeeded")
            self._complete_job(aggregate, result)

    def _skip_job(self, job: JobState, result: str) -> None:
        for step in job.steps:
            step.status = "skipped"
            step.outcome = step.conclusion = "skipped"
        self._complete_job(job, result)

    def _fail_job(self, job: JobState, error: str) -> None:
        job.error = error
        for step in job.steps:
            if step.status not in TERMINAL:
                step.status = "skipped"
        self._complete_job(job, "failed")

    def _queue_timed_out(self, job: JobState, step: StepState) -> None:
        """No agent took the job's task in time: withdraw it and fail the job with the reason."""
        waited = (self.now - (step.dispatched_at or self.now)).total_seconds() / 60
        reason = (f"{job.waiting or f'no agent of group {job.runs_on!r} took the job'}; "
                  f"gave up after {waited:.3g} minutes in the queue")
        step.cancel_requested = True  # an agent that takes the task after all is told to stop
        step.error = reason
        step.finished_at = self.now
        job.task_out = False
        self._conclude(job, step, "failure")
        job.waiting = None
        self._fail_job(job, reason)
        self.continue_job(job)
        self.advance()

    def _job_timed_out(self, job: JobState) -> None:
        try:
            minutes = self._job_timeout(job)
        except ValueError:
            minutes = None
        job.error = f"job timed out after {minutes:g} minutes" if minutes else "job timed out"
        self._stop_current_step(job, "job timed out")
        self.continue_job(job)
        self.advance()

    def _stop_current_step(self, job: JobState, reason: str) -> None:
        """Stop what the job is doing: withdraw its task if still queued, tell the agent running
        it to stop (the agent then runs only the steps that ask for it: ``always()``), or end the
        durable wait it is in (retry backoff, ``sleep``)."""
        for step in job.steps:
            if step.status == "dispatched":
                # Still queued: withdraw the task; an agent that takes it anyway is told to stop.
                step.cancel_requested = True
                step.status = "cancelled"
                step.outcome = step.conclusion = "cancelled"
                step.finished_at = self.now
                job.task_out = False
                return
        if job.task_out:
            for step in job.steps:
                if step.status in ("running", "retrying"):
                    step.cancel_requested = True
            if job.agent:
                self.effects.cancel_job(job.agent, job, reason)
            return
        for step in job.steps:
            if step.status in ("retrying", "running"):  # waiting on a timer (backoff or sleep)
                step.status = "cancelled"
                step.outcome = step.conclusion = "cancelled"
                step.finished_at = self.now


def hash_index(key: str, size: int) -> int:
    """A stable choice among ``size`` members (the same on every scheduler and every replay)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % size


def _with_evaluated_keys(value: object, template: object, ctx: Mapping[str, object]) -> object:
    """A matrix mapping's keys evaluated too, as GitHub does: ``"${{ 'os' }}": [...]`` is key
    ``os``, and ``${{ insert }}: ${{ fromJSON(...) }}`` merges the mapping it evaluates to."""
    if not isinstance(value, dict) or not isinstance(template, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(key, str) and key.replace(" ", "") == "${{insert}}":
            if not isinstance(item, dict):
                raise ValueError(f"'${{{{ insert }}}}' must evaluate to an object, got {type(item).__name__}")
            out.update(item)
        elif isinstance(key, str) and "${{" in key:
            out[str(evaluate_value(key, ctx))] = item
        else:
            out[key] = item
    return out
