"""The Python SDK: a small synchronous client for the Waterflow REST API.

    >>> from waterflow import Client
    >>> client = Client("http://127.0.0.1:8080")
    >>> run = client.submit(open("examples/hello.yml").read())
    >>> client.wait(run.id).status
    'succeeded'

Results are typed (:mod:`waterflow.models`); errors are :class:`ApiError` subclasses carrying the
API's RFC 7807 problem. It uses only the standard library (and msgspec) so that it installs
anywhere a script runs.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import msgspec

from waterflow_common.errors import WaterflowError

from . import _calls as calls
from . import models as m
from ._calls import run_path
from .models import TERMINAL

__all__ = [
    "ApiError", "Client", "Conflict", "ConnectionFailed", "InvalidRequest", "NotFound", "ServerError",
    "Unauthorized", "called_workflows", "run_path",
]

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8080"


# --- errors ----------------------------------------------------------------------------------------
class ApiError(WaterflowError):
    """The API answered with an error, or could not be reached: the root of the SDK's errors.

    ``status``: the HTTP status (0: no answer); ``problem``: the RFC 7807 problem document the
    API sent (``type``, ``title``, ``status``, ``detail`` and extension members such as
    ``errors``), or ``{"detail": text}`` when the answer was not one.
    """

    def __init__(self, status: int, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}

    @property
    def diagnostics(self) -> list[m.Diagnostic]:
        """The positioned problems of a rejected workflow (the problem's ``errors`` member)."""
        entries = self.problem.get("errors") or []
        return [msgspec.convert(e, m.Diagnostic) for e in entries if isinstance(e, dict) and "path" in e]


class ConnectionFailed(ApiError):
    """No answer: the API is down, the address is wrong, or the connection broke (status 0)."""


class InvalidRequest(ApiError):
    """400, 413, 415, 422: the request is wrong (a workflow that does not compile, bad inputs)."""


class Unauthorized(ApiError):
    """401 or 403: the API key is missing or wrong."""


class NotFound(ApiError):
    """404: no such run, agent, group, node, trigger, file or secret."""


class Conflict(ApiError):
    """409: not possible in the current state (e.g. retrying a run that succeeded)."""


class ServerError(ApiError):
    """5xx: the API or what it depends on (NATS) failed; retrying later may work."""


def _error_class(status: int) -> type[ApiError]:
    if status in (401, 403):
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status >= 500:
        return ServerError
    return InvalidRequest if 400 <= status < 500 else ApiError


def problem_error(status: int, raw: bytes) -> ApiError:
    """The typed error for an error answer (an RFC 7807 problem, or whatever text came)."""
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {"detail": raw.decode(errors="replace").strip()}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    message = problem.get("detail") or problem.get("title") or f"HTTP {status}"
    return _error_class(status)(status, str(message), problem)


def unreachable(url: str, reason: object) -> ConnectionFailed:
    return ConnectionFailed(0, f"cannot reach the Waterflow API at {url}: {reason}")


def undecodable(url: str, error: Exception) -> ApiError:
    """An answer that is not the documented shape: a proxy's page, or a server of another version."""
    return ApiError(0, f"the Waterflow API at {url} sent an answer this client cannot read: {error}")


# --- following a run live (shared by both clients' watch/wait) ---------------------------------------
WATCH_SILENCE = 45.0
"""Seconds without a line on ``/watch`` after which the stream counts as dropped (the API sends a
keepalive every 15 s)."""


class _StreamDropped(Exception):
    """The live stream broke (``error``: it could not even be opened); open it again after ``pause``."""

    def __init__(self, pause: float, error: ApiError | None = None) -> None:
        super().__init__(str(error or "stream dropped"))
        self.pause = pause
        self.error = error


class _Reconnects:
    """When to open a dropped stream again: at once after a drop; while the API cannot be reached
    at all, every ``pause`` until ``patience`` seconds have passed, then the error is raised."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._failing_since: float | None = None

    def pause_after(self, dropped: _StreamDropped) -> float:
        if dropped.error is None:
            self._failing_since = None
            return dropped.pause
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.patience:
            raise dropped.error
        return dropped.pause


class StreamPosition:
    """What a follower already yielded, so that a stream opened again (it replays from the start)
    yields each item once: events and log lines each come in their stream's order, so counting
    them per kind is enough."""

    def __init__(self) -> None:
        self._yielded = {"event": 0, "log": 0}
        self._replayed = {"event": 0, "log": 0}

    def restart(self) -> None:
        self._replayed = {"event": 0, "log": 0}

    def is_new(self, item: Any) -> bool:
        kind = "log" if item["kind"] == "log" else "event"  # a timer event's ``kind`` is its timer's
        self._replayed[kind] += 1
        if self._replayed[kind] > self._yielded[kind]:
            self._yielded[kind] += 1
            return True
        return False


def _shorten_read_timeout(response: Any, seconds: float) -> None:
    """Set the timeout of the socket under a urllib response (fixed when it connected) as a
    deadline nears; where the socket cannot be reached, the connect-time timeout still bounds
    each read (at most WATCH_SILENCE past the deadline)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def is_completion(item: Any, attempt: int = 1) -> bool:
    """True for the ``run.completed`` event of ``attempt`` (or a later one)."""
    return item["kind"] != "log" and item["type"] == "run.completed" and (item.get("attempt") or 1) >= attempt


def finished(state: Any, attempt: int = 1) -> bool:
    """True if the run (a :class:`~waterflow.models.Run`) has finished ``attempt`` (or a later one)."""
    return state["status"] in TERMINAL and (state.get("attempt") or 1) >= attempt


def attempt_to_await(state: Any, attempt: int = 1) -> int | None:
    """The attempt ``wait()`` follows to its end, or None when ``state`` has finished ``attempt``
    already. A run on a later attempt (a retry was taken) is waited for to that attempt's end:
    the stream replays the ``run.completed`` of the earlier ones first."""
    if finished(state, attempt):
        return None
    return max(attempt, state.get("attempt") or 1)


def submit_body(workflow: str, filename: str, inputs: dict[str, Any] | None, workflows: dict[str, str] | None) -> bytes:
    return calls.submit(workflow, filename, inputs, workflows).body or b""


def list_query(limit: int, before: str | None) -> str:
    return calls.page(limit, before).path.partition("?")[2]


def called_workflows(path: str) -> dict[str, str]:
    """The workflow files and templates that the file at ``path`` calls (job-level ``uses:``),
    read from disk the way ``waterflow validate`` reads them, to send along with it."""
    from waterflow_compiler import FileWorkflows, collect
    from waterflow_compiler.reuse import template_dirs

    return collect(path, FileWorkflows(template_dirs(path)))


def settings(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The API URL and key of a client: given, else ``WATERFLOW_API_URL``/``WATERFLOW_API_KEY``,
    else a local Waterflow without a key (both clients and the CLI decide the same way)."""
    chosen = (url or os.environ.get("WATERFLOW_API_URL") or DEFAULT_URL).rstrip("/")
    return chosen, (api_key if api_key is not None else os.environ.get("WATERFLOW_API_KEY")) or None


class Client:
    """Synchronous client. ``url`` and ``api_key`` default to ``WATERFLOW_API_URL`` and
    ``WATERFLOW_API_KEY`` (as the CLI does), then to a local Waterflow without a key.

        >>> client = Client()
        >>> [run.id for run in client.list(limit=5)]
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url, self.api_key = settings(url, api_key)
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: Any = None, content_type: str | None = None,
        timeout: float | None = None, headers: dict[str, str] | None = None,
    ) -> Any:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise problem_error(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            raise unreachable(self.url, getattr(error, "reason", error)) from None

    def _call(self, call: calls.Call[T]) -> T:
        with self._request(call.method, call.path, call.body, call.content_type, headers=call.headers) as response:
            raw = response.read()
        try:
            return call.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise undecodable(self.url, error) from None

    def _json(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        """Any API path, answered as plain JSON data (for what the typed methods do not cover)."""
        with self._request(method, path, body, content_type) as response:
            return json.loads(response.read())

    # --- runs -------------------------------------------------------------------------------------
    def submit(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> m.Submitted:
        """Submit a workflow's YAML text; returns the new run's id (``.id``) and compile warnings.

        ``workflows``: the files it calls with job-level ``uses:`` (see :func:`called_workflows`).
        A workflow that does not compile raises :class:`InvalidRequest` (``.diagnostics``).
        """
        return self._call(calls.submit(workflow, filename, inputs, workflows))

    def validate(self, workflow: str, filename: str = "workflow.yml") -> m.Validation:
        """Compile a workflow on the server without running it: ``.valid`` and ``.errors``."""
        return self._call(calls.validate(workflow, filename))

    def get(self, run_id: str) -> m.Run:
        """A run with its jobs and steps, as it is now."""
        return self._call(calls.get(run_id))

    def list(self, limit: int = 50, before: str | None = None) -> list[m.RunSummary]:
        """Up to ``limit`` runs, newest first; ``before``: only runs older than this run id."""
        return self._call(calls.page(limit, before)).runs

    def runs_page(self, limit: int = 50, before: str | None = None) -> m.RunPage:
        """One page of :meth:`list`, with ``.next``: the ``before`` of the next page (None: the last)."""
        return self._call(calls.page(limit, before))

    def iter_runs(self, page_size: int = 200) -> Iterator[m.RunSummary]:
        """Every run, newest first, a page at a time."""
        before: str | None = None
        while True:
            page = self._call(calls.page(page_size, before))
            yield from page.runs
            if not page.next:
                return
            before = page.next

    def cancel(self, run_id: str) -> m.Accepted:
        """Ask to cancel a running run (running steps are stopped, cleanup steps still run)."""
        return self._call(calls.cancel(run_id))

    def retry(self, run_id: str) -> m.Accepted:
        """Re-run a failed or cancelled run from where it failed, keeping succeeded steps;
        ``.attempt`` is the new attempt (pass it to :meth:`wait`)."""
        return self._call(calls.retry(run_id))

    def logs(self, run_id: str) -> list[m.LogLine]:
        """Every line the run's steps printed so far, in order."""
        return self._call(calls.logs(run_id))

    def events(self, run_id: str) -> list[m.Event]:
        """The run's event history, oldest first."""
        return self._call(calls.events(run_id))

    def watch(self, run_id: str, attempt: int = 1, timeout: float | None = None) -> Iterator[m.Event | m.LogLine]:
        """Yield the run's events (:class:`~waterflow.models.Event`) and log lines
        (:class:`~waterflow.models.LogLine`) as they happen, until it finishes:

            >>> for item in client.watch(run_id):
            ...     print(item.text if item.kind == "log" else item.type)

        A stream that drops is opened again and what was already yielded is skipped, so every
        item comes once. ``attempt``: after :meth:`retry`, follow until that attempt finishes.
        ``timeout``: raise :class:`TimeoutError` after that many seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen, reconnects = StreamPosition(), _Reconnects(patience=self.timeout)
        completed = False
        while True:
            seen.restart()
            try:
                for item in self._watch_once(run_id, deadline):
                    if seen.is_new(item):
                        completed = completed or is_completion(item, attempt)
                        yield item
                if completed:
                    return
                pause = 0.05  # ended on an earlier attempt's end: the retry was not taken yet
            except _StreamDropped as dropped:
                pause = reconnects.pause_after(dropped)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(f"run {run_id} still going after {timeout:g}s")
            time.sleep(pause)

    def _watch_once(self, run_id: str, deadline: float | None) -> Iterator[m.Event | m.LogLine]:
        # a read waits at most WATCH_SILENCE (keepalives come every 15 s), or what is left of the deadline
        silence = WATCH_SILENCE if deadline is None else max(0.05, min(WATCH_SILENCE, deadline - time.monotonic()))
        try:
            response = self._request("GET", run_path(run_id, "/watch"), timeout=silence)
        except ConnectionFailed as error:
            raise _StreamDropped(pause=0.5, error=error) from None
        with response:
            try:
                for line in response:
                    if deadline is not None:  # the next read never waits past the deadline
                        _shorten_read_timeout(response, max(0.05, min(WATCH_SILENCE, deadline - time.monotonic())))
                    item = calls.watch_item(line)
                    if item is not None:
                        yield item
            except (OSError, ValueError, msgspec.DecodeError, http.client.HTTPException):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"run {run_id} still going") from None
                raise _StreamDropped(pause=0.1) from None

    def wait(self, run_id: str, timeout: float = 3600, poll: float = 0.2, attempt: int = 1) -> m.Run:
        """Block until the run finishes; returns its final state, as soon as its ``run.completed``
        event arrives on the live stream.

        ``attempt``: after :meth:`retry`, the attempt to wait for (the run still shows its
        previous, finished attempt until a scheduler has taken the retry). ``poll`` is unused.
        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        state = self.get(run_id)
        following = attempt_to_await(state, attempt)
        if following is None:
            return state
        attempt = following
        items = self.watch(run_id, attempt=attempt, timeout=timeout)
        try:
            for item in items:
                if is_completion(item, attempt):
                    # The final state is read before the stream is closed: an API that logged
                    # every cut /watch as an error answered the next request 150-700 ms late
                    # (fixed in the API; an older server still does).
                    return self.get(run_id)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} still {self.get(run_id).status} after {timeout:g}s") from None
        finally:
            items.close()
        return self.get(run_id)

    # --- agents, groups, nodes ----------------------------------------------------------------------
    def agents(self, group: str | None = None) -> list[m.Agent]:
        """Registered agents with their health (healthy / unhealthy / offline); ``group``: only its members."""
        return self._call(calls.agents(group))

    def agent(self, name: str) -> m.Agent:
        """One agent, with the groups it is a member of (``member_of``) and its nodes."""
        return self._call(calls.agent(name))

    def groups(self) -> m.GroupList:
        """Every server group (declared by agents or defined on the server) with member counts."""
        return self._call(calls.groups())

    def group(self, name: str) -> m.Group:
        """One server group: its definition and its members."""
        return self._call(calls.group(name))

    def create_group(
        self, name: str, *, description: str = "", agents: Sequence[str] = (), labels: dict[str, str] | None = None,
        include: Sequence[str] = (),
    ) -> m.Group:
        """Define server group ``name`` on the server (create, or replace its definition).

        Members: the ``agents`` named, those whose labels match all of ``labels`` (``""``: has the
        key), the members of the groups in ``include``, and agents declaring the group themselves.
        Raises :class:`InvalidRequest` for a bad name or an include cycle, :class:`Conflict` if
        server-groups.yml defines the group.

        >>> client.create_group("web", agents=["web-1", "web-2"], labels={"env": "prod"})  # doctest: +SKIP
        """
        return self._call(calls.create_group(name, description, agents, labels, include))

    def delete_group(self, name: str) -> m.GroupDeletion:
        """Delete the definition of a group made through the API (agents declaring it stay members)."""
        return self._call(calls.delete_group(name))

    def add_to_group(self, name: str, agent: str) -> m.Group:
        """Name ``agent`` in group ``name``'s definition, defining the group if it is not yet."""
        return self._call(calls.add_to_group(name, agent))

    def remove_from_group(self, name: str, agent: str) -> m.Group:
        """Take ``agent`` out of group ``name``'s definition; :class:`Conflict` if it is a member
        because it declares the group or its labels match (change those instead)."""
        return self._call(calls.remove_from_group(name, agent))

    def remove_agent(self, name: str, force: bool = False) -> m.AgentRemoval:
        """Forget an agent, failing the steps only it could run; :class:`Conflict` while it is
        online unless ``force`` (a running agent registers again at its next heartbeat)."""
        return self._call(calls.remove_agent(name, force))

    def nodes(self, group: str | None = None) -> list[m.Node]:
        """Nodes the agents provide (name, version, agents, groups, failures)."""
        return self._call(calls.nodes(group))

    def node(self, name: str) -> list[m.Node]:
        """Every version of a node (or one, with ``name@vN``), with its parameter schema."""
        return self._call(calls.node(name))

    # --- files --------------------------------------------------------------------------------------
    def put_file(self, path: str, object_name: str) -> m.StoredFile:
        """Upload a local file for ``file/download@v1`` (``with: {object: NAME}``) to fetch."""
        with open(path, "rb") as body, self._request(
            "PUT", calls.object_path(object_name), body, "application/octet-stream",
            headers={"Content-Length": str(os.path.getsize(path))},
        ) as response:
            return msgspec.json.decode(response.read(), type=m.StoredFile)

    def get_file(self, object_name: str, path: str) -> None:
        """Download a file that a run stored (``file/upload@v1`` with ``object: NAME``)."""
        with self._request("GET", calls.object_path(object_name)) as response, open(path, "wb") as out:
            while chunk := response.read(256 * 1024):
                out.write(chunk)

    def files(self) -> list[m.StoredFile]:
        """The objects in the file store."""
        return self._call(calls.files())

    # --- triggers -----------------------------------------------------------------------------------
    def add_trigger(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> m.Trigger:
        """Register a workflow: its ``on.schedule`` crons start runs, and so does its webhook.
        The answer is the only one with the webhook's secret (``.webhook_secret``)."""
        return self._call(calls.add_trigger(workflow, filename, inputs, workflows))

    def triggers(self) -> list[m.Trigger]:
        """The registered workflows."""
        return self._call(calls.triggers())

    def fire_trigger(
        self, trigger_id: str, inputs: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> m.Fired:
        """What a webhook call does: start a run of the registered workflow now. ``payload``:
        more of the JSON body (the run sees the whole body as ``github.event``). ``secret``: the
        trigger's webhook secret, to sign the call as a webhook sender does (no API key needed)."""
        return self._call(calls.fire_trigger(trigger_id, inputs, payload, secret))

    def delete_trigger(self, trigger_id: str) -> None:
        """Forget a registered workflow; its schedules stop."""
        self._call(calls.delete_trigger(trigger_id))

    # --- dead letters -------------------------------------------------------------------------------
    def dead_letters(self, limit: int = 50, before: int | None = None, run_id: str | None = None) -> list[m.DeadLetter]:
        """Messages a consumer moved aside, newest first (without their payloads); ``before``: only
        older than this ``seq``; ``run_id``: only that run's."""
        return self._call(calls.dead_letters(limit, before, run_id)).dead_letters

    def dead_letter(self, seq: int) -> m.DeadLetter:
        """One dead letter with its payload (a run failed with "event could not be applied" names it)."""
        return self._call(calls.dead_letter(seq))

    # --- secrets ------------------------------------------------------------------------------------
    def set_secret(self, name: str, value: str) -> None:
        """Store a secret for ``${{ secrets.NAME }}``; it is masked (***) in logs and outputs."""
        self._call(calls.set_secret(name, value))

    def secrets(self) -> list[m.Secret]:
        """The names of the stored secrets (values are never shown)."""
        return self._call(calls.secrets())

    def delete_secret(self, name: str) -> None:
        """Delete a secret."""
        self._call(calls.delete_secret(name))
