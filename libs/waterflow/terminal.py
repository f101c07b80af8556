"""The CLI's two consoles (stdout, stderr), made once for every command module.

Piped or redirected output is never wrapped (``soft_wrap``): a script that greps a run id, a
path or an error must find it on one line, whatever the width rich assumes for a pipe (80).
"""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
wide = Console(highlight=False, width=100_000)
"""For tables when stdout is not a terminal: as wide as their content, whatever width rich
assumes for a pipe or COLUMNS says, so that every row stays on one line (see output.show_table)."""
