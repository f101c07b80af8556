"""``waterflow trigger add|list|fire|delete``: workflows started by cron schedules and webhooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from waterflow_common.errors import UserError

from .cli import parse_inputs
from .client import Client, called_workflows

from .terminal import console


def cmd_trigger(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.trigger_command == "add":
        try:
            source = Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read {args.file}: {error.strerror}") from None
        trigger = client.add_trigger(source, args.file, parse_inputs(args.input), called_workflows(args.file))
        schedules = ", ".join(trigger["crons"]) or "none (webhook only)"
        console.print(f"trigger [bold]{trigger['id']}[/] for {escape(trigger['name'])}: schedules {schedules}; "
                      f"webhook POST {args.api_url}{trigger['webhook']}", markup=True)
        console.print(f"webhook secret (shown only now): {trigger['webhook_secret']}\n"
                      "sign each call's body: header X-Waterflow-Signature-256: sha256=<HMAC-SHA256 hex> "
                      "(GitHub webhooks do this with the secret set as theirs)")
    elif args.trigger_command == "list":
        table = Table("id", "workflow", "schedules", "webhook")
        for trigger in client.triggers():
            table.add_row(trigger["id"], Text(trigger["name"]), ", ".join(trigger["crons"]) or "-", trigger["webhook"])
        console.print(table)
    elif args.trigger_command == "fire":
        client.fire_trigger(args.trigger_id, parse_inputs(args.input))
        console.print(f"trigger [bold]{args.trigger_id}[/] fired")
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
    commands.add_parser("list", help="registered workflows")
    fire = commands.add_parser("fire", help="start a run now, as the webhook does")
    fire.add_argument("trigger_id")
    fire.add_argument("--input", "-i", action="append", metavar="NAME=VALUE")
    delete = commands.add_parser("delete", help="stop the schedules and forget the workflow")
    delete.add_argument("trigger_id")
    trigger.set_defaults(handler=cmd_trigger)
