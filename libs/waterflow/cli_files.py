"""``waterflow file put|get|list``: hand files to runs and take files back from them."""

from __future__ import annotations

import argparse
import os

from rich.table import Table

from .client import Client

from .terminal import console


def cmd_file(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.file_command == "put":
        stored = client.put_file(args.path, args.object or os.path.basename(args.path))
        console.print(f"stored {stored['object']} ({stored['size']} bytes, sha256 {stored['sha256']})")
    elif args.file_command == "get":
        client.get_file(args.object, args.path or os.path.basename(args.object))
    else:
        table = Table("object", "size")
        for item in client.files():
            table.add_row(item["object"], str(item["size"]))
        console.print(table)
    return 0


def add_file_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    files = sub.add_parser("file", help="upload files for runs (file/download) or fetch what runs stored (file/upload)")
    commands = files.add_subparsers(dest="file_command", required=True, metavar="ACTION")
    put = commands.add_parser("put", help="upload a local file")
    put.add_argument("path")
    put.add_argument("--object", help="object name (default: the file name); steps use it as with.object")
    get = commands.add_parser("get", help="download an object")
    get.add_argument("object")
    get.add_argument("path", nargs="?", help="where to write it (default: the object's base name)")
    commands.add_parser("list", help="list stored objects")
    files.set_defaults(handler=cmd_file)
