"""``waterflow agent [list|show NAME|remove NAME]``, ``waterflow group list|show|create|add|remove|delete``,
``waterflow auth init``.

``waterflow agent`` with no action runs the agent service in the foreground (flags > env >
``--config agent.yml`` > defaults); the actions ask the API. Groups made with ``group create``
and ``group add`` are stored by the server (KV ``wf_groups``); server-groups.yml wins over them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape
from waterflow_common.errors import UserError

from .models import Agent, AgentRemoval, Group, GroupDeletion, GroupList
from .output import Shape, add_output_options, emit, show_table, table, wants_data
from .terminal import console, err

_STATUS_STYLE = {"healthy": "green", "unhealthy": "yellow", "offline": "red"}


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" if v else k for k, v in sorted(labels.items()))


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _client(args: argparse.Namespace) -> Any:
    from .client import Client

    return Client(args.api_url, args.api_key)


# --- agent ---------------------------------------------------------------------------------------
def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``waterflow agent`` beyond the common service ones (--nats-url, --log-level)."""
    parser.add_argument("action", nargs="?", choices=("list", "show", "remove"),
                        help="list the registered agents, show or remove one; without it, run the agent")
    parser.add_argument("target", nargs="?", metavar="NAME", help="agent name (for show and remove)")
    parser.add_argument("--force", action="store_true",
                        help="remove: even while the agent heartbeats (a running agent registers again)")
    parser.add_argument("--name", help="agent name (default: host name)")
    parser.add_argument("--group", action="append", help="server group; repeat for several")
    parser.add_argument("--label", action="append", metavar="KEY=VALUE", help="label; repeat for several")
    parser.add_argument("--work-dir")
    parser.add_argument("--max-concurrent", type=int, help="jobs run at once (each runs its steps one after another; default 4)")
    parser.add_argument("--plugin-dir", help="directory of custom node plugins (watched; default: plugins/ beside the work dir)")
    parser.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats (default 5)")
    parser.add_argument("--config", help="agent.yml with settings (env WATERFLOW_CONFIG)")
    add_output_options(parser, {"list": Shape(Agent, many=True), "show": Shape(Agent), "remove": Shape(AgentRemoval)})
    parser.set_defaults(handler=cmd_agent)


def cmd_agent(args: argparse.Namespace) -> int:
    if args.action is None:
        from waterflow_agent.config import run
        from waterflow_common.settings import parse_labels

        flags: dict[str, Any] = {
            "nats_url": args.nats_url, "log_level": args.log_level, "agent_name": args.name,
            "groups": args.group or None, "work_dir": args.work_dir, "max_concurrent_steps": args.max_concurrent,
            "plugin_dir": args.plugin_dir,
            "labels": parse_labels(args.label) if args.label else None,
            "heartbeat_interval": args.heartbeat_interval,
        }
        return run(flags, args.config)
    if args.action == "list":
        emit(args, _client(args).agents(), _show_agents)
        return 0
    if not args.target:
        raise UserError(f"usage: waterflow agent {args.action} NAME")
    if args.action == "remove":
        removal = _client(args).remove_agent(args.target, force=args.force)
        if wants_data(args):
            emit(args, removal, print)
            return 0
        failed = removal.failed_tasks + removal.failed_steps
        console.print(f"agent [bold]{escape(removal.name)}[/] removed ({removal.status}); "
                      f"{failed} step(s) only it could run failed" if failed else
                      f"agent [bold]{escape(removal.name)}[/] removed ({removal.status})")
        return 0
    emit(args, _client(args).agent(args.target), _show_agent)
    return 0


def _show_agents(agents: list[Agent]) -> None:
    shown = table("name", "status", "groups", "labels", "running", "version", "os/arch", "last heartbeat", keep=("name",))
    for agent in agents:
        shown.add_row(agent.name, _status(agent.status), ",".join(agent.groups), _labels(agent.labels),
                      f"{agent.running}/{agent.capacity}", agent.version, f"{agent.os}/{agent.arch}", _ago(agent.age_seconds))
    show_table(shown)


def _show_agent(agent: Agent) -> None:
    console.print(f"[bold]{escape(agent.name)}[/]  {_status(agent.status)}  (last heartbeat {_ago(agent.age_seconds)})")
    if agent.removed_at is not None:
        console.print(f"  [yellow]removed by an administrator at {agent.removed_at:%Y-%m-%d %H:%M:%S} UTC, "
                      "registered again since[/]")
    for key in ("hostname", "version", "os", "arch", "started_at"):
        console.print(f"  {key:<12} {escape(str(getattr(agent, key) or ''))}")
    console.print(f"  {'groups':<12} {', '.join(agent.groups)}   member of: {', '.join(agent.member_of)}")
    console.print(f"  {'labels':<12} {escape(_labels(agent.labels))}")
    console.print(f"  {'running':<12} {agent.running}/{agent.capacity} {' '.join(agent.running_steps)}")
    if agent.nodes:
        shown = table("node", "version", "status", "error", keep=("node",))
        for node in agent.nodes:
            shown.add_row(node.name, node.version, node.status, escape(node.error or ""))
        show_table(shown)


# --- group ---------------------------------------------------------------------------------------
def add_group_parser(sub: Any) -> None:
    group = sub.add_parser(
        "group", help="list server groups, show one with its agents, define one (create, add, remove, delete)",
        description="Groups are declared by agents (--group), defined in server-groups.yml, or defined here "
                    "(stored by the server); a name server-groups.yml defines belongs to the file.",
    )
    group.add_argument("action", choices=("list", "show", "create", "add", "remove", "delete"),
                       help="create NAME: define (or redefine) a group; add/remove NAME AGENT: name an agent in "
                            "the definition or take it out; delete NAME: delete the definition")
    group.add_argument("target", nargs="?", metavar="NAME")
    group.add_argument("member", nargs="?", metavar="AGENT", help="add/remove: the agent")
    group.add_argument("--description", default="", help="create: what the group is")
    group.add_argument("--agent", action="append", default=[], metavar="AGENT", help="create: a member by name; repeat")
    group.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                       help="create: members are agents with all these labels (KEY alone: has the key); repeat")
    group.add_argument("--include", action="append", default=[], metavar="GROUP",
                       help="create: the members of another group are members; repeat")
    add_output_options(group, {"list": Shape(GroupList), "show": Shape(Group), "create": Shape(Group),
                               "add": Shape(Group), "remove": Shape(Group), "delete": Shape(GroupDeletion)})
    group.set_defaults(handler=cmd_group)


def _selector(items: list[str]) -> dict[str, str]:
    """``--label`` values as a label selector; an item without a key is a usage error."""
    from waterflow_common.settings import parse_labels

    for item in items:
        if not item.partition("=")[0].strip():
            raise UserError(f"--label {item!r}: expected KEY=VALUE or KEY")
    return parse_labels(items)


def _edit_group(args: argparse.Namespace) -> int:
    """create / add / remove / delete: one request each; the server checks and says what is wrong."""
    if not args.target:
        raise UserError(f"usage: waterflow group {args.action} NAME" + (" AGENT" if args.action in ("add", "remove") else ""))
    client = _client(args)
    name = args.target
    if args.action in ("add", "remove"):
        if not args.member:
            raise UserError(f"usage: waterflow group {args.action} NAME AGENT")
        result: Any = (client.add_to_group(name, args.member) if args.action == "add"
                       else client.remove_from_group(name, args.member))
    elif args.member:
        raise UserError(f"usage: waterflow group {args.action} NAME (got an extra argument {args.member!r})")
    elif args.action == "create":
        result = client.create_group(name, description=args.description, agents=args.agent,
                                     labels=_selector(args.label), include=args.include)
    else:
        result = client.delete_group(name)
    if wants_data(args):
        emit(args, result, print)
        return 0
    if args.action == "delete":
        console.print(f"group [bold]{escape(name)}[/] definition deleted; {escape(result.note)}")
        return 0
    members = ", ".join(m.name for m in result.members) or "none registered"
    said = {"create": "defined", "add": "updated" if result.added else "unchanged (already named)",
            "remove": "updated"}[args.action]
    console.print(f"group [bold]{escape(name)}[/] {said}; members: {escape(members)}")
    for note in ([result.warning] if result.warning else []) + [
            f"{args.member} stays a member: {reason}" for reason in result.still_member_because]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    return 0


def cmd_group(args: argparse.Namespace) -> int:
    if args.action in ("create", "add", "remove", "delete"):
        return _edit_group(args)
    if args.action == "list":
        emit(args, _client(args).groups(), _show_groups)
        return 0
    if not args.target:
        raise UserError("usage: waterflow group show NAME")
    emit(args, _client(args).group(args.target), _show_group)
    return 0


def _show_groups(listing: GroupList) -> None:
    shown = table("group", "defined", "agents", "healthy", "unhealthy", "offline", "description", keep=("group",))
    for g in listing.groups:
        shown.add_row(g.name, g.defined_by or ("yes" if g.defined else "-"), str(g.agents), str(g.healthy), str(g.unhealthy),
                      str(g.offline), escape(g.description))
    show_table(shown)
    if listing.error:
        err.print(f"[yellow]warning:[/] {escape(listing.error)}")


def _show_group(group: Group) -> None:
    console.print(f"[bold]{escape(group.name)}[/]  {group.healthy}/{group.agents} healthy  {escape(group.description)}")
    if group.definition:
        console.print(f"  {'defined':<8} {'in server-groups.yml' if group.defined_by == 'file' else 'through the API'}")
        for key in ("agents", "labels", "include"):
            if getattr(group.definition, key):
                console.print(f"  {key:<8} {escape(str(getattr(group.definition, key)))}")
    if group.shadowed:
        console.print("  [yellow]note:[/] a definition made through the API is overridden by server-groups.yml: "
                      + escape(", ".join(f"{key} {getattr(group.shadowed, key)}" for key in ("agents", "labels", "include")
                                         if getattr(group.shadowed, key)) or "(empty)"))
    shown = table("agent", "status", "running", "labels", keep=("agent",))
    for member in group.members:
        shown.add_row(member.name, _status(member.status), f"{member.running}/{member.capacity}", _labels(member.labels))
    show_table(shown)


# --- auth ----------------------------------------------------------------------------------------
def add_auth_parser(sub: Any) -> None:
    auth = sub.add_parser("auth", help="generate NATS credentials: a services user and one restricted user per agent")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    init = auth_sub.add_parser("init", help="create or extend the credentials directory")
    init.add_argument("--dir", default="~/.waterflow/auth", help="where to write them (default ~/.waterflow/auth)")
    init.add_argument("--agent", action="append", default=[], metavar="NAME:GROUP[,GROUP]",
                      help="an agent and its groups; repeat for several")
    init.add_argument("--nats-url", help="written into services.env and each agent.yml")
    init.add_argument("--rotate", action="store_true", help="new passwords for everyone")
    init.set_defaults(handler=cmd_auth_init)


def cmd_auth_init(args: argparse.Namespace) -> int:
    from waterflow_common.auth import (
        SERVER_CONFIG_FILE,
        SERVICES_ENV_FILE,
        init_auth,
        parse_agent_spec,
    )

    agents = dict(parse_agent_spec(spec) for spec in args.agent)
    directory = Path(args.dir).expanduser()
    auth = init_auth(directory, agents, rotate=args.rotate, nats_url=args.nats_url)
    console.print(f"Credentials in [bold]{directory}[/] (mode 0600; keep them secret):")
    console.print(f"  {directory / SERVER_CONFIG_FILE}   nats-server -c this file (or include it)")
    console.print(f"  {directory / SERVICES_ENV_FILE}       environment for api, compiler, scheduler")
    for name in sorted(auth.agents):
        groups = ",".join(auth.agents[name].groups)
        console.print(f"  {directory / 'agents' / (name + '.yml')}   waterflow agent --config … (groups {groups})")
    return 0
