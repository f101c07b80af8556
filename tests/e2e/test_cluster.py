"""Production shape: a 3-node JetStream cluster with every stream and bucket replicated 3 times.

Losing one nats-server must lose nothing: state written before is readable after, and new
writes still work (the two remaining nodes keep a quorum).
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import nats
import pytest

from waterflow.embedded import free_port, nats_server_binary, wait_for_port
from waterflow_common import bus, subjects
from waterflow_common.runstore import RunStore
from waterflow_common.state import initial_state
from waterflow_compiler import compile_workflow


def _start_cluster(tmp_path: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    client_ports = [free_port() for _ in range(3)]
    cluster_ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
    servers = []
    for i in range(3):
        store = tmp_path / f"n{i}"
        store.mkdir()
        servers.append(subprocess.Popen(
            [nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(client_ports[i]),
             "-n", f"n{i}", "--cluster_name", "wf", "--cluster", f"nats://127.0.0.1:{cluster_ports[i]}", "--routes", routes],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    for port, server in zip(client_ports, servers):
        wait_for_port(port, 10, server)
    return servers, client_ports


def test_replicated_streams_survive_losing_a_server(tmp_path: Path) -> None:
    servers, ports = _start_cluster(tmp_path)
    plan, _ = compile_workflow("jobs:\n  a:\n    runs-on: g\n    steps:\n      - run: echo 1\n      - run: echo 2\n", "w.yml")
    assert plan is not None

    async def scenario() -> None:
        nc = await nats.connect([f"nats://127.0.0.1:{p}" for p in ports], max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = nc.jetstream()
        for _ in range(100):  # the cluster elects its meta leader after start
            try:
                await bus.provision(js, replicas=3)
                break
            except Exception:
                await asyncio.sleep(0.2)
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.config.num_replicas == 3
        runs = await js.key_value(subjects.RUNS_BUCKET)
        await runs.put("r1", b"before")
        servers[0].kill()
        servers[0].wait()
        for _ in range(100):  # leaders move to the surviving nodes
            try:
                await runs.put("r2", b"after")
                break
            except Exception:
                await asyncio.sleep(0.2)
        assert (await runs.get("r1")).value == b"before"
        assert (await runs.get("r2")).value == b"after"
        # Run state is written in atomic batches; they work on the replicated bucket too.
        store = RunStore(nc)
        await store.create(initial_state("r3", plan, datetime.now(timezone.utc)))
        stored = await store.load("r3", plan)
        assert stored is not None
        stored.state.jobs["a"].steps[1].status = "running"
        await store.save(stored, stored.state)
        loaded = await store.load("r3", plan)
        assert loaded is not None and loaded.state.jobs["a"].steps[1].status == "running"
        await nc.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        for server in servers:
            server.kill()
            server.wait()


def _node(tmp_path: Path, i: int, client_ports: list[int], cluster_ports: list[int]) -> subprocess.Popen[bytes]:
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
    store = tmp_path / f"n{i}"
    store.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(client_ports[i]),
         "-n", f"n{i}", "--cluster_name", "wf", "--cluster", f"nats://127.0.0.1:{cluster_ports[i]}", "--routes", routes],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(client_ports[i], 10, server)
    return server


def _health(api_url: str) -> tuple[int, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/v1/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


@pytest.mark.timeout(300)
def test_services_started_before_the_cluster_has_a_quorum_wait_and_become_ready(tmp_path: Path) -> None:
    """Issue #13 row 14: on a fresh 3-node cluster api, compiler and scheduler exited 1 on
    provisioning timeouts. With one node of three up (no JetStream quorum) they now wait, say
    why, and the api's health says "starting"; once the other two join, all become ready."""
    import time

    from test_agents import poll
    from waterflow.embedded import Stack

    client_ports = [free_port() for _ in range(3)]
    cluster_ports = [free_port() for _ in range(3)]
    servers = [_node(tmp_path, 0, client_ports, cluster_ports)]
    stack = Stack(data_dir=tmp_path / "stack", env={
        "WATERFLOW_NATS_URL": ",".join(f"nats://127.0.0.1:{p}" for p in client_ports),
        "WATERFLOW_STREAM_REPLICAS": "3",
    })
    try:
        for service in ("compiler", "scheduler"):
            stack.start_service(service)
        stack.start_service("api", WATERFLOW_API_HOST="127.0.0.1", WATERFLOW_API_PORT=str(stack.api_port))
        logs = stack.data_dir / "logs"

        def waiting() -> bool:
            text = {name: (logs / f"{name}.log").read_text() if (logs / f"{name}.log").exists() else ""
                    for name in ("api", "scheduler", "compiler")}
            return all("jetstream.not_ready" in text[name] for name in ("api", "scheduler", "compiler"))

        poll(waiting, timeout=90, what="every service to say JetStream is not ready")
        status, body = poll(lambda: (lambda h: h if h[0] else None)(_health(stack.api_url)), timeout=30,
                            what="the api to answer")
        assert status == 503 and body["status"] == "starting", body
        time.sleep(3)  # a few more failed attempts: still nobody exits
        assert all(p.poll() is None for p in stack.processes.values()), {n: p.returncode for n, p in stack.processes.items()}

        servers += [_node(tmp_path, i, client_ports, cluster_ports) for i in (1, 2)]
        poll(lambda: _health(stack.api_url)[0] == 200, timeout=120, what="the api to become ready")
        poll(lambda: "scheduler.ready" in (logs / "scheduler.log").read_text(), timeout=60, what="the scheduler")
        assert all(p.poll() is None for p in stack.processes.values()), {n: p.returncode for n, p in stack.processes.items()}
    finally:
        stack.stop()
        for server in servers:
            server.kill()
            server.wait()
