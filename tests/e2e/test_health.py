"""Health tells the truth (issue #13 row 2: /v1/health said 200 while every NATS-backed route
answered 500): 503 while NATS is away, 200 again once it is back; liveness stays 200."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from waterflow.embedded import Stack

from test_agents import poll


def _status(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_health_is_503_while_nats_is_away_and_liveness_stays_up(fresh_stack: Stack) -> None:
    health, live = f"{fresh_stack.api_url}/v1/health", f"{fresh_stack.api_url}/v1/health/live"
    assert _status(health) == (200, {"status": "ok", "nats": True})
    fresh_stack.kill("nats")
    poll(lambda: _status(health)[0] == 503, 15, "health to say 503 with NATS gone")
    assert _status(health)[1] == {"status": "unavailable", "nats": False}
    assert _status(live) == (200, {"status": "ok"})
    fresh_stack.restart("nats")
    poll(lambda: _status(health)[0] == 200, 30, "health to come back with NATS")
