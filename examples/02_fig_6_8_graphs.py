"""Goodfellow et al., Deep Learning, Fig. 6.8: four computational graphs, drawn by symrnn.

(a) z = x y; (b) logistic regression yhat = sigmoid(x^T w + b); (c) a ReLU layer
H = relu(X W + b); (d) linear regression yhat = x^T w with the weight-decay penalty
lambda * sum_i w_i^2, two outputs that share w.

Usage: python examples/02_fig_6_8_graphs.py [OUTPUT_DIR]   (default: a new temporary directory)

Writes fig_6_8_a.dot ... fig_6_8_d.dot, and .svg drawings when Graphviz ``dot`` is installed.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import sympy as sp

from symrnn.functions import relu, sigmoid
from symrnn.graph import graph
from symrnn.ops import dot, matmul, reduce_sum, sqr

m, n, k = sp.symbols("m n k", integer=True, positive=True)
x, w = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("w", n, 1)
X, W, H = sp.MatrixSymbol("X", m, n), sp.MatrixSymbol("W", n, k), sp.MatrixSymbol("H", m, k)
# SymPy has no broadcasting, so the bias of (c) has the shape of XW; NumPy adds a row vector
# to every row of XW the same way.
b_row = sp.MatrixSymbol("b", m, k)
b, yhat, lam = sp.symbols("b yhat lambda")
x_, y_, z_ = sp.symbols("x y z")

figures = {
    "a": graph(sp.Eq(z_, x_ * y_), name="fig_6_8_a"),
    "b": graph(sp.Eq(yhat, sigmoid(dot(x, w) + b)), name="fig_6_8_b"),
    "c": graph(sp.Eq(H, relu(matmul(X, W) + b_row)), name="fig_6_8_c"),
    # The penalty is not named, so it is the book's u^(3).
    "d": graph([sp.Eq(yhat, dot(x, w)), lam * reduce_sum(sqr(w))], name="fig_6_8_d"),
}

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="fig_6_8_"))
out.mkdir(parents=True, exist_ok=True)
can_render = shutil.which("dot") is not None
for g in figures.values():
    (out / f"{g.name}.dot").write_text(g.to_dot(), encoding="ascii")
    if can_render:
        g.render(out / f"{g.name}.svg")
    for node in g.nodes:
        if node.op:
            operands = ", ".join(g.node(src).label_latex for src in g.operands(node.id))
            print(f"{g.name}: {node.label_latex} = {node.op}({operands})")
print(f"wrote {len(figures)} graphs to {out}" + ("" if can_render else " (no Graphviz: DOT only)"))


def summary(key: str) -> tuple[int, int, list[str]]:
    g = figures[key]
    return len(g.nodes), len(g.edges), [node.label_latex for node in g.outputs]


assert summary("a") == (3, 2, ["z"])
assert summary("b") == (6, 5, ["\\hat{y}"])
assert summary("c") == (6, 5, ["\\mathbf{H}"])
assert summary("d") == (7, 6, ["\\hat{y}", "u^{(3)}"])
assert [n.op for n in figures["b"].nodes if n.op] == ["dot", "add", "sigmoid"]
assert [n.op for n in figures["c"].nodes if n.op] == ["matmul", "add", "relu"]
assert [n.label_latex for n in figures["d"].nodes if n.op] == [
    "\\hat{y}",
    "\\mathbf{u}^{(1)}",
    "u^{(2)}",
    "u^{(3)}",
]
# w feeds both outputs of (d) but is one node.
assert [n.id for n in figures["d"].nodes].count("w") == 1
assert all((out / f"{g.name}.dot").read_text() == g.to_dot() for g in figures.values())
