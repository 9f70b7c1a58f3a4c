"""Learning-rate schedules: torch's LambdaLR, StepLR and CosineAnnealingLR (closed forms),
and linear warm-up with linear decay."""

import math


class LambdaLR:
    """lr = base_lr · lr_lambda(epoch) for each group; `step()` advances the epoch.
    Like torch, constructing it applies lr_lambda(0) at once."""

    def __init__(self, optimizer, lr_lambda):
        self.optimizer, self.lr_lambda = optimizer, lr_lambda
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def step(self):
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr(base, self.last_epoch)

    def _lr(self, base, epoch):
        return base * self.lr_lambda(epoch)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch, self.base_lrs = state["last_epoch"], list(state["base_lrs"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr(base, self.last_epoch)


class StepLR(LambdaLR):
    """lr = base_lr · gamma^(epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        super().__init__(optimizer, lambda epoch: gamma ** (epoch // step_size))


class CosineAnnealingLR(LambdaLR):
    """lr = eta_min + (base_lr - eta_min)·(1 + cos(π·epoch/T_max))/2 (torch's closed form)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):  # noqa: N803  (torch's name)
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self._eta_min, self._t_max = eta_min, T_max
        super().__init__(optimizer, None)

    def _lr(self, base, epoch):
        return self._eta_min + (base - self._eta_min) * (1 + math.cos(math.pi * epoch / self._t_max)) / 2


def linear_warmup_decay(warmup_steps, total_steps=None):
    """The multiplier at step s (the formula of transformers' linear schedule):
    s / warmup_steps while s < warmup_steps, then (total - s) / (total - warmup),
    floored at 0; constant 1 after warm-up when total_steps is None."""
    if warmup_steps < 0 or (total_steps is not None and total_steps < warmup_steps):
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} and {total_steps}")

    def factor(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if total_steps is None:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps=None):
    """LambdaLR with linear warm-up from 0, then linear decay to 0 at num_training_steps."""
    return LambdaLR(optimizer, linear_warmup_decay(num_warmup_steps, num_training_steps))
