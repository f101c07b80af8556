"""Fixtures that start the real thing: nats-server from the wheel and every service as a process.

Ports are free ones picked at start; data lives in pytest's temp dirs. On a failure, the
services' logs are printed so a CI failure can be understood without re-running it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack, free_port, nats_server_binary, wait_for_port


def _dump_logs(stack: Stack) -> None:
    log_dir = stack.data_dir / "logs"
    for log_file in sorted(log_dir.glob("*.log")) if log_dir.exists() else []:
        text = log_file.read_text(errors="replace")
        print(f"----- {log_file.name} (last 60 lines) -----")
        print("\n".join(text.splitlines()[-60:]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """One embedded Waterflow for a test module (agent group ``local``)."""
    s = Stack(data_dir=tmp_path_factory.mktemp("stack"), agent_groups=("local",))
    s.start()
    yield s
    s.stop()
    if request.session.testsfailed:
        _dump_logs(s)


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``--secure`` (NATS users, restricted agent credentials) with two groups: agent ``dev-1`` in
    ``dev`` and ``prod-1`` in ``prod`` — what the tests of hostile agents need."""
    stack = Stack(data_dir=tmp_path_factory.mktemp("secure"), agent_name="dev-1", agent_groups=("dev",), secure=True)
    stack.start()
    stack.start_agent("prod-1", ["prod"])
    yield stack
    stack.stop()


@pytest.fixture
def fresh_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of its own, for tests that kill or restart processes."""
    s = Stack(data_dir=tmp_path / "stack", agent_groups=("local",))
    s.start()
    yield s
    s.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        _dump_logs(s)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A bare nats-server with JetStream (no Waterflow services), for tests of the storage layer."""
    port = free_port()
    server = subprocess.Popen(
        [nats_server_binary(), "-js", "-sd", str(tmp_path / "jetstream"), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 10, server)
    yield f"nats://127.0.0.1:{port}"
    server.kill()
    server.wait()


@pytest.fixture
def client(stack: Stack) -> Client:
    return Client(stack.api_url)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
