"""`python -m benchmarks` (or `make bench`): DPO on minigrad vs PyTorch (dpo_vs_torch.py),
then the GPT-2-small-shaped step and generation (pretrained.py).
The kernel benchmark is `python -m benchmarks.kernels`."""

import argparse

from . import pretrained
from .dpo_vs_torch import run

parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
parser.add_argument("--quick", action="store_true", help="fewer repeats, no cold-start measurement")
parser.add_argument("--cuda", action="store_true", help="also time the large config on torch CUDA (float32, bf16)")
PARTS = ("untuned", "scaling", "cold", "pretrained")
parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {', '.join(PARTS)}")
args = parser.parse_args()
skip = tuple(s for s in args.skip.split(",") if s)
unknown = sorted(set(skip) - set(PARTS))
if unknown:
    parser.error(f"--skip: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
run(quick=args.quick, cuda=args.cuda, skip=tuple(s for s in skip if s != "pretrained"))
if "pretrained" not in skip:
    pretrained.run(quick=args.quick, out_dir=None if args.quick else "benchmarks/results")
