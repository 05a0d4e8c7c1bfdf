r"""Per-step losses of vector outputs, kept whole: :math:`L^{(t)}` as the book writes it.

``squared_error(o(t), y(t))`` and ``softmax_cross_entropy(o(t), y(t))`` of vectors are single
SymPy objects whose arguments are the vectors themselves.  The matrix-level code and derivatives
use them as they are (the gradient of the squared error with respect to its prediction is
:math:`\mathbf{o} - \mathbf{y}`, that of the softmax cross-entropy
:math:`\hat{\mathbf{y}}\,\mathbf{1}^\top\mathbf{y} - \mathbf{y}`, which is
:math:`\hat{\mathbf{y}} - \mathbf{y}` for a target distribution, eq. 10.18); the component view
(:func:`expand_losses`) is the sum over components, for explicit sizes.

>>> import symrnn as sr
>>> o, y = sr.vector("o", 2), sr.vector("y", 2)
>>> L = sr.squared_error(o(sr.t), y(sr.t))
>>> L
squared_error(o(t), y(t))
>>> expand_losses(L)
(o_1(t) - y_1(t))**2/2 + (o_2(t) - y_2(t))**2/2
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .errors import LimitError, SymrnnError
from .functions import _no_text
from .matrices import explicit, has_explicit_size, is_matrix

__all__ = [
    "Loss",
    "SquaredError",
    "SoftmaxCrossEntropy",
    "squared_error",
    "softmax_cross_entropy",
    "expand_losses",
    "vector_names",
]


class Loss(sp.Expr):
    """A scalar loss of a prediction vector and a target vector (two matrix arguments)."""

    is_commutative = True
    is_real = True
    #: The name used in ``str`` and in generated code comments.
    label = "loss"

    def __new__(cls, prediction: Any, target: Any) -> Loss:
        p, y = prediction, target
        if not (is_matrix(p) and is_matrix(y)) or p.shape != y.shape or p.shape[1] != 1:
            shapes = [tuple(v.shape) if is_matrix(v) else "scalar" for v in (p, y)]
            if cls is SoftmaxCrossEntropy and all(is_matrix(v) for v in (p, y)):
                what = f"{p.shape[0]} logits but {y.shape[0]} targets"
            else:
                what = f"prediction has shape {shapes[0]} but target {shapes[1]}"
            raise SymrnnError(
                f"{cls.label}: {what}; give two column vectors of the same size, e.g. o(t) and y(t)"
            )
        return sp.Expr.__new__(cls, p, y)  # type: ignore[no-any-return]

    @property
    def prediction(self) -> Any:
        return self.args[0]

    @property
    def target(self) -> Any:
        return self.args[1]

    @property
    def free_symbols(self) -> set[Any]:
        return self.prediction.free_symbols | self.target.free_symbols  # type: ignore[no-any-return]

    def components(self) -> sp.Expr:
        """The loss as a sum over components (explicit sizes only)."""
        raise NotImplementedError

    def _sympystr(self, printer: Any) -> str:
        return f"{self.label}({printer._print(self.prediction)}, {printer._print(self.target)})"

    def diff(self, *symbols: Any, **assumptions: Any) -> Any:
        # Components are not free symbols of the whole loss: differentiate the component view.
        return self.components().diff(*symbols, **assumptions)

    def doit(self, **hints: Any) -> Any:
        return self.components()


class SquaredError(Loss):
    r""":math:`L = \tfrac12 \lVert \mathbf{o} - \mathbf{y} \rVert^2`, with
    :math:`\nabla_{\mathbf{o}} L = \mathbf{o} - \mathbf{y}`."""

    label = "squared_error"

    def components(self) -> sp.Expr:
        p, y = explicit(self.prediction), explicit(self.target)
        return sp.Add(*[(a - c) ** 2 for a, c in zip(p, y, strict=True)]) / 2

    def _latex(self, printer: Any) -> str:
        p, y = (printer._print(v) for v in self.args)
        return f"\\frac{{1}}{{2}} \\left\\lVert {p} - {y} \\right\\rVert^{{2}}"


class SoftmaxCrossEntropy(Loss):
    r""":math:`L = -\sum_i y_i \log \hat y_i` with :math:`\hat{\mathbf{y}} =
    \operatorname{softmax}(\mathbf{o})` (eq. 10.11–10.14)."""

    label = "softmax_cross_entropy"

    def components(self) -> sp.Expr:
        o, y = list(explicit(self.prediction)), list(explicit(self.target))
        lse = sp.log(sp.Add(*[sp.exp(v) for v in o]))
        return sp.Add(*[yi * (lse - oi) for oi, yi in zip(o, y, strict=True)])

    def _latex(self, printer: Any) -> str:
        p, y = (printer._print(v) for v in self.args)
        return f"-\\sum_i {y}_i \\log \\operatorname{{softmax}}\\left({p}\\right)_i"


def squared_error(prediction: Any, target: Any) -> Any:
    r"""Per-step squared error :math:`\tfrac12 \lVert o - y \rVert^2` (scalars or vectors).

    Of two scalars it is the SymPy expression :math:`(o - y)^2/2`; of two vectors the whole
    :class:`SquaredError`.
    """
    for value in (prediction, target):
        _no_text("squared_error", value)
    if is_matrix(prediction) or is_matrix(target):
        return SquaredError(prediction, target)
    return (sp.sympify(prediction, strict=True) - sp.sympify(target, strict=True)) ** 2 / 2


def softmax_cross_entropy(logits: Any, target: Any) -> Any:
    r"""Per-step softmax cross-entropy (Goodfellow et al. eq. 10.11–10.14).

    :math:`L = -\sum_i y_i \log \operatorname{softmax}(o)_i
    = \sum_i y_i \big(\log \sum_j e^{o_j} - o_i\big)` for a target distribution ``y`` (one-hot
    for a class label), whose gradient is :math:`\hat y - y` when :math:`\sum_i y_i = 1`.
    Of two vectors it is the whole :class:`SoftmaxCrossEntropy`; of two scalars (one logit)
    the expression.
    """
    for value in (logits, target):
        _no_text("softmax_cross_entropy", value)
    if is_matrix(logits) or is_matrix(target):
        return SoftmaxCrossEntropy(logits, target)
    o, y = sp.sympify(logits, strict=True), sp.sympify(target, strict=True)
    return y * (sp.log(sp.exp(o)) - o)


def vector_names(loss: Any) -> frozenset[str]:
    """Names of the whole vectors a loss is written with: its targets ``y`` stay one vector
    (of any size, one component included) when the loss is expanded into ``y_1 … y_n``.

    >>> import symrnn as sr
    >>> sorted(vector_names(sr.squared_error(sr.vector("o", 1)(sr.t), sr.vector("y", 1)(sr.t))))
    ['o', 'y']
    """
    from .matrices import VectorAt

    return (
        frozenset(v.name for v in loss.atoms(VectorAt))
        if isinstance(loss, sp.Basic)
        else frozenset()
    )


#: A ``Sum`` in a loss with numeric limits is written out term by term, up to this many terms.
MAX_SUM_TERMS = 10_000


def _is_finite_sum(expr: sp.Basic) -> bool:
    return isinstance(expr, sp.Sum) and all(
        lo.is_Integer and hi.is_Integer for _, lo, hi in expr.limits
    )


def _write_out_sums(expr: sp.Basic) -> sp.Basic:
    """Sums with numeric limits written out: ``Sum(h(k)**2, (k, 1, 3))`` is
    ``h(1)**2 + h(2)**2 + h(3)**2``, so that each term is a quantity at a fixed time."""
    from .notation import t

    for s in expr.atoms(sp.Sum):
        limits = {a for _, lo, hi in s.limits for a in (lo, hi)}
        unknown = set().union(*(a.free_symbols for a in limits)) - {t}
        if unknown:  # limits in t belong to a per-step template, instantiated step by step
            raise SymrnnError(
                f"the loss {s} sums up to {', '.join(sorted(map(str, unknown)))}, which is not "
                "a number; give numeric limits such as (k, 1, 3), or a per-step template in t"
            )
        if _is_finite_sum(s):
            terms = 1
            for _, lo, hi in s.limits:
                terms *= max(int(hi - lo) + 1, 0)
            if terms > MAX_SUM_TERMS:
                raise LimitError(
                    f"{s} has {terms} terms, more than symrnn writes out "
                    f"(symrnn.losses.MAX_SUM_TERMS = {MAX_SUM_TERMS}); use a per-step template"
                )
    return expr.replace(_is_finite_sum, lambda s: s.doit(deep=False))


def expand_losses(expr: Any) -> Any:
    """``expr`` with every :class:`Loss` replaced by its sum over components, and every
    ``Sum`` with numeric limits written out term by term.

    A matrix-valued loss (a vector of per-component losses) is summed over its entries.
    """
    if is_matrix(expr):
        expr = sp.Add(*explicit(expr))
    if not isinstance(expr, sp.Basic):
        return expr
    if expr.has(sp.Sum):
        expr = _write_out_sums(expr)
    losses = expr.atoms(Loss)
    if not losses:
        return expr
    for loss in losses:
        if not has_explicit_size(loss.prediction):
            raise SymrnnError(
                f"{loss} has symbolic size; its components exist only for explicit sizes "
                "(the matrix-level code and BPTT equations work without them)"
            )
    return expr.xreplace({loss: loss.components() for loss in losses})
