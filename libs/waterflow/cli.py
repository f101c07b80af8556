"""The ``waterflow`` command.

Services:   waterflow up | api | compiler | scheduler | agent
Runs:       waterflow run FILE [--embedded] | status ID | logs ID | list
Authoring:  waterflow validate FILE... | dry-run FILE

Exit codes: 0 success, 1 the run failed, 2 a user mistake (bad file, bad arguments),
3 Waterflow could not be reached or failed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import msgspec
from rich.markup import escape
from rich.text import Text

from waterflow_common.diagnostics import Diagnostic, format_text, has_errors
from waterflow_common.errors import UserError

from waterflow_common.plan import Plan

from . import cli_agents
from .client import ApiError, Client, ConnectionFailed, ServerError, Unauthorized, called_workflows
from .follow import follow_run
from .models import Accepted, Event, LogLine, Run, RunPage, ValidationReport
from .output import Shape, add_output_options, emit, emit_item, show_table, table, wants_data
from .terminal import console, err

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_INTERNAL = EXIT_UNAVAILABLE  # an unexpected failure: Waterflow failed
EXIT_CODES = {
    EXIT_OK: "success (for `run` and `retry`: the run succeeded)",
    EXIT_RUN_FAILED: "the run failed or was cancelled (`run`, `retry`)",
    EXIT_USAGE: "a user mistake: bad arguments, a missing or unreadable file, an invalid workflow or inputs, "
                "no such run/agent/group/trigger (the API's 4xx answers)",
    EXIT_UNAVAILABLE: "Waterflow could not be reached, refused the API key (401/403) or failed (5xx)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a followed run goes on",
}
"""The documented exit codes (docs/reference/cli.md is generated from this table)."""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        err.print(Text(f"error: {self.prog}: {message} (see '{self.prog} --help')", style="red"))
        raise SystemExit(EXIT_USAGE)


def _client(args: argparse.Namespace) -> Client:
    return Client(args.api_url, args.api_key)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


# --- services ----------------------------------------------------------------------------------
def cmd_service(args: argparse.Namespace) -> int:
    from waterflow_common.runner import run_service
    from waterflow_common import settings as s

    overrides: dict[str, Any] = {"nats_url": args.nats_url, "log_level": args.log_level}
    if args.command == "api":
        from waterflow_api.service import serve as api_serve

        overrides.update(api_host=args.host, api_port=args.port)
        run_service("api", s.ApiSettings, api_serve, overrides)
    elif args.command == "compiler":
        from waterflow_compiler.service import serve as compiler_serve

        run_service("compiler", s.CompilerSettings, compiler_serve, overrides)
    else:  # the agent has its own entry point: cli_agents.cmd_agent
        from waterflow_scheduler.service import serve as scheduler_serve

        run_service("scheduler", s.SchedulerSettings, scheduler_serve, overrides)
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from .init import init

    for path in init(Path(args.directory), force=args.force):
        console.print(f"wrote {path}")
    console.print(f"next: waterflow validate {Path(args.directory) / 'workflow.yml'} && "
                  f"waterflow run --embedded {Path(args.directory) / 'workflow.yml'}")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    from .embedded import Stack

    api_key = os.environ.get("WATERFLOW_API_KEY")
    key_file = None
    if args.secure and not api_key:
        # --secure means the API needs a key too: make one (kept across restarts) and say where.
        from waterflow_common.auth import ensure_api_key

        key_file, api_key = ensure_api_key(Path(args.data_dir).expanduser() / "auth")
    stack = Stack(
        data_dir=Path(args.data_dir), nats_port=args.nats_port, api_port=args.api_port,
        agent_groups=tuple(args.group or ["local"]), log_to_files=not args.foreground_logs,
        secure=args.secure, nats_host=args.listen, api_host=args.listen,
        # services get only the settings the Stack gives them; the API key is the user's to pass on
        env={"WATERFLOW_API_KEY": api_key} if api_key else {},
    )
    if args.listen not in ("127.0.0.1", "localhost", "::1") and not args.secure:
        raise UserError(f"--listen {args.listen} exposes NATS and the API beyond this machine: add --secure "
                        "(NATS users and per-agent permissions) and set WATERFLOW_API_KEY")
    console.print(f"Starting Waterflow in [bold]{stack.data_dir}[/] …")
    stop = _stop_on_sigterm()
    try:
        stack.start()
        console.print(f"[green]Ready.[/] API: [bold]{stack.api_url}[/]  NATS: {stack.nats_url}  "
                      f"agent groups: {', '.join(stack.agent_groups)}")
        if key_file is not None:
            console.print(f"The API requires a key (--secure): it is in {key_file}; "
                          f'export WATERFLOW_API_KEY="$(cat {key_file})"')
        console.print(f"Try: waterflow --api-url {stack.api_url} run examples/hello.yml    (Ctrl-C stops everything)")
        # A service that dies is restarted (a run in flight goes on: its state is in JetStream);
        # only Ctrl-C or SIGTERM stops the stack, and then every child, NATS last.
        stack.supervise(stop.is_set, lambda message: err.print(f"[yellow]{message}[/]"))
        console.print("Stopping …")
        return EXIT_OK
    except KeyboardInterrupt:
        console.print("Stopping …")
        return EXIT_OK
    finally:
        stack.stop()


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM (systemd, a container runtime) stops ``waterflow up`` as Ctrl-C does: cleanly."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop


# --- runs --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    source = _read(args.file)
    if not args.embedded:
        return _submit_and_follow(_client(args), source, args)
    from waterflow_compiler import FileWorkflows, compile_workflow
    from waterflow_compiler.reuse import template_dirs

    from .embedded import Stack

    loader = FileWorkflows(template_dirs(args.file))
    _, diagnostics = compile_workflow(source, args.file, workflows=loader)
    if has_errors(diagnostics):  # no need to start anything to say what is wrong
        print(_diagnostics_text(diagnostics, {**loader.loaded, args.file: source}), file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="waterflow-") as data_dir:
        stack = Stack(data_dir=Path(data_dir), agent_groups=tuple(args.group or ["local"]))
        console.print("[dim]Starting an embedded Waterflow (nats-server, api, compiler, scheduler, agent) …[/]")
        stack.start()
        try:
            return _submit_and_follow(Client(stack.api_url), source, args)
        finally:
            stack.stop()


def parse_inputs(items: list[str] | None) -> dict[str, str]:
    """``--input NAME=VALUE`` options (repeated) as a mapping."""
    inputs: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--input expects NAME=VALUE, got {item!r}")
        inputs[name] = value
    return inputs


def _submit_and_follow(client: Client, source: str, args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.input)
    try:
        run = client.submit(source, filename=args.file, inputs=inputs, workflows=called_workflows(args.file))
    except ApiError as error:
        entries = error.problem.get("errors") if error.status == 400 else None
        if not entries:
            raise
        if not all("path" in entry for entry in entries):  # e.g. inputs: a message each, no position
            for entry in entries:
                err.print(f"[red]error:[/] {escape(str(entry.get('message', entry)))}")
            return EXIT_USAGE
        diagnostics = [msgspec.convert(entry, Diagnostic) for entry in entries]
        sources = {d.path: Path(d.path).read_text(errors="replace") for d in diagnostics if Path(d.path).is_file()}
        print(_diagnostics_text(diagnostics, {**sources, args.file: source}), file=sys.stderr)
        return EXIT_USAGE
    if args.no_follow:
        if wants_data(args):
            emit(args, run, print)
        else:
            print(run.id)  # only the id on stdout: RUN=$(waterflow run --no-follow x.yml)
        return EXIT_OK
    try:
        if wants_data(args):  # no live display: the final state as a document, the exit code says how it ended
            state = client.wait(run.id)
            emit(args, state, print)
            return EXIT_OK if state.status == "succeeded" else EXIT_RUN_FAILED
        console.print(f"Run [bold]{run.id}[/] submitted")
        state = follow_run(client, run.id, console)
    except KeyboardInterrupt:
        if args.embedded:
            err.print("Interrupted: stopping the embedded Waterflow (the run stops with it)")
        else:
            err.print(f"Stopped following; run {run.id} goes on. "
                      f"Follow again: waterflow logs -f {run.id}   stop it: waterflow cancel {run.id}")
        return EXIT_INTERRUPTED
    return EXIT_OK if state["status"] == "succeeded" else EXIT_RUN_FAILED


def cmd_cancel(args: argparse.Namespace) -> int:
    answer = _client(args).cancel(args.run_id)
    emit(args, answer, lambda a: console.print(f"Cancel requested for run [bold]{escape(a.id)}[/]"))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    client = _client(args)
    before = client.get(args.run_id)  # so that only what the new attempt does is shown
    answer = client.retry(args.run_id)
    if wants_data(args):
        state = answer if args.no_follow else client.wait(args.run_id, attempt=answer.attempt or 1)
        emit(args, state, print)
        return EXIT_OK if args.no_follow or state.status == "succeeded" else EXIT_RUN_FAILED  # type: ignore[union-attr]
    console.print(f"Retrying run [bold]{escape(args.run_id)}[/] (attempt {answer.attempt}); succeeded steps are kept")
    if args.no_follow:
        return EXIT_OK
    state = follow_run(client, args.run_id, console, before=before, attempt=answer.attempt or before.attempt + 1)
    return EXIT_OK if state["status"] == "succeeded" else EXIT_RUN_FAILED


class StatusWithEvents(Run, frozen=True, kw_only=True):
    """``status --events -o json``: the run and its event history."""

    events: list[Event] = []


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    state = client.get(args.run_id)
    code = EXIT_OK
    if args.follow:  # as `run` shows it, until it ends; the exit code says how it ended
        if wants_data(args):
            state = client.wait(args.run_id, attempt=state.attempt)
        else:
            state = follow_run(client, args.run_id, console, attempt=state.attempt)
        code = EXIT_OK if state["status"] == "succeeded" else EXIT_RUN_FAILED
    if wants_data(args):
        if args.events:
            state = StatusWithEvents(**{f: getattr(state, f) for f in state.__struct_fields__}, events=client.events(args.run_id))
        emit(args, state, print)
        return code
    from .follow import render_summary

    if not args.follow:  # following ended with the summary already
        render_summary(state, console)
    if args.events:
        shown = table("seq", "at", "event", "detail", keep=("seq", "event"))
        for event in client.events(args.run_id):
            detail = " ".join(f"{k}={event[k]}" for k in ("job_id", "step_index", "attempt", "agent", "status", "exit_code") if event.get(k) is not None)
            shown.add_row(str(event.seq), event.at.isoformat(), event.type, Text(detail))
        show_table(shown)
    return code


def cmd_logs(args: argparse.Namespace) -> int:
    """Each line as ``HH:MM:SS.mmm job › step [err] text``: when, which step (by name), which stream.
    ``-o json``: the LogLine models (an array; with ``-f``, one JSON object per line as they come)."""
    from datetime import datetime

    since = _since(args.since)
    client = _client(args)
    jobs = client.get(args.run_id).jobs
    if args.job and args.job not in jobs:
        raise UserError(f"run {args.run_id} has no job {args.job!r} (jobs: {', '.join(jobs)})")
    names = {(job_id, step.index): step.name for job_id, job in jobs.items() for step in job.steps}

    def wanted(line: LogLine) -> bool:
        return (not args.job or line.job == args.job) and (since is None or (line.at or 0) >= since)

    if args.follow:
        # The stream replays the lines written so far, then follows: --tail skips all but the last N of those.
        skip = max(0, sum(1 for line in client.logs(args.run_id) if wanted(line)) - args.tail) if args.tail is not None else 0
        lines: Any = itertools.islice(
            (item for item in client.watch(args.run_id) if isinstance(item, LogLine) and wanted(item)), skip, None)
    else:
        lines = [line for line in client.logs(args.run_id) if wanted(line)]
        if args.tail is not None:
            lines = lines[len(lines) - args.tail:] if args.tail else []
    if wants_data(args) and not args.follow:
        emit(args, list(lines), print)
        return EXIT_OK
    for line in lines:
        if wants_data(args):
            emit_item(args.output, line)
            continue
        at = datetime.fromtimestamp(line.at).strftime("%H:%M:%S.%f")[:-3] if line.at else ""
        step = names.get((line.job, line.step), f"step {line.step + 1}")
        shown = Text(f"{at} {line.job} › {step} ", style="dim")
        if line.stream != "stdout":
            shown.append("[err] " if line.stream == "stderr" else "[sys] ", style="red" if line.stream == "stderr" else "yellow")
        shown.append(line.text, style="red" if line.stream == "stderr" else "")
        console.print(shown, soft_wrap=True)  # a Text: the step's output is never read as markup
    return EXIT_OK


def _since(value: str | None) -> float | None:
    """``--since``: a duration back from now (``10m``, ``1h30m``) or a time (``2026-12-01T10:00``,
    local time unless it says otherwise) -> epoch seconds."""
    if value is None:
        return None
    from datetime import datetime

    from waterflow_common.durations import DURATION_HINT, parse_duration

    seconds = parse_duration(value)
    if seconds is not None:
        return time.time() - seconds
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise UserError(f"--since {value!r}: give a duration back from now ({DURATION_HINT}) "
                        "or a time like 2026-12-01T10:00") from None


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of lines (0 or more)")
    return count


def cmd_list(args: argparse.Namespace) -> int:
    page = _client(args).runs_page(args.limit, args.before)

    def show(page: RunPage) -> None:
        shown = table("id", "workflow", "status", "started by", "created")
        for run in page.runs:
            created = run.created_at.isoformat(timespec="seconds") if run.created_at else ""
            shown.add_row(run.id, Text(run.workflow), run.status, run.event_name, created)
        show_table(shown)

    emit(args, page, show)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 2 when any file has an error; warnings alone exit 0."""
    from waterflow_compiler import compile_workflow
    from .local_nodes import local_catalog
    from waterflow_compiler.reuse import FileWorkflows, template_dirs

    failed = False
    reports = []
    from waterflow_common.log import configure

    configure("warning")  # plugin loading logs go to stderr, never into --format json output
    nodes = local_catalog()  # built-ins and this machine's plugins
    for path in args.files:
        source = _read(path)
        workflows = FileWorkflows(template_dirs(path))  # files called with job-level 'uses:'
        _, diagnostics = compile_workflow(source, path, nodes=nodes, workflows=workflows)
        failed = failed or has_errors(diagnostics)
        if wants_data(args):
            reports.extend(diagnostics)
            continue
        if diagnostics:
            print(_diagnostics_text(diagnostics, {**workflows.loaded, path: source}), file=sys.stderr)
        if not has_errors(diagnostics):
            console.print(f"{path}: [green]ok[/]" + (f" ({len(diagnostics)} warning{'s' if len(diagnostics) != 1 else ''})" if diagnostics else ""))
    if wants_data(args):
        emit(args, ValidationReport(ok=not failed, diagnostics=reports), print)
    return EXIT_USAGE if failed else EXIT_OK


def _diagnostics_text(diagnostics: list[Diagnostic], sources: dict[str, str]) -> str:
    """Diagnostics of several files (a workflow and those it calls), each with its own source lines."""
    paths = list(dict.fromkeys(d.path for d in diagnostics))
    return "\n".join(format_text([d for d in diagnostics if d.path == p], sources.get(p)) for p in paths)


def cmd_dry_run(args: argparse.Namespace) -> int:
    """Compile and print the plan; nothing is submitted."""
    from waterflow_common.state import encode_plan
    from waterflow_compiler import compile_workflow

    from .local_nodes import local_catalog

    from .dryrun import render_plan

    from waterflow_common.log import configure

    configure("warning")
    from waterflow_compiler.reuse import FileWorkflows, template_dirs

    source = _read(args.file)
    workflows = FileWorkflows(template_dirs(args.file))
    plan, diagnostics = compile_workflow(source, args.file, nodes=local_catalog(), workflows=workflows)
    if diagnostics:
        print(_diagnostics_text(diagnostics, {**workflows.loaded, args.file: source}), file=sys.stderr)
    if plan is None:
        return EXIT_USAGE
    if args.output == "json":
        print(encode_plan(plan).decode())
    elif args.output == "yaml":
        emit(args, plan, print)
    else:
        console.print(render_plan(plan), markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="waterflow", description="Declarative, durable workflows for ops teams.")
    parser.add_argument("--api-url", default=os.environ.get("WATERFLOW_API_URL", "http://127.0.0.1:8080"),
                        help="Waterflow API (env WATERFLOW_API_URL)")
    parser.add_argument("--api-key", default=os.environ.get("WATERFLOW_API_KEY"), help="API key (env WATERFLOW_API_KEY)")
    parser.add_argument("--version", action="version", version=f"waterflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init_parser = sub.add_parser("init", help="write a starter workflow.yml and agent.yml to edit")
    init_parser.add_argument("directory", nargs="?", default=".")
    init_parser.add_argument("--force", action="store_true", help="overwrite existing files")
    init_parser.set_defaults(handler=cmd_init)

    up = sub.add_parser("up", help="start NATS and every service locally, in the foreground")
    up.add_argument("--data-dir", default=os.environ.get("WATERFLOW_DATA_DIR", "~/.waterflow"))
    up.add_argument("--nats-port", type=int, default=4222)
    up.add_argument("--api-port", type=int, default=8080)
    up.add_argument("--group", action="append", help="server group of the local agent (default: local)")
    up.add_argument("--foreground-logs", action="store_true", help="print service logs here instead of DATA_DIR/logs")
    up.add_argument("--listen", default="127.0.0.1", metavar="HOST",
                    help="address NATS and the API listen on (default 127.0.0.1; 0.0.0.0 for agents on other servers, needs --secure)")
    up.add_argument("--secure", action="store_true",
                    help="NATS with users and per-agent permissions (credentials in DATA_DIR/auth, see docs/guides/security.md)")
    up.set_defaults(handler=cmd_up)

    for name in ("api", "compiler", "scheduler", "agent"):
        p = sub.add_parser(name, help=f"run the {name} service")
        p.add_argument("--nats-url", help="NATS server(s), comma-separated (env WATERFLOW_NATS_URL)")
        p.add_argument("--log-level", help="debug, info, warning, error")
        if name == "api":
            p.add_argument("--host")
            p.add_argument("--port", type=int)
        p.set_defaults(handler=cmd_service)
        if name == "agent":  # `waterflow agent [list|show NAME]`, see cli_agents
            cli_agents.add_agent_arguments(p)

    run = sub.add_parser("run", help="submit a workflow and follow it")
    run.add_argument("file")
    run.add_argument("--embedded", action="store_true", help="start a throw-away local Waterflow for this run")
    run.add_argument("--group", action="append", help="with --embedded: groups of the local agent (default: local)")
    run.add_argument("--no-follow", action="store_true", help="print the run id and return")
    run.add_argument("--input", "-i", action="append", metavar="NAME=VALUE", help="a workflow input; repeat for several")
    add_output_options(run, Shape(Run, note="Without following: the final Run (exit code 1 if it did not succeed); "
                                         "with --no-follow, the Submitted answer."))
    run.set_defaults(handler=cmd_run)

    cancel = sub.add_parser("cancel", help="cancel a running run")
    cancel.add_argument("run_id")
    add_output_options(cancel, Shape(Accepted))
    cancel.set_defaults(handler=cmd_cancel)

    retry = sub.add_parser("retry", help="re-run a failed or cancelled run from where it failed")
    retry.add_argument("run_id")
    retry.add_argument("--no-follow", action="store_true", help="print the answer and return")
    add_output_options(retry, Shape(Run, note="The final Run of the new attempt; with --no-follow, the Accepted answer."))
    retry.set_defaults(handler=cmd_retry)

    status = sub.add_parser("status", help="show a run")
    status.add_argument("run_id")
    status.add_argument("--events", action="store_true", help="also show the event history")
    status.add_argument("--follow", "-f", action="store_true",
                        help="follow the run live until it ends, as `run` does (exit code 1 if it did not succeed)")
    add_output_options(status, Shape(Run, note="With --events, the Run has one more member, `events`: a list of Event."))
    status.set_defaults(handler=cmd_status)

    logs = sub.add_parser("logs", help="print a run's logs")
    logs.add_argument("run_id")
    logs.add_argument("--job", help="only this job's lines")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the run ends")
    logs.add_argument("--tail", "-n", type=_count, metavar="N", help="only the last N lines (with -f: then the new ones)")
    logs.add_argument("--since", metavar="WHEN", help="only lines written since then: a duration back from now (10m, 1h) "
                                                      "or a time (2026-12-01T10:00)")
    add_output_options(logs, Shape(LogLine, many=True, note="With -f: one LogLine per line as they come (JSON lines), "
                                                            "or one YAML list entry each."))
    logs.set_defaults(handler=cmd_logs)

    lst = sub.add_parser("list", help="list recent runs")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--before", metavar="RUN_ID", help="only runs older than this one (the next page)")
    add_output_options(lst, Shape(RunPage, note="`next`: pass it as --before for the next page (null on the last)."))
    lst.set_defaults(handler=cmd_list)

    validate = sub.add_parser("validate", help="check workflow files without running them")
    validate.add_argument("files", nargs="+")
    add_output_options(validate, Shape(ValidationReport, note="Diagnostics go to stderr as text in table mode; exit code 2 if any is an error."))
    validate.add_argument("--format", choices=("text", "json"), help=argparse.SUPPRESS)  # before -o json: kept for scripts
    validate.set_defaults(handler=cmd_validate)

    dry_run = sub.add_parser("dry-run", help="print the plan of a workflow (jobs in order, matrix, groups) without running it")
    dry_run.add_argument("file")
    add_output_options(dry_run, Shape(Plan, note="The compiled plan the scheduler would receive."))
    dry_run.add_argument("--format", choices=("text", "json"), help=argparse.SUPPRESS)  # before -o json: kept for scripts
    dry_run.set_defaults(handler=cmd_dry_run)
    completion = sub.add_parser("completion", help="print the shell completion script (bash, zsh or fish)",
                                description="Completes commands, options, files, run ids and group names "
                                            "(these two ask the API). See docs/reference/cli.md, Shell completion.")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(handler=cmd_completion)
    cli_agents.add_group_parser(sub)
    cli_agents.add_auth_parser(sub)
    from .cli_secrets import add_secret_commands

    add_secret_commands(sub)
    from .cli_nodes import add_node_commands

    add_node_commands(sub)
    from .cli_files import add_file_commands

    add_file_commands(sub)
    from .cli_triggers import add_trigger_commands

    add_trigger_commands(sub)
    from .cli_deadletters import add_dead_letter_commands

    add_dead_letter_commands(sub)
    from .cli_templates import add_template_commands

    add_template_commands(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("waterflow")
    except PackageNotFoundError:
        return "unknown"


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"]:  # what the completion scripts call at each TAB: not a command
        from .completion import complete_main

        return complete_main(argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()  # bare `waterflow`: what it can do, not an error
        return EXIT_OK
    args = parser.parse_args(argv)
    if getattr(args, "format", None) == "json":  # validate/dry-run --format json, from before -o
        args.output = "json"
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `waterflow list | head -1`: the reader has all it wanted
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:  # noqa: BLE001 - every failure ends as one line and a documented code
        code, message = failure(error)
        if code == EXIT_INTERNAL and os.environ.get("WATERFLOW_DEBUG"):
            raise
        err.print(Text("error: ", style="red") + Text(" ".join(message.split())))
        return code


def failure(error: Exception) -> tuple[int, str]:
    """The exit code and the one-line message of a command that failed: the one decision.

    2: the user's mistake (bad arguments or file, a workflow or request the API rejects, no such
    run); 3: Waterflow could not be reached, refused the API key, or failed (5xx).
    """
    if isinstance(error, UserError):
        return EXIT_USAGE, str(error)
    if isinstance(error, (ConnectionFailed, Unauthorized, ServerError)):
        return EXIT_UNAVAILABLE, str(error)
    if isinstance(error, ApiError):
        return (EXIT_USAGE if 400 <= error.status < 500 else EXIT_UNAVAILABLE), str(error)
    if isinstance(error, OSError):  # a file named on the command line: missing, unreadable, a directory
        where = f": {error.filename}" if error.filename else ""
        return EXIT_USAGE, f"{error.strerror or error}{where}"
    return EXIT_INTERNAL, f"{type(error).__name__}: {error} (a bug in waterflow: set WATERFLOW_DEBUG=1 for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
