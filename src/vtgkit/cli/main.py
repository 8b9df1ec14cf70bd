"""Entry point of the ``vtgkit`` command.

Every module in ``vtgkit.cli`` that defines ``register(subparsers)`` adds one subcommand. ``register`` sets
``func`` on its parser to a function taking the parsed ``argparse.Namespace`` and returning an exit code.
Modules are imported only to register their arguments; heavy imports (torch, av) belong inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import vtgkit
from vtgkit.errors import VTGKitError

_NOT_SUBCOMMANDS = {"main"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vtgkit",
        description="Video temporal grounding: find moments, score highlights, summarise videos.",
    )
    parser.add_argument("--version", action="version", version=f"vtgkit {vtgkit.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module("vtgkit.cli")
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
        if module_info.name.startswith("_") or module_info.name in _NOT_SUBCOMMANDS:
            continue
        module = importlib.import_module(f"vtgkit.cli.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VTGKitError as error:
        # Expected failures (bad files, bad input) get one clear line, never a traceback.
        print(f"vtgkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A missing input, a folder that cannot be written, a full disk: the message names the file or folder.
        print(f"vtgkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vtgkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
