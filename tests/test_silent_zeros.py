"""A derivative by something the computation does not contain is an error, never 0.

And ``check`` never reports OK when it compared nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import SymrnnError

RNN = "h(t) = tanh(w*h(t-1) + x(t))"


@pytest.fixture
def U() -> sr.Unfolded:
    return sr.unfold(sr.Recurrence.parse(RNN), 3)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_same_name_other_assumptions_is_named(U: sr.Unfolded, mode: str) -> None:
    h = U.recurrence.states[0]
    with pytest.raises(SymrnnError, match=r"other assumptions \(none vs real=True\).*rec.params"):
        sr.grad(U, h(3) ** 2, wrt=[sp.Symbol("w")], mode=mode)
    # the recurrence's own w, by symbol or by name, works and is not zero
    w = U.recurrence.params[0]
    assert sr.grad(U, h(3) ** 2, wrt=["w"], mode=mode)[w] != 0


@pytest.mark.parametrize(
    ("wrt", "have"), [("h(5)", "h(0)…h(3)"), ("h(-5)", "h(0)…h(3)"), ("x(7)", "x(1)…x(3)")]
)
def test_times_that_do_not_exist(U: sr.Unfolded, wrt: str, have: str) -> None:
    with pytest.raises(SymrnnError, match=re.escape(f"does not have it; it has {have}")):
        sr.grad(U, "h(3)**2", wrt=[wrt])


def test_initial_state_given_a_value_is_not_a_variable() -> None:
    rec = sr.Recurrence.parse(RNN)
    U = sr.unfold(rec, 2, init={"h(0)": 0})
    with pytest.raises(SymrnnError, match="given a value in init"):
        sr.grad(U, "h(2)", wrt=["h(0)"])


def test_unknown_symbol(U: sr.Unfolded) -> None:
    with pytest.raises(SymrnnError, match="neither a parameter of the recurrence"):
        sr.grad(U, "h(3)", wrt=[sp.Symbol("zz")])


@pytest.mark.parametrize(
    ("template", "message"),
    [("y(t)**2", "uses no quantity of the chain"), ("h(t-100000)**2", "does not have")],
)
def test_loss_that_nothing_reaches(U: sr.Unfolded, template: str, message: str) -> None:
    with pytest.raises(SymrnnError, match=message):
        sr.grad(U, sr.total_loss(U, template))


def test_loss_at_a_time_after_the_chain(U: sr.Unfolded) -> None:
    with pytest.raises(SymrnnError, match=r"uses h\(5\)"):
        sr.bptt(U, "h(5)**2")


def test_later_input_still_has_zero_jacobian_by_causality(U: sr.Unfolded) -> None:
    h, x = U.recurrence.states[0], U.recurrence.inputs[0]
    assert sr.jacobian(U, h(2), x(3)) == 0  # x(3) is in the chain, after h(2)
    assert sr.jacobian(U, h(2), x(2)) != 0
    with pytest.raises(SymrnnError, match="does not have it"):
        sr.jacobian(U, h(2), x(7))


def test_loss_only_symbol_is_a_variable(U: sr.Unfolded) -> None:
    h, lam = U.recurrence.states[0], sp.Symbol("lam")
    assert sr.grad(U, h(3) ** 2 + lam * h(1), wrt=[lam])[lam] == h(1)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "symrnn", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("wrt", ["h(5)", "x(7)", "h(-5)"])
def test_cli_grad_wrt_missing_time_exits_2(wrt: str) -> None:
    done = _cli("grad", RNN, "--loss", "h(t)**2", "--steps", "3", "--wrt", wrt)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "does not have it" in done.stderr
    assert done.stdout == ""


def test_cli_grad_unreached_loss_exits_2() -> None:
    done = _cli("grad", RNN, "--loss", "y(t)**2", "--steps", "3")
    assert done.returncode == 2 and "uses no quantity of the chain" in done.stderr


def test_cli_check_with_nothing_compared_is_not_ok() -> None:
    done = _cli("check", "s(t) = f(s(t-1), theta)", "--functions", "f")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("NOTHING COMPARED"), done.stdout
    assert "abstract function f" in lines[0]
    assert "OK" not in done.stdout.replace("NOTHING COMPARED", "")


# ------------------------------------------------------------------ sums in a loss


def _sum_case():
    rnn = sr.cells.rnn()
    (h,) = rnn.states
    return rnn, h, sp.Symbol("k", integer=True)


def test_a_sum_over_fixed_times_is_the_sum_written_out():
    """Sum(h(k)**2, (k, 1, 3)) used to count as a template with no time atoms: summed over
    the steps again (3*Sum) and differentiated to nothing."""
    rnn, h, k = _sum_case()
    U = sr.unfold(rnn, 3)
    written = h(1) ** 2 + h(2) ** 2 + h(3) ** 2
    assert sr.grad(U, sp.Sum(h(k) ** 2, (k, 1, 3))) == sr.grad(U, written)
    report = sr.verify(rnn, steps=3, loss=sp.Sum(h(k) ** 2, (k, 1, 3)), seed=0)
    assert report.ok, str(report)
    gradient_rows = [r for r in report.rows if r.check == "gradient"]
    assert gradient_rows and all(r.status == "pass" for r in gradient_rows)


def test_a_sum_up_to_t_in_a_per_step_loss_is_written_out_at_each_step():
    rnn, h, k = _sum_case()
    U = sr.unfold(rnn, 3)
    total = sr.total_loss(U, sp.Sum(h(k) ** 2, (k, 1, sr.t)))
    assert sr.grad(U, total) == sr.grad(U, 3 * h(1) ** 2 + 2 * h(2) ** 2 + h(3) ** 2)


@pytest.mark.parametrize(
    ("upper", "message"),
    [
        (sp.Symbol("n", integer=True), "sums up to n, which is not a number"),
        (10**6, "has 1000000 terms"),
    ],
)
def test_sums_that_cannot_be_written_out_are_refused(upper, message):
    rnn, h, k = _sum_case()
    with pytest.raises(SymrnnError, match=message):
        sr.grad(sr.unfold(rnn, 3), sp.Sum(h(k) ** 2, (k, 1, upper)))
