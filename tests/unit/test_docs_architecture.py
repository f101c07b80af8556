"""docs/architecture.md and the code name the same subjects, streams, buckets and consumers.

The names are read from the code (``waterflow_common.subjects`` and ``waterflow_common.bus``), not
listed here, so a subject added in code without a row in the table (or a row left behind after a
subject was removed) fails this test. Run this file as a script to print the names the code
defines, in the form the tables use::

    python tests/unit/test_docs_architecture.py
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from waterflow_common import bus, messages, subjects

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
_PLACEHOLDER = "XPARAMX"
_INT_PLACEHOLDER = 987_654_321


def _call_with_placeholders(function: Callable[..., Any]) -> str | None:
    """Call a name-building function with recognisable arguments; turn them into ``<param>``."""
    signature = inspect.signature(function)
    args: list[Any] = []
    names: dict[str, str] = {}
    for parameter in signature.parameters.values():
        if parameter.default is not inspect.Parameter.empty:
            continue
        annotation = str(parameter.annotation)
        if "int" in annotation and "str" not in annotation:
            args.append(_INT_PLACEHOLDER)
            names[str(_INT_PLACEHOLDER)] = f"<{parameter.name}>"
        elif "float" in annotation:
            args.append(30.0)
        else:
            token = f"{_PLACEHOLDER}{len(args)}"
            args.append(token)
            names[token] = f"<{parameter.name}>"
    try:
        result = function(*args)
    except Exception:
        return None
    if not isinstance(result, str):
        return None
    for token, shown in names.items():
        result = result.replace(token, shown)
    return result


def code_names() -> dict[str, set[str]]:
    """Every stream, bucket, consumer and subject (pattern) the code defines, by kind."""
    streams = {config.name for config in bus.STREAMS}
    stream_subjects = {s for config in bus.STREAMS for s in (config.subjects or [])}
    buckets = {config.bucket for config in bus.BUCKETS}
    consumers: set[str] = set()
    subject_names: set[str] = set(stream_subjects)
    queues: set[str] = set()
    prefix = subjects.PREFIX + "."
    for name, value in vars(subjects).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            if name.endswith("_STREAM"):
                streams.add(value)
            elif name.endswith("_BUCKET"):
                buckets.add(value)
            elif name.endswith("_CONSUMER"):
                consumers.add(value)
            elif name.endswith("_QUEUE"):
                queues.add(value)
            elif value.startswith(prefix):
                subject_names.add(value)
        elif inspect.isfunction(value) and value.__module__ == subjects.__name__:
            built = _call_with_placeholders(value)
            if built is None:
                continue
            if built.startswith(prefix):
                subject_names.add(built)
            elif "consumer" in name:
                consumers.add(built)
    # Durable consumers configured in bus.py (their names come from subjects, but a config
    # function could also spell one of its own).
    for name, value in vars(bus).items():
        if inspect.isfunction(value) and name.endswith("consumer_config"):
            try:
                built_config = value(*_placeholder_args(value))
            except Exception:
                continue
            durable = getattr(built_config, "durable_name", None)
            if durable:
                consumers.add(_unplaceholder(durable, value))
    return {
        "stream": streams,
        "bucket": buckets,
        "consumer": consumers,
        "queue": queues,
        "subject": subject_names,
    }


def _placeholder_args(function: Callable[..., Any]) -> list[Any]:
    args: list[Any] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.default is not inspect.Parameter.empty:
            continue
        annotation = str(parameter.annotation)
        if "float" in annotation:
            args.append(30.0)
        elif "int" in annotation and "str" not in annotation:
            args.append(_INT_PLACEHOLDER)
        else:
            args.append(f"{_PLACEHOLDER}{len(args)}")
    return args


def _unplaceholder(text: str, function: Callable[..., Any]) -> str:
    parameters = [p for p in inspect.signature(function).parameters.values() if p.default is inspect.Parameter.empty]
    for index, parameter in enumerate(parameters):
        text = text.replace(f"{_PLACEHOLDER}{index}", f"<{parameter.name}>")
    return text.replace(str(_INT_PLACEHOLDER), "<n>")


def event_types() -> set[str]:
    """The tag of every event in the ``messages.Event`` union."""
    return {str(member.__struct_config__.tag) for member in get_args(messages.Event)}


def _section(text: str, marker: str) -> str:
    match = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert match, f"docs/architecture.md lost its '<!-- {marker}:begin/end -->' markers"
    return match.group(1)


def _first_cells(section: str) -> list[str]:
    cells = []
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= {"|", "-", " ", ":"}:
            continue
        cells.append(line.strip("|").split("|")[0])
    return cells[1:]  # drop the header row


def doc_names() -> set[str]:
    """Every back-quoted name in the first column of the names table."""
    return {name for cell in _first_cells(_section(DOC.read_text(), "names")) for name in re.findall(r"`([^`]+)`", cell)}


def doc_event_types() -> set[str]:
    return {name for cell in _first_cells(_section(DOC.read_text(), "events")) for name in re.findall(r"`([^`]+)`", cell)}


def test_every_name_in_code_is_in_the_table() -> None:
    documented = doc_names()
    missing = {f"{kind} {name}" for kind, names in code_names().items() for name in names if name not in documented}
    assert not missing, (
        "docs/architecture.md (names table) lacks rows for: " + ", ".join(sorted(missing))
        + " — add them with producer, consumer and retention"
    )


def test_every_name_in_the_table_is_in_code() -> None:
    defined = set().union(*code_names().values())
    stale = doc_names() - defined
    assert not stale, "docs/architecture.md names what the code no longer defines: " + ", ".join(sorted(stale))


def test_every_event_type_is_in_the_events_table() -> None:
    documented, defined = doc_event_types(), event_types()
    assert defined <= documented, "events table lacks: " + ", ".join(sorted(defined - documented))
    assert documented <= defined, "events table names unknown events: " + ", ".join(sorted(documented - defined))


def test_the_scheduler_column_matches_the_scheduler_consumer_filter() -> None:
    reacts = set()
    for line in _section(DOC.read_text(), "events").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[2].startswith("yes"):
            reacts.update(re.findall(r"`([^`]+)`", cells[0]))
    assert reacts == set(messages.SCHEDULER_INPUTS), (
        f"events marked 'yes' {sorted(reacts)} differ from messages.SCHEDULER_INPUTS {sorted(messages.SCHEDULER_INPUTS)}"
    )


def test_streams_in_the_table_state_their_retention() -> None:
    rows = {
        re.findall(r"`([^`]+)`", line.split("|")[1])[0]: line
        for line in _section(DOC.read_text(), "names").splitlines()
        if line.strip().startswith("|") and re.findall(r"`([^`]+)`", line.split("|")[1] if line.count("|") > 1 else "")
    }
    for config in bus.STREAMS:
        row = rows.get(config.name, "")
        retention = str(getattr(config.retention, "value", config.retention))
        assert retention in row.lower(), f"the row of {config.name} should say its retention ({retention})"


def _print_names() -> None:  # pragma: no cover - a helper for whoever updates the doc
    for kind, names in sorted(code_names().items()):
        for name in sorted(names):
            print(f"| `{name}` | {kind} | ? | ? | ? |")
    for name in sorted(event_types()):
        print(f"| `{name}` | event | ? | ? |")


if __name__ == "__main__":  # pragma: no cover
    _print_names()
    sys.exit(0)
