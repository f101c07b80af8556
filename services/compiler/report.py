"""The collector every compiler check writes into: one place that turns a YAML path into a
positioned :class:`~waterflow_common.diagnostics.Diagnostic`.

Checks never raise for a user's mistake; they call :meth:`Report.error` or :meth:`Report.warning`
and carry on, so one compile shows every problem (as actionlint does).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from waterflow_common.diagnostics import Diagnostic, Severity, has_errors, sort_key

from .yaml_source import Path, Positions, dotted


class Report:
    """Diagnostics of one file, positioned through the file's :class:`Positions`."""

    def __init__(self, filename: str, positions: Positions) -> None:
        self.filename = filename
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []

    def add(self, path: Path, rule: str, message: str, hint: str | None = None, *,
            key: bool = False, at: tuple[int, int] | None = None, severity: Severity = "error") -> None:
        """Record a problem at ``path`` (its key when ``key``, else its value, or exactly ``at``)."""
        line, col = at or (self.positions.of_key(path) if key else self.positions.of_value(path))
        self.diagnostics.append(Diagnostic(
            path=self.filename, line=line, col=col, rule=rule, message=message, hint=hint,
            key=dotted(path) or None, severity=severity,
        ))

    def error(self, path: Path, rule: str, message: str, hint: str | None = None, *,
              key: bool = False, at: tuple[int, int] | None = None) -> None:
        self.add(path, rule, message, hint, key=key, at=at)

    def warning(self, path: Path, rule: str, message: str, hint: str | None = None, *,
                key: bool = False, at: tuple[int, int] | None = None) -> None:
        self.add(path, rule, message, hint, key=key, at=at, severity="warning")

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics.extend(diagnostics)

    @property
    def failed(self) -> bool:
        return bool(has_errors(self.diagnostics))

    def sorted(self) -> list[Diagnostic]:
        """Every diagnostic once, in file order."""
        unique = {(d.line, d.col, d.rule, d.message): d for d in self.diagnostics}
        return sorted(unique.values(), key=sort_key)


def did_you_mean(name: str, candidates: Iterable[str], *, listing: str = "expected one of") -> str | None:
    """``did you mean 'x'?`` for the closest candidate, else the list of candidates (or None)."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not close:
        lowered = {option.lower(): option for option in options}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return f"did you mean {close[0]!r}?"
    if options:
        shown = ", ".join(options[:20]) + (", …" if len(options) > 20 else "")
        return f"{listing}: {shown}"
    return None
