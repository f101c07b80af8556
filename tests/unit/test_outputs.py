import pytest

from waterflow_agent.outputs import OutputFileError, parse_output_file


def test_simple_and_multiline_outputs() -> None:
    text = "a=1\nb=x=y\n\nreport<<EOF\nline 1\nline 2\nEOF\na=2\n"
    assert parse_output_file(text) == {"a": "2", "b": "x=y", "report": "line 1\nline 2"}


@pytest.mark.parametrize("text", ["novalue\n", "k<<EOF\nnever closed\n", "=v\n"])
def test_malformed_outputs_are_errors(text: str) -> None:
    with pytest.raises(OutputFileError):
        parse_output_file(text)
