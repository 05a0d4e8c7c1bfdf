r"""Gradient flow through time: the linear RNN for spectral radius below, at and above 1, and a
tanh RNN (Goodfellow et al., *Deep Learning*, §10.7, the challenge of long-term dependencies).

For :math:`h^{(t)} = A h^{(t-1)} + B x^{(t)}` the gradient reaching d steps back is carried by
:math:`\partial h^{(t)}/\partial h^{(t-d)} = A^{d}`, whose norm behaves like
:math:`\rho(A)^{d}`: it vanishes for :math:`\rho(A) < 1` and explodes for :math:`\rho(A) > 1`.
The same power appears in the closed form :math:`h^{(t)} = A^{t} h^{(0)} + \sum_k A^{t-k} B x^{(k)}`
and in the convolution kernel :math:`(B, AB, A^2B, \dots)`.

Run ``python examples/05_linear_rnn_gradient_flow.py [OUTDIR]``; with matplotlib installed the
plot is written to ``OUTDIR/gradient_flow.png`` (default OUTDIR: a new temporary directory).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn.solve import kernel, solve

STEPS = 60


def scaled_rotation(radius: float, theta: float = 0.5) -> np.ndarray:
    """A 2x2 matrix with both eigenvalues of magnitude ``radius`` (so rho(A) = radius)."""
    c, s = np.cos(theta), np.sin(theta)
    return radius * np.array([[c, -s], [s, c]])


# --- the scalar linear RNN: closed form, kernel and gradient flow share the power a^d
scalar = sr.cells.linear()
h = scalar.states[0]
a, u = sp.symbols("a u", real=True)
flow = sr.gradient_flow(scalar)
d = flow.lag_symbol
solution = solve(scalar)
print("recurrence:   ", scalar)
print("closed form:  ", solution)
print("kernel:       ", kernel(scalar, 4))
print("gradient flow:", f"dh(t)/dh(t-d) = {flow.symbolic}, spectral radius {flow.spectral_radius}")
for k in range(1, 5):
    assert sp.expand(solution.at(k)).coeff(h(0)) == flow.symbolic.subs(d, k)  # dh(k)/dh(0)
for j, K in enumerate(kernel(scalar, 4)):
    assert K == flow.symbolic.subs(d, j) * u  # dh(t)/dx(t-j) = a^j u

# --- the vector linear RNN for rho(A) below, at and above 1
linear = sr.cells.linear(2)
print()
print("recurrence:   ", linear)
print("gradient flow:", f"dh(t)/dh(t-d) = {sr.gradient_flow(linear).symbolic}")
flows = []
for radius in (0.9, 1.0, 1.1):
    A = scaled_rotation(radius)
    flows.append(sr.gradient_flow(linear, params={"A": A, "B": np.ones((2, 1))}, steps=STEPS))
    f = flows[-1]
    print(
        f"  rho(A) = {f.spectral_radius:.2f}: {f.verdict:9s}  rate {f.rate:.3f} per step, "
        f"|A^{STEPS}| = {f.norms[-1]:.3g}"
    )
    expected = [np.linalg.norm(np.linalg.matrix_power(A, k), 2) for k in range(1, STEPS + 1)]
    assert np.allclose(f.norms, expected, rtol=1e-10)
    assert abs(f.spectral_radius - radius) < 1e-12

# --- a tanh RNN: the same weights' scale, but saturation decides
tanh_rnn = sr.cells.elman(2)
W = scaled_rotation(1.1)
tanh_params = {"W": W, "U": np.ones((2, 1)), "b": np.zeros(2)}
driven = sr.gradient_flow(tanh_rnn, params=tanh_params, steps=STEPS, seed=0)
quiet = sr.gradient_flow(
    tanh_rnn, params={**tanh_params, "U": np.zeros((2, 1))}, inputs={"x": np.zeros((STEPS, 1))}
)
print()
print("recurrence:   ", tanh_rnn)
print("step Jacobian:", sr.transition_jacobian(tanh_rnn)[0, 0], "...")
print(f"  W = 1.1 x rotation, random inputs: {driven.verdict} (rate {driven.rate:.3f} per step)")
print(f"  W = 1.1 x rotation, at h = 0:      {quiet.verdict} (rate {quiet.rate:.3f} per step)")
print()
print(driven)

# --- the plot
outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="symrnn_"))
labels = [f"linear, $\\rho(A)$ = {f.spectral_radius:.1f} ({f.verdict})" for f in flows]
labels.append(f"tanh, W = 1.1 rotation, random inputs ({driven.verdict})")
try:
    sr.plot_gradient_flows([*flows, driven], outdir / "gradient_flow.png", labels=labels)
except sr.ToolMissing as missing:
    print(f"\nno plot: {missing}")
else:
    print(f"\nplot written to {outdir / 'gradient_flow.png'}")

assert [f.verdict for f in flows] == ["vanishing", "stable", "exploding"]
assert np.allclose(flows[1].norms, 1.0, rtol=1e-12)
assert driven.verdict == "vanishing" and driven.rate < 0.9
assert quiet.verdict == "exploding" and np.allclose(quiet.norms, 1.1 ** np.arange(1, STEPS + 1))
