"""The one error type of the expression engine."""

from __future__ import annotations

from waterflow_common.errors import UserError


class ExpressionError(UserError):
    """A ``${{ }}`` expression (or a template holding some) cannot be parsed or evaluated.

    ``column`` is the **0-based** offset of the culprit inside the text given to the public function
    that raised: the expression text for :func:`parse`/:func:`evaluate`, the whole template for
    :func:`find_expressions`, :func:`render`, :func:`evaluate_value` and :func:`evaluate_condition`.
    It is ``None`` only when no single place is to blame.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} at column {column}")
        self.message = message
        self.column = column

    def __reduce__(self) -> tuple[type[ExpressionError], tuple[str, int | None]]:
        return type(self), (self.message, self.column)

    def with_default_column(self, column: int) -> ExpressionError:
        """This error, placed at ``column`` unless it already knows its place."""
        return self if self.column is not None else ExpressionError(self.message, column)

    def shifted(self, offset: int, *, default: int | None) -> ExpressionError:
        """This error with its column moved by ``offset`` (``default`` when it had none)."""
        column = default if self.column is None else self.column + offset
        return ExpressionError(self.message, column)
