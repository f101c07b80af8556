"""``waterflow node list|info NAME``: the nodes agents really provide, and where."""

from __future__ import annotations

import argparse
import json

import msgspec

from rich.markup import escape
from rich.table import Table

from .client import Client

from .terminal import console


def cmd_node(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.node_command == "list":
        nodes = client.nodes(args.group)
        if args.json:
            print(json.dumps(msgspec.to_builtins(nodes), indent=2))
            return 0
        table = Table("node", "status", "agents", "groups", "description")
        for node in nodes:
            ref = f"{node['name']}@{node['version']}"
            status = node["status"] + (f" (failed on {len(node['failed_on'])})" if node["failed_on"] else "")
            table.add_row(ref, status, str(len(node["agents"])), ", ".join(node["groups"]), escape(node["description"]))
        console.print(table)
        return 0
    for node in client.node(args.name):
        if args.json:
            print(json.dumps(msgspec.to_builtins(node), indent=2))
            continue
        console.print(f"[bold]{node['name']}@{node['version']}[/] ({escape(node['source'])}) — {escape(node['description'])}")
        console.print(f"  agents: {', '.join(node['agents']) or 'none'}   groups: {', '.join(node['groups']) or 'none'}")
        for failure in node["failed_on"]:
            console.print(f"  [red]failed on {failure['agent']}:[/] {escape(str(failure['error']))}")
        params = (node.get("schema") or {}).get("properties", {})
        required = set((node.get("schema") or {}).get("required", []))
        for name, spec in params.items():
            mark = " (required)" if name in required else ""
            console.print(f"  with.{name}{mark}: {escape(spec.get('description', ''))}")
        for name, text in node["outputs"].items():
            console.print(f"  output {name}: {escape(str(text))}")
    return 0


def add_node_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    node = sub.add_parser("node", help="list the nodes agents provide, or show one")
    commands = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    lst = commands.add_parser("list", help="every node, with the agents and groups that have it")
    lst.add_argument("--group", help="only nodes available in this server group")
    lst.add_argument("--json", action="store_true")
    info = commands.add_parser("info", help="one node: parameters, outputs, where it loads or fails")
    info.add_argument("name", help="NAME or NAME@VERSION")
    info.add_argument("--json", action="store_true")
    node.set_defaults(handler=cmd_node)
