"""OpenTelemetry: one trace per run, spans for the run, its jobs and step attempts, parented."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from aiohttp import web

from waterflow import Client
from waterflow.embedded import Stack, free_port

WORKFLOW = """
name: traced
jobs:
  build:
    runs-on: local
    steps:
      - run: echo one
      - run: exit 4
        continue-on-error: true
  deploy:
    runs-on: local
    needs: build
    steps:
      - run: echo deploy
"""


def test_spans_of_a_run_form_one_trace(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    stack = Stack(data_dir=tmp_path / "stack", env={"WATERFLOW_OTEL_FILE": str(spans_file)})
    stack.start()
    try:
        client = Client(stack.api_url)
        run_id = client.submit(WORKFLOW, "t.yml")["id"]
        assert client.wait(run_id, timeout=60)["status"] == "succeeded"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not spans_file.exists() or "run traced" not in spans_file.read_text()):
            time.sleep(0.1)
        spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    finally:
        stack.stop()
    by_name = {s["name"]: s for s in spans}
    run = by_name["run traced"]
    assert run["parent_id"] is None and run["attributes"]["waterflow.run_id"] == run_id
    assert {s["context"]["trace_id"] for s in spans} == {run["context"]["trace_id"]}
    build, deploy = by_name["job build"], by_name["job deploy"]
    assert build["parent_id"] == run["context"]["span_id"] == deploy["parent_id"]
    steps = [s for s in spans if s["name"].startswith("step ")]
    assert len(steps) == 3
    assert all(s["parent_id"] in (build["context"]["span_id"], deploy["context"]["span_id"]) for s in steps)
    failed = [s for s in steps if s["attributes"]["waterflow.exit_code"] == 4]
    assert failed and failed[0]["attributes"]["waterflow.status"] == "failed"
    assert run["start_time"] <= build["start_time"] <= build["end_time"] <= deploy["start_time"] <= run["end_time"]


def test_spans_are_exported_over_otlp_http(tmp_path: Path) -> None:
    received: list[bytes] = []
    port = free_port()
    ready = threading.Event()

    async def collector() -> None:
        async def traces(request: web.Request) -> web.Response:
            received.append(await request.read())
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    stop = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(collector()), daemon=True)
    thread.start()
    ready.wait(5)
    stack = Stack(data_dir=tmp_path / "stack", env={
        "WATERFLOW_OTEL_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    stack.start()
    try:
        client = Client(stack.api_url)
        run_id = client.submit(WORKFLOW, "t.yml")["id"]
        client.wait(run_id, timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(b"run traced" in body for body in received):
            time.sleep(0.1)
    finally:
        stack.stop()
        stop.set()
        thread.join(5)
    assert any(b"run traced" in body and run_id.encode() in body for body in received)
