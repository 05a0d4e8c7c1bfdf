"""Gradient flow: norms of ∂h^{(t)}/∂h^{(t-d)} checked against independent routes.

Linear recurrences against NumPy's matrix powers; nonlinear cells against the chain Jacobian of
``sr.jacobian`` on the unfolded recurrence and against finite differences of the trajectory.
"""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

import symrnn as sr
from symrnn.errors import LimitError, ShapeError, SymrnnError, ToolMissing
from symrnn.flow import MAX_FLOW_STEPS, GradientFlow, gradient_flow, plot_gradient_flows


def rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def orthogonal(n: int, seed: int = 1) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def matrix_power_norms(A: np.ndarray, steps: int, ord=2) -> np.ndarray:
    return np.array(
        [np.linalg.norm(np.linalg.matrix_power(A, d), ord) for d in range(1, steps + 1)]
    )


# ---------------------------------------------------------------------------- linear, scalar
@pytest.mark.parametrize(
    ("a", "verdict"), [(0.5, "vanishing"), (1.0, "stable"), (1.5, "exploding"), (-0.5, "vanishing")]
)
def test_scalar_linear_norms_are_powers_of_a(a, verdict):
    flow = gradient_flow(sr.cells.linear(), params={"a": a, "u": 1.0, "b": 0.0})
    d = np.arange(1, 51)
    assert flow.linear
    np.testing.assert_array_equal(flow.lags, d)
    np.testing.assert_allclose(flow.norms, abs(a) ** d, rtol=1e-12, atol=0)
    np.testing.assert_allclose(flow.log_norms, d * np.log(abs(a)), rtol=1e-12, atol=1e-13)
    assert flow.spectral_radius == pytest.approx(abs(a), rel=1e-15)
    assert flow.rate == pytest.approx(abs(a), rel=1e-12)
    assert flow.verdict == verdict
    a_sym = sp.Symbol("a", real=True)
    assert flow.symbolic == a_sym**flow.lag_symbol
    assert flow.eigenvalues == (a_sym,)


def test_linear_without_values_is_symbolic_only():
    flow = gradient_flow(sr.cells.linear())
    a = sp.Symbol("a", real=True)
    assert flow.symbolic == a ** sp.Symbol("d", integer=True, nonnegative=True)
    assert flow.spectral_radius == sp.Abs(a)
    assert flow.norms is None and flow.rate is None and flow.verdict is None
    assert "give parameter values" in str(flow)
    with pytest.raises(SymrnnError, match="symbolic only"):
        flow.plot()


def test_symbolic_power_matches_the_unfolded_chain():
    rec = sr.cells.linear()
    flow = gradient_flow(rec)
    h = rec.states[0]
    U = sr.unfold(rec, 5)
    for d in range(1, 5):
        chain = sr.jacobian(U, h(5), h(5 - d), expand=True)
        assert sp.expand(chain - flow.symbolic.subs(flow.lag_symbol, d)) == 0


def test_long_horizons_do_not_overflow():
    flow = gradient_flow(sr.cells.linear(), params={"a": 1.5}, steps=5000)
    d = np.arange(1, 5001)
    np.testing.assert_allclose(flow.log_norms, d * np.log(1.5), rtol=1e-12)
    assert np.isinf(flow.norms[-1]) and flow.verdict == "exploding"
    assert flow.rate == pytest.approx(1.5, rel=1e-12)


def test_zero_coefficient_cuts_the_gradient():
    flow = gradient_flow(sr.cells.linear(), params={"a": 0.0}, steps=5)
    assert np.all(flow.norms == 0) and flow.rate == 0.0 and flow.verdict == "vanishing"


# ---------------------------------------------------------------------------- linear, vector
SPECTRAL_CASES = [(0.8, "vanishing"), (1.0, "stable"), (1.2, "exploding")]


@pytest.mark.parametrize(("radius", "verdict"), SPECTRAL_CASES)
def test_rotation_2x2(radius, verdict):
    A = radius * rotation(0.7)
    flow = gradient_flow(sr.cells.linear(2), params={"A": A}, steps=40)
    np.testing.assert_allclose(flow.norms, matrix_power_norms(A, 40), rtol=1e-10)
    assert flow.spectral_radius == pytest.approx(radius, rel=1e-12)
    assert flow.verdict == verdict
    assert flow.symbolic == sp.MatPow(sp.MatrixSymbol("A", 2, 2), flow.lag_symbol)
    assert len(flow.eigenvalues) == 2


@pytest.mark.parametrize(("radius", "verdict"), SPECTRAL_CASES)
def test_orthogonal_3x3_with_inputs(radius, verdict):
    A = radius * orthogonal(3)
    flow = gradient_flow(sr.cells.linear(3, inputs=2), params={"A": A, "B": np.ones((3, 2))})
    np.testing.assert_allclose(flow.norms, matrix_power_norms(A, 50), rtol=1e-10)
    assert flow.spectral_radius == pytest.approx(radius, rel=1e-10)
    assert flow.verdict == verdict


def test_non_normal_matrix_grows_first_but_vanishes():
    A = np.array([[0.9, 5.0], [0.0, 0.9]])
    flow = gradient_flow(sr.cells.linear(2), params={"A": A}, steps=200)
    np.testing.assert_allclose(flow.norms, matrix_power_norms(A, 200), rtol=1e-10)
    assert flow.norms[5] > flow.norms[0] > 1
    assert flow.spectral_radius == pytest.approx(0.9) and flow.verdict == "vanishing"


@pytest.mark.parametrize("ord", [1, 2, np.inf, "fro"])
def test_other_norms(ord):
    A = np.array([[0.5, -0.7], [0.3, 0.9]])
    flow = gradient_flow(sr.cells.linear(2), params={"A": A}, steps=30, norm=ord)
    np.testing.assert_allclose(flow.norms, matrix_power_norms(A, 30, ord), rtol=1e-10)


LINEAR2 = sr.cells.linear(2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False, width=32),
        min_size=4,
        max_size=4,
    )
)
@example([0.0, 0.0, 2.610174380388635e-22, 2.610174380388635e-22])
def test_random_2x2_matrices(entries):
    A = np.array(entries, dtype=float).reshape(2, 2)
    flow = gradient_flow(LINEAR2, params={"A": A}, steps=25)
    expected = matrix_power_norms(A, 25)
    # Rounding in a product of d factors is bounded by about d·eps·‖A‖^d (cancellation can
    # make that large relative to ‖A^d‖ itself).  Below the smallest normal float relative
    # precision is gone (A with entries near 1e-22 reaches 5e-324 vs 0 at d = 15).
    d = np.arange(1, 26)
    tiny = np.finfo(float).tiny
    bound = 1e-9 * expected + 1e-13 * d * np.linalg.norm(A, 2) ** d + tiny
    assert np.all(np.abs(flow.norms - expected) <= bound)
    rho = max(abs(np.linalg.eigvals(A)))
    assert flow.spectral_radius == pytest.approx(rho, rel=1e-9, abs=1e-12)
    if rho < 1 - 1e-2:
        assert flow.verdict == "vanishing"
    elif rho > 1 + 1e-2:
        assert flow.verdict == "exploding"


def test_second_order_linear_uses_the_companion_matrix():
    flow = gradient_flow(sr.cells.fibonacci(), steps=30)
    C = np.array([[1.0, 1.0], [1.0, 0.0]])
    s = sr.cells.fibonacci().states[0]
    assert flow.state == (s(sr.t), s(sr.t - 1))
    np.testing.assert_allclose(flow.norms, matrix_power_norms(C, 30), rtol=1e-12)
    golden = (1 + 5**0.5) / 2
    assert flow.spectral_radius == pytest.approx(golden, rel=1e-12)
    assert set(flow.eigenvalues) == {sp.S.Half - sp.sqrt(5) / 2, sp.S.Half + sp.sqrt(5) / 2}
    assert flow.verdict == "exploding" and "companion form" in str(flow)


# ------------------------------------------------------------------------------ nonlinear
def chain_norm(U, of, wrt, values) -> float:
    """‖sr.jacobian(U, of, wrt)‖₂ evaluated at the given values (the second route)."""
    J = sr.jacobian(U, of, wrt)
    J = J if isinstance(J, sp.MatrixBase) else sp.Matrix([[J]])
    return float(np.linalg.norm(np.array(J.xreplace(values).evalf(), dtype=float), 2))


def test_tanh_rnn_matches_the_chain_jacobian(rng):
    rec = sr.cells.rnn()
    h = rec.states[0]
    w, u, b = (sp.Symbol(n, real=True) for n in "wub")
    params, T = {"w": 1.3, "u": 0.8, "b": -0.2}, 7
    xs, h0 = rng.standard_normal(T), 0.4
    flow = gradient_flow(rec, params=params, inputs={"x": xs}, init={"h": h0})
    traj = sr.lambdify(rec).forward(params, {"x": xs}, {"h": h0})["h"]
    values = {w: 1.3, u: 0.8, b: -0.2, h(0): h0, **{h(k): traj[k - 1] for k in range(1, T + 1)}}
    U = sr.unfold(rec, T)
    expected = [chain_norm(U, h(T), h(T - d), values) for d in range(1, T + 1)]
    assert not flow.linear and flow.symbolic is None and flow.spectral_radius is None
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-12)


def test_elman3_matches_the_chain_jacobian(rng):
    rec = sr.cells.elman(3)
    hv, T = sr.vector("h", 3), 4
    W, U_, b = (
        0.9 * rng.standard_normal((3, 3)),
        rng.standard_normal((3, 1)),
        rng.standard_normal(3),
    )
    xs, h0 = rng.standard_normal((T, 1)), rng.standard_normal(3)
    params = {"W": W, "U": U_, "b": b}
    flow = gradient_flow(rec, params=params, inputs={"x": xs}, init={"h": h0})
    traj = sr.lambdify(rec).forward(params, {"x": xs}, {"h": h0})["h"]
    values = {
        e: v for e, v in zip(sr.matrices.explicit(sr.matrix("W", 3, 3)), W.reshape(-1), strict=True)
    }
    for k in range(T + 1):
        state = h0 if k == 0 else traj[k - 1]
        values.update(zip(hv(k).components(), state, strict=True))
    U = sr.unfold(rec, T)
    expected = [chain_norm(U, hv(T), hv(T - d), values) for d in range(1, T + 1)]
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-12)


def finite_difference_norms(stacked_at, rerun, T, eps=1e-6):
    """‖∂z(T)/∂z(T-d)‖₂ by central differences: perturb the state at T - d and run on."""
    norms = []
    for d in range(1, T + 1):
        z = stacked_at(T - d)
        cols = []
        for i in range(z.size):
            e = np.zeros_like(z)
            e[i] = eps
            cols.append((rerun(z + e, d) - rerun(z - e, d)) / (2 * eps))
        norms.append(np.linalg.norm(np.column_stack(cols), 2))
    return np.array(norms)


def first_order_fd(rec, params, xs, h0):
    F, T = sr.lambdify(rec), len(xs)
    traj = F.forward(params, {"x": xs}, {"h": h0})["h"]
    states = [np.atleast_1d(h0)] + [np.atleast_1d(v) for v in traj]  # times 0 .. T

    def rerun(z, d):
        init = z if np.ndim(h0) else z[0]
        return np.atleast_1d(F.forward(params, {"x": xs[T - d :]}, {"h": init})["h"][-1])

    return finite_difference_norms(lambda k: states[k], rerun, T)


GRU_PARAMS = {
    "u_z": 0.7,
    "w_z": -0.9,
    "b_z": 0.1,
    "b_hz": -0.2,
    "u_r": 0.4,
    "w_r": 1.1,
    "b_r": -0.3,
    "b_hr": 0.5,
    "u_g": 1.2,
    "w_g": 0.8,
    "b_g": 0.2,
    "b_hg": -0.1,
}


def test_gru_matches_finite_differences(rng):
    rec = sr.cells.gru()
    xs = rng.standard_normal(8)
    flow = gradient_flow(rec, params=GRU_PARAMS, inputs={"x": xs}, init={"h": 0.3})
    expected = first_order_fd(rec, GRU_PARAMS, xs, 0.3)
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-6)


def test_vector_gru_matches_finite_differences(rng):
    rec = sr.cells.gru(2)
    params = {
        **{f"U_{g}": rng.standard_normal((2, 1)) for g in "zrg"},
        **{f"W_{g}": rng.standard_normal((2, 2)) for g in "zrg"},
        **{f"b_{g}": rng.standard_normal(2) for g in ("z", "r", "g", "hz", "hr", "hg")},
    }
    xs, h0 = rng.standard_normal((6, 1)), np.array([0.2, -0.4])
    flow = gradient_flow(rec, params=params, inputs={"x": xs}, init={"h": h0})
    expected = first_order_fd(rec, params, xs, h0)
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-6)


def test_second_order_nonlinear_matches_finite_differences(rng):
    rec = sr.cells.second_order()
    params = {"a": 0.9, "c": -0.6, "u": 0.7}
    xs, h0 = rng.standard_normal(6), np.array([0.3, -0.2])  # h(0), h(-1)
    flow = gradient_flow(rec, params=params, inputs={"x": xs}, init={"h": h0})
    assert flow.transition.shape == (2, 2) and flow.transition[1, :].tolist() == [[1, 0]]
    F, T = sr.lambdify(rec), len(xs)
    seq = [h0[1], h0[0], *F.forward(params, {"x": xs}, {"h": h0})["h"]]  # times -1 .. T

    def rerun(z, d):  # z = (h(T-d), h(T-d-1)) -> (h(T), h(T-1))
        full = [z[1], z[0], *F.forward(params, {"x": xs[T - d :]}, {"h": z})["h"]]
        return np.array([full[-1], full[-2]])

    expected = finite_difference_norms(lambda k: np.array([seq[k + 1], seq[k]]), rerun, T)
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-6)


def test_second_order_top_left_block_is_the_chain_jacobian(rng):
    from symrnn.flow import _step_jacobian, _trajectory_jacobians

    rec = sr.cells.second_order()
    h = rec.states[0]
    params, T = {"a": 0.9, "c": -0.6, "u": 0.7}, 5
    xs, h0 = rng.standard_normal(T), np.array([0.3, -0.2])
    J, _ = _step_jacobian(rec, "test")
    Js = _trajectory_jacobians(rec, J, params, {"x": xs}, {"h": h0}, None, 0, "test")
    traj = sr.lambdify(rec).forward(params, {"x": xs}, {"h": h0})["h"]
    a, c, u = (sp.Symbol(n, real=True) for n in "acu")
    values = {a: 0.9, c: -0.6, u: 0.7, h(0): h0[0], h(-1): h0[1]}
    values.update({h(k): traj[k - 1] for k in range(1, T + 1)})
    U = sr.unfold(rec, T)
    P = np.eye(2)
    for d in range(1, T + 1):
        P = P @ Js[T - d]
        expected = float(sr.jacobian(U, h(T), h(T - d)).xreplace(values))
        assert P[0, 0] == pytest.approx(expected, rel=1e-12)


def test_saturated_tanh_vanishes():
    W = 4.0 * orthogonal(3)
    params = {"W": W, "U": 2.0 * np.ones((3, 1)), "b": np.full(3, 0.5)}
    flow = gradient_flow(sr.cells.elman(3), params=params)
    assert flow.verdict == "vanishing" and flow.rate < 0.5


@pytest.mark.parametrize(("radius", "verdict"), SPECTRAL_CASES)
def test_tanh_at_its_fixed_point_behaves_like_its_linearisation(radius, verdict):
    # Zero input, bias and initial state keep h at 0, where tanh' = 1: J = W at every step.
    W = radius * orthogonal(3, seed=4)
    params = {"W": W, "U": np.zeros((3, 1)), "b": np.zeros(3)}
    flow = gradient_flow(sr.cells.elman(3), params=params, inputs={"x": np.zeros((40, 1))})
    np.testing.assert_allclose(flow.norms, radius ** np.arange(1, 41), rtol=1e-10)
    assert flow.verdict == verdict


def test_small_weights_vanish():
    params = {"W": 0.3 * orthogonal(3), "U": np.ones((3, 1)), "b": np.zeros(3)}
    flow = gradient_flow(sr.cells.elman(3), params=params)
    assert flow.verdict == "vanishing" and flow.rate <= 0.3 + 1e-9


def test_input_dependent_coefficient_uses_the_trajectory():
    h, x = sr.notation.time_function("h"), sr.notation.time_function("x")
    rec = sr.Recurrence(sp.Eq(h(sr.t), x(sr.t) * h(sr.t - 1)), name="gated")
    xs = np.array([0.5, -2.0, 3.0, 0.25, 1.5])
    flow = gradient_flow(rec, inputs={"x": xs})
    expected = np.cumprod(np.abs(xs[::-1]))
    assert not flow.linear
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-12)


def test_time_varying_coefficient():
    h, x = sr.notation.time_function("h"), sr.notation.time_function("x")
    rec = sr.Recurrence(sp.Eq(h(sr.t), sp.Rational(1, 2) ** sr.t * h(sr.t - 1) + x(sr.t)))
    flow = gradient_flow(rec, steps=6)
    expected = [0.5 ** sum(range(7 - d, 7)) for d in range(1, 7)]  # Π_{k=T-d+1}^{T} 2^-k
    assert not flow.linear and "along a trajectory" in str(flow)
    np.testing.assert_allclose(flow.norms, expected, rtol=1e-12)


def test_random_inputs_follow_the_seed():
    params = {"w": 1.0, "u": 1.0, "b": 0.0}
    one = gradient_flow(sr.cells.rnn(), params=params, seed=3)
    same = gradient_flow(sr.cells.rnn(), params=params, seed=3)
    other = gradient_flow(sr.cells.rnn(), params=params, seed=4)
    np.testing.assert_array_equal(one.norms, same.norms)
    assert not np.allclose(one.norms, other.norms)
    assert one.steps == 50


def test_parameters_by_symbol_and_steps_from_inputs():
    rec = sr.cells.rnn()
    w, u, b = (sp.Symbol(n, real=True) for n in "wub")
    by_symbol = gradient_flow(rec, params={w: 0.9, u: 0.5, b: 0.1}, inputs={"x": np.ones(12)})
    by_name = gradient_flow(rec, params={"w": 0.9, "u": 0.5, "b": 0.1}, inputs={"x": np.ones(12)})
    np.testing.assert_array_equal(by_symbol.norms, by_name.norms)
    assert by_symbol.steps == 12 and by_symbol.lags[-1] == 12


# ------------------------------------------------------------------------------ the object
def test_result_is_immutable_data():
    flow = gradient_flow(sr.cells.linear(), params={"a": 0.5}, steps=5)
    assert isinstance(flow, GradientFlow)
    with pytest.raises(AttributeError):
        flow.verdict = "exploding"  # type: ignore[misc]
    with pytest.raises(ValueError):
        flow.norms[0] = 1.0  # type: ignore[index]


def test_str_repr_dict_and_latex():
    flow = gradient_flow(sr.cells.linear(), params={"a": 0.5}, steps=10)
    text = str(flow)
    assert "a**d" in text and "spectral radius: 0.5" in text and "vanishing" in text
    assert repr(flow) == "<GradientFlow linear: vanishing, rate 0.5, 10 steps>"
    data = json.loads(json.dumps(flow.to_dict()))
    assert data["verdict"] == "vanishing" and data["norms"][0] == 0.5 and data["symbolic"] == "a**d"
    assert data["spectral_radius"] == 0.5 and data["lags"] == list(range(1, 11))
    assert "a^{d}" in flow._repr_latex_() and "\\rho" in flow._repr_latex_()
    nonlinear = gradient_flow(sr.cells.rnn(), params={"w": 3.0, "u": 1.0, "b": 0.5}, steps=5)
    assert json.loads(json.dumps(nonlinear.to_dict()))["symbolic"] is None
    assert "\\prod" in nonlinear._repr_latex_()


# ------------------------------------------------------------------------------ errors
def test_nonlinear_needs_parameter_values():
    with pytest.raises(SymrnnError, match=r"missing b, u, w \(pass params="):
        gradient_flow(sr.cells.rnn())
    with pytest.raises(SymrnnError, match="missing b"):
        gradient_flow(sr.cells.rnn(), params={"w": 1.0, "u": 1.0})


def test_bad_arguments():
    rec = sr.cells.linear()
    with pytest.raises(SymrnnError, match="'v' is not a parameter"):
        gradient_flow(rec, params={"v": 1.0})
    with pytest.raises(SymrnnError, match="steps must be an integer >= 2"):
        gradient_flow(rec, params={"a": 0.5}, steps=1)
    with pytest.raises(LimitError, match="exceeds the limit"):
        gradient_flow(rec, params={"a": 0.5}, steps=MAX_FLOW_STEPS + 1)
    with pytest.raises(SymrnnError, match="norm must be"):
        gradient_flow(rec, params={"a": 0.5}, norm=3)
    with pytest.raises(SymrnnError, match="needs a Recurrence"):
        gradient_flow("h(t) = a*h(t-1)")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="expected \\(2, 2\\)"):
        gradient_flow(sr.cells.linear(2), params={"A": np.eye(3)})


def test_abstract_update_is_refused():
    with pytest.raises(SymrnnError, match="abstract update function"):
        gradient_flow(sr.cells.autonomous())


def test_batches_are_refused():
    with pytest.raises(ShapeError, match="one sequence"):
        gradient_flow(
            sr.cells.rnn(), params={"w": 1.0, "u": 1.0, "b": 0.0}, inputs={"x": np.ones((5, 2))}
        )


def test_divergent_trajectory_is_reported():
    h, hv = sr.notation.time_function("h"), sr.vector("h", 2)
    scalar = sr.Recurrence(sp.Eq(h(sr.t), h(sr.t - 1) ** 2 + 1), name="squares")
    vector = sr.Recurrence(
        sp.Eq(hv(sr.t), hv(sr.t - 1).applyfunc(lambda v: v**2) + sp.ones(2, 1)), name="squares"
    )
    for rec in (scalar, vector):  # Python-float and NumPy paths of the forward pass
        with pytest.raises(SymrnnError, match="trajectory diverged"):
            gradient_flow(rec, init={"h": 2.0}, steps=20)


# ------------------------------------------------------------------------------ plotting
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    flow = gradient_flow(sr.cells.linear(2), params={"A": 0.9 * rotation(0.3)})
    path = tmp_path / "flow.png"
    fig = flow.plot(path)
    width, height = png_size(path.read_bytes())
    assert width > 300 and height > 200
    assert "vanishing" in fig.axes[0].get_title()
    assert fig.axes[0].get_yscale() == "log"
    assert list(tmp_path.iterdir()) == [path]  # nothing left from the atomic write


def test_plot_several_flows(tmp_path):
    pytest.importorskip("matplotlib")
    flows = [gradient_flow(sr.cells.linear(), params={"a": a}) for a in (0.5, 1.0, 1.5)]
    flows.append(gradient_flow(sr.cells.linear(), params={"a": 0.0}))  # norms 0: not drawable
    fig = plot_gradient_flows(flows, tmp_path / "all.png", labels=["a", "b", "c", "d"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c", "d"]
    png_size((tmp_path / "all.png").read_bytes())
    with pytest.raises(SymrnnError, match="one per flow"):
        plot_gradient_flows(flows, labels=["a"])
    with pytest.raises(SymrnnError, match="at least one"):
        plot_gradient_flows([])


def test_without_matplotlib_the_data_still_works(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    flow = gradient_flow(sr.cells.linear(), params={"a": 0.5}, steps=5)
    assert flow.verdict == "vanishing"
    with pytest.raises(ToolMissing, match=r"pip install matplotlib.*symrnn\[plot\]"):
        flow.plot()
