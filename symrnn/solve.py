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

with :math:`A^{t}` in closed form from the eigenvalues of :math:`A` (Sylvester's formula) or,
when some repeat, its Jordan form.  Every solution is substituted back into the recurrence
before it is returned; the result says how (:class:`SolutionCheck`).

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.exceptions import MatrixError
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
]

#: Largest stacked state (components × lags) whose matrix power :func:`solve` builds.
MAX_SOLVE_SIZE = 10
#: Longest convolution kernel :func:`kernel` builds.
MAX_KERNEL_LENGTH = 1000

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
        with ``Sum``/``Product``, or residuals too large to simplify cheaply).
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
        ``"rsolve"`` (SymPy's ``rsolve``, known drive), ``"linear-driven"`` (scalar, impulse
        response convolved with the drive), ``"matrix-power"`` (systems: :math:`A^t` from the
        eigenvalues or the Jordan form) or ``"product"`` (first order with time-varying
        coefficients).
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
        integers; ``expand=False`` skips that, which is much faster for large symbolic forms that
        are evaluated numerically afterwards.  Valid for ``k >= 1 - order`` (the initial times).
        """
        lowest = 1 - max(_lags(self.recurrence).values())
        if isinstance(k, bool) or not isinstance(k, (int, sp.Integer)) or k < lowest:
            raise ValueError(f"at() needs an integer time >= {lowest}, got {k!r}")
        finish = _exact if expand else (lambda e: e)
        return _map(self.expr, lambda e: finish(_doit(e.xreplace({t: sp.Integer(k)}))))

    def __str__(self) -> str:
        printer = _SolutionStrPrinter()
        return "\n".join(f"{eq.lhs} = {printer.doprint(eq.rhs)}" for eq in self.equations)

    def __repr__(self) -> str:
        names = ", ".join(f.__name__ for f in self.of)
        name = f" {self.recurrence.name!r}" if self.recurrence.name else ""
        return f"<Solution{name} of {names}: method={self.method!r}, check ok={self.check.ok}>"

    def _latex_lines(self) -> list[str]:
        printer = _SolutionLatexPrinter()
        return [f"{printer.doprint(eq.lhs)} &= {printer.doprint(eq.rhs)}" for eq in self.equations]

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


def _exact(expr: Any) -> Any:
    """Expanded, with numeric radicals cleared from denominators (so integers show as such)."""
    expr = sp.expand(expr)
    if any(p.exp.is_negative and p.base.is_Add and p.base.is_number for p in expr.atoms(sp.Pow)):
        expr = sp.expand(sp.radsimp(expr))
    return expr


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


def _tidy(expr: Any) -> Any:
    """The shorter of the constant as it is and with its radicals rationalised."""
    if sp.count_ops(expr) > 400:
        return expr
    if expr.is_number:
        return min([expr, sp.expand(sp.radsimp(expr))], key=sp.count_ops)
    return min([expr, sp.factor(sp.cancel(sp.radsimp(expr)))], key=sp.count_ops)


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


# -------------------------------------------------------------------- closed forms of A^t
def _power_factor(lam: Any, d: int, n: Any) -> Any:
    r"""The scalar :math:`\binom{n}{d}\lambda^{n-d}` of a Jordan block power (valid for n ≥ 0)."""
    if lam == 0:
        return sp.KroneckerDelta(n, d)
    return sp.expand_func(sp.binomial(n, d)) * lam ** (n - d)


def _eigenvalues(A: sp.Matrix, head: str) -> list[Any] | None:
    """The eigenvalues of ``A`` in radicals when they are distinct, None when some repeat."""
    poly = A.charpoly()
    found = sp.roots(poly)
    if sum(found.values()) != A.shape[0]:
        lam = sp.Symbol("lambda")
        raise NoClosedForm(
            f"{head}: SymPy finds no roots in radicals for the characteristic polynomial "
            f"{poly.as_expr(lam)}; use sr.unfold for fixed t"
        )
    return list(found) if all(m == 1 for m in found.values()) else None


def _power_terms(A: sp.Matrix, head: str) -> list[tuple[Any, int, sp.ImmutableMatrix]]:
    r""":math:`A^n = \sum \binom{n}{d}\lambda^{n-d} M_{\lambda,d}` as ``(λ, d, M)`` triples.

    Distinct eigenvalues :math:`\lambda` of the characteristic polynomial :math:`p` give
    Sylvester's formula :math:`M_\lambda = q(A, \lambda) / p'(\lambda)` with
    :math:`q(x, \rho) = (p(x) - p(\rho)) / (x - \rho)`, built once as a polynomial in
    :math:`\rho` and evaluated at each root.  Otherwise the
    Jordan form :math:`A = P J P^{-1}`, block by block (nilpotent parts give the d > 0 terms).
    """
    size = A.shape[0]
    eigen = _eigenvalues(A, head)
    if eigen is not None:
        rho = sp.Dummy("rho")
        coeffs = A.charpoly().all_coeffs()[::-1]  # c_0 … c_n
        powers = [sp.eye(size)]
        for _ in range(size - 1):
            powers.append(powers[-1] * A)
        Q = sp.zeros(size, size)
        for j in range(1, size + 1):
            for i in range(j):
                Q += coeffs[j] * rho ** (j - 1 - i) * powers[i]
        slope = sp.Add(*[j * coeffs[j] * rho ** (j - 1) for j in range(1, size + 1)])
        return [
            (lam, 0, sp.ImmutableMatrix((Q / slope).subs(rho, lam).applyfunc(_tidy)))
            for lam in eigen
        ]
    try:
        P, J = A.jordan_form()
    except (MatrixError, NotImplementedError, ValueError) as err:
        raise NoClosedForm(
            f"{head}: the Jordan form of the state matrix is out of reach ({err}); "
            "use sr.unfold for fixed t"
        ) from None
    Pinv = P.inv()
    groups: dict[tuple[Any, int], Any] = {}
    start = 0
    while start < size:
        end = start + 1
        while end < size and J[end - 1, end] == 1:
            end += 1
        lam = J[start, start]
        for d in range(end - start):
            part = sp.zeros(size, size)
            for r in range(start, end - d):
                part += P[:, r] * Pinv[r + d, :]
            groups[(lam, d)] = groups[(lam, d)] + part if (lam, d) in groups else part
        start = end
    tidied = [(lam, d, sp.ImmutableMatrix(M.applyfunc(_tidy))) for (lam, d), M in groups.items()]
    return [(lam, d, M) for lam, d, M in tidied if not M.is_zero_matrix]


def _matrix_solution(system: _System, index: sp.Symbol, head: str) -> sp.ImmutableMatrix:
    r""":math:`z^{(t)} = A^{t} z^{(0)} + \sum_{k=1}^{t} A^{t-k} d^{(k)}` entry by entry."""
    terms = _power_terms(sp.Matrix(_rationalize(system.A)), head)
    z0 = system.initial
    drive = [system.drive[i].subs(t, index) for i in range(len(system.slots))]
    rows = []
    for i in range(len(system.slots)):
        free = sp.Add(*[_power_factor(lam, d, t) * (M[i, :] * z0)[0] for lam, d, M in terms])
        summand = sp.S.Zero
        for col, d_k in enumerate(drive):
            if d_k == 0:
                continue
            green = sp.Add(*[_power_factor(lam, d, t - index) * M[i, col] for lam, d, M in terms])
            summand += green * d_k
        forced = sp.Sum(summand, (index, 1, t)) if summand != 0 else sp.S.Zero
        rows.append(free + forced)
    return sp.ImmutableMatrix(rows)


# ---------------------------------------------------------------------------- methods
def _by_rsolve(rec: Recurrence, system: _System) -> dict[Any, Any] | None:
    (s,) = rec.states
    order = _lags(rec)[s]
    marks = {s(-j): sp.Dummy(f"{s.__name__}{j}") for j in range(order)}
    try:
        found = sp.rsolve(s(t) - _rationalize(system.rhs[s]), s(t), dict(marks))
    except (ValueError, NotImplementedError, TypeError, ZeroDivisionError):
        return None
    if found is None or isinstance(found, (list, dict)):
        return None
    return {s: found.xreplace({v: k for k, v in marks.items()})}


def _by_matrix(rec: Recurrence, system: _System, index: sp.Symbol, head: str) -> dict[Any, Any]:
    z = _matrix_solution(system, index, head)
    return {s: z[i] for i, (s, lag) in enumerate(system.slots) if lag == 0}


def _by_product(
    rec: Recurrence, system: _System, index: sp.Symbol, inner: sp.Symbol
) -> dict[Any, Any]:
    r"""First order, varying coefficient :math:`c^{(t)}` and drive :math:`d^{(t)}`:

    .. math:: h^{(t)} = \prod_{j=1}^{t} c^{(j)} h^{(0)}
              + \sum_{k=1}^{t} \prod_{j=k+1}^{t} c^{(j)} d^{(k)}
    """
    (s,) = rec.states
    c, d = system.A[0, 0].subs(t, inner), system.drive[0]

    def product(lower: Any) -> Any:
        done = sp.Product(c, (inner, lower, t)).doit()
        return sp.Product(c, (inner, lower, t)) if done.has(sp.Piecewise) else done

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


def _relative(a: Any, b: Any) -> float:
    try:
        gap, scale = complex(sp.N(a - b, _CHECK_DIGITS)), max(1.0, abs(complex(a)), abs(complex(b)))
    except TypeError:  # something symbolic is left: the form is wrong
        return float("nan")
    return abs(gap) / scale


def _check(rec: Recurrence, system: _System, sols: dict[Any, Any], seed: int = 0) -> SolutionCheck:
    """Substitute ``sols`` back into the recurrence and compare with the initial states."""
    lags = _lags(rec)
    times = tuple(range(1 - max(lags.values()), _CHECK_LAST + 1))
    rng = np.random.default_rng(seed)
    worst, points, attempts = 0.0, 0, 0
    while points < _CHECK_POINTS and attempts < 4 * _CHECK_POINTS:
        attempts += 1
        ev = _Evaluator(rng, rec.params)
        for s in rec.states:
            ev.number(sp.Add(*[s(-j) for j in range(lags[s])]))  # draw the initial states
        at_point = {s: e.xreplace(ev.values) for s, e in sols.items()}
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
        _symbolic_check(rec, system, sols),
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


def _symbolic_check(rec: Recurrence, system: _System, sols: dict[Any, Any]) -> bool | None:
    """Residual and initial conditions simplified to zero, for small forms without sums."""
    if any(e.has(sp.Sum, sp.Product) for e in sols.values()):
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
    return all(_is_zero(r) for r in residuals)


# ------------------------------------------------------------------------------ solve
def solve(rec: Recurrence, of: Any = None) -> Solution:
    r"""The closed form of a recurrence's state for symbolic :math:`t`, or :class:`NoClosedForm`.

    Parameters
    ----------
    rec : Recurrence
    of : optional
        What to solve for: a state, an output or intermediate (function or name), a vector
        (:func:`symrnn.vector` or its name), or a list of them.  Default: every state.

    Returns
    -------
    Solution
        Verified by substitution into the recurrence (see :class:`SolutionCheck`).

    Raises
    ------
    NoClosedForm
        When the state update is nonlinear in the lagged states, has input-dependent
        coefficients beyond first order, or is time-varying beyond what ``rsolve`` handles.

    Notes
    -----
    Which recurrences are solved, with :math:`d^{(t)}` the drive (everything but the states):

    * one state, constant coefficients, drive free of inputs: ``rsolve`` (e.g. Binet's formula);
    * one state, constant coefficients, any drive: the impulse response :math:`G` of the
      homogeneous recurrence (from the characteristic roots) convolved with the drive,
      :math:`h^{(t)} = h_{\mathrm{hom}}^{(t)} + \sum_{k=1}^{t} G(t-k)\, d^{(k)}`;
    * several states or vector states, constant coefficients: the stacked first-order system
      :math:`z^{(t)} = A z^{(t-1)} + d^{(t)}` with :math:`A^{t}` from the eigenvalues
      (Sylvester's formula) or, when some repeat, the Jordan form;
    * one first-order state with coefficient :math:`c^{(t)}` depending on t or on inputs:
      the product form :math:`\prod_{j=1}^{t} c^{(j)} h^{(0)} + \sum_{k=1}^{t}
      \prod_{j=k+1}^{t} c^{(j)} d^{(k)}` (``rsolve`` first when the drive has no inputs);
      higher orders with coefficients in t go to ``rsolve``.

    Solutions are for generic parameter values: ``rsolve`` may divide by ``a - 1``, and a
    symbolic matrix counts as having distinct eigenvalues unless they coincide identically.
    Floating-point coefficients are replaced by nearby rationals before solving.

    Examples
    --------
    >>> import symrnn as sr
    >>> sol = solve(sr.cells.fibonacci())
    >>> [sol.at(k).subs({sol.of[0](0): 0, sol.of[0](-1): 1}) for k in range(1, 9)]
    [1, 1, 2, 3, 5, 8, 13, 21]
    """
    if not isinstance(rec, Recurrence):
        raise TypeError(f"solve needs a Recurrence, got {type(rec).__name__}")
    head = f"no closed form for {_label(rec)}"
    wanted = list(rec.states) if of is None else _resolve(rec, of)
    system = _system(rec, head)
    index, inner = _index_symbols(rec)
    candidates = _candidates(rec, system, index, inner, head)
    sols, method, check = None, "", None
    for method, build in candidates:
        sols = build()
        if sols is None:
            continue
        check = _check(rec, system, sols)
        if check.ok:
            break
        if method != "rsolve":
            raise RuntimeError(
                f"internal error: the {method} closed form of {_label(rec)} failed its check "
                f"({check}); please report this recurrence"
            )
        sols = None
    if sols is None or check is None:
        raise NoClosedForm(f"{head}: {system.varying}, and rsolve found no closed form")
    exprs = _quantities(rec, sols, wanted)
    expr = exprs[0] if len(exprs) == 1 else sp.ImmutableMatrix(exprs)
    return Solution(rec, tuple(wanted), expr, method, check, index)


def _candidates(
    rec: Recurrence, system: _System, index: sp.Symbol, inner: sp.Symbol, head: str
) -> list[tuple[str, Callable[[], dict[Any, Any] | None]]]:
    """The methods to try, in order; NoClosedForm when none applies."""
    single = len(rec.states) == 1
    inputs_in_drive = any(time_atoms(d) for d in system.drive)
    inputs_in_coeffs = any(time_atoms(c) for c in system.A)
    out: list[tuple[str, Callable[[], dict[Any, Any] | None]]] = []
    if single and not inputs_in_drive and not inputs_in_coeffs:
        out.append(("rsolve", lambda: _by_rsolve(rec, system)))
    if system.varying is None:
        method = "linear-driven" if single else "matrix-power"
        out.append((method, lambda: _by_matrix(rec, system, index, head)))
    elif single and len(system.slots) == 1:
        out.append(("product", lambda: _by_product(rec, system, index, inner)))
    elif not out:
        scope = (
            "input-dependent coefficients are solved for first-order recurrences only"
            if single
            else "systems of several states are solved with constant coefficients only"
        )
        raise NoClosedForm(f"{head}: {system.varying}; {scope}")
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
