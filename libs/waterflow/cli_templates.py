"""``waterflow template list|show|init``: the template library (built-in templates, those in
``WATERFLOW_TEMPLATE_PATH`` and in ``templates/``), and a workflow made from one to edit."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.text import Text

from .output import Shape, add_output_options, emit, show_table, table
from .template_library import TemplateInfo, caller_workflow, find_templates, get_template, write_new
from .terminal import console


def _show_list(templates: list[TemplateInfo]) -> None:
    shown = table("template", "origin", "inputs", "description", keep=("template",))
    for template in templates:
        inputs = ", ".join(f"{i.name}{'*' if i.required else ''}" for i in template.inputs)
        shown.add_row(template.reference, template.origin, Text(inputs), Text(template.title))
    show_table(shown)
    console.print("[dim]* required input. Details: waterflow template show NAME; a workflow to edit: "
                  "waterflow template init NAME[/]")


def _show_one(template: TemplateInfo) -> None:
    console.print(f"[bold]{escape(template.reference)}[/] ({template.origin}: {escape(template.path)})")
    console.print(Text(template.description))
    shown = table("input", "type", "required", "default", "description", keep=("input",))
    for spec in template.inputs:
        shown.add_row(spec.name, spec.type, "yes" if spec.required else "", Text("" if spec.default is None else str(spec.default)),
                      Text(spec.description))
    show_table(shown)
    if template.outputs:
        console.print("outputs: " + ", ".join(template.outputs))
    console.print(f"[dim]use it: jobs: {{<id>: {{uses: {escape(template.reference)}, with: {{...}}}}}}   "
                  f"or: waterflow template init {escape(template.reference)}[/]")


def cmd_template(args: argparse.Namespace) -> int:
    if args.template_command == "list":
        emit(args, find_templates(), _show_list)
    elif args.template_command == "show":
        emit(args, get_template(args.name), _show_one)
    else:
        from .cli import parse_inputs

        template = get_template(args.name)
        if args.copy:
            path = Path(args.path or f"templates/{template.reference}.yml")
            text = Path(template.path).read_text(encoding="utf-8")
        else:
            path = Path(args.path or f"{template.name}.yml")
            text = caller_workflow(template, parse_inputs(args.input))
        write_new(path, text, force=args.force)
        console.print(f"wrote {escape(str(path))}")
        console.print(f"next: edit it, then waterflow validate {escape(str(path))}"
                      + ("" if args.copy else f" && waterflow run {escape(str(path))}"))
    return 0


def add_template_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    template = sub.add_parser("template", help="the template library: list, show, and start a workflow from a template")
    commands = template.add_subparsers(dest="template_command", required=True, metavar="ACTION")
    lst = commands.add_parser("list", help="templates a workflow here can call with uses: NAME@VERSION")
    add_output_options(lst, Shape(TemplateInfo, many=True))
    show = commands.add_parser("show", help="a template's description, inputs and outputs")
    show.add_argument("name", help="NAME@VERSION, or NAME for its latest version")
    add_output_options(show, Shape(TemplateInfo))
    init = commands.add_parser("init", help="write a workflow that calls a template (never over an existing file)")
    init.add_argument("name", help="NAME@VERSION, or NAME for its latest version")
    init.add_argument("path", nargs="?", help="the file to write (default: NAME.yml; with --copy: templates/NAME@VERSION.yml)")
    init.add_argument("--input", "-i", action="append", metavar="NAME=VALUE", help="an input's value; repeat for several")
    init.add_argument("--copy", action="store_true", help="write a copy of the template itself, to change into your own")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    template.set_defaults(handler=cmd_template)
