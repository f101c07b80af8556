"""Workflow commands parsed as GitHub's runner parses them (docs: "Workflow commands for GitHub
Actions"; runner ActionCommandManager): ``::name k=v,k=v::message`` with %-escapes."""

from __future__ import annotations

from waterflow_agent.commands import WorkflowCommands
from waterflow_common.secrets import Masker


def commands(debug: bool = False) -> WorkflowCommands:
    return WorkflowCommands(masker=Masker(), debug=debug)


def test_set_output_and_save_state_are_recorded_and_not_logged() -> None:
    c = commands()
    assert c.line("::set-output name=result::success") is None
    assert c.line("::set-output name=multi::line1%0Aline2%25") is None
    assert c.line("::save-state name=pid::42") is None
    assert c.outputs == {"result": "success", "multi": "line1\nline2%"} and c.state == {"pid": "42"}


def test_add_mask_hides_the_value_from_then_on_and_its_line_is_never_logged() -> None:
    c = commands()
    assert c.line("::add-mask::hunter2-secret") is None
    assert c.masker("the password is hunter2-secret") == "the password is ***"


def test_annotations_with_their_properties() -> None:
    c = commands()
    shown = c.line("::error file=app.js,line=10,col=15,endLine=12,endColumn=3,title=Bad%3A thing::Something failed")
    assert shown == ("system", "Error (app.js:10): Something failed")
    c.line("::warning::careful")
    c.line("::notice title=FYI::note")
    first, warning, notice = c.annotations
    assert (first.level, first.file, first.line, first.col, first.end_line, first.end_column, first.title) == (
        "error", "app.js", 10, 15, 12, 3, "Bad: thing")
    assert (warning.level, warning.message, notice.title) == ("warning", "careful", "FYI")


def test_debug_only_with_step_debug_and_groups_are_marked() -> None:
    assert commands().line("::debug::details") is None
    assert commands(debug=True).line("::debug::details") == ("system", "[debug] details")
    assert commands().line("::group::Build") == ("system", "▸ Build")
    assert commands().line("::endgroup::") == ("system", "◂")


def test_stop_commands_until_the_token() -> None:
    c = commands()
    assert c.line("::stop-commands::pause-123") is None
    assert c.line("::set-output name=x::y") == ("stdout", "::set-output name=x::y")
    assert c.line("::pause-123::") is None
    assert c.line("::set-output name=x::y") is None and c.outputs == {"x": "y"}


def test_set_env_and_add_path_are_refused_as_on_github() -> None:
    c = commands()
    stream, text = c.line("::set-env name=A::b")  # type: ignore[misc]
    assert stream == "system" and "disabled" in text and "$GITHUB_ENV" in text
    assert "$GITHUB_PATH" in c.line("::add-path::/tmp")[1]  # type: ignore[index]


def test_ordinary_lines_and_unknown_commands_pass_through() -> None:
    c = commands()
    assert c.line("hello") == ("stdout", "hello")
    assert c.line("::unknown::x") == ("stdout", "::unknown::x")
