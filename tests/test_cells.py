"""The ready-made cells: what each one infers, that each verifies, and that each computes the
equations its docstring states (a NumPy transcription of them, a second route)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import SymrnnError
from symrnn.matrices import explicit
from symrnn.notation import shift_of, t, time_atoms, time_function

C = sr.cells


def _names(funcs):
    return tuple(f.__name__ for f in funcs)


def _components(name, size):
    return tuple(f"{name}_{i + 1}" for i in range(size))


def _entries(**shapes):
    """Parameter names of matrices given as name=(rows, cols), sorted as symrnn sorts them."""
    symbols = [e for name, shape in shapes.items() for e in explicit(sr.matrix(name, *shape))]
    return tuple(str(s) for s in sorted(symbols, key=sp.default_sort_key))


def _scalar_params(*groups):
    return tuple(sorted(groups))


GRU_NAMES = [f"{p}_{g}" for p in "UWb" for g in "rzg"] + ["b_hr", "b_hz", "b_hg"]
LSTM_NAMES = [f"{p}_{g}" for p in "UWb" for g in "ifgo"] + [f"b_h{g}" for g in "ifgo"]

# cell: (make, states, inputs, outputs, intermediates (as a set), params, order)
SPEC = {
    "autonomous": (C.autonomous, ("s",), (), (), set(), ("theta",), 1),
    "driven": (C.driven, ("s",), ("x",), (), set(), ("theta",), 1),
    "rnn": (C.rnn, ("h",), ("x",), (), set(), ("b", "u", "w"), 1),
    "elman": (C.elman, ("h",), ("x",), (), set(), ("b", "u", "w"), 1),
    "elman with output": (
        lambda: C.elman(outputs=1),
        ("h",),
        ("x",),
        ("o",),
        set(),
        ("b", "c", "u", "v", "w"),
        1,
    ),
    "elman(3, inputs=2, outputs=2)": (
        lambda: C.elman(3, inputs=2, outputs=2),
        _components("h", 3),
        _components("x", 2),
        _components("o", 2),
        set(),
        _entries(W=(3, 3), U=(3, 2), b=(3, 1), V=(2, 3), c=(2, 1)),
        1,
    ),
    "jordan": (C.jordan, ("o",), ("x",), (), {"h"}, ("b", "c", "u", "v", "w"), 1),
    "jordan(2)": (
        lambda: C.jordan(2),
        ("o_1",),
        ("x_1",),
        (),
        set(_components("h", 2)),
        _entries(W=(2, 1), U=(2, 1), b=(2, 1), V=(1, 2), c=(1, 1)),
        1,
    ),
    "output_recurrent(2, inputs=2, outputs=2)": (
        lambda: C.output_recurrent(2, inputs=2, outputs=2),
        _components("o", 2),
        _components("x", 2),
        (),
        set(_components("h", 2)),
        _entries(W=(2, 2), U=(2, 2), b=(2, 1), V=(2, 2), c=(2, 1)),
        1,
    ),
    "leaky": (C.leaky, ("h",), ("x",), (), set(), ("alpha", "b", "u", "w"), 1),
    "leaky(2)": (
        lambda: C.leaky(2),
        _components("h", 2),
        ("x_1",),
        (),
        set(),
        _entries(W=(2, 2), U=(2, 1), b=(2, 1), alpha=(2, 1)),
        1,
    ),
    "linear": (C.linear, ("h",), ("x",), (), set(), ("a", "b", "u"), 1),
    "linear(3)": (
        lambda: C.linear(3),
        _components("h", 3),
        ("x_1",),
        (),
        set(),
        _entries(A=(3, 3), B=(3, 1)),
        1,
    ),
    "gru": (
        C.gru,
        ("h",),
        ("x",),
        (),
        {"r", "z", "g"},
        _scalar_params(*(n[0].lower() + n[1:] for n in GRU_NAMES)),
        1,
    ),
    "gru(2)": (
        lambda: C.gru(2),
        _components("h", 2),
        ("x_1",),
        (),
        set(_components("r", 2) + _components("z", 2) + _components("g", 2)),
        _entries(
            **{f"U_{g}": (2, 1) for g in "rzg"},
            **{f"W_{g}": (2, 2) for g in "rzg"},
            **{name: (2, 1) for name in GRU_NAMES if name.startswith("b")},
        ),
        1,
    ),
    "gru cho": (
        lambda: C.gru(variant="cho"),
        ("h",),
        ("x",),
        (),
        {"r", "z", "g"},
        _scalar_params(*(f"{p}_{g}" for p in "uwb" for g in "rzg")),
        1,
    ),
    "lstm": (
        C.lstm,
        ("c", "h"),
        ("x",),
        (),
        {"i", "f", "g", "o"},
        _scalar_params(*(n[0].lower() + n[1:] for n in LSTM_NAMES)),
        1,
    ),
    "lstm(2)": (
        lambda: C.lstm(2),
        _components("c", 2) + _components("h", 2),
        ("x_1",),
        (),
        {f"{g}_{i}" for g in "ifgo" for i in (1, 2)},
        _entries(
            **{f"U_{g}": (2, 1) for g in "ifgo"},
            **{f"W_{g}": (2, 2) for g in "ifgo"},
            **{name: (2, 1) for name in LSTM_NAMES if name.startswith("b")},
        ),
        1,
    ),
    "lstm peepholes": (
        lambda: C.lstm(peepholes=True),
        ("c", "h"),
        ("x",),
        (),
        {"i", "f", "g", "o"},
        _scalar_params(*(f"{p}_{g}" for p in "uwb" for g in "ifgo"), *(f"p_{g}" for g in "ifo")),
        1,
    ),
    "mgu": (C.mgu, ("h",), ("x",), (), {"f", "g"}, ("b_f", "b_g", "u_f", "u_g", "w_f", "w_g"), 1),
    "stacked(rnn, rnn)": (
        lambda: C.stacked(C.rnn(), C.rnn()),
        ("h1", "h2"),
        ("x",),
        (),
        set(),
        ("b1", "b2", "u1", "u2", "w1", "w2"),
        1,
    ),
    "fibonacci": (C.fibonacci, ("s",), (), (), set(), (), 2),
    "second_order": (C.second_order, ("h",), ("x",), (), set(), ("a", "c", "u"), 2),
    "coupled": (C.coupled, ("p", "q"), ("x",), (), set(), ("a", "b", "c", "d"), 1),
}


@pytest.mark.parametrize(
    "make, states, inputs, outputs, intermediates, params, order", SPEC.values(), ids=SPEC.keys()
)
def test_inference(make, states, inputs, outputs, intermediates, params, order):
    rec = make()
    assert _names(rec.states) == states
    assert _names(rec.inputs) == inputs
    assert _names(rec.outputs) == outputs
    assert set(_names(rec.intermediates)) == intermediates
    assert len(rec.intermediates) == len(intermediates)
    assert tuple(str(p) for p in rec.params) == params
    assert rec.order == order


def test_every_cell_is_specified():
    covered = {key.split("(")[0].split(" ")[0] for key in SPEC}
    not_recurrences = {"bidirectional", "Bidirectional", "from_torch"}  # tested below
    assert covered == set(C.__all__) - not_recurrences


def _infer(rec):
    """A second, naive route to the inference: read the scalar equations directly."""
    defined = {eq.lhs.func for eq in rec.equations}
    lagged, same_time, undefined, lags = set(), set(), set(), {}
    for eq in rec.equations:
        for atom in time_atoms(eq.rhs):
            lag = -shift_of(atom)
            if atom.func not in defined:
                undefined.add(atom.func)
            elif lag:
                lagged.add(atom.func)
                lags[atom.func] = max(lags.get(atom.func, 0), lag)
            else:
                same_time.add(atom.func)
    free = set().union(*(eq.rhs.free_symbols for eq in rec.equations)) - {t}
    return {
        "states": lagged,
        "inputs": undefined,
        "outputs": defined - lagged - same_time,
        "intermediates": (defined - lagged) & same_time,
        "params": free,
        "order": max(lags.values()),
    }


@pytest.mark.parametrize("make", [spec[0] for spec in SPEC.values()], ids=SPEC.keys())
def test_inference_agrees_with_a_naive_reading(make):
    rec = make()
    naive = _infer(rec)
    assert set(rec.states) == naive["states"]
    assert set(rec.inputs) == naive["inputs"]
    assert set(rec.outputs) == naive["outputs"]
    assert set(rec.intermediates) == naive["intermediates"]
    assert set(rec.params) == naive["params"]
    assert rec.order == naive["order"]


@pytest.mark.parametrize("make", [spec[0] for spec in SPEC.values()], ids=SPEC.keys())
def test_cells_are_named_real_and_ordered(make):
    rec = make()
    assert rec.name in C.__all__
    assert all(p.is_real for p in rec.params)
    # Every same-time dependency is defined earlier in the evaluation order.
    position = {f: i for i, f in enumerate(rec.defined)}
    for eq in rec.equations:
        for atom in time_atoms(eq.rhs):
            if atom.func in position and shift_of(atom) == 0:
                assert position[atom.func] < position[eq.lhs.func]


def test_cells_are_fresh_and_equal():
    assert C.gru() == C.gru()
    assert C.gru(2) == C.gru(2)
    assert C.gru() != C.lstm()
    assert C.gru(2) != C.gru(2, variant="cho")
    assert C.jordan(2).equations == C.output_recurrent(2).equations


def test_vector_cells_keep_matrix_display():
    rec = C.lstm(2)
    assert len(rec.display) == 6
    assert all(sr.matrices.is_matrix(eq.lhs) for eq in rec.display)
    assert set(rec.vectors) == {"c", "h", "x", "i", "f", "g", "o"}


def test_one_naming_rule_w_recurrent_u_input():
    """W multiplies the state, U the input, in every vector cell (the book's naming)."""
    for rec in (C.elman(3, inputs=2), C.gru(3, inputs=2), C.lstm(3, inputs=2), C.mgu(3, inputs=2)):
        for name, group in rec.param_groups.items():
            if name.startswith(("W", "U")):
                assert group.shape == ((3, 3) if name.startswith("W") else (3, 2)), name


# --------------------------------------------------------------------- every cell verifies
VERIFIED = {
    "rnn": C.rnn,
    "elman(2, inputs=2, outputs=2)": lambda: C.elman(2, inputs=2, outputs=2),
    "elman relu": lambda: C.elman(2, inputs=2, nonlinearity="relu"),
    "jordan(2)": lambda: C.jordan(2, inputs=2, outputs=2),
    "output_recurrent(2)": lambda: C.output_recurrent(2, inputs=2),
    "leaky(2)": lambda: C.leaky(2, inputs=2),
    "leaky(alpha=0.9)": lambda: C.leaky(alpha=0.9),
    "linear(2)": lambda: C.linear(2, inputs=2),
    "gru": C.gru,
    "gru(2)": lambda: C.gru(2, inputs=2),
    "gru(3) cho": lambda: C.gru(3, inputs=2, variant="cho"),
    "lstm": C.lstm,
    "lstm(2)": lambda: C.lstm(2, inputs=2),
    "lstm(2) peepholes": lambda: C.lstm(2, inputs=2, peepholes=True),
    "mgu(3)": lambda: C.mgu(3, inputs=2),
    "stacked(gru(2), elman(3))": lambda: C.stacked(C.gru(2, inputs=2), C.elman(3, inputs=2)),
    "stacked(rnn, lstm)": lambda: C.stacked(C.rnn(), C.lstm()),
    "bidirectional(gru(2)).forward": lambda: C.bidirectional(C.gru(2)).forward,
    "bidirectional(gru(2)).backward": lambda: C.bidirectional(C.gru(2)).backward,
    "autonomous with f = tanh": lambda: _concrete(C.autonomous()),
    "driven with f = tanh": lambda: _concrete(C.driven()),
    "fibonacci": C.fibonacci,
    "second_order": C.second_order,
    "coupled": C.coupled,
}


def _concrete(rec):
    """The lecture's abstract f made concrete, f(s, x, theta) = tanh(theta*s + x), to verify."""
    (s,) = rec.states
    args = rec.update[s].args
    body = sp.tanh(args[-1] * args[0] + sum(args[1:-1]))
    return sr.Recurrence(sp.Eq(s(t), body), name=rec.name)


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
@pytest.mark.parametrize("make", VERIFIED.values(), ids=VERIFIED.keys())
def test_every_cell_verifies(make, steps):
    report = sr.verify(make(), steps=steps)
    assert report.ok, str(report)
    assert len(report.rows) >= 5


# -------------------------------------------------------- the documented equations in NumPy
def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _gru_step(p, h, x, variant):
    r = _sigmoid(p["U_r"] @ x + p["b_r"] + p["W_r"] @ h + p.get("b_hr", 0))
    z = _sigmoid(p["U_z"] @ x + p["b_z"] + p["W_z"] @ h + p.get("b_hz", 0))
    if variant == "pytorch":
        g = np.tanh(p["U_g"] @ x + p["b_g"] + r * (p["W_g"] @ h + p["b_hg"]))
    else:
        g = np.tanh(p["U_g"] @ x + p["b_g"] + p["W_g"] @ (r * h))
    return {"h": (1 - z) * g + z * h}


def _lstm_step(p, state, x, peepholes):
    h, c = state["h"], state["c"]

    def gate(name, peep=None):
        total = p[f"U_{name}"] @ x + p[f"b_{name}"] + p[f"W_{name}"] @ h
        if not peepholes:
            return total + p[f"b_h{name}"]
        return total if peep is None else total + p[f"P_{name}"] * peep

    i, f, g = _sigmoid(gate("i", c)), _sigmoid(gate("f", c)), np.tanh(gate("g"))
    c = f * c + i * g
    return {"c": c, "h": _sigmoid(gate("o", c)) * np.tanh(c)}


def _mgu_step(p, h, x):
    f = _sigmoid(p["U_f"] @ x + p["b_f"] + p["W_f"] @ h)
    g = np.tanh(p["U_g"] @ x + p["b_g"] + p["W_g"] @ (f * h))
    return {"h": (1 - f) * h + f * g}


def _leaky_step(p, h, x):
    a = p["alpha"]
    return {"h": a * h + (1 - a) * np.tanh(p["b"] + p["W"] @ h + p["U"] @ x)}


def _jordan_step(p, o, x):
    h = np.tanh(p["b"] + p["W"] @ o + p["U"] @ x)
    return {"o": p["c"] + p["V"] @ h}


REFERENCES = {
    "gru": (lambda: C.gru(3, inputs=2), lambda p, s, x: _gru_step(p, s["h"], x, "pytorch")),
    "gru cho": (
        lambda: C.gru(3, inputs=2, variant="cho"),
        lambda p, s, x: _gru_step(p, s["h"], x, "cho"),
    ),
    "lstm": (lambda: C.lstm(3, inputs=2), lambda p, s, x: _lstm_step(p, s, x, False)),
    "lstm peepholes": (
        lambda: C.lstm(3, inputs=2, peepholes=True),
        lambda p, s, x: _lstm_step(p, s, x, True),
    ),
    "mgu": (lambda: C.mgu(3, inputs=2), lambda p, s, x: _mgu_step(p, s["h"], x)),
    "leaky": (lambda: C.leaky(3, inputs=2), lambda p, s, x: _leaky_step(p, s["h"], x)),
    "jordan": (
        lambda: C.jordan(3, inputs=2, outputs=2),
        lambda p, s, x: _jordan_step(p, s["o"], x),
    ),
}


def _random_params(compiled, rng):
    return {
        name: rng.uniform(-1, 1, shape) if shape else rng.uniform(-1, 1)
        for name, shape in compiled.param_shapes.items()
    }


@pytest.mark.parametrize("make, step", REFERENCES.values(), ids=REFERENCES.keys())
def test_cell_computes_its_documented_equations(make, step, rng):
    rec = make()
    F = sr.lambdify(rec)
    params = _random_params(F, rng)
    states = {name: rng.uniform(-1, 1, len(rec.vectors[name])) for name in _state_names(rec)}
    xs = rng.uniform(-1, 1, (5, 2))
    got = F.forward(params, {"x": xs}, init=states)
    flat = {k: (v.ravel() if np.ndim(v) == 2 and v.shape[1] == 1 else v) for k, v in params.items()}
    state = dict(states)
    for k in range(5):
        state = step(flat, state, xs[k])
        for name, value in state.items():
            np.testing.assert_allclose(got[name][k], value, rtol=1e-12, atol=1e-14)


def _state_names(rec):
    owner = {f: name for name, comps in rec.vectors.items() for f in comps}
    return sorted({owner[f] for f in rec.states})


@pytest.mark.parametrize(
    "cell, kwargs",
    [
        ("elman", {}),
        ("elman", {"outputs": 1}),
        ("jordan", {}),
        ("leaky", {}),
        ("gru", {}),
        ("gru", {"variant": "cho"}),
        ("lstm", {}),
        ("lstm", {"peepholes": True}),
        ("mgu", {}),
    ],
)
def test_one_unit_vector_cell_equals_the_scalar_cell(cell, kwargs, rng):
    scalar, vector = getattr(C, cell)(**kwargs), getattr(C, cell)(1, **kwargs)
    U, V = sr.unfold(scalar, 3), sr.unfold(vector, 3)
    point = {a: sp.Float(rng.uniform(-1, 1)) for a in (*scalar.params, *U.initial, *U.inputs)}
    vector_point = {a: point[_scalar_partner(a)] for a in (*vector.params, *V.initial, *V.inputs)}
    assert len(vector_point) == len(point)
    for chain, values in ((U, point), (V, vector_point)):
        for eq in chain.equations:
            values[eq.lhs] = sp.Float(eq.rhs.xreplace(values))
    for eq in V.equations:
        assert float(vector_point[eq.lhs]) == pytest.approx(
            float(point[_scalar_partner(eq.lhs)]), rel=1e-14
        )


def _scalar_partner(quantity):
    """A quantity of a one-unit vector cell -> the scalar cell's: W_z_1 -> w_z, h_1(2) -> h(2)."""
    if isinstance(quantity, sp.Symbol):
        base = quantity.name.removesuffix("_1")
        return sp.Symbol(base[0].lower() + base[1:], real=True)
    return time_function(quantity.func.__name__.removesuffix("_1"))(*quantity.args)


# ------------------------------------------------------------------------ combining cells
def test_stacked_layers_compose(rng):
    """A two-layer stack computes layer 2 on layer 1's states (each layer lambdified alone)."""
    deep = C.stacked(C.gru(3, inputs=2), C.lstm(2, inputs=3))
    one, two = sr.lambdify(C.gru(3, inputs=2)), sr.lambdify(C.lstm(2, inputs=3))
    p1, p2 = _random_params(one, rng), _random_params(two, rng)
    xs = rng.uniform(-1, 1, (4, 2))
    h1 = one.forward(p1, {"x": xs})["h"]
    top = two.forward(p2, {"x": h1})
    params = {f"{k}1": v for k, v in p1.items()} | {f"{k}2": v for k, v in p2.items()}
    got = sr.lambdify(deep).forward(params, {"x": xs})
    np.testing.assert_allclose(got["h1"], h1, rtol=1e-13)
    np.testing.assert_allclose(got["h2"], top["h"], rtol=1e-13)
    np.testing.assert_allclose(got["c2"], top["c"], rtol=1e-13)


def test_stacked_passes_up_the_output():
    deep = C.stacked(C.elman(3, inputs=2, outputs=2), C.elman(2, inputs=2))
    (second,) = [eq for eq in deep.display if eq.lhs.name == "h2"]
    assert "o1(t)" in str(second.rhs)


@pytest.mark.parametrize(
    "layers, message",
    [
        ((), "at least one layer"),
        ((C.gru(2), "gru"), "not a Recurrence"),
        ((C.gru(2), C.gru(3, inputs=3)), "reads x of size 3 but layer 1 passes up h1 of size 2"),
        ((C.rnn(), C.gru(2)), "of size 1 but layer 1 passes up h1 of size scalar"),
        ((C.rnn(), C.fibonacci()), "has inputs []"),
        ((C.coupled(), C.rnn()), "cannot tell what cell 'coupled' passes on"),
    ],
)
def test_stacked_refuses_what_it_cannot_stack(layers, message):
    with pytest.raises(SymrnnError, match=message.replace("[", r"\[").replace("]", r"\]")):
        C.stacked(*layers)


def test_bidirectional_chain_runs_both_ways(rng):
    """The chain in original time: the forward cell on x, the backward cell on x reversed."""
    cell = C.elman(2, inputs=2)
    B = C.bidirectional(cell, outputs=2)
    steps = 4
    forward, backward = sr.lambdify(B.forward), sr.lambdify(B.backward)
    p = _random_params(forward, rng)
    p_rev = _random_params(backward, rng)
    V, V_rev, c = (rng.uniform(-1, 1, s) for s in ((2, 2), (2, 2), 2))
    xs = rng.uniform(-1, 1, (steps, 2))
    h = forward.forward(p, {"x": xs})["h"]
    g = backward.forward(p_rev, {"x": xs[::-1]})["h_rev"][::-1]
    o = c + h @ V.T + g @ V_rev.T

    values = {}
    for name, value in (p | p_rev | {"V": V, "V_rev": V_rev, "c": c[:, None]}).items():
        values.update(zip(explicit(sr.matrix(name, *value.shape)), value.ravel(), strict=True))
    for k in range(1, steps + 1):
        for i in (1, 2):
            values[time_function(f"x_{i}")(k)] = xs[k - 1, i - 1]
    for name, at in (("h", 0), ("h_rev", steps + 1)):
        for i in (1, 2):
            values[time_function(f"{name}_{i}")(at)] = 0.0
    chain = B.equations(steps)
    assert len(chain) == 3 * 2 * steps
    for eq in chain:
        values[eq.lhs] = float(eq.rhs.xreplace(values))
    for k in range(1, steps + 1):
        for i in (1, 2):
            assert values[time_function(f"h_{i}")(k)] == pytest.approx(h[k - 1, i - 1], rel=1e-12)
            assert values[time_function(f"h_rev_{i}")(k)] == pytest.approx(
                g[k - 1, i - 1], rel=1e-12
            )
            assert values[time_function(f"o_{i}")(k)] == pytest.approx(o[k - 1, i - 1], rel=1e-12)


def test_bidirectional_scalar_and_without_output():
    B = C.bidirectional(C.rnn(), outputs=None)
    assert B.output == ()
    assert str(B.backward) == "rnn_rev: h_rev(t) = tanh(b_rev + u_rev*x(t) + w_rev*h_rev(t - 1))"
    assert [str(eq.lhs) for eq in B.equations(2)] == ["h(1)", "h(2)", "h_rev(2)", "h_rev(1)"]


# ----------------------------------------------------------------------- sizes and errors
SIZED = {
    "elman": lambda n, m: C.elman(n, inputs=m, outputs=m),
    "jordan": lambda n, m: C.jordan(n, inputs=m, outputs=m),
    "output_recurrent": lambda n, m: C.output_recurrent(n, inputs=m, outputs=m),
    "leaky": lambda n, m: C.leaky(n, inputs=m),
    "linear": lambda n, m: C.linear(n, inputs=m),
    "gru": lambda n, m: C.gru(n, inputs=m),
    "gru cho": lambda n, m: C.gru(n, inputs=m, variant="cho"),
    "lstm": lambda n, m: C.lstm(n, inputs=m),
    "lstm peepholes": lambda n, m: C.lstm(n, inputs=m, peepholes=True),
    "mgu": lambda n, m: C.mgu(n, inputs=m),
    "stacked": lambda n, m: C.stacked(C.gru(n, inputs=m), C.elman(m, inputs=n)),
    "bidirectional": lambda n, m: C.bidirectional(C.lstm(n, inputs=m)).backward,
}


@pytest.mark.parametrize("make", SIZED.values(), ids=SIZED.keys())
def test_symbolic_sizes(make, rng):
    """A cell at sizes n, m is the cell at 3, 2 once the sizes are given, and its generated code
    runs at those sizes with the explicit cell's numbers."""
    n, m = sr.size("n"), sr.size("m")
    rec = make(n, m)
    assert not rec.has_explicit_size
    assert rec.at_sizes(n=3, m=2) == make(3, 2)
    general, explicit_code = sr.lambdify(rec), sr.lambdify(make(3, 2))
    params = _random_params(explicit_code, rng)
    xs = rng.uniform(-1, 1, (4, 5, 2))
    got, expected = general.forward(params, {"x": xs}), explicit_code.forward(params, {"x": xs})
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: C.gru(variant="chung"), "variant must be 'pytorch' or 'cho'"),
        (lambda: C.elman(2, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu'"),
        (lambda: C.gru(inputs=3), "the scalar cell \\(n=None\\) has one input"),
        (lambda: C.elman(outputs=2), "the scalar cell \\(n=None\\) has one input"),
        (lambda: C.lstm(0), "size of"),
        (lambda: C.bidirectional("gru"), "not a Recurrence"),
        (lambda: C.bidirectional(C.coupled()), "cells.bidirectional: cannot tell what cell"),
    ],
)
def test_bad_arguments_get_one_line_errors(make, message):
    with pytest.raises(SymrnnError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
