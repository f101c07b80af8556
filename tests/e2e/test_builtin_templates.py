"""The template library: the built-in templates (``libs/waterflow/templates``) compile and run
when a workflow calls them with ``uses: name@v1`` from anywhere; ``waterflow template list|show|
init`` find them, and those of ``WATERFLOW_TEMPLATE_PATH``, as the compiler does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack
from waterflow_compiler.reuse import builtin_template_dirs

BUILTIN = sorted(p for d in builtin_template_dirs() for p in d.glob("*.yml"))
NAMES = [p.stem for p in BUILTIN]


def waterflow(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", *args], capture_output=True, text=True, timeout=90,
                          cwd=cwd, env={**os.environ, **(env or {})})


def test_the_library_is_shipped() -> None:
    assert {"inspect@v1", "rolling-deploy@v1", "db-backup@v1", "config-sync@v1"} <= set(NAMES), NAMES


@pytest.mark.parametrize("template", BUILTIN, ids=lambda p: p.name)
def test_every_builtin_template_validates(template: Path) -> None:
    done = waterflow("validate", str(template))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_template_init_writes_a_workflow_that_validates(name: str, tmp_path: Path) -> None:
    done = waterflow("template", "init", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / f"{name.split('@')[0]}.yml"
    assert f"uses: {name}" in written.read_text()
    checked = waterflow("validate", str(written))
    assert checked.returncode == 0, checked.stderr
    again = waterflow("template", "init", name, cwd=tmp_path)  # never over an existing file
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    copy = waterflow("template", "init", name, "--copy", cwd=tmp_path)
    assert copy.returncode == 0 and (tmp_path / "templates" / f"{name}.yml").read_text() == \
        next(p for p in BUILTIN if p.stem == name).read_text()


def test_template_list_and_show_include_the_template_path(tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "restart").mkdir(parents=True)
    (library / "restart" / "v2.yml").write_text(
        "# Restart a service: systemctl restart on every server.\n"
        "inputs:\n  service: {type: string, required: true, description: the unit}\n"
        "jobs:\n  restart:\n    runs-on: local\n    steps:\n      - run: echo restart ${{ inputs.service }}\n")
    (library / "inspect@v1.yml").write_text("# Our own inspection: it wins over the built-in one.\n"
                                            "jobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo ours\n")
    env = {"WATERFLOW_TEMPLATE_PATH": str(library)}
    listed = waterflow("template", "list", "-o", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    by_reference = {t["reference"]: t for t in json.loads(listed.stdout)}
    assert by_reference["restart@v2"]["origin"] == "WATERFLOW_TEMPLATE_PATH"
    assert by_reference["restart@v2"]["inputs"][0] == {"name": "service", "type": "string", "required": True,
                                                       "default": None, "description": "the unit", "options": None}
    assert by_reference["restart@v2"]["title"] == "Restart a service"
    assert by_reference["inspect@v1"]["origin"] == "WATERFLOW_TEMPLATE_PATH"  # the compiler's order
    assert by_reference["db-backup@v1"]["origin"] == "built-in"
    shown = waterflow("template", "show", "restart", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "restart@v2" in shown.stdout and "service" in shown.stdout
    missing = waterflow("template", "show", "nope", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no template 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    wrong = waterflow("template", "init", "restart", "-i", "servic=x", cwd=tmp_path, env=env)
    assert wrong.returncode == 2 and "has no input 'servic'" in wrong.stderr


def run_caller(stack: Stack, tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    caller = tmp_path / "caller.yml"  # no templates/ next to it: the built-in library answers
    caller.write_text(body)
    return waterflow("--api-url", stack.api_url, "run", str(caller))


def test_inspect_runs_on_every_agent_of_a_group(stack: Stack, tmp_path: Path) -> None:
    done = run_caller(stack, tmp_path, "name: check\njobs:\n  inspect:\n    uses: inspect@v1\n    with:\n      group: local\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Run succeeded" in done.stdout and "host:" in done.stdout and "disk /:" in done.stdout


def test_rolling_deploy_checks_health_and_rolls_back(stack: Stack, client: Client, tmp_path: Path) -> None:
    healthy = tmp_path / "healthy"
    healthy.write_text("ok")
    body = ("name: deploy\njobs:\n  deploy:\n    uses: rolling-deploy@v1\n    with:\n      group: local\n"
            "      version: 1.2.3\n      deploy-command: echo deploying $VERSION\n"
            "      health-url: file://{url}\n      health-attempts: 1\n"
            "      rollback-command: echo rolled back from $VERSION\n")
    done = run_caller(stack, tmp_path, body.replace("{url}", str(healthy)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deploying 1.2.3" in done.stdout and "healthy after 1 check" in done.stdout and "rolled back" not in done.stdout
    failed = run_caller(stack, tmp_path, body.replace("{url}", str(tmp_path / "not-there")))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "not healthy after 1 checks" in failed.stdout and "rolled back from 1.2.3" in failed.stdout


def test_db_backup_writes_a_verified_dump_and_applies_the_retention(stack: Stack, client: Client, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "shop-20000101T000000Z.sql.gz"
    old.write_bytes(b"")
    os.utime(old, (946684800, 946684800))  # from the year 2000: past any retention
    body = ("name: backup\njobs:\n  backup:\n    uses: db-backup@v1\n    with:\n      group: local\n      database: shop\n"
            "      dump-command: echo -- dump of\n"
            f"      backup-dir: {backups}\n      keep-days: 7\n")
    done = run_caller(stack, tmp_path, body)
    assert done.returncode == 0, done.stdout + done.stderr
    dumps = sorted(backups.glob("shop-*.sql.gz"))
    assert len(dumps) == 1 and dumps[0] != old, dumps  # the new dump; the old one is gone
    assert subprocess.run(["gzip", "-dc", str(dumps[0])], capture_output=True, text=True).stdout == "-- dump of shop\n"


def test_config_sync_puts_the_file_in_place_and_reloads_on_change(stack: Stack, client: Client, tmp_path: Path) -> None:
    source = tmp_path / "app.conf"
    source.write_text("listen 8080\n")
    client.put_file(str(source), "configs/app.conf")
    target = tmp_path / "etc" / "app.conf"
    body = ("name: sync\njobs:\n  sync:\n    uses: config-sync@v1\n    with:\n      group: local\n"
            f"      object: configs/app.conf\n      path: {target}\n      check-command: grep -q listen \"$NEW\"\n"
            "      reload-command: echo reloading\n")
    done = run_caller(stack, tmp_path, body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "listen 8080\n" and "reloading" in done.stdout
    again = run_caller(stack, tmp_path, body)  # unchanged: no reload
    assert again.returncode == 0 and "is up to date" in again.stdout and "reloading" not in again.stdout


def test_rolling_deploy_goes_one_server_after_the_other(fresh_stack: Stack, tmp_path: Path) -> None:
    from test_agents import poll

    client = Client(fresh_stack.api_url)
    for name in ("roll-1", "roll-2"):
        fresh_stack.start_agent(name, ["roll"])
    poll(lambda: len([a for a in client.agents(group="roll") if a["status"] == "healthy"]) == 2, 60, "two agents in roll")
    healthy = tmp_path / "healthy"
    healthy.write_text("ok")
    done = run_caller(fresh_stack, tmp_path, (
        "name: roll\njobs:\n  deploy:\n    uses: rolling-deploy@v1\n    with:\n      group: roll\n      version: 2.0.0\n"
        f"      deploy-command: sleep 1; echo deployed on $(hostname)\n      health-url: file://{healthy}\n"))
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split("Run ", 1)[1].split()[0]
    instances = [job for job in client.get(run_id)["jobs"].values() if job["parent"]]
    assert sorted(job["agent"] for job in instances) == ["roll-1", "roll-2"]  # every server of the group
    first, second = sorted(instances, key=lambda job: job["started_at"])
    assert second["started_at"] >= first["finished_at"]  # max-parallel 1: the second after the first
