r"""Computational graphs of expressions, drawn as in Goodfellow et al., *Deep Learning*, §6.5.1.

Each node is a variable; an operation is a function that returns a single variable, so every
operation node is the one variable it produces (the lecture's definition).  Inputs are leaves;
the variables that operations produce are named :math:`u^{(1)}, u^{(2)}, \dots` in evaluation
order, except for the results of named equations, which keep their names.  Common subexpressions
are one node.

>>> import sympy as sp
>>> x, y, z = sp.symbols("x y z")
>>> g = graph(sp.Eq(z, x * y))                 # Fig. 6.8 (a)
>>> [(n.id, n.kind, n.op) for n in g.nodes]
[('x', 'input', None), ('y', 'input', None), ('z', 'output', 'mul')]
>>> [(e.src, e.dst, e.label) for e in g.edges]
[('x', 'z', '×'), ('y', 'z', '×')]
>>> g = graph(sp.tanh(2 * x + y))
>>> [(n.id, n.op, g.operands(n.id)) for n in g.nodes if n.op]
[('u1', 'mul', ('c1', 'x')), ('u2', 'add', ('u1', 'y')), ('u3', 'tanh', ('u2',))]
>>> print(g.to_dot().splitlines()[-2])
  "u2" -> "u3" [label=<tanh>];

The reference semantics, for a graph ``g`` of an expression: every node in ``g.nodes`` order is
either a leaf (``op is None``; its value is the value of ``node.expr``) or the result of ``op``
applied to its operands, which come earlier::

    value = {}
    for node in g.nodes:
        if node.op is None:
            value[node.id] = evaluate(node.expr)
        else:
            value[node.id] = OPS[node.op](*(value[src] for src in g.operands(node.id)))

Operations (:attr:`Node.op`): ``add``, ``mul`` (n-ary), ``neg`` (``-a``), ``pow`` (base,
exponent), ``matmul``, ``transpose``, ``hadamard``, the operations of :mod:`symrnn.ops` (``dot``,
``sum``, ``sqr``) and any other function by its name (``tanh``, ``sigmoid``, ``relu``, ``f``).
SymPy stores sums and products in its canonical order, so the operands of ``add`` and ``mul``
(and hence the numbering) follow that order, computed operands first; other operations keep the
order in which they are written.

Graphs of recurrences
---------------------

For a :class:`~symrnn.recurrence.Recurrence`, an :class:`~symrnn.unfold.Unfolded` chain and a
:class:`~symrnn.diff.BPTT`, nodes are whole variables (a vector state is one node, as in the
book's chapter 10), not the operations inside one update:

* ``graph(rec)`` is the folded (circuit) graph of Fig. 10.2 (left): one node per quantity, the
  recurrent dependencies as ``delay`` edges drawn with one black square per step of lag;
* ``graph(sr.unfold(rec, τ))`` is the unfolded graph of Fig. 10.2 (right): one node per
  quantity per step (ids ``h__3``), initial states ``h^{(0)}`` as inputs; with ``loss=`` (a
  per-step template in t, or a total loss) the per-step losses :math:`L^{(t)}`, the targets
  :math:`y^{(t)}` above them and the total :math:`L`, as in Fig. 10.3;
* ``graph(sr.bptt(U, L))`` adds the adjoints :math:`\partial L/\partial v` (ids
  ``dL_dh__3``, kind ``adjoint``) and ``backward`` edges, one for each adjoint that the
  adjoint equations read (and from :math:`L` for the terms of the loss itself).

Each edge is labelled with the parameter its dependency goes through (``W`` on
:math:`h^{(t-1)} \to h^{(t)}` for :math:`\tanh(W h^{(t-1)} + U x^{(t)} + b)`), or with the
function name (``f`` in :math:`f(h^{(t-1)}, x^{(t)}; \theta)`).  Parameters are nodes only
with ``params=True``.  Unfoldings of more than :data:`MAX_DRAWN_STEPS` steps draw the first
two, a column of :math:`h^{(\dots)}` nodes (kind ``ellipsis``) and the last two, unless
``max_steps=`` or ``full=True`` says otherwise.  For these graphs, :attr:`Node.op` is the
outermost operation of the defining expression (``tanh``, ``f``, ``add``; ``loss`` and
``adjoint`` for those nodes), and :attr:`Node.expr` the expression itself.

>>> import symrnn as sr
>>> g = graph(sr.cells.rnn())
>>> [(e.src, e.dst, e.label, e.style, e.lag) for e in g.edges]
[('h', 'h', 'w', 'delay', 1), ('x', 'h', 'u', 'forward', 0)]
>>> U = graph(sr.unfold(sr.cells.rnn(), 20))
>>> [n.id for n in U.nodes if n.id.startswith("h")]
['h__0', 'h__1', 'h__2', 'h__dots', 'h__19', 'h__20']

Drawing choice: as in the book, the name of an operation is written on the arrows into the
variable it produces, not in a box of its own.  When an operation has several operands, the name
is drawn once, on the middle incoming arrow (the first of two), so ``dot`` appears once beside the
arrows from :math:`\mathbf{x}` and :math:`\mathbf{w}` as in Fig. 6.8 (b).  Every :class:`Edge`
still carries the label, so code that walks ``g.edges`` needs no knowledge of the drawing.
Inputs are at the bottom and results at the top (``rankdir=BT``), as in the book's figures.
Variables are ellipses, vectors and matrices bold, constants plain text; adjoints and backward
edges are red and dashed.
"""

from __future__ import annotations

import html
import html.entities
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, singledispatch
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import Application
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.conventions import split_super_sub

from .diff import BPTT, Adjoint
from .errors import SymrnnError, ToolMissing
from .losses import expand_losses, vector_names
from .matrices import VectorAt, explicit, is_matrix
from .notation import (
    adjoint_name,
    code_name,
    greek,
    identifier,
    is_time_atom,
    latex_bold,
    latex_char,
    latex_expr,
    latex_time,
    t,
    time_atoms,
    time_function,
    time_of,
)
from .recurrence import Recurrence
from .unfold import Unfolded

__all__ = [
    "Node",
    "Edge",
    "Graph",
    "graph",
    "NODE_KINDS",
    "EDGE_STYLES",
    "MAX_DRAWN_STEPS",
    "variable_labels",
]

#: Kinds of node: leaves are inputs, parameters or constants; operations produce intermediate
#: variables or outputs (the result of an expression or of a named equation).  Graphs of BPTT
#: add ``adjoint`` nodes (:math:`\partial L/\partial v`), and long unfoldings ``ellipsis`` nodes
#: (:math:`h^{(\dots)}`) that stand for the steps not drawn.
NODE_KINDS = ("input", "parameter", "constant", "intermediate", "output", "adjoint", "ellipsis")

#: Kinds of edge: ``forward`` (an operand, solid), ``backward`` (a gradient flowing back, dashed)
#: and ``delay`` (a one-step time delay, marked with a black square as in the book's Fig. 10.2).
EDGE_STYLES = ("forward", "backward", "delay")

#: Display names of operations (keys are :attr:`Node.op`); other functions show their own name.
_OP_LABELS = {
    "add": "+",
    "mul": "\u00d7",
    "neg": "\u2212",
    "sigmoid": "\u03c3",
    "hadamard": "\u2299",
}

#: SymPy function names that the graph calls by the book's name.
_OP_NAMES = {"reduce_sum": "sum", "Abs": "abs"}

_DOT_NODE_DEFAULTS = (("shape", "ellipse"), ("fontname", "Times-Roman"), ("fontsize", "14"))
_DOT_EDGE_DEFAULTS = (("fontname", "Times-Roman"), ("fontsize", "12"), ("arrowsize", "0.7"))
#: The colour of gradients: adjoint nodes and backward edges.
_BACKWARD_COLOUR = "#b03a2e"
_DOT_EDGE_STYLES: dict[str, tuple[tuple[str, str], ...]] = {
    "forward": (),
    "backward": (("style", "dashed"), ("color", _BACKWARD_COLOUR)),
    "delay": (),  # dir and arrow shapes are written by _edge_attrs
}
_DOT_KIND_ATTRS: dict[str, tuple[tuple[str, str], ...]] = {
    "constant": (("shape", "plaintext"),),
    "adjoint": (("color", _BACKWARD_COLOUR), ("fontcolor", _BACKWARD_COLOUR)),
    "ellipsis": (("style", "dotted"),),
}
#: Graphviz draws at most four arrow shapes on one end (one black square per step of delay).
_MAX_DELAY_SQUARES = 4
#: Compass points (tail, head) of the first loops on a node: wide loops, not overlapping.
_LOOP_PORTS = (("se", "ne"), ("sw", "nw"))
_RENDER_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz), or write Graph.to_dot() to a file and render it elsewhere"
)


@dataclass(frozen=True)
class Node:
    """A variable of a computational graph.

    Attributes
    ----------
    id : str
        Stable identifier, unique in the graph (``"x"``, ``"u1"``, ``"yhat"``, ``"c1"``).
    label_latex : str
        The variable's name in LaTeX: ``u^{(1)}``, ``\\hat{y}``, ``\\mathbf{W}``.
    kind : str
        One of :data:`NODE_KINDS`.
    op : str or None
        The operation that produces the variable (``"mul"``, ``"dot"``, ``"sigmoid"``), ``None``
        for a leaf.
    expr : sympy.Basic or None
        What the variable holds, as written (names of earlier equations may appear in it); for
        a leaf, the leaf itself.
    label_html : str
        The name as a Graphviz HTML-like label body (``<I>u</I><SUP>(1)</SUP>``).  When left
        empty it is derived from ``expr`` if that is a name (a symbol or time atom such as
        ``h(t)``), else it is ``label_latex`` escaped; :func:`variable_labels` gives both.
    """

    id: str
    label_latex: str
    kind: str
    op: str | None = None
    expr: sp.Basic | None = None
    label_html: str = ""

    def __post_init__(self) -> None:
        if self.kind not in NODE_KINDS:
            raise SymrnnError(
                f"node {self.id!r} has kind {self.kind!r}; expected one of {', '.join(NODE_KINDS)}"
            )
        if not self.label_html:
            html_label = (
                variable_labels(self.expr)[1]
                if self.expr is not None and _is_leaf(self.expr)
                else _html_text(self.label_latex)
            )
            object.__setattr__(self, "label_html", html_label)


@dataclass(frozen=True)
class Edge:
    """An arrow from operand ``src`` to the variable ``dst`` that an operation computes from it.

    ``label`` is the operation's display name (plain Unicode, e.g. ``"×"``, ``"dot"``) or, in
    graphs of recurrences, the parameter the dependency goes through (``"W"``); ``style`` is one
    of :data:`EDGE_STYLES`.  Edges into one node are listed in operand order.

    ``lag`` is the number of time steps the value travels: ``1`` for ``h^{(t-1)} → h^{(t)}`` (a
    ``delay`` edge in a folded graph, drawn with one black square per step; a ``forward`` edge
    ``h^{(2)} → h^{(3)}`` once unfolded), ``0`` otherwise.  ``label_html`` is the label as a
    Graphviz HTML-like body (``<B><I>W</I></B>``); when empty it is ``label`` escaped.
    """

    src: str
    dst: str
    label: str = ""
    style: str = "forward"
    lag: int = 0
    label_html: str = ""

    def __post_init__(self) -> None:
        if self.style not in EDGE_STYLES:
            raise SymrnnError(
                f"edge {self.src!r} -> {self.dst!r} has style {self.style!r}; "
                f"expected one of {', '.join(EDGE_STYLES)}"
            )
        if isinstance(self.lag, bool) or not isinstance(self.lag, int) or self.lag < 0:
            raise SymrnnError(
                f"edge {self.src!r} -> {self.dst!r} has lag {self.lag!r}; expected an integer >= 0"
            )
        if not self.label_html and self.label:
            object.__setattr__(self, "label_html", _html_text(self.label))


@dataclass(frozen=True)
class Graph:
    """An immutable computational graph: variables (:class:`Node`) and operand arrows.

    For graphs of expressions, ``nodes`` are in evaluation order (every operand before the
    variable computed from it); for graphs of unfolded recurrences, in time order.  ``attrs``
    are Graphviz graph attributes such as ``rankdir``.

    ``ranks`` are rows of node ids drawn side by side (``rank=same``), each from left to right
    (in time order), listed from the bottom row up; each row is drawn above the one before it
    (an invisible edge says so where no edge joins the two).  They only shape the drawing: an
    edge that runs against them (a target :math:`y^{(t)}` drawn above the loss it feeds, an
    adjoint flowing back from step 3 to step 2) is written reversed with ``dir=back``, so that
    time runs from left to right and the arrow still points at ``dst``.  ``columns`` are the
    nodes of one time step, bottom to top, drawn one above the other (a Graphviz ``group``).
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    name: str = "G"
    attrs: tuple[tuple[str, str], ...] = field(default=(("rankdir", "BT"),))
    ranks: tuple[tuple[str, ...], ...] = ()
    columns: tuple[tuple[str, ...], ...] = ()
    _by_id: dict[str, Node] = field(init=False, repr=False, compare=False, hash=False)
    _operands: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "attrs", tuple((str(k), str(v)) for k, v in self.attrs))
        object.__setattr__(self, "ranks", tuple(tuple(str(i) for i in row) for row in self.ranks))
        object.__setattr__(
            self, "columns", tuple(tuple(str(i) for i in col) for col in self.columns)
        )
        by_id: dict[str, Node] = {}
        for n in self.nodes:
            if n.id in by_id:
                raise SymrnnError(f"graph {self.name!r} has two nodes with id {n.id!r}")
            by_id[n.id] = n
        for what, groups in (("rank", self.ranks), ("column", self.columns)):
            placed: set[str] = set()
            for group in groups:
                for node_id in group:
                    if node_id not in by_id:
                        raise SymrnnError(
                            f"{what} {list(group)} of graph {self.name!r} names node "
                            f"{node_id!r}, which is not in the graph"
                        )
                    if node_id in placed:
                        raise SymrnnError(
                            f"node {node_id!r} of graph {self.name!r} is in two {what}s; give "
                            "each node at most one"
                        )
                    placed.add(node_id)
        operands: dict[str, list[str]] = {}
        for e in self.edges:
            for end in (e.src, e.dst):
                if end not in by_id:
                    raise SymrnnError(
                        f"edge {e.src!r} -> {e.dst!r} of graph {self.name!r} names node {end!r}, "
                        "which is not in the graph; add the node first"
                    )
            if e.style != "backward":
                operands.setdefault(e.dst, []).append(e.src)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_operands", {k: tuple(v) for k, v in operands.items()})

    def node(self, node_id: str) -> Node:
        """The node with id ``node_id``."""
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"graph {self.name!r} has no node {node_id!r}") from None

    def operands(self, node_id: str) -> tuple[str, ...]:
        """Ids of the operands of ``node_id`` in order, repeated if used twice.

        Forward and delay edges are operands; backward edges are not.
        """
        self.node(node_id)
        return self._operands.get(node_id, ())

    @property
    def outputs(self) -> tuple[Node, ...]:
        """The nodes of kind ``output``, in order."""
        return tuple(n for n in self.nodes if n.kind == "output")

    def in_edges(self, node_id: str) -> tuple[Edge, ...]:
        """The edges into ``node_id`` (of every style), in order."""
        self.node(node_id)
        return tuple(e for e in self.edges if e.dst == node_id)

    def out_edges(self, node_id: str) -> tuple[Edge, ...]:
        """The edges out of ``node_id`` (of every style), in order."""
        self.node(node_id)
        return tuple(e for e in self.edges if e.src == node_id)

    def node_of(self, var: Any) -> Node:
        r"""The node of a variable: a symbol ``w``, a time atom ``h(3)`` (or ``h(t)`` in a folded
        graph), a vector ``h(3)`` of :func:`~symrnn.vector`, or an adjoint ``Adjoint(h(3))``.

        >>> import symrnn as sr
        >>> rnn = sr.cells.rnn()
        >>> h = rnn.states[0]
        >>> g = graph(sr.unfold(rnn, 3))
        >>> g.node_of(h(2)).label_latex, [e.src for e in g.in_edges("h__2")]
        ('h^{(2)}', ['h__1', 'x__2'])
        """
        for candidate in _candidate_ids(var):
            if candidate in self._by_id:
                return self._by_id[candidate]
        raise KeyError(
            f"graph {self.name!r} has no node for {var}; a vector's components (h_1) are drawn "
            "as one node: ask for the vector"
        )

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, ASCII only and byte-for-byte stable for the same graph."""
        return _to_dot(self)

    def render(self, path: str | os.PathLike[str], dpi: int | None = None) -> Path:
        """Draw the graph with Graphviz ``dot`` into ``path`` (``.svg``, ``.png`` or ``.pdf``).

        ``dpi`` sets the resolution of a ``.png`` (Graphviz's default is 96; 300 for print);
        vector formats ignore it.  The file appears complete or not at all.  Raises
        :class:`~symrnn.errors.ToolMissing` when ``dot`` is not installed.
        """
        target = Path(path)
        if dpi is not None and (
            isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 2400
        ):
            raise SymrnnError(f"dpi={dpi!r} is out of range; give an integer from 10 to 2400")
        fmt = _RENDER_FORMATS.get(target.suffix.lower())
        if fmt is None:
            raise SymrnnError(
                f"cannot render graph {self.name!r} to {target.name!r}: unknown suffix "
                f"{target.suffix!r}; use one of {', '.join(_RENDER_FORMATS)}"
            )
        dot = _dot_program()
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent
        )
        os.close(fd)
        try:
            extra = [f"-Gdpi={dpi}"] if dpi is not None and fmt == "png" else []
            _run_dot(dot, fmt, self.to_dot(), output=tmp_name, extra=extra)
            os.chmod(tmp_name, _file_mode(target))  # mkstemp made it private (0600)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    def to_tikz(self, scale: float = 1.0) -> str:
        r"""The drawing as a TikZ picture, laid out by Graphviz, labelled in LaTeX math.

        Positions and edge paths come from ``dot -Tplain`` (the same layout as
        :meth:`render`); labels are :attr:`Node.label_latex` set by TeX, so the figure uses the
        document's fonts.  ``scale`` (0 < scale <= 1) shrinks the whole picture, labels
        included, e.g. to the text width: ``min(1, 6.5 / g.layout_size()[0])``.  Needs only
        ``\usepackage{tikz}`` (no TikZ library); backward edges are dashed, delays carry a
        black square.  Raises :class:`~symrnn.errors.ToolMissing` when ``dot`` is not
        installed.

        >>> import shutil, symrnn as sr
        >>> g = graph(sr.cells.rnn())
        >>> tikz = g.to_tikz() if shutil.which("dot") else "\\begin{tikzpicture} h^{(t)}"
        >>> tikz.splitlines()[1].startswith("\\begin{tikzpicture}")
        True
        """
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise SymrnnError(f"scale={scale!r} is out of range; give a number in (0, 1]")
        return _tikz(self, _layout(self.to_dot()), float(scale))

    def layout_size(self) -> tuple[float, float]:
        """Width and height in inches of Graphviz's layout: the size of :meth:`to_tikz` at
        scale 1 and of :meth:`render` at 72 dpi.  Raises
        :class:`~symrnn.errors.ToolMissing` when ``dot`` is not installed."""
        head = _layout(self.to_dot()).split("\n", 1)[0].split()  # graph scale width height
        return float(head[2]), float(head[3])

    def _repr_svg_(self) -> str | None:
        dot = shutil.which("dot")
        if dot is None:
            return None
        return _run_dot(dot, "svg", self.to_dot()).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Building graphs


@singledispatch
def graph(obj: Any, *, name: str | None = None, params: Any = (), **options: Any) -> Graph:
    r"""The computational graph of an expression, equations, a recurrence, a chain or a BPTT.

    Parameters
    ----------
    obj : sympy expression, ``Eq``, list of them, dict name -> expression, :class:`Recurrence`, \
          :class:`Unfolded` or :class:`BPTT`
        An expression gives one unnamed output; ``Eq(lhs, rhs)`` names the variable that computes
        ``rhs`` after ``lhs``.  In a list or dict, later equations may use earlier names, and a
        subexpression shared by several equations is one node (Fig. 6.8 (d)).  A recurrence
        gives its folded graph, an unfolded chain and a BPTT their unfolded graphs (see
        "Graphs of recurrences" in the module documentation).
    name : str
        The graph's name (the DOT ``digraph`` id); ``"G"`` for expressions, the recurrence's
        name for recurrences.
    params : iterable, or bool for recurrences
        For expressions: leaves to mark as kind ``parameter`` instead of ``input``.  For
        recurrences, chains and BPTT: ``True`` draws the parameters as nodes (shared by all
        steps); by default they only name the edges, as in the book's figures.
    loss : sympy expression, optional (recurrences and chains)
        The loss per step as a template in t, e.g. ``(o(t) - y(t))**2/2``: adds the nodes
        :math:`L^{(t)}`, the targets :math:`y^{(t)}` and the total :math:`L` (Fig. 10.3).  A
        chain also takes the total loss; a BPTT draws its own.
    max_steps : int, default :data:`MAX_DRAWN_STEPS` (chains and BPTT)
        Longer unfoldings draw steps 1, 2, a column of :math:`h^{(\dots)}` nodes, and the last
        two steps.
    full : bool, default False (chains and BPTT)
        Draw every step, however many.

    Notes
    -----
    Each ``Add``/``Mul`` (n-ary), ``Pow``, function application, matrix product (``matmul``),
    :func:`~symrnn.ops.dot`, :func:`~symrnn.ops.reduce_sum` and elementwise function of a matrix
    (``relu``, ``sigmoid``, :func:`~symrnn.ops.sqr`) is one operation; ``-a`` is ``neg``.

    Examples
    --------
    >>> import sympy as sp
    >>> from symrnn.functions import sigmoid
    >>> from symrnn.ops import dot
    >>> x, w = sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("w", 3, 1)
    >>> b, yhat = sp.symbols("b yhat")
    >>> g = graph(sp.Eq(yhat, sigmoid(dot(x, w) + b)))      # Fig. 6.8 (b)
    >>> [(n.label_latex, n.op) for n in g.nodes if n.op]
    [('u^{(1)}', 'dot'), ('u^{(2)}', 'add'), ('\\hat{y}', 'sigmoid')]
    """
    raise TypeError(
        f"graph() cannot draw a {type(obj).__name__}; give a SymPy expression, an Eq, a list of "
        "them, a dict name -> expression, a Recurrence, an Unfolded chain or a BPTT"
    )


@graph.register
def _(obj: Graph, *, name: str | None = None, params: Any = ()) -> Graph:
    return obj


def _expression_params(params: Any) -> Iterable[Any]:
    if isinstance(params, bool):
        raise SymrnnError(
            "params=True/False is for recurrences; for an expression give the leaves that are "
            "parameters, e.g. params=[w, b]"
        )
    return params  # type: ignore[no-any-return]


@graph.register(sp.Basic)
def _(obj: sp.Basic, *, name: str | None = None, params: Any = ()) -> Graph:
    return _build([obj], name or "G", _expression_params(params))


@graph.register(list)
@graph.register(tuple)
def _(obj: list[Any] | tuple[Any, ...], *, name: str | None = None, params: Any = ()) -> Graph:
    return _build(list(obj), name or "G", _expression_params(params))


@graph.register(Mapping)
def _(obj: Mapping[Any, Any], *, name: str | None = None, params: Any = ()) -> Graph:
    equations = [
        sp.Eq(sp.Symbol(k) if isinstance(k, str) else k, v, evaluate=False) for k, v in obj.items()
    ]
    return _build(equations, name or "G", _expression_params(params))


@dataclass
class _Entry:
    expr: sp.Basic
    op: str | None = None
    label: str = ""
    operands: list[int] = field(default_factory=list)


def _is_leaf(expr: sp.Basic) -> bool:
    return (
        isinstance(expr, (sp.Symbol, sp.MatrixSymbol, VectorAt))
        or expr.is_Number
        or isinstance(expr, sp.NumberSymbol)
        or expr is sp.I
        or is_time_atom(expr)
    )


def _computed_first(args: tuple[sp.Basic, ...]) -> tuple[sp.Basic, ...]:
    # The operands of a sum or product commute; the book draws computed ones before inputs
    # (u^{(1)} + b, not b + u^{(1)}).
    return tuple(sorted(args, key=_is_leaf))


def _function_op(func: Any) -> tuple[str, str]:
    fname = getattr(func, "__name__", str(func))
    op = _OP_NAMES.get(fname, fname)
    return op, _OP_LABELS.get(op, greek(op))


def _decompose(expr: sp.Basic) -> tuple[str, str, tuple[sp.Basic, ...]]:
    """The operation that computes ``expr``: (op name, display label, operands)."""
    op, label, operands = _operation(expr)
    if not operands or not all(isinstance(a, (sp.Expr, MatrixExpr)) for a in operands):
        raise SymrnnError(
            f"graph cannot draw {type(expr).__name__} ({expr}); use arithmetic, functions, "
            "matrix products and the operations of symrnn.ops"
        )
    return op, label, operands


def _operation(expr: sp.Basic) -> tuple[str, str, tuple[sp.Basic, ...]]:
    if isinstance(expr, (sp.Mul, sp.MatMul)):
        if isinstance(expr, sp.MatMul):
            coeff, matrices = expr.as_coeff_matrices()
            if coeff == 1:
                return "matmul", "matmul", tuple(matrices)
            rest = matrices[0] if len(matrices) == 1 else sp.MatMul(*matrices)
            operands: tuple[sp.Basic, ...] = (coeff, rest)
        else:
            coeff, rest = expr.as_coeff_Mul()
            operands = _computed_first(expr.args)
        if coeff == -1:
            return "neg", _OP_LABELS["neg"], (rest,)
        return "mul", _OP_LABELS["mul"], operands
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        return "add", _OP_LABELS["add"], _computed_first(expr.args)
    if isinstance(expr, sp.Pow):
        return "pow", "pow", expr.args
    if isinstance(expr, sp.Transpose):
        return "transpose", "transpose", expr.args
    if isinstance(expr, sp.HadamardProduct):
        return "hadamard", _OP_LABELS["hadamard"], expr.args
    if isinstance(expr, ElementwiseApplyFunction):
        lam = expr.function
        body, (var,) = lam.expr, lam.variables
        if isinstance(body, Application) and body.args == (var,):
            op, label = _function_op(body.func)
            return op, label, (expr.expr,)
        raise SymrnnError(
            f"graph cannot draw the elementwise map {lam} of {expr.expr}; "
            "apply a named function such as relu or sqr instead"
        )
    if isinstance(expr, Application):
        op, label = _function_op(expr.func)
        return op, label, expr.args
    op = type(expr).__name__
    return op, op, expr.args


class _UsedBeforeDefined(Exception):
    """Raised by :meth:`_Builder.walk` with (name, position of its equation)."""


#: The bound variable of every elementwise map once canonical (see :meth:`_Builder.canonical`).
_SLOT = sp.Dummy("slot")


class _Builder:
    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.index: dict[sp.Basic, int] = {}
        self._canonical: dict[sp.Basic, sp.Basic] = {}

    def canonical(self, root: sp.Basic) -> sp.Basic:
        """``root`` with every elementwise map over the same bound variable.

        SymPy builds ``relu(W)`` as an elementwise map over a fresh ``Dummy`` each time, so two
        equal-looking maps compare unequal; renaming the dummy makes them one node.
        """
        memo = self._canonical
        stack: list[tuple[sp.Basic, bool]] = [(root, False)]
        while stack:
            expr, ready = stack.pop()
            if expr in memo:
                continue
            if _is_leaf(expr) or not expr.args:
                memo[expr] = expr
            elif not ready:
                stack.append((expr, True))
                stack.extend((a, False) for a in expr.args if a not in memo)
            elif isinstance(expr, ElementwiseApplyFunction):
                lam = expr.function
                (var,) = lam.variables
                body = lam.expr.xreplace({var: _SLOT})
                memo[expr] = ElementwiseApplyFunction(sp.Lambda(_SLOT, body), memo[expr.expr])
            else:
                args = tuple(memo[a] for a in expr.args)
                memo[expr] = expr if args == expr.args else expr.func(*args)
        return memo[root]

    def walk(self, root: sp.Basic, undefined: Mapping[sp.Basic, int]) -> int:
        """Add ``root`` and everything it needs, operands first; return its entry index.

        Iterative, so deep expressions need no Python recursion.  A leaf in ``undefined`` (the
        name of a later equation -> its position) raises :class:`_UsedBeforeDefined`.
        """
        stack: list[tuple[sp.Basic, bool]] = [(root, False)]
        pending: dict[sp.Basic, tuple[str, str, tuple[sp.Basic, ...]]] = {}
        while stack:
            expr, ready = stack.pop()
            if expr in self.index:
                continue
            if _is_leaf(expr):
                if expr in undefined:
                    raise _UsedBeforeDefined(expr, undefined[expr])
                self._add(_Entry(expr))
                continue
            if ready:
                op, label, operands = pending.pop(expr)
                operand_ids = [self.index[a] for a in operands]
                self._add(_Entry(expr, op, label, operand_ids))
                continue
            if expr in pending:
                continue
            pending[expr] = _decompose(expr)
            stack.append((expr, True))
            stack.extend((a, False) for a in reversed(pending[expr][2]) if a not in self.index)
        return self.index[root]

    def _add(self, entry: _Entry) -> None:
        self.index[entry.expr] = len(self.entries)
        self.entries.append(entry)


def _as_equation(item: Any, position: int) -> tuple[sp.Basic | None, sp.Basic]:
    if isinstance(item, sp.Equality):
        lhs = item.lhs
        if not (isinstance(lhs, (sp.Symbol, sp.MatrixSymbol, VectorAt)) or is_time_atom(lhs)):
            raise SymrnnError(
                f"equation {position + 1} ({item}) defines {lhs}, which is not a name; "
                "the left-hand side must be a symbol such as yhat or a time atom such as h(t)"
            )
        return lhs, item.rhs
    if isinstance(item, (sp.Expr, MatrixExpr)):
        return None, item
    raise TypeError(
        f"item {position + 1} of the equations is a {type(item).__name__}; "
        "expected a SymPy expression or Eq(name, expression)"
    )


def _value_kind(expr: sp.Basic) -> str:
    if not is_matrix(expr):
        return "scalar"
    rows, cols = expr.shape
    if rows == 1 and cols == 1:
        return "scalar"
    return "vector" if 1 in (rows, cols) else "matrix"


def _build(items: list[Any], name: str, params: Iterable[Any]) -> Graph:
    if not items:
        raise SymrnnError(f"graph {name!r}: nothing to draw; give at least one expression")
    equations = [_as_equation(item, i) for i, item in enumerate(items)]
    builder = _Builder()
    names: dict[int, sp.Basic] = {}
    outputs: list[int] = []
    undefined = {lhs: j for j, (lhs, _) in enumerate(equations) if lhs is not None}
    for i, (lhs, rhs) in enumerate(equations):
        if lhs is not None and lhs in builder.index:
            raise SymrnnError(
                f"equation {i + 1} defines {lhs} a second time; give each variable one equation"
            )
        try:
            root = builder.walk(builder.canonical(rhs), undefined)
        except _UsedBeforeDefined as exc:
            symbol, j = exc.args
            raise SymrnnError(
                f"item {i + 1} ({items[i]}) uses {symbol}, which equation {j + 1} defines; put "
                "the equations in evaluation order (a quantity defined through itself is a "
                "recurrence: use sr.Recurrence)"
            ) from None
        if lhs is not None:
            del undefined[lhs]
            if builder.entries[root].op is None:
                raise SymrnnError(
                    f"equation {i + 1} makes {lhs} another name for {rhs}, which no operation "
                    "computes; substitute it instead"
                )
            if root in names:
                raise SymrnnError(
                    f"equations for {names[root]} and {lhs} compute the same variable ({rhs}); "
                    "keep one of them"
                )
            names[root] = lhs
            builder.index[lhs] = root
        if root not in outputs:
            outputs.append(root)
    return _assemble(builder.entries, names, outputs, name, frozenset(params))


def _assemble(
    entries: list[_Entry],
    names: dict[int, sp.Basic],
    outputs: list[int],
    name: str,
    params: frozenset[Any],
) -> Graph:
    used: set[str] = set()

    def unique(candidate: str) -> str:
        result, k = candidate, 2
        while result in used:
            result, k = f"{candidate}_{k}", k + 1
        used.add(result)
        return result

    ids: list[str] = []
    nodes: list[Node] = []
    constants = intermediates = 0
    output_set = set(outputs)
    for i, entry in enumerate(entries):
        expr = entry.expr
        if entry.op is None:
            if expr.is_number:
                constants += 1
                node_id, kind = unique(f"c{constants}"), "constant"
            else:
                node_id = unique(_leaf_id(expr))
                kind = "parameter" if expr in params else "input"
            latex, label_html = variable_labels(expr)
        elif i in names:
            lhs = names[i]
            node_id, kind = unique(_leaf_id(lhs)), "output"
            latex, label_html = variable_labels(lhs, bold=_value_kind(expr) != "scalar")
        else:
            intermediates += 1
            node_id = unique(f"u{intermediates}")
            kind = "output" if i in output_set else "intermediate"
            latex, label_html = _intermediate_labels(intermediates, _value_kind(expr))
        ids.append(node_id)
        nodes.append(Node(node_id, latex, kind, entry.op, expr, label_html))
    edges = [
        Edge(ids[src], ids[i], entry.label)
        for i, entry in enumerate(entries)
        for src in entry.operands
    ]
    return Graph(tuple(nodes), tuple(edges), name=name)


def _leaf_id(expr: sp.Basic) -> str:
    if isinstance(expr, VectorAt):
        return code_name(time_function(expr.name)(expr.time))
    if isinstance(expr, sp.MatrixSymbol):
        return code_name(sp.Symbol(expr.name))
    return code_name(expr)


# ---------------------------------------------------------------------------------------------
# Labels: LaTeX and Graphviz HTML-like text for the same name

#: Name suffixes that SymPy prints as accents (``yhat`` -> \hat{y}), with combining characters.
_ACCENTS = {"hat": "\u0302", "tilde": "\u0303", "bar": "\u0304", "dot": "\u0307", "vec": "\u20d7"}


def _entity(char: str) -> str:
    name = html.entities.codepoint2name.get(ord(char))
    return f"&{name};" if name else f"&#{ord(char)};"


def _html_text(text: str) -> str:
    """Escape ``text`` for an HTML-like label, ASCII only (named entities where HTML 4 has one)."""
    escaped = html.escape(text.replace("-", "\u2212"), quote=False)
    return "".join(c if ord(c) < 128 else _entity(c) for c in escaped)


def _html_piece(word: str, italic: bool) -> str:
    text = greek(word)
    if text != word:
        return _html_text(text)
    if italic and len(word) == 1 and word.isalpha():
        return f"<I>{_html_text(word)}</I>"
    return _html_text(word)


def _html_name(name: str, bold: bool, sup: str = "") -> str:
    base, sups, subs = split_super_sub(name)
    accent = ""
    for suffix, mark in _ACCENTS.items():
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base, accent = base[: -len(suffix)], _html_text(mark)
            break
    body = _html_piece(base, italic=True)
    if accent:
        body = body.replace("</I>", accent + "</I>") if body.endswith("</I>") else body + accent
    if bold:
        body = f"<B>{body}</B>"
    if subs:
        body += "<SUB>" + ",".join(_html_piece(s, italic=True) for s in subs) + "</SUB>"
    sups = [*sups, sup] if sup else sups
    if sups:
        body += "<SUP>" + ",".join(_html_piece(s, italic=False) for s in sups) + "</SUP>"
    return body


def _number_text(expr: sp.Basic) -> str:
    if isinstance(expr, sp.Float):
        return repr(float(expr))
    if expr is sp.pi:
        return "\u03c0"
    if expr is sp.E:
        return "e"
    return str(expr)


def variable_labels(expr: sp.Basic, *, bold: bool | None = None) -> tuple[str, str]:
    r"""The name of a variable as (LaTeX, Graphviz HTML-like label body).

    Vectors and matrices are bold, time atoms carry their time as a superscript, Greek names are
    letters and ``hat``/``bar``/``tilde`` suffixes are accents, as SymPy prints them.

    >>> import sympy as sp
    >>> from symrnn.notation import t, time_function
    >>> variable_labels(time_function("h")(t - 1))
    ('h^{(t-1)}', '<I>h</I><SUP>(t&minus;1)</SUP>')
    >>> variable_labels(sp.Symbol("yhat"))
    ('\\hat{y}', '<I>y&#770;</I>')
    >>> variable_labels(sp.MatrixSymbol("W", 3, 3))
    ('\\mathbf{W}', '<B><I>W</I></B>')
    """
    if bold is None:
        bold = _value_kind(expr) != "scalar"
    if expr.is_number:
        return sp.latex(expr), _html_text(_number_text(expr))
    if isinstance(expr, VectorAt):
        return latex_expr(expr), _html_name(expr.name, True, f"({latex_time(expr.time)})")
    if is_time_atom(expr):
        tex = latex_expr(expr)
        sup = f"({latex_time(time_of(expr))})"
        return (f"\\mathbf{{{tex}}}" if bold else tex), _html_name(expr.func.__name__, bold, sup)
    if isinstance(expr, (sp.Symbol, sp.MatrixSymbol)):
        tex = latex_expr(sp.Symbol(expr.name))
        return (f"\\mathbf{{{tex}}}" if bold else tex), _html_name(expr.name, bold)
    raise SymrnnError(f"{expr} is not a variable name; expected a symbol or a time atom")


def _intermediate_labels(k: int, value_kind: str) -> tuple[str, str]:
    # The book writes intermediate matrices as U^{(k)} and vectors and scalars as u^{(k)}.
    letter = "U" if value_kind == "matrix" else "u"
    tex = f"\\mathbf{{{letter}}}" if value_kind != "scalar" else letter
    return f"{tex}^{{({k})}}", _html_name(letter, value_kind != "scalar", f"({k})")


# ---------------------------------------------------------------------------------------------
# DOT output and rendering


class _Html(str):
    """An attribute value that is an HTML-like label body, written as ``<...>``."""


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if ord(c) < 128 else f"&#{ord(c)};" for c in escaped) + '"'


def _attr_list(attrs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={f'<{v}>' if isinstance(v, _Html) else _quote(v)}" for k, v in attrs)


def _labelled_edges(g: Graph) -> set[int]:
    """Indices of the edges that show their label: one per (target, label, style) group."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, e in enumerate(g.edges):
        if e.label:
            groups.setdefault((e.dst, e.label, e.style), []).append(i)
    return {members[(len(members) - 1) // 2] for members in groups.values()}


def _edge_attrs(e: Edge, labelled: bool, reverse: bool) -> tuple[tuple[str, str], ...]:
    """DOT attributes of one edge; ``reverse`` when it is written ``dst -> src``."""
    attrs: list[tuple[str, str]] = []
    if labelled:
        attrs.append(("label", _Html(e.label_html)))
    if e.style == "delay":
        squares = "box" * min(max(e.lag, 1), _MAX_DELAY_SQUARES)
        ends = (
            (("arrowhead", squares), ("arrowtail", "normal"))
            if reverse
            else (("arrowtail", squares),)
        )
        attrs += [("dir", "both"), *ends]
    elif reverse:
        attrs.append(("dir", "back"))
    attrs += _DOT_EDGE_STYLES[e.style]
    return tuple(attrs)


def _to_dot(g: Graph) -> str:
    lines = [f"digraph {_quote(g.name)} {{"]
    if g.attrs:
        lines.append(f"  graph [{_attr_list(g.attrs)}];")
    lines.append(f"  node [{_attr_list(_DOT_NODE_DEFAULTS)}];")
    lines.append(f"  edge [{_attr_list(_DOT_EDGE_DEFAULTS)}];")
    group = {i: f"c{c}" for c, col in enumerate(g.columns) if len(col) > 1 for i in col}
    for n in g.nodes:
        attrs = (("label", _Html(n.label_html)), *_DOT_KIND_ATTRS.get(n.kind, ()))
        if n.id in group:
            attrs = (*attrs, ("group", group[n.id]))
        lines.append(f"  {_quote(n.id)} [{_attr_list(attrs)}];")
    place = {node_id: (r, c) for r, row in enumerate(g.ranks) for c, node_id in enumerate(row)}
    for row in g.ranks:
        if len(row) > 1:
            lines.append("  {rank=same; " + " ".join(f"{_quote(i)};" for i in row) + "}")
    shown = _labelled_edges(g)
    loops: dict[str, int] = {}
    for i, e in enumerate(g.edges):
        src, dst = place.get(e.src), place.get(e.dst)
        reverse = src is not None and dst is not None and src > dst
        attrs = _edge_attrs(e, i in shown, reverse)
        tail, head = _quote(e.dst if reverse else e.src), _quote(e.src if reverse else e.dst)
        if e.src == e.dst:
            # Loops (the delays of a folded graph) go round the right side, then the left.
            k = loops[e.src] = loops.get(e.src, -1) + 1
            if k < len(_LOOP_PORTS):
                tail, head = f"{tail}:{_LOOP_PORTS[k][0]}", f"{head}:{_LOOP_PORTS[k][1]}"
        suffix = f" [{_attr_list(attrs)}]" if attrs else ""
        lines.append(f"  {tail} -> {head}{suffix};")
    # Each row above the one before: an invisible edge where no edge joins the two rows.
    joined = {
        tuple(sorted((place[e.src][0], place[e.dst][0])))
        for e in g.edges
        if e.src in place and e.dst in place
    }
    for r in range(len(g.ranks) - 1):
        if (r, r + 1) not in joined:
            below, above = _quote(g.ranks[r][-1]), _quote(g.ranks[r + 1][-1])
            lines.append(f'  {below} -> {above} [style="invis"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _file_mode(target: Path) -> int:
    """The permissions of a new file: those of the file it replaces, else 0666 less umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _dot_program() -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ToolMissing(f"the Graphviz program 'dot' is not on PATH; {_INSTALL_HINT}")
    return dot


# ---------------------------------------------------------------------------------------------
# TikZ: Graphviz's layout, TeX's labels

_TIKZ_BEGIN = r"\begin{tikzpicture}[x=1in, y=1in, >=stealth, every node/.style={inner sep=1pt}]"
_TIKZ_SCALED = (
    r"\begin{{tikzpicture}}[x={scale}in, y={scale}in, >=stealth, "
    r"every node/.style={{inner sep=1pt, scale={scale}}}]"
)


def _tikz_label(edge: Edge) -> str:
    r"""An edge label as LaTeX math: ``w``, ``\mathbf{W}`` (bold where the drawing has it bold),
    ``\times``, Greek letters by name."""
    text = edge.label
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text):
        return latex_bold(text) if "<B>" in edge.label_html else latex_expr(sp.Symbol(text))
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch if ch.isalnum() or ch in "+-*/()., " else "")
        else:
            out.append((latex_char(ch) or "?") + " ")
    return "".join(out).strip()


def _plain(text: str) -> tuple[dict[str, tuple[float, ...]], list[tuple[str, str, list[float]]]]:
    """Nodes ``id -> (x, y, width, height)`` and edges ``(tail, head, [x0, y0, x1, …])`` from
    Graphviz's plain output (inches)."""
    nodes: dict[str, tuple[float, ...]] = {}
    edges: list[tuple[str, str, list[float]]] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["node"]:
            nodes[words[1].strip('"')] = tuple(float(w) for w in words[2:6])
        elif words[:1] == ["edge"]:
            count = int(words[3])
            points = [float(w) for w in words[4 : 4 + 2 * count]]
            edges.append((words[1].strip('"'), words[2].strip('"'), points))
    return nodes, edges


def _layout(dot_text: str) -> str:
    """Graphviz's plain layout of a DOT text (kept: a figure asks for its size, then draws)."""
    return _cached_layout(_dot_program(), dot_text)


@lru_cache(maxsize=16)
def _cached_layout(dot: str, dot_text: str) -> str:
    return _run_dot(dot, "plain", dot_text).decode("utf-8")


def _tikz(g: Graph, plain: str, scale: float = 1.0) -> str:
    nodes, paths = _plain(plain)
    begin = _TIKZ_BEGIN if scale == 1 else _TIKZ_SCALED.format(scale=f"{scale:.3f}")
    lines = [f"% {g.name}: laid out by Graphviz dot, labels set by TeX", begin]
    for n in g.nodes:
        x, y, w, h = nodes[n.id]
        colour = "red!60!black" if n.kind == "adjoint" else "black"
        if n.kind == "ellipsis":
            outline = None
        elif n.kind == "parameter":
            outline = (
                f"({x - w / 2:.3f},{y - h / 2:.3f}) rectangle ({x + w / 2:.3f},{y + h / 2:.3f})"
            )
        else:
            outline = f"({x:.3f},{y:.3f}) ellipse ({w / 2:.3f} and {h / 2:.3f})"
        if outline is not None:
            lines.append(f"  \\draw[{colour}] {outline};")
        lines.append(f"  \\node[{colour}] at ({x:.3f},{y:.3f}) {{${n.label_latex}$}};")
    pending: dict[tuple[str, str], list[list[float]]] = {}
    for tail, head, points in paths:
        pending.setdefault((tail, head), []).append(points)
    for e in g.edges:
        points = _take(pending, (e.src, e.dst))
        if points is None:  # drawn against the rows (dir=back): the path runs dst -> src
            back = _take(pending, (e.dst, e.src))
            if back is None:
                continue
            pairs = [back[i : i + 2] for i in range(0, len(back), 2)]
            points = [c for pair in reversed(pairs) for c in pair]
        lines.append(_tikz_edge(e, points))
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines) + "\n"


def _tikz_edge(e: Edge, points: list[float]) -> str:
    """One edge along Graphviz's Bézier path; a delay's black square at its start."""
    style = "->, dashed, red!60!black" if e.style == "backward" else "->"
    xy = [f"({points[i]:.3f},{points[i + 1]:.3f})" for i in range(0, len(points), 2)]
    path = xy[0]
    for i in range(1, len(xy) - 2, 3):
        path += f" .. controls {xy[i]} and {xy[i + 1]} .. {xy[i + 2]}"
    label = _tikz_label(e)
    if label:
        path += f" node[midway, auto, font=\\footnotesize] {{${label}$}}"
    out = f"  \\draw[{style}] {path};"
    if e.style == "delay":
        x0, y0 = points[0], points[1]
        box = f"({x0 - 0.04:.3f},{y0 - 0.04:.3f}) rectangle ({x0 + 0.04:.3f},{y0 + 0.04:.3f})"
        out += f"\n  \\fill {box};"
    return out


def _take(pending: dict[tuple[str, str], list[list[float]]], key: tuple[str, str]) -> Any:
    found = pending.get(key)
    return found.pop(0) if found else None


def _run_dot(
    dot: str, fmt: str, source: str, output: str | None = None, extra: Sequence[str] = ()
) -> bytes:
    command = [dot, f"-T{fmt}", *extra] + (["-o", output] if output else [])
    try:
        done = subprocess.run(
            command, input=source.encode("ascii"), capture_output=True, timeout=120, check=False
        )
    except FileNotFoundError as exc:
        raise ToolMissing(
            f"the Graphviz program {dot!r} could not be run; {_INSTALL_HINT}"
        ) from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SymrnnError(
            f"Graphviz dot failed with status {done.returncode}: "
            f"{message[0] if message else 'no message'}; check the graph's labels with to_dot()"
        )
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Graphs of recurrences: folded (Fig. 10.2 left), unfolded (Fig. 10.2 right, Fig. 10.3), BPTT

#: Unfolded graphs of more steps than this draw the first two steps, one column of ``…`` nodes
#: (:math:`h^{(\dots)}`, kind ``ellipsis``) standing for the steps in between, and the last two;
#: ``max_steps=`` changes the limit and ``full=True`` draws every step.
MAX_DRAWN_STEPS = 6

_AT_EACH_END = 2
_DOTS = "dots"
_END = float("inf")  # the column of nodes outside time: parameters, the total loss, gradients
_LOSS = "L"

#: Node kind of each role a quantity of a recurrence plays.
_ROLE_KIND = {
    "input": "input",
    "target": "input",
    "parameter": "parameter",
    "state": "intermediate",
    "intermediate": "intermediate",
    "output": "output",
}


@dataclass(frozen=True)
class _Quantity:
    """One drawn variable of a recurrence: a scalar, or a vector of component functions."""

    name: str
    role: str
    parts: tuple[Any, ...]  # component functions of time, or the entry symbols of a parameter
    vector: bool

    @property
    def kind(self) -> str:
        return _ROLE_KIND[self.role]

    def at(self, time: Any) -> Any:
        """The variable at ``time``: ``h(3)``, or the vector ``h(3)``."""
        if self.vector:
            return VectorAt(self.name, time, len(self.parts))
        return self.parts[0](time) if self.parts else time_function(self.name)(time)


class _Quantities:
    """The quantities of a recurrence, vectors grouped as written, in drawing order."""

    def __init__(self, rec: Recurrence) -> None:
        self.rec = rec
        vector_of = {f: name for name, comps in rec.vectors.items() for f in comps}
        self.of: dict[Any, _Quantity] = {}
        self.by_name: dict[str, _Quantity] = {}
        self.defined: list[_Quantity] = []
        self.inputs: list[_Quantity] = []
        self.targets: list[_Quantity] = []
        self.params: list[_Quantity] = []
        outputs, states = set(rec.outputs), set(rec.states)
        for f in rec.defined:
            if f not in self.of:
                role = "output" if f in outputs else "state" if f in states else "intermediate"
                self.defined.append(self._add(f, vector_of, role))
        for f in sorted(rec.inputs, key=lambda g: vector_of.get(g, g.__name__)):
            if f not in self.of:
                self.inputs.append(self._add(f, vector_of, "input"))
        for pname, value in rec.param_groups.items():
            parts = tuple(value) if isinstance(value, sp.MatrixBase) else (value,)
            quantity = _Quantity(pname, "parameter", parts, isinstance(value, sp.MatrixBase))
            self.params.append(quantity)
            self.by_name.setdefault(pname, quantity)
            for entry in parts:
                self.of[entry] = quantity
        self._matrices = {
            m.name: m
            for eq in rec.display
            for side in (eq.lhs, eq.rhs)
            if isinstance(side, sp.Basic)
            for m in side.atoms(sp.MatrixSymbol)
        }

    def _add(self, f: Any, vector_of: dict[Any, str], role: str) -> _Quantity:
        name = vector_of.get(f)
        parts = tuple(self.rec.vectors[name]) if name is not None else (f,)
        quantity = _Quantity(name or f.__name__, role, parts, name is not None)
        self.by_name.setdefault(quantity.name, quantity)
        for part in parts:
            self.of[part] = quantity
        return quantity

    def add_targets(self, funcs: Iterable[Any], vectors: Iterable[str] = ()) -> None:
        """Group the time functions a loss reads that the recurrence does not know (``y``).

        ``y_1``, ``y_2``, … form the vector ``y`` when a loss names the vector ``y`` or when
        several components share the name.
        """
        unknown = sorted({f for f in funcs if f not in self.of}, key=lambda f: f.__name__)
        known_vectors = set(vectors)
        bases: dict[str, list[Any]] = {}
        for f in unknown:
            base, _, index = f.__name__.rpartition("_")
            if base and index.isdigit():
                bases.setdefault(base, []).append(f)
        for f in unknown:
            base, _, index = f.__name__.rpartition("_")
            members = bases.get(base, []) if base and index.isdigit() else []
            if members and (base in known_vectors or len(members) > 1):
                members = sorted(members, key=lambda g: int(g.__name__.rpartition("_")[2]))
                quantity = _Quantity(base, "target", tuple(members), True)
            else:
                quantity = _Quantity(f.__name__, "target", (f,), False)
            if quantity.name in self.by_name and self.by_name[quantity.name] != quantity:
                quantity = _Quantity(f.__name__, "target", (f,), False)
            if f in self.of:
                continue
            self.targets.append(quantity)
            self.by_name.setdefault(quantity.name, quantity)
            for part in quantity.parts:
                self.of[part] = quantity

    def param_at(self, quantity: _Quantity) -> Any:
        """A parameter as written: its matrix symbol ``W``, or the scalar symbol."""
        if quantity.vector:
            return self._matrices.get(quantity.name, sp.ImmutableMatrix(quantity.parts))
        return quantity.parts[0]

    def dependencies(self, quantity: _Quantity) -> list[tuple[_Quantity, int]]:
        """(source, lag) pairs that ``quantity`` is computed from, in drawing order: lagged
        quantities (shortest lag first), same-time quantities, then inputs."""
        found: set[tuple[str, int]] = set()
        for f in quantity.parts:
            for atom in time_atoms(self.rec.update[f]):
                found.add((self.of[atom.func].name, -int(sp.expand(time_of(atom) - t))))
        order = {q.name: i for i, q in enumerate(self.defined + self.inputs)}
        deps = sorted(
            found,
            key=lambda d: (self.by_name[d[0]].role == "input", d[1] == 0, d[1], order[d[0]]),
        )
        return [(self.by_name[n], lag) for n, lag in deps]

    def param_uses(self, exprs: Iterable[sp.Basic]) -> list[_Quantity]:
        """The parameters (as drawn quantities) that ``exprs`` use, in parameter order."""
        free: set[Any] = set()
        for expr in exprs:
            free |= expr.free_symbols
        return [q for q in self.params if any(p in free for p in q.parts)]


def _written(rec: Recurrence, quantity: _Quantity) -> list[sp.Basic]:
    """The right side of ``quantity``'s equation as the user wrote it (matrix form kept)."""
    for eq in rec.display:
        lhs = eq.lhs
        if quantity.vector and isinstance(lhs, VectorAt) and lhs.name == quantity.name:
            return [eq.rhs]
        if not quantity.vector and is_time_atom(lhs) and lhs.func == quantity.parts[0]:
            return [eq.rhs]
    return [rec.update[f] for f in quantity.parts]


def _children(expr: sp.Basic) -> tuple[sp.Basic, ...]:
    if isinstance(expr, ElementwiseApplyFunction):
        return (expr.expr,)
    if isinstance(expr, sp.MatrixBase):
        return tuple(expr)
    if _is_leaf(expr):
        return ()
    return tuple(expr.args)


def _occurrences(root: sp.Basic, match: Any) -> list[tuple[tuple[sp.Basic, int], ...]]:
    """Paths (ancestor, child index) from ``root`` to each subexpression ``match`` accepts."""
    found = []
    stack: list[tuple[sp.Basic, tuple[tuple[sp.Basic, int], ...]]] = [(root, ())]
    while stack:
        expr, path = stack.pop()
        if match(expr):
            found.append(path)
            continue
        children = _children(expr)
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], (*path, (expr, i))))
    return found


def _through_parameter(parent: sp.Basic, index: int, params: Mapping[str, Any]) -> Any:
    """The parameter P when ``parent`` is the product P·v of one parameter and its child v."""
    if not isinstance(parent, (sp.Mul, sp.MatMul)):
        return None
    child = parent.args[index]
    factors = [a for a in parent.args if not a.is_Number]
    if len(factors) != 2 or child not in factors:
        return None
    other = factors[1] if factors[0] == child else factors[0]
    if isinstance(other, (sp.Symbol, sp.MatrixSymbol)) and params.get(other.name) == other:
        return other
    return None


def _named_function(expr: sp.Basic) -> str | None:
    if isinstance(expr, ElementwiseApplyFunction):
        return _operation(expr)[1]
    if isinstance(expr, Application) and not is_time_atom(expr):
        return _function_op(expr.func)[1]
    return None


def _parameter_label(param: Any) -> tuple[str, str]:
    bold = isinstance(param, sp.MatrixSymbol)
    return greek(param.name), _html_name(param.name, bold)


def _dependency_label(
    roots: list[sp.Basic], match: Any, params: Mapping[str, Any]
) -> tuple[str, str]:
    """The label of a dependency, read off where the source enters the written equation.

    The parameter it is multiplied by, when every occurrence goes through the same one
    (``W h^{(t-1)}`` gives ``W``); otherwise the innermost named function around all the
    occurrences (``f`` in ``f(h^{(t-1)}, x^{(t)}; θ)``, ``tanh``); otherwise no label.
    """
    labels = set()
    for root in roots:
        paths = _occurrences(root, match)
        if not paths:
            continue
        through = {_through_parameter(*path[-1], params) if path else None for path in paths}
        if len(through) == 1 and None not in through:
            labels.add(_parameter_label(through.pop()))
            continue
        common = 0
        while all(len(p) > common and p[common] == paths[0][common] for p in paths):
            common += 1
        shared = [paths[0][j][0] for j in range(common)]
        if common < len(paths[0]):
            shared.append(paths[0][common][0])
        named = next((n for n in map(_named_function, reversed(shared)) if n), None)
        labels.add((named, _html_piece(named, italic=True)) if named else ("", ""))
    return labels.pop() if len(labels) == 1 else ("", "")


def _matches(source: _Quantity, time: Any) -> Any:
    parts = set(source.parts)

    def match(expr: sp.Basic) -> bool:
        if isinstance(expr, VectorAt):
            return source.vector and expr.name == source.name and sp.expand(expr.time - time) == 0
        return is_time_atom(expr) and expr.func in parts and sp.expand(time_of(expr) - time) == 0

    return match


def _labels(qs: _Quantities) -> dict[tuple[str, str, int], tuple[str, str]]:
    """(target, source, lag) -> edge label (text, HTML) for every dependency of ``qs.rec``."""
    params: dict[str, Any] = {str(p): p for p in qs.rec.params}
    params.update(qs._matrices)
    out = {}
    for quantity in qs.defined:
        roots = _written(qs.rec, quantity)
        scalar_roots = [qs.rec.update[f] for f in quantity.parts]
        for source, lag in qs.dependencies(quantity):
            match = _matches(source, t - lag)
            if not any(_occurrences(r, match) for r in roots):
                roots_used = scalar_roots  # written in explicit form: read the scalar equations
            else:
                roots_used = roots
            out[(quantity.name, source.name, lag)] = _dependency_label(roots_used, match, params)
    return out


def _op_of(exprs: list[sp.Basic]) -> str | None:
    """The outermost operation of a quantity's defining expression (``tanh``, ``f``, ``add``)."""
    expr = exprs[0]
    if isinstance(expr, sp.MatrixBase) and expr:
        expr = expr[0]
    try:
        return _operation(expr)[0]
    except SymrnnError:  # an exotic elementwise map: the drawing needs no operation name
        return None


@lru_cache(maxsize=1024)
def _latex_name(name: str, bold: bool) -> str:
    tex = latex_expr(sp.Symbol(name))
    return f"\\mathbf{{{tex}}}" if bold else tex


def _name_labels(quantity: _Quantity, time: Any) -> tuple[str, str]:
    """LaTeX and HTML labels of ``quantity`` at ``time`` (None: folded, _DOTS: ``h^{(…)}``).

    The same text as :func:`variable_labels` of ``h(3)`` or of the vector ``h(3)``, made
    without SymPy's printer (a long unfolding has thousands of nodes).
    """
    tex = _latex_name(quantity.name, quantity.vector)
    if time is None or quantity.role == "parameter":
        return tex, _html_name(quantity.name, quantity.vector)
    if time == _DOTS:
        return f"{tex}^{{(\\dots)}}", _html_name(quantity.name, quantity.vector, "(\u2026)")
    return f"{tex}^{{({time})}}", _html_name(quantity.name, quantity.vector, f"({time})")


def _node_id(quantity: _Quantity, time: Any) -> str:
    base = identifier(quantity.name)
    if time is None or quantity.role == "parameter":
        return base
    if time == _DOTS:
        return f"{base}__dots"
    return f"{base}__{time}" if time >= 0 else f"{base}__m{-time}"


def _candidate_ids(var: Any) -> list[str]:
    if isinstance(var, str):
        return [var]
    if isinstance(var, Adjoint):
        return [adjoint_name(i) for i in _candidate_ids(var.args[0])]
    if isinstance(var, VectorAt) or is_time_atom(var):
        name = var.name if isinstance(var, VectorAt) else var.func.__name__
        time = var.time if isinstance(var, VectorAt) else time_of(var)
        ids = [code_name(time_function(name)(time))]
        return ids + ([identifier(name)] if time == t else [])
    if isinstance(var, (sp.Symbol, sp.MatrixSymbol)):
        return [identifier(var.name)]
    return []


class _Canvas:
    """Nodes placed on levels (rows drawn bottom-up) and in columns (time steps), and edges."""

    def __init__(self, timed: bool = True) -> None:
        self.timed = timed  # columns are time steps (unfolded), else there are none (folded)
        self.nodes: dict[Any, Node] = {}
        self.spot: dict[Any, tuple[float, float, int]] = {}  # (column, level, sequence)
        self.level: dict[Any, int | None] = {}
        self.ids: dict[Any, str] = {}
        self.edges: list[Edge] = []
        self._edge_keys: set[tuple[Any, ...]] = set()
        self._used: set[str] = set()

    def __contains__(self, key: Any) -> bool:
        return key in self.nodes

    def add(
        self,
        key: Any,
        node_id: str,
        labels: tuple[str, str],
        kind: str,
        *,
        op: str | None = None,
        expr: sp.Basic | None = None,
        level: int | None = None,
        column: float = 0.0,
    ) -> Any:
        if key not in self.nodes:
            unique, k = node_id, 2
            while unique in self._used:
                unique, k = f"{node_id}_{k}", k + 1
            self._used.add(unique)
            self.ids[key] = unique
            self.nodes[key] = Node(unique, labels[0], kind, op, expr, labels[1])
            height = float(level) if level is not None else _END
            self.spot[key] = (column, height, len(self.spot))
            self.level[key] = level
        return key

    def link(
        self,
        src: Any,
        dst: Any,
        label: tuple[str, str] = ("", ""),
        style: str = "forward",
        lag: int = 0,
    ) -> None:
        a, b = self.ids[src], self.ids[dst]
        if a == b and style != "delay":
            return  # within one column of ellipses
        key = (a, b, style, lag, label)
        if key not in self._edge_keys:
            self._edge_keys.add(key)
            self.edges.append(Edge(a, b, label[0], style, lag, label[1]))

    def finish(self, name: str, attrs: tuple[tuple[str, str], ...]) -> Graph:
        keys = sorted(self.nodes, key=lambda k: self.spot[k])
        levels: dict[int, list[str]] = {}
        for key in keys:
            level = self.level[key]
            if level is not None:
                levels.setdefault(level, []).append(self.ids[key])
        ranks = tuple(tuple(levels[h]) for h in sorted(levels))
        steps: dict[float, list[str]] = {}
        for key in sorted(keys, key=lambda k: (self.spot[k][1], self.spot[k][2])):
            column = self.spot[key][0]
            if self.timed and abs(column) != _END:
                steps.setdefault(column, []).append(self.ids[key])
        columns = tuple(tuple(steps[c]) for c in sorted(steps))
        nodes = tuple(self.nodes[k] for k in keys)
        return Graph(nodes, tuple(self.edges), name, attrs, ranks, columns)


def _check_options(params: Any, max_steps: Any, full: Any) -> None:
    if not isinstance(params, bool):
        raise SymrnnError(
            f"params={params!r}: for a recurrence give params=True to draw the parameters as "
            "nodes, or params=False (the default) to name them on the edges"
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise SymrnnError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not isinstance(full, bool):
        raise SymrnnError(f"full must be True or False, got {full!r}")


def _loss_expr(loss: Any) -> sp.Basic:
    if is_matrix(loss):
        return sp.Add(*explicit(loss))
    try:
        if isinstance(loss, str):  # text is parsed by symrnn.parsing, never by sympify
            raise sp.SympifyError(loss)
        return expand_losses(sp.sympify(loss, strict=True))
    except sp.SympifyError:
        raise SymrnnError(
            f"loss={loss!r} is not a SymPy expression; give the loss per step as a template in "
            "t, such as (h(t) - y(t))**2/2, or the total loss"
        ) from None


def _is_template(expr: sp.Basic) -> bool:
    return t in expr.free_symbols or any(not time_of(a).is_Integer for a in time_atoms(expr))


def _shifted_to_t(expr: sp.Basic, k: Any) -> sp.Basic:
    """``expr`` at step ``k`` as a template in t: ``h(3) - h(2)`` at 3 is ``h(t) - h(t-1)``."""
    if k is None:
        return expr
    return expr.xreplace({a: a.func(t + int(time_of(a)) - k) for a in time_atoms(expr)})


def _levels(qs: _Quantities, memory: Iterable[str] = ()) -> dict[str, int]:
    """The height of each quantity's row: inputs at 0, each defined quantity one above the
    highest quantity it reads at the same time (``o`` above ``h`` above ``x``).

    ``memory`` states (:func:`_memory_states`) share one row above all the others instead."""
    memory = set(memory)
    level = {q.name: 0 for q in qs.inputs}
    for q in qs.defined:  # evaluation order: what q reads at the same time comes first
        same_time = [
            level[s.name] for s, lag in qs.dependencies(q) if lag == 0 and s.name not in memory
        ]
        level[q.name] = 1 + max(same_time, default=0)
    if memory:
        top = 1 + max((level[q.name] for q in qs.defined if q.name not in memory), default=0)
        level.update(dict.fromkeys(memory, top))
    return level


def _step_reads(qs: _Quantities, quantity: _Quantity) -> dict[str, set[int]]:
    """The states and inputs ``quantity`` reads, with their lags, through the intermediates
    it reads in the same step (LSTM's ``c`` reads ``h`` at lag 1 through its gates)."""
    reads: dict[str, set[int]] = {}
    pending, seen = [quantity], {quantity.name}
    while pending:
        for source, lag in qs.dependencies(pending.pop()):
            if lag == 0 and source.role in ("intermediate", "output"):
                if source.name not in seen:
                    seen.add(source.name)
                    pending.append(source)
            else:
                reads.setdefault(source.name, set()).add(lag)
    return reads


def _memory_states(qs: _Quantities) -> list[str]:
    """States an unfolded graph draws on their own row, above the others: each is read by
    another state in the same step and reads that state only at earlier steps (LSTM's cell
    state ``c``: ``h = o ⊙ tanh(c)``, while ``c`` reads ``h^{(t-1)}``).  On that row the chain
    c^{(0)} → c^{(1)} → … is a straight line, and the edges h^{(t-1)} → gates of the next step
    join neighbouring rows instead of crossing it.  A stacked cell's lower layer is read by the
    upper one in the same step but never reads it, so layers keep their order."""
    states = [q for q in qs.defined if q.role == "state"]
    reads = {q.name: _step_reads(qs, q) for q in states}
    return [
        s.name
        for s in states
        if any(
            0 in reads[r.name].get(s.name, ())
            and reads[s.name].get(r.name)
            and 0 not in reads[s.name][r.name]
            for r in states
            if r is not s
        )
    ]


def _loss_level(qs: _Quantities, level: dict[str, int], atoms: Iterable[Any]) -> int:
    read = [level[qs.of[a.func].name] for a in atoms if qs.of[a.func].name in level]
    return 1 + max(read, default=0)


_LOSS_QUANTITY = _Quantity(_LOSS, "output", (), False)


# --- folded ---------------------------------------------------------------------------------


def _folded(rec: Recurrence, name: str, params: bool, loss: Any) -> Graph:
    qs = _Quantities(rec)
    template = None
    if loss is not None:
        template = _loss_expr(loss)
        if not _is_template(template):
            raise SymrnnError(
                "the folded graph needs the loss per step as a template in t, such as "
                f"(h(t) - y(t))**2/2; got {template}"
            )
        qs.add_targets((a.func for a in time_atoms(template)), vector_names(loss))
    labels = _labels(qs)
    level = _levels(qs)
    canvas = _Canvas(timed=False)
    for q in qs.inputs:
        canvas.add(
            q.name,
            _node_id(q, None),
            _name_labels(q, None),
            q.kind,
            expr=q.at(t),
            level=level[q.name],
        )
    for q in qs.defined:
        written = _written(rec, q)
        canvas.add(
            q.name,
            _node_id(q, None),
            _name_labels(q, None),
            q.kind,
            op=_op_of(written),
            expr=written[0] if len(written) == 1 else sp.ImmutableMatrix(written),
            level=level[q.name],
        )
    if template is not None:
        loss_level = _loss_level(qs, level, time_atoms(template))
        canvas.add(
            _LOSS,
            _LOSS,
            _name_labels(_LOSS_QUANTITY, None),
            "output",
            op="loss",
            expr=template,
            level=loss_level,
        )
        for q in qs.targets:
            canvas.add(
                q.name,
                _node_id(q, None),
                _name_labels(q, None),
                q.kind,
                expr=q.at(t),
                level=loss_level + 1,
            )
    if params:
        for q in qs.params:
            canvas.add(
                ("param", q.name),
                _node_id(q, None),
                _name_labels(q, None),
                "parameter",
                expr=qs.param_at(q),
                column=-_END,
            )
    for q in qs.defined:
        for source, lag in qs.dependencies(q):
            style = "delay" if lag else "forward"
            canvas.link(source.name, q.name, labels[(q.name, source.name, lag)], style, lag)
        if params:
            for p in qs.param_uses(rec.update[f] for f in q.parts):
                canvas.link(("param", p.name), q.name)
    if template is not None:
        read = {(qs.of[a.func].name, -int(sp.expand(time_of(a) - t))) for a in time_atoms(template)}
        for source_name, lag in sorted(read, key=lambda d: (canvas.spot[d[0]], d[1])):
            canvas.link(source_name, _LOSS, style="delay" if lag else "forward", lag=lag)
        if params:
            for p in qs.param_uses([template]):
                canvas.link(("param", p.name), _LOSS)
    return canvas.finish(name, (("rankdir", "BT"),))


@graph.register(Recurrence)
def _graph_recurrence(
    obj: Recurrence, *, name: str | None = None, params: Any = False, loss: Any = None
) -> Graph:
    _check_options(params, 1, False)
    return _folded(obj, name or obj.name or "G", params, loss)


# --- unfolded -------------------------------------------------------------------------------


class _Unfolding:
    """Draws an unfolded chain: one node per quantity per step, columns in time order."""

    def __init__(self, U: Unfolded, loss: Any, params: bool, max_steps: int, full: bool) -> None:
        self.U = U
        self.rec = U.recurrence
        self.qs = _Quantities(self.rec)
        self.params = params
        self.steps = U.steps
        self.collapse = not full and self.steps > max_steps and self.steps > 2 * _AT_EACH_END
        self.memory = _memory_states(self.qs)
        self.level = _levels(self.qs, self.memory)
        self.loss_terms: list[tuple[int | None, sp.Basic]] = []
        self.per_step = False
        if loss is not None:
            self._split_loss(_loss_expr(loss), vector_names(loss))
        self.labels = _labels(self.qs)
        self.ops = {q.name: _op_of(_written(self.rec, q)) for q in self.qs.defined}
        self.canvas = _Canvas()

    # ---- layout
    def column(self, time: int) -> Any:
        """The drawn column of step ``time``: itself, or _DOTS for the steps not drawn."""
        if self.collapse and _AT_EACH_END < time <= self.steps - _AT_EACH_END:
            return _DOTS
        return time

    @staticmethod
    def position(column: Any) -> float:
        return _AT_EACH_END + 0.5 if column == _DOTS else float(column)

    def _split_loss(self, loss: sp.Basic, vectors: set[str]) -> None:
        if _is_template(loss):
            terms: list[tuple[int | None, sp.Basic]] = [
                (k, self.U.instantiate(loss, k)) for k in range(1, self.steps + 1)
            ]
            self.per_step = True
        else:
            by_step: dict[int | None, list[sp.Basic]] = {}
            for term in sp.Add.make_args(loss):
                times = [int(time_of(a)) for a in time_atoms(term) if time_of(a).is_Integer]
                by_step.setdefault(max(times) if times else None, []).append(term)
            shapes = {_shifted_to_t(sp.Add(*ts), k) for k, ts in by_step.items()}
            if None in by_step or len(by_step) < 2 or len(shapes) > 1:
                terms = [(None, loss)]  # not a sum over steps of one L^{(t)}
            else:
                terms = [(k, sp.Add(*by_step[k])) for k in sorted(by_step, key=int)]  # type: ignore[arg-type]
                self.per_step = True
        self.loss_terms = terms
        atoms = {a for _, term in terms for a in time_atoms(term)}
        self.qs.add_targets({a.func for a in atoms}, vectors)
        base = _loss_level(self.qs, self.level, atoms)
        if self.memory:  # above the memory row, which is the top of the forward graph
            base = max(base, 1 + max(self.level[m] for m in self.memory))
        self.level[f"{_LOSS}(t)"] = base
        for q in self.qs.targets:
            self.level[q.name] = base + 1
        self.level[_LOSS] = (base + 1 + bool(self.qs.targets)) if self.per_step else base

    # ---- nodes
    def node(self, quantity: _Quantity, time: int) -> Any:
        """The key of ``quantity`` at step ``time``; leaves and ellipses are added here."""
        column = self.column(time)
        key = (quantity.name, column)
        if key not in self.canvas:
            if column == _DOTS:
                kind, expr = "ellipsis", None
            elif quantity.role in ("state", "intermediate", "output") and time >= 1:
                values = [self.U.definitions[f(time)] for f in quantity.parts]
                self.canvas.add(
                    key,
                    _node_id(quantity, time),
                    _name_labels(quantity, time),
                    quantity.kind,
                    op=self.ops[quantity.name],
                    expr=sp.ImmutableMatrix(values) if quantity.vector else values[0],
                    level=self.level[quantity.name],
                    column=float(time),
                )
                return key
            else:  # an input, a target, or an initial state
                kind = "input" if quantity.role == "state" else quantity.kind
                expr = quantity.at(time)
            self.canvas.add(
                key,
                _node_id(quantity, column),
                _name_labels(quantity, column),
                kind,
                expr=expr,
                level=self.level[quantity.name],
                column=self.position(column),
            )
        return key

    def param_node(self, quantity: _Quantity) -> Any:
        return self.canvas.add(
            ("param", quantity.name),
            _node_id(quantity, None),
            _name_labels(quantity, None),
            "parameter",
            expr=self.qs.param_at(quantity),
            column=-_END,
        )

    def source(self, atom: Any) -> Any:
        return self.node(self.qs.of[atom.func], int(time_of(atom)))

    # ---- the forward graph
    def forward(self) -> None:
        qs, U = self.qs, self.U
        deps = {q.name: qs.dependencies(q) for q in qs.defined}
        if self.params:
            for p in qs.params:  # shared by every step, drawn in parameter order
                self.param_node(p)
        for k in range(1, self.steps + 1):
            for q in qs.defined:
                dst = self.node(q, k)
                chain = [U.definitions[f(k)] for f in q.parts]
                present = {
                    (qs.of[a.func].name, k - int(time_of(a)))
                    for rhs in chain
                    for a in time_atoms(rhs)
                }
                for source, lag in deps[q.name]:
                    if (source.name, lag) in present:  # else an initial state given a value
                        src = self.node(source, k - lag)
                        self.canvas.link(src, dst, self.labels[(q.name, source.name, lag)], lag=lag)
                if self.params:
                    for p in qs.param_uses(chain):
                        self.canvas.link(self.param_node(p), dst)
        self.loss()

    def loss(self) -> None:
        """L^{(t)} nodes fed by the quantities each step's loss reads, and the total L."""
        keys = []
        for k, term in self.loss_terms:
            if k is None:
                continue
            column = self.column(k)
            key = self.canvas.add(
                (f"{_LOSS}(t)", column),
                _node_id(_LOSS_QUANTITY, column),
                _name_labels(_LOSS_QUANTITY, column),
                "ellipsis" if column == _DOTS else "intermediate",
                op=None if column == _DOTS else "loss",
                expr=None if column == _DOTS else term,
                level=self.level[f"{_LOSS}(t)"],
                column=self.position(column),
            )
            keys.append(key)
            self._feed(term, key)
        if self.loss_terms:
            total = sp.Add(*[term for _, term in self.loss_terms])
            self.canvas.add(
                _LOSS,
                _LOSS,
                _name_labels(_LOSS_QUANTITY, None),
                "output",
                op="add" if keys else "loss",
                expr=total,
                level=self.level[_LOSS],
                column=_END,
            )
            for key in keys:
                self.canvas.link(key, _LOSS)
            if not keys:
                self._feed(total, _LOSS)

    def _feed(self, term: sp.Basic, key: Any) -> None:
        sources = {self.source(a) for a in time_atoms(term)}
        for src in sorted(sources, key=lambda s: self.canvas.spot[s]):
            self.canvas.link(src, key)
        if self.params:
            for p in self.qs.param_uses([term]):
                self.canvas.link(self.param_node(p), key)

    # ---- back-propagation through time
    def adjoint_levels(self) -> None:
        top = max(self.level.values(), default=0)
        highest = max((self.level[q.name] for q in self.qs.defined), default=0)
        adjoint = {}
        for q in (*self.qs.defined, *self.qs.inputs):
            adjoint[q.name] = top + 1 + highest - self.level[q.name]
        self.adjoint_level = adjoint
        self.gradient_level = max(adjoint.values(), default=top) + 1
        self.adjoint_of: dict[Any, _Quantity] = {}

    def adjoint_node(self, var: Any, value: sp.Basic) -> Any:
        """The node of ∂L/∂var (a chain quantity, an input or initial state, a parameter)."""
        quantity = self.qs.of[var.func] if is_time_atom(var) else self.qs.of[var]
        column = self.column(int(time_of(var))) if is_time_atom(var) else None
        key = ("d", quantity.name, column)
        self.adjoint_of[key] = quantity
        if key not in self.canvas:
            tex, html_label = _name_labels(quantity, column)
            self.canvas.add(
                key,
                adjoint_name(_node_id(quantity, column)),
                (f"\\frac{{\\partial L}}{{\\partial {tex}}}", "&part;<I>L</I>/&part;" + html_label),
                "ellipsis" if column == _DOTS else "adjoint",
                op=None if column == _DOTS else "adjoint",
                expr=None if column == _DOTS else value,
                level=self.gradient_level if column is None else self.adjoint_level[quantity.name],
                column=_END if column is None else self.position(column),
            )
        return key

    def backward(self, B: BPTT) -> None:
        self.adjoint_levels()
        equations = (*B.adjoints, *B.gradients)
        value = {eq.lhs.args[0]: eq.rhs for eq in equations}
        for eq in equations:
            self.adjoint_node(eq.lhs.args[0], eq.rhs)
        for key, quantity in self.adjoint_of.items():
            node, column = self.canvas.nodes[key], key[2]
            if node.kind != "adjoint" or not quantity.vector:
                continue
            # A vector's adjoint holds one entry per component, a matrix's one per entry.
            if column is None:
                entries = self.qs.rec.param_groups[quantity.name]
                matrix = entries.applyfunc(lambda e: value.get(e, sp.S.Zero))
            else:
                matrix = sp.ImmutableMatrix(
                    [value.get(f(column), sp.S.Zero) for f in quantity.parts]
                )
            self.canvas.nodes[key] = Node(
                node.id, node.label_latex, node.kind, node.op, matrix, node.label_html
            )
        for eq in equations:
            var = eq.lhs.args[0]
            dst = self.adjoint_node(var, eq.rhs)
            if any(not term.has(Adjoint) for term in sp.Add.make_args(eq.rhs) if term != 0):
                self.canvas.link(_LOSS, dst, style="backward")  # the direct term ∂L/∂v
            for later in sorted(eq.rhs.atoms(Adjoint), key=sp.default_sort_key):
                src = self.adjoint_node(later.args[0], sp.S.Zero)
                self.canvas.link(src, dst, style="backward")


# ordering=out: each node's outgoing edges keep their order (the gates of every step side by
# side in the same order, as written).
_UNFOLDED_ATTRS = (
    ("rankdir", "BT"),
    ("nodesep", "0.35"),
    ("ranksep", "0.45"),
    ("ordering", "out"),
)


@graph.register(Unfolded)
def _graph_unfolded(
    obj: Unfolded,
    *,
    name: str | None = None,
    params: Any = False,
    loss: Any = None,
    max_steps: int = MAX_DRAWN_STEPS,
    full: bool = False,
) -> Graph:
    _check_options(params, max_steps, full)
    drawing = _Unfolding(obj, loss, params, max_steps, full)
    drawing.forward()
    default = f"{obj.recurrence.name}_unfolded" if obj.recurrence.name else "G"
    return drawing.canvas.finish(name or default, _UNFOLDED_ATTRS)


@graph.register(BPTT)
def _graph_bptt(
    obj: BPTT,
    *,
    name: str | None = None,
    params: Any = False,
    max_steps: int = MAX_DRAWN_STEPS,
    full: bool = False,
) -> Graph:
    _check_options(params, max_steps, full)
    drawing = _Unfolding(obj.unfolded, obj.loss, params, max_steps, full)
    drawing.forward()
    drawing.backward(obj)
    rec = obj.unfolded.recurrence
    return drawing.canvas.finish(name or (f"{rec.name}_bptt" if rec.name else "G"), _UNFOLDED_ATTRS)
