"""The ready-made cells: what each one infers, cross-checked by a second route."""

from __future__ import annotations

import pytest
import sympy as sp

import symrnn as sr
from symrnn.matrices import explicit
from symrnn.notation import shift_of, t, time_atoms, time_function


def _names(funcs):
    return tuple(f.__name__ for f in funcs)


def _components(name, size):
    return tuple(f"{name}_{i + 1}" for i in range(size))


def _entries(**shapes):
    """Parameter names of matrices given as name=(rows, cols), sorted as symrnn sorts them."""
    symbols = [e for name, shape in shapes.items() for e in explicit(sr.matrix(name, *shape))]
    return tuple(str(s) for s in sorted(symbols, key=sp.default_sort_key))


# cell: (make, states, inputs, outputs, intermediates (as a set), params, order)
SPEC = {
    "autonomous": (sr.cells.autonomous, ("s",), (), (), set(), ("theta",), 1),
    "driven": (sr.cells.driven, ("s",), ("x",), (), set(), ("theta",), 1),
    "rnn": (sr.cells.rnn, ("h",), ("x",), (), set(), ("b", "u", "w"), 1),
    "elman": (sr.cells.elman, ("h",), ("x",), (), set(), ("b", "u", "w"), 1),
    "elman with output": (
        lambda: sr.cells.elman(outputs=1),
        ("h",),
        ("x",),
        ("o",),
        set(),
        ("b", "c", "u", "v", "w"),
        1,
    ),
    "elman(3, inputs=2, outputs=2)": (
        lambda: sr.cells.elman(3, inputs=2, outputs=2),
        _components("h", 3),
        _components("x", 2),
        _components("o", 2),
        set(),
        _entries(W=(3, 3), U=(3, 2), b=(3, 1), V=(2, 3), c=(2, 1)),
        1,
    ),
    "jordan": (sr.cells.jordan, ("o",), ("x",), (), {"h"}, ("b", "c", "u", "v", "w"), 1),
    "jordan(2)": (
        lambda: sr.cells.jordan(2),
        ("o_1",),
        ("x_1",),
        (),
        set(_components("h", 2)),
        _entries(W=(2, 1), U=(2, 1), b=(2, 1), V=(1, 2), c=(1, 1)),
        1,
    ),
    "linear": (sr.cells.linear, ("h",), ("x",), (), set(), ("a", "b", "u"), 1),
    "linear(3)": (
        lambda: sr.cells.linear(3),
        _components("h", 3),
        ("x_1",),
        (),
        set(),
        _entries(A=(3, 3), B=(3, 1)),
        1,
    ),
    "gru": (
        sr.cells.gru,
        ("h",),
        ("x",),
        (),
        {"r", "z"},
        tuple(sorted(f"{p}_{g}" for p in "wub" for g in "zrh")),
        1,
    ),
    "gru(2)": (
        lambda: sr.cells.gru(2),
        _components("h", 2),
        ("x_1",),
        (),
        set(_components("r", 2) + _components("z", 2)),
        _entries(
            **{f"W_{g}": (2, 1) for g in "zrh"},
            **{f"U_{g}": (2, 2) for g in "zrh"},
            **{f"b_{g}": (2, 1) for g in "zrh"},
        ),
        1,
    ),
    "lstm": (
        sr.cells.lstm,
        ("c", "h"),
        ("x",),
        (),
        {"i", "f", "o"},
        tuple(sorted(f"{p}_{g}" for p in "wub" for g in "ifog")),
        1,
    ),
    "lstm(2)": (
        lambda: sr.cells.lstm(2),
        _components("c", 2) + _components("h", 2),
        ("x_1",),
        (),
        {f"{g}_{i}" for g in "ifo" for i in (1, 2)},
        _entries(
            **{f"W_{g}": (2, 1) for g in "ifog"},
            **{f"U_{g}": (2, 2) for g in "ifog"},
            **{f"b_{g}": (2, 1) for g in "ifog"},
        ),
        1,
    ),
    "fibonacci": (sr.cells.fibonacci, ("s",), (), (), set(), (), 2),
    "second_order": (sr.cells.second_order, ("h",), ("x",), (), set(), ("a", "c", "u"), 2),
    "coupled": (sr.cells.coupled, ("p", "q"), ("x",), (), set(), ("a", "b", "c", "d"), 1),
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
    assert covered == set(sr.cells.__all__)


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
    assert rec.name in sr.cells.__all__
    assert all(p.is_real for p in rec.params)
    # Every same-time dependency is defined earlier in the evaluation order.
    position = {f: i for i, f in enumerate(rec.defined)}
    for eq in rec.equations:
        for atom in time_atoms(eq.rhs):
            if atom.func in position and shift_of(atom) == 0:
                assert position[atom.func] < position[eq.lhs.func]


def test_cells_are_fresh_and_equal():
    assert sr.cells.gru() == sr.cells.gru()
    assert sr.cells.gru(2) == sr.cells.gru(2)
    assert sr.cells.gru() != sr.cells.lstm()


def test_vector_cells_keep_matrix_display():
    rec = sr.cells.lstm(2)
    assert len(rec.display) == 5
    assert all(sr.matrices.is_matrix(eq.lhs) for eq in rec.display)
    assert set(rec.vectors) == {"c", "h", "x", "i", "f", "o"}


def _scalar_partner(quantity):
    """A quantity of a one-unit vector cell -> the scalar cell's: W_z_1 -> w_z, h_1(2) -> h(2)."""
    if isinstance(quantity, sp.Symbol):
        base = quantity.name.removesuffix("_1")
        return sp.Symbol(base[0].lower() + base[1:], real=True)
    return time_function(quantity.func.__name__.removesuffix("_1"))(*quantity.args)


@pytest.mark.parametrize("cell", ["elman", "jordan", "gru", "lstm"])
def test_one_unit_vector_cell_equals_the_scalar_cell(cell, rng):
    scalar, vector = getattr(sr.cells, cell)(), getattr(sr.cells, cell)(1)
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
