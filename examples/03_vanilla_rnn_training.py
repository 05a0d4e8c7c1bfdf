r"""A vanilla RNN from its equations to a trained network, every step done by symrnn.

1. The equations: the book's RNN (Goodfellow et al. eq. 10.8-10.10), 8 tanh units, 2 inputs,
   2 linear outputs, :math:`h^{(t)} = \tanh(b + W h^{(t-1)} + U x^{(t)})`,
   :math:`o^{(t)} = c + V h^{(t)}`, and a squared-error loss per step.
2. BPTT: the adjoint recursion in matrix form, as the book prints it (eq. 10.21 and 10.25 for
   this loss).
3. Generated code: a standalone NumPy module (it imports neither SymPy nor symrnn) with the
   forward pass, the loss and its exact gradient; its gradient is checked against central
   differences before it is trusted.
4. Training: Adam on a toy memory task, "output the input of the previous step"
   (:math:`y^{(t)} = x^{(t-1)}`), 300 steps of batches of 32 random sequences.  The loss must
   fall to a twentieth of where it started.

Run ``python examples/03_vanilla_rnn_training.py [OUTDIR]``; the generated module is written to
OUTDIR (default: a new temporary directory) as ``vanilla_rnn_numpy.py``.
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

import symrnn as sr
from symrnn.matrix_form import matrix_bptt

N, INPUTS, STEPS, BATCH, UPDATES = 8, 2, 12, 32, 300
t = sr.t

# ------------------------------------------------------------------------- 1. the equations
rec = sr.cells.elman(N, inputs=INPUTS, outputs=INPUTS)
o, y = sr.vector("o", INPUTS), sr.vector("y", INPUTS)
loss = sr.squared_error(o(t), y(t))  # L^(t) = |o(t) - y(t)|^2 / 2, summed over t
print(rec)

# ----------------------------------------------------------------------------- 2. BPTT
M = matrix_bptt(rec)
print("\nBPTT:")
print(M)
printed = str(M)
assert "W.T*" in printed and "V.T*" in printed  # the recursion runs back through W and V

# ------------------------------------------------------------------------ 3. generated code
outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="symrnn_"))
path = outdir / "vanilla_rnn_numpy.py"
source = sr.codegen(rec, path, loss=loss)
assert "import sympy" not in source and "import symrnn" not in source
spec = importlib.util.spec_from_file_location("vanilla_rnn_numpy", path)
generated = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generated)
print(f"\ngenerated {path} ({len(source.splitlines())} lines, NumPy only)")

rng = np.random.default_rng(0)


def batch():
    """Random inputs and their targets, the inputs one step late (y(1) = 0)."""
    x = rng.uniform(-1, 1, (STEPS, BATCH, INPUTS))
    target = np.zeros_like(x)
    target[1:] = x[:-1]
    return {"x": x, "y": target}


params = {
    "W": rng.normal(0, 0.3, (N, N)),
    "U": rng.normal(0, 0.5, (N, INPUTS)),
    "b": np.zeros(N),
    "V": rng.normal(0, 0.5, (INPUTS, N)),
    "c": np.zeros(INPUTS),
}

# The exact gradient against central differences, entry by entry, before training with it.
data = batch()
_, grad = generated.value_and_grad(params, data)
for name, value in params.items():
    for index in np.ndindex(value.shape):
        shifted = {k: v.copy() for k, v in params.items()}
        shifted[name][index] += 1e-6
        up = generated.value_and_grad(shifted, data)[0]
        shifted[name][index] -= 2e-6
        down = generated.value_and_grad(shifted, data)[0]
        numeric = (up - down) / 2e-6
        assert abs(numeric - grad[name][index]) <= 1e-6 * (1 + abs(numeric)), (name, index)
print("generated gradient = central differences for all", sum(v.size for v in params.values()))

# ------------------------------------------------------------------------------ 4. training
first = {k: np.zeros_like(v) for k, v in params.items()}
second = {k: np.zeros_like(v) for k, v in params.items()}
losses = []
for step in range(1, UPDATES + 1):
    value, grad = generated.value_and_grad(params, batch())
    losses.append(value / (BATCH * STEPS))
    for name in params:  # Adam, learning rate 0.02
        g = grad[name] / BATCH
        first[name] = 0.9 * first[name] + 0.1 * g
        second[name] = 0.999 * second[name] + 0.001 * g**2
        m_hat, v_hat = first[name] / (1 - 0.9**step), second[name] / (1 - 0.999**step)
        params[name] -= 0.02 * m_hat / (np.sqrt(v_hat) + 1e-8)
    if step in (1, 10, 100, UPDATES):
        print(f"step {step:3d}: loss per step {losses[-1]:.5f}")

start, end = np.mean(losses[:10]), np.mean(losses[-10:])
assert end < start / 20, (start, end)
# The trained network recalls the previous input on a fresh sequence.
test = batch()
out = generated.forward(params, test)["o"]
assert np.mean((out[1:] - test["y"][1:]) ** 2) < 0.01
