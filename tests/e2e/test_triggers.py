"""Registered workflows: cron schedules held by NATS and webhooks start runs; deleting stops them."""

from __future__ import annotations

import time

import pytest

from waterflow import ApiError, Client

SCHEDULED = """
name: every-second
on:
  schedule:
    - cron: "* * * * * *"
inputs:
  who: {type: string, default: cron}
jobs:
  j:
    runs-on: local
    steps:
      - env:
          WHO: ${{ inputs.who }}
        run: echo "hello $WHO"
"""


def _runs_of(client: Client, name: str) -> list[dict]:
    return [r for r in client.list(limit=200) if r["workflow"] == name]


def test_schedule_starts_runs_until_deleted_and_webhook_fires(client: Client) -> None:
    trigger = client.add_trigger(SCHEDULED, "cron.yml")
    assert trigger["crons"] == ["* * * * * *"] and trigger["webhook"].endswith("/fire")
    deadline = time.monotonic() + 30
    while len(_runs_of(client, "every-second")) < 2:
        assert time.monotonic() < deadline, "the schedule never started two runs"
        time.sleep(0.3)
    client.delete_trigger(trigger["id"])
    time.sleep(1.5)
    count = len(_runs_of(client, "every-second"))
    time.sleep(2.5)
    assert len(_runs_of(client, "every-second")) == count  # no more after delete
    for run in _runs_of(client, "every-second"):
        assert client.wait(run["id"], timeout=60)["status"] == "succeeded"


def test_webhook_fire_with_inputs(client: Client) -> None:
    workflow = SCHEDULED.replace("name: every-second", "name: hooked").replace(
        'on:\n  schedule:\n    - cron: "* * * * * *"\n', "")
    trigger = client.add_trigger(workflow, "hook.yml")
    assert trigger["crons"] == []
    client.fire_trigger(trigger["id"], {"who": "webhook"})
    deadline = time.monotonic() + 30
    while not (runs := _runs_of(client, "hooked")):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.wait(runs[0]["id"], timeout=60)["status"] == "succeeded"
    assert "hello webhook" in [line["text"] for line in client.logs(runs[0]["id"])]
    client.delete_trigger(trigger["id"])
    with pytest.raises(ApiError) as caught:
        client.fire_trigger(trigger["id"])
    assert caught.value.status == 404


def test_broken_workflow_is_refused_at_registration(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.add_trigger('on:\n  schedule:\n    - cron: "every day"\njobs:\n  j:\n    runs-on: local\n    steps: [{run: x}]\n')
    assert caught.value.status == 400 and "invalid cron" in str(caught.value.problem)


EVENTFUL = """
name: eventful
inputs:
  who: {type: string, default: cron}
jobs:
  j:
    runs-on: local
    steps:
      - env:
          NAME: ${{ github.event_name }}
          REF: ${{ github.event.ref }}
          WHO: ${{ github.event.inputs.who }}
        run: echo "event=$NAME ref=$REF who=$WHO"
"""


def test_a_webhook_run_sees_its_payload_as_github_event(client: Client) -> None:
    trigger = client.add_trigger(EVENTFUL, "eventful.yml")
    client.fire_trigger(trigger["id"], {"who": "hook"}, payload={"ref": "refs/heads/main"})
    deadline = time.monotonic() + 30
    while not (runs := _runs_of(client, "eventful")):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.wait(runs[0]["id"], timeout=60)["status"] == "succeeded"
    assert "event=webhook ref=refs/heads/main who=hook" in [line["text"] for line in client.logs(runs[0]["id"])]
    submitted = client.wait(client.submit(EVENTFUL, inputs={"who": "me"})["id"], timeout=60)
    assert "event=api ref= who=me" in [line["text"] for line in client.logs(submitted["id"])]
    client.delete_trigger(trigger["id"])


def test_a_webhook_fired_with_bad_inputs_is_a_400_and_starts_nothing(client: Client) -> None:
    trigger = client.add_trigger(EVENTFUL.replace("name: eventful", "name: strict"), "strict.yml")
    with pytest.raises(ApiError) as caught:
        client.fire_trigger(trigger["id"], {"nobody": "x"})
    assert caught.value.status == 400 and "unknown input 'nobody'" in str(caught.value)
    time.sleep(1)
    assert _runs_of(client, "strict") == []
    client.delete_trigger(trigger["id"])


def test_a_trigger_says_when_its_schedule_fires_next(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    daily = SCHEDULED.replace("name: every-second", "name: daily").replace('"* * * * * *"', '"30 2 * * *"')
    trigger = client.add_trigger(daily, "daily.yml")
    try:
        due = trigger.next_fire_at  # a datetime (waterflow.models.Trigger)
        now = datetime.now(UTC)
        assert now < due <= now + timedelta(days=1) and (due.hour, due.minute) == (2, 30)
        assert [t for t in client.triggers() if t["id"] == trigger["id"]][0]["next_fire_at"] == trigger["next_fire_at"]
    finally:
        client.delete_trigger(trigger["id"])
    hooked = client.add_trigger(daily.replace('on:\n  schedule:\n    - cron: "30 2 * * *"\n', ""), "hook.yml")
    assert hooked["next_fire_at"] is None
    client.delete_trigger(hooked["id"])
