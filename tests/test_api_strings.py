"""Strings in the Python API: read by the whitelist parser with the recurrence's names in scope.

A string that reaches ``sympify`` is Python code; these tests run a payload that would create a
file through every entry point that takes an expression, check that no module of the package
calls ``sympify`` (non-strict), ``parse_expr`` or ``eval`` on a value, and check that a harmless
string means the recurrence's own quantities (the same ``h``, the same ``w``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import SymrnnError

PACKAGE = Path(sr.__file__).parent
SENTINEL = "PWNED"
PAYLOAD = f"__import__('os').system('touch {SENTINEL}')"
RNN = "h(t) = tanh(w*h(t-1) + x(t))"


def _entry_points(rec: sr.Recurrence) -> dict[str, object]:
    U = sr.unfold(rec, 2)
    return {
        "grad": lambda s: sr.grad(U, s),
        "grad wrt": lambda s: sr.grad(U, rec.states[0](2), wrt=[s]),
        "bptt": lambda s: sr.bptt(U, s),
        "jacobian": lambda s: sr.jacobian(U, s, rec.states[0](1)),
        "total_loss": lambda s: sr.total_loss(U, s),
        "lambdify": lambda s: sr.lambdify(rec, loss=s),
        "codegen": lambda s: sr.codegen(rec, loss=s),
        "derivation": lambda s: sr.derivation(rec, steps=2, loss=s),
        "verify": lambda s: sr.verify(rec, steps=2, loss=s),
        "with_params value": lambda s: rec.with_params({rec.params[0]: s}),
        "with_params key": lambda s: rec.with_params({s: 1}),
        "unfold init": lambda s: sr.unfold(rec, 2, init={rec.states[0](0): s}),
        "unfold init key": lambda s: sr.unfold(rec, 2, init={s: 0}),
        "sigmoid": sr.sigmoid,
        "relu": sr.relu,
        "softplus": sr.softplus,
        "softmax": sr.softmax,
        "sqr": sr.sqr,
        "reduce_sum": sr.reduce_sum,
        "dot": lambda s: sr.dot(s, s),
        "squared_error": lambda s: sr.squared_error(s, 0),
        "softmax_cross_entropy": lambda s: sr.softmax_cross_entropy(0, s),
    }


@pytest.mark.parametrize("entry", sorted(_entry_points(sr.Recurrence.parse(RNN))))
def test_payload_runs_nowhere(entry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    call = _entry_points(sr.Recurrence.parse(RNN))[entry]
    with pytest.raises((SymrnnError, TypeError)) as info:
        call(PAYLOAD)  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message
    assert "cannot read" in message or "pass a SymPy expression" in message, message
    assert not (tmp_path / SENTINEL).exists()


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            out.append((name, node))
    return out


def test_no_module_evaluates_strings() -> None:
    """sympify only strict (refusing strings); no parse_expr, S(text), eval, or a stray exec."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        for name, call in _calls(ast.parse(text)):
            strict = any(
                k.arg == "strict" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in call.keywords
            )
            bare = isinstance(call.func, ast.Name)
            if (
                (name == "sympify" and not strict)
                or name == "parse_expr"
                or (name == "S" and not bare and call.args)
                or (name == "eval" and bare)
                or (name == "exec" and path.name != "numeric.py")
            ):
                offenders.append(f"{path.name}:{call.lineno}: {name}(...)")
        if re.search(r"^\s*(from|import) sympy\.parsing\b", text, re.MULTILINE):
            offenders.append(f"{path.name}: imports SymPy's parser")
    assert not offenders, offenders


def test_exec_runs_only_generated_source() -> None:
    """The one exec in the package compiles the source symrnn generated, nothing else."""
    tree = ast.parse((PACKAGE / "numeric.py").read_text())
    execs = [c for name, c in _calls(tree) if name == "exec"]
    assert len(execs) == 1
    compiled = execs[0].args[0]
    assert isinstance(compiled, ast.Call) and getattr(compiled.func, "id", "") == "compile"
    assert getattr(compiled.args[0], "id", "") == "source"


# --------------------------------------------------------------- strings mean the recurrence
@pytest.fixture
def elman() -> sr.Recurrence:
    return sr.Recurrence.parse(RNN)


def test_grad_string_loss_is_the_recurrences_h(elman: sr.Recurrence) -> None:
    U = sr.unfold(elman, 2)
    h, w = elman.states[0], elman.params[0]
    from_text = sr.grad(U, "h(2)**2")
    from_expr = sr.grad(U, h(2) ** 2)
    assert from_text == from_expr
    assert from_text[w] != 0
    # two routes: the reverse-mode result equals sp.diff of the closed form at a point
    point = {
        w: sp.Rational(3, 7),
        h(0): sp.Rational(1, 5),
        elman.inputs[0](1): 1,
        elman.inputs[0](2): -1,
    }
    closed = sp.diff(U.closed_form(2) ** 2, w).subs(point)
    chained = sr.grad(U, "h(2)**2", expand=True)[w].subs(point)
    assert abs(float(closed - chained)) < 1e-12


def test_bptt_and_forward_mode_read_strings(elman: sr.Recurrence) -> None:
    U = sr.unfold(elman, 2)
    h = elman.states[0]
    assert sr.bptt(U, "h(2)**2").loss == h(2) ** 2
    assert sr.grad(U, "h(2)**2", mode="forward") == sr.grad(U, h(2) ** 2, mode="forward")


def test_total_loss_string_sums_the_recurrences_h(elman: sr.Recurrence) -> None:
    U = sr.unfold(elman, 3)
    h = elman.states[0]
    assert sr.total_loss(U, "h(t)**2") == h(1) ** 2 + h(2) ** 2 + h(3) ** 2


def test_wrt_and_jacobian_read_strings(elman: sr.Recurrence) -> None:
    U = sr.unfold(elman, 2)
    h, w = elman.states[0], elman.params[0]
    assert sr.grad(U, h(2), wrt=["w", "h(0)"]) == sr.grad(U, h(2), wrt=[w, h(0)])
    assert sr.jacobian(U, "h(2)", "h(1)") == sr.jacobian(U, h(2), h(1))


def test_lambdify_and_codegen_read_strings(elman: sr.Recurrence) -> None:
    h, y = elman.states[0], sp.Function("y", real=True)
    text = sr.lambdify(elman, loss="(h(t) - y(t))**2/2")
    expr = sr.lambdify(elman, loss=(h(sr.t) - y(sr.t)) ** 2 / 2)
    args = ({"w": 0.7}, {"x": np.array([0.1, -0.2, 0.3]), "y": np.array([0.0, 1.0, 0.5])})
    v1, g1 = text.value_and_grad(*args)
    v2, g2 = expr.value_and_grad(*args)
    assert v1 == v2 and g1["w"] == g2["w"] and g1["w"] != 0
    assert sr.codegen(elman, loss="h(t)**2") == sr.codegen(elman, loss=h(sr.t) ** 2)


def test_derivation_and_verify_read_strings(elman: sr.Recurrence) -> None:
    h = elman.states[0]
    assert sr.latex(sr.derivation(elman, 2, "h(t)**2", solve=False, verify=False)) == sr.latex(
        sr.derivation(elman, 2, h(sr.t) ** 2, solve=False, verify=False)
    )
    assert sr.verify(elman, steps=2, loss="h(t)**2").ok


def test_with_params_reads_names_and_values(elman: sr.Recurrence) -> None:
    w = elman.params[0]
    assert elman.with_params({"w": "1/2"}) == elman.with_params({w: sp.Rational(1, 2)})
    with pytest.raises(SymrnnError, match="not a parameter"):
        elman.with_params({"v": 1})


def test_unfold_init_reads_strings(elman: sr.Recurrence) -> None:
    h = elman.states[0]
    assert sr.unfold(elman, 2, init={"h(0)": "1/2"}).equations == (
        sr.unfold(elman, 2, init={h(0): sp.Rational(1, 2)}).equations
    )


@pytest.mark.parametrize("function", [sr.sigmoid, sr.relu, sr.softplus, sr.softmax, sr.sqr])
def test_elementwise_functions_refuse_text(function: object) -> None:
    with pytest.raises(TypeError, match="pass a SymPy expression"):
        function("x")  # type: ignore[operator]
