"""Every command, walked with the mistakes people make: bad arguments, a missing file, an API that
is not there, a wrong API key. Each ends with exactly one line on stderr, no traceback, and the
documented exit code (docs/reference/cli.md, "Exit codes": waterflow.cli.EXIT_CODES).

The commands come from the real parser, so a new command fails these tests until it is listed
here (with the arguments of a valid call) and behaves."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.cli import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, build_parser, main
from waterflow.embedded import Stack, free_port

OK = "name: ok\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo ok\n"
FAILS = "name: fails\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: exit 3\n"
SLOW = "name: slow\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: sleep 120\n"
KEY = "k-exit-codes-123456"

# Commands that never ask the API (they compile, start services, or write files).
LOCAL = {"init", "up", "api", "compiler", "scheduler", "validate", "dry-run", "completion", "auth init",
         "template list", "template show", "template init"}


def api_calls(tmp: Path) -> dict[str, list[str]]:
    """A valid call of every command that asks the API (the run ids and names need not exist:
    the API is unreachable or refuses the key before it would say so)."""
    ok = tmp / "ok.yml"
    ok.write_text(OK)
    blob = tmp / "blob.txt"
    blob.write_text("payload")
    return {
        "run": ["run", str(ok)], "cancel": ["cancel", "r1"], "retry": ["retry", "r1", "--no-follow"],
        "status": ["status", "r1"], "logs": ["logs", "r1"], "list": ["list"],
        "agent list": ["agent", "list"], "agent show": ["agent", "show", "a1"], "agent remove": ["agent", "remove", "a1"],
        "group list": ["group", "list"], "group show": ["group", "show", "g1"],
        "group create": ["group", "create", "g1", "--agent", "a1"], "group add": ["group", "add", "g1", "a1"],
        "group remove": ["group", "remove", "g1", "a1"], "group delete": ["group", "delete", "g1"],
        "secret set": ["secret", "set", "S1", "--value", "v"], "secret list": ["secret", "list"],
        "secret delete": ["secret", "delete", "S1"], "node list": ["node", "list"], "node info": ["node", "info", "shell"],
        "file put": ["file", "put", str(blob)], "file get": ["file", "get", "o1", str(tmp / "got")],
        "file list": ["file", "list"], "trigger add": ["trigger", "add", str(ok)], "trigger list": ["trigger", "list"],
        "trigger fire": ["trigger", "fire", "t1"], "trigger delete": ["trigger", "delete", "t1"],
        "dead-letters list": ["dead-letters", "list"], "dead-letters show": ["dead-letters", "show", "1"],
    }


def leaves() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command ("group add": a command with an action argument counts each action)."""
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for sub in subs:
            for name, child in sub.choices.items():
                yield from walk(child, f"{path} {name}".strip())
        if not subs and path:
            action = next((a for a in parser._actions if a.dest == "action" and a.choices), None)
            if action is None:
                yield path, parser
            else:
                for choice in action.choices:
                    yield f"{path} {choice}", parser
    yield from walk(build_parser(), "")


def waterflow(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as stop:  # argparse's usage errors
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(args: tuple[str, ...] | list[str], code: int, err: str, expected: int, says: str = "") -> None:
    assert code == expected, (args, code, err)
    assert "Traceback" not in err, (args, err)
    assert len(err.strip().splitlines()) == 1, (args, err)
    assert says in err, (args, says, err)


def test_every_command_is_known_here(tmp_path: Path) -> None:
    known = LOCAL | set(api_calls(tmp_path))
    unknown = sorted(name for name, _ in leaves() if name not in known)
    assert not unknown, f"commands this walk does not know: {unknown} (add a valid call to api_calls or LOCAL)"


def test_bad_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for name, parser in leaves():
        args = name.split()
        code, _, err = waterflow(capsys, "--api-url", closed, *args, "--no-such-option")
        assert_one_line(args, code, err, EXIT_USAGE)
        if any(not a.option_strings and a.nargs in (None, "+") and a.dest != "action" for a in parser._actions):
            code, _, err = waterflow(capsys, "--api-url", closed, *args)  # its required argument left out
            assert_one_line(args, code, err, EXIT_USAGE, "required")
    for args in (["nope"], ["completion", "tcsh"], ["list", "--limit", "many"], ["run", "x.yml", "--input", "novalue"],
                 ["agent", "show"], ["agent", "remove"], ["group", "show"], ["group", "add", "g1"], ["group", "create"]):
        code, _, err = waterflow(capsys, "--api-url", closed, *args)
        assert_one_line(args, code, err, EXIT_USAGE)


def test_a_missing_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yml")
    for args in (["run", missing], ["validate", missing], ["dry-run", missing], ["trigger", "add", missing],
                 ["file", "put", missing], ["run", "--embedded", missing]):
        code, _, err = waterflow(capsys, "--api-url", f"http://127.0.0.1:{free_port()}", *args)
        assert_one_line(args, code, err, EXIT_USAGE, "missing.yml")


def test_an_unreachable_api_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name, args in api_calls(tmp_path).items():
        code, _, err = waterflow(capsys, "--api-url", closed, *args)
        assert_one_line(args, code, err, EXIT_UNAVAILABLE, "cannot reach the Waterflow API")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(data_dir=tmp_path_factory.mktemp("keyed") / "stack", env={"WATERFLOW_API_KEY": KEY})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_wrong_or_missing_api_key_is_one_line_and_exit_3(keyed: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATERFLOW_API_KEY", raising=False)
    for name, args in api_calls(tmp_path).items():
        code, _, err = waterflow(capsys, "--api-url", keyed.api_url, "--api-key", "not-the-key", *args)
        assert_one_line(args, code, err, EXIT_UNAVAILABLE, "key")
    code, _, err = waterflow(capsys, "--api-url", keyed.api_url, "list")
    assert_one_line(["list"], code, err, EXIT_UNAVAILABLE, "key")
    code, out, err = waterflow(capsys, "--api-url", keyed.api_url, "--api-key", KEY, "list", "-o", "json")
    assert code == 0 and not err and '"runs"' in out  # the right key: the same command works


def test_a_failed_run_exits_1_and_an_interrupted_follow_130(stack: Stack, client: Client, tmp_path: Path) -> None:
    fails, slow = tmp_path / "fails.yml", tmp_path / "slow.yml"
    fails.write_text(FAILS)
    slow.write_text(SLOW)
    command = [sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "run"]
    done = subprocess.run([*command, str(fails)], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_RUN_FAILED, done.stderr
    following = subprocess.Popen([*command, str(slow)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert following.stdout is not None
        for line in following.stdout:  # it says "submitted" once it follows the run
            if "submitted" in line:
                break
        following.send_signal(signal.SIGINT)
        _, err = following.communicate(timeout=60)
    finally:
        following.kill()
    assert following.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "goes on" in err, err
    run_id = client.list(limit=1)[0].id
    assert client.get(run_id).status in ("queued", "running")  # interrupting the follower left the run alone
    client.cancel(run_id)
