"""Gradient-check exercises: write the backward of an op yourself and have it checked.

    python -m minigrad.exercises list                     # the exercises, in a good order
    python -m minigrad.exercises check softmax            # check your minigrad/exercises/stubs/softmax.py
    python -m minigrad.exercises check all                # every exercise
    python -m minigrad.exercises check softmax --solution # the reference solution, through the same checker
    python -m minigrad.exercises check softmax --file my_softmax.py   # a copy of the stub kept elsewhere

Each stub (`stubs/NAME.py`) gives a forward and leaves the backward to you (for
the DPO losses: a function returning the four hand-derived gradients). The
checker (`checker.py`) runs it on several random float64 inputs, holds it
against finite differences with `minigrad.gradcheck` and, where PyTorch is
installed, against torch autograd, and prints PASS, or FAIL with the case, the
input, the entry, the expected and the obtained value and a hint. Reference
solutions, with their derivations, are in `solutions/NAME.py`.

Importing this package does not import torch; checking imports it when it is
installed.
"""

from .catalog import EXERCISES, NAMES
from .checker import FAIL, NOT_STARTED, PASS, Verdict, check, check_module

__all__ = ["EXERCISES", "NAMES", "check", "check_module", "Verdict", "PASS", "FAIL", "NOT_STARTED"]
