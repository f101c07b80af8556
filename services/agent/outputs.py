"""Step outputs the GitHub way: ``echo "key=value" >> "$WATERFLOW_OUTPUT"``.

Also the multi-line form::

    {
      echo 'report<<EOF'
      cat report.txt
      echo 'EOF'
    } >> "$WATERFLOW_OUTPUT"

``$GITHUB_OUTPUT`` points to the same file so scripts copied from GitHub workflows work unchanged.
"""

from __future__ import annotations

MAX_OUTPUT_BYTES = 1024 * 1024


class OutputFileError(ValueError):
    """The output file is malformed (e.g. an unterminated ``<<DELIMITER`` block)."""


def parse_output_file(text: str) -> dict[str, str]:
    """Parse the key/value file a step wrote; later keys win, as in GitHub."""
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise OutputFileError(f"step outputs exceed {MAX_OUTPUT_BYTES} bytes")
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc != -1 and (eq == -1 or heredoc < eq):
            key, delimiter = line[:heredoc].strip(), line[heredoc + 2:].strip()
            if not key or not delimiter:
                raise OutputFileError(f"invalid output line {line!r}")
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise OutputFileError(f"output {key!r}: delimiter {delimiter!r} not found")
            i += 1
            values[key] = "\n".join(body)
        elif eq > 0:
            values[line[:eq].strip()] = line[eq + 1:]
        else:
            raise OutputFileError(f"invalid output line {line!r}: expected 'name=value' or 'name<<DELIMITER'")
    return values
