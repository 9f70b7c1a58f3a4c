"""Command line of the exercises: `list` and `check`.

Exit status: 0 when every exercise checked passes, 1 when one fails, 3 when none
fails but one is not started yet, 2 for a usage error (unknown exercise, missing file).
"""

from __future__ import annotations

import argparse
import os
import sys

from .catalog import EXERCISES
from .checker import FAIL, NOT_STARTED, check, display_path, stub_path

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_STARTED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line input: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m minigrad.exercises",
                     description="Gradient-check exercises: write a backward, have it checked.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.add_parser("list", help="the exercises, their files and what each is about")
    check_parser = commands.add_parser(
        "check", help="check an exercise (or all)",
        description="Run the exercise on several inputs: finite differences (minigrad.gradcheck) and, where "
                    "PyTorch is installed, torch autograd. Exit 0 only when it passes.")
    check_parser.add_argument("name", metavar="NAME", help=f"one of: {', '.join(EXERCISES)}, or all")
    source = check_parser.add_mutually_exclusive_group()
    source.add_argument("--solution", action="store_true", help="check the reference solution instead of the stub")
    source.add_argument("--file", metavar="PATH", default=None,
                        help="check this file (a copy of the stub) instead of minigrad/exercises/stubs/NAME.py")
    check_parser.add_argument("--no-torch", action="store_true", help="skip the comparison with PyTorch")
    return parser


def cmd_list(out) -> int:
    width = max(len(name) for name in EXERCISES)
    print("Exercises (edit the file, then: python -m minigrad.exercises check NAME):", file=out)
    for name, exercise in EXERCISES.items():
        print(f"  {name:<{width}}  {exercise.title}", file=out)
        print(f"  {'':<{width}}  {display_path(stub_path(name))}", file=out)
    return EXIT_PASS


def cmd_check(args, out) -> int:
    if args.name != "all" and args.name not in EXERCISES:
        raise UsageError(f"unknown exercise {args.name!r}; choose from: {', '.join(EXERCISES)}, or all")
    if args.name == "all" and args.file:
        raise UsageError("--file checks one exercise: name it instead of 'all'")
    if args.file and not os.path.isfile(args.file):
        raise UsageError(f"--file: no such file: {args.file}")
    source = "solution" if args.solution else args.file or "stub"
    names = list(EXERCISES) if args.name == "all" else [args.name]
    verdicts = [check(name, source, use_torch=not args.no_torch) for name in names]
    for verdict in verdicts:
        print(verdict.text(), file=out)
    if len(verdicts) > 1:
        counts = {status: sum(v.status == status for v in verdicts) for status in ("PASS", FAIL, NOT_STARTED)}
        print(f"{counts['PASS']} passed, {counts[FAIL]} failed, {counts[NOT_STARTED]} not started "
              f"of {len(verdicts)}", file=out)
    if any(v.status == FAIL for v in verdicts):
        return EXIT_FAIL
    if any(v.status == NOT_STARTED for v in verdicts):
        return EXIT_NOT_STARTED
    return EXIT_PASS


def main(argv=None, out=None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(out)
            return EXIT_USAGE
        return cmd_list(out) if args.command == "list" else cmd_check(args, out)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
