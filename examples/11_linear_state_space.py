"""The linear RNN in closed form, and its convolution kernel.

    python examples/11_linear_state_space.py [OUTPUT_DIR]

1. The one-unit linear RNN h(t) = a h(t-1) + u x(t) + b solved for symbolic t: the impulse
   response a^(t-k) convolved with the drive.  Checked against the unfolded chain.
2. A two-state linear state-space model h(t) = A h(t-1) + B x(t), y(t) = C h(t) + D x(t)
   with a defective A (a Jordan block, so A^t has a factor t), solved in closed form, and its
   convolution kernel K = (CB + D, CAB, CA^2B, ...).  Both are checked against a NumPy loop.

With OUTPUT_DIR the closed forms are written there as LaTeX (linear_rnn.tex) and the kernel as
CSV (linear_rnn_kernel.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn.solve import kernel, solve

t = sr.t

# ------------------------------------------------------------------ 1. the scalar linear RNN
rnn = sr.cells.linear()
scalar = solve(rnn)
print(scalar)
print(f"method {scalar.method}; {scalar.check}")

for k in range(1, 9):
    assert sp.expand(scalar.at(k) - sr.unfold(rnn, k).closed_form(k)) == 0

a, b, u = rnn.params
assert kernel(rnn, 4) == (u, a * u, a**2 * u, a**3 * u)

# ------------------------------------------------- 2. a state-space model with a Jordan block
hv, xv, yv = sr.vector("h", 2), sr.vector("x", 1), sr.vector("y", 1)
A, B, C, D = sr.matrix("A", 2, 2), sr.matrix("B", 2, 1), sr.matrix("C", 1, 2), sr.matrix("D", 1, 1)
half = sp.Rational(1, 2)
values = {
    A: sp.Matrix([[half, 1], [0, half]]),  # one eigenvalue 1/2, defective
    B: sp.Matrix([0, 1]),
    C: sp.Matrix([[1, -1]]),
    D: sp.Matrix([[half]]),
}
ssm = sr.Recurrence(
    [sp.Eq(hv(t), A * hv(t - 1) + B * xv(t)), sp.Eq(yv(t), C * hv(t) + D * xv(t))], name="ssm"
).with_params(values)

state = solve(ssm)
output = solve(ssm, of="y_1")
print(state)
print(output)
K = kernel(ssm, 10)
print("kernel:", K)

# the same model as a NumPy loop
An, Bn, Cn, Dn = (np.array(values[M], dtype=float) for M in (A, B, C, D))
rng = np.random.default_rng(0)
steps = 10
xs = rng.normal(size=steps)
h0 = rng.normal(size=2)
h, hs, ys = h0, [], []
for k in range(steps):
    h = An @ h + Bn[:, 0] * xs[k]
    hs.append(h)
    ys.append(float(Cn[0] @ h + Dn[0, 0] * xs[k]))

# the closed forms at t = 1 … 10 agree with the loop
x1 = sr.notation.time_function("x_1")
h1, h2 = state.of
point = {h1(0): h0[0], h2(0): h0[1], **{x1(k + 1): xs[k] for k in range(steps)}}
for k in range(1, steps + 1):
    got = np.array(state.at(k).xreplace(point), dtype=float).ravel()
    assert np.allclose(got, hs[k - 1], atol=1e-12), (k, got, hs[k - 1])
    assert abs(float(output.at(k).xreplace(point)) - ys[k - 1]) < 1e-12

# the output is the free response plus the kernel convolved with the input
Kn = np.array([float(Kj) for Kj in K])
assert Kn[0] == float((values[C] * values[B] + values[D])[0, 0])  # C B + D
for k in range(1, steps + 1):
    free = Cn[0] @ np.linalg.matrix_power(An, k) @ h0
    forced = sum(Kn[j] * xs[k - 1 - j] for j in range(k))
    assert abs(free + forced - ys[k - 1]) < 1e-12

# the Jordan block gives A^j = (1/2)^j I + j (1/2)^(j-1) N, so K_j = C A^j B = (j - 1/2) (1/2)^(j-1)
for j in range(1, 10):
    assert K[j] == (j - half) * half ** (j - 1)

if len(sys.argv) > 1:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    tex = "\n\n".join(sol._repr_latex_() for sol in (scalar, state, output))
    (out / "linear_rnn.tex").write_text(tex + "\n")
    rows = ["j,K_j"] + [f"{j},{Kj}" for j, Kj in enumerate(K)]
    (out / "linear_rnn_kernel.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {out / 'linear_rnn.tex'} and {out / 'linear_rnn_kernel.csv'}")
