"""Agents and server groups end to end: registration, health, groups from server-groups.yml,
fan-out to every agent of a group, surviving a NATS restart, and 200 agents at once.

Every agent is a real process (``python -m waterflow_agent``) except in the scale test, where one
helper process runs 200 lightweight Agent objects on one connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from waterflow import Client
from waterflow.embedded import Stack

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "multi-server-health-check.yml"

GROUPS_YML = """
groups:
  prod-web:
    description: production front ends
    labels: {env: prod, role: web}
  frontends:
    include: [prod-web, edge]
"""


def poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def agents_by_name(client: Client) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in client._json("GET", "/v1/agents")["agents"]}


def wait_status(client: Client, name: str, status: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        agent = agents_by_name(client).get(name)
        return agent if agent and agent["status"] == status else None

    return poll(check, timeout, f"agent {name} to be {status}")


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def groups_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("groups") / "server-groups.yml"
    path.write_text(GROUPS_YML)
    return path


@pytest.fixture(scope="module")
def agents_stack(tmp_path_factory: pytest.TempPathFactory, groups_file: Path) -> Iterator[Stack]:
    stack = Stack(data_dir=tmp_path_factory.mktemp("agents-stack"), agent_groups=("local",),
                  env={"WATERFLOW_SERVER_GROUPS": str(groups_file)})
    stack.start()
    stack.start_agent("web-a", ["web"], WATERFLOW_LABELS="env=prod,role=web")
    stack.start_agent("web-b", ["web", "edge"], WATERFLOW_LABELS="env=staging,role=web")
    yield stack
    stack.stop()


@pytest.fixture
def api(agents_stack: Stack) -> Client:
    client = Client(agents_stack.api_url)
    for name in ("web-a", "web-b"):
        wait_status(client, name, "healthy")
    return client


def test_agents_register_with_their_settings(api: Client) -> None:
    agents = agents_by_name(api)
    assert {"local-agent", "web-a", "web-b"} <= set(agents)
    web_a = agents["web-a"]
    assert web_a["groups"] == ["web"]
    assert web_a["labels"] == {"env": "prod", "role": "web"}
    assert web_a["capacity"] == 4 and web_a["running"] == 0 and web_a["running_steps"] == []
    assert web_a["os"] == sys.platform and web_a["arch"] and web_a["hostname"] and web_a["version"]
    assert web_a["status"] == "healthy" and web_a["age_seconds"] < 15
    assert not web_a["stopped"]
    detail = api._json("GET", "/v1/agents/web-a")
    assert detail["member_of"] == ["frontends", "prod-web", "web"]
    web_only = api._json("GET", "/v1/agents?group=web")["agents"]
    assert [a["name"] for a in web_only] == ["web-a", "web-b"]


def test_groups_declared_and_defined(api: Client) -> None:
    groups = {g["name"]: g for g in api._json("GET", "/v1/groups")["groups"]}
    assert groups["web"]["agents"] == 2 and not groups["web"]["defined"]
    assert groups["edge"]["agents"] == 1
    assert groups["prod-web"]["defined"] and groups["prod-web"]["agents"] == 1
    assert groups["frontends"]["agents"] == 2  # prod-web (web-a) + edge (web-b)
    prod_web = api._json("GET", "/v1/groups/prod-web")
    assert [m["name"] for m in prod_web["members"]] == ["web-a"]
    assert prod_web["definition"]["labels"] == {"env": "prod", "role": "web"}


def test_unknown_agent_and_group_are_404(api: Client) -> None:
    from waterflow import ApiError

    for path in ("/v1/agents/nobody", "/v1/groups/nothing"):
        with pytest.raises(ApiError) as caught:
            api._json("GET", path)
        assert caught.value.status == 404


def test_server_groups_file_is_reloaded_without_restart(api: Client, groups_file: Path) -> None:
    original = groups_file.read_text()
    try:
        groups_file.write_text(original + "  staging:\n    labels: {env: staging}\n")
        os.utime(groups_file, ns=(time.time_ns(), time.time_ns()))
        staging = api._json("GET", "/v1/groups/staging")
        assert [m["name"] for m in staging["members"]] == ["web-b"]
    finally:
        groups_file.write_text(original)


def test_cli_lists_and_shows_agents_and_groups(agents_stack: Stack, api: Client) -> None:
    listed = cli(agents_stack, "agent", "list")
    assert listed.returncode == 0, listed.stderr
    assert "web-a" in listed.stdout and "web-b" in listed.stdout and "healthy" in listed.stdout
    shown = cli(agents_stack, "agent", "show", "web-a")
    assert shown.returncode == 0, shown.stderr
    assert "env=prod" in shown.stdout and "prod-web" in shown.stdout
    groups = cli(agents_stack, "group", "list")
    assert groups.returncode == 0 and "frontends" in groups.stdout
    group = cli(agents_stack, "group", "show", "prod-web")
    assert group.returncode == 0 and "web-a" in group.stdout and "web-b" not in group.stdout
    missing = cli(agents_stack, "agent", "show", "nobody")
    assert missing.returncode == 2 and "no agent named 'nobody'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_health_turns_unhealthy_then_offline_when_an_agent_dies(agents_stack: Stack, api: Client) -> None:
    agents_stack.start_agent("doomed", ["doom"], WATERFLOW_HEARTBEAT_INTERVAL="0.3")
    wait_status(api, "doomed", "healthy")
    agents_stack.kill("doomed")
    unhealthy = wait_status(api, "doomed", "unhealthy", timeout=10)
    assert unhealthy["age_seconds"] >= 0.9
    offline = wait_status(api, "doomed", "offline", timeout=15)
    assert offline["age_seconds"] > 3.6 and not offline["stopped"]


def test_a_cleanly_stopped_agent_is_offline_at_once(agents_stack: Stack, api: Client) -> None:
    import signal

    agents_stack.start_agent("polite", ["polite"])
    wait_status(api, "polite", "healthy")
    agents_stack.kill("polite", signal.SIGTERM)
    agent = agents_by_name(api)["polite"]
    assert agent["status"] == "offline" and agent["stopped"]


FAN_OUT = """
name: fan-out
jobs:
  everywhere:
    runs-on: {group: web, each: true}
    steps:
      - id: who
        run: echo "name=$WATERFLOW_AGENT" >> "$WATERFLOW_OUTPUT"
"""


def test_fan_out_runs_the_job_once_on_every_agent_of_the_group(api: Client) -> None:
    run = api.submit(FAN_OUT, "fan-out.yml")
    state = api.wait(run["id"], timeout=60)
    assert state["status"] == "succeeded", state
    instances = {j: job for j, job in state["jobs"].items() if j != "everywhere"}
    ran_on = sorted(job["steps"][0]["agent"] for job in instances.values())
    assert ran_on == ["web-a", "web-b"]
    for job in instances.values():
        assert job["steps"][0]["outputs"]["name"] == job["steps"][0]["agent"]


def test_fan_out_with_labels_and_a_second_group(api: Client) -> None:
    """Labels narrow a fan-out (``env=prod`` matches web-a only); an agent serving two groups
    pulls both (web-b runs the ``edge`` job while also serving ``web`` and its own subject)."""
    workflow = """
name: labels-and-groups
jobs:
  prod-only:
    runs-on: {group: web, each: true, labels: [env=prod, role]}
    steps:
      - run: echo "prod on $WATERFLOW_AGENT"
  edge:
    runs-on: edge
    steps:
      - run: echo "edge on $WATERFLOW_AGENT"
"""
    state = api.wait(api.submit(workflow, "labels.yml")["id"], timeout=60)
    assert state["status"] == "succeeded", state
    assert sorted(j for j in state["jobs"] if j.startswith("prod-only-")) == ["prod-only-web-a"]
    assert state["jobs"]["edge"]["steps"][0]["agent"] == "web-b"


def test_agent_resumes_pulling_after_a_nats_restart(fresh_stack: Stack) -> None:
    client = Client(fresh_stack.api_url)
    hello = "name: hello\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo hi\n"
    assert client.wait(client.submit(hello)["id"], timeout=60)["status"] == "succeeded"
    fresh_stack.kill("nats")
    fresh_stack.restart("nats")
    run = poll(lambda: _try_submit(client, hello), 30, "the API to accept a run after the NATS restart")
    state = client.wait(run["id"], timeout=60)
    assert state["status"] == "succeeded"
    assert state["jobs"]["a"]["steps"][0]["agent"] == "local-agent"
    assert wait_status(client, "local-agent", "healthy")["age_seconds"] < 15


def _try_submit(client: Client, source: str) -> dict[str, Any] | None:
    from waterflow import ApiError

    try:
        return client.submit(source)
    except ApiError:
        return None


def test_acceptance_health_check_on_three_agents_with_one_killed(fresh_stack: Stack) -> None:
    """Scenario 1: three agents of group ``web``; the health check runs on all three at once;
    one is killed (-9) mid-run; the other two report, the killed one is reported failed."""
    client = Client(fresh_stack.api_url)
    for name in ("web-1", "web-2", "web-3"):
        # ack_wait 5 s: a step killed before the agent's next heartbeat listed it is found when
        # its task comes back (after ack_wait); the heartbeat usually finds it within a second.
        fresh_stack.start_agent(name, ["web"], WATERFLOW_HEARTBEAT_INTERVAL="0.5", WATERFLOW_ACK_WAIT="5")
    for name in ("web-1", "web-2", "web-3"):
        wait_status(client, name, "healthy")
    source = EXAMPLE.read_text().replace("default: 0", "default: 4")  # make the check last a while
    run = client.submit(source, EXAMPLE.name)

    def all_running() -> bool:
        state = client.get(run["id"])
        steps = [job["steps"][0] for job_id, job in state["jobs"].items() if job_id.startswith("health-")]
        return len(steps) == 3 and all(s["status"] == "running" for s in steps)

    poll(all_running, 30, "the health check to run on all three agents")
    fresh_stack.kill("web-2")
    state = client.wait(run["id"], timeout=30)  # lost after 6 missed heartbeats of 0.5 s
    instances = {job_id.removeprefix("health-"): job for job_id, job in state["jobs"].items() if job_id.startswith("health-")}
    assert sorted(instances) == ["web-1", "web-2", "web-3"]
    assert instances["web-1"]["status"] == instances["web-3"]["status"] == "succeeded"
    assert instances["web-1"]["steps"][0]["outputs"]["disk"].endswith("%")
    assert state["jobs"]["report"]["status"] == "succeeded"  # if: always() still reports
    lost = instances["web-2"]
    assert lost["status"] == "failed"
    reason = lost["steps"][0].get("error") or ""
    assert "web-2" in reason and ("lost" in reason or "offline" in reason), reason
    assert state["status"] == "failed"
    # The three reports aggregated into one: JSON in the API, a table in the CLI.
    results = {r["agent"]: r for r in state["jobs"]["health"]["results"]}
    assert [results[a]["status"] for a in ("web-1", "web-2", "web-3")] == ["succeeded", "failed", "succeeded"]
    assert results["web-3"]["outputs"]["disk"].endswith("%") and "lost" in (results["web-2"]["error"] or "")
    shown = cli(fresh_stack, "status", run["id"])
    assert "health: 3 results" in shown.stdout and "web-2" in shown.stdout


class ManyAgents:
    """The helper process running ``count`` lightweight agents of group ``scale``."""

    def __init__(self, stack: Stack, work: Path, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parents[2] / "bench" / "many_agents.py"), stack.nats_url, "many", str(count),
             "scale", str(work)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def test_two_hundred_agents_register_and_are_listed(agents_stack: Stack, tmp_path: Path) -> None:
    count = 200
    many = ManyAgents(agents_stack, tmp_path / "work", count)
    try:
        client = Client(agents_stack.api_url)
        scale = client._json("GET", "/v1/agents?group=scale")["agents"]
        assert len(scale) == count and all(a["status"] == "healthy" for a in scale)
        assert len(client._json("GET", "/v1/agents")["agents"]) >= count
        assert client._json("GET", "/v1/groups/scale")["healthy"] == count
    finally:
        many.stop()


def test_fan_out_to_two_hundred_agents(agents_stack: Stack, tmp_path: Path) -> None:
    count = 200
    many = ManyAgents(agents_stack, tmp_path / "work", count)
    try:
        client = Client(agents_stack.api_url)
        workflow = FAN_OUT.replace("group: web", "group: scale")
        state = client.wait(client.submit(workflow, "scale.yml")["id"], timeout=60)  # ~5 s here
        assert state["status"] == "succeeded"
        ran_on = {job["steps"][0]["agent"] for job in state["jobs"].values() if job["steps"]}
        assert len(ran_on) == count
    finally:
        many.stop()
