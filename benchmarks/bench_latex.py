"""Time to write a derivation document for the gated cells, and how much of it is printing.

Target (issue 14): ``sr.derivation`` of a 3-unit GRU or LSTM with a loss in under 3 s.  Closed
forms are sized before they are printed (:func:`symrnn.latex.estimated_chars`), so a closed form
too long to show costs nothing; before, most of the 25 s for a minimal gated unit went into
LaTeX that was then thrown away.

    python benchmarks/bench_latex.py           # GRU and LSTM, 3 units; with and without checks
    python benchmarks/bench_latex.py --quick   # without the numeric checks (for CI)

Prints a table; makes no assertions about time.
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import symrnn as sr


def best_time(rec: sr.Recurrence, loss: sp.Expr, repeats: int, verify: bool) -> float:
    """The fastest of ``repeats`` derivations (3 steps, no search for a closed form in t)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        D = sr.derivation(rec, steps=3, loss=loss, solve=False, verify=verify)
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
    print(f"{'cell':>6} {'units':>6} {'checks':>7} {'time [s]':>9} {'target [s]':>11}")
    for name in ("gru", "lstm"):
        rec = getattr(sr.cells, name)(3)
        for verify in modes:
            seconds = best_time(rec, loss, repeats, verify)
            target = "3" if not verify else "-"
            print(f"{name:>6} {3:>6} {'yes' if verify else 'no':>7} {seconds:>9.2f} {target:>11}")


if __name__ == "__main__":
    main()
