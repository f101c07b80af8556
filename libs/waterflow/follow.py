"""Showing a run in the terminal: live, step by step, then a summary table.

Two renderings of the same events. On a terminal, the lines are printed as they come and, under
them, a live area redrawn ten times a second shows a spinner and the elapsed time of every
running step and waiting job (``rich.live``). Piped or redirected (a CI log, ``| tee``), there is
no live area and no redraw: one plain line per event, each finished step, job and the run with
its duration, so the output reads the same in a log file.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .client import Client
from .output import show_table
from .output import table as output_table

_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "skipped": "dim", "running": "cyan"}


def timestamp(value: Any) -> float | None:
    """Unix seconds of an API time (a datetime, an ISO 8601 string, or seconds); None for none."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def format_duration(seconds: float | None) -> str:
    """``12ms``, ``4.5s``, ``2m05s``, ``1h02m``: how long something took, for people."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _took(start: Any, end: Any) -> float | None:
    started, ended = timestamp(start), timestamp(end)
    return None if started is None or ended is None else ended - started


def _annotation(note: Any) -> tuple[str, str, str]:
    """(level, " file:line" or "", message) of an annotation (a Struct, or a dict from JSON)."""
    field = note.get if isinstance(note, dict) else (lambda name: getattr(note, name, None))
    where = f" {field('file')}:{field('line') or '?'}" if field("file") else ""
    return str(field("level")), where, str(field("message"))


class _LiveArea:
    """What is going on now (redrawn under the printed lines on a terminal): a spinner with the
    elapsed time of each running step and each job waiting for an agent."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, int], tuple[Spinner, str, float]] = {}
        self.waiting: dict[str, tuple[Spinner, str, float]] = {}

    def step_started(self, key: tuple[str, int], label: str, since: float) -> None:
        self.running[key] = (Spinner("dots", style="cyan"), label, since)

    def job_waiting(self, job_id: str, label: str, since: float) -> None:
        self.waiting[job_id] = (Spinner("dots", style="yellow"), label, since)

    def __rich__(self) -> Group:
        now = time.time()
        rows = []
        for spinner, label, since in [*self.waiting.values(), *self.running.values()]:
            spinner.update(text=Text.assemble(" ", label, " ", (format_duration(now - since), "bold")))
            rows.append(spinner)
        return Group(*rows)


def _attempts_before(events: Any, retries: int) -> dict[tuple[str, int], int]:
    """The last attempt of each step before the ``retries``-th retry request of a run (its
    log lines belong to the attempts before the one being followed)."""
    attempts: dict[tuple[str, int], int] = {}
    for event in events:
        if event["type"] == "run.retry_requested":
            retries -= 1
            if retries == 0:
                break
        elif event.get("step_index") is not None and event.get("attempt"):
            key = (event["job_id"], event["step_index"])
            attempts[key] = max(attempts.get(key, 0), event["attempt"])
    return attempts


class _RunView:
    """Turns the run's events and log lines into printed lines (and the live area)."""

    def __init__(self, client: Client, run_id: str, console: Console, before: Any = None, attempt: int = 1) -> None:
        self.client, self.run_id, self.console = client, run_id, console
        self.step_names: dict[tuple[str, int], str] = {}
        self.job_names: dict[str, str] = {}
        self.job_started: dict[str, float] = {}
        self.live = _LiveArea()
        # A retry is followed from its request on: the stream replays the earlier attempts first.
        self.retries_to_skip = attempt - 1
        self.old_attempts: dict[tuple[str, int], int] = {}
        if before is not None:
            for job_id, job in before["jobs"].items():
                for step in job["steps"]:
                    self.old_attempts[(job_id, step["index"])] = step["attempt"] or 0
        elif attempt > 1:  # `status --follow` of a retried run: the history says what came before
            self.old_attempts = _attempts_before(client.events(run_id), retries=attempt - 1)

    def _refresh(self) -> None:
        for job_id, job in self.client.get(self.run_id)["jobs"].items():
            self.job_names[job_id] = job["name"] or job_id
            for step in job["steps"]:
                self.step_names[(job_id, step["index"])] = step["name"]

    def job(self, job_id: str) -> str:
        """The job's name as shown (a matrix instance: ``build (amd64)``), escaped for markup."""
        if job_id not in self.job_names:
            self._refresh()  # matrix and fan-out instances appear while the run goes on
        return escape(self.job_names.get(job_id, job_id))

    def step(self, job_id: str, index: int) -> str:
        """The step's name (evaluated), escaped: it is the user's text, never rich markup."""
        if (job_id, index) not in self.step_names:
            self._refresh()
        return escape(self.step_names.get((job_id, index), f"step {index + 1}"))

    def show(self, item: Any) -> None:
        if item["kind"] == "log":
            self._log(item)
            return
        kind = item["type"]
        if self.retries_to_skip:
            if kind == "run.retry_requested":
                self.retries_to_skip -= 1
            return
        at = timestamp(item.get("at")) or time.time()
        job_id = item.get("job_id")
        if kind == "job.started":
            self.job_started[job_id] = at
            self.console.print(f"[bold]▶ job {self.job(job_id)}[/]")
        elif kind == "job.waiting":
            self.live.job_waiting(job_id, f"job {self.job(job_id)} waiting for an agent of group {escape(item['group'])}", at)
            self.console.print(f"  [yellow]…[/] {self.job(job_id)} waiting: {escape(item['reason'])} "
                               f"[dim](fails after {item['queue_timeout_minutes']:g} min; start an agent with "
                               f"--group {escape(item['group'])})[/]")
        elif kind == "step.started":
            name = self.step(job_id, item["step_index"])
            attempt = f" (attempt {item['attempt']})" if item["attempt"] > 1 else ""
            self.live.waiting.pop(job_id, None)
            self.live.step_started((job_id, item["step_index"]), f"{self.job(job_id)} › {name}{attempt}", at)
            self.console.print(f"  [cyan]●[/] {self.job(job_id)} › {name}{attempt} [dim]on {escape(item['agent'])}[/]")
        elif kind in ("step.succeeded", "step.failed"):
            self.live.running.pop((job_id, item["step_index"]), None)
            name = self.step(job_id, item["step_index"])
            mark = "[green]✓[/]" if kind == "step.succeeded" else "[red]✗[/]"
            took = format_duration(_took(item.get("started_at"), item.get("at")))
            why = f" [red]{escape(item['error'])}[/]" if item.get("error") else ""
            self.console.print(f"  {mark} {self.job(job_id)} › {name} [dim]({took})[/]{why}" if took else
                               f"  {mark} {self.job(job_id)} › {name}{why}")
            for note in item.get("annotations") or ():
                level, where, message = _annotation(note)
                style = {"error": "red", "warning": "yellow"}.get(level, "cyan")
                self.console.print(f"    [{style}]{level}[/]{escape(where)}: {escape(message)}")
        elif kind == "step.retrying":
            self.live.running.pop((job_id, item["step_index"]), None)
            name = self.step(job_id, item["step_index"])
            self.console.print(f"  [yellow]↻[/] {self.job(job_id)} › {name} failed, retrying in {item['delay']:g}s")
        elif kind == "step.skipped":
            self.console.print(f"  [dim]- {self.job(job_id)} › {self.step(job_id, item['step_index'])} skipped[/]")
        elif kind == "run.cancel_requested":
            self.console.print(f"[yellow]Cancelling: {escape(item.get('reason') or '')}[/]")
        elif kind == "job.completed":
            self.live.waiting.pop(job_id, None)
            for key in [k for k in self.live.running if k[0] == job_id]:
                del self.live.running[key]
            style = _STYLE.get(item["result"], "")
            started = self.job_started.get(job_id)
            took = f" in {format_duration(at - started)}" if started is not None else ""
            why = f": [red]{escape(item['error'])}[/]" if item.get("error") else ""
            self.console.print(f"[{style}]■ job {self.job(job_id)} {item['result']}[/]{took}{why}")

    def _log(self, item: Any) -> None:
        if item.get("attempt", 1) <= self.old_attempts.get((item["job"], item["step"]), 0):
            return  # a line of an attempt before the retry being followed
        style = "red" if item["stream"] == "stderr" else ("yellow" if item["stream"] == "system" else "")
        if item["job"] not in self.job_names:
            self._refresh()  # a job's first line may come before its job.started event
        line = Text(f"  {self.job_names.get(item['job'], item['job'])} │ ", style="dim")
        line.append(item["text"], style=style)
        self.console.print(line, soft_wrap=True)


def follow_run(client: Client, run_id: str, console: Console, before: Any = None, attempt: int = 1) -> Any:
    """Print events and log lines as they happen; return the final state.

    ``before`` and ``attempt``: following a retry — the run's state before the retry was asked
    for and the attempt it starts; only that attempt's events and lines are shown.
    """
    view = _RunView(client, run_id, console, before, attempt)
    live = (Live(view.live, console=console, refresh_per_second=10, transient=True)
            if console.is_terminal else nullcontext())
    with live:
        for item in client.watch(run_id, attempt=attempt):
            view.show(item)
    state = client.get(run_id)
    render_summary(state, console)
    return state


def graph_order(jobs: dict[str, Any]) -> list[str]:
    """Job ids in the order the run goes: a job after every job it needs (ties in the order they
    were declared), each matrix or fan-out aggregate followed by its instances."""
    placed: list[str] = []
    done: set[str] = set()
    tops = [job_id for job_id, job in jobs.items() if not job.get("parent")]
    while len(done) < len(tops):
        ready = [j for j in tops if j not in done and all(n in done or n not in jobs for n in jobs[j].get("needs") or ())]
        for job_id in ready or [j for j in tops if j not in done][:1]:  # a cycle cannot happen; never loop
            done.add(job_id)
            placed.append(job_id)
            placed.extend(i for i in jobs[job_id].get("instances") or () if i in jobs)
    placed.extend(j for j in jobs if j not in placed)  # an instance whose aggregate is unknown
    return placed


def render_summary(state: Any, console: Console) -> None:
    table = output_table("job", "step", "status", "time", "exit", "agent", "error", keep=("job", "step"),
                         title=Text(f"{state['workflow']} · {state['id']}"), title_justify="left")
    jobs = state["jobs"]
    for job_id in graph_order(jobs):
        job = jobs[job_id]
        for step in job["steps"]:
            status = step["status"]
            table.add_row(Text(job["name"] or job_id), Text(step["name"]), Text(status, style=_STYLE.get(status, "")),
                          format_duration(_took(step.get("started_at"), step.get("finished_at"))),
                          "" if step.get("exit_code") is None else str(step["exit_code"]),
                          Text(step.get("agent") or ""), Text(step.get("error") or ""))
    show_table(table)  # piped: one row per line, never folded
    for job_id in graph_order(jobs):
        job = jobs[job_id]
        if job.get("waiting"):
            console.print(Text(f"{job_id}: waiting: {job['waiting']}", style="yellow"))
        for step in job["steps"]:
            for note in step.get("annotations") or ():
                level, where, message = _annotation(note)
                style = {"error": "red", "warning": "yellow"}.get(level, "cyan")
                console.print(Text(f"{job_id} › {step['name']}: {level}{where}: {message}", style=style))
            if step.get("summary"):  # $GITHUB_STEP_SUMMARY, Markdown
                console.print(Text(f"{job_id} › {step['name']} summary:", style="bold"))
                console.print(Markdown(step["summary"]))
        if job.get("results"):
            show_table(_results_table(job_id, job["results"]))
    jobs_took = [f"{jobs[j]['name'] or j} {format_duration(_took(jobs[j].get('started_at'), jobs[j].get('finished_at')))}"
                 for j in graph_order(jobs) if not jobs[j].get("parent") and jobs[j].get("finished_at")]
    if jobs_took:
        console.print(Text("jobs: " + ", ".join(jobs_took), style="dim"))
    style = _STYLE.get(state["status"], "")
    took = _took(state.get("started_at") or state.get("created_at"), state.get("finished_at"))
    console.print(Text(f"Run {state['status']}" + (f" in {format_duration(took)}" if took is not None else ""),
                       style=f"bold {style}"))


def _results_table(job_id: str, results: list[dict[str, Any]]) -> Table:
    """One row per server (fan-out) or combination (matrix): the aggregated report of a job."""
    keys = sorted({k for r in results for k in r["outputs"]})
    table = output_table("where", "status", "exit", *(Text(k) for k in keys), "error", keep=("where",),  # type: ignore[arg-type]
                         title=f"{job_id}: {len(results)} results", title_justify="left")
    for r in results:
        # a matrix combination by its values; a fan-out instance by its server
        where = ", ".join(f"{k}={v}" for k, v in (r.get("matrix") or {}).items()) or r.get("agent") or ""
        table.add_row(Text(where), Text(r["status"], style=_STYLE.get(r["status"], "")),
                      "" if r.get("exit_code") is None else str(r["exit_code"]),
                      *(Text(str(r["outputs"].get(k, ""))) for k in keys), Text(r.get("error") or ""))
    return table
