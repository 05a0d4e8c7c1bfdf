r"""A PyTorch GRU checked by symrnn: the same cell, the same numbers, the same gradients.

``sr.cells.from_torch`` reads an ``nn.GRU``'s weights into symrnn's GRU, written exactly as
PyTorch documents it (gates r, z, candidate g; W recurrent, U input weights; both biases):

    r = σ(U_r x + b_r + W_r h + b_hr),  z = σ(U_z x + b_z + W_z h + b_hz),
    g = tanh(U_g x + b_g + r ⊙ (W_g h + b_hg)),  h' = (1 − z) ⊙ g + z ⊙ h.

symrnn then derives the gradient of a loss through time and generates NumPy code for it; here
it must agree with PyTorch's forward states and autograd gradients (float64) to 1e-10, after
PyTorch has trained the module for a few steps.  Without PyTorch the script says so and stops.

Run ``python examples/04_pytorch_gru.py``.
"""

import importlib.util
import sys

import numpy as np

import symrnn as sr

if importlib.util.find_spec("torch") is None:
    print("PyTorch is not installed (pip install torch); nothing to check")
    sys.exit(0)

import torch  # noqa: E402 (optional: only after the check above)

INPUTS, HIDDEN, STEPS, BATCH = 3, 4, 6, 5
torch.manual_seed(0)
gru = torch.nn.GRU(INPUTS, HIDDEN).double()
x = torch.randn(STEPS, BATCH, INPUTS, dtype=torch.float64)
y = torch.randn(STEPS, BATCH, HIDDEN, dtype=torch.float64)

# A few steps of PyTorch training, so the weights are not just PyTorch's initial ones.
optimiser = torch.optim.Adam(gru.parameters(), lr=0.05)
for _ in range(5):
    optimiser.zero_grad()
    out, _ = gru(x)
    (0.5 * ((out - y) ** 2).sum()).backward()
    optimiser.step()

optimiser.zero_grad()
out, _ = gru(x)
loss = 0.5 * ((out - y) ** 2).sum()
loss.backward()

# ------------------------------------------------------------------ the same cell in symrnn
rec, params = sr.cells.from_torch(gru)
print(rec)
print("parameters:", ", ".join(f"{k} {v.shape}" for k, v in sorted(params.items())))
h, target = sr.vector("h", HIDDEN), sr.vector("y", HIDDEN)
F = sr.lambdify(rec, loss=sr.squared_error(h(sr.t), target(sr.t)))

states = F.forward(params, {"x": x.numpy()})["h"]
value, grads = F.value_and_grad(params, {"x": x.numpy(), "y": y.numpy()})
state_error = np.max(np.abs(states - out.detach().numpy()))
print(f"\nforward states: max difference {state_error:.1e}")
print(f"loss: symrnn {value:.12f}, PyTorch {loss.item():.12f}")
assert state_error < 1e-10
assert abs(value - loss.item()) < 1e-10 * abs(value)

# PyTorch stacks the gates' weights (r, z, n) in one matrix; n is symrnn's candidate g.
torch_grads = dict(gru.named_parameters())
worst = 0.0
for k, gate in enumerate("rzg"):
    rows = slice(k * HIDDEN, (k + 1) * HIDDEN)
    pairs = [
        (grads[f"U_{gate}"], torch_grads["weight_ih_l0"].grad[rows]),
        (grads[f"W_{gate}"], torch_grads["weight_hh_l0"].grad[rows]),
        (grads[f"b_{gate}"].ravel(), torch_grads["bias_ih_l0"].grad[rows]),
        (grads[f"b_h{gate}"].ravel(), torch_grads["bias_hh_l0"].grad[rows]),
    ]
    for ours, theirs in pairs:
        worst = max(worst, float(np.max(np.abs(ours - theirs.numpy()))))
print(
    f"gradients of all {sum(v.size for v in params.values())} weights: max difference {worst:.1e}"
)
assert worst < 1e-10

# symrnn's own checks of the cell (closed forms, both code paths, BPTT vs RTRL vs complex step).
report = sr.verify(sr.cells.gru(2, inputs=2), steps=3)
assert report.ok, report
print("sr.verify(gru(2)): all", len(report.rows), "checks pass")
