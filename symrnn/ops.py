r"""Matrix-level operations that stay unexpanded, as in the computational graphs of the book.

Goodfellow et al. (Fig. 6.8) draw whole vectors and matrices as single variables and name the
operations between them: ``dot``, ``matmul``, ``sqr``, ``sum``.  These SymPy functions keep such
expressions at matrix level (they never expand into components), so that

>>> import sympy as sp
>>> from symrnn.functions import sigmoid
>>> x, w = sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("w", 3, 1)
>>> b, lam = sp.symbols("b lambda")
>>> sigmoid(dot(x, w) + b)
sigmoid(b + dot(x, w))
>>> from symrnn.notation import latex_expr
>>> latex_expr(lam * reduce_sum(sqr(w)))
'\\lambda \\operatorname{sum}\\left(\\operatorname{sqr}\\left(\\mathbf{w}\\right)\\right)'

build the expression trees that :func:`symrnn.graph.graph` draws.  Each one also prints as LaTeX
and as NumPy code.  On explicit matrices they evaluate:

>>> dot(sp.Matrix([1, 2]), sp.Matrix([3, 4]))
11
>>> reduce_sum(sqr(sp.Matrix([1, 2])))
5

``relu``, ``sigmoid`` and the other functions of :mod:`symrnn.functions` already apply
elementwise to a matrix expression (as :class:`sympy.ElementwiseApplyFunction`), and ``X*W`` of
two :class:`sympy.MatrixSymbol` is SymPy's own matrix product; :func:`matmul` spells it out.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .errors import ShapeError
from .functions import _Elementwise, _no_text
from .matrices import is_matrix

__all__ = ["dot", "matmul", "sqr", "reduce_sum"]


def _is_vector(arg: Any) -> bool:
    return 1 in tuple(arg.shape)


class dot(sp.Function):  # noqa: N801 (the book's operation names are lower case)
    r"""The dot product :math:`\mathbf{x}^\top \mathbf{w}` of two vectors, a scalar.

    Unevaluated on symbolic vectors; the sum of products on explicit ones.
    """

    nargs = 2
    is_commutative = True
    is_real = True

    def __new__(cls, *args: Any, **options: Any) -> Any:
        for arg in args:
            _no_text(cls.__name__, arg)
        return super().__new__(cls, *args, **options)

    @classmethod
    def eval(cls, x: Any, w: Any) -> Any:
        if is_matrix(x) and is_matrix(w):
            if not (_is_vector(x) and _is_vector(w)) or sp.Mul(*x.shape) != sp.Mul(*w.shape):
                raise ShapeError(
                    f"dot needs two vectors of the same length, got shapes {tuple(x.shape)} and "
                    f"{tuple(w.shape)}; use matmul for matrix products"
                )
            if isinstance(x, sp.MatrixBase) and isinstance(w, sp.MatrixBase):
                return sp.Add(*[a * c for a, c in zip(x, w, strict=True)])
        return None

    def _latex(self, printer: Any, exp: Any = None) -> str:
        x, w = (printer._print(a) for a in self.args)
        tex = f"{x}^{{\\top}} {w}"
        return f"\\left({tex}\\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        x, w = (printer._print(a) for a in self.args)
        return f"{printer._module_format('numpy.vdot')}({x}, {w})"


class reduce_sum(sp.Function):  # noqa: N801
    r"""The sum of all entries of a vector or matrix, :math:`\sum_i u_i`; the book's ``sum``."""

    nargs = 1
    is_commutative = True
    is_real = True

    def __new__(cls, *args: Any, **options: Any) -> Any:
        for arg in args:
            _no_text(cls.__name__, arg)
        return super().__new__(cls, *args, **options)

    @classmethod
    def eval(cls, u: Any) -> Any:
        if isinstance(u, sp.MatrixBase):
            return sp.Add(*u)
        return None

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\operatorname{{sum}}\\left({printer._print(self.args[0])}\\right)"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        return f"{printer._module_format('numpy.sum')}({printer._print(self.args[0])})"


class sqr(_Elementwise):  # noqa: N801
    r"""The square :math:`u^2`, elementwise on vectors and matrices; the book's ``sqr``."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Number:
            return u**2
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return 2 * self.args[0]

    def _eval_rewrite_as_Pow(self, u: Any, **kwargs: Any) -> Any:  # noqa: N802 (SymPy hook)
        return u**2

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\operatorname{{sqr}}\\left({printer._print(self.args[0])}\\right)"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer: Any) -> str:
        return f"{printer._module_format('numpy.square')}({printer._print(self.args[0])})"


def matmul(*factors: Any) -> sp.MatMul:
    r"""The matrix product :math:`\mathbf{X}\mathbf{W}` (SymPy's ``MatMul``), shapes checked."""
    if len(factors) < 2:
        raise ValueError(f"matmul needs at least two factors, got {len(factors)}")
    return sp.MatMul(*factors)
