"""The ``${{ }}`` engine must mean exactly what GitHub Actions means.

Expected values come from GitHub's documentation and actions/runner's behaviour, not from running
the engine: loose equality, case-insensitive strings and properties, operand-returning ``&&``/``||``,
``G15`` number formatting, ``*`` filters, status functions, error columns.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waterflow_common.errors import UserError
from waterflow_common.expressions import (
    ExpressionError,
    JobStatus,
    Span,
    evaluate,
    evaluate_condition,
    evaluate_value,
    find_expressions,
    is_truthy,
    parse,
    render,
    to_string,
)

CONTEXTS: dict[str, Any] = {
    "github": {
        "ref": "refs/heads/main",
        "event_name": "push",
        "event": {
            "action": "opened",
            "issue": {"title": "Bug: it breaks", "labels": [{"name": "bug"}, {"name": "Help Wanted"}]},
            "commits": [{"message": "first"}, {"message": "second"}],
        },
    },
    "steps": {
        "build": {"outcome": "success", "outputs": {"artifact": "app.tar"}},
        "test": {"outcome": "failure", "outputs": {}},
        "my-step": {"outcome": "skipped"},
    },
    "matrix": {"os": "linux", "python": 3.11},
    "Env": {"Greeting": "hello", "EMPTY": ""},
    "inputs": {"count": 3, "flag": False, "name": "mona"},
}

HEALTHY = JobStatus()
FAILED = JobStatus.from_result("failure")
CANCELLED = JobStatus.from_result("cancelled")


def typed(value: Any) -> Any:
    """``value`` with types made visible, so ``True`` never passes for ``1`` nor ``1.0`` for ``'1'``."""
    if isinstance(value, float) and math.isnan(value):
        return ("float", "NaN")
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list):
        return (type(value).__name__, [typed(item) for item in value])
    return (type(value).__name__, value)


def case(expression: str, expected: Any) -> Any:
    return pytest.param(expression, expected, id=expression)


# --- literals, operators, coercion ---------------------------------------------------------------

LITERALS = [
    case("null", None),
    case("true", True),
    case("false", False),
    case("42", 42),
    case("-7", -7),
    case("+7", 7),
    case("1.5", 1.5),
    case("1.0", 1),
    case(".5", 0.5),
    case("1e3", 1000),
    case("2E-2", 0.02),
    case("0x1F", 31),
    case("0xFFFFFFFF", -1),  # .NET parses hex as a 32-bit two's complement integer
    case("0o17", 15),
    case("NaN", math.nan),
    case("Infinity", math.inf),
    case("-Infinity", -math.inf),
    case("'Hello'", "Hello"),
    case("'it''s'", "it's"),
    case("''", ""),
    case("'${{ not an expression }}'", "${{ not an expression }}"),
]

OPERATORS = [
    # loose equality and GitHub's coercion table
    case("1 == '1'", True),
    case("null == 0", True),
    case("null == false", True),
    case("null == ''", True),
    case("'' == 0", True),
    case("true == 1", True),
    case("true == '1'", True),
    case("false == '0'", True),
    case("'true' == true", False),
    case("' 12 ' == 12", True),
    case("'0x10' == 16", True),
    case("'1.0' == 1", True),
    case("'abc' == 0", False),
    case("'abc' == 'ABC'", True),
    case("'abc' != 'ABC'", False),
    case("'abc' != 'abd'", True),
    case("NaN == NaN", False),
    case("NaN != NaN", True),
    case("1 == 1.0", True),
    case("null == null", True),
    case("fromJSON('[]') == fromJSON('[]')", False),
    case("fromJSON('{}') == null", False),
    case("github.event == github.event", True),
    case("github.event == github.EVENT", True),
    case("github.event == 'Object'", False),
    case("1 == 1 == true", True),  # left-associative: (1 == 1) == true, not Python's chaining
    case("3 > 2 > 1", False),  # (3 > 2) > 1 is true > 1 is 1 > 1
    # ordering
    case("1 < 2", True),
    case("2 <= 1", False),
    case("'a' < 'B'", True),
    case("'B' > 'a'", True),
    case("'a' <= 'A'", True),
    case("'10' < 9", False),
    case("'abc' < 1", False),
    case("'abc' >= 1", False),
    case("null < 1", True),
    case("null >= null", True),
    case("null > null", False),
    case("false < true", True),
    case("true >= true", True),
    case("fromJSON('[]') < 1", False),
    case("NaN >= NaN", False),
    case("NaN < 1", False),
    # not and truthiness
    case("!null", True),
    case("!0", True),
    case("!-0", True),
    case("!''", True),
    case("!NaN", True),
    case("!'false'", False),
    case("!'0'", False),
    case("!fromJSON('[]')", False),
    case("!fromJSON('{}')", False),
    case("!!'x'", True),
    # && and || return operands and bind && tighter
    case("'a' && 'b'", "b"),
    case("'' && 'b'", ""),
    case("0 && 'b'", 0),
    case("null || 'default'", "default"),
    case("'set' || 'default'", "set"),
    case("0 || ''", ""),
    case("NaN || 'x'", "x"),
    case("fromJSON('[]') || 'x'", []),
    case("1 && 2 && 3", 3),
    case("1 && 0 && 3", 0),
    case("false && false || true", True),
    case("true || false && false", True),
    case("(true || false) && false", False),
    case("github.ref == 'refs/heads/main' && 'main' || 'other'", "main"),
    case("github.ref == 'refs/heads/dev' && 'main' || 'other'", "other"),
    case("!true == false", True),
    case("1 == 1 && 2 == 2", True),
    case("1 < 2 == true", True),
]


@pytest.mark.parametrize(("expression", "expected"), LITERALS + OPERATORS)
def test_literals_and_operators(expression: str, expected: Any) -> None:
    assert typed(evaluate(expression, CONTEXTS)) == typed(expected)


# --- property access and filters -----------------------------------------------------------------

PROPERTIES = [
    case("github.event.action", "opened"),
    case("GITHUB.Event.ACTION", "opened"),
    case("env.greeting", "hello"),
    case("ENV.GREETING", "hello"),
    case("github['event']['action']", "opened"),
    case("github['EVENT'].action", "opened"),
    case("(github).event.action", "opened"),
    case("github.event.issue.labels[1].name", "Help Wanted"),
    case("github.event.issue.labels['1'].name", "Help Wanted"),
    case("github.event.issue.labels[1.9].name", "Help Wanted"),
    case("github.event.issue.labels[true].name", "Help Wanted"),
    case("github.event.issue.labels[5].name", None),
    case("github.event.issue.labels[-1]", None),
    case("github.event.issue.labels.name", None),
    case("github.nope", None),
    case("github.nope.deeper.still", None),
    case("github.ref.length", None),
    case("nosuchcontext.x", None),
    case("steps.my-step.outcome", "skipped"),
    case("inputs[format('{0}', 'name')]", "mona"),
    case("fromJSON('{\"a\":1}').a", 1),
    case("fromJSON('{\"A\":{\"b\":[10,20]}}').a.B[1]", 20),
    # filters
    case("github.event.issue.labels.*.name", ["bug", "Help Wanted"]),
    case("github.event.issue.labels[*].name", ["bug", "Help Wanted"]),
    case("github.event.issue.labels.*.*", ["bug", "Help Wanted"]),
    case("steps.*.outcome", ["success", "failure", "skipped"]),
    case("steps.*.outputs.artifact", ["app.tar"]),
    case("steps.*.nothing", []),
    case("steps.*[0]", []),
    case("matrix.*", ["linux", 3.11]),
    case("github.nope.*", []),
    case("github.ref.*", []),
    case("fromJSON('[[1,2],[3]]').*[0]", [1, 3]),
    case("fromJSON('[[1,2],[3]]')[1]", [3]),
    case("join(github.event.issue.labels.*.name, ', ')", "bug, Help Wanted"),
    case("contains(github.event.issue.labels.*.name, 'bug')", True),
    case("contains(github.event.issue.labels.*.name, 'HELP WANTED')", True),
    case("contains(steps.*.outcome, 'cancelled')", False),
]


@pytest.mark.parametrize(("expression", "expected"), PROPERTIES)
def test_property_access(expression: str, expected: Any) -> None:
    assert typed(evaluate(expression, CONTEXTS)) == typed(expected)


def test_results_are_plain_lists_and_context_objects_are_returned_as_is() -> None:
    assert type(evaluate("steps.*.outcome", CONTEXTS)) is list
    assert evaluate("github.event", CONTEXTS) is CONTEXTS["github"]["event"]


# --- functions -----------------------------------------------------------------------------------

FUNCTIONS = [
    case("contains('Hello world', 'llo')", True),
    case("contains('Hello world', 'LLO W')", True),
    case("contains('Hello world', 'xyz')", False),
    case("contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)", True),
    case("contains(fromJSON('[1, 2]'), '2')", True),
    case("contains(fromJSON('[\"a\"]'), 'A')", True),
    case("contains(fromJSON('[[1]]'), 1)", False),
    case("contains(github.event, 'action')", False),
    case("contains(null, '')", True),
    case("contains(1234, 23)", True),
    case("contains('true', true)", True),
    case("contains('abc', fromJSON('[]'))", False),
    case("startsWith('Hello world', 'he')", True),
    case("startsWith('Hello world', 'world')", False),
    case("startsWith(fromJSON('[1]'), 1)", False),
    case("startsWith(12, 1)", True),
    case("endsWith('Hello world', 'LD')", True),
    case("endsWith('Hello world', 'Hello')", False),
    case("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
    case("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
    case("format('{1}{0}{1}', 'a', 'b')", "bab"),
    case("format('{00}', 'a')", "a"),
    case("format('{0}|{1}|{2}|{3}', null, true, 3.0, 0.5)", "|true|3|0.5"),
    case("format('{0}/{1}', fromJSON('[]'), github.event)", "Array/Object"),
    case("format('{{0}}', 'x')", "{0}"),
    case("format('}}{{')", "}{"),
    case("format('no placeholders')", "no placeholders"),
    case("join(fromJSON('[1, \"a\", null, true]'))", "1,a,,true"),
    case("join(fromJSON('[\"a\", \"b\"]'), '-')", "a-b"),
    case("join(fromJSON('[\"a\", \"b\"]'), fromJSON('[]'))", "a,b"),
    case("join(fromJSON('[[1], {}]'))", "Array,Object"),
    case("join(fromJSON('[]'), '-')", ""),
    case("join('abc', '-')", "abc"),
    case("join(github.event)", ""),
    case("toJSON(1.0)", "1"),
    case("toJSON(0.1)", "0.1"),
    case("toJSON(null)", "null"),
    case("toJSON(true)", "true"),
    case("toJSON('say \"hi\"')", '"say \\"hi\\""'),
    case("toJSON(fromJSON('[]'))", "[]"),
    case("toJSON(github.event.issue.labels[0])", '{\n  "name": "bug"\n}'),
    case(
        "toJSON(fromJSON('{\"a\":[1,{\"b\":null}],\"c\":{}}'))",
        '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "c": {}\n}',
    ),
    case("toJSON(matrix)", '{\n  "os": "linux",\n  "python": 3.11\n}'),
    case("fromJSON('true')", True),
    case("fromJSON('null')", None),
    case("fromJSON('\"x\"')", "x"),
    case("fromJSON('1.5')", 1.5),
    case("fromJSON(' 7 ')", 7),
    case("fromJSON('[1, 2]')", [1, 2]),
    case("fromJSON(toJSON(github.event.issue.labels))", [{"name": "bug"}, {"name": "Help Wanted"}]),
    case("fromJSON(inputs.count)", 3),
    # function names ignore case
    case("CONTAINS('abc', 'B')", True),
    case("ToJson(1)", "1"),
    case("fromjson('2')", 2),
    case("STARTSWITH('abc', 'A')", True),
]


@pytest.mark.parametrize(("expression", "expected"), FUNCTIONS)
def test_functions(expression: str, expected: Any) -> None:
    assert typed(evaluate(expression, CONTEXTS)) == typed(expected)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "true false false true"),
        (HEALTHY, "true false false true"),
        (FAILED, "false true false true"),
        (CANCELLED, "false false true true"),
        ({"success": False, "failure": True}, "false true false true"),
    ],
)
def test_status_functions(status: Any, expected: str) -> None:
    text = "format('{0} {1} {2} {3}', success(), failure(), cancelled(), always())"
    assert evaluate(text, {}, status=status) == expected


def test_status_of_the_wrong_shape_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        evaluate("success()", {}, status="success")
    with pytest.raises(TypeError):
        evaluate("success()", {}, status={"succeeded": True})
    with pytest.raises(ValueError):
        JobStatus.from_result("skipped")  # type: ignore[arg-type]


def test_hash_files_is_delegated_to_the_caller() -> None:
    calls: list[list[str]] = []

    def fake_hash(patterns: list[str]) -> str:
        calls.append(patterns)
        return "d41d8cd9"

    result = evaluate("hashFiles('**/package-lock.json', '!x', 1)", {}, hash_files=fake_hash)
    assert result == "d41d8cd9"
    assert calls == [["**/package-lock.json", "!x", "1"]]


def test_hash_files_without_a_workspace_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="only available on the agent") as raised:
        evaluate("github.ref && hashFiles('x')", CONTEXTS)
    assert raised.value.column == 14


@pytest.mark.parametrize(
    "expression",
    [
        "false && hashFiles('x')",
        "true || hashFiles('x')",
        "null && fromJSON('{')",
        "'x' || format('{9}')",
        "1 == 2 && 3 == 3 && hashFiles('x')",
        "github.nope[hashFiles('x')]",  # GitHub does not evaluate the index of a non-collection
    ],
)
def test_short_circuit_never_evaluates_the_other_side(expression: str) -> None:
    evaluate(expression, CONTEXTS)


@pytest.mark.parametrize(
    "expression", ["true && hashFiles('x')", "false || hashFiles('x')", "github.event[hashFiles('x')]"]
)
def test_the_other_side_is_evaluated_when_needed(expression: str) -> None:
    with pytest.raises(ExpressionError, match="hashFiles"):
        evaluate(expression, CONTEXTS)


# --- errors and their columns --------------------------------------------------------------------

PARSE_ERRORS = [
    ("a == b )", "unexpected token ')'", 7),
    ("foo(1)", "unknown function 'foo'", 0),
    ("github.ref == foo(1)", "unknown function 'foo'", 14),
    ("contains('a'", "expected ',' or ')'", 12),
    ("contains('a' 'b')", "expected ',' or ')' but found ''b''", 13),
    ("(1 == 1", "expected ')'", 7),
    ("'abc", "unterminated string literal", 0),
    ("a == 'x", "unterminated string literal", 5),
    ("a ==", "unexpected end of expression", 4),
    ("!", "unexpected end of expression", 1),
    ("a.", "expected a property name or '*' after '.'", 2),
    ("a.1", "expected a property name or '*' after '.' but found '1'", 2),
    ("a[*", "expected ']'", 3),
    ("github.event[", "unexpected end of expression", 13),
    ("contains(1)", "contains() takes exactly 2 arguments, got 1", 0),
    ("success(1)", "success() takes no arguments, got 1", 0),
    ("join(1, 2, 3)", "join() takes 1 to 2 arguments, got 3", 0),
    ("join(1,)", "unexpected token ')'", 7),
    ('"x"', "unexpected token '\"x\"'", 0),
    ("a = b", "unexpected token '='", 2),
    ("a & b", "unexpected token '&'", 2),
    ("a b", "unexpected token 'b'", 2),
    ("a !b", "unexpected token '!'", 2),
    ("*", "unexpected token '*'", 0),
    ("()", "unexpected token ')'", 1),
    ("'a'.length", "unexpected token '.'", 3),
    ("'a'[0]", "unexpected token '['", 3),
    ("1abc", "invalid number '1abc'", 0),
    ("- 1", "invalid number '-'", 0),
    ("1.2.3", "invalid number '1.2.3'", 0),
    ("", "expected an expression", 0),
    ("   ", "expected an expression", 3),
    ("x" * 21_001, "expression is longer than 21000 characters", 21_000),
    ("(" * 60 + "a" + ")" * 60, "nests deeper than 50 levels", 50),
    ("!" * 50 + "true", "nests deeper than 50 levels", 50),
    ("a" + ".b" * 60, "nests deeper than 50 levels", None),
]


@pytest.mark.parametrize(("expression", "message", "column"), PARSE_ERRORS, ids=[row[0][:30] for row in PARSE_ERRORS])
def test_parse_errors_say_what_and_where(expression: str, message: str, column: int | None) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse(expression)
    assert message in raised.value.message
    if column is not None:
        assert raised.value.column == column
        assert str(raised.value).endswith(f"at column {column}")


def test_expression_errors_are_user_errors() -> None:
    assert issubclass(ExpressionError, UserError)


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert evaluate("!" * 49 + "true", {}) is False
    assert evaluate("(" * 45 + "1" + ")" * 45, {}) == 1


EVALUATION_ERRORS = [
    ("format('{1}', 'a')", "references argument {1} but only 1 argument(s)", 0),
    ("github.ref == format('{', 1)", "invalid format string", 14),
    ("format('}', 1)", "invalid format string", 0),
    ("format('{x}', 1)", "invalid format string", 0),
    ("format('{0:d}', 1)", "format specifiers are not supported", 0),
    ("format('{256}', 1)", "invalid format string", 0),
    ("toJSON(fromJSON('{'))", "fromJSON(): invalid JSON", 7),
    ("fromJSON('')", "fromJSON(): invalid JSON", 0),
    ("fromJSON('" + "[" * 100 + "]" * 100 + "')", "nests deeper than 64 levels", 0),
    ("fromJSON('" + "[" * 10_000 + "')", "fromJSON()", 0),
]


@pytest.mark.parametrize(
    ("expression", "message", "column"), EVALUATION_ERRORS, ids=[row[0][:30] for row in EVALUATION_ERRORS]
)
def test_evaluation_errors_say_what_and_where(expression: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate(expression, CONTEXTS)
    assert message in raised.value.message
    assert raised.value.column == column


def test_allowed_contexts_reject_unknown_names_case_insensitively() -> None:
    allowed = {"github", "env"}
    assert parse("GitHub.ref == env.X", allowed_contexts=allowed).context_references() == {"github.ref", "env.X"}
    with pytest.raises(ExpressionError, match="unknown context 'secret'") as raised:
        parse("github.ref == secret.TOKEN", allowed_contexts=allowed)
    assert raised.value.column == 14
    assert parse("secret.TOKEN").evaluate({}) is None  # without the list, unknown is null


# --- sandbox and limits --------------------------------------------------------------------------


def test_no_python_attribute_or_function_is_reachable() -> None:
    assert evaluate("x.keys", {"x": {"a": 1}}) is None
    assert evaluate("x.__class__", {"x": {}}) is None
    assert evaluate("toJSON == null", {}) is True  # a function name is not a value
    with pytest.raises(ExpressionError, match="unsupported value") as raised:
        evaluate("1 == x.__class__", {"x": object()})
    assert raised.value.column == 6


def test_strings_built_by_evaluation_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="exceeds"):
        evaluate("format('{0}{0}{0}{0}{0}', x)", {"x": "a" * 1_000_000})
    with pytest.raises(ExpressionError, match="exceeds"):
        evaluate("join(x, x[0])", {"x": ["a" * 1_000_000] * 3})


def test_cyclic_values_are_an_error_not_a_crash() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ExpressionError):
        evaluate("toJSON(x)", {"x": cyclic})


# --- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "references"),
    [
        ("inputs.name", {"inputs.name"}),
        ("steps.build.outputs.x == secrets.TOKEN", {"steps.build.outputs.x", "secrets.TOKEN"}),
        ("Secrets.Token", {"secrets.Token"}),
        ("github.event.issue.labels.*.name", {"github.event.issue.labels.*.name"}),
        ("github.event.commits[0].message", {"github.event.commits[0].message"}),
        ("inputs['name']", {"inputs.name"}),
        ("inputs['a b']", {"inputs['a b']"}),
        ("matrix[inputs.key].value", {"matrix", "inputs.key"}),
        ("contains(toJSON(github.event), env.X) && success()", {"github.event", "env.X"}),
        ("fromJSON(env.JSON).a.b", {"env.JSON"}),
        ("steps.my-step.outputs.v", {"steps.my-step.outputs.v"}),
        ("!(github)", {"github"}),
        ("1 == 1", set()),
    ],
)
def test_context_references(expression: str, references: set[str]) -> None:
    assert parse(expression).context_references() == references


def test_function_names_and_status_detection() -> None:
    expression = parse("success() && hashFiles('a') || CONTAINS('a', 'b')")
    assert expression.function_names() == {"success", "hashfiles", "contains"}
    assert expression.uses_status_function()
    assert not parse("contains('a', 'b')").uses_status_function()


# --- templates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "spans"),
    [
        ("no expressions", []),
        ("${{ a }}", [Span(0, 8, " a ")]),
        ("x ${{a}}y${{ b }}", [Span(2, 8, "a"), Span(9, 17, " b ")]),
        ("${{ '}}' }}", [Span(0, 11, " '}}' ")]),
        ("${{ 'it''s' }}", [Span(0, 14, " 'it''s' ")]),
        ("${{}}", [Span(0, 5, "")]),
        ("$${{ a }}", [Span(1, 9, " a ")]),
        ("${{ a }}}", [Span(0, 8, " a ")]),
        ("${ { a }}", []),
    ],
)
def test_find_expressions(template: str, spans: list[Span]) -> None:
    assert find_expressions(template) == spans


@pytest.mark.parametrize(
    ("template", "column"), [("echo ${{ a", 5), ("${{ 'a }}", 0), ("ok ${{ a }} ${{ b", 12), ("${{", 0)]
)
def test_unterminated_expression_is_an_error_at_its_start(template: str, column: int) -> None:
    with pytest.raises(ExpressionError, match="unterminated expression") as raised:
        find_expressions(template)
    assert raised.value.column == column


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("echo ${{ inputs.name }}", "echo mona"),
        ("${{ null }}|${{ true }}|${{ false }}", "|true|false"),
        ("${{ 3.0 }} ${{ 0.5 }} ${{ 1e20 }} ${{ 0.1 + 0.2 == 0.3 }}", None),  # '+' is no operator
        ("${{ 3.0 }} ${{ 0.5 }} ${{ 1e20 }} ${{ 123456789012345 }}", "3 0.5 1E+20 123456789012345"),
        ("${{ fromJSON('[1, 2]') }}", "[\n  1,\n  2\n]"),
        ("${{ matrix }}", '{\n  "os": "linux",\n  "python": 3.11\n}'),
        ("${{ steps.*.outcome }}", '[\n  "success",\n  "failure",\n  "skipped"\n]'),
        ("a ${{ '}}' }} b", "a }} b"),
        ("no ${ { expressions }}", "no ${ { expressions }}"),
        ("${{ failure() }}", "false"),
    ],
)
def test_render(template: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ExpressionError):
            render(template, CONTEXTS)
    else:
        assert render(template, CONTEXTS) == expected


def test_render_reports_columns_in_the_template() -> None:
    with pytest.raises(ExpressionError, match="unexpected end of expression") as raised:
        render("echo ${{ 1 == }}", {})
    assert raised.value.column == 14
    with pytest.raises(ExpressionError, match="invalid JSON") as raised:
        render("x ${{ fromJSON('{') }}", {})
    assert raised.value.column == 6


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${{ inputs.count }}", 3),
        ("${{ inputs.flag }}", False),
        ("${{ fromJSON('[1, 2]') }}", [1, 2]),
        ("${{ steps.*.outcome }}", ["success", "failure", "skipped"]),
        ("${{ github.nope }}", None),
        ("count: ${{ inputs.count }}", "count: 3"),
        (" ${{ inputs.count }}", " 3"),
        ("${{ inputs.count }}${{ inputs.count }}", "33"),
        ("plain", "plain"),
        (5, 5),
        (None, None),
        (True, True),
        ({"a": "${{ inputs.count }}", "b": ["${{ inputs.name }}", "x"]}, {"a": 3, "b": ["mona", "x"]}),
    ],
)
def test_evaluate_value(value: Any, expected: Any) -> None:
    assert typed(evaluate_value(value, CONTEXTS)) == typed(expected)


@pytest.mark.parametrize(
    ("condition", "status", "expected"),
    [
        ("", HEALTHY, True),
        ("", FAILED, False),
        (None, FAILED, False),
        ("github.ref == 'refs/heads/main'", HEALTHY, True),
        ("github.ref == 'refs/heads/main'", FAILED, False),  # implicit success() &&
        ("${{ github.ref == 'refs/heads/main' }}", HEALTHY, True),
        ("${{ github.ref == 'refs/heads/dev' }}", HEALTHY, False),
        ("always()", FAILED, True),
        ("failure()", FAILED, True),
        ("failure()", HEALTHY, False),
        ("success() || failure()", FAILED, True),
        ("cancelled()", CANCELLED, True),
        ("!cancelled()", CANCELLED, False),
        ("${{ failure() && steps.test.outcome == 'failure' }}", FAILED, True),
        ("${{ false }} && true", HEALTHY, True),  # GitHub: mixed text is a non-empty string
        ("${{ false }} && true", FAILED, False),
        ("${{ '' }}${{ '' }}", HEALTHY, False),
        (True, HEALTHY, True),
        (False, HEALTHY, False),
        (0, HEALTHY, False),
        ("steps.build.outputs.artifact", HEALTHY, True),
        ("env.EMPTY", HEALTHY, False),
        ("inputs.flag", HEALTHY, False),
        ("fromJSON('[]')", HEALTHY, True),
        ("failure()", {"success": False, "failure": True}, True),
    ],
)
def test_evaluate_condition(condition: Any, status: Any, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXTS, status=status) is expected


def test_evaluate_condition_errors_point_into_the_condition() -> None:
    with pytest.raises(ExpressionError, match="expected an expression") as raised:
        evaluate_condition("${{ }}", {})
    assert raised.value.column == 4
    with pytest.raises(ExpressionError, match="unknown function") as raised:
        evaluate_condition("a && nope()", {})
    assert raised.value.column == 5


# --- string conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (3.0, "3"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.3"),
        (123456789012345, "123456789012345"),
        (1e15, "1E+15"),
        (1e-5, "1E-05"),
        (0.0001, "0.0001"),
        (2**70, "1.18059162071741E+21"),
        (10**400, "Infinity"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ("text", "text"),
        ([1, "a"], '[\n  1,\n  "a"\n]'),
        ({}, "{}"),
    ],
)
def test_to_string(value: Any, text: str) -> None:
    assert to_string(value) == text


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (-0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        (-1, True),
        ("false", True),
        ([], True),
        ({}, True),
    ],
)
def test_is_truthy(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


# --- properties ----------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TOKENS = [
    "github", "steps", "matrix", "x", "event", "outcome", "name", "a",
    ".", "*", "[", "]", "(", ")", ",", "!", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "'", "''",
    "'a'", "'{0}'", "'{'", "'[1,{}]'", "'{\"a\":1}'", "1", "0x1", "-1", ".5", "1e400", "null", "true", "NaN",
    "contains", "format", "join", "toJSON", "fromJSON", "success", "hashFiles", "startsWith", " ", "${{", "}}",
]  # fmt: skip
token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
any_text = st.text(max_size=60) | token_soup
primitives = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "1", " 2 ", "0x10", "abc", "ABC", "TRUE", "NaN", "Infinity", "-0"])
    | st.text(max_size=4)
)
FUZZ_CONTEXTS = {**CONTEXTS, "x": {"event": [1, {"name": None}], "outcome": "a"}, "a": [[1], {"A": 2}]}


@FUZZ
@given(any_text)
def test_parse_and_evaluate_only_ever_raise_expression_error(text: str) -> None:
    try:
        expression = parse(text)
        expression.context_references()
        to_string(expression.evaluate(FUZZ_CONTEXTS, status=FAILED, hash_files=lambda patterns: "h"))
    except ExpressionError as error:
        assert error.column is None or 0 <= error.column <= max(len(text), 21_000)


OPERANDS = [
    "null", "true", "0", "1.5", "-1", "NaN", "'a'", "''", "'{0}'", "'[1,{\"a\":2}]'", "'{\"a\":[]}'",
    "github", "x", "x.event", "steps.*", "a", "a[0]", "a.*.*", "x.*.name", "matrix.*", "nothing.*",
]  # fmt: skip
BINARY = ["==", "!=", "<", "<=", ">", ">=", "&&", "||"]
UNARY_FUNCTIONS = ["toJSON", "fromJSON", "join", "format"]
BINARY_FUNCTIONS = ["contains", "startsWith", "endsWith", "join", "format"]


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("({} {} {})".format, children, st.sampled_from(BINARY), children),
        st.builds("!{}".format, children),
        st.builds("{}({})".format, st.sampled_from(UNARY_FUNCTIONS), children),
        st.builds("{}({}, {})".format, st.sampled_from(BINARY_FUNCTIONS), children, children),
        st.builds("({})[{}]".format, children, children),
        st.builds("({}).*".format, children),
        st.builds("({}).name".format, children),
    )


valid_expressions = st.recursive(st.sampled_from(OPERANDS), _compose, max_leaves=10)


@FUZZ
@given(valid_expressions)
def test_valid_expressions_evaluate_to_plain_data_or_expression_error(text: str) -> None:
    expression = parse(text)  # the grammar only builds valid expressions: parsing must succeed
    try:
        result = expression.evaluate(FUZZ_CONTEXTS)
    except ExpressionError as error:
        assert error.column is not None
        assert 0 <= error.column < len(text)
        return
    assert type(result) in (type(None), bool, int, float, str, list, dict)
    assert isinstance(to_string(result), str)


@FUZZ
@given(any_text)
def test_templates_only_ever_raise_expression_error(text: str) -> None:
    for operation in (
        lambda: find_expressions(text),
        lambda: render(text, FUZZ_CONTEXTS),
        lambda: evaluate_value(text, FUZZ_CONTEXTS),
        lambda: evaluate_condition(text, FUZZ_CONTEXTS),
    ):
        try:
            operation()
        except ExpressionError as error:
            assert error.column is None or 0 <= error.column <= len(text)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=60).filter(lambda text: "${{" not in text))
def test_text_without_expressions_renders_unchanged(text: str) -> None:
    assert render(text, {}) == text
    assert evaluate_value(text, {}) == text


@settings(max_examples=300, deadline=None, database=None)
@given(primitives, primitives)
def test_comparisons_are_consistent(left: Any, right: Any) -> None:
    values = {"l": left, "r": right}
    equal = evaluate("l == r", values)
    assert evaluate("r == l", values) is equal
    assert evaluate("l != r", values) is (not equal)
    less, greater = evaluate("l < r", values), evaluate("l > r", values)
    assert not (less and greater)
    assert evaluate("r > l", values) is less
    assert evaluate("l <= r", values) is (less or equal)
    assert evaluate("l >= r", values) is (greater or equal)


@settings(max_examples=200, deadline=None, database=None)
@given(primitives)
def test_not_not_is_truthiness(value: Any) -> None:
    assert evaluate("!!v", {"v": value}) is is_truthy(value)
    assert evaluate_condition("v", {"v": value}) is is_truthy(value)


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(-(10**15) + 1, 10**15 - 1))
def test_integral_numbers_print_without_decimals(number: int) -> None:
    assert to_string(number) == str(number)
    assert to_string(float(number)) == str(number)
    assert evaluate(str(number), {}) == number


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet="abcXYZ_-019 ", max_size=12))
def test_string_equality_ignores_case(text: str) -> None:
    values = {"a": text, "b": text.swapcase()}
    assert evaluate("a == b", values) is True
    assert evaluate("contains(a, b)", values) is True
    assert evaluate("format('{0}', a)", values) == text


# case(): GitHub's newest function (actions/languageservices expressions, "case( pred1, val1, ...,
# default )"): the value of the first true predicate, else the last argument; predicates are booleans.
@pytest.mark.parametrize("expression, expected", [
    ("case(true, 'first', 'default')", "first"),
    ("case(false, 'first', 'default')", "default"),
    ("case(false, 'first', true, 'second', 'default')", "second"),
    ("case(false, 'first', false, 'second', 'default')", "default"),
    ("case(1 == 1, 'equal', 'not equal')", "equal"),
    ("case(github.ref == 'refs/heads/main', 'main', github.event_name == 'pull_request', 'pr', 'other')", "other"),
])
def test_case_function(expression: str, expected: str) -> None:
    contexts = {"github": {"ref": "refs/heads/dev", "event_name": "push"}}
    assert evaluate_value("${{ " + expression + " }}", contexts) == expected


@pytest.mark.parametrize("expression, message", [
    ("case(true, 'a')", "takes 3 to 255 arguments"),
    ("case(true, 'a', false, 'b')", "odd number of arguments"),
    ("case('yes', 'a', 'b')", "predicate 1 must be a boolean"),
])
def test_case_function_errors(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate_value("${{ " + expression + " }}", {})


def test_an_empty_expression_is_null_as_on_github() -> None:
    # GitHub: "${{ }}" evaluates to null (an empty string when rendered into text).
    assert evaluate_value("${{ }}", {}) is None
    assert evaluate_value("a${{ }}b", {}) == "ab"


@pytest.mark.parametrize("expression, expected", [
    ("'ı' == 'I'", False),          # dotless i: not folded into ASCII (.NET OrdinalIgnoreCase)
    ("'ſ' == 'S'", False),          # long s, likewise
    ("'é' == 'É'", True),           # ordinary one-to-one case pairs still compare equal
    ("'straße' == 'STRASSE'", False),  # no multi-character folding
    ("startsWith('Ärger', 'ä')", True),
    ("contains('ıi', 'I')", True),  # the 'i' matches, the 'ı' would not
])
def test_unicode_comparisons_use_ordinal_ignore_case(expression: str, expected: bool) -> None:
    assert evaluate_value("${{ " + expression + " }}", {}) is expected
