"""Tests of symrnn.solve: closed forms in symbolic t and convolution kernels.

Every closed form is compared with an independent route: the integer sequence computed by a
Python loop (exactly), or the unfolded chain ``sr.unfold(rec, k).closed_form(k)`` (exactly where
the forms are polynomial, else numerically at random points), or a NumPy simulation.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import signal
import time

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symrnn as sr
from symrnn.errors import LimitError, NoClosedForm, ShapeError, SymrnnError
from symrnn.notation import time_atoms, time_function
from symrnn.solve import MAX_KERNEL_LENGTH, Solution, SolutionCheck, kernel, solve

t = sr.t
h, x, z, p, q, o = (time_function(c) for c in ("h", "x", "z", "p", "q", "o"))
a, b, c, u, v = sp.symbols("a b c u v", real=True)


# ------------------------------------------------------------------------------ helpers
def sequence(first: list[int], coeffs: list[int], n: int) -> list[int]:
    """s(t) = Σ coeffs[i] s(t-1-i) from the initial values [s(0), s(-1), …], for t = 1 … n."""
    values = list(reversed(first))  # oldest first
    for _ in range(n):
        values.append(sum(ci * values[-1 - i] for i, ci in enumerate(coeffs)))
    return values[len(first) :]


def random_point(rec: sr.Recurrence, rng: np.random.Generator, steps: int) -> dict:
    """Random values for parameters, initial states and inputs x(1-lag) … x(steps)."""
    values: dict = {s: sp.Float(rng.uniform(-1, 1), 30) for s in rec.params}
    for s in rec.states:
        for k in range(1 - max(1, rec.lag(s)), 1):
            values[s(k)] = sp.Float(rng.uniform(-1, 1), 30)
    for f in rec.inputs:
        for k in range(-rec.input_lag, steps + 1):
            values[f(k)] = sp.Float(rng.uniform(-1, 1), 30)
    return values


def written_out(expr):
    """Sums and products with integer limits as explicit terms (``Sum.doit`` is slow here)."""

    def unroll(node):
        (i, lo, hi) = node.limits[0]
        terms = [node.function.xreplace({i: sp.Integer(n)}) for n in range(lo, hi + 1)]
        return sp.Add(*terms) if isinstance(node, sp.Sum) else sp.Mul(*terms)

    def concrete(node):
        return isinstance(node, (sp.Sum, sp.Product)) and all(
            b.is_Integer for b in node.limits[0][1:]
        )

    while any(concrete(n) for n in sp.preorder_traversal(expr)):
        expr = expr.replace(concrete, unroll)
    return expr


def solution_value(sol: Solution, k: int, values: dict) -> np.ndarray:
    """The solution at time k, numerically (parameters substituted before the sums are done)."""
    expr = written_out(sol.expr.xreplace(values).xreplace({t: sp.Integer(k)})).xreplace(values)
    return np.array(sp.N(sp.Matrix([expr]) if not isinstance(expr, sp.MatrixBase) else expr, 25))


def unfold_value(rec: sr.Recurrence, of: tuple, k: int, values: dict) -> np.ndarray:
    U = sr.unfold(rec, k)
    forms = [U.closed_form(k, of=f) for f in of]
    return np.array(sp.N(sp.Matrix(forms).xreplace(values), 25))


def assert_agrees_with_unfold(rec: sr.Recurrence, sol: Solution, steps: int = 8) -> None:
    rng = np.random.default_rng(1234)
    for _ in range(2):
        values = random_point(rec, rng, steps)
        for k in range(1, steps + 1):
            got = solution_value(sol, k, values).astype(complex).ravel()
            want = unfold_value(rec, sol.of, k, values).astype(complex).ravel()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"t={k}")


def with_matrix(rec: sr.Recurrence, name: str, value: list) -> sr.Recurrence:
    M = sp.Matrix(value)
    return rec.with_params({sr.matrix(name, *M.shape): M})


# ------------------------------------------------------------------ integer sequences
@pytest.mark.parametrize(
    ("rec", "first", "coeffs"),
    [
        (sr.cells.fibonacci(), [0, 1], [1, 1]),  # F(0) = 0, F(-1) = 1
        (sr.cells.fibonacci(), [2, -1], [1, 1]),  # Lucas: L(0) = 2, L(-1) = -1
        (sr.Recurrence(sp.Eq(h(t), 2 * h(t - 1) + h(t - 2)), name="pell"), [0, 1], [2, 1]),
    ],
    ids=["fibonacci", "lucas", "pell"],
)
def test_integer_sequences_exact_up_to_60(rec, first, coeffs):
    sol = solve(rec)
    assert sol.method == "characteristic"
    (s,) = sol.of
    init = {s(0): first[0], s(-1): first[1]}
    want = sequence(first, coeffs, 60)
    for k in range(1, 61):
        got = sol.at(k).subs(init)
        assert got.is_Integer and got == want[k - 1], (k, got)


def test_fibonacci_is_binet():
    sol = solve(sr.cells.fibonacci())
    s = sol.of[0]
    golden = (1 + sp.sqrt(5)) / 2
    binet = (golden**t - (1 - golden) ** t) / sp.sqrt(5)
    gap = sol.expr.subs({s(0): 0, s(-1): 1}) - binet
    assert all(sp.expand(gap.subs(t, k)) == 0 for k in range(0, 10))
    assert sol.expr.has(golden**t)


# --------------------------------------------------------------------- scalar, driven
def test_linear_driven_form():
    rec = sr.cells.linear()
    sol = solve(rec)
    k = sol.index
    assert sol.method == "linear-driven"
    expected = a**t * h(0) + sp.Sum(a ** (t - k) * (u * x(k) + b), (k, 1, t))
    assert sol.expr == expected
    assert str(sol) == "h(t) = a**t*h(0) + Sum(a**(t - k)*(b + u*x(k)), (k, 1, t))"


@pytest.mark.parametrize(
    "rec",
    [
        sr.cells.linear(),
        sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + x(t) + b * x(t - 1)), name="lagged_input"),
        sr.Recurrence(sp.Eq(h(t), 2 * h(t - 1) - h(t - 2) + x(t)), name="double_root"),
        sr.Recurrence(
            sp.Eq(
                h(t),
                sp.Rational(3, 2) * h(t - 1)
                + sp.Rational(1, 2) * h(t - 2)
                - sp.Rational(1, 2) * h(t - 3)
                + u * x(t),
            ),
            name="order3",
        ),
        sr.Recurrence(sp.Eq(h(t), 3 * h(t - 1) - 3 * h(t - 2) + h(t - 3) + x(t)), name="triple"),
    ],
    ids=lambda r: r.name,
)
def test_scalar_driven_matches_unfold_exactly(rec):
    sol = solve(rec)
    assert sol.method == "linear-driven"
    for k in range(1, 9):
        want = sr.unfold(rec, k).closed_form(k)
        assert sp.expand(sol.at(k) - want) == 0, (k, want)


ROOTS = [sp.Rational(n, d) for n in (-3, -2, -1, 1, 2, 3) for d in (1, 2, 3)]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    roots=st.lists(st.sampled_from(ROOTS), min_size=1, max_size=3),
    gain=st.integers(-3, 3).filter(bool),
    bias=st.integers(-2, 2),
)
def test_random_linear_recurrences_match_unfold(roots, gain, bias):
    """Recurrences built from their characteristic roots (repeats allowed) against the chain."""
    lam = sp.Symbol("lambda")
    poly = sp.Poly(sp.prod([lam - r for r in roots]), lam).all_coeffs()  # 1, -a_1, -a_2, ...
    rhs = sum(-c * h(t - i) for i, c in enumerate(poly[1:], start=1)) + gain * x(t) + bias
    rec = sr.Recurrence(sp.Eq(h(t), rhs))
    sol = solve(rec)
    assert sol.check.ok
    for k in range(1, 6):
        assert sp.expand(sol.at(k) - sr.unfold(rec, k).closed_form(k)) == 0, (k, roots)


def test_symbolic_order2_driven_matches_unfold():
    rec = sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + c * h(t - 2) + u * x(t) + b), name="sym2")
    sol = solve(rec)
    assert sol.method == "linear-driven"
    assert sol.check.times == tuple(range(-1, 7))
    assert_agrees_with_unfold(rec, sol)


@pytest.mark.parametrize(
    ("drive", "method"),
    [
        (3**t, "characteristic"),
        (t, "characteristic"),
        (t**2 + 1, "characteristic"),
        (sp.sin(t), "linear-driven"),
    ],
    ids=["3^t", "t", "t^2+1", "sin"],
)
def test_known_drive(drive, method):
    rec = sr.Recurrence(sp.Eq(h(t), 2 * h(t - 1) + drive))
    sol = solve(rec)
    assert sol.method == method
    for k in range(1, 9):
        assert sp.expand(sol.at(k) - sr.unfold(rec, k).closed_form(k)) == 0


def test_known_drive_is_closed():
    sol = solve(sr.Recurrence(sp.Eq(h(t), 2 * h(t - 1) + 3**t)))
    assert not sol.expr.has(sp.Sum)
    assert sp.expand(sol.expr - (3 ** (t + 1) + 2**t * (h(0) - 3))) == 0
    assert sol.check.symbolic is True


def test_homogeneous_symbolic_second_order():
    rec = sr.Recurrence(sp.Eq(h(t), b * h(t - 1) + c * h(t - 2)))
    sol = solve(rec)
    assert sol.method == "characteristic"
    assert_agrees_with_unfold(rec, sol)


# -------------------------------------------------------------------- time-varying
def test_time_varying_by_rsolve():
    rec = sr.Recurrence(sp.Eq(h(t), t * h(t - 1)))
    sol = solve(rec)
    assert sol.method == "rsolve"
    assert sol.expr == sp.factorial(t) * h(0)
    assert sol.check.symbolic is True


@pytest.mark.parametrize(
    "rec",
    [
        sr.Recurrence(sp.Eq(h(t), t * h(t - 1) + x(t)), name="t_driven"),
        sr.Recurrence(sp.Eq(h(t), sr.sigmoid(u * x(t)) * h(t - 1) + x(t)), name="gated"),
        sr.Recurrence(
            [
                sp.Eq(z(t), sr.sigmoid(u * x(t) + b)),
                sp.Eq(h(t), (1 - z(t)) * h(t - 1) + z(t) * x(t)),
            ],
            name="min_gru",
        ),
    ],
    ids=lambda r: r.name,
)
def test_first_order_time_varying_product_form(rec):
    sol = solve(rec)
    assert sol.method == "product"
    assert_agrees_with_unfold(rec, sol)


def test_gated_product_prints_as_product():
    sol = solve(sr.Recurrence(sp.Eq(h(t), sr.sigmoid(x(t)) * h(t - 1) + x(t))))
    assert sol.expr.has(sp.Product)
    assert "\\prod_{j=k + 1}^{t}" in sol._repr_latex_()


# -------------------------------------------------------------------- vector / systems
@pytest.mark.parametrize(
    ("n", "A"),
    [
        (2, [[sp.Rational(1, 2), 1], [sp.Rational(1, 3), 0]]),
        (2, [[1, 1], [0, 1]]),  # a Jordan block
        (2, [[1, 1], [-1, -1]]),  # nilpotent: A^2 = 0
        (2, [[0, -1], [1, 0]]),  # rotation: complex eigenvalues
        (3, [[2, 1, 0], [0, 2, 0], [0, 0, -1]]),  # Jordan block and a simple eigenvalue
        (3, [[1, 1, 0], [1, 0, 0], [0, 1, 2]]),  # eigenvalues (1 ± √5)/2 and 2
    ],
    ids=["2x2", "2x2-jordan", "2x2-nilpotent", "2x2-rotation", "3x3-jordan", "3x3"],
)
def test_numeric_matrix_matches_unfold_exactly(n, A):
    rec = with_matrix(sr.cells.linear(n), "A", A)
    sol = solve(rec)
    assert sol.method == "matrix-power"
    assert sol.expr.shape == (n, 1)
    for k in range(1, 9):
        U = sr.unfold(rec, k)
        want = sp.Matrix([U.closed_form(k, of=f) for f in sol.of])
        assert (sol.at(k) - want).applyfunc(sp.expand) == sp.zeros(n, 1), k


def test_symbolic_2x2_matches_unfold_numerically():
    rec = sr.cells.linear(2)
    sol = solve(rec, of="h")
    assert sol.method == "matrix-power"
    assert sol.of == rec.states
    assert_agrees_with_unfold(rec, sol)


def test_float_matrix_is_solved_with_rationals():
    rec = with_matrix(sr.cells.linear(2), "A", [[0.5, 0.1], [0.2, 0.3]])
    sol = solve(rec)
    assert not sol.expr.atoms(sp.Float)
    assert_agrees_with_unfold(rec, sol, steps=4)


def test_coupled_linear_scalars():
    rec = sr.Recurrence(
        [sp.Eq(p(t), a * p(t - 1) + b * q(t - 1) + x(t)), sp.Eq(q(t), c * p(t - 1))],
        name="coupled_linear",
    )
    sol = solve(rec)
    assert sol.method == "matrix-power"
    assert sol.of == (p, q)
    assert_agrees_with_unfold(rec, sol)
    assert solve(rec, of=q).expr == sol.expr[1]


def test_same_time_dependency_is_inlined():
    rec = sr.Recurrence([sp.Eq(p(t), a * p(t - 1) + x(t)), sp.Eq(q(t), p(t) + q(t - 1))])
    sol = solve(rec)
    assert_agrees_with_unfold(rec, sol)


def test_output_by_substitution():
    rec = sr.Recurrence([sp.Eq(h(t), a * h(t - 1) + u * x(t)), sp.Eq(o(t), c + v * h(t))])
    sol = solve(rec, of="o")
    assert sol.of == (o,)
    assert_agrees_with_unfold(rec, sol)


def test_index_avoids_parameter_names():
    k = sp.Symbol("k", real=True)
    sol = solve(sr.Recurrence(sp.Eq(h(t), k * h(t - 1) + x(t))))
    assert sol.index.name != "k"
    assert sol.index.is_integer


# ------------------------------------------------------------------------ no closed form
@pytest.mark.parametrize(
    ("rec", "words"),
    [
        (sr.cells.rnn(), ["'rnn'", "h(t) depends nonlinearly on h(t - 1)", "through tanh"]),
        (sr.cells.gru(), ["'gru'", "nonlinearly on h(t - 1)"]),
        (sr.cells.autonomous(), ["the abstract function f"]),
        (sr.cells.coupled(), ["'coupled'", "nonlinearly"]),
        (sr.cells.lstm(), ["'lstm'", "nonlinearly"]),
        (sr.cells.elman(2), ["'elman'", "through tanh"]),
        (sr.cells.jordan(), ["o(t) depends nonlinearly on o(t - 1)"]),
        (
            sr.Recurrence([sp.Eq(p(t), p(t - 1) * q(t - 1)), sp.Eq(q(t), q(t - 1) + x(t))]),
            ["the product"],
        ),
        (sr.Recurrence(sp.Eq(h(t), h(t - 1) ** 2 + x(t))), ["the power h(t - 1)**2"]),
        (
            sr.Recurrence(sp.Eq(h(t), x(t) * h(t - 1) + h(t - 2))),
            ["depends on x(t)", "first-order"],
        ),
        (
            sr.Recurrence([sp.Eq(p(t), t * p(t - 1) + q(t - 1)), sp.Eq(q(t), p(t - 1))]),
            ["depends on t", "constant coefficients"],
        ),
        (
            sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + h(t - 3) + x(t))),
            ["factor -a*λ**2 + λ**3 - 1 of degree 3 with symbolic coefficients", "with_params"],
        ),
    ],
    ids=[
        "rnn",
        "gru",
        "abstract",
        "coupled",
        "lstm",
        "elman2",
        "jordan",
        "product",
        "power",
        "input-coeff",
        "t-system",
        "symbolic-cubic",
    ],
)
def test_no_closed_form(rec, words):
    with pytest.raises(NoClosedForm) as info:
        solve(rec)
    message = str(info.value)
    assert message.startswith("no closed form for Recurrence")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_quintic_without_radicals_is_solved_with_crootof():
    rec = sr.Recurrence(sp.Eq(h(t), h(t - 4) - h(t - 5) + x(t)))
    sol = solve(rec)
    assert sol.method == "linear-driven"
    assert "where r1, r2, r3, r4, r5 are the roots of λ**5 - λ + 1" in str(sol)
    for k in range(1, 9):
        assert sp.expand(sol.at(k) - sr.unfold(rec, k).closed_form(k)) == 0, k


def test_no_closed_form_message_for_rnn():
    with pytest.raises(NoClosedForm, match="use sr.unfold for fixed t"):
        solve(sr.cells.rnn())


def test_unknown_quantity():
    with pytest.raises(SymrnnError, match="choose one of h"):
        solve(sr.cells.linear(), of="y")


def test_size_limit():
    rec = sr.Recurrence(sp.Eq(h(t), sum(h(t - i) for i in range(1, 12)) + x(t)))
    with pytest.raises(LimitError, match="limit"):
        solve(rec)


# ------------------------------------------------------------------------ the solution
def test_check_is_present_and_passing():
    sol = solve(sr.cells.linear())
    assert isinstance(sol.check, SolutionCheck)
    assert sol.check.ok and sol.check.points == 3
    assert sol.check.max_error <= sol.check.tolerance
    assert sol.check.times == tuple(range(0, 7))
    assert sol.check.symbolic is None  # a Sum is checked numerically
    assert "max relative residual" in str(sol.check)


def test_fibonacci_check_is_symbolic():
    check = solve(sr.cells.fibonacci()).check
    assert check.symbolic is True and check.ok
    assert check.times[0] == -1


def test_solution_is_immutable_and_prints():
    sol = solve(sr.cells.linear())
    with pytest.raises(dataclasses.FrozenInstanceError):
        sol.method = "other"  # type: ignore[misc]
    assert repr(sol) == "<Solution 'linear' of h: method='linear-driven', check ok=True>"
    tex = sol._repr_latex_()
    assert "h^{(t)} &=" in tex and "x^{(k)}" in tex and "\\sum_{k=1}^{t}" in tex
    assert "a^{t - k}" in tex
    (eq,) = sol.equations
    assert eq.lhs == sol.of[0](t)


def test_vector_solution_prints_per_component():
    sol = solve(with_matrix(sr.cells.linear(2), "A", [[1, 1], [0, 1]]))
    lines = str(sol).splitlines()
    assert lines[0].startswith("h_1(t) = ") and lines[1].startswith("h_2(t) = ")
    assert "h_{1}^{(t)}" in sol._repr_latex_()


def test_at_validates_time():
    sol = solve(sr.cells.fibonacci())
    assert sol.at(0) == sol.of[0](0)
    assert sol.at(-1) == sol.of[0](-1)
    with pytest.raises(ValueError, match="integer time >= -1"):
        sol.at(-2)
    with pytest.raises(ValueError):
        sol.at(1.5)  # type: ignore[arg-type]


def test_at_without_expansion_is_the_same_number():
    rec = sr.cells.linear(2)
    sol = solve(rec)
    values = random_point(rec, np.random.default_rng(3), 5)
    fast = np.array(sp.N(sol.at(5, expand=False).xreplace(values), 20), dtype=complex)
    want = unfold_value(rec, sol.of, 5, values).astype(complex)
    np.testing.assert_allclose(fast, want, rtol=1e-12)


def test_at_gives_only_initial_states_and_inputs():
    rec = sr.cells.linear()
    sol = solve(rec)
    atoms = time_atoms(sol.at(3))
    assert atoms == {rec.states[0](0), *(rec.inputs[0](k) for k in (1, 2, 3))}


def test_solve_rejects_non_recurrence():
    with pytest.raises(TypeError, match="needs a Recurrence"):
        solve(sp.Eq(h(t), h(t - 1)))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- kernel
def test_kernel_scalar():
    assert kernel(sr.cells.linear(), 4) == (u, a * u, a**2 * u, a**3 * u)
    assert kernel(solve(sr.cells.linear()), 2) == (u, a * u)


def test_kernel_lagged_input_and_second_order():
    assert kernel(sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + x(t) + b * x(t - 1))), 3) == (
        1,
        a + b,
        a**2 + a * b,
    )
    rec = sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + c * h(t - 2) + x(t)))
    assert kernel(rec, 4) == (1, a, a**2 + c, a**3 + 2 * a * c)


def test_kernel_vector_is_powers_of_A_times_B():
    rec = sr.cells.linear(2)
    A, B = sr.matrices.explicit(sr.matrix("A", 2, 2)), sr.matrices.explicit(sr.matrix("B", 2, 1))
    K = kernel(rec, 4)
    for j, Kj in enumerate(K):
        assert (Kj - A**j * B).applyfunc(sp.expand) == sp.zeros(2, 1)


def test_kernel_of_output_equation():
    rec = sr.Recurrence(
        [sp.Eq(h(t), a * h(t - 1) + u * x(t)), sp.Eq(o(t), c + v * h(t) + b * x(t))]
    )
    assert kernel(rec, 3) == (u * v + b, a * u * v, a**2 * u * v)
    assert kernel(rec, 2, output=h) == (u, a * u)
    assert kernel(rec, 2, output=(sp.Matrix([[2]]), sp.Matrix([[5]]))) == (2 * u + 5, 2 * a * u)


def simulate(A, B, C, D, h0, xs):
    hs, ys = h0, []
    for xt in xs:
        hs = A @ hs + B @ xt
        ys.append(C @ hs + D @ xt)
    return np.array(ys)


def test_kernel_matches_simulation_of_state_space_model():
    rng = np.random.default_rng(7)
    n, m, r, T = 3, 2, 2, 12
    A = rng.normal(size=(n, n)) / 2
    B, C, D = rng.normal(size=(n, m)), rng.normal(size=(r, n)), rng.normal(size=(r, m))
    hv, xv, yv = sr.vector("h", n), sr.vector("x", m), sr.vector("y", r)
    As, Bs, Cs, Ds = (sr.matrix(s, *M.shape) for s, M in zip("ABCD", (A, B, C, D), strict=True))
    rec = sr.Recurrence(
        [sp.Eq(hv(t), As * hv(t - 1) + Bs * xv(t)), sp.Eq(yv(t), Cs * hv(t) + Ds * xv(t))]
    )
    rec = rec.with_params(
        {M: sp.Matrix(val) for M, val in zip((As, Bs, Cs, Ds), (A, B, C, D), strict=True)}
    )
    K = np.array([np.array(Kj, dtype=float) for Kj in kernel(rec, T)])
    assert K.shape == (T, r, m)
    xs = rng.normal(size=(T, m))
    h0 = rng.normal(size=n)
    ys = simulate(A, B, C, D, h0, xs)
    for step in range(1, T + 1):
        free = C @ np.linalg.matrix_power(A, step) @ h0
        forced = sum(K[j] @ xs[step - 1 - j] for j in range(step))
        np.testing.assert_allclose(free + forced, ys[step - 1], rtol=1e-10, atol=1e-10)
    # the same kernel from explicit matrices given as output=(C, D)
    states_only = sr.Recurrence([sp.Eq(hv(t), As * hv(t - 1) + Bs * xv(t))]).with_params(
        {As: sp.Matrix(A), Bs: sp.Matrix(B)}
    )
    K2 = kernel(states_only, T, output=(sp.Matrix(C), sp.Matrix(D)))
    np.testing.assert_allclose(np.array([np.array(k, dtype=float) for k in K2]), K, atol=1e-12)


def test_kernel_errors():
    with pytest.raises(NoClosedForm, match="has no inputs"):
        kernel(sr.cells.fibonacci(), 3)
    with pytest.raises(NoClosedForm, match="'rnn'.*through tanh.*needs a linear recurrence"):
        kernel(sr.cells.rnn(), 3)
    with pytest.raises(NoClosedForm, match="nonlinearly on an input"):
        kernel(sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + sp.tanh(x(t)))), 3)
    with pytest.raises(NoClosedForm, match="kernel needs constant coefficients"):
        kernel(sr.Recurrence(sp.Eq(h(t), t * h(t - 1) + x(t))), 3)
    with pytest.raises(ValueError, match="positive integer"):
        kernel(sr.cells.linear(), 0)
    with pytest.raises(LimitError):
        kernel(sr.cells.linear(), MAX_KERNEL_LENGTH + 1)
    with pytest.raises(ShapeError, match="columns"):
        kernel(sr.cells.linear(), 2, output=sp.Matrix([[1, 2]]))


# ------------------------------------------------ high orders, budget, special parameter values
def iterate_exact(coeffs: list, first: list, n: int, drive=lambda k: 0) -> list:
    """s(t) = Σ coeffs[i] s(t-1-i) + drive(t) in exact rationals; first = [s(1-order) … s(0)]."""
    values = [sp.Rational(v) for v in first]
    for k in range(1, n + 1):
        values.append(sum(sp.Rational(c) * values[-1 - i] for i, c in enumerate(coeffs)) + drive(k))
    return values


HIGH_ORDER = {
    "tribonacci": ([1, 1, 1], [0, 0, 1]),
    "padovan": ([0, 1, 1], [1, 1, 1]),
    "perrin": ([0, 1, 1], [3, 0, 2]),
    "order4": ([1, -1, -1, 1], [2, -1, 3, 5]),
    "issue17990": ([sp.Rational(-6, 46), sp.Rational(-4, 46), sp.Rational(10, 46)], [1, -2, 3]),
}


def high_order(name: str, drive=0) -> sr.Recurrence:
    coeffs, _ = HIGH_ORDER[name]
    rhs = sum(c * h(t - 1 - i) for i, c in enumerate(coeffs)) + drive
    return sr.Recurrence(sp.Eq(h(t), rhs), name=name)


def initial(first: list) -> dict:
    return {h(k): v for k, v in zip(range(1 - len(first), 1), first, strict=True)}


@pytest.mark.parametrize("name", list(HIGH_ORDER))
def test_high_order_exact_to_40_within_2s(name):
    coeffs, first = HIGH_ORDER[name]
    start = time.perf_counter()
    sol = solve(high_order(name))
    values = [sol.at(k).subs(initial(first)) for k in range(1, 41)]
    elapsed = time.perf_counter() - start
    want = iterate_exact(coeffs, first, 40)[len(first) :]
    assert values == want
    assert all(v.is_Rational for v in values)
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    assert sol.check.ok


@pytest.mark.parametrize("name", list(HIGH_ORDER))
def test_high_order_with_input_exact_within_2s(name):
    coeffs, first = HIGH_ORDER[name]
    start = time.perf_counter()
    sol = solve(high_order(name, drive=x(t)))
    inputs = {x(k): (-1) ** k * k for k in range(1, 41)}
    values = [sol.at(k).xreplace(inputs).subs(initial(first)) for k in (1, 2, 7, 25, 40)]
    elapsed = time.perf_counter() - start
    want = iterate_exact(coeffs, first, 40, drive=lambda k: (-1) ** k * k)
    assert values == [want[len(first) - 1 + k] for k in (1, 2, 7, 25, 40)]
    assert elapsed < 2.0, f"{name} + x(t): {elapsed:.2f} s"
    assert sol.expr.has(sp.Sum) and sol.check.ok


def test_high_order_with_constant_drive_is_closed():
    sol = solve(high_order("tribonacci", drive=1))
    assert not sol.expr.has(sp.Sum)
    want = iterate_exact([1, 1, 1], [0, 0, 1], 30, drive=lambda k: 1)
    assert [sol.at(k).subs(initial([0, 0, 1])) for k in range(1, 31)] == want[3:]


def test_tribonacci_names_its_roots():
    sol = solve(high_order("tribonacci"))
    assert sol.expr.atoms(sp.CRootOf)
    text = str(sol)
    assert "where r1, r2, r3 are the roots of λ**3 - λ**2 - λ - 1" in text
    assert "CRootOf" not in text
    assert "r_{1}" in sol._repr_latex_() and "CRootOf" not in sol._repr_latex_()


def test_quadratic_roots_stay_radicals():
    sol = solve(sr.cells.fibonacci())
    assert not sol.expr.atoms(sp.CRootOf)
    assert sol.expr.has(sp.sqrt(5))


def test_budget_is_named_when_exceeded():
    with pytest.raises(NoClosedForm, match=r"budget of 1e-06 s"):
        solve(high_order("order4", drive=x(t)), budget=1e-6)


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="budget"):
        solve(sr.cells.linear(), budget=0)


def test_generic_form_divides_and_subs_resolves():
    rec = sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + 2))
    sol = solve(rec)
    assert sp.nan in {sp.simplify(sol.expr.subs(a, 1))} or sol.expr.subs(a, 1).has(sp.zoo, sp.nan)
    at_one = sol.subs({a: 1})
    assert sp.expand(at_one.expr - (h(0) + 2 * t)) == 0
    assert at_one.check.ok and at_one.recurrence.params == ()
    at_two = sol.subs({a: 2})
    assert sp.expand(at_two.expr - sol.expr.subs(a, 2)) == 0


def test_subs_at_a_double_root():
    c1, c2 = sp.symbols("c1 c2")
    rec = sr.Recurrence(sp.Eq(h(t), c1 * h(t - 1) + c2 * h(t - 2) + 1))
    sol = solve(rec).subs({c1: 2, c2: -1})
    want = sr.Recurrence(sp.Eq(h(t), 2 * h(t - 1) - h(t - 2) + 1))
    for k in range(1, 9):
        assert sp.expand(sol.at(k) - sr.unfold(want, k).closed_form(k)) == 0


def test_subs_symbolic_matrix_at_a_jordan_block():
    rec = sr.cells.linear(2)
    A = sr.matrix("A", 2, 2)
    sol = solve(rec).subs({A: sp.Matrix([[1, 1], [0, 1]])})
    want = rec.with_params({A: sp.Matrix([[1, 1], [0, 1]])})
    for k in range(1, 7):
        U = sr.unfold(want, k)
        got = sol.at(k) - sp.Matrix([U.closed_form(k, of=f) for f in sol.of])
        assert got.applyfunc(sp.expand) == sp.zeros(2, 1)


def test_subs_refuses_what_is_not_a_parameter():
    sol = solve(sr.cells.linear())
    with pytest.raises(SymrnnError, match="not a parameter"):
        sol.subs({h(0): 1})


def test_rsolve_is_interrupted_by_the_budget():
    n2 = sr.Recurrence(sp.Eq(h(t), (2 * t - 3) * h(t - 1) - ((t - 2) ** 2 - 2) * h(t - 2)))
    start = time.perf_counter()
    # rsolve finds this in about 0.2 s on an idle machine: a budget far below that must stop it
    with pytest.raises(NoClosedForm, match="within the time budget of 0.02 s"):
        solve(n2, budget=0.02)
    assert time.perf_counter() - start < 1.5


def test_alarm_is_left_as_it_was():
    before = signal.getsignal(signal.SIGALRM)
    solve(sr.Recurrence(sp.Eq(h(t), t * h(t - 1))))
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_off_the_main_thread_calls_that_cannot_be_interrupted_are_not_made():
    factorial = sr.Recurrence(sp.Eq(h(t), t * h(t - 1)))
    assert solve(factorial).method == "rsolve"  # main thread: under the alarm
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sol = pool.submit(solve, factorial).result()
        trib = pool.submit(solve, high_order("tribonacci", drive=x(t))).result()
    assert sol.method == "product" and sol.check.ok  # rsolve not tried
    assert sp.expand(sol.at(6) - 720 * h(0)) == 0
    assert trib.method == "linear-driven" and trib.check.ok
