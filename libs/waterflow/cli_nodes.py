"""``waterflow node list|info NAME``: the nodes agents really provide, and where."""

from __future__ import annotations

import argparse

from rich.markup import escape

from .client import Client
from .models import Node
from .output import Shape, add_output_options, emit, show_table, table
from .terminal import console


def _show_list(nodes: list[Node]) -> None:
    shown = table("node", "status", "agents", "groups", "description", keep=("node",))
    for node in nodes:
        status = node.status + (f" (failed on {len(node.failed_on)})" if node.failed_on else "")
        shown.add_row(f"{node.name}@{node.version}", status, str(len(node.agents)), ", ".join(node.groups), escape(node.description))
    show_table(shown)


def _show_versions(versions: list[Node]) -> None:
    for node in versions:
        console.print(f"[bold]{node.name}@{node.version}[/] ({escape(node.source)}) — {escape(node.description)}")
        console.print(f"  agents: {', '.join(node.agents) or 'none'}   groups: {', '.join(node.groups) or 'none'}")
        for failure in node.failed_on:
            console.print(f"  [red]failed on {failure.agent}:[/] {escape(str(failure.error))}")
        params = (node.schema or {}).get("properties", {})
        required = set((node.schema or {}).get("required", []))
        for name, spec in params.items():
            mark = " (required)" if name in required else ""
            console.print(f"  with.{name}{mark}: {escape(spec.get('description', ''))}")
        for name, text in node.outputs.items():
            console.print(f"  output {name}: {escape(str(text))}")


def cmd_node(args: argparse.Namespace) -> int:
    client = Client(args.api_url, args.api_key)
    if args.node_command == "list":
        emit(args, client.nodes(args.group), _show_list)
    else:
        emit(args, client.node(args.name), _show_versions)
    return 0


def add_node_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    node = sub.add_parser("node", help="list the nodes agents provide, or show one")
    commands = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    lst = commands.add_parser("list", help="every node, with the agents and groups that have it")
    lst.add_argument("--group", help="only nodes available in this server group")
    add_output_options(lst, Shape(Node, many=True, note="`schema` is left out (see node info)."))
    info = commands.add_parser("info", help="one node: parameters, outputs, where it loads or fails")
    info.add_argument("name", help="NAME or NAME@VERSION")
    add_output_options(info, Shape(Node, many=True, note="One Node per version, each with its `schema`."))
    node.set_defaults(handler=cmd_node)
