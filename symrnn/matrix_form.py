r"""The BPTT adjoint recursion in matrix form, as Goodfellow et al. print it (eq. 10.18–10.28).

:func:`symrnn.bptt` differentiates the scalar components of a recurrence.  For a vector
recurrence written in matrix form (:func:`symrnn.vector`, :func:`symrnn.matrix`) this module
reads the equations as the user wrote them (``Recurrence.display``) and writes the same
recursion with whole vectors and matrices:

.. math::
    \nabla_{\mathbf{q}^{(t)}} L = \nabla_{\mathbf{q}^{(t)}} L^{(t)}
        + \sum_{\mathbf{r} \text{ uses } \mathbf{q}}
          \Big(\frac{\partial \mathbf{r}^{(t+j)}}{\partial \mathbf{q}^{(t)}}\Big)^{T}
          \nabla_{\mathbf{r}^{(t+j)}} L,
    \qquad
    \nabla_{\Theta} L = \sum_t \sum_{\mathbf{r}}
        \frac{\partial \mathbf{r}^{(t)}}{\partial \Theta} \cdot \nabla_{\mathbf{r}^{(t)}} L

with a small matrix calculus for the shapes that occur in RNN cells: sums, products with a
constant left factor (``W h``), elementwise functions (``tanh``, ``sigmoid``, …), Hadamard
products and the time-indexed vectors and parameter matrices themselves.  The derivative of an
elementwise function is written through the quantity it defines, as the book does:
:math:`\operatorname{diag}(1 - (\mathbf{h}^{(t)})^2)` for :math:`\tanh`,
:math:`\operatorname{diag}(\boldsymbol\sigma \odot (1 - \boldsymbol\sigma))` for the sigmoid.

Reference semantics: the equations are templates in t; at t = τ the terms from t + 1 vanish
(:attr:`MatrixBPTT.boundary`, the book's eq. 10.20); :func:`components` turns any of them into
explicit scalar components at one step, in the quantities :func:`symrnn.bptt` uses
(``Adjoint(h_1(3))``, ``h_1(3)``, ``W_12``), so both can be compared number by number.

>>> import symrnn as sr
>>> from symrnn.matrix_form import matrix_bptt
>>> M = matrix_bptt(sr.cells.elman(3, inputs=2, outputs=3))
>>> eq = M.equation(sr.vector("h", 3)(sr.t))
>>> print(eq.lhs, "=", eq.rhs)
nabla_{h(t)} L = V.T*nabla_{o(t)} L + W.T*diag(1 - h(t + 1)**2)*nabla_{h(t + 1)} L

This module is a view for notes and teaching: nothing in the computing core imports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .diff import Adjoint
from .errors import SymrnnError
from .matrices import VectorAt, explicit
from .notation import is_negative_term, latex_expr, latex_time, str_expr, t
from .recurrence import Recurrence

__all__ = [
    "Nabla",
    "Diag",
    "Softmax",
    "Named",
    "LossForm",
    "recognise_loss",
    "MatrixBPTT",
    "matrix_bptt",
    "matrix_jacobians",
    "components",
    "explicit_nabla",
    "TAU",
]

#: The last time step in the printed equations, :math:`\tau`.
TAU = sp.Symbol("tau", integer=True, positive=True)
_TOTAL = sp.Symbol("L")
_PER_STEP = sp.Function("L", real=True)  # L(t) is the per-step loss L^{(t)}, as in template()


# ------------------------------------------------------------------------------- symbols
class Nabla(MatrixExpr):  # type: ignore[misc]
    r"""The gradient :math:`\nabla_{\mathbf{h}^{(t)}} L` of the loss with respect to a vector
    quantity or a parameter matrix; it has the shape of that quantity.

    ``Nabla(h(t))`` is the gradient of the total loss, with components ``Adjoint(h_i(t))``;
    ``Nabla(o(t), L(t))`` the gradient of the per-step loss :math:`L^{(t)}` alone (the direct
    term), with components ``Derivative(L(t), o_i(t))`` as in :meth:`symrnn.diff.BPTT.template`.
    """

    parenthesized_in_products = True  # (\nabla_{h} L) h^T, as the book writes products

    def __new__(cls, arg: Any, of: Any = _TOTAL) -> Nabla:
        if not isinstance(arg, (VectorAt, sp.MatrixSymbol)):
            raise SymrnnError(
                f"Nabla needs a time-indexed vector h(t) or a parameter matrix, got {arg}"
            )
        return sp.Basic.__new__(cls, arg, sp.sympify(of, strict=True))  # type: ignore[no-any-return]

    @property
    def arg(self) -> Any:
        return self.args[0]

    @property
    def of(self) -> Any:
        return self.args[1]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.arg.shape  # type: ignore[no-any-return]

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        return explicit_nabla(self)[int(i), int(j)]

    def _latex(self, printer: Any) -> str:
        of = self.of
        if isinstance(of, AppliedUndef):  # the per-step loss L^{(t)}, L^{(\tau)}
            tex = f"{of.func.__name__}^{{({latex_time(of.args[0])})}}"
        else:
            tex = printer._print(of)
        return f"\\nabla_{{{printer._print(self.arg)}}} {tex}"

    def _sympystr(self, printer: Any) -> str:
        return f"nabla_{{{printer._print(self.arg)}}} {printer._print(self.of)}"


def explicit_nabla(n: Nabla) -> sp.ImmutableMatrix:
    """The components of a :class:`Nabla`: ``Adjoint`` (total loss) or ``Derivative`` (per step)."""
    entries = explicit(n.arg)
    if n.of == _TOTAL:
        return entries.applyfunc(Adjoint)  # type: ignore[no-any-return]
    return entries.applyfunc(lambda v: sp.Derivative(n.of, v))  # type: ignore[no-any-return]


class _Slot(sp.Symbol):
    """Stands for the vector inside :class:`Diag` when printing (its name is the LaTeX)."""

    def _latex(self, printer: Any) -> str:
        return str(self.name)


class Diag(MatrixExpr):  # type: ignore[misc]
    r"""The diagonal matrix :math:`\operatorname{diag}(f(\mathbf{v}))` of a scalar function ``f``
    (a :class:`sympy.Lambda`) applied elementwise to the column vector ``v``.

    ``Diag(Lambda(s, 1 - s**2), h(t))`` prints as
    :math:`\operatorname{diag}\left(1 - \left(\mathbf{h}^{(t)}\right)^{2}\right)`.
    """

    def __new__(cls, function: sp.Lambda, vector: Any) -> Diag:
        if vector.shape[1] != 1:
            raise SymrnnError(f"Diag needs a column vector, got shape {vector.shape}")
        return sp.Basic.__new__(cls, function, vector)  # type: ignore[no-any-return]

    @property
    def function(self) -> sp.Lambda:
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def vector(self) -> Any:
        return self.args[1]

    @property
    def shape(self) -> tuple[Any, Any]:
        n = self.vector.shape[0]
        return (n, n)

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        if i != j:
            return sp.S.Zero
        return self.function(self.vector[i, 0])

    def _compound(self) -> bool:
        """True when the vector needs parentheses: compound, and in a power, product or sum
        (not alone, and not only the argument of a function such as cos)."""
        if isinstance(self.vector, (VectorAt, sp.MatrixSymbol)):
            return False
        (var,) = self.function.variables
        return any(
            var in node.args and not isinstance(node, sp.Function)
            for node in sp.preorder_traversal(self.function.expr)
        )

    def _body(self, slot: sp.Symbol) -> Any:
        (var,) = self.function.variables
        return self.function.expr.xreplace({var: slot})

    def _latex(self, printer: Any) -> str:
        inner = printer._print(self.vector)
        if self._compound():
            inner = f"\\left({inner}\\right)"
        body = self._body(_Slot(inner))
        if isinstance(body, sp.Mul) and not body.args[0].is_Number:
            # elementwise products of vectors print as Hadamard products
            tex = " \\odot ".join(
                printer.parenthesize(f, sp.printing.precedence.PRECEDENCE["Mul"]) for f in body.args
            )
        else:
            tex = printer._print(body)
        return f"\\operatorname{{diag}}\\left({tex}\\right)"

    def _sympystr(self, printer: Any) -> str:
        inner = printer._print(self.vector)
        if self._compound():
            inner = f"({inner})"
        return f"diag({printer._print(self._body(sp.Symbol(inner)))})"


class Softmax(MatrixExpr):  # type: ignore[misc]
    r""":math:`\operatorname{softmax}(\mathbf{o})`, a column vector with entries
    :math:`e^{o_i} / \sum_j e^{o_j}` (printed, not expanded)."""

    def __new__(cls, vector: Any) -> Softmax:
        return sp.Basic.__new__(cls, vector)  # type: ignore[no-any-return]

    @property
    def vector(self) -> Any:
        return self.args[0]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.vector.shape  # type: ignore[no-any-return]

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        return explicit_softmax(explicit(self.vector))[int(i), 0]

    def _latex(self, printer: Any) -> str:
        return f"\\operatorname{{softmax}}\\left({printer._print(self.vector)}\\right)"

    def _sympystr(self, printer: Any) -> str:
        return f"softmax({printer._print(self.vector)})"


def explicit_softmax(v: sp.MatrixBase) -> sp.ImmutableMatrix:
    """The entries :math:`e^{v_i} / \\sum_j e^{v_j}` of the softmax of an explicit vector."""
    total = sp.Add(*[sp.exp(e) for e in v])
    return sp.ImmutableMatrix([sp.exp(e) / total for e in v])


class Named(MatrixExpr):  # type: ignore[misc]
    r"""A vector quantity with a name and a definition: ``Named(yhat(t), Softmax(o(t)))`` prints
    as :math:`\hat{\mathbf{y}}^{(t)}` and expands (:func:`components`) to its definition."""

    def __new__(cls, name: Any, value: Any) -> Named:
        return sp.Basic.__new__(cls, name, value)  # type: ignore[no-any-return]

    @property
    def name(self) -> Any:
        return self.args[0]

    @property
    def value(self) -> Any:
        return self.args[1]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.name.shape  # type: ignore[no-any-return]

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        return self.value[i, j]

    def _latex(self, printer: Any) -> str:
        return printer._print(self.name)  # type: ignore[no-any-return]

    def _sympystr(self, printer: Any) -> str:
        return printer._print(self.name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class LossForm:
    r"""A per-step loss recognised in the book's form.

    ``kind`` is ``"softmax_cross_entropy"`` (:math:`\hat{\mathbf{y}}^{(t)} =
    \operatorname{softmax}(\mathbf{o}^{(t)})`, :math:`L^{(t)} = -\sum_i y_i^{(t)} \log
    \hat y_i^{(t)}`, :math:`\nabla_{\mathbf{o}^{(t)}} L^{(t)} = \hat{\mathbf{y}}^{(t)} -
    \mathbf{y}^{(t)}` for a target that sums to one) or ``"squared_error"``
    (:math:`L^{(t)} = \tfrac12 \sum_i (o_i^{(t)} - y_i^{(t)})^2`,
    :math:`\nabla_{\mathbf{o}^{(t)}} L^{(t)} = \mathbf{o}^{(t)} - \mathbf{y}^{(t)}`);
    ``prediction`` and ``target`` are the vectors' names, ``size`` their length (an integer
    or a size symbol such as ``n``).
    """

    kind: str
    prediction: str
    target: str
    size: Any

    def at(self, time: Any) -> tuple[VectorAt, VectorAt]:
        return (
            VectorAt(self.prediction, time, self.size),
            VectorAt(self.target, time, self.size),
        )

    def yhat(self, time: Any) -> Named:
        r""":math:`\hat{\mathbf{y}}^{(t)}`, defined as the softmax of the prediction."""
        o, _ = self.at(time)
        return Named(VectorAt(f"{self.target}hat", time, self.size), Softmax(o))

    def gradient(self, time: Any) -> Any:
        r""":math:`\nabla_{\mathbf{o}^{(t)}} L^{(t)}` in the book's form."""
        o, y = self.at(time)
        first = self.yhat(time) if self.kind == "softmax_cross_entropy" else o
        return sp.MatAdd(first, sp.MatMul(sp.S.NegativeOne, y))

    def definitions(self, time: Any) -> tuple[sp.Equality, ...]:
        r"""The equations that define the loss: :math:`\hat{\mathbf{y}}^{(t)}` (softmax) and
        :math:`L^{(t)}` as a sum over components."""
        i = sp.Symbol("i", integer=True, positive=True)
        y_i = sp.Function(f"{self.target}_i", real=True)(time)
        per_step = _PER_STEP(time)
        if self.kind == "softmax_cross_entropy":
            yhat = self.yhat(time)
            yhat_i = sp.Function(f"{self.target}hat_i", real=True)(time)
            return (
                sp.Eq(yhat.name, yhat.value, evaluate=False),
                sp.Eq(
                    per_step,
                    -sp.Sum(sp.Mul(y_i, sp.log(yhat_i), evaluate=False), (i, 1, self.size)),
                    evaluate=False,
                ),
            )
        o_i = sp.Function(f"{self.prediction}_i", real=True)(time)
        return (sp.Eq(per_step, sp.Sum((o_i - y_i) ** 2 / 2, (i, 1, self.size))),)


def recognise_loss(rec: Recurrence, loss: Any) -> LossForm | None:
    """The book's form of a per-step loss in ``t``, when it is ``sr.softmax_cross_entropy`` or
    ``sr.squared_error`` of a vector the recurrence defines and a target vector; else None.

    >>> import symrnn as sr
    >>> o, y = sr.vector("o", 3), sr.vector("y", 3)
    >>> rec = sr.cells.elman(3, outputs=3)
    >>> recognise_loss(rec, sr.softmax_cross_entropy(o(sr.t), y(sr.t))).kind
    'softmax_cross_entropy'
    """
    from .losses import Loss, SoftmaxCrossEntropy, expand_losses

    if loss is None or isinstance(loss, (MatrixExpr, sp.MatrixBase)):
        return None
    loss = sp.sympify(loss, strict=True)
    if isinstance(loss, Loss):  # the loss object itself: its vectors are its arguments
        o, y = loss.prediction, loss.target
        if not (isinstance(o, VectorAt) and isinstance(y, VectorAt)) or o.time != t:
            return None
        kind = "softmax_cross_entropy" if isinstance(loss, SoftmaxCrossEntropy) else "squared_error"
        return LossForm(kind, o.name, y.name, o.shape[0])
    return _recognise_components(rec, expand_losses(loss))


def _recognise_components(rec: Recurrence, loss: Any) -> LossForm | None:
    """The book's form of a loss given component by component (``o_1(t)``, ``y_1(t)``)."""
    from .losses import expand_losses, softmax_cross_entropy, squared_error

    names = {a.func.__name__.rpartition("_")[0] for a in loss.atoms(AppliedUndef)} - {""}
    for pred in names & set(rec.vectors):
        n = len(rec.vectors[pred])
        for target in sorted(names - set(rec.vectors)):
            o, y = VectorAt(pred, t, n), VectorAt(target, t, n)
            for kind, make in (
                ("softmax_cross_entropy", softmax_cross_entropy),
                ("squared_error", squared_error),
            ):
                if sp.expand(loss - expand_losses(make(o, y))) == 0:
                    return LossForm(kind, pred, target, n)
    return None


# --------------------------------------------------------------------------- the calculus
def _mul(*factors: Any) -> Any:
    """A flat matrix product with the scalar coefficients collected in front."""
    coeff: Any = sp.S.One
    mats: list[Any] = []
    for f in factors:
        parts = f.args if isinstance(f, sp.MatMul) else (f,)
        for p in parts:
            if getattr(p, "is_Matrix", False) or isinstance(p, MatrixExpr):
                mats.append(p)
            else:
                coeff *= p
    if coeff == 1 and len(mats) == 1:
        return mats[0]
    return sp.MatMul(*([] if coeff == 1 else [coeff]), *mats)


def _add(terms: Iterable[Any]) -> Any:
    flat: list[Any] = []
    for term in terms:
        flat.extend(term.args if isinstance(term, sp.MatAdd) else (term,))
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else sp.MatAdd(*flat)


def _transpose(m: Any) -> Any:
    if isinstance(m, sp.MatrixBase):
        return sp.ImmutableMatrix(m.T)
    if isinstance(m, sp.Transpose):
        return m.arg
    return sp.Transpose(m)


def _is_matrix(e: Any) -> bool:
    return isinstance(e, (MatrixExpr, sp.MatrixBase))


def _elementwise_derivative(fn: sp.Lambda, value: Any) -> sp.Lambda:
    r"""f' as a Lambda; in terms of the defined value (1 - v**2 for tanh) when ``value`` is set."""
    (var,) = fn.variables
    d = sp.diff(fn.expr, var)
    if value is not None:
        v = sp.Dummy("v")
        through = d.xreplace({fn.expr: v})
        if var not in through.free_symbols:  # f' is a function of f alone (tanh, sigmoid, exp)
            return sp.Lambda(v, sp.factor_terms(through))
    return sp.Lambda(var, d)


def _vjp(expr: Any, leaf: Any, g: Any, where: str, value: Any = None) -> Any:
    r"""The vector-Jacobian product :math:`(\partial\,\text{expr}/\partial\,\text{leaf})^T g`.

    For a parameter matrix ``leaf`` the result has the leaf's shape (``g x^T`` for ``W x``).
    ``value`` is the quantity that ``expr`` defines, used to write f' through it.  Returns None
    when ``expr`` does not depend on ``leaf``.
    """
    if expr == leaf:
        return g
    if not _is_matrix(expr) or not expr.has(leaf):
        return None
    if isinstance(expr, sp.MatAdd):
        return _add(v for a in expr.args if (v := _vjp(a, leaf, g, where)) is not None)
    if isinstance(expr, sp.MatMul):
        scalars = [a for a in expr.args if not _is_matrix(a)]
        mats = [a for a in expr.args if _is_matrix(a)]
        if any(s.has(leaf) for s in scalars):
            raise SymrnnError(f"{where}: {leaf} appears in a scalar factor of {str_expr(expr)}")
        coeff = sp.Mul(*scalars)
        terms = []
        for i, f in enumerate(mats):
            if not f.has(leaf):
                continue
            prefix = [_transpose(m) for m in reversed(mats[:i])]
            if f == leaf:
                suffix = [_transpose(m) for m in reversed(mats[i + 1 :])]
                terms.append(_mul(coeff, *prefix, g, *suffix))
            elif i == len(mats) - 1:
                terms.append(_vjp(f, leaf, _mul(coeff, *prefix, g), where))
            else:
                raise SymrnnError(
                    f"{where}: cannot differentiate the product {str_expr(expr)} with respect "
                    f"to {leaf}: only a constant left factor (W h) or the leaf itself is handled; "
                    "use sr.bptt for the component form"
                )
        return _add(terms)
    if isinstance(expr, sp.HadamardProduct):
        terms = []
        for i, f in enumerate(expr.args):
            if not f.has(leaf):
                continue
            others = expr.args[:i] + expr.args[i + 1 :]
            other = others[0] if len(others) == 1 else sp.HadamardProduct(*others)
            s = sp.Dummy("s")
            terms.append(_vjp(f, leaf, _mul(Diag(sp.Lambda(s, s), other), g), where))
        return _add(terms)
    if isinstance(expr, ElementwiseApplyFunction):
        d = _elementwise_derivative(expr.function, value)
        through_value = value is not None and d.variables != expr.function.variables
        return _vjp(expr.expr, leaf, _mul(Diag(d, value if through_value else expr.expr), g), where)
    raise SymrnnError(
        f"{where}: cannot differentiate {type(expr).__name__} {str_expr(expr)} in matrix form "
        "(handled: sums, W*v, elementwise functions, Hadamard products, vectors and parameter "
        "matrices); use sr.bptt for the component form"
    )


# ---------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class MatrixBPTT:
    r"""The BPTT equations of a vector recurrence in matrix form.

    Attributes
    ----------
    recurrence : Recurrence
    adjoints : tuple of sympy.Eq
        :math:`\nabla_{\mathbf{q}^{(t)}} L = \dots` for every defined vector q (outputs first:
        reverse evaluation order), templates in t (Goodfellow et al. eq. 10.18, 10.21).
    boundary : tuple of sympy.Eq
        The same at :math:`t = \tau`, where the terms from :math:`t + 1` vanish (eq. 10.19).
    gradients : tuple of sympy.Eq
        :math:`\nabla_{\Theta} L = \sum_{t=1}^{\tau} \dots` for every parameter matrix Θ, in the
        book's order: bias vectors, then matrices, output equations first (eq. 10.22–10.26).
    loss : tuple of sympy.Eq
        The per-step loss in the book's form when one was recognised (:class:`LossForm`):
        :math:`\hat{\mathbf{y}}^{(t)} = \operatorname{softmax}(\mathbf{o}^{(t)})` and
        :math:`L^{(t)} = -\sum_i y_i^{(t)} \log \hat y_i^{(t)}`; else empty.
    """

    recurrence: Recurrence
    adjoints: tuple[sp.Equality, ...]
    boundary: tuple[sp.Equality, ...]
    gradients: tuple[sp.Equality, ...]
    loss: tuple[sp.Equality, ...] = ()

    @property
    def equations(self) -> tuple[sp.Equality, ...]:
        """The recursion, its boundary at τ, then the parameter gradients."""
        return (*self.adjoints, *self.boundary, *self.gradients)

    def equation(self, of: Any) -> sp.Equality:
        """The equation for ``∇_of L``: ``of`` a vector at time t or τ (``h(t)``) or a matrix."""
        for eq in self.equations:
            if eq.lhs.arg == of:
                return eq
        known = ", ".join(str_expr(e.lhs.arg) for e in self.equations)
        raise SymrnnError(f"no matrix-form BPTT equation for {str_expr(of)}; there are: {known}")

    def book_order(self) -> tuple[sp.Equality, ...]:
        r"""The equations in the order the book prints them: the loss, then for each quantity
        (outputs first) its value at :math:`\tau` where that differs and the recursion, then the
        parameter gradients (eq. 10.18–10.26)."""
        out: list[sp.Equality] = list(self.loss)
        for eq, last in zip(self.adjoints, self.boundary, strict=True):
            if last.rhs.xreplace({TAU: t}) != eq.rhs:
                out.append(last)
            out.append(eq)
        return (*out, *self.gradients)

    def latex_rows(self) -> list[str]:
        """``lhs &= rhs`` rows of :meth:`book_order`, terms in the order derived."""
        return [f"{latex_expr(e.lhs)} &= {_in_order(e.rhs, latex_expr)}" for e in self.book_order()]

    def latex(self) -> str:
        """All equations as one LaTeX ``aligned`` block (one line each; :func:`symrnn.latex`
        breaks them to a width)."""
        return "\\begin{aligned}" + " \\\\\n".join(self.latex_rows()) + "\\end{aligned}"

    def _repr_latex_(self) -> str:
        from .latex import latex

        return f"$${latex(self)}$$"

    def __str__(self) -> str:
        return "\n".join(
            f"{str_expr(e.lhs)} = {_in_order(e.rhs, str_expr)}" for e in self.book_order()
        )

    def __repr__(self) -> str:
        name = f" {self.recurrence.name!r}" if self.recurrence.name else ""
        return f"<MatrixBPTT{name}: {len(self.equations)} equations>"


def _in_order(expr: Any, show: Any) -> str:
    """A sum printed with its terms in the order they were derived (the book's: the terms from
    t + 1, then those at t, then the direct term, eq. 10.21); everything inside as usual."""
    out = ""
    for i, term in enumerate(_terms(expr)):
        negative = is_negative_term(term)
        text = show(_negated(term) if negative else term)
        if isinstance(term, sp.MatAdd) or (negative and isinstance(-term, sp.MatAdd)):
            text = f"({text})"
        if i == 0:
            minus = "- " if show is latex_expr else "-"  # as SymPy's printers write it
            out = f"{minus}{text}" if negative else text
        else:
            out += f" - {text}" if negative else f" + {text}"
    return out


def _negated(term: Any) -> Any:
    """``-term`` without simplifying a product of matrices (SymPy's negation calls doit)."""
    if isinstance(term, sp.MatMul):
        coeff, *rest = term.args
        return _mul(-coeff, *rest)
    return -term


def _vector_equations(rec: Recurrence) -> list[tuple[VectorAt, Any]]:
    out = []
    for eq in rec.display:
        if not isinstance(eq.lhs, VectorAt):
            raise SymrnnError(
                f"matrix_bptt needs every equation in matrix form, q(t) = ... with q = "
                f"sr.vector(...); {str_expr(eq.lhs)} is not; use sr.bptt(U, L).template() for "
                "scalar recurrences"
            )
        out.append((eq.lhs, eq.rhs))
    return out


def _scalar_symbols(expr: Any) -> set[Any]:
    """Free scalar symbols outside vectors and parameter matrices (whose names are symbols)
    and the ones vector ``1`` (whose size may be a symbol)."""
    if isinstance(expr, (VectorAt, sp.MatrixSymbol, sp.OneMatrix)):
        return set()
    if isinstance(expr, sp.Symbol):
        return {expr}
    if isinstance(expr, sp.Lambda):
        return set()  # the elementwise function's own variable
    return set().union(set(), *(_scalar_symbols(a) for a in expr.args))


def _shift(expr: Any, lag: int) -> Any:
    return expr.xreplace({t: t + lag}) if lag else expr


def matrix_bptt(
    rec: Recurrence, loss_on: Iterable[Any] | None = None, loss: Any = None
) -> MatrixBPTT:
    r"""The BPTT adjoint recursion of a matrix-form vector recurrence, as the book prints it.

    Parameters
    ----------
    rec : Recurrence
        Written with :func:`symrnn.vector` and :func:`symrnn.matrix` (e.g.
        ``sr.cells.elman(3, inputs=2, outputs=3)``).
    loss_on : iterable of vectors, optional
        The vectors the per-step loss :math:`L^{(t)}` reads (``sr.vector("o", 3)`` or its name);
        default: the vectors ``loss`` reads, else the outputs, or the states when there are no
        outputs.
    loss : sympy.Expr, optional
        The per-step loss in ``t``.  ``sr.softmax_cross_entropy(o(t), y(t))`` and
        ``sr.squared_error(o(t), y(t))`` are written as the book writes them
        (:class:`LossForm`): :math:`\nabla_{\mathbf{o}^{(t)}} L^{(t)} = \hat{\mathbf{y}}^{(t)} -
        \mathbf{y}^{(t)}` (eq. 10.18, for targets that sum to one) or
        :math:`\mathbf{o}^{(t)} - \mathbf{y}^{(t)}`; other losses keep
        :math:`\nabla_{\mathbf{o}^{(t)}} L^{(t)}`.

    Returns
    -------
    MatrixBPTT

    Raises
    ------
    SymrnnError
        For equations not in matrix form, scalar parameters, or products it cannot transpose
        (the message names the equation).

    Examples
    --------
    >>> import symrnn as sr
    >>> M = matrix_bptt(sr.cells.linear(2))
    >>> print(M)
    nabla_{h(tau)} L = nabla_{h(tau)} L(tau)
    nabla_{h(t)} L = A.T*nabla_{h(t + 1)} L + nabla_{h(t)} L(t)
    nabla_{A} L = Sum(nabla_{h(t)} L*h(t - 1).T, (t, 1, tau))
    nabla_{B} L = Sum(nabla_{h(t)} L*x(t).T, (t, 1, tau))
    >>> o, y = sr.vector("o", 3), sr.vector("y", 3)
    >>> rec = sr.cells.elman(3, outputs=3)
    >>> print(matrix_bptt(rec, loss=sr.softmax_cross_entropy(o(sr.t), y(sr.t))).equation(o(sr.t)))
    Eq(nabla_{o(t)} L, yhat(t) - y(t))
    """
    if not isinstance(rec, Recurrence):
        raise SymrnnError(f"matrix_bptt needs a Recurrence, got {type(rec).__name__}")
    eqs = _vector_equations(rec)
    defined = {lhs.name: lhs for lhs, _ in eqs}
    scalars = set().union(*(_scalar_symbols(rhs) for _, rhs in eqs)) - {t}
    if scalars:
        names = ", ".join(sorted(map(str, scalars)))
        raise SymrnnError(
            f"matrix_bptt handles parameter matrices (sr.matrix) only, but {rec.name or 'the'} "
            f"recurrence has the scalar parameter(s) {names}; write them as 1x1 matrices or use "
            "sr.bptt"
        )
    blocks = rec.blocks  # whole vectors: works for symbolic sizes too
    form = recognise_loss(rec, loss)
    if form is not None and loss_on is None:
        loss_on = [form.prediction]
    elif loss is not None and loss_on is None:
        reads = {
            a.func.__name__.rpartition("_")[0]
            for a in sp.sympify(loss, strict=True).atoms(AppliedUndef)
        }
        loss_on = [n for n in defined if n in reads] or None
    if loss_on is None:
        outs = {f.__name__ for f in blocks.outputs}
        states = {f.__name__ for f in blocks.states}
        read = [n for n in defined if n in outs] or [n for n in defined if n in states]
    else:
        read = [getattr(v, "name", v) for v in loss_on]
        unknown = [n for n in read if n not in defined]
        if unknown:
            raise SymrnnError(
                f"loss_on names {', '.join(map(str, unknown))}, which the recurrence does not "
                f"define; choose from {', '.join(defined)}"
            )
    order = [f.__name__ for f in blocks.defined]

    # for error messages only; printed once per equation (printing an LSTM's is not free)
    wheres = {lhs: f"in {str_expr(lhs)} = {str_expr(rhs)}" for lhs, rhs in eqs}
    terms: dict[str, list[Any]] = {n: [] for n in order}
    for lhs, rhs in eqs:
        where = wheres[lhs]
        for atom in sorted(rhs.atoms(VectorAt), key=sp.default_sort_key):
            if atom.name not in defined:
                continue  # an input
            lag = int(sp.expand(t - atom.time))
            part = _vjp(rhs, atom, Nabla(lhs), where, value=lhs)
            if part is not None:
                terms[atom.name].append(_shift(part, lag))
    for n in read:  # the direct term last, as in eq. 10.21
        direct = form.gradient(t) if form is not None else Nabla(defined[n], _PER_STEP(t))
        terms[n].append(direct)
    adjoints = []
    for n in reversed(order):
        q = defined[n]
        adjoints.append(sp.Eq(Nabla(q), _add(terms[n]) or sp.ZeroMatrix(*q.shape), evaluate=False))
    boundary = []
    for eq in adjoints:
        kept = [
            a
            for a in _terms(eq.rhs.xreplace({t: TAU}))
            if not any(_later(n, TAU) for n in a.atoms(Nabla))
        ]
        lhs = eq.lhs.xreplace({t: TAU})
        boundary.append(sp.Eq(lhs, _add(kept) or sp.ZeroMatrix(*lhs.shape), evaluate=False))

    params = _book_parameter_order(eqs)
    gradients = []
    for p in params:
        parts = []
        for lhs, rhs in eqs:
            part = _vjp(rhs, p, Nabla(lhs), wheres[lhs], value=lhs)
            if part is not None:
                parts.append(part)
        body = _add(parts)
        gradients.append(sp.Eq(Nabla(p), sp.Sum(body, (t, 1, TAU)), evaluate=False))
    definitions = form.definitions(t) if form is not None else ()
    return MatrixBPTT(rec, tuple(adjoints), tuple(boundary), tuple(gradients), definitions)


def _terms(expr: Any) -> tuple[Any, ...]:
    """The terms of a sum of matrices (one term when ``expr`` is not a sum)."""
    return expr.args if isinstance(expr, sp.MatAdd) else (expr,)


def _book_parameter_order(eqs: list[tuple[VectorAt, Any]]) -> list[Any]:
    r"""Parameter matrices as the book lists their gradients (eq. 10.22–10.26: c, b, V, W, U):
    bias vectors before matrices, the later equations (outputs) first, and within an equation
    in the book's term order (:math:`\mathbf{b} + \mathbf{W} \mathbf{h} + \mathbf{U}
    \mathbf{x}`)."""
    keyed: dict[Any, tuple[int, int, int]] = {}
    for index, (_, rhs) in enumerate(eqs):
        text = str_expr(rhs)
        added = {a for node in sp.preorder_traversal(rhs) if isinstance(node, sp.MatAdd)
                 for a in node.args}  # fmt: skip
        for p in rhs.atoms(sp.MatrixSymbol):
            found = re.search(rf"(?<![A-Za-z0-9_]){re.escape(p.name)}(?![A-Za-z0-9_])", text)
            key = (int(p not in added), -index, found.start() if found else len(text))
            keyed[p] = min(keyed.get(p, key), key)
    return sorted(keyed, key=lambda p: (keyed[p], p.name))


def _later(n: Nabla, tau: Any) -> bool:
    arg = n.arg
    return isinstance(arg, VectorAt) and bool(sp.expand(arg.time - tau).is_positive)


# ----------------------------------------------------------------------------- components
def components(expr: Any, at: int | None = None, steps: int | None = None) -> Any:
    r"""A matrix-form expression as an explicit matrix of scalar components.

    ``at`` sets t (and ``steps`` sets τ, needed for sums over t).  The components are symrnn's
    scalar quantities: ``Adjoint(h_1(3))`` for :math:`(\nabla_{\mathbf{h}^{(3)}} L)_1`,
    ``Derivative(L(3), o_1(3))`` for the per-step term, ``h_1(3)``, ``W_12``; so an equation of
    :func:`matrix_bptt` can be checked against :func:`symrnn.bptt` entry by entry.
    """
    if isinstance(expr, sp.Equality):
        return sp.Eq(
            components(expr.lhs, at, steps), components(expr.rhs, at, steps), evaluate=False
        )
    mapping: dict[Any, Any] = {}
    if at is not None:
        mapping[t] = sp.Integer(at)
    if steps is not None:
        mapping[TAU] = sp.Integer(steps)
    return _explicit(expr, mapping)


def _explicit(e: Any, mapping: dict[Any, Any]) -> Any:
    if isinstance(e, sp.Sum):
        body, (var, lo, hi) = e.function, e.limits[0]
        lo, hi = lo.xreplace(mapping), hi.xreplace(mapping)
        if not (lo.is_Integer and hi.is_Integer):
            raise SymrnnError(f"the sum over {var} needs numeric bounds; pass steps=τ")
        inner = {k: v for k, v in mapping.items() if k != var}
        total = None
        for k in range(int(lo), int(hi) + 1):
            term = _explicit(body, {**inner, var: sp.Integer(k)})
            total = term if total is None else total + term
        return total
    if not _is_matrix(e):
        return e.xreplace(mapping)
    e_t = e.xreplace(mapping) if isinstance(e, (Nabla, VectorAt)) else e
    if isinstance(e_t, Nabla):
        return explicit_nabla(e_t)
    if isinstance(e_t, (VectorAt, sp.MatrixSymbol, sp.MatrixBase)):
        return explicit(e_t)
    if isinstance(e, Named):
        return _explicit(e.value, mapping)
    if isinstance(e, Softmax):
        return explicit_softmax(_explicit(e.vector, mapping))
    if isinstance(e, Diag):
        v = _explicit(e.vector, mapping)
        n = v.shape[0]
        return sp.ImmutableMatrix(n, n, lambda i, j: e.function(v[i, 0]) if i == j else 0)
    if isinstance(e, sp.MatAdd):
        parts = [_explicit(a, mapping) for a in e.args]
        return sp.ImmutableMatrix(sum(parts[1:], parts[0]))
    if isinstance(e, sp.MatMul):
        out: Any = sp.S.One
        for a in e.args:
            out = out * _explicit(a, mapping)
        return sp.ImmutableMatrix(out)
    if isinstance(e, sp.Transpose):
        return sp.ImmutableMatrix(_explicit(e.arg, mapping).T)
    if isinstance(e, sp.HadamardProduct):
        parts = [_explicit(a, mapping) for a in e.args]
        out = parts[0]
        for p in parts[1:]:
            out = out.multiply_elementwise(p)
        return sp.ImmutableMatrix(out)
    if isinstance(e, ElementwiseApplyFunction):
        return sp.ImmutableMatrix(_explicit(e.expr, mapping).applyfunc(e.function))
    if isinstance(e, (sp.ZeroMatrix, sp.OneMatrix, sp.Identity)):
        return sp.ImmutableMatrix(e.as_explicit())
    raise SymrnnError(f"components: cannot expand {type(e).__name__} {str_expr(e)}")


# ---------------------------------------------------------------------------- Jacobians
def matrix_jacobians(rec: Recurrence) -> dict[tuple[Any, Any], Any]:
    r"""The step Jacobians :math:`\partial\mathbf{q}^{(t)}/\partial\mathbf{v}` in matrix form.

    One entry per defined vector q and vector v that its equation reads (a lagged state, a
    same-time quantity, an input), for any size, symbolic sizes included; the book's
    :math:`\partial\mathbf{h}^{(t)}/\partial\mathbf{h}^{(t-1)} =
    \operatorname{diag}(1 - (\mathbf{h}^{(t)})^2)\,\mathbf{W}` for the Elman network.  They are
    the transposes of the vector-Jacobian products of :func:`matrix_bptt`, taken with the
    identity.

    >>> import symrnn as sr
    >>> n = sr.size("n")
    >>> J = matrix_jacobians(sr.cells.elman(n, inputs=n))
    >>> h = sr.vector("h", n)
    >>> print(J[h(sr.t), h(sr.t - 1)])
    diag(1 - h(t)**2)*W
    """
    if not isinstance(rec, Recurrence):
        raise SymrnnError(f"matrix_jacobians needs a Recurrence, got {type(rec).__name__}")
    out: dict[tuple[Any, Any], Any] = {}
    for lhs, rhs in _vector_equations(rec):
        where = f"in {str_expr(lhs)} = {str_expr(rhs)}"
        identity = sp.Identity(lhs.shape[0])
        for atom in sorted(rhs.atoms(VectorAt), key=sp.default_sort_key):
            part = _vjp(rhs, atom, identity, where, value=lhs)
            if part is not None:
                out[lhs, atom] = _transpose_product(part)
    return out


def _transpose_product(m: Any) -> Any:
    """``m`` transposed, products reversed factor by factor (diag(d) is its own transpose)."""
    if isinstance(m, sp.MatAdd):
        return _add(_transpose_product(a) for a in m.args)
    if isinstance(m, sp.MatMul):
        scalars = [a for a in m.args if not _is_matrix(a)]
        mats = [a for a in m.args if _is_matrix(a) and not isinstance(a, sp.Identity)]
        if not mats:
            return m
        return _mul(sp.Mul(*scalars), *[_transpose_product(a) for a in reversed(mats)])
    if isinstance(m, (Diag, sp.Identity)):
        return m
    return _transpose(m)
