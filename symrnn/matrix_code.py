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

Reference semantics of the generated module::

    saved = []
    for k in range(1, T + 1):                       # forward: h^{(k)} = f(h^{(k-1)}, x^{(k)}; θ)
        saved.append(step(*params, h[k - 1], x[k]))
    for k in range(T, 0, -1):                       # backward: BPTT, one step at a time
        loss_k, (dL_dh_prev,) = adjoint_step(grads, ones, *params, ..., *saved[k - 1], dL_dh[k])

>>> import sympy as sp, symrnn as sr
>>> n = sr.size("n")
>>> h, x, W, U = sr.vector("h", n), sr.vector("x", n), sr.matrix("W", n, n), sr.matrix("U", n, n)
>>> rec = sr.Recurrence(sp.Eq(h(sr.t), sr.tanh(W * h(sr.t - 1) + U * x(sr.t))))
>>> print(step_source(rec))
def step(U, W, x__t, h__tm1):
    # h(t) = tanh(W*h(t - 1) + U*x(t))
    h__t = numpy.tanh(x__t @ U.T + h__tm1 @ W.T)
    return (h__t,)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from .notation import identifier, is_time_atom, str_expr, t, time_of
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
        node.name = f"_a{node.id}"
        self.nodes.append(node)
        self.memo[key] = node.id
        return node.id

    def leaf(self, key: Any, op: str, batched: bool, rank: int, name: str) -> int:
        if key not in self.leaves:
            node = Node(len(self.nodes), op, (), batched, rank, key, name)
            self.nodes.append(node)
            self.leaves[key] = node.id
        return self.leaves[key]


# Names the generated module defines itself; a user's name equal to one of them gets a prefix.
_RUNTIME_NAMES = frozenset(
    "numpy outer dot logsumexp softmax xent xent_do xent_dy step loss_step adjoint_step "
    "forward loss value_and_grad ArgumentError".split()
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
        return self.g.leaf(("q", name, lag), "quantity", True, rank, code)

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
            return g.leaf("time", "time", False, 0, "_k")
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
        return args[0] if len(args) == 1 else self.g.add("add", args)

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


def _vjps(g: Graph, n: Node, gn: str) -> list[tuple[int, str, tuple[bool, int]]]:
    """(argument, contribution, (batched, rank) of the contribution) for each argument."""
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
        d = ELEMENTWISE[n.op].derivative(args[0].name, n.name)
        out.append((args[0].id, f"{gn} * {d}", shape))
    elif n.op == "pow":
        a = args[0].name
        out.append((args[0].id, f"{gn} * ({n.attr!r}*{a}**{n.attr - 1!r})", shape))
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
        out.append((o.id, f"{g_}xent_do({o.name}, {y.name})", (True, 1)))
        out.append((y.id, f"{g_}xent_dy({o.name})", (True, 1)))
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


def _reachable(g: Graph, roots: Sequence[int]) -> list[int]:
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(g.nodes[i].args)
    return sorted(seen)


def _is_leaf(n: Node) -> bool:
    return n.op in ("quantity", "param", "const", "time")


class _Sources:
    def __init__(self, rec: Recurrence, loss: Any):
        self.rec = rec
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
        self.step_nodes = _reachable(g, [g.roots[q] for q in self.quantity_names])

    def layout(self, targets: list[tuple[str, tuple[Any, ...]]]) -> _Layout:
        rec, _g = self.rec, self.g
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

    def step(self) -> tuple[str, list[tuple[str, str, int]]]:
        g = self.g
        roots = {g.roots[q]: q for q in self.quantity_names}
        uses: dict[int, int] = {}
        for i in self.step_nodes:
            for a in g.nodes[i].args:
                uses[a] = uses.get(a, 0) + 1
        kept = set(roots) | set(self.residuals)
        texts: dict[int, tuple[str, int]] = {}
        body = []
        equations = {_name_of(eq.lhs): eq for eq in self.rec.blocks.equations}
        for i in self.step_nodes:
            n = g.nodes[i]
            if _is_leaf(n):
                continue
            text = _forward_text(g, n, texts)
            if i not in kept and uses.get(i, 0) == 1:
                texts[i] = (text, _PRECEDENCE.get(n.op, 4))  # printed where it is used
                continue
            if i in roots:
                eq = equations[roots[i]]
                body.append(f"    # {str_expr(eq.lhs)} = {str_expr(eq.rhs)}")
            body.append(f"    {n.name} = {text}")
        specs = _leaf_specs(g, self.rec, set(self.step_nodes))
        saved = [g.nodes[g.roots[q]].name for q in self.quantity_names] + [
            g.nodes[i].name for i in self.residuals
        ]
        head = f"def step({', '.join(self.param_names() + _arg_names(g, specs))}):"
        ret = f"    return ({', '.join(saved)},)"
        return "\n".join([head, *body, ret]) + "\n", specs

    def adjoint(self) -> tuple[str, str, list[tuple[str, str, int]], list[tuple[str, int]]]:
        """Sources of ``loss_step`` and ``adjoint_step``, their argument specs, ADJ_OUT."""
        g, rec = self.g, self.rec
        assert self.loss_root is not None
        loss_nodes = [i for i in _reachable(g, [self.loss_root]) if i not in set(self.step_nodes)]
        # Which nodes lead to a parameter or a lagged state (only those need adjoints).
        needs: set[int] = set()
        for n in g.nodes:
            if n.op == "param" or (
                n.op == "quantity"
                and n.attr[2] >= 1
                and n.attr[1] in {f.__name__ for f in rec.blocks.states}
            ):
                needs.add(n.id)
            elif any(a in needs for a in n.args):
                needs.add(n.id)
        states = [f.__name__ for f in rec.blocks.states]
        carries = {q: f"dL_d{identifier(q)}__later" for q in states}
        contributions: dict[int, list[str]] = {}
        contributions[self.loss_root] = ["_one"]
        for q in states:
            contributions.setdefault(g.roots[q], []).append(carries[q])
        lines: list[str] = []
        roots = {g.nodes[g.roots[q]].name for q in self.quantity_names}
        order = sorted(set(self.step_nodes) | set(loss_nodes), reverse=True)
        for i in order:
            n = g.nodes[i]
            parts = contributions.pop(i, [])
            if not parts or i not in needs or _is_leaf(n):
                if parts and _is_leaf(n):
                    contributions[i] = parts
                continue
            gn = _gradient_name(n)
            text = _join(parts)
            if text.isidentifier() and not (n.name in roots and not n.name.startswith("_")):
                gn = text  # one contribution that is a name (the loss seed _one, a sum's part)
            else:
                lines.append(f"    {gn} = {text}")
            for a, contrib, shape in _vjps(g, n, gn):
                if a not in needs:
                    continue
                target = g.nodes[a]
                contributions.setdefault(a, []).append(_reduce(contrib, shape, target))
        grads = []
        pairs: list[tuple[int, str, str]] = []  # Σ g aᵀ terms, summed by the runtime
        for k, pid in enumerate(self.param_nodes):
            for c in contributions.pop(pid, []):
                match = _OUTER.fullmatch(c)
                if match:
                    pairs.append((k, match[1], match[2]))
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
                outs.append(_join(parts))
        body = lines + grads
        loss_lines = [
            f"    {g.nodes[i].name} = {_forward_text(g, g.nodes[i])}"
            for i in loss_nodes
            if not _is_leaf(g.nodes[i])
        ]
        used_text = "\n".join(loss_lines + body + outs + [f"{a} {b}" for _, a, b in pairs])
        # Arguments: leaves the loss and the backward pass read; saved step values; carries.
        leaf_ids = {g.leaves[k] for k in g.leaves if k == "time" or k[0] == "q"}
        wanted = {i for i in leaf_ids if _mentions(used_text, g.nodes[i].name)} | {
            i for i in loss_nodes if i in leaf_ids
        }
        wanted -= {g.roots[q] for q in self.quantity_names}
        specs = _leaf_specs(g, rec, wanted)
        saved_names = [g.nodes[g.roots[q]].name for q in self.quantity_names] + [
            g.nodes[i].name for i in self.residuals
        ]
        params = self.param_names()
        value = g.nodes[self.loss_root].name
        loss_args = ", ".join(params + _arg_names(g, specs) + saved_names)
        loss_src = (
            f"def loss_step({loss_args}):\n"
            + "\n".join(loss_lines)
            + ("\n" if loss_lines else "")
            + f"    return {value}\n"
        )
        adj_args = ", ".join(
            ["_G", "_one", *params, *_arg_names(g, specs), *saved_names, *carries.values()]
        )
        flat = [name for _, a, b in pairs for name in (a, b)]
        ret = (
            f"    return {value}, ({', '.join(outs)}{',' if len(outs) == 1 else ''}), "
            f"({', '.join(flat)}{',' if len(flat) == 1 else ''})"
        )
        self.outer_params = [k for k, _, _ in pairs]
        adj_src = (
            f"def adjoint_step({adj_args}):\n" + "\n".join(loss_lines + body) + "\n" + ret + "\n"
        )
        return loss_src, adj_src, specs, adj_out

    @property
    def residuals(self) -> list[int]:
        """Step values (other than the quantities) that the backward pass reads."""
        return self._residuals

    def plan(self, with_loss: bool) -> None:
        """Decide the residuals: run the adjoint printer once and see what it reads."""
        self._residuals: list[int] = []
        if not with_loss:
            return
        _, adj_src, _, _ = self.adjoint()
        roots = {self.g.roots[q] for q in self.quantity_names}
        self._residuals = [
            i
            for i in self.step_nodes
            if not _is_leaf(self.g.nodes[i])
            and i not in roots
            and _mentions(adj_src.split("\n", 1)[1], self.g.nodes[i].name)
        ]


# A matrix parameter's gradient term Σ_b g_b a_bᵀ of two step values: returned to the runtime,
# which sums it per step or, for small batches, once over all steps (one large product).
_OUTER = re.compile(r"outer\(([A-Za-z_][A-Za-z0-9_]*), ([A-Za-z_][A-Za-z0-9_]*)\)")


def _join(terms: list[str]) -> str:
    """A sum of terms, ``a - b`` rather than ``a + -b``."""
    text = terms[0]
    for term in terms[1:]:
        text += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
    return text


def _name_of(lhs: Any) -> str:
    return str(lhs.name) if isinstance(lhs, VectorAt) else str(lhs.func.__name__)


def _gradient_name(n: Node) -> str:
    return f"dL_d{n.name}" if not n.name.startswith("_") else f"_g{n.id}"


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def step_source(rec: Recurrence) -> str:
    """The source of the forward step function of ``rec`` at matrix level."""
    src = _Sources(rec, None)
    src.plan(False)
    return src.step()[0].rstrip("\n")


def generate_matrix_source(
    rec: Recurrence, loss: Any, targets: list[tuple[str, tuple[Any, ...]]], doc: str
) -> str:
    """A standalone NumPy module computing ``rec`` (and ``loss``) at matrix level."""
    src = _Sources(rec, loss)
    src.plan(loss is not None)
    step, step_specs = src.step()
    parts = [step]
    tables: dict[str, Any] = {"STEP_ARGS": step_specs}
    if loss is not None:
        loss_src, adj_src, loss_specs, adj_out = src.adjoint()
        parts += [loss_src, adj_src]
        tables.update(LOSS_ARGS=loss_specs, ADJ_OUT=adj_out, OUTER=src.outer_params)
    else:
        parts.append("loss_step = adjoint_step = None\n")
        tables.update(LOSS_ARGS=[], ADJ_OUT=[], OUTER=[])
    layout = src.layout(targets)
    tables.update(
        SIZES=layout.sizes,
        PARAMS=layout.params,
        INPUTS=layout.inputs,
        TARGETS=layout.targets,
        QUANTITIES=layout.quantities,
        QUANTITY_INDEX={name: i for i, (name, _) in enumerate(layout.quantities)},
        STATES=layout.states,
        INPUT_LAG=rec.blocks.input_lag,
        MODE="scan",
        STEPS=None,
    )
    table_text = "".join(f"{k} = {v!r}\n" for k, v in tables.items())
    runtime = _RUNTIME.replace("import numpy\n", "", 1)
    return (
        f'"""{doc}"""\n\nimport numpy\n\n{table_text}\n\n' + "\n\n".join(parts) + f"\n\n{runtime}"
    )
