"""Command line of the exercises: `list`, `start` and `check`.

    python -m minigrad.exercises start softmax   # copies the stub to ./exercises/softmax.py
    python -m minigrad.exercises check softmax   # checks ./exercises/softmax.py (or the packaged stub)

Learners edit their own copy, never the package's files, so an installed package
and the repository's test suite stay as shipped.

Exit status: 0 when every exercise checked passes, 1 when one fails, 3 when none
fails but one is not started yet, 2 for a usage error (unknown exercise, missing file).
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    start_parser = commands.add_parser(
        "start", help="copy an exercise's stub (or all) to a folder of yours to edit",
        description=f"Copy the stub to DIR/NAME.py (default DIR: ./{WORK_DIR}); `check NAME` then checks that copy.")
    start_parser.add_argument("name", metavar="NAME", help=f"one of: {', '.join(EXERCISES)}, or all")
    start_parser.add_argument("--dir", default=WORK_DIR, help=f"where to put your copy (default: ./{WORK_DIR})")
    check_parser = commands.add_parser(
        "check", help="check an exercise (or all)",
        description="Run the exercise on several inputs: finite differences (minigrad.gradcheck) and, where "
                    "PyTorch is installed, torch autograd. Exit 0 only when it passes.")
    check_parser.add_argument("name", metavar="NAME", help=f"one of: {', '.join(EXERCISES)}, or all")
    source = check_parser.add_mutually_exclusive_group()
    source.add_argument("--solution", action="store_true", help="check the reference solution instead of the stub")
    source.add_argument("--file", metavar="PATH", default=None,
                        help=f"check this file instead of ./{WORK_DIR}/NAME.py (your copy from `start`) or, "
                             "when there is none, the packaged stub")
    check_parser.add_argument("--no-torch", action="store_true", help="skip the comparison with PyTorch")
    return parser


WORK_DIR = "exercises"


def working_copy(name: str, folder: str = WORK_DIR) -> str:
    return os.path.join(folder, f"{name}.py")


def cmd_start(args, out) -> int:
    if args.name != "all" and args.name not in EXERCISES:
        raise UsageError(f"unknown exercise {args.name!r}; choose from: {', '.join(EXERCISES)}, or all")
    os.makedirs(args.dir, exist_ok=True)
    for name in list(EXERCISES) if args.name == "all" else [args.name]:
        target = working_copy(name, args.dir)
        if os.path.exists(target):
            print(f"{target} exists already: kept as it is", file=out)
            continue
        shutil.copyfile(stub_path(name), target)
        print(f"{target}: edit its backward, then run: python -m minigrad.exercises check {name}"
              + (f" --file {target}" if args.dir != WORK_DIR else ""), file=out)
    return EXIT_PASS


def _source(args, name):
    """What `check` reads: --solution, --file, else the learner's copy, else the stub."""
    if args.solution:
        return "solution"
    if args.file:
        return args.file
    return working_copy(name) if os.path.isfile(working_copy(name)) else "stub"


def cmd_list(out) -> int:
    width = max(len(name) for name in EXERCISES)
    print("Exercises (python -m minigrad.exercises start NAME, edit the copy, then: ... check NAME):", file=out)
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
    names = list(EXERCISES) if args.name == "all" else [args.name]
    verdicts = [check(name, _source(args, name), use_torch=not args.no_torch) for name in names]
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
        commands = {"list": lambda: cmd_list(out), "start": lambda: cmd_start(args, out),
                    "check": lambda: cmd_check(args, out)}
        return commands[args.command]()
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
