"""The Optimizer base class: parameter groups, per-parameter state, state_dict."""

import copy

import numpy as np

from ..nn.utils import zero_grads
from ..tensor import Tensor


class Optimizer:
    """Holds `param_groups` (list of dicts with 'params' and hyper-parameters) and
    `state` (per-parameter NumPy arrays), as torch.optim.Optimizer.

    Steps work on `.data` arrays directly, so they never record a graph.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            group = dict(group)
            group["params"] = list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(
                        f"{type(self).__name__} can only optimize minigrad Tensors, got {type(p).__name__}"
                    )
                if not p.requires_grad:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} does not require grad")
            for key, value in defaults.items():
                group.setdefault(key, value)
            self.param_groups.append(group)
        self.state = {}

    def zero_grad(self, set_to_none=True):
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self):
        raise NotImplementedError

    def _params_with_grad(self, group):
        for p in group["params"]:
            if p.grad is not None:
                yield p, p.grad.data, self.state.setdefault(id(p), {})

    # ---- state_dict, keyed by parameter position as torch does ----------------------
    def state_dict(self):
        """{'state': {index: {name: array or number}}, 'param_groups': [...]} with
        parameters replaced by their running index over all groups."""
        index, groups, state = 0, [], {}
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                if id(p) in self.state:
                    state[index] = copy.deepcopy(self.state[id(p)])
                ids.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)
        ):
            raise ValueError(
                "optimizer state_dict does not match this optimizer: different number of "
                "parameter groups or parameters per group"
            )
        params = [p for group in self.param_groups for p in group["params"]]
        self.state = {}
        for index, entry in state_dict["state"].items():
            p = params[int(index)]
            self.state[id(p)] = {
                k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v) for k, v in entry.items()
            }
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
