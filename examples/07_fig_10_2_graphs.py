r"""Goodfellow et al., Deep Learning, Fig. 10.2: a recurrent network with no outputs.

The state h processes the input x through h^{(t)} = f(h^{(t-1)}, x^{(t)}; theta) (eq. 10.5, the
lecture's "RNNs" slide). Left, the circuit: x -> h and the recurrent edge h -> h through a
black square, a delay of one time step. Right, the same network unfolded: one node per variable
per time step, h^{(0)} -> h^{(1)} -> h^{(2)} -> h^{(3)}, each step fed by its x^{(t)}, every
step through the same f. The lecture's RNN (f = tanh(w h^{(t-1)} + u x^{(t)} + b)) is drawn
the same way, its edges named by the parameters w and u; a long unfolding keeps the first and
last two steps and one column of h^{(...)} nodes for the rest.

Usage: python examples/07_fig_10_2_graphs.py [OUTPUT_DIR]   (default: a new temporary directory)

Writes fig_10_2_folded.dot, fig_10_2_unfolded.dot, rnn_folded.dot, rnn_unfolded.dot and
rnn_unfolded_20.dot, and .svg and .png drawings when Graphviz ``dot`` is installed.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import sympy as sp

import symrnn as sr
from symrnn.notation import time_function

t = sr.t
h, x = time_function("h"), time_function("x")
f, theta = sp.Function("f"), sp.Symbol("theta", real=True)
fig = sr.Recurrence(sp.Eq(h(t), f(h(t - 1), x(t), theta)), name="fig_10_2")
rnn = sr.cells.rnn()

graphs = {
    "fig_10_2_folded": sr.graph(fig, name="fig_10_2_folded"),
    "fig_10_2_unfolded": sr.graph(sr.unfold(fig, 3), name="fig_10_2_unfolded"),
    "rnn_folded": sr.graph(rnn),
    "rnn_unfolded": sr.graph(sr.unfold(rnn, 3)),
    "rnn_unfolded_20": sr.graph(sr.unfold(rnn, 20), name="rnn_unfolded_20"),
}


def describe(e: sr.Edge) -> str:
    """``h->h [w] (delay)``: an edge, its label, and whether it is a one-step delay."""
    text = f"{e.src}->{e.dst}" + (f" [{e.label}]" if e.label else "")
    return text + (" (delay)" if e.style == "delay" else "")


out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="fig_10_2_"))
out.mkdir(parents=True, exist_ok=True)
can_render = shutil.which("dot") is not None
for key, g in graphs.items():
    (out / f"{key}.dot").write_text(g.to_dot(), encoding="ascii")
    if can_render:
        g.render(out / f"{key}.svg")
        g.render(out / f"{key}.png")
    arrows = ", ".join(describe(e) for e in g.edges)
    print(f"{key}: {len(g.nodes)} nodes; {arrows}")
print(f"wrote {len(graphs)} graphs to {out}" + ("" if can_render else " (no Graphviz: DOT only)"))

folded, unfolded = graphs["fig_10_2_folded"], graphs["fig_10_2_unfolded"]
# Left: x and h; the recurrent edge is the one-step delay, both edges through f.
assert [n.id for n in folded.nodes] == ["x", "h"]
assert [(e.src, e.dst, e.label, e.style, e.lag) for e in folded.edges] == [
    ("h", "h", "f", "delay", 1),
    ("x", "h", "f", "forward", 0),
]
assert 'arrowtail="box"' in folded.to_dot()  # the black square
# Right: h^(0) ... h^(3) in a row, each fed by x^(t); no delays once unfolded.
assert [n.label_latex for n in unfolded.nodes] == [
    "h^{(0)}", "x^{(1)}", "h^{(1)}", "x^{(2)}", "h^{(2)}", "x^{(3)}", "h^{(3)}",
]  # fmt: skip
assert unfolded.ranks == (("x__1", "x__2", "x__3"), ("h__0", "h__1", "h__2", "h__3"))
assert {(e.src, e.dst) for e in unfolded.edges} == {
    (f"h__{k - 1}", f"h__{k}") for k in (1, 2, 3)
} | {(f"x__{k}", f"h__{k}") for k in (1, 2, 3)}
assert all(e.style == "forward" for e in unfolded.edges)
# The lecture's RNN: the same shape, edges named by its parameters.
assert [(e.src, e.dst, e.label) for e in graphs["rnn_folded"].edges] == [
    ("h", "h", "w"),
    ("x", "h", "u"),
]
assert graphs["rnn_unfolded"].operands("h__3") == ("h__2", "x__3")
# 20 steps: the first two, h^(...) for steps 3..18, the last two.
long = graphs["rnn_unfolded_20"]
assert [n.id for n in long.nodes if n.id.startswith("h")] == [
    "h__0", "h__1", "h__2", "h__dots", "h__19", "h__20",
]  # fmt: skip
assert long.node("h__dots").kind == "ellipsis"
assert all((out / f"{key}.dot").read_text() == g.to_dot() for key, g in graphs.items())
