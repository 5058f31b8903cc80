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
        import re

        m = re.fullmatch(r"argument (\S+): expected one argument", message)
        if m:  # argparse takes '--weights -0.5,1.5' for two options: say how to pass a value starting with '-'
            flag = m.group(1).split("/")[-1]
            message += f" (a value that starts with '-' goes after '=': {flag}=-0.5)"
        raise UserError(f"{where}: {message}; see '{self.prog} --help'")


def parser(prog: str, description: str | None = None, **kwargs) -> ArgumentParser:
    """The parser for the command ``prog`` (e.g. ``"judgeforge sweep"``); ``kwargs`` as argparse's."""
    return ArgumentParser(prog=prog, description=description, **kwargs)


# --------------------------------------------------------------------------- options declared once

_TYPES = {"int": int, "float": float, "str": str}


def option(default, help: str | None = None, *flags: str):
    """A dataclass field that is also a command-line option (declared once: name, type, default, help).

    The flags default to ``--the-field-name``; ``help`` may hold ``{default}``."""
    from dataclasses import field

    return field(default=default, metadata={"cli": (flags, help)})


def add_options(p: argparse.ArgumentParser, cls) -> None:
    """Add every :func:`option` field of the dataclass ``cls`` to ``p`` (``dest`` = the field name)."""
    import dataclasses

    for f in dataclasses.fields(cls):
        if "cli" not in f.metadata:
            continue
        flags, help_ = f.metadata["cli"]
        flags = flags or ("--" + f.name.replace("_", "-"),)
        kind = _TYPES[f.type if isinstance(f.type, str) else f.type.__name__]
        metavar = next(x for x in flags if x.startswith("--"))[2:].replace("-", "_").upper()
        p.add_argument(*flags, dest=f.name, type=kind, default=f.default, metavar=metavar,
                       help=help_.format(default=f.default) if help_ else None)


def options_of(args: argparse.Namespace, cls) -> dict:
    """The :func:`option` fields' values from parsed ``args``, as keyword arguments of ``cls``."""
    import dataclasses

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if "cli" in f.metadata}
