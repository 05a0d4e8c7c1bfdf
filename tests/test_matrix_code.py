"""Matrix-level code (symrnn.matrix_code, symrnn.rules): whole vectors, any size.

Every result is checked by a second, independent route: the component-level code (one variable
per scalar, derived by symrnn's scalar differentiator), a hand-written NumPy BPTT, complex-step
and central differences, and the adjoint identity between the VJP and JVP rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.matrix_form import Diag, Nabla, matrix_bptt
from symrnn.rules import ELEMENTWISE, LINEAR

t = sr.t


def _vec(name, n):
    return sr.vector(name, n)(t)


def leaky(n, inputs):
    """A leaky unit mixing a scalar parameter with vectors: h = (1 - a) h + a tanh(W h + U x)."""
    h, x = sr.vector("h", n), sr.vector("x", inputs)
    W, U, a = sr.matrix("W", n, n), sr.matrix("U", n, inputs), sp.Symbol("a", real=True)
    return sr.Recurrence(
        sp.Eq(h(t), (1 - a) * h(t - 1) + a * sr.tanh(W * h(t - 1) + U * x(t))), name="leaky"
    )


def scalar_gate(n):
    """A per-sequence scalar times a vector: s = σ(vᵀ h(t-1)), h = s tanh(W h(t-1) + x)."""
    h, s = sr.vector("h", n), sp.Function("s", real=True)
    W, v = sr.matrix("W", n, n), sr.matrix("v", n)
    x = sr.vector("x", n)
    return sr.Recurrence(
        [
            sp.Eq(s(t), sr.sigmoid(sr.dot(v, h(t - 1)))),
            sp.Eq(h(t), s(t) * sr.tanh(W * h(t - 1) + x(t))),
        ],
        name="scalar_gate",
    )


CASES = {
    "elman_sq": (lambda: sr.cells.elman(3, inputs=2, outputs=3), "o", 3, "sq"),
    "elman_xent": (lambda: sr.cells.elman(3, inputs=2, outputs=3), "o", 3, "xent"),
    "jordan": (lambda: sr.cells.jordan(2, inputs=2, outputs=2), "o", 2, "sq"),
    "linear": (lambda: sr.cells.linear(3, inputs=2), "h", 3, "sq"),
    "gru": (lambda: sr.cells.gru(3, inputs=2), "h", 3, "sq"),
    "lstm": (lambda: sr.cells.lstm(2, inputs=3), "h", 2, "sq"),
    "leaky_scalar_rate": (lambda: leaky(3, 2), "h", 3, "sq"),
    "leaky": (lambda: sr.cells.leaky(3, inputs=2), "h", 3, "sq"),
    "output_recurrent": (lambda: sr.cells.output_recurrent(2, inputs=2, outputs=2), "o", 2, "sq"),
    "gru_cho": (lambda: sr.cells.gru(3, inputs=2, variant="cho"), "h", 3, "sq"),
    "lstm_peepholes": (lambda: sr.cells.lstm(2, inputs=2, peepholes=True), "h", 2, "sq"),
    "mgu": (lambda: sr.cells.mgu(3, inputs=2), "h", 3, "sq"),
    "elman_relu": (lambda: sr.cells.elman(3, inputs=2, nonlinearity="relu"), "h", 3, "sq"),
    "stacked": (
        lambda: sr.cells.stacked(sr.cells.gru(3, inputs=2), sr.cells.elman(2, inputs=3)),
        "h2",
        2,
        "sq",
    ),
}


def test_every_vector_cell_has_a_matrix_case():
    # Each cell of the library that takes a size is among the cases above (by its name).
    import inspect

    sized = {
        name
        for name in sr.cells.__all__
        if "n" in getattr(inspect.signature(getattr(sr.cells, name)), "parameters", {})
    }
    assert sized <= {make().name for make, *_ in CASES.values()}


def _loss(on, k, kind):
    loss = sr.squared_error if kind == "sq" else sr.softmax_cross_entropy
    return loss(_vec(on, k), _vec("y", k))


def _problem(F, rng, steps, batch, sizes=None):
    sizes = sizes or {}

    def shape(spec):
        return tuple(sizes.get(d, d) if isinstance(d, str) else d for d in spec)

    params = {
        name: rng.uniform(-0.7, 0.7, shape(s)) if s else float(rng.uniform(-0.7, 0.7))
        for name, s in F.param_shapes.items()
    }
    lead = (batch,) if batch else ()
    inputs = {
        name: rng.uniform(-1, 1, (steps + F.input_lag, *lead, *shape(s)))
        for name, s in F.input_shapes.items()
    }
    if "y" in inputs and batch is not None and sizes.get("softmax"):
        inputs["y"] = np.abs(inputs["y"])
    init = {
        name: rng.uniform(-1, 1, ((order,) if order > 1 else ()) + lead + shape(s))
        for name, (order, s) in F.state_shapes.items()
    }
    return params, inputs, init


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matrix_and_component_code_agree(case, batch):
    make, on, k, kind = CASES[case]
    rec = make()
    loss = _loss(on, k, kind)
    M = sr.lambdify(rec, loss=loss, level="matrix")
    C = sr.lambdify(rec, loss=loss, level="components")
    assert M.matrix_level and not C.matrix_level
    assert M.input_shapes == C.input_shapes and M.state_shapes == C.state_shapes
    params, inputs, init = _problem(M, np.random.default_rng(3), 5, batch)
    fm, fc = M.forward(params, inputs, init), C.forward(params, inputs, init)
    assert set(fm) == set(fc)
    for name in fm:
        np.testing.assert_allclose(fm[name], fc[name], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(
        M.loss(params, inputs, init), C.loss(params, inputs, init), rtol=1e-12
    )
    vm, gm = M.value_and_grad(params, inputs, init, init_grad=True)
    vc, gc = C.value_and_grad(params, inputs, init, init_grad=True)
    assert vm == pytest.approx(vc, rel=1e-12)
    for name in params:
        np.testing.assert_allclose(gm[name], gc[name], rtol=1e-10, atol=1e-12)
        assert np.shape(gm[name]) == np.shape(params[name])
    for name in gc["init"]:
        np.testing.assert_allclose(gm["init"][name], gc["init"][name], rtol=1e-10, atol=1e-12)


def test_a_per_sequence_scalar_times_a_vector():
    rec = scalar_gate(3)
    loss = sr.squared_error(_vec("h", 3), _vec("y", 3))
    M = sr.lambdify(rec, loss=loss, level="matrix")
    C = sr.lambdify(rec, loss=loss, level="components")
    params, inputs, init = _problem(M, np.random.default_rng(1), 4, 5)
    vm, gm = M.value_and_grad(params, inputs, init)
    vc, gc = C.value_and_grad(params, inputs, init)
    assert vm == pytest.approx(vc, rel=1e-12)
    for name in gc:
        np.testing.assert_allclose(gm[name], gc[name], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ an oracle written by hand
def hand_elman(W, U, b, xs, ys):
    """Forward and BPTT of h = tanh(b + W h + U x), L = Σ_t ½‖h − y‖², batch on axis 1."""
    T, B, _ = xs.shape
    hs = [np.zeros((B, W.shape[0]))]
    for k in range(T):
        hs.append(np.tanh(xs[k] @ U.T + hs[-1] @ W.T + b))
    loss, gW, gU, gb = 0.0, np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    carry = np.zeros_like(hs[0])
    for k in range(T, 0, -1):
        d = hs[k] - ys[k - 1]
        loss += 0.5 * np.sum(d * d)
        delta = (carry + d) * (1 - hs[k] ** 2)
        gW += delta.T @ hs[k - 1]
        gU += delta.T @ xs[k - 1]
        gb += delta.sum(0)
        carry = delta @ W
    return loss, {"W": gW, "U": gU, "b": gb}, np.stack(hs[1:])


def test_code_for_a_symbolic_size_runs_at_every_size():
    n, m = sr.size("n"), sr.size("m")
    rec = sr.cells.elman(n, inputs=m)
    F = sr.lambdify(rec, loss=sr.squared_error(_vec("h", n), _vec("y", n)))
    assert F.param_shapes == {"U": ("n", "m"), "W": ("n", "n"), "b": ("n",)}
    rng = np.random.default_rng(5)
    for size, inputs in [(1, 1), (2, 3), (7, 2), (64, 32)]:
        W = rng.normal(size=(size, size)) / np.sqrt(size)
        U, b = rng.normal(size=(size, inputs)), rng.normal(size=size) * 0.1
        xs, ys = rng.normal(size=(6, 4, inputs)), rng.normal(size=(6, 4, size))
        value, grads = F.value_and_grad({"W": W, "U": U, "b": b}, {"x": xs, "y": ys})
        want, want_grads, hs = hand_elman(W, U, b, xs, ys)
        assert value == pytest.approx(want, rel=1e-12)
        for name in want_grads:
            np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(F.forward({"W": W, "U": U, "b": b}, {"x": xs})["h"], hs)


def test_symbolic_size_code_agrees_with_components_at_an_explicit_size():
    n, m = sr.size("n"), sr.size("m")
    rec = sr.cells.lstm(n, inputs=m)
    loss = sr.squared_error(_vec("h", n), _vec("y", n))
    F = sr.lambdify(rec, loss=loss)
    small = rec.at_sizes(n=2, m=3)
    C = sr.lambdify(small, loss=sr.squared_error(_vec("h", 2), _vec("y", 2)), level="components")
    params, inputs, init = _problem(C, np.random.default_rng(2), 4, 3)
    v1, g1 = F.value_and_grad(params, inputs, init)
    v2, g2 = C.value_and_grad(params, inputs, init)
    assert v1 == pytest.approx(v2, rel=1e-12)
    for name in g2:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-10, atol=1e-12)


def test_mismatched_sizes_are_one_line_shape_errors():
    n = sr.size("n")
    F = sr.lambdify(sr.cells.elman(n, inputs=n))
    W, U, b = np.zeros((3, 3)), np.zeros((3, 4)), np.zeros(3)
    with pytest.raises(sr.ShapeError, match=r"parameter 'U' has shape \(3, 4\), expected \(3, 3\)"):
        F.forward({"W": W, "U": U, "b": b}, {"x": np.zeros((5, 3))})
    with pytest.raises(sr.ShapeError, match=r"input 'x' has shape \(2,\), expected \(3,\)"):
        F.forward({"W": W, "U": W, "b": b}, {"x": np.zeros((5, 2))})


def _directional_check(make, loss, n, m, rng, steps=6, batch=3):
    F = sr.lambdify(make(n, inputs=m), loss=loss, level="matrix")
    Fc = sr.lambdify(make(n, inputs=m), loss=loss, level="matrix", dtype="complex128")
    params, inputs, init = _problem(F, rng, steps, batch)
    _, grads = F.value_and_grad(params, inputs, init)
    for _ in range(2):
        d = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
        exact = sum(float(np.vdot(grads[k], d[k])) for k in params)
        # complex step: Im L(θ + i h d) / h, exact to rounding
        h = 1e-30
        shifted = {k: params[k] + 1j * h * d[k] for k in params}
        cs = float(np.sum(Fc.loss(shifted, inputs, init)).imag / h)
        assert cs == pytest.approx(exact, rel=1e-10, abs=1e-12)
        # central differences
        eps = 1e-6
        plus = {k: params[k] + eps * d[k] for k in params}
        minus = {k: params[k] - eps * d[k] for k in params}
        fd = float(np.sum(F.loss(plus, inputs, init)) - np.sum(F.loss(minus, inputs, init)))
        assert fd / (2 * eps) == pytest.approx(exact, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_at_64_units_against_complex_step_and_central_differences(cell):
    n, m = 64, 16
    loss = sr.squared_error(_vec("h", n), _vec("y", n))
    _directional_check(getattr(sr.cells, cell), loss, n, m, np.random.default_rng(11))


def test_code_size_does_not_grow_with_the_hidden_size():
    def source(n):
        rec = sr.cells.lstm(n, inputs=n // 2)
        F = sr.lambdify(rec, loss=sr.squared_error(_vec("h", n), _vec("y", n)), level="matrix")
        start = F.source.index("def step(")
        return F.source[start : F.source.index("# ----", start)]

    assert source(4) == source(256)
    assert source(256).count("\n") < 120


# --------------------------------------------------------------------------- the rule table
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_derivatives_match_central_differences(name):
    rule = ELEMENTWISE[name]
    a = np.linspace(0.2, 1.7, 7)
    env = {"numpy": np}

    def f(v):
        return eval(rule.forward("v"), env, {"v": v})  # noqa: S307 (symrnn's own table)

    y = f(a)
    d = eval(rule.derivative("a", "y"), env, {"a": a, "y": y})  # noqa: S307
    eps = 1e-6
    np.testing.assert_allclose(d, (f(a + eps) - f(a - eps)) / (2 * eps), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_vjp_and_jvp_rules_are_adjoint(name):
    # ⟨ḡ, J d⟩ = ⟨Jᵀ ḡ, d⟩ for each argument: the reverse and forward rules describe one map.
    rng = np.random.default_rng(0)
    env = {
        "numpy": np,
        "dot": lambda a, b: np.einsum("...i,...i->...", a, b),
        "outer": lambda g, a: np.einsum("bi,bj->ij", g, a),
    }
    B, n, m = 4, 3, 5
    shapes = {
        "matvec": [(n, m), (B, m)],
        "rmatvec": [(m, n), (B, m)],
        "dot": [(B, n), (B, n)],
        "mul": [(B, n), (B, n)],
    }[name]
    args = [rng.normal(size=s) for s in shapes]
    rule = LINEAR[name]
    names = {f"a{i}": v for i, v in enumerate(args)}
    value = eval(rule.forward(*names), env, names)  # noqa: S307 (symrnn's own table)
    g = rng.normal(size=np.shape(value))
    for i in range(len(args)):
        d = rng.normal(size=shapes[i])
        scope = {**names, "g": g[..., None] if name == "dot" else g, "d": d}
        jvp = eval(rule.jvp[i]("d", *names), env, scope)  # noqa: S307
        vjp = eval(rule.vjp[i]("g", *names), env, scope)  # noqa: S307
        assert np.vdot(g, jvp) == pytest.approx(np.vdot(vjp, d), rel=1e-12)


# ------------------------------------------------------------------- symbolic BPTT equations
def test_symbolic_size_bptt_equations_are_the_books():
    n, m, k = sr.size("n"), sr.size("m"), sr.size("k")
    M = matrix_bptt(sr.cells.elman(n, inputs=m, outputs=k))
    h, o, x = sr.vector("h", n), sr.vector("o", k), sr.vector("x", m)
    W, U, V = sr.matrix("W", n, n), sr.matrix("U", n, m), sr.matrix("V", k, n)
    b, c = sr.matrix("b", n), sr.matrix("c", k)
    s = sp.Symbol("s")
    tau = sp.Symbol("tau", integer=True, positive=True)

    def diag(time):
        return Diag(sp.Lambda(s, 1 - s**2), h(time))

    def canonical(e):  # Diag's bound variable is a Dummy: name it s on both sides
        return e.replace(
            lambda a: isinstance(a, Diag), lambda a: Diag(sp.Lambda(s, a.function(s)), a.vector)
        )

    eqs = {str(eq.lhs): canonical(eq.rhs) for eq in M.adjoints + M.gradients}
    # eq. 10.21: ∇_h(t) L = Wᵀ diag(1 − (h^(t+1))²) ∇_h(t+1) L + Vᵀ ∇_o(t) L
    want_h = W.T * diag(t + 1) * Nabla(h(t + 1)) + V.T * Nabla(o(t))
    # (compared by structure: SymPy's == on Lambda inside a matrix expression is unreliable)
    assert sp.srepr(eqs[str(Nabla(h(t)))]) == sp.srepr(want_h)
    # eq. 10.22–10.28: parameter gradients as sums over t of outer products
    want = {
        Nabla(c): sp.Sum(Nabla(o(t)), (t, 1, tau)),
        Nabla(b): sp.Sum(diag(t) * Nabla(h(t)), (t, 1, tau)),
        Nabla(V): sp.Sum(Nabla(o(t)) * h(t).T, (t, 1, tau)),
        Nabla(W): sp.Sum(diag(t) * Nabla(h(t)) * h(t - 1).T, (t, 1, tau)),
        Nabla(U): sp.Sum(diag(t) * Nabla(h(t)) * x(t).T, (t, 1, tau)),
    }
    for lhs, rhs in want.items():
        assert sp.srepr(eqs[str(lhs)]) == sp.srepr(rhs)


def test_unfolding_a_symbolic_size_keeps_one_equation_per_vector():
    n = sr.size("n")
    U = sr.unfold(sr.cells.elman(n, inputs=n), 3)
    assert len(U.blocks) == 3
    assert str(U).splitlines()[0] == "h(1) = tanh(b + W*h(0) + U*x(1))"
    with pytest.raises(sr.ShapeError, match="symbolic size"):
        U.equations  # noqa: B018 (the component view needs explicit sizes)


def test_verify_compares_matrix_and_component_code(monkeypatch):
    rec = sr.cells.elman(2, inputs=2, outputs=2)
    loss = sr.squared_error(_vec("o", 2), _vec("y", 2))

    def row():
        report = sr.verify(rec, steps=3, loss=loss, checks=["codegen"])
        (found,) = [r for r in report.rows if r.compared == "matrix code vs component code"]
        return found

    assert row().status == "pass"
    # A wrong rule (tanh' = 1 - y instead of 1 - y²) is caught by the comparison.
    import symrnn.rules as rules

    wrong = rules.Elementwise(rules.ELEMENTWISE["tanh"].forward, lambda a, y: f"(1.0 - {y})")
    monkeypatch.setitem(rules.ELEMENTWISE, "tanh", wrong)
    assert row().status == "fail"


# ------------------------------------------------------------ random vector recurrences
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_N = 2


def _leaves():
    h, x = sr.vector("h", _N), sr.vector("x", _N)
    W, U, V = (sr.matrix(name, _N, _N) for name in "WUV")
    b, a = sr.matrix("b", _N), sp.Symbol("a", real=True)
    return [
        W * h(t - 1),
        U * x(t),
        V.T * h(t - 1),
        b,
        h(t - 1),
        x(t),
        a * h(t - 1),
        sp.OneMatrix(_N, 1),
    ]


@st.composite
def vector_expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(_leaves()))
    op = draw(st.sampled_from(["add", "sub", "hadamard", "tanh", "sigmoid", "matvec"]))
    a = draw(vector_expressions(depth=depth - 1))
    if op in ("tanh", "sigmoid"):
        return getattr(sr, op)(a)
    if op == "matvec":
        return sr.matrix("W", _N, _N) * a
    b = draw(vector_expressions(depth=depth - 1))
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    return sp.HadamardProduct(a, b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vector_expressions(), st.integers(0, 2**16))
def test_random_vector_recurrences_matrix_vs_components(rhs, seed):
    h = sr.vector("h", _N)
    update = sr.tanh(rhs + sr.matrix("W", _N, _N) * h(t - 1))
    try:
        rec = sr.Recurrence(sp.Eq(h(t), update))
    except sr.RecurrenceError:
        assume(False)  # the terms cancelled (W h - W h): no state left
    loss = sr.squared_error(h(t), _vec("y", _N))
    M = sr.lambdify(rec, loss=loss, level="matrix")
    C = sr.lambdify(rec, loss=loss, level="components")
    params, inputs, init = _problem(M, np.random.default_rng(seed), 3, 2)
    # A term that vanishes in components (tanh(0) ⊙ Vᵀh) leaves V a parameter of the matrix
    # code only, where its gradient must be zero.
    only_matrix = set(M.param_shapes) - set(C.param_shapes)
    assert set(C.param_shapes) <= set(M.param_shapes)
    vm, gm = M.value_and_grad(params, inputs, init, init_grad=True)
    common = {k: v for k, v in params.items() if k not in only_matrix}
    vc, gc = C.value_and_grad(common, inputs, init, init_grad=True)
    assert vm == pytest.approx(vc, rel=1e-10, abs=1e-12)
    for name in common:
        np.testing.assert_allclose(gm[name], gc[name], rtol=1e-9, atol=1e-11)
    for name in only_matrix:
        np.testing.assert_array_equal(gm[name], 0.0)
    np.testing.assert_allclose(gm["init"]["h"], gc["init"]["h"], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    "make", [lambda: sr.cells.elman(2, inputs=3), lambda: sr.cells.gru(2, inputs=2)]
)
def test_matrix_jacobians_equal_the_component_derivatives(make):
    from symrnn.matrix_form import components, matrix_jacobians

    rec = make()
    rng = np.random.default_rng(4)
    update = {eq.lhs: eq.rhs for eq in rec.equations}
    jacobians = matrix_jacobians(rec)
    assert jacobians
    for (q, v), J in jacobians.items():
        rows, cols = q.components(), v.components()
        want = sp.Matrix([[sp.diff(update[r], c) for c in cols] for r in rows])
        got = components(J)
        for _ in update:  # quantities at t written through their updates, on both sides
            got, want = got.xreplace(update), want.xreplace(update)
        leaves = (got.free_symbols | want.free_symbols) - {t}
        atoms = {a for a in (*got.atoms(sp.Function), *want.atoms(sp.Function)) if a.args == (t,)}
        atoms |= {a for e in (got, want) for a in e.atoms(sp.core.function.AppliedUndef)}
        point = {s: rng.uniform(-0.8, 0.8) for s in (*leaves, *atoms)}
        np.testing.assert_allclose(
            np.array(got.xreplace(point), dtype=float),
            np.array(want.xreplace(point), dtype=float),
            rtol=1e-12,
        )


def test_verify_checks_a_large_cell_at_matrix_level(monkeypatch):
    n = 16
    rec = sr.cells.gru(n, inputs=n)
    loss = sr.squared_error(_vec("h", n), _vec("y", n))
    report = sr.verify(rec, steps=4, loss=loss)
    assert report.ok
    passed = {row.compared for row in report.rows if row.status == "pass"}
    assert "matrix code forward vs NumPy evaluation of the equations" in passed
    assert any(c.startswith("matrix code vs complex step") for c in passed)
    assert "matrix code, batch of 3 vs one at a time" in passed
    # A wrong derivative rule makes the complex-step row fail.
    import symrnn.rules as rules

    wrong = rules.Elementwise(rules.ELEMENTWISE["sigmoid"].forward, lambda a, y: y)
    monkeypatch.setitem(rules.ELEMENTWISE, "sigmoid", wrong)
    bad = sr.verify(rec, steps=4, loss=loss)
    assert not bad.ok
    assert [r.status for r in bad.rows if r.compared.startswith("matrix code vs complex")] == [
        "fail"
    ]


def test_verify_at_a_symbolic_size_checks_size_three():
    n = sr.size("n")
    report = sr.verify(sr.cells.elman(n, inputs=n), steps=2)
    explicit = sr.verify(sr.cells.elman(3, inputs=3), steps=2)
    assert report.ok
    assert [r.compared for r in report.rows] == [r.compared for r in explicit.rows]


def test_matrix_level_verify_draws_ranges_by_entry(monkeypatch):
    # A weights file gives every entry its value as a range (v, v): the large-cell path must use
    # exactly those values, as the component path does.
    n = 12
    rec = sr.cells.elman(n, inputs=n)
    from symrnn.verify import MAX_COMPONENT_PARAMETERS

    assert MAX_COMPONENT_PARAMETERS < 2 * n * n + n  # so the matrix-level path runs
    rng = np.random.default_rng(0)
    W = rng.normal(size=(n, n)) * 0.1
    ranges = {f"W_{i + 1}_{j + 1}": (W[i, j], W[i, j]) for i in range(n) for j in range(n)}
    seen = []
    real = sr.Compiled.value_and_grad

    def spy(self, params, *args, **kwargs):
        seen.append(np.array(params["W"], dtype=float))
        return real(self, params, *args, **kwargs)

    monkeypatch.setattr(sr.Compiled, "value_and_grad", spy)
    report = sr.verify(rec, steps=3, ranges=ranges, checks=["gradient"])
    assert report.ok and seen
    for drawn in seen:
        np.testing.assert_array_equal(drawn.real, W)


# ------------------------------------------------------------ values computed before the loop
def _step_by_step(monkeypatch, rec, loss):
    """The same recurrence compiled with every value computed step by step (no precompute)."""
    from functools import partial

    from symrnn import matrix_code, numeric

    with monkeypatch.context() as m:
        m.setattr(
            numeric,
            "generate_matrix_source",
            partial(matrix_code.generate_matrix_source, _hoist=False),
        )
        return sr.lambdify(rec, loss=loss, level="matrix")


def timed_input(n, inputs):
    """h = tanh(W h(t-1) + U x(t) + t b): the step counter itself stays in the loop."""
    h, x = sr.vector("h", n), sr.vector("x", inputs)
    W, U, b = sr.matrix("W", n, n), sr.matrix("U", n, inputs), sr.matrix("b", n)
    return sr.Recurrence(sp.Eq(h(t), sr.tanh(W * h(t - 1) + U * x(t) + t * b)), name="timed")


def second_order(n, inputs):
    """h = tanh(W h(t-1) + V h(t-2) + U x(t)): two lags of the state."""
    h, x = sr.vector("h", n), sr.vector("x", inputs)
    W, V, U = sr.matrix("W", n, n), sr.matrix("V", n, n), sr.matrix("U", n, inputs)
    return sr.Recurrence(sp.Eq(h(t), sr.tanh(W * h(t - 1) + V * h(t - 2) + U * x(t))))


def shared_term(n, inputs):
    """h = tanh(W h(t-1) + U x(t) + tanh(b)): a term of parameters only next to U x(t)."""
    h, x = sr.vector("h", n), sr.vector("x", inputs)
    W, U, b = sr.matrix("W", n, n), sr.matrix("U", n, inputs), sr.matrix("b", n)
    return sr.Recurrence(sp.Eq(h(t), sr.tanh(W * h(t - 1) + U * x(t) + sr.tanh(b))))


HOIST_CASES = {
    **CASES,
    "shared_term": (lambda: shared_term(3, 2), "h", 3, "sq"),
    "timed_input": (lambda: timed_input(3, 2), "h", 3, "sq"),
    "second_order": (lambda: second_order(3, 2), "h", 3, "sq"),
    "scalar_gate": (lambda: scalar_gate(3), "h", 3, "sq"),
}


def _assert_same_results(A, B, params, inputs, init):
    fa, fb = A.forward(params, inputs, init), B.forward(params, inputs, init)
    assert set(fa) == set(fb)
    for name in fa:
        np.testing.assert_allclose(fa[name], fb[name], rtol=1e-13, atol=1e-14)
    la, lb = A.loss(params, inputs, init), B.loss(params, inputs, init)
    assert np.shape(la) == np.shape(lb)
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    va, ga = A.value_and_grad(params, inputs, init, init_grad=True)
    vb, gb = B.value_and_grad(params, inputs, init, init_grad=True)
    assert va == pytest.approx(vb, rel=1e-12)
    assert set(ga) == set(gb)
    for name in params:
        assert np.shape(ga[name]) == np.shape(params[name])
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-10, atol=1e-12)
    for name in gb["init"]:
        assert np.shape(ga["init"][name]) == np.shape(gb["init"][name])
        np.testing.assert_allclose(ga["init"][name], gb["init"][name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(HOIST_CASES))
def test_precomputed_code_equals_step_by_step_code(monkeypatch, case):
    make, on, k, kind = HOIST_CASES[case]
    rec = make()
    loss = _loss(on, k, kind)
    M = sr.lambdify(rec, loss=loss, level="matrix")
    S = _step_by_step(monkeypatch, rec, loss)
    assert "precompute = None" in S.source and "adjoint_precompute = None" in S.source
    rng = np.random.default_rng(5)
    for batch in (None, 1, 3):
        for steps in (1, 2, 5):
            params, inputs, init = _problem(M, rng, steps, batch, {"softmax": kind == "xent"})
            _assert_same_results(M, S, params, inputs, init)


@pytest.mark.parametrize("length", [1, 2, 3])
@pytest.mark.parametrize("case", ["gru", "second_order", "elman_xent", "timed_input"])
def test_stretches_of_steps_give_the_same_results(monkeypatch, case, length):
    # Batches above SMALL_BATCH run the precomputed values over stretches of steps: here of
    # `length` steps (the last one shorter) over 7 steps of 12 sequences.
    make, on, k, kind = HOIST_CASES[case]
    rec = make()
    loss = _loss(on, k, kind)
    M = sr.lambdify(rec, loss=loss, level="matrix")
    S = _step_by_step(monkeypatch, rec, loss)
    module = M._module
    width = sum(int(np.prod(s)) for _, s in module.QUANTITIES + module.INPUTS)
    monkeypatch.setattr(module, "STRETCH", length * 12 * width)
    params, inputs, init = _problem(M, np.random.default_rng(6), 7, 12, {"softmax": True})
    stretches = module._prepare(params, inputs, init, None, np.dtype("float64"))[-1]
    assert len(stretches) == -(-7 // length) and stretches[-1][1] == 7
    _assert_same_results(M, S, params, inputs, init)


@pytest.mark.parametrize(
    "case",
    [
        "elman_sq",
        "elman_xent",
        "gru",
        "lstm",
        "mgu",
        "timed_input",
        "second_order",
        "scalar_gate",
        "shared_term",
    ],
)
def test_precomputed_code_against_complex_step(case):
    # An independent route: Im L(θ + i ε d) / ε, parameters and initial states moved together.
    make, on, k, kind = HOIST_CASES[case]
    rec = make()
    loss = _loss(on, k, kind)
    F = sr.lambdify(rec, loss=loss, level="matrix")
    Fc = sr.lambdify(rec, loss=loss, level="matrix", dtype="complex128")
    assert "def adjoint_precompute(" in F.source
    rng = np.random.default_rng(7)
    for batch in (None, 1, 3):
        for steps in (1, 2, 5):
            params, inputs, init = _problem(F, rng, steps, batch, {"softmax": kind == "xent"})
            _, grads = F.value_and_grad(params, inputs, init, init_grad=True)
            dp = {name: rng.normal(size=np.shape(v)) for name, v in params.items()}
            di = {name: rng.normal(size=np.shape(v)) for name, v in init.items()}
            exact = sum(float(np.vdot(grads[name], dp[name])) for name in params)
            exact += sum(float(np.vdot(grads["init"][name], di[name])) for name in init)
            eps = 1e-30
            shifted = {name: params[name] + 1j * eps * dp[name] for name in params}
            moved = {name: init[name] + 1j * eps * di[name] for name in init}
            step = float(np.sum(Fc.loss(shifted, inputs, moved)).imag / eps)
            assert step == pytest.approx(exact, rel=1e-10, abs=1e-12)


def test_input_projection_and_error_terms_are_computed_outside_the_loop():
    n = 4
    rec = sr.cells.elman(n, inputs=3)
    F = sr.lambdify(rec, loss=sr.squared_error(_vec("h", n), _vec("y", n)), level="matrix")
    source = F.source

    def function(name):
        start = source.index(f"def {name}(")
        return source[start : source.index("\n\n", start)]

    # U x(t) + b is precomputed; the step multiplies by W only.
    assert "@ U.T + b" in function("precompute")
    assert "U.T" not in function("step") and "@ W.T" in function("step")
    # The error h - y and the derivative 1 - h² come from adjoint_precompute; the backward step
    # only adds the carried adjoint and multiplies by W.
    assert "h__t - y__t" in function("adjoint_precompute")
    assert "(1.0 - h__t*h__t)" in function("adjoint_precompute")
    backward = function("adjoint_step")
    assert "y__t" not in backward and "h__t*h__t" not in backward and "@ W" in backward
    # And they run once for all steps of a short sequence, the step functions once per step.
    module = F._module
    calls = {"precompute": 0, "step": 0, "adjoint_precompute": 0, "adjoint_step": 0}

    def counted(name):
        inner = getattr(module, name)

        def wrapper(*args):
            calls[name] += 1
            return inner(*args)

        return wrapper

    mp = pytest.MonkeyPatch()
    try:
        for name in calls:
            mp.setattr(module, name, counted(name))
        params, inputs, init = _problem(F, np.random.default_rng(8), 9, None)
        F.value_and_grad(params, inputs, init)
    finally:
        mp.undo()
    assert calls == {"precompute": 1, "step": 9, "adjoint_precompute": 1, "adjoint_step": 9}


def test_a_loss_that_reads_t_is_summed_step_by_step():
    n = 3
    rec = sr.cells.elman(n, inputs=2)
    loss = t * sr.squared_error(_vec("h", n), _vec("y", n))
    F = sr.lambdify(rec, loss=loss, level="matrix")
    assert "def precompute(" in F.source and "adjoint_precompute = None" in F.source
    C = sr.lambdify(rec, loss=loss, level="components")
    params, inputs, init = _problem(F, np.random.default_rng(9), 4, 2)
    vm, gm = F.value_and_grad(params, inputs, init, init_grad=True)
    vc, gc = C.value_and_grad(params, inputs, init, init_grad=True)
    assert vm == pytest.approx(vc, rel=1e-12)
    np.testing.assert_allclose(F.loss(params, inputs, init), C.loss(params, inputs, init))
    for name in params:
        np.testing.assert_allclose(gm[name], gc[name], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gm["init"]["h"], gc["init"]["h"], rtol=1e-10, atol=1e-12)
