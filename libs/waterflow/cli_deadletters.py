"""``waterflow dead-letters [list|show SEQ]``: messages a consumer moved aside, and why.

A run that failed with "event could not be applied" names its dead letter; ``show`` prints it
with the original message (cut at 16 KiB).
"""

from __future__ import annotations

import argparse

from rich.table import Table
from rich.text import Text

from .client import Client
from .models import DeadLetter, DeadLetterPage
from .output import Shape, add_output_options, emit, wants_data
from .terminal import console


def cmd_dead_letters(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.dead_letters_command == "show":
        letter = client.dead_letter(args.seq)
        if wants_data(args):
            emit(args, letter, print)
            return 0
        table = Table(show_header=False, box=None)
        for name in ("seq", "at", "consumer", "run_id", "subject", "delivered", "reason", "payload_bytes"):
            table.add_row(name, Text(str(letter[name])))
        console.print(table)
        console.print(Text("payload" + (" (cut)" if letter["truncated"] else "") + ":", style="bold"))
        console.print(Text(letter["payload"]))
        return 0
    letters = client.dead_letters(limit=args.limit, before=args.before, run_id=args.run)
    if wants_data(args):  # the API's own shape, one document, for scripts
        emit(args, DeadLetterPage(dead_letters=letters), print)
        return 0
    if not letters:
        console.print("no dead letters" + (f" of run {args.run}" if args.run else ""))
        return 0
    for letter in letters:  # two lines each: subjects and reasons are too long for table cells
        console.print(Text.assemble(
            (f"#{letter['seq']}", "bold"), f"  {str(letter['at'])[:19]}  {letter['consumer']}  run {letter['run_id'] or '-'}"
            f"  {letter['subject']}  (delivered {letter['delivered']}×)"))
        console.print(Text("    " + letter["reason"], style="red"))
    return 0


def add_dead_letter_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser("dead-letters", help="messages a consumer moved aside (events it could not apply), and why")
    add_output_options(parser, Shape(DeadLetterPage, note="Without `payload` (see show); `next` is left null."))
    commands = parser.add_subparsers(dest="dead_letters_command", metavar="ACTION")
    lst = commands.add_parser("list", help="newest first (the default)")
    add_output_options(lst, Shape(DeadLetterPage, note="Without `payload` (see show); `next` is left null."),
                       default=argparse.SUPPRESS)
    for target in (parser, lst):
        target.add_argument("--run", metavar="RUN_ID", default=argparse.SUPPRESS if target is lst else None,
                            help="only this run's")
        target.add_argument("--limit", type=int, default=argparse.SUPPRESS if target is lst else 50)
        target.add_argument("--before", type=int, metavar="SEQ", default=argparse.SUPPRESS if target is lst else None,
                            help="only older ones (the next page)")
    show = commands.add_parser("show", help="one dead letter with its message")
    show.add_argument("seq", type=int)
    add_output_options(show, Shape(DeadLetter, note="With its `payload`."), default=argparse.SUPPRESS)
    parser.set_defaults(handler=cmd_dead_letters, dead_letters_command="list")
