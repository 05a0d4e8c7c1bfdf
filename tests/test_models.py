"""Model files: reading, validation, limits, and the loss read with the recurrence's names."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import LimitError, ParseError, SymrnnError
from symrnn.models import MAX_MODEL_BYTES, MODEL_KEYS, Model, load_model, parse_loss
from symrnn.notation import time_function
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
