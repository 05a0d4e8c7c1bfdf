r"""Verification: every form symrnn derives, checked against the others in floating point.

:func:`verify` draws random float64 parameters, inputs and initial states (a fixed seed, in
ranges where the functions are defined) and compares, wherever they apply:

``closed_form``
    the closed forms :math:`g^{(k)}` (:meth:`Unfolded.closed_form`) against step-by-step
    iteration, for every :math:`k \le` ``steps``;
``codegen``
    the generated NumPy code, scan and unrolled, against a plain Python loop over the update
    lambdified by SymPy (forward values, loss and gradient), one sequence at a time; and the
    same code on every trial at once, a batch, against its one-at-a-time results;
``solve``
    :func:`symrnn.solve` at symbolic :math:`t`, evaluated at several :math:`t`, against iteration;
``gradient``
    reverse mode (BPTT) against forward mode (RTRL), against ``sp.diff`` of the closed form
    (small ``steps``) and against numerical differentiation: the complex step
    :math:`\operatorname{Im} L(\theta + i h e_j) / h` where every function is analytic, central
    differences with a step-size check otherwise; random directions for many parameters;
``jacobian``
    :math:`\partial h^{(T)} / \partial h^{(k)}` from :func:`symrnn.jacobian` against the same
    numerical derivatives.

A user's own gradient (``gradient=``) or Jacobian (``jacobian=``) adds rows of check ``user``.

Reference loop: the "iteration" every row is compared with is nothing more than ::

    values = random parameters, inputs x(1..T), initial states h(0), ...
    for k in 1..T:
        for q in rec.defined:                     # evaluation order
            values[q(k)] = update_q(values at k)  # SymPy's lambdify of the template

>>> import symrnn as sr
>>> report = sr.verify(sr.cells.rnn(), steps=3)
>>> report.ok
True
>>> [row.status for row in report.rows if row.check == "gradient"]
['pass', 'pass', 'pass']
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .diff import classify_loss, grad, loss_only_symbols, total_loss
from .diff import jacobian as chain_jacobian
from .errors import LimitError, NoClosedForm, SymrnnError
from .functions import relu, sigmoid, softplus
from .losses import vector_names
from .matrices import TimeVector, VectorAt, entry_symbol, explicit, is_matrix
from .notation import identifier, is_time_atom, shift_of, t, time_atoms, time_of
from .numeric import _groups, _target_vectors, lambdify
from .ops import dot
from .parsing import check_magnitudes, parse_in_scope
from .recurrence import Recurrence
from .unfold import Unfolded, unfold

__all__ = ["verify", "Report", "Row", "CHECKS", "PASS", "FAIL", "PROBLEM", "SKIPPED"]

#: The checks :func:`verify` can run, in the order of the report (``checks=`` takes a subset).
CHECKS = ("closed_form", "codegen", "solve", "gradient", "jacobian")

PASS, FAIL, PROBLEM, SKIPPED = "pass", "fail", "numerical problem", "skipped"

#: Largest ``steps`` :func:`verify` accepts (closed forms are a view for small t).
MAX_VERIFY_STEPS = 100
#: Closed forms g(k) are built while g(k - 1) has at most this many nodes as a tree (building
#: them costs SymPy time that grows with the tree, not with the shared graph).
CLOSED_FORM_MAX_NODES = 10_000
#: Largest number of scalar quantities (states, outputs, intermediates) of a recurrence written
#: without vectors that :func:`verify` checks: every comparison works quantity by quantity (100
#: coupled states take minutes).
MAX_VERIFY_QUANTITIES = 64
#: Largest number of random trials.
MAX_TRIALS = 100
#: ``sp.diff`` of the closed form is tried up to this many steps ...
SP_DIFF_MAX_STEPS = 5
#: ... for this many coordinates, spread over parameters and initial states ...
SP_DIFF_MAX_COORDS = 3
#: ... while (nodes of the closed-form loss as a tree) x (coordinates) stays below this.
SP_DIFF_BUDGET = 3000
#: With more coordinates than this, numerical gradients are checked along random directions.
DIRECTIONAL_ABOVE = 20
#: How many random directions per trial.
DIRECTIONS = 4
#: Step of the complex-step derivative.
COMPLEX_STEP = 1e-20
#: Coarse step of central differences (the fine step is half of it).
CENTRAL_STEP = 1e-3
#: Absolute tolerance added to ``fd_rtol`` for central differences.
CENTRAL_ATOL = 1e-8

_NON_ANALYTIC = (
    sp.Abs,
    sp.sign,
    sp.Max,
    sp.Min,
    sp.Heaviside,
    sp.Piecewise,
    sp.floor,
    sp.ceiling,
    sp.re,
    sp.im,
    sp.arg,
    sp.conjugate,
    sp.Mod,
    sp.frac,
    relu,
)


# --------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Row:
    """One comparison of a :class:`Report`.

    Attributes
    ----------
    check : str
        The group: one of :data:`CHECKS`, or ``"user"`` for a user's gradient or Jacobian.
    compared : str
        What was compared with what, e.g. ``"reverse mode vs complex step"``.
    max_abs, max_rel : float or None
        Largest absolute error :math:`|a - b|` and relative error :math:`|a - b| / \\max(|a|, |b|)`
        over every value compared (``None`` when nothing was compared).
    where : str
        Location of the worst value (``"step 3, h, trial 0"``), of the first numerical problem,
        or of the first value out of tolerance.
    tol : str
        The tolerance: a value passes when :math:`|a - b| \\le atol + rtol \\max(|a|, |b|)`.
    status : str
        ``"pass"``, ``"fail"``, ``"numerical problem"`` or ``"skipped"``.
    detail : str
        Both values of a failure, the reason for a skip, the problem found, or method notes.
    location : tuple of (str, value)
        ``where`` as data: ``(("step", 3), ("component", "h"), ("trial", 0))``.
    values : tuple of (str, value)
        For a failure, the two values at ``where`` by label.
    """

    check: str
    compared: str
    max_abs: float | None
    max_rel: float | None
    where: str
    tol: str
    status: str
    detail: str = ""
    location: tuple[tuple[str, Any], ...] = ()
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        """True unless the row failed or met a numerical problem (a skip is not a failure)."""
        return self.status in (PASS, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (plain floats, strings, booleans and None)."""
        return {
            "check": self.check,
            "compared": self.compared,
            "max_abs": _json_number(self.max_abs),
            "max_rel": _json_number(self.max_rel),
            "where": self.where,
            "tol": self.tol,
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
            "location": {k: _json_value(v) for k, v in self.location},
            "values": {k: _json_value(v) for k, v in self.values},
        }


@dataclass(frozen=True)
class Report:
    """The result of :func:`verify`: one :class:`Row` per comparison.

    ``ok`` is True when at least one comparison was made, no row failed and none met a numerical
    problem; skipped rows (a check that does not apply, such as ``solve`` for a nonlinear
    recurrence) do not count against it but are listed by ``str``.  A report that compared
    nothing (every row skipped) is not ok: nothing was shown to agree.
    """

    rows: tuple[Row, ...]
    recurrence_name: str
    steps: int
    seed: int
    trials: int = 3

    @property
    def compared(self) -> int:
        """The number of rows that compared values (passed, failed or met a problem)."""
        return sum(row.status != SKIPPED for row in self.rows)

    @property
    def ok(self) -> bool:
        return self.compared > 0 and all(row.ok for row in self.rows)

    @property
    def failures(self) -> tuple[Row, ...]:
        """Rows whose values disagree beyond tolerance."""
        return tuple(row for row in self.rows if row.status == FAIL)

    @property
    def problems(self) -> tuple[Row, ...]:
        """Rows that met overflow, NaN or a domain error."""
        return tuple(row for row in self.rows if row.status == PROBLEM)

    @property
    def skipped(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.status == SKIPPED)

    def by_check(self, check: str) -> tuple[Row, ...]:
        """The rows of one check (``"gradient"``, ``"user"``, ...)."""
        return tuple(row for row in self.rows if row.check == check)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: ``json.dumps(report.to_dict())`` works."""
        return {
            "recurrence": self.recurrence_name,
            "steps": self.steps,
            "seed": self.seed,
            "trials": self.trials,
            "ok": self.ok,
            "counts": {
                status: sum(row.status == status for row in self.rows)
                for status in (PASS, FAIL, PROBLEM, SKIPPED)
            },
            "rows": [row.to_dict() for row in self.rows],
        }

    def _verdict(self) -> str:
        return "OK" if self.ok else ("FAILED" if self.compared else "NOTHING COMPARED")

    def _cells(self) -> list[list[str]]:
        return [
            [
                row.check,
                row.compared,
                _fmt(row.max_abs),
                _fmt(row.max_rel),
                row.where if row.status != SKIPPED else "",
                row.tol if row.status != SKIPPED else "",
                row.status.upper() if row.status in (FAIL, PROBLEM) else row.status,
            ]
            for row in self.rows
        ]

    def __str__(self) -> str:
        head = ["check", "compared", "max abs err", "max rel err", "where", "tol", "status"]
        cells = self._cells()
        widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
        numeric = {2, 3}

        def line(r: list[str]) -> str:
            parts = [
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        counts = {
            s: sum(row.status == s for row in self.rows) for s in (PASS, FAIL, PROBLEM, SKIPPED)
        }
        verdict = self._verdict()
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no checks run"
        lines = [
            f"verify {self.recurrence_name}: {self.steps} steps, {self.trials} trials, "
            f"seed {self.seed}",
            line(head),
            "  ".join("-" * w for w in widths),
            *(line(r) for r in cells),
            f"{verdict}: {summary}",
        ]
        notes = [row for row in self.rows if row.detail]
        for row in notes:
            lines.append(f"  {row.status}: {row.compared}: {row.detail}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.failures)} failed, {len(self.problems)} problems"
        state = state if self.compared else "nothing compared"
        return f"<Report {self.recurrence_name!r}: {len(self.rows)} rows, {state}>"

    def _repr_html_(self) -> str:
        head = ["check", "compared", "max abs err", "max rel err", "where", "tol", "status"]
        colour = {PASS: "#2e7d32", FAIL: "#c62828", PROBLEM: "#ef6c00", SKIPPED: "#757575"}
        rows = []
        for row, cells in zip(self.rows, self._cells(), strict=True):
            tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells[:-1])
            status = f'<td style="color:{colour[row.status]}">{html.escape(cells[-1])}</td>'
            title = f' title="{html.escape(row.detail)}"' if row.detail else ""
            rows.append(f"<tr{title}>{tds}{status}</tr>")
        th = "".join(f"<th>{h}</th>" for h in head)
        caption = html.escape(
            f"verify {self.recurrence_name}: {self.steps} steps, {self.trials} trials, "
            f"seed {self.seed}: {self._verdict()}"
        )
        return f"<table><caption>{caption}</caption><tr>{th}</tr>{''.join(rows)}</table>"


def _e(x: float) -> str:
    """A tolerance as written by hand: ``1e-9``, ``2.5e-10``, ``0``."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.1e}"


def _json_number(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else str(x)


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (complex, np.complexfloating)):
        c = complex(v)
        return _json_number(c.real) if c.imag == 0 else str(c)
    if isinstance(v, (float, np.floating)):
        return _json_number(float(v))
    return str(v)


# ---------------------------------------------------------------------- locations and values
Location = tuple[tuple[str, Any], ...]


def _where(loc: Location) -> str:
    parts = []
    for key, value in loc:
        if key == "step":
            parts.append(f"step {value}")
        elif key == "t":
            parts.append(f"t = {value}")
        elif key == "trial":
            parts.append(f"trial {value}")
        elif key == "summed":
            parts.append(f"summed over {value} trials")
        else:
            parts.append(str(value))
    return ", ".join(parts)


def _show(v: Any) -> str:
    if isinstance(v, (complex, np.complexfloating)) and complex(v).imag != 0:
        return repr(complex(v))
    return f"{float(np.real(v)):.17g}"


@dataclass
class _Comparison:
    """Values to compare (tested ``a`` against reference ``b``) and problems met on the way."""

    labels: tuple[str, str]
    entries: list[tuple[Location, Any, Any]] = field(default_factory=list)
    problems: list[tuple[Location, str]] = field(default_factory=list)
    flagged: list[tuple[Location, str]] = field(default_factory=list)

    def add(self, loc: Location, a: Any, b: Any) -> None:
        bad = [lab for lab, v in zip(self.labels, (a, b), strict=True) if not np.isfinite(v)]
        if bad:
            what = " and ".join(
                f"{lab} = {_show(v)}"
                for lab, v in zip(self.labels, (a, b), strict=True)
                if lab in bad
            )
            self.problems.append((loc, f"non-finite value: {what}"))
        else:
            self.entries.append((loc, a, b))

    def problem(self, loc: Location, message: str) -> None:
        self.problems.append((loc, message))


def _judge(
    check: str,
    compared: str,
    comparison: _Comparison,
    rtol: float,
    atol: float,
    notes: str = "",
) -> Row:
    tol = f"rtol {_e(rtol)}, atol {_e(atol)}"
    entries, problems = comparison.entries, list(dict.fromkeys(comparison.problems))
    if not entries and not problems:
        return Row(check, compared, None, None, "", tol, SKIPPED, notes or "nothing to compare")
    max_abs = max_rel = None
    failing: list[tuple[float, Location, Any, Any]] = []
    worst: tuple[float, Location, Any, Any] | None = None
    if entries:
        a = np.array([e[1] for e in entries])
        b = np.array([e[2] for e in entries])
        err = np.abs(a - b)
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.divide(err, scale, out=np.zeros_like(err, dtype=float), where=scale > 0)
        ratio = err / (atol + rtol * scale)
        max_abs, max_rel = float(err.max()), float(rel.max())
        order = int(np.argmax(ratio))
        worst = (float(ratio[order]), *entries[order])
        failing = [(float(ratio[i]), *entries[i]) for i in np.flatnonzero(ratio > 1)]
    flagged = comparison.flagged
    la, lb = comparison.labels
    if failing or flagged:
        if failing:
            _, loc, va, vb = max(failing, key=lambda f: f[0])
            detail = (
                f"{len(failing)} of {len(entries)} values differ; worst at {_where(loc)}: "
                f"{la} = {_show(va)}, {lb} = {_show(vb)}"
            )
            values: tuple[tuple[str, Any], ...] = ((la, va), (lb, vb))
        else:
            loc, detail = flagged[0]
            values = ()
        if flagged and failing:
            detail += f"; {flagged[0][1]}"
        if problems:
            detail += f"; also a numerical problem at {_where(problems[0][0])}: {problems[0][1]}"
        if notes:
            detail += f" ({notes})"
        return Row(check, compared, max_abs, max_rel, _where(loc), tol, FAIL, detail, loc, values)
    if problems:
        loc, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        detail = (
            f"{message} at {_where(loc)}{more}; overflow, NaN or a domain error, not a mismatch"
        )
        return Row(check, compared, max_abs, max_rel, _where(loc), tol, PROBLEM, detail, loc)
    assert worst is not None
    _, loc, _, _ = worst
    return Row(check, compared, max_abs, max_rel, _where(loc), tol, PASS, notes, loc)


def _skip(check: str, compared: str, reason: str) -> Row:
    return Row(check, compared, None, None, "", "", SKIPPED, reason)


def _error(check: str, compared: str, what: str, exc: BaseException) -> Row:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return Row(
        check, compared, None, None, "", "", FAIL, f"{what} raised {type(exc).__name__}: {message}"
    )


def _is_arithmetic(exc: BaseException) -> bool:
    """Overflow, division by zero or a domain error: a numerical problem, not a wrong form."""
    if isinstance(exc, (OverflowError, ZeroDivisionError, FloatingPointError)):
        return True
    return isinstance(exc, ValueError) and "math domain error" in str(exc)


# -------------------------------------------------------------------- numerical evaluation
class _Unknown(SymrnnError):
    """An expression uses a quantity that has no value (not a parameter, input or chain value)."""

    def __init__(self, atom: Any):
        super().__init__(f"{atom} has no value")
        self.atom = atom


def _sigmoid(x: Any) -> Any:
    return 1 / (1 + np.exp(-x))


def _relu(x: Any) -> Any:
    return np.maximum(x, 0.0)


def _softplus(x: Any) -> Any:
    return np.log1p(np.exp(x))


def _heaviside(x: Any, at0: Any = 0.5) -> Any:
    return np.where(np.real(x) > 0, 1.0, np.where(np.real(x) == 0, at0, 0.0))


_UNARY: dict[Any, Callable[[Any], Any]] = {
    sp.exp: np.exp,
    sp.log: np.log,
    sp.sin: np.sin,
    sp.cos: np.cos,
    sp.tan: np.tan,
    sp.tanh: np.tanh,
    sp.sinh: np.sinh,
    sp.cosh: np.cosh,
    sp.asin: np.arcsin,
    sp.acos: np.arccos,
    sp.atan: np.arctan,
    sp.asinh: np.arcsinh,
    sp.acosh: np.arccosh,
    sp.atanh: np.arctanh,
    sp.Abs: np.abs,
    sp.sign: np.sign,
    sigmoid: _sigmoid,
    relu: _relu,
    softplus: _softplus,
}

_FALLBACK: dict[Any, Callable[..., Any]] = {}


def _apply(node: Any, args: list[Any]) -> Any:
    func = node.func
    if func is sp.Add:
        total = args[0]
        for a in args[1:]:
            total = total + a
        return total
    if func is sp.Mul:
        prod = args[0]
        for a in args[1:]:
            prod = prod * a
        return prod
    if func is sp.Pow:
        base, e = args
        if node.exp.is_Integer:
            return base ** int(node.exp)
        if node.exp == sp.S.Half:
            return np.sqrt(base)
        return np.power(base, e)
    func = _ORIGINAL.get(func, func)
    if func in _UNARY and len(args) == 1:
        return _UNARY[func](args[0])
    if func is sp.Heaviside:
        return _heaviside(*args)
    if func is sp.Max:
        return np.maximum.reduce(np.broadcast_arrays(*args))
    if func is sp.Min:
        return np.minimum.reduce(np.broadcast_arrays(*args))
    key = (func, len(args))
    if key not in _FALLBACK:
        dummies = sp.symbols(f"a0:{len(args)}", cls=sp.Dummy)
        _FALLBACK[key] = sp.lambdify(dummies, func(*dummies), modules="numpy")
    return _FALLBACK[key](*args)


def _constant(node: Any) -> Any:
    value = complex(node)
    return value.real if value.imag == 0 else value


def _evaluate(exprs: Sequence[Any], values: Mapping[Any, Any]) -> list[Any]:
    """Numeric values of SymPy expressions; an exception object in place of a failed one.

    Walks each expression as a graph (shared subexpressions once, no recursion), so closed forms
    whose trees are exponentially large evaluate in time linear in their distinct nodes.  Leaves
    are looked up in ``values`` (parameters, time atoms); arrays broadcast (the batch axes).
    """
    memo: dict[Any, Any] = {}
    out: list[Any] = []
    for root in exprs:
        try:
            out.append(_evaluate_one(sp.sympify(root, strict=True), values, memo))
        except (_Unknown, TypeError, ValueError, NameError, AttributeError) as exc:
            out.append(exc)
    return out


def _evaluate_one(root: Any, values: Mapping[Any, Any], memo: dict[Any, Any]) -> Any:
    stack = [root]
    while stack:
        node = stack[-1]
        if node in memo:
            stack.pop()
            continue
        if isinstance(node, sp.Symbol) or is_time_atom(node):
            stack.pop()
            if node not in values:
                raise _Unknown(node)
            memo[node] = values[node]
            continue
        if node.is_number and not node.free_symbols:
            stack.pop()
            memo[node] = _constant(node)
            continue
        if isinstance(node, AppliedUndef):
            raise _Unknown(node)
        if not isinstance(node, (sp.Add, sp.Mul, sp.Pow, sp.Function, sp.Max, sp.Min)):
            # Piecewise, relations, ...: evaluate the whole subtree through SymPy's lambdify.
            stack.pop()
            leaves = sorted(node.free_symbols | time_atoms(node), key=sp.default_sort_key)
            dummies = [sp.Dummy() for _ in leaves]
            missing = [leaf for leaf in leaves if leaf not in values]
            if missing:
                raise _Unknown(missing[0])
            fn = sp.lambdify(
                dummies,
                node.xreplace(dict(zip(leaves, dummies, strict=True))),
                # symrnn's own functions may sit inside (a Piecewise of sigmoid(...)).
                modules=[{f.__name__: fn for f, fn in _UNARY.items()}, "numpy"],
            )
            memo[node] = fn(*[values[leaf] for leaf in leaves])
            continue
        pending = [a for a in node.args if a not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        memo[node] = _apply(node, [memo[a] for a in node.args])
    return memo[root]


def _fold(expr: Any, combine: Callable[[Any, list[Any]], Any]) -> Any:
    """``combine(node, results of its arguments)`` bottom-up over the expression graph.

    Iterative, so deep expressions (closed forms nest one level per step) cannot overflow the
    stack; shared subexpressions are combined once.
    """
    memo: dict[Any, Any] = {}
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in memo:
            stack.pop()
            continue
        pending = [a for a in node.args if a not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        memo[node] = combine(node, [memo[a] for a in node.args])
    return memo[expr]


def _tree_size(expr: Any, limit: int) -> int:
    """Nodes of ``expr`` as a tree (counted over its graph), stopping early past ``limit``."""
    return int(_fold(expr, lambda node, sizes: min(1 + sum(sizes), limit + 1)))


@contextmanager
def _watch() -> Any:
    """Floating-point events (overflow, invalid, divide) are recorded, never warned about."""
    events: list[str] = []

    def record(kind: str, flag: int) -> None:
        events.append(kind)

    with np.errstate(over="call", invalid="call", divide="call", under="ignore", call=record):
        yield events


def _kinds(events: list[str]) -> str:
    seen = list(dict.fromkeys(events))
    return f" ({', '.join(seen)})" if seen else ""


# ------------------------------------------------------------------------- the Python loop
@dataclass
class _Run:
    """One run of the loop: every value, and where values stopped being finite."""

    values: dict[Any, Any]
    bad: np.ndarray  # batch shape: True where a value was not finite
    first: dict[int, tuple[Location, str]]  # trial -> first problem

    def problem_for(self, trial: int) -> tuple[Location, str] | None:
        return self.first.get(trial)


class _Stepper:
    """The reference: each update lambdified by SymPy and iterated in a plain Python loop."""

    def __init__(self, rec: Recurrence, init_given: Mapping[Any, Any]):
        self.init_given = dict(init_given)
        self.updates: list[
            tuple[Any, Callable[..., Any], list[tuple[Any, int]], list[Any], bool]
        ] = []
        for eq in rec.equations:
            rhs = eq.rhs
            atoms = sorted(time_atoms(rhs), key=sp.default_sort_key)
            params = sorted(rhs.free_symbols - {t}, key=sp.default_sort_key)
            dummies = [sp.Dummy() for _ in range(len(atoms) + len(params))]
            mapping = dict(zip([*atoms, *params], dummies, strict=True))
            uses_t = t in rhs.free_symbols
            args = list(dummies)
            if uses_t:
                mapping[t] = sp.Dummy("t")
                args.append(mapping[t])
            fn = sp.lambdify(args, rhs.xreplace(mapping), modules="numpy")
            spec = [(a.func, int(shift_of(a))) for a in atoms]  # type: ignore[arg-type]
            self.updates.append((eq.lhs.func, fn, spec, params, uses_t))

    def run(
        self,
        leaves: Mapping[Any, Any],
        horizon: int,
        batch: tuple[int, ...],
        perturb: Mapping[Any, Any] | None = None,
    ) -> _Run:
        values = dict(leaves)
        bad = np.zeros(batch, dtype=bool)
        first: dict[int, tuple[Location, str]] = {}
        with _watch() as events:
            for atom, expr in self.init_given.items():
                (value,) = _evaluate([expr], values)
                if isinstance(value, Exception):
                    raise value
                values[atom] = value + (perturb or {}).get(atom, 0)
                _note(bad, first, value, (("component", str(atom)),), f"{atom}", events)
            for k in range(1, horizon + 1):
                for func, fn, spec, params, uses_t in self.updates:
                    args = [values[f(k + s)] for f, s in spec] + [values[p] for p in params]
                    if uses_t:
                        args.append(float(k))
                    events.clear()
                    value = fn(*args)
                    atom = func(k)
                    if perturb and atom in perturb:
                        value = value + perturb[atom]
                    values[atom] = value
                    loc = (("step", k), ("component", func.__name__))
                    _note(bad, first, value, loc, f"{func.__name__}({k})", events)
        return _Run(values, bad, first)


def _note(
    bad: np.ndarray,
    first: dict[int, tuple[Location, str]],
    value: Any,
    loc: Location,
    name: str,
    events: list[str],
) -> None:
    finite = np.broadcast_to(np.isfinite(value), bad.shape)
    if finite.all():
        return
    arr = np.broadcast_to(value, bad.shape)
    for index in map(tuple, np.argwhere(~finite & ~bad)):
        trial = int(index[0])
        if trial not in first:
            first[trial] = (
                (*loc, ("trial", trial)),
                f"{name} = {_show(arr[index])}{_kinds(events)}",
            )
    bad |= ~finite


# ------------------------------------------------------------------------------- set-up
def _needs_positive(exprs: Iterable[Any]) -> bool:
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, (sp.log, sp.acosh)):
                return True
            if isinstance(node, sp.Pow) and not node.exp.is_integer:
                return True
    return False


def _non_analytic(exprs: Iterable[Any]) -> list[str]:
    found: set[str] = set()
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, _NON_ANALYTIC):
                found.add(type(node).__name__)
    return sorted(found)


def _abstract_calls(exprs: Iterable[Any]) -> list[Any]:
    calls: set[Any] = set()
    for e in exprs:
        calls |= {c for c in sp.sympify(e, strict=True).atoms(AppliedUndef) if not is_time_atom(c)}
    return sorted(calls, key=sp.default_sort_key)


def _split_loss(U: Unfolded, loss: Any) -> tuple[sp.Expr | None, sp.Expr]:
    """(per-step template or None, total loss at integer times)."""
    rec = U.recurrence
    if loss is None:
        quantities = [*rec.states, *rec.outputs]
        template = sp.Add(*[q(t) ** 2 for q in quantities]) / 2
        return template, total_loss(U, template)
    loss = parse_in_scope(loss, U, "the loss")
    expr, is_template = classify_loss(loss)
    check_magnitudes([expr], "the loss")
    if is_template:
        return expr, total_loss(U, expr)
    return None, expr


def _initial_atoms(rec: Recurrence) -> list[Any]:
    return [s(k) for s in rec.states for k in range(1 - rec.lag(s), 1)]


class _Setup:
    """Everything the checks share: the chain, the loss, the random values, the loop."""

    def __init__(
        self,
        U: Unfolded,
        loss: Any,
        seed: int,
        trials: int,
        ranges: Any,
        rtol: float,
        atol: float,
        fd_rtol: float,
    ):
        rec = U.recurrence
        self.U, self.rec, self.T = U, rec, U.steps
        self.trials, self.rtol, self.atol, self.fd_rtol = trials, rtol, atol, fd_rtol
        self.seed = seed
        self.given_loss = loss
        self.template, self.loss = _split_loss(U, loss)
        known = set(rec.defined) | set(rec.inputs)
        loss_funcs = {a.func for a in time_atoms(self.loss)}
        self.targets = tuple(sorted(loss_funcs - known, key=lambda f: f.__name__))
        self.init_given = dict(U.init)
        self.wrt: list[Any] = [*rec.params, *U.initial]
        formulas = [*rec.update.values(), self.loss, *self.init_given.values()]
        self.non_analytic = _non_analytic(formulas)
        self.analytic = not self.non_analytic
        self.horizon = 2 * self.T + 1  # inputs are drawn this far (solve looks beyond T)
        positive = _needs_positive(formulas)
        default = (0.5, 1.5) if positive else (-1.0, 1.0)
        self.default_range = default
        rng = np.random.default_rng(seed)
        self.leaves: dict[Any, np.ndarray] = {}
        # Symbols only the loss or given initial values use are drawn like parameters.
        extra = {
            s for v in self.init_given.values() for s in sp.sympify(v, strict=True).free_symbols
        }
        extra |= self.loss.free_symbols - {t}
        for p in [*rec.params, *sorted(extra - set(rec.params), key=sp.default_sort_key)]:
            self.leaves[p] = rng.uniform(*_param_range(ranges, rec, p, default), trials)
        for a in U.initial:
            self.leaves[a] = rng.uniform(
                *_range_of(ranges, "init", _vector_of(rec, a.func), default), trials
            )
        first_time = 1 - rec.input_lag
        for kind, funcs in (("inputs", rec.inputs), ("targets", self.targets)):
            for f in funcs:
                lo, hi = _range_of(ranges, kind, _vector_of(rec, f), default)
                for k in range(first_time, self.horizon + 1):
                    self.leaves[f(k)] = rng.uniform(lo, hi, trials)
        fixed = [
            a for a in time_atoms(self.loss) if a.func in self.targets and a not in self.leaves
        ]
        for a in sorted(fixed, key=sp.default_sort_key):
            self.leaves[a] = rng.uniform(*default, trials)
        self.stepper = _Stepper(rec, self.init_given)
        self._base: _Run | None = None

    # ------------------------------------------------------------------ shared evaluations
    @property
    def base(self) -> _Run:
        """The loop at the random points, t = 1 … T (batch axis: trials)."""
        if self._base is None:
            self._base = self.stepper.run(self.leaves, self.T, (self.trials,))
        return self._base

    def evaluate(self, exprs: Sequence[Any], values: Mapping[Any, Any] | None = None) -> list[Any]:
        with _watch():
            results = _evaluate(exprs, self.base.values if values is None else values)
        return [
            r if isinstance(r, Exception) else np.broadcast_to(r, (self.trials,)) for r in results
        ]

    def trial_problem(self, trial: int) -> tuple[Location, str] | None:
        return self.base.problem_for(trial)


def _group_of(rec: Recurrence, p: Any) -> str:
    for name, value in rec.param_groups.items():
        if value == p or (isinstance(value, sp.MatrixBase) and p in value):
            return name
    return str(p)


def _param_range(
    ranges: Any, rec: Recurrence, p: Any, default: tuple[float, float]
) -> tuple[float, float]:
    """The range of parameter ``p``: by its own name (one matrix entry, W_12) first."""
    if isinstance(ranges, Mapping) and str(p) in ranges:
        return _check_range(ranges[str(p)], f"ranges[{str(p)!r}]")
    return _range_of(ranges, "params", _group_of(rec, p), default)


def _vector_of(rec: Recurrence, f: Any) -> str:
    for name, comps in rec.vectors.items():
        if f in comps:
            return name
    return str(f.__name__)


def _range_of(
    ranges: Any, kind: str, name: str, default: tuple[float, float]
) -> tuple[float, float]:
    if ranges is None:
        return default
    if isinstance(ranges, tuple) and len(ranges) == 2 and not isinstance(ranges[0], (tuple, list)):
        return _check_range(ranges, "ranges")
    if isinstance(ranges, Mapping):
        for key, value in ranges.items():
            label = (
                key
                if isinstance(key, str)
                else getattr(key, "name", None) or getattr(key, "__name__", str(key))
            )
            if label == name:
                return _check_range(value, f"ranges[{label!r}]")
        if kind in ranges:
            return _check_range(ranges[kind], f"ranges[{kind!r}]")
        if kind == "targets" and "inputs" in ranges:
            return _check_range(ranges["inputs"], "ranges['inputs']")
        return default
    raise SymrnnError(
        f"ranges must be (low, high) or a dict of them by 'params', 'inputs', 'init' or name, "
        f"got {ranges!r}"
    )


def _check_range(value: Any, what: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SymrnnError(f"{what} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise SymrnnError(f"{what} must satisfy low <= high (finite), got {value!r}")
    return lo, hi


# ----------------------------------------------------------------- numerical derivatives
@dataclass
class _Derivative:
    """Numerical directional derivatives along ``m`` probes, per trial.

    ``estimate`` has shape (trials, m, outputs); for central differences ``coarse`` and ``fine``
    are the raw estimates with steps h and h/2 (``estimate`` is their Richardson extrapolation).
    """

    method: str
    estimate: np.ndarray
    bad: np.ndarray  # (trials, m)
    first: dict[int, tuple[Location, str]]
    coarse: np.ndarray | None = None
    fine: np.ndarray | None = None


def _differentiate(
    setup: _Setup,
    probes: Sequence[Mapping[Any, float]],
    outputs: Callable[[dict[Any, Any]], list[Any]],
    horizon: int,
) -> _Derivative:
    """Derivatives of ``outputs`` along each probe (a direction over leaves or chain atoms).

    Leaves (parameters, initial states, inputs) are perturbed before the loop, chain quantities
    right after they are computed; one batched run of the loop covers every probe and trial.
    """
    trials, m = setup.trials, len(probes)
    targets = sorted({a for p in probes for a in p}, key=sp.default_sort_key)
    coef = {a: np.array([p.get(a, 0.0) for p in probes]) for a in targets}
    if setup.analytic:
        shape: tuple[int, ...] = (trials, m)
        offsets = np.array([1j * COMPLEX_STEP])
    else:
        shape = (trials, m, 4)
        h = CENTRAL_STEP
        offsets = np.array([h, -h, h / 2, -h / 2])
    step = offsets if not setup.analytic else offsets[0]
    leaves: dict[Any, Any] = {}
    extra_axes = len(shape) - 1
    for a, v in setup.leaves.items():
        base = v.reshape((trials,) + (1,) * extra_axes)
        if a in coef:
            direction = coef[a].reshape((1, m) + (1,) * (extra_axes - 1))
            leaves[a] = base + direction * step
        else:
            leaves[a] = base.astype(complex) if setup.analytic else base
    perturb = {}
    for a in targets:
        if a not in setup.leaves:
            perturb[a] = coef[a].reshape((1, m) + (1,) * (extra_axes - 1)) * step
    run = setup.stepper.run(leaves, horizon, shape, perturb)
    with _watch():
        outs = outputs(run.values)
    bad: np.ndarray = run.bad if setup.analytic else np.asarray(run.bad.any(axis=-1))
    stacked = []
    for j, out in enumerate(outs):
        if isinstance(out, Exception):
            raise out
        value = np.broadcast_to(out, shape)
        finite = np.isfinite(value) if setup.analytic else np.isfinite(value).all(axis=-1)
        for index in np.argwhere(~finite & ~bad):
            trial = int(index[0])
            run.first.setdefault(
                trial, ((("component", f"output {j}"), ("trial", trial)), "non-finite value")
            )
        bad = np.asarray(bad | ~finite)
        stacked.append(value)
    values = np.stack(stacked, axis=-1)
    if setup.analytic:
        return _Derivative("complex step", values.imag / COMPLEX_STEP, bad, run.first)
    h = CENTRAL_STEP
    coarse = (values[:, :, 0] - values[:, :, 1]) / (2 * h)
    fine = (values[:, :, 2] - values[:, :, 3]) / h
    return _Derivative("central differences", (4 * fine - coarse) / 3, bad, run.first, coarse, fine)


def _numeric_compare(
    setup: _Setup,
    comparison: _Comparison,
    deriv: _Derivative,
    tested: np.ndarray,
    locs: Sequence[Location],
    scale: np.ndarray,
) -> str:
    """Fill ``comparison`` with ``tested`` (trials, m) against ``deriv``; return method notes."""
    ratios: list[float] = []
    for i in range(setup.trials):
        for j, loc in enumerate(locs):
            where = (*loc, ("trial", i))
            # A trial whose unperturbed loop already failed is not compared: the complex step
            # can even look finite there (the log of a negative number is complex).
            found = setup.trial_problem(i)
            if found is None and deriv.bad[i, j]:
                found = deriv.first.get(i) or (where, "non-finite value")
            if found is not None:
                comparison.problem(*found)
                continue
            a, b = tested[i, j], deriv.estimate[i, j, 0]
            comparison.add(where, a, b)
            if deriv.coarse is not None and deriv.fine is not None and np.isfinite(a):
                e_coarse = abs(deriv.coarse[i, j, 0] - a)
                e_fine = abs(deriv.fine[i, j, 0] - a)
                noise = 1e-9 * max(1.0, abs(a), float(scale[i]))
                if e_fine > noise:
                    ratio = e_coarse / e_fine
                    ratios.append(ratio)
                    if ratio < 2:
                        comparison.flagged.append(
                            (
                                where,
                                f"the central-difference error does not shrink as h halves "
                                f"(ratio {ratio:.2f}, expected ~4): the derivative is biased",
                            )
                        )
    if deriv.method == "complex step":
        return ""
    observed = f"{np.median(ratios):.1f}" if ratios else "n/a (error at rounding level)"
    return (
        f"non-analytic {', '.join(setup.non_analytic)}: central differences, h = {CENTRAL_STEP:g} "
        f"and {CENTRAL_STEP / 2:g}, Richardson-extrapolated; error ratio as h halves {observed} "
        "(expected ~4)"
    )


def _numeric_judge(
    setup: _Setup, check: str, compared: str, comparison: _Comparison, method: str, notes: str
) -> Row:
    if method == "complex step":
        return _judge(check, compared, comparison, setup.rtol, setup.atol, notes=notes)
    return _judge(check, compared, comparison, setup.fd_rtol, CENTRAL_ATOL, notes=notes)


def _directions(setup: _Setup, coords: Sequence[Any], seed_offset: int) -> list[dict[Any, float]]:
    """Probes: one per coordinate, or random unit directions when there are many coordinates."""
    if len(coords) <= DIRECTIONAL_ABOVE:
        return [{c: 1.0} for c in coords]
    rng = np.random.default_rng([setup.seed, seed_offset])
    out = []
    for _ in range(DIRECTIONS):
        v = rng.standard_normal(len(coords))
        v /= np.linalg.norm(v)
        out.append(dict(zip(coords, v.tolist(), strict=True)))
    return out


# ----------------------------------------------------------------------------- the checks
def _check_closed_forms(setup: _Setup) -> list[Row]:
    U, rec, T = setup.U, setup.rec, setup.T
    forms: list[tuple[int, Any, Any]] = []
    notes = ""
    try:
        for k in range(1, T + 1):
            if (
                forms
                and max(
                    _tree_size(e, CLOSED_FORM_MAX_NODES) for _, _, e in forms[-len(rec.defined) :]
                )
                > CLOSED_FORM_MAX_NODES
            ):
                notes = (
                    f"k = {k}..{T} not built: g({k - 1}) has more than "
                    f"{CLOSED_FORM_MAX_NODES:,} nodes as a tree"
                )
                break
            forms += [(k, f, U.closed_form(k, of=f)) for f in rec.defined]
    except (SymrnnError, RecursionError) as exc:
        return [
            _error(
                "closed_form", f"closed forms g(k), k = 1..{T}, vs iteration", "closed_form", exc
            )
        ]
    last = forms[-1][0] if forms else 0
    compared = f"closed forms g(k), k = 1..{last}, vs iteration"
    comparison = _Comparison(("closed form", "iteration"))
    leaves = {**setup.leaves, **{a: setup.base.values[a] for a in setup.init_given}}
    with _watch():
        results = _evaluate([e for _, _, e in forms], leaves)
    for (k, f, expr), value in zip(forms, results, strict=True):
        loc = (("step", k), ("component", f.__name__))
        if isinstance(value, _Unknown):
            comparison.flagged.append(
                (loc, f"the closed form of {f.__name__}({k}) still contains {value.atom}: {expr}")
            )
            continue
        if isinstance(value, Exception):
            comparison.flagged.append(
                (loc, f"cannot evaluate the closed form of {f.__name__}({k}): {value}")
            )
            continue
        _add_trials(setup, comparison, loc, value, setup.base.values[f(k)])
    return [_judge("closed_form", compared, comparison, setup.rtol, setup.atol, notes=notes)]


def _add_trials(
    setup: _Setup,
    comparison: _Comparison,
    loc: Location,
    a: Any,
    b: Any,
    run: _Run | None = None,
) -> None:
    """Add one value per trial, or the loop's numerical problem where it came first."""
    run = run or setup.base
    a = np.broadcast_to(a, (setup.trials,))
    b = np.broadcast_to(b, (setup.trials,))
    step = dict(loc).get("step")
    for i in range(setup.trials):
        if not _blocked(comparison, run.problem_for(i), step):
            comparison.add((*loc, ("trial", i)), a[i], b[i])


def _blocked(
    comparison: _Comparison, problem: tuple[Location, str] | None, step: int | None
) -> bool:
    """Record the loop's problem if it happened at or before ``step`` (any step if None)."""
    if problem is None:
        return False
    if step is not None and dict(problem[0]).get("step", 0) > step:
        return False
    comparison.problem(*problem)
    return True


# ---- generated code
class _Formats:
    """Parameters, inputs and initial states by name, shaped as :class:`Compiled` takes them."""

    def __init__(self, setup: _Setup):
        rec = setup.rec
        self.setup = setup
        self.param_groups = [(identifier(name), value) for name, value in rec.param_groups.items()]
        vectors = rec.vectors
        self.recurrence_inputs = _groups(rec.inputs, vectors)
        self.input_groups = self.recurrence_inputs + _groups(
            setup.targets, _target_vectors(setup.targets, vector_names(setup.given_loss))
        )
        self.state_groups = _groups(rec.states, vectors)
        self.by_ident = {
            identifier(f.__name__): f for f in (*rec.inputs, *setup.targets, *rec.states)
        }
        self.order = {
            name: max(rec.lag(self.by_ident[c]) for c in comps)
            for name, comps, _ in self.state_groups
        }

    def params(self, trial: int) -> dict[str, Any]:
        leaves = self.setup.leaves
        out: dict[str, Any] = {}
        for name, value in self.param_groups:
            if isinstance(value, sp.MatrixBase):
                rows, cols = value.shape
                arr = np.array(
                    [[float(leaves[value[i, j]][trial]) for j in range(cols)] for i in range(rows)]
                )
                out[name] = arr[:, 0] if cols == 1 else arr
            else:
                out[name] = float(leaves[value][trial])
        return out

    def inputs(self, trial: int, targets: bool = True) -> dict[str, Any]:
        """Input arrays by name; ``targets=False`` leaves out what only the loss reads."""
        setup = self.setup
        first = 1 - setup.rec.input_lag
        out: dict[str, Any] = {}
        groups = self.input_groups if targets else self.input_groups[: len(self.recurrence_inputs)]
        for name, comps, is_vector in groups:
            cols = []
            for c in comps:
                f = self.by_ident[c]
                cols.append(
                    [
                        float(setup.leaves.get(f(k), np.zeros(setup.trials))[trial])
                        for k in range(first, setup.T + 1)
                    ]
                )
            out[name] = np.array(cols).T if is_vector else np.array(cols[0])
        return out

    def init(self, trial: int) -> dict[str, Any]:
        values = self.setup.base.values
        out: dict[str, Any] = {}
        for name, comps, is_vector in self.state_groups:
            order = self.order[name]
            parts = []
            for i in range(order):
                row = []
                for c in comps:
                    a = self.by_ident[c](-i)
                    row.append(
                        float(np.broadcast_to(values[a], (self.setup.trials,))[trial])
                        if a in values
                        else 0.0
                    )
                parts.append(np.array(row) if is_vector else row[0])
            out[name] = parts[0] if order == 1 else np.array(parts)
        return out

    def gradient_entries(self, grads: Mapping[str, Any]) -> dict[Any, Any]:
        """Map a gradient by name (as ``value_and_grad`` returns it) to scalar coordinates."""
        out: dict[Any, Any] = {}
        for name, value in self.param_groups:
            if name not in grads:
                continue
            arr = np.asarray(grads[name])
            if isinstance(value, sp.MatrixBase):
                rows, cols = value.shape
                arr = arr.reshape(rows, cols)
                for i in range(rows):
                    for j in range(cols):
                        out[value[i, j]] = arr[i, j]
            else:
                out[value] = arr.reshape(())[()]
        for name, comps, is_vector in self.state_groups:
            if name not in grads.get("init", {}):
                continue
            order = self.order[name]
            arr = np.asarray(grads["init"][name])
            parts = [arr] if order == 1 else [arr[i] for i in range(order)]
            for i, part in enumerate(parts):
                flat = (
                    np.asarray(part).reshape(-1)
                    if is_vector
                    else [np.asarray(part).reshape(())[()]]
                )
                for c, v in zip(comps, flat, strict=True):
                    out[self.by_ident[c](-i)] = v
        return out


def _check_codegen(setup: _Setup, reverse: dict[Any, np.ndarray] | Exception) -> list[Row]:
    rec, U, T = setup.rec, setup.U, setup.T
    rows: list[Row] = []
    formats = _Formats(setup)
    loss_total = setup.evaluate([setup.loss])[0]
    for mode in ("scan", "unrolled"):
        compared_fwd = f"{mode} code forward vs Python loop"
        compared_grad = f"{mode} code loss and gradient vs reverse mode"
        loss_arg, grad_reason = _codegen_loss(setup, mode)
        try:
            if mode == "scan":
                F = lambdify(rec, loss=loss_arg, mode="scan")
            else:
                F = lambdify(U, loss=loss_arg, mode="unrolled")
        except Exception as exc:  # a crash in code generation is a finding, reported as such
            rows.append(_error("codegen", compared_fwd, f"sr.lambdify(mode={mode!r})", exc))
            continue
        fwd = _Comparison((f"{mode} code", "loop"))
        grd = _Comparison((f"{mode} code", "reference"))
        error: Row | None = None
        for i in range(setup.trials):
            params, init = formats.params(i), formats.init(i)
            inputs = formats.inputs(i, targets=loss_arg is not None)
            problem = setup.trial_problem(i)
            try:
                with _watch():
                    out = F.forward(params, inputs, init, steps=T)
                    vg = None
                    if grad_reason is None:
                        vg = F.value_and_grad(params, inputs, init, steps=T, init_grad=True)
            except Exception as exc:
                if not _is_arithmetic(exc):
                    error = _error("codegen", compared_fwd, f"{mode} code", exc)
                    break
                _arith_problem(
                    fwd, grd, problem, i, f"{mode} code raised {type(exc).__name__}: {exc}"
                )
                continue
            for name, comps, is_vector in _groups(rec.defined, rec.vectors):
                arr = np.asarray(out[name])
                for j, c in enumerate(comps):
                    f = next(g for g in rec.defined if identifier(g.__name__) == c)
                    for k in range(1, T + 1):
                        v = arr[k - 1, j] if is_vector else arr[k - 1]
                        loc = (("step", k), ("component", f.__name__), ("trial", i))
                        ref = np.broadcast_to(setup.base.values[f(k)], (setup.trials,))[i]
                        _add_or_problem(fwd, loc, v, ref, problem, k)
            if vg is None:
                continue
            value, grads = vg
            _add_or_problem(
                grd,
                (("component", "L"), ("trial", i)),
                value,
                loss_total[i] if not isinstance(loss_total, Exception) else np.nan,
                problem,
                T,
            )
            if isinstance(reverse, Exception):
                continue
            entries = formats.gradient_entries(grads)
            for v in setup.wrt:
                if v in entries:
                    where = (("component", f"dL/d{v}"), ("trial", i))
                    _add_or_problem(grd, where, entries[v], reverse[v][i], problem, T)
        if error is not None:
            rows.append(error)
            continue
        rows.append(_judge("codegen", compared_fwd, fwd, setup.rtol, setup.atol))
        if grad_reason is not None:
            rows.append(_skip("codegen", compared_grad, grad_reason))
        elif isinstance(reverse, Exception):
            rows.append(_error("codegen", compared_grad, "reverse mode", reverse))
        else:
            rows.append(_judge("codegen", compared_grad, grd, setup.rtol, setup.atol))
        if setup.trials > 1:
            rows.append(_batch_row(setup, formats, F, mode, with_grad=grad_reason is None))
    if rec.is_vector:
        rows.append(_matrix_row(setup, formats))
    return rows


def _batch_of_trials(setup: _Setup, formats: _Formats, with_grad: bool) -> tuple[Any, ...]:
    """Trial 0's parameters, each trial's inputs and initial states, and all trials as a batch:
    inputs (T, batch, ...), initial states (batch, ...) or (order, batch, ...)."""
    params = formats.params(0)
    inputs = [formats.inputs(i, targets=with_grad) for i in range(setup.trials)]
    inits = [formats.init(i) for i in range(setup.trials)]
    batch_inputs = {k: np.stack([x[k] for x in inputs], axis=1) for k in inputs[0]}
    batch_init = {
        k: np.stack([x[k] for x in inits], axis=int(formats.order[k] > 1)) for k in inits[0]
    }
    return params, inputs, inits, batch_inputs, batch_init


def _batch_row(setup: _Setup, formats: _Formats, F: Any, mode: str, with_grad: bool) -> Row:
    """The compiled code on every trial at once against the same code one sequence at a time.

    The rows above run one sequence at a time (Python floats through the ``math`` module,
    where it can print the update); a batch runs the NumPy functions instead, which sum the
    gradients over the batch inside the adjoint step.  The batch shares trial 0's parameters,
    as a batch of sequences does.
    """
    trials, T = setup.trials, setup.T
    compared = f"{mode} code, batch of {trials} vs one sequence at a time"
    params, inputs, inits, batch_inputs, batch_init = _batch_of_trials(setup, formats, with_grad)
    comparison = _Comparison(("batch", "one at a time"))
    summed: Location = (("summed", trials),)  # where batch sums are compared
    try:
        with _watch():
            out = F.forward(params, batch_inputs, batch_init, steps=T)
            singles = [F.forward(params, inputs[i], inits[i], steps=T) for i in range(trials)]
            if with_grad:
                value, grads = F.value_and_grad(
                    params, batch_inputs, batch_init, steps=T, init_grad=True
                )
                single_grads = [
                    F.value_and_grad(params, inputs[i], inits[i], steps=T, init_grad=True)
                    for i in range(trials)
                ]
    except Exception as exc:
        if not _is_arithmetic(exc):
            return _error("codegen", compared, f"{mode} code on a batch", exc)
        comparison.problem(summed, f"{mode} code raised {type(exc).__name__}: {exc}")
        return _judge("codegen", compared, comparison, setup.rtol, setup.atol)
    for name, comps, is_vector in _groups(setup.rec.defined, setup.rec.vectors):
        for i in range(trials):
            batch_values = np.asarray(out[name])[:, i]
            single_values = np.asarray(singles[i][name])
            for j, c in enumerate(comps):
                for k in range(T):
                    loc: Location = (("step", k + 1), ("component", c), ("trial", i))
                    a = batch_values[k, j] if is_vector else batch_values[k]
                    b = single_values[k, j] if is_vector else single_values[k]
                    comparison.add(loc, a, b)
    if with_grad:
        comparison.add((("component", "L"), *summed), value, sum(v for v, _ in single_grads))
        sums = formats.gradient_entries(
            {k: sum(g[k] for _, g in single_grads) for k in grads if k != "init"}
        )
        for v, g in formats.gradient_entries({k: grads[k] for k in grads if k != "init"}).items():
            comparison.add((("component", f"dL/d{v}"), *summed), g, sums[v])
        for name, arr in grads["init"].items():
            per_trial = np.moveaxis(np.asarray(arr), int(formats.order[name] > 1), 0)
            for i in range(trials):
                single = np.asarray(single_grads[i][1]["init"][name])
                for index in np.ndindex(single.shape):
                    label = f"dL/d{name}(0)" + (f"[{', '.join(map(str, index))}]" if index else "")
                    comparison.add(
                        (("component", label), ("trial", i)), per_trial[i][index], single[index]
                    )
    return _judge("codegen", compared, comparison, setup.rtol, setup.atol)


def _matrix_row(setup: _Setup, formats: _Formats) -> Row:
    """The matrix-level code (whole vectors, BLAS over the batch) against the component code.

    Both run every trial at once with trial 0's parameters; they are generated independently
    (the matrix rules of :mod:`symrnn.rules` vs the scalar differentiator), so agreement checks
    the derivative rules as much as the printing.
    """
    compared = "matrix code vs component code"
    loss = setup.given_loss
    if loss is None or isinstance(loss, str):
        loss = None
    elif setup.template is None:
        return _skip("codegen", compared, "the loss is at fixed times; scan code needs a template")
    with_grad = loss is not None and not loss_only_symbols(setup.rec, setup.loss)
    try:
        M = lambdify(setup.rec, loss=loss if with_grad else None, level="matrix")
        C = lambdify(setup.rec, loss=loss if with_grad else None, level="components")
    except SymrnnError as exc:
        return _skip("codegen", compared, str(exc))
    T = setup.T
    params, _, _, batch_inputs, batch_init = _batch_of_trials(setup, formats, with_grad)
    comparison = _Comparison(("matrix code", "component code"))
    try:
        with _watch():
            results = [(F.forward(params, batch_inputs, batch_init, steps=T), F) for F in (M, C)]
            grads = [
                F.value_and_grad(params, batch_inputs, batch_init, steps=T, init_grad=True)
                for F in (M, C)
                if with_grad
            ]
    except Exception as exc:
        if not _is_arithmetic(exc):
            return _error("codegen", compared, "matrix or component code", exc)
        comparison.problem((("trial", 0),), f"the code raised {type(exc).__name__}: {exc}")
        return _judge("codegen", compared, comparison, setup.rtol, setup.atol)
    (out_m, _), (out_c, _) = results
    for name in out_c:
        a, b = np.asarray(out_m[name]), np.asarray(out_c[name])
        for index in np.ndindex(b.shape):
            comparison.add((("component", f"{name}{list(index)}"),), a[index], b[index])
    if grads:
        (vm, gm), (vc, gc) = grads
        comparison.add((("component", "L"),), vm, vc)
        for name in gc:
            parts = gc[name].items() if name == "init" else [(name, gc[name])]
            for key, want in parts:
                got = (gm["init"] if name == "init" else gm)[key]
                for index in np.ndindex(np.shape(want)):
                    where: Location = ()
                    if name == "init":  # one initial state per trial: the batch axis comes first
                        where, entry, key_at = (("trial", index[0]),), index[1:], f"{key}(0)"
                    else:
                        entry, key_at = index, key
                    label = f"dL/d{key_at}" + (f"[{', '.join(map(str, entry))}]" if entry else "")
                    comparison.add(
                        (("component", label), *where),
                        np.asarray(got)[index],
                        np.asarray(want)[index],
                    )
    return _judge("codegen", compared, comparison, setup.rtol, setup.atol)


def _codegen_loss(setup: _Setup, mode: str) -> tuple[Any, str | None]:
    """The loss to compile for ``mode``, or None and why the gradient row is skipped."""
    template = setup.template
    # compiled as written: loss objects keep their target vectors (y stays a vector at size 1)
    written = setup.given_loss if isinstance(setup.given_loss, sp.Basic) else template
    if mode == "unrolled":
        loss = written if template is not None else setup.loss
    elif template is None:
        return None, "the loss is at fixed times; scan code needs a per-step template in t"
    elif any(time_of(a) != t for a in time_atoms(template)):
        return None, "the per-step loss reads other times than t; scan code reads time t only"
    else:
        loss = written
    if any(sp.sympify(v, strict=True).free_symbols for v in setup.init_given.values()):
        return loss, "initial states given as expressions in parameters; the code takes numbers"
    foreign = [str(s) for s in loss_only_symbols(setup.rec, setup.loss)]
    if foreign:
        return None, (
            f"the loss uses {', '.join(foreign)}, which the recurrence does not; generated code "
            "takes the recurrence's parameters only (list it in Recurrence(..., params=...))"
        )
    return loss, None


def _arith_problem(
    fwd: _Comparison,
    grd: _Comparison,
    problem: tuple[Location, str] | None,
    trial: int,
    message: str,
) -> None:
    """Generated code stopped on an arithmetic error (the scalar path uses the math module)."""
    found = problem or ((("trial", trial),), message)
    fwd.problem(*found)
    grd.problem(*found)


def _add_or_problem(
    comparison: _Comparison,
    loc: Location,
    a: Any,
    b: Any,
    problem: tuple[Location, str] | None,
    step: int,
) -> None:
    if not _blocked(comparison, problem, step):
        comparison.add(loc, a, b)


# ---- solve
def _check_solve(setup: _Setup) -> list[Row]:
    rec, T = setup.rec, setup.T
    times = [*range(1, T + 1), setup.horizon]
    compared = f"sr.solve at t = {', '.join(map(str, times[:-1]))}, {times[-1]} vs iteration"
    try:
        from .solve import solve as solve_fn
    except ImportError as exc:
        return [_skip("solve", compared, f"symrnn.solve is not available ({exc})")]
    try:
        sol = solve_fn(rec)
    except NoClosedForm as exc:
        return [_skip("solve", compared, f"no closed form in t: {exc}")]
    except LimitError as exc:
        return [_skip("solve", compared, f"beyond solve's limits: {exc}")]
    except Exception as exc:
        return [_error("solve", compared, "sr.solve", exc)]
    run = setup.stepper.run(setup.leaves, setup.horizon, (setup.trials,))
    comparison = _Comparison(("sr.solve", "iteration"))
    exprs: list[tuple[int, Any, Any]] = []
    try:
        for k in times:
            value = sol.at(k)
            parts = list(value) if isinstance(value, sp.MatrixBase) else [value]
            exprs += [(k, f, e) for f, e in zip(sol.of, parts, strict=True)]
    except Exception as exc:
        return [_error("solve", compared, "Solution.at", exc)]
    with _watch():
        results = _evaluate([e for _, _, e in exprs], run.values)
    for (k, f, _), value in zip(exprs, results, strict=True):
        loc = (("t", k), ("component", f.__name__))
        if isinstance(value, Exception):
            comparison.flagged.append((loc, f"cannot evaluate the solution at t = {k}: {value}"))
            continue
        _add_trials(
            setup,
            comparison,
            (("step", k), ("component", f.__name__)),
            value,
            run.values[f(k)],
            run,
        )
    notes = f"method {sol.method}"
    return [_judge("solve", compared, comparison, setup.rtol, setup.atol, notes=notes)]


# ---- gradients
def _symbolic_gradient(setup: _Setup, mode: str) -> dict[Any, np.ndarray] | Exception:
    try:
        g = grad(setup.U, setup.loss, wrt=setup.wrt, mode=mode)
    except Exception as exc:
        return exc
    results = setup.evaluate([g[v] for v in setup.wrt])
    for v, r in zip(setup.wrt, results, strict=True):
        if isinstance(r, Exception):
            return SymrnnError(f"the {mode}-mode derivative for {v} cannot be evaluated: {r}")
    return dict(zip(setup.wrt, results, strict=True))


def _gradient_comparison(
    setup: _Setup, labels: tuple[str, str], a: Mapping[Any, np.ndarray], b: Mapping[Any, np.ndarray]
) -> _Comparison:
    comparison = _Comparison(labels)
    for v in setup.wrt:
        if v in a and v in b:
            _add_trials(setup, comparison, (("component", f"dL/d{v}"),), a[v], b[v])
    return comparison


def _loss_output(setup: _Setup) -> Callable[[dict[Any, Any]], list[Any]]:
    def outputs(values: dict[Any, Any]) -> list[Any]:
        return _evaluate([setup.loss], values)

    return outputs


def _numeric_gradient_row(
    setup: _Setup,
    check: str,
    tested_label: str,
    tested: Mapping[Any, np.ndarray],
    coords: Sequence[Any],
    seed_offset: int,
) -> Row:
    probes = _directions(setup, coords, seed_offset)
    directional = len(coords) > DIRECTIONAL_ABOVE
    method = "complex step" if setup.analytic else "central differences"
    compared = f"{tested_label} vs {method}" + (
        f" ({len(probes)} random directions over {len(coords)} coordinates)" if directional else ""
    )
    try:
        deriv = _differentiate(setup, probes, _loss_output(setup), setup.T)
    except Exception as exc:
        return _error(check, compared, "numerical differentiation", exc)
    matrix = np.stack([np.broadcast_to(tested[c], (setup.trials,)) for c in coords], axis=-1)
    dirs = np.array([[p.get(c, 0.0) for c in coords] for p in probes])  # (m, n)
    along = matrix @ dirs.T  # (trials, m)
    if directional:
        locs = [(("component", f"direction {d}"),) for d in range(len(probes))]
    else:
        locs = [(("component", f"dL/d{c}"),) for c in coords]
    comparison = _Comparison((tested_label, method))
    loss_values = setup.evaluate([setup.loss])[0]
    scale = np.abs(loss_values) if not isinstance(loss_values, Exception) else np.ones(setup.trials)
    notes = _numeric_compare(setup, comparison, deriv, along, locs, scale)
    return _numeric_judge(setup, check, compared, comparison, deriv.method, notes)


def _check_gradients(setup: _Setup, reverse: dict[Any, np.ndarray] | Exception) -> list[Row]:
    rows: list[Row] = []
    if not setup.wrt:
        return [
            _skip(
                "gradient",
                "reverse mode vs forward mode",
                "nothing to differentiate: no parameters or free initial states",
            )
        ]
    forward = _symbolic_gradient(setup, "forward")
    compared = "reverse mode (BPTT) vs forward mode (RTRL)"
    if isinstance(reverse, Exception):
        rows.append(_error("gradient", compared, "reverse mode", reverse))
    elif isinstance(forward, Exception):
        rows.append(_error("gradient", compared, "forward mode", forward))
    else:
        cmp = _gradient_comparison(setup, ("reverse mode", "forward mode"), reverse, forward)
        rows.append(_judge("gradient", compared, cmp, setup.rtol, setup.atol))
    rows.append(_sp_diff_row(setup, reverse))
    if isinstance(reverse, Exception):
        rows.append(
            _error("gradient", "reverse mode vs numerical derivative", "reverse mode", reverse)
        )
    else:
        rows.append(_numeric_gradient_row(setup, "gradient", "reverse mode", reverse, setup.wrt, 0))
    return rows


def _sp_diff_row(setup: _Setup, reverse: dict[Any, np.ndarray] | Exception) -> Row:
    coords = _spread(setup.wrt, SP_DIFF_MAX_COORDS)
    compared = f"reverse mode vs sp.diff of the closed form ({', '.join(map(str, coords))})"
    skipped = "reverse mode vs sp.diff of the closed form"
    if setup.T > SP_DIFF_MAX_STEPS:
        return _skip(
            "gradient", skipped, f"steps = {setup.T} > {SP_DIFF_MAX_STEPS}: closed forms too large"
        )
    if isinstance(reverse, Exception):
        return _error("gradient", compared, "reverse mode", reverse)
    U = setup.U
    mapping: dict[Any, Any] = {}
    try:
        for eq in U.equations:
            mapping[eq.lhs] = _opaque(eq.rhs).xreplace(mapping)
        closed = _opaque(setup.loss).xreplace(mapping)
    except Exception as exc:
        return _error("gradient", compared, "substituting the chain", exc)
    budget = SP_DIFF_BUDGET // max(1, len(coords))
    if _tree_size(closed, budget) > budget:
        return _skip(
            "gradient",
            skipped,
            f"the closed-form loss has more than {budget} nodes as a tree; sp.diff would be slow",
        )
    try:
        derivs = [sp.diff(closed, v) for v in coords]
    except Exception as exc:
        return _error("gradient", compared, "sp.diff", exc)
    known = {**setup.leaves, **{a: setup.base.values[a] for a in setup.init_given}}
    results = setup.evaluate(derivs, known)
    cmp = _Comparison(("reverse mode", "sp.diff"))
    for v, r in zip(coords, results, strict=True):
        loc = (("component", f"dL/d{v}"),)
        if isinstance(r, Exception):
            cmp.flagged.append((loc, f"cannot evaluate sp.diff for {v}: {r}"))
            continue
        _add_trials(setup, cmp, loc, reverse[v], r)
    return _judge("gradient", compared, cmp, setup.rtol, setup.atol)


# The closed form is differentiated with each elementary function replaced by an inert twin
# that knows its derivative (from the function's own ``fdiff``) but has no ``eval`` and no
# assumption handlers: SymPy's assumption queries on nested tanh (is_real, is_zero, which
# expand real and imaginary parts) otherwise make building and differentiating g^{(k)} take
# minutes at k = 3.  Differentiation itself is SymPy's: the sum, product and chain rules.
_TWINS: dict[Any, Any] = {}
_ORIGINAL: dict[Any, Any] = {}


def _twin(func: Any) -> Any:
    if func not in _TWINS:

        def fdiff(self: Any, argindex: int = 1, func: Any = func) -> Any:
            xs = sp.symbols(f"z0:{len(self.args)}", cls=sp.Dummy, real=True)
            derivative = func(*xs).fdiff(argindex)
            return _opaque(derivative).xreplace(dict(zip(xs, self.args, strict=True)))

        twin = type(func.__name__, (sp.Function,), {"fdiff": fdiff})
        _TWINS[func] = twin
        _ORIGINAL[twin] = func
    return _TWINS[func]


def _opaque(expr: Any) -> Any:
    """``expr`` with every elementary function replaced by its inert twin."""

    def combine(node: Any, args: list[Any]) -> Any:
        if not node.args:
            return node
        if isinstance(node, sp.Function) and not isinstance(node, AppliedUndef):
            return _twin(node.func)(*args)
        return node.func(*args)

    return _fold(expr, combine)


def _spread(items: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` items, evenly spread (first and last included)."""
    if len(items) <= n:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in picks]


# ---- Jacobians
def _check_jacobians(setup: _Setup) -> list[Row]:
    rec, T = setup.rec, setup.T
    states = list(rec.states)
    ks = sorted({0, T // 2, T - 1})
    if any(s(0) in setup.init_given for s in states):
        ks = [k for k in ks if k > 0]
    label = _state_label(rec)
    compared = f"sr.jacobian d{label}({T})/d{label}(k), k = {', '.join(map(str, ks))}"
    if not ks:
        return [
            _skip("jacobian", compared, "no free earlier state to differentiate with respect to")
        ]
    pairs = [(s(T), r(k)) for k in ks for r in states for s in states]
    return _jacobian_rows(setup, "jacobian", compared, "sr.jacobian", pairs, None)


def _state_label(rec: Recurrence) -> str:
    names = [name for name in rec.vectors if set(rec.vectors[name]) & set(rec.states)]
    scalars = [s.__name__ for s in rec.states if not any(s in c for c in rec.vectors.values())]
    both = [*names, *scalars]
    return both[0] if len(both) == 1 else f"[{', '.join(both)}]"


def _jacobian_rows(
    setup: _Setup,
    check: str,
    compared: str,
    label: str,
    pairs: Sequence[tuple[Any, Any]],
    given: Sequence[Any] | None,
) -> list[Row]:
    """Rows for the entries d(of)/d(wrt) of ``pairs``: sr.jacobian's (``given`` None) or a
    user's (``given``, also compared with sr.jacobian), against numerical derivatives."""
    locs = [(("component", f"d{of}/d{wrt}"),) for of, wrt in pairs]
    reference = _chain_jacobian(setup, pairs)
    if given is None and isinstance(reference, Exception):
        return [_error(check, compared, "sr.jacobian", reference)]
    results = setup.evaluate(list(given)) if given is not None else reference
    assert not isinstance(results, Exception)
    flagged = [
        (loc, f"cannot evaluate {loc[0][1]}: {r}")
        for loc, r in zip(locs, results, strict=True)
        if isinstance(r, Exception)
    ]
    keep = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    rows: list[Row] = []
    if given is not None:
        name = f"{compared} vs sr.jacobian"
        if isinstance(reference, Exception):
            rows.append(_error(check, name, "sr.jacobian", reference))
        else:
            cmp = _Comparison((label, "sr.jacobian"))
            cmp.flagged.extend(flagged)
            for i in keep:
                if not isinstance(reference[i], Exception):
                    _add_trials(setup, cmp, locs[i], results[i], reference[i])
            rows.append(_judge(check, name, cmp, setup.rtol, setup.atol))
    wrts = sorted({w for _, w in pairs}, key=sp.default_sort_key)
    ofs = sorted({o for o, _ in pairs}, key=sp.default_sort_key)
    method = "complex step" if setup.analytic else "central differences"
    name = f"{compared} vs {method}"
    try:
        deriv = _differentiate(
            setup,
            [{w: 1.0} for w in wrts],
            lambda values: [values[o] for o in ofs],
            max(int(time_of(o)) for o in ofs),
        )
    except Exception as exc:
        rows.append(_error(check, name, "numerical differentiation", exc))
        return rows
    # One probe per wrt and one output per of: pick each kept pair's column.
    columns = [(wrts.index(pairs[i][1]), ofs.index(pairs[i][0])) for i in keep]
    picked = _Derivative(
        deriv.method,
        np.stack([deriv.estimate[:, w, o] for w, o in columns], axis=-1)[..., None],
        np.stack([deriv.bad[:, w] for w, _ in columns], axis=-1),
        deriv.first,
    )
    if deriv.coarse is not None and deriv.fine is not None:
        picked.coarse = np.stack([deriv.coarse[:, w, o] for w, o in columns], axis=-1)[..., None]
        picked.fine = np.stack([deriv.fine[:, w, o] for w, o in columns], axis=-1)[..., None]
    tested = np.stack([np.real(results[i]) for i in keep], axis=-1)
    comparison = _Comparison((label, method))
    comparison.flagged.extend(flagged)
    ones = np.ones(setup.trials)
    notes = _numeric_compare(setup, comparison, picked, tested, [locs[i] for i in keep], ones)
    rows.append(_numeric_judge(setup, check, name, comparison, deriv.method, notes))
    return rows


def _chain_jacobian(setup: _Setup, pairs: Sequence[tuple[Any, Any]]) -> list[Any] | Exception:
    """Values of sr.jacobian for each pair (one Jacobian per quantity differentiated)."""
    by_of: dict[Any, list[Any]] = {}
    for of, wrt in pairs:
        by_of.setdefault(of, []).append(wrt)
    entries: dict[tuple[Any, Any], Any] = {}
    try:
        for of, wrts in by_of.items():
            J = chain_jacobian(setup.U, sp.ImmutableMatrix([of]), sp.ImmutableMatrix(wrts))
            entries.update({(of, w): e for w, e in zip(wrts, J, strict=True)})
    except Exception as exc:
        return exc
    return setup.evaluate([entries[p] for p in pairs])


# ---- the user's own derivatives
def _user_gradient(setup: _Setup, gradient: Any) -> dict[Any, np.ndarray]:
    """The user's gradient as numbers per scalar coordinate, shape (trials,)."""
    rec, U = setup.rec, setup.U
    if callable(gradient) and not isinstance(gradient, (sp.Basic, Mapping)):
        formats = _Formats(setup)
        per_trial = []
        for i in range(setup.trials):
            with _watch():
                result = gradient(formats.params(i), formats.inputs(i), formats.init(i))
            if not isinstance(result, Mapping):
                raise SymrnnError(
                    f"the gradient function returned {type(result).__name__}; return a dict "
                    "{parameter name: array shaped like the parameter}, optionally with "
                    "'init': {state name: array}"
                )
            accepted = {name for name, _ in formats.param_groups} | {"init"}
            unknown = sorted(str(k) for k in result if k not in accepted)
            if unknown:
                raise SymrnnError(
                    f"the gradient function returned {unknown[0]!r}, which is not a parameter; "
                    f"the names are {', '.join(sorted(accepted))}"
                )
            per_trial.append(formats.gradient_entries(result))
        coords = [v for v in setup.wrt if v in per_trial[0]]
        return {v: np.array([float(np.real(p[v])) for p in per_trial]) for v in coords}
    if not isinstance(gradient, Mapping):
        raise SymrnnError(
            f"gradient must be a dict {{parameter: expression}} or a function, got "
            f"{type(gradient).__name__}"
        )
    names = {name: value for name, value in rec.param_groups.items()}
    names.update({str(p): p for p in rec.params})
    pairs: list[tuple[Any, Any]] = []
    for key, value in gradient.items():
        if isinstance(key, str):
            if key not in names:
                raise SymrnnError(
                    f"gradient key {key!r} is not a parameter; the parameters are "
                    f"{', '.join(sorted(rec.param_groups))}"
                )
            key = names[key]
        if isinstance(key, (sp.MatrixSymbol, VectorAt)) or is_matrix(key):
            keys, vals = list(explicit(key)), list(explicit(value)) if is_matrix(value) else None
            if vals is None or len(vals) != len(keys):
                raise SymrnnError(
                    f"gradient for {key} must be a matrix of {len(keys)} entries, got {value}"
                )
            pairs += list(zip(keys, vals, strict=True))
        elif isinstance(key, TimeVector):
            raise SymrnnError(
                f"gradient key {key} is a vector of time; use its value at time 0, {key.name}(0)"
            )
        else:
            pairs.append((key, value))
    out: dict[Any, np.ndarray] = {}
    wrt = set(setup.wrt)
    for key, value in pairs:
        if key not in wrt:
            raise SymrnnError(
                f"gradient key {key} is neither a parameter nor a free initial state of the "
                f"{U.steps}-step chain; use one of {', '.join(map(str, setup.wrt))}"
            )
        (result,) = setup.evaluate([sp.sympify(value, strict=True)])
        if isinstance(result, _Unknown):
            raise SymrnnError(
                f"the gradient for {key} uses {result.atom}, which is not a parameter, input or "
                f"quantity of the {U.steps}-step chain (times 1..{U.steps}, initial states "
                f"{', '.join(map(str, _initial_atoms(rec)))})"
            )
        if isinstance(result, Exception):
            raise SymrnnError(f"cannot evaluate the gradient for {key}: {result}")
        out[key] = np.broadcast_to(result, (setup.trials,))
    return out


def _check_user_gradient(
    setup: _Setup, gradient: Any, reverse: dict[Any, np.ndarray] | Exception
) -> list[Row]:
    user = _user_gradient(setup, gradient)
    coords = [v for v in setup.wrt if v in user]
    rows = []
    compared = "user gradient vs reverse mode"
    if isinstance(reverse, Exception):
        rows.append(_error("user", compared, "reverse mode", reverse))
    else:
        cmp = _gradient_comparison(setup, ("user gradient", "reverse mode"), user, reverse)
        rows.append(_judge("user", compared, cmp, setup.rtol, setup.atol))
    rows.append(_numeric_gradient_row(setup, "user", "user gradient", user, coords, 1))
    return rows


def _check_user_jacobian(setup: _Setup, jacobian: Any) -> list[Row]:
    if not isinstance(jacobian, Mapping):
        raise SymrnnError(
            "jacobian must be a dict {(of, wrt): expression}, e.g. {(h(3), h(1)): w**2*...}"
        )
    rows: list[Row] = []
    for (of, wrt), value in jacobian.items():
        ofs = list(explicit(of)) if is_matrix(of) else [of]
        wrts = list(explicit(wrt)) if is_matrix(wrt) else [wrt]
        vals = (
            explicit(value)
            if is_matrix(value)
            else sp.ImmutableMatrix([[sp.sympify(value, strict=True)]])
        )
        if vals.shape != (len(ofs), len(wrts)):
            raise SymrnnError(
                f"jacobian value for ({of}, {wrt}) has shape {vals.shape}, expected "
                f"({len(ofs)}, {len(wrts)})"
            )
        for a in ofs:
            if a not in setup.U.definitions:
                raise SymrnnError(f"jacobian: {a} is not a quantity of the {setup.T}-step chain")
        for w in wrts:
            if w not in setup.U.definitions and w not in setup.leaves:
                raise SymrnnError(f"jacobian: cannot differentiate with respect to {w}")
        pairs = [(a, w) for a in ofs for w in wrts]
        given = [vals[i, j] for i in range(len(ofs)) for j in range(len(wrts))]
        compared = f"user Jacobian d{of}/d{wrt}"
        rows += _jacobian_rows(setup, "user", compared, "user", pairs, given)
    return rows


# ------------------------------------------------------------------------------- verify
# ------------------------------------------------------------------ large vector recurrences
#: Vector recurrences with more scalar parameters than this are verified at matrix level: the
#: component forms (closed forms, unrolled code, scalar BPTT and RTRL) grow with the square of
#: the hidden size; the matrix-level code is checked against its own independent routes instead.
MAX_COMPONENT_PARAMETERS = 200
#: Up to this many scalar parameters the matrix-level code is also compared with component code.
MAX_COMPARED_PARAMETERS = 600
#: The size at which a recurrence of symbolic size is verified.
VERIFY_SIZE = 3


def scalar_parameters(rec: Recurrence) -> int | None:
    """The number of scalar parameters (entries of every parameter matrix), None if symbolic."""
    if not rec.has_explicit_size:
        return None
    return sum(int(sp.Mul(*getattr(p, "shape", (1, 1)))) for p in rec.blocks.params)


def _numpy_value(expr: Any, values: Mapping[Any, Any]) -> Any:
    """A matrix-level expression evaluated with NumPy, vectors as columns (one sequence).

    An evaluator independent of the generated code: SymPy's expression tree walked directly,
    elementwise functions through ``sympy.lambdify`` of their scalar body.
    """
    if expr in values:
        return values[expr]
    if isinstance(expr, (sp.OneMatrix, sp.ZeroMatrix, sp.Identity)) or isinstance(
        expr, sp.MatrixBase
    ):
        return np.array(expr.as_explicit().tolist(), dtype=float)
    if expr.is_Number:
        return float(expr)
    if isinstance(expr, ElementwiseApplyFunction):
        (var,) = expr.function.variables
        f = sp.lambdify(var, expr.function.expr, modules=[_NUMPY_FUNCTIONS, "numpy"])
        return f(_numpy_value(expr.expr, values))
    args = [_numpy_value(a, values) for a in expr.args] if expr.args else []
    if isinstance(expr, (sp.MatAdd, sp.Add)):
        return sum(args[1:], args[0])
    if isinstance(expr, sp.MatMul):
        scale, product = 1.0, None
        for a, arg in zip(args, expr.args, strict=True):
            if getattr(arg, "is_Matrix", False):
                product = a if product is None else product @ a
            else:
                scale = scale * a
        return scale * product
    if isinstance(expr, sp.Mul):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, sp.HadamardProduct):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, (sp.Pow, sp.HadamardPower)):
        return args[0] ** args[1]
    if isinstance(expr, sp.MatPow):
        return np.linalg.matrix_power(args[0], int(expr.exp))
    if isinstance(expr, sp.Transpose):
        return args[0].T
    if isinstance(expr, sp.Function):
        f = sp.lambdify(_SLOT, type(expr)(_SLOT), modules=[_NUMPY_FUNCTIONS, "numpy"])
        return f(*args)
    raise SymrnnError(f"cannot evaluate {type(expr).__name__} {expr} with NumPy")


_SLOT = sp.Symbol("slot", real=True)
_NUMPY_FUNCTIONS = {
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.log1p(np.exp(x)),
}


def _verify_matrix_level(
    U: Unfolded,
    loss: Any,
    wanted: Iterable[str],
    seed: int,
    trials: int,
    ranges: Any,
    rtol: float,
    atol: float,
) -> list[Row]:
    """Rows for a vector recurrence too large for the component view (see
    :data:`MAX_COMPONENT_PARAMETERS`): its matrix-level code against a NumPy evaluation of the
    equations (forward), complex-step derivatives (gradient), itself on a batch, and, while
    small enough, the component code."""
    rec, T = U.recurrence, U.steps
    count = scalar_parameters(rec)
    reason = (
        f"the recurrence has {count:,} scalar parameters (component forms are checked up to "
        f"{MAX_COMPONENT_PARAMETERS}); its matrix-level code is checked instead"
    )
    wanted = list(wanted)
    skipped = {
        "closed_form": "closed forms vs iteration",
        "solve": "sr.solve vs iteration",
        "jacobian": "sr.jacobian vs complex step",
    }
    rows = [_skip(c, what, reason) for c, what in skipped.items()]
    rows = [r for r in rows if r.check in wanted]
    if not {"codegen", "gradient"} & set(wanted):
        return rows
    if loss is None:
        loss = sp.Add(
            *[
                dot(v, v) / 2 if (v := rec.blocks.vector(f)) is not None else f(t) ** 2 / 2
                for f in (*rec.blocks.states, *rec.blocks.outputs)
            ]
        )
    compared_fwd = "matrix code forward vs NumPy evaluation of the equations"
    try:
        M = lambdify(rec, loss=loss, level="matrix")
        Mc = lambdify(rec, loss=loss, level="matrix", dtype="complex128")
    except Exception as exc:  # a crash in code generation is a finding
        return [*rows, _error("codegen", compared_fwd, "sr.lambdify(level='matrix')", exc)]
    rng = np.random.default_rng(seed)
    default = (-1.0, 1.0)
    # Ranges by the name of one entry ("W_12", as sr.verify takes them) win over the matrix's.
    by_entry = {str(k): v for k, v in ranges.items()} if isinstance(ranges, Mapping) else {}
    targets = {name for name, _ in M._module.TARGETS}

    def draw(kind: str, name: str, shape: tuple[Any, ...], lead: tuple[int, ...] = ()) -> Any:
        group = _range_of(ranges, kind, name, default)
        out = rng.uniform(*group, (*lead, *shape))
        if kind == "params" and by_entry:
            rows, cols = (*shape, 1)[:2]
            for index in np.ndindex(*shape):
                i, j = (*index, 0)[:2]
                label = entry_symbol(name, i, j, rows, cols).name
                if label in by_entry:
                    out[index] = rng.uniform(*_check_range(by_entry[label], f"ranges[{label!r}]"))
        return out

    problems = []
    for _ in range(trials):
        params = {k: draw("params", k, s) for k, s in M.param_shapes.items()}
        inputs = {
            k: draw("targets" if k in targets else "inputs", k, s, (T + M.input_lag,))
            for k, s in M.input_shapes.items()
        }
        init = {
            k: draw("init", k, s, (o,) if o > 1 else ()) for k, (o, s) in M.state_shapes.items()
        }
        problems.append((params, inputs, init))
    fwd = _Comparison(("matrix code", "NumPy"))
    grd = _Comparison(("matrix code", "complex step"))
    bat = _Comparison(("batch", "one at a time"))
    try:
        with _watch():
            for i, (params, inputs, init) in enumerate(problems):
                _compare_forward(rec, M, params, inputs, init, T, fwd, i)
                _compare_complex_step(M, Mc, params, inputs, init, rng, grd, i)
            _compare_batch(M, problems, bat)
    except Exception as exc:
        if not _is_arithmetic(exc):
            return [*rows, _error("codegen", compared_fwd, "matrix code", exc)]
        fwd.problem((("trial", 0),), f"{type(exc).__name__}: {exc}")
    directions = f"{2 * trials} random directions over {count:,} coordinates"
    if "codegen" in wanted:
        rows.append(_judge("codegen", compared_fwd, fwd, rtol, atol))
        rows.append(
            _judge("codegen", f"matrix code, batch of {trials} vs one at a time", bat, rtol, atol)
        )
        if count is not None and count <= MAX_COMPARED_PARAMETERS:
            rows.append(_matrix_vs_components(rec, loss, problems, rtol, atol))
        else:
            rows.append(
                _skip(
                    "codegen",
                    "matrix code vs component code",
                    f"{count:,} scalar parameters: component code is compiled up to "
                    f"{MAX_COMPARED_PARAMETERS}",
                )
            )
    if "gradient" in wanted:
        rows.append(
            _judge("gradient", f"matrix code vs complex step ({directions})", grd, rtol, atol)
        )
    return rows


def _compare_forward(rec, M, params, inputs, init, T, comparison, trial):
    out = M.forward(params, inputs, init)
    values: dict[Any, Any] = {}
    for p in rec.blocks.params:
        arr = np.asarray(params[identifier(p.name)], dtype=float)
        values[p] = arr.reshape(tuple(int(d) for d in p.shape)) if hasattr(p, "shape") else arr
    blocks = rec.blocks

    def column(name: str, value: Any) -> Any:
        v = blocks.vector(sp.Function(name))
        return np.asarray(value, dtype=float).reshape(-1, 1) if v is not None else float(value)

    def atom(name: str, time: int) -> Any:
        v = dict(blocks.vectors).get(name)
        return (
            VectorAt(name, time, v.shape[0])
            if v is not None
            else sp.Function(name, real=True)(time)
        )

    lag = M.input_lag
    for name in M.input_shapes:
        if name in {f.__name__ for f in blocks.inputs}:
            for k in range(1 - lag, T + 1):
                values[atom(name, k)] = column(name, inputs[name][k - 1 + lag])
    for name, (order, _) in M.state_shapes.items():
        for j in range(order):
            part = init[name][j] if order > 1 else init[name]
            values[atom(name, -j)] = column(name, part)
    for k in range(1, T + 1):
        for eq in blocks.equations:
            lhs = eq.lhs
            name = lhs.name if isinstance(lhs, VectorAt) else lhs.func.__name__
            rhs = eq.rhs.xreplace({t: k})
            values[atom(name, k)] = _numpy_value(rhs, values)
            got = np.asarray(out[name][k - 1]).reshape(-1)
            want = np.asarray(values[atom(name, k)]).reshape(-1)
            for c, (a, b) in enumerate(zip(got, want, strict=True)):
                comparison.add((("step", k), ("component", f"{name}[{c}]"), ("trial", trial)), a, b)


def _compare_complex_step(M, Mc, params, inputs, init, rng, comparison, trial):
    _, grads = M.value_and_grad(params, inputs, init)
    h = 1e-30
    for j in range(2):
        d = {k: rng.standard_normal(np.shape(v)) for k, v in params.items()}
        exact = sum(float(np.vdot(grads[k], d[k])) for k in params)
        shifted = {k: params[k] + 1j * h * d[k] for k in params}
        cs = float(np.sum(Mc.loss(shifted, inputs, init)).imag / h)
        comparison.add((("component", f"direction {j}"), ("trial", trial)), exact, cs)


def _compare_batch(M, problems, comparison):
    params = problems[0][0]
    inputs = [p[1] for p in problems]
    inits = [p[2] for p in problems]
    batch_inputs = {k: np.stack([x[k] for x in inputs], axis=1) for k in inputs[0]}
    orders = {k: o for k, (o, _) in M.state_shapes.items()}
    batch_init = {k: np.stack([x[k] for x in inits], axis=int(orders[k] > 1)) for k in inits[0]}
    value, grads = M.value_and_grad(params, batch_inputs, batch_init)
    singles = [M.value_and_grad(params, inputs[i], inits[i]) for i in range(len(problems))]
    comparison.add((("component", "L"),), value, sum(v for v, _ in singles))
    for name, g in grads.items():
        total = sum(s[1][name] for s in singles)
        for index in np.ndindex(np.shape(g)):
            comparison.add((("component", f"dL/d{name}{list(index)}"),), g[index], total[index])


def _matrix_vs_components(rec, loss, problems, rtol, atol) -> Row:
    compared = "matrix code vs component code"
    try:
        M = lambdify(rec, loss=loss, level="matrix")
        C = lambdify(rec, loss=loss, level="components")
    except SymrnnError as exc:
        return _skip("codegen", compared, f"no component code: {exc}")
    comparison = _Comparison(("matrix code", "component code"))
    for i, (params, inputs, init) in enumerate(problems):
        vm, gm = M.value_and_grad(params, inputs, init)
        vc, gc = C.value_and_grad(params, inputs, init)
        comparison.add((("component", "L"), ("trial", i)), vm, vc)
        for name in gc:
            for index in np.ndindex(np.shape(gc[name])):
                loc = (("component", f"dL/d{name}{list(index)}"), ("trial", i))
                comparison.add(loc, np.asarray(gm[name])[index], np.asarray(gc[name])[index])
    return _judge("codegen", compared, comparison, rtol, atol)


def verify(
    rec: Recurrence | Unfolded,
    steps: int | None = None,
    loss: Any = None,
    *,
    seed: int = 0,
    trials: int = 3,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    fd_rtol: float = 1e-5,
    gradient: Any = None,
    jacobian: Any = None,
    checks: Iterable[str] | None = None,
    ranges: Any = None,
) -> Report:
    r"""Check every form symrnn derives for ``rec`` against the others, numerically.

    Parameters
    ----------
    rec : Recurrence or Unfolded
        What to check.  An :class:`Unfolded` chain fixes ``steps`` and its initial values.
    steps : int, optional
        Number of steps T (default 5, or ``rec.steps`` for a chain).
    loss : sympy.Expr or str, optional
        A per-step loss template in :data:`symrnn.t`, summed over t = 1 … T (functions of time
        it uses that the recurrence does not define, such as targets ``y(t)``, are drawn at
        random like inputs), or an expression at fixed times (``h(3)**2``).  Default:
        :math:`L^{(t)} = \tfrac12 \sum_q \big(q^{(t)}\big)^2` over every state and output
        component q.
    seed : int
        Seed of the random parameters, inputs and initial states.
    trials : int
        How many random points (each row compares all of them).
    rtol, atol : float
        Tolerance of every exact comparison (closed forms, generated code, solve, reverse vs
        forward vs ``sp.diff``, complex step): :math:`|a - b| \le atol + rtol \max(|a|, |b|)`.
    fd_rtol : float
        Relative tolerance of central differences (used only where a function is not analytic,
        with absolute tolerance 1e-8 and a check that the error shrinks ~4x as h halves).
    gradient : dict or callable, optional
        Your own gradient, checked against reverse mode and numerical differentiation (rows of
        check ``"user"``).  A dict ``{parameter: expression}`` (matrix parameters map to matrices,
        initial states ``h(0)`` may be keys) with expressions in parameters, inputs, initial
        states and chain quantities ``h(1)`` … ``h(T)``; or a function
        ``gradient(params, inputs, init) -> {name: array}`` taking and returning arrays by name
        as :meth:`Compiled.value_and_grad` does (initial states under ``"init"``).
    jacobian : dict, optional
        Your own Jacobians ``{(of, wrt): expression}``, e.g. ``{(h(3), h(1)): ...}`` (vectors give
        matrices), checked against :func:`symrnn.jacobian` and numerical differentiation.
    checks : iterable of str, optional
        A subset of :data:`CHECKS` to run (default: all).  User rows run whenever given.
    ranges : (low, high) or dict, optional
        Where random values are drawn: one pair for everything, or a dict keyed by ``"params"``,
        ``"inputs"``, ``"init"``, ``"targets"`` or by the name of a parameter (a matrix, or one
        entry such as ``"W_12"``), input or state.
        Default [-1, 1], or [0.5, 1.5] when a log, a square root or a fractional power appears.

    Returns
    -------
    Report
        One :class:`Row` per comparison; ``report.ok``; ``print(report)`` shows the table and, for
        every row that did not pass, both values or the reason.

    Notes
    -----
    A value that is not finite (overflow to inf, NaN from a domain error such as the log of a
    negative number) is reported as ``"numerical problem"`` with its step, component and trial:
    neither a pass nor a mismatch.  Recurrences with an abstract update function ``f`` cannot be
    evaluated; every row is then skipped with the reason, and ``ok`` is False because nothing
    was compared.

    Examples
    --------
    >>> import symrnn as sr
    >>> rnn = sr.cells.rnn()
    >>> h, x = rnn.states[0], rnn.inputs[0]
    >>> w, u, b = sorted(rnn.params, key=str)[::-1]
    >>> # dL/dw for L = h(1)**2/2 with one step, written by hand (and wrong: a factor 2)
    >>> report = sr.verify(rnn, steps=1, gradient={w: 2*h(1)*(1 - h(1)**2)*h(0)}, checks=[])
    >>> report.ok, [row.status for row in report.by_check("user")]
    (False, ['fail', 'fail'])
    """
    scalar = getattr(rec, "recurrence", rec)
    # Vector recurrences too large for components are checked at matrix level (below).
    quantities = 0 if getattr(scalar, "is_vector", True) else len(scalar.equations)
    if quantities > MAX_VERIFY_QUANTITIES:
        raise LimitError(
            f"verify checks at most {MAX_VERIFY_QUANTITIES} scalar quantities, this recurrence "
            f"has {quantities}; check a smaller size of the same cell (the derivation does not "
            "depend on it)"
        )
    U = _as_unfolded(rec, steps)
    wanted = _wanted(checks)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise SymrnnError(f"trials must be an integer in 1..{MAX_TRIALS}, got {trials!r}")
    for name, value in (("rtol", rtol), ("atol", atol), ("fd_rtol", fd_rtol)):
        if isinstance(value, bool) or not (
            isinstance(value, (int, float)) and 0 <= value < math.inf
        ):
            raise SymrnnError(f"{name} must be a finite non-negative number, got {value!r}")
    r = U.recurrence
    name = r.name or "recurrence"
    if r.is_vector and not r.has_explicit_size:
        # Numbers need sizes: a symbolic size is checked at 3 (the code runs at any size).
        sizes = {str(s): VERIFY_SIZE for s in r.blocks.sizes}
        mapping = {s: sp.Integer(VERIFY_SIZE) for s in r.blocks.sizes}
        explicit_loss = loss.xreplace(mapping) if isinstance(loss, sp.Basic) else loss
        return verify(
            r.at_sizes(**sizes),
            U.steps,
            explicit_loss,
            seed=seed,
            trials=trials,
            rtol=rtol,
            atol=atol,
            fd_rtol=fd_rtol,
            gradient=gradient,
            jacobian=jacobian,
            checks=checks,
            ranges=ranges,
        )
    count = scalar_parameters(r)
    if r.is_vector and count is not None and count > MAX_COMPONENT_PARAMETERS:
        rows = _verify_matrix_level(U, loss, wanted, seed, trials, ranges, rtol, atol)
        for given, what in ((gradient, "user gradient"), (jacobian, "user Jacobian")):
            if given is not None:
                rows.append(
                    _skip(
                        "user",
                        what,
                        f"{count:,} scalar parameters: too many for "
                        "the component forms a user gradient is compared with",
                    )
                )
        return Report(tuple(rows), name, U.steps, seed, trials)
    abstract = _abstract_calls([*r.update.values(), *(v for _, v in U.init)])
    if abstract:
        reason = (
            f"the update uses the abstract function {abstract[0]}, which has no numeric value; "
            "substitute a concrete update to verify it"
        )
        rows = [_skip(c, c.replace("_", " "), reason) for c in wanted]
        if gradient is not None:
            rows.append(_skip("user", "user gradient", reason))
        if jacobian is not None:
            rows.append(_skip("user", "user Jacobian", reason))
        return Report(tuple(rows), name, U.steps, seed, trials)
    setup = _Setup(U, loss, seed, trials, ranges, float(rtol), float(atol), float(fd_rtol))
    rows = []
    reverse: dict[Any, np.ndarray] | Exception | None = None

    def get_reverse() -> dict[Any, np.ndarray] | Exception:
        nonlocal reverse
        if reverse is None:
            reverse = _symbolic_gradient(setup, "reverse")
        return reverse

    for check in CHECKS:
        if check not in wanted:
            continue
        if check == "closed_form":
            rows += _check_closed_forms(setup)
        elif check == "codegen":
            rows += _check_codegen(setup, get_reverse())
        elif check == "solve":
            rows += _check_solve(setup)
        elif check == "gradient":
            rows += _check_gradients(setup, get_reverse())
        elif check == "jacobian":
            rows += _check_jacobians(setup)
    if gradient is not None:
        rows += _check_user_gradient(setup, gradient, get_reverse())
    if jacobian is not None:
        rows += _check_user_jacobian(setup, jacobian)
    return Report(tuple(rows), name, U.steps, seed, trials)


def _as_unfolded(rec: Any, steps: int | None) -> Unfolded:
    if isinstance(rec, Unfolded):
        if steps is not None and steps != rec.steps:
            raise SymrnnError(
                f"verify got a {rec.steps}-step chain and steps={steps}; drop steps or unfold "
                f"with sr.unfold(rec, {steps})"
            )
        if rec.steps > MAX_VERIFY_STEPS:
            raise LimitError(f"verify checks at most {MAX_VERIFY_STEPS} steps, got {rec.steps}")
        return rec
    if not isinstance(rec, Recurrence):
        raise SymrnnError(
            f"verify needs a Recurrence or an Unfolded chain, got {type(rec).__name__}"
        )
    steps = 5 if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, sp.Integer)) or steps < 1:
        raise SymrnnError(f"steps must be a positive integer, got {steps!r}")
    if steps > MAX_VERIFY_STEPS:
        raise LimitError(
            f"verify checks at most {MAX_VERIFY_STEPS} steps (closed forms are a view for small "
            f"t), got {steps}; the generated code itself runs any T"
        )
    return unfold(rec, int(steps))


def _wanted(checks: Iterable[str] | None) -> tuple[str, ...]:
    if checks is None:
        return CHECKS
    if isinstance(checks, str):
        checks = [checks]
    chosen = tuple(checks)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise SymrnnError(f"unknown check {unknown[0]!r}; choose from {', '.join(CHECKS)}")
    return tuple(c for c in CHECKS if c in chosen)
