"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (a bad recipe key, a missing file, a
malformed row).  The CLI prints its message as one line and exits 1, with no traceback.
Messages say what is wrong, where (file, row, field) and how to fix it.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix. ``str(err)`` is the one line the CLI prints."""

    def __init__(self, message: str, *, lines: list[str] | None = None, exit_code: int = 1):
        super().__init__(message)
        self.lines = list(lines or [])  # extra lines (e.g. one per bad row in a validation report)
        self.exit_code = exit_code


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def run_command(module: str, argv: list[str]) -> int:
    """Run ``module.main(argv)`` as a command: a :class:`UserError` becomes one line on stderr and
    its exit status, Ctrl-C 130, a closed pipe 0.  The dispatcher and the launchers use it."""
    import importlib
    import os
    import sys

    try:
        mod = importlib.import_module(module)
        code = mod.main(argv)
        return int(code or 0)
    except UserError as e:
        print(f"judgeforge: error: {e}", file=sys.stderr)
        for line in e.lines:
            print(line, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("judgeforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `judgeforge data show ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
