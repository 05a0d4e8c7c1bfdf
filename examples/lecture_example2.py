r"""Lecture Example 2: a system driven by an external signal,
:math:`s^{(t)} = f(s^{(t-1)}, x^{(t)}; \theta)`, unfolded over three steps.

Run ``python examples/lecture_example2.py [OUTDIR]``; with OUTDIR the LaTeX is also written to
``OUTDIR/lecture_example2.tex``.
"""

import sys
from pathlib import Path

import symrnn as sr
from symrnn.notation import latex_expr, time_atoms

rec = sr.cells.driven()  # s(t) = f(s(t-1), x(t), theta)
U = sr.unfold(rec, 3)
(s,), (x,), (theta,) = rec.states, rec.inputs, rec.params
f = rec.update[s].func

print("recurrence:", rec)
print("states:", rec.states, "inputs:", rec.inputs, "params:", rec.params)
print("chain:")
print(U)
forms = [s(3), U.nested(3, levels=1), U.nested(3, levels=2)]
print("unfolded: ", " = ".join(str(form) for form in forms))
print("to s(0):  ", U.closed_form(3))
tex = " = ".join(latex_expr(form) for form in forms)
print("LaTeX:    ", tex)

if len(sys.argv) > 1:
    Path(sys.argv[1], "lecture_example2.tex").write_text(tex + "\n", encoding="utf-8")

assert U.nested(3, levels=1) == f(s(2), x(3), theta)
assert U.nested(3, levels=2) == f(f(s(1), x(2), theta), x(3), theta)
assert U.closed_form(3) == f(f(f(s(0), x(1), theta), x(2), theta), x(3), theta)
# The unfolded system is driven by exactly the signal x(1), x(2), x(3) from the state s(0).
assert time_atoms(U.closed_form(3)) == {s(0), x(1), x(2), x(3)}
assert U.inputs == (x(1), x(2), x(3))
