r"""Gradient flow through time: does :math:`\partial h^{(t)}/\partial h^{(k)}` vanish or explode?

Back-propagation through time multiplies the step Jacobians
:math:`J^{(k)} = \partial h^{(k)} / \partial h^{(k-1)}`: the gradient that reaches a state d steps
back is carried by

.. math::
    \frac{\partial h^{(t)}}{\partial h^{(t-d)}} = J^{(t)} J^{(t-1)} \cdots J^{(t-d+1)} .

For a linear recurrence :math:`h^{(t)} = A h^{(t-1)} + \dots` every factor is :math:`A`, the
product is :math:`A^{d}`, and its norm behaves like :math:`\rho(A)^{d}` (Gelfand's formula,
:math:`\lVert A^{d} \rVert^{1/d} \to \rho(A)`): the gradient vanishes when the spectral radius
is below 1 and explodes above 1 (Goodfellow et al., *Deep Learning*, §10.7, the challenge of
long-term dependencies).  For a nonlinear cell the factors depend on the trajectory, so the
product is computed numerically along one, for given parameter values.

:func:`gradient_flow` does both and returns a :class:`GradientFlow`: the norms for each lag d,
the exact power :math:`A^{d}` and :math:`\rho(A)` for linear recurrences, a fitted per-step
rate and a verdict ("vanishing", "stable", "exploding").  Reference semantics of the numbers::

    J = [step_jacobian(h[k - 1], x[k]) for k in 1..T]      # along the trajectory h(0..T)
    P = I
    for d in 1..T:
        P = P @ J[T - d + 1]                               # = ∂h^{(T)}/∂h^{(T-d)}
        norms[d] = ||P||

>>> import symrnn as sr
>>> flow = sr.gradient_flow(sr.cells.linear(), params={"a": 0.5})
>>> flow.symbolic, flow.spectral_radius, flow.verdict
(a**d, 0.5, 'vanishing')
>>> flow.norms[:3].tolist()
[0.5, 0.25, 0.125]
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .diff import transition_jacobian
from .errors import LimitError, ShapeError, SymrnnError, ToolMissing
from .notation import code_name, identifier, is_time_atom, latex_expr, t, time_atoms, time_of
from .numeric import lambdify
from .recurrence import Recurrence

__all__ = ["gradient_flow", "GradientFlow", "plot_gradient_flows", "MAX_FLOW_STEPS"]

#: Largest number of steps :func:`gradient_flow` follows back.
MAX_FLOW_STEPS = 100_000
_DEFAULT_STEPS = 50
_DEFAULT_TOL = 1e-3
_NORM_NAMES = {1: "1-norm", 2: "2-norm", math.inf: "inf-norm", "fro": "Frobenius norm"}
# Products are rescaled only when they leave this range, so ordinary cases are plain
# repeated multiplication and long horizons cannot overflow.
_RESCALE_ABOVE, _RESCALE_BELOW = 1e150, 1e-150
_SYMBOLIC_EIGEN_SIZE = 2  # exact eigenvalues of a general symbolic matrix up to this size
_NUMERIC_EIGEN_SIZE = 4  # and of a matrix of numbers up to this size
_MATPLOTLIB_MISSING = (
    "plotting the gradient flow needs matplotlib, which is not installed; "
    "install it with `pip install matplotlib` (or `pip install symrnn[plot]`); "
    "the data (lags, norms, verdict) works without it"
)


# ------------------------------------------------------------------------------ the result
@dataclass(frozen=True, eq=False)
class GradientFlow:
    r"""How :math:`\lVert \partial h^{(t)} / \partial h^{(t-d)} \rVert` grows with the lag d.

    Attributes
    ----------
    recurrence : Recurrence
    linear : bool
        True when the step Jacobian is a constant matrix :math:`A` (no states, inputs or t in
        it: linear with constant coefficients); then
        :math:`\partial h^{(t)}/\partial h^{(t-d)} = A^{d}` exactly.  Otherwise the flow is
        measured along a trajectory (nonlinear cells, coefficients that vary with inputs or t).
    transition : sympy.ImmutableMatrix
        The step Jacobian :math:`\partial h^{(t)}/\partial h^{(t-1)}` as a template in t (gates
        eliminated; for order > 1 the block companion matrix of the stacked state).
    state : tuple
        The components of the (stacked) state that rows and columns refer to: ``h(t)``, and
        ``s(t - 1)`` etc. for the older lags of a higher-order recurrence.
    lag_symbol : sympy.Symbol
        The lag d in :attr:`symbolic`.
    symbolic : sympy.Expr or None
        Linear recurrences: :math:`a^{d}` for one state, the matrix power :math:`A^{d}`
        (``MatPow``) otherwise; in the parameters' symbols.  None for nonlinear ones.
    eigenvalues : tuple or None
        Exact eigenvalues of :math:`A` when SymPy finds them cheaply (one or two components,
        triangular or numeric matrices); None otherwise.
    spectral_radius : float, sympy.Expr or None
        :math:`\rho(A)` as a float when the entries of A have values, symbolic
        (``Max(Abs(λ), …)``) when not, None for nonlinear recurrences.
    steps : int
        T, the length of the trajectory followed back.
    norm : int, float or str
        The matrix norm: 2 (spectral), 1, ``inf`` or ``"fro"``.
    lags : numpy.ndarray
        d = 1 … T.
    norms : numpy.ndarray or None
        :math:`\lVert \partial h^{(T)} / \partial h^{(T-d)} \rVert` for each lag, measured from
        the end of the trajectory backwards, as BPTT carries the last step's gradient; None when
        a linear recurrence was given no parameter values (symbolic result only).
    log_norms : numpy.ndarray or None
        Natural logarithms of ``norms``, exact even where ``norms`` under- or overflows.
    rate : float or None
        The fitted per-step factor :math:`e^{s}`, s the least-squares slope of log-norm
        against lag; 0 when the product becomes exactly zero.
    verdict : str or None
        ``"vanishing"``, ``"stable"`` or ``"exploding"``: from :math:`\log \rho(A)` for linear
        recurrences (the asymptotic truth, even where non-normal A grows for a while first),
        from the fitted slope for nonlinear ones; "stable" when within ``tol`` of 0.
    tol : float
        The tolerance on the per-step log-growth used for the verdict.
    """

    recurrence: Recurrence
    linear: bool
    transition: sp.ImmutableMatrix
    state: tuple[Any, ...]
    lag_symbol: sp.Symbol
    symbolic: Any
    eigenvalues: tuple[Any, ...] | None
    spectral_radius: Any
    steps: int
    norm: Any
    lags: np.ndarray
    norms: np.ndarray | None
    log_norms: np.ndarray | None
    rate: float | None
    verdict: str | None
    tol: float

    # --------------------------------------------------------------------------- output
    @property
    def name(self) -> str:
        """The recurrence's name (or ``"recurrence"``), for labels."""
        return self.recurrence.name or "recurrence"

    def _quantity(self) -> str:
        d = self.lag_symbol
        if self.recurrence.order > 1:
            return f"dz(t)/dz(t-{d})"
        label = _state_label(self.recurrence)
        return f"d{label}(t)/d{label}(t-{d})"

    def __str__(self) -> str:
        kind = "linear" if self.linear else "along a trajectory"
        lines = [f"gradient flow of {self.name} ({kind}, {_NORM_NAMES[self.norm]})"]
        if self.recurrence.order > 1:
            stacked = ", ".join(str(s) for s in self.state)
            lines.append(f"  companion form: z(t) = ({stacked})")
        if self.symbolic is not None:
            lines.append(f"  {self._quantity()} = {_str_symbolic(self.symbolic)}")
        if self.spectral_radius is not None:
            rho = self.spectral_radius
            lines.append(f"  spectral radius: {_fmt(rho) if isinstance(rho, float) else rho}")
        if self.norms is None:
            lines.append("  norms: give parameter values (params=...) to evaluate them")
            return "\n".join(lines)
        shown = [_fmt(float(v)) for v in self.norms]
        if len(shown) > 6:
            shown = shown[:3] + ["..."] + shown[-1:]
            where = f"d = 1, 2, 3, ..., {self.steps}"
        else:
            where = f"d = 1..{self.steps}"
        lines.append(f"  |{self._quantity()}| at {where}: {', '.join(shown)}")
        lines.append(f"  {self.verdict} (fitted rate {_fmt(self.rate)} per step)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        what = self.verdict or "symbolic"
        rate = f", rate {_fmt(self.rate)}" if self.rate is not None else ""
        return f"<GradientFlow {self.name}: {what}{rate}, {self.steps} steps>"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, float, int, lists, None), ready for ``json.dumps``."""
        rho = self.spectral_radius
        return {
            "recurrence": str(self.recurrence),
            "linear": self.linear,
            "steps": self.steps,
            "norm": "inf" if self.norm == math.inf else self.norm,
            "state": [str(s) for s in self.state],
            "transition": [[str(e) for e in row] for row in self.transition.tolist()],
            "symbolic": None if self.symbolic is None else _str_symbolic(self.symbolic),
            "eigenvalues": None if self.eigenvalues is None else [str(v) for v in self.eigenvalues],
            "spectral_radius": rho if rho is None or isinstance(rho, float) else str(rho),
            "lags": self.lags.tolist(),
            "norms": None if self.norms is None else self.norms.tolist(),
            "log_norms": None if self.log_norms is None else self.log_norms.tolist(),
            "rate": self.rate,
            "verdict": self.verdict,
            "tol": self.tol,
        }

    def _latex_lines(self) -> list[str]:
        companion = self.recurrence.order > 1
        label = "z" if companion else _latex_state_label(self.recurrence)
        d = latex_expr(self.lag_symbol)
        lhs = f"\\frac{{\\partial {label}^{{(t)}}}}{{\\partial {label}^{{(t-{d})}}}}"
        lines = []
        if companion:
            parts = ", ".join(latex_expr(s) for s in self.state)
            lines.append(f"z^{{(t)}} &= \\left({parts}\\right)")
        if self.symbolic is not None:
            lines.append(f"{lhs} &= {latex_expr(self.symbolic)}")
        else:
            lines.append(f"{lhs} &= \\prod_{{k=t-{d}+1}}^{{t}} J^{{(k)}}")
        rho = self.spectral_radius
        if rho is not None:
            value = _fmt(rho) if isinstance(rho, float) else latex_expr(rho)
            lines.append(f"\\rho &= {value}")
        if self.verdict is not None:
            lines.append(
                f"\\text{{rate}} &= {_fmt(self.rate)} \\text{{ per step ({self.verdict})}}"
            )
        return lines

    def _repr_latex_(self) -> str:
        return "$\\begin{aligned}" + " \\\\ ".join(self._latex_lines()) + "\\end{aligned}$"

    def plot(self, path: str | Path | None = None, label: str | None = None) -> Any:
        """A semilog plot of the norms against the lag (matplotlib ``Figure``).

        With ``path`` the figure is also written there as PNG, atomically.  Raises
        :class:`~symrnn.errors.ToolMissing` when matplotlib is not installed.
        """
        return plot_gradient_flows([self], path=path, labels=None if label is None else [label])


def _fmt(value: Any) -> str:
    return f"{value:.3g}"


def _state_label(rec: Recurrence) -> str:
    """``h`` for one state or one vector state, ``(c, h)`` for several."""
    owner = {f: name for name, comps in rec.vectors.items() for f in comps}
    names = list(dict.fromkeys(owner.get(s, s.__name__) for s in rec.states))
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"


def _str_symbolic(expr: Any) -> str:
    if isinstance(expr, sp.MatPow) and isinstance(expr.base, sp.MatrixBase):
        return f"Matrix({expr.base.tolist()})**{expr.exp}"
    return str(expr)


def _latex_state_label(rec: Recurrence) -> str:
    label = _state_label(rec)
    if rec.vectors and label in rec.vectors:
        return f"\\mathbf{{{label}}}"
    return label


# ------------------------------------------------------------------------------ plotting
def plot_gradient_flows(
    flows: Sequence[GradientFlow],
    path: str | Path | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    r"""Norms against lag for several flows on one semilog plot (matplotlib ``Figure``).

    Each flow is a solid line; a dashed line of the same colour shows :math:`\rho(A)^{d}` for a
    linear recurrence, the fitted :math:`C\,\text{rate}^{d}` for a nonlinear one.  With ``path``
    the figure is written as PNG through a temporary file and a rename.
    """
    flows = list(flows)
    if not flows:
        raise SymrnnError("plot_gradient_flows needs at least one GradientFlow")
    if labels is not None and len(labels) != len(flows):
        raise SymrnnError(f"got {len(labels)} labels for {len(flows)} flows; give one per flow")
    for flow in flows:
        if flow.norms is None:
            raise SymrnnError(
                f"the gradient flow of {flow.name} is symbolic only; give parameter values "
                "(gradient_flow(rec, params={...})) to plot it"
            )
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ToolMissing(_MATPLOTLIB_MISSING) from None
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, flow in enumerate(flows):
        assert flow.norms is not None and flow.log_norms is not None
        label = labels[i] if labels is not None else _default_label(flow)
        shown = np.isfinite(flow.log_norms) & (flow.norms > 0) & np.isfinite(flow.norms)
        (line,) = ax.plot(
            flow.lags[shown],
            flow.norms[shown],
            marker="o",
            markersize=2.5,
            linewidth=1.4,
            label=label,
        )
        reference = _reference(flow)
        if reference is not None:
            ok = np.isfinite(reference) & (reference > 0)
            ax.plot(
                flow.lags[ok],
                reference[ok],
                linestyle="--",
                linewidth=0.9,
                color=line.get_color(),
                alpha=0.8,
            )
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel(r"lag $d = t - k$")
    ax.set_ylabel(r"$\|\partial h^{(t)} / \partial h^{(k)}\|$")
    if title is None:
        title = (
            f"gradient flow of {flows[0].name}: {flows[0].verdict}"
            if len(flows) == 1
            else "gradient flow through time"
        )
    ax.set_title(title)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    kinds = {flow.linear and isinstance(flow.spectral_radius, float) for flow in flows}
    dashed = " and ".join(
        text
        for kind, text in ((True, r"$\rho(A)^d$"), (False, r"fitted rate$^d$"))
        if kind in kinds
    )
    ax.legend(fontsize="small", title=f"dashed: {dashed}", title_fontsize="x-small")
    if path is not None:
        from .files import write_atomic

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        write_atomic(Path(path), buffer.getvalue())
    return fig


def _default_label(flow: GradientFlow) -> str:
    rho = flow.spectral_radius
    if flow.linear and isinstance(rho, float):
        return f"{flow.name}: $\\rho$ = {_fmt(rho)} ({flow.verdict})"
    return f"{flow.name}: rate {_fmt(flow.rate)} ({flow.verdict})"


def _reference(flow: GradientFlow) -> np.ndarray | None:
    assert flow.log_norms is not None
    rho = flow.spectral_radius
    if flow.linear and isinstance(rho, float):
        if rho == 0:
            return None
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(flow.lags * math.log(rho))
    finite = np.isfinite(flow.log_norms)
    if flow.rate is None or flow.rate == 0 or finite.sum() < 2:
        return None
    slope, intercept = _fit(flow.lags[finite], flow.log_norms[finite])
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(intercept + slope * flow.lags)


# ------------------------------------------------------------------- the step Jacobian
@lru_cache(maxsize=64)
def _step_jacobian(rec: Recurrence, label: str) -> tuple[sp.ImmutableMatrix, tuple[Any, ...]]:
    """The (companion) step Jacobian template and the stacked state it acts on."""
    if rec.order == 1:
        J = transition_jacobian(rec)
        state = tuple(s(t) for s in rec.states)
    else:
        # Block companion form: z(t) = (s(t), s(t-1), …, s(t-L+1)) for each state s of lag L;
        # its first rows differentiate the update, the others shift the older lags down.
        values: dict[Any, sp.Expr] = {}
        for eq in rec.equations:
            values[eq.lhs] = eq.rhs.xreplace(values)
        slots = [(s, lag) for s in rec.states for lag in range(rec.lag(s))]
        where = {slot: i for i, slot in enumerate(slots)}
        M = sp.zeros(len(slots), len(slots))
        for (s, lag), i in where.items():
            if lag == 0:
                for (s2, lag2), j in where.items():
                    M[i, j] = sp.diff(values[s(t)], s2(t - 1 - lag2))
            else:
                M[i, where[(s, lag - 1)]] = sp.S.One
        J = sp.ImmutableMatrix(M)
        state = tuple(s(t - lag) for s, lag in slots)
    abstract = [a for a in J.atoms(AppliedUndef) if not is_time_atom(a)] + list(
        J.atoms(sp.Derivative, sp.Subs)
    )
    if abstract:
        raise SymrnnError(
            f"{label}: the step Jacobian contains {min(map(str, abstract))}, from an abstract "
            "update function; substitute a concrete update (e.g. tanh(w*s(t-1) + b)) first"
        )
    return J, state


def _is_constant(J: sp.ImmutableMatrix) -> bool:
    return not time_atoms(J) and t not in J.free_symbols


def _lag_symbol(rec: Recurrence) -> sp.Symbol:
    taken = {str(p) for p in rec.params}
    name = next(n for n in ("d", "k", "j", "m", "n", "lag") if n not in taken)
    return sp.Symbol(name, integer=True, nonnegative=True)


def _power(rec: Recurrence, A: sp.ImmutableMatrix, d: sp.Symbol) -> Any:
    """:math:`A^d` as written: ``a**d`` for one component, ``A**d`` for a parameter matrix."""
    if A.shape == (1, 1):
        return A[0, 0] ** d
    for name, group in rec.param_groups.items():
        if isinstance(group, sp.MatrixBase) and group == A:
            return sp.MatPow(sp.MatrixSymbol(name, *A.shape), d)
    return sp.MatPow(A, d)


@lru_cache(maxsize=64)
def _symbolic_eigenvalues(A: sp.ImmutableMatrix) -> tuple[Any, ...] | None:
    n = A.shape[0]
    if A.is_upper or A.is_lower:
        return tuple(A[i, i] for i in range(n))
    if (n > _SYMBOLIC_EIGEN_SIZE and A.free_symbols) or n > _NUMERIC_EIGEN_SIZE:
        return None  # Cardano-size expressions, or slow factoring: the float radius is the answer
    found = sp.roots(A.charpoly())
    if sum(found.values()) != n:
        return None
    return tuple(v for v, m in found.items() for _ in range(m))


def _symbolic_radius(eigen: tuple[Any, ...] | None) -> Any:
    if eigen is None:
        return None
    return sp.Max(*[sp.Abs(v) for v in eigen])


# --------------------------------------------------------------------------- numeric data
def _named_params(rec: Recurrence, params: Mapping[Any, Any] | None, label: str) -> dict[str, Any]:
    """Parameter values keyed by the code name ``sr.lambdify`` uses (``'W'``, ``'w'``)."""
    groups = {identifier(name) for name in rec.param_groups}
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        name = identifier(key if isinstance(key, str) else str(key))
        if name not in groups:
            known = ", ".join(rec.param_groups) or "none"
            raise SymrnnError(
                f"{label}: {key!r} is not a parameter of the recurrence (its parameters: {known})"
            )
        out[name] = value
    return out


def _entry_values(rec: Recurrence, named: dict[str, Any]) -> dict[Any, float]:
    """Each scalar parameter symbol's value (matrix entries row by row, as ``sr.lambdify``)."""
    values: dict[Any, float] = {}
    for name, group in rec.param_groups.items():
        code = identifier(name)
        if code not in named:
            continue
        entries = list(group) if isinstance(group, sp.MatrixBase) else [group]
        try:
            arr = np.asarray(named[code], dtype=float)
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"parameter {name!r}: cannot convert to a float array ({exc})"
            ) from None
        if arr.size != len(entries):
            shape = group.shape if isinstance(group, sp.MatrixBase) else ()
            raise ShapeError(f"parameter {name!r} has shape {arr.shape}, expected {shape}")
        values.update(zip(entries, arr.reshape(-1).tolist(), strict=True))
    return values


def _accumulate(jacobians: np.ndarray, norm: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Norms and log-norms of :math:`J_T \\cdots J_{T-d+1}` for d = 1 … T (one pass back)."""
    T, m, _ = jacobians.shape
    norms, log_norms = np.zeros(T), np.full(T, -np.inf)
    P = np.eye(m)
    log_scale = 0.0  # P is the product divided by e^log_scale
    for d in range(1, T + 1):
        P = P @ jacobians[T - d]
        largest = float(np.max(np.abs(P)))
        if not math.isfinite(largest):
            raise SymrnnError(
                f"{label}: the step Jacobian product overflowed or became NaN at lag {d} "
                f"(J at t = {T - d + 1} is {jacobians[T - d].tolist()}); the trajectory "
                "diverged: use fewer steps or smaller parameters"
            )
        if largest == 0.0:
            break  # exactly zero from here back: the gradient is cut off
        if not _RESCALE_BELOW <= largest <= _RESCALE_ABOVE:
            P = P / largest
            log_scale += math.log(largest)
        size = abs(float(P[0, 0])) if m == 1 else float(np.linalg.norm(P, norm))
        log_norms[d - 1] = log_scale + math.log(size)
        if log_scale == 0.0:
            norms[d - 1] = size
        else:
            with np.errstate(over="ignore", under="ignore"):
                norms[d - 1] = np.exp(log_norms[d - 1])
    return norms, log_norms


def _fit(lags: np.ndarray, log_norms: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of log-norm against lag."""
    x = lags.astype(float) - lags.mean()
    slope = float(np.dot(x, log_norms - log_norms.mean()) / np.dot(x, x))
    return slope, float(log_norms.mean() - slope * lags.mean())


def _classify(growth: float, tol: float) -> str:
    if growth < -tol:
        return "vanishing"
    if growth > tol:
        return "exploding"
    return "stable"


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _input_length(rec: Recurrence, inputs: Mapping[str, Any] | None) -> int | None:
    for value in (inputs or {}).values():
        arr = np.asarray(value)
        if arr.ndim >= 1:
            return int(arr.shape[0]) - rec.input_lag
    return None


def _trajectory_jacobians(
    rec: Recurrence,
    J: sp.ImmutableMatrix,
    named: dict[str, Any],
    inputs: Mapping[str, Any] | None,
    init: Mapping[str, Any] | None,
    steps: int | None,
    seed: int,
    label: str,
) -> np.ndarray:
    """The step Jacobians :math:`J^{(1)} … J^{(T)}` along the trajectory, shaped (T, m, m)."""
    compiled = _compiled(rec)
    # Groups as the compiled code takes them: a vector's components on its last axis.
    input_groups = [_group(name, shape) for name, shape in compiled.input_shapes.items()]
    state_groups = [_group(name, shape) for name, (_, shape) in compiled.state_shapes.items()]
    if inputs is None and input_groups:
        rng = np.random.default_rng(seed)
        length = (steps or _DEFAULT_STEPS) + rec.input_lag
        inputs = {
            name: rng.standard_normal((length, len(comps)) if is_vector else length)
            for name, comps, is_vector in input_groups
        }
    inputs = dict(inputs or {})
    if not input_groups and steps is None:
        steps = _DEFAULT_STEPS
    diverged = (
        f"{label}: the trajectory diverged (a state overflowed or became NaN); the flow is "
        "measured along the trajectory, so use fewer steps, smaller parameters or inputs"
    )
    try:
        with np.errstate(all="ignore"):  # exp overflow inside a saturating sigmoid is benign
            out = compiled.forward(named, inputs, dict(init or {}), steps=steps)
    except OverflowError:
        raise SymrnnError(diverged) from None
    # Values of every component over time, keyed by code name: arrays indexed from time `first`.
    series: dict[str, tuple[int, np.ndarray]] = {}
    T = 0
    for name, comps, is_vector in state_groups:
        traj = np.asarray(out[name], dtype=float)
        if traj.ndim != 1 + is_vector:
            raise ShapeError(
                f"{label}: gradient_flow follows one sequence, but the inputs or initial state "
                f"give a batch (state {name!r} has shape {traj.shape}); pass one sequence"
            )
        T = traj.shape[0]
        if not np.all(np.isfinite(traj)):
            raise SymrnnError(diverged)
        order = max(rec.lag(s) for s in rec.states if identifier(s.__name__) in comps)
        start = _initial_parts((init or {}).get(name, 0.0), order, len(comps), is_vector)
        for i, comp in enumerate(comps):
            past = [part[i] if is_vector else part for part in start]
            column = traj[:, i] if is_vector else traj
            series[comp] = (1 - order, np.concatenate([np.array(past[::-1], float), column]))
    for name, comps, is_vector in input_groups:
        arr = np.asarray(inputs[name], dtype=float)
        if arr.ndim != 1 + is_vector:
            raise ShapeError(
                f"{label}: gradient_flow follows one sequence; input {name!r} has shape "
                f"{arr.shape}, expected (T{', n' if is_vector else ''})"
            )
        for i, comp in enumerate(comps):
            series[comp] = (1 - rec.input_lag, arr[:, i] if is_vector else arr)
    # One vectorised evaluation of the template for all k = 1..T at once.
    mapping: dict[Any, sp.Symbol] = {}
    arguments: list[np.ndarray | float] = []
    entry_values = _entry_values(rec, named)
    for atom in sorted(time_atoms(J), key=sp.default_sort_key):
        lag = -int(sp.expand(time_of(atom) - t))
        first, values = series[identifier(atom.func.__name__)]
        begin = 1 - lag - first
        mapping[atom] = sp.Symbol(code_name(atom), real=True)
        arguments.append(values[begin : begin + T])
    for p in sorted(J.free_symbols - {t}, key=sp.default_sort_key):
        mapping[p] = sp.Symbol(code_name(p), real=True)
        arguments.append(entry_values[p])
    if t in J.free_symbols:
        mapping[t] = sp.Dummy("t", integer=True)
        arguments.append(np.arange(1, T + 1, dtype=float))
    fn = _numeric_template(J, tuple(mapping.items()))
    m = J.shape[0]
    stacked = np.empty((T, m * m))
    with np.errstate(all="ignore"):
        for i, value in enumerate(fn(*arguments)):
            stacked[:, i] = value
    return stacked.reshape(T, m, m)


@lru_cache(maxsize=32)
def _group(name: str, shape: tuple[Any, ...]) -> tuple[str, list[str], bool]:
    """(name, component names, is a vector) of an argument shaped ``shape`` per time step."""
    if shape:
        return name, [f"{name}_{i + 1}" for i in range(int(shape[0]))], True
    return name, [name], False


def _compiled(rec: Recurrence) -> Any:
    return lambdify(rec)


@lru_cache(maxsize=32)
def _numeric_template(J: sp.ImmutableMatrix, mapping: tuple[tuple[Any, sp.Symbol], ...]) -> Any:
    """A NumPy function of the renamed atoms and parameters giving J's entries, row by row."""
    entries = list(J.xreplace(dict(mapping)))
    return sp.lambdify([s for _, s in mapping], entries, modules="numpy", cse=True)


def _initial_parts(value: Any, order: int, size: int, is_vector: bool) -> list[Any]:
    """``[h(0), h(-1), …]`` from an ``init`` value, read as ``sr.lambdify`` reads it."""
    arr = np.asarray(value, dtype=float)
    if order > 1 and arr.ndim >= 1 and arr.shape[0] == order and arr.ndim > is_vector:
        parts = [arr[i] for i in range(order)]
    else:
        parts = [arr] * order
    if is_vector:
        parts = [np.broadcast_to(p, (size,)) for p in parts]
    return parts


# ------------------------------------------------------------------------------ the verb
def gradient_flow(
    rec: Recurrence,
    params: Mapping[Any, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    steps: int | None = None,
    seed: int = 0,
    norm: Any = 2,
    tol: float = _DEFAULT_TOL,
) -> GradientFlow:
    r"""How the gradient :math:`\partial h^{(t)}/\partial h^{(t-d)}` grows or decays with the lag d.

    Parameters
    ----------
    rec : Recurrence
        Any concrete recurrence; order > 1 is handled in block companion form.
    params : dict, optional
        Parameter values by name, as for :func:`symrnn.lambdify` (``{"w": 0.5}``, matrices as
        arrays; SymPy symbols as keys work too).  Needed for nonlinear recurrences; a linear
        one without values gets the symbolic result only.
    inputs, init : dict, optional
        One input sequence and the initial state, as for :meth:`Compiled.forward`; inputs
        default to standard normal noise drawn with ``seed``, the initial state to zero.  Only
        nonlinear recurrences (and those with input-dependent coefficients) use them.
    steps : int, optional
        T, the number of steps followed back: lags d = 1 … T.  Default 50, or the length of
        the given inputs.
    seed : int
        Seed of the random inputs.
    norm : {2, 1, inf, "fro"}
        The matrix norm; 2 is the spectral norm (largest singular value).
    tol : float
        Per-step log-growth counted as neither vanishing nor exploding (default 1e-3).

    Returns
    -------
    GradientFlow
        With ``lags``, ``norms``, ``symbolic``, ``spectral_radius``, ``rate``, ``verdict`` and
        ``plot()``.

    Notes
    -----
    Linear (the step Jacobian is a constant matrix A): ``symbolic`` is :math:`A^{d}`, the norms
    are :math:`\lVert A^{d} \rVert` by repeated multiplication, the verdict compares
    :math:`\rho(A)` with 1.  Nonlinear: the step Jacobian template (gates eliminated, from
    :func:`symrnn.transition_jacobian`) is evaluated at each step of the trajectory from
    :func:`symrnn.lambdify` and the products :math:`J^{(T)} \cdots J^{(T-d+1)}` are accumulated
    backwards, :math:`O(T m^3)` for m state components; no symbolic product is formed.

    Examples
    --------
    >>> import numpy as np, symrnn as sr
    >>> flow = sr.gradient_flow(sr.cells.rnn(), params={"w": 3.0, "u": 1.0, "b": 0.5})
    >>> flow.verdict, flow.rate < 0.5
    ('vanishing', True)
    """
    if not isinstance(rec, Recurrence):
        raise SymrnnError(f"gradient_flow needs a Recurrence, got {type(rec).__name__}")
    label = f"gradient_flow of Recurrence {rec.name!r}" if rec.name else "gradient_flow"
    if norm not in _NORM_NAMES:
        raise SymrnnError(f"{label}: norm must be 2, 1, numpy.inf or 'fro', got {norm!r}")
    if not isinstance(tol, (int, float)) or not tol >= 0:
        raise SymrnnError(f"{label}: tol must be a number >= 0, got {tol!r}")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise SymrnnError(
                f"{label}: steps must be an integer >= 2 (two lags are needed to fit a rate), "
                f"got {steps!r}"
            )
        if steps > MAX_FLOW_STEPS:
            raise LimitError(f"{label}: steps = {steps} exceeds the limit {MAX_FLOW_STEPS}")
        steps = int(steps)
    J, state = _step_jacobian(rec, label)
    d = _lag_symbol(rec)
    named = _named_params(rec, params, label)

    linear = _is_constant(J)
    symbolic: Any = None
    eigen: tuple[Any, ...] | None = None
    rho: Any = None
    jacobians: np.ndarray | None = None
    if linear:
        values = _entry_values(rec, named)
        missing = sorted(J.free_symbols - set(values), key=sp.default_sort_key)
        if missing and named:
            raise SymrnnError(
                f"{label}: the state matrix needs values for {', '.join(map(str, missing))}; "
                "add them to params (or give none for the symbolic result only)"
            )
        symbolic, eigen = _power(rec, J, d), _symbolic_eigenvalues(J)
        T = steps or _input_length(rec, inputs) or _DEFAULT_STEPS
        if missing:
            rho = _symbolic_radius(eigen)
        else:
            A = np.array(J.xreplace(values).evalf(), dtype=float)
            rho = float(np.max(np.abs(np.linalg.eigvals(A))))
            jacobians = np.broadcast_to(A, (T, *A.shape))
    else:
        absent = [n for n in rec.param_groups if identifier(n) not in named]
        if absent:
            example = ", ".join(f"{n!r}: ..." for n in absent[:3])
            raise SymrnnError(
                f"{label}: the step Jacobian depends on the trajectory, so the flow is measured "
                f"numerically and needs a value for every parameter; missing "
                f"{', '.join(absent)} (pass params={{{example}}})"
            )
        jacobians = _trajectory_jacobians(rec, J, named, inputs, init, steps, seed, label)
        T = jacobians.shape[0]
    if T < 2:
        raise SymrnnError(f"{label}: the inputs cover {T} step; give at least 2")
    lags = _frozen(np.arange(1, T + 1))
    norms = log_norms = None
    rate = verdict = None
    if jacobians is not None:
        norms, log_norms = (_frozen(a) for a in _accumulate(jacobians, norm, label))
        rate = _rate(lags, log_norms)
        # Linear: the exact asymptotic growth log ρ(A); nonlinear: the fitted slope.
        factor = rho if linear else rate
        verdict = _classify(math.log(factor) if factor > 0 else -math.inf, tol)
    return GradientFlow(
        recurrence=rec,
        linear=linear,
        transition=J,
        state=state,
        lag_symbol=d,
        symbolic=symbolic,
        eigenvalues=eigen,
        spectral_radius=rho,
        steps=T,
        norm=norm,
        lags=lags,
        norms=norms,
        log_norms=log_norms,
        rate=rate,
        verdict=verdict,
        tol=float(tol),
    )


def _rate(lags: np.ndarray, log_norms: np.ndarray) -> float:
    if not np.all(np.isfinite(log_norms)):
        return 0.0  # the product became exactly zero: nothing flows back past that lag
    slope, _ = _fit(lags, log_norms)
    return math.exp(slope)
