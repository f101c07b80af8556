"""Runs on a fleet: three real agents in group ``web``, two in ``db``.

- every step of a job runs on one agent, so files and ``$WATERFLOW_ENV`` carry from step to step;
- an agent killed (-9) while it holds a job fails that job with the reason, and a run retry runs
  the whole job again on another agent;
- a retry of a failed fan-out, right after the failure, re-runs only the failed server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack

from test_agents import poll, wait_status

WEB = ("web-1", "web-2", "web-3")
DB = ("db-1", "db-2")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(data_dir=tmp_path_factory.mktemp("fleet"), agent_groups=("local",),
                  env={"WATERFLOW_LOST_AGENT_CHECK_INTERVAL": "0.5", "WATERFLOW_QUEUE_TIMEOUT_MINUTES": "0.25"})
    stack.start()
    client = Client(stack.api_url)
    for name in WEB:
        stack.start_agent(name, ["web"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    for name in DB:
        stack.start_agent(name, ["db"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    for name in WEB + DB:
        wait_status(client, name, "healthy")
    yield stack
    stack.stop()


@pytest.fixture
def client(fleet: Stack) -> Client:
    return Client(fleet.api_url)


BUILD_THEN_USE = """
name: affinity
jobs:
  build:
    runs-on: web
    steps:
      - run: echo "artifact of $WATERFLOW_RUN_ID" > artifact.txt
      - run: echo "APP_PORT=8080" >> "$WATERFLOW_ENV"
      - run: grep -q "$WATERFLOW_RUN_ID" artifact.txt && test "$APP_PORT" = 8080
      - uses: env/set@v1
        with: {env: {STAGE: three}}
      - run: test "$STAGE" = three && cat artifact.txt
  migrate:
    runs-on: db
    needs: build
    steps:
      - run: touch db-marker
      - run: test -f db-marker
"""


def agents_of(state: dict) -> dict[str, set[str]]:
    return {job_id: {s["agent"] for s in job["steps"] if s.get("agent")} for job_id, job in state["jobs"].items()}


def test_every_step_of_a_job_runs_on_the_agent_that_took_the_job(client: Client) -> None:
    run_ids = [client.submit(BUILD_THEN_USE)["id"] for _ in range(9)]
    used: set[str] = set()
    for run_id in run_ids:
        state = client.wait(run_id, timeout=120)
        assert state["status"] == "succeeded", state
        agents = agents_of(state)
        assert len(agents["build"]) == 1 and agents["build"] <= set(WEB), agents
        assert len(agents["migrate"]) == 1 and agents["migrate"] <= set(DB), agents
        used |= agents["build"]
    assert used, "no agent recorded"


SLOW_SECOND_STEP = """
name: lost-agent
jobs:
  deploy:
    runs-on: web
    steps:
      - run: echo one > state.txt
      - run: if [ -f "{marker}" ]; then sleep 60; fi; cat state.txt
      - run: echo done
"""


def test_an_agent_killed_mid_job_fails_the_job_with_the_reason_and_a_retry_runs_it_again(
    fleet: Stack, client: Client, tmp_path: Path,
) -> None:
    marker = tmp_path / "hold"
    marker.touch()
    run_id = client.submit(SLOW_SECOND_STEP.replace("{marker}", str(marker)))["id"]

    def second_step_agent() -> str | None:
        step = client.get(run_id)["jobs"]["deploy"]["steps"][1]
        return step["agent"] if step["status"] == "running" else None

    victim = poll(second_step_agent, 60, "the second step to run")
    fleet.kill(victim)
    marker.unlink()
    state = client.wait(run_id, timeout=60)
    job = state["jobs"]["deploy"]
    assert state["status"] == "failed" and job["status"] == "failed"
    assert victim in job["error"] and "lost communication" in job["error"], job
    assert job["steps"][2]["status"] == "skipped"  # never sent to the dead agent

    client.retry(run_id)
    state = client.wait(run_id, timeout=60, attempt=2)
    assert state["status"] == "succeeded", state
    steps = state["jobs"]["deploy"]["steps"]
    assert len({s["agent"] for s in steps}) == 1 and steps[0]["agent"] != victim
    assert [s["attempt"] for s in steps] == [2, 2, 1]  # the whole job ran again, attempts numbered on
    fleet.start_agent(victim, ["web"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    wait_status(client, victim, "healthy")


def test_the_only_agent_of_a_group_killed_mid_job_fails_the_job_without_waiting_for_another(
    fleet: Stack, client: Client, tmp_path: Path,
) -> None:
    """Once a step of a job has run on an agent, only that agent can finish the job (its
    workspace): it lists the job in its heartbeat, so when it is lost the scheduler fails the job,
    naming it, even though no other agent of the group will ever take the task back."""
    fleet.start_agent("solo-1", ["solo"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    wait_status(client, "solo-1", "healthy")
    marker = tmp_path / "hold-solo"
    marker.touch()
    run_id = client.submit(SLOW_SECOND_STEP.replace("{marker}", str(marker)).replace("runs-on: web", "runs-on: solo"))["id"]
    poll(lambda: client.get(run_id)["jobs"]["deploy"]["steps"][1]["status"] == "running", 60, "the second step to run")
    fleet.kill("solo-1")
    state = client.wait(run_id, timeout=30)
    job = state["jobs"]["deploy"]
    assert state["status"] == "failed" and "solo-1" in job["error"] and "lost communication" in job["error"], job
    assert [s["status"] for s in job["steps"]] == ["succeeded", "failed", "skipped"]
    (completed,) = [e for e in client.events(run_id) if e["type"] == "job.completed"]
    assert completed["result"] == "failed" and completed["error"] == job["error"]  # the reason is in the history


FAN_OUT = """
name: fan-out-retry
jobs:
  check:
    runs-on: {group: db, each: true}
    steps:
      - run: echo "checking $WATERFLOW_AGENT"
      - run: test "$WATERFLOW_AGENT" != db-2 || test -f "{marker}"
"""


def test_retry_of_a_fan_out_right_after_the_failure_reruns_only_the_failed_server(
    client: Client, tmp_path: Path,
) -> None:
    marker = tmp_path / "fixed"
    run_id = client.submit(FAN_OUT.replace("{marker}", str(marker)))["id"]
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "failed"
    assert state["jobs"]["check-db-1"]["status"] == "succeeded" and state["jobs"]["check-db-2"]["status"] == "failed"
    marker.touch()
    client.retry(run_id)
    state = client.wait(run_id, timeout=60, attempt=2)
    assert state["status"] == "succeeded", state
    db1, db2 = state["jobs"]["check-db-1"]["steps"], state["jobs"]["check-db-2"]["steps"]
    assert [s["attempt"] for s in db1] == [1, 1]  # the server that succeeded was not run again
    assert [s["attempt"] for s in db2] == [1, 2]
    events = client.events(run_id)
    second_try = [e for e in events if e["type"] == "step.succeeded" and e["job_id"] == "check-db-2" and e["attempt"] == 2]
    assert len(second_try) == 1
    started = [e for e in events if e["type"] == "job.started" and e["job_id"] == "check-db-2"]
    assert [e.get("run_attempt", 1) for e in started] == [1, 2]


NO_AGENT = """
name: waits
jobs:
  build:
    runs-on: {group}
    steps:
      - run: echo "ran on $WATERFLOW_AGENT"
"""


def test_a_job_for_a_group_without_agents_shows_why_it_waits_and_fails_after_the_queue_timeout(client: Client) -> None:
    run_id = client.submit(NO_AGENT.replace("{group}", "nobody"))["id"]
    waiting = poll(lambda: client.get(run_id)["jobs"]["build"].get("waiting"), 15, "the job to say it waits")
    assert waiting == "no healthy agent in group 'nobody'"
    state = client.wait(run_id, timeout=60)  # queue timeout 0.25 min in this stack
    job = state["jobs"]["build"]
    assert state["status"] == "failed" and "no healthy agent in group 'nobody'" in job["error"], job
    assert "in the queue" in job["error"]
    assert [e["type"] for e in client.events(run_id)].count("job.waiting") == 1


def test_a_waiting_job_runs_as_soon_as_an_agent_of_its_group_starts(client: Client, fleet: Stack) -> None:
    run_id = client.submit(NO_AGENT.replace("{group}", "late"))["id"]
    poll(lambda: client.get(run_id)["jobs"]["build"].get("waiting"), 15, "the job to say it waits")
    fleet.start_agent("late-1", ["late"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded", state
    assert state["jobs"]["build"]["steps"][0]["agent"] == "late-1" and state["jobs"]["build"]["waiting"] is None


def test_a_job_cancelled_while_queued_is_withdrawn_and_an_agent_that_takes_it_later_runs_nothing(
    client: Client, fleet: Stack, tmp_path: Path,
) -> None:
    """Cancel a run whose job task waits for a group with no agent: the task is withdrawn (the run
    ends cancelled at once, its ``always()`` step then goes to the group too). An agent that
    starts afterwards takes the withdrawn task, is told to stop, and its step never gets far."""
    marker = tmp_path / "withdrawn-ran"
    workflow = (f"name: withdrawn\njobs:\n  build:\n    runs-on: later\n    steps:\n"
                f"      - run: sleep 3; touch {marker}\n"
                "      - if: always()\n        run: echo cleanup\n")
    run_id = client.submit(workflow)["id"]
    poll(lambda: client.get(run_id)["jobs"]["build"].get("waiting"), 15, "the job to say it waits")
    client.cancel(run_id)
    poll(lambda: client.get(run_id)["jobs"]["build"]["steps"][0]["status"] == "cancelled", 15, "the step to be cancelled")
    fleet.start_agent("later-1", ["later"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    state = client.wait(run_id, timeout=60)
    first, cleanup = state["jobs"]["build"]["steps"]
    assert state["status"] == "cancelled" and first["status"] == "cancelled" and cleanup["status"] == "succeeded", state
    assert cleanup["agent"] == "later-1"
    time.sleep(4)  # longer than the withdrawn step would take had it been let run
    assert not marker.exists()
    assert client.get(run_id)["jobs"]["build"]["steps"][0]["status"] == "cancelled"


EXPRESSION_FAN_OUT = """
name: fan-out-by-input
inputs:
  group: {type: string, required: true}
jobs:
  check:
    runs-on: {group: "${{ inputs.group }}", each: true}
    steps:
      - run: echo "$WATERFLOW_AGENT"
"""


def test_a_fan_out_over_a_group_named_by_an_expression_reaches_every_agent(client: Client) -> None:
    run_id = client.submit(EXPRESSION_FAN_OUT, inputs={"group": "web"})["id"]
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded", state
    assert sorted(j for j in state["jobs"] if j.startswith("check-")) == [f"check-{a}" for a in WEB]


DOTTED = """
name: dotted-labels
jobs:
  build:
    strategy:
      matrix:
        os: [ubuntu-22.04]
    runs-on: ${{ matrix.os }}
    steps:
      - run: echo "on $WATERFLOW_GROUP"
  plain:
    runs-on: ubuntu-22.04
    steps:
      - run: echo plain
"""


def test_a_runner_label_with_dots_is_a_group(fleet: Stack, client: Client) -> None:
    """Issue #16: ``runs-on: ubuntu-22.04`` (and from a matrix) needs an agent of that group; the
    name is the user's word, mapped losslessly to a NATS token (``ubuntu-22~04``)."""
    fleet.start_agent("runner-1", ["ubuntu-22.04"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    wait_status(client, "runner-1", "healthy")
    state = client.wait(client.submit(DOTTED)["id"], timeout=60)
    assert state["status"] == "succeeded", state
    assert state["jobs"]["plain"]["steps"][0]["agent"] == "runner-1"
    assert "on ubuntu-22.04" in [line["text"] for line in client.logs(state["id"])]
