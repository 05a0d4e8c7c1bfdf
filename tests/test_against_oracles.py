"""symrnn's compiled loss and gradient against the hand-written NumPy BPTT of the benchmarks.

The oracles (``benchmarks/hand_rnn.py``) are checked on their own in test_hand_oracles.py; here
they check ``sr.lambdify(...).value_and_grad`` for the Elman, GRU and LSTM cells of
``sr.cells``, batched and for one sequence, at small sizes and at sizes (n = 32, 64) that
only the matrix-level code reaches in test time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import symrnn as sr

_PATH = Path(__file__).parent.parent / "benchmarks" / "hand_rnn.py"
_SPEC = importlib.util.spec_from_file_location("hand_rnn", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
hand = importlib.util.module_from_spec(_SPEC)
sys.modules["hand_rnn"] = hand
_SPEC.loader.exec_module(hand)


def _compiled(cell: str, n: int, m: int) -> sr.Compiled:
    rec = getattr(sr.cells, cell)(n, inputs=m)
    h, y = sr.vector("h", n), sr.vector("y", n)
    return sr.lambdify(rec, loss=sr.squared_error(h(sr.t), y(sr.t)))


def _check(cell: str, n: int, m: int, T: int, B: int) -> None:
    F = _compiled(cell, n, m)
    shapes = F.param_shapes
    assert set(shapes) == set(hand.param_shapes(cell, n, m)), (
        f"sr.cells.{cell} parameters {sorted(shapes)} are not PyTorch's in the book's naming"
    )
    rng = np.random.default_rng(4)
    P = hand.init_params(cell, n, m, rng)
    x, y = rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))
    value, G = hand.CELLS[cell][0](P, x, y)
    ours = {k: P[k].reshape(shapes[k]) for k in P}
    batched = F.value_and_grad(ours, {"x": x, "y": y})
    single = F.value_and_grad(ours, {"x": x[:, 0], "y": y[:, 0]})
    single_value, single_G = hand.CELLS[cell][0](P, x[:, :1], y[:, :1])
    for (v, g), (hv, hg) in ((batched, (value, G)), (single, (single_value, single_G))):
        assert float(v) == pytest.approx(hv, rel=1e-10)
        for k in P:
            got = np.reshape(g[k], P[k].shape)
            assert np.max(np.abs(got - hg[k])) <= 1e-10 * np.max(np.abs(hg[k])), k


@pytest.mark.parametrize("n", [2, 8, 64])
def test_elman_matches_the_hand_bptt(n):
    _check("elman", n, max(1, n // 2), T=30, B=3)


@pytest.mark.parametrize("n", [3, 32])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cell_matches_the_hand_bptt(cell, n):
    _check(cell, n, max(1, n // 2), T=12, B=3)
