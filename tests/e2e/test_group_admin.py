"""Managing server groups and agents through the API and the CLI, on a real fleet.

- a group defined with ``PUT /v1/groups/{name}`` (KV ``wf_groups``) runs ``runs-on:`` jobs on the
  agents it names, at once, without restarting anything; adding and removing members changes
  where the next job runs; deleting it ends the group;
- bad definitions are 400s naming the problem; a group server-groups.yml defines is the file's
  (409); removing a member that is one by its own declaration or labels is a 409 saying so;
- concurrent edits lose nothing (revision-checked writes);
- ``DELETE /v1/agents/{name}`` refuses an online agent unless forced; a forced removal fails the
  job queued on it with the reason instead of leaving it waiting;
- the CLI commands end to end, with their exit codes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from waterflow.embedded import Stack

from test_agents import poll

FILE_GROUPS = """
groups:
  filed:
    description: defined in the file
    agents: [adm-1]
"""


@pytest.fixture(scope="module")
def admin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("group-admin")
    groups_file = data_dir / "server-groups.yml"
    groups_file.write_text(FILE_GROUPS)
    stack = Stack(data_dir=data_dir, agent_groups=("local",), env={"WATERFLOW_SERVER_GROUPS": str(groups_file)})
    stack.start()
    try:
        stack.start_agent("adm-1", ["own"], WATERFLOW_HEARTBEAT_INTERVAL="0.5", WATERFLOW_LABELS="role=edge")
        stack.start_agent("adm-2", ["misc"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
        stack.start_agent("adm-3", ["misc"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
        for name in ("adm-1", "adm-2", "adm-3"):
            poll(lambda: agent_status(stack, name) == "healthy", 30, f"agent {name} to be healthy")
        yield stack
    finally:
        stack.stop()


def call(stack: Stack, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
    """One API request; (status, decoded JSON body or None)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(stack.api_url + path, data=data, method=method,
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def agent_status(stack: Stack, name: str) -> str | None:
    status, body = call(stack, "GET", f"/v1/agents/{name}")
    return body["status"] if status == 200 else None


def members(stack: Stack, group: str) -> set[str]:
    status, body = call(stack, "GET", f"/v1/groups/{group}")
    assert status == 200, body
    return {m["name"] for m in body["members"]}


def run(stack: Stack, group: str, timeout: float = 60) -> dict[str, Any]:
    """Submit a one-step job on ``group`` and wait for its end; the final run state."""
    workflow = f"name: on-{group}\njobs:\n  work:\n    runs-on: {group}\n    steps:\n      - run: echo hi\n"
    status, body = call(stack, "POST", "/v1/workflows", workflow.encode(), "application/yaml")
    assert status in (200, 201, 202), body
    run_id = body["id"]

    def finished() -> dict[str, Any] | None:
        state = call(stack, "GET", f"/v1/workflows/{run_id}")[1]
        return state if state["status"] in ("succeeded", "failed", "cancelled") else None

    return poll(finished, timeout, f"run {run_id} on {group} to finish")


def ran_on(state: dict[str, Any]) -> str:
    assert state["status"] == "succeeded", state
    return state["jobs"]["work"]["steps"][0]["agent"]


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=60)


def test_a_group_defined_through_the_api_runs_jobs_on_its_agents(admin_stack: Stack) -> None:
    status, body = call(admin_stack, "PUT", "/v1/groups/api-web", {"description": "made by the API", "agents": ["adm-2"]})
    assert status == 201, body
    assert body["defined_by"] == "api" and body["definition"]["agents"] == ["adm-2"]
    assert [m["name"] for m in body["members"]] == ["adm-2"]
    assert ran_on(run(admin_stack, "api-web")) == "adm-2"

    status, body = call(admin_stack, "PUT", "/v1/groups/api-web", {"agents": ["adm-2"], "description": "replaced"})
    assert status == 200 and body["description"] == "replaced", body
    listing = call(admin_stack, "GET", "/v1/groups")[1]
    assert {"name": "api-web", "defined_by": "api"}.items() <= next(
        g for g in listing["groups"] if g["name"] == "api-web").items()

    status, body = call(admin_stack, "POST", "/v1/groups/api-web/agents", {"agent": "adm-3"})
    assert status == 200 and body["added"] is True, body
    assert members(admin_stack, "api-web") == {"adm-2", "adm-3"}
    assert call(admin_stack, "POST", "/v1/groups/api-web/agents", {"agent": "adm-3"})[1]["added"] is False
    status, body = call(admin_stack, "DELETE", "/v1/groups/api-web/agents/adm-2")
    assert status == 200 and body["removed"] == "adm-2", body
    assert members(admin_stack, "api-web") == {"adm-3"}
    assert ran_on(run(admin_stack, "api-web")) == "adm-3"
    assert "api-web" in call(admin_stack, "GET", "/v1/agents/adm-3")[1]["member_of"]
    assert {a["name"] for a in call(admin_stack, "GET", "/v1/agents?group=api-web")[1]["agents"]} == {"adm-3"}

    status, body = call(admin_stack, "DELETE", "/v1/groups/api-web")
    assert status == 200 and body["deleted"]["agents"] == ["adm-3"] and body["declared_by"] == [], body
    assert call(admin_stack, "GET", "/v1/groups/api-web")[0] == 404
    assert call(admin_stack, "DELETE", "/v1/groups/api-web")[0] == 404


def test_adding_to_a_missing_group_creates_it_and_a_declared_group_survives_its_definition(admin_stack: Stack) -> None:
    status, body = call(admin_stack, "POST", "/v1/groups/misc/agents", {"agent": "adm-1"})
    assert status == 200 and body["definition"]["agents"] == ["adm-1"], body
    assert members(admin_stack, "misc") == {"adm-1", "adm-2", "adm-3"}
    status, body = call(admin_stack, "DELETE", "/v1/groups/misc")
    assert status == 200 and body["declared_by"] == ["adm-2", "adm-3"] and "stay its members" in body["note"], body
    assert members(admin_stack, "misc") == {"adm-2", "adm-3"}
    status, body = call(admin_stack, "POST", "/v1/groups/later/agents", {"agent": "not-started-yet"})
    assert status == 200 and "is registered yet" in body["warning"] and body["members"] == [], body
    assert call(admin_stack, "DELETE", "/v1/groups/later")[0] == 200


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/v1/groups/bad..name", {}, "invalid group name"),
    ("/v1/groups/ok-name", {"agents": ["adm-1"], "colour": "blue"}, "unknown field `colour`"),
    ("/v1/groups/ok-name", {"agents": "adm-1"}, "Expected `array`"),
    ("/v1/groups/ok-name", {"agents": ["has space"]}, "invalid agent name"),
    ("/v1/groups/ok-name", {"include": ["ok-name"]}, "includes itself"),
    ("/v1/groups/ok-name", {"name": "other"}, "the URL names 'ok-name'"),
    ("/v1/groups/ok-name", [1, 2], "expected a JSON object"),
    ("/v1/groups/ok-name", b"{not json", "not valid JSON"),
])
def test_bad_definitions_are_400s_naming_the_problem(admin_stack: Stack, path: str, body: Any, expected: str) -> None:
    status, problem = call(admin_stack, "PUT", path, body)
    assert status == 400 and expected in problem["detail"], problem
    assert call(admin_stack, "GET", "/v1/groups/ok-name")[0] == 404  # nothing stored


def test_an_include_cycle_is_refused(admin_stack: Stack) -> None:
    assert call(admin_stack, "PUT", "/v1/groups/cyc-a", {"include": ["cyc-b"]})[0] == 201
    status, problem = call(admin_stack, "PUT", "/v1/groups/cyc-b", {"include": ["cyc-a"]})
    assert status == 400 and "cyc-b -> cyc-a -> cyc-b" in problem["detail"], problem
    assert call(admin_stack, "GET", "/v1/groups/cyc-b")[0] == 404
    assert call(admin_stack, "DELETE", "/v1/groups/cyc-a")[0] == 200


def test_the_file_owns_the_groups_it_defines(admin_stack: Stack) -> None:
    body = call(admin_stack, "GET", "/v1/groups/filed")[1]
    assert body["defined_by"] == "file" and [m["name"] for m in body["members"]] == ["adm-1"]
    for method, path, payload in (("PUT", "/v1/groups/filed", {"agents": ["adm-2"]}),
                                  ("POST", "/v1/groups/filed/agents", {"agent": "adm-2"}),
                                  ("DELETE", "/v1/groups/filed/agents/adm-1", None),
                                  ("DELETE", "/v1/groups/filed", None)):
        status, problem = call(admin_stack, method, path, payload)
        assert status == 409 and "server-groups.yml" in problem["detail"], (method, path, problem)


def test_a_name_the_file_gains_later_shadows_the_stored_definition(admin_stack: Stack) -> None:
    groups_file = admin_stack.data_dir / "server-groups.yml"
    assert call(admin_stack, "PUT", "/v1/groups/late", {"agents": ["adm-2"]})[0] == 201
    groups_file.write_text(FILE_GROUPS + "  late:\n    agents: [adm-3]\n")
    try:
        body = call(admin_stack, "GET", "/v1/groups/late")[1]  # the file is re-read when it changes
        assert body["defined_by"] == "file" and body["definition"]["agents"] == ["adm-3"], body
        assert body["shadowed"]["agents"] == ["adm-2"] and [m["name"] for m in body["members"]] == ["adm-3"]
        assert ran_on(run(admin_stack, "late")) == "adm-3"
        shown = cli(admin_stack, "group", "show", "late").stdout
        assert "in server-groups.yml" in shown and "overridden by server-groups.yml: agents ['adm-2']" in shown, shown
    finally:
        groups_file.write_text(FILE_GROUPS)
    body = call(admin_stack, "GET", "/v1/groups/late")[1]
    assert body["defined_by"] == "api" and "shadowed" not in body and [m["name"] for m in body["members"]] == ["adm-2"]
    assert call(admin_stack, "DELETE", "/v1/groups/late")[0] == 200


def test_the_cli_example_of_the_agents_guide_runs(admin_stack: Stack) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "agents.md").read_text(encoding="utf-8")
    section = guide.split("### With the CLI or the API", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]
    assert len(commands) >= 5 and all(c[:2] == ["waterflow", "group"] for c in commands), commands
    for command in commands:
        done = cli(admin_stack, *command[1:])
        assert done.returncode == 0, (command, done.stderr)
    assert call(admin_stack, "GET", "/v1/groups/web")[1]["definition"]["agents"] == ["web-2", "web-3"]
    assert call(admin_stack, "GET", "/v1/groups/prod")[0] == 404
    assert call(admin_stack, "DELETE", "/v1/groups/web")[0] == 200


def test_a_member_by_declaration_or_labels_cannot_be_removed_from_the_definition(admin_stack: Stack) -> None:
    status, problem = call(admin_stack, "DELETE", "/v1/groups/own/agents/adm-1")
    assert status == 409 and "declares group 'own' itself" in problem["detail"], problem

    assert call(admin_stack, "PUT", "/v1/groups/edges", {"labels": {"role": "edge"}, "agents": ["adm-2"]})[0] == 201
    assert members(admin_stack, "edges") == {"adm-1", "adm-2"}
    status, problem = call(admin_stack, "DELETE", "/v1/groups/edges/agents/adm-1")
    assert status == 409 and "labels match" in problem["detail"] and "role=edge" in problem["detail"], problem
    assert call(admin_stack, "DELETE", "/v1/groups/edges/agents/adm-3")[0] == 404
    assert call(admin_stack, "DELETE", "/v1/groups/edges/agents/adm-2")[0] == 200
    assert members(admin_stack, "edges") == {"adm-1"}
    assert call(admin_stack, "DELETE", "/v1/groups/edges")[0] == 200


def test_concurrent_edits_lose_nothing(admin_stack: Stack) -> None:
    names = [f"crowd-{i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: call(admin_stack, "POST", "/v1/groups/crowd/agents", {"agent": n}), names))
    assert all(status == 200 for status, _ in results), results
    definition = call(admin_stack, "GET", "/v1/groups/crowd")[1]["definition"]
    assert sorted(definition["agents"]) == sorted(names)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: call(admin_stack, "PUT", "/v1/groups/racing", {"description": str(i)})[0],
                                 range(16)))
    assert sorted(statuses) == [200] * 15 + [201], statuses  # exactly one created it
    for group in ("crowd", "racing"):
        assert call(admin_stack, "DELETE", f"/v1/groups/{group}")[0] == 200


def test_removing_an_agent(admin_stack: Stack) -> None:
    assert call(admin_stack, "DELETE", "/v1/agents/nobody")[0] == 404
    assert call(admin_stack, "DELETE", "/v1/agents/adm-2?force=maybe")[0] == 400

    # An agent that stopped cleanly is offline: removed without force, and gone everywhere.
    admin_stack.start_agent("retired", ["misc"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    poll(lambda: agent_status(admin_stack, "retired") == "healthy", 30, "agent retired to be healthy")
    assert call(admin_stack, "POST", "/v1/groups/keep/agents", {"agent": "retired"})[0] == 200
    assert members(admin_stack, "keep") == {"retired"}
    admin_stack.kill("retired", 15)
    poll(lambda: agent_status(admin_stack, "retired") == "offline", 30, "agent retired to be offline")
    status, body = call(admin_stack, "DELETE", "/v1/agents/retired")
    assert status == 200 and body["name"] == "retired" and body["status"] == "offline", body
    assert agent_status(admin_stack, "retired") is None
    assert "retired" not in {a["name"] for a in call(admin_stack, "GET", "/v1/agents")[1]["agents"]}
    assert members(admin_stack, "keep") == set()  # still named by the definition, but not registered
    status, problem = call(admin_stack, "GET", "/v1/agents/retired")
    assert status == 404 and "removed by an administrator" in problem["detail"], problem

    # It comes back: it registers again, and is shown as removed before (and a member again).
    admin_stack.start_agent("retired", ["misc"], WATERFLOW_HEARTBEAT_INTERVAL="0.5")
    poll(lambda: agent_status(admin_stack, "retired") == "healthy", 30, "agent retired to be back")
    again = call(admin_stack, "GET", "/v1/agents/retired")[1]
    assert again["removed_at"] == body["removed_at"], again
    assert "removed_at" not in call(admin_stack, "GET", "/v1/agents/adm-2")[1]
    assert members(admin_stack, "keep") == {"retired"}
    assert "registered again since" in cli(admin_stack, "agent", "show", "retired").stdout
    admin_stack.kill("retired", 15)
    poll(lambda: agent_status(admin_stack, "retired") == "offline", 30, "agent retired to be offline again")
    assert call(admin_stack, "DELETE", "/v1/agents/retired")[0] == 200
    assert call(admin_stack, "DELETE", "/v1/groups/keep")[0] == 200


HELD = """
name: held
jobs:
  work:
    runs-on: doomed-group
    steps:
      - run: echo never
"""


def test_a_forced_removal_fails_the_job_queued_on_the_agent_with_the_reason(admin_stack: Stack) -> None:
    # A slow heartbeat (5 s): the scheduler would call it lost only after 30 s, the removal is first.
    admin_stack.start_agent("doomed", ["doomed-own"])
    poll(lambda: agent_status(admin_stack, "doomed") == "healthy", 30, "agent doomed to be healthy")
    assert call(admin_stack, "PUT", "/v1/groups/doomed-group", {"agents": ["doomed"]})[0] == 201
    admin_stack.kill("doomed")  # -9: still "healthy" for 3 heartbeats, so the job is sent to it

    status, body = call(admin_stack, "POST", "/v1/workflows", HELD.encode(), "application/yaml")
    run_id = body["id"]

    def queued() -> bool:
        job = call(admin_stack, "GET", f"/v1/workflows/{run_id}")[1]["jobs"]["work"]
        return job["status"] == "running" and job["steps"][0]["status"] == "dispatched"

    poll(queued, 30, "the job to be queued on agent doomed")
    status, problem = call(admin_stack, "DELETE", "/v1/agents/doomed")
    assert status == 409 and "online" in problem["detail"] and "force=true" in problem["detail"], problem

    status, body = call(admin_stack, "DELETE", "/v1/agents/doomed?force=true")
    assert status == 200 and body["failed_tasks"] == 1, body

    def finished() -> dict[str, Any] | None:
        state = call(admin_stack, "GET", f"/v1/workflows/{run_id}")[1]
        return state if state["status"] in ("failed", "succeeded") else None

    state = poll(finished, 30, "the run to fail")
    step = state["jobs"]["work"]["steps"][0]
    assert state["status"] == "failed" and "removed by an administrator" in step["error"], state
    assert agent_status(admin_stack, "doomed") is None
    assert call(admin_stack, "DELETE", "/v1/groups/doomed-group")[0] == 200


def test_cli_group_and_agent_commands(admin_stack: Stack) -> None:
    done = cli(admin_stack, "group", "create", "cli-g", "--description", "from the CLI", "--agent", "adm-2",
               "--label", "role=edge", "--include", "own")
    assert done.returncode == 0, done.stderr
    assert members(admin_stack, "cli-g") == {"adm-1", "adm-2"}
    definition = call(admin_stack, "GET", "/v1/groups/cli-g")[1]["definition"]
    assert definition == {"name": "cli-g", "description": "from the CLI", "agents": ["adm-2"],
                          "labels": {"role": "edge"}, "include": ["own"]}

    assert cli(admin_stack, "group", "add", "cli-g", "adm-3").returncode == 0
    assert members(admin_stack, "cli-g") == {"adm-1", "adm-2", "adm-3"}
    assert cli(admin_stack, "group", "remove", "cli-g", "adm-3").returncode == 0
    done = cli(admin_stack, "group", "remove", "cli-g", "adm-1")  # a member by its labels
    assert done.returncode == 2 and "labels match" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done
    done = cli(admin_stack, "group", "create", "cli-g", "--label", "novalue=")
    assert done.returncode == 0, done.stderr  # replaces the definition
    assert cli(admin_stack, "group", "delete", "cli-g").returncode == 0
    done = cli(admin_stack, "group", "delete", "cli-g")
    assert done.returncode == 2 and "no group 'cli-g'" in done.stderr, done

    for args in (("group", "create", "bad..name"), ("group", "create", "x", "--label", "=v"),
                 ("group", "add", "filed", "adm-2"), ("agent", "remove", "nobody"), ("agent", "remove", "adm-2")):
        done = cli(admin_stack, *args)
        assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr, (args, done)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    assert "online" in cli(admin_stack, "agent", "remove", "adm-2").stderr

    unreachable = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", "http://127.0.0.1:9", "group", "add",
                                  "g", "a"], capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 3, unreachable



def test_sdk_group_and_agent_methods(admin_stack: Stack) -> None:
    from waterflow import AsyncClient, Client
    from waterflow.client import Conflict, InvalidRequest, NotFound

    client = Client(admin_stack.api_url)
    group = client.create_group("sdk-g", description="by the SDK", agents=["adm-2"], labels={"role": "edge"})
    assert group.defined_by == "api" and {m.name for m in group.members} == {"adm-1", "adm-2"}
    assert client.add_to_group("sdk-g", "adm-3").added is True
    assert client.remove_from_group("sdk-g", "adm-2").removed == "adm-2"
    with pytest.raises(Conflict) as conflict:
        client.remove_from_group("sdk-g", "adm-1")
    assert "labels match" in conflict.value.problem["detail"]
    with pytest.raises(InvalidRequest):
        client.create_group("sdk-g", include=["sdk-g"])
    with pytest.raises(Conflict):
        client.remove_agent("adm-3")
    with pytest.raises(NotFound):
        client.remove_agent("nobody", force=True)
    deleted = client.delete_group("sdk-g")
    assert deleted.deleted.agents == ["adm-3"] and deleted.declared_by == []

    async def in_async() -> None:
        async with AsyncClient(admin_stack.api_url) as aclient:
            created = await aclient.create_group("sdk-a", agents=["adm-2"], include=["own"])
            assert {m.name for m in created.members} == {"adm-1", "adm-2"}
            assert (await aclient.add_to_group("sdk-a", "adm-3")).added is True
            assert (await aclient.remove_from_group("sdk-a", "adm-3")).removed == "adm-3"
            assert (await aclient.delete_group("sdk-a")).name == "sdk-a"
            with pytest.raises(Conflict):
                await aclient.remove_agent("adm-2")

    import asyncio

    asyncio.run(in_async())
