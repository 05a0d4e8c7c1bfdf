"""Computational graphs (symrnn.graph): Fig. 6.8 of Goodfellow et al. and what a graph means."""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from symrnn.errors import SymrnnError, ToolMissing
from symrnn.functions import relu, sigmoid
from symrnn.graph import EDGE_STYLES, Edge, Graph, Node, graph, variable_labels
from symrnn.matrices import vector
from symrnn.notation import t, time_function
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
    assert '"h" -> "h" [dir="both", arrowtail="box"];' in text
    assert '"grad_h" -> "h" [label=<grad>, style="dashed"];' in text
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
        [sys.executable, str(ROOT / "examples" / "fig_6_8.py"), str(tmp_path)],
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
