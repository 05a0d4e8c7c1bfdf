"""Computational graphs (symrnn.graph): Fig. 6.8, 10.2 and 10.3 of Goodfellow et al., BPTT."""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

import symrnn as sr
from symrnn.diff import Adjoint
from symrnn.errors import SymrnnError, ToolMissing
from symrnn.functions import relu, sigmoid
from symrnn.graph import (
    EDGE_STYLES,
    MAX_DRAWN_STEPS,
    NODE_KINDS,
    Edge,
    Graph,
    Node,
    graph,
    variable_labels,
)
from symrnn.matrices import VectorAt, vector
from symrnn.notation import t, time_atoms, time_function, time_of
from symrnn.ops import dot, matmul, reduce_sum, sqr

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz 'dot' is not installed")

m, n, k = sp.symbols("m n k", integer=True, positive=True)
x_vec, w_vec = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("w", n, 1)
X, W, H = sp.MatrixSymbol("X", m, n), sp.MatrixSymbol("W", n, k), sp.MatrixSymbol("H", m, k)
b_mat = sp.MatrixSymbol("b", m, k)
b, yhat, lam = sp.symbols("b yhat lambda")
x, y, z = sp.symbols("x y z")

#: Fig. 6.8 (a)-(d) as the items given to graph().
FIGURES: dict[str, list[Any]] = {
    "a": [sp.Eq(z, x * y)],
    "b": [sp.Eq(yhat, sigmoid(dot(x_vec, w_vec) + b))],
    "c": [sp.Eq(H, relu(matmul(X, W) + b_mat))],
    "d": [sp.Eq(yhat, dot(x_vec, w_vec)), lam * reduce_sum(sqr(w_vec))],
}


def figure(key: str) -> Graph:
    return graph(FIGURES[key], name=f"fig_6_8_{key}")


def topological_order(g: Graph) -> list[str] | None:
    """Kahn's algorithm over g.edges; None when the graph has a cycle."""
    indegree = {node.id: 0 for node in g.nodes}
    for e in g.edges:
        indegree[e.dst] += 1
    ready = [node_id for node_id, d in indegree.items() if d == 0]
    order = []
    while ready:
        node_id = ready.pop()
        order.append(node_id)
        for e in g.edges:
            if e.src == node_id:
                indegree[e.dst] -= 1
                if indegree[e.dst] == 0:
                    ready.append(e.dst)
    return order if len(order) == len(g.nodes) else None


# --- Fig. 6.8: golden DOT and structure -------------------------------------------------------


@pytest.mark.parametrize("key", sorted(FIGURES))
def test_fig_6_8_matches_golden_dot(key: str) -> None:
    path = GOLDEN / f"fig_6_8_{key}.dot"
    text = figure(key).to_dot()
    if os.environ.get("SYMRNN_UPDATE_GOLDEN"):
        path.write_bytes(text.encode("ascii"))
    assert text.encode("ascii") == path.read_bytes()


@pytest.mark.parametrize(
    ("key", "operations"),
    [
        ("a", [("z", "mul", ["x", "y"])]),
        (
            "b",
            [
                ("u^{(1)}", "dot", ["\\mathbf{x}", "\\mathbf{w}"]),
                ("u^{(2)}", "add", ["u^{(1)}", "b"]),
                ("\\hat{y}", "sigmoid", ["u^{(2)}"]),
            ],
        ),
        (
            "c",
            [
                ("\\mathbf{U}^{(1)}", "matmul", ["\\mathbf{X}", "\\mathbf{W}"]),
                ("\\mathbf{U}^{(2)}", "add", ["\\mathbf{U}^{(1)}", "\\mathbf{b}"]),
                ("\\mathbf{H}", "relu", ["\\mathbf{U}^{(2)}"]),
            ],
        ),
        (
            "d",
            [
                ("\\hat{y}", "dot", ["\\mathbf{x}", "\\mathbf{w}"]),
                ("\\mathbf{u}^{(1)}", "sqr", ["\\mathbf{w}"]),
                ("u^{(2)}", "sum", ["\\mathbf{u}^{(1)}"]),
                ("u^{(3)}", "mul", ["u^{(2)}", "\\lambda"]),
            ],
        ),
    ],
)
def test_fig_6_8_operations_as_in_the_book(key: str, operations: list[Any]) -> None:
    g = figure(key)
    found = [
        (node.label_latex, node.op, [g.node(src).label_latex for src in g.operands(node.id)])
        for node in g.nodes
        if node.op
    ]
    assert found == [(label, op, operands) for label, op, operands in operations]


@pytest.mark.parametrize(
    ("key", "n_nodes", "n_edges", "outputs"),
    [("a", 3, 2, ["z"]), ("b", 6, 5, ["yhat"]), ("c", 6, 5, ["H"]), ("d", 7, 6, ["yhat", "u3"])],
)
def test_fig_6_8_counts_and_outputs(key: str, n_nodes: int, n_edges: int, outputs: list[str]):
    g = figure(key)
    assert (len(g.nodes), len(g.edges)) == (n_nodes, n_edges)
    assert [node.id for node in g.outputs] == outputs
    assert {node.kind for node in g.nodes if node.op is None} == {"input"}


def test_fig_6_8_d_shares_w_between_the_two_outputs() -> None:
    g = figure("d")
    assert [node.id for node in g.nodes].count("w") == 1
    assert sorted(e.dst for e in g.edges if e.src == "w") == ["u1", "yhat"]


@pytest.mark.parametrize("key", sorted(FIGURES))
def test_graphs_are_acyclic_and_nodes_in_evaluation_order(key: str) -> None:
    g = figure(key)
    assert topological_order(g) is not None
    position = {node.id: i for i, node in enumerate(g.nodes)}
    assert all(position[e.src] < position[e.dst] for e in g.edges)


def test_intermediates_are_numbered_in_evaluation_order() -> None:
    g = graph(sp.tanh(sp.exp(x * y) + sp.sin(x * y) * z))
    ops = [node for node in g.nodes if node.op]
    assert [node.id for node in ops] == [f"u{i}" for i in range(1, len(ops) + 1)]
    assert [node.label_latex for node in ops] == [f"u^{{({i})}}" for i in range(1, len(ops) + 1)]
    position = {node.id: i for i, node in enumerate(g.nodes)}
    for node in ops:
        assert all(position[src] < position[node.id] for src in g.operands(node.id))
    assert ops[-1].kind == "output" and all(node.kind == "intermediate" for node in ops[:-1])


def test_common_subexpressions_appear_once() -> None:
    shared = x * y
    g = graph(sp.tanh(shared) + sp.exp(shared) + shared)
    products = [node for node in g.nodes if node.op == "mul"]
    assert len(products) == 1
    consumers = sorted(g.node(e.dst).op for e in g.edges if e.src == products[0].id)
    assert consumers == ["add", "exp", "tanh"]
    assert len({node.id for node in g.nodes}) == len(g.nodes)


def test_equal_elementwise_maps_are_one_node() -> None:
    # symrnn's elementwise maps share one bound variable, so equal maps are equal objects.
    V = sp.MatrixSymbol("V", 3, 3)
    assert relu(V) == relu(V)
    g = graph([matmul(relu(V), relu(V)), reduce_sum(sqr(w_vec)), dot(sqr(w_vec), x_vec)])
    assert [node.op for node in g.nodes].count("relu") == 1
    assert g.operands("u2") == ("u1", "u1")
    assert [node.op for node in g.nodes].count("sqr") == 1


def test_named_equations_share_subexpressions_and_use_earlier_names() -> None:
    a, c = sp.symbols("a c")
    g = graph([sp.Eq(a, x * y), sp.Eq(c, sp.sin(a) + x * y), c * x])  # x*y is a
    assert [node.op for node in g.nodes].count("mul") == 2  # x*y once, and c*x
    assert g.operands("u1") == ("a",) and g.node("u1").op == "sin"
    assert g.operands("c") == ("a", "u1")
    assert [node.id for node in g.outputs] == ["a", "c", "u2"]


def test_dict_of_equations_is_the_same_graph_as_a_list() -> None:
    penalty = sp.Symbol("penalty")
    as_dict = graph({"yhat": dot(x_vec, w_vec), penalty: lam * reduce_sum(sqr(w_vec))})
    as_list = graph([sp.Eq(yhat, dot(x_vec, w_vec)), sp.Eq(penalty, lam * reduce_sum(sqr(w_vec)))])
    assert as_dict == as_list
    assert [node.id for node in as_dict.outputs] == ["yhat", "penalty"]
    with pytest.raises(SymrnnError, match="not a name"):
        graph({yhat + lam: x * y})


def test_operand_order_is_kept_for_non_commutative_operations() -> None:
    A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    assert graph(matmul(A, B)).operands("u1") == ("A", "B")
    assert graph(matmul(B, A)).operands("u1") == ("B", "A")
    assert graph(x**y).operands("u1") == ("x", "y")
    assert graph(y**x).operands("u1") == ("y", "x")


def test_negation_scalar_factors_constants_and_parameters() -> None:
    A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    assert [node.op for node in graph(x - y).nodes if node.op] == ["neg", "add"]
    scaled = graph(2 * matmul(A, B))
    assert [(node.op, scaled.operands(node.id)) for node in scaled.nodes if node.op] == [
        ("matmul", ("A", "B")),
        ("mul", ("c1", "u1")),
    ]
    g = graph(2 * x + 2 * y, params=[y])
    kinds = {node.id: node.kind for node in g.nodes}
    assert kinds == {"c1": "constant", "x": "input", "y": "parameter"} | {
        "u1": "intermediate",
        "u2": "intermediate",
        "u3": "output",
    }


def test_recurrence_step_with_time_atoms() -> None:
    h, xt = time_function("h"), time_function("x")
    w, u = sp.symbols("w u")
    g = graph(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * xt(t) + b)), params=[w, u, b])
    assert g.node("h__tm1").label_latex == "h^{(t-1)}"
    assert g.node("h__t").op == "tanh"
    assert "<I>h</I><SUP>(t&minus;1)</SUP>" in g.to_dot()
    hv = vector("h", 3)
    V = sp.MatrixSymbol("V", 3, 3)
    gv = graph(sp.Eq(hv(t), relu(V * hv(t - 1))))
    assert gv.node("h__tm1").label_html == "<B><I>h</I></B><SUP>(t&minus;1)</SUP>"
    assert [node.op for node in gv.nodes if node.op] == ["matmul", "relu"]


def test_deep_expressions_need_no_recursion() -> None:
    f, theta = sp.Function("f"), sp.Symbol("theta")
    expr = x
    for _ in range(3000):
        expr = f(expr, theta)
    g = graph(expr)
    assert len(g.nodes) == 3002 and g.nodes[-1].id == "u3000"
    assert g.operands("u3000") == ("u2999", "theta")


# --- labels and DOT text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "latex", "html"),
    [
        (sp.Symbol("theta"), "\\theta", "&theta;"),
        (sp.Symbol("lambda"), "\\lambda", "&lambda;"),
        (sp.Symbol("Omega"), "\\Omega", "&Omega;"),
        (sp.Symbol("yhat"), "\\hat{y}", "<I>y&#770;</I>"),
        (sp.Symbol("W_12"), "W_{12}", "<I>W</I><SUB>12</SUB>"),
        (sp.Symbol("loss"), "loss", "loss"),
        (sp.MatrixSymbol("W", 3, 3), "\\mathbf{W}", "<B><I>W</I></B>"),
        (time_function("h")(t), "h^{(t)}", "<I>h</I><SUP>(t)</SUP>"),
        (time_function("s")(3), "s^{(3)}", "<I>s</I><SUP>(3)</SUP>"),
        (sp.Integer(-1), "-1", "&minus;1"),
        (sp.Rational(1, 2), "\\frac{1}{2}", "1/2"),
        (sp.pi, "\\pi", "&pi;"),
    ],
)
def test_variable_labels_in_the_books_notation(expr: Any, latex: str, html: str) -> None:
    assert variable_labels(expr) == (latex, html)


@pytest.mark.parametrize("key", sorted(FIGURES))
def test_dot_text_is_stable_ascii_with_readable_ids(key: str) -> None:
    first, again = figure(key).to_dot(), figure(key).to_dot()
    assert first == again
    first.encode("ascii")
    assert first.startswith(f'digraph "fig_6_8_{key}" {{\n') and first.endswith("}\n")
    assert "0x" not in first and "Dummy" not in first


def test_operation_name_is_drawn_once_per_operation() -> None:
    g = graph(x * y * z)
    assert [e.label for e in g.edges] == ["\u00d7"] * 3
    dot_text = g.to_dot()
    assert dot_text.count("label=<&times;>") == 1
    assert '"y" -> "u1" [label=<&times;>];' in dot_text


def test_edge_styles_fit_backward_and_delay_edges() -> None:
    assert EDGE_STYLES == ("forward", "backward", "delay")
    h = time_function("h")
    nodes = (
        Node("h", "h^{(t)}", "output", "f", h(t)),
        Node("grad_h", "\\nabla_{h} L", "intermediate"),
    )
    folded = Graph(
        nodes,
        (Edge("h", "h", style="delay"), Edge("grad_h", "h", "grad", style="backward")),
        name="folded",
        attrs=(("rankdir", "LR"),),
    )
    text = folded.to_dot()
    assert 'graph [rankdir="LR"];' in text
    assert '"h":se -> "h":ne [dir="both", arrowtail="box"];' in text  # a loop on the right
    assert '"grad_h" -> "h" [label=<grad>, style="dashed", color="#b03a2e"];' in text
    assert folded.operands("h") == ("h",)
    assert folded.node("h").label_html == "<I>h</I><SUP>(t)</SUP>"  # derived from the name h(t)
    assert topological_order(folded) is None
    with pytest.raises(SymrnnError, match="style 'dashed'"):
        Edge("a", "b", style="dashed")
    with pytest.raises(SymrnnError, match="kind 'op'"):
        Node("a", "a", "op")
    with pytest.raises(SymrnnError, match="names node 'q'"):
        Graph(nodes, (Edge("h", "q"),))
    with pytest.raises(SymrnnError, match="two nodes with id 'h'"):
        Graph(nodes + nodes[:1], ())


def test_graph_is_immutable_and_hashable() -> None:
    g = figure("b")
    with pytest.raises(AttributeError):
        g.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        g.nodes[0].id = "q"  # type: ignore[misc]
    assert hash(g) == hash(figure("b")) and g == figure("b")
    assert graph(g) is g


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "nothing to draw"),
        ([sp.Eq(z, x * y), sp.Eq(z, x + y)], "defines z a second time"),
        ([sp.Eq(z, x * y), sp.Eq(y, x + 1)], "uses y, which equation 2 defines"),
        ([sp.Eq(z, sp.tanh(z))], "use sr.Recurrence"),
        ([sp.Eq(z, x)], "another name for x"),
        ([sp.Eq(z, x * y), sp.Eq(y + z, x)], "not a name"),
        ([sp.Eq(z, x * y), sp.Eq(sp.Symbol("v"), x * y)], "compute the same variable"),
        ([sp.Piecewise((x, y > 0), (y, True))], "cannot draw Piecewise"),
    ],
)
def test_bad_input_gets_one_line_errors(items: list[Any], message: str) -> None:
    with pytest.raises(SymrnnError, match=message) as info:
        graph(items)
    assert "\n" not in str(info.value)


def test_unsupported_objects_raise_type_error() -> None:
    with pytest.raises(TypeError, match="cannot draw a int"):
        graph(3)
    with pytest.raises(TypeError, match="item 1 of the equations is a str"):
        graph(["x*y"])


# --- meaning: evaluate the graph and the expression, two routes --------------------------------


class _ElementwisePrinter(NumPyPrinter):
    """NumPy printer that also prints elementwise maps (SymPy prints them Julia-style)."""

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:  # noqa: N802
        (var,) = expr.function.variables
        body = self._print(expr.function.expr)
        return f"(lambda {self._print(var)}: {body})({self._print(expr.expr)})"


def _product(*args: Any) -> Any:
    return functools.reduce(lambda p, q: p * q, args)


NUMPY_OPS = {
    "add": lambda *args: functools.reduce(lambda p, q: p + q, args),
    "mul": _product,
    "neg": lambda v: -v,
    "pow": lambda base, e: base**e,
    "matmul": lambda *args: functools.reduce(lambda p, q: p @ q, args),
    "dot": lambda a, c: float((np.asarray(a).T @ np.asarray(c)).item()),
    "sum": lambda v: float(sum(np.ravel(v))),
    "sqr": lambda v: v * v,
    "sigmoid": lambda v: 0.5 * (1 + np.tanh(v / 2)),
    "relu": lambda v: np.where(v > 0, v, 0.0),
    "tanh": np.tanh,
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "transpose": lambda v: v.T,
    "hadamard": _product,
}


def _evaluate_graph(g: Graph, leaves: dict[Any, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for node in g.nodes:
        if node.op is None:
            values[node.id] = float(node.expr) if node.kind == "constant" else leaves[node.expr]
        else:
            values[node.id] = NUMPY_OPS[node.op](*(values[src] for src in g.operands(node.id)))
    return values


def _evaluate_equations(items: list[Any], leaves: dict[Any, Any]) -> list[Any]:
    env = dict(leaves)
    results = []
    for item in items:
        lhs, rhs = (item.lhs, item.rhs) if isinstance(item, sp.Eq) else (None, item)
        symbols = [s for s in env if rhs.has(s)]
        function = sp.lambdify(symbols, rhs, modules="numpy", printer=_ElementwisePrinter)
        value = function(*(env[s] for s in symbols))
        results.append(value)
        if lhs is not None:
            env[lhs] = value
    return results


_rng = np.random.default_rng(20260)
_h, _xt = time_function("h"), time_function("x")
_A, _B, _C = sp.MatrixSymbol("A", 3, 2), sp.MatrixSymbol("B", 2, 3), sp.MatrixSymbol("C", 3, 3)
_a, _c = sp.symbols("a c")
LEAF_VALUES: dict[Any, Any] = {
    x: 0.7,
    y: -1.3,
    z: 0.4,
    b: 0.25,
    lam: 0.01,
    x_vec: _rng.normal(size=(4, 1)),
    w_vec: _rng.normal(size=(4, 1)),
    X: _rng.normal(size=(5, 4)),
    W: _rng.normal(size=(4, 3)),
    b_mat: _rng.normal(size=(1, 3)),  # broadcast over the rows of XW, as in the book
    _h(t - 1): -0.35,
    _xt(t): 1.1,
    sp.Symbol("w"): 0.9,
    sp.Symbol("u"): -0.6,
    _A: _rng.normal(size=(3, 2)),
    _B: _rng.normal(size=(2, 3)),
    _C: _rng.normal(size=(3, 3)),
}

NUMERIC_CASES: dict[str, list[Any]] = {
    **{f"fig_6_8_{key}": items for key, items in FIGURES.items()},
    "rnn_step": [sp.Eq(_h(t), sp.tanh(sp.Symbol("w") * _h(t - 1) + sp.Symbol("u") * _xt(t) + b))],
    "scalar_mix": [(x - y) ** 2 / (2 * x) + sp.pi / 2 * sp.exp(-x) + sp.sqrt(z) - sp.cos(x * y)],
    "chained": [sp.Eq(_a, x * y), sp.Eq(_c, sp.sin(_a) + _a**2), _c * x - _a],
    "matrices": [sp.HadamardProduct(sigmoid(-matmul(_A, _B)), _C).T + 2 * _C],
}


@pytest.mark.parametrize("case", sorted(NUMERIC_CASES))
def test_graph_evaluates_to_the_expression(case: str) -> None:
    items = NUMERIC_CASES[case]
    g = graph(items)
    via_graph = _evaluate_graph(g, LEAF_VALUES)
    via_sympy = _evaluate_equations(items, LEAF_VALUES)
    assert len(g.outputs) == len(items)
    for output, expected in zip(g.outputs, via_sympy, strict=True):
        np.testing.assert_allclose(via_graph[output.id], expected, rtol=1e-12, atol=1e-14)


# --- rendering --------------------------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert chunk == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


@needs_dot
@pytest.mark.parametrize("key", sorted(FIGURES))
def test_render_png_and_svg(tmp_path: Path, key: str) -> None:
    g = figure(key)
    png = g.render(tmp_path / "figure.png")
    width, height = _png_size(png.read_bytes())
    assert width > 0 and height > 0
    svg = g.render(str(tmp_path / "figure.svg"))
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "figure.svg"]
    mask = os.umask(0)
    os.umask(mask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~mask  # not the temporary file's 0600
    os.chmod(svg, 0o640)
    assert g.render(svg).stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode


@needs_dot
def test_render_pdf_and_repr_svg(tmp_path: Path) -> None:
    g = figure("d")
    assert g.render(tmp_path / "d.PDF").read_bytes().startswith(b"%PDF")
    svg = g._repr_svg_()
    assert svg is not None
    assert ET.fromstring(svg.encode()).tag.endswith("svg")


def test_render_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(SymrnnError, match="unknown suffix '.jpg'; use one of .svg, .png, .pdf"):
        figure("a").render(tmp_path / "a.jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["which", "PATH"])
def test_missing_dot_raises_tool_missing_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "which":
        monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    else:
        monkeypatch.setenv("PATH", str(tmp_path / "no-such-dir"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ToolMissing, match="apt-get install graphviz") as info:
        figure("b").render(out / "b.svg")
    assert "brew install graphviz" in str(info.value)
    assert list(out.iterdir()) == []
    assert figure("b")._repr_svg_() is None


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX shell script as a fake dot")
def test_failing_dot_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(
        '#!/bin/sh\nfor a; do out="$a"; done\necho partial > "$out"\n'
        'echo "Error: syntax error in line 1" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SymrnnError, match="status 1: Error: syntax error in line 1"):
        figure("a").render(out / "a.png")
    assert list(out.iterdir()) == []


# --- the example --------------------------------------------------------------------------------


def test_example_fig_6_8_runs_and_writes_the_golden_graphs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "02_fig_6_8_graphs.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for key in sorted(FIGURES):
        assert (tmp_path / f"fig_6_8_{key}.dot").read_bytes() == (
            GOLDEN / f"fig_6_8_{key}.dot"
        ).read_bytes()
        assert (tmp_path / f"fig_6_8_{key}.svg").exists() == HAVE_DOT


# --- graphs of recurrences: Fig. 10.2, Fig. 10.3 and BPTT ------------------------------------

_f, _theta = sp.Function("f"), sp.Symbol("theta", real=True)


def fig_10_2() -> sr.Recurrence:
    """h(t) = f(h(t-1), x(t); theta): Fig. 10.2 and the lecture's RNN slide."""
    h, xt = time_function("h"), time_function("x")
    return sr.Recurrence(sp.Eq(h(t), _f(h(t - 1), xt(t), _theta)), name="fig_10_2")


def fig_10_3() -> sr.Recurrence:
    return sr.cells.elman(3, inputs=2, outputs=2)


def fig_10_3_loss() -> sp.Expr:
    """Softmax cross-entropy of o(t) against the targets y(t), per step (eq. 10.11-10.14)."""
    return sr.softmax_cross_entropy(vector("o", 2)(t), vector("y", 2)(t))


def rnn_bptt(steps: int = 3) -> sr.BPTT:
    rnn = sr.cells.rnn()
    U = sr.unfold(rnn, steps)
    (h,) = rnn.states
    return sr.bptt(U, sr.total_loss(U, (h(t) - time_function("y")(t)) ** 2 / 2))


def fig_10_3_bptt() -> sr.BPTT:
    U = sr.unfold(fig_10_3(), 3)
    return sr.bptt(U, sr.total_loss(U, fig_10_3_loss()))


#: Golden graphs of recurrences; the examples write the fig_10_* and rnn_* ones.
RECURRENCE_GRAPHS: dict[str, Callable[[], Graph]] = {
    "fig_10_2_folded": lambda: graph(fig_10_2(), name="fig_10_2_folded"),
    "fig_10_2_unfolded": lambda: graph(sr.unfold(fig_10_2(), 3), name="fig_10_2_unfolded"),
    "fig_10_3_folded": lambda: graph(fig_10_3(), loss=fig_10_3_loss(), name="fig_10_3_folded"),
    "fig_10_3_unfolded": lambda: graph(
        sr.unfold(fig_10_3(), 3), loss=fig_10_3_loss(), name="fig_10_3_unfolded"
    ),
    "fig_10_3_bptt": lambda: graph(fig_10_3_bptt(), name="fig_10_3_bptt"),
    "graph_rnn_folded": lambda: graph(sr.cells.rnn()),
    "graph_rnn_unfolded": lambda: graph(sr.unfold(sr.cells.rnn(), 3)),
    "graph_rnn_unfolded_20": lambda: graph(sr.unfold(sr.cells.rnn(), 20), name="rnn_unfolded_20"),
    "graph_second_order_folded": lambda: graph(sr.cells.second_order()),
    "graph_rnn_bptt": lambda: graph(rnn_bptt()),
    "graph_gru_unfolded": lambda: graph(sr.unfold(sr.cells.gru(3), 3)),
    "graph_lstm_unfolded": lambda: graph(sr.unfold(sr.cells.lstm(3), 3)),
}

#: Every ready-made cell, scalar and vector.
CELLS: dict[str, Callable[[], sr.Recurrence]] = {
    "autonomous": sr.cells.autonomous,
    "driven": sr.cells.driven,
    "rnn": sr.cells.rnn,
    "elman_outputs": lambda: sr.cells.elman(outputs=1),
    "elman_vector": fig_10_3,
    "jordan": sr.cells.jordan,
    "jordan_vector": lambda: sr.cells.jordan(2),
    "linear_vector": lambda: sr.cells.linear(2),
    "gru": sr.cells.gru,
    "gru_vector": lambda: sr.cells.gru(2),
    "lstm": sr.cells.lstm,
    "fibonacci": sr.cells.fibonacci,
    "second_order": sr.cells.second_order,
    "coupled": sr.cells.coupled,
    "fig_10_2": fig_10_2,
}


def _group(rec: sr.Recurrence) -> Callable[[Any], str]:
    """The drawn quantity of a time function: its vector's name, or its own name."""
    vector_of = {f: name for name, parts in rec.vectors.items() for f in parts}
    return lambda func: vector_of.get(func, func.__name__)


def _at(name: str, time: int) -> str:
    return f"{name}__{time}" if time >= 0 else f"{name}__m{-time}"


@pytest.mark.parametrize("key", sorted(RECURRENCE_GRAPHS))
def test_recurrence_graphs_match_golden_dot(key: str) -> None:
    path = GOLDEN / f"{key}.dot"
    text = RECURRENCE_GRAPHS[key]().to_dot()
    if os.environ.get("SYMRNN_UPDATE_GOLDEN"):
        path.write_bytes(text.encode("ascii"))
    assert text.encode("ascii") == path.read_bytes()
    assert text == RECURRENCE_GRAPHS[key]().to_dot()  # stable


def test_folded_rnn_is_fig_10_2_left() -> None:
    g = graph(sr.cells.rnn())
    assert g.name == "rnn" and [n.id for n in g.nodes] == ["x", "h"]
    assert [(n.label_latex, n.kind, n.op) for n in g.nodes] == [
        ("x", "input", None),
        ("h", "intermediate", "tanh"),
    ]
    assert g.node("h").expr == sr.cells.rnn().display[0].rhs
    assert g.edges == (
        Edge("h", "h", "w", "delay", 1, "<I>w</I>"),
        Edge("x", "h", "u", "forward", 0, "<I>u</I>"),
    )
    assert g.operands("h") == ("h", "x")
    assert '"h":se -> "h":ne [label=<<I>w</I>>, dir="both", arrowtail="box"];' in g.to_dot()


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_delay_edges_exactly_for_lagged_dependencies(cell: str) -> None:
    rec = CELLS[cell]()
    group = _group(rec)
    expected = {
        (group(a.func), group(eq.lhs.func), int(t - time_of(a)))
        for eq in rec.equations
        for a in time_atoms(eq.rhs)
    }
    g = graph(rec)
    assert {(e.src, e.dst, e.lag) for e in g.edges} == expected
    assert all((e.style == "delay") == (e.lag > 0) for e in g.edges)
    assert len({n.id for n in g.nodes}) == len(rec.vectors) + len(
        {group(f) for f in (*rec.defined, *rec.inputs)} - set(rec.vectors)
    )


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_unfolded_edges_are_the_chain_dependencies(cell: str) -> None:
    rec = CELLS[cell]()
    U = sr.unfold(rec, 4)
    group = _group(rec)
    expected = set()
    for eq in U.equations:
        dst = _at(group(eq.lhs.func), int(time_of(eq.lhs)))
        for a in time_atoms(eq.rhs):
            k = int(time_of(a))
            expected.add((_at(group(a.func), k), dst, int(time_of(eq.lhs)) - k))
    g = graph(U)
    assert {(e.src, e.dst, e.lag) for e in g.edges} == expected
    assert {e.style for e in g.edges} == {"forward"}  # no delays once unfolded
    # One node per quantity per step: the defined ones computed, the initial states inputs.
    for k in range(1, 5):
        at_k = {n.id for n in g.nodes if n.id.endswith(f"__{k}")}
        assert at_k == {_at(group(f), k) for f in (*rec.defined, *rec.inputs)} & {
            n.id for n in g.nodes
        }
        assert {_at(group(f), k) for f in rec.defined} <= at_k
    initial = {_at(group(a.func), int(time_of(a))) for a in U.initial}
    assert {n.id for n in g.nodes if int(n.id.rpartition("__")[2].replace("m", "-")) <= 0} == (
        initial
    )
    assert all(g.node(i).kind == "input" and g.node(i).op is None for i in initial)
    assert topological_order(g) is not None


def test_vector_nodes_hold_the_chain_equations_of_their_components() -> None:
    rec = fig_10_3()
    U = sr.unfold(rec, 2)
    g = graph(U)
    h2 = g.node("h__2")
    assert h2.label_latex == "\\mathbf{h}^{(2)}" and h2.op == "tanh"
    assert h2.label_html == "<B><I>h</I></B><SUP>(2)</SUP>"
    assert h2.expr == sp.ImmutableMatrix([U.definitions[f(2)] for f in rec.vectors["h"]])
    assert g.node("x__1").expr == VectorAt("x", 1, 2)
    assert g.node("o__1").op == "add" and g.node("o__1").kind == "output"


def test_unfolded_fig_10_3_with_losses_and_targets() -> None:
    g = RECURRENCE_GRAPHS["fig_10_3_unfolded"]()
    U = sr.unfold(fig_10_3(), 3)
    for k in (1, 2, 3):
        assert {n.id for n in g.nodes if n.id.endswith(f"__{k}")} == {f"{q}__{k}" for q in "xhoLy"}
        assert g.operands(f"L__{k}") == (f"o__{k}", f"y__{k}")
        assert g.node(f"L__{k}").expr == sr.losses.expand_losses(U.instantiate(fig_10_3_loss(), k))
        assert (g.node(f"L__{k}").kind, g.node(f"y__{k}").kind) == ("intermediate", "input")
        assert g.node(f"y__{k}").label_latex == f"\\mathbf{{y}}^{{({k})}}"
    assert g.operands("L") == ("L__1", "L__2", "L__3") and g.node("L").kind == "output"
    assert [n.id for n in g.outputs] == ["o__1", "o__2", "o__3", "L"]
    assert len(g.nodes) == 5 * 3 + 2  # five per step, h^(0) and the total loss
    # Drawn bottom to top: x, h, o, L^(t), the targets above them, the total loss on top.
    assert [row[0] for row in g.ranks] == ["x__1", "h__0", "o__1", "L__1", "y__1", "L"]
    text = g.to_dot()
    assert '"L__2" -> "y__2" [dir="back"];' in text
    assert text.count('[style="invis"]') == 1 and '"y__3" -> "L" [style="invis"];' in text
    assert g.columns[1] == ("x__1", "h__1", "o__1", "L__1", "y__1")
    assert '"h__1" [label=<<B><I>h</I></B><SUP>(1)</SUP>>, group="c1"];' in text


def test_loss_as_a_template_or_as_the_total_gives_one_graph() -> None:
    rec = sr.cells.elman(outputs=1)
    U = sr.unfold(rec, 3)
    o, y = time_function("o"), time_function("y")
    per_step = (o(t) - y(t)) ** 2 / 2
    assert graph(U, loss=per_step) == graph(U, loss=sr.total_loss(U, per_step))
    # A loss that is not a sum over steps is one node L.
    g = graph(U, loss=o(3) ** 2 + o(1) * o(2))
    assert [n.id for n in g.nodes if n.id.startswith("L")] == ["L"]
    assert g.operands("L") == ("o__1", "o__2", "o__3")
    assert g.node("L").op == "loss"


def test_initial_states_given_values_are_not_drawn() -> None:
    rec = sr.cells.rnn()
    (h,) = rec.states
    g = graph(sr.unfold(rec, 2, init={h(0): 0}))
    assert "h__0" not in {n.id for n in g.nodes}
    assert g.operands("h__1") == ("x__1",) and g.operands("h__2") == ("h__1", "x__2")


@pytest.mark.parametrize(
    ("cell", "labels"),
    [
        ("rnn", {("h", "h", 1): "w", ("x", "h", 0): "u"}),
        ("elman_vector", {("h", "h", 1): "W", ("x", "h", 0): "U", ("h", "o", 0): "V"}),
        ("jordan_vector", {("o", "h", 1): "W", ("x", "h", 0): "U", ("h", "o", 0): "V"}),
        ("fig_10_2", {("h", "h", 1): "f", ("x", "h", 0): "f"}),
        ("autonomous", {("s", "s", 1): "f"}),
        ("second_order", {("h", "h", 1): "a", ("h", "h", 2): "c", ("x", "h", 0): "u"}),
        (
            "coupled",
            {("p", "p", 1): "a", ("q", "p", 1): "b", ("x", "p", 0): "tanh", ("q", "q", 1): "σ"},
        ),
        (
            "gru_vector",
            {("h", "z", 1): "W_z", ("x", "g", 0): "U_g", ("r", "g", 0): "tanh", ("z", "h", 0): ""},
        ),
        ("fibonacci", {("s", "s", 1): "", ("s", "s", 2): ""}),
    ],
)
def test_edges_are_labelled_by_the_parameter_or_function(cell: str, labels: dict) -> None:
    """The parameter a dependency goes through (linear in it), else the function around it."""
    found = {(e.src, e.dst, e.lag): e.label for e in graph(CELLS[cell]()).edges}
    assert {key: found[key] for key in labels} == labels


def test_edge_labels_are_in_the_books_notation() -> None:
    g = graph(fig_10_3())
    assert [e.label_html for e in g.edges] == [
        "<B><I>W</I></B>",
        "<B><I>U</I></B>",
        "<B><I>V</I></B>",
    ]
    gru = graph(sr.cells.gru())
    assert {e.label_html for e in gru.edges if e.label == "u_z"} == {"<I>u</I><SUB><I>z</I></SUB>"}
    assert [e.label_html for e in graph(fig_10_2()).edges] == ["<I>f</I>", "<I>f</I>"]
    # In the unfolded Fig. 10.2, f is written once per step, on the arrow from h^(t-1).
    text = RECURRENCE_GRAPHS["fig_10_2_unfolded"]().to_dot()
    assert '"h__1" -> "h__2" [label=<<I>f</I>>];' in text and '"x__2" -> "h__2";' in text


def test_second_order_delays_have_one_square_per_step() -> None:
    g = graph(sr.cells.second_order())
    assert [(e.src, e.dst, e.style, e.lag) for e in g.edges] == [
        ("h", "h", "delay", 1),
        ("h", "h", "delay", 2),
        ("x", "h", "forward", 0),
    ]
    text = g.to_dot()
    assert '"h":se -> "h":ne [label=<<I>a</I>>, dir="both", arrowtail="box"];' in text
    assert '"h":sw -> "h":nw [label=<<I>c</I>>, dir="both", arrowtail="boxbox"];' in text
    unfolded = graph(sr.unfold(sr.cells.second_order(), 3))
    assert unfolded.operands("h__1") == ("h__0", "h__m1", "x__1")
    assert unfolded.node("h__m1").label_latex == "h^{(-1)}"


def test_jordan_feedback_is_drawn_downwards_against_the_rows() -> None:
    g = graph(sr.cells.jordan())
    assert g.ranks == (("x",), ("h",), ("o",))
    assert '"h" -> "o" [label=<<I>w</I>>, dir="both", arrowhead="box", arrowtail="normal"];' in (
        g.to_dot()
    )


def test_parameters_are_shared_nodes_when_asked_for() -> None:
    rec = fig_10_3()
    U = sr.unfold(rec, 3)
    assert not [n for n in graph(U).nodes if n.kind == "parameter"]
    g = graph(U, params=True)
    params = [n for n in g.nodes if n.kind == "parameter"]
    assert [n.id for n in params] == list(rec.param_groups) == ["U", "V", "W", "b", "c"]
    assert g.node("W").expr == sp.MatrixSymbol("W", 3, 3)
    assert g.node("W").label_latex == "\\mathbf{W}"
    assert sorted(e.dst for e in g.edges if e.src == "W") == ["h__1", "h__2", "h__3"]
    assert sorted(e.dst for e in g.edges if e.src == "V") == ["o__1", "o__2", "o__3"]
    folded = graph(rec, params=True)
    assert [(e.src, e.dst) for e in folded.edges if folded.node(e.src).kind == "parameter"] == [
        ("U", "h"),
        ("W", "h"),
        ("b", "h"),
        ("V", "o"),
        ("c", "o"),
    ]
    scalar = graph(sr.unfold(sr.cells.rnn(), 2), params=True)
    assert Counter(n.id for n in scalar.nodes)["w"] == 1
    assert scalar.operands("h__2") == ("h__1", "x__2", "b", "u", "w")


@pytest.mark.parametrize("steps", [3, 12])
def test_bptt_backward_edges_are_the_adjoint_terms(steps: int) -> None:
    B = rnn_bptt(steps)
    g = graph(B, full=True)
    ids = {n.id for n in g.nodes}

    def node(var: Any) -> str:
        return g.node_of(Adjoint(var)).id

    expected = Counter(
        (node(u.args[0]), node(eq.lhs.args[0]))
        for eq in (*B.adjoints, *B.gradients)
        for u in eq.rhs.atoms(Adjoint)
    )
    backward = [e for e in g.edges if e.style == "backward"]
    assert Counter((e.src, e.dst) for e in backward if e.src != "L") == expected
    direct = {
        node(eq.lhs.args[0])
        for eq in (*B.adjoints, *B.gradients)
        if any(not term.has(Adjoint) for term in sp.Add.make_args(eq.rhs))
    }
    assert (
        {e.dst for e in backward if e.src == "L"}
        == direct
        == {f"dL_dh__{k}" for k in range(1, steps + 1)}
    )
    assert {f"dL_dh__{k}" for k in range(1, steps + 1)} | {"dL_dw", "dL_du", "dL_db"} == {
        n.id for n in g.nodes if n.kind == "adjoint"
    }
    assert "dL_dh__0" not in ids  # not asked for
    # The forward part is the unfolded graph with the loss.
    forward = graph(B.unfolded, loss=B.loss, full=True)
    assert [e for e in g.edges if e.style != "backward"] == list(forward.edges)
    assert (
        g.node("dL_dh__2").expr
        == dict((eq.lhs, eq.rhs) for eq in B.adjoints)[Adjoint(B.unfolded.recurrence.states[0](2))]
    )
    assert g.node("dL_dh__2").label_latex == "\\frac{\\partial L}{\\partial h^{(2)}}"
    assert g.node("dL_dh__2").label_html == "&part;<I>L</I>/&part;<I>h</I><SUP>(2)</SUP>"
    text = g.to_dot()
    assert '"dL_dh__2" -> "dL_dh__3" [dir="back", style="dashed", color="#b03a2e"];' in text


def test_bptt_of_a_vector_cell_groups_component_adjoints() -> None:
    B = fig_10_3_bptt()
    g = graph(B)
    backward = {(e.src, e.dst) for e in g.edges if e.style == "backward"}
    assert ("dL_dh__3", "dL_dh__2") in backward and ("dL_do__2", "dL_dh__2") in backward
    assert {(s, d) for s, d in backward if s == "L"} == {("L", f"dL_do__{k}") for k in (1, 2, 3)}
    assert {d for s, d in backward if d in ("dL_dW", "dL_dV")} == {"dL_dW", "dL_dV"}
    h = fig_10_3().vectors["h"]
    value = g.node("dL_dh__2").expr
    assert value.shape == (3, 1)
    assert list(value) == [dict((eq.lhs, eq.rhs) for eq in B.adjoints)[Adjoint(f(2))] for f in h]
    assert g.node_of(Adjoint(VectorAt("h", 2, 3))).id == "dL_dh__2"
    # Rows bottom to top: the forward graph, then dL/do, dL/dh, then the gradients.
    assert [row[0] for row in g.ranks][-3:] == ["dL_do__1", "dL_dh__1", "dL_dU"]


def test_bptt_with_respect_to_the_initial_state() -> None:
    rec = sr.cells.rnn()
    (h,) = rec.states
    U = sr.unfold(rec, 2)
    B = sr.bptt(U, h(2), wrt=[h(0), sp.Symbol("w", real=True)])
    g = graph(B)
    assert [n.id for n in g.nodes if n.kind == "adjoint"] == [
        "dL_dh__0",
        "dL_dh__1",
        "dL_dh__2",
        "dL_dw",
    ]
    assert g.in_edges("dL_dh__0") == (Edge("dL_dh__1", "dL_dh__0", style="backward"),)
    assert g.operands("L") == ("h__2",)


def test_long_unfoldings_collapse_to_ellipses() -> None:
    rnn = sr.cells.rnn()
    g = graph(sr.unfold(rnn, 20))
    assert MAX_DRAWN_STEPS == 6
    assert [n.id for n in g.nodes] == [
        "h__0", "x__1", "h__1", "x__2", "h__2", "x__dots", "h__dots",
        "x__19", "h__19", "x__20", "h__20",
    ]  # fmt: skip
    dots = g.node("h__dots")
    assert (dots.kind, dots.label_latex, dots.op, dots.expr) == (
        "ellipsis",
        "h^{(\\dots)}",
        None,
        None,
    )
    assert dots.label_html == "<I>h</I><SUP>(&hellip;)</SUP>"
    assert [(e.src, e.dst, e.label) for e in g.edges if "dots" in e.src + e.dst] == [
        ("h__2", "h__dots", "w"),
        ("x__dots", "h__dots", "u"),
        ("h__dots", "h__19", "w"),
    ]
    assert '"h__dots" [label=<<I>h</I><SUP>(&hellip;)</SUP>>, style="dotted", group="c3"];' in (
        g.to_dot()
    )
    assert len(graph(sr.unfold(rnn, 20), full=True).nodes) == 41
    assert len(graph(sr.unfold(rnn, 20), max_steps=20).nodes) == 41
    assert len(graph(sr.unfold(rnn, 6)).nodes) == 13  # at the limit: all drawn
    assert [n.id for n in graph(sr.unfold(rnn, 5), max_steps=4).nodes if n.id[0] == "h"] == [
        "h__0", "h__1", "h__2", "h__dots", "h__4", "h__5",
    ]  # fmt: skip
    B = graph(rnn_bptt(12))
    assert {n.id for n in B.nodes if "dots" in n.id} == {
        "x__dots",
        "h__dots",
        "L__dots",
        "y__dots",
        "dL_dh__dots",
    }
    assert ("dL_dh__dots", "dL_dh__2") in {(e.src, e.dst) for e in B.edges}
    assert ("dL_dh__11", "dL_dh__dots") in {(e.src, e.dst) for e in B.edges}


def test_long_unfoldings_are_drawn_in_linear_time() -> None:
    U = sr.unfold(sr.cells.rnn(), 500)
    g = graph(U)
    assert len(g.nodes) == 11
    assert len(graph(U, full=True).nodes) == 1001


def test_node_of_in_and_out_edges() -> None:
    rnn = sr.cells.rnn()
    (h,), (xt,) = rnn.states, rnn.inputs
    g = graph(sr.unfold(rnn, 3))
    assert g.node_of(h(2)).id == "h__2" and g.node_of("x__1").id == "x__1"
    assert g.in_edges("h__2") == (
        Edge("h__1", "h__2", "w", lag=1, label_html="<I>w</I>"),
        Edge("x__2", "h__2", "u", label_html="<I>u</I>"),
    )
    assert [e.dst for e in g.out_edges("h__2")] == ["h__3"]
    assert graph(rnn).node_of(h(t)).id == "h"
    assert graph(rnn).node_of(xt(t)).id == "x"
    g3 = graph(sr.unfold(fig_10_3(), 2))
    assert g3.node_of(VectorAt("h", 2, 3)).id == "h__2"
    with pytest.raises(KeyError, match="components"):
        g3.node_of(fig_10_3().vectors["h"][0](2))
    with pytest.raises(KeyError, match="no node 'q'"):
        g.in_edges("q")
    assert graph(sp.Eq(z, x * y)).node_of(z).id == "z"


def test_every_node_kind_is_drawn() -> None:
    g = graph(rnn_bptt(8), params=True)
    assert {n.kind for n in g.nodes} == set(NODE_KINDS) - {"constant"}
    assert EDGE_STYLES == ("forward", "backward", "delay")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: graph(sr.cells.rnn(), params=["w"]), SymrnnError, "params=True"),
        (lambda: graph(x * y, params=True), SymrnnError, "for an expression give the leaves"),
        (lambda: graph(sr.unfold(sr.cells.rnn(), 2), max_steps=0), SymrnnError, "max_steps"),
        (lambda: graph(sr.unfold(sr.cells.rnn(), 2), max_steps=True), SymrnnError, "max_steps"),
        (lambda: graph(sr.unfold(sr.cells.rnn(), 2), full="yes"), SymrnnError, "full must be"),
        (lambda: graph(sr.unfold(sr.cells.rnn(), 2), loss="h(t)**2"), SymrnnError, "not a SymPy"),
        (
            lambda: graph(sr.cells.rnn(), loss=sr.cells.rnn().states[0](2) ** 2),
            SymrnnError,
            "template in t",
        ),
        (lambda: graph(sr.cells.rnn(), max_steps=3), TypeError, "max_steps"),
        (lambda: Edge("a", "b", lag=-1), SymrnnError, "lag -1"),
        (
            lambda: Graph((Node("a", "a", "input"),), (), ranks=(("a", "b"),)),
            SymrnnError,
            "names node 'b'",
        ),
        (
            lambda: Graph((Node("a", "a", "input"),), (), columns=(("a",), ("a",))),
            SymrnnError,
            "in two columns",
        ),
    ],
)
def test_bad_recurrence_graph_options(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_dot_text_is_the_same_in_every_process() -> None:
    code = (
        "import symrnn as sr\n"
        "for rec in (sr.cells.gru(2), sr.cells.coupled()):\n"
        "    U = sr.unfold(rec, 3)\n"
        "    print(sr.graph(rec).to_dot(), sr.graph(U, full=True).to_dot())\n"
        "    print(sr.graph(sr.bptt(U, [e.lhs for e in U.equations][-1])).to_dot())\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


# --- rendering the book's figures and the examples ------------------------------------------------


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    width, height = _png_size(data)
    assert width > 0 and height > 0 and len(data) > 1000


def _check_svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def _svg_titles(root: ET.Element, cls: str) -> set[str]:
    ns = "{http://www.w3.org/2000/svg}"
    return {
        g.find(f"{ns}title").text or ""  # type: ignore[union-attr]
        for g in root.iter(f"{ns}g")
        if g.get("class") == cls
    }


BOOK_FIGURES: dict[str, Callable[[], Graph]] = {
    **{f"fig_6_8_{key}": functools.partial(figure, key) for key in sorted(FIGURES)},
    **{key: RECURRENCE_GRAPHS[key] for key in RECURRENCE_GRAPHS if key.startswith("fig_10")},
}


@needs_dot
@pytest.mark.parametrize("key", sorted(BOOK_FIGURES))
def test_render_every_book_figure_to_png_and_svg(tmp_path: Path, key: str) -> None:
    g = BOOK_FIGURES[key]()
    _check_png(g.render(tmp_path / f"{key}.png"))
    root = _check_svg(g.render(tmp_path / f"{key}.svg"))
    assert _svg_titles(root, "node") == {n.id for n in g.nodes}
    drawn = {
        frozenset(end.partition(":")[0] for end in title.split("->"))
        for title in _svg_titles(root, "edge")
    }
    assert drawn >= {frozenset((e.src, e.dst)) for e in g.edges}  # some drawn reversed


@pytest.mark.parametrize(
    ("script", "goldens"),
    [
        (
            "07_fig_10_2_graphs.py",
            {
                "fig_10_2_folded": "fig_10_2_folded",
                "fig_10_2_unfolded": "fig_10_2_unfolded",
                "rnn_folded": "graph_rnn_folded",
                "rnn_unfolded": "graph_rnn_unfolded",
                "rnn_unfolded_20": "graph_rnn_unfolded_20",
            },
        ),
        (
            "08_fig_10_3_graphs.py",
            {
                "fig_10_3_folded": "fig_10_3_folded",
                "fig_10_3_unfolded": "fig_10_3_unfolded",
                "fig_10_3_bptt": "fig_10_3_bptt",
            },
        ),
    ],
)
def test_examples_fig_10_write_the_golden_graphs(
    tmp_path: Path, script: str, goldens: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for written, golden in goldens.items():
        assert (tmp_path / f"{written}.dot").read_bytes() == (GOLDEN / f"{golden}.dot").read_bytes()
        if HAVE_DOT:
            _check_png(tmp_path / f"{written}.png")
            _check_svg(tmp_path / f"{written}.svg")
        else:
            assert not (tmp_path / f"{written}.svg").exists()


#: The committed pictures under docs/images/ and the graphs they show.
DOC_IMAGES: dict[str, Callable[[], Graph]] = {
    "rnn_folded": RECURRENCE_GRAPHS["graph_rnn_folded"],
    "rnn_unfolded": RECURRENCE_GRAPHS["graph_rnn_unfolded"],
    "rnn_unfolded_20": RECURRENCE_GRAPHS["graph_rnn_unfolded_20"],
    "rnn_bptt": RECURRENCE_GRAPHS["graph_rnn_bptt"],
    "gru_unfolded": RECURRENCE_GRAPHS["graph_gru_unfolded"],
    "lstm_unfolded": RECURRENCE_GRAPHS["graph_lstm_unfolded"],
    **{key: RECURRENCE_GRAPHS[key] for key in RECURRENCE_GRAPHS if key.startswith("fig_10")},
    **{f"fig_6_8_{key}": functools.partial(figure, key) for key in sorted(FIGURES)},
}


@pytest.mark.parametrize("name", sorted(DOC_IMAGES))
def test_docs_images_show_the_current_graphs(name: str) -> None:
    """The SVGs in docs/images/ draw today's graphs (SYMRNN_UPDATE_GOLDEN=1 redraws them)."""
    path = ROOT / "docs" / "images" / f"{name}.svg"
    g = DOC_IMAGES[name]()
    if os.environ.get("SYMRNN_UPDATE_GOLDEN") and HAVE_DOT:
        g.render(path)
    root = _check_svg(path)
    assert _svg_titles(root, "node") == {n.id for n in g.nodes}
    assert ET.parse(path).getroot().find("{http://www.w3.org/2000/svg}g") is not None


def test_readme_picture_is_committed() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/images/rnn_unfolded.svg" in readme
    assert (ROOT / "docs" / "images" / "rnn_unfolded.svg").is_file()


# --- figures for documents: resolution, TikZ, the command line --------------------------------


def _png_dimensions(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@needs_dot
def test_render_dpi_scales_a_png(tmp_path: Path) -> None:
    g = graph(sr.unfold(sr.cells.rnn(), 3))
    low = _png_dimensions(g.render(tmp_path / "low.png"))
    high = _png_dimensions(g.render(tmp_path / "high.png", dpi=192))
    assert high[0] == pytest.approx(2 * low[0], rel=0.05)  # Graphviz's default is 96 dpi
    assert high[1] == pytest.approx(2 * low[1], rel=0.05)
    with pytest.raises(SymrnnError, match="dpi=5 is out of range"):
        g.render(tmp_path / "bad.png", dpi=5)
    assert not (tmp_path / "bad.png").exists()


def _tikz_document(pictures: list[str]) -> str:
    body = "\n\n".join(f"\\resizebox{{\\textwidth}}{{!}}{{{p}}}" for p in pictures)
    return (
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage{tikz}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )


@needs_dot
def test_to_tikz_places_every_node_where_graphviz_does() -> None:
    g = graph(sr.cells.rnn())
    tikz = g.to_tikz()
    plain = subprocess.run(
        ["dot", "-Tplain"], input=g.to_dot(), capture_output=True, text=True, check=True
    ).stdout
    for line in plain.splitlines():
        words = line.split()
        if words[:1] == ["node"]:
            x, y = float(words[2]), float(words[3])
            label = g.node(words[1].strip('"')).label_latex
            assert f"\\node[black] at ({x:.3f},{y:.3f}) {{${label}$}};" in tikz
    assert tikz.count("\\draw[->]") == len(g.edges)  # both edges, with LaTeX labels
    assert "{$w$}" in tikz and "{$u$}" in tikz and "\\fill" in tikz  # the delay's square


@needs_dot
def test_to_tikz_compiles(tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    found = subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True, text=True)
    if not found.stdout.strip():
        pytest.skip("TikZ is not installed (texlive-pictures)")
    rnn = sr.cells.elman(3, inputs=2, outputs=2)
    o, y = vector("o", 2), vector("y", 2)
    loss = sr.softmax_cross_entropy(o(t), y(t))
    U = sr.unfold(rnn, 3)
    pictures = [
        graph(rnn).to_tikz(),
        graph(U, loss=loss).to_tikz(),
        graph(sr.bptt(U, sr.total_loss(U, loss))).to_tikz(),
        graph(sr.unfold(sr.cells.lstm(2), 3)).to_tikz(),
        graph(sp.tanh(sp.Symbol("x") * sp.Symbol("w"))).to_tikz(),
    ]
    assert "dashed" in pictures[2] and "\\partial L" in pictures[2]
    (tmp_path / "fig.tex").write_text(_tikz_document(pictures), encoding="utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "fig.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "fig.pdf").stat().st_size > 5_000


def test_cli_graph_bptt_draws_fig_10_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from symrnn.cli import main

    elman = str(ROOT / "examples" / "elman.toml")
    assert main(["graph", elman, "--bptt", "-o", str(tmp_path / "fig.dot")]) == 0
    dot = (tmp_path / "fig.dot").read_text(encoding="utf-8")
    assert '"L" -> "dL_do__4" [style="dashed"' in dot  # Fig. 10.3's backward edges
    assert '"dL_dh__1"' in dot and '"L__4"' in dot and '"y__4"' in dot
    # the model file's loss is drawn without --bptt too, and --loss replaces it
    assert main(["graph", elman, "--unfold", "2"]) == 0
    assert "y__2" in capsys.readouterr().out
    assert main(["graph", "h(t) = tanh(w*h(t-1) + x(t))", "--bptt", "2"]) == 2
    assert "needs a loss" in capsys.readouterr().err
    code = main(["graph", "h(t) = tanh(w*h(t-1) + x(t))", "--bptt", "2", "--loss", "h(t)**2"])
    assert code == 0 and "dL_dh__2" in capsys.readouterr().out
    assert main(["graph", elman, "-o", str(tmp_path / "x.png"), "--dpi", "3"]) == 2


# ------------------------------------------------- readable layouts of gated cells


def _positions(g: Graph) -> dict[str, tuple[float, float]]:
    """Node centres (x, y) in inches as Graphviz lays ``g`` out."""
    plain = subprocess.run(
        ["dot", "-Tplain"], input=g.to_dot(), capture_output=True, text=True, check=True
    ).stdout
    words = [line.split() for line in plain.splitlines()]
    return {w[1].strip('"'): (float(w[2]), float(w[3])) for w in words if w[:1] == ["node"]}


def _rank_of(g: Graph) -> dict[str, int]:
    return {node_id: r for r, row in enumerate(g.ranks) for node_id in row}


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_cell_state_has_its_own_row_above_the_hidden_state(peepholes: bool) -> None:
    y = vector("y", 3)
    for loss in (None, sr.squared_error(vector("h", 3)(t), y(t))):
        g = graph(sr.unfold(sr.cells.lstm(3, peepholes=peepholes), 3), loss=loss)
        rank = _rank_of(g)
        cells = [f"c__{k}" for k in range(4)]
        assert len({rank[c] for c in cells}) == 1  # one row, c^{(0)} included
        (row,) = [r for r in g.ranks if "c__1" in r]
        assert set(row) == set(cells)  # on its own
        assert rank["c__1"] > rank["h__1"] > rank["o__1"] > rank["x__1"]
        assert rank["c__1"] == max(rank[n.id] for n in g.nodes if n.id[0] in "fgioch")
        # h^{(t-1)} -> gates^{(t)} join neighbouring rows (they no longer cross the c row)
        for gate in "fgio":
            assert rank["h__1"] - rank[f"{gate}__2"] == 1
        if loss is not None:
            assert rank["L__1"] > rank["c__1"]


def test_gated_cells_without_a_memory_state_keep_the_usual_rows() -> None:
    gru = graph(sr.unfold(sr.cells.gru(3), 2))
    rank = _rank_of(gru)
    assert rank["h__1"] > rank["g__1"] > rank["r__1"] > rank["x__1"]
    stacked = sr.cells.stacked(sr.cells.elman(2, inputs=2), sr.cells.elman(2, inputs=2))
    rank = _rank_of(graph(sr.unfold(stacked, 2)))
    assert rank["h2__1"] > rank["h1__1"]  # the upper layer above the lower one


@needs_dot
def test_lstm_unfolding_reads_left_to_right() -> None:
    g = graph(
        sr.unfold(sr.cells.lstm(3), 3), loss=sr.squared_error(vector("h", 3)(t), vector("y", 3)(t))
    )
    at = _positions(g)
    for name in ("c", "h"):
        xs = [at[f"{name}__{k}"][0] for k in range(4)]
        assert xs == sorted(xs), (name, xs)  # time runs left to right, initial state first
    assert len({round(at[f"c__{k}"][1], 3) for k in range(4)}) == 1  # the c row is straight
    assert at["c__1"][1] > at["h__1"][1] > at["x__1"][1]
    for k in (1, 2, 3):  # the gates of every step in the order written: f, g, i, o
        xs = [at[f"{gate}__{k}"][0] for gate in "fgio"]
        assert xs == sorted(xs), (k, xs)
    for k in (1, 2):  # steps do not interleave
        assert max(at[f"{q}__{k}"][0] for q in "fgioch") < min(
            at[f"{q}__{k + 1}"][0] for q in "fgioch"
        )
