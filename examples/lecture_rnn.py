r"""The lecture's recurrent network: the unfolded recurrence after t steps is a function
:math:`g^{(t)}` of the whole input sequence,

    h^{(t)} = g^{(t)}(x^{(t)}, x^{(t-1)}, \dots, x^{(2)}, x^{(1)}) = f(h^{(t-1)}, x^{(t)}; \theta)

shown here for a one-unit tanh RNN, :math:`f = \tanh(w h^{(t-1)} + u x^{(t)} + b)`.

Run ``python examples/lecture_rnn.py [OUTDIR]``; with OUTDIR the LaTeX is also written to
``OUTDIR/lecture_rnn.tex``.
"""

import sys
from pathlib import Path

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn.notation import latex_expr, time_atoms, time_of

rec = sr.cells.rnn()
(h,), (x,) = rec.states, rec.inputs
tau = 3
U = sr.unfold(rec, tau)

print("recurrence:", rec)
print("chain (one small equation per step):")
print(U)

lines = []
for k in range(1, tau + 1):
    g = U.closed_form(k)
    inputs = sorted((a for a in time_atoms(g) if a.func == x), key=lambda a: -time_of(a))
    print(f"h({k}) = g^({k})({', '.join(map(str, inputs))}) = {U.nested(k, levels=1)} = {g}")
    lines.append(
        " = ".join(
            [
                latex_expr(h(k)),
                f"g^{{({k})}}({', '.join(latex_expr(a) for a in inputs)})",
                latex_expr(U.nested(k, levels=1)),
                latex_expr(g),
            ]
        )
    )
tex = " \\\\\n".join(lines)
print("LaTeX:")
print(tex)

if len(sys.argv) > 1:
    Path(sys.argv[1], "lecture_rnn.tex").write_text(tex + "\n", encoding="utf-8")

# g^{(k)} depends on exactly x(1), ..., x(k), the initial state h(0) and the parameters.
for k in range(1, tau + 1):
    g = U.closed_form(k)
    assert time_atoms(g) == {h(0), *(x(i) for i in range(1, k + 1))}
    assert g.free_symbols == set(rec.params)
# ... and it is f applied to h^{(k-1)}: substituting the chain into itself gives it back.
assert U.closed_form(3) == U.equations[2].rhs.xreplace({h(2): U.closed_form(2)})
f, theta = U.nested(3, levels=1).func, U.nested(3, levels=1).args[-1]
assert U.nested(3, levels=1) == f(h(2), x(3), theta)
# Numerically the closed form equals running the network step by step.
rng = np.random.default_rng(0)
values = {p: float(rng.uniform(-1, 1)) for p in (*rec.params, *U.initial, *U.inputs)}
theta_values = {p.name: values[p] for p in rec.params}
state = values[h(0)]
for k in range(1, tau + 1):
    state = np.tanh(
        theta_values["w"] * state + theta_values["u"] * values[x(k)] + theta_values["b"]
    )
closed = float(U.closed_form(tau).xreplace({a: sp.Float(v) for a, v in values.items()}))
assert abs(closed - state) <= 1e-12 * abs(state)
