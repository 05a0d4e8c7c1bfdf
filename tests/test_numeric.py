"""Numeric code: scan and unrolled modes, batches, dtypes, errors, and standalone modules.

Every generated function is checked against routes that do not use symrnn's generator: a plain
Python loop over ``sympy.lambdify`` of each update, the symbolic gradient from ``sr.grad``, and
central finite differences of the loss.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.matrices import explicit

t = sr.t
Y = sp.Function("y", real=True)


def squared_error(rec):
    """Per-step loss: Σ over state components of (s(t) - y(t))² / 2 with one shared target."""
    return sp.Add(*[(s(t) - Y(t)) ** 2 / 2 for s in rec.states])


def softmax_loss(n_out):
    o, y = sr.vector("o", n_out), sr.vector("y", n_out)
    return sr.softmax_cross_entropy(o(t), y(t))


CASES = {
    "rnn": (sr.cells.rnn, squared_error),
    "coupled": (sr.cells.coupled, squared_error),
    "second_order": (sr.cells.second_order, squared_error),
    "gru": (sr.cells.gru, squared_error),
    "lstm": (sr.cells.lstm, squared_error),
    "jordan": (sr.cells.jordan, squared_error),
    "elman3": (lambda: sr.cells.elman(3, inputs=2, outputs=3), lambda rec: softmax_loss(3)),
    "gru2": (lambda: sr.cells.gru(2), squared_error),
    "lstm2": (lambda: sr.cells.lstm(2), squared_error),
    "linear2": (lambda: sr.cells.linear(2), squared_error),
}


def random_problem(F, rng, steps, batch):
    """Parameters, inputs and initial states for a compiled model, all random."""
    params = {
        name: rng.uniform(-0.8, 0.8, shape) if shape else float(rng.uniform(-0.8, 0.8))
        for name, shape in F.param_shapes.items()
    }
    lead = (batch,) if batch else ()
    inputs = {
        name: rng.uniform(-1, 1, (steps + F.input_lag, *lead, *shape))
        for name, shape in F.input_shapes.items()
    }
    init = {}
    for name, (order, shape) in F.state_shapes.items():
        init[name] = rng.uniform(-1, 1, ((order,) if order > 1 else ()) + lead + shape)
    return params, inputs, init


def _components(name, shape):
    """Component function names of a group: ``h_1 … h_n`` for a vector, ``h`` for a scalar."""
    return ([f"{name}_{i + 1}" for i in range(shape[0])], True) if shape else ([name], False)


def component_values(F, params, inputs, init, batch_index=None):
    """Leaf values keyed by SymPy objects (symbols and time atoms) for one sequence."""
    rec = F.recurrence
    values = {}
    for name, group in rec.param_groups.items():
        arr = np.asarray(params[name], dtype=float).reshape(-1)
        entries = list(group) if isinstance(group, sp.MatrixBase) else [group]
        values.update(zip(entries, arr, strict=False))

    def pick(arr):
        return arr if batch_index is None else arr[batch_index]

    for name, shape in F.input_shapes.items():
        comps, vec = _components(name, shape)
        arr = np.asarray(inputs[name])
        for k in range(arr.shape[0]):
            row = pick(arr[k])
            for i, c in enumerate(comps):
                time = k + 1 - F.input_lag
                values[sp.Function(c, real=True)(time)] = float(row[i] if vec else row)
    for name, (order, shape) in F.state_shapes.items():
        comps, vec = _components(name, shape)
        arr = np.asarray(init[name])
        for j in range(order):
            part = pick(arr[j] if order > 1 else arr)
            for i, c in enumerate(comps):
                values[sp.Function(c, real=True)(-j)] = float(part[i] if vec else part)
    return values


def reference_loop(rec, values, steps):
    """Iterate the recurrence with one ``sympy.lambdify`` per update (independent of symrnn)."""
    values = dict(values)
    for k in range(1, steps + 1):
        for eq in rec.equations:
            rhs = eq.rhs
            atoms = sorted(rhs.atoms(sp.core.function.AppliedUndef), key=sp.default_sort_key)
            symbols = sorted(rhs.free_symbols - {t}, key=sp.default_sort_key)
            fn = sp.lambdify([*atoms, *symbols], rhs, modules="numpy")
            args = [values[a.func(a.args[0].subs(t, k))] for a in atoms]
            args += [values[s] for s in symbols]
            values[eq.lhs.func(k)] = float(fn(*args))
    return values


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_unrolled_and_reference_loop_agree(case, batch):
    make, loss_of = CASES[case]
    rec = make()
    loss = loss_of(rec)
    steps = 4
    scan = sr.lambdify(rec, loss=loss)
    unrolled = sr.lambdify(rec, loss=loss, mode="unrolled", steps=steps)
    rng = np.random.default_rng(7)
    params, inputs, init = random_problem(scan, rng, steps, batch)

    fs = scan.forward(params, inputs, init)
    fu = unrolled.forward(params, inputs, init)
    for name in fs:
        np.testing.assert_allclose(fs[name], fu[name], rtol=1e-12, atol=1e-14)

    # Step-by-step iteration through plain sympy.lambdify, sequence by sequence.
    for b in [None] if batch is None else range(batch):
        ref = reference_loop(rec, component_values(scan, params, inputs, init, b), steps)
        for name, shape in scan.output_shapes.items():
            comps, vec = _components(name, shape)
            got = fs[name] if b is None else fs[name][:, b]
            for i, c in enumerate(comps):
                want = [ref[sp.Function(c, real=True)(k)] for k in range(1, steps + 1)]
                column = got[:, i] if vec else got
                np.testing.assert_allclose(column, want, rtol=1e-12, atol=1e-14)

    vs, gs = scan.value_and_grad(params, inputs, init, init_grad=True)
    vu, gu = unrolled.value_and_grad(params, inputs, init, init_grad=True)
    np.testing.assert_allclose(vs, vu, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(gs[name], gu[name], rtol=1e-11, atol=1e-13)
        assert np.shape(gs[name]) == np.shape(params[name])
    for name in gs["init"]:
        np.testing.assert_allclose(gs["init"][name], gu["init"][name], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("case", ["rnn", "gru", "elman3", "second_order"])
def test_gradient_matches_symbolic_grad_and_finite_differences(case):
    make, loss_of = CASES[case]
    rec = make()
    loss = loss_of(rec)
    steps = 3
    F = sr.lambdify(rec, loss=loss)
    rng = np.random.default_rng(3)
    params, inputs, init = random_problem(F, rng, steps, None)
    value, g = F.value_and_grad(params, inputs, init)

    # Route 2: the symbolic gradient, evaluated at the same point.
    U = sr.unfold(rec, steps)
    L = sr.total_loss(U, loss)
    sym = sr.grad(U, L)
    values = {k: sp.Float(v) for k, v in component_values(F, params, inputs, init).items()}
    for eq in U.equations:
        values[eq.lhs] = eq.rhs.xreplace(values)
    assert float(L.xreplace(values)) == pytest.approx(value, rel=1e-12)
    for name, group in rec.param_groups.items():
        entries = list(group) if isinstance(group, sp.MatrixBase) else [group]
        want = [float(sym[e].xreplace(values)) for e in entries]
        np.testing.assert_allclose(np.reshape(g[name], -1), want, rtol=1e-10, atol=1e-12)

    # Route 3: central differences of the compiled loss.
    eps = 1e-6
    for name in params:
        base = np.asarray(params[name], dtype=float)
        flat = base.reshape(-1)
        for i in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[i] += eps
            down[i] -= eps
            lu = F.loss({**params, name: up.reshape(base.shape)}, inputs, init)
            ld = F.loss({**params, name: down.reshape(base.shape)}, inputs, init)
            numeric = (lu - ld) / (2 * eps)
            assert np.reshape(g[name], -1)[i] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("case", ["rnn", "gru2", "elman3"])
def test_batch_equals_sequences_one_by_one(case):
    make, loss_of = CASES[case]
    rec = make()
    F = sr.lambdify(rec, loss=loss_of(rec))
    rng = np.random.default_rng(11)
    params, inputs, init = random_problem(F, rng, 5, 4)
    total, g = F.value_and_grad(params, inputs, init)
    per_seq = F.loss(params, inputs, init)
    assert per_seq.shape == (4,)
    singles = []
    grads = {name: 0.0 for name in params}
    for b in range(4):
        inp = {k: v[:, b] for k, v in inputs.items()}
        ini = {k: v[b] if np.ndim(v) else v for k, v in init.items()}
        v, gb = F.value_and_grad(params, inp, ini)
        singles.append(v)
        for name in params:
            grads[name] = grads[name] + gb[name]
    np.testing.assert_allclose(per_seq, singles, rtol=1e-12)
    assert total == pytest.approx(sum(singles), rel=1e-12)
    for name in params:
        np.testing.assert_allclose(g[name], grads[name], rtol=1e-11, atol=1e-13)


def _batch_edge_cases():
    """Recurrences whose batched gradients sum quantities that are not per-sequence arrays."""
    fn = lambda name: sp.Function(name, real=True)  # noqa: E731
    h, h2, x, o = fn("h"), fn("h2"), fn("x"), fn("o")
    w, u, v, a, b, c = sp.symbols("w u v a b c", real=True)
    rnn = sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t)))
    const_out = sr.Recurrence([sp.Eq(o(t), c**2), sp.Eq(h(t), sp.tanh(w * h(t - 1) + o(t) * x(t)))])
    reads_lag = sr.Recurrence([rnn, sp.Eq(o(t), v * h(t - 1))])
    return {
        # dL/dh2(T) is only the carry (zero): the loss reads h alone.
        "zero carry": (
            sr.Recurrence(
                [
                    sp.Eq(h2(t), sp.tanh(a * h2(t - 1) + u * x(t))),
                    sp.Eq(h(t), sp.tanh(w * h(t - 1) + v * h2(t - 1))),
                ]
            ),
            (h(t) - Y(t)) ** 2 / 2,
        ),
        # o(t) = c**2 is the same for every sequence, and so is dL/dc's term o(t).
        "constant output": (const_out, (h(t) - Y(t)) ** 2 / 2 + c * o(t)),
        # The time index is the same for every sequence.
        "reads t": (
            sr.Recurrence(sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + b * t / 10))),
            (h(t) - Y(t)) ** 2 / 2,
        ),
        # A loss linear in o: dL/do = 1, the same for every sequence; carries from o(t) = v h(t-1).
        "linear loss": (reads_lag, o(t) + (h(t) - Y(t)) ** 2 / 2),
    }


@pytest.mark.parametrize("case", ["zero carry", "constant output", "reads t", "linear loss"])
def test_batch_sums_of_quantities_shared_by_all_sequences(case):
    rec, loss = _batch_edge_cases()[case]
    F = sr.lambdify(rec, loss=loss)
    params, inputs, init = random_problem(F, np.random.default_rng(5), 4, 3)
    total, g = F.value_and_grad(params, inputs, init)
    singles = [
        F.value_and_grad(
            params,
            {k: val[:, i] for k, val in inputs.items()},
            {k: val[i] for k, val in init.items()},
        )
        for i in range(3)
    ]
    assert total == pytest.approx(sum(value for value, _ in singles), rel=1e-12)
    for name in params:
        assert np.shape(g[name]) == np.shape(params[name])
        assert g[name] == pytest.approx(sum(gs[name] for _, gs in singles), rel=1e-11)
    Fu = sr.lambdify(rec, loss=loss, mode="unrolled", steps=4)
    _, gu = Fu.value_and_grad(params, inputs, init)
    for name in params:
        assert g[name] == pytest.approx(gu[name], rel=1e-11)


def test_a_loss_with_symbols_the_recurrence_lacks_is_refused_with_the_remedy():
    rec = sr.cells.rnn()
    h = rec.states[0]
    lam = sp.Symbol("lam", real=True)
    loss = (h(t) - Y(t)) ** 2 / 2 + lam * h(t) ** 2
    for mode in ("scan", "unrolled"):
        with pytest.raises(sr.SymrnnError, match=r"the loss uses lam.*params="):
            sr.lambdify(rec, loss=loss, mode=mode, steps=3)
    # The remedy works: listed as a parameter, lam gets its value and its gradient.
    w, u, b = (sp.Symbol(n, real=True) for n in "wub")
    F = sr.lambdify(sr.Recurrence(rec.equations, params=[w, u, b, lam]), loss=loss)
    p = {"w": 0.5, "u": 1.0, "b": 0.1, "lam": 0.3}
    data = {"x": np.array([0.2, -0.5, 0.9]), "y": np.zeros(3)}
    hs = F.forward(p, data)["h"]
    assert F.value_and_grad(p, data)[1]["lam"] == pytest.approx(float(np.sum(hs**2)), rel=1e-13)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_float32_within_1e_5(mode):
    rec = sr.cells.gru(2)
    loss = squared_error(rec)
    F = sr.lambdify(rec, loss=loss, mode=mode, steps=6)
    F32 = sr.lambdify(rec, loss=loss, mode=mode, steps=6, dtype="float32")
    rng = np.random.default_rng(5)
    params, inputs, init = random_problem(F, rng, 6, 3)
    h64 = F.forward(params, inputs, init)["h"]
    h32 = F32.forward(params, inputs, init)["h"]
    assert h32.dtype == np.float32 and h64.dtype == np.float64
    np.testing.assert_allclose(h32, h64, rtol=1e-5, atol=1e-6)
    v64, g64 = F.value_and_grad(params, inputs, init)
    v32, g32 = F32.value_and_grad(params, inputs, init)
    assert g32["W_z"].dtype == np.float32
    assert float(v32) == pytest.approx(float(v64), rel=1e-5)
    for name in params:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-4, atol=1e-5)


def test_any_length_in_scan_mode_and_fixed_length_unrolled():
    rec = sr.cells.rnn()
    F = sr.lambdify(rec)
    p = {"w": 0.5, "u": 1.0, "b": 0.0}
    for T in (1, 7, 300):
        assert F.forward(p, {"x": np.zeros(T)})["h"].shape == (T,)
    Fu = sr.lambdify(rec, mode="unrolled", steps=3)
    with pytest.raises(sr.ShapeError, match="T = 3"):
        Fu.forward(p, {"x": np.zeros(4)})


def test_autonomous_recurrence_needs_steps():
    F = sr.lambdify(sr.cells.fibonacci())
    out = F.forward({}, init={"s": [0.0, 1.0]}, steps=10)["s"]  # s(0), s(-1)
    assert list(out) == [1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    with pytest.raises(sr.ShapeError, match="steps=T"):
        F.forward({}, init={"s": [1.0, 0.0]})


@pytest.mark.parametrize(
    ("params", "inputs", "message"),
    [
        ({"w": 0.5, "u": 1.0}, {"x": np.zeros(3)}, "parameter 'b' is missing"),
        (
            {"w": 0.5, "u": 1.0, "b": [1.0, 2.0]},
            {"x": np.zeros(3)},
            r"'b' has shape \(2,\), expected \(\)",
        ),
        ({"w": 0.5, "u": 1.0, "b": 0.0, "q": 1}, {"x": np.zeros(3)}, "unknown parameter"),
        ({"w": 0.5, "u": 1.0, "b": 0.0}, {}, "input 'x' is missing"),
        ({"w": 0.5, "u": 1.0, "b": 0.0}, {"x": np.zeros((3, 2, 2))}, "input 'x' has shape"),
        ({"w": "a", "u": 1.0, "b": 0.0}, {"x": np.zeros(3)}, "expected real numbers, got str"),
    ],
)
def test_argument_errors_name_the_argument(params, inputs, message):
    F = sr.lambdify(sr.cells.rnn())
    with pytest.raises(sr.ShapeError, match=message):
        F.forward(params, inputs)


def test_matrix_parameter_shape_errors():
    F = sr.lambdify(sr.cells.elman(3))
    rng = np.random.default_rng(0)
    good = {"W": rng.normal(size=(3, 3)), "U": rng.normal(size=(3, 1)), "b": np.zeros(3)}
    F.forward(good, {"x": np.zeros((4, 1))})
    F.forward({**good, "b": np.zeros((3, 1))}, {"x": np.zeros((4, 1))})  # column vectors accepted
    with pytest.raises(sr.ShapeError, match=r"'W' has shape \(3, 2\), expected \(3, 3\)"):
        F.forward({**good, "W": np.zeros((3, 2))}, {"x": np.zeros((4, 1))})
    with pytest.raises(sr.ShapeError, match="components on the last axis"):
        F.forward(good, {"x": np.zeros((4, 2))})  # one sequence of a tiny cell: component code
    with pytest.raises(sr.ShapeError, match=r"input 'x' has shape \(2,\), expected \(1,\)"):
        F.forward(good, {"x": np.zeros((4, 5, 2))})  # a batch: matrix-level code
    with pytest.raises(sr.ShapeError, match="init 'h' has batch 2, the inputs 5"):
        F.forward(good, {"x": np.zeros((4, 5, 1))}, init={"h": np.zeros((2, 3))})


def test_loss_needed_for_gradient():
    F = sr.lambdify(sr.cells.rnn())
    with pytest.raises(sr.ShapeError, match="no loss was compiled"):
        F.value_and_grad({"w": 0.5, "u": 1.0, "b": 0.0}, {"x": np.zeros(3)})


def test_bad_requests_raise_clear_errors():
    rec = sr.cells.rnn()
    h = rec.states[0]
    with pytest.raises(sr.SymrnnError, match="mode must be"):
        sr.lambdify(rec, mode="fast")
    with pytest.raises(sr.SymrnnError, match="abstract function"):
        sr.lambdify(sr.cells.autonomous())
    with pytest.raises(sr.SymrnnError, match="per-step template"):
        sr.lambdify(rec, loss=h(3) ** 2)
    with pytest.raises(sr.SymrnnError, match="fixed T"):
        sr.lambdify(rec, mode="unrolled")


def test_unrolled_loss_at_fixed_times():
    rec = sr.cells.rnn()
    h = rec.states[0]
    U = sr.unfold(rec, 3)
    F = sr.lambdify(U, loss=h(3) ** 2 + h(1), mode="unrolled")
    p = {"w": 0.7, "u": -0.4, "b": 0.2}
    xs = np.array([0.3, -0.1, 0.8])
    value, g = F.value_and_grad(p, {"x": xs}, {"h": 0.1})
    states = F.forward(p, {"x": xs}, {"h": 0.1})["h"]
    assert value == pytest.approx(states[2] ** 2 + states[0])
    sym = sr.grad(U, h(3) ** 2 + h(1))
    vals = {sp.Symbol("w", real=True): 0.7, sp.Symbol("u", real=True): -0.4}
    vals[sp.Symbol("b", real=True)] = 0.2
    vals.update({rec.inputs[0](k + 1): xs[k] for k in range(3)})
    vals[h(0)] = 0.1
    vals = {k: sp.Float(v) for k, v in vals.items()}
    for eq in U.equations:
        vals[eq.lhs] = eq.rhs.xreplace(vals)
    for name in p:
        assert g[name] == pytest.approx(float(sym[sp.Symbol(name, real=True)].xreplace(vals)))


def test_generated_code_is_readable():
    rec = sr.cells.elman(2, outputs=1)
    o = sr.vector("o", 1)
    source = sr.lambdify(rec, loss=(o(t)[0] - Y(t)) ** 2 / 2).source
    assert "Dummy" not in source and "_Dummy" not in source
    assert "def step(_P, h_1__tm1, h_2__tm1, x_1__t):" in source
    assert "h_1__t = numpy.tanh(" in source
    assert "W: (2, 2)" in source  # parameter shapes in the docstring
    unrolled = sr.lambdify(rec, mode="unrolled", steps=2).source
    assert "h_1__2 = numpy.tanh(" in unrolled


def _ops(replacements, reduced):
    return sum(sp.count_ops(e) for e in [*(v for _, v in replacements), *reduced])


@pytest.mark.parametrize("case", ["elman3", "gru2", "lstm2", "second_order", "coupled"])
def test_regrouping_keeps_values_and_never_adds_work(case, rng):
    from symrnn.numeric import _cse, _regroup, _to_code

    make_rec, make_loss = CASES[case]
    rec = make_rec()
    derivs = sr.diff.step_derivatives(rec)
    exprs = [_to_code(eq.rhs) for eq in rec.equations]
    exprs += [_to_code(d) for parts in derivs.partials.values() for _, d in parts]
    exprs += [_to_code(d) for parts in derivs.param_partials.values() for _, d in parts]
    exprs += [_to_code(sr.losses.expand_losses(make_loss(rec)))]
    regrouped = _regroup(exprs)
    symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=str)
    point = dict(zip(symbols, rng.uniform(-0.9, 0.9, len(symbols)), strict=True))
    for before, after in zip(exprs, regrouped, strict=True):
        assert float(after.xreplace(point)) == pytest.approx(float(before.xreplace(point)), 1e-12)
    assert _ops(*_cse(regrouped)) <= _ops(*_cse(exprs))


def test_adjoint_step_computes_each_local_delta_once():
    # BPTT's δ_i = ∂L/∂h_i ⊙ (1 - h_i²) feeds all n rows of ∂L/∂h(t-1) and every gradient of
    # row i; the generated step must compute it once, not once per use.
    n = 4
    rec = sr.cells.elman(n)
    source = sr.lambdify(rec, loss=squared_error(rec)).source
    adjoint = source[source.index("def adjoint_step(") : source.index("def step_scalar(")]
    for i in range(1, n + 1):
        assert adjoint.count(f"(1 - h_{i}__t**2)") == 1
    assert adjoint.count("numpy.dot(") == n * (n + 1)  # W and U gradients: one BLAS dot each


def test_user_symbol_names_cannot_clash_with_generated_names():
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    numpy_, v, max_ = sp.symbols("numpy v max", real=True)
    rec = sr.Recurrence(sp.Eq(h(t), sr.relu(numpy_ * h(t - 1) + v * x(t) + max_)))
    F = sr.lambdify(rec, loss=(h(t) - Y(t)) ** 2)
    Fu = sr.lambdify(rec, loss=(h(t) - Y(t)) ** 2, mode="unrolled", steps=3)
    p = {"v_numpy": 0.5, "v": 1.0, "v_max": 0.1}
    data = {"x": np.array([0.2, -0.5, 0.9]), "y": np.zeros(3)}
    np.testing.assert_allclose(F.forward(p, data)["h"], Fu.forward(p, data)["h"])
    assert F.value_and_grad(p, data)[0] == pytest.approx(Fu.value_and_grad(p, data)[0])


def test_codegen_module_runs_without_sympy_or_symrnn(tmp_path):
    rec = sr.cells.gru(2)
    loss = squared_error(rec)
    path = tmp_path / "gru_numpy.py"
    sr.codegen(rec, path, loss=loss)
    F = sr.lambdify(rec, loss=loss)
    rng = np.random.default_rng(2)
    params, inputs, init = random_problem(F, rng, 5, 2)
    np.savez(
        tmp_path / "data.npz",
        **{f"p_{k}": v for k, v in params.items()},
        **{f"i_{k}": v for k, v in inputs.items()},
        **{f"s_{k}": v for k, v in init.items()},
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["sympy"] = None   # importing either now fails
        sys.modules["symrnn"] = None
        import importlib.util, json
        import numpy as np
        spec = importlib.util.spec_from_file_location("gru_numpy", {str(path)!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        d = np.load({str(tmp_path / "data.npz")!r})
        pick = lambda pre: {{k[2:]: d[k] for k in d.files if k.startswith(pre)}}
        value, g = m.value_and_grad(pick("p_"), pick("i_"), pick("s_"))
        h = m.forward(pick("p_"), pick("i_"), pick("s_"))["h"]
        print(json.dumps({{"value": float(value), "h": h.tolist(),
                          "g": {{k: np.asarray(v).tolist() for k, v in g.items()}}}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import json

    got = json.loads(out.stdout)
    value, g = F.value_and_grad(params, inputs, init)
    assert got["value"] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(got["h"], F.forward(params, inputs, init)["h"], rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(got["g"][name], g[name], rtol=1e-12)


def test_codegen_module_passes_ruff(tmp_path):
    ruff = pytest.importorskip("ruff")
    del ruff
    path = tmp_path / "elman_numpy.py"
    sr.codegen(sr.cells.elman(2, outputs=1), path, loss=softmax_loss(1), mode="scan")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_codegen_leaves_no_file_when_generation_fails(tmp_path):
    path = tmp_path / "bad.py"
    with pytest.raises(sr.SymrnnError):
        sr.codegen(sr.cells.autonomous(), path)
    assert list(tmp_path.iterdir()) == []


def test_explicit_matches_numpy_algebra_for_generated_shapes():
    # The parameter table orders matrix entries row-major, as NumPy reshapes them.
    F = sr.lambdify(sr.cells.elman(2, inputs=3))
    W = np.arange(4.0).reshape(2, 2) / 10
    U = np.arange(6.0).reshape(2, 3) / 10
    b = np.array([0.1, -0.2])
    xs = np.random.default_rng(0).normal(size=(3, 3))
    h = np.zeros(2)
    want = []
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        want.append(h)
    got = F.forward({"W": W, "U": U, "b": b}, {"x": xs})["h"]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert explicit(sr.matrix("W", 2, 2))[0, 1] == sp.Symbol("W_12", real=True)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_update_that_reads_the_time_index(mode):
    # h(t) = a h(t-1) + t x(t): the step function needs t itself.
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    a = sp.Symbol("a", real=True)
    rec = sr.Recurrence(sp.Eq(h(t), a * h(t - 1) + t * x(t)))
    F = sr.lambdify(rec, loss=(h(t) - Y(t)) ** 2, mode=mode, steps=4)
    xs, ys = np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.1, 0.2, 0.3, 0.4])
    got = F.forward({"a": 0.5}, {"x": xs})["h"]
    want, prev = [], 0.0
    for k, xk in enumerate(xs, start=1):
        prev = 0.5 * prev + k * xk
        want.append(prev)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    U = sr.unfold(rec, 4)
    L = sr.total_loss(U, (h(t) - Y(t)) ** 2)
    values = {a: sp.Float(0.5), h(0): sp.Integer(0)}
    values.update({x(k + 1): sp.Float(v) for k, v in enumerate(xs)})
    values.update({Y(k + 1): sp.Float(v) for k, v in enumerate(ys)})
    for eq in U.equations:
        values[eq.lhs] = eq.rhs.xreplace(values)
    value, g = F.value_and_grad({"a": 0.5}, {"x": xs, "y": ys})
    assert value == pytest.approx(float(L.xreplace(values)), rel=1e-13)
    assert g["a"] == pytest.approx(float(sr.grad(U, L)[a].xreplace(values)), rel=1e-13)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_loss_terms_without_states_count_once_per_sequence(mode):
    # Weight decay in the per-step loss is the same for every sequence of a batch: its gradient
    # must count once per sequence and per step, as for sequences given one by one.
    rec = sr.cells.rnn()
    h = rec.states[0]
    w = sp.Symbol("w", real=True)
    F = sr.lambdify(rec, loss=(h(t) - Y(t)) ** 2 / 2 + w**2 / 10, mode=mode, steps=5)
    rng = np.random.default_rng(9)
    params, inputs, init = random_problem(F, rng, 5, 3)
    total, g = F.value_and_grad(params, inputs, init)
    singles = [
        F.value_and_grad(params, {k: v[:, b] for k, v in inputs.items()}, {"h": init["h"][b]})
        for b in range(3)
    ]
    assert total == pytest.approx(sum(v for v, _ in singles), rel=1e-12)
    for name in params:
        assert g[name] == pytest.approx(sum(gb[name] for _, gb in singles), rel=1e-11)


@pytest.mark.parametrize("batch", [0, 3])
def test_step_functions_unpack_every_parameter_they_read(batch):
    # Found by the property tests: when the last statement of the adjoint step ended in h_1__t
    # and its returned loss began with U_1, the two ran together as one name, U_1 was not
    # unpacked and the generated code raised NameError.
    h, x = sr.vector("h", 2), sr.vector("x", 1)
    U, W = sr.matrix("U", 2, 1), sr.matrix("W", 2, 2)
    rec = sr.Recurrence(sp.Eq(h(t), sr.sigmoid(U * x(t) + W * h(t - 1))))
    u1 = sp.Symbol("U_1", real=True)
    assert u1 in rec.params
    loss = u1 + h.components[0](t) ** 2 / 2
    F = sr.lambdify(rec, loss=loss)
    Fu = sr.lambdify(rec, loss=loss, mode="unrolled", steps=4)
    params, inputs, init = random_problem(F, np.random.default_rng(3), 4, batch)
    value, g = F.value_and_grad(params, inputs, init)
    value_u, g_u = Fu.value_and_grad(params, inputs, init)
    assert value == pytest.approx(value_u, rel=1e-13)
    for name in params:
        np.testing.assert_allclose(g[name], g_u[name], rtol=1e-12)
    # The bare U_1 adds 1 per step and per sequence to dL/dU_1: against central differences.
    eps = 1e-6
    shifted = [{**params, "U": params["U"] + s * eps * np.array([[1.0], [0.0]])} for s in (1, -1)]
    fd = (
        F.value_and_grad(shifted[0], inputs, init)[0]
        - F.value_and_grad(shifted[1], inputs, init)[0]
    ) / (2 * eps)
    assert g["U"][0, 0] == pytest.approx(fd, rel=1e-7)
