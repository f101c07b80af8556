"""Issue #13: a poison message never stops a consumer, and what is moved aside can be seen.

A run whose ``run.created`` can never be applied (its stored plan names a secret that cannot be a
KV key, so reading the secrets fails on every delivery) ends failed, naming the dead letter; the
dead letter shows in ``GET /v1/dead-letters`` and ``waterflow dead-letters`` with the reason. A
malformed event and a malformed trigger fire are moved aside at once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import msgspec
import nats
import pytest
import yaml

from waterflow import Client
from waterflow_common import subjects
from waterflow_common.limits import DEAD_LETTER_PAYLOAD_BYTES
from waterflow_common.messages import RunCreated, encode
from waterflow_common.signing import load_signer
from waterflow_common.state import encode_plan

from test_agents import poll

WORKFLOW = "name: poison\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo never\n"


def _get(stack: Any, path: str) -> Any:
    with urllib.request.urlopen(stack.api_url + path, timeout=30) as response:
        return json.loads(response.read())


def _publish(stack: Any, subject: str, data: bytes) -> None:
    async def go() -> None:
        nc = await nats.connect(stack.nats_url)
        await nc.jetstream().publish(subject, data)
        await nc.close()

    asyncio.run(go())


def _announce_poison_run(stack: Any, run_id: str) -> None:
    """Do what the API does at submit, with a plan the scheduler can never apply."""
    from waterflow_compiler import compile_workflow

    plan, diagnostics = compile_workflow(WORKFLOW)
    assert plan is not None, diagnostics
    plan = msgspec.structs.replace(plan, secrets=("not a key*",))

    async def announce() -> None:
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        await (await js.key_value(subjects.PLANS_BUCKET)).create(run_id, encode_plan(plan))
        created = (await load_signer(js)).sign(RunCreated(run_id=run_id, workflow="poison"))
        await js.publish(subjects.event(run_id, created.type), encode(created), headers={subjects.MSG_ID_HEADER: created.msg_id()})
        await nc.close()

    asyncio.run(announce())


def _cli(stack: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=60)


def test_a_poison_event_ends_its_run_and_is_kept_as_a_dead_letter(stack) -> None:  # type: ignore[no-untyped-def]
    run_id = "rpoison000000001"
    _announce_poison_run(stack, run_id)
    client = Client(stack.api_url)
    state = poll(lambda: _finished(client, run_id), timeout=120, what="the poisoned run to end")
    assert state["status"] == "failed", state
    assert "event could not be applied" in state["error"] and "dead letter" in state["error"], state["error"]

    letters = _get(stack, f"/v1/dead-letters?run_id={run_id}")["dead_letters"]
    assert len(letters) == 1, letters
    letter = letters[0]
    assert letter["consumer"] == "scheduler" and letter["run_id"] == run_id
    assert letter["subject"] == subjects.event(run_id, "run.created")
    assert letter["delivered"] >= 5 and "InvalidKeyError" in letter["reason"], letter
    assert "payload" not in letter  # the list leaves payloads out
    assert f"dead letter {letter['seq']}" in state["error"]

    shown = _get(stack, f"/v1/dead-letters/{letter['seq']}")
    assert json.loads(shown["payload"])["run_id"] == run_id and not shown["truncated"]

    listed = _cli(stack, "dead-letters", "list", "--run", run_id)
    assert listed.returncode == 0, listed.stderr
    assert str(letter["seq"]) in listed.stdout and "InvalidKeyError" in listed.stdout, listed.stdout
    as_json = _cli(stack, "dead-letters", "list", "--run", run_id, "--json")
    assert [d["seq"] for d in json.loads(as_json.stdout)["dead_letters"]] == [letter["seq"]], as_json.stdout
    detail = _cli(stack, "dead-letters", "show", str(letter["seq"]))
    assert detail.returncode == 0 and run_id in detail.stdout and "InvalidKeyError" in detail.stdout, detail
    as_yaml = _cli(stack, "dead-letters", "show", str(letter["seq"]), "-o", "yaml")  # the DeadLetter model
    assert yaml.safe_load(as_yaml.stdout)["seq"] == letter["seq"] and "payload" in yaml.safe_load(as_yaml.stdout), as_yaml


def test_malformed_messages_are_moved_aside_at_once_and_paged_newest_first(stack) -> None:  # type: ignore[no-untyped-def]
    run_id = "rmalformed000001"
    big = b"{" + b"x" * (DEAD_LETTER_PAYLOAD_BYTES + 100)
    _publish(stack, subjects.event(run_id, "step.started"), big)
    _publish(stack, subjects.trigger_fired("tnosuchtrigger"), b"not json")

    def both() -> list[dict[str, Any]] | None:
        letters = _get(stack, "/v1/dead-letters?limit=200")["dead_letters"]
        mine = [d for d in letters if d["run_id"] == run_id or d["subject"] == subjects.trigger_fired("tnosuchtrigger")]
        return mine if len(mine) == 2 else None

    fire, event = poll(both, timeout=60, what="both malformed messages to be moved aside")
    assert fire["consumer"] == "triggers" and "malformed trigger fire" in fire["reason"], fire
    assert event["consumer"] == "scheduler" and "malformed event" in event["reason"], event
    assert fire["seq"] > event["seq"]  # newest first

    shown = _get(stack, f"/v1/dead-letters/{event['seq']}")
    assert shown["truncated"] and shown["payload_bytes"] == len(big)
    assert shown["payload"].endswith("…[101 more bytes cut]"), shown["payload"][-40:]

    first = _get(stack, "/v1/dead-letters?limit=1")
    assert len(first["dead_letters"]) == 1 and first["next"] is not None
    second = _get(stack, f"/v1/dead-letters?limit=1&before={first['next']}")
    assert second["dead_letters"][0]["seq"] < first["dead_letters"][0]["seq"]


@pytest.mark.parametrize("path", ["/v1/dead-letters/999999999", "/v1/dead-letters/abc", "/v1/dead-letters?limit=x",
                                  "/v1/dead-letters?run_id=a.b"])
def test_unknown_or_invalid_dead_letters_are_clear_errors(stack, path: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(stack, path)
    with caught.value as error:
        assert error.code in (400, 404), error.code
        assert json.loads(error.read())["detail"]


def _finished(client: Client, run_id: str) -> dict[str, Any] | None:
    try:
        state = client.get(run_id)
    except Exception:
        return None
    return state if state["status"] in ("succeeded", "failed", "cancelled") else None


def test_a_task_the_agent_cannot_read_fails_its_step_with_the_reason(stack) -> None:  # type: ignore[no-untyped-def]
    """Agents cannot write dead letters; a task they cannot decode fails its step instead (here:
    a damaged copy of a real task, for a job queued for a group nobody serves, reaches the
    ``local`` agent)."""
    client = Client(stack.api_url)
    run_id = client.submit("name: damaged\njobs:\n  a:\n    runs-on: nobody-here\n    steps:\n      - run: echo never\n")["id"]
    poll(lambda: client.get(run_id)["jobs"]["a"]["steps"][0]["status"] == "dispatched", timeout=30,
         what="the step to be dispatched")

    async def publish_damaged() -> None:
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        token = (await load_signer(js)).task_token(f"{run_id}:a:task:1")
        damaged = {"run_id": run_id, "job": {"id": "a"}, "task": 1, "from_step": 0, "attempt": 1, "token": token}
        await js.publish(subjects.group_tasks("local"), json.dumps(damaged).encode())
        await nc.close()

    asyncio.run(publish_damaged())
    state = poll(lambda: _finished(client, run_id), timeout=60, what="the run to fail")
    step = state["jobs"]["a"]["steps"][0]
    assert state["status"] == "failed" and "could not read this job's task" in step["error"], step
