"""The Python SDK: a small synchronous client for the Waterflow REST API.

    >>> from waterflow import Client
    >>> client = Client("http://127.0.0.1:8080")
    >>> run = client.submit(open("examples/hello.yml").read())
    >>> client.wait(run["id"])["status"]
    'succeeded'

It uses only the standard library so that it installs anywhere a script runs.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from urllib.parse import quote
from collections.abc import Iterator
from typing import Any

from waterflow_common.errors import WaterflowError
from waterflow_common.triggers import SIGNATURE_HEADERS, webhook_signature

TERMINAL = ("succeeded", "failed", "cancelled")


class ApiError(WaterflowError):
    """The API answered with an error (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def called_workflows(path: str) -> dict[str, str]:
    """The workflow files and templates that the file at ``path`` calls (job-level ``uses:``),
    read from disk the way ``waterflow validate`` reads them, to send along with it."""
    from waterflow_compiler import FileWorkflows, collect
    from waterflow_compiler.reuse import template_dirs

    return collect(path, FileWorkflows(template_dirs(path)))


DEFAULT_URL = "http://127.0.0.1:8080"


def run_path(run_id: str, suffix: str = "") -> str:
    """``/v1/workflows/<id><suffix>``: the one place a run's URL is spelled (both clients)."""
    return f"/v1/workflows/{quote(run_id, safe='')}{suffix}"


def submit_body(workflow: str, filename: str, inputs: dict[str, Any] | None, workflows: dict[str, str] | None) -> bytes:
    return json.dumps({"workflow": workflow, "filename": filename, "inputs": inputs or {},
                       "workflows": workflows or {}}).encode()


def list_query(limit: int, before: str | None) -> str:
    return f"limit={limit}" + (f"&before={quote(before, safe='')}" if before else "")


def problem_error(status: int, raw: bytes) -> ApiError:
    """The ApiError for an error answer (an RFC 7807 problem, or whatever text came)."""
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {"detail": raw.decode(errors="replace")}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    return ApiError(status, problem.get("detail") or problem.get("title") or f"HTTP {status}", problem)


class Client:
    """Synchronous client. ``url`` and ``api_key`` default to ``WATERFLOW_API_URL`` and
    ``WATERFLOW_API_KEY`` (as the CLI does), then to a local Waterflow without a key."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("WATERFLOW_API_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = (api_key if api_key is not None else os.environ.get("WATERFLOW_API_KEY")) or None
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
        timeout: float | None = None, headers: dict[str, str] | None = None,
    ) -> Any:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            response = urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise problem_error(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, f"cannot reach the Waterflow API at {self.url}: {reason}") from None
        return response

    def _json(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        with self._request(method, path, body, content_type) as response:
            return json.loads(response.read())

    def submit(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Submit a workflow's YAML text; returns ``{"id": ..., "status": "queued", ...}``.

        ``workflows``: the files it calls with job-level ``uses:`` (see :func:`called_workflows`).
        """
        return self._json("POST", "/v1/workflows", submit_body(workflow, filename, inputs, workflows), "application/json")

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Ask to cancel a running run (running steps are stopped, cleanup steps still run)."""
        return self._json("POST", run_path(run_id, "/cancel"), b"")

    def retry(self, run_id: str) -> dict[str, Any]:
        """Re-run a failed or cancelled run from where it failed, keeping succeeded steps."""
        return self._json("POST", run_path(run_id, "/retry"), b"")

    def agents(self, group: str | None = None) -> list[dict[str, Any]]:
        """Registered agents with their health (healthy / unhealthy / offline)."""
        query = f"?group={quote(group)}" if group else ""
        return self._json("GET", f"/v1/agents{query}")["agents"]

    def groups(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/groups")["groups"]

    def nodes(self, group: str | None = None) -> list[dict[str, Any]]:
        """Nodes the agents provide (name, version, agents, groups, failures)."""
        query = f"?group={quote(group)}" if group else ""
        return self._json("GET", f"/v1/nodes{query}")["nodes"]

    def node(self, name: str) -> list[dict[str, Any]]:
        """Every version of a node (or one, with ``name@vN``), with its parameter schema."""
        return self._json("GET", f"/v1/nodes/{quote(name, safe='@/')}")["versions"]

    def put_file(self, path: str, object_name: str) -> dict[str, Any]:
        """Upload a local file for ``file/download@v1`` (``with: {object: NAME}``) to fetch."""
        with open(path, "rb") as body, self._request(
            "PUT", f"/v1/files/{quote(object_name, safe='/')}", body, "application/octet-stream",  # type: ignore[arg-type]
            headers={"Content-Length": str(os.path.getsize(path))},
        ) as response:
            return json.loads(response.read())

    def get_file(self, object_name: str, path: str) -> None:
        """Download a file that a run stored (``file/upload@v1`` with ``object: NAME``)."""
        with self._request("GET", f"/v1/files/{quote(object_name, safe='/')}") as response, open(path, "wb") as out:
            while chunk := response.read(256 * 1024):
                out.write(chunk)

    def files(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/files")["files"]

    def add_trigger(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Register a workflow: its ``on.schedule`` crons start runs, and so does its webhook."""
        return self._json("POST", "/v1/triggers", submit_body(workflow, filename, inputs, workflows), "application/json")

    def triggers(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/triggers")["triggers"]

    def fire_trigger(
        self, trigger_id: str, inputs: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """What a webhook call does: start a run of the registered workflow now. ``payload``:
        more of the JSON body (the run sees the whole body as ``github.event``). ``secret``: the
        trigger's webhook secret, to sign the call as a webhook sender does (no API key needed)."""
        body = json.dumps({**(payload or {}), "inputs": inputs or {}}).encode()
        headers = {SIGNATURE_HEADERS[0]: webhook_signature(secret, body)} if secret else None
        path = f"/v1/triggers/{quote(trigger_id, safe='')}/fire"
        with self._request("POST", path, body, "application/json", headers=headers) as response:
            return json.loads(response.read())

    def delete_trigger(self, trigger_id: str) -> None:
        with self._request("DELETE", f"/v1/triggers/{quote(trigger_id, safe='')}"):
            pass

    def set_secret(self, name: str, value: str) -> None:
        """Store a secret for ``${{ secrets.NAME }}``; it is masked (***) in logs and outputs."""
        self._json("PUT", f"/v1/secrets/{quote(name, safe='')}", json.dumps({"value": value}).encode(), "application/json")

    def secrets(self) -> list[str]:
        return [s["name"] for s in self._json("GET", "/v1/secrets")["secrets"]]

    def delete_secret(self, name: str) -> None:
        with self._request("DELETE", f"/v1/secrets/{quote(name, safe='')}"):
            pass

    def validate(self, workflow: str, filename: str = "workflow.yml") -> dict[str, Any]:
        body = json.dumps({"workflow": workflow, "filename": filename}).encode()
        return self._json("POST", "/v1/validate", body, "application/json")

    def get(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", run_path(run_id))

    def list(self, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` runs, newest first; ``before``: only runs older than this run id."""
        return self._json("GET", f"/v1/workflows?{list_query(limit, before)}")["runs"]

    def iter_runs(self, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every run, newest first, a page at a time."""
        before: str | None = None
        while True:
            page = self._json("GET", f"/v1/workflows?{list_query(page_size, before)}")
            yield from page["runs"]
            before = page.get("next")
            if not before:
                return

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        return self._json("GET", run_path(run_id, "/logs"))["lines"]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return self._json("GET", run_path(run_id, "/events"))["events"]

    def watch(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Yield the run's events and log lines (``kind`` = event/log) until it finishes."""
        with self._request("GET", run_path(run_id, "/watch"), timeout=3600) as response:
            for line in response:
                item = json.loads(line)
                if item.get("kind") != "keepalive":
                    yield item

    def wait(self, run_id: str, timeout: float = 3600, poll: float = 0.2, attempt: int = 1) -> dict[str, Any]:
        """Block until the run finishes; returns its final state.

        ``attempt``: after :meth:`retry`, the attempt to wait for (the run still shows its
        previous, finished attempt until a scheduler has taken the retry).
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.get(run_id)
            if state["status"] in TERMINAL and state.get("attempt", 1) >= attempt:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {state['status']} after {timeout:g}s")
            time.sleep(poll)
