"""http and wait-for against a real aiohttp server and real sockets on this machine."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from nodetest import NodeRunner
from waterflow.embedded import free_port


@pytest.fixture
async def server() -> AsyncIterator[dict]:
    state = {"flaky": 2, "seen": []}

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        state["seen"].append((request.method, request.headers.get("X-Token"), body))
        return web.json_response({"method": request.method, "body": body, "query": dict(request.query)},
                                 headers={"X-Served-By": "test"})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def flaky(request: web.Request) -> web.Response:
        state["flaky"] -= 1
        return web.Response(status=503 if state["flaky"] >= 0 else 200, text="flaky")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * 5000)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state["url"] = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_methods_headers_and_json(run_node: NodeRunner, server: dict, method: str) -> None:
    step = await run_node("http@v1", {"url": server["url"] + "/echo?x=1", "method": method,
                                      "headers": {"X-Token": "abc"}, **({"json": {"a": 1}} if method != "GET" else {})})
    assert step.result.succeeded, step.result.error
    out = step.result.outputs
    assert out["status"] == "200" and json.loads(out["headers"])["X-Served-By"] == "test"
    body = json.loads(out["body"])
    assert body["method"] == method and body["query"] == {"x": "1"}
    assert out["json"] == json.dumps(body, separators=(",", ":"), sort_keys=True)
    assert server["seen"][-1][:2] == (method, "abc")
    if method != "GET":
        assert json.loads(server["seen"][-1][2]) == {"a": 1}


async def test_raw_body_and_expected_status(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("http", {"url": server["url"] + "/echo", "method": "POST", "body": "plain text"})
    assert json.loads(step.result.outputs["body"])["body"] == "plain text"
    step = await run_node("http", {"url": server["url"] + "/status/404", "expected-status": [200, 404]})
    assert step.result.succeeded and step.result.outputs["status"] == "404"


async def test_unexpected_status_4xx_is_not_retryable_5xx_is(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("http", {"url": server["url"] + "/status/404"})
    assert not step.result.retryable
    assert step.result.error == f"GET {server['url']}/status/404 answered 404, expected a 2xx status: status page"
    assert step.result.outputs["status"] == "404"
    step = await run_node("http", {"url": server["url"] + "/status/502"})
    assert step.result.retryable and "answered 502" in (step.result.error or "")


async def test_retries_inside_the_step(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("http", {"url": server["url"] + "/flaky", "retries": 3, "retry-delay": 0.01})
    assert step.result.succeeded, step.result.error
    assert sum("retrying" in text for _, text in step.lines) == 2


async def test_body_is_size_capped(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("http", {"url": server["url"] + "/big", "max-body-bytes": 100})
    assert step.result.outputs["body"] == "x" * 100 and step.result.outputs["body_truncated"] == "true"


async def test_timeout_and_refused_connection_are_retryable(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("http", {"url": server["url"] + "/slow", "timeout": 0.3})
    assert step.result.retryable and "no complete answer within 0.3s" in (step.result.error or "")
    step = await run_node("http", {"url": f"http://127.0.0.1:{free_port()}/"})
    assert step.result.retryable and "failed" in (step.result.error or "")


async def test_wait_for_http_url(run_node: NodeRunner, server: dict) -> None:
    step = await run_node("wait-for@v1", {"url": server["url"] + "/flaky", "interval": 0.05, "timeout": 5})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs["checks"] == "3"


async def test_wait_for_tcp_port_that_opens_later(run_node: NodeRunner) -> None:
    port = free_port()
    listener = socket.socket()

    async def open_later() -> None:
        await asyncio.sleep(0.3)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    opener = asyncio.create_task(open_later())
    try:
        step = await run_node("wait-for", {"tcp": f"127.0.0.1:{port}", "interval": 0.05, "timeout": 10})
    finally:
        await opener
        listener.close()
    assert step.result.succeeded, step.result.error
    assert int(step.result.outputs["checks"]) > 1


async def test_wait_for_times_out_retryably(run_node: NodeRunner) -> None:
    port = free_port()
    step = await run_node("wait-for", {"tcp": f"127.0.0.1:{port}", "interval": 0.05, "timeout": 0.3})
    assert step.result.retryable
    assert f"127.0.0.1:{port} was not healthy within 0.3s" in (step.result.error or "")


async def test_wait_for_needs_exactly_one_target(run_node: NodeRunner) -> None:
    step = await run_node("wait-for", {"timeout": 1})
    assert not step.result.retryable and "invalid parameters for wait-for@v1" in (step.result.error or "")
