"""Model files: reading, validation, limits, and the loss read with the recurrence's names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn import models
from symrnn.errors import LimitError, ParseError, ShapeError, SymrnnError
from symrnn.losses import expand_losses
from symrnn.models import (
    MAX_MODEL_BYTES,
    MAX_SIZE,
    MODEL_KEYS,
    Model,
    cell_names,
    load_model,
    parse_loss,
)
from symrnn.notation import time_atoms, time_function
from symrnn.unfold import MAX_STEPS

EXAMPLES = Path(__file__).parent.parent / "examples"

ELMAN = """
name = "elman"
equations = ["h(t) = tanh(w*h(t-1) + u*x(t) + b)", "o(t) = c + v*h(t)"]
loss = "(o(t) - y(t))**2 / 2"
steps = 4
[params]
w = 0.5
u = 1
"""


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_elman_text_gives_the_cell():
    m = load_model(ELMAN)
    assert m.name == "elman" and m.steps == 4
    assert dict(m.params) == {"w": 0.5, "u": 1}
    assert m.recurrence == sr.cells.elman(outputs=1)
    o, y = m.recurrence.defined[1], time_function("y")
    assert sp.simplify(m.loss - (o(sr.t) - y(sr.t)) ** 2 / 2) == 0


def test_the_loss_uses_the_recurrences_own_quantities():
    m = load_model(ELMAN)
    h, o = m.recurrence.defined
    assert o(sr.t) in m.loss.atoms(sp.Function)
    # the same objects: differentiating the total loss through the chain works
    U = sr.unfold(m.recurrence, 2)
    g = sr.grad(U, m.total_loss(U), wrt=[sp.Symbol("v", real=True)])
    assert g[sp.Symbol("v", real=True)] != 0


@pytest.mark.parametrize("name", ["elman.toml", "lecture_rnn.toml"])
def test_example_files_load(name):
    m = load_model(EXAMPLES / name)
    assert m.name and m.steps and m.loss is not None
    assert load_model(str(EXAMPLES / name)).recurrence == m.recurrence


def test_equations_may_be_one_string_and_functions_are_declared():
    m = load_model('equations = "s(t) = f(s(t-1), theta)"\nfunctions = ["f"]\n')
    assert m.functions == ("f",)
    assert m.recurrence.states[0].__name__ == "s"
    assert m.loss is None and m.steps is None and dict(m.params) == {}


def test_bytes_and_paths(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(ELMAN, encoding="utf-8")
    assert load_model(path).steps == 4
    assert load_model(ELMAN.encode()).steps == 4


def test_from_equation():
    m = Model.from_equation("h(t) = tanh(w*h(t-1) + x(t)); o(t) = v*h(t)", steps=3, loss="o(t)**2")
    assert m.steps == 3 and len(m.recurrence.defined) == 2
    assert m.total_loss(sr.unfold(m.recurrence, 3)).count(sp.Pow) == 3


def test_with_options_and_fixed_time_loss():
    m = load_model(ELMAN).with_options(steps=2, loss="h(2)**2")
    h = m.recurrence.defined[0]
    assert m.steps == 2 and m.total_loss(sr.unfold(m.recurrence, 2)) == h(2) ** 2
    with pytest.raises(SymrnnError, match="after the last step"):
        m.total_loss(sr.unfold(m.recurrence, 1))


def test_total_loss_without_a_loss():
    m = Model.from_equation("h(t) = w*h(t-1)")
    with pytest.raises(SymrnnError, match="--loss"):
        m.total_loss(sr.unfold(m.recurrence, 1))


# --------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ('equations = "h(t) = h(t-1)"\ncolour = 1\n', ParseError, ["'colour'", "equations"]),
        ("steps = 4\n", ParseError, ["no 'equations'"]),
        ('equations = "h(t) = h(t-1)"\nsteps = "four"\n', ParseError, ["steps", "integer"]),
        ('equations = "h(t) = h(t-1)"\nsteps = 0\n', ParseError, ["at least 1"]),
        ('equations = "h(t) = h(t-1)"\nsteps = true\n', ParseError, ["integer"]),
        (f'equations = "h(t) = h(t-1)"\nsteps = {MAX_STEPS + 1}\n', LimitError, ["limit"]),
        ("equations = 3\n", ParseError, ["equations", "string"]),
        ("equations = []\n", ParseError, ["non-empty"]),
        ('equations = ["h(t) = h(t-1)", 3]\n', ParseError, ["list of strings"]),
        ('equations = "h(t) = h(t-1)"\nloss = 2\n', ParseError, ["loss must be a string"]),
        ('equations = "h(t) = h(t-1)"\nname = 7\n', ParseError, ["name"]),
        ('equations = "h(t) = h(t-1)"\nname = "a/b"\n', ParseError, ["name"]),
        ('equations = "h(t) = h(t-1)"\nfunctions = "f"\n', ParseError, ["list of names"]),
        ('equations = "h(t) = h(t-1)"\nfunctions = ["__f"]\n', ParseError, ["function name"]),
        ('equations = "h(t) = w*h(t-1)"\nparams = 3\n', ParseError, ["table"]),
        ('equations = "h(t) = w*h(t-1)"\n[params]\nq = 1\n', ParseError, ["'q'", "w"]),
        ('equations = "h(t) = w*h(t-1)"\n[params]\nw = "big"\n', ParseError, ["number"]),
        ('equations = "h(t) = w*h(t-1)"\n[params]\nw = inf\n', ParseError, ["finite"]),
        ('equations = "h(t) = w*h(t-1)"\n[params]\nw = true\n', ParseError, ["number"]),
        ("equations = [\n", ParseError, ["not valid TOML"]),
        ("equations = \"h(t) = __import__('os')\"\n", ParseError, ["not allowed"]),
        ('equations = "h(t) = h(t-1).real"\n', ParseError, ["attribute"]),
        ('equations = "h(t) = h(t-1)"\nloss = "h(t+1)"\n', ParseError, ["after step t"]),
        ('equations = "h(t) = h(t-1)"\nloss = "h(t) + h(2)"\n', ParseError, ["mixes"]),
        ('equations = "h(t) = h(t-1)"\nloss = "h(-1)"\n', ParseError, ["before the initial"]),
        ('equations = "h(t) = h(t-1)"\nloss = "t*w"\n', ParseError, ["outside a quantity"]),
        ('equations = "h(t) = h(t-1)"\nloss = "9**9**9"\n', LimitError, ["loss", "exponent"]),
        ('equations = "h(t) = h(t+1)"\n', SymrnnError, ["future"]),
        ("a = " + "[" * 5000, SymrnnError, []),
        ("steps = " + "9" * 5000, ParseError, []),
    ],
)
def test_bad_model_text(text, error, words):
    with pytest.raises(error) as exc:
        load_model(text)
    message = _one_line(exc)
    for word in words:
        assert word in message


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(ParseError) as exc:
        load_model('equations = "h(t) = h(t-1)"\nstep = 4\n')
    for key in MODEL_KEYS:
        assert key in str(exc.value)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "caf\xe9"\nequations = "h(t) = h(t-1)"\n')
    with pytest.raises(ParseError, match="not valid UTF-8.*line 1"):
        load_model(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SymrnnError, match="does not exist"):
        load_model(tmp_path / "missing.toml")
    with pytest.raises(SymrnnError, match="folder"):
        load_model(tmp_path)


def test_large_file_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    path = tmp_path / "big.toml"
    with open(path, "wb") as handle:
        handle.write(b"# " + b"x" * (10 * MAX_MODEL_BYTES) + b"\n")
    sizes = []
    real_open = open

    class Spy:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            sizes.append(size)
            return self.handle.read(size)

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: Spy(real_open(p, mode)))
    with pytest.raises(LimitError, match="larger than the limit"):
        load_model(path)
    assert sizes == [MAX_MODEL_BYTES + 1]


def test_large_text_and_bytes_are_refused():
    with pytest.raises(LimitError):
        load_model(b"#" * (MAX_MODEL_BYTES + 1))
    with pytest.raises(LimitError):
        load_model("#" * (MAX_MODEL_BYTES + 1))


def test_wrong_source_type():
    with pytest.raises(ParseError, match="path or TOML text"):
        load_model(3)  # type: ignore[arg-type]


def test_parse_loss_needs_a_string():
    rec = sr.Recurrence.parse("h(t) = w*h(t-1)")
    with pytest.raises(ParseError, match="string"):
        parse_loss(rec, 3)  # type: ignore[arg-type]


def test_repr_is_short():
    text = repr(load_model(ELMAN))
    assert text.startswith("<Model name='elman'") and "steps=4" in text


# ============================================================================ vector models
VECTOR_ELMAN = """
name = "elman"
sizes = { n = 3, m = 2, k = 3 }
vectors = { h = "n", x = "m", o = "k", y = "k" }
matrices = { W = ["n", "n"], U = ["n", "m"], b = ["n"], V = ["k", "n"], c = ["k"] }
equations = [
    "h(t) = tanh(b + W @ h(t-1) + U @ x(t))",
    "o(t) = c + V @ h(t)",
]
loss = "softmax_cross_entropy(o(t), y(t))"
steps = 3
"""


def _values(exprs, point):
    return np.array([float(sp.sympify(e).xreplace(point)) for e in exprs])


def _random_point(exprs, seed=0):
    """Random values for every symbol and time atom of ``exprs`` (two routes get the same)."""
    rng = np.random.default_rng(seed)
    leaves = set()
    for e in exprs:
        leaves |= e.free_symbols | set(time_atoms(e))
    leaves.discard(sr.t)
    return {a: sp.Float(rng.uniform(-1, 1)) for a in sorted(leaves, key=sp.default_sort_key)}


def test_vector_elman_file_is_the_elman_cell():
    model = load_model(VECTOR_ELMAN)
    assert model.is_vector and dict(model.sizes) == {"n": 3, "m": 2, "k": 3}
    assert model.declared["h"] == sr.vector("h", 3)
    assert model.declared["W"] == sr.matrix("W", 3, 3)
    cell = sr.cells.elman(3, inputs=2, outputs=3)
    # the same scalar updates as the cell, compared at a random point (not structurally)
    mine = [model.recurrence.update[f] for f in cell.defined]
    theirs = [cell.update[f] for f in cell.defined]
    point = _random_point(theirs)
    np.testing.assert_allclose(_values(mine, point), _values(theirs, point), rtol=1e-12)
    o, y = sr.vector("o", 3), sr.vector("y", 3)
    expected = sr.softmax_cross_entropy(o(sr.t), y(sr.t))
    point = _random_point([expand_losses(expected)])
    assert model.loss == expected  # the loss object, kept whole
    assert float(expand_losses(model.loss).xreplace(point)) == pytest.approx(
        float(expand_losses(expected).xreplace(point))
    )


def test_symbolic_sizes_keep_the_matrix_form():
    # the loss is left out: softmax_cross_entropy lists components, which need numbers
    text = VECTOR_ELMAN.replace("n = 3", 'n = "symbolic"').replace("loss =", "# loss =")
    model = load_model(text)
    n = sr.matrices.size("n")
    assert model.sizes["n"] == n
    assert model.declared["W"].shape == (n, n)
    assert not model.recurrence.has_explicit_size
    eq = model.recurrence.display[0]
    assert eq.lhs.shape == (n, 1) and eq.rhs.shape == (n, 1)


GRU_BY_HAND = """
sizes = { n = 2, m = 1 }
vectors = { h = "n", x = "m", z = "n", r = "n", g = "n" }
equations = [
    "r(t) = sigmoid(U_r @ x(t) + b_r + W_r @ h(t-1) + b_hr)",
    "z(t) = sigmoid(U_z @ x(t) + b_z + W_z @ h(t-1) + b_hz)",
    "g(t) = tanh(U_g @ x(t) + b_g + r(t) * (W_g @ h(t-1) + b_hg))",
    "h(t) = (1 - z(t)) * g(t) + z(t) * h(t-1)",
]
[matrices]
U_r = ["n", "m"]
W_r = ["n", "n"]
b_r = ["n"]
b_hr = ["n"]
U_z = ["n", "m"]
W_z = ["n", "n"]
b_z = ["n"]
b_hz = ["n"]
U_g = ["n", "m"]
W_g = ["n", "n"]
b_g = ["n"]
b_hg = ["n"]
"""


def test_matmul_hadamard_and_broadcasting_give_the_gru_cell():
    model = load_model(GRU_BY_HAND)
    cell = sr.cells.gru(2, inputs=1)
    assert {f.__name__ for f in model.recurrence.defined} == {f.__name__ for f in cell.defined}
    by_name = {f.__name__: f for f in model.recurrence.defined}
    mine = [model.recurrence.update[by_name[f.__name__]] for f in cell.defined]
    theirs = [cell.update[f] for f in cell.defined]
    point = _random_point(theirs, seed=1)
    np.testing.assert_allclose(_values(mine, point), _values(theirs, point), rtol=1e-12)
    h_rhs = model.recurrence.display[3].rhs
    assert h_rhs.has(sp.OneMatrix(2, 1))  # 1 - z(t) is the ones vector minus z
    assert h_rhs.has(sp.HadamardProduct)


def test_transpose_and_elementwise_power():
    model = load_model(
        'sizes = { n = 2 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        'equations = "h(t) = tanh(W.T @ h(t-1)) + 0.5 * h(t-1)**2"\n'
    )
    W, hv = sr.matrix("W", 2, 2), sr.vector("h", 2)
    Wx, hx = sr.matrices.explicit(W), sr.matrices.explicit(hv(sr.t - 1))
    expected = (Wx.T * hx).applyfunc(sp.tanh) + hx.applyfunc(lambda v: v**2 / 2)
    mine = [model.recurrence.update[f] for f in model.recurrence.defined]
    point = _random_point(list(expected))
    np.testing.assert_allclose(_values(mine, point), _values(expected, point), rtol=1e-12)


@pytest.mark.parametrize(
    ("equations", "words"),
    [
        (
            "h(t) = tanh(b + W @ h(t-1) + U @ h(t-1))",
            ["h(t) = tanh(b + W @ h(t-1) + U @ h(t-1))", "'U'", "3x2", "'h(t-1)'", "3x1"],
        ),
        ("h(t) = tanh(W @ x(t))", ["'W'", "3x3", "'x(t)'", "2x1", "columns"]),
        ("h(t) = tanh(b + U)", ["'b'", "3x1", "'U'", "3x2", "sum"]),
        ("h(t) = x(t) * h(t-1)", ["'x(t)'", "2x1", "'h(t-1)'", "3x1", "elementwise"]),
        ("h(t) = U @ x(t) + x(t)", ["'U @ x(t)'", "3x1", "'x(t)'", "2x1"]),
        ("h(t) = W", ["left side", "3x1", "right side", "3x3"]),
        ("h(t) = tanh(w*h(t-1)) + 1; o(t) = V @ x(t)", ["'V'", "3x3", "'x(t)'", "2x1"]),
    ],
)
def test_shape_errors_name_the_equation_the_terms_and_both_shapes(equations, words):
    text = (
        'sizes = { n = 3, m = 2 }\nvectors = { h = "n", x = "m", o = "n" }\n'
        'matrices = { W = ["n", "n"], U = ["n", "m"], b = ["n"], V = ["n", "n"] }\n'
        f'equations = "{equations}"\n'
    )
    with pytest.raises(ShapeError) as exc:
        load_model(text)
    message = _one_line(exc)
    for word in words:
        assert word in message, (word, message)


BAD_VECTOR_FILES = [
    ('sizes = 3\nequations = "h(t) = h(t-1)"\n', ParseError, ["sizes must be a table"]),
    ('sizes = { n = 0 }\nequations = "h(t) = h(t-1)"\n', ParseError, ["sizes.n", "positive"]),
    ('sizes = { n = 2.5 }\nequations = "h(t) = h(t-1)"\n', ParseError, ["sizes.n"]),
    ('sizes = { n = true }\nequations = "h(t) = h(t-1)"\n', ParseError, ["sizes.n"]),
    ('sizes = { n = "big" }\nequations = "h(t) = h(t-1)"\n', ParseError, ["symbolic"]),
    (f'sizes = {{ n = {MAX_SIZE + 1} }}\nequations = "h(t) = h(t-1)"\n', LimitError, ["1,024"]),
    (
        "sizes = { "
        + ", ".join(f"n{i} = 1" for i in range(40))
        + ' }\nequations = "h(t) = h(t-1)"\n',
        LimitError,
        ["40 names"],
    ),
    (
        'sizes = { n = 300 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        'equations = "h(t) = W @ h(t-1)"\n',
        LimitError,
        ["65,536 entries"],
    ),
    ('sizes = { "__class__" = 3 }\nequations = "h(t) = h(t-1)"\n', ParseError, ["usable name"]),
    (
        'sizes = { n = 3 }\nvectors = { tanh = "n" }\nequations = "h(t) = h(t-1)"\n',
        ParseError,
        ["'tanh'", "usable name"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { "h h" = "n" }\nequations = "h(t) = h(t-1)"\n',
        ParseError,
        ["usable name"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "q" }\nequations = "h(t) = h(t-1)"\n',
        ParseError,
        ["vectors.h", "sizes (n)"],
    ),
    (
        'sizes = { n = 3 }\nvectors = ["h"]\nequations = "h(t) = h(t-1)"\n',
        ParseError,
        ["vectors must be a table"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n", "n"] }\n'
        'equations = "h(t) = W @ h(t-1)"\n',
        ParseError,
        ["matrices.W", "one or two"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nmatrices = { h = ["n"] }\n'
        'equations = "h(t) = h(t-1)"\n',
        ParseError,
        ["both in vectors and in matrices"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nmatrices = { Q = ["n"] }\n'
        'equations = "h(t) = h(t-1)"\n',
        ParseError,
        ["'Q'", "no equation uses"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        'equations = "h(t) = W.__class__ @ h(t-1)"\n',
        ParseError,
        ["attribute access"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nequations = "h(t) = w.T * h(t-1)"\n',
        ParseError,
        ["'w' is a scalar", ".T"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nequations = "h(t) = w @ h(t-1)"\n',
        ParseError,
        ["'w'", "scalar", "@"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nequations = "h(t) = h(t-1)"\nloss = "h(t)"\n',
        ParseError,
        ["loss must be a scalar"],
    ),
    (
        'sizes = { n = 3 }\nvectors = { h = "n" }\nequations = "h(t) = h(t-1)"\n'
        'loss = "squared_error(h(t), y(t))"\n',
        SymrnnError,
        ["squared_error", "shape"],
    ),
    ('cell = "lstm"\nequations = "h(t) = h(t-1)"\n', ParseError, ["'cell' and 'equations'"]),
    ('cell = "lstm"\nmatrices = { W = ["n"] }\n', ParseError, ["'cell' and 'matrices'"]),
    ('cell = "transformer"\n', ParseError, ["cell must be", "lstm"]),
    ('cell = "from_torch"\n', ParseError, ["cell must be"]),
    ('cell = "__import__"\n', ParseError, ["cell must be"]),
    ("cell = 3\n", ParseError, ["cell must be"]),
    ('cell = "lstm"\nsizes = { q = 3 }\n', ParseError, ["sizes.q", "n (units)"]),
    ('cell = "lstm"\nsizes = { m = 3 }\n', ParseError, ["needs sizes.n"]),
    ('cell = "rnn"\nsizes = { n = 3 }\n', ParseError, ["takes no n"]),
    (
        'cell = "lstm"\nsizes = { n = 3 }\nvectors = { h = "n" }\n',
        ParseError,
        ["quantity of the cell"],
    ),
    ('cell = "elman"\nsizes = { n = 1000, m = 1000 }\n', LimitError, ["65,536"]),
]


@pytest.mark.parametrize(("text", "error", "words"), BAD_VECTOR_FILES)
def test_bad_vector_model_text(text, error, words):
    with pytest.raises(error) as exc:
        load_model(text)
    message = _one_line(exc)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("name", ["elman", "gru", "lstm", "linear", "jordan"])
def test_cells_by_name(name):
    sizes = {"n": 3, "m": 2}
    model = load_model(f'cell = "{name}"\nsizes = {{ n = 3, m = 2 }}\n')
    assert model.cell == name
    assert model.recurrence == getattr(sr.cells, name)(3, inputs=2)
    assert Model.from_cell(name, sizes=sizes).recurrence == model.recurrence


def test_cell_outputs_and_scalar_cells():
    model = load_model('cell = "elman"\nsizes = { n = 3, m = 2, k = 4 }\n')
    assert model.recurrence == sr.cells.elman(3, inputs=2, outputs=4)
    assert load_model('cell = "rnn"\n').recurrence == sr.cells.rnn()
    assert set(cell_names()) >= {"elman", "gru", "lstm", "rnn"}
    assert "from_torch" not in cell_names()


def test_cell_loss_reads_declared_targets():
    model = load_model(
        'cell = "lstm"\nsizes = { n = 2, m = 1 }\nvectors = { y = "n" }\n'
        'loss = "squared_error(h(t), y(t))"\n'
    )
    h, y = sr.vector("h", 2), sr.vector("y", 2)
    assert model.loss == sr.squared_error(h(sr.t), y(sr.t))
    again = model.with_options(loss="(h(t) - y(t)).T @ (h(t) - y(t)) / 2")
    assert sp.expand(again.loss - expand_losses(model.loss)) == 0


# ---------------------------------------------------------------------------- params_file
WEIGHTS_MODEL = VECTOR_ELMAN + 'params_file = "w.npz"\n'


def _save(folder: Path, **arrays):
    np.savez(folder / "w.npz", **arrays)
    path = folder / "model.toml"
    path.write_text(WEIGHTS_MODEL)
    return path


def test_params_file_gives_values_by_name(tmp_path):
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    model = load_model(_save(tmp_path, W=W, b=b))
    assert set(model.weights) == {"W", "b"}
    np.testing.assert_array_equal(model.weights["W"], W)
    np.testing.assert_array_equal(model.weights["b"], b.reshape(3, 1))
    given = model.given_values()
    assert given["W_23"] == W[1, 2] and given["b_3"] == b[2] and len(given) == 12
    values = model.parameter_values(seed=1)
    np.testing.assert_array_equal(values["W"], W)
    # missing ones are drawn at random, in their shape, and differ between seeds
    assert values["V"].shape == (3, 3) and values["c"].shape == (3, 1)
    assert not np.array_equal(values["V"], model.parameter_values(seed=2)["V"])
    assert np.all(np.abs(values["V"]) <= 1)


def test_params_file_is_relative_to_the_model_file(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    path = _save(folder, W=np.eye(3))
    monkeypatch.chdir(tmp_path)
    assert load_model(Path("models") / path.name).weights["W"][0, 0] == 1.0


@pytest.mark.parametrize(
    ("arrays", "error", "words"),
    [
        ({"W": np.zeros((3, 2))}, ShapeError, ["'W'", "(3, 2)", "(3, 3)"]),
        ({"b": np.zeros((1, 3))}, ShapeError, ["'b'", "(1, 3)", "(3, 1)"]),
        ({"Q": np.zeros(3)}, ParseError, ["'Q'", "not a parameter", "W"]),
        ({"W": np.full((3, 3), np.inf)}, ParseError, ["finite"]),
        ({"W": np.array([["a"] * 3] * 3)}, ParseError, ["dtype", "numbers"]),
        ({"W": np.zeros((3, 3), dtype=complex)}, ParseError, ["dtype"]),
    ],
)
def test_params_file_refuses_bad_arrays(tmp_path, arrays, error, words):
    with pytest.raises(error) as exc:
        load_model(_save(tmp_path, **arrays))
    message = _one_line(exc)
    for word in words:
        assert word in message, (word, message)


class _Touch:
    """Unpickling this would create a file: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_params_file_never_unpickles(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    np.savez(tmp_path / "w.npz", W=np.array([_Touch(sentinel)], dtype=object))
    (tmp_path / "model.toml").write_text(WEIGHTS_MODEL)
    with pytest.raises(ParseError) as exc:
        load_model(tmp_path / "model.toml")
    assert "pickled" in _one_line(exc)
    assert not sentinel.exists()


def test_params_file_limits_and_files(tmp_path, monkeypatch):
    path = _save(tmp_path, W=np.eye(3))
    monkeypatch.setattr(models, "MAX_WEIGHT_ARRAYS", 0)
    with pytest.raises(LimitError, match="more than the limit of 0"):
        load_model(path)
    monkeypatch.setattr(models, "MAX_WEIGHT_ARRAYS", 256)
    monkeypatch.setattr(models, "MAX_WEIGHTS_BYTES", 100)
    with pytest.raises(LimitError, match="limit of 100 bytes"):
        load_model(path)
    monkeypatch.undo()
    (tmp_path / "w.npz").write_bytes(b"not a zip")
    with pytest.raises(ParseError, match="not a .npz archive"):
        load_model(path)
    (tmp_path / "w.npz").unlink()
    with pytest.raises(SymrnnError, match="does not exist"):
        load_model(path)
    with pytest.raises(ParseError, match="not a .npz file"):
        load_model(VECTOR_ELMAN + 'params_file = "w.pkl"\n')
    with pytest.raises(ParseError, match="needs integer sizes"):
        load_model(WEIGHTS_MODEL.replace("n = 3", 'n = "symbolic"').replace("loss =", "# loss ="))
    _save(tmp_path, W=np.eye(3))
    monkeypatch.chdir(tmp_path)  # model text finds params_file in the working folder
    with pytest.raises(ParseError, match="both give W"):
        load_model(WEIGHTS_MODEL + "[params]\nW_11 = 1.0\n")
