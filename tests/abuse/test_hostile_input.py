"""Hostile input against a real stack (issue #13): every bound is checked at the edge with a clear
error, and afterwards the stack still schedules runs. Each test replays one row of the report
that found these (a short script against ``waterflow up``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from waterflow import Client
from waterflow.client import ApiError
from waterflow.embedded import Stack

OK = "name: ok\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo fine\n"


def still_schedules(client: Client) -> None:
    state = client.wait(client.submit(OK)["id"], timeout=60)
    assert state["status"] == "succeeded"


def submit_error(client: Client, workflow: str) -> ApiError:
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        client.submit(workflow, "hostile.yml")
    assert time.monotonic() - started < 10, "the compiler took too long to refuse it"
    assert caught.value.status == 400, caught.value
    return caught.value


def test_row1_a_huge_server_group_name_is_refused_with_its_position_and_scheduling_goes_on(client: Client) -> None:
    error = submit_error(client, f"name: x\njobs:\n  a:\n    runs-on: {'g' * 5000}\n    steps:\n      - run: echo\n")
    assert "hostile.yml:4:14" in str(error) and "over the limit of 128" in str(error)
    still_schedules(client)


def test_row1_a_huge_group_from_an_expression_fails_that_job_only(client: Client) -> None:
    workflow = ("name: x\ninputs:\n  g: {type: string}\njobs:\n  a:\n    runs-on: ${{ inputs.g }}\n"
                "    steps:\n      - run: echo\n")
    state = client.wait(client.submit(workflow, inputs={"g": "g" * 5000})["id"], timeout=60)
    assert state["status"] == "failed" and "over the limit" in state["jobs"]["a"]["error"]
    still_schedules(client)


@pytest.mark.parametrize("run_id", ["r" * 5000, "a.b", "run.>", "r*"])
def test_row2_a_hostile_run_id_in_a_path_is_a_400_and_the_api_keeps_working(stack: Stack, client: Client, run_id: str) -> None:
    for suffix in ("", "/events", "/logs"):
        request = urllib.request.Request(f"{stack.api_url}/v1/workflows/{urllib.parse.quote(run_id)}{suffix}")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        with caught.value as response:  # an HTTPError holds the connection: close it
            assert response.code == 400
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert "run" in json.loads(response.read())["detail"]
    assert client.list(limit=1) is not None
    still_schedules(client)


def test_row9_a_matrix_of_a_billion_combinations_is_refused_before_it_is_expanded(client: Client) -> None:
    axes = "".join(f"        k{i}: [0,1,2,3,4,5,6,7,8,9]\n" for i in range(9))
    error = submit_error(client, f"name: x\njobs:\n  a:\n    runs-on: local\n    strategy:\n      matrix:\n{axes}    steps:\n      - run: echo\n")
    assert "1000000000 combinations" in str(error)


def test_row10_a_100_kb_duration_is_refused_at_once(client: Client) -> None:
    value = "1" * 100_000
    error = submit_error(client, "name: x\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo\n"
                                 f"        retry: {{attempts: 2, initial-interval: '{value}s'}}\n")
    assert "not a duration" in str(error) and len(str(error)) < 2000


@pytest.mark.parametrize("retry, message", [
    ("{attempts: 3, initial-interval: 0s}", "retries wait at least 1s"),
    ("{attempts: 5000}", "over the limit of 100"),
])
def test_row12_retry_policies_that_would_spin_are_refused(client: Client, retry: str, message: str) -> None:
    error = submit_error(client, f"name: x\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo\n        retry: {retry}\n")
    assert message in str(error)


@pytest.mark.parametrize("where", ["job id", "step id", "label"])
def test_names_over_the_limit_are_refused_with_their_position(client: Client, where: str) -> None:
    long = "n" * 300
    workflow = {
        "job id": f"name: x\njobs:\n  {{{long}: {{runs-on: local, steps: [{{run: echo}}]}}}}\n",
        "step id": f"name: x\njobs:\n  a:\n    runs-on: local\n    steps:\n      - id: {long}\n        run: echo\n",
        "label": f"name: x\njobs:\n  a:\n    runs-on: {{group: local, labels: [{long}]}}\n    steps:\n      - run: echo\n",
    }[where]
    error = submit_error(client, workflow)
    assert f"the {where} is 300 characters long" in str(error)


def _post(stack: Stack, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(f"{stack.api_url}{path}", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def test_row12_a_lone_surrogate_in_json_is_a_400_not_a_500(stack: Stack) -> None:
    status, problem = _post(stack, "/v1/workflows", b'{"workflow": "\\ud800"}')
    assert status == 400 and "not valid Unicode" in problem["detail"]
    status, problem = _post(stack, "/v1/validate", b'{"workflow": "name: \\udfff"}')
    assert status == 400


def test_row12_an_out_of_range_cron_is_refused_at_registration(client: Client) -> None:
    workflow = 'name: x\non:\n  schedule:\n    - cron: "99 * * * *"\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo\n'
    with pytest.raises(ApiError) as caught:
        client.add_trigger(workflow, "cron.yml")
    assert caught.value.status == 400 and "minute: 99 is out of range (0-59)" in str(caught.value)


def test_row12_a_plan_too_large_for_nats_is_a_diagnostic_not_a_503(client: Client) -> None:
    jobs = "".join(f"  j{i}:\n    runs-on: local\n    steps:\n      - run: echo {i} with some text to make the plan bigger\n"
                   for i in range(5000))
    error = submit_error(client, "name: big\njobs:\n" + jobs)
    assert "over the limit of 524288" in str(error)
