"""Careless calls of the Python API get clear errors, not AttributeErrors or silent NaN."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import ShapeError, SymrnnError

EQ = "h(t) = tanh(w*h(t-1) + x(t))"
X = np.array([0.1, -0.4, 0.3])


@pytest.fixture(scope="module")
def rec() -> sr.Recurrence:
    return sr.Recurrence.parse(EQ)


@pytest.fixture(scope="module")
def compiled(rec: sr.Recurrence) -> sr.Compiled:
    return sr.lambdify(rec, loss="h(t)**2")


def test_unfold_init_must_be_a_mapping(rec: sr.Recurrence) -> None:
    with pytest.raises(SymrnnError, match="init must be a mapping"):
        sr.unfold(rec, 2, init=[1, 2])  # type: ignore[arg-type]


def test_unfold_init_value_must_be_a_number(rec: sr.Recurrence) -> None:
    with pytest.raises(SymrnnError, match="must be a number or a SymPy expression"):
        sr.unfold(rec, 2, init={rec.states[0](0): None})


def test_grad_of_none_is_a_type_error(rec: sr.Recurrence) -> None:
    U = sr.unfold(rec, 2)
    for call in (
        lambda: sr.grad(U, None),
        lambda: sr.bptt(U, None),
        lambda: sr.total_loss(U, None),
    ):
        with pytest.raises(TypeError, match="the loss must be a SymPy expression or a string"):
            call()


@pytest.mark.parametrize("steps", [3.0, True, 0, -1, "3"])
def test_steps_must_be_a_positive_integer(compiled: sr.Compiled, steps: object) -> None:
    with pytest.raises(ShapeError, match="steps must be a positive integer"):
        compiled.forward({"w": 0.5}, {"x": X}, steps=steps)  # type: ignore[arg-type]


def test_numpy_integer_steps_work(compiled: sr.Compiled) -> None:
    assert compiled.forward({"w": 0.5}, {"x": X}, steps=np.int64(3))["h"].shape == (3,)


@pytest.mark.parametrize("name", ["rtol", "atol", "fd_rtol"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, True, "1e-9"])
def test_verify_tolerances_are_finite_numbers(rec: sr.Recurrence, name: str, value: object) -> None:
    with pytest.raises(SymrnnError, match=f"{name} must be a finite non-negative number"):
        sr.verify(rec, steps=2, **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("param", None, "expected real numbers, got NoneType"),
        ("param", "0.5", "expected real numbers, got str"),
        ("param", 0.5 + 1j, "complex numbers; pass dtype='complex128'"),
        ("input", X + 1j, "complex numbers; pass dtype='complex128'"),
        ("input", ["a", "b", "c"], "expected real numbers"),
        ("init", None, "expected real numbers, got NoneType"),
    ],
)
@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_values_that_are_not_real_numbers_are_refused(
    rec: sr.Recurrence, where: str, value: object, message: str, mode: str
) -> None:
    c = sr.lambdify(rec, loss="h(t)**2", mode=mode, steps=3)
    params: dict = {"w": 0.5}
    inputs: dict = {"x": X}
    init: dict = {"h": 0.0}
    {"param": params, "input": inputs, "init": init}[where][
        {"param": "w", "input": "x", "init": "h"}[where]
    ] = value
    for call in (c.forward, c.loss, c.value_and_grad):
        with pytest.raises(ShapeError, match=message):
            call(params, inputs, init)


def test_complex_values_work_with_a_complex_dtype(rec: sr.Recurrence) -> None:
    c = sr.lambdify(rec, dtype="complex128")
    h = c.forward({"w": 0.5}, {"x": X + 1e-20j})["h"]
    assert h.dtype == np.complex128 and np.all(h.imag != 0)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_overflow_is_inf_with_a_warning_for_one_sequence_and_a_batch(mode: str) -> None:
    rec = sr.Recurrence.parse("h(t) = exp(w*h(t-1)) + x(t)")
    c = sr.lambdify(rec, loss="h(t)**2", mode=mode, steps=5)
    one_x, batch_x = np.ones(5), np.ones((5, 2))
    with pytest.warns(RuntimeWarning, match="overflow"):
        one = c.forward({"w": 50.0}, {"x": one_x})["h"]
    with pytest.warns(RuntimeWarning, match="overflow"):
        batch = c.forward({"w": 50.0}, {"x": batch_x})["h"]
    assert np.isinf(one[-1]) and np.all(np.isinf(batch[-1]))
    np.testing.assert_array_equal(one, batch[:, 0])
    with pytest.warns(RuntimeWarning) as one_warnings:  # overflow, then inf - inf
        value_one, _ = c.value_and_grad({"w": 50.0}, {"x": one_x})
    with pytest.warns(RuntimeWarning) as batch_warnings:
        value_batch, _ = c.value_and_grad({"w": 50.0}, {"x": batch_x})
    for record in (one_warnings, batch_warnings):
        assert any("overflow" in str(w.message) for w in record)
    assert not np.isfinite(value_one) and not np.isfinite(value_batch)


def test_with_params_value_none_is_refused(rec: sr.Recurrence) -> None:
    with pytest.raises(SymrnnError, match="must be a number or a SymPy expression"):
        rec.with_params({"w": None})


def test_with_params_near_miss_names_the_assumptions(rec: sr.Recurrence) -> None:
    with pytest.raises(SymrnnError, match=r"other assumptions \(none vs real=True\)"):
        rec.with_params({sp.Symbol("w"): 1})


def test_parameter_named_wscr_prints_without_mathscr(tmp_path: Path) -> None:
    rec = sr.Recurrence.parse("h(t) = tanh(wscr*h(t-1) + x(t))")
    text = sr.derivation(rec, 2, solve=False, verify=False).to_latex(document=True)
    assert "\\mathscr" not in text and "{w}scr" in text
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: the compile half of this test needs it")
    (tmp_path / "notes.tex").write_text(text)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "notes.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:]
