"""``-o json|yaml`` on every command that prints a table or a record: the document is the
command's declared SDK model (the shape docs/reference/cli.md documents), ``--json`` is
``-o json``, and piped tables keep every id whole on one line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from waterflow import Client
from waterflow.cli import build_parser, main
from waterflow.embedded import Stack
from waterflow.output import Shape

OK = "name: out\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo out-line\n"
FAILS = "name: fails\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: exit 3\n"
SLOW = "name: slow\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: sleep 60\n"
CRON = "name: nightly\non:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo nightly\n"

# Commands whose -o output other tests check, because running them here would change the shared
# stack for the rest of the module (they remove an agent, or define groups).
ELSEWHERE = {
    ("agent", "remove"): "tests/e2e/test_group_admin.py",
    ("group", "create"): "tests/e2e/test_group_admin.py", ("group", "add"): "tests/e2e/test_group_admin.py",
    ("group", "remove"): "tests/e2e/test_group_admin.py", ("group", "delete"): "tests/e2e/test_group_admin.py",
    ("dead-letters show", None): "tests/e2e/test_dead_letters.py",  # needs a dead letter: a poisoned run
}


def declared() -> Iterator[tuple[str, str | None, Shape]]:
    """(command, action, shape) for every command with -o (an action-taking command: each action)."""
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str | None, Shape]]:
        shape = parser.get_default("output_shape")
        if isinstance(shape, dict):
            for action, each in shape.items():
                yield path, action, each
        elif shape is not None:
            yield path, None, shape
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}".strip())
    yield from walk(build_parser(), "")


def expected_type(shape: Shape) -> Any:
    return list[shape.model] if shape.many else shape.model


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    client = Client(stack.api_url)
    files = tmp_path_factory.mktemp("out")
    for name, text in (("ok.yml", OK), ("fails.yml", FAILS), ("cron.yml", CRON), ("blob.txt", "payload")):
        (files / name).write_text(text)
    done = client.wait(client.submit(OK).id, timeout=60)
    failed = client.wait(client.submit(FAILS).id, timeout=60)
    trigger = client.add_trigger(CRON, "cron.yml")
    agent = client.agents()[0].name
    return {"client": client, "dir": files, "done": done.id, "failed": failed.id, "trigger": trigger.id, "agent": agent}


def cases(world: dict[str, Any]) -> dict[tuple[str, str | None], tuple[list[str], int]]:
    """(command, action) -> (arguments, expected exit code)."""
    d, client = world["dir"], world["client"]
    return {
        ("run", None): (["run", str(d / "ok.yml")], 0),
        ("cancel", None): (["cancel", client.submit(SLOW).id], 0),
        ("retry", None): (["retry", world["failed"]], 1),  # fails again: the document still comes, exit 1
        ("status", None): (["status", world["done"], "--events"], 0),
        ("logs", None): (["logs", world["done"]], 0),
        ("list", None): (["list", "--limit", "3"], 0),
        ("validate", None): (["validate", str(d / "ok.yml")], 0),
        ("dry-run", None): (["dry-run", str(d / "ok.yml")], 0),
        ("agent", "list"): (["agent", "list"], 0),
        ("agent", "show"): (["agent", "show", world["agent"]], 0),
        ("group", "list"): (["group", "list"], 0),
        ("group", "show"): (["group", "show", "local"], 0),
        ("node list", None): (["node", "list"], 0),
        ("node info", None): (["node", "info", "shell"], 0),
        ("secret list", None): (["secret", "list"], 0),
        ("file put", None): (["file", "put", str(d / "blob.txt"), "--object", "out/blob.txt"], 0),
        ("file list", None): (["file", "list"], 0),
        ("trigger add", None): (["trigger", "add", str(d / "cron.yml")], 0),
        ("trigger list", None): (["trigger", "list"], 0),
        ("trigger fire", None): (["trigger", "fire", world["trigger"]], 0),
        ("dead-letters", None): (["dead-letters"], 0),
        ("dead-letters list", None): (["dead-letters", "list", "--limit", "5"], 0),
        ("template list", None): (["template", "list"], 0),
        ("template show", None): (["template", "show", "inspect"], 0),
    }


def run_cli(stack: Stack, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--api-url", stack.api_url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_every_command_with_a_table_prints_its_documented_model(
    stack: Stack, world: dict[str, Any], capsys: pytest.CaptureFixture[str], output: str,
) -> None:
    table = cases(world)
    for command, action, shape in declared():
        if (command, action) in ELSEWHERE:
            continue
        assert (command, action) in table, f"no case for `waterflow {command} {action or ''}` -o: add one"
        args, code = table[(command, action)]
        got, out, err = run_cli(stack, capsys, *args, "-o", output)
        assert got == code, (args, got, err)
        document = json.loads(out) if output == "json" else yaml.safe_load(out)
        msgspec.convert(document, expected_type(shape), strict=False)  # it is the documented model
        assert "Traceback" not in err


def test_json_flag_is_o_json_and_documents_are_the_sdk_models(stack: Stack, world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    client: Client = world["client"]
    code, out, _ = run_cli(stack, capsys, "status", world["done"], "--json")
    assert code == 0 and json.loads(out) == msgspec.to_builtins(client.get(world["done"]))
    code, out, _ = run_cli(stack, capsys, "list", "--limit", "2", "--json")
    page = json.loads(out)
    assert code == 0 and set(page) == {"runs", "next"} and len(page["runs"]) == 2
    code, out, _ = run_cli(stack, capsys, "logs", world["done"], "-o", "yaml")
    assert [line["text"] for line in yaml.safe_load(out)] == ["out-line"]
    code, out, _ = run_cli(stack, capsys, "run", "--no-follow", str(world["dir"] / "ok.yml"), "-o", "json")
    assert code == 0 and json.loads(out)["status"] == "queued"


def test_logs_follow_json_is_one_object_per_line(stack: Stack, world: dict[str, Any]) -> None:
    done = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "logs", "-f", world["done"], "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["text"] for line in done.stdout.splitlines()] == ["out-line"]


def test_piped_tables_keep_ids_whole_on_one_line_at_any_width(stack: Stack, world: dict[str, Any]) -> None:
    env = {**os.environ, "COLUMNS": "30"}
    newest = world["client"].list(limit=1)[0].id
    for args, whole in ((["list", "--limit", "5"], newest), (["trigger", "list"], f"/v1/triggers/{world['trigger']}/fire")):
        done = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        assert any(whole in line for line in done.stdout.splitlines()), done.stdout


def test_the_shape_of_every_command_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs/reference/cli.md").read_text()
    for command, action, shape in declared():
        assert f"`{shape.model.__name__}`" in doc, (command, action)
