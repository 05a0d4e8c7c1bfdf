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

Drawing choice: as in the book, the name of an operation is written on the arrows into the
variable it produces, not in a box of its own.  When an operation has several operands, the name
is drawn once, on the middle incoming arrow (the first of two), so ``dot`` appears once beside the
arrows from :math:`\mathbf{x}` and :math:`\mathbf{w}` as in Fig. 6.8 (b).  Every :class:`Edge`
still carries the label, so code that walks ``g.edges`` needs no knowledge of the drawing.
Inputs are at the bottom and results at the top (``rankdir=BT``), as in the book's figures.
Variables are ellipses, vectors and matrices bold, constants plain text.
"""

from __future__ import annotations

import html
import html.entities
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import singledispatch
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import Application
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.conventions import split_super_sub

from .errors import SymrnnError, ToolMissing
from .matrices import VectorAt, is_matrix
from .notation import code_name, is_time_atom, latex_expr, latex_time, time_function, time_of

__all__ = [
    "Node",
    "Edge",
    "Graph",
    "graph",
    "NODE_KINDS",
    "EDGE_STYLES",
    "variable_labels",
]

#: Kinds of node: leaves are inputs, parameters or constants; operations produce intermediate
#: variables or outputs (the result of an expression or of a named equation).
NODE_KINDS = ("input", "parameter", "constant", "intermediate", "output")

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
_DOT_EDGE_STYLES: dict[str, tuple[tuple[str, str], ...]] = {
    "forward": (),
    "backward": (("style", "dashed"),),
    "delay": (("dir", "both"), ("arrowtail", "box")),
}
_DOT_KIND_ATTRS: dict[str, tuple[tuple[str, str], ...]] = {
    "constant": (("shape", "plaintext"),),
}
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

    ``label`` is the operation's display name (plain Unicode, e.g. ``"×"``, ``"dot"``); ``style``
    is one of :data:`EDGE_STYLES`.  Edges into one node are listed in operand order.
    """

    src: str
    dst: str
    label: str = ""
    style: str = "forward"

    def __post_init__(self) -> None:
        if self.style not in EDGE_STYLES:
            raise SymrnnError(
                f"edge {self.src!r} -> {self.dst!r} has style {self.style!r}; "
                f"expected one of {', '.join(EDGE_STYLES)}"
            )


@dataclass(frozen=True)
class Graph:
    """An immutable computational graph: variables (:class:`Node`) and operand arrows.

    For graphs of expressions, ``nodes`` are in evaluation order (every operand before the
    variable computed from it).  ``attrs`` are Graphviz graph attributes such as ``rankdir``.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    name: str = "G"
    attrs: tuple[tuple[str, str], ...] = field(default=(("rankdir", "BT"),))
    _by_id: dict[str, Node] = field(init=False, repr=False, compare=False, hash=False)
    _operands: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "attrs", tuple((str(k), str(v)) for k, v in self.attrs))
        by_id: dict[str, Node] = {}
        for n in self.nodes:
            if n.id in by_id:
                raise SymrnnError(f"graph {self.name!r} has two nodes with id {n.id!r}")
            by_id[n.id] = n
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

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, ASCII only and byte-for-byte stable for the same graph."""
        return _to_dot(self)

    def render(self, path: str | os.PathLike[str]) -> Path:
        """Draw the graph with Graphviz ``dot`` into ``path`` (``.svg``, ``.png`` or ``.pdf``).

        The file appears complete or not at all.  Raises :class:`~symrnn.errors.ToolMissing`
        when ``dot`` is not installed.
        """
        target = Path(path)
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
            _run_dot(dot, fmt, self.to_dot(), output=tmp_name)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    def _repr_svg_(self) -> str | None:
        dot = shutil.which("dot")
        if dot is None:
            return None
        return _run_dot(dot, "svg", self.to_dot()).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Building graphs


@singledispatch
def graph(obj: Any, *, name: str = "G", params: Iterable[Any] = ()) -> Graph:
    r"""The computational graph of an expression or of named equations.

    Parameters
    ----------
    obj : sympy expression, ``Eq``, list of them, or dict name -> expression
        An expression gives one unnamed output; ``Eq(lhs, rhs)`` names the variable that computes
        ``rhs`` after ``lhs``.  In a list or dict, later equations may use earlier names, and a
        subexpression shared by several equations is one node (Fig. 6.8 (d)).
    name : str
        The graph's name (the DOT ``digraph`` id).
    params : iterable
        Leaves to mark as kind ``parameter`` instead of ``input``.

    Each ``Add``/``Mul`` (n-ary), ``Pow``, function application, matrix product (``matmul``),
    :func:`~symrnn.ops.dot`, :func:`~symrnn.ops.reduce_sum` and elementwise function of a matrix
    (``relu``, ``sigmoid``, :func:`~symrnn.ops.sqr`) is one operation; ``-a`` is ``neg``.

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
        "them, or a dict name -> expression"
    )


@graph.register
def _(obj: Graph, *, name: str = "G", params: Iterable[Any] = ()) -> Graph:
    return obj


@graph.register(sp.Basic)
def _(obj: sp.Basic, *, name: str = "G", params: Iterable[Any] = ()) -> Graph:
    return _build([obj], name, params)


@graph.register(list)
@graph.register(tuple)
def _(obj: list[Any] | tuple[Any, ...], *, name: str = "G", params: Iterable[Any] = ()) -> Graph:
    return _build(list(obj), name, params)


@graph.register(Mapping)
def _(obj: Mapping[Any, Any], *, name: str = "G", params: Iterable[Any] = ()) -> Graph:
    equations = [
        sp.Eq(sp.Symbol(k) if isinstance(k, str) else k, v, evaluate=False) for k, v in obj.items()
    ]
    return _build(equations, name, params)


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
    return op, _OP_LABELS.get(op, _greek_text(op))


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

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
}  # fmt: skip

#: Name suffixes that SymPy prints as accents (``yhat`` -> \hat{y}), with combining characters.
_ACCENTS = {"hat": "\u0302", "tilde": "\u0303", "bar": "\u0304", "dot": "\u0307", "vec": "\u20d7"}


def _entity(char: str) -> str:
    name = html.entities.codepoint2name.get(ord(char))
    return f"&{name};" if name else f"&#{ord(char)};"


def _html_text(text: str) -> str:
    """Escape ``text`` for an HTML-like label, ASCII only (named entities where HTML 4 has one)."""
    escaped = html.escape(text.replace("-", "\u2212"), quote=False)
    return "".join(c if ord(c) < 128 else _entity(c) for c in escaped)


def _greek_text(word: str) -> str:
    """``lambda`` -> ``λ``; other words unchanged."""
    key = "lambda" if word.lower() == "lamda" else word.lower()
    if key in _GREEK:
        code = html.entities.name2codepoint[key.capitalize() if word[0].isupper() else key]
        return chr(code)
    return word


def _html_piece(word: str, italic: bool) -> str:
    text = _greek_text(word)
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


def _to_dot(g: Graph) -> str:
    lines = [f"digraph {_quote(g.name)} {{"]
    if g.attrs:
        lines.append(f"  graph [{_attr_list(g.attrs)}];")
    lines.append(f"  node [{_attr_list(_DOT_NODE_DEFAULTS)}];")
    lines.append(f"  edge [{_attr_list(_DOT_EDGE_DEFAULTS)}];")
    for n in g.nodes:
        attrs = (("label", _Html(n.label_html)), *_DOT_KIND_ATTRS.get(n.kind, ()))
        lines.append(f"  {_quote(n.id)} [{_attr_list(attrs)}];")
    shown = _labelled_edges(g)
    for i, e in enumerate(g.edges):
        attrs = _DOT_EDGE_STYLES[e.style]
        if i in shown:
            attrs = (("label", _Html(_html_text(e.label))), *attrs)
        suffix = f" [{_attr_list(attrs)}]" if attrs else ""
        lines.append(f"  {_quote(e.src)} -> {_quote(e.dst)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_program() -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ToolMissing(f"the Graphviz program 'dot' is not on PATH; {_INSTALL_HINT}")
    return dot


def _run_dot(dot: str, fmt: str, source: str, output: str | None = None) -> bytes:
    command = [dot, f"-T{fmt}"] + (["-o", output] if output else [])
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
