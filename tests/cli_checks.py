"""The hostile-input suites' one check of a user mistake through the CLI, in process."""

from __future__ import annotations

import re

from judgeforge.cli import main


def one_line_failure(capsys, argv: list, match: str) -> str:
    """Run the CLI in process: exit 1, no traceback, exactly one stderr line 'judgeforge: error: ...'
    that matches ``match``; returns that line."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("judgeforge: error: "), err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]
