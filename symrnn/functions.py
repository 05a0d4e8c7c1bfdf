r"""Activation functions, elementwise on vectors.

``sigmoid`` and ``relu`` are SymPy functions that know their derivative, print as in the book
(:math:`\sigma(x)`, :math:`\operatorname{relu}(x)`) and turn into NumPy code.  Every function here
maps elementwise over a vector or matrix expression, so ``tanh(W*h(t-1) + b)`` is written as in the
book and prints in matrix form.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> sp.diff(sigmoid(x), x)
(1 - sigmoid(x))*sigmoid(x)
>>> float(sigmoid(0))
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .matrices import explicit, is_matrix

__all__ = [
    "sigmoid",
    "relu",
    "softplus",
    "softmax",
    "logsumexp",
    "tanh",
    "exp",
    "log",
    "sin",
    "cos",
    "sqrt",
    "elementwise",
]


# One bound variable for every elementwise map, so that two maps of the same function over the
# same matrix are equal (SymPy's applyfunc makes a fresh Dummy each time: relu(W) != relu(W)).
_SLOT = sp.Dummy("d", real=True)


def _no_text(name: str, arg: Any) -> None:
    """Refuse a string: SymPy would evaluate it as Python, and it has no recurrence in scope."""
    if isinstance(arg, str):
        raise TypeError(
            f"{name} got the string {arg[:40]!r}; pass a SymPy expression such as h(t), or "
            "write the whole update as text with sr.Recurrence.parse"
        )


def _map(function: Any, arg: Any) -> Any:
    """``function`` applied to each entry of a matrix or matrix expression."""
    if isinstance(arg, MatrixExpr):
        # Built directly: SymPy would call the function on a 1x1 argument to probe whether it
        # returns a matrix, which recurses back into our matrix-aware functions.
        return MatrixExpr.__new__(ElementwiseApplyFunction, sp.Lambda(_SLOT, function(_SLOT)), arg)
    return arg.applyfunc(function)


def elementwise(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a scalar SymPy function so that it maps over vectors and matrix expressions."""

    def apply(arg: Any) -> Any:
        _no_text(apply.__name__, arg)
        return _map(function, arg) if is_matrix(arg) else function(sp.sympify(arg, strict=True))

    apply.__name__ = getattr(function, "__name__", "elementwise")
    apply.__doc__ = f"Elementwise ``{apply.__name__}``: scalars as SymPy does, vectors per entry."
    return apply


class _Elementwise(sp.Function):
    """A real scalar function that maps over matrices when given one."""

    is_real = True

    def __new__(cls, arg: Any, **options: Any) -> Any:
        _no_text(cls.__name__, arg)
        if is_matrix(arg):
            return _map(cls, arg)
        return super().__new__(cls, arg, **options)


class sigmoid(_Elementwise):  # noqa: N801 (mathematical function names are lower case)
    r"""The logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`."""

    @classmethod
    def eval(cls, x: Any) -> Any:
        if x.is_Number:
            return 1 / (1 + sp.exp(-x))
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, x: Any, **kwargs: Any) -> Any:
        return 1 / (1 + sp.exp(-x))

    def _eval_is_real(self) -> Any:
        return self.args[0].is_real

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\sigma\\left({printer._print(self.args[0])}\\right)"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        x = printer._print(self.args[0])
        return f"1/(1 + {printer._module_format('numpy.exp')}(-({x})))"

    _pythoncode = _numpycode


class relu(_Elementwise):  # noqa: N801
    r"""The rectifier :math:`\operatorname{relu}(x) = \max(0, x)`; its derivative at 0 is 0."""

    @classmethod
    def eval(cls, x: Any) -> Any:
        if x.is_Number:
            return sp.Max(0, x)
        if x.is_nonnegative:
            return x
        if x.is_nonpositive:
            return sp.S.Zero
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return sp.Heaviside(self.args[0], 0)

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\operatorname{{relu}}\\left({printer._print(self.args[0])}\\right)"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        x = printer._print(self.args[0])
        return f"{printer._module_format('numpy.maximum')}({x}, 0.0)"


class softplus(_Elementwise):  # noqa: N801
    r""":math:`\operatorname{softplus}(x) = \log(1 + e^{x})`, with derivative :math:`\sigma(x)`."""

    @classmethod
    def eval(cls, x: Any) -> Any:
        if x.is_Number:
            return sp.log(1 + sp.exp(x))
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x: Any, **kwargs: Any) -> Any:
        return sp.log(1 + sp.exp(x))

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\operatorname{{softplus}}\\left({printer._print(self.args[0])}\\right)"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        x = printer._print(self.args[0])
        return (
            f"{printer._module_format('numpy.log1p')}({printer._module_format('numpy.exp')}({x}))"
        )


tanh = elementwise(sp.tanh)
exp = elementwise(sp.exp)
log = elementwise(sp.log)
sin = elementwise(sp.sin)
cos = elementwise(sp.cos)
sqrt = elementwise(sp.sqrt)


def softmax(v: Any) -> sp.ImmutableMatrix:
    r"""Softmax of a vector, :math:`\operatorname{softmax}(v)_i = e^{v_i} / \sum_j e^{v_j}`."""
    _no_text("softmax", v)
    entries = list(explicit(v)) if is_matrix(v) else [sp.sympify(v, strict=True)]
    total = sp.Add(*[sp.exp(e) for e in entries])
    return sp.ImmutableMatrix([sp.exp(e) / total for e in entries])


def logsumexp(v: Any) -> sp.Expr:
    r""":math:`\log \sum_j e^{v_j}` of a vector."""
    _no_text("logsumexp", v)
    entries = list(explicit(v)) if is_matrix(v) else [sp.sympify(v, strict=True)]
    return sp.log(sp.Add(*[sp.exp(e) for e in entries]))
