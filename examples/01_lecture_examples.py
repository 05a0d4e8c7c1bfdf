r"""The lecture's three examples, unfolded over three steps.

1. The dynamic system :math:`s^{(t)} = f(s^{(t-1)}; \theta)`:
   :math:`s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)`.
2. A system driven by an external signal, :math:`s^{(t)} = f(s^{(t-1)}, x^{(t)}; \theta)`.
3. The recurrent network: after t steps the state is a function :math:`g^{(t)}` of the whole
   input sequence, :math:`h^{(t)} = g^{(t)}(x^{(t)}, \dots, x^{(1)}) = f(h^{(t-1)}, x^{(t)};
   \theta)`, for a one-unit tanh RNN :math:`f = \tanh(w h^{(t-1)} + u x^{(t)} + b)`.

Run ``python examples/01_lecture_examples.py [OUTDIR]``; with OUTDIR the LaTeX is also written
to ``OUTDIR/lecture_example1.tex``, ``lecture_example2.tex`` and ``lecture_rnn.tex``.
"""

import sys
from pathlib import Path

import numpy as np
import sympy as sp

import symrnn as sr
from symrnn.notation import latex_expr, time_atoms, time_of


def write(name: str, tex: str) -> None:
    if len(sys.argv) > 1:
        Path(sys.argv[1], name).write_text(tex + "\n", encoding="utf-8")


# ------------------------------------------------------------ 1. s(t) = f(s(t-1); theta)
rec = sr.cells.autonomous()  # an abstract f
U = sr.unfold(rec, 3)
(s,), (theta,) = rec.states, rec.params
f = rec.update[s].func
print("1.", rec)
print(U)
forms = [s(3), U.nested(3, levels=1), U.nested(3, levels=2)]
tex = " = ".join(latex_expr(form) for form in forms)
print("unfolded:", " = ".join(str(form) for form in forms))
print("LaTeX:   ", tex)
write("lecture_example1.tex", tex)

assert U.nested(3, levels=1) == f(s(2), theta)
assert U.nested(3, levels=2) == f(f(s(1), theta), theta)
assert U.closed_form(3) == f(f(f(s(0), theta), theta), theta)
assert U.state(3) == sp.Eq(s(3), f(s(2), theta))
assert tex == r"s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)"

# ------------------------------------------------------- 2. s(t) = f(s(t-1), x(t); theta)
rec = sr.cells.driven()
U = sr.unfold(rec, 3)
(s,), (x,), (theta,) = rec.states, rec.inputs, rec.params
f = rec.update[s].func
print("\n2.", rec)
print(U)
forms = [s(3), U.nested(3, levels=1), U.nested(3, levels=2)]
tex = " = ".join(latex_expr(form) for form in forms)
print("unfolded:", " = ".join(str(form) for form in forms))
print("to s(0): ", U.closed_form(3))
print("LaTeX:   ", tex)
write("lecture_example2.tex", tex)

assert U.nested(3, levels=1) == f(s(2), x(3), theta)
assert U.nested(3, levels=2) == f(f(s(1), x(2), theta), x(3), theta)
assert U.closed_form(3) == f(f(f(s(0), x(1), theta), x(2), theta), x(3), theta)
# The unfolded system is driven by exactly the signal x(1), x(2), x(3) from the state s(0).
assert time_atoms(U.closed_form(3)) == {s(0), x(1), x(2), x(3)}
assert U.inputs == (x(1), x(2), x(3))

# ------------------------------------------- 3. the RNN: h(t) = g(t)(x(t), ..., x(1))
rec = sr.cells.rnn()
(h,), (x,) = rec.states, rec.inputs
tau = 3
U = sr.unfold(rec, tau)
print("\n3.", rec)
lines = []
for k in range(1, tau + 1):
    g = U.closed_form(k)
    inputs = sorted((a for a in time_atoms(g) if a.func == x), key=lambda a: -time_of(a))
    print(f"h({k}) = g^({k})({', '.join(map(str, inputs))}) = {U.nested(k, levels=1)} = {g}")
    g_k = f"g^{{({k})}}({', '.join(latex_expr(a) for a in inputs)})"
    lines.append(
        " = ".join([latex_expr(h(k)), g_k, latex_expr(U.nested(k, levels=1)), latex_expr(g)])
    )
write("lecture_rnn.tex", " \\\\\n".join(lines))

# g^{(k)} depends on exactly x(1), ..., x(k), the initial state h(0) and the parameters ...
for k in range(1, tau + 1):
    g = U.closed_form(k)
    assert time_atoms(g) == {h(0), *(x(i) for i in range(1, k + 1))}
    assert g.free_symbols == set(rec.params)
# ... it is f applied to h^{(k-1)}: substituting the chain into itself gives it back ...
assert U.closed_form(3) == U.equations[2].rhs.xreplace({h(2): U.closed_form(2)})
f, theta = U.nested(3, levels=1).func, U.nested(3, levels=1).args[-1]
assert U.nested(3, levels=1) == f(h(2), x(3), theta)
# ... and numerically the closed form equals running the network step by step.
rng = np.random.default_rng(0)
values = {p: float(rng.uniform(-1, 1)) for p in (*rec.params, *U.initial, *U.inputs)}
w, u, b = (values[p] for p in sorted(rec.params, key=lambda p: "wub".index(p.name)))
state = values[h(0)]
for k in range(1, tau + 1):
    state = np.tanh(w * state + u * values[x(k)] + b)
closed = float(U.closed_form(tau).xreplace({a: sp.Float(v) for a, v in values.items()}))
assert abs(closed - state) <= 1e-12 * abs(state)
