"""`RunningMean`: bco_pair's reward shift δ, kept as explicit state.

TRL keeps this inside its trainer (`RunningMoments`); here the caller owns it,
so it can be saved with a checkpoint, reset, or left out (then δ = 0).
"""


class RunningMean:
    """Mean of the values seen so far, each `update` counting as one value.

    `dpo_loss(..., loss_type="bco_pair", bco_state=state)` calls
    `state.update(batch mean of β·s(c) and β·s(r))` once per call, then uses the
    updated `state.mean` as δ. Incremental form: mean += (value - mean) / count.
    """

    def __init__(self, mean=0.0, count=0):
        if count < 0:
            raise ValueError(f"RunningMean: count must be >= 0, got {count}")
        self.mean = float(mean)
        self.count = int(count)

    def update(self, value) -> float:
        """Fold `value` (a float) into the mean; return the new mean."""
        value = float(value)
        if value != value:
            raise ValueError("RunningMean.update: value is NaN")
        self.count += 1
        self.mean += (value - self.mean) / self.count
        return self.mean

    def state_dict(self) -> dict:
        return {"mean": self.mean, "count": self.count}

    def load_state_dict(self, state) -> None:
        self.mean = float(state["mean"])
        self.count = int(state["count"])

    def __repr__(self):
        return f"RunningMean(mean={self.mean!r}, count={self.count})"
