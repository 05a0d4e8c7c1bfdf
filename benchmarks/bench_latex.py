"""Time to write a derivation document for the gated cells, and how much of it is printing.

Target (issue 14): ``sr.derivation`` of a 3-unit GRU or LSTM with a loss in under 3 s, as
called by default (the search for a closed form in t and the numeric checks included), and
written as a LaTeX document.  Closed forms are sized before they are printed
(:func:`symrnn.latex.estimated_chars`), so a closed form too long to show costs nothing
(before, most of the 25 s for a minimal gated unit went into LaTeX that was then thrown away),
and vector cells are checked at matrix level.

    python benchmarks/bench_latex.py           # GRU, LSTM, MGU, 3 units; with and without checks
    python benchmarks/bench_latex.py --quick   # GRU and LSTM without the numeric checks (for CI)

Prints a table; makes no assertions about time.
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import symrnn as sr


def best_time(rec: sr.Recurrence, loss: sp.Expr, repeats: int, verify: bool) -> float:
    """The fastest of ``repeats`` derivations over 3 steps (default options otherwise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        D = sr.derivation(rec, steps=3, loss=loss, verify=verify)
        D.to_latex(document=True)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the numeric checks")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    modes = [False] if args.quick else [False, True]

    h, y = sr.vector("h", 3), sr.vector("y", 3)
    loss = sr.squared_error(h(sr.t), y(sr.t))
    sr.derivation(sr.cells.rnn(), steps=1, solve=False, verify=False)  # warm up the printers
    print("sr.derivation(cell(3), steps=3, loss=squared_error(h, y)).to_latex(document=True)")
    print(f"{'cell':>6} {'units':>6} {'checks':>7} {'time [s]':>9} {'target [s]':>11}")
    for name in ("gru", "lstm") if args.quick else ("gru", "lstm", "mgu"):
        rec = getattr(sr.cells, name)(3)
        for verify in modes:
            seconds = best_time(rec, loss, repeats, verify)
            verdict = "met" if seconds < 3 else "MISSED"
            print(
                f"{name:>6} {3:>6} {'yes' if verify else 'no':>7} {seconds:>9.2f} "
                f"{'< 3':>11} {verdict}"
            )


if __name__ == "__main__":
    main()
