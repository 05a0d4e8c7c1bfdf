r"""Hand-written NumPy forward passes and BPTT for the Elman, GRU and LSTM cells: the oracles.

Written the way an expert writes them, independently of symrnn: a leading batch axis, the input
projections of all steps in one matrix product, one matrix product per step for the recurrence
(the gates stacked), the quantities BPTT needs stored on the way forward, and the parameter
gradients of all steps and sequences as one matrix product each (``dA.T @ H_prev``).  The Elman
cell has a second version that stores only the states (:data:`ELMAN_WAYS`).  No Python loop runs
over units; the only loops run over time.

Shapes: inputs ``x`` are ``(T, B, m)``, targets ``y`` are ``(T, B, n)``; the initial states are
zero.  The loss is the per-step squared error on the hidden state summed over steps and over the
batch,

.. math::
    L = \sum_{b=1}^{B} \sum_{t=1}^{T} \tfrac12 \lVert h^{(t)}_b - y^{(t)}_b \rVert^2 .

Parameters are dicts keyed by symrnn's names: input weights ``U_*`` shaped ``(n, m)``,
recurrent weights ``W_*`` shaped ``(n, n)``, input-side biases ``b_*`` and recurrent-side biases
``b_h*`` shaped ``(n,)``.  The cells are PyTorch's:

* Elman (``nn.RNN`` with ``b = b_ih + b_hh``): :math:`h' = \tanh(b + W h + U x)`.
* GRU (``nn.GRU``): :math:`r = \sigma(U_r x + b_r + W_r h + b_{hr})`,
  :math:`z = \sigma(U_z x + b_z + W_z h + b_{hz})`,
  :math:`g = \tanh(U_g x + b_g + r \odot (W_g h + b_{hg}))`,
  :math:`h' = (1 - z) \odot g + z \odot h`.
* LSTM (``nn.LSTM``, gates in PyTorch's order i, f, g, o): each gate
  :math:`a_k = U_k x + b_k + W_k h + b_{hk}`, :math:`i, f, o = \sigma(a)`, :math:`g = \tanh(a_g)`,
  :math:`c' = f \odot c + i \odot g`, :math:`h' = o \odot \tanh(c')`.

``*_loss(params, x, y)`` runs the forward pass only and works for complex arrays too (every
operation is analytic, so complex-step differentiation applies); ``*_value_and_grad`` returns
``(loss, grads)`` with the gradients keyed and shaped like ``params``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> P = init_params("gru", 3, 2, rng)
>>> x, y = rng.normal(size=(5, 4, 2)), rng.normal(size=(5, 4, 3))
>>> L, G = gru_value_and_grad(P, x, y)
>>> bool(np.isclose(L, gru_loss(P, x, y))), G["W_g"].shape
(True, (3, 3))

Run as a script, it checks each gradient against central differences (``--quick``: small sizes).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

Params = dict[str, np.ndarray]

#: Gate names of each cell, in PyTorch's stacking order.
GATES = {"elman": ("",), "gru": ("r", "z", "g"), "lstm": ("i", "f", "g", "o")}


def param_shapes(cell: str, n: int, m: int) -> dict[str, tuple[int, ...]]:
    """The parameter names of ``cell`` and their shapes, for ``n`` hidden units and ``m`` inputs.

    >>> param_shapes("elman", 4, 2)
    {'U': (4, 2), 'W': (4, 4), 'b': (4,)}
    """
    if cell == "elman":
        return {"U": (n, m), "W": (n, n), "b": (n,)}
    gates = GATES[cell]
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, shape in (("U_", (n, m)), ("W_", (n, n)), ("b_", (n,)), ("b_h", (n,))):
        shapes.update({prefix + k: shape for k in gates})
    return shapes


def init_params(cell: str, n: int, m: int, rng: np.random.Generator, scale: float = 0.5) -> Params:
    """Random parameters in PyTorch's default range, uniform on ±1/√n (times ``2 * scale``)."""
    bound = 2 * scale / np.sqrt(n)
    return {k: rng.uniform(-bound, bound, s) for k, s in param_shapes(cell, n, m).items()}


def _stack(params: Params, prefix: str, gates: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([params[prefix + k] for k in gates], axis=0)


def _project(x: np.ndarray, U: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``U x + b`` for the inputs of all steps and sequences in one matrix product: (T, B, k)."""
    T, B, m = x.shape
    A = (x.reshape(T * B, m) @ U.T).astype(dtype, copy=False)
    A += b
    return A.reshape(T, B, -1)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


# ------------------------------------------------------------------------------------ Elman
def _elman_forward(P: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States ``H`` (h at t = 0 … T) and the input projections ``A = U x + b`` of every step."""
    T, B, m = x.shape
    n = P["W"].shape[0]
    dtype = np.result_type(x, *P.values())
    H = np.zeros((T + 1, B, n), dtype)
    A = _project(x, P["U"], P["b"], dtype)
    WT = P["W"].T
    for k in range(T):
        H[k + 1] = np.tanh(A[k] + H[k] @ WT)
    return H, A


def elman_loss(P: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss of the Elman cell, forward pass only."""
    E = _elman_forward(P, x)[0][1:] - y
    return 0.5 * np.sum(E * E)


def elman_value_and_grad(P: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The loss of the Elman cell and its gradient by BPTT (Goodfellow et al. eq. 10.18–10.26)."""
    T, B, m = x.shape
    W = P["W"]
    n = W.shape[0]
    H, dA = _elman_forward(P, x)
    # The projections are spent: their buffer holds the errors h - y, then, step by step from
    # the last, the gradients of the pre-activations.  BPTT keeps two arrays the size of H.
    np.subtract(H[1:], y, out=dA)
    loss = 0.5 * float(np.vdot(dA, dA))
    dh = np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        dA[k] += dh
        dA[k] *= 1 - H[k + 1] * H[k + 1]
        dh = dA[k] @ W
    flat = dA.reshape(T * B, n)
    grads = {
        "U": flat.T @ x.reshape(T * B, m),
        "W": flat.T @ H[:-1].reshape(T * B, n),
        "b": flat.sum(axis=0),
    }
    return loss, grads


def elman_value_and_grad_per_step(P: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The same as :func:`elman_value_and_grad`, written to store only the states.

    The input projection is made at each step and the parameter gradients are accumulated at
    each step (``d.T @ h_prev``), so nothing but ``H`` grows with T: more, smaller matrix products
    than the store-all version, which wins at small batches, this one at large ones.
    """
    T, B, m = x.shape
    U, W, b = P["U"], P["W"], P["b"]
    n = W.shape[0]
    H = np.empty((T + 1, B, n))
    H[0] = 0
    UT, WT = U.T, W.T
    for k in range(T):
        H[k + 1] = np.tanh(x[k] @ UT + H[k] @ WT + b)
    grads = {"U": np.zeros_like(U), "W": np.zeros_like(W), "b": np.zeros_like(b)}
    loss = 0.0
    dh = np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        e = H[k + 1] - y[k]
        loss += float(np.vdot(e, e))
        d = (dh + e) * (1 - H[k + 1] * H[k + 1])
        grads["U"] += d.T @ x[k]
        grads["W"] += d.T @ H[k]
        grads["b"] += d.sum(axis=0)
        dh = d @ W
    return 0.5 * loss, grads


# -------------------------------------------------------------------------------------- GRU
def _gru_forward(P: Params, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """States ``H``; gates ``R, Z``, candidates ``G``, ``N = W_g h + b_hg``; projections ``Ax``."""
    T, B, m = x.shape
    gates = GATES["gru"]
    n = P["W_r"].shape[0]
    dtype = np.result_type(x, *P.values())
    Ax = _project(x, _stack(P, "U_", gates), _stack(P, "b_", gates), dtype)
    WT, bh = _stack(P, "W_", gates).T, _stack(P, "b_h", gates)
    H = np.zeros((T + 1, B, n), dtype)
    R, Z, G, N = (np.empty((T, B, n), dtype) for _ in range(4))
    for k in range(T):
        Ah = H[k] @ WT + bh
        rz = _sigmoid(Ax[k, :, : 2 * n] + Ah[:, : 2 * n])
        R[k], Z[k], N[k] = rz[:, :n], rz[:, n:], Ah[:, 2 * n :]
        G[k] = np.tanh(Ax[k, :, 2 * n :] + R[k] * N[k])
        H[k + 1] = G[k] + Z[k] * (H[k] - G[k])
    return H, R, Z, G, N, Ax


def gru_loss(P: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss of PyTorch's GRU cell, forward pass only."""
    E = _gru_forward(P, x)[0][1:] - y
    return 0.5 * np.sum(E * E)


def gru_value_and_grad(P: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The loss of PyTorch's GRU cell and its gradient by BPTT."""
    T, B, m = x.shape
    gates = GATES["gru"]
    n = P["W_r"].shape[0]
    Wstack = _stack(P, "W_", gates)
    H, R, Z, G, N, dAx = _gru_forward(P, x)
    # Gradients of the input-side pre-activations (r, z, g) go where the projections were.  The
    # recurrent side's differ only in the candidate's block (W_g h + b_hg is multiplied by r):
    # that block overwrites R once r is read, and the step's three blocks meet in dAh.
    loss = 0.0
    dh, dAh = np.zeros((B, n)), np.empty((B, 3 * n))
    for k in range(T - 1, -1, -1):
        e = H[k + 1] - y[k]
        loss += float(np.vdot(e, e))
        dh = dh + e
        r, z, g = R[k], Z[k], G[k]
        dag = dh * (1 - z) * (1 - g * g)
        dAx[k, :, :n] = dAh[:, :n] = dag * N[k] * r * (1 - r)
        dAx[k, :, n : 2 * n] = dAh[:, n : 2 * n] = dh * (H[k] - g) * z * (1 - z)
        dAx[k, :, 2 * n :] = dag
        R[k] = dAh[:, 2 * n :] = dag * r
        dh = dh * z + dAh @ Wstack
    fx, fg, Hp = dAx.reshape(T * B, 3 * n), R.reshape(T * B, n), H[:-1].reshape(T * B, n)
    grads = _gate_grads(fx.T @ x.reshape(T * B, m), fx.sum(axis=0), "U_", "b_", gates)
    recurrent = np.concatenate([fx[:, : 2 * n].T @ Hp, fg.T @ Hp])
    bias = np.concatenate([fx[:, : 2 * n].sum(axis=0), fg.sum(axis=0)])
    grads.update(_gate_grads(recurrent, bias, "W_", "b_h", gates))
    return 0.5 * loss, grads


def _gate_grads(
    weights: np.ndarray, bias: np.ndarray, wname: str, bname: str, gates: tuple[str, ...]
) -> Params:
    """Stacked gradients of a weight and a bias, split by gate and named."""
    n = bias.shape[0] // len(gates)
    grads = {}
    for j, k in enumerate(gates):
        grads[wname + k], grads[bname + k] = weights[j * n : (j + 1) * n], bias[j * n : (j + 1) * n]
    return grads


# ------------------------------------------------------------------------------------- LSTM
def _lstm_forward(P: Params, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """States ``H, C``, ``tanh(c)`` per step, and the activated gates [i, f, g, o] in ``A``."""
    T, B, m = x.shape
    gates = GATES["lstm"]
    n = P["W_i"].shape[0]
    dtype = np.result_type(x, *P.values())
    # The input projections of all steps; each step's are replaced by its activated gates.
    bias = _stack(P, "b_", gates) + _stack(P, "b_h", gates)
    A = _project(x, _stack(P, "U_", gates), bias, dtype)
    WT = _stack(P, "W_", gates).T
    H, C = np.zeros((T + 1, B, n), dtype), np.zeros((T + 1, B, n), dtype)
    TC = np.empty((T, B, n), dtype)
    for k in range(T):
        a = A[k] + H[k] @ WT
        A[k, :, : 2 * n] = _sigmoid(a[:, : 2 * n])
        A[k, :, 2 * n : 3 * n] = np.tanh(a[:, 2 * n : 3 * n])
        A[k, :, 3 * n :] = _sigmoid(a[:, 3 * n :])
        i, f, g, o = (A[k, :, j * n : (j + 1) * n] for j in range(4))
        C[k + 1] = f * C[k] + i * g
        TC[k] = np.tanh(C[k + 1])
        H[k + 1] = o * TC[k]
    return H, C, TC, A


def lstm_loss(P: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss of PyTorch's LSTM cell, forward pass only."""
    E = _lstm_forward(P, x)[0][1:] - y
    return 0.5 * np.sum(E * E)


def lstm_value_and_grad(P: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The loss of PyTorch's LSTM cell and its gradient by BPTT."""
    T, B, m = x.shape
    gates = GATES["lstm"]
    n = P["W_i"].shape[0]
    Wstack = _stack(P, "W_", gates)
    H, C, TC, A = _lstm_forward(P, x)
    loss = 0.0
    dh, dc = np.zeros((B, n)), np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        e = H[k + 1] - y[k]
        loss += float(np.vdot(e, e))
        dh = dh + e
        i, f, g, o = (A[k, :, j * n : (j + 1) * n] for j in range(4))
        tc = TC[k]
        dc = dc + dh * o * (1 - tc * tc)
        # The step's gate gradients replace its activations, all read before any is written.
        blocks = [dc * g * i * (1 - i), dc * C[k] * f * (1 - f), dc * i * (1 - g * g)]
        da = np.concatenate([*blocks, dh * tc * o * (1 - o)], axis=1)
        dc = dc * f
        A[k] = da
        dh = da @ Wstack
    flat, bias = A.reshape(T * B, 4 * n), A.reshape(T * B, 4 * n).sum(axis=0)
    grads = _gate_grads(flat.T @ x.reshape(T * B, m), bias, "U_", "b_", gates)
    grads.update(_gate_grads(flat.T @ H[:-1].reshape(T * B, n), bias.copy(), "W_", "b_h", gates))
    return 0.5 * loss, grads


#: The Elman cell's BPTT written two ways, by the name of the way: neither wins at every size.
ELMAN_WAYS = {"store-all": elman_value_and_grad, "per-step": elman_value_and_grad_per_step}
#: Each cell's (value_and_grad, loss), by name.
CELLS: dict[str, tuple[Callable[..., tuple[float, Params]], Callable[..., np.ndarray]]] = {
    "elman": (elman_value_and_grad, elman_loss),
    "gru": (gru_value_and_grad, gru_loss),
    "lstm": (lstm_value_and_grad, lstm_loss),
}


# ---------------------------------------------------------------------------------- PyTorch
_TORCH_CLASS = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
#: PyTorch's stacked parameters and the prefix of the oracles' names each one stacks.
_TORCH_STACKS = {
    "weight_ih_l0": "U_",
    "weight_hh_l0": "W_",
    "bias_ih_l0": "b_",
    "bias_hh_l0": "b_h",
}


def torch_module(cell: str, P: Params) -> Any:
    """PyTorch's ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` in float64 holding the parameters ``P``.

    PyTorch stacks the gates: ``weight_ih_l0 = [U_r; U_z; U_g]`` for the GRU, and so on.  The
    Elman cell's bias goes to ``bias_ih_l0``; ``bias_hh_l0`` is zero.
    """
    import torch

    gates = GATES[cell]
    n, m = P["U" if cell == "elman" else f"U_{gates[0]}"].shape
    module = getattr(torch.nn, _TORCH_CLASS[cell])(m, n).double()
    with torch.no_grad():
        for name, prefix in _TORCH_STACKS.items():
            if cell == "elman":
                value = {"U_": P["U"], "W_": P["W"], "b_": P["b"], "b_h": np.zeros(n)}[prefix]
            else:
                value = _stack(P, prefix, gates)
            getattr(module, name).copy_(torch.from_numpy(value))
    return module


def torch_value_and_grad(
    cell: str, module: Any, x: np.ndarray, y: np.ndarray
) -> tuple[float, Params]:
    """The loss of ``module`` (from :func:`torch_module`) and its gradient by torch autograd."""
    import torch

    out, _ = module(torch.from_numpy(x))
    loss = 0.5 * ((out - torch.from_numpy(y)) ** 2).sum()
    stacks = [getattr(module, name) for name in _TORCH_STACKS]
    grads = dict(zip(_TORCH_STACKS.values(), torch.autograd.grad(loss, stacks), strict=True))
    if cell == "elman":
        return loss.item(), {
            "U": grads["U_"].numpy(),
            "W": grads["W_"].numpy(),
            "b": grads["b_"].numpy(),
        }
    n = stacks[1].shape[1]
    return loss.item(), {
        prefix + k: grad.numpy()[j * n : (j + 1) * n]
        for prefix, grad in grads.items()
        for j, k in enumerate(GATES[cell])
    }


def directional_error(cell: str, n: int, m: int, T: int, B: int, seed: int = 0) -> float:
    r"""Relative error of :math:`\nabla L \cdot v` against central differences along random v."""
    rng = np.random.default_rng(seed)
    value_and_grad, loss = CELLS[cell]
    P = init_params(cell, n, m, rng)
    x, y = rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))
    _, G = value_and_grad(P, x, y)
    V = {k: rng.normal(size=p.shape) for k, p in P.items()}
    eps = 1e-6
    plus = loss({k: P[k] + eps * V[k] for k in P}, x, y)
    minus = loss({k: P[k] - eps * V[k] for k in P}, x, y)
    numeric = (plus - minus) / (2 * eps)
    analytic = sum(float(np.sum(G[k] * V[k])) for k in P)
    return abs(analytic - numeric) / abs(numeric)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    n, m, T, B = (3, 2, 6, 2) if args.quick else (16, 8, 50, 4)
    print(f"hand oracles: gradient . v against central differences, n={n} m={m} T={T} B={B}")
    for cell in CELLS:
        error = directional_error(cell, n, m, T, B)
        print(f"{cell:>6} relative error {error:.1e}")
        assert error < 1e-6, f"{cell}: gradient disagrees with central differences ({error:.1e})"


if __name__ == "__main__":
    main()
