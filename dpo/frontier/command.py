"""`python -m dpo frontier`: the options of the reward–KL experiment and the command itself.

dpo/cli.py registers the subcommand (with the shared --backend/--device/--dtype/--seed
options) and calls `add_arguments` and `run` from here.
"""

from __future__ import annotations

import argparse
import math
import os


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _betas(text):
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}")
    return values


def add_arguments(parser) -> None:
    g = parser.add_argument_group("experiment")
    g.add_argument("--out", metavar="DIR", required=True,
                   help="output folder: frontier.jsonl, frontier.png, preferences.jsonl, config.json")
    g.add_argument("--quick", action="store_true", help="a small version of the sweep (about a minute)")
    g.add_argument("--steps", type=_positive_int, default=None, help="training steps of every run")
    g.add_argument("--eval-every", type=_positive_int, default=None, help="steps between evaluations")
    g.add_argument("--betas", type=_betas, default=None, metavar="B[,B...]",
                   help="the DPO runs' betas (the ipo, simpo and preferred-FT runs stay)")


def config_from_args(args):
    """The FrontierConfig the options describe: the default or quick preset, with overrides."""
    from .sweep import FrontierConfig

    changes = {}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.eval_every is not None:
        changes["eval_every"] = args.eval_every
    if args.seed is not None:
        changes["seed"] = args.seed
    base = FrontierConfig.quick() if args.quick else FrontierConfig()
    if args.betas is not None:
        others = [run for run in base.runs if run[0] != "sigmoid"]
        changes["runs"] = [("sigmoid", b) for b in args.betas] + others
    return FrontierConfig.quick(**changes) if args.quick else FrontierConfig(**changes)


def run(args, backend) -> int:
    from .plot import plot_frontier, run_label
    from .sweep import run_frontier

    config = config_from_args(args)
    rows = run_frontier(config, out_dir=args.out, backend=backend)
    png = os.path.join(args.out, "frontier.png")
    note = plot_frontier(rows, png)
    print(f"{'run':<16} {'step':>5} {'reward':>14} {'KL (nats)':>14}")
    for row in rows:
        last = row["kind"] == "reference" or (row["kind"] == "policy" and row["step"] == config.steps)
        if last:
            name = "reference" if row["kind"] == "reference" else run_label(row["loss_type"], row["beta"])
            print(f"{name:<16} {row['step']:>5} {row['reward']:>7.3f} ± {row['reward_se']:.3f} "
                  f"{row['kl']:>7.3f} ± {row['kl_se']:.3f}")
    print(note or f"wrote {os.path.join(args.out, 'frontier.jsonl')}, {png}")
    return 0
