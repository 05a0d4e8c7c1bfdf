r"""The :class:`Recurrence`: equations :math:`h^{(t)} = f(h^{(t-1)}, x^{(t)}; \theta)` over time.

A recurrence is written the way SymPy's ``rsolve`` takes one, with undefined functions applied to
the time index ``t``.  symrnn infers which quantities are states, inputs, outputs, same-time
intermediates and parameters, checks that the system is explicit (computable step by step), and
keeps both the form the user wrote (matrix form, for printing) and the scalar equations it
computes with.

>>> import sympy as sp
>>> import symrnn as sr
>>> t = sr.t
>>> h, x = sp.symbols("h x", cls=sp.Function)
>>> w, u, b = sp.symbols("w u b")
>>> rnn = sr.Recurrence(sp.Eq(h(t), sp.tanh(w*h(t-1) + u*x(t) + b)), name="elman")
>>> rnn.states, rnn.inputs, rnn.params, rnn.order
((h,), (x,), (b, u, w), 1)
>>> print(rnn)
elman: h(t) = tanh(b + w*h(t - 1) + u*x(t))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.matexpr import MatrixExpr

from .errors import LimitError, RecurrenceError
from .matrices import VectorAt, explicit, is_matrix
from .notation import (
    is_time_atom,
    latex_expr,
    shift_of,
    str_expr,
    t,
    time_atoms,
    time_function,
    time_of,
)
from .parsing import check_magnitudes, parse_equations, parse_in_scope

__all__ = ["Recurrence", "MAX_LAG"]

#: Largest lag ``k`` in ``h(t-k)`` or ``x(t-k)``.  Each lag of a state is an initial value to
#: carry through unfolding, code and checks, so ``h(t-100000)`` would mean 100,000 of them.
MAX_LAG = 1_000


def near_miss(symbol: Any, candidates: Iterable[Any]) -> str | None:
    """Say why ``symbol`` is not one of ``candidates`` when one has its name (other assumptions).

    ``sp.Symbol("w")`` and the ``w`` of a parsed recurrence (real) are different symbols to
    SymPy: a derivative by one is 0 where the other appears.  Returns ``None`` for no twin.

    >>> message = near_miss(sp.Symbol("w"), [sp.Symbol("w", real=True)])
    >>> message[:59]
    'w has the name of the parameter w but other assumptions (no'
    >>> "(none vs real=True)" in message
    True
    """
    twins = [c for c in candidates if str(c) == str(symbol) and c != symbol]
    if not twins:
        return None

    def given(s: Any) -> str:
        orig = getattr(s, "_assumptions_orig", {})
        return ", ".join(f"{k}={v}" for k, v in sorted(orig.items())) or "none"

    return (
        f"{symbol} has the name of the parameter {twins[0]} but other assumptions "
        f"({given(symbol)} vs {given(twins[0])}); take the symbol from rec.params or pass its "
        "name as a string"
    )


def _not_a_param(key: Any, params: Sequence[Any]) -> str:
    names = ", ".join(map(str, params)) or "none"
    return near_miss(key, params) or (
        f"{key} is not a parameter of the recurrence (its parameters: {names})"
    )


def _value(key: Any, value: Any) -> sp.Expr:
    """A value for a parameter: a number or SymPy expression (text is read by the parser)."""
    try:
        return sp.sympify(value, strict=True)
    except sp.SympifyError:
        raise RecurrenceError(
            f"the value for {key} must be a number or a SymPy expression, got "
            f"{type(value).__name__}"
        ) from None


def _describe(eq: Any) -> str:
    text = str(eq)
    return text if len(text) <= 70 else text[:67] + "..."


def _as_equations(equations: Any) -> tuple[Any, ...]:
    if equations is sp.true or equations is sp.false:
        equations = [equations]  # reported below with the remedy
    if isinstance(equations, (sp.Eq, sp.Equality)) or (
        isinstance(equations, tuple) and len(equations) == 2 and not isinstance(equations[0], sp.Eq)
    ):
        equations = [equations]
    try:
        items = tuple(equations)
    except TypeError:
        raise RecurrenceError(
            f"Recurrence needs an equation Eq(h(t), ...) or a list of them, got {equations!r}"
        ) from None
    if not items:
        raise RecurrenceError("Recurrence got no equations; write e.g. Eq(h(t), tanh(w*h(t-1)))")
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            item = sp.Eq(item[0], item[1], evaluate=False)
        if item is sp.true or item is sp.false:
            raise RecurrenceError(
                "an equation evaluated to True/False before symrnn saw it (SymPy does so for "
                "equal sides and for sides of different shapes); write it as "
                "Eq(lhs, rhs, evaluate=False) or as a (lhs, rhs) tuple"
            )
        if not isinstance(item, sp.Equality):
            raise RecurrenceError(
                f"Recurrence equations must be sympy.Eq(lhs, rhs), got {_describe(item)}"
            )
        out.append(item)
    return tuple(out)


def _scalarize(eq: sp.Equality) -> list[tuple[AppliedUndef, sp.Expr]]:
    """Split one (possibly matrix) equation into (lhs atom, rhs) pairs, checking the left side."""
    lhs, rhs = eq.lhs, eq.rhs
    if is_matrix(lhs) or is_matrix(rhs):
        if not (is_matrix(lhs) and is_matrix(rhs)):
            raise RecurrenceError(
                f"in {_describe(eq)}: one side is a matrix and the other a scalar; "
                "both sides must have the same shape"
            )
        lhs_e, rhs_e = explicit(lhs), explicit(rhs)
        if lhs_e.shape != rhs_e.shape:
            raise RecurrenceError(
                f"in {_describe(eq)}: left side has shape {lhs_e.shape}, right side "
                f"{rhs_e.shape}; make the shapes agree"
            )
        pairs = list(zip(lhs_e, rhs_e, strict=False))
    else:
        pairs = [(lhs, rhs)]
    for left, _ in pairs:
        if not (is_time_atom(left) and time_of(left) == t):
            raise RecurrenceError(
                f"left side of {_describe(eq)} is {left}, not a quantity at time t; "
                "write the defined quantity as name(t), e.g. Eq(h(t), ...)"
            )
    return pairs  # type: ignore[return-value]


def _head(lhs: Any) -> str:
    """The left side of an equation as text, without printing anything SymPy must evaluate."""
    return f"{lhs.name}(t)" if isinstance(lhs, VectorAt) else str(lhs)


def _check_time_arguments(eq: Any, rhs: sp.Expr) -> None:
    for atom in sorted(time_atoms(rhs), key=sp.default_sort_key):
        k = shift_of(atom) if not time_of(atom).is_Integer else None
        if k is None:
            raise RecurrenceError(
                f"in {_describe(eq)}: {atom} has time argument {time_of(atom)}, not t - k for a "
                "constant integer k; write lags as t - 1, t - 2, ..."
            )
        if -k > MAX_LAG:
            raise LimitError(
                f"in {_describe(eq)}: {atom} has a lag of {-k:,}, more than the limit of "
                f"{MAX_LAG:,}; write the recurrence with shorter lags"
            )
        if k > 0:
            raise RecurrenceError(
                f"in {_describe(eq)}: {atom} refers to the future (t + {k}); a recurrence may "
                "only use the present and the past, such as t and t - 1"
            )
    for call in rhs.atoms(AppliedUndef):
        if not is_time_atom(call) and len(call.args) == 1 and not call.args[0].atoms(AppliedUndef):
            arg = call.args[0]
            if t in arg.free_symbols or arg.is_Number:
                continue
            raise RecurrenceError(
                f"in {_describe(eq)}: {call} has time argument {arg}, not t - k; "
                "write lags as t - 1, t - 2, ..."
            )


def _evaluation_order(
    eq_text: dict[Any, str], same_time_deps: dict[Any, set[Any]]
) -> tuple[Any, ...]:
    """Topological order of the defined quantities by their same-time dependencies."""
    order: list[Any] = []
    state: dict[Any, int] = {}  # 1 = on the stack, 2 = done
    for root in sorted(same_time_deps, key=lambda f: f.__name__):
        if state.get(root) == 2:
            continue
        stack = [(root, iter(sorted(same_time_deps[root], key=lambda f: f.__name__)))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state.get(child) == 1:
                cycle = [n.__name__ for n, _ in stack]
                cycle = cycle[cycle.index(child.__name__) :] + [child.__name__]
                raise RecurrenceError(
                    f"same-time dependencies form a cycle {' -> '.join(c + '(t)' for c in cycle)}; "
                    f"at least one of them must use a lagged value, e.g. {child.__name__}(t-1), in "
                    f"{eq_text[child]}"
                )
            elif state.get(child) is None:
                state[child] = 1
                stack.append((child, iter(sorted(same_time_deps[child], key=lambda f: f.__name__))))
    return tuple(order)


def _pairs_of(eq: sp.Equality) -> list[tuple[AppliedUndef, sp.Expr]]:
    """Split one equation into (lhs atom, rhs) pairs: components for matrix equations."""
    pairs = []
    for lhs, rhs in _scalarize(eq):
        rhs = sp.sympify(rhs, strict=True)
        leaves = rhs.atoms(VectorAt, sp.MatrixSymbol)
        if leaves:  # a scalar of vectors, such as dot(v, h(t-1)): its components
            rhs = rhs.xreplace({a: explicit(a) for a in leaves})
        pairs.append((lhs, rhs))
    return pairs


def _block_pairs(eq: sp.Equality) -> list[tuple[AppliedUndef, sp.Expr]]:
    """One (lhs atom, surrogate rhs) pair per equation, a vector counting as one quantity.

    The surrogate is a sum of the right side's time atoms (a vector ``h(t-1)`` as the atom
    ``h(t-1)`` of a function named ``h``) and parameters (a matrix ``W`` as the symbol ``W``):
    all that the structural analysis reads, built without listing components.
    """
    lhs, rhs = eq.lhs, eq.rhs
    if not (is_matrix(lhs) or is_matrix(rhs)):
        ((atom, _),) = _scalarize(eq)  # checks the left side
        if isinstance(rhs, sp.Basic) and rhs.atoms(VectorAt, sp.MatrixSymbol):
            return [(atom, _surrogate(rhs))]  # a scalar of vectors, such as dot(v, h(t-1))
        return [(atom, sp.sympify(rhs, strict=True))]
    if not (isinstance(lhs, VectorAt) and isinstance(rhs, MatrixExpr)):
        if isinstance(lhs, VectorAt) and isinstance(rhs, sp.MatrixBase):
            return [(_block_atom(lhs), _surrogate(rhs))]
        _scalarize(eq)  # raises the component-level error that names the problem
        raise RecurrenceError(
            f"left side of {_describe(eq)} is not a vector at time t; write it as h(t) with "
            "h = sr.vector('h', n)"
        )
    if lhs.shape != rhs.shape:
        raise RecurrenceError(
            f"in {_describe(eq)}: left side has shape {tuple(lhs.shape)}, right side "
            f"{tuple(rhs.shape)}; make the shapes agree"
        )
    if time_of(_block_atom(lhs)) != t:
        raise RecurrenceError(
            f"left side of {_describe(eq)} is {lhs}, not a quantity at time t; "
            "write the defined quantity as name(t), e.g. Eq(h(t), ...)"
        )
    return [(_block_atom(lhs), _surrogate(rhs))]


def _block_atom(v: VectorAt) -> Any:
    return time_function(v.name)(v.time)


def _surrogate(rhs: Any) -> sp.Expr:
    parts: list[Any] = [_block_atom(v) for v in rhs.atoms(VectorAt)]
    parts += [sp.Symbol(m.name, real=True) for m in rhs.atoms(sp.MatrixSymbol)]
    parts += [a for a in rhs.atoms(AppliedUndef)]
    sizes = _size_symbols(rhs)
    parts += [s for s in rhs.free_symbols if isinstance(s, sp.Symbol) and s not in sizes]
    return sp.Add(*parts)


def _size_symbols(expr: Any) -> set[Any]:
    out: set[Any] = set()
    for m in expr.atoms(sp.MatrixSymbol, VectorAt) if isinstance(expr, sp.Basic) else ():
        for d in m.shape:
            out |= sp.sympify(d, strict=True).free_symbols
    return out


@dataclass(frozen=True)
class Blocks:
    r"""The analysis of a recurrence: what is a state, an input, an output, a parameter.

    Quantities are functions of time (``h``, ``x``); ``equations`` are ``Eq(h(t), rhs)`` in
    evaluation order.  At matrix level (:attr:`Recurrence.blocks`) a vector ``h`` is one
    quantity and ``W`` one parameter; ``vectors`` maps the names of vectors to their
    :class:`~symrnn.matrices.VectorAt` at time t and ``matrices`` the parameter matrices.
    """

    equations: tuple[sp.Equality, ...]
    defined: tuple[Any, ...]
    states: tuple[Any, ...]
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    intermediates: tuple[Any, ...]
    params: tuple[Any, ...]
    order: int
    input_lag: int
    lags: tuple[tuple[Any, int], ...]
    vectors: tuple[tuple[str, Any], ...] = ()
    sizes: tuple[Any, ...] = ()

    def lag(self, func: Any) -> int:
        """Largest lag with which ``func`` is used (0 if never lagged)."""
        return dict(self.lags).get(func, 0)

    def vector(self, func: Any) -> Any:
        """The vector at time t that quantity ``func`` stands for, or None for a scalar."""
        return dict(self.vectors).get(func.__name__)


def _analyze(pairs: Sequence[tuple[Any, sp.Expr, Any]], label: str) -> tuple[Any, ...]:
    """Defined quantities, their lags, evaluation order, inputs, input lag, same-time uses."""
    defined: dict[Any, tuple[sp.Expr, Any]] = {}
    for lhs, rhs, eq in pairs:
        if lhs.func in defined:
            raise RecurrenceError(
                f"{label} defines {lhs.func.__name__}(t) twice "
                f"(in {_describe(defined[lhs.func][1])} "
                f"and {_describe(eq)}); give each quantity one equation"
            )
        _check_time_arguments(eq, rhs)
        defined[lhs.func] = (rhs, eq)

    lags: dict[Any, int] = {}
    same_time: dict[Any, set[Any]] = {f: set() for f in defined}
    used_same_time: set[Any] = set()
    inputs: dict[Any, None] = {}
    input_lag = 0
    for func, (rhs, eq) in defined.items():
        for atom in time_atoms(rhs):
            lag = -int(shift_of(atom))  # type: ignore[arg-type]
            if atom.func in defined:
                if lag == 0:
                    if atom.func == func:
                        raise RecurrenceError(
                            f"{label}: {func.__name__}(t) appears on the right of its own "
                            f"equation {_describe(eq)}, which makes it implicit; use "
                            f"{func.__name__}(t-1) or solve for {func.__name__}(t) first"
                        )
                    same_time[func].add(atom.func)
                    used_same_time.add(atom.func)
                else:
                    lags[atom.func] = max(lags.get(atom.func, 0), lag)
            else:
                inputs.setdefault(atom.func, None)
                input_lag = max(input_lag, lag)
    if not lags:
        names = ", ".join(f"{f.__name__}(t)" for f in defined)
        raise RecurrenceError(
            f"{label} has no state: no defined quantity ({names}) is used with a lag; "
            "a recurrence needs at least one equation such as h(t) = f(h(t-1), x(t))"
        )
    eq_text = {f: _describe(defined[f][1]) for f in defined}
    order_of_eval = _evaluation_order(eq_text, same_time)
    return defined, lags, order_of_eval, inputs, input_lag, used_same_time


def _blocks(
    pairs: Sequence[tuple[Any, sp.Expr, Any]],
    label: str,
    params: tuple[Any, ...],
    vectors: tuple[tuple[str, Any], ...] = (),
    sizes: tuple[Any, ...] = (),
) -> Blocks:
    defined, lags, order_of_eval, inputs, input_lag, used_same_time = _analyze(pairs, label)
    nonstate = [f for f in order_of_eval if f not in lags]

    def equation(f: Any) -> sp.Equality:
        rhs, eq = defined[f]
        if vectors:  # matrix level: the equation as written (a vector stays whole)
            return sp.Eq(eq.lhs, eq.rhs, evaluate=False)
        return sp.Eq(f(t), rhs, evaluate=False)

    return Blocks(
        equations=tuple(equation(f) for f in order_of_eval),
        defined=order_of_eval,
        states=tuple(f for f in order_of_eval if f in lags),
        inputs=tuple(sorted(inputs, key=lambda f: f.__name__)),
        outputs=tuple(f for f in nonstate if f not in used_same_time),
        intermediates=tuple(f for f in nonstate if f in used_same_time),
        params=params,
        order=max(lags.values()),
        input_lag=input_lag,
        lags=tuple(sorted(lags.items(), key=lambda kv: kv[0].__name__)),
        vectors=vectors,
        sizes=sizes,
    )


def _free_params(rhs_all: Iterable[sp.Expr]) -> set[Any]:
    return set().union(*(r.free_symbols for r in rhs_all)) - {t}


def _check_params(label: str, free: set[Any], given: tuple[Any, ...]) -> None:
    missing = free - set(given)
    if missing:
        names = ", ".join(sorted(str(m) for m in missing))
        raise RecurrenceError(
            f"{label} uses {names}, which is neither a state, an input nor a listed "
            "parameter; add it to params or substitute a value"
        )


@dataclass(frozen=True, eq=False)
class Recurrence:
    r"""A system of equations defining quantities at time t from the present and the past.

    Parameters
    ----------
    equations : sympy.Eq or list of sympy.Eq
        ``Eq(h(t), f(h(t-1), x(t); θ))`` per defined quantity; vector states are written with
        :func:`symrnn.vector` and :func:`symrnn.matrix` and may be given in matrix form.
    params : sequence of symbols, optional
        The parameters in the order you want them; inferred (sorted by name) when omitted.
    name : str, optional
        A name used in messages and printed forms.

    Attributes
    ----------
    states : tuple
        Defined quantities used with a lag, e.g. ``h`` in ``h(t) = f(h(t-1))``.
    inputs : tuple
        Quantities of time that no equation defines (``x``); lagged inputs are allowed.
    outputs : tuple
        Defined quantities used by no other equation and never lagged
        (``o`` in ``o(t) = c + v*h(t)``).
    intermediates : tuple
        Defined quantities used at the same time by other equations and never lagged (GRU gates).
    params : tuple
        The remaining free symbols.
    order : int
        The largest lag of a defined quantity.
    equations : tuple of sympy.Eq
        Scalar equations in evaluation order (one per state component): the component view,
        built on first use and only for explicit sizes.
    display : tuple of sympy.Eq
        The equations as written (matrix form kept).
    blocks : Blocks
        The same analysis at matrix level, one equation per vector (what the matrix-level
        derivatives and code work on); for a scalar recurrence it equals the component view.

    The attributes above (``states`` … ``order``) are the component view; for a recurrence of
    symbolic size they raise :class:`~symrnn.ShapeError` and ``blocks`` has the same facts.
    """

    display: tuple[Any, ...]
    blocks: Blocks
    name: str | None = None
    _given: tuple[Any, ...] | None = field(default=None, repr=False)

    def __init__(
        self,
        equations: Any,
        params: Sequence[Any] | None = None,
        name: str | None = None,
    ) -> None:
        display = _as_equations(equations)
        label = f"Recurrence {name!r}" if name else "Recurrence"
        for eq in display:  # before anything prints them: printing evaluates numbers
            check_magnitudes([eq.rhs], f"{label}: the equation of {_head(eq.lhs)}")
        pairs = [(lhs, rhs, eq) for eq in display for lhs, rhs in _block_pairs(eq)]
        vectors: dict[str, Any] = {}
        matrices: dict[str, Any] = {}
        sizes: set[Any] = set()
        for eq in display:
            for side in (eq.lhs, eq.rhs):
                if isinstance(side, sp.Basic):
                    for vec in side.atoms(VectorAt):
                        vectors[vec.name] = VectorAt(vec.name, t, vec.shape[0])
                    for m in side.atoms(sp.MatrixSymbol):
                        matrices[m.name] = m
                    sizes |= _size_symbols(side)
        given = None if params is None else tuple(params)
        rhs_all = [rhs for _, rhs, _ in pairs]
        # Parameters at matrix level: each matrix once, by its name.
        by_name = {sp.Symbol(n, real=True): m for n, m in matrices.items()}
        free = {by_name.get(s, s) for s in _free_params(rhs_all)}
        if given is None:
            block_params = tuple(sorted(free, key=sp.default_sort_key))
        else:
            block_params = tuple(p for p in given if not is_matrix(p) or p in free)
            if not any(is_matrix(p) for p in given) and matrices:
                # parameters listed as matrix entries: checked on the component view
                block_params = tuple(sorted(free, key=sp.default_sort_key))
            else:
                _check_params(label, free, block_params)
        blocks = _blocks(
            pairs,
            label,
            block_params,
            tuple(sorted(vectors.items())),
            tuple(sorted(sizes, key=str)),
        )
        object.__setattr__(self, "display", display)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_given", given)
        if not blocks.vectors:
            object.__setattr__(self, "_components", blocks)
        elif all(d.is_Integer for v in vectors.values() for d in v.shape) and given is not None:
            _ = self._components  # listed parameters are checked now, as before

    @cached_property
    def _components(self) -> Blocks:
        """The component view: every vector split into scalars (explicit sizes only)."""
        label = f"Recurrence {self.name!r}" if self.name else "Recurrence"
        pairs = [(lhs, rhs, eq) for eq in self.display for lhs, rhs in _pairs_of(eq)]
        rhs_all = [rhs for _, rhs, _ in pairs]
        free = _free_params(rhs_all)
        if self._given is None:
            params = tuple(sorted(free, key=sp.default_sort_key))
        else:
            params = tuple(p for g in self._given for p in (explicit(g) if is_matrix(g) else [g]))
            _check_params(label, free, params)
        return _blocks(pairs, label, params)

    @property
    def equations(self) -> tuple[sp.Equality, ...]:
        return self._components.equations

    @property
    def states(self) -> tuple[Any, ...]:
        return self._components.states

    @property
    def inputs(self) -> tuple[Any, ...]:
        return self._components.inputs

    @property
    def outputs(self) -> tuple[Any, ...]:
        return self._components.outputs

    @property
    def intermediates(self) -> tuple[Any, ...]:
        return self._components.intermediates

    @property
    def params(self) -> tuple[Any, ...]:
        return self._components.params

    @property
    def order(self) -> int:
        return self.blocks.order

    @property
    def input_lag(self) -> int:
        return self.blocks.input_lag

    @property
    def is_vector(self) -> bool:
        """True when the recurrence has vector quantities (written with :func:`symrnn.vector`)."""
        return bool(self.blocks.vectors)

    @property
    def has_explicit_size(self) -> bool:
        """True when every size is a number, so the component view exists."""
        return not self.blocks.sizes

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def parse(
        cls,
        text: str | Sequence[str],
        params: Sequence[Any] | None = None,
        name: str | None = None,
        functions: Iterable[str] = (),
    ) -> Recurrence:
        """Read a recurrence from text through the whitelist parser (never ``eval``).

        >>> import symrnn as sr
        >>> sr.Recurrence.parse("h(t) = tanh(w*h(t-1) + u*x(t) + b)").params
        (b, u, w)
        """
        return cls(parse_equations(text, functions=functions), params=params, name=name)

    # ----------------------------------------------------------------------------- queries
    @property
    def defined(self) -> tuple[Any, ...]:
        """Every quantity the equations define, in evaluation order."""
        return tuple(eq.lhs.func for eq in self.equations)

    @cached_property
    def update(self) -> dict[Any, sp.Expr]:
        """Map from each defined function to the right side of its equation (template in t)."""
        return {eq.lhs.func: eq.rhs for eq in self.equations}

    @property
    def vectors(self) -> dict[str, tuple[Any, ...]]:
        """Vector quantities written with :func:`symrnn.vector`: name -> component functions."""
        return {name: tuple(a.func for a in v.components()) for name, v in self.blocks.vectors}

    @cached_property
    def param_groups(self) -> dict[str, sp.ImmutableMatrix | sp.Symbol]:
        """Parameters as the user wrote them: a matrix parameter is one group of entries.

        Maps each name to its ImmutableMatrix of entry symbols (for ``sr.matrix('W', 3, 3)``) or
        to the scalar symbol itself, in the order of :attr:`params` (by first entry).
        """
        matrices: dict[str, sp.ImmutableMatrix] = {}
        for eq in self.display:
            for side in (eq.lhs, eq.rhs):
                if isinstance(side, sp.Basic):
                    for m in side.atoms(sp.MatrixSymbol):
                        matrices[m.name] = explicit(m)
        owner = {e: name for name, m in matrices.items() for e in m}
        groups: dict[str, sp.ImmutableMatrix | sp.Symbol] = {}
        for p in self.params:
            name = owner.get(p)
            if name is None:
                groups[str(p)] = p
            elif name not in groups:
                groups[name] = matrices[name]
        return groups

    def lag(self, func: Any) -> int:
        """Largest lag with which ``func`` is used (0 if never lagged)."""
        return self._components.lag(func)

    def at_sizes(self, **sizes: int) -> Recurrence:
        """The same recurrence with numbers for its symbolic sizes (``rec.at_sizes(n=3)``).

        >>> import sympy as sp, symrnn as sr
        >>> n = sr.size("n")
        >>> h, W = sr.vector("h", n), sr.matrix("W", n, n)
        >>> rec = sr.Recurrence(sp.Eq(h(sr.t), sr.tanh(W * h(sr.t - 1))))
        >>> rec.at_sizes(n=3).states
        (h_1, h_2, h_3)
        """
        known = {str(s): s for s in self.blocks.sizes}
        unknown = sorted(set(sizes) - set(known))
        if unknown:
            raise RecurrenceError(
                f"{', '.join(unknown)} is not a size of this recurrence; its sizes are "
                f"{', '.join(known) or 'all explicit'}"
            )
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecurrenceError(f"size {name} must be a positive integer, got {value!r}")
        mapping = {known[k]: sp.Integer(v) for k, v in sizes.items()}
        display = [sp.Eq(e.lhs.xreplace(mapping), e.rhs.xreplace(mapping)) for e in self.display]
        given = (
            None
            if self._given is None
            else [sp.sympify(p, strict=True).xreplace(mapping) for p in self._given]
        )
        return Recurrence(display, params=given, name=self.name)

    def with_params(self, values: dict[Any, Any]) -> Recurrence:
        """A new recurrence with some parameters replaced by values or expressions."""
        mapping = {}
        for key, val in values.items():
            key = parse_in_scope(key, self, "a with_params key")
            val = parse_in_scope(val, self, f"the value of {key}")
            if is_matrix(key):
                mapping.update(dict(zip(explicit(key), explicit(val), strict=True)))
            elif key not in self.params:
                raise RecurrenceError(_not_a_param(key, self.params))
            else:
                mapping[key] = _value(key, val)
        # Substitute into the equations as written, so matrix form and vectors survive: a
        # parameter matrix with any entry replaced becomes its explicit matrix of values.
        whole: dict[Any, Any] = {}
        for eq in self.display:
            for m in eq.rhs.atoms(sp.MatrixSymbol) if isinstance(eq.rhs, sp.Basic) else ():
                entries = explicit(m)
                if any(e in mapping for e in entries):
                    whole[m] = entries.xreplace(mapping)
        display = [
            sp.Eq(e.lhs, e.rhs.xreplace(whole).xreplace(mapping), evaluate=False)
            for e in self.display
        ]
        kept = [p for p in self.params if p not in mapping]
        return Recurrence(display, params=kept, name=self.name)

    # ---------------------------------------------------------------------------- printing
    def __str__(self) -> str:
        head = f"{self.name}: " if self.name else ""
        lines = [f"{str_expr(e.lhs)} = {str_expr(e.rhs)}" for e in self.display]
        return head + ("\n" + " " * len(head)).join(lines)

    def __repr__(self) -> str:
        eqs = ", ".join(f"Eq({str_expr(e.lhs)}, {str_expr(e.rhs)})" for e in self.display)
        name = f", name={self.name!r}" if self.name else ""
        return f"Recurrence([{eqs}]{name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recurrence) and (
            self.blocks.equations,
            self.blocks.params,
        ) == (other.blocks.equations, other.blocks.params)

    def __hash__(self) -> int:
        return hash((self.blocks.equations, self.blocks.params))

    def _latex_lines(self) -> list[str]:
        return [f"{latex_expr(e.lhs)} &= {latex_expr(e.rhs)}" for e in self.display]

    def _repr_latex_(self) -> str:
        return "$\\begin{aligned}" + " \\\\ ".join(self._latex_lines()) + "\\end{aligned}$"
