r"""Unfolding a recurrence into a chain of per-step equations (Goodfellow et al., Fig. 10.2).

:func:`unfold` instantiates the template equations at t = 1, …, τ:

.. math::
    h^{(1)} := f(h^{(0)}, x^{(1)}; \theta),\quad h^{(2)} := f(h^{(1)}, x^{(2)}; \theta),\ \dots

one symbol per quantity per step.  The chain is never built as one nested tree: closed forms
:math:`g^{(t)}(x^{(t)}, \dots, x^{(1)})` are a *view* made by substitution, for display and checks
at small t.  Work and size grow linearly in the number of steps.

Reference semantics (what the chain means)::

    for k in range(1, steps + 1):
        for q in rec.defined:                 # evaluation order (same-time dependencies first)
            q(k) = rec.update[q] with t -> k  # h(t-1) -> h(k-1), x(t) -> x(k), ...

>>> import sympy as sp
>>> import symrnn as sr
>>> s, f = sp.Function("s"), sp.Function("f")
>>> theta = sp.Symbol("theta")
>>> U = sr.unfold(sr.Recurrence(sp.Eq(s(sr.t), f(s(sr.t - 1), theta))), 3)
>>> U.state(3)
Eq(s(3), f(s(2), theta))
>>> U.nested(3, levels=2)
f(f(s(1), theta), theta)
>>> U.closed_form(3)
f(f(f(s(0), theta), theta), theta)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import sympy as sp
from sympy.core.add import _addsort
from sympy.core.function import AppliedUndef
from sympy.core.mul import _mulsort

from .errors import LimitError, UnfoldError
from .matrices import TimeVector, VectorAt, explicit, is_matrix
from .notation import (
    at_time,
    is_time_atom,
    latex_expr,
    shift_of,
    str_expr,
    t,
    time_atoms,
    time_of,
)
from .parsing import parse_in_scope
from .recurrence import Recurrence

__all__ = ["unfold", "Unfolded", "MAX_STEPS", "MAX_CLOSED_FORM_STEPS", "MAX_CLOSED_FORM_NODES"]

#: Largest number of steps :func:`unfold` accepts (a chain this long holds millions of nodes).
MAX_STEPS = 1_000_000
#: Closed forms nest one level per step; beyond this they are unreadable and slow to build.
MAX_CLOSED_FORM_STEPS = 200
#: Nodes of one closed form counted as a tree, the way printing and numeric evaluation walk it
#: (a subexpression used twice counts twice; see :meth:`Unfolded.closed_form_size`).  It is
#: estimated on the chain before substituting: ``h(t) = h(t-1)**2 + h(t-1)`` doubles at every
#: step, so at 30 steps it would have a billion nodes.
MAX_CLOSED_FORM_NODES = 1_000_000

THETA = sp.Symbol("theta")


def _rename(expr: Any, mapping: dict[Any, Any]) -> Any:
    """Substitute time atoms for time atoms in a canonical template, without re-evaluating.

    Renaming ``h(t-1)`` to ``h(4)`` keeps the template's canonical form (shifts preserve the
    order of arguments) and cannot create anything SymPy's evaluation would simplify, so the
    nodes are rebuilt unevaluated: evaluation asks costly assumption queries (``tanh.eval``,
    ``Mul.flatten``) and would make unfolding and differentiation several times slower.
    """
    if expr in mapping:
        return mapping[expr]
    if not expr.args:
        return expr
    args = [_rename(a, mapping) for a in expr.args]
    if isinstance(expr, (sp.Add, sp.Mul)):
        # A shift can swap the canonical order of two atoms (h(t-2) vs h(t-1)); re-sort only.
        numbers = [a for a in args if a.is_Number]
        rest = [a for a in args if not a.is_Number]
        (_addsort if isinstance(expr, sp.Add) else _mulsort)(rest)
        out = expr.func(*numbers, *rest, evaluate=False)
    elif isinstance(expr, (sp.Function, sp.Pow, sp.Max, sp.Min)) and not isinstance(
        expr, AppliedUndef
    ):
        # Max/Min compare every pair of arguments when evaluated: seconds for eight of them.
        out = expr.func(*args, evaluate=False)
    else:
        out = expr.func(*args)
    mapping[expr] = out  # the mapping doubles as a memo: shared subtrees are renamed once
    return out


@lru_cache(maxsize=4096)
def _uses_time(template: sp.Expr) -> bool:
    return t in template.free_symbols


@lru_cache(maxsize=4096)
def _template_atoms(rhs: sp.Expr) -> tuple[tuple[Any, Any, int], ...]:
    return tuple(
        (a, a.func, int(shift_of(a)))  # type: ignore[arg-type]
        for a in sorted(time_atoms(rhs), key=sp.default_sort_key)
    )


@dataclass(frozen=True, eq=False)
class Unfolded:
    r"""A recurrence unfolded over ``steps`` time steps: a chain of per-step equations.

    Attributes
    ----------
    recurrence : Recurrence
    steps : int
    equations : tuple of sympy.Eq
        ``Eq(h(k), ...)`` for k = 1 … steps, every defined quantity in evaluation order.
    init : tuple of (atom, value)
        Initial states given values; the others stay symbolic (``h(0)``, ``h(-1)``, …).
    """

    recurrence: Recurrence
    steps: int
    chain: tuple[sp.Equality, ...] | None = None
    init: tuple[tuple[Any, Any], ...] = ()
    _closed: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def equations(self) -> tuple[sp.Equality, ...]:
        """``Eq(h_i(k), ...)`` for k = 1 … steps: the component chain (explicit sizes only).

        For a scalar recurrence this is the chain itself; for a vector recurrence it is the
        component view of :attr:`blocks`, built on first use.
        """
        if self.chain is not None:
            return self.chain
        rec = self.recurrence
        return tuple(
            sp.Eq(eq.lhs.func(k), self.instantiate(eq.rhs, k), evaluate=False)
            for k in range(1, self.steps + 1)
            for eq in rec.equations
        )

    @cached_property
    def blocks(self) -> tuple[sp.Equality, ...]:
        r"""The chain at matrix level: one equation per vector per step,
        :math:`\mathbf{h}^{(k)} = \tanh(\mathbf{W}\mathbf{h}^{(k-1)} + \dots)`, for any size."""
        if not self.recurrence.is_vector:
            return self.equations
        mapping = self._initial_blocks()
        out = []
        for k in range(1, self.steps + 1):
            for eq in self.recurrence.blocks.equations:
                at_k = sp.Eq(eq.lhs.xreplace({t: k}), eq.rhs.xreplace({t: k}), evaluate=False)
                out.append(at_k.xreplace(mapping) if mapping else at_k)
        return tuple(out)

    # --------------------------------------------------------------------------- lookups
    @cached_property
    def definitions(self) -> dict[Any, sp.Expr]:
        """Map from each chain quantity (``h(3)``) to its defining right-hand side."""
        return {eq.lhs: eq.rhs for eq in self.equations}

    @cached_property
    def initial(self) -> tuple[Any, ...]:
        """Initial states that stay symbolic: ``h(0)`` (and ``h(-1)``, … for higher orders)."""
        given = {a for a, _ in self.init}
        return tuple(
            s(k)
            for s in self.recurrence.states
            for k in range(1 - self.recurrence.lag(s), 1)
            if s(k) not in given
        )

    @cached_property
    def inputs(self) -> tuple[Any, ...]:
        """Input quantities the chain reads, ``x(1)`` … ``x(steps)`` (and ``x(0)`` for lags)."""
        found: set[Any] = set()
        for eq in self.equations:
            found |= {a for a in time_atoms(eq.rhs) if a.func in self.recurrence.inputs}
        return tuple(sorted(found, key=lambda a: (a.func.__name__, int(time_of(a)))))

    @property
    def params(self) -> tuple[Any, ...]:
        return self.recurrence.params

    def __len__(self) -> int:
        return self.steps

    @cached_property
    def _initial_values(self) -> dict[Any, Any]:
        return dict(self.init)

    def instantiate(self, template: Any, k: int) -> Any:
        """A template expression in t (``h(t-1)``, ``x(t)``) at step ``k`` of this chain.

        Initial states given values in ``init`` are replaced by them.  This is how the chain
        equations and the per-step derivatives are made from the recurrence's templates.
        """
        return self.instantiate_all([template], k)[0]

    def instantiate_all(self, templates: list[Any], k: int) -> list[Any]:
        """Several templates at step ``k``, sharing one renaming (common subtrees done once)."""
        mapping: dict[Any, Any] = {}
        for template in templates:
            mapping.update((a, f(k + s)) for a, f, s in _template_atoms(template))
            if _uses_time(template):
                mapping[t] = sp.Integer(k)  # explicit time dependence, e.g. h(t) = h(t-1) + t
        initial = self._initial_values
        if initial and any(v in initial for v in mapping.values()):
            mapping = {a: initial.get(v, v) for a, v in mapping.items()}
            return [tpl.xreplace(mapping) for tpl in templates]  # values: let SymPy simplify
        return [_rename(tpl, mapping) for tpl in templates]

    def _initial_blocks(self) -> dict[Any, Any]:
        """Initial values for the matrix-level chain: whole vectors whose components are given."""
        given = dict(self.init)
        if not given:
            return {}
        rec = self.recurrence
        mapping = {a: v for a, v in given.items() if not isinstance(a, VectorAt)}
        for name, v in rec.blocks.vectors:
            func = next((f for f in rec.blocks.defined if f.__name__ == name), None)
            for k in range(1 - (rec.blocks.lag(func) if func else 0), 1):
                at_k = VectorAt(name, k, v.shape[0])
                comps = at_k.components()
                if all(c in given for c in comps):
                    mapping[at_k] = sp.ImmutableMatrix([given[c] for c in comps])
        return mapping

    def __iter__(self) -> Iterator[sp.Equality]:
        return iter(self.equations)

    def __getitem__(self, k: int) -> Any:
        return self.state(k)

    def _components(self, of: Any) -> tuple[list[Any], bool]:
        """Resolve ``of`` (function, name, vector) to its component functions; True if vector."""
        rec = self.recurrence
        if of is None:
            groups = _state_groups(rec)
            if len(groups) != 1:
                names = ", ".join(name for name, _ in groups)
                raise UnfoldError(
                    f"the recurrence has several states ({names}); say which one with of=..."
                )
            return list(groups[0][1]), groups[0][0] in rec.vectors
        if isinstance(of, (TimeVector, VectorAt)):
            of = of.name
        if isinstance(of, str):
            if of in rec.vectors:
                return list(rec.vectors[of]), True
            matches = [f for f in rec.defined if f.__name__ == of]
        else:
            matches = [f for f in rec.defined if f == of]
        if not matches:
            known = ", ".join(f.__name__ for f in rec.defined)
            raise UnfoldError(f"{of} is not defined by the recurrence; choose one of {known}")
        return matches, False

    def _check_step(self, k: int, lowest: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, sp.Integer)):
            raise UnfoldError(
                f"step {k!r} is not an integer; give a step in {lowest}..{self.steps}"
            )
        if k > self.steps:
            raise UnfoldError(
                f"step {k} is outside the unfolding (steps {lowest}..{self.steps}); "
                f"unfold further with sr.unfold(rec, {k})"
            )
        if k < lowest:
            raise UnfoldError(
                f"step {k} is outside the unfolding (steps {lowest}..{self.steps}); the initial "
                "states before step 1 are U.initial"
            )

    # ------------------------------------------------------------------------------ views
    def state(self, k: int, of: Any = None) -> sp.Equality:
        """The chain equation defining the state at step ``k``: ``Eq(h(k), f(h(k-1), x(k); θ))``."""
        self._check_step(k)
        funcs, vec = self._components(of)
        lhs = [f(k) for f in funcs]
        rhs = [self.definitions[a] for a in lhs]
        if vec:
            return sp.Eq(sp.ImmutableMatrix(lhs), sp.ImmutableMatrix(rhs), evaluate=False)
        return sp.Eq(lhs[0], rhs[0], evaluate=False)

    def closed_form(self, k: int, of: Any = None) -> Any:
        r"""The closed form :math:`g^{(k)}`: the state at step ``k`` in initial states, inputs and
        parameters only, made by substituting the chain into itself."""
        self._check_step(k)
        if k > MAX_CLOSED_FORM_STEPS:
            raise LimitError(
                f"closed_form({k}) would nest {k} levels deep (limit {MAX_CLOSED_FORM_STEPS}); "
                "closed forms are a view for small t: use the chain U.equations or sr.lambdify"
            )
        funcs, vec = self._components(of)
        nodes = self._closed_form_nodes(k, funcs)
        if nodes > MAX_CLOSED_FORM_NODES:
            raise LimitError(
                f"closed_form({k}) would have about {nodes:,} nodes, more than the limit of "
                f"{MAX_CLOSED_FORM_NODES:,} (it grows with every step); use a smaller step, the "
                "chain U.equations or sr.lambdify"
            )
        try:
            values = [self._substituted(f(k), 0, self._closed) for f in funcs]
        except RecursionError:
            raise LimitError(
                f"closed_form({k}) is too deeply nested for SymPy; use a smaller step"
            ) from None
        return sp.ImmutableMatrix(values) if vec else values[0]

    def closed_form_size(self, k: int, of: Any = None) -> int:
        """Nodes of ``closed_form(k, of)`` as a tree, counted on the chain (no substitution).

        Printing a closed form walks this many nodes (about 30 µs each); it grows exponentially
        with k when a state is used twice in its update.

        >>> import symrnn as sr
        >>> U = sr.unfold(sr.Recurrence.parse("h(t) = h(t-1)**2 + h(t-1)"), 30)
        >>> U.closed_form_size(2), U.closed_form_size(30) > 10**9
        (17, True)
        """
        self._check_step(k)
        funcs, _ = self._components(of)
        return self._closed_form_nodes(k, funcs)

    def _closed_form_nodes(self, k: int, funcs: Sequence[Any]) -> int:
        """The largest tree size of the closed forms of ``funcs`` at step k, from the chain."""
        sizes: dict[Any, int] = {}
        for eq in self.equations:
            if int(time_of(eq.lhs)) > k:
                break
            total, stack = 0, [eq.rhs]
            while stack:
                node = stack.pop()
                if node in sizes:
                    total += sizes[node]
                else:
                    total += 1
                    stack.extend(node.args)
            sizes[eq.lhs] = total
        return max(sizes[f(k)] for f in funcs)

    def nested(self, k: int, of: Any = None, levels: int | None = None) -> Any:
        r"""The unfolding with the update abstracted as :math:`f`, as in the lecture.

        ``nested(3, levels=2)`` is :math:`f(f(s^{(1)}; \theta); \theta)`: the steps k, k-1 written
        through ``f``, the earlier state left as it is.  ``levels=None`` unfolds to the initial
        state.
        """
        self._check_step(k)
        if levels is not None and (
            isinstance(levels, bool) or not isinstance(levels, (int, sp.Integer)) or levels < 1
        ):
            raise UnfoldError(f"levels must be a positive integer, got {levels!r}")
        funcs, vec = self._components(of)
        stop = 0 if levels is None else max(k - levels, 0)
        abstract = _abstract_chain(self)
        memo: dict[Any, Any] = {}
        values = [_substitute_chain(abstract, f(k), stop, memo) for f in funcs]
        return sp.ImmutableMatrix(values) if vec else values[0]

    def _substituted(self, atom: Any, stop: int, memo: dict[Any, Any]) -> Any:
        return _substitute_chain(self.equations, atom, stop, memo)

    # ---------------------------------------------------------------------------- printing
    def __repr__(self) -> str:
        name = f" {self.recurrence.name!r}" if self.recurrence.name else ""
        if self.recurrence.is_vector:
            return f"<Unfolded{name}: {self.steps} steps, {len(self.blocks)} vector equations>"
        return f"<Unfolded{name}: {self.steps} steps, {len(self.equations)} equations>"

    def __str__(self) -> str:
        # Only the printed equations are converted: a long chain prints in constant time.
        eqs = self.blocks
        if len(eqs) > 12:
            return "\n".join([*map(_str_eq, eqs[:6]), "...", *map(_str_eq, eqs[-3:])])
        return "\n".join(map(_str_eq, eqs))

    def _latex_lines(self, max_lines: int = 12) -> list[str]:
        eqs = self.blocks
        if len(eqs) > max_lines:
            head, tail = eqs[: max_lines // 2], eqs[-2:]
            return [*map(_latex_eq, head), "&\\;\\;\\vdots", *map(_latex_eq, tail)]
        return list(map(_latex_eq, eqs))

    def _repr_latex_(self) -> str:
        return "$\\begin{aligned}" + " \\\\ ".join(self._latex_lines()) + "\\end{aligned}$"


def _str_eq(eq: sp.Equality) -> str:
    return f"{str_expr(eq.lhs)} = {str_expr(eq.rhs)}"


def _latex_eq(eq: sp.Equality) -> str:
    return f"{latex_expr(eq.lhs)} &:= {latex_expr(eq.rhs)}"


def _state_groups(rec: Recurrence) -> list[tuple[str, tuple[Any, ...]]]:
    """States grouped as the user wrote them: a vector is one group, a scalar one its own."""
    groups: list[tuple[str, tuple[Any, ...]]] = []
    seen: set[Any] = set()
    by_component = {f: name for name, comps in rec.vectors.items() for f in comps}
    for s in rec.states:
        if s in seen:
            continue
        name = by_component.get(s)
        if name is not None:
            comps = rec.vectors[name]
            seen |= set(comps)
            groups.append((name, comps))
        else:
            seen.add(s)
            groups.append((s.__name__, (s,)))
    return groups


def _substitute_chain(
    equations: tuple[sp.Equality, ...] | list[sp.Equality], target: Any, stop: int, memo: dict
) -> Any:
    """``target`` with every chain quantity at a time > ``stop`` replaced by its definition.

    Works forward through the chain so that no step is substituted twice (``memo`` is shared
    across calls with the same ``stop``).
    """
    if target in memo:
        return memo[target]
    if not is_time_atom(target):
        raise UnfoldError(f"{target} is not a quantity of the unfolded chain")
    horizon = int(time_of(target))
    for eq in equations:
        time = int(time_of(eq.lhs))
        if time > horizon:
            break
        if time <= stop or eq.lhs in memo:
            continue
        memo[eq.lhs] = eq.rhs.xreplace(memo)
    if target not in memo:
        if int(time_of(target)) <= stop:
            return target
        raise UnfoldError(f"{target} is not a quantity of the unfolded chain")
    return memo[target]


def _abstract_chain(U: Unfolded) -> list[sp.Equality]:
    """The chain with each update written as an abstract function f(state…, input…; θ)."""
    rec = U.recurrence
    single = len(rec.defined) == 1
    templates = {}
    for eq in rec.equations:
        rhs = eq.rhs
        if (
            isinstance(rhs, sp.Function)
            and not is_time_atom(rhs)
            and rhs.func.__class__ is sp.core.function.UndefinedFunction
        ):
            templates[eq.lhs.func] = rhs  # already abstract (the lecture's f(s(t-1); θ))
            continue
        atoms = sorted(
            time_atoms(rhs),
            key=lambda a: (
                a.func in rec.inputs,
                -(shift_of(a) or 0),
                a.func.__name__,
            ),
        )
        name = "f" if single else f"f_{eq.lhs.func.__name__}"
        args = list(atoms) + ([THETA] if rhs.free_symbols - {t} else [])
        templates[eq.lhs.func] = sp.Function(name)(*args)
    out = []
    for eq in U.equations:
        k = int(time_of(eq.lhs))
        template = templates[eq.lhs.func]
        mapping = {a: at_time(a, time_of(a).subs(t, k)) for a in time_atoms(template)}
        mapping[t] = sp.Integer(k)
        out.append(sp.Eq(eq.lhs, template.xreplace(mapping), evaluate=False))
    return out


def _initial_mapping(rec: Recurrence, init: Mapping[Any, Any] | None) -> dict[Any, Any]:
    if not init:
        return {}
    if not isinstance(init, Mapping):
        raise UnfoldError(
            f"init must be a mapping from initial states to values, got {type(init).__name__}; "
            "pass e.g. {h(0): 0.5}"
        )
    mapping: dict[Any, Any] = {}
    for key, value in init.items():
        key = parse_in_scope(key, rec, "an init key")
        value = parse_in_scope(value, rec, f"init[{key}]")
        if isinstance(key, VectorAt) or (is_matrix(key) and not isinstance(key, sp.MatrixSymbol)):
            keys, values = list(explicit(key)), list(explicit(value))
            if len(keys) != len(values):
                raise UnfoldError(
                    f"init value for {key} has {len(values)} entries, expected {len(keys)}"
                )
        elif isinstance(key, TimeVector) or (callable(key) and not isinstance(key, sp.Basic)):
            funcs = key.components if isinstance(key, TimeVector) else (key,)
            unknown = [f for f in funcs if f not in rec.states]
            if unknown:
                names = ", ".join(s.__name__ for s in rec.states)
                raise UnfoldError(
                    f"init key {key} is not a state of the recurrence; use one of {names}"
                )
            vals = list(explicit(value)) if is_matrix(value) else [value] * len(funcs)
            if len(vals) != len(funcs):
                raise UnfoldError(
                    f"init value for {key} has {len(vals)} entries, expected {len(funcs)}"
                )
            keys, values = [], []
            for f, v in zip(funcs, vals, strict=False):
                for k in range(1 - rec.lag(f), 1):
                    keys.append(f(k))
                    values.append(v)
        else:
            keys, values = [key], [value]
        for k_, v in zip(keys, values, strict=False):
            if not (is_time_atom(k_) and k_.func in rec.states and int(time_of(k_)) <= 0):
                raise UnfoldError(
                    f"init key {k_} is not an initial state; use h(0) (or h(-1), ... for "
                    f"higher orders) for a state of the recurrence"
                )
            try:
                mapping[k_] = sp.sympify(v, strict=True)
            except sp.SympifyError:
                raise UnfoldError(
                    f"init value for {k_} must be a number or a SymPy expression, got "
                    f"{type(v).__name__}"
                ) from None
    return mapping


def unfold(rec: Recurrence, steps: int, init: Mapping[Any, Any] | None = None) -> Unfolded:
    r"""Unfold ``rec`` over ``steps`` time steps into a chain of per-step equations.

    Parameters
    ----------
    rec : Recurrence
    steps : int
        Number of steps τ ≥ 1; quantities are computed at t = 1 … τ.
    init : mapping, optional
        Values or expressions for initial states, keyed by ``h(0)`` (or by ``h`` for all of its
        initial times, or by a vector ``h(0)``); the rest stay symbolic.

    Returns
    -------
    Unfolded

    Examples
    --------
    >>> import sympy as sp
    >>> import symrnn as sr
    >>> h, x = sp.symbols("h x", cls=sp.Function)
    >>> w = sp.Symbol("w")
    >>> U = sr.unfold(sr.Recurrence(sp.Eq(h(sr.t), sp.tanh(w*h(sr.t-1) + x(sr.t)))), 2)
    >>> U.equations
    (Eq(h(1), tanh(w*h(0) + x(1))), Eq(h(2), tanh(w*h(1) + x(2))))
    >>> U.closed_form(2)
    tanh(w*tanh(w*h(0) + x(1)) + x(2))
    """
    if not isinstance(rec, Recurrence):
        raise UnfoldError(f"unfold needs a Recurrence, got {type(rec).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, sp.Integer)) or steps < 1:
        raise UnfoldError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    if steps > MAX_STEPS:
        raise LimitError(f"steps = {steps} exceeds the limit of {MAX_STEPS:,}; unfold fewer steps")
    initial = _initial_mapping(rec, init)
    U = Unfolded(rec, steps, None, tuple(initial.items()))
    if rec.is_vector:
        return U  # one equation per vector per step; components are built on request
    return Unfolded(rec, steps, U.equations, U.init)
