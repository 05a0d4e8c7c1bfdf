r"""Lecture Example 1: the dynamic system :math:`s^{(t)} = f(s^{(t-1)}; \theta)` unfolded.

For three steps the lecture writes

    s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)

Run ``python examples/lecture_example1.py [OUTDIR]``; with OUTDIR the LaTeX is also written to
``OUTDIR/lecture_example1.tex``.
"""

import sys
from pathlib import Path

import sympy as sp

import symrnn as sr
from symrnn.notation import latex_expr

rec = sr.cells.autonomous()  # s(t) = f(s(t-1), theta) with an abstract f
U = sr.unfold(rec, 3)
(s,) = rec.states
(theta,) = rec.params
f = rec.update[s].func

print("recurrence:", rec)
print("chain:")
print(U)
forms = [s(3), U.nested(3, levels=1), U.nested(3, levels=2)]
print("unfolded: ", " = ".join(str(form) for form in forms))
tex = " = ".join(latex_expr(form) for form in forms)
print("LaTeX:    ", tex)

if len(sys.argv) > 1:
    Path(sys.argv[1], "lecture_example1.tex").write_text(tex + "\n", encoding="utf-8")

assert U.nested(3, levels=1) == f(s(2), theta)
assert U.nested(3, levels=2) == f(f(s(1), theta), theta)
assert U.closed_form(3) == f(f(f(s(0), theta), theta), theta)
assert U.state(3) == sp.Eq(s(3), f(s(2), theta))
assert tex == r"s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)"
