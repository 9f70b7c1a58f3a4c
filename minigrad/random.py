"""Random numbers: a `Generator` (torch's name) over NumPy's PCG64, and the default one.

Difference from torch: the same seed gives different numbers than torch's
generator (the bit streams differ); seeding makes minigrad reproducible with
itself. To start two backends from identical weights, initialise in NumPy once
and load the same arrays into both.
"""

import numpy as np


class Generator:
    """A seeded source of randomness: `Generator().manual_seed(0)`."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)
        self._seed = seed

    def manual_seed(self, seed: int) -> "Generator":
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
        self._rng = np.random.default_rng(int(seed))
        self._seed = int(seed)
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self) -> dict:
        """The generator's full state (a dict), for checkpoints."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    @property
    def numpy(self) -> np.random.Generator:
        """The underlying NumPy generator."""
        return self._rng


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used by randn, dropout and layer initialisation)."""
    return default_generator.manual_seed(seed)


def resolve(generator) -> np.random.Generator:
    return (generator or default_generator).numpy
