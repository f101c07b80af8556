"""NATS authentication and per-agent permissions, against a real nats-server started with the
config ``waterflow auth init`` generates (``Stack(secure=True)``, as ``waterflow up --secure``).

An agent of group ``dev`` runs its own work, but the server denies it the tasks of ``prod``:
fetching from the ``group-prod`` consumer, re-creating that consumer, subscribing to task
subjects, writing another agent's registration. A wrong password is rejected at connect.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import nats
import pytest

from waterflow import Client
from waterflow.embedded import Stack
from waterflow_common import bus, subjects
from waterflow_common.auth import agent_inbox_prefix
from waterflow_common.errors import InfrastructureError
from waterflow_common.settings import NatsSettings


def _wait_healthy(client: Client, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agents = {a["name"]: a for a in client._json("GET", "/v1/agents")["agents"]}
        if agents.get(name, {}).get("status") == "healthy":
            return
        time.sleep(0.1)
    raise AssertionError(f"agent {name} did not register")


def test_nats_refuses_anonymous_clients(secure_stack: Stack) -> None:
    async def anonymous() -> None:
        nc = nats.NATS()
        try:
            await nc.connect(secure_stack.nats_url, allow_reconnect=False, connect_timeout=2)
        finally:
            await nc.close()

    with pytest.raises(Exception, match="Authorization Violation"):
        asyncio.run(anonymous())


def test_agents_do_their_own_work_under_restricted_permissions(secure_stack: Stack) -> None:
    client = Client(secure_stack.api_url)
    _wait_healthy(client, "dev-1")
    _wait_healthy(client, "prod-1")
    workflow = """
name: secure
jobs:
  on-dev:
    runs-on: dev
    steps:
      - run: echo "dev here"
  on-prod:
    runs-on: prod
    steps:
      - run: echo "prod here"
  everywhere:
    runs-on: {group: dev, each: true}
    steps:
      - run: echo "pinned to $WATERFLOW_AGENT"
"""
    state = client.wait(client.submit(workflow, "secure.yml")["id"], timeout=60)
    assert state["status"] == "succeeded", state
    assert state["jobs"]["on-dev"]["steps"][0]["agent"] == "dev-1"
    assert state["jobs"]["on-prod"]["steps"][0]["agent"] == "prod-1"
    assert state["jobs"]["everywhere-dev-1"]["steps"][0]["agent"] == "dev-1"


def test_a_dev_agent_cannot_read_prod_tasks(secure_stack: Stack) -> None:
    dev = secure_stack.auth().agents["dev-1"]

    async def attempt() -> list[str]:
        violations: list[str] = []

        async def on_error(error: Exception) -> None:
            violations.append(str(error))

        nc = await nats.connect(secure_stack.nats_url, user=dev.name, password=dev.password,
                                inbox_prefix=agent_inbox_prefix(dev.name), error_cb=on_error)
        js = nc.jetstream(timeout=1.0)
        try:
            prod = await js.pull_subscribe_bind(subjects.group_consumer("prod"), subjects.TASKS_STREAM)
            with pytest.raises(nats.errors.TimeoutError):
                await prod.fetch(1, timeout=1.0)
            with pytest.raises(nats.errors.TimeoutError):
                await bus.ensure_consumer(js, subjects.TASKS_STREAM, bus.group_consumer_config("prod", 30.0))
            sub = await nc.subscribe(subjects.ALL_TASKS)
            await nc.flush()
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.5)
            kv = await js.key_value(subjects.AGENTS_BUCKET)
            with pytest.raises(nats.errors.TimeoutError):
                await kv.put("prod-1", b"{}")
            # ...while its own consumer is fine (its own registration: see the test above):
            own = await js.pull_subscribe_bind(subjects.group_consumer("dev"), subjects.TASKS_STREAM)
            with pytest.raises(nats.errors.TimeoutError):  # nothing queued: a timeout, not a violation
                await own.fetch(1, timeout=0.5)
        finally:
            await nc.close()
        return violations

    violations = asyncio.run(attempt())
    text = "\n".join(violations).lower()
    assert 'permissions violation for publish to "$js.api.consumer.msg.next.wf_tasks.group-prod"' in text
    assert 'permissions violation for publish to "$js.api.consumer.create.wf_tasks.group-prod.wf.tasks.group.prod"' in text
    assert 'permissions violation for subscription to "wf.tasks.>"' in text
    assert 'permissions violation for publish to "$kv.wf_agents.prod-1"' in text
    assert "group-dev" not in text and "dev-1" not in text


def test_a_wrong_password_is_rejected(secure_stack: Stack) -> None:
    settings = NatsSettings(nats_url=secure_stack.nats_url, nats_user="dev-1", nats_password="not-the-password")

    async def connect() -> None:
        await bus.connect(settings, "wrong", connect_timeout=10)

    started = time.monotonic()
    with pytest.raises(InfrastructureError, match="rejected the credentials of user 'dev-1'"):
        asyncio.run(connect())
    assert time.monotonic() - started < 5  # at once, not after the connect timeout


def test_an_agent_with_a_wrong_password_exits_with_a_message(secure_stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = secure_stack.service_env(WATERFLOW_NATS_USER="dev-1", WATERFLOW_NATS_PASSWORD="wrong",
                                   WATERFLOW_AGENT_NAME="dev-1", WATERFLOW_GROUPS="dev", WATERFLOW_WORK_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "waterflow_agent"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert "rejected the credentials of user 'dev-1'" in result.stderr
    assert "wrong" not in result.stderr.replace("WATERFLOW_NATS_PASSWORD", "")  # the password is never printed
    assert "Traceback" not in result.stderr


def _as_dev_agent(stack: Stack):  # type: ignore[no-untyped-def]
    dev = stack.auth().agents["dev-1"]
    return nats.connect(stack.nats_url, user=dev.name, password=dev.password, inbox_prefix=agent_inbox_prefix(dev.name))


HELD_PROD_JOB = """
name: prod-deploy
jobs:
  build:
    runs-on: prod
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - id: v
        run: sleep 3; echo "version=1.2.3" >> "$WATERFLOW_OUTPUT"
  deploy:
    runs-on: prod
    needs: build
    steps:
      - run: echo "deploying ${{ needs.build.outputs.version }}"
"""


def test_a_forged_result_from_another_groups_agent_is_rejected_and_logged(secure_stack: Stack) -> None:
    """Issue #13 row 4: a dev credential claimed a prod step succeeded, with outputs that were
    pasted into the next prod job's script. Now the scheduler ignores it: no proof of the task."""
    from waterflow_common.messages import StepStarted, StepSucceeded, encode

    client = Client(secure_stack.api_url)
    _wait_healthy(client, "prod-1")
    run_id = client.submit(HELD_PROD_JOB)["id"]
    deadline = time.monotonic() + 30
    while client.get(run_id)["jobs"]["build"]["steps"][0]["status"] != "running":
        assert time.monotonic() < deadline, "the prod step did not start"
        time.sleep(0.1)

    async def forge() -> None:
        nc = await _as_dev_agent(secure_stack)
        js = nc.jetstream()
        for event in (
            StepStarted(run_id=run_id, job_id="build", step_index=0, attempt=1, agent="prod-1"),
            StepSucceeded(run_id=run_id, job_id="build", step_index=0, attempt=1, agent="prod-1",
                          outputs={"version": "$(id)"}, proof="0" * 40),
        ):
            await js.publish(subjects.event(run_id, event.type), encode(event))
        await nc.close()

    asyncio.run(forge())
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded"
    assert state["jobs"]["build"]["outputs"] == {"version": "1.2.3"}  # the real result, not the forged one
    log = (secure_stack.data_dir / "logs" / "scheduler.log")
    text = log.read_text() if log.exists() else "".join(p.read_text() for p in secure_stack.data_dir.rglob("scheduler.log"))
    assert "security.forged_event" in text


def test_an_agent_can_neither_request_a_cancel_nor_plant_a_schedule_that_does(secure_stack: Stack) -> None:
    """Issue #13 row 5: agent credentials planted an ``@every 2s`` message schedule in the events
    stream. Publishing anything but its own step reports is denied, and a schedule on a step
    subject only produces events without a proof, which the scheduler drops."""
    from waterflow_common.messages import RunCancelRequested, StepFailed, encode

    client = Client(secure_stack.api_url)
    _wait_healthy(client, "prod-1")
    run_id = client.submit(HELD_PROD_JOB)["id"]

    async def attack() -> list[str]:
        violations: list[str] = []

        async def on_error(error: Exception) -> None:
            violations.append(str(error))

        dev = secure_stack.auth().agents["dev-1"]
        nc = await nats.connect(secure_stack.nats_url, user=dev.name, password=dev.password,
                                inbox_prefix=agent_inbox_prefix(dev.name), error_cb=on_error)
        cancel = RunCancelRequested(run_id=run_id, reason="forged")
        await nc.publish(subjects.event(run_id, cancel.type), encode(cancel))
        planted = StepFailed(run_id=run_id, job_id="build", step_index=0, attempt=1, agent="prod-1", error="planted")
        await nc.publish(subjects.event(run_id, "step.started"), encode(planted), headers={
            subjects.SCHEDULE_HEADER: "@every 1s", subjects.SCHEDULE_TARGET_HEADER: subjects.event(run_id, planted.type),
        })
        await nc.flush()
        await asyncio.sleep(0.5)
        await nc.close()
        return violations

    violations = asyncio.run(attack())
    assert any("run.cancel_requested" in v for v in violations), violations
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded", state
