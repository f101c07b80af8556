"""docs/reference/sdk.md is generated from the SDK's docstrings: the clients' methods, the errors
and every model with its fields (a field's description is the string literal under it in the
class). The test fails when the page is stale; regenerate it with::

    python tests/unit/test_sdk_reference.py --write
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec

import waterflow
from waterflow import AsyncClient, Client, client as client_module, models

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "sdk.md"

HEADER = """# SDK reference

<!-- Generated from the docstrings by `python tests/unit/test_sdk_reference.py --write`; do not edit. -->

`pip install waterflow` gives the `waterflow` command and this Python SDK. Two clients with the
same methods: `Client` (synchronous, standard library) and `AsyncClient` (asyncio, aiohttp).
Both read `WATERFLOW_API_URL` and `WATERFLOW_API_KEY` when no URL or key is given, return the
typed models below (frozen msgspec Structs; `msgspec.to_builtins(result)` gives plain data, the
same document `waterflow … -o json` prints) and raise `ApiError` subclasses.

```python
from waterflow import Client

client = Client()                                    # WATERFLOW_API_URL / WATERFLOW_API_KEY
run = client.submit(open("deploy.yml").read(), inputs={"version": "1.2.3"})
for item in client.watch(run.id):                    # live events and log lines
    if item.kind == "log":
        print(item.job, item.text)
final = client.wait(run.id)
print(final.status, [step.name for step in final.jobs["deploy"].steps])
```

```python
import asyncio
from waterflow import AsyncClient

async def main() -> None:
    async with AsyncClient() as client:
        run = await client.submit(open("deploy.yml").read())
        print((await client.wait(run.id)).status)

asyncio.run(main())
```
"""


def markdown(text: str) -> str:
    """Docstring markup as Markdown: ``code`` and :role:`~a.b.Name` become `code` and `Name`."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)
    return text.replace("``", "`")


def _doc(obj: Any) -> str:
    return markdown(textwrap.dedent(inspect.getdoc(obj) or "").strip())


def _signature(function: Any) -> str:
    """``(name: type = default, ...) -> type``, as the source spells the annotations."""
    signature = inspect.signature(function)
    params = []
    for name, param in signature.parameters.items():
        if name == "self":
            continue
        shown = f"{name}: {param.annotation}" if param.annotation is not inspect.Parameter.empty else name
        params.append(shown + (f" = {param.default!r}" if param.default is not inspect.Parameter.empty else ""))
    returns = signature.return_annotation
    shown = f"({', '.join(params)})"
    return shown + (f" -> {returns}" if returns is not inspect.Signature.empty else "")


def _methods(cls: type) -> list[tuple[str, Any]]:
    return [(name, member) for name, member in vars(cls).items() if inspect.isfunction(member) and not name.startswith("_")]


def field_docs(cls: type) -> dict[str, tuple[str, str]]:
    """field -> (annotation as written, description), from the class and its bases' source."""
    found: dict[str, tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins",) or not issubclass(klass, msgspec.Struct) or klass is msgspec.Struct:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, [*body[1:], None]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                text = ""
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                    text = " ".join(after.value.value.split())
                found[node.target.id] = (ast.unparse(node.annotation), text)
    return found


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is not msgspec.NODEFAULT:
        return f"`{field.default!r}`"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{field.default_factory()!r}`"
    return "required"


def model_section(cls: type) -> list[str]:
    docs = field_docs(cls)
    lines = [f"### {cls.__name__}", "", _doc(cls), "", "| field | type | default | description |", "|---|---|---|---|"]
    for field in msgspec.structs.fields(cls):
        annotation, text = docs.get(field.name, ("", ""))
        cell = annotation.replace("|", "\\|")
        lines.append(f"| `{field.name}` | `{cell}` | {_default(field)} | {markdown(text)} |")
    return lines + [""]


def _models() -> list[type]:
    """The models in the order models.py defines them, then those it re-exports (Diagnostic)."""
    source = ast.parse(inspect.getsource(models))
    order = [node.name for node in source.body if isinstance(node, ast.ClassDef)]
    names = [n for n in order if n in models.__all__ and n != "Model"] + sorted(set(models.__all__) - set(order))
    return [getattr(models, name) for name in names]


def generate() -> str:
    parts = [HEADER, "## Client", "", _doc(Client), ""]
    for name, method in _methods(Client):
        parts += [f"### Client.{name}", "", "```python", f"{name}{_signature(method)}".replace("m.", ""), "```", "",
                  _doc(method), ""]
    parts += ["## AsyncClient", "", _doc(AsyncClient), ""]
    own = [(n, m) for n, m in _methods(AsyncClient)  # only on AsyncClient, or called differently
           if n not in vars(Client) or _signature(m).replace("AsyncIterator", "Iterator") != _signature(getattr(Client, n))]
    same = [n for n, _ in _methods(AsyncClient) if n not in dict(own)]
    parts += [f"Awaited, with the same parameters and results as on `Client`: {', '.join(f'`{n}`' for n in same)}.", ""]
    for name, method in own:
        kind = "async def" if inspect.iscoroutinefunction(method) else "async for … in"
        parts += [f"### AsyncClient.{name}", "", "```python", f"{kind} {name}{_signature(method)}".replace("m.", ""), "```", "",
                  _doc(method), ""]
    parts += ["## Errors", "", "Every error is an `ApiError` (itself a `waterflow_common.errors.WaterflowError`); "
              "`status` is the HTTP status (0: no answer) and `problem` the RFC 7807 document the API sent.", ""]
    errors = [client_module.ApiError, *client_module.ApiError.__subclasses__()]
    parts += ["| error | when |", "|---|---|"]
    parts += [f"| `{e.__name__}` | {' '.join(_doc(e).split())} |" for e in errors if e.__name__ in waterflow.__all__]
    parts += ["", "## Models", "", _doc(models).split("\n\n")[0].replace("\n", " "), ""]
    for cls in _models():
        parts += model_section(cls)
    return "\n".join(parts).rstrip() + "\n"


def test_the_sdk_reference_is_generated_from_the_docstrings() -> None:
    assert DOC.read_text() == generate(), "docs/reference/sdk.md is stale: run `python tests/unit/test_sdk_reference.py --write`"


def test_every_public_method_and_model_is_documented() -> None:
    text = DOC.read_text()
    for name, method in _methods(Client):
        assert _doc(method), f"Client.{name} has no docstring"
        assert f"### Client.{name}" in text
    for cls in _models():
        assert _doc(cls) and f"### {cls.__name__}" in text, cls


def test_the_docs_index_links_the_sdk_reference() -> None:
    assert "reference/sdk.md" in (DOC.parents[1] / "index.md").read_text()


if __name__ == "__main__":  # pragma: no cover - a maintenance helper
    if "--write" in sys.argv:
        DOC.write_text(generate())
        print(f"wrote {DOC}")
    else:
        print(generate())
