"""Matrix-level code (issue 12): compile time by hidden size, speed and memory against NumPy BPTT.

Workload: ``sr.cells.elman(n, inputs=n // 2)``, a vector target ``y`` of size n, the loss
``sr.squared_error(h(t), y(t))`` summed over T = 100 steps; for the gated cells
``sr.cells.gru(n, inputs=m)`` and ``sr.cells.lstm(n, inputs=m)`` with the same loss on ``h``.

* (a) derivation + compilation, ``sr.lambdify(rec, loss=loss)`` from the Recurrence, by n;
* (b) ``value_and_grad`` against the hand-written NumPy forward pass + BPTT (``hand_rnn.py``,
  checked in tests/test_hand_oracles.py), as a ratio;
* (c) GRU and LSTM against their hand-written NumPy BPTT and PyTorch's ``nn.GRU`` / ``nn.LSTM``
  forward + backward in float64 on the CPU (where torch is installed), and the project's goal,
  a 256-unit GRU, against the hand-written BPTT for one sequence and a batch of 32;
* (d) peak traced memory of one gradient evaluation over the bytes of the states BPTT must store.

Each size runs in its own process: compilation has a time cap and the process a memory cap, so
a size symrnn cannot handle yet prints "not run: …" instead of hanging.  Before any timing the
contenders must agree on the loss and the gradient (relative 1e-9); the sides are then timed in
turns and the medians compared.  BLAS runs on one thread everywhere (and torch too), since
multi-threaded BLAS on these shared 2-core machines made the hand loop vary 3x.  The targets
are printed next to the ratios; nothing asserts on time.

    python benchmarks/bench_matrix.py [--quick] [--cap SECONDS] [--sizes 64,symbolic] [--cells gru]

The n = 4 figures (scan compile flat in T, unrolled ms/step, batch 1 and 1,024) stay in
bench_numeric.py.
"""

from __future__ import annotations

import os

# Set before NumPy (or torch) loads its BLAS; the worker processes inherit it.
os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

import argparse
import gc
import json
import resource
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import hand_rnn as hand
import numpy as np
import sympy as sp

import symrnn as sr

#: Vector quantities per step that BPTT of each cell must keep from the forward pass.
STORED = {
    "elman": ("h",),
    "gru": ("h", "r", "z", "g", "W_g h + b_hg"),
    "lstm": ("h", "c", "i", "f", "g", "o"),
}
#: Address-space limit of a worker: a size that needs more fails alone, not the machine.
WORKER_MEMORY = 8 * 2**30
TOLERANCE = 1e-9


# ------------------------------------------------------------------------------ the models
def inputs_for(n: int) -> int:
    return max(1, n // 2)


def symrnn_model(cell: str, n: Any, m: Any) -> tuple[sr.Recurrence, sp.Expr]:
    """The recurrence and the per-step loss ½‖h − y‖² of the workload."""
    rec = getattr(sr.cells, cell)(n, inputs=m)
    h, y = sr.vector("h", n), sr.vector("y", n)
    return rec, sr.squared_error(h(sr.t), y(sr.t))


def hand_names(cell: str, shapes: dict[str, tuple], n: Any, m: Any) -> dict[str, str] | None:
    """The oracle's name of each symrnn parameter, or None when the cells do not correspond.

    The oracles and ``sr.cells`` both follow PyTorch's cells in the book's naming: input weights
    ``U_*`` (n × m), recurrent weights ``W_*`` (n × n), biases ``b_*`` and ``b_h*``.  Adjust the
    correspondence here if the cells change.
    """
    want = {k: _dims(s) for k, s in hand.param_shapes(cell, n, m).items()}
    if {k: _dims(s) for k, s in shapes.items()} != want:
        return None
    return {k: k for k in shapes}


def _dims(shape: tuple) -> tuple[str, ...]:
    """A shape as comparable text (symbolic sizes come as names), without unit dimensions."""
    return tuple(str(d) for d in shape if str(d) != "1")


def translate(P: dict[str, np.ndarray], names: dict[str, str], shapes: dict[str, tuple]):
    """The oracle's parameters ``P`` as symrnn's: renamed, and reshaped at explicit sizes."""
    return {
        s: P[h].reshape(shapes[s]) if all(isinstance(d, int) for d in shapes[s]) else P[h]
        for s, h in names.items()
    }


def check_agree(ours: tuple[Any, dict], theirs: tuple[Any, dict], names: dict[str, str]) -> float:
    """Largest relative difference of loss and gradient; AssertionError past the tolerance."""
    (value, grads), (hand_value, hand_grads) = ours, theirs
    worst = abs(float(value) - hand_value) / abs(hand_value)
    for name, hname in names.items():
        scale = np.max(np.abs(hand_grads[hname]))
        diff = np.max(np.abs(np.reshape(grads[name], hand_grads[hname].shape) - hand_grads[hname]))
        worst = max(worst, float(diff / scale))
    assert worst <= TOLERANCE, f"loss or gradient disagree with the hand-written BPTT: {worst:.1e}"
    return worst


# --------------------------------------------------------------------------------- timing
def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def medians_in_turns(fns: list[Callable[[], Any]], first: list[float], budget: float, most: int):
    """Median time of each function, measured in turns so that load changes hit all alike.

    ``first`` are the times of a first call of each; they fix how many turns fit the budget.
    """
    repeats = max(3, min(most, int(budget / sum(first))))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(timed(fn)[1])
    return [statistics.median(ts) for ts in times], repeats


def peak_bytes(fn: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


# -------------------------------------------------------------------------------- workers
class CompileTimeout(BaseException):
    """The compile cap ran out (a BaseException, so that no ``except Exception`` swallows it)."""


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


def compile_capped(cell: str, n: Any, m: Any, cap: float) -> sr.Compiled | None:
    """Compile under a time cap; emit the time or why it did not finish."""

    def stop(signum: int, frame: Any) -> None:
        raise CompileTimeout

    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, cap)
    try:
        rec, loss = symrnn_model(cell, n, m)
        F, seconds = timed(lambda: sr.lambdify(rec, loss=loss))
    except CompileTimeout:
        emit(kind="compile", note=f"not run: compile > {cap:.0f} s (stopped)")
        return None
    except (sr.SymrnnError, MemoryError, RecursionError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        emit(kind="compile", note=f"not run: {type(exc).__name__}: {first}")
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    emit(kind="compile", seconds=seconds)
    return F


def torch_turns(cell: str, n: int, batches: list[int], T: int, budget: float, most: int) -> None:
    """Hand-written NumPy BPTT against torch autograd, checked equal first, timed in turns."""
    try:
        import torch
    except ImportError:
        emit(kind="torch", note="not run: torch is not installed")
        return
    torch.set_num_threads(1)
    m = inputs_for(n)
    rng = np.random.default_rng(1)
    P = hand.init_params(cell, n, m, rng)
    module = hand.torch_module(cell, P)
    value_and_grad = hand.CELLS[cell][0]
    for batch in batches:
        x, y = rng.normal(size=(T, batch, m)), rng.normal(size=(T, batch, n))
        theirs, first_torch = timed(lambda x=x, y=y: hand.torch_value_and_grad(cell, module, x, y))
        ours, first_hand = timed(lambda x=x, y=y: value_and_grad(P, x, y))
        check_agree(theirs, ours, {k: k for k in P})
        (torch_s, hand_s), repeats = medians_in_turns(
            [
                lambda x=x, y=y: hand.torch_value_and_grad(cell, module, x, y),
                lambda x=x, y=y: value_and_grad(P, x, y),
            ],
            [first_torch, first_hand],
            budget,
            most,
        )
        emit(kind="torch", batch=batch, torch=torch_s, hand=hand_s, repeats=repeats)


def symrnn_turns(cell: str, F: sr.Compiled, n: int, args: argparse.Namespace) -> None:
    """symrnn's value_and_grad against the hand-written BPTT: checked, timed, memory."""
    m = inputs_for(n)
    shapes = F.param_shapes
    names = hand_names(cell, shapes, n, m)
    if names is None:
        listed = ", ".join(sorted(shapes))
        emit(kind="time", note=f"not run: symrnn's {cell} has parameters {listed}, not PyTorch's")
        return
    rng = np.random.default_rng(2)
    P = hand.init_params(cell, n, m, rng)
    Ps = translate(P, names, shapes)
    # Every way the oracle is written runs in the turns; the fastest is the baseline.
    ways = hand.ELMAN_WAYS if cell == "elman" else {"store-all": hand.CELLS[cell][0]}
    for batch in args.batches:
        x, y = rng.normal(size=(args.T, batch, m)), rng.normal(size=(args.T, batch, n))
        # One sequence goes to symrnn without a batch axis: the path chosen for it is timed.
        inputs = {"x": x[:, 0], "y": y[:, 0]} if batch == 1 else {"x": x, "y": y}
        fns = [lambda inputs=inputs: F.value_and_grad(Ps, inputs)]
        fns += [lambda f=f, x=x, y=y: f(P, x, y) for f in ways.values()]
        results = [timed(fn) for fn in fns]
        error = max(check_agree(results[0][0], theirs, names) for theirs, _ in results[1:])
        medians, repeats = medians_in_turns(
            fns, [seconds for _, seconds in results], args.budget, args.most
        )
        hand_s, way = min(zip(medians[1:], ways, strict=True))
        emit(
            kind="time",
            batch=batch,
            ours=medians[0],
            hand=hand_s,
            way=way,
            repeats=repeats,
            error=error,
        )
    if args.memory:
        batch = args.memory
        x, y = rng.normal(size=(args.T, batch, m)), rng.normal(size=(args.T, batch, n))
        emit(
            kind="memory",
            batch=batch,
            ours=peak_bytes(lambda: F.value_and_grad(Ps, {"x": x, "y": y})),
            hand=min(peak_bytes(lambda f=f: f(P, x, y)) for f in ways.values()),
            stored=len(STORED[cell]) * args.T * batch * n * 8,
        )


def symbolic_check(F: sr.Compiled, T: int) -> None:
    """Code compiled for symbolic sizes, run at n = 7 against the hand-written BPTT."""
    n, m = sp.symbols("n m", integer=True, positive=True)
    names = hand_names("elman", F.param_shapes, n, m)
    if names is None:
        emit(kind="symbolic", note=f"check at n = 7 not run: parameters {F.param_shapes}")
        return
    rng = np.random.default_rng(3)
    P = hand.init_params("elman", 7, 3, rng)
    x, y = rng.normal(size=(T, 4, 3)), rng.normal(size=(T, 4, 7))
    try:
        ours = F.value_and_grad(translate(P, names, F.param_shapes), {"x": x, "y": y})
    except sr.SymrnnError as exc:
        emit(kind="symbolic", note=f"check at n = 7 not run: {type(exc).__name__}: {exc}")
        return
    error = check_agree(ours, hand.elman_value_and_grad(P, x, y), names)
    emit(kind="symbolic", note=f"runs at n = 7, agrees with the hand BPTT to {error:.0e}")


def worker(args: argparse.Namespace) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    cell = args.worker
    if args.n == "symbolic":
        n, m = sp.symbols("n m", integer=True, positive=True)
        F = compile_capped(cell, n, m, args.cap)
        if F is not None:
            symbolic_check(F, args.T)
        return
    n = int(args.n)
    if args.torch:
        torch_turns(cell, n, args.batches, args.T, args.budget, args.most)
    F = compile_capped(cell, n, inputs_for(n), args.cap)
    if F is not None:
        symrnn_turns(cell, F, n, args)


# -------------------------------------------------------------------------------- parent
@dataclass(frozen=True)
class Run:
    """What one worker reported, and how it ended when it ended early."""

    cell: str
    n: Any
    batches: tuple[int, ...]
    records: tuple[dict, ...]
    failure: str | None = None
    crashed: bool = False

    def measured(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind and "note" not in r]

    def note(self, kind: str) -> str:
        """Why a measurement is missing: the worker's own note, or how the worker ended."""
        notes = [r["note"] for r in self.records if r["kind"] == kind and "note" in r]
        if notes:
            return str(notes[0])
        return f"not run: {self.failure}" if self.failure else "not run: stopped before this step"

    def missing_time(self) -> str:
        kind = "time" if any(r["kind"] == "time" for r in self.records) else "compile"
        return self.note(kind)


def run_worker(cell: str, n: Any, batches: list[int], settings: dict[str, Any], **kw: Any) -> Run:
    """Run one worker process and collect its records."""
    argv = [sys.executable, __file__, "--worker", cell, "--n", str(n)]
    argv += ["--batches", ",".join(map(str, batches))]
    for key, value in {**settings, **kw}.items():
        argv += [f"--{key}", str(value)] if value is not True else [f"--{key}"]
    # The cap stops compilation inside the worker; this outer limit is the last resort.
    limit = settings["cap"] + 60 + 4 * settings["budget"] * (len(batches) + 1)
    run = Run(cell, n, tuple(batches), ())
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        stdout = raw.decode() if isinstance(raw, bytes) else raw
        return replace(run, records=_records(stdout), failure=f"still running after {limit:.0f} s")
    if out.returncode == 0:
        return replace(run, records=_records(out.stdout))
    last = (out.stderr.strip().splitlines() or ["died"])[-1]
    return replace(run, records=_records(out.stdout), failure=last, crashed=True)


def _records(stdout: str) -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in stdout.splitlines() if line.startswith("{"))


def fmt_ratio(ratio: float, target: float) -> str:
    return f"{ratio:6.2f}x  (target <= {target}x{'' if ratio <= target else ', missed'})"


def threads_line() -> str:
    pinned = ", ".join(f"{v}={os.environ[v]}" for v in sorted(os.environ) if "NUM_THREADS" in v)
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"BLAS pinned to one thread: {pinned} (set before NumPy loaded); torch: 1 thread"
    counts = sorted({pool["num_threads"] for pool in threadpool_info()})
    return f"BLAS pinned to one thread: {pinned}; threadpoolctl reports {counts}; torch: 1 thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--cap", type=float, help="compile time cap per size, seconds")
    parser.add_argument("--sizes", help="only these Elman sizes, e.g. 64,symbolic")
    parser.add_argument("--cells", default="gru,lstm", help="gated cells to run ('' for none)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", help=argparse.SUPPRESS)
    parser.add_argument("--batches", default="", help=argparse.SUPPRESS)
    parser.add_argument("--T", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--most", type=int, default=15, help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    if args.worker:
        worker(args)
        return
    report(args.quick, args.cap, args.sizes, [c for c in args.cells.split(",") if c])


def report(quick: bool, cap: float | None, sizes: str | None, cells: list[str]) -> None:
    T = 20 if quick else 100
    settings = {"cap": cap or (60.0 if quick else 150.0), "T": T}
    settings |= {"budget": 2.0, "most": 5} if quick else {"budget": 20.0, "most": 15}
    # Sizes: (n, batches timed, batch of the memory measurement).
    elman_sizes: list[tuple[Any, list[int], int]] = (
        [(4, [1], 0), (16, [1, 32], 32), ("symbolic", [], 0)]
        if quick
        else [
            (4, [1], 0),
            (16, [1, 32, 1024], 1024),
            (64, [1, 32, 1024], 1024),
            (256, [1, 32, 1024], 1024),
            (1024, [1, 32], 0),
            ("symbolic", [], 0),
        ]
    )
    if sizes is not None:
        elman_sizes = [row for row in elman_sizes if str(row[0]) in sizes.split(",")]
    gated_n, gated_batch = (4, 4) if quick else (128, 32)
    goal_n, goal_batches = (8, [1, 4]) if quick else (256, [1, 32])

    print("symrnn matrix-level benchmark (issue 12)")
    print(f"Elman tanh RNN, inputs n // 2, squared error on h summed over T = {T} steps")
    print(threads_line())
    print(
        f"each size in its own process: compile capped at {settings['cap']:.0f} s, "
        f"{WORKER_MEMORY // 2**30} GiB; times are medians of repeats in turns, after checking "
        f"loss and gradient agree to {TOLERANCE:g}"
    )
    runs = [run_worker("elman", n, b, settings, memory=mem) for n, b, mem in elman_sizes]
    print_compile(runs)
    print_speed(runs)
    gated = [
        run_worker(cell, gated_n, [gated_batch], settings, memory=gated_batch, torch=True)
        for cell in cells
    ]
    if gated:
        print_gated(gated, gated_n, gated_batch)
    goal = [run_worker("gru", goal_n, goal_batches, settings)] if "gru" in cells else []
    if goal:
        print_goal(goal[0], goal_n)
    print_memory(runs + gated)
    ended = runs + gated + goal
    crashed = [f"{run.cell} n = {run.n}: {run.failure}" for run in ended if run.crashed]
    if crashed:
        print("\nfailed:\n  " + "\n  ".join(crashed))
        sys.exit(1)


def print_compile(runs: list[Run]) -> None:
    print("\n(a) derivation + compilation, sr.lambdify; target <= 0.5 s, flat in n")
    print(f"{'n':>9}  {'seconds':>9}")
    for run in runs:
        compiled = run.measured("compile")
        text = f"{compiled[0]['seconds']:9.3f}" if compiled else run.note("compile")
        print(f"{run.n!s:>9}  {text}")
        for r in run.records:
            if r["kind"] == "symbolic":
                print(f"{'':>9}  {r['note']}")


def print_speed(runs: list[Run]) -> None:
    print("\n(b) value_and_grad against the hand-written NumPy BPTT (ratio > 1: symrnn slower)")
    print("    hand: the faster of its two ways, all steps' gradients in one matrix product")
    print("    (store-all) or accumulated step by step, storing only the states (per-step)")
    print(f"{'n':>9} {'batch':>6} {'symrnn ms':>10} {'hand ms':>9} {'hand way':>9} {'ratio':>7}")
    for run in runs:
        rows = run.measured("time")
        for r in rows:
            target = 0.9 if run.n == 4 else 1.1
            print(
                f"{run.n!s:>9} {r['batch']:>6} {1e3 * r['ours']:>10.2f} {1e3 * r['hand']:>9.2f}"
                f" {r['way']:>9} {fmt_ratio(r['ours'] / r['hand'], target)}"
            )
        if len(rows) < len(run.batches):
            print(f"{run.n!s:>9} {'':>6} {run.missing_time()}")


def print_gated(runs: list[Run], n: int, batch: int) -> None:
    print(
        f"\n(c) gated cells, n = {n}, inputs {inputs_for(n)}, batch {batch}: symrnn and"
        " torch.nn (float64, CPU) against the hand-written NumPy BPTT"
    )
    print(
        f"{'cell':>6} {'symrnn ms':>10} {'hand ms':>9} {'symrnn/hand':>30} {'torch ms':>9}"
        f" {'torch/hand':>10}"
    )
    for run in runs:
        times, torches = run.measured("time"), run.measured("torch")
        ours = f"{'-':>10} {'-':>9} {'-':>30}"
        if times:
            r = times[0]
            ratio = fmt_ratio(r["ours"] / r["hand"], 1.2)
            ours = f"{1e3 * r['ours']:>10.2f} {1e3 * r['hand']:>9.2f} {ratio:>30}"
        theirs = f"{'-':>9} {'-':>10}"
        if torches:
            r = torches[0]
            theirs = f"{1e3 * r['torch']:>9.2f} {r['torch'] / r['hand']:>9.2f}x"
        print(f"{run.cell:>6} {ours} {theirs}")
        if not times:
            print(f"{'':>6} symrnn: {run.missing_time()}")
        if not torches:
            print(f"{'':>6} torch: {run.note('torch')}")


def print_goal(run: Run, n: int) -> None:
    print(
        f"    the goal, a {n}-unit GRU (inputs {inputs_for(n)}) against the hand-written NumPy BPTT"
    )
    print(f"{'batch':>6} {'symrnn ms':>10} {'hand ms':>9} {'symrnn/hand':>30}")
    rows = run.measured("time")
    for r in rows:
        ratio = fmt_ratio(r["ours"] / r["hand"], 1.1)
        print(f"{r['batch']:>6} {1e3 * r['ours']:>10.2f} {1e3 * r['hand']:>9.2f} {ratio:>30}")
    if len(rows) < len(run.batches):
        print(f"{'':>6} {run.missing_time()}")


def print_memory(runs: list[Run]) -> None:
    print(
        "\n(d) peak traced memory of one value_and_grad (tracemalloc) over the states BPTT must"
        " store\n    (T x batch x n x 8 bytes per stored vector: "
        + "; ".join(f"{cell} {', '.join(q)}" for cell, q in STORED.items())
        + ")"
    )
    print(f"{'cell':>6} {'n':>5} {'batch':>6} {'stored MiB':>11} {'symrnn':>24} {'hand':>6}")
    for run in runs:
        for r in run.measured("memory"):
            print(
                f"{run.cell:>6} {run.n:>5} {r['batch']:>6} {r['stored'] / 2**20:>11.1f}"
                f" {fmt_ratio(r['ours'] / r['stored'], 1.5):>24} {r['hand'] / r['stored']:>5.2f}x"
            )


if __name__ == "__main__":
    main()
