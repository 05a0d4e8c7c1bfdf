r"""NumPy code at matrix level: one line per operation on whole vectors, whatever their size.

A recurrence written with :func:`symrnn.vector` and :func:`symrnn.matrix` is traced, per time
step, into a small graph of operations on whole arrays (matrix-vector products, elementwise
functions, Hadamard products, sums); the forward step prints one NumPy line per node, and the
adjoint step of BPTT one line per derivative rule of :mod:`symrnn.rules`.  Sequences of a batch
are a leading axis, so :math:`W\mathbf{h}^{(t-1)}` is ``h__tm1 @ W.T`` — one BLAS call for the
whole batch — and the gradient :math:`\sum_t \sum_b \boldsymbol\delta^{(t)}_b
(\mathbf{h}^{(t-1)}_b)^\top` accumulates as ``outer(delta, h__tm1)`` (``delta.T @ h__tm1``).
The work and the size of the code do not grow with the hidden size, and code generated for
symbolic sizes runs at any size (sizes are read from the arrays).

Values that depend on no earlier state are computed before the loop for many steps at once
(the rows of all steps in one array: one BLAS call for the input projections of every step),
and so are the terms of BPTT that do not depend on the adjoint carried from t + 1 (the loss,
ŷ − y, 1 − h²).  Reference semantics of the generated module::

    early = precompute(*params, x[1:T + 1])             # U x(t) + b for every t
    saved = []
    for k in range(1, T + 1):                       # forward: h^{(k)} = f(h^{(k-1)}, x^{(k)}; θ)
        saved.append(step(*params, early[k - 1], h[k - 1]))
    loss, *known = adjoint_precompute(ones, *params, y[1:T + 1], *stacked(saved))
    for k in range(T, 0, -1):                       # backward: BPTT, one step at a time
        (dL_dh_prev,), deltas = adjoint_step(grads, ones, *params, *known[k - 1], dL_dh[k])

>>> import sympy as sp, symrnn as sr
>>> n = sr.size("n")
>>> h, x, W, U = sr.vector("h", n), sr.vector("x", n), sr.matrix("W", n, n), sr.matrix("U", n, n)
>>> rec = sr.Recurrence(sp.Eq(h(sr.t), sr.tanh(W * h(sr.t - 1) + U * x(sr.t))))
>>> print(step_source(rec))
def precompute(U, W, x__t):
    # what no earlier state changes, for many steps at once (their rows in turn)
    _a2 = x__t @ U.T
    return (_a2,)
<BLANKLINE>
<BLANKLINE>
def step(U, W, _a2, h__tm1):
    # h(t) = tanh(W*h(t - 1) + U*x(t))
    h__t = numpy.tanh(_a2 + h__tm1 @ W.T)
    return (h__t,)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from .errors import SymrnnError
from .functions import relu, sigmoid, softplus
from .losses import Loss, SoftmaxCrossEntropy, SquaredError
from .matrices import VectorAt
from .notation import adjoint_name, identifier, is_time_atom, str_expr, t, time_of
from .ops import dot as dot_op
from .ops import reduce_sum, sqr
from .recurrence import Recurrence
from .rules import ELEMENTWISE, LINEAR

__all__ = ["Unsupported", "trace", "step_source", "generate_matrix_source"]

_RUNTIME = Path(__file__).with_name("matrix_runtime.py").read_text()

_FUNCTIONS = {
    sp.tanh: "tanh",
    sigmoid: "sigmoid",
    sp.exp: "exp",
    sp.log: "log",
    relu: "relu",
    softplus: "softplus",
    sp.sin: "sin",
    sp.cos: "cos",
    sqr: "square",
}


class Unsupported(SymrnnError):
    """The recurrence uses an operation the matrix-level code does not have."""


@dataclass
class Node:
    """One value of a step: a leaf (quantity, parameter, constant) or an operation."""

    id: int
    op: str  # leaf kinds: "quantity", "param", "const", "time"; else a rule name
    args: tuple[int, ...]
    batched: bool  # one value per sequence (vs. shared by the batch)
    rank: int  # 0 scalar, 1 vector, 2 matrix
    attr: Any = None
    name: str = ""
    # Depends on a state at an earlier time or on the step counter: computed inside the loop.
    # Other per-sequence values (input projections U x(t) + b) are computed for all steps at once.
    loop: bool = False


@dataclass
class Graph:
    """The traced step: nodes in evaluation order, with the roots of each equation."""

    nodes: list[Node] = field(default_factory=list)
    memo: dict[Any, int] = field(default_factory=dict)
    leaves: dict[Any, int] = field(default_factory=dict)
    roots: dict[str, int] = field(default_factory=dict)  # quantity name -> node at time t

    def add(self, op: str, args: Sequence[int], attr: Any = None, rank: int | None = None) -> int:
        key = (op, tuple(args), attr)
        if key in self.memo:
            return self.memo[key]
        nodes = [self.nodes[a] for a in args]
        batched = any(n.batched for n in nodes)
        if rank is None:
            rank = max((n.rank for n in nodes), default=0)
        node = Node(len(self.nodes), op, tuple(args), batched, rank, attr)
        node.loop = any(n.loop for n in nodes)
        node.name = f"_a{node.id}"
        self.nodes.append(node)
        self.memo[key] = node.id
        return node.id

    def leaf(
        self, key: Any, op: str, batched: bool, rank: int, name: str, loop: bool = False
    ) -> int:
        if key not in self.leaves:
            node = Node(len(self.nodes), op, (), batched, rank, key, name, loop)
            self.nodes.append(node)
            self.leaves[key] = node.id
        return self.leaves[key]


# Names the generated module defines itself; a user's name equal to one of them gets a prefix.
_RUNTIME_NAMES = frozenset(
    "numpy outer dot logsumexp softmax xent xent_do xent_dy step loss_step adjoint_step "
    "precompute adjoint_precompute forward loss value_and_grad ArgumentError".split()
)


def _safe(name: str) -> str:
    """The code variable of a parameter: never a runtime name or a time-atom name (``h__t``)."""
    ident = identifier(name)
    return f"v_{ident}" if ident in _RUNTIME_NAMES or "__" in ident else ident


def _negated(e: Any) -> Any:
    """``x`` when ``e`` is ``-x`` (a product with the coefficient -1), else None."""
    if isinstance(e, (sp.Mul, sp.MatMul)) and e.args and e.args[0] == -1:
        rest = e.args[1:]
        return rest[0] if len(rest) == 1 else e.func(*rest)
    return None


def _rank_of(shape: Any) -> int:
    rows, cols = (sp.sympify(d, strict=True) for d in shape)
    if rows == 1 and cols == 1:
        return 0
    return 1 if cols == 1 or rows == 1 else 2


def _lag(time: Any) -> int:
    k = sp.expand(t - time)
    if not k.is_Integer:
        raise Unsupported(f"time argument {time} is not t - k")
    return int(k)


def _code_time(lag: int) -> str:
    return "t" if lag == 0 else f"tm{lag}"


class _Tracer:
    def __init__(self, rec: Recurrence, graph: Graph):
        self.rec, self.g = rec, graph
        self.sizes = set(rec.blocks.sizes)
        self.defined = {f.__name__ for f in rec.blocks.defined}
        self.exprs: dict[Any, int] = {}  # SymPy subexpression -> node
        # Parameters used as the left factor of a product are matrices, whatever their shape
        # (U of shape n×1 times a one-component input); other n×1 parameters are vectors.
        self.matrices: set[Any] = set()
        for eq in rec.blocks.equations:
            for mm in eq.rhs.atoms(sp.MatMul) if isinstance(eq.rhs, sp.Basic) else ():
                factors = [a for a in mm.args if getattr(a, "is_Matrix", False)]
                for f in factors[:-1]:
                    if isinstance(f, sp.MatPow):
                        f = f.base
                    if isinstance(f, sp.MatrixSymbol):
                        self.matrices.add(f)
                    elif isinstance(f, sp.Transpose) and _rank_of(f.arg.shape) == 2:
                        self.matrices.add(f.arg)

    def quantity(self, name: str, lag: int, rank: int) -> int:
        if lag == 0 and name in self.g.roots:
            return self.g.roots[name]
        code = f"{identifier(name)}__{_code_time(lag)}"
        loop = name in self.defined  # a state; an input is known for every step in advance
        return self.g.leaf(("q", name, lag), "quantity", True, rank, code, loop)

    def __call__(self, e: Any) -> int:
        if e not in self.exprs:
            self.exprs[e] = self._trace(e)
        return self.exprs[e]

    def _trace(self, e: Any) -> int:  # noqa: C901 (one case per SymPy node type)
        g = self.g
        if isinstance(e, VectorAt):
            return self.quantity(e.name, _lag(e.time), 1)
        if isinstance(e, AppliedUndef):
            if not is_time_atom(e):
                raise Unsupported(f"{e} is an abstract function")
            return self.quantity(e.func.__name__, _lag(time_of(e)), 0)
        if isinstance(e, sp.MatrixSymbol):
            rank = 2 if e in self.matrices else max(1, _rank_of(e.shape))
            return g.leaf(("p", e.name), "param", False, rank, _safe(e.name))
        if e == t:
            return g.leaf("time", "time", False, 0, "_k", loop=True)
        if isinstance(e, sp.Symbol):
            if e in self.sizes:
                raise Unsupported(f"the size {e} is used as a number")
            return g.leaf(("p", e.name), "param", False, 0, _safe(e.name))
        if isinstance(e, (sp.OneMatrix, sp.ZeroMatrix)):
            one = isinstance(e, sp.OneMatrix)
            return g.leaf(("c", str(e)), "const", False, 0, "1.0" if one else "0.0")
        if isinstance(e, sp.MatrixBase):
            values = set(e)
            if len(values) == 1 and next(iter(values)).is_Number:
                (v,) = values
                return g.leaf(("c", float(v)), "const", False, 0, repr(float(v)))
            raise Unsupported("an explicit matrix of expressions")
        if e.is_Number:
            if not (e.is_real and e.is_finite):
                raise Unsupported(f"the number {e}")
            return g.leaf(("c", float(e)), "const", False, 0, repr(float(e)))
        if isinstance(e, (sp.MatAdd, sp.Add)):  # MatAdd is an Add too
            # Terms with a coefficient -1 are subtracted: b - h rather than b + (-1)*h.
            plus, minus = [], []
            for a in e.args:
                negated = _negated(a)
                (plus if negated is None else minus).append(a if negated is None else negated)
            total = self._sum([self(a) for a in plus]) if plus else None
            if not minus:
                return total  # type: ignore[return-value]
            sub = self._sum([self(a) for a in minus])
            if total is None:
                return self._product([self(sp.Integer(-1)), sub])
            return g.add("sub", [total, sub])
        if isinstance(e, sp.HadamardProduct):
            return self._product([self(a) for a in e.args])
        if isinstance(e, sp.MatMul):  # before Mul: SymPy's MatMul is a Mul
            return self._matmul(e)
        if isinstance(e, sp.Mul):
            return self._product([self(a) for a in e.args])
        if isinstance(e, sp.Transpose):
            arg = self(e.arg)
            if g.nodes[arg].rank == 1:
                return arg  # a vector's transpose has the same entries (row layout)
            raise Unsupported("the transpose of a matrix outside a product")
        if isinstance(e, ElementwiseApplyFunction):
            (var,) = e.function.variables
            arg = self(e.expr)
            # The bound variable stands for a different argument in every map: trace the body
            # with its own memo (operations are still shared through the graph's).
            outer_exprs, self.exprs = self.exprs, {var: arg}
            try:
                return self(e.function.expr)
            finally:
                self.exprs = outer_exprs
        if isinstance(e, (sp.Pow, sp.HadamardPower)):
            base, ex = e.args
            if ex == 2:
                return g.add("square", [self(base)])
            if ex == sp.S.Half:
                return g.add("sqrt", [self(base)])
            if ex.is_Number:
                return g.add("pow", [self(base)], float(ex))
            raise Unsupported(f"the power {e}")
        if isinstance(e, Loss):
            o, y = self(e.prediction), self(e.target)
            if isinstance(e, SquaredError):
                return g.add("sqerr", [g.add("sub", [o, y])], rank=0)
            if isinstance(e, SoftmaxCrossEntropy):
                return g.add("xent", [o, y], rank=0)
        if isinstance(e, MatrixElement) and tuple(e.parent.shape) == (1, 1):
            return self(e.parent)  # the entry of a 1×1 product such as vᵀh
        if isinstance(e, dot_op):
            return g.add("dot", [self(a) for a in e.args], rank=0)
        if isinstance(e, reduce_sum):
            return g.add("sum", [self(e.args[0])], rank=0)
        if isinstance(e, sp.Function) and type(e) in _FUNCTIONS:
            return g.add(_FUNCTIONS[type(e)], [self(e.args[0])])
        raise Unsupported(f"{type(e).__name__} ({e})")

    def _sum(self, args: list[int]) -> int:
        args = sorted(args)
        if len(args) == 1:
            return args[0]
        # The terms known in advance (U x(t) + b) form a node of their own, computed for all
        # steps at once; the sum in the loop adds the rest (W h(t-1)).
        nodes = self.g.nodes
        free = [a for a in args if not nodes[a].loop]
        if 0 < len(free) < len(args) and any(nodes[a].batched for a in free):
            if len(free) > 1 or not _is_leaf(nodes[free[0]]):
                return self.g.add("add", [self._sum(free), *(a for a in args if nodes[a].loop)])
        return self.g.add("add", args)

    def _product(self, args: list[int]) -> int:
        out = args[0]
        for a in args[1:]:
            out = self.g.add("mul", sorted([out, a]))
        return out

    def _matmul(self, e: Any) -> int:
        scalars = [a for a in e.args if not getattr(a, "is_Matrix", False)]
        mats = []
        for a in e.args:
            if isinstance(a, sp.MatPow) and a.exp.is_Integer and a.exp > 0:
                mats += [a.base] * int(a.exp)  # W**2 h is W (W h): two products, no W²
            elif getattr(a, "is_Matrix", False):
                mats.append(a)
        acc = self(mats[-1])
        if len(mats) > 1 and self.g.nodes[acc].rank == 0 and mats[-1].shape[1] == 1:
            # A vector with every entry equal (c·1, such as 1 or tanh(1)): W (c 1) = c W 1, the
            # row sums of W (Wᵀ 1: its column sums).
            m = mats[-2]
            transposed = isinstance(m, sp.Transpose)
            W = self(m.arg if transposed else m)
            if self.g.nodes[W].rank != 2:
                raise Unsupported(f"the product {e}")
            sums = self.g.add("colsum" if transposed else "rowsum", [W], rank=1)
            acc = sums if isinstance(mats[-1], sp.OneMatrix) else self._product([acc, sums])
            mats = mats[:-1]
        elif self.g.nodes[acc].rank != 1 and len(mats) > 1:
            raise Unsupported("a product of matrices that does not end in a vector")
        for m in reversed(mats[:-1]):
            if isinstance(m, sp.Transpose) and m.arg in self.matrices:
                acc = self.g.add("rmatvec", [self(m.arg), acc], rank=1)
            elif m in self.matrices:
                acc = self.g.add("matvec", [self(m), acc], rank=1)
            elif self.g.nodes[self(m)].rank == 1:  # a row vector times a column: a dot product
                acc = self.g.add("dot", [self(m), acc], rank=0)
            else:
                raise Unsupported(f"the product {e}")
        return self._product([self(s) for s in scalars] + [acc]) if scalars else acc


def trace(rec: Recurrence, loss: Any = None) -> tuple[Graph, int | None]:
    """The step graph of ``rec`` (and the node of the per-step loss template, if given)."""
    g = Graph()
    tracer = _Tracer(rec, g)
    for eq in rec.blocks.equations:
        lhs = eq.lhs
        name = lhs.name if isinstance(lhs, VectorAt) else lhs.func.__name__
        root = tracer(eq.rhs)
        node = g.nodes[root]
        if node.op in ("quantity", "param", "const", "time") or name in g.roots:
            root = g.add("copy", [root])  # the quantity gets a node of its own
            node = g.nodes[root]
        node.name = f"{identifier(name)}__t"
        g.roots[name] = root
    loss_root = tracer(loss) if loss is not None else None
    return g, loss_root


# ------------------------------------------------------------------------------- printing
def _operand(g: Graph, a: int, partner_rank: int) -> str:
    """An argument's name, with a trailing axis where a per-sequence scalar meets a vector."""
    n = g.nodes[a]
    if n.batched and n.rank == 0 and partner_rank >= 1:
        return f"{n.name}[:, None]"
    return n.name


# Python precedence of the text an operation prints (calls and names bind tightest), and what an
# operand needs in each slot: ``a - (b + c)``, ``a * (b @ W.T)``, ``x @ W.T`` after ``a * x``.
_PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "matvec": 2, "rmatvec": 2, "pow": 3}
_NEEDS = {"add": (1, 1), "sub": (1, 2), "mul": (2, 3), "matvec": (4, 2), "rmatvec": (4, 2)}


def _forward_text(g: Graph, n: Node, texts: dict[int, tuple[str, int]] | None = None) -> str:
    """NumPy text of one node; arguments in ``texts`` are printed inline (one line per equation)."""
    texts = texts or {}
    args = [g.nodes[a] for a in n.args]

    def arg(k: int, need: int, partner_rank: int = 0) -> str:
        a = args[k]
        text, prec = texts.get(a.id, (a.name, 4))
        if a.batched and a.rank == 0 and partner_rank >= 1:
            text, prec = f"{text if prec == 4 else f'({text})'}[:, None]", 4
        return text if prec >= need else f"({text})"

    if n.op == "copy":
        return arg(0, 1)
    if n.op == "add":
        return " + ".join(arg(k, 1, n.rank) for k in range(len(args)))
    if n.op == "sub":
        return f"{arg(0, 1, n.rank)} - {arg(1, 2, n.rank)}"
    if n.op == "sqerr":
        return f"0.5 * dot({arg(0, 1)}, {arg(0, 1)})"
    if n.op in ELEMENTWISE:
        template = ELEMENTWISE[n.op].forward
        inside_call = "(§)" in template("§")  # the argument is a call's whole argument
        return template(arg(0, 1 if inside_call else 4))
    if n.op == "pow":
        return f"{arg(0, 4)}**{n.attr!r}"
    if n.op == "mul":
        return LINEAR["mul"].forward(arg(0, 2, n.rank), arg(1, 3, n.rank))
    if n.op in ("matvec", "rmatvec"):
        return LINEAR[n.op].forward(arg(0, 4), arg(1, 2))
    if n.op == "dot":
        return LINEAR["dot"].forward(arg(0, 1), arg(1, 1))
    if n.op == "sum":
        return f"numpy.add.reduce({arg(0, 1)}, -1)"
    if n.op in ("rowsum", "colsum"):
        return f"numpy.add.reduce({arg(0, 1)}, {1 if n.op == 'rowsum' else 0})"
    if n.op == "xent":
        return f"xent({arg(0, 1)}, {arg(1, 1)})"
    raise SymrnnError(f"no forward rule for {n.op}")


def _reduce(text: str, source: Node | tuple[bool, int], target: Node) -> str:
    """Sum a contribution shaped like ``source`` down to the shape of ``target``."""
    batched, rank = (source.batched, source.rank) if isinstance(source, Node) else source
    axes = []
    if batched and not target.batched:
        axes.append(0)
    if rank > target.rank and target.rank == 0:
        axes.append(-1)
    if not axes:
        return text
    if len(axes) == 2 or (axes == [0] and rank == 0):
        return f"numpy.add.reduce({text}, None)"
    return f"numpy.add.reduce({text}, {axes[0]})"


def _vjps(
    g: Graph, n: Node, gn: str, factor: Callable[[str], str] = str
) -> list[tuple[int, str, tuple[bool, int]]]:
    """(argument, contribution, (batched, rank) of the contribution) for each argument.

    ``factor`` names a local derivative that does not depend on ``gn`` (``1 - h*h``), so that
    it can be computed for all steps at once.
    """
    args = [g.nodes[a] for a in n.args]
    out: list[tuple[int, str, tuple[bool, int]]] = []
    shape = (n.batched, n.rank)
    if n.op in ("copy", "add"):
        for a in args:
            out.append((a.id, gn, shape))
    elif n.op == "sub":
        out.append((args[0].id, gn, shape))
        out.append((args[1].id, f"-{gn}", shape))
    elif n.op == "sqerr":  # ½‖d‖²: the adjoint of d is g d (d itself for the loss seed)
        d = args[0]
        if gn == "_one" and d.batched:
            g_ = ""
        else:
            g_ = f"{gn}[:, None] * " if n.batched else f"{gn} * "
        out.append((d.id, f"{g_}{d.name}", (n.batched or d.batched, 1)))
    elif n.op in ELEMENTWISE:
        d = factor(ELEMENTWISE[n.op].derivative(args[0].name, n.name))
        out.append((args[0].id, f"{gn} * {d}", shape))
    elif n.op == "pow":
        a = args[0].name
        out.append((args[0].id, f"{gn} * {factor(f'({n.attr!r}*{a}**{n.attr - 1!r})')}", shape))
    elif n.op == "mul":
        a, b = args
        rank = max(a.rank, b.rank)
        g_ = f"{gn}[:, None]" if n.batched and n.rank == 0 and rank == 1 else gn
        fa, fb = LINEAR["mul"].vjp
        bt, at = _operand(g, b.id, rank), _operand(g, a.id, rank)
        out.append((a.id, fa(g_, at, bt), (shape[0] or b.batched, rank)))
        out.append((b.id, fb(g_, at, bt), (shape[0] or a.batched, rank)))
    elif n.op in ("matvec", "rmatvec"):
        W, v = args
        fW, fv = LINEAR[n.op].vjp
        out.append((W.id, fW(gn, W.name, v.name), (False, 2)))
        out.append((v.id, fv(gn, W.name, v.name), shape[:1] + (1,)))
    elif n.op == "dot" and args[0].id == args[1].id:  # ‖a‖²: one contribution, 2 g a
        g_ = f"{gn}[:, None]" if n.batched else gn
        out.append((args[0].id, f"2.0 * {g_} * {args[0].name}", (n.batched, 1)))
    elif n.op == "dot":
        a, b = args
        g_ = f"{gn}[:, None]" if n.batched else gn
        fa, fb = LINEAR["dot"].vjp
        out.append((a.id, fa(g_, a.name, b.name), (n.batched, 1)))
        out.append((b.id, fb(g_, a.name, b.name), (n.batched, 1)))
    elif n.op in ("rowsum", "colsum"):
        W = args[0]
        ones = f"numpy.ones({W.name}.shape[{1 if n.op == 'rowsum' else 0}])"
        pair = (gn, ones) if n.op == "rowsum" else (ones, gn)
        out.append((W.id, f"outer({pair[0]}, {pair[1]})", (False, 2)))
    elif n.op == "sum":
        g_ = f"{gn}[:, None]" if n.batched else gn
        out.append((args[0].id, f"{g_} * numpy.ones_like({args[0].name})", (n.batched, 1)))
    elif n.op == "xent":
        o, y = args
        g_ = "" if gn == "_one" else f"{gn}[:, None] * "
        out.append((o.id, f"{g_}{factor(f'xent_do({o.name}, {y.name})')}", (True, 1)))
        out.append((y.id, f"{g_}{factor(f'xent_dy({o.name})')}", (True, 1)))
    else:
        raise SymrnnError(f"no derivative rule for {n.op}")
    return out


# ------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class _Layout:
    """What the runtime needs to know about the recurrence, as plain Python data."""

    params: list[tuple[str, tuple[Any, ...]]]
    inputs: list[tuple[str, tuple[Any, ...]]]
    targets: list[tuple[str, tuple[Any, ...]]]
    quantities: list[tuple[str, tuple[Any, ...]]]
    states: list[tuple[str, tuple[Any, ...], int]]
    sizes: list[str]


def _spec(shape: Any, rank: int = 1) -> tuple[Any, ...]:
    """The array shape of a value of ``rank`` (1: a vector of ``shape[0]``; 0: a scalar)."""
    rows, cols = (sp.sympify(d, strict=True) for d in shape)
    dims = {0: [], 1: [rows if cols == 1 else cols], 2: [rows, cols]}[rank]
    return tuple(int(d) if d.is_Integer else str(d) for d in dims)


def _leaf_specs(g: Graph, rec: Recurrence, wanted: set[int]) -> list[tuple[str, str, int]]:
    defined = {f.__name__ for f in rec.blocks.defined}
    specs = []
    for key, nid in sorted(g.leaves.items(), key=lambda kv: kv[1]):
        if nid not in wanted:
            continue
        if key == "time":
            specs.append(("time", "t", 0))
        elif key[0] == "q":
            _, name, lag = key
            kind = "state" if name in defined else "input"
            specs.append((kind, name, lag))
    return specs


def _arg_names(g: Graph, specs: list[tuple[str, str, int]]) -> list[str]:
    names = []
    for kind, name, lag in specs:
        key = "time" if kind == "time" else ("q", name, lag)
        names.append(g.nodes[g.leaves[key]].name)
    return names


def _reachable(
    g: Graph, roots: Sequence[int], stop: set[int] | frozenset[int] = frozenset()
) -> list[int]:
    """Nodes that ``roots`` are computed from (not looking past the nodes in ``stop``)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            if i not in stop:
                stack.extend(g.nodes[i].args)
    return sorted(seen)


def _is_leaf(n: Node) -> bool:
    return n.op in ("quantity", "param", "const", "time")


Spec = tuple[str, Any, int]


@dataclass(frozen=True)
class _Backward:
    """The printed loss and BPTT functions, with the argument specs the runtime reads."""

    loss: str
    loss_specs: list[Spec]
    adjoint: str
    adjoint_specs: list[Spec]
    adj_out: list[tuple[str, int]]
    outer: list[tuple[int, Spec | None]]
    sums: list[int]
    step_grads: list[int]  # parameters whose gradient adjoint_step adds to itself
    early: str | None  # adjoint_precompute, when the loss and its direct terms broadcast over t
    early_specs: list[Spec]


class _Sources:
    def __init__(self, rec: Recurrence, loss: Any, hoist: bool = True):
        self.rec, self.hoist = rec, hoist
        self.g, self.loss_root = trace(rec, loss)
        g = self.g
        self.param_nodes = [
            g.leaf(
                ("p", p.name), "param", False, _rank_of(getattr(p, "shape", (1, 1))), _safe(p.name)
            )
            for p in rec.blocks.params
        ]
        self.quantity_names = [
            f.__name__ for f in rec.blocks.defined
        ]  # evaluation order, as the runtime stores them
        self.roots = [g.roots[q] for q in self.quantity_names]
        self.step_nodes = _reachable(g, self.roots)
        # Per-sequence values that depend on no state (U x(t) + b): precompute gives them for
        # all steps at once (the rows of all steps in one array), and step reads its own rows.
        self.early = {
            i
            for i in self.step_nodes
            if hoist and not _is_leaf(g.nodes[i]) and not g.nodes[i].loop and g.nodes[i].batched
        }
        self.residuals: list[int] = []

    def layout(self, targets: list[tuple[str, tuple[Any, ...]]]) -> _Layout:
        rec = self.rec
        blocks = rec.blocks
        vectors = dict(blocks.vectors)

        def shape_of(name: str) -> tuple[Any, ...]:
            v = vectors.get(name)
            return _spec(v.shape) if v is not None else ()

        ranks = [self.g.nodes[i].rank for i in self.param_nodes]
        return _Layout(
            params=[
                (identifier(p.name), _spec(getattr(p, "shape", (1, 1)), r))
                for p, r in zip(blocks.params, ranks, strict=True)
            ],
            inputs=[(f.__name__, shape_of(f.__name__)) for f in blocks.inputs],
            targets=targets,
            quantities=[(q, shape_of(q)) for q in self.quantity_names],
            states=[(f.__name__, shape_of(f.__name__), blocks.lag(f)) for f in blocks.states],
            sizes=[str(s) for s in blocks.sizes],
        )

    def param_names(self) -> list[str]:
        return [self.g.nodes[i].name for i in self.param_nodes]

    def saved(self) -> list[int]:
        """What step returns: the quantities at t, then the values the backward pass reads."""
        return self.roots + self.residuals

    def frontier(self) -> list[int]:
        """The precomputed values that step reads (or returns)."""
        g = self.g
        inside = [i for i in self.step_nodes if i not in self.early]
        used = {a for i in inside for a in g.nodes[i].args}
        kept = used | set(self.saved())
        return [i for i in sorted(self.early) if i in kept]

    def _body(self, nodes: list[int], kept: set[int]) -> list[str]:
        """One line per value in ``kept`` or used twice; other values inline where used."""
        g = self.g
        roots = {g.roots[q]: q for q in self.quantity_names}
        uses: dict[int, int] = {}
        for i in nodes:
            for a in g.nodes[i].args:
                uses[a] = uses.get(a, 0) + 1
        texts: dict[int, tuple[str, int]] = {}
        body = []
        equations = {_name_of(eq.lhs): eq for eq in self.rec.blocks.equations}
        for i in nodes:
            n = g.nodes[i]
            if _is_leaf(n):
                continue
            text = _forward_text(g, n, texts)
            if i not in kept and i not in roots and uses.get(i, 0) == 1:
                texts[i] = (text, _PRECEDENCE.get(n.op, 4))  # printed where it is used
                continue
            if i in roots:
                eq = equations[roots[i]]
                body.append(f"    # {str_expr(eq.lhs)} = {str_expr(eq.rhs)}")
            body.append(f"    {n.name} = {text}")
        return body

    def precompute(self) -> tuple[str, list[Spec]] | None:
        """Source of ``precompute`` (the values known before the loop) and its input specs."""
        g = self.g
        front = self.frontier()
        if not front:
            return None
        nodes = _reachable(g, front)
        specs = _leaf_specs(g, self.rec, set(nodes))
        body = self._body(nodes, set(front))
        head = f"def precompute({', '.join(self.param_names() + _arg_names(g, specs))}):"
        why = "    # what no earlier state changes, for many steps at once (their rows in turn)"
        ret = f"    return ({', '.join(g.nodes[i].name for i in front)},)"
        return "\n".join([head, why, *body, ret]) + "\n", specs

    def step(self) -> tuple[str, list[Spec]]:
        g = self.g
        front = self.frontier()
        # (a value the backward pass reads that only precompute needed, tanh(b), is computed
        # here again: it does not vary by sequence, so precompute does not return it)
        nodes = _reachable(g, self.saved(), set(front))
        body = self._body([i for i in nodes if i not in front], set(self.saved()))
        specs: list[Spec] = [("pre", j, 0) for j in range(len(front))]
        leaf_specs = _leaf_specs(g, self.rec, {i for i in nodes if i not in front})
        names = [g.nodes[i].name for i in front] + _arg_names(g, leaf_specs)
        head = f"def step({', '.join(self.param_names() + names)}):"
        ret = f"    return ({', '.join(g.nodes[i].name for i in self.saved())},)"
        return "\n".join([head, *body, ret]) + "\n", specs + leaf_specs

    def adjoint(self) -> _Backward:
        """``loss_step``, ``adjoint_step`` and, where it applies, ``adjoint_precompute``."""
        if self.hoist:
            hoisted = self._adjoint(True)
            if hoisted is not None:
                return hoisted
        backward = self._adjoint(False)
        assert backward is not None
        return backward

    def _adjoint(self, hoist: bool) -> _Backward | None:  # noqa: C901 (one pass, three outputs)
        g, rec = self.g, self.rec
        assert self.loss_root is not None
        step_set = set(self.step_nodes)
        loss_nodes = [i for i in _reachable(g, [self.loss_root]) if i not in step_set]
        time_name = g.nodes[g.leaves["time"]].name if "time" in g.leaves else None
        # The loss of every step and the terms of BPTT that do not depend on the adjoint carried
        # from t + 1 (ŷ − y, 1 − h²) are computed once for all steps, before the backward loop,
        # on the stacked forward values; a loss that reads t itself is summed step by step.
        timed = {g.leaves.get("time")}
        for i in loss_nodes:  # (stored step values are known, whatever they depend on)
            if any(a in timed for a in g.nodes[i].args):
                timed.add(i)
        early = hoist and not any(i in timed for i in loss_nodes if not _is_leaf(g.nodes[i]))

        def knowable(text: str) -> bool:
            return time_name is None or not _mentions(text, time_name)

        # Which nodes lead to a parameter or a lagged state (only those need adjoints).
        state_names = {f.__name__ for f in rec.blocks.states}
        needs: set[int] = set()
        for n in g.nodes:
            if n.op == "param" or (
                n.op == "quantity" and n.attr[2] >= 1 and n.attr[1] in state_names
            ):
                needs.add(n.id)
            elif any(a in needs for a in n.args):
                needs.add(n.id)
        states = [f.__name__ for f in rec.blocks.states]
        carries = {q: adjoint_name(identifier(q)) + "__later" for q in states}
        # Each contribution: its text, and whether it is known before the backward loop.
        contributions: dict[int, list[tuple[str, bool]]] = {self.loss_root: [("_one", early)]}
        for q in states:
            contributions.setdefault(g.roots[q], []).append((carries[q], False))
        lines: list[str] = []
        pre_lines: list[str] = []
        pre_names: list[str] = []

        def precomputed(text: str, name: str) -> str:
            while name in pre_names:
                name += "_"
            pre_lines.append(f"    {name} = {text}")
            pre_names.append(name)
            return name

        roots = {g.nodes[i].name for i in self.roots}
        vector_grads: set[str] = set()  # adjoints of per-sequence vectors, (B, n) each
        order = sorted(step_set | set(loss_nodes), reverse=True)
        for i in order:
            n = g.nodes[i]
            parts = contributions.pop(i, [])
            if not parts or i not in needs or _is_leaf(n):
                if parts and _is_leaf(n):
                    contributions[i] = parts
                continue
            known = early and n.batched and all(k for _, k in parts)
            texts = [text for text, _ in parts]
            ahead = [text for text, k in parts if k]
            if early and not known and (len(ahead) > 1 or (ahead and not ahead[0].isidentifier())):
                # The known terms of a sum (the loss's ŷ − y next to Wᵀδ) as one early value.
                name = precomputed(_join(ahead), f"_c{n.id}")
                texts = [text for text, k in parts if not k] + [name]
            gn = _gradient_name(n)
            text = _join(texts)
            if text.isidentifier() and not (n.name in roots and not n.name.startswith("_")):
                gn = text  # one contribution that is a name (the loss seed _one, a sum's part)
            elif known:
                gn = precomputed(text, gn)
            else:
                lines.append(f"    {gn} = {text}")
            if n.batched and n.rank == 1:
                vector_grads.add(gn)

            def factor(d: str, n: Node = n, known: bool = known) -> str:
                if not early or known or not n.batched or d.isidentifier() or not knowable(d):
                    return d
                return precomputed(d, f"_d{n.id}")

            for a, contrib, shape in _vjps(g, n, gn, factor):
                if a not in needs:
                    continue
                reduced = _reduce(contrib, shape, g.nodes[a])
                ahead_ = known and reduced == contrib and "outer(" not in contrib
                contributions.setdefault(a, []).append((reduced, ahead_ and knowable(contrib)))
        grads = []
        pairs: list[tuple[int, str, str]] = []  # Σ g aᵀ terms, summed by the runtime
        sums: list[tuple[int, str]] = []  # Σ g terms (biases), summed by the runtime
        for k, pid in enumerate(self.param_nodes):
            for c, _ in contributions.pop(pid, []):
                outer, total = _OUTER.fullmatch(c), _SUM.fullmatch(c)
                if outer:
                    pairs.append((k, outer[1], outer[2]))
                elif total:
                    sums.append((k, total[1]))
                else:
                    grads.append(f"    _G[{k}] += {c}")
        adj_out: list[tuple[str, int]] = []
        outs = []
        for key, nid in sorted(g.leaves.items(), key=lambda kv: kv[1]):
            if key == "time" or key[0] != "q" or key[1] not in states or key[2] < 1:
                continue
            parts = contributions.pop(nid, [])
            if parts:
                adj_out.append((key[1], key[2]))
                outs.append(_join([text for text, _ in parts]))
        loss_lines = [
            f"    {g.nodes[i].name} = {_forward_text(g, g.nodes[i])}"
            for i in loss_nodes
            if not _is_leaf(g.nodes[i])
        ]
        # The factor a of a term Σ g aᵀ, when it is a vector the runtime has for every step (an
        # input, a state, a value step returned), is read by the runtime there, not returned.
        leaf_ids = {g.leaves[k] for k in g.leaves if k == "time" or k[0] == "q"}
        root_ids = set(self.roots)
        saved_names = [g.nodes[i].name for i in self.saved()]
        stored: dict[str, Spec] = {
            name: ("saved", j, 0)
            for j, (i, name) in enumerate(zip(self.saved(), saved_names, strict=True))
            if g.nodes[i].batched and g.nodes[i].rank == 1
        }
        for spec, i in zip(
            _leaf_specs(g, rec, leaf_ids - root_ids), sorted(leaf_ids - root_ids), strict=True
        ):
            if g.nodes[i].batched and g.nodes[i].rank == 1:
                stored[g.nodes[i].name] = spec
        outer_specs = [stored.get(b) if a in vector_grads else None for _, a, b in pairs]
        flat = [
            name
            for (_, a, b), spec in zip(pairs, outer_specs, strict=True)
            for name in ((a,) if spec else (a, b))
        ] + [name for _, name in sums]
        if not early:  # the loss values the gradient lines read, in the step
            later = "\n".join(lines + grads + outs + flat)
            kept: list[str] = []
            for line in reversed(loss_lines):
                if _mentions(later, line.split(" = ")[0].strip()):
                    kept.insert(0, line)
                    later = line + "\n" + later
            lines = kept + lines
        body = lines + grads
        used_text = "\n".join(body + outs + flat)
        # Values of precompute the step reads: one step's slice each (per-sequence values only).
        loss_names = {g.nodes[i].name: i for i in loss_nodes if not _is_leaf(g.nodes[i])}
        early_names = list(loss_names) + pre_names if early else []
        sliced = [name for name in early_names if _mentions(used_text, name)]
        if any(not g.nodes[loss_names[name]].batched for name in sliced if name in loss_names):
            return None

        def leaves_in(text: str) -> list[Spec]:
            wanted = {i for i in leaf_ids if _mentions(text, g.nodes[i].name)} - root_ids
            return _leaf_specs(g, rec, wanted)  # type: ignore[return-value]

        def saved_in(text: str) -> list[Spec]:
            return [("saved", j, 0) for j, name in enumerate(saved_names) if _mentions(text, name)]

        def names(specs: list[Spec]) -> list[str]:
            out = []
            for kind, what, lag in specs:
                if kind == "saved":
                    out.append(saved_names[what])
                else:
                    out.append(_arg_names(g, [(kind, what, lag)])[0])
            return out

        params = self.param_names()
        value = g.nodes[self.loss_root].name
        loss_text = "\n".join(loss_lines + [value])
        loss_specs = leaves_in(loss_text) + saved_in(loss_text)
        loss_src = (
            f"def loss_step({', '.join(params + names(loss_specs))}):\n"
            + "".join(line + "\n" for line in loss_lines)
            + f"    return {value}\n"
        )
        adj_specs = leaves_in(used_text) + saved_in(used_text)
        adj_args = ["_G", "_one", *params, *names(adj_specs), *sliced, *carries.values()]
        adj_specs += [("pre", j, 0) for j in range(len(sliced))]
        ret = (
            f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''}), "
            f"({', '.join(flat)}{',' if len(flat) == 1 else ''})"
        )
        adj_src = (
            f"def adjoint_step({', '.join(adj_args)}):\n"
            + "".join(line + "\n" for line in body)
            + ret
            + "\n"
        )
        pre_src, pre_specs = None, []
        if early:
            pre_text = "\n".join(loss_lines + pre_lines + [value])
            pre_specs = leaves_in(pre_text) + saved_in(pre_text)
            pre_src = (
                f"def adjoint_precompute({', '.join(['_one', *params, *names(pre_specs)])}):\n"
                "    # the loss and the terms of BPTT known from the forward pass, for many steps"
                " at once\n"
                + "".join(line + "\n" for line in loss_lines + pre_lines)
                + f"    return ({', '.join([value, *sliced])},)\n"
            )
        return _Backward(
            loss_src,
            loss_specs,
            adj_src,
            adj_specs,
            adj_out,
            [(k, spec) for (k, _, _), spec in zip(pairs, outer_specs, strict=True)],
            [k for k, _ in sums],
            sorted({int(line.split("[")[1].split("]")[0]) for line in grads}),
            pre_src,
            pre_specs,
        )

    def plan(self, with_loss: bool) -> None:
        """Decide the residuals: print the backward pass once and see what it reads."""
        self.residuals = []
        if not with_loss:
            return
        backward = self.adjoint()
        text = backward.adjoint.split("\n", 1)[1]
        if backward.early is not None:
            text += backward.early.split("\n", 1)[1]
        roots = set(self.roots)
        self.residuals = [
            i
            for i in self.step_nodes
            if not _is_leaf(self.g.nodes[i])
            and i not in roots
            and _mentions(text, self.g.nodes[i].name)
        ]


# A matrix parameter's gradient term Σ_b g_b a_bᵀ of two step values: returned to the runtime,
# which sums it over a stretch of steps at once (one large product).
_OUTER = re.compile(r"outer\(([A-Za-z_][A-Za-z0-9_]*), ([A-Za-z_][A-Za-z0-9_]*)\)")
# A bias gradient Σ_b g_b: summed the same way.
_SUM = re.compile(r"numpy\.add\.reduce\(([A-Za-z_][A-Za-z0-9_]*), 0\)")


def _join(terms: list[str]) -> str:
    """A sum of terms, ``a - b`` rather than ``a + -b``."""
    text = terms[0]
    for term in terms[1:]:
        text += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
    return text


def _name_of(lhs: Any) -> str:
    return str(lhs.name) if isinstance(lhs, VectorAt) else str(lhs.func.__name__)


def _gradient_name(n: Node) -> str:
    return adjoint_name(n.name) if not n.name.startswith("_") else f"_g{n.id}"


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def step_source(rec: Recurrence) -> str:
    """The source of the forward step function of ``rec`` at matrix level (after precompute)."""
    src = _Sources(rec, None)
    src.plan(False)
    early = src.precompute()
    return ((early[0] + "\n\n") if early else "") + src.step()[0].rstrip("\n")


def generate_matrix_source(
    rec: Recurrence,
    loss: Any,
    targets: list[tuple[str, tuple[Any, ...]]],
    doc: str,
    _hoist: bool = True,
) -> str:
    """A standalone NumPy module computing ``rec`` (and ``loss``) at matrix level.

    (``_hoist=False`` computes everything step by step: the tests compare the two.)
    """
    src = _Sources(rec, loss, _hoist)
    src.plan(loss is not None)
    early = src.precompute()
    step, step_specs = src.step()
    parts = [early[0] if early else "precompute = None\n", step]
    tables: dict[str, Any] = {"PRE_ARGS": early[1] if early else [], "STEP_ARGS": step_specs}
    if loss is not None:
        b = src.adjoint()
        parts += [b.loss, b.early or "adjoint_precompute = None\n", b.adjoint]
        tables.update(
            LOSS_ARGS=b.loss_specs,
            ADJ_PRE_ARGS=b.early_specs,
            ADJ_ARGS=b.adjoint_specs,
            ADJ_OUT=b.adj_out,
            OUTER=b.outer,
            SUMS=b.sums,
            STEP_GRADS=b.step_grads,
        )
    else:
        parts.append("loss_step = adjoint_precompute = adjoint_step = None\n")
        tables.update(
            LOSS_ARGS=[], ADJ_PRE_ARGS=[], ADJ_ARGS=[], ADJ_OUT=[], OUTER=[], SUMS=[], STEP_GRADS=[]
        )
    layout = src.layout(targets)
    tables.update(
        SIZES=layout.sizes,
        PARAMS=layout.params,
        INPUTS=layout.inputs,
        TARGETS=layout.targets,
        QUANTITIES=layout.quantities,
        QUANTITY_INDEX={name: i for i, (name, _) in enumerate(layout.quantities)},
        STATES=layout.states,
        ORDERS={name: order for name, _, order in layout.states},
        INPUT_LAG=rec.blocks.input_lag,
        MODE="scan",
        STEPS=None,
    )
    table_text = "".join(f"{k} = {v!r}\n" for k, v in tables.items())
    runtime = _RUNTIME.replace("import numpy\n", "", 1)
    return (
        f'"""{doc}"""\n\nimport numpy\n\n{table_text}\n\n' + "\n\n".join(parts) + f"\n\n{runtime}"
    )
