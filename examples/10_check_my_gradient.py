r"""Is my hand derivation right?  Back-propagation through time for the one-unit tanh RNN,

    h^{(t)} = \tanh(w h^{(t-1)} + u x^{(t)} + b),    L = \sum_{t=1}^{3} \tfrac12 (h^{(t)})^2,

derived by hand and checked with ``sr.verify(..., gradient=...)`` against reverse mode, forward
mode and the complex-step derivative.  Then the same derivation with a classic slip (the
recurrent term w \, \partial L/\partial h^{(t+1)} forgotten in the adjoint) is shown failing,
with both values at the place where they differ.

Run ``python examples/10_check_my_gradient.py [OUTDIR]``; with OUTDIR both reports are also
written there as text and JSON.
"""

import json
import sys
from pathlib import Path

import sympy as sp

import symrnn as sr

rnn = sr.cells.rnn()
(h,), (x,) = rnn.states, rnn.inputs
w, u, b = (next(p for p in rnn.params if str(p) == name) for name in "wub")
T = 3

# The adjoints delta_k = dL/da^{(k)} of the pre-activations a^{(k)} = w h^{(k-1)} + u x^{(k)} + b,
# from the last step back: dL/dh^{(k)} = h^{(k)} + w delta_{k+1}, and tanh' = 1 - (h^{(k)})^2.
delta = {T + 1: sp.S.Zero}
for k in range(T, 0, -1):
    delta[k] = (h(k) + w * delta[k + 1]) * (1 - h(k) ** 2)
mine = {
    w: sum(delta[k] * h(k - 1) for k in range(1, T + 1)),
    u: sum(delta[k] * x(k) for k in range(1, T + 1)),
    b: sum(delta[k] for k in range(1, T + 1)),
    h(0): w * delta[1],
}
print("my gradient:")
for v, expr in mine.items():
    print(f"  dL/d{v} = {expr}")

report = sr.verify(rnn, steps=T, gradient=mine)
print(report)
assert report.ok
assert [row.status for row in report.by_check("user")] == ["pass", "pass"]

# The slip: dL/dh^{(k)} = h^{(k)} only, as if h^{(k)} fed nothing but the loss.
slip = {T + 1: sp.S.Zero}
for k in range(T, 0, -1):
    slip[k] = h(k) * (1 - h(k) ** 2)
wrong = {**mine, w: sum(slip[k] * h(k - 1) for k in range(1, T + 1))}

bad = sr.verify(rnn, steps=T, gradient=wrong, checks=["gradient"])
print()
print(bad)
assert not bad.ok
assert [row.status for row in bad.by_check("user")] == ["fail", "fail"]
assert all(row.status == "pass" for row in bad.by_check("gradient"))  # symrnn's own forms agree
row = bad.by_check("user")[0]
assert row.where.startswith("dL/dw")
assert set(dict(row.values)) == {"user gradient", "reverse mode"}

if len(sys.argv) > 1:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, r in (("check_my_gradient_ok", report), ("check_my_gradient_slip", bad)):
        (out / f"{name}.txt").write_text(str(r) + "\n")
        (out / f"{name}.json").write_text(json.dumps(r.to_dict(), indent=2) + "\n")
