r"""Differentiation through time: BPTT (reverse mode), RTRL (forward mode) and Jacobians.

Everything is computed on the unfolded *chain*, never on a nested closed form.  The step
derivatives :math:`\partial f/\partial h^{(t-k)}`, :math:`\partial f/\partial x^{(t)}`,
:math:`\partial f/\partial \theta` are derived once per recurrence, symbolically, and instantiated
per step.  Reverse mode then runs the adjoint recursion of back-propagation through time
(Goodfellow et al., eq. 10.17–10.28),

.. math::
    \frac{\partial L}{\partial v} = \frac{\partial L}{\partial v}\Big|_{\text{direct}}
        + \sum_{u \text{ uses } v} \frac{\partial L}{\partial u} \frac{\partial u}{\partial v},
    \qquad
    \frac{\partial L}{\partial \theta} = \sum_{u} \frac{\partial L}{\partial u}
        \frac{\partial u}{\partial \theta},

over the chain from the last step to the first; forward mode propagates sensitivities
:math:`\partial v / \partial \theta` from the first step to the last.  Work and expression size
(as a graph with shared subexpressions) grow linearly in the number of steps.

>>> import symrnn as sr
>>> rnn = sr.cells.rnn()
>>> h, x = rnn.states[0], rnn.inputs[0]
>>> w, u, b = sorted(rnn.params, key=str)[::-1]
>>> U = sr.unfold(rnn, 2)
>>> sr.grad(U, h(2), wrt=[w])[w]
w*(1 - h(1)**2)*(1 - h(2)**2)*h(0) + (1 - h(2)**2)*h(1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from .errors import SymrnnError, UnfoldError
from .losses import expand_losses, softmax_cross_entropy, squared_error
from .matrices import explicit, is_matrix
from .notation import Gradients, is_time_atom, latex_expr, t, time_atoms, time_of
from .parsing import parse_in_scope
from .recurrence import Recurrence, near_miss
from .unfold import Unfolded, _rename

__all__ = [
    "Adjoint",
    "Sensitivity",
    "StepDerivatives",
    "step_derivatives",
    "transition_jacobian",
    "BPTT",
    "bptt",
    "grad",
    "jacobian",
    "total_loss",
    "squared_error",
    "softmax_cross_entropy",
]


# ------------------------------------------------------------------------ derivative symbols
class Adjoint(sp.Function):
    r"""The adjoint :math:`\partial L / \partial v` of a chain quantity or parameter ``v``.

    A placeholder used inside :class:`BPTT` equations; :func:`grad` substitutes it away.
    """

    nargs = 1

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = f"\\frac{{\\partial L}}{{\\partial {printer._print(self.args[0])}}}"
        return f"\\left({tex}\\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer: Any) -> str:
        return f"dL/d{printer._print(self.args[0])}"


class Sensitivity(sp.Function):
    r"""The forward-mode sensitivity :math:`\partial v / \partial \theta` (RTRL)."""

    nargs = 2

    def _latex(self, printer: Any, exp: Any = None) -> str:
        v, p = (printer._print(a) for a in self.args)
        tex = f"\\frac{{\\partial {v}}}{{\\partial {p}}}"
        return f"\\left({tex}\\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer: Any) -> str:
        v, p = (printer._print(a) for a in self.args)
        return f"d{v}/d{p}"


# ------------------------------------------------------------------------ step derivatives
@dataclass(frozen=True)
class StepDerivatives:
    r"""The partial derivatives of each update, derived once per recurrence (templates in t).

    ``partials[q]`` maps each time atom of q's right side (``h(t-1)``, ``x(t)``, ``r(t)``) to
    :math:`\partial q^{(t)} / \partial \text{atom}`; ``param_partials[q]`` maps each parameter.
    Zero derivatives are omitted.
    """

    recurrence: Recurrence
    partials: Mapping[Any, tuple[tuple[Any, sp.Expr], ...]]
    param_partials: Mapping[Any, tuple[tuple[Any, sp.Expr], ...]]


def derivative(expr: sp.Expr, var: Any) -> sp.Expr:
    r""":math:`\partial\,\text{expr} / \partial\,\text{var}` by the chain rule over Add, Mul, Pow
    and functions, falling back to :func:`sympy.diff` for anything else.

    Equal to ``sp.diff(expr, var)`` (the tests check it), but it builds no ``Derivative``
    objects and asks fewer assumption queries, which makes deriving a step 5-20x faster.
    ``var`` is a symbol or a time atom such as ``h(t-1)``.
    """
    memo: dict[Any, sp.Expr] = {}

    def d(e: Any) -> Any:
        if e == var:
            return sp.S.One
        if e in memo:
            return memo[e]
        if not e.args or (isinstance(e, AppliedUndef) and is_time_atom(e)):
            out = sp.S.Zero
        elif not e.has(var):
            out = sp.S.Zero
        elif isinstance(e, sp.Add):
            out = sp.Add(*[d(a) for a in e.args])
        elif isinstance(e, sp.Mul):
            terms = []
            for i, a in enumerate(e.args):
                da = d(a)
                if da != 0:
                    terms.append(sp.Mul(*e.args[:i], da, *e.args[i + 1 :]))
            out = sp.Add(*terms)
        elif isinstance(e, sp.Pow) and not e.exp.has(var):
            db = d(e.base)
            out = e.exp * e.base ** (e.exp - 1) * db if db != 0 else sp.S.Zero
        elif isinstance(e, sp.Function) and not isinstance(e, AppliedUndef):
            terms = []
            for i, a in enumerate(e.args, start=1):
                da = d(a)
                if da != 0:
                    terms.append(e.fdiff(i) * da)
            out = sp.Add(*terms)
        else:
            out = sp.diff(e, var)
        memo[e] = out
        return out

    return d(expr)  # type: ignore[no-any-return]


@lru_cache(maxsize=64)
def step_derivatives(rec: Recurrence) -> StepDerivatives:
    """Differentiate every update of ``rec`` once with respect to its atoms and parameters."""
    partials: dict[Any, tuple[tuple[Any, sp.Expr], ...]] = {}
    param_partials: dict[Any, tuple[tuple[Any, sp.Expr], ...]] = {}
    for eq in rec.equations:
        rhs = eq.rhs
        # Write derivatives through the value already computed, as the book does:
        # d tanh(a)/da = 1 - (h^{(t)})^2, not 1 - tanh(a)^2 (also cheaper to evaluate).
        reuse = {rhs: eq.lhs}

        def d(v: Any, rhs: sp.Expr = rhs, reuse: dict = reuse) -> sp.Expr:
            return derivative(rhs, v).xreplace(reuse)

        atoms = sorted(time_atoms(rhs), key=sp.default_sort_key)
        partials[eq.lhs.func] = tuple((a, da) for a in atoms if (da := d(a)) != 0)
        params = sorted(rhs.free_symbols & set(rec.params), key=sp.default_sort_key)
        param_partials[eq.lhs.func] = tuple((p, dp) for p in params if (dp := d(p)) != 0)
    return StepDerivatives(rec, partials, param_partials)


def transition_jacobian(rec: Recurrence) -> sp.ImmutableMatrix:
    r"""The state-transition Jacobian :math:`\partial h^{(t)} / \partial h^{(t-1)}` as a template.

    Rows and columns follow ``rec.states``; same-time intermediates (gates) are eliminated by the
    chain rule.  Needs an order-1 recurrence (write higher orders in companion form).

    >>> import symrnn as sr
    >>> sr.transition_jacobian(sr.cells.rnn())
    Matrix([[w*(1 - tanh(b + u*x(t) + w*h(t - 1))**2)]])
    """
    if rec.order != 1:
        raise SymrnnError(
            f"transition_jacobian needs an order-1 recurrence, got order {rec.order}; "
            "introduce extra states for the older lags (companion form)"
        )
    # Express every defined quantity at time t through the states at t-1, then differentiate.
    values: dict[Any, sp.Expr] = {}
    for eq in rec.equations:
        values[eq.lhs] = eq.rhs.xreplace(values)
    lagged = [s(t - 1) for s in rec.states]
    return sp.ImmutableMatrix([[sp.diff(values[s(t)], v) for v in lagged] for s in rec.states])


# ------------------------------------------------------------------------------ losses
def total_loss(U: Unfolded, per_step: Any, start: int = 1) -> sp.Expr:
    r"""The total loss :math:`L = \sum_{t=\text{start}}^{\tau} L^{(t)}` from a template in ``t``.

    >>> import sympy as sp, symrnn as sr
    >>> U = sr.unfold(sr.cells.rnn(), 2)
    >>> h, y = U.recurrence.states[0], sp.Function("y", real=True)
    >>> sr.total_loss(U, (h(sr.t) - y(sr.t))**2 / 2)
    (h(1) - y(1))**2/2 + (h(2) - y(2))**2/2
    """
    per_step = parse_in_scope(per_step, U, "the loss")
    template = expand_losses(per_step if is_matrix(per_step) else _expression(per_step, "the loss"))
    if is_matrix(template):
        template = sp.Add(*template)
    if not 1 <= start <= U.steps:
        raise UnfoldError(f"start = {start} must lie in 1..{U.steps}")
    return sp.Add(*[U.instantiate(template, k) for k in range(start, U.steps + 1)])


def classify_loss(loss: Any) -> tuple[sp.Expr, bool]:
    """``(expression, is_template)``: a per-step template in t, or a loss at fixed times.

    A vector or matrix loss is summed over its entries.  A loss with no time atoms counts as a
    template (it is the same at every step).
    """
    expr = expand_losses(loss if is_matrix(loss) else _expression(loss, "the loss"))
    atoms = time_atoms(expr)
    symbolic = [a for a in atoms if not time_of(a).is_Integer]
    if symbolic and len(symbolic) != len(atoms):
        raise SymrnnError(
            "the loss mixes t and fixed times; write a per-step template in t, "
            "e.g. (h(t) - y(t))**2/2, or an expression at fixed times such as h(3)**2"
        )
    return expr, bool(symbolic) or not atoms


def loss_only_symbols(rec: Recurrence, loss: sp.Expr) -> list[sp.Symbol]:
    """Symbols of ``loss`` that are not parameters of ``rec`` (a weight-decay coefficient).

    >>> import symrnn as sr
    >>> h, lam = sr.cells.rnn().states[0], sp.Symbol("lam")
    >>> loss_only_symbols(sr.cells.rnn(), h(sr.t) ** 2 + lam)
    [lam]
    """
    return sorted(loss.free_symbols - set(rec.params) - {t}, key=sp.default_sort_key)


# ------------------------------------------------------------------- chain differentiation
def _chain_partials(
    U: Unfolded, eq: sp.Equality
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
    """Instantiated step derivatives of one chain equation: (atom partials, param partials)."""
    D = step_derivatives(U.recurrence)
    func, k = eq.lhs.func, int(time_of(eq.lhs))
    partials, param_partials = D.partials[func], D.param_partials[func]
    templates = [a for a, _ in partials] + [d for _, d in partials] + [d for _, d in param_partials]
    values = U.instantiate_all(templates, k)
    n = len(partials)
    targets, derivs, pderivs = values[:n], values[n : 2 * n], values[2 * n :]
    # An initial state given a value in ``init`` is no longer an atom: it has no derivative.
    atoms = [(a, d) for a, d in zip(targets, derivs, strict=True) if is_time_atom(a)]
    params = [(p, d) for (p, _), d in zip(param_partials, pderivs, strict=True) if d != 0]
    return atoms, params


def _direct_partials(loss: sp.Expr, variables: set[Any]) -> dict[Any, list[sp.Expr]]:
    """∂L/∂v for every v that appears explicitly in ``loss``, term by term (linear in terms).

    Per-step loss terms are instantiations of one template, so each term is moved back to
    symbolic t, differentiated once per template (cached) and moved forward again.
    """
    out: dict[Any, list[sp.Expr]] = {}
    for term in sp.Add.make_args(loss):
        present = (term.atoms(AppliedUndef) | term.free_symbols) & variables
        if not present:
            continue
        times = [int(time_of(a)) for a in term.atoms(AppliedUndef) if _at_integer_time(a)]
        now = max(times, default=0)
        template = _to_symbolic_time(term, now)
        for v in sorted(present, key=sp.default_sort_key):
            d = _template_derivative(template, _to_symbolic_time(v, now))
            if d != 0:
                out.setdefault(v, []).append(_to_integer_time(d, now))
    return out


def _at_integer_time(a: Any) -> bool:
    return is_time_atom(a) and bool(time_of(a).is_Integer)


def _to_symbolic_time(expr: Any, now: int) -> Any:
    """``h(3)`` -> ``h(t)`` and ``h(2)`` -> ``h(t - 1)`` when ``now`` is 3."""
    mapping = {
        a: a.func(t + (int(time_of(a)) - now))
        for a in expr.atoms(AppliedUndef)
        if _at_integer_time(a)
    }
    return _rename(expr, mapping) if mapping else expr


def _to_integer_time(expr: Any, now: int) -> Any:
    """The inverse of :func:`_to_symbolic_time`."""
    mapping = {
        a: a.func(now + int(time_of(a) - t))
        for a in expr.atoms(AppliedUndef)
        if is_time_atom(a) and not time_of(a).is_Integer
    }
    return _rename(expr, mapping) if mapping else expr


@lru_cache(maxsize=4096)
def _template_derivative(template: sp.Expr, v: Any) -> sp.Expr:
    return derivative(template, v)


def _resolve_wrt(U: Unfolded, wrt: Any) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """Flatten ``wrt`` into scalar variables; remember matrix groups to reshape results."""
    if wrt is None:
        wrt = list(U.recurrence.params)
    elif not isinstance(wrt, (list, tuple)):
        wrt = [wrt]
    flat: list[Any] = []
    groups: list[tuple[Any, Any]] = []
    chain = U.definitions
    for item in wrt:
        item = parse_in_scope(item, U, "wrt")
        if is_matrix(item):
            entries = explicit(item)
            groups.append((item, entries))
            flat.extend(entries)
        else:
            groups.append((item, None))
            flat.append(item)
    for v in flat:
        if v in chain:
            raise SymrnnError(
                f"{v} is computed by the chain, not an independent variable; differentiate "
                "with respect to parameters, initial states or inputs (or use sr.jacobian)"
            )
        if not (isinstance(v, sp.Symbol) or is_time_atom(v)):
            raise SymrnnError(f"cannot differentiate with respect to {v}; use a symbol or x(k)")
    return flat, groups


def _times(U: Unfolded, func: Any) -> str:
    """The times at which the chain has ``func``, as ``h(0), h(1)…h(3)``."""
    have = sorted(
        int(time_of(a)) for a in (*U.definitions, *U.initial, *U.inputs) if a.func == func
    )
    if not have:
        return "none"
    if len(have) > 2 and have == list(range(have[0], have[-1] + 1)):
        return f"{func(have[0])}…{func(have[-1])}"
    return ", ".join(str(func(k)) for k in have)


def _check_reached(U: Unfolded, loss: sp.Expr, flat: list[Any]) -> None:
    """Refuse a derivative that would be zero only because its variable is not in the chain.

    A symbol that is neither a parameter nor in the loss (often one of the same name with other
    assumptions), a time that the chain does not have, and a loss that uses no quantity of the
    chain all give 0 for every variable: a wrong answer, not a result.
    """
    rec = U.recurrence
    atoms = time_atoms(loss)
    chain = set(U.definitions) | set(U.initial) | set(U.inputs)
    for a in sorted(atoms, key=sp.default_sort_key):
        if a.func in rec.defined and a not in chain:
            given = "; it was given a value in init" if a in dict(U.init) else ""
            raise SymrnnError(
                f"the loss uses {a}, which the chain does not have (it has "
                f"{_times(U, a.func)}){given}; unfold more steps or use an existing time"
            )
    if not atoms & chain and not set(flat) & (atoms | loss.free_symbols):
        names = ", ".join(_times(U, f) for f in rec.defined[:2])
        raise SymrnnError(
            f"the loss {_short(loss)} uses no quantity of the chain ({names}), so no parameter "
            "or state reaches it; write it in the recurrence's quantities, e.g. h(t)**2"
        )
    for v in flat:
        if isinstance(v, sp.Symbol):
            if v in rec.params or v in loss.free_symbols:
                continue
            twin = near_miss(v, (*rec.params, *loss.free_symbols))
            if twin:
                raise SymrnnError(f"cannot differentiate with respect to {v}: {twin}")
            params = ", ".join(map(str, rec.params)) or "none"
            raise SymrnnError(
                f"cannot differentiate with respect to {v}: it is neither a parameter of the "
                f"recurrence ({params}) nor in the loss"
            )
        if v not in chain and v not in atoms:
            given = " (it was given a value in init)" if v in dict(U.init) else ""
            raise SymrnnError(
                f"cannot differentiate with respect to {v}: the chain does not have it{given}; "
                f"it has {_times(U, v.func)}"
            )


def _short(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 40 else text[:37] + "..."


def _regroup(groups: list[tuple[Any, Any]], values: dict[Any, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, entries in groups:
        if entries is None:
            out[key] = values[key]
        else:
            out[key] = entries.applyfunc(lambda e: values[e])
    return out


# ------------------------------------------------------------------------------ BPTT
@dataclass(frozen=True)
class BPTT:
    r"""Back-propagation through time for one unfolded recurrence and loss, as equations.

    Attributes
    ----------
    unfolded : Unfolded
    loss : sympy.Expr
    adjoints : tuple of sympy.Eq
        ``Eq(Adjoint(v), …)`` from the last step to the first: the adjoint recursion, each
        right side in later adjoints and forward quantities.
    gradients : tuple of sympy.Eq
        ``Eq(Adjoint(θ), Σ_k …)`` for each parameter in ``wrt``: the sums over time.  (Initial
        states and inputs in ``wrt`` end the adjoint recursion, in ``adjoints``.)
    wrt : tuple
        The scalar variables differentiated with respect to.
    """

    unfolded: Unfolded
    loss: sp.Expr
    adjoints: tuple[sp.Equality, ...]
    gradients: tuple[sp.Equality, ...]
    wrt: tuple[Any, ...]

    def resolved(self) -> dict[Any, sp.Expr]:
        """Every adjoint as an expression in forward quantities only (no Adjoint symbols)."""
        values: dict[Any, sp.Expr] = {}
        for eq in self.adjoints:
            values[eq.lhs] = eq.rhs.xreplace(values)
        return values

    def gradient(self) -> dict[Any, sp.Expr]:
        """``{v: ∂L/∂v}`` for ``wrt``, in forward quantities (states, outputs, inputs, params)."""
        values = self.resolved()
        values.update((eq.lhs, eq.rhs.xreplace(values)) for eq in self.gradients)
        return {v: values.get(Adjoint(v), sp.S.Zero) for v in self.wrt}

    def count_ops(self) -> int:
        """Operations in the derivation as a chain of small equations (a linear-size measure)."""
        return sum(sp.count_ops(e.rhs) for e in (*self.adjoints, *self.gradients))

    def template(self) -> tuple[sp.Equality, ...]:
        r"""The adjoint recursion in symbolic t, the form textbooks print (eq. 10.21 and kin).

        For each defined quantity q: :math:`\partial L / \partial q^{(t)}` = the direct term of the
        per-step loss + :math:`\sum` over the equations r that use :math:`q^{(t-j)}` of
        :math:`\partial L / \partial r^{(t+j)} \cdot \partial r^{(t+j)} / \partial q^{(t)}`; then
        :math:`\partial L/\partial\theta = \sum_t \sum_r \partial L/\partial r^{(t)}\,
        \partial r^{(t)}/\partial \theta`.
        """
        return template_equations(self.unfolded.recurrence, self.wrt)

    def __str__(self) -> str:
        lines = [f"{e.lhs} = {e.rhs}" for e in (*self.adjoints, *self.gradients)]
        if len(lines) > 16:
            lines = lines[:8] + ["..."] + lines[-6:]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<BPTT: {self.unfolded.steps} steps, {len(self.adjoints)} adjoint equations, "
            f"gradients for {', '.join(map(str, self.wrt))}>"
        )

    def _latex_lines(self, max_lines: int = 14) -> list[str]:
        eqs = [f"{latex_expr(e.lhs)} &= {latex_expr(e.rhs)}" for e in self.template()]
        return eqs[:max_lines]

    def _repr_latex_(self) -> str:
        return "$\\begin{aligned}" + " \\\\ ".join(self._latex_lines()) + "\\end{aligned}$"


def template_equations(rec: Recurrence, wrt: Iterable[Any] = ()) -> tuple[sp.Equality, ...]:
    """The adjoint recursion of ``rec`` in symbolic t (see :meth:`BPTT.template`)."""
    D = step_derivatives(rec)
    loss_t = sp.Function("L", real=True)(t)
    terms: dict[Any, list[sp.Expr]] = {f: [] for f in rec.defined}
    for f in rec.defined:
        terms[f].append(sp.Derivative(loss_t, f(t)))
    for r, parts in D.partials.items():
        for atom, d in parts:
            if atom.func not in terms:
                continue
            lag = -int(sp.expand(time_of(atom) - t))
            shifted = d.subs(t, t + lag) if lag else d
            terms[atom.func].append(Adjoint(r(t + lag)) * shifted)
    eqs = [sp.Eq(Adjoint(f(t)), sp.Add(*terms[f]), evaluate=False) for f in reversed(rec.defined)]
    tau = sp.Symbol("tau", integer=True, positive=True)
    for p in wrt:
        if not isinstance(p, sp.Symbol):
            continue
        body = sp.Add(
            *[
                Adjoint(r(t)) * d
                for r, parts in D.param_partials.items()
                for q, d in parts
                if q == p
            ]
        )
        eqs.append(sp.Eq(Adjoint(p), sp.Sum(body, (t, 1, tau)), evaluate=False))
    return tuple(eqs)


def bptt(U: Unfolded, loss: Any, wrt: Any = None) -> BPTT:
    r"""Back-propagation through time for ``loss`` on the chain ``U``, as a :class:`BPTT`.

    ``loss`` is any expression in chain quantities (``h(3)``, ``o(2)``), inputs, targets and
    parameters.  ``wrt`` defaults to all parameters; it may hold parameter matrices, initial
    states ``h(0)`` and inputs ``x(k)``.
    """
    if not isinstance(U, Unfolded):
        raise SymrnnError(
            f"bptt needs an Unfolded chain (sr.unfold(rec, steps)), got {type(U).__name__}"
        )
    loss = _as_scalar_loss(parse_in_scope(loss, U, "the loss"))
    flat, _ = _resolve_wrt(U, wrt)
    _check_reached(U, loss, flat)
    chain = U.definitions
    wanted = set(flat)
    variables = set(chain) | wanted
    direct = _direct_partials(loss, variables)
    contributions: dict[Any, list[sp.Expr]] = {v: list(ds) for v, ds in direct.items()}
    adjoints: list[sp.Equality] = []
    for eq in reversed(U.equations):
        v = eq.lhs
        parts = contributions.pop(v, None)
        if not parts:
            continue
        adj = Adjoint(v)
        adjoints.append(sp.Eq(adj, sp.Add(*parts), evaluate=False))
        atoms, params = _chain_partials(U, eq)
        for a, d in atoms:
            contributions.setdefault(a, []).append(adj * d)
        for p, d in params:
            if p in wanted:
                contributions.setdefault(p, []).append(adj * d)
    # Initial states and inputs end the adjoint recursion; parameters collect sums over time.
    gradients: list[sp.Equality] = []
    for v in flat:
        total = sp.Eq(Adjoint(v), sp.Add(*contributions.get(v, [])), evaluate=False)
        (adjoints if is_time_atom(v) else gradients).append(total)
    return BPTT(U, loss, tuple(adjoints), tuple(gradients), tuple(flat))


def _as_scalar_loss(loss: Any) -> sp.Expr:
    if is_matrix(loss):
        m = explicit(loss)
        if m.shape != (1, 1):
            raise SymrnnError(
                f"the loss must be a scalar, got a {m.shape[0]}x{m.shape[1]} matrix; "
                "sum it or use sr.jacobian for vector quantities"
            )
        loss = m[0, 0]
    return expand_losses(_expression(loss, "the loss"))


def _expression(value: Any, what: str) -> sp.Expr:
    try:
        return sp.sympify(value, strict=True)
    except sp.SympifyError:
        raise TypeError(
            f"{what} must be a SymPy expression or a string, got {type(value).__name__}; "
            "pass e.g. h(3)**2 or 'h(3)**2'"
        ) from None


def _forward(U: Unfolded, loss: sp.Expr, flat: list[Any]) -> dict[Any, sp.Expr]:
    """Forward-mode (RTRL) derivatives of ``loss`` with respect to each scalar in ``flat``."""
    chain = U.definitions
    direct = _direct_partials(loss, set(chain) | set(flat))
    partials = {eq.lhs: _chain_partials(U, eq) for eq in U.equations}
    result: dict[Any, sp.Expr] = {}
    for theta in flat:
        tangent: dict[Any, sp.Expr] = {}
        if is_time_atom(theta):
            tangent[theta] = sp.S.One
        for eq in U.equations:
            atoms, params = partials[eq.lhs]
            terms = [d * tangent[a] for a, d in atoms if a in tangent]
            terms += [d for p, d in params if p == theta]
            if terms:
                tangent[eq.lhs] = sp.Add(*terms)
        total = [
            d * tangent[v] for v, ds in direct.items() for d in ds if v in tangent and v in chain
        ]
        total += direct.get(theta, [])
        result[theta] = sp.Add(*total)
    return result


def grad(
    U: Unfolded,
    loss: Any,
    wrt: Any = None,
    mode: str = "reverse",
    expand: bool = False,
) -> dict[Any, Any]:
    r"""The gradient :math:`\partial L / \partial v` for each ``v`` in ``wrt``.

    Parameters
    ----------
    U : Unfolded
        The chain, from :func:`symrnn.unfold`.
    loss : sympy.Expr
        Any scalar expression in chain quantities (``h(3)``, ``o(2)``), inputs, targets and
        parameters; :func:`total_loss` builds :math:`\sum_t L^{(t)}` from a template.
    wrt : symbol, matrix, atom or list of them, optional
        Parameters (default: all), parameter matrices (the result has the same shape), initial
        states ``h(0)`` and inputs ``x(k)``.
    mode : {"reverse", "forward"}
        Back-propagation through time or forward sensitivities (RTRL); both give equal results.
    expand : bool
        Substitute the chain so results are in initial states, inputs and parameters only
        (closed forms: for small step counts).

    Returns
    -------
    dict
        ``{v: ∂L/∂v}``; expressions in forward quantities only (no helper symbols).

    Examples
    --------
    >>> import sympy as sp, symrnn as sr
    >>> rnn = sr.cells.linear()
    >>> h, x = rnn.states[0], rnn.inputs[0]
    >>> a = sp.Symbol("a", real=True)
    >>> g = sr.grad(sr.unfold(rnn, 2), h(2), wrt=[a, h(0)], expand=True)
    >>> sp.factor(g[h(0)])
    a**2
    """
    if not isinstance(U, Unfolded):
        raise SymrnnError(
            f"grad needs an Unfolded chain (sr.unfold(rec, steps)), got {type(U).__name__}"
        )
    loss = parse_in_scope(loss, U, "the loss")
    flat, groups = _resolve_wrt(U, wrt)
    if mode == "reverse":
        values = bptt(U, loss, flat).gradient()
    elif mode == "forward":
        _check_reached(U, _as_scalar_loss(loss), flat)
        values = _forward(U, _as_scalar_loss(loss), flat)
    else:
        raise SymrnnError(f"mode must be 'reverse' or 'forward', got {mode!r}")
    if expand:
        values = {k: expand_chain(U, v) for k, v in values.items()}
    return Gradients(_regroup(groups, values))


def expand_chain(U: Unfolded, expr: Any) -> Any:
    """Replace every chain quantity in ``expr`` by its closed form (small step counts)."""
    atoms = {a for a in expr.atoms(AppliedUndef) if a in U.definitions}
    if not atoms:
        return expr
    latest = max(int(time_of(a)) for a in atoms)
    memo: dict[Any, Any] = {}
    for eq in U.equations:
        if int(time_of(eq.lhs)) > latest:
            break
        memo[eq.lhs] = eq.rhs.xreplace(memo)
    return expr.xreplace(memo)


def jacobian(U: Unfolded, of: Any, wrt: Any, expand: bool = False) -> Any:
    r"""The Jacobian :math:`\partial\,\text{of} / \partial\,\text{wrt}` on the chain.

    ``of`` is a chain quantity such as ``h(3)`` (or a vector ``h(3)``); ``wrt`` an earlier state
    ``h(1)``, an input ``x(k)``, a parameter or a parameter matrix.  For states this is the
    product of step Jacobians :math:`\prod_k \partial h^{(k)}/\partial h^{(k-1)}`.

    >>> import symrnn as sr
    >>> U = sr.unfold(sr.cells.rnn(), 3)
    >>> h = U.recurrence.states[0]
    >>> sr.jacobian(U, h(3), h(1))
    w**2*(1 - h(2)**2)*(1 - h(3)**2)
    """
    of, wrt = parse_in_scope(of, U, "of"), parse_in_scope(wrt, U, "wrt")
    rows = list(explicit(of)) if is_matrix(of) else [of]
    cols = list(explicit(wrt)) if is_matrix(wrt) else [wrt]
    for r in rows:
        if r not in U.definitions:
            raise SymrnnError(f"{r} is not a quantity of the chain; use e.g. h({U.steps})")
    _check_reached(
        U, sp.Add(*rows), _resolve_wrt(U, [c for c in cols if c not in U.definitions])[0]
    )
    entries = [[None] * len(cols) for _ in rows]
    for i, r in enumerate(rows):
        sub = _truncated(U, int(time_of(r)))
        internal = [c for c in cols if c in sub.definitions]
        values: dict[Any, Any] = {}
        if internal:
            values.update(_internal_derivatives(sub, r, internal))
        # Inputs after step k cannot reach ``r``: their derivative is 0 by causality.
        earlier = {*sub.initial, *sub.inputs}
        external = [
            c for c in cols if c not in sub.definitions and (not is_time_atom(c) or c in earlier)
        ]
        if external:
            flat, _ = _resolve_wrt(sub, external)
            values.update(bptt(sub, r, flat).gradient())
        for j, c in enumerate(cols):
            value = values.get(c, sp.S.Zero)
            entries[i][j] = expand_chain(sub, value) if expand else value
    if not is_matrix(of) and not is_matrix(wrt):
        return entries[0][0]
    return sp.ImmutableMatrix(entries)


def _truncated(U: Unfolded, k: int) -> Unfolded:
    """The chain up to step k (so the adjoint recursion starts at the quantity asked for)."""
    if k == U.steps:
        return U
    eqs = tuple(e for e in U.equations if int(time_of(e.lhs)) <= k)
    return Unfolded(U.recurrence, k, eqs, U.init)


def _internal_derivatives(U: Unfolded, of: Any, wrt: list[Any]) -> dict[Any, sp.Expr]:
    """∂of/∂v for chain quantities v: run the adjoint recursion and read the adjoints."""
    B = bptt(U, of, [])
    resolved = B.resolved()
    return {v: resolved.get(Adjoint(v), sp.S.Zero) for v in wrt}


__all__ += [
    "expand_chain",
    "template_equations",
    "derivative",
    "classify_loss",
    "loss_only_symbols",
]
