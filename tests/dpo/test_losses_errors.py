"""DPO loss family: every bad input gets one clear error that names what was wrong."""

import numpy as np
import pytest

from backends import get_backend
from dpo.losses import RunningMean, analytic_grad_chosen, dpo_loss
from tests.conftest import require_torch

BE = get_backend("numpy", dtype="float64")


def call(pc=(-10.0, -11.0), pr=(-12.0, -13.0), rc=(-10.5, -11.5), rr=(-11.0, -12.0), **kwargs):
    tensors = [None if x is None else BE.tensor(np.asarray(x, dtype=np.float64)) for x in (pc, pr, rc, rr)]
    return dpo_loss(*tensors, backend=BE, **kwargs)


def test_a_valid_call_passes():  # the baseline every error case below departs from
    assert BE.to_numpy(call().losses).shape == (2,)


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss_type="dpo"), r"unknown loss_type 'dpo'; choose from: sigmoid, robust, ipo"),
    (dict(loss_type=["sigmoid", "kto_pair"]), r"unknown loss_type 'kto_pair'"),
    (dict(loss_type=[]), r"loss_type is an empty list"),
    (dict(f_divergence="kl"), r"unknown f_divergence 'kl'; choose from: reverse_kl, forward_kl"),
    (dict(loss_type=["sigmoid", "hinge"], loss_weights=[1.0]), r"1 loss_weights for 2 loss types"),
    (dict(beta=0.0), r"beta must be > 0, got 0.0"),
    (dict(beta=float("nan")), r"beta must be finite"),
    (dict(label_smoothing=0.5), r"label_smoothing must be in \[0, 0.5\), got 0.5"),
    (dict(label_smoothing=-0.1), r"label_smoothing must be in \[0, 0.5\)"),
    (dict(loss_type="exo_pair"), r"'exo_pair' needs label_smoothing in \(0, 0.5\)"),
    (dict(loss_type="discopop", discopop_tau=0.0), r"discopop_tau must be > 0"),
    (dict(f_alpha=float("inf"), f_divergence="alpha_divergence"), r"f_alpha must be finite"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        call(**kwargs)


@pytest.mark.parametrize("loss_type", ["nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "aot",
                                       "aot_unpaired", "simpo", "orpo"])
@pytest.mark.parametrize("divergence", ["forward_kl", "js_divergence", "alpha_divergence"])
def test_f_divergence_refused_where_it_does_not_generalise(loss_type, divergence):
    with pytest.raises(ValueError, match=rf"dpo_loss: f_divergence '{divergence}' has no valid generalisation for "
                                         rf"loss type\(s\) {loss_type} \(TRL refuses it too\); use "
                                         r"f_divergence='reverse_kl'"):
        call(loss_type=["sigmoid", loss_type], f_divergence=divergence, chosen_lengths=[3, 4], rejected_lengths=[5, 2])
    call(loss_type=["sigmoid", "sft"], f_divergence=divergence, chosen_lengths=[3, 4])  # sft reads no score: accepted


def test_non_numeric_option():
    with pytest.raises(TypeError, match="dpo_loss: beta must be a number, got str"):
        call(beta="0.1")


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"policy_rejected_logps has shape \(3,\), expected \(2,\) like "
                                         r"policy_chosen_logps"):
        call(pr=(-1.0, -2.0, -3.0))
    with pytest.raises(ValueError, match=r"ref_rejected_logps has shape \(1,\), expected \(2,\)"):
        call(rr=(-1.0,))


def test_not_one_dimensional():
    with pytest.raises(ValueError, match=r"policy_chosen_logps must be 1-D \(one summed log-prob per example\), "
                                         r"got shape \(2, 1\)"):
        call(pc=[[-1.0], [-2.0]])


def test_empty_batch():
    with pytest.raises(ValueError, match=r"the batch is empty"):
        call(pc=(), pr=(), rc=(), rr=())


@pytest.mark.parametrize("field,value,match", [
    ("pc", (-1.0, np.nan), r"policy_chosen_logps contains NaN at index 1"),
    ("pr", (np.nan, -1.0), r"policy_rejected_logps contains NaN at index 0"),
    ("rr", (-1.0, -np.inf), r"ref_rejected_logps contains inf at index 1"),
])
def test_nan_or_inf_input(field, value, match):
    with pytest.raises(ValueError, match=match):
        call(**{field: value})


def test_missing_references():
    with pytest.raises(ValueError, match=r"loss type 'sigmoid' needs ref_chosen_logps and ref_rejected_logps "
                                         r"\(the reference-free types are: simpo, orpo, sft\)"):
        call(rc=None, rr=None)
    with pytest.raises(ValueError, match=r"loss type 'bco_pair' needs ref_chosen_logps"):
        call(rc=None, rr=None, loss_type=["sft", "bco_pair"], chosen_lengths=[1, 1])


def test_only_one_reference():
    with pytest.raises(ValueError, match=r"only ref_chosen_logps was given; pass both reference log-probs or neither"):
        call(rr=None)


@pytest.mark.parametrize("loss_type,given,missing", [
    ("ipo", {}, "chosen_lengths"),
    ("sigmoid_norm", {"chosen_lengths": [3, 4]}, "rejected_lengths"),
    ("simpo", {}, "chosen_lengths"),
    ("orpo", {"chosen_lengths": [3, 4]}, "rejected_lengths"),
    ("sft", {"rejected_lengths": [3, 4]}, "chosen_lengths"),
])
def test_missing_lengths(loss_type, given, missing):
    why = " with ipo_average=True" if loss_type == "ipo" else ""
    with pytest.raises(ValueError, match=rf"loss type '{loss_type}'{why} needs {missing} \(the number of completion "
                                         r"tokens of each example\)"):
        call(loss_type=loss_type, **given)


def test_ipo_summed_form_needs_no_lengths():
    assert BE.to_numpy(call(loss_type="ipo", ipo_average=False).losses).shape == (2,)


@pytest.mark.parametrize("lengths,match", [
    ([3, 4, 5], r"chosen_lengths has shape \(3,\), expected \(2,\), one token count per example"),
    ([3, 0], r"chosen_lengths must be > 0, got 0 at index 1"),
    ([3, np.nan], r"chosen_lengths contains NaN at index 1"),
    (["a", "b"], r"chosen_lengths must hold numbers, got dtype <U1"),
])
def test_bad_lengths(lengths, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(loss_type="sft", chosen_lengths=lengths)


def test_lengths_may_be_backend_tensors():
    out = call(loss_type="sft", chosen_lengths=BE.tensor(np.array([2, 4])))
    np.testing.assert_allclose(BE.to_numpy(out.losses), [5.0, 2.75])


def test_orpo_needs_probabilities_below_one():
    with pytest.raises(ValueError, match=r"loss type 'orpo' needs average log-probs below 0 \(token probabilities "
                                         r"< 1\); policy_rejected_logps / lengths is 0 at index 1"):
        call(loss_type="orpo", pr=(-1.0, 0.0), chosen_lengths=[1, 1], rejected_lengths=[1, 1])


def test_arrays_instead_of_tensors():
    with pytest.raises(TypeError, match=r"policy_chosen_logps is a numpy.ndarray, not a tensor of <backend numpy "
                                        r"device=cpu dtype=float64>; pass backend="):
        dpo_loss(np.array([-1.0]), BE.tensor(np.array([-2.0])), backend=BE)


def test_tensors_of_another_backend():
    require_torch()
    torch_be = get_backend("torch", dtype="float64")
    with pytest.raises(TypeError, match=r"policy_chosen_logps is a torch.Tensor, not a tensor of <backend numpy"):
        dpo_loss(torch_be.tensor(np.array([-1.0])), torch_be.tensor(np.array([-2.0])), loss_type="simpo",
                 chosen_lengths=[1], rejected_lengths=[1], backend=BE)


def test_analytic_gradient_checks_the_same_way():
    with pytest.raises(ValueError, match=r"analytic_grad_chosen: unknown loss_type 'dpo'"):
        analytic_grad_chosen("dpo", [-1.0], [-2.0], [-1.0], [-2.0])
    with pytest.raises(ValueError, match=r"analytic_grad_chosen: policy_chosen_logps contains NaN at index 0"):
        analytic_grad_chosen("sigmoid", [np.nan], [-2.0], [-1.0], [-2.0])


def test_running_mean_rejects_nan():
    with pytest.raises(ValueError, match="RunningMean.update: value is NaN"):
        RunningMean().update(float("nan"))
