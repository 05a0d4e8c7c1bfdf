r"""Vector states and matrix parameters, of explicit or symbolic size.

``vector('h', 3)`` is a time-indexed vector: ``h(t - 1)`` is a 3×1 matrix expression that prints
as :math:`\mathbf{h}^{(t-1)}` and whose components are the scalar time functions ``h_1``, ``h_2``,
``h_3``.  ``matrix('W', 3, 3)`` is a real parameter matrix (a :class:`sympy.MatrixSymbol`) whose
entries are the scalar symbols ``W_11`` … ``W_33``.  Recurrences keep the matrix form through
unfolding, differentiation and code generation; components are a view (:func:`explicit`), for
explicit sizes only.  A size may be a positive integer symbol, ``vector('h', n)`` with
``n = Symbol('n', integer=True, positive=True)``: everything that needs no numbers works on it.

>>> import sympy as sp
>>> from symrnn.notation import t
>>> h, W = vector("h", 2), matrix("W", 2, 2)
>>> explicit(W * h(t - 1))
Matrix([
[W_11*h_1(t - 1) + W_12*h_2(t - 1)],
[W_21*h_1(t - 1) + W_22*h_2(t - 1)]])
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixElement, MatrixExpr

from .errors import ShapeError
from .notation import latex_time, time_function

__all__ = [
    "vector",
    "matrix",
    "size",
    "TimeVector",
    "VectorAt",
    "explicit",
    "entry_symbol",
    "is_matrix",
    "has_explicit_size",
]


def is_matrix(obj: Any) -> bool:
    """True for explicit matrices and matrix expressions."""
    return isinstance(obj, (sp.MatrixBase, MatrixExpr))


def entry_symbol(name: str, i: int, j: int, rows: int, cols: int) -> sp.Symbol:
    """The real scalar symbol for entry (i, j) (0-based) of parameter matrix ``name``.

    Entries are named 1-based as in the book: ``W_12``; a column vector's entries ``b_2``; indices
    are separated (``W_10_2``) only when a dimension exceeds 9 and ``W_102`` would be ambiguous.
    """
    if cols == 1:
        return sp.Symbol(f"{name}_{i + 1}", real=True)
    if max(rows, cols) <= 9:
        return sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True)
    return sp.Symbol(f"{name}_{i + 1}_{j + 1}", real=True)


def matrix(name: str, rows: Any, cols: Any = 1) -> sp.MatrixSymbol:
    """A real parameter matrix (``cols=1`` for a bias vector); sizes are integers or symbols.

    >>> n = size("n")
    >>> matrix("W", n, n).shape
    (n, n)
    """
    rows, cols = _check_size(name, rows, cols)
    return sp.MatrixSymbol(name, rows, cols)


def size(name: str) -> sp.Symbol:
    """A symbolic size: ``Symbol(name, integer=True, positive=True)``, for :func:`vector`."""
    return sp.Symbol(name, integer=True, positive=True)


def has_explicit_size(expr: Any) -> bool:
    """True when every matrix in ``expr`` has integer dimensions (components can be listed)."""
    if isinstance(expr, sp.MatrixBase):
        return True
    if isinstance(expr, MatrixExpr) and not all(d.is_Integer for d in expr.shape):
        return False
    atoms = expr.atoms(sp.MatrixSymbol, VectorAt) if isinstance(expr, sp.Basic) else ()
    return all(d.is_Integer for a in atoms for d in a.shape)


@cache
def _explicit_parameter(name: str, rows: int, cols: int) -> sp.ImmutableMatrix:
    return sp.ImmutableMatrix(
        rows, cols, [entry_symbol(name, i, j, rows, cols) for i in range(rows) for j in range(cols)]
    )


def _check_size(name: str, rows: Any, cols: Any) -> tuple[Any, Any]:
    """The sizes as SymPy integers or positive integer symbols, or a ShapeError."""
    out = []
    for n in (rows, cols):
        if isinstance(n, bool):
            ok = False
        elif isinstance(n, (int, sp.Integer)):
            ok = int(n) >= 1
            n = sp.Integer(n)
        else:
            ok = isinstance(n, sp.Symbol) and bool(n.is_integer) and bool(n.is_positive)
        if not ok:
            raise ShapeError(
                f"size of {name!r} must be positive integers or positive integer symbols, got "
                f"({rows!r}, {cols!r}); write vector('h', 3) or vector('h', sr.size('n'))"
            )
        out.append(n)
    return out[0], out[1]


def _explicit_sizes(what: str, shape: Any) -> tuple[int, ...]:
    shape = tuple(sp.sympify(d, strict=True) for d in shape)
    if not all(d.is_Integer for d in shape):
        raise ShapeError(
            f"{what} has symbolic size {tuple(shape)}; its components exist only for explicit "
            "sizes: substitute numbers for the sizes (e.g. rec.at_sizes(n=3)) first"
        )
    return tuple(int(d) for d in shape)


class VectorAt(MatrixExpr):  # type: ignore[misc]
    r"""A time-indexed vector at one time, e.g. ``h(t-1)``; prints as :math:`\mathbf{h}^{(t-1)}`."""

    def __new__(cls, name: Any, time: Any, size: Any) -> VectorAt:
        # The name is a Str, not a Symbol: a vector's name is not a free symbol (a parameter).
        name = name if isinstance(name, Str) else Str(str(getattr(name, "name", name)))
        return sp.Basic.__new__(  # type: ignore[no-any-return]
            cls, name, sp.sympify(time, strict=True), sp.sympify(size, strict=True)
        )

    @property
    def name(self) -> str:
        return str(self.args[0].name)

    @property
    def time(self) -> sp.Expr:
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def shape(self) -> tuple[sp.Integer, sp.Integer]:
        return (self.args[2], sp.Integer(1))

    @property
    def free_symbols(self) -> set[Any]:
        return self.time.free_symbols | self.args[2].free_symbols  # type: ignore[no-any-return]

    def components(self) -> tuple[sp.Expr, ...]:
        """The scalar time atoms ``h_1(time)``, …, ``h_n(time)`` (explicit sizes only)."""
        (n, _) = _explicit_sizes(f"vector {self.name}", self.shape)
        return tuple(time_function(f"{self.name}_{i + 1}")(self.time) for i in range(n))

    def as_explicit(self) -> sp.ImmutableMatrix:
        return sp.ImmutableMatrix(self.components())

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        if isinstance(i, (int, sp.Integer)):
            return self.components()[int(i)]
        return MatrixElement(self, i, j)

    def _latex(self, printer: Any) -> str:
        return f"\\mathbf{{{printer._print(sp.Symbol(self.name))}}}^{{({latex_time(self.time)})}}"

    def _sympystr(self, printer: Any) -> str:
        return f"{self.name}({printer._print(self.time)})"


class TimeVector:
    """A vector-valued function of time; calling it gives a :class:`VectorAt`."""

    def __init__(self, name: str, size: Any):
        self.name, self.size = name, _check_size(name, size, 1)[0]

    def __call__(self, time: Any) -> VectorAt:
        return VectorAt(self.name, time, self.size)

    @property
    def components(self) -> tuple[sp.Function, ...]:
        """The scalar component functions ``h_1`` … ``h_n`` (explicit sizes only)."""
        (n, _) = _explicit_sizes(f"vector {self.name}", (self.size, 1))
        return tuple(time_function(f"{self.name}_{i + 1}") for i in range(n))

    def __repr__(self) -> str:
        return f"vector({self.name!r}, {self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeVector) and (other.name, other.size) == (self.name, self.size)

    def __hash__(self) -> int:
        return hash(("TimeVector", self.name, self.size))


def vector(name: str, size: Any) -> TimeVector:
    """A time-indexed vector of ``size`` real components (a vector state, input or output).

    ``size`` is a positive integer or a positive integer symbol (:func:`size`).
    """
    return TimeVector(name, size)


def explicit(expr: Any) -> Any:
    """Expand a matrix expression into an explicit ``ImmutableMatrix`` of scalar expressions.

    Parameter matrices become their entry symbols and time vectors their component atoms;
    scalars pass through unchanged.
    """
    if isinstance(expr, sp.MatrixBase):
        return sp.ImmutableMatrix(expr)
    if not isinstance(expr, MatrixExpr):
        return expr
    _explicit_sizes(str(expr), expr.shape)
    mapping: dict[Any, Any] = {}
    for leaf in expr.atoms(sp.MatrixSymbol, VectorAt):
        if isinstance(leaf, VectorAt):
            mapping[leaf] = leaf.as_explicit()
        else:
            rows, cols = _explicit_sizes(f"matrix {leaf.name}", leaf.shape)
            mapping[leaf] = _explicit_parameter(leaf.name, rows, cols)
    replaced = expr.xreplace(mapping)
    if isinstance(replaced, sp.MatrixBase):
        return sp.ImmutableMatrix(replaced)
    return sp.ImmutableMatrix(replaced.doit().as_explicit())
