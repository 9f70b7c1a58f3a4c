"""The divergence tests of dpo/divergence.py on hand-made numbers: each fires at its threshold and
not below it, names the step, the quantity and the DPOConfig field; 0 turns it off."""

import math

import pytest

from dpo.config import DPOConfig
from dpo.divergence import GRAD_MIN_HISTORY, DivergenceMonitor, TrainingDiverged

V = 260


def monitor(**fields):
    return DivergenceMonitor.from_config(DPOConfig(**fields), V)


def test_log_prob_far_below_uniform():
    limit = 10 * -math.log(V)  # per token
    m = monitor()
    m.dpo(1, {"logps/chosen": 4 * limit * 0.99, "grad_norm": 1.0}, [4, 4])  # 4 tokens: just above the limit
    with pytest.raises(TrainingDiverged, match=r"^the run diverged at DPO step 2: the policy's mean log-prob per "
                                               r"chosen token is -56.16, far below a uniform distribution's -5.561 "
                                               r"\(limit 10x that: DPOConfig.divergence_logp_factor\)"):
        m.dpo(2, {"logps/chosen": 4 * limit * 1.01, "grad_norm": 1.0}, [3, 5])
    monitor(divergence_logp_factor=0).dpo(1, {"logps/chosen": -1e9, "grad_norm": 1.0}, [4])  # off


def test_gradient_norm_jump_over_its_running_median():
    m = monitor(divergence_grad_factor=100)
    m.dpo(1, {"logps/chosen": -1.0, "grad_norm": 1e6}, [4])  # no history yet: not judged
    m = monitor(divergence_grad_factor=100)
    for step in range(1, GRAD_MIN_HISTORY + 1):
        m.dpo(step, {"logps/chosen": -1.0, "grad_norm": 2.0}, [4])
    m.dpo(GRAD_MIN_HISTORY + 1, {"logps/chosen": -1.0, "grad_norm": 199.0}, [4])
    with pytest.raises(TrainingDiverged, match=r"DPO step 7: the gradient norm 1000 is .*divergence_grad_factor"):
        m.dpo(GRAD_MIN_HISTORY + 2, {"logps/chosen": -1.0, "grad_norm": 1000.0}, [4])


def test_sft_loss_far_above_its_start():
    m = DivergenceMonitor.for_sft(10)
    for step, loss in enumerate([5.0, 3.0, 49.0], 1):
        m.sft(step, loss)
    with pytest.raises(TrainingDiverged, match=r"SFT step 4: the loss rose to 51, 10.2x its start \(5; limit 10x"):
        m.sft(4, 51.0)
    off = DivergenceMonitor.for_sft(0)
    off.sft(1, 1.0)
    off.sft(2, 1e9)


@pytest.mark.parametrize("field", ["divergence_logp_factor", "divergence_grad_factor", "divergence_sft_factor"])
def test_thresholds_are_validated(field):
    with pytest.raises(ValueError, match=f"DPOConfig.{field} must be a non-negative number, got -1"):
        DPOConfig(**{field: -1})
