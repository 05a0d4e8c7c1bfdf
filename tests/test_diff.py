"""Differentiation through time: every derivative by at least two independent routes.

Routes: reverse mode (BPTT, ``sr.grad(mode="reverse")``), forward mode (RTRL,
``mode="forward"``), ``sp.diff`` of the closed form (``expand_chain``), and central finite
differences of the loss evaluated through the chain with plain floats.  No expected number is
typed by hand: each route is compared with the others at random points (fixed seeds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.core.function import AppliedUndef

import symrnn as sr
from symrnn.diff import Adjoint, Sensitivity, expand_chain, step_derivatives
from symrnn.matrices import explicit
from symrnn.notation import t, time_function

slow = pytest.mark.slow
EPS = 1e-6  # central differences: truncation ~EPS**2, rounding ~1e-16/EPS
FD_RTOL, FD_ATOL = 1e-7, 1e-9
RTOL = 1e-10  # routes that are exact up to floating-point evaluation


# ------------------------------------------------------------------------ numeric helpers
def leaves(*exprs: Any) -> set[Any]:
    """Independent quantities: time atoms and symbols (chain quantities included)."""
    out: set[Any] = set()
    for e in exprs:
        e = sp.sympify(e)
        out |= e.atoms(AppliedUndef) | e.free_symbols
    return out


_FUNCTIONS: dict[Any, Callable[[float], float]] = {
    sp.tanh: math.tanh,
    sp.exp: math.exp,
    sp.log: math.log,
    sr.sigmoid: lambda v: 1 / (1 + math.exp(-v)),
}


def _number(e: Any, values: dict[Any, float], memo: dict[Any, float]) -> float:
    """Plain float interpreter of a SymPy tree, memoized on subtrees.

    Resolved gradients and ``sp.diff`` results repeat subtrees many times; memoizing on them makes
    evaluation linear in the number of *distinct* subexpressions (lambdify's cse is much slower).
    """
    if e in memo:
        return memo[e]
    if e in values:
        r = values[e]
    elif e.is_Number:
        r = float(e)
    elif e.is_Add:
        r = math.fsum(_number(a, values, memo) for a in e.args)
    elif e.is_Mul:
        r = 1.0
        for a in e.args:
            r *= _number(a, values, memo)
    elif e.is_Pow:
        r = _number(e.base, values, memo) ** _number(e.exp, values, memo)
    elif e.func in _FUNCTIONS:
        r = _FUNCTIONS[e.func](_number(e.args[0], values, memo))
    else:
        raise KeyError(f"no value for {e}")
    memo[e] = r
    return r


def evaluate(exprs: list[Any], values: dict[Any, float]) -> np.ndarray:
    memo: dict[Any, float] = {}
    return np.array([_number(sp.sympify(e), values, memo) for e in exprs], dtype=float)


class Chain:
    """The unfolded chain and a loss, evaluated with floats step by step."""

    def __init__(self, U: sr.Unfolded, loss: Any):
        self.equations = U.equations
        self.loss_expr = loss

    def values(self, point: dict[Any, float], override: dict[Any, float] | None = None) -> dict:
        v = dict(point)
        for eq in self.equations:
            v[eq.lhs] = _number(eq.rhs, v, {})
            if override and eq.lhs in override:
                v[eq.lhs] = override[eq.lhs]
        return v

    def loss(self, point: dict[Any, float]) -> float:
        return _number(self.loss_expr, self.values(point), {})

    def central(self, point: dict[Any, float], var: Any) -> float:
        up, down = dict(point), dict(point)
        up[var] += EPS
        down[var] -= EPS
        return (self.loss(up) - self.loss(down)) / (2 * EPS)


def random_point(U: sr.Unfolded, loss: Any, seed: int, scale: float = 0.6) -> dict[Any, float]:
    rng = np.random.default_rng(seed)
    free = leaves(loss, *(eq.rhs for eq in U.equations)) - set(U.definitions)
    return {v: float(scale * rng.normal()) for v in sorted(free, key=sp.default_sort_key)}


# ------------------------------------------------------------------------------- problems
y_s, z_s = time_function("y"), time_function("z")


def _rnn() -> tuple[sr.Recurrence, Any]:
    rec = sr.cells.rnn()
    h = rec.states[0]
    return rec, (h(t) - y_s(t)) ** 2 / 2


def _elman() -> tuple[sr.Recurrence, Any]:
    rec = sr.cells.elman(3, inputs=2, outputs=3)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    return rec, sr.softmax_cross_entropy(o(t), y(t))


def _second_order() -> tuple[sr.Recurrence, Any]:
    rec = sr.cells.second_order()
    h = rec.states[0]
    return rec, (h(t) - y_s(t)) ** 2 / 2


def _coupled() -> tuple[sr.Recurrence, Any]:
    rec = sr.cells.coupled()
    p, q = rec.states
    return rec, ((p(t) - y_s(t)) ** 2 + (q(t) - z_s(t)) ** 2) / 2


CASES: dict[str, Callable[[], tuple[sr.Recurrence, Any]]] = {
    "rnn": _rnn,
    "elman": _elman,
    "second_order": _second_order,
    "coupled": _coupled,
}
STEPS = [1, 2, 3, 4]


@dataclass(frozen=True)
class Problem:
    U: sr.Unfolded
    loss: Any
    wrt: tuple[Any, ...]
    chain: Chain
    point: dict[Any, float]
    values: dict[Any, float]


@cache
def problem(case: str, steps: int) -> Problem:
    rec, per_step = CASES[case]()
    U = sr.unfold(rec, steps)
    loss = sr.total_loss(U, per_step)
    wrt = (*rec.params, *U.initial, *U.inputs)
    chain = Chain(U, loss)
    point = random_point(U, loss, seed=steps)
    return Problem(U, loss, wrt, chain, point, chain.values(point))


@cache
def gradients(case: str, steps: int, mode: str) -> dict[Any, Any]:
    P = problem(case, steps)
    return sr.grad(P.U, P.loss, wrt=list(P.wrt), mode=mode)


@cache
def closed_form(case: str, steps: int) -> Any:
    P = problem(case, steps)
    return expand_chain(P.U, P.loss)


def closed_wrt(case: str, steps: int) -> list[Any]:
    """Variables for the sp.diff route: all of them where SymPy is quick, a sample otherwise.

    ``sp.diff`` of a nested closed form costs ~0.1-5 s per variable (the baseline symrnn
    replaces), so later steps take one variable of each kind: parameter, initial state, input.
    """
    P = problem(case, steps)
    if case != "elman" and steps <= 2:
        return list(P.wrt)
    params, initial, inputs = P.U.params, P.U.initial, P.U.inputs
    if case == "elman":
        by_matrix = {str(p)[0]: p for p in reversed(params)}  # one entry per matrix W U V b c
        return [*by_matrix.values(), initial[-1], inputs[-1]]
    return [params[0], initial[-1], inputs[0]]


def as_array(d: dict[Any, Any], keys: Iterable[Any], values: dict[Any, float]) -> np.ndarray:
    keys = list(keys)
    return evaluate([d[k] for k in keys], values)


# ------------------------------------------------------------------------- the four routes
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("case", list(CASES))
def test_reverse_forward_and_finite_differences_agree(case: str, steps: int) -> None:
    P = problem(case, steps)
    rev = as_array(gradients(case, steps, "reverse"), P.wrt, P.values)
    fwd = as_array(gradients(case, steps, "forward"), P.wrt, P.values)
    fd = np.array([P.chain.central(P.point, v) for v in P.wrt])
    np.testing.assert_allclose(rev, fwd, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(rev, fd, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize(
    "case,steps",
    [
        (case, steps)
        if case != "elman" or steps <= 2
        else pytest.param(case, steps, marks=slow)  # sp.diff takes minutes here
        for case in CASES
        for steps in STEPS
    ],
)
def test_reverse_agrees_with_diff_of_closed_form(case: str, steps: int) -> None:
    P = problem(case, steps)
    wrt = closed_wrt(case, steps)
    C = closed_form(case, steps)
    assert not leaves(C) & set(P.U.definitions)  # in initial states, inputs, params only
    closed = evaluate([sp.diff(C, v) for v in wrt], P.point)
    rev = as_array(gradients(case, steps, "reverse"), wrt, P.values)
    np.testing.assert_allclose(rev, closed, rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize(
    "case,steps",
    [
        (case, steps) if steps < 4 else pytest.param(case, steps, marks=slow)
        for case in ["rnn", "second_order", "coupled"]
        for steps in STEPS
    ],
)
def test_reverse_and_forward_are_the_same_polynomial(case: str, steps: int) -> None:
    """In the chain quantities both modes sum the same products of step derivatives."""
    P = problem(case, steps)
    rev, fwd = gradients(case, steps, "reverse"), gradients(case, steps, "forward")
    for v in P.wrt:
        assert sp.expand(rev[v] - fwd[v]) == 0, v


def vanishes(e: Any, simplify: bool) -> bool:
    """Exact zero test.  ``expand`` suffices here: both sides are polynomials in the same tanh
    atoms; ``simplify`` is cheap only at one step (at two it takes over a minute per term)."""
    return bool((sp.simplify(e) if simplify else sp.expand(e)) == 0)


@pytest.mark.parametrize("steps", [1, 2])
def test_scalar_rnn_routes_are_symbolically_equal(steps: int) -> None:
    P = problem("rnn", steps)
    C = closed_form("rnn", steps)
    rev, fwd = gradients("rnn", steps, "reverse"), gradients("rnn", steps, "forward")
    for v in P.wrt:
        assert vanishes(rev[v] - fwd[v], simplify=steps == 1)
        assert vanishes(expand_chain(P.U, rev[v]) - sp.diff(C, v), simplify=steps == 1)


def test_expand_gives_closed_form_derivatives() -> None:
    P = problem("rnn", 2)
    g = sr.grad(P.U, P.loss, wrt=list(P.wrt), expand=True)
    C = closed_form("rnn", 2)
    for v in P.wrt:
        assert not leaves(g[v]) & set(P.U.definitions)
        assert vanishes(g[v] - sp.diff(C, v), simplify=False)
    fwd = sr.grad(P.U, P.loss, wrt=list(P.wrt), mode="forward", expand=True)
    np.testing.assert_allclose(
        as_array(fwd, P.wrt, P.point), as_array(g, P.wrt, P.point), rtol=RTOL
    )


# -------------------------------------------------------------------- matrices and vectors
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_matrix_and_vector_wrt_keep_their_shape(mode: str) -> None:
    P = problem("elman", 2)
    W, V, b = sr.matrix("W", 3, 3), sr.matrix("V", 3, 3), sr.matrix("b", 3)
    h0, x1 = sr.vector("h", 3)(0), sr.vector("x", 2)(1)
    g = sr.grad(P.U, P.loss, wrt=[W, V, b, h0, x1], mode=mode)
    scalar = gradients("elman", 2, "reverse")
    for key, shape in [(W, (3, 3)), (V, (3, 3)), (b, (3, 1)), (h0, (3, 1)), (x1, (2, 1))]:
        assert g[key].shape == shape
        expected = [scalar[entry] for entry in explicit(key)]
        np.testing.assert_allclose(
            evaluate(list(g[key]), P.values), evaluate(expected, P.values), rtol=RTOL
        )
    one = sr.grad(P.U, P.loss, wrt=W, mode=mode)
    assert list(one) == [W] and one[W].shape == (3, 3)


def test_softmax_cross_entropy_adjoint_is_softmax_minus_target() -> None:
    """Goodfellow et al. eq. 10.18: dL/do = softmax(o) - y for a one-hot (or any) distribution y."""
    P = problem("elman", 3)
    point = dict(P.point)
    rng = np.random.default_rng(5)
    for k in range(1, 4):
        target = rng.dirichlet(np.ones(3))
        point.update({time_function(f"y_{i + 1}")(k): float(target[i]) for i in range(3)})
    values = P.chain.values(point)
    resolved = sr.bptt(P.U, P.loss).resolved()
    for k in range(1, 4):
        o = np.array([values[time_function(f"o_{i + 1}")(k)] for i in range(3)])
        y = np.array([point[time_function(f"y_{i + 1}")(k)] for i in range(3)])
        adj = evaluate(
            [resolved[Adjoint(time_function(f"o_{i + 1}")(k))] for i in range(3)], values
        )
        np.testing.assert_allclose(adj, np.exp(o) / np.exp(o).sum() - y, rtol=1e-12)


def test_total_loss_sums_vector_templates_over_components_and_time() -> None:
    U = sr.unfold(sr.cells.elman(3, inputs=2, outputs=3), 2)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    comps = [time_function(f"o_{i}") for i in (1, 2, 3)]
    assert sr.total_loss(U, o(t)) == sum(c(k) for c in comps for k in (1, 2))
    targets = [time_function(f"y_{i}") for i in (1, 2, 3)]
    se = sum((c(k) - d(k)) ** 2 / 2 for c, d in zip(comps, targets, strict=True) for k in (1, 2))
    assert sp.expand(sr.total_loss(U, sr.squared_error(o(t), y(t))) - se) == 0
    assert sp.expand(sr.total_loss(U, (o(t) - y(t)).T * (o(t) - y(t)) / 2) - se) == 0
    assert sr.total_loss(U, o(t), start=2) == sum(c(2) for c in comps)
    with pytest.raises(sr.UnfoldError, match="start = 3 must lie in 1..2"):
        sr.total_loss(U, o(t), start=3)
    with pytest.raises(sr.SymrnnError, match="3 logits but 2 targets"):
        sr.softmax_cross_entropy(o(t), sr.vector("y", 2)(t))


# ------------------------------------------------------------------------------ jacobians
def _step_jacobian(U: sr.Unfolded, k: int, funcs: list[Any]) -> sp.Matrix:
    """∂s(k)/∂s(k-1) from the chain equations (same-time intermediates substituted)."""
    memo: dict[Any, Any] = {}
    for eq in U.equations:
        if int(eq.lhs.args[0]) == k:
            memo[eq.lhs] = eq.rhs.xreplace(memo)
    return sp.Matrix([[sp.diff(memo[f(k)], g(k - 1)) for g in funcs] for f in funcs])


def _fd_state_jacobian(P: Problem, of: list[Any], wrt: list[Any], chain_vars: bool) -> np.ndarray:
    """Central differences of chain quantities ``of`` with respect to ``wrt``."""
    out = np.zeros((len(of), len(wrt)))
    for j, v in enumerate(wrt):
        up, down = dict(P.point), dict(P.point)
        if chain_vars:  # perturb a chain quantity: recompute everything after it
            base = P.values[v]
            hi = P.chain.values(P.point, override={v: base + EPS})
            lo = P.chain.values(P.point, override={v: base - EPS})
        else:
            up[v] += EPS
            down[v] -= EPS
            hi, lo = P.chain.values(up), P.chain.values(down)
        for i, r in enumerate(of):
            out[i, j] = (hi[r] - lo[r]) / (2 * EPS)
    return out


def test_scalar_jacobian_is_product_of_step_jacobians() -> None:
    P = problem("rnn", 4)
    h = P.U.recurrence.states[0]
    J = sr.jacobian(P.U, h(3), h(1))
    product = _step_jacobian(P.U, 3, [h])[0, 0] * _step_jacobian(P.U, 2, [h])[0, 0]
    got = evaluate([J], P.values)
    np.testing.assert_allclose(got, evaluate([product], P.values), rtol=RTOL)
    fd = _fd_state_jacobian(P, [h(3)], [h(1)], chain_vars=True)
    np.testing.assert_allclose(got, fd[0], rtol=FD_RTOL, atol=FD_ATOL)
    assert sr.jacobian(P.U, h(3), h(3)) == 1
    assert sr.jacobian(P.U, h(1), h(3)) == 0


def test_vector_jacobian_is_matrix_product_of_step_jacobians() -> None:
    P = problem("elman", 4)
    hv = sr.vector("h", 3)
    funcs = list(sr.vector("h", 3).components)
    J = sr.jacobian(P.U, hv(3), hv(1))
    assert J.shape == (3, 3)
    product = _step_jacobian(P.U, 3, funcs) * _step_jacobian(P.U, 2, funcs)
    got = evaluate(list(J), P.values).reshape(3, 3)
    np.testing.assert_allclose(got, evaluate(list(product), P.values).reshape(3, 3), rtol=RTOL)
    fd = _fd_state_jacobian(P, list(explicit(hv(3))), list(explicit(hv(1))), chain_vars=True)
    np.testing.assert_allclose(got, fd, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize(
    "wrt",
    [
        lambda: sr.vector("x", 2)(1),
        lambda: sr.vector("x", 2)(3),
        lambda: sr.vector("h", 3)(0),
        lambda: sr.matrix("W", 3, 3),
        lambda: sr.matrix("b", 3),
    ],
    ids=["x(1)", "x(3)", "h(0)", "W", "b"],
)
def test_jacobian_of_state_wrt_inputs_initial_states_and_params(wrt: Callable[[], Any]) -> None:
    P = problem("elman", 3)
    hv, w = sr.vector("h", 3), wrt()
    J = sr.jacobian(P.U, hv(3), w)
    cols = list(explicit(w))
    assert J.shape == (3, len(cols))
    fd = _fd_state_jacobian(P, list(explicit(hv(3))), cols, chain_vars=False)
    got = evaluate(list(J), P.values).reshape(J.shape)
    np.testing.assert_allclose(got, fd, rtol=FD_RTOL, atol=FD_ATOL)


def test_jacobian_expand_is_diff_of_closed_form() -> None:
    U = sr.unfold(sr.cells.rnn(), 3)
    h, x = U.recurrence.states[0], U.recurrence.inputs[0]
    w = sp.Symbol("w", real=True)
    for wrt in (h(0), x(1), w):
        J = sr.jacobian(U, h(2), wrt, expand=True)
        assert not leaves(J) & set(U.definitions)
        assert vanishes(J - sp.diff(U.closed_form(2), wrt), simplify=False)


# --------------------------------------------------------------------------------- errors
def test_errors_name_the_problem_and_the_remedy() -> None:
    P = problem("rnn", 2)
    h = P.U.recurrence.states[0]
    with pytest.raises(
        sr.SymrnnError, match=r"mode must be 'reverse' or 'forward', got 'sideways'"
    ):
        sr.grad(P.U, P.loss, mode="sideways")
    with pytest.raises(sr.SymrnnError, match=r"h\(1\) is computed by the chain.*sr.jacobian"):
        sr.grad(P.U, P.loss, wrt=[h(1)])
    with pytest.raises(sr.SymrnnError, match=r"cannot differentiate with respect to w\*\*2"):
        sr.grad(P.U, P.loss, wrt=[sp.Symbol("w", real=True) ** 2])
    for mode in ("reverse", "forward"):
        with pytest.raises(sr.SymrnnError, match=r"loss must be a scalar, got a 2x1 matrix"):
            sr.grad(P.U, sp.Matrix([h(1), h(2)]), mode=mode)
    with pytest.raises(sr.SymrnnError, match=r"loss must be a scalar, got a 3x1 matrix; sum it"):
        sr.bptt(problem("elman", 1).U, sr.vector("o", 3)(1))
    rec = P.U.recurrence
    with pytest.raises(sr.SymrnnError, match=r"grad needs an Unfolded chain.*got Recurrence"):
        sr.grad(rec, P.loss)
    with pytest.raises(sr.SymrnnError, match=r"bptt needs an Unfolded chain.*got Recurrence"):
        sr.bptt(rec, P.loss)
    with pytest.raises(
        sr.SymrnnError, match=r"h\(7\) is not a quantity of the chain; use e.g. h\(2\)"
    ):
        sr.jacobian(P.U, h(7), h(0))
    with pytest.raises(
        sr.SymrnnError, match=r"needs an order-1 recurrence, got order 2.*companion"
    ):
        sr.transition_jacobian(sr.cells.second_order())


# ---------------------------------------------------------------------------------- BPTT
def test_bptt_structure() -> None:
    P = problem("coupled", 4)
    B = sr.bptt(P.U, P.loss, wrt=list(P.wrt))
    chain_adj = [e.lhs.args[0] for e in B.adjoints if e.lhs.args[0] in P.U.definitions]
    times = [int(v.args[0]) for v in chain_adj]
    assert times == sorted(times, reverse=True) and times[0] == 4  # last step first
    assert [e.lhs.args[0] for e in B.adjoints[len(chain_adj) :]] == [
        v for v in P.wrt if v not in P.U.params
    ]  # then the initial states and inputs that end the recursion
    assert [e.lhs for e in B.gradients] == [Adjoint(p) for p in P.U.params]
    assert B.wrt == P.wrt
    resolved = B.resolved()
    assert set(resolved) == {e.lhs for e in B.adjoints}
    assert all(not r.atoms(Adjoint) for r in resolved.values())
    assert B.gradient() == gradients("coupled", 4, "reverse")
    assert "4 steps" in repr(B) and "dL/dp(4)" in str(B)
    assert B._repr_latex_().startswith("$\\begin{aligned}\\frac{\\partial L}")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_gradients_hold_forward_quantities_only(case: str, mode: str) -> None:
    P = problem(case, 3)
    allowed = set(P.U.definitions) | set(P.point)  # chain, initial, inputs, targets, params
    for v, g in gradients(case, 3, mode).items():
        assert not g.atoms(Adjoint) and not g.atoms(Sensitivity), v
        assert leaves(g) <= allowed, v


def test_bptt_size_grows_linearly() -> None:
    rec = sr.cells.rnn()
    h = rec.states[0]
    counts = {}
    for steps in (20, 40):
        U = sr.unfold(rec, steps)
        counts[steps] = sr.bptt(U, sr.total_loss(U, (h(t) - y_s(t)) ** 2 / 2)).count_ops()
    assert 1.8 <= counts[40] / counts[20] <= 2.2


def test_template_of_scalar_rnn_is_the_textbook_recursion() -> None:
    rec = sr.cells.rnn()
    h, x = rec.states[0], rec.inputs[0]
    w, u, b = (sp.Symbol(n, real=True) for n in "wub")
    U = sr.unfold(rec, 3)
    B = sr.bptt(U, sr.total_loss(U, (h(t) - y_s(t)) ** 2 / 2), wrt=[w, u, b])
    L, tau = sp.Function("L", real=True)(t), sp.Symbol("tau", integer=True, positive=True)
    d = 1 - h(t) ** 2  # tanh' through the defined quantity
    expected = [
        sp.Eq(Adjoint(h(t)), sp.Derivative(L, h(t)) + Adjoint(h(t + 1)) * w * d.subs(t, t + 1)),
        sp.Eq(Adjoint(w), sp.Sum(Adjoint(h(t)) * d * h(t - 1), (t, 1, tau))),
        sp.Eq(Adjoint(u), sp.Sum(Adjoint(h(t)) * d * x(t), (t, 1, tau))),
        sp.Eq(Adjoint(b), sp.Sum(Adjoint(h(t)) * d, (t, 1, tau))),
    ]
    got = B.template()
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.lhs == e.lhs
        if isinstance(e.rhs, sp.Sum):
            assert g.rhs.limits == e.rhs.limits
            assert sp.expand(g.rhs.function - e.rhs.function) == 0
        else:
            assert sp.expand(g.rhs - e.rhs) == 0


# --------------------------------------------------------------------- transition Jacobian
def _one_step(rec: sr.Recurrence) -> tuple[Callable[[np.ndarray], np.ndarray], dict[Any, float]]:
    """One step of ``rec`` as a float function of the lagged states, at a random point."""
    lagged = [s(t - 1) for s in rec.states]
    exprs: dict[Any, Any] = {}
    for eq in rec.equations:
        exprs[eq.lhs] = eq.rhs.xreplace(exprs)
    outs = [exprs[s(t)] for s in rec.states]
    rng = np.random.default_rng(11)
    others = sorted(leaves(*outs) - set(lagged), key=sp.default_sort_key)
    point = {v: float(0.6 * rng.normal()) for v in [*others, *lagged]}

    def step(prev: np.ndarray) -> np.ndarray:
        return evaluate(outs, {**point, **dict(zip(lagged, prev, strict=True))})

    return step, point


@pytest.mark.parametrize(
    "make",
    [sr.cells.rnn, sr.cells.gru, sr.cells.lstm, sr.cells.coupled, lambda: sr.cells.gru(2)],
    ids=["rnn", "gru", "lstm", "coupled", "gru2"],
)
def test_transition_jacobian_matches_finite_differences_of_one_step(make: Callable) -> None:
    rec = make()
    J = sr.transition_jacobian(rec)
    n = len(rec.states)
    assert J.shape == (n, n)
    step, point = _one_step(rec)
    prev = np.array([point[s(t - 1)] for s in rec.states])
    fd = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = EPS
        fd[:, j] = (step(prev + e) - step(prev - e)) / (2 * EPS)
    got = evaluate(list(J), point).reshape(n, n)
    np.testing.assert_allclose(got, fd, rtol=FD_RTOL, atol=FD_ATOL)


def test_step_derivatives_are_written_through_the_defined_quantity() -> None:
    rec = sr.cells.coupled()
    p, q = rec.states
    D = step_derivatives(rec)
    dq = dict(D.partials[q])
    c, d = (sp.Symbol(n, real=True) for n in "cd")
    assert sp.expand(dq[p(t - 1)] - c * q(t - 1) * q(t) * (1 - q(t))) == 0
    assert sp.expand(dict(D.param_partials[q])[d] - q(t) * (1 - q(t))) == 0


# --------------------------------------------------------------------- random recurrences
@st.composite
def scalar_recurrences(draw: st.DrawFn) -> tuple[sr.Recurrence, int]:
    """Random scalar recurrences: order 1-2, tanh / sigmoid / products, 1-3 parameters."""
    h, x = time_function("h"), time_function("x")
    params = sp.symbols(f"p0:{draw(st.integers(1, 3))}", real=True)
    order = draw(st.integers(1, 2))
    atoms = [h(t - 1), x(t)] + ([h(t - 2)] if order == 2 else [])
    pieces = st.sampled_from(
        [
            lambda p, a, c: p * a,
            lambda p, a, c: p * a * c,
            lambda p, a, c: sp.tanh(p * a + c),
            lambda p, a, c: sr.sigmoid(p * a) * c,
            lambda p, a, c: p,
        ]
    )
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        piece = draw(pieces)
        terms.append(
            piece(
                draw(st.sampled_from(params)),
                draw(st.sampled_from(atoms)),
                draw(st.sampled_from(atoms)),
            )
        )
    terms.append(draw(st.sampled_from(params)) * atoms[-1 if order == 2 else 0])  # keep the order
    outer = draw(st.sampled_from([sp.tanh, sr.sigmoid, lambda e: e]))
    rec = sr.Recurrence(sp.Eq(h(t), outer(sp.Add(*terms))), params=params)
    return rec, draw(st.integers(1, 3))


@settings(max_examples=40, deadline=None)
@given(scalar_recurrences(), st.integers(0, 2**16))
def test_random_recurrences_reverse_forward_closed_form(case: tuple, seed: int) -> None:
    rec, steps = case
    U = sr.unfold(rec, steps)
    h = rec.states[0]
    loss = sr.total_loss(U, (h(t) - y_s(t)) ** 2 / 2)
    wrt = [*rec.params, *U.initial, *U.inputs[:1]]
    rev = sr.grad(U, loss, wrt=wrt)
    fwd = sr.grad(U, loss, wrt=wrt, mode="forward")
    C = expand_chain(U, loss)
    point = random_point(U, loss, seed)
    values = Chain(U, loss).values(point)
    r = evaluate([rev[v] for v in wrt], values)
    f = evaluate([fwd[v] for v in wrt], values)
    c = evaluate([sp.diff(C, v) for v in wrt], point)
    assert np.all(np.isfinite(r))
    np.testing.assert_allclose(r, f, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r, c, rtol=1e-9, atol=1e-12)


def test_sigmoid_derivative_is_used_in_gradients() -> None:
    """A sanity anchor for the property test: one hand-checkable recurrence."""
    h, x = time_function("h"), time_function("x")
    a = sp.Symbol("a", real=True)
    U = sr.unfold(sr.Recurrence(sp.Eq(h(t), sr.sigmoid(a * h(t - 1) + x(t)))), 1)
    g = sr.grad(U, h(1), wrt=[a])[a]
    assert sp.expand(g - h(1) * (1 - h(1)) * h(0)) == 0
    assert math.isclose(
        float(expand_chain(U, g).subs({a: 0.3, h(0): 0.5, x(1): -0.2})),
        float(sp.diff(U.closed_form(1), a).subs({a: 0.3, h(0): 0.5, x(1): -0.2})),
    )
