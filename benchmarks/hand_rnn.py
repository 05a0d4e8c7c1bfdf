r"""Hand-written NumPy forward passes and BPTT for the Elman, GRU and LSTM cells: the oracles.

Written the way an expert writes them, independently of symrnn: a leading batch axis, the input
projections of all steps in one matrix product, one matrix product per step for the recurrence
(the gates stacked), the quantities BPTT needs stored on the way forward, and the parameter
gradients of all steps and sequences as one matrix product each (``dA.T @ H_prev``).  No Python
loop runs over units; the only loops run over time.

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


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


# ------------------------------------------------------------------------------------ Elman
def _elman_forward(P: Params, x: np.ndarray) -> np.ndarray:
    T, B, m = x.shape
    n = P["W"].shape[0]
    dtype = np.result_type(x, *P.values())
    H = np.zeros((T + 1, B, n), dtype)
    A = (x.reshape(T * B, m) @ P["U"].T + P["b"]).reshape(T, B, n)
    WT = P["W"].T
    for k in range(T):
        H[k + 1] = np.tanh(A[k] + H[k] @ WT)
    return H


def elman_loss(P: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss of the Elman cell, forward pass only."""
    E = _elman_forward(P, x)[1:] - y
    return 0.5 * np.sum(E * E)


def elman_value_and_grad(P: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The loss of the Elman cell and its gradient by BPTT (Goodfellow et al. eq. 10.18–10.26)."""
    T, B, m = x.shape
    W = P["W"]
    n = W.shape[0]
    H = _elman_forward(P, x)
    E = H[1:] - y
    dA = np.empty_like(E)
    dh = np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        dA[k] = (dh + E[k]) * (1 - H[k + 1] * H[k + 1])
        dh = dA[k] @ W
    flat = dA.reshape(T * B, n)
    grads = {
        "U": flat.T @ x.reshape(T * B, m),
        "W": flat.T @ H[:-1].reshape(T * B, n),
        "b": flat.sum(axis=0),
    }
    return 0.5 * float(np.sum(E * E)), grads


# -------------------------------------------------------------------------------------- GRU
def _gru_forward(P: Params, x: np.ndarray) -> tuple[np.ndarray, ...]:
    T, B, m = x.shape
    gates = GATES["gru"]
    n = P["W_r"].shape[0]
    dtype = np.result_type(x, *P.values())
    Ax = (x.reshape(T * B, m) @ _stack(P, "U_", gates).T + _stack(P, "b_", gates)).reshape(
        T, B, 3 * n
    )
    WT, bh = _stack(P, "W_", gates).T, _stack(P, "b_h", gates)
    H = np.zeros((T + 1, B, n), dtype)
    R, Z, G, N = (np.empty((T, B, n), dtype) for _ in range(4))
    for k in range(T):
        Ah = H[k] @ WT + bh
        rz = _sigmoid(Ax[k, :, : 2 * n] + Ah[:, : 2 * n])
        R[k], Z[k], N[k] = rz[:, :n], rz[:, n:], Ah[:, 2 * n :]
        G[k] = np.tanh(Ax[k, :, 2 * n :] + R[k] * N[k])
        H[k + 1] = G[k] + Z[k] * (H[k] - G[k])
    return H, R, Z, G, N


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
    H, R, Z, G, N = _gru_forward(P, x)
    E = H[1:] - y
    # Gradients of the input-side pre-activations (r, z, g) and of the recurrent-side ones
    # (r, z, and W_g h + b_hg, which r multiplies): they differ only in the candidate's block.
    dAx, dAh = np.empty((T, B, 3 * n)), np.empty((T, B, 3 * n))
    dh = np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        dh = dh + E[k]
        r, z, g = R[k], Z[k], G[k]
        dag = dh * (1 - z) * (1 - g * g)
        dAx[k, :, :n] = dAh[k, :, :n] = dag * N[k] * r * (1 - r)
        dAx[k, :, n : 2 * n] = dAh[k, :, n : 2 * n] = dh * (H[k] - g) * z * (1 - z)
        dAx[k, :, 2 * n :] = dag
        dAh[k, :, 2 * n :] = dag * r
        dh = dh * z + dAh[k] @ Wstack
    return 0.5 * float(np.sum(E * E)), _gate_grads(dAx, dAh, x, H[:-1], gates)


def _gate_grads(
    dAx: np.ndarray, dAh: np.ndarray, x: np.ndarray, Hprev: np.ndarray, gates: tuple[str, ...]
) -> Params:
    """Parameter gradients of stacked gates: one matrix product per weight over all steps."""
    T, B, m = x.shape
    n = Hprev.shape[-1]
    fx, fh = dAx.reshape(T * B, -1), dAh.reshape(T * B, -1)
    blocks = {
        "U_": fx.T @ x.reshape(T * B, m),
        "W_": fh.T @ Hprev.reshape(T * B, n),
        "b_": fx.sum(axis=0),
        "b_h": fh.sum(axis=0),
    }
    return {
        prefix + k: block[j * n : (j + 1) * n]
        for prefix, block in blocks.items()
        for j, k in enumerate(gates)
    }


# ------------------------------------------------------------------------------------- LSTM
def _lstm_forward(P: Params, x: np.ndarray) -> tuple[np.ndarray, ...]:
    T, B, m = x.shape
    gates = GATES["lstm"]
    n = P["W_i"].shape[0]
    dtype = np.result_type(x, *P.values())
    A = (
        x.reshape(T * B, m) @ _stack(P, "U_", gates).T
        + _stack(P, "b_", gates)
        + _stack(P, "b_h", gates)
    ).reshape(T, B, 4 * n)
    WT = _stack(P, "W_", gates).T
    H, C = np.zeros((T + 1, B, n), dtype), np.zeros((T + 1, B, n), dtype)
    # Activated gates [i, f, g, o] and tanh(c) per step: all that BPTT reads.
    S, TC = np.empty((T, B, 4 * n), dtype), np.empty((T, B, n), dtype)
    for k in range(T):
        a = A[k] + H[k] @ WT
        S[k, :, : 2 * n] = _sigmoid(a[:, : 2 * n])
        S[k, :, 2 * n : 3 * n] = np.tanh(a[:, 2 * n : 3 * n])
        S[k, :, 3 * n :] = _sigmoid(a[:, 3 * n :])
        i, f, g, o = (S[k, :, j * n : (j + 1) * n] for j in range(4))
        C[k + 1] = f * C[k] + i * g
        TC[k] = np.tanh(C[k + 1])
        H[k + 1] = o * TC[k]
    return H, C, S, TC


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
    H, C, S, TC = _lstm_forward(P, x)
    E = H[1:] - y
    dA = np.empty((T, B, 4 * n))
    dh, dc = np.zeros((B, n)), np.zeros((B, n))
    for k in range(T - 1, -1, -1):
        dh = dh + E[k]
        i, f, g, o = (S[k, :, j * n : (j + 1) * n] for j in range(4))
        tc = TC[k]
        dc = dc + dh * o * (1 - tc * tc)
        dA[k, :, :n] = dc * g * i * (1 - i)
        dA[k, :, n : 2 * n] = dc * C[k] * f * (1 - f)
        dA[k, :, 2 * n : 3 * n] = dc * i * (1 - g * g)
        dA[k, :, 3 * n :] = dh * tc * o * (1 - o)
        dc = dc * f
        dh = dA[k] @ Wstack
    return 0.5 * float(np.sum(E * E)), _gate_grads(dA, dA, x, H[:-1], gates)


#: Each cell's (value_and_grad, loss), by name.
CELLS: dict[str, tuple[Callable[..., tuple[float, Params]], Callable[..., np.ndarray]]] = {
    "elman": (elman_value_and_grad, elman_loss),
    "gru": (gru_value_and_grad, gru_loss),
    "lstm": (lstm_value_and_grad, lstm_loss),
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
