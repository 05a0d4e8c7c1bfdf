r"""A derivation document for lecture notes: the one-unit GRU, from its equations to its checks.

``sr.derivation`` writes every step for a recurrence and a loss: the equations, the unfolded
chain and the lecture's nested form, the closed forms, the loss, the BPTT adjoint recursion and
the parameter gradients as sums over time, and the table of numerical checks.  Here it is the
GRU as PyTorch defines it (one unit, so every formula fits on the page) with the loss
:math:`L = \sum_t \tfrac12 (h^{(t)} - y^{(t)})^2` over three steps, written as a LaTeX document
and as Markdown, and compiled to PDF where ``pdflatex`` is installed.

Run ``python examples/06_derivation_document.py [OUTDIR]`` (default OUTDIR: a new temporary
directory); it writes ``gru_derivation.tex``, ``gru_derivation.md`` and, with pdflatex,
``gru_derivation.pdf``.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import sympy as sp

import symrnn as sr

outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="symrnn_"))
rec = sr.cells.gru()
(h,) = rec.states
y = sp.Function("y", real=True)
D = sr.derivation(rec, steps=3, loss=sr.squared_error(h(sr.t), y(sr.t)), solve=False)
print(repr(D))

tex_path, md_path = D.write(outdir / "gru_derivation.tex"), D.write(outdir / "gru_derivation.md")
tex, markdown = tex_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
print(f"wrote {tex_path} ({len(tex.splitlines())} lines) and {md_path}")

# Every section is there, the equations as the cell defines them, the gradients of every
# parameter, and a verification table in which every check passed.
assert D.keys[-3:] == ("bptt", "gradients", "verification")
assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
for line in rec._latex_lines():
    assert line.split("&=")[1].strip() in tex
for p in rec.params:
    assert f"\\frac{{\\partial L}}{{\\partial {sp.latex(p)}}}" in tex, p
assert "FAIL" not in tex and "pass" in tex
assert "$$" in markdown and "\\begin{document}" not in markdown

if shutil.which("pdflatex"):
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex_path.name],
        cwd=outdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (outdir / "gru_derivation.pdf").stat().st_size > 10_000
    print(f"compiled {outdir / 'gru_derivation.pdf'}")
else:
    print("pdflatex is not installed; the .tex file is not compiled")
