"""Showing a run in the terminal: live, step by step, then a summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .client import Client

_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "skipped": "dim", "running": "cyan"}


def follow_run(client: Client, run_id: str, console: Console) -> dict[str, Any]:
    """Print events and log lines as they happen; return the final state."""
    names: dict[tuple[str, int], str] = {}

    def refresh() -> None:
        for job_id, job in client.get(run_id)["jobs"].items():
            for step in job["steps"]:
                names[(job_id, step["index"])] = step["name"]

    def name_of(job_id: str, index: int) -> str:
        """The step's name, escaped: it is the user's text, never rich markup."""
        if (job_id, index) not in names:
            refresh()  # matrix and fan-out instances appear while the run goes on
        return escape(names.get((job_id, index), f"step {index + 1}"))

    for item in client.watch(run_id):
        if item["kind"] == "log":
            style = "red" if item["stream"] == "stderr" else ("yellow" if item["stream"] == "system" else "")
            line = Text(f"  {item['job']} │ ", style="dim")
            line.append(item["text"], style=style)
            console.print(line, soft_wrap=True)
            continue
        kind = item["type"]
        if kind == "job.started":
            console.print(f"[bold]▶ job {item['job_id']}[/]")
        elif kind == "job.waiting":
            console.print(f"  [yellow]…[/] {item['job_id']} waiting: {escape(item['reason'])} "
                          f"[dim](fails after {item['queue_timeout_minutes']:g} min; start an agent with "
                          f"--group {escape(item['group'])})[/]")
        elif kind == "step.started":
            name = name_of(item["job_id"], item["step_index"])
            attempt = f" (attempt {item['attempt']})" if item["attempt"] > 1 else ""
            console.print(f"  [cyan]●[/] {item['job_id']} › {name}{attempt} [dim]on {item['agent']}[/]")
        elif kind in ("step.succeeded", "step.failed"):
            name = name_of(item["job_id"], item["step_index"])
            mark = "[green]✓[/]" if kind == "step.succeeded" else "[red]✗[/]"
            why = f" [red]{escape(item['error'])}[/]" if item.get("error") else ""
            console.print(f"  {mark} {item['job_id']} › {name}{why}")
            for note in item.get("annotations") or ():
                where = f" {note['file']}:{note.get('line', '?')}" if note.get("file") else ""
                style = {"error": "red", "warning": "yellow"}.get(note["level"], "cyan")
                console.print(f"    [{style}]{note['level']}[/]{escape(where)}: {escape(note['message'])}")
        elif kind == "step.retrying":
            name = name_of(item["job_id"], item["step_index"])
            console.print(f"  [yellow]↻[/] {item['job_id']} › {name} failed, retrying in {item['delay']:g}s")
        elif kind == "step.skipped":
            console.print(f"  [dim]- {item['job_id']} › {name_of(item['job_id'], item['step_index'])} skipped[/]")
        elif kind == "run.cancel_requested":
            console.print(f"[yellow]Cancelling: {escape(item.get('reason', ''))}[/]")
        elif kind == "job.completed":
            style = _STYLE.get(item["result"], "")
            console.print(f"[{style}]■ job {item['job_id']} {item['result']}[/]")
    state = client.get(run_id)
    render_summary(state, console)
    return state


def render_summary(state: dict[str, Any], console: Console) -> None:
    table = Table(title=Text(f"{state['workflow']} · {state['id']}"), title_justify="left")
    for column in ("job", "step", "status", "exit", "agent", "error"):
        table.add_column(column)
    for job_id, job in state["jobs"].items():
        for step in job["steps"]:
            status = step["status"]
            table.add_row(Text(job_id), Text(step["name"]), Text(status, style=_STYLE.get(status, "")),
                          "" if step.get("exit_code") is None else str(step["exit_code"]),
                          Text(step.get("agent") or ""), Text(step.get("error") or ""))
    console.print(table)
    for job_id, job in state["jobs"].items():
        if job.get("waiting"):
            console.print(Text(f"{job_id}: waiting: {job['waiting']}", style="yellow"))
        for step in job["steps"]:
            for note in step.get("annotations") or ():
                where = f" {note['file']}:{note.get('line', '?')}" if note.get("file") else ""
                style = {"error": "red", "warning": "yellow"}.get(note["level"], "cyan")
                console.print(Text(f"{job_id} › {step['name']}: {note['level']}{where}: {note['message']}", style=style))
            if step.get("summary"):  # $GITHUB_STEP_SUMMARY, Markdown
                console.print(Text(f"{job_id} › {step['name']} summary:", style="bold"))
                console.print(Markdown(step["summary"]))
        if job.get("results"):
            console.print(_results_table(job_id, job["results"]))
    style = _STYLE.get(state["status"], "")
    console.print(Text(f"Run {state['status']}", style=f"bold {style}"))


def _results_table(job_id: str, results: list[dict[str, Any]]) -> Table:
    """One row per server (fan-out) or combination (matrix): the aggregated report of a job."""
    keys = sorted({k for r in results for k in r["outputs"]})
    table = Table(title=f"{job_id}: {len(results)} results", title_justify="left")
    for column in ("where", "status", "exit", *keys, "error"):
        table.add_column(Text(column))
    for r in results:
        where = r.get("agent") or ", ".join(f"{k}={v}" for k, v in (r.get("matrix") or {}).items())
        table.add_row(Text(where), Text(r["status"], style=_STYLE.get(r["status"], "")),
                      "" if r.get("exit_code") is None else str(r["exit_code"]),
                      *(Text(str(r["outputs"].get(k, ""))) for k in keys), Text(r.get("error") or ""))
    return table
