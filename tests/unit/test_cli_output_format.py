"""The one output helper (waterflow/output.py): documents are the models as plain data, tables
keep ids whole, and a header may be a user's text."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.text import Text

from waterflow.models import LogLine, Secret
from waterflow.output import document, show_table, table


def test_documents_are_the_models_as_plain_data() -> None:
    lines = [LogLine(job="a", step=0, at=1.5, text="hi [b]not markup[/b]")]
    expected = [{"job": "a", "step": 0, "attempt": 1, "at": 1.5, "stream": "stdout", "text": "hi [b]not markup[/b]", "kind": "log"}]
    assert json.loads(document(lines, "json")) == expected
    assert yaml.safe_load(document(lines, "yaml")) == expected
    assert json.loads(document([Secret(name="TOKEN")], "json")) == [{"name": "TOKEN"}]


def test_piped_tables_keep_long_ids_whole_and_accept_text_headers(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = "r" + "0123456789abcdef" * 8  # longer than any terminal
    shown = table("id", Text("[user] column"), "status")
    shown.add_row(run_id, "x", "succeeded")
    show_table(shown)
    out = capsys.readouterr().out
    assert any(run_id in line and "succeeded" in line for line in out.splitlines()), out
    assert "[user] column" in out
