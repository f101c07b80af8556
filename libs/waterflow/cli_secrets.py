"""``waterflow secret set|list|delete``: manage the values behind ``${{ secrets.NAME }}``."""

from __future__ import annotations

import argparse
import getpass
import sys

from .client import Client
from .models import Secret
from .output import Shape, add_output_options, emit
from .terminal import console


def _show(secrets: list[Secret]) -> None:
    for secret in secrets:
        console.print(secret.name, markup=False)


def cmd_secret(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.secret_command == "set":
        if args.value is not None:
            value = args.value
        elif sys.stdin.isatty():
            value = getpass.getpass(f"value of {args.name}: ")
        else:
            value = sys.stdin.read().rstrip("\n")
        client.set_secret(args.name, value)
        console.print(f"secret [bold]{args.name}[/] stored")
    elif args.secret_command == "list":
        emit(args, client.secrets(), _show)
    else:
        client.delete_secret(args.name)
        console.print(f"secret [bold]{args.name}[/] deleted")
    return 0


def add_secret_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    secret = sub.add_parser("secret", help="manage secrets (values are never shown)")
    commands = secret.add_subparsers(dest="secret_command", required=True, metavar="ACTION")
    set_ = commands.add_parser("set", help="store a secret (value from --value, else prompted or read from stdin)")
    set_.add_argument("name")
    set_.add_argument("--value", help="the value (prefer stdin: command lines end up in shell history)")
    lst = commands.add_parser("list", help="list secret names")
    add_output_options(lst, Shape(Secret, many=True, note="Names only: values never leave the server."))
    delete = commands.add_parser("delete", help="delete a secret")
    delete.add_argument("name")
    secret.set_defaults(handler=cmd_secret)
