"""The one argument parser of the ``judgeforge`` commands that read their options with argparse.

argparse's own ``error`` prints the whole usage and exits 2 from inside the parser.  Here a usage
error (an unknown option, a missing or malformed value, a bad choice) is a :class:`UserError`
like every other mistake: one line, ``judgeforge: error: data pair: the following arguments are
required: -o/--output; see 'judgeforge data pair --help'``, exit status 1, no traceback.
``--help`` is unchanged.  Subcommand parsers made with ``add_subparsers`` are of the same class
(argparse builds them with the parent's class), so they answer the same way.
"""

from __future__ import annotations

import argparse

from judgeforge.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a usage error raised as a one-line :class:`UserError`."""

    def error(self, message: str):
        where = self.prog.removeprefix("judgeforge ")
        raise UserError(f"{where}: {message}; see '{self.prog} --help'")


def parser(prog: str, description: str | None = None, **kwargs) -> ArgumentParser:
    """The parser for the command ``prog`` (e.g. ``"judgeforge sweep"``); ``kwargs`` as argparse's."""
    return ArgumentParser(prog=prog, description=description, **kwargs)
