r"""Goodfellow et al., Deep Learning, Fig. 10.3: an RNN with outputs and a loss at every step.

h^{(t)} = tanh(W h^{(t-1)} + U x^{(t)} + b) and o^{(t)} = c + V h^{(t)} (eq. 10.8-10.10), the
loss L^{(t)} comparing o^{(t)} with the target y^{(t)} by softmax cross-entropy (eq. 10.11-10.14).
Left, the circuit: x -U-> h -V-> o -> L <- y, and h -W-> h through the one-step delay (the black
square). Right, the graph unfolded over three steps: the same U, V, W on every step, the total
loss L = L^{(1)} + L^{(2)} + L^{(3)} at the top. Then back-propagation through time (eq.
10.17-10.22) drawn on the same graph: the adjoints dL/do^{(t)} and dL/dh^{(t)} flow back,
dashed, from step 3 to step 1, and into the gradients dL/dU, dL/dV, dL/dW, dL/db, dL/dc.

Usage: python examples/08_fig_10_3_graphs.py [OUTPUT_DIR]   (default: a new temporary directory)

Writes fig_10_3_folded.dot, fig_10_3_unfolded.dot and fig_10_3_bptt.dot, and .svg and .png
drawings when Graphviz ``dot`` is installed.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import sympy as sp

import symrnn as sr
from symrnn.notation import time_atoms, time_of

t = sr.t
rnn = sr.cells.elman(3, inputs=2, outputs=2)  # 3 hidden units, 2 inputs, 2 outputs
o, y = sr.vector("o", 2), sr.vector("y", 2)
loss = sr.softmax_cross_entropy(o(t), y(t))  # L^(t), a template in t
U = sr.unfold(rnn, 3)
B = sr.bptt(U, sr.total_loss(U, loss))

graphs = {
    "fig_10_3_folded": sr.graph(rnn, loss=loss, name="fig_10_3_folded"),
    "fig_10_3_unfolded": sr.graph(U, loss=loss, name="fig_10_3_unfolded"),
    "fig_10_3_bptt": sr.graph(B, name="fig_10_3_bptt"),
}

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="fig_10_3_"))
out.mkdir(parents=True, exist_ok=True)
can_render = shutil.which("dot") is not None
for key, g in graphs.items():
    (out / f"{key}.dot").write_text(g.to_dot(), encoding="ascii")
    if can_render:
        g.render(out / f"{key}.svg")
        g.render(out / f"{key}.png")
    kinds: dict[str, int] = {}
    for node in g.nodes:
        kinds[node.kind] = kinds.get(node.kind, 0) + 1
    print(f"{key}: {len(g.nodes)} nodes {kinds}, {len(g.edges)} edges")
for e in graphs["fig_10_3_folded"].edges:
    print(f"  {e.src} -> {e.dst}  {e.label or '-'}  {e.style}")
print(f"wrote {len(graphs)} graphs to {out}" + ("" if can_render else " (no Graphviz: DOT only)"))

folded, unfolded, backprop = graphs.values()
# Left: one node per quantity; U, V, W name the edges; the delay is on h -> h only.
assert [n.id for n in folded.nodes] == ["x", "h", "o", "L", "y"]
assert [(e.src, e.dst, e.label, e.style) for e in folded.edges] == [
    ("h", "h", "W", "delay"),
    ("x", "h", "U", "forward"),
    ("h", "o", "V", "forward"),
    ("o", "L", "", "forward"),
    ("y", "L", "", "forward"),
]
assert folded.node("h").label_latex == "\\mathbf{h}"  # vectors are bold, as in the book
# Bottom to top: x, h, o, L, then y above the loss it feeds.
assert folded.ranks == (("x",), ("h",), ("o",), ("L",), ("y",))
assert '"L" -> "y" [dir="back"];' in folded.to_dot()
# Right: x, h, o, L, y at every step, the initial state h^(0) and the total loss L.
for k in (1, 2, 3):
    step = {n.id for n in unfolded.nodes if n.id.endswith(f"__{k}")}
    assert step == {f"{q}__{k}" for q in "xhoLy"}
    assert unfolded.operands(f"L__{k}") == (f"o__{k}", f"y__{k}")
    assert unfolded.node(f"L__{k}").expr == sr.losses.expand_losses(U.instantiate(loss, k))
assert unfolded.operands("L") == ("L__1", "L__2", "L__3")
# Every step goes through the same parameters: the labels repeat, no parameter nodes.
assert {e.label for e in unfolded.edges if e.dst.startswith("h")} == {"W", "U"}
assert not [n for n in unfolded.nodes if n.kind == "parameter"]
# The chain's dependencies are exactly the forward edges between steps.
vector_of = {f: name for name, parts in rnn.vectors.items() for f in parts}
expected = set()
for eq in U.equations:
    dst = f"{vector_of[eq.lhs.func]}__{time_of(eq.lhs)}"
    expected |= {(f"{vector_of[a.func]}__{time_of(a)}", dst) for a in time_atoms(eq.rhs)}
assert expected == {(e.src, e.dst) for e in unfolded.edges if e.dst[0] in "ho"}
# BPTT: the forward graph plus the adjoints, flowing back along dashed edges.
backward = [(e.src, e.dst) for e in backprop.edges if e.style == "backward"]
assert ("dL_dh__3", "dL_dh__2") in backward and ("dL_do__2", "dL_dh__2") in backward
assert ("L", "dL_do__3") in backward  # the loss itself starts the recursion
assert {n.id for n in backprop.nodes if n.kind == "adjoint" and "__" not in n.id} == {
    f"dL_d{p}" for p in "UVWbc"
}
assert backprop.node("dL_dh__2").label_latex == "\\frac{\\partial L}{\\partial \\mathbf{h}^{(2)}}"
assert sp.Add(*(n.expr for n in unfolded.nodes if n.id.startswith("L__"))) == B.loss
assert all((out / f"{key}.dot").read_text() == g.to_dot() for key, g in graphs.items())
