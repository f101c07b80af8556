"""Health tells the truth (issue #13 row 2: /v1/health said 200 while every NATS-backed route
answered 500): 503 while NATS is away, 200 again once it is back; liveness stays 200."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from waterflow.embedded import Stack


def _status(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _until(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_health_is_503_while_nats_is_away_and_liveness_stays_up(fresh_stack: Stack) -> None:
    health, live = f"{fresh_stack.api_url}/v1/health", f"{fresh_stack.api_url}/v1/health/live"
    assert _status(health) == (200, {"status": "ok", "nats": True})
    fresh_stack.kill("nats")
    assert _until(lambda: _status(health)[0] == 503, 15), "health stayed 200 with NATS gone"
    assert _status(health)[1] == {"status": "unavailable", "nats": False}
    assert _status(live) == (200, {"status": "ok"})
    fresh_stack.restart("nats")
    assert _until(lambda: _status(health)[0] == 200, 30), "health did not come back with NATS"
