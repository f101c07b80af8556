"""``waterflow file put|get|list``: hand files to runs and take files back from them."""

from __future__ import annotations

import argparse
import os

from .client import Client
from .models import StoredFile
from .output import Shape, add_output_options, emit, show_table, table
from .terminal import console


def _show_list(files: list[StoredFile]) -> None:
    shown = table("object", "size", keep=("object",))
    for item in files:
        shown.add_row(item.object, str(item.size))
    show_table(shown)


def cmd_file(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.file_command == "put":
        stored = client.put_file(args.path, args.object or os.path.basename(args.path))
        emit(args, stored, lambda s: console.print(f"stored {s.object} ({s.size} bytes, sha256 {s.sha256})", markup=False))
    elif args.file_command == "get":
        client.get_file(args.object, args.path or os.path.basename(args.object))
    else:
        emit(args, client.files(), _show_list)
    return 0


def add_file_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    files = sub.add_parser("file", help="upload files for runs (file/download) or fetch what runs stored (file/upload)")
    commands = files.add_subparsers(dest="file_command", required=True, metavar="ACTION")
    put = commands.add_parser("put", help="upload a local file")
    put.add_argument("path")
    put.add_argument("--object", help="object name (default: the file name); steps use it as with.object")
    add_output_options(put, Shape(StoredFile))
    get = commands.add_parser("get", help="download an object")
    get.add_argument("object")
    get.add_argument("path", nargs="?", help="where to write it (default: the object's base name)")
    lst = commands.add_parser("list", help="list stored objects")
    add_output_options(lst, Shape(StoredFile, many=True))
    files.set_defaults(handler=cmd_file)
