"""The SDK's typed results: one set of models for both clients, in step with the API's spec
and with the server's own state and events; the two clients offer the same methods."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import msgspec
import pytest
import yaml

import waterflow
from waterflow import AsyncClient, Client, models
from waterflow.embedded import free_port
from waterflow.client import ConnectionFailed, InvalidRequest, NotFound, ServerError, Unauthorized, problem_error
from waterflow_common import messages, state
from waterflow_common.diagnostics import Diagnostic
from waterflow_common.groups import GroupDefinition

SPEC = yaml.safe_load((Path(__file__).parents[2] / "services/api/openapi.yaml").read_text())["components"]["schemas"]


def fields(model: type) -> set[str]:
    return {f.name for f in msgspec.structs.fields(model)}


def test_every_public_name_imports() -> None:
    for name in waterflow.__all__:
        assert getattr(waterflow, name) is not None
    for name in models.__all__:
        assert getattr(models, name) is not None


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def test_both_clients_have_the_same_methods_with_the_same_parameters_and_docs() -> None:
    sync, aio = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) <= set(aio) and set(aio) - set(sync) == {"close"}
    for name, signature in sync.items():
        # the one difference: the sync watch takes a timeout; async code bounds it with asyncio.timeout()
        expected = [p for p in signature.parameters if (name, p) != ("watch", "timeout")]
        assert list(aio[name].parameters) == expected, name
        assert aio[name].return_annotation.replace("AsyncIterator", "Iterator") == signature.return_annotation, name
        method = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name
        assert getattr(Client, name).__doc__ and method.__doc__, name


@pytest.mark.parametrize(("schema", "model"), [
    ("RunSummary", models.RunSummary), ("Job", models.JobInfo), ("Step", models.StepInfo), ("Event", models.Event),
    ("Node", models.Node), ("LogLine", models.LogLine), ("Agent", models.Agent), ("GroupSummary", models.Group),
    ("Trigger", models.Trigger), ("Diagnostic", models.Diagnostic), ("DeadLetter", models.DeadLetter),
    ("GroupDefinition", models.GroupDefinition), ("GroupDeletion", models.GroupDeletion),
    ("AgentRemoval", models.AgentRemoval), ("Fired", models.Fired), ("Group", models.Group), ("Run", models.Run),
])
def test_models_have_every_property_of_the_api_spec(schema: str, model: type) -> None:
    assert spec_properties(SPEC[schema]) - fields(model) == set()


def spec_properties(schema: dict) -> set[str]:  # type: ignore[type-arg]
    """Every property a schema allows, through ``allOf`` and ``$ref``."""
    if "$ref" in schema:
        return spec_properties(SPEC[schema["$ref"].rsplit("/", 1)[1]])
    found = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found |= spec_properties(part)
    return found


def test_models_have_every_field_of_the_server_state() -> None:
    assert fields(state.RunState) - {"outbox", "run_id"} <= fields(models.Run) and "id" in fields(models.Run)
    assert fields(state.JobState) <= fields(models.JobInfo)
    assert fields(state.StepState) <= fields(models.StepInfo)
    assert fields(state.AttemptRecord) <= fields(models.Attempt)
    assert fields(messages.Annotation) == fields(models.Annotation)
    assert fields(Diagnostic) == fields(models.Diagnostic)
    assert fields(GroupDefinition) == fields(models.GroupDefinition)


def test_event_has_every_field_of_every_event_type() -> None:
    every = {f for cls in typing.get_args(messages.Event) for f in fields(cls)}
    assert every - {"proof"} - fields(models.Event) == set()


def test_a_newer_server_s_fields_are_ignored_and_results_still_read_like_dicts() -> None:
    raw = b'{"id": "r1", "workflow": "w", "status": "succeeded", "created_at": "2026-01-01T00:00:00+00:00",' \
          b' "from_the_future": 1, "jobs": {"a": {"id": "a", "name": "a", "runs_on": "local", "new": [],' \
          b' "steps": [{"index": 0, "name": "Build", "status": "succeeded", "exit_code": 0}]}}}'
    run = msgspec.json.decode(raw, type=models.Run)
    assert run.done and run.jobs["a"].steps[0].name == "Build"
    assert run["status"] == "succeeded" and run["jobs"]["a"]["steps"][0]["exit_code"] == 0
    assert run.get("nope", "default") == "default"
    with pytest.raises(KeyError):
        run["nope"]
    assert msgspec.to_builtins(run)["created_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("status", "error_type"), [
    (400, InvalidRequest), (415, InvalidRequest), (401, Unauthorized), (403, Unauthorized), (404, NotFound),
    (500, ServerError), (503, ServerError),
])
def test_errors_are_typed_and_carry_the_problem(status: int, error_type: type) -> None:
    body = b'{"type": "about:blank", "title": "T", "status": %d, "detail": "what went wrong",' \
           b' "errors": [{"path": "w.yml", "line": 3, "col": 5, "rule": "syntax", "message": "bad"}]}' % status
    error = problem_error(status, body)
    assert type(error) is error_type and isinstance(error, waterflow.ApiError)
    assert (error.status, str(error), error.problem["title"]) == (status, "what went wrong", "T")
    assert [(d.line, d.rule) for d in error.diagnostics] == [(3, "syntax")]
    plain = problem_error(status, b"<html>proxy error</html>")
    assert str(plain) == "<html>proxy error</html>" and plain.diagnostics == []


def test_an_unreachable_api_is_a_connection_error() -> None:
    port = free_port()  # nothing listens there
    client = Client(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(ConnectionFailed) as caught:
        client.list()
    assert caught.value.status == 0 and f"127.0.0.1:{port}" in str(caught.value)
