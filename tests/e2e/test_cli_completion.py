"""Shell completion: the scripts are valid, ``__complete`` asks the API (and says nothing when it
cannot), and bash really completes a run id after ``waterflow status``."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack, free_port

OK = "name: completed\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo ok\n"
BIN = str(Path(sys.executable).parent)  # where the `waterflow` script of this environment is


def waterflow(*args: str, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WATERFLOW_API_URL": api_url, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("WATERFLOW_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "waterflow", *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_scripts_complete_run_ids_and_groups_from_the_api(shell: str, tmp_path: Path) -> None:
    done = waterflow("completion", shell, api_url="http://127.0.0.1:9")
    assert done.returncode == 0 and not done.stderr
    assert "__complete runs" in done.stdout and "__complete groups" in done.stdout
    script = tmp_path / f"waterflow.{shell}"
    script.write_text(done.stdout)
    checker = shutil.which(shell)
    if shell == "bash" or checker:  # bash is always there; zsh and fish are checked where installed
        flag = ["-n"] if shell != "fish" else ["--no-execute"]
        checked = subprocess.run([checker or "bash", *flag, str(script)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


def test_complete_prints_nothing_and_succeeds_without_an_api() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for kind in ("runs", "groups", "nonsense"):
        done = waterflow("__complete", kind, api_url=closed)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_complete_lists_run_ids_and_groups(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK).id
    runs = waterflow("__complete", "runs", api_url=stack.api_url)
    assert runs.returncode == 0 and run_id in runs.stdout.split()
    groups = waterflow("__complete", "groups", api_url=stack.api_url)
    assert "local" in groups.stdout.split()


def bash_complete(words: list[str], api_url: str) -> list[str]:
    """What bash completes for the command line ``words`` (the last one is being typed)."""
    quoted = [shlex.quote(word) for word in words]
    program = "\n".join([
        "source <(waterflow completion bash)",
        f"COMP_WORDS=({' '.join(quoted)})",
        f"COMP_CWORD={len(words) - 1}",
        f"COMP_LINE={shlex.quote(' '.join(words))}",
        "COMP_POINT=${#COMP_LINE}",
        f"_shtab_waterflow waterflow {quoted[-1]} {quoted[-2]}",  # as bash calls it: command, word, previous word
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    env = {**os.environ, "WATERFLOW_API_URL": api_url, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("WATERFLOW_API_KEY", None)
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_a_run_id_after_status_and_a_group_after_group_show(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK).id
    assert run_id in bash_complete(["waterflow", "status", run_id[:8]], stack.api_url)
    assert run_id in bash_complete(["waterflow", "logs", ""], stack.api_url)
    assert "local" in bash_complete(["waterflow", "group", "show", "lo"], stack.api_url)
    assert "status" in bash_complete(["waterflow", "sta"], stack.api_url)
