"""The CLI in scripts: JSON that parses, ids never cut or wrapped when piped."""

from __future__ import annotations

import json
import subprocess
import sys

from waterflow import Client
from waterflow.embedded import Stack

OK = "name: listed\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo listed\n"


def waterflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=60)


def test_list_json_is_the_apis_shape(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK)["id"]
    client.wait(run_id, timeout=60)
    done = waterflow(stack, "list", "--json", "--limit", "5")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert run_id in [r["id"] for r in runs]


def test_piped_list_shows_whole_ids(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK)["id"]
    done = waterflow(stack, "list", "--limit", "5")
    assert done.returncode == 0 and run_id in done.stdout


RELEASE = "name: release\ninputs:\n  version: {type: string, required: true}\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo ${{ inputs.version }}\n"


def test_user_mistakes_are_one_line_errors_with_documented_exit_codes(stack: Stack, client: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    release = tmp_path / "release.yml"
    release.write_text(RELEASE)
    run_id = client.submit(OK)["id"]
    cases = [
        (("run", str(release)), 2, "input 'version' is required"),
        (("run", str(release), "--input", "versio=1"), 2, "unknown input 'versio'"),
        (("run", str(tmp_path / "missing.yml")), 2, "missing.yml"),
        (("file", "put", str(tmp_path / "nothing-here")), 2, "No such file or directory"),
        (("logs", run_id, "--job", "nope"), 2, "has no job 'nope'"),
        (("status", "no-such-run"), 2, "no run with id"),
    ]
    for args, code, message in cases:
        done = waterflow(stack, *args)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) <= 2, (args, done.stderr)
    unreachable = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", "http://127.0.0.1:9", "list"],
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 3 and "cannot reach the Waterflow API" in unreachable.stderr


def test_run_no_follow_prints_only_the_id(stack: Stack, client: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ok.yml"
    path.write_text(OK)
    done = waterflow(stack, "run", "--no-follow", str(path))
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert "\n" not in run_id and client.get(run_id)["id"] == run_id


def test_the_api_says_which_key_problem_and_which_content_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest as _pytest

    from waterflow import ApiError

    keyed = Stack(data_dir=tmp_path / "keyed", env={"WATERFLOW_API_KEY": "k-abcdef"})
    keyed.start()
    try:
        with _pytest.raises(ApiError) as missing:
            Client(keyed.api_url, api_key="").list()
        with _pytest.raises(ApiError) as wrong:
            Client(keyed.api_url, api_key="nope").list()
        assert "needs a key" in str(missing.value) and "is wrong" in str(wrong.value)
        client = Client(keyed.api_url, api_key="k-abcdef")
        with _pytest.raises(ApiError) as html:
            client._json("POST", "/v1/workflows", OK.encode(), "text/html")
        assert html.value.status == 415
        run_id = client.submit("name: long\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: sleep 30\n")["id"]
        assert client._json("DELETE", f"/v1/workflows/{run_id}")["status"] == "cancelling"
        assert client.wait(run_id, timeout=60)["status"] == "cancelled"
    finally:
        keyed.stop()
