"""Tests of ``sr.verify``: correct forms pass, every planted error is caught where it was planted.

Mutation tests feed the checker wrong derivatives (a dropped term, a sign flip, a wrong factor,
a gradient off by one time step), wrong closed forms, a wrong symbolic-t solution, a wrong
Jacobian and wrong library internals, and assert that exactly the rows comparing the planted
form fail.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import LimitError, SymrnnError
from symrnn.notation import is_time_atom, time_function, time_of
from symrnn.unfold import Unfolded
from symrnn.verify import CHECKS, FAIL, PASS, PROBLEM, SKIPPED, Report, Row, verify

# The module itself (``symrnn.verify`` as an attribute is the function sr.verify).
verify_module = sys.modules["symrnn.verify"]

t = sr.t


# ------------------------------------------------------------------------------- helpers
def default_loss(rec: sr.Recurrence) -> Any:
    return sp.Add(*[q(t) ** 2 for q in (*rec.states, *rec.outputs)]) / 2


def true_gradient(rec: sr.Recurrence, steps: int) -> tuple[Unfolded, dict[Any, Any]]:
    """The exact gradient of verify's default loss, from reverse mode: {param or h(0): expr}."""
    U = sr.unfold(rec, steps)
    L = sr.total_loss(U, default_loss(rec))
    return U, sr.grad(U, L, wrt=[*rec.params, *U.initial])


def statuses(report: Report) -> dict[str, str]:
    return {row.compared: row.status for row in report.rows}


def failing(report: Report) -> set[str]:
    return {row.check for row in report.rows if row.status == FAIL}


def drop_term(expr: Any) -> Any:
    """Remove one term of the first sum in ``expr`` (a dropped term of a hand derivation)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Add):
            return expr.xreplace({node: sp.Add(*node.args[1:])})
    raise AssertionError(f"no sum in {expr}")


def off_by_one(expr: Any, rec: sr.Recurrence, steps: int) -> Any:
    """Every state h(k) used one step late: h(k) -> h(k + 1) (a classic BPTT indexing slip)."""
    shift = {s(k): s(k + 1) for s in rec.states for k in range(1 - rec.lag(s), steps)}
    return expr.xreplace(shift)


MUTATIONS = {
    "dropped term": lambda e, rec, T: drop_term(e),
    "sign flip": lambda e, rec, T: -e,
    "factor 1.01": lambda e, rec, T: sp.Float(1.01) * e,
    "factor 2": lambda e, rec, T: 2 * e,
    "off by one step": off_by_one,
}

# A scalar cell and a vector cell; the planted parameter is one with a sum in its derivative.
PLANTED = [
    pytest.param(sr.cells.rnn, "w", id="rnn"),
    pytest.param(lambda: sr.cells.elman(2), "W_12", id="elman2"),
]


def _param(rec: sr.Recurrence, name: str) -> Any:
    return next(p for p in rec.params if str(p) == name)


# ------------------------------------------------------------------------- the report
def test_public_api() -> None:
    assert sr.verify is verify
    assert CHECKS == ("closed_form", "codegen", "solve", "gradient", "jacobian")


def test_report_rows_and_table() -> None:
    report = verify(sr.cells.rnn(), steps=3)
    assert isinstance(report, Report) and report.ok
    assert [row.check for row in report.rows] == [
        "closed_form",
        "codegen",
        "codegen",
        "codegen",
        "codegen",
        "codegen",
        "codegen",
        "solve",
        "gradient",
        "gradient",
        "gradient",
        "jacobian",
    ]
    assert statuses(report)["reverse mode (BPTT) vs forward mode (RTRL)"] == PASS
    text = str(report)
    assert text.splitlines()[0] == "verify rnn: 3 steps, 3 trials, seed 0"
    for column in ("check", "max abs err", "max rel err", "where", "tol", "status"):
        assert column in text.splitlines()[1]
    assert "OK: 11 pass, 1 skipped" in text
    # a skipped check says why (sr.solve has no closed form for a tanh recurrence)
    assert "skipped: sr.solve" in text and "nonlinearly" in text
    for row in report.rows:
        if row.status == PASS:
            assert row.max_abs is not None and row.max_abs < 1e-12
            assert row.where and "trial" in row.where


def test_report_is_immutable_and_json_ready() -> None:
    report = verify(sr.cells.rnn(), steps=2, trials=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.steps = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.rows[0].status = FAIL  # type: ignore[misc]
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data

    def plain(x: Any) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or type(x) in (bool, int, float, str)

    assert plain(data)
    assert data["ok"] is True and data["steps"] == 2 and data["recurrence"] == "rnn"
    assert data["rows"][0]["location"]["trial"] in (0,)
    assert "<table>" in report._repr_html_()


def test_cli_contract() -> None:
    """What ``symrnn check MODEL`` does with the API."""
    rec = sr.Recurrence.parse("h(t) = tanh(w*h(t-1) + u*x(t) + b)", name="model")
    h = rec.states[0]
    report = verify(rec, steps=4, loss=h(t) ** 2 / 2)
    assert isinstance(str(report), str) and report.ok is True
    json.dumps(report.to_dict())
    # a string loss is read by the safe parser, as the command line passes it
    assert verify(rec, steps=2, loss="h(t)**2/2", checks=["gradient"]).ok


# ------------------------------------------------------------------ correct forms pass
CELLS = [
    pytest.param(sr.cells.rnn, id="rnn"),
    pytest.param(sr.cells.elman, id="elman"),
    pytest.param(lambda: sr.cells.elman(2, outputs=1), id="elman2-outputs"),
    pytest.param(sr.cells.jordan, id="jordan"),
    pytest.param(lambda: sr.cells.jordan(2), id="jordan2"),
    pytest.param(sr.cells.linear, id="linear"),
    pytest.param(lambda: sr.cells.linear(2), id="linear2"),
    pytest.param(sr.cells.gru, id="gru"),
    pytest.param(lambda: sr.cells.gru(2), id="gru2"),
    pytest.param(sr.cells.lstm, id="lstm"),
    pytest.param(lambda: sr.cells.lstm(2), id="lstm2"),
    pytest.param(sr.cells.fibonacci, id="fibonacci"),
    pytest.param(sr.cells.second_order, id="second_order"),
    pytest.param(sr.cells.coupled, id="coupled"),
]


@pytest.mark.parametrize("make", CELLS)
def test_every_cell_passes(make: Any) -> None:
    report = verify(make(), steps=3, trials=2)
    assert report.ok, str(report)
    assert not report.failures and not report.problems
    passed = {row.check for row in report.rows if row.status == PASS}
    assert {"closed_form", "codegen", "gradient", "jacobian"} <= passed


@pytest.mark.parametrize("make", [sr.cells.autonomous, sr.cells.driven])
def test_abstract_cells_are_skipped_not_failed(make: Any) -> None:
    report = verify(make(), steps=3)
    assert not report.ok and report.compared == 0  # nothing compared is not a pass
    assert "NOTHING COMPARED" in str(report)
    assert {row.status for row in report.rows} == {SKIPPED}
    assert "abstract function f" in report.rows[0].detail


def test_linear_cells_check_the_symbolic_t_solution() -> None:
    report = verify(sr.cells.linear(), steps=3, checks=["solve"])
    (row,) = report.rows
    assert row.status == PASS, str(report)
    assert "t = 1, 2, 3, 7" in row.compared
    assert "linear-driven" in row.detail


def test_unfolded_chain_with_initial_values() -> None:
    rnn = sr.cells.rnn()
    h = rnn.states[0]
    U = sr.unfold(rnn, 3, init={h(0): sp.Rational(1, 2)})
    report = verify(U)
    assert report.ok and report.steps == 3, str(report)
    assert "k = 1, 2" in statuses_key(report, "jacobian")  # h(0) is a number, not a variable
    with pytest.raises(SymrnnError, match="3-step chain and steps=4"):
        verify(U, steps=4)


def statuses_key(report: Report, check: str) -> str:
    return " ".join(row.compared for row in report.by_check(check))


def test_losses_with_targets_and_at_fixed_times() -> None:
    rnn = sr.cells.rnn()
    h, y = rnn.states[0], time_function("y")
    assert verify(rnn, steps=3, loss=(h(t) - y(t)) ** 2 / 2).ok
    fixed = verify(rnn, steps=3, loss=h(3) ** 2 + h(1))
    assert fixed.ok
    assert statuses(fixed)["scan code loss and gradient vs reverse mode"] == SKIPPED
    c = sp.Symbol("c", real=True)  # not a parameter of the recurrence
    foreign = verify(rnn, steps=2, loss=c * h(t) ** 2, checks=["codegen", "gradient"])
    assert foreign.ok and "uses c, which the recurrence does not" in foreign.skipped[0].detail
    # With a target too: the code compiled without the loss is not handed the target y.
    both = verify(rnn, steps=2, loss=(h(t) - y(t)) ** 2 + c * h(t) ** 2, checks=["codegen"])
    assert both.ok
    assert statuses(both)["scan code forward vs Python loop"] == PASS
    assert statuses(both)["unrolled code forward vs Python loop"] == PASS
    lagged = verify(rnn, steps=3, loss=(h(t) - h(t - 1)) ** 2)
    assert lagged.ok
    assert "reads other times than t" in lagged.skipped[0].detail


def test_non_analytic_functions_use_central_differences() -> None:
    h, x = time_function("h"), time_function("x")
    w, u, b = sp.symbols("w u b", real=True)
    rec = sr.Recurrence(sp.Eq(h(t), sp.Abs(w * h(t - 1) + u * x(t) + b)), name="abs")
    report = verify(rec, steps=3)
    assert report.ok, str(report)
    row = next(r for r in report.rows if "central differences" in r.compared)
    assert row.check == "gradient" and "Abs" in row.detail and "ratio" in row.detail
    assert row.tol == "rtol 1e-5, atol 1e-8"


def test_positive_ranges_for_log_and_sqrt() -> None:
    h, x = time_function("h"), time_function("x")
    a = sp.Symbol("a", real=True)
    rec = sr.Recurrence(sp.Eq(h(t), sp.log(a * h(t - 1) + x(t)) + sp.sqrt(x(t))), name="log")
    assert verify(rec, steps=3).ok
    # the same recurrence on [-1, 1] takes logs of negative numbers: a numerical problem
    report = verify(rec, steps=3, ranges=(-1, 1))
    assert not report.ok and not report.failures
    assert report.problems and "invalid value" in report.problems[0].detail


# ------------------------------------------------------------------ numerical problems
def test_overflow_is_a_numerical_problem_with_its_location() -> None:
    h = time_function("h")
    rec = sr.Recurrence(sp.Eq(h(t), sp.exp(50 * h(t - 1))), name="explode")
    report = verify(rec, steps=4)
    assert not report.ok
    assert not report.failures, str(report)  # never a mismatch
    assert report.problems and all(row.status in (PROBLEM, SKIPPED) for row in report.rows)
    first = report.rows[0]
    assert first.where.startswith("step 2, h, trial")
    assert "overflow" in first.detail and "not a mismatch" in first.detail
    assert dict(first.location)["step"] == 2
    assert "NUMERICAL PROBLEM" in str(report)
    assert report.to_dict()["counts"][PROBLEM] == len(report.problems)


def test_nan_from_a_domain_error_is_located() -> None:
    h, x = time_function("h"), time_function("x")
    rec = sr.Recurrence(sp.Eq(h(t), sp.log(h(t - 1) - 2) + x(t)), name="domain")
    report = verify(rec, steps=2, ranges={"init": (0.5, 1.0)}, checks=["closed_form"])
    (row,) = report.rows
    assert row.status == PROBLEM
    assert row.where.startswith("step 1, h") and "invalid value" in row.detail


# ----------------------------------------------------------------- the user's gradient
@pytest.mark.parametrize("make, name", PLANTED)
def test_correct_user_gradient_passes(make: Any, name: str) -> None:
    rec = make()
    _, g = true_gradient(rec, 3)
    report = verify(rec, steps=3, gradient=g)
    assert report.ok, str(report)
    assert [row.status for row in report.by_check("user")] == [PASS, PASS]


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("make, name", PLANTED)
def test_wrong_user_gradient_is_caught(make: Any, name: str, mutation: str) -> None:
    rec, T = make(), 3
    _, g = true_gradient(rec, T)
    p = _param(rec, name)
    wrong = MUTATIONS[mutation](g[p], rec, T)
    assert sp.simplify(wrong - g[p]) != 0
    report = verify(rec, steps=T, gradient={**g, p: wrong})
    assert not report.ok
    assert failing(report) == {"user"}, str(report)
    user = report.by_check("user")
    assert [row.status for row in user] == [FAIL, FAIL]
    for row in user:
        assert row.where.startswith(f"dL/d{p}, trial")
        labels = dict(row.values)
        assert len(labels) == 2 and "user gradient" in labels  # both values are shown
        assert "user gradient = " in row.detail


def test_wrong_user_gradient_caught_by_central_differences_too() -> None:
    h, x = time_function("h"), time_function("x")
    w, u = sp.symbols("w u", real=True)
    rec = sr.Recurrence(sp.Eq(h(t), sr.relu(w * h(t - 1) + u * x(t)) - h(t - 1) / 2), name="r")
    _, g = true_gradient(rec, 3)
    assert verify(rec, steps=3, gradient=g, checks=[]).ok
    report = verify(rec, steps=3, gradient={**g, w: sp.Float(1.01) * g[w]}, checks=[])
    assert [row.status for row in report.rows] == [FAIL, FAIL]
    assert "central differences" in report.rows[1].compared


def test_user_gradient_as_a_function() -> None:
    """A hand-written BPTT loop for h(t) = tanh(w h(t-1) + u x(t) + b), L = sum h(t)^2 / 2."""
    rec = sr.cells.rnn()

    def bptt(params: dict, inputs: dict, init: dict, shift: int = 0) -> dict:
        w, u, b = params["w"], params["u"], params["b"]
        xs = inputs["x"]
        hs = [float(init["h"])]
        for x in xs:
            hs.append(np.tanh(w * hs[-1] + u * x + b))
        gw = gu = gb = 0.0
        carry = 0.0
        for k in range(len(xs), 0, -1):
            da = (hs[k] + carry) * (1 - hs[k] ** 2)
            gw += da * hs[k - 1 + shift]
            gu += da * xs[k - 1]
            gb += da
            carry = da * w
        return {"w": gw, "u": gu, "b": gb, "init": {"h": carry}}

    good = verify(rec, steps=4, gradient=bptt, checks=[])
    assert good.ok, str(good)

    def late(params: dict, inputs: dict, init: dict) -> dict:
        return bptt(params, inputs, init, shift=1)  # h(k) where h(k-1) belongs

    bad = verify(rec, steps=4, gradient=late, checks=[])
    assert [row.status for row in bad.rows] == [FAIL, FAIL]
    assert bad.rows[0].where.startswith("dL/dw")


def test_user_gradient_with_matrix_keys_and_names() -> None:
    rec = sr.cells.elman(2)
    U, g = true_gradient(rec, 2)
    W = sp.MatrixSymbol("W", 2, 2)
    entries = sr.matrices.explicit(W)
    as_matrix = {W: sp.ImmutableMatrix(2, 2, [g[e] for e in entries])}
    assert verify(rec, steps=2, gradient=as_matrix, checks=[]).ok
    wrong = {"W": sp.ImmutableMatrix(2, 2, [g[e] for e in entries]).T}
    assert not verify(rec, steps=2, gradient=wrong, checks=[]).ok


def test_user_gradient_errors_name_the_problem() -> None:
    rec = sr.cells.rnn()
    h = rec.states[0]
    w = _param(rec, "w")
    with pytest.raises(SymrnnError, match="not a parameter"):
        verify(rec, steps=2, gradient={"v": 1}, checks=[])
    with pytest.raises(SymrnnError, match=r"uses h\(3\)"):
        verify(rec, steps=2, gradient={w: h(3)}, checks=[])
    with pytest.raises(SymrnnError, match="neither a parameter nor a free initial state"):
        verify(rec, steps=2, gradient={h(1): 1}, checks=[])
    with pytest.raises(SymrnnError, match="returned 'omega', which is not a parameter"):
        verify(rec, steps=2, gradient=lambda p, x, h0: {"omega": 1.0}, checks=[])
    with pytest.raises(SymrnnError, match="returned list"):
        verify(rec, steps=2, gradient=lambda p, x, h0: [1.0], checks=[])
    assert str(verify(rec, steps=2, checks=[])).endswith("NOTHING COMPARED: no checks run")


# --------------------------------------------------------------- wrong closed forms
def _wrong_closed_forms(mutate: Any) -> type[Unfolded]:
    class Wrong(Unfolded):
        def closed_form(self, k: int, of: Any = None) -> Any:
            return mutate(super().closed_form(k, of), k)

    return Wrong


CLOSED_FORM_MUTATIONS = {
    "factor at k = 2": lambda e, k: e * sp.Float(1.000001) if k == 2 else e,
    "dropped bias at k = 3": lambda e, k: (
        e.xreplace({sp.Symbol("b", real=True): 0}) if k == 3 else e
    ),
    "inputs swapped at k = 2": lambda e, k: (
        e.xreplace(
            {
                a: a.func(3 - int(time_of(a)))
                for a in e.atoms(sp.Function)
                if is_time_atom(a) and a.func.__name__ == "x"
            }
        )
        if k == 2
        else e
    ),
    "tanh for sin at k = 3": lambda e, k: e.replace(sp.tanh, sp.sin) if k == 3 else e,
}


@pytest.mark.parametrize("mutation", list(CLOSED_FORM_MUTATIONS))
def test_wrong_closed_forms_are_caught(mutation: str) -> None:
    U = sr.unfold(sr.cells.rnn(), 3)
    Wrong = _wrong_closed_forms(CLOSED_FORM_MUTATIONS[mutation])
    report = verify(Wrong(U.recurrence, U.steps, U.equations, U.init))
    assert failing(report) == {"closed_form"}, str(report)
    (row,) = report.failures
    step = 2 if "k = 2" in mutation else 3
    assert row.where.startswith(f"step {step}, h, trial")
    assert "closed form = " in row.detail and "iteration = " in row.detail


def test_closed_form_with_a_leftover_chain_quantity_is_caught() -> None:
    U = sr.unfold(sr.cells.rnn(), 3)
    h = U.recurrence.states[0]
    Wrong = _wrong_closed_forms(lambda e, k: e + 0 * h(1) + h(1) if k == 3 else e)
    report = verify(Wrong(U.recurrence, U.steps, U.equations, U.init), checks=["closed_form"])
    (row,) = report.rows
    assert row.status == FAIL and "still contains h(1)" in row.detail


def test_wrong_symbolic_t_solution_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    solve_module = sys.modules["symrnn.solve"] if "symrnn.solve" in sys.modules else None
    if solve_module is None:
        import symrnn.solve as solve_module  # type: ignore[no-redef]
    real = solve_module.solve

    def wrong(rec: Any, of: Any = None) -> Any:
        sol = real(rec, of)
        return dataclasses.replace(sol, expr=sol.expr * (1 + sp.Float(1e-6)))

    rec = sr.cells.linear()
    assert verify(rec, steps=3, checks=["solve"]).ok
    monkeypatch.setattr(solve_module, "solve", wrong)
    report = verify(rec, steps=3)
    assert failing(report) == {"solve"}, str(report)


# ---------------------------------------------------------------- wrong Jacobians
def test_user_jacobian() -> None:
    rec = sr.cells.rnn()
    h = rec.states[0]
    w = _param(rec, "w")
    right = w**2 * (1 - h(2) ** 2) * (1 - h(3) ** 2)
    good = verify(rec, steps=3, jacobian={(h(3), h(1)): right}, checks=[])
    assert good.ok and len(good.rows) == 2, str(good)
    for wrong in (w * (1 - h(2) ** 2) * (1 - h(3) ** 2), w**2 * (1 - h(3) ** 2), -right):
        bad = verify(rec, steps=3, jacobian={(h(3), h(1)): wrong}, checks=[])
        assert [row.status for row in bad.rows] == [FAIL, FAIL], str(bad)
        assert bad.rows[0].where.startswith("dh(3)/dh(1)")


def test_user_jacobian_of_a_vector_state() -> None:
    rec = sr.cells.elman(2)
    U = sr.unfold(rec, 2)
    hv = sr.vector("h", 2)
    J = sr.jacobian(U, hv(2), hv(1))
    assert verify(rec, steps=2, jacobian={(hv(2), hv(1)): J}, checks=[]).ok
    assert not verify(rec, steps=2, jacobian={(hv(2), hv(1)): J.T}, checks=[]).ok


# ------------------------------------------------------ wrong library internals are caught
def test_wrong_forward_mode_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verify_module.grad

    def wrong(
        U: Any, loss: Any, wrt: Any = None, mode: str = "reverse", expand: bool = False
    ) -> Any:
        g = real(U, loss, wrt=wrt, mode=mode, expand=expand)
        if mode == "forward":
            first = next(iter(g))
            g[first] = g[first] * sp.Float(1.0001)
        return g

    monkeypatch.setattr(verify_module, "grad", wrong)
    report = verify(sr.cells.rnn(), steps=3)
    assert failing(report) == {"gradient"}
    assert [r.compared for r in report.failures] == ["reverse mode (BPTT) vs forward mode (RTRL)"]


def test_wrong_reverse_mode_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verify_module.grad

    def wrong(
        U: Any, loss: Any, wrt: Any = None, mode: str = "reverse", expand: bool = False
    ) -> Any:
        g = real(U, loss, wrt=wrt, mode=mode, expand=expand)
        if mode == "reverse":
            last = list(g)[-1]
            g[last] = -g[last]
        return g

    monkeypatch.setattr(verify_module, "grad", wrong)
    report = verify(sr.cells.rnn(), steps=3)
    compared = {r.compared for r in report.failures}
    assert "reverse mode (BPTT) vs forward mode (RTRL)" in compared
    assert "reverse mode vs complex step" in compared
    assert "closed forms g(k), k = 1..3, vs iteration" not in compared


def test_wrong_generated_code_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verify_module.lambdify

    def wrong(obj: Any, loss: Any = None, mode: str = "scan", **kw: Any) -> Any:
        compiled = real(obj, loss=loss, mode=mode, **kw)
        if mode != "unrolled":
            return compiled
        module = compiled._module
        forward = module.forward

        def shifted(*args: Any, **kwargs: Any) -> Any:
            out = forward(*args, **kwargs)
            return {k: np.roll(v, 1, axis=0) for k, v in out.items()}  # one step late

        module.forward = shifted
        return compiled

    monkeypatch.setattr(verify_module, "lambdify", wrong)
    report = verify(sr.cells.rnn(), steps=3)
    assert [r.compared for r in report.failures] == ["unrolled code forward vs Python loop"]


def test_wrong_batch_sums_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gradients averaged over the batch instead of summed: one sequence at a time cannot see it.
    numeric_module = sys.modules["symrnn.numeric"]
    real = numeric_module._batch_sum

    def mean(printer: Any, expr: Any, varying: Any) -> str:
        return f"({real(printer, expr, varying)})/_n"

    monkeypatch.setattr(numeric_module, "_batch_sum", mean)
    report = verify(sr.cells.elman(2), steps=3)
    assert [r.compared for r in report.failures] == [
        "scan code, batch of 3 vs one sequence at a time"
    ]
    assert "dL/d" in report.failures[0].where


# ------------------------------------------------------------------------ arguments
def test_checks_subset_and_argument_errors() -> None:
    rnn = sr.cells.rnn()
    report = verify(rnn, steps=2, checks=["gradient"])
    assert {row.check for row in report.rows} == {"gradient"}
    assert verify(rnn, steps=2, checks="jacobian").rows[0].check == "jacobian"
    with pytest.raises(SymrnnError, match="unknown check 'grad'; choose from closed_form"):
        verify(rnn, checks=["grad"])
    with pytest.raises(SymrnnError, match="trials must be"):
        verify(rnn, trials=0)
    with pytest.raises(LimitError, match="at most 100 steps"):
        verify(rnn, steps=101)
    with pytest.raises(SymrnnError, match="steps must be a positive integer"):
        verify(rnn, steps=0)
    with pytest.raises(SymrnnError, match="needs a Recurrence"):
        verify("h(t) = h(t-1)")  # type: ignore[arg-type]
    with pytest.raises(SymrnnError, match="ranges must be"):
        verify(rnn, ranges=[1])
    with pytest.raises(SymrnnError, match="low <= high"):
        verify(rnn, ranges=(1, 0))


def test_seed_and_ranges_change_the_points() -> None:
    rnn = sr.cells.rnn()
    a = verify(rnn, steps=2, checks=["gradient"], seed=1)
    b = verify(rnn, steps=2, checks=["gradient"], seed=1)
    c = verify(rnn, steps=2, checks=["gradient"], seed=2)
    assert a == b and a.rows != c.rows
    assert verify(rnn, steps=2, checks=["gradient"], ranges={"w": (2, 3), "inputs": (-3, 3)}).ok


def test_rows_know_whether_they_are_ok() -> None:
    row = Row("user", "x vs y", 1.0, 0.5, "trial 0", "rtol 1e-9, atol 1e-12", FAIL, "x = 1, y = 2")
    assert not row.ok and row.to_dict()["ok"] is False
    assert Row("solve", "s", None, None, "", "", SKIPPED, "why").ok
    report = Report((row,), "r", 1, 0)
    assert not report.ok and report.failures == (row,)
    assert "FAILED: 1 fail" in str(report) and "x = 1, y = 2" in str(report)


def test_a_one_vector_target_stays_a_vector_in_every_code_path():
    """A loss object names its target vector; at size 1 the component code used to call it
    y_1, so the matrix row (which calls it y) failed with 'unknown input(s) y_1'."""
    elman = sr.cells.elman(2, outputs=1)
    loss = sr.squared_error(sr.vector("o", 1)(sr.t), sr.vector("y", 1)(sr.t))
    for level in ("matrix", "components"):
        assert sr.lambdify(elman, loss=loss, level=level).input_shapes["y"] == (1,)
    report = sr.verify(elman, steps=3, loss=loss, seed=0)
    assert report.ok, str(report)
    ran = {row.compared for row in report.rows if row.status == "pass"}
    assert "matrix code vs component code" in ran
    assert "scan code loss and gradient vs reverse mode" in ran
