"""The hand-written NumPy BPTT oracles of ``benchmarks/hand_rnn.py``, each checked independently.

Three routes that share no code with the oracles' backward passes: complex-step differentiation
of their forward pass along random directions (one parameter at a time, so errors cannot
cancel), central differences along one random direction in all parameters, and PyTorch's
autograd through ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` in float64 (skipped without torch).
"""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).parent.parent / "benchmarks" / "hand_rnn.py"
_SPEC = importlib.util.spec_from_file_location("hand_rnn", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
hand = importlib.util.module_from_spec(_SPEC)
sys.modules["hand_rnn"] = hand
_SPEC.loader.exec_module(hand)

CELLS = ("elman", "gru", "lstm")


def _problem(cell: str, n: int, m: int, T: int, B: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    P = hand.init_params(cell, n, m, rng)
    return P, rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n)), rng


def test_module_examples():
    result = doctest.testmod(hand, report=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_matches_complex_step(cell):
    P, x, y, rng = _problem(cell, n=3, m=2, T=7, B=2)
    value_and_grad, loss = hand.CELLS[cell]
    value, G = value_and_grad(P, x, y)
    assert value == pytest.approx(float(loss(P, x, y)), rel=1e-13)
    assert set(G) == set(P) and all(G[k].shape == P[k].shape for k in P)
    h = 1e-30
    for name in P:
        v = rng.normal(size=P[name].shape)
        shifted = {**P, name: P[name] + 1j * h * v}
        numeric = float(np.imag(loss(shifted, x, y))) / h
        analytic = float(np.sum(G[name] * v))
        assert analytic == pytest.approx(numeric, rel=1e-10), name


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_matches_central_differences(cell):
    assert hand.directional_error(cell, n=5, m=3, T=12, B=3, seed=2) < 1e-6


@pytest.mark.parametrize("cell", CELLS)
def test_batch_loss_and_gradient_are_sums_over_sequences(cell):
    P, x, y, _ = _problem(cell, n=4, m=3, T=6, B=3)
    value_and_grad = hand.CELLS[cell][0]
    value, G = value_and_grad(P, x, y)
    parts = [value_and_grad(P, x[:, b : b + 1], y[:, b : b + 1]) for b in range(3)]
    assert value == pytest.approx(sum(v for v, _ in parts), rel=1e-12)
    for name in P:
        np.testing.assert_allclose(G[name], sum(g[name] for _, g in parts), rtol=1e-10)


@pytest.mark.parametrize("B", [1, 3])
def test_elman_ways_agree(B):
    P, x, y, _ = _problem("elman", n=5, m=3, T=9, B=B)
    value, G = hand.elman_value_and_grad(P, x, y)
    other, H = hand.elman_value_and_grad_per_step(P, x, y)
    assert other == pytest.approx(value, rel=1e-13)
    for name in P:
        np.testing.assert_allclose(H[name], G[name], rtol=1e-11, atol=1e-14)


def test_lstm_recurrent_and_input_biases_get_the_same_gradient():
    P, x, y, _ = _problem("lstm", n=3, m=2, T=5, B=2)
    _, G = hand.lstm_value_and_grad(P, x, y)
    for k in hand.GATES["lstm"]:
        np.testing.assert_array_equal(G[f"b_{k}"], G[f"b_h{k}"])


# ------------------------------------------------------------------------------ PyTorch
ORACLES = {
    **{cell: hand.CELLS[cell][0] for cell in CELLS},
    "elman per-step": hand.ELMAN_WAYS["per-step"],
}


@pytest.mark.parametrize("n", [3, 64])
@pytest.mark.parametrize("oracle", ORACLES)
def test_oracle_matches_torch_autograd(oracle, n):
    pytest.importorskip("torch")
    cell = oracle.split()[0]
    P, x, y, _ = _problem(cell, n=n, m=5, T=15, B=4)
    value, G = ORACLES[oracle](P, x, y)
    torch_value, torch_G = hand.torch_value_and_grad(cell, hand.torch_module(cell, P), x, y)
    assert value == pytest.approx(torch_value, rel=1e-9)
    assert set(torch_G) == set(G)
    for name in G:
        scale = np.max(np.abs(torch_G[name]))
        assert np.max(np.abs(G[name] - torch_G[name])) <= 1e-9 * scale, name


def test_torch_module_holds_the_parameters_in_pytorchs_gate_order():
    pytest.importorskip("torch")
    P, *_ = _problem("gru", n=3, m=2, T=1, B=1)
    module = hand.torch_module("gru", P)
    np.testing.assert_array_equal(module.weight_ih_l0.detach().numpy()[3:6], P["U_z"])
    np.testing.assert_array_equal(module.weight_hh_l0.detach().numpy()[6:], P["W_g"])
    np.testing.assert_array_equal(module.bias_hh_l0.detach().numpy()[:3], P["b_hr"])
