"""Stated limits are checked before the work they bound: one-line errors, exit 2, never a hang.

Times are CPU seconds of this process or of the child (they do not depend on how busy the
machine is).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy as sp

import symrnn as sr
from symrnn.cli import MAX_PRINTED_CLOSED_FORM_NODES
from symrnn.errors import LimitError
from symrnn.parsing import MAX_MAGNITUDE
from symrnn.recurrence import MAX_LAG
from symrnn.unfold import MAX_CLOSED_FORM_NODES
from symrnn.verify import MAX_VERIFY_QUANTITIES

EQ = "h(t) = tanh(w*h(t-1) + x(t))"


def _cli(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, cpu


def _refused(done: subprocess.CompletedProcess[str], word: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert word in done.stderr, done.stderr


@pytest.mark.parametrize("eq", ["h(t) = w*h(t-100000) + x(t)", "h(t) = w*h(t-1) + x(t-1000000000)"])
@pytest.mark.parametrize("command", ["check", "codegen", "unfold"])
def test_long_lags_are_refused(tmp_path: Path, eq: str, command: str) -> None:
    done, cpu = _cli(tmp_path, command, eq, "--steps", "3")
    _refused(done, f"more than the limit of {MAX_LAG:,}")
    assert cpu < 10


def test_lag_at_the_limit_is_accepted() -> None:
    rec = sr.Recurrence.parse(f"h(t) = w*h(t-{MAX_LAG}) + x(t)")
    assert rec.order == MAX_LAG
    with pytest.raises(LimitError, match="lag of 1,001"):
        sr.Recurrence.parse(f"h(t) = w*h(t-{MAX_LAG + 1}) + x(t)")


@pytest.mark.parametrize(
    "eq", ["h(t) = 10**999*h(t-1) + x(t)", "h(t) = exp(exp(exp(exp(10))))*h(t-1) + x(t)"]
)
@pytest.mark.parametrize("command", ["check", "unfold", "codegen", "latex", "grad"])
def test_numbers_beyond_float64_exit_2(tmp_path: Path, eq: str, command: str) -> None:
    extra = ["--loss", "h(t)**2"] if command == "grad" else []
    done, cpu = _cli(tmp_path, command, eq, "--steps", "3", *extra)
    _refused(done, "beyond the limit of 10**300")
    assert cpu < 10


def test_loss_with_a_huge_number_exits_2(tmp_path: Path) -> None:
    done, _ = _cli(tmp_path, "codegen", EQ, "--loss", "10**400*h(t)**2")
    _refused(done, "the loss has the number")
    assert done.stdout == ""


def test_huge_parameter_value_exits_2(tmp_path: Path) -> None:
    model = tmp_path / "m.toml"
    model.write_text(f'equations = "{EQ}"\nloss = "h(t)**2"\n[params]\nw = {"9" * 320}\n')
    for command in ("check", "codegen", "grad"):
        done, _ = _cli(tmp_path, command, str(model))
        _refused(done, "is not a finite number of moderate size")
        assert len(done.stderr) < 300


def test_python_api_refuses_numbers_beyond_float64() -> None:
    h, x = sp.Function("h", real=True), sp.Function("x", real=True)
    with pytest.raises(LimitError, match="beyond the limit"):
        sr.Recurrence(sp.Eq(h(sr.t), sp.Integer(10) ** 400 * h(sr.t - 1) + x(sr.t)))
    rec = sr.Recurrence.parse(EQ)
    with pytest.raises(LimitError, match="beyond the limit"):
        sr.lambdify(rec, loss=sp.Integer(10) ** 400 * rec.states[0](sr.t) ** 2)
    sr.Recurrence(sp.Eq(h(sr.t), sp.Integer(MAX_MAGNITUDE) * h(sr.t - 1) + x(sr.t)))  # allowed


@pytest.mark.parametrize("eq", ["h(t) = h(t-1)**2 + h(t-1)", "h(t) = tanh(h(t-1)) + h(t-1)*x(t)"])
def test_closed_form_size_is_estimated_before_substituting(eq: str) -> None:
    U = sr.unfold(sr.Recurrence.parse(eq), 30)
    start = time.process_time()
    with pytest.raises(LimitError, match=f"more than the limit of {MAX_CLOSED_FORM_NODES:,}"):
        U.closed_form(30)
    assert time.process_time() - start < 2.0


def test_closed_form_estimate_counts_the_tree() -> None:
    U = sr.unfold(sr.Recurrence.parse("h(t) = h(t-1)**2 + h(t-1)"), 8)
    tree = sum(1 for _ in sp.preorder_traversal(U.closed_form(8)))
    assert tree <= U.closed_form_size(8) <= 2 * tree


@pytest.mark.parametrize("eq", ["h(t) = h(t-1)**2 + h(t-1)", "h(t) = tanh(h(t-1)) + h(t-1)*x(t)"])
def test_cli_closed_form_refuses_within_two_seconds(tmp_path: Path, eq: str) -> None:
    done, cpu = _cli(tmp_path, "unfold", eq, "--steps", "30", "--closed-form")
    _refused(done, f"more than the limit of {MAX_PRINTED_CLOSED_FORM_NODES:,} for printing")
    assert cpu < 4  # interpreter start and imports included


def test_check_with_eight_max_arguments_is_quick() -> None:
    rec = sr.Recurrence.parse("h(t) = Max(w*h(t-1), x(t), a, b, c, d, e, f)")
    start = time.process_time()
    assert sr.verify(rec, steps=5).ok
    assert time.process_time() - start < 30  # 112 s before


def test_verify_refuses_too_many_coupled_states_at_once() -> None:
    n = MAX_VERIFY_QUANTITIES + 36
    eqs = [f"h{i}(t) = tanh(w*h{(i + 1) % n}(t-1) + h{i}(t-1)/2 + x(t))" for i in range(n)]
    rec = sr.Recurrence.parse(eqs)
    start = time.process_time()
    with pytest.raises(LimitError, match=f"at most {MAX_VERIFY_QUANTITIES} scalar quantities"):
        sr.verify(rec, steps=3)
    assert time.process_time() - start < 1.0
