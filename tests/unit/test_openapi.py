"""services/api/openapi.yaml describes exactly the /v1 routes the API registers, and is valid.

The routes come from the real application object (``make_app``), walked with
``app.router.routes()``; nothing is listed by hand here. Routes outside ``/v1/`` are the web
console, the docs page and the spec itself (``waterflow_api.console``): they are not part of the
API the spec describes, and tests/e2e/test_console.py checks they are exactly those.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from waterflow_api.app import make_app

SPEC_PATH = Path(__file__).resolve().parents[2] / "services" / "api" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def _app_routes() -> set[tuple[str, str]]:
    # make_app only stores the Runs object (and its ``js``); no route handler runs here, so no
    # NATS is needed and the Runs object can be a bare holder.
    app = make_app(SimpleNamespace(js=None, nc=None), None)  # type: ignore[arg-type]
    routes = set()
    for route in app.router.routes():
        method = route.method.lower()
        if method == "head" or method == "*":
            continue  # aiohttp adds HEAD for every GET
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or not path.startswith("/v1/"):
            continue  # static files, and the console's pages (not part of the API, see above)
        # aiohttp writes {name:regex}; OpenAPI writes {name}.
        routes.add((method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes


def _spec_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, item in _spec()["paths"].items() for method in item if method in HTTP_METHODS}


def test_every_registered_route_is_in_the_spec() -> None:
    missing = _app_routes() - _spec_routes()
    assert not missing, "services/api/openapi.yaml lacks: " + ", ".join(f"{m.upper()} {p}" for m, p in sorted(missing))


def test_every_route_in_the_spec_is_registered() -> None:
    extra = _spec_routes() - _app_routes()
    assert not extra, "services/api/openapi.yaml describes routes the API does not have: " + ", ".join(
        f"{m.upper()} {p}" for m, p in sorted(extra)
    )


def test_the_spec_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(_spec())


def test_the_spec_is_well_formed_without_a_validator() -> None:
    """What we rely on even where openapi-spec-validator is not installed."""
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    operation_ids = []
    for path, item in spec["paths"].items():
        assert path.startswith("/v1/"), path
        path_params = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            operation_ids.append(operation["operationId"])
            assert operation.get("responses"), f"{method.upper()} {path} has no responses"
            declared = {
                _resolve(spec, p)["name"] for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                if _resolve(spec, p)["in"] == "path"
            }
            assert declared == path_params, f"{method.upper()} {path}: path parameters {declared} != {path_params}"
    assert len(operation_ids) == len(set(operation_ids)), "operationId values must be unique"
    for ref in re.findall(r'\$ref: "([^"]+)"', SPEC_PATH.read_text()):
        _resolve(spec, {"$ref": ref})


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/"), ref
    target: Any = spec
    for part in ref[2:].split("/"):
        assert part in target, f"dangling $ref {ref}"
        target = target[part]
    return target
