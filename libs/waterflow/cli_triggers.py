"""``waterflow trigger add|list|fire|delete``: workflows started by cron schedules and webhooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.text import Text

from waterflow_common.errors import UserError

from .cli import parse_inputs
from .client import Client, called_workflows
from .models import Fired, Trigger
from .output import Shape, add_output_options, emit, show_table, table

from .terminal import console


def _show_added(trigger: Trigger, api_url: str) -> None:
    schedules = ", ".join(trigger.crons) or "none (webhook only)"
    console.print(f"trigger [bold]{trigger.id}[/] for {escape(trigger.name)}: schedules {schedules}; "
                  f"webhook POST {api_url}{trigger.webhook}", markup=True)
    console.print(f"webhook secret (shown only now): {trigger.webhook_secret}\n"
                  "sign each call's body: header X-Waterflow-Signature-256: sha256=<HMAC-SHA256 hex> "
                  "(GitHub webhooks do this with the secret set as theirs)")


def _show_list(triggers: list[Trigger]) -> None:
    shown = table("id", "workflow", "schedules", "next", "webhook", keep=("id", "webhook"))
    for trigger in triggers:
        next_fire = trigger.next_fire_at.isoformat(timespec="seconds") if trigger.next_fire_at else "-"
        shown.add_row(trigger.id, Text(trigger.name), ", ".join(trigger.crons) or "-", next_fire, trigger.webhook)
    show_table(shown)


def _show_fired(fired: Fired, quiet: bool) -> None:
    """The run's id alone when piped or with ``-q`` (``RUN=$(waterflow trigger fire T)``)."""
    if quiet or not console.is_terminal:
        print(fired.run_id or "")
        return
    console.print(f"trigger [bold]{escape(fired.trigger)}[/] fired: run [bold]{escape(fired.run_id or '?')}[/] "
                  f"(follow it: waterflow logs -f {escape(fired.run_id or '')})")


def cmd_trigger(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.trigger_command == "add":
        try:
            source = Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read {args.file}: {error.strerror}") from None
        trigger = client.add_trigger(source, args.file, parse_inputs(args.input), called_workflows(args.file))
        emit(args, trigger, lambda t: _show_added(t, args.api_url))
    elif args.trigger_command == "list":
        emit(args, client.triggers(), _show_list)
    elif args.trigger_command == "fire":
        fired = client.fire_trigger(args.trigger_id, parse_inputs(args.input))
        emit(args, fired, lambda f: _show_fired(f, args.quiet))
    else:
        client.delete_trigger(args.trigger_id)
        console.print(f"trigger [bold]{args.trigger_id}[/] deleted; its schedules stopped")
    return 0


def add_trigger_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    trigger = sub.add_parser("trigger", help="register workflows run by their cron schedules (on.schedule) and a webhook")
    commands = trigger.add_subparsers(dest="trigger_command", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="register a workflow file")
    add.add_argument("file")
    add.add_argument("--input", "-i", action="append", metavar="NAME=VALUE", help="inputs of every run it starts")
    add_output_options(add, Shape(Trigger, note="The only answer with `webhook_secret`."))
    lst = commands.add_parser("list", help="registered workflows")
    add_output_options(lst, Shape(Trigger, many=True, note="`webhook_secret` is always null here."))
    fire = commands.add_parser("fire", help="start a run now, as the webhook does")
    fire.add_argument("trigger_id")
    fire.add_argument("--input", "-i", action="append", metavar="NAME=VALUE")
    fire.add_argument("--quiet", "-q", action="store_true", help="print only the run id (also when piped)")
    add_output_options(fire, Shape(Fired))
    delete = commands.add_parser("delete", help="stop the schedules and forget the workflow")
    delete.add_argument("trigger_id")
    trigger.set_defaults(handler=cmd_trigger)
