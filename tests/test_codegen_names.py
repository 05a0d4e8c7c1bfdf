"""Generated code runs for every recurrence the parser accepts, or generation refuses it.

Max, Min and Sum compile and agree with a plain Python loop in every path (NumPy batch, math
scalar, unrolled); user names that would collide with generated identifiers are refused at
generation with one line, or work.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import SymrnnError

X = np.array([0.3, -1.2, 0.8, 0.1])


def _loop(update: object, w: float, xs: np.ndarray) -> list[float]:
    h, out = 0.0, []
    for x in xs:
        h = update(h, x, w)  # type: ignore[operator]
        out.append(h)
    return out


CASES = {
    "h(t) = Max(w*h(t-1), x(t))": lambda h, x, w: max(w * h, x),
    "h(t) = Min(w*h(t-1), x(t), 0.5)": lambda h, x, w: min(w * h, x, 0.5),
    "h(t) = Max(w*h(t-1), x(t), -0.2, tanh(x(t)))": lambda h, x, w: max(
        w * h, x, -0.2, math.tanh(x)
    ),
}


@pytest.mark.parametrize("text", sorted(CASES))
@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_max_min_compile_and_agree_with_a_loop(text: str, mode: str) -> None:
    rec = sr.Recurrence.parse(text)
    h = rec.states[0]
    compiled = sr.lambdify(rec, loss=h(sr.t) ** 2 / 2, mode=mode, steps=len(X))
    expected = _loop(CASES[text], 0.9, X)
    one = compiled.forward({"w": 0.9}, {"x": X})["h"]
    batch = compiled.forward({"w": 0.9}, {"x": np.stack([X, X], axis=1)})["h"]
    np.testing.assert_allclose(one, expected, rtol=1e-12)
    np.testing.assert_allclose(batch[:, 1], expected, rtol=1e-12)
    value, grads = compiled.value_and_grad({"w": 0.9}, {"x": X})
    assert value == pytest.approx(sum(v * v for v in expected) / 2)
    # the gradient against central differences of the loop (away from the kinks)
    eps = 1e-6
    plus = sum(v * v for v in _loop(CASES[text], 0.9 + eps, X)) / 2
    minus = sum(v * v for v in _loop(CASES[text], 0.9 - eps, X)) / 2
    assert float(grads["w"]) == pytest.approx((plus - minus) / (2 * eps), abs=1e-6)


def test_max_recurrence_checks_ok() -> None:
    assert sr.verify(sr.Recurrence.parse("h(t) = Max(w*h(t-1), x(t))"), steps=3).ok


def test_sum_in_an_update_is_written_out() -> None:
    h, x = sp.symbols("h x", cls=sp.Function)
    w, k = sp.Symbol("w"), sp.Symbol("k", integer=True)
    rec = sr.Recurrence(sp.Eq(h(sr.t), w * h(sr.t - 1) + sp.Sum(k * x(sr.t) ** k, (k, 1, 3))))
    for mode in ("scan", "unrolled"):
        c = sr.lambdify(rec, loss=h(sr.t) ** 2, mode=mode, steps=len(X))
        expected = _loop(lambda hh, xx, ww: ww * hh + xx + 2 * xx**2 + 3 * xx**3, 0.5, X)
        np.testing.assert_allclose(c.forward({"w": 0.5}, {"x": X})["h"], expected, rtol=1e-12)
        batch = c.forward({"w": 0.5}, {"x": np.stack([X, X], axis=1)})["h"]
        np.testing.assert_allclose(batch[:, 0], expected, rtol=1e-12)


def test_sum_with_symbolic_limits_is_refused() -> None:
    h, x = sp.symbols("h x", cls=sp.Function)
    w, k, n = sp.Symbol("w"), sp.Symbol("k", integer=True), sp.Symbol("n", integer=True)
    rec = sr.Recurrence(sp.Eq(h(sr.t), w * h(sr.t - 1) + sp.Sum(k * x(sr.t), (k, 1, n))))
    with pytest.raises(SymrnnError, match="limits of k are not integers"):
        sr.codegen(rec)


def _rec(param: str) -> sr.Recurrence:
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    p = sp.Symbol(param, real=True)
    return sr.Recurrence(sp.Eq(h(sr.t), sp.tanh(p * h(sr.t - 1) + x(sr.t))))


@pytest.mark.parametrize("name", ["h__tm1", "x__t", "unrolled_forward", "forward", "t"])
@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_parameter_named_like_generated_code_is_refused(name: str, mode: str) -> None:
    rec = _rec(name)
    with pytest.raises(SymrnnError, match="rename") as info:
        sr.lambdify(rec, loss=rec.states[0](sr.t) ** 2, mode=mode, steps=3)
    assert "\n" not in str(info.value) and repr(name) in str(info.value)


def test_parameters_numpy_and_v_numpy_are_refused() -> None:
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    a, b = sp.Symbol("numpy", real=True), sp.Symbol("v_numpy", real=True)
    rec = sr.Recurrence(sp.Eq(h(sr.t), sp.tanh(a * h(sr.t - 1) + b * x(sr.t))))
    with pytest.raises(SymrnnError, match="both become the identifier 'v_numpy'"):
        sr.codegen(rec)


@pytest.mark.parametrize("name", ["numpy", "dL_dw", "loss_value", "max"])
@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_parameter_with_a_mangled_name_computes_right(name: str, mode: str) -> None:
    """Same values and gradients as the same recurrence with an ordinary parameter name."""
    odd, plain = _rec(name), _rec("a")
    key = sr.lambdify(odd).param_shapes.copy().popitem()[0]
    inputs = {"x": X}
    got = sr.lambdify(odd, loss=odd.states[0](sr.t) ** 2, mode=mode, steps=len(X))
    ref = sr.lambdify(plain, loss=plain.states[0](sr.t) ** 2, mode=mode, steps=len(X))
    v1, g1 = got.value_and_grad({key: 0.7}, inputs)
    v2, g2 = ref.value_and_grad({"a": 0.7}, inputs)
    assert v1 == pytest.approx(v2) and float(g1[key]) == pytest.approx(float(g2["a"]))
    assert float(g1[key]) != 0


def test_dl_dw_next_to_w_keeps_both_gradients() -> None:
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    w, d = sp.Symbol("w", real=True), sp.Symbol("dL_dw", real=True)
    rec = sr.Recurrence(sp.Eq(h(sr.t), sp.tanh(w * h(sr.t - 1) + d * x(sr.t))))
    c = sr.lambdify(rec, loss=h(sr.t) ** 2)
    params = {"w": 0.6, "v_dL_dw": 0.4}
    _, grads = c.value_and_grad(params, {"x": X})
    eps = 1e-6
    for key in params:
        up, down = dict(params), dict(params)
        up[key] += eps
        down[key] -= eps
        numeric = (c.loss(up, {"x": X}) - c.loss(down, {"x": X})) / (2 * eps)
        assert float(grads[key]) == pytest.approx(float(numeric), rel=1e-6)


def test_targets_y_and_y_1_y_2_stay_apart() -> None:
    rec = sr.Recurrence.parse("h(t) = tanh(w*h(t-1) + x(t))")
    loss = "(h(t) - y(t))**2 + (h(t) - y_1(t))**2 + (h(t) - y_2(t))**2"
    for mode in ("scan", "unrolled"):
        c = sr.lambdify(rec, loss=loss, mode=mode, steps=len(X))
        assert sorted(c.input_names) == ["x", "y", "y_1", "y_2"]
        ys = {"y": X * 0 + 0.1, "y_1": X * 0 - 0.2, "y_2": X * 0 + 0.3}
        states = _loop(lambda hh, xx, ww: math.tanh(ww * hh + xx), 0.5, X)
        expected = sum((s - 0.1) ** 2 + (s + 0.2) ** 2 + (s - 0.3) ** 2 for s in states)
        assert c.loss({"w": 0.5}, {"x": X, **ys}) == pytest.approx(expected)


def test_cli_codegen_example_params_are_keyed_like_the_module(tmp_path: Path) -> None:
    model = tmp_path / "m.toml"
    model.write_text(
        'equations = "h(t) = tanh(numpy*h(t-1) + x(t))"\nloss = "h(t)**2"\n[params]\nnumpy = 0.5\n'
    )
    out = tmp_path / "gen.py"
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", "codegen", str(model), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    namespace: dict[str, object] = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)  # noqa: S102 (our own output)
    states = namespace["forward"](namespace["EXAMPLE_PARAMS"], {"x": X})  # type: ignore[operator]
    expected = _loop(lambda hh, xx, ww: math.tanh(ww * hh + xx), 0.5, X)
    np.testing.assert_allclose(states["h"], expected, rtol=1e-12)


LINTED = {
    "max-min": ("h(t) = Max(w*h(t-1), x(t)) + Min(w, x(t), h(t-1))", "(h(t) - y(t))**2"),
    "min-loss": ("h(t) = tanh(w*h(t-1) + x(t))", "Min(1/3, w, h(t))"),
    "relu-abs": ("h(t) = relu(w*h(t-1)) + abs(x(t))", "h(t)**2"),
}


@pytest.mark.parametrize("case", sorted(LINTED))
@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_generated_modules_pass_ruff(case: str, mode: str, tmp_path: Path) -> None:
    """pyflakes-level checks catch a name used without its import (functools, builtins)."""
    pytest.importorskip("ruff")
    text, loss = LINTED[case]
    path = tmp_path / "gen.py"
    sr.codegen(sr.Recurrence.parse(text), path, loss=loss, mode=mode, steps=3)
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F,E9", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_module_with_a_sum_passes_ruff(tmp_path: Path) -> None:
    pytest.importorskip("ruff")
    h, x = sp.symbols("h x", cls=sp.Function)
    w, k = sp.Symbol("w"), sp.Symbol("k", integer=True)
    rec = sr.Recurrence(sp.Eq(h(sr.t), w * h(sr.t - 1) + sp.Sum(x(sr.t) ** k, (k, 1, 3))))
    path = tmp_path / "gen.py"
    sr.codegen(rec, path, loss=h(sr.t) ** 2)
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
