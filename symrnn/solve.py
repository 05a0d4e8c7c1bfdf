r"""Closed forms in symbolic t (:func:`solve`) and convolution kernels (:func:`kernel`).

:func:`symrnn.unfold` gives :math:`g^{(k)}` for one fixed k.  :func:`solve` gives the state for
*every* t, as an expression in the symbol :data:`symrnn.t`, the initial states ``h(0)``,
``h(-1)``, …, the inputs and the parameters, or raises :class:`~symrnn.errors.NoClosedForm`
with the reason.  Linear recurrences are solved exactly, including those driven by an
*arbitrary* input sequence, which SymPy's ``rsolve`` refuses: the drive is convolved with the
impulse response (Green's function) of the homogeneous recurrence,

.. math::
    h^{(t)} = a^{t} h^{(0)} + \sum_{k=1}^{t} a^{t-k} \left(u x^{(k)} + b\right),
    \qquad
    \mathbf{h}^{(t)} = A^{t} \mathbf{h}^{(0)} + \sum_{k=1}^{t} A^{t-k} B \mathbf{x}^{(k)},

with :math:`a^{t}` and :math:`A^{t}` written from the roots of the characteristic polynomial
(in radicals when they are small, else as ``CRootOf``; repeated roots give polynomial factors).
Every solution is substituted back into the recurrence before it is returned; the result says
how (:class:`SolutionCheck`).  :func:`solve` keeps to a wall-clock budget, and
:meth:`Solution.subs` solves again at parameter values where the generic form divides by zero.

Reference semantics: for every integer :math:`t \ge 1 - \text{order}`, ``solve(rec).at(t)``
equals the state that ``for k in 1..t: h(k) = update(h(k-1), …, x(k))`` computes from the
symbolic initial states.

>>> import sympy as sp
>>> import symrnn as sr
>>> sol = solve(sr.cells.linear())
>>> print(sol)
h(t) = a**t*h(0) + Sum(a**(t - k)*(b + u*x(k)), (k, 1, t))
>>> sol.method, sol.check.ok
('linear-driven', True)
>>> sol.at(2) == sp.expand(sr.unfold(sr.cells.linear(), 2).closed_form(2))
True
>>> kernel(sr.cells.linear(), 3)
(u, a*u, a**2*u)
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.str import StrPrinter

from .errors import LimitError, NoClosedForm, ShapeError, SymrnnError
from .matrices import TimeVector, VectorAt, explicit, is_matrix
from .notation import NotationLatexPrinter, latex_time, shift_of, t, time_atoms, time_of
from .recurrence import Recurrence

__all__ = [
    "solve",
    "kernel",
    "Solution",
    "SolutionCheck",
    "MAX_SOLVE_SIZE",
    "MAX_KERNEL_LENGTH",
    "SOLVE_BUDGET",
]

#: Largest stacked state (components × lags) whose matrix power :func:`solve` builds.
MAX_SOLVE_SIZE = 10
#: Longest convolution kernel :func:`kernel` builds.
MAX_KERNEL_LENGTH = 1000
#: Default time budget of :func:`solve`, in seconds of wall-clock time.
SOLVE_BUDGET = 10.0

_CHECK_LAST = 6  # the recurrence is checked at t = 1 … _CHECK_LAST
_CHECK_POINTS = 3  # random parameter / initial-state / input points
_CHECK_DIGITS = 30  # working precision of the numeric check
_TOLERANCE = 1e-12  # relative residual accepted at that precision
_SYMBOLIC_MAX_OPS = 300  # residuals larger than this are checked numerically only
_INDEX_NAMES = ("k", "j", "i", "m", "n", "l", "r")


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class SolutionCheck:
    """How a closed form was verified by substituting it back into the recurrence.

    Attributes
    ----------
    symbolic : bool or None
        ``True`` when the residual and the initial conditions simplified to zero symbolically,
        ``False`` when simplification was tried and inconclusive, ``None`` when not tried (forms
        with ``Sum``/``Product``/``CRootOf``, residuals too large to simplify cheaply, no time
        left in the budget, or off the main thread, where it could not be interrupted).
    max_error : float
        Largest relative residual :math:`|h^{(t)} - f(h^{(t-1)}, …)| / \\max(1, |h^{(t)}|)` over
        the random points and times, evaluated with 30 significant digits; initial conditions
        are compared the same way.
    tolerance : float
        The largest ``max_error`` accepted.
    times : tuple of int
        The times checked: the initial times ``1 - order … 0`` and ``1 … 6``.
    points : int
        How many random points (parameters, initial states, inputs) were used.
    """

    symbolic: bool | None
    max_error: float
    tolerance: float
    times: tuple[int, ...]
    points: int

    @property
    def ok(self) -> bool:
        """True when the residual is within tolerance (always so for a returned solution)."""
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        sym = {True: "residual simplifies to 0", False: "symbolic simplification inconclusive"}
        head = sym.get(self.symbolic, "checked numerically")  # type: ignore[arg-type]
        return (
            f"{head}; max relative residual {self.max_error:.1e} (tolerance {self.tolerance:.0e}) "
            f"at {self.points} random points for t = {self.times[0]}..{self.times[-1]}"
        )


@dataclass(frozen=True, eq=False)
class Solution:
    r"""The closed form of a recurrence's state for symbolic :math:`t`, verified.

    Attributes
    ----------
    recurrence : Recurrence
        The recurrence solved.
    of : tuple
        The quantities solved for (state functions, or an output), in the order of ``expr``.
    expr : sympy.Expr or sympy.ImmutableMatrix
        The closed form in :data:`symrnn.t`: a scalar for one quantity, a column for several
        (a vector state, or coupled states).  Initial states appear as ``h(0)``, ``h(-1)``, …,
        inputs as ``x(k)`` inside ``Sum(…, (k, 1, t))``.
    method : str
        ``"characteristic"`` (one state, constant coefficients, no drive or a known one such as
        a constant or :math:`3^t`: from the characteristic roots, no sum), ``"linear-driven"``
        (one state, impulse response convolved with the drive), ``"matrix-power"`` (systems:
        :math:`A^t` from the characteristic roots), ``"product"`` (first order with time-varying
        coefficients) or ``"rsolve"`` (SymPy's ``rsolve``, coefficients depending on t).
        Roots that are not written in radicals are ``CRootOf`` objects; printing names them
        ``r1, r2, …`` and says which polynomial they are the roots of.
    check : SolutionCheck
        How the solution was verified; a returned solution always passed.
    index : sympy.Symbol
        The summation index used in ``expr`` (``k`` unless the recurrence uses that name).
    """

    recurrence: Recurrence
    of: tuple[Any, ...]
    expr: Any
    method: str
    check: SolutionCheck
    index: sp.Symbol

    @property
    def equations(self) -> tuple[sp.Equality, ...]:
        """``Eq(h(t), closed form)`` per quantity solved for."""
        exprs = list(self.expr) if isinstance(self.expr, sp.MatrixBase) else [self.expr]
        return tuple(sp.Eq(f(t), e, evaluate=False) for f, e in zip(self.of, exprs, strict=True))

    def at(self, k: int, expand: bool = True) -> Any:
        """The closed form at the integer time ``k``, sums and products written out.

        Comparable to ``unfold(rec, k).closed_form(k)``.  With ``expand`` (the default) the
        result is expanded and numeric radicals are cleared, so integer sequences come out as
        integers and sums over ``CRootOf`` roots as rationals; ``expand=False`` skips that,
        which is much faster for large symbolic forms that are evaluated numerically afterwards.
        Valid for ``k >= 1 - order`` (the initial times).
        """
        lowest = 1 - max(_lags(self.recurrence).values())
        if isinstance(k, bool) or not isinstance(k, (int, sp.Integer)) or k < lowest:
            raise ValueError(f"at() needs an integer time >= {lowest}, got {k!r}")
        marked, marks = self._marked
        back = {m: r for r, m in marks.items()}

        def value(e: Any) -> Any:
            e = _doit(e.xreplace({t: sp.Integer(k)}))
            return _exact(e, marks) if expand else e.xreplace(back)

        return _map(marked, value)

    @cached_property
    def _marked(self) -> tuple[Any, dict[Any, sp.Dummy]]:
        """``expr`` with each ``CRootOf`` replaced by a stand-in (``at`` is much faster so)."""
        return _mark_roots(self.expr)

    def subs(self, values: Mapping[Any, Any], *, budget: float = SOLVE_BUDGET) -> Solution:
        r"""The solution at particular parameter values, solved again with the values in place.

        A closed form holds for generic parameter values: it may divide by ``a - 1`` or by the
        discriminant of the characteristic polynomial, and then is ``nan`` where those vanish.
        ``subs`` puts the values into the recurrence (:meth:`Recurrence.with_params`) and
        solves that, so repeated roots and resonances get their own form.  Keys are parameters,
        or parameter matrices with a matrix of values.

        Examples
        --------
        >>> import sympy as sp
        >>> import symrnn as sr
        >>> h, a = sp.Function("h"), sp.Symbol("a")
        >>> sol = solve(sr.Recurrence(sp.Eq(h(sr.t), a*h(sr.t - 1) + 2)))
        >>> print(sol)
        h(t) = a**t*(h(0) + 2/(a - 1)) - 2/(a - 1)
        >>> print(sol.subs({a: 1}))
        h(t) = 2*t + h(0)
        """
        rec = self.recurrence
        for key in values:
            entries = list(explicit(key)) if is_matrix(key) else [key]
            stray = [e for e in entries if e not in rec.params]
            if stray:
                known = ", ".join(map(str, rec.params)) or "none"
                raise SymrnnError(
                    f"Solution.subs: {stray[0]} is not a parameter of {_label(rec)} (parameters: "
                    f"{known}); for initial states or inputs substitute into sol.at(k) or "
                    "sol.expr"
                )
        return solve(rec.with_params(dict(values)), of=list(self.of), budget=budget)

    def _roots(self, latex: bool) -> tuple[dict[Any, sp.Symbol], list[str]]:
        """Names ``r1, r2, …`` for the ``CRootOf`` in ``expr``, and the sentences saying whose
        roots they are."""
        found = self.expr.atoms(sp.CRootOf)
        polys = sorted({r.poly for r in found}, key=lambda p: (p.degree(), str(p.as_expr())))
        taken = {str(s) for s in self.recurrence.params}
        stem = next(s for s in ("r", "rho", "root") if not any(n.startswith(s) for n in taken))
        lam = sp.Symbol("lambda") if latex else sp.Symbol("λ")
        names: dict[Any, sp.Symbol] = {}
        clauses = []
        for poly in polys:
            own = sorted((r for r in found if r.poly == poly), key=lambda r: r.index)
            for r in own:
                names[r] = sp.Symbol(
                    f"{stem}_{len(names) + 1}" if latex else f"{stem}{len(names) + 1}"
                )
            listed = ", ".join(sp.latex(names[r]) if latex else str(names[r]) for r in own)
            poly_text = sp.latex(poly.as_expr(lam)) if latex else str(poly.as_expr(lam))
            clauses.append((listed, poly_text))
        if latex:
            lines = [
                f"&\\text{{where }} {listed} \\text{{ are the roots of }} {text}"
                for listed, text in clauses
            ]
        else:
            lines = [f"where {listed} are the roots of {text}" for listed, text in clauses]
        return names, lines

    def __str__(self) -> str:
        printer = _SolutionStrPrinter()
        names, where = self._roots(latex=False)
        lines = [f"{eq.lhs} = {printer.doprint(eq.rhs.xreplace(names))}" for eq in self.equations]
        return "\n".join(lines + where)

    def __repr__(self) -> str:
        names = ", ".join(f.__name__ for f in self.of)
        name = f" {self.recurrence.name!r}" if self.recurrence.name else ""
        return f"<Solution{name} of {names}: method={self.method!r}, check ok={self.check.ok}>"

    def _latex_lines(self) -> list[str]:
        printer = _SolutionLatexPrinter()
        names, where = self._roots(latex=True)
        lines = [
            f"{printer.doprint(eq.lhs)} &= {printer.doprint(eq.rhs.xreplace(names))}"
            for eq in self.equations
        ]
        return lines + where

    def _repr_latex_(self) -> str:
        return "$\\begin{aligned}" + " \\\\ ".join(self._latex_lines()) + "\\end{aligned}$"


class _TimeOrder:
    """Print sums of time indices as ``t - k + 1`` rather than SymPy's ``1 - k + t``."""

    def _as_ordered_terms(self, expr: Any, order: Any = None) -> list[Any]:
        symbols = expr.free_symbols
        if symbols and all(s.is_integer for s in symbols):

            def rank(term: Any) -> tuple[int, Any]:
                group = 0 if term.has(t) else 1 if term.free_symbols else 2
                return group, sp.default_sort_key(term)

            return sorted(expr.args, key=rank)
        return super()._as_ordered_terms(expr, order=order)  # type: ignore[misc, no-any-return]


class _SolutionStrPrinter(_TimeOrder, StrPrinter):  # type: ignore[misc]
    """SymPy's ``str`` with time indices in reading order."""


class _SolutionLatexPrinter(_TimeOrder, NotationLatexPrinter):  # type: ignore[misc]
    """Also prints quantities at the summation index as the book does: ``x^{(k)}``."""

    def _print_Function(self, expr: Any, exp: Any = None) -> str:  # noqa: N802 (SymPy hook)
        if isinstance(expr, AppliedUndef) and len(expr.args) == 1:
            (arg,) = expr.args
            if arg.free_symbols and not arg.atoms(AppliedUndef) and arg.is_integer:
                body = self._print(sp.Symbol(expr.func.__name__))
                tex = f"{body}^{{({latex_time(arg)})}}"
                return f"\\left({tex}\\right)^{{{exp}}}" if exp is not None else tex
        return super()._print_Function(expr, exp)  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- helpers
def _map(obj: Any, func: Callable[[Any], Any]) -> Any:
    return obj.applyfunc(func) if isinstance(obj, sp.MatrixBase) else func(obj)


def _mark_roots(expr: Any) -> tuple[Any, dict[Any, sp.Dummy]]:
    """``expr`` with a stand-in for each ``CRootOf``, and the stand-ins.

    Traversing, hashing and expanding ``CRootOf`` rebuilds its polynomial every time.
    """
    marks = {r: sp.Dummy(f"r{r.index}") for r in expr.atoms(sp.CRootOf)}
    return (expr.xreplace(marks) if marks else expr), marks


def _exact(expr: Any, marks: dict[Any, sp.Dummy] | None = None) -> Any:
    """Expanded, with numeric radicals cleared from denominators (so integers show as such) and
    sums over the roots of a polynomial (``CRootOf``) reduced to rationals.

    With ``marks``, ``expr`` holds those stand-ins (:func:`_mark_roots`) instead of the roots.
    """
    if marks is None:
        expr, marks = _mark_roots(expr)
    if marks:
        expr = _root_sums(expr, marks)
    expr = sp.expand(expr).xreplace({m: r for r, m in marks.items()})
    if any(p.exp.is_negative and p.base.is_Add and p.base.is_number for p in expr.atoms(sp.Pow)):
        expr = sp.expand(sp.radsimp(expr))
    return expr


def _root_sums(body: Any, marks: dict[Any, sp.Dummy]) -> Any:
    r"""Replace :math:`\sum_{q(r)=0} c_e r^{e}` by :math:`\sum_e c_e s_e` (:math:`s_e` the power
    sums of the roots of q, by Newton's identities) wherever every root of q appears with the
    same coefficients; ``body`` holds the stand-ins ``marks`` of the roots, and keeps those of
    the other roots."""
    roots = sorted(marks, key=lambda r: r.index)
    stand_ins = list(marks.values())
    which = {m: i for i, m in enumerate(stand_ins)}
    parts = _powers_of_marks(body, which)
    if parts is None:  # not a sum of products of one root each: leave the roots as they are
        return body
    rest = parts.pop((None, 0), [])
    for poly in {r.poly for r in roots}:
        own = [which[marks[r]] for r in roots if r.poly == poly]
        per_root = [
            {e: sp.expand(sp.Add(*c)) for (i, e), c in parts.items() if i == j} for j in own
        ]
        if len(own) != poly.degree() or any(p != per_root[0] for p in per_root[1:]):
            rest += [c * stand_ins[i] ** e for (i, e), cs in parts.items() if i in own for c in cs]
            continue
        sums = _power_sums(poly, list(per_root[0]))
        rest += [c * sums[e] for e, c in per_root[0].items()]
    return sp.Add(*rest)


def _powers_of_marks(expr: Any, which: dict[Any, int]) -> dict[tuple[Any, int], list[Any]] | None:
    """``expr`` as ``{(mark, e): [coefficients]}`` (mark None for terms free of marks), by
    distributing sums of products; None when some term holds two different marks."""
    if expr in which:
        return {(which[expr], 1): [sp.S.One]}
    if not expr.has(*which):
        return {(None, 0): [expr]}
    if expr.is_Add:
        out: dict[tuple[Any, int], list[Any]] = {}
        for arg in expr.args:
            part = _powers_of_marks(arg, which)
            if part is None:
                return None
            for key, coeffs in part.items():
                out.setdefault(key, []).extend(coeffs)
        return out
    if expr.is_Pow and expr.base in which and expr.exp.is_Integer:
        return {(which[expr.base], int(expr.exp)): [sp.S.One]}
    factors = list(expr.args) if expr.is_Mul else None
    if expr.is_Pow and expr.exp.is_Integer and 0 < expr.exp <= 8:
        factors = [expr.base] * int(expr.exp)
    if factors is None:
        return None
    product: dict[tuple[Any, int], list[Any]] | None = {(None, 0): [sp.S.One]}
    for factor in factors:
        part = _powers_of_marks(factor, which)
        if part is None or product is None:
            return None
        product = _times(product, part)
    return product


def _times(
    left: dict[tuple[Any, int], list[Any]], right: dict[tuple[Any, int], list[Any]]
) -> dict[tuple[Any, int], list[Any]] | None:
    out: dict[tuple[Any, int], list[Any]] = {}
    for (i, e), a in left.items():
        for (j, f), b in right.items():
            if i is not None and j is not None and i != j:
                return None
            key = (j, f) if i is None else (i, e) if j is None else (i, e + f)
            out.setdefault(key, []).append(sp.Add(*a) * sp.Add(*b))
    return out


def _power_sums(poly: Any, exponents: list[int]) -> dict[int, Any]:
    r""":math:`s_e = \sum_{q(r)=0} r^e` for the given exponents (negative ones too)."""
    c = [sp.Rational(v) for v in poly.all_coeffs()]
    c = [v / c[0] for v in c]  # monic: r^d + c_1 r^{d-1} + ... + c_d
    d = len(c) - 1
    sums = {0: sp.Integer(d)}
    for n in range(1, max([d - 1, *exponents]) + 1):  # Newton's identities
        known = sp.Add(*[c[i] * sums[n - i] for i in range(1, min(n - 1, d) + 1)])
        sums[n] = -known - (n * c[n] if n <= d else 0)
    for n in range(-1, min([0, *exponents]) - 1, -1):  # the same identities backwards, c_d != 0
        sums[n] = -(sums[n + d] + sp.Add(*[c[i] * sums[n + d - i] for i in range(1, d)])) / c[d]
    return sums


def _doit(expr: Any) -> Any:
    """Write out sums and products with integer limits as explicit additions and products.

    Faster than ``Sum.doit``, which first attempts symbolic summation; follows SymPy's (Karr's)
    convention for an upper limit below the lower one.
    """

    def unroll(node: Any) -> Any:
        (index, lower, upper) = node.limits[0]
        body = node.function
        combine, empty = (sp.Add, sp.S.Zero) if isinstance(node, sp.Sum) else (sp.Mul, sp.S.One)

        def terms(first: int, last: int) -> Any:
            return combine(
                empty, *[body.xreplace({index: sp.Integer(i)}) for i in range(first, last)]
            )

        if upper >= lower - 1:
            return terms(lower, upper + 1)
        return -terms(upper + 1, lower) if isinstance(node, sp.Sum) else 1 / terms(upper + 1, lower)

    def concrete(node: Any) -> bool:
        return isinstance(node, (sp.Sum, sp.Product)) and all(
            bound.is_Integer for bound in node.limits[0][1:]
        )

    # a product inside a sum gets integer limits only once the sum is written out
    while expr.has(sp.Sum, sp.Product) and any(concrete(n) for n in sp.preorder_traversal(expr)):
        expr = expr.replace(concrete, unroll)
    return expr


def _label(rec: Recurrence) -> str:
    if rec.name:
        return f"Recurrence {rec.name!r}"
    text = "; ".join(f"{e.lhs} = {e.rhs}" for e in rec.display)
    return f"Recurrence '{text if len(text) <= 60 else text[:57] + '...'}'"


def _lags(rec: Recurrence) -> dict[Any, int]:
    return {s: max(1, rec.lag(s)) for s in rec.states}


def _index_symbols(rec: Recurrence) -> tuple[sp.Symbol, sp.Symbol]:
    """Two summation indices whose names the recurrence does not use (``k`` and ``j``)."""
    taken = {str(s) for s in rec.params} | {f.__name__ for f in (*rec.defined, *rec.inputs)}
    free = [n for n in _INDEX_NAMES if n not in taken]
    return sp.Symbol(free[0], integer=True), sp.Symbol(free[1], integer=True)


def _rationalize(expr: Any) -> Any:
    """Floats to nearby rationals, so that Jordan forms and ``rsolve`` work exactly."""
    floats = expr.atoms(sp.Float)
    return expr.xreplace({f: sp.nsimplify(f, rational=True) for f in floats}) if floats else expr


def _is_constant(expr: Any) -> bool:
    return t not in expr.free_symbols and not time_atoms(expr)


def _culprit(expr: Any, atoms: set[Any]) -> str:
    """Name the operation through which ``expr`` depends nonlinearly on ``atoms``."""

    def involved(node: Any) -> bool:
        return any(node.has(a) for a in atoms)

    nodes = [n for n in sp.preorder_traversal(expr) if n not in atoms and involved(n)]
    for node in nodes:
        if isinstance(node, AppliedUndef):
            return f"the abstract function {node.func.__name__}"
        if node.is_Function or isinstance(node, (sp.Min, sp.Max, sp.Piecewise)):
            return getattr(node.func, "__name__", str(node.func))
    for node in nodes:
        if node.is_Pow:
            return f"the power {_short(node)}"
        if node.is_Mul and sum(involved(a) for a in node.args) > 1:
            return f"the product {_short(node)}"
    return f"the expression {_short(expr)}"


def _short(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 40 else text[:37] + "..."


def _resolve(rec: Recurrence, of: Any) -> list[Any]:
    """Defined quantities named by ``of``: a function, name, vector, or a sequence of them."""
    if isinstance(of, (list, tuple)):
        return [f for item in of for f in _resolve(rec, item)]
    if isinstance(of, (TimeVector, VectorAt)):
        of = of.name
    if isinstance(of, str):
        if of in rec.vectors:
            return list(rec.vectors[of])
        matches = [f for f in rec.defined if f.__name__ == of]
    else:
        matches = [f for f in rec.defined if f == of]
    if not matches:
        known = ", ".join(f.__name__ for f in rec.defined)
        raise SymrnnError(f"{of} is not defined by {_label(rec)}; choose one of {known}")
    return matches


# ----------------------------------------------------------------------- linear analysis
def _inline(rec: Recurrence, states_too: bool = True) -> dict[Any, sp.Expr]:
    """Right sides with same-time defined quantities substituted (evaluation order).

    With ``states_too=False`` states at time t are kept (for outputs written as ``C h(t)``).
    """
    done: dict[Any, sp.Expr] = {}
    for eq in rec.equations:
        func = eq.lhs.func
        mapping = {g(t): rhs for g, rhs in done.items() if states_too or g not in rec.states}
        done[func] = eq.rhs.xreplace(mapping)
    return done


@dataclass(frozen=True)
class _System:
    r"""A linear recurrence in stacked first-order form :math:`z^{(t)} = A z^{(t-1)} + d^{(t)}`.

    ``slots[i] = (s, l)`` means :math:`z_i^{(t)} = s^{(t-l)}`; ``A`` may depend on t or inputs
    (``varying`` then names the first such coefficient).
    """

    slots: tuple[tuple[Any, int], ...]
    A: sp.ImmutableMatrix
    drive: sp.ImmutableMatrix
    rhs: dict[Any, sp.Expr]
    varying: str | None

    @property
    def initial(self) -> sp.ImmutableMatrix:
        return sp.ImmutableMatrix([s(-lag) for s, lag in self.slots])


def _affine(rhs: sp.Expr, atoms: list[Any]) -> tuple[dict[Any, Any], sp.Expr] | None:
    """Coefficients and remainder of ``rhs`` affine in ``atoms``, or None when it is not."""
    present = [a for a in atoms if rhs.has(a)]
    coeffs = {a: sp.diff(rhs, a) for a in present}
    if any(c.has(a) for c in coeffs.values() for a in atoms):
        return None
    rest = rhs.xreplace(dict.fromkeys(present, sp.S.Zero))
    if rest.has(sp.nan, sp.zoo):
        return None
    gap = rhs - sp.Add(*[c * a for a, c in coeffs.items()]) - rest
    if gap != 0 and sp.expand(gap) != 0:
        return None
    return coeffs, rest


def _system(rec: Recurrence, head: str, remedy: str = "use sr.unfold for fixed t") -> _System:
    """The stacked linear form of ``rec``, or NoClosedForm naming the nonlinearity."""
    rhs = _inline(rec)
    lags = _lags(rec)
    lagged = [s(t - lag) for s in rec.states for lag in range(1, lags[s] + 1)]
    forms = {}
    for s in rec.states:
        form = _affine(rhs[s], lagged)
        if form is None:
            present = {a for a in lagged if rhs[s].has(a)}
            atom = min(present, key=sp.default_sort_key)
            raise NoClosedForm(
                f"{head}: {s.__name__}(t) depends nonlinearly on {atom} (through "
                f"{_culprit(rhs[s], present)}); {remedy}"
            )
        forms[s] = form
    slots = tuple((s, lag) for s in rec.states for lag in range(lags[s]))
    if len(slots) > MAX_SOLVE_SIZE:
        raise LimitError(
            f"{head}: the stacked state has {len(slots)} components (limit {MAX_SOLVE_SIZE}); "
            "use sr.unfold for fixed t"
        )
    where = {slot: i for i, slot in enumerate(slots)}
    A = sp.zeros(len(slots), len(slots))
    drive = sp.zeros(len(slots), 1)
    varying: str | None = None
    for s, (coeffs, rest) in forms.items():
        row = where[(s, 0)]
        for atom, c in coeffs.items():
            A[row, where[(atom.func, -int(shift_of(atom)) - 1)]] = c  # type: ignore[arg-type]
            if varying is None and not _is_constant(c):
                on = sorted((str(a) for a in time_atoms(c)), key=str) or ["t"]
                varying = f"the coefficient of {atom} in {s.__name__}(t) depends on {on[0]}"
        drive[row] = rest
    for (s, lag), i in where.items():
        if lag > 0:
            A[i, where[(s, lag - 1)]] = 1
    return _System(slots, sp.ImmutableMatrix(A), sp.ImmutableMatrix(drive), rhs, varying)


# --------------------------------------------------------------------------- the budget
class _Interrupted(BaseException):
    """Raised by the alarm inside a SymPy call; a BaseException so SymPy cannot swallow it."""


@contextmanager
def _alarm(seconds: float) -> Iterator[bool]:
    """Interrupt the block after ``seconds`` with SIGALRM; yields whether that is possible.

    Only on the main thread (the only one that receives signals), only where ``setitimer``
    exists, and only when nobody else uses SIGALRM (no handler installed, no timer running);
    everywhere else it yields False and the caller must not start a call it cannot bound.
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield False
        return

    def ring(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_SKIPPED = object()  # what _Budget.call returns when a call was not made or was interrupted


class _Budget:
    """The wall-clock budget of one :func:`solve` call.

    Checked between steps (:meth:`check`); the few SymPy calls whose time cannot be bounded in
    advance (``rsolve``, ``simplify``, ``Product.doit``, roots of cubics and quartics) run under
    :func:`_alarm` through :meth:`call`, and are skipped where no alarm can be set.
    """

    def __init__(self, seconds: float, head: str):
        self.seconds = seconds
        self.head = head
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def exceeded(self, step: str) -> NoClosedForm:
        return NoClosedForm(
            f"{self.head}: {step} did not finish within the time budget of {self.seconds:g} s; "
            "pass a larger budget= to solve, or use sr.unfold for fixed t"
        )

    def check(self, step: str) -> None:
        if self.left() <= 0:
            raise self.exceeded(step)

    def run(self, func: Callable[[], Any], step: str) -> Any:
        """``func()`` for a call known to be bounded; under the alarm where there is one."""
        self.check(step)
        try:
            with _alarm(self.left()):
                return func()
        except _Interrupted:
            raise self.exceeded(step) from None

    def call(self, func: Callable[[], Any], share: float = 1.0) -> Any:
        """``func()``, or ``_SKIPPED`` when the budget ran out or no alarm can bound it.

        ``share`` is the fraction of the time left that ``func`` may take (what a fallback
        after it needs is kept back).
        """
        if self.left() <= 0:
            return _SKIPPED
        try:
            with _alarm(share * self.left()) as bounded:
                return func() if bounded else _SKIPPED
        except _Interrupted:
            return _SKIPPED


# ----------------------------------------------------- sequences from characteristic roots
_LAM = sp.Dummy("lambda")
#: Roots of factors of degree 3 or 4 are written in radicals when each has at most this many
#: operations (x**3 - 2, x**4 - 10*x**2 + 1); Cardano's formulas are larger and expand slowly.
_RADICAL_MAX_OPS = 14
#: Largest characteristic polynomial (with the annihilator of a known drive) handled.
_MAX_DEGREE = 2 * MAX_SOLVE_SIZE


@dataclass(frozen=True)
class _Factor:
    """An irreducible monic factor q of the characteristic polynomial, and its roots."""

    poly: sp.Poly
    multiplicity: int
    roots: tuple[Any, ...]


@dataclass(frozen=True)
class _Characteristic:
    r"""A characteristic polynomial :math:`p(\lambda) = \lambda^{z}\,\prod_i q_i(\lambda)^{m_i}`."""

    poly: sp.Poly  # monic, over a field, in _LAM
    zero: int  # z, the multiplicity of the root 0
    factors: tuple[_Factor, ...]

    @property
    def rest(self) -> sp.Poly:
        r""":math:`p(\lambda) / \lambda^{z}`."""
        return sp.Poly(self.poly.as_expr() / _LAM**self.zero, _LAM, domain=self.poly.domain)


def _as_poly(expr: Any) -> sp.Poly:
    poly = sp.Poly(expr, _LAM)
    if poly.domain.is_EX:  # algebraic coefficients such as sqrt(2)
        poly = sp.Poly(expr, _LAM, extension=True)
    return poly.to_field().monic()


def _characteristic(poly: sp.Poly, budget: _Budget) -> _Characteristic:
    """Factor ``poly`` and find the roots of each factor: radicals or ``CRootOf``."""
    _, found = budget.run(poly.factor_list, "factoring the characteristic polynomial")
    zero, factors = 0, []
    for q, m in found:
        q = q.to_field().monic()
        if q.degree() == 1 and q.nth(0) == 0:
            zero = m
            continue
        budget.check("finding the characteristic roots")
        factors.append(_Factor(q, m, _factor_roots(q, budget)))
    factors.sort(key=lambda f: (f.poly.degree(), sp.default_sort_key(f.poly.as_expr())))
    return _Characteristic(poly, zero, tuple(factors))


def _factor_roots(q: sp.Poly, budget: _Budget) -> tuple[Any, ...]:
    """The roots of an irreducible factor: in radicals when small, else as ``CRootOf``."""
    degree = q.degree()
    coeffs = q.all_coeffs()
    if degree == 1:
        return (-q.domain.to_sympy(coeffs[1]),)
    expr = q.as_expr()
    if degree == 2:
        return tuple(sp.roots(expr, _LAM, multiple=True))
    binomial = all(c == 0 for c in coeffs[1:-1])
    if degree <= 4 or binomial:
        found = budget.call(lambda: sp.roots(expr, _LAM, multiple=True))
        if (
            found is not _SKIPPED
            and len(found) == degree
            and max(sp.count_ops(r) for r in found) <= _RADICAL_MAX_OPS
        ):
            return tuple(found)
    if q.domain.is_QQ or q.domain.is_ZZ:
        rational = sp.Poly(expr, _LAM, domain=sp.QQ)
        return tuple(sp.CRootOf(rational, i) for i in range(degree))
    lam = sp.Symbol("λ")
    raise NoClosedForm(
        f"{budget.head}: the characteristic polynomial has the factor {expr.xreplace({_LAM: lam})}"
        f" of degree {degree} with symbolic coefficients, whose roots in radicals are unknown or "
        "too large; substitute numbers for the parameters (Recurrence.with_params), or use "
        "sr.unfold for fixed t"
    )


def _series_inverse(c: list[sp.Poly], q: sp.Poly) -> list[sp.Poly]:
    r"""Coefficients of :math:`1 / \sum_j c_j \varepsilon^j` to the same order, modulo q."""
    first = c[0].invert(q)
    out = [first]
    for j in range(1, len(c)):
        acc = sp.Poly(0, _LAM, domain=q.domain)
        for i in range(1, j + 1):
            acc += c[i] * out[j - i]
        out.append((-first * acc).rem(q))
    return out


def _taylor(poly: sp.Poly, count: int, q: sp.Poly) -> list[sp.Poly]:
    r""":math:`f^{(j)}(r) / j!` modulo q for j < count (r a root of q)."""
    out, derivative = [], poly
    for j in range(count):
        out.append((derivative * sp.Rational(1, math.factorial(j))).rem(q))
        derivative = derivative.diff(_LAM)
    return out


def _residues(rest: sp.Poly, factor: _Factor, start: int) -> list[list[sp.Poly]]:
    r"""``U[n][i]`` with :math:`s(\mathrm{arg}) = \sum_r r^{\mathrm{arg}} \sum_i
    \binom{\mathrm{arg} - \mathrm{start}}{i} U_{n,i}(r)` for the sequence that is 1 at
    ``start + n``, 0 at the other window times (n, window times < deg rest).

    With :math:`\tilde N_n(\lambda) = \sum_{i} a_{i+n+1}\lambda^{i}` (a the coefficients of
    ``rest``, lowest first), :math:`s(\mathrm{start} + n') = \sum_r
    \operatorname{Res}_{\lambda = r} \lambda^{n'} \tilde N_n(\lambda) / p(\lambda)`; at a root
    of multiplicity m the residue is :math:`r^{n'} \sum_{i<m} \binom{n'}{i} r^{-i}
    [\varepsilon^{m-1-i}] (\tilde N_n / s_r)(r + \varepsilon)` with
    :math:`s_r(\lambda) = p(\lambda) / (\lambda - r)^m`.  All arithmetic is exact, in the
    field :math:`K[\lambda] / q(\lambda)`.
    """
    q, m = factor.poly, factor.multiplicity
    size = rest.degree()
    a = rest.all_coeffs()[::-1]  # a_0 … a_size
    local = _taylor(rest, 2 * m, q)[m:]  # s_r(r + ε) = p(r + ε) / ε^m
    inverse = _series_inverse(local, q)
    r_inv = sp.Poly(_LAM, _LAM, domain=q.domain).invert(q)
    shift = (
        sp.Poly(_LAM ** (-start), _LAM, domain=q.domain).rem(q)
        if start <= 0
        else sp.Poly(_LAM**start, _LAM, domain=q.domain).rem(q).invert(q)
    )  # r**(-start)
    out = []
    for n in range(size):
        numerator = sp.Poly(
            sum(
                (q.domain.to_sympy(a[i + n + 1]) * _LAM**i for i in range(size - n)),
                sp.S.Zero,
            ),
            _LAM,
            domain=q.domain,
        )
        e = _taylor(numerator, m, q)
        row = []
        for i in range(m):
            acc = sp.Poly(0, _LAM, domain=q.domain)
            for j in range(m - i):
                acc += e[j] * inverse[m - 1 - i - j]
            row.append(((shift * r_inv**i).rem(q) * acc).rem(q))
        out.append(row)
    return out


def _sequence(char: _Characteristic, start: int, window: list[Any], arg: Any) -> Any:
    r"""The sequence s with :math:`s(\mathrm{start} + n)` = ``window[n]`` (n < deg p) that
    satisfies the recurrence with characteristic polynomial p, as an expression in ``arg``
    (valid for integer ``arg >= start``).

    A root 0 of multiplicity z makes the sequence follow the rest of p only from
    ``start + z`` on; the first z values are put right with ``KroneckerDelta`` terms.
    """
    z = char.zero
    tail = [sp.expand(w) for w in window[z:]]
    rest = char.rest
    out = sp.S.Zero
    if any(w != 0 for w in tail):
        n = sp.Dummy("n", integer=True)
        for factor in char.factors:
            U = _residues(rest, factor, start + z)
            weights = [
                sp.expand_func(sp.binomial(n - start - z, i)) for i in range(factor.multiplicity)
            ]
            if isinstance(factor.roots[0], sp.CRootOf):
                out += _crootof_terms(factor, U, weights, tail, n, arg)
                continue
            # the polynomial in n = arg that multiplies r**arg, as sum_j n**j P_j(r)
            poly = sp.S.Zero
            for i, weight in enumerate(weights):
                coeff = sp.Add(*[w * U[k][i].as_expr() for k, w in enumerate(tail)])
                poly += sp.expand(weight * coeff)
            parts = sp.collect(poly, n, evaluate=False) if poly != 0 else {}
            for root in factor.roots:
                value = sp.Add(
                    *[p.xreplace({n: arg}) * _at_root(c, root) for p, c in parts.items()]
                )
                out += root**arg * value
    if z:
        # the continuation of the tail backwards, by the recurrence of rest (rest(0) != 0)
        a = [rest.domain.to_sympy(c) for c in rest.all_coeffs()[::-1]]
        values = list(tail)
        for _ in range(z):
            if len(a) == 1:
                values.insert(0, sp.S.Zero)
                continue
            earlier = -sp.Add(*[a[i] * values[i - 1] for i in range(1, len(a))]) / a[0]
            values.insert(0, sp.expand(earlier))
        for j in range(z):
            gap = sp.expand(window[j] - values[j])
            if gap != 0:
                out += gap * sp.KroneckerDelta(arg, start + j)
    return out


def _at_root(coeff: Any, root: Any) -> Any:
    """A polynomial in ``_LAM`` (coefficients holding the window values) at a radical root."""
    return _tidy_coefficients(sp.expand(coeff.xreplace({_LAM: root})))


def _crootof_terms(
    factor: _Factor, U: list[list[sp.Poly]], weights: list[Any], tail: list[Any], n: Any, arg: Any
) -> Any:
    r""":math:`\sum_r r^{\mathrm{arg}} \sum_i w_i(\mathrm{arg}) \sum_a a\, P_{i,a}(r)` for
    the ``CRootOf`` roots r of one factor, a running over the initial states and inputs of the
    window, :math:`P_{i,a}` a polynomial of degree below that of the factor."""
    atoms = sorted(set().union(*(time_atoms(w) for w in tail)), key=sp.default_sort_key)
    groups: dict[Any, list[Any]] = {}
    for k, w in enumerate(tail):
        parts = sp.collect(w, atoms, evaluate=False) if atoms else {sp.S.One: w}
        for key, c in parts.items():
            groups.setdefault(key, [sp.S.Zero] * len(tail))[k] += c
    polys = [
        (
            weight.xreplace({n: arg}) * key,
            sp.Poly(sp.Add(*[c * U[k][i].as_expr() for k, c in enumerate(cs)]), _LAM).as_expr(),
        )
        for i, weight in enumerate(weights)
        for key, cs in groups.items()
    ]
    return sp.Add(
        *[
            root**arg * sp.Add(*[scale * poly.xreplace({_LAM: root}) for scale, poly in polys])
            for root in factor.roots
        ]
    )


def _tidy_coefficients(expr: Any) -> Any:
    """Grouped by initial states and inputs, each coefficient tidied by :func:`_tidy_scalar`."""
    atoms = sorted(time_atoms(expr), key=sp.default_sort_key)
    if not (expr.free_symbols - {t}):
        return expr
    parts = sp.collect(expr, atoms, evaluate=False) if atoms else {sp.S.One: expr}
    if not parts.keys() <= {*atoms, sp.S.One}:
        return expr
    return sp.Add(*[_tidy_scalar(c) * key for key, c in parts.items()])


def _tidy_scalar(expr: Any) -> Any:
    """Each rational-function coefficient of the radicals in ``expr`` in its shortest form:
    ``c1**2/(2*c1**2 + 8*c2) + 2*c2/(c1**2 + 4*c2)`` is ``1/2``."""
    if not expr.free_symbols or sp.count_ops(expr) > 200:
        return expr
    # X**(p/q) -> R**p with R standing for X**(1/q), so collecting sees one radical per base
    stand_in: dict[Any, sp.Dummy] = {}
    mapping = {}
    for p in expr.atoms(sp.Pow):
        if p.exp.is_Rational and not p.exp.is_Integer:
            root = p.base ** sp.Rational(1, p.exp.q)
            stand_in.setdefault(root, sp.Dummy("R"))
            mapping[p] = stand_in[root] ** p.exp.p
    if any(not p.exp.is_Rational for p in expr.atoms(sp.Pow)):
        return expr
    body = sp.expand(expr.xreplace(mapping))
    parts = sp.collect(body, list(stand_in.values()), evaluate=False) if stand_in else {1: body}
    out = []
    for key, c in parts.items():
        if c.is_rational_function() and not c.has(*stand_in.values()):
            c = min([c, sp.factor(sp.cancel(c))], key=sp.count_ops)
        out.append(c * key)
    tidied = sp.Add(*out).xreplace({d: root for root, d in stand_in.items()})
    return tidied if sp.count_ops(tidied) <= sp.count_ops(expr) else expr


# ---------------------------------------------------------------- known drives: annihilators
def _exp_poly(drive: Any) -> dict[Any, Any] | None:
    r"""``{b: P(t)}`` with :math:`d^{(t)} = \sum_b P_b(t)\, b^{t}` (P polynomial), or None."""
    parts: dict[Any, Any] = {}
    if drive == 0:
        return parts
    for term in sp.Add.make_args(sp.expand(drive, power_exp=True, mul=True)):
        coeff, rest = term.as_independent(t, as_Add=False)
        base, poly = sp.S.One, sp.S.One
        for f in sp.Mul.make_args(rest) if rest != 1 else ():
            if f == t or (f.is_Pow and f.base == t and f.exp.is_Integer and f.exp > 0):
                poly *= f
                continue
            if isinstance(f, sp.exp):
                f = sp.Pow(sp.E, f.args[0], evaluate=False)
            if not f.is_Pow or t in f.base.free_symbols:
                return None
            exponent = sp.expand(f.exp)
            slope = exponent.coeff(t)
            if slope == 0 or t in (exponent - slope * t).free_symbols or t in slope.free_symbols:
                return None
            base *= f.base**slope
            coeff *= f.base ** (exponent - slope * t)
        if base == 0 or base.has(sp.zoo, sp.nan):
            return None
        parts[base] = parts.get(base, sp.S.Zero) + coeff * poly
    return {b: p for b, p in parts.items() if sp.expand(p) != 0}


def _annihilated(rec: Recurrence, system: _System) -> sp.Poly | None:
    r"""For one state with a drive :math:`\sum_b P_b(t) b^t`: the characteristic polynomial
    times :math:`\prod_b (\lambda - b)^{\deg P_b + 1}`, which the solution satisfies."""
    parts = _exp_poly(system.drive[0])
    if parts is None:
        return None
    A = _rationalize(system.A)
    p = sp.Matrix(A).charpoly(_LAM).as_expr(_LAM)
    for b, P in parts.items():
        p *= (_LAM - b) ** (sp.degree(P, t) + 1)
    poly = _as_poly(sp.expand(p))
    return poly if poly.degree() <= _MAX_DEGREE else None


# ---------------------------------------------------------------------------- methods
def _by_characteristic(
    rec: Recurrence, system: _System, index: sp.Symbol, budget: _Budget
) -> dict[Any, Any]:
    r"""Constant coefficients: :math:`z^{(t)} = A^{t} z^{(0)} + \sum_{k=1}^{t} A^{t-k} d^{(k)}`.

    Every entry of :math:`A^{n}` satisfies the scalar recurrence whose characteristic polynomial
    is that of A (Cayley–Hamilton), so each state and each impulse response is a sequence
    given by its first deg p values (computed by iteration) and written from the roots.  A
    state s with lag L is read from its deepest slot, :math:`s^{(t)} = z_{(s, L-1)}^{(t+L-1)}`,
    which makes the form valid from the first initial time 1 - L on.
    """
    A = sp.Matrix(_rationalize(system.A))
    drive = _rationalize(system.drive)
    budget.check("the characteristic polynomial")
    char = _characteristic(_as_poly(A.charpoly(_LAM).as_expr(_LAM)), budget)
    size = char.poly.degree()
    where = {slot: i for i, slot in enumerate(system.slots)}
    lags = _lags(rec)
    columns = [c for c in range(len(system.slots)) if drive[c] != 0]
    powers = [sp.Matrix(system.initial)] + [sp.eye(len(system.slots))[:, c] for c in columns]
    windows: list[list[sp.Matrix]] = [[v] for v in powers]
    for _ in range(size - 1):
        budget.check("the first values of the sequence")
        for w in windows:
            w.append((A * w[-1]).applyfunc(sp.expand))
    out = {}
    for s in rec.states:
        row = where[(s, lags[s] - 1)]
        start = 1 - lags[s]
        budget.check(f"the closed form of {s.__name__}")
        free = _sequence(char, start, [v[row] for v in windows[0]], t)
        summand = sp.S.Zero
        for c, w in zip(columns, windows[1:], strict=True):
            green = _sequence(char, start, [v[row] for v in w], t - index)
            summand += green * drive[c].subs(t, index)
        out[s] = free + (sp.Sum(summand, (index, 1, t)) if summand != 0 else sp.S.Zero)
    return out


def _by_annihilator(
    rec: Recurrence, system: _System, poly: sp.Poly, budget: _Budget
) -> dict[Any, Any]:
    r"""One state, drive :math:`\sum_b P_b(t) b^t`: the solution is a sequence of the larger
    recurrence given by ``poly`` (see :func:`_annihilated`), from its first values."""
    (s,) = rec.states
    lag = _lags(rec)[s]
    char = _characteristic(poly, budget)
    rhs = _rationalize(system.rhs[s])
    values = {n: s(n) for n in range(1 - lag, 1)}
    for n in range(1, poly.degree() - lag + 1):
        budget.check("the first values of the sequence")
        mapping = {a: values[n + int(shift_of(a))] for a in time_atoms(rhs)}  # type: ignore[arg-type]
        values[n] = sp.expand(rhs.xreplace(mapping).subs(t, n))
    window = [values[n] for n in range(1 - lag, poly.degree() - lag + 1)]
    return {s: _sequence(char, 1 - lag, window, t)}


def _by_rsolve(
    rec: Recurrence, system: _System, budget: _Budget, share: float = 1.0
) -> dict[Any, Any] | None:
    (s,) = rec.states
    order = _lags(rec)[s]
    marks = {s(-j): sp.Dummy(f"{s.__name__}{j}") for j in range(order)}

    def run() -> Any:
        try:
            return sp.rsolve(s(t) - _rationalize(system.rhs[s]), s(t), dict(marks))
        except (ValueError, NotImplementedError, TypeError, ZeroDivisionError):
            return None

    found = budget.call(run, share)
    if found is _SKIPPED or found is None or isinstance(found, (list, dict)):
        return None
    return {s: found.xreplace({v: k for k, v in marks.items()})}


def _by_product(
    rec: Recurrence, system: _System, index: sp.Symbol, inner: sp.Symbol, budget: _Budget
) -> dict[Any, Any]:
    r"""First order, varying coefficient :math:`c^{(t)}` and drive :math:`d^{(t)}`:

    .. math:: h^{(t)} = \prod_{j=1}^{t} c^{(j)} h^{(0)}
              + \sum_{k=1}^{t} \prod_{j=k+1}^{t} c^{(j)} d^{(k)}

    A product SymPy cannot evaluate within the budget stays a ``Product``.
    """
    (s,) = rec.states
    c, d = system.A[0, 0].subs(t, inner), system.drive[0]

    def product(lower: Any) -> Any:
        done = budget.call(lambda: sp.Product(c, (inner, lower, t)).doit())
        if done is _SKIPPED or done.has(sp.Piecewise):
            return sp.Product(c, (inner, lower, t))
        return done

    expr = product(1) * s(0)
    if d != 0:
        expr += sp.Sum(product(index + 1) * d.subs(t, index), (index, 1, t))
    return {s: expr}


# ---------------------------------------------------------------------------- the check
class _Evaluator:
    """Numeric values at one random point: parameters, initial states and inputs drawn lazily."""

    def __init__(self, rng: np.random.Generator, params: Iterable[Any]):
        self.rng = rng
        self.values: dict[Any, Any] = {p: self.draw() for p in params}

    def draw(self) -> sp.Float:
        # Floats with extra digits make the constants of a large form collapse at once.
        return sp.Float(self.rng.uniform(-1.0, 1.0), _CHECK_DIGITS + 10)

    def number(self, expr: Any) -> Any:
        """``expr`` (no symbolic t left) evaluated to 30 digits; time atoms get random values."""
        for atom in sorted(time_atoms(expr), key=sp.default_sort_key):
            if atom not in self.values:
                self.values[atom] = self.draw()
        return sp.N(expr.xreplace(self.values), _CHECK_DIGITS)


def _numeric_roots(roots: set[Any]) -> dict[Any, sp.Expr]:
    """Each ``CRootOf`` as a number with 40 digits.

    ``CRootOf.evalf`` refines its isolating interval by bisection (seconds per root at 30
    digits); mpmath's ``polyroots`` finds them all at once, and the interval says which is which.
    """
    digits = _CHECK_DIGITS + 10
    out: dict[Any, sp.Expr] = {}
    with mpmath.workdps(digits + 10):
        for poly in {r.poly for r in roots}:
            coeffs = [mpmath.mpf(c.p) / c.q for c in poly.all_coeffs()]
            numbers = [mpmath.mpc(z) for z in mpmath.polyroots(coeffs, 200, 4 * digits)]
            for r in (r for r in roots if r.poly == poly):
                out[r] = _pick(r, numbers, digits)
    return out


def _pick(root: Any, numbers: list[Any], digits: int) -> sp.Expr:
    """The number in ``root``'s isolating interval (``evalf`` if that is not one number)."""
    box = root._get_interval()
    real = root.is_real
    edges = [
        mpmath.mpf(e.numerator) / e.denominator
        for e in ((box.a, box.b) if real else (box.ax, box.bx, box.ay, box.by))
    ]
    if real:
        match = [z for z in numbers if edges[0] <= z.real <= edges[1] and abs(z.imag) < 1e-20]
    else:
        match = [
            z for z in numbers if edges[0] <= z.real <= edges[1] and edges[2] <= z.imag <= edges[3]
        ]
    if len(match) != 1:
        return root.evalf(digits)  # type: ignore[no-any-return]
    z = match[0]
    return sp.Float(z.real, digits) + (sp.I * sp.Float(z.imag, digits) if not real else 0)


def _relative(a: Any, b: Any) -> float:
    try:
        gap, scale = complex(sp.N(a - b, _CHECK_DIGITS)), max(1.0, abs(complex(a)), abs(complex(b)))
    except TypeError:  # something symbolic is left: the form is wrong
        return float("nan")
    return abs(gap) / scale


def _check(
    rec: Recurrence, system: _System, sols: dict[Any, Any], budget: _Budget, seed: int = 0
) -> SolutionCheck:
    """Substitute ``sols`` back into the recurrence and compare with the initial states."""
    lags = _lags(rec)
    times = tuple(range(1 - max(lags.values()), _CHECK_LAST + 1))
    rng = np.random.default_rng(seed)
    marks = {r: sp.Dummy() for e in sols.values() for r in e.atoms(sp.CRootOf)}
    marked = {s: e.xreplace(marks) for s, e in sols.items()}  # traversing CRootOf is slow
    roots = {marks[r]: value for r, value in _numeric_roots(set(marks)).items()}
    worst, points, attempts = 0.0, 0, 0
    while points < _CHECK_POINTS and attempts < 4 * _CHECK_POINTS:
        attempts += 1
        ev = _Evaluator(rng, rec.params)
        for s in rec.states:
            ev.number(sp.Add(*[s(-j) for j in range(lags[s])]))  # draw the initial states
        at_point = {s: e.xreplace({**ev.values, **roots}) for s, e in marked.items()}
        memo: dict[tuple[Any, int], Any] = {}

        def value(
            s: Any, n: int, ev: _Evaluator = ev, memo: dict = memo, at: dict = at_point
        ) -> Any:
            if (s, n) not in memo:
                memo[(s, n)] = ev.number(_doit(at[s].xreplace({t: sp.Integer(n)})))
            return memo[(s, n)]

        errors = []
        for s in rec.states:
            for n in range(1 - lags[s], 1):
                errors.append(_relative(value(s, n), ev.number(s(n))))
            for n in range(1, _CHECK_LAST + 1):
                budget.check("checking the closed form")
                mapping = {}
                for atom in time_atoms(system.rhs[s]):
                    lag = -int(shift_of(atom))  # type: ignore[arg-type]
                    known = atom.func in sols
                    mapping[atom] = value(atom.func, n - lag) if known else atom.func(n - lag)
                step = system.rhs[s].xreplace(mapping).subs(t, n)
                errors.append(_relative(value(s, n), ev.number(step)))
        if all(np.isfinite(e) for e in errors):
            worst = max([worst, *errors])
            points += 1
    return SolutionCheck(
        _symbolic_check(rec, system, sols, budget),
        worst if points else float("inf"),
        _TOLERANCE,
        times,
        points,
    )


def _split_powers(expr: Any) -> Any:
    """``r**(t - 2)`` -> ``r**t * r**(-2)`` so that powers of the same root can be collected."""

    def split(p: Any) -> Any:
        shift = sp.expand(p.exp).as_independent(t, as_Add=True)[0]
        if shift == 0 or not shift.is_Integer:
            return p
        return sp.Pow(p.base, p.exp - shift) * sp.Pow(p.base, shift)

    return expr.replace(lambda e: e.is_Pow and t in e.exp.free_symbols, split)


def _is_zero(residual: Any) -> bool:
    e = sp.expand(_split_powers(residual))
    if e == 0:
        return True
    powers = sorted(
        {p for p in e.atoms(sp.Pow) if t in p.exp.free_symbols}, key=sp.default_sort_key
    )
    if not powers:
        return bool(sp.simplify(e) == 0)
    parts = sp.collect(e, powers, evaluate=False)
    return all(sp.simplify(c) == 0 for c in parts.values())


def _symbolic_check(
    rec: Recurrence, system: _System, sols: dict[Any, Any], budget: _Budget
) -> bool | None:
    """Residual and initial conditions simplified to zero, for small forms without sums.

    None when not tried (sums, ``CRootOf``, large residuals) or not finished within the budget.
    """
    if any(e.has(sp.Sum, sp.Product, sp.CRootOf) for e in sols.values()):
        return None
    lags = _lags(rec)
    residuals = []
    for s in rec.states:
        mapping = {
            a: sols[a.func].subs(t, time_of(a)) for a in time_atoms(system.rhs[s]) if a.func in sols
        }
        residuals.append(sols[s] - system.rhs[s].xreplace(mapping))
        residuals += [sols[s].subs(t, -j) - s(-j) for j in range(lags[s])]
    if sum(sp.count_ops(r) for r in residuals) > _SYMBOLIC_MAX_OPS:
        return None
    done = budget.call(lambda: all(_is_zero(r) for r in residuals))
    return None if done is _SKIPPED else bool(done)


# ------------------------------------------------------------------------------ solve
def solve(rec: Recurrence, of: Any = None, *, budget: float = SOLVE_BUDGET) -> Solution:
    r"""The closed form of a recurrence's state for symbolic :math:`t`, or :class:`NoClosedForm`.

    Parameters
    ----------
    rec : Recurrence
    of : optional
        What to solve for: a state, an output or intermediate (function or name), a vector
        (:func:`symrnn.vector` or its name), or a list of them.  Default: every state.
    budget : float
        Wall-clock seconds (default :data:`SOLVE_BUDGET`).  Checked between the steps; the SymPy
        calls that cannot be bounded in advance run under a SIGALRM timer on the main thread
        and are skipped on other threads (see Notes).

    Returns
    -------
    Solution
        Verified by substitution into the recurrence (see :class:`SolutionCheck`).

    Raises
    ------
    NoClosedForm
        When the state update is nonlinear in the lagged states, has input-dependent
        coefficients beyond first order, is time-varying beyond what ``rsolve`` handles, or the
        budget runs out (the message names the step).

    Notes
    -----
    Which recurrences are solved, with :math:`d^{(t)}` the drive (everything but the states):

    * constant coefficients: every state and every impulse response satisfies the scalar
      recurrence whose characteristic polynomial p is that of the (stacked) state matrix, and
      is written from the roots of p, :math:`\sum_r r^{t} P_r(t)` — in radicals when they are
      small, else as ``CRootOf`` (printed as ``r1, r2, …`` with the polynomial they are the
      roots of).  One state with a known drive :math:`\sum_b P_b(t) b^{t}` (constants,
      polynomials, exponentials): the drive's annihilator :math:`\prod_b (\lambda - b)^{\deg
      P_b + 1}` joins p and the form has no sum (``"characteristic"``); any other drive, inputs
      included, is convolved with the impulse response :math:`G`,
      :math:`h^{(t)} = h_{\mathrm{hom}}^{(t)} + \sum_{k=1}^{t} G(t-k)\, d^{(k)}`
      (``"linear-driven"``; ``"matrix-power"`` for several or vector states);
    * one first-order state with coefficient :math:`c^{(t)}` depending on t or on inputs:
      the product form :math:`\prod_{j=1}^{t} c^{(j)} h^{(0)} + \sum_{k=1}^{t}
      \prod_{j=k+1}^{t} c^{(j)} d^{(k)}` (``rsolve`` first when the drive has no inputs);
      higher orders with coefficients in t go to ``rsolve``.

    Solutions are for generic parameter values: a form may divide by ``a - 1`` or by the
    discriminant of p.  At special values use :meth:`Solution.subs`, which solves again with
    the values in place.  Floating-point coefficients are replaced by nearby rationals.

    The time budget: a ``SIGALRM`` timer can interrupt ``rsolve``, ``simplify`` and the roots of
    cubics and quartics only on the main thread, and only when no other SIGALRM handler or
    timer is active; elsewhere those calls are not made (``rsolve`` is not tried, the check is
    numeric only, roots are written as ``CRootOf``), so ``solve`` still returns or raises
    within about the budget.

    Examples
    --------
    >>> import symrnn as sr
    >>> sol = solve(sr.cells.fibonacci())
    >>> [sol.at(k).subs({sol.of[0](0): 0, sol.of[0](-1): 1}) for k in range(1, 9)]
    [1, 1, 2, 3, 5, 8, 13, 21]
    """
    if not isinstance(rec, Recurrence):
        raise TypeError(f"solve needs a Recurrence, got {type(rec).__name__}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(f"solve's budget must be a positive number of seconds, got {budget!r}")
    head = f"no closed form for {_label(rec)}"
    clock = _Budget(float(budget), head)
    wanted = list(rec.states) if of is None else _resolve(rec, of)
    system = _system(rec, head)
    index, inner = _index_symbols(rec)
    candidates = _candidates(rec, system, index, inner, clock)
    sols, method, check = None, "", None
    for method, build in candidates:
        sols = build()
        if sols is None:
            continue
        check = _check(rec, system, sols, clock)
        if check.ok:
            break
        if method != "rsolve":
            raise RuntimeError(
                f"internal error: the {method} closed form of {_label(rec)} failed its check "
                f"({check}); please report this recurrence"
            )
        sols = None
    if sols is None or check is None:
        clock.check("rsolve")
        raise NoClosedForm(f"{head}: {system.varying}, and rsolve found no closed form")
    exprs = _quantities(rec, sols, wanted)
    expr = exprs[0] if len(exprs) == 1 else sp.ImmutableMatrix(exprs)
    return Solution(rec, tuple(wanted), expr, method, check, index)


def _candidates(
    rec: Recurrence, system: _System, index: sp.Symbol, inner: sp.Symbol, budget: _Budget
) -> list[tuple[str, Callable[[], dict[Any, Any] | None]]]:
    """The methods to try, in order; NoClosedForm when none applies."""
    single = len(rec.states) == 1
    inputs_in_drive = any(time_atoms(d) for d in system.drive)
    inputs_in_coeffs = any(time_atoms(c) for c in system.A)
    out: list[tuple[str, Callable[[], dict[Any, Any] | None]]] = []
    if system.varying is None:
        extended = _annihilated(rec, system) if single and not inputs_in_drive else None
        if extended is not None:
            return [("characteristic", lambda: _by_annihilator(rec, system, extended, budget))]
        if single and not inputs_in_drive and len(system.slots) == 1:
            out.append(("rsolve", lambda: _by_rsolve(rec, system, budget, share=0.5)))
        method = "linear-driven" if single else "matrix-power"
        out.append((method, lambda: _by_characteristic(rec, system, index, budget)))
        return out
    if single and not inputs_in_drive and not inputs_in_coeffs:
        out.append(("rsolve", lambda: _by_rsolve(rec, system, budget)))
    if single and len(system.slots) == 1:
        out.append(("product", lambda: _by_product(rec, system, index, inner, budget)))
    elif not out:
        scope = (
            "input-dependent coefficients are solved for first-order recurrences only"
            if single
            else "systems of several states are solved with constant coefficients only"
        )
        raise NoClosedForm(f"{budget.head}: {system.varying}; {scope}")
    return out


def _quantities(rec: Recurrence, sols: dict[Any, Any], wanted: list[Any]) -> list[Any]:
    """Closed forms of the wanted quantities: states directly, the others by substitution."""
    rhs = _inline(rec, states_too=False)
    out = []
    for q in wanted:
        if q in sols:
            out.append(sols[q])
            continue
        mapping = {
            a: sols[a.func].subs(t, time_of(a)) for a in time_atoms(rhs[q]) if a.func in sols
        }
        out.append(_combine_sums(sp.expand(rhs[q].xreplace(mapping), deep=False)))
    return out


def _combine_sums(expr: Any) -> Any:
    """``c Sum(f, L) + Sum(g, L)`` -> ``Sum(c f + g, L)`` for sums over the same limits."""
    if not expr.is_Add:
        return expr
    sums: dict[Any, list[Any]] = {}
    rest = []
    for term in expr.args:
        found = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        scale = term / found[0] if len(found) == 1 else None
        if scale is not None and found[0].limits[0][0] not in scale.free_symbols:
            sums.setdefault(found[0].limits, []).append(scale * found[0].function)
        else:
            rest.append(term)
    return sp.Add(*rest, *[sp.Sum(sp.Add(*body), *limits) for limits, body in sums.items()])


# ----------------------------------------------------------------------------- kernel
def kernel(source: Recurrence | Solution, length: int, output: Any = None) -> tuple[Any, ...]:
    r"""The convolution kernel of a linear time-invariant recurrence: its impulse response.

    For :math:`h^{(t)} = A h^{(t-1)} + B x^{(t)}` (plus terms without inputs) and an output
    :math:`y^{(t)} = C h^{(t)} + D x^{(t)}`, the zero-state response is the convolution
    :math:`y^{(t)} = \sum_{j \ge 0} K_j x^{(t-j)}` with

    .. math:: K = (CB + D,\; CAB,\; CA^{2}B,\; \dots), \qquad
              K_j = \partial y^{(t)} / \partial x^{(t-j)};

    without an output :math:`K = (B, AB, A^{2}B, \dots)`, the kernel of the state.  Lagged
    inputs and higher orders are handled through the stacked first-order form.

    Parameters
    ----------
    source : Recurrence or Solution
    length : int
        How many terms :math:`K_0 … K_{length-1}`.
    output : optional
        ``None``: the recurrence's output equations (``o(t) = C h(t) + D x(t)``) if it has
        any, else the states.  A defined quantity (function, name, vector, or a list), or a
        matrix ``C`` (rows over the state components in ``rec.states`` order), or ``(C, D)``.

    Returns
    -------
    tuple
        :math:`K_j` as ``ImmutableMatrix`` (outputs × inputs, inputs in ``rec.inputs`` order),
        or as scalars when that is 1 × 1.

    Examples
    --------
    >>> import symrnn as sr
    >>> kernel(sr.cells.linear(), 4)
    (u, a*u, a**2*u, a**3*u)
    """
    rec = source.recurrence if isinstance(source, Solution) else source
    if not isinstance(rec, Recurrence):
        raise TypeError(f"kernel needs a Recurrence or Solution, got {type(rec).__name__}")
    if isinstance(length, bool) or not isinstance(length, (int, sp.Integer)) or length < 1:
        raise ValueError(f"kernel length must be a positive integer, got {length!r}")
    if length > MAX_KERNEL_LENGTH:
        raise LimitError(
            f"kernel length {length} exceeds the limit of {MAX_KERNEL_LENGTH}; ask for fewer terms"
        )
    head = f"no convolution kernel for {_label(rec)}"
    system = _system(rec, head, remedy="a kernel needs a linear recurrence")
    if system.varying is not None:
        raise NoClosedForm(f"{head}: {system.varying}; a kernel needs constant coefficients")
    if not rec.inputs:
        raise NoClosedForm(f"{head}: it has no inputs; a kernel maps inputs to states")
    inputs = _input_matrices(rec, list(system.drive), system, head)
    n = len(system.slots)
    state_rows = [i for i, (_, lag) in enumerate(system.slots) if lag == 0]
    C_by_lag, D_by_lag = _output_matrices(rec, system, output, state_rows, head)

    A = sp.Matrix(system.A)
    Z: list[sp.Matrix] = []  # Z[m] = ∂z(t)/∂x(t-m)
    for m in range(length):
        Zm = A * Z[m - 1] if m else sp.zeros(n, len(rec.inputs))
        if m < len(inputs):
            Zm = Zm + inputs[m]
        Z.append(Zm.applyfunc(sp.expand))
    out = []
    for j in range(length):
        K = sp.Matrix(D_by_lag[j]) if j < len(D_by_lag) else None
        for q, C in enumerate(C_by_lag):
            if q <= j:
                term = C * Z[j - q]
                K = term if K is None else K + term
        K = sp.ImmutableMatrix(K.applyfunc(sp.expand))  # type: ignore[union-attr]
        out.append(K[0, 0] if K.shape == (1, 1) else K)
    return tuple(out)


def _input_matrices(
    rec: Recurrence, drive: list[Any], system: _System, head: str
) -> list[sp.Matrix]:
    """``B_l`` with ``d(t) = Σ_l B_l x(t-l) + (terms without inputs)``."""
    atoms = [x(t - lag) for lag in range(rec.input_lag + 1) for x in rec.inputs]
    B = [sp.zeros(len(drive), len(rec.inputs)) for _ in range(rec.input_lag + 1)]
    for row, d in enumerate(drive):
        form = _affine(d, atoms)
        if form is None:
            present = {a for a in atoms if d.has(a)}
            raise NoClosedForm(
                f"{head}: {system.slots[row][0].__name__}(t) depends nonlinearly on an input "
                f"(through {_culprit(d, present)})"
            )
        for atom, c in form[0].items():
            if not _is_constant(c):
                raise NoClosedForm(
                    f"{head}: the coefficient of {atom} depends on t or other inputs; a kernel "
                    "needs constant coefficients"
                )
            lag = -int(shift_of(atom))  # type: ignore[arg-type]
            B[lag][row, rec.inputs.index(atom.func)] = c
    return B


def _output_matrices(
    rec: Recurrence, system: _System, output: Any, state_rows: list[int], head: str
) -> tuple[list[sp.Matrix], list[sp.Matrix]]:
    """``C_q`` and ``D_l`` with ``y(t) = Σ_q C_q z(t-q) + Σ_l D_l x(t-l) + (the rest)``."""
    n, m = len(system.slots), len(rec.inputs)
    if output is None:
        output = list(rec.outputs) if rec.outputs else list(rec.states)
    if is_matrix(output) or (
        isinstance(output, tuple) and len(output) == 2 and is_matrix(output[0])
    ):
        C_user, D_user = output if isinstance(output, tuple) else (output, None)
        C_user = explicit(C_user)
        if C_user.shape[1] != len(state_rows):
            raise ShapeError(
                f"output matrix C has {C_user.shape[1]} columns; {_label(rec)} has "
                f"{len(state_rows)} state components ({', '.join(map(str, rec.states))})"
            )
        C = sp.zeros(C_user.shape[0], n)
        for col, row in enumerate(state_rows):
            C[:, row] = C_user[:, col]
        D = sp.zeros(C_user.shape[0], m) if D_user is None else sp.Matrix(explicit(D_user))
        if D.shape != (C_user.shape[0], m):
            raise ShapeError(
                f"feedthrough matrix D has shape {D.shape}, expected {(C_user.shape[0], m)} "
                "(outputs × inputs)"
            )
        return [C], [D]
    funcs = _resolve(rec, output)
    rhs = _inline(rec, states_too=False)
    lags = _lags(rec)
    where = {slot: i for i, slot in enumerate(system.slots)}
    Cs: list[sp.Matrix] = [sp.zeros(len(funcs), n)]
    Ds: list[sp.Matrix] = [sp.zeros(len(funcs), m)]
    for row, f in enumerate(funcs):
        expr = f(t) if f in rec.states else rhs[f]
        atoms = sorted(time_atoms(expr), key=sp.default_sort_key)
        form = _affine(expr, atoms)
        if form is None:
            raise NoClosedForm(
                f"{head}: output {f.__name__}(t) is not linear in the states and inputs (through "
                f"{_culprit(expr, set(atoms))})"
            )
        for atom, c in form[0].items():
            if not _is_constant(c):
                raise NoClosedForm(
                    f"{head}: the coefficient of {atom} in {f.__name__}(t) is not constant"
                )
            lag = -int(shift_of(atom))  # type: ignore[arg-type]
            if atom.func in rec.states:
                top = lags[atom.func] - 1
                q, slot = (0, (atom.func, lag)) if lag <= top else (lag - top, (atom.func, top))
                while len(Cs) <= q:
                    Cs.append(sp.zeros(len(funcs), n))
                Cs[q][row, where[slot]] += c
            else:
                while len(Ds) <= lag:
                    Ds.append(sp.zeros(len(funcs), m))
                Ds[lag][row, rec.inputs.index(atom.func)] += c
    return Cs, Ds
