"""Issue #13, hostile agents: an agent credential cannot write into another run's log.

Agents may publish log batches (``wf.logs.>``: a step's output must get out), so the binding is
in the batch: each carries a proof made with its task's token (``signing.py``), and the API
shows only batches whose proof checks out for the run they are stored under. Here the ``dev``
agent's real credential publishes into a ``prod`` run's log: a batch with a made-up proof, one
with none, one that is not a batch at all, and one properly signed for *another* run (what an
agent holding its own task's token could do). JetStream stores them all (the publishes are
acked); none of their lines is shown by ``/logs`` or ``/watch``, and the API logs
``security.forged_log``.
"""

from __future__ import annotations

import asyncio
import time

import nats

from waterflow import Client
from waterflow.embedded import Stack
from waterflow_common import subjects
from waterflow_common.auth import SERVICES_USER, agent_inbox_prefix
from waterflow_common.messages import LogBatch, LogLine, StepSucceeded, encode
from waterflow_common.signing import load_signer, sign_log_batch

PROD_RUN = """
name: prod-logs
jobs:
  build:
    runs-on: prod
    steps:
      - run: echo "the real prod line"
"""


def _batch(run_id: str, text: str, seq: int, proof: str = "") -> LogBatch:
    return LogBatch(run_id=run_id, job_id="build", step_index=0, attempt=1, seq=seq,
                    lines=[LogLine(0.0, "stdout", text)], proof=proof)


async def _signed_for_another_run(stack: Stack) -> LogBatch:
    """A batch signed with the token of a step the dev agent could really hold (another run's)."""
    services = await nats.connect(stack.nats_url, user=SERVICES_USER, password=stack.auth().services_password)
    signer = await load_signer(services.jetstream())
    await services.close()
    token = signer.task_token("rdevrun000000001:build:0:1")
    return sign_log_batch(token, _batch("rdevrun000000001", "FORGED signed for another run", 3))


def test_an_agent_cannot_write_into_another_groups_run_log(secure_stack: Stack) -> None:
    client = Client(secure_stack.api_url)
    deadline = time.monotonic() + 30
    while not any(a["name"] == "prod-1" and a["status"] == "healthy" for a in client.agents()):
        assert time.monotonic() < deadline, "the prod agent did not register"
        time.sleep(0.1)
    run_id = client.submit(PROD_RUN)["id"]
    assert client.wait(run_id, timeout=60)["status"] == "succeeded"

    async def forge() -> int:
        dev = secure_stack.auth().agents["dev-1"]
        nc = await nats.connect(secure_stack.nats_url, user=dev.name, password=dev.password,
                                inbox_prefix=agent_inbox_prefix(dev.name))
        js = nc.jetstream()
        subject = subjects.step_logs(run_id, "build", 0)
        stored = 0
        for data in (
            encode(_batch(run_id, "FORGED with a made-up proof", 1, proof="0" * 40)),
            encode(_batch(run_id, "FORGED without a proof", 2)),
            b"FORGED not a batch",
            encode(await _signed_for_another_run(secure_stack)),
        ):
            await js.publish(subject, data)  # raises unless the stream stored it
            stored += 1
        await nc.close()
        return stored

    assert asyncio.run(forge()) == 4
    texts = [line["text"] for line in client.logs(run_id)]
    assert "the real prod line" in texts, texts
    assert not [t for t in texts if "FORGED" in t], texts
    watched = [item for item in client.watch(run_id) if item["kind"] == "log"]
    assert any(item["text"] == "the real prod line" for item in watched)
    assert not [item for item in watched if "FORGED" in item["text"]]
    api_log = "".join(p.read_text() for p in secure_stack.data_dir.rglob("api*.log"))
    assert "security.forged_log" in api_log


def test_an_agents_forged_report_is_not_in_another_groups_run_history(secure_stack: Stack) -> None:
    """The dev agent may publish step reports (its own steps need to get out), so it can store a
    step.succeeded on a prod run's subject. The scheduler ignores it; the API's history and
    /watch (what the CLI and console follow) leave it out too, as they do bytes that are no event."""
    client = Client(secure_stack.api_url)
    run_id = client.submit(PROD_RUN)["id"]
    assert client.wait(run_id, timeout=60)["status"] == "succeeded"
    forged = StepSucceeded(run_id=run_id, job_id="build", step_index=0, attempt=7, agent="dev-1",
                           outputs={"FORGED": "yes"}, proof="0" * 40)

    async def forge() -> None:
        dev = secure_stack.auth().agents["dev-1"]
        nc = await nats.connect(secure_stack.nats_url, user=dev.name, password=dev.password,
                                inbox_prefix=agent_inbox_prefix(dev.name))
        js = nc.jetstream()
        await js.publish(subjects.event(run_id, forged.type), encode(forged))  # stored: agents may report steps
        await js.publish(subjects.event(run_id, "step.failed"), b"FORGED not an event")
        await nc.close()

    asyncio.run(forge())
    history = client.events(run_id)
    assert [e for e in history if e.get("type") == "step.succeeded" and e.get("attempt") == 1], history
    assert not [e for e in history if e.get("attempt") == 7 or e.get("agent") == "dev-1"], history
    watched = [item for item in client.watch(run_id) if item["kind"] != "log"]
    assert any(item.get("type") == "run.completed" for item in watched)
    assert not [item for item in watched if item.get("attempt") == 7]
    api_log = "".join(p.read_text() for p in secure_stack.data_dir.rglob("api*.log"))
    assert "security.forged_event" in api_log
