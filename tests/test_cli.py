"""The command line: every command on the lecture's RNN, by equation and by model file.

Most tests call :func:`symrnn.cli.main` in-process (fast, ``capsys``); a few run
``python -m symrnn`` end to end.  Hostile input is in ``test_hostile.py``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symrnn as sr
from symrnn import cli
from symrnn.cli import main
from symrnn.notation import str_expr, time_function

ROOT = Path(__file__).parent.parent
ELMAN = str(ROOT / "examples" / "elman.toml")
LECTURE = str(ROOT / "examples" / "lecture_rnn.toml")
RNN = "h(t) = tanh(w*h(t-1) + u*x(t) + b)"
ELMAN_EQ = "h(t) = tanh(w*h(t-1) + u*x(t) + b); o(t) = c + v*h(t)"
LOSS = "(h(t) - y(t))**2/2"
COMMANDS = ("unfold", "solve", "grad", "check", "latex", "graph", "codegen", "demo")

HAS_DOT = shutil.which("dot") is not None
HAS_PDFLATEX = shutil.which("pdflatex") is not None


def run(capsys, *argv):
    """``main(argv)`` in-process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symrnn: error: ")
    assert "Traceback" not in err
    return lines[0]


def graph_draws_recurrences() -> bool:
    try:
        sr_graph = getattr(sr, "graph", None)
        if sr_graph is None or not callable(sr_graph):
            from symrnn.graph import graph as sr_graph
        sr_graph(sr.cells.rnn())
        sr_graph(sr.unfold(sr.cells.rnn(), 2))
    except Exception:
        return False
    return True


needs_graph = pytest.mark.skipif(
    not graph_draws_recurrences(), reason="symrnn.graph cannot draw recurrences yet"
)


# ------------------------------------------------------------------------------------ help
@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_has_an_example(capsys, command):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert "Example" in out and f"symrnn {command}" in out


def test_main_help_lists_every_command(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "Example" in out
    for command in COMMANDS:
        assert f"symrnn {command}" in out


def test_no_command_is_a_usage_error(capsys):
    status, _, err = run(capsys)
    assert status == 2
    assert "required" in one_error_line(err)


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and sr.__version__ in out


# ---------------------------------------------------------------------------------- unfold
@pytest.mark.parametrize("source", [RNN, LECTURE])
def test_unfold(capsys, source):
    status, out, err = run(capsys, "unfold", source, "--steps", 3)
    assert status == 0 and err == ""
    assert out.splitlines() == [
        "h(1) = tanh(b + w*h(0) + u*x(1))",
        "h(2) = tanh(b + w*h(1) + u*x(2))",
        "h(3) = tanh(b + w*h(2) + u*x(3))",
    ]


def test_unfold_uses_the_model_files_steps(capsys):
    status, out, _ = run(capsys, "unfold", ELMAN)
    assert status == 0
    assert out.splitlines()[-1] == "o(4) = c + v*h(4)"


def test_unfold_closed_form_of_the_lecture_example(capsys):
    status, out, _ = run(
        capsys,
        "unfold",
        "s(t) = f(s(t-1), theta)",
        "--functions",
        "f",
        "--steps",
        3,
        "--closed-form",
    )
    assert status == 0
    assert out.splitlines()[-1] == "s(3) = f(f(f(s(0), theta), theta), theta)"


def test_unfold_latex(capsys):
    status, out, _ = run(capsys, "unfold", RNN, "--steps", 3, "--latex")
    assert status == 0
    assert out.startswith("\\begin{aligned}") and "h^{(3)} &:=" in out


def test_unfold_closed_form_latex(capsys):
    status, out, _ = run(capsys, "unfold", RNN, "--steps", 2, "--latex", "--closed-form")
    assert status == 0 and "h^{(2)} &= \\tanh" in out


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--steps", cli.MAX_UNFOLD_STEPS + 1], ["10,000"]),
        (["--steps", cli.MAX_CLOSED_FORM_STEPS + 1, "--closed-form"], ["closed forms"]),
        (["--steps", cli.MAX_LATEX_STEPS + 1, "--latex"], ["--latex"]),
        ([], ["--steps N"]),
    ],
)
def test_unfold_limits(capsys, extra, words):
    status, out, err = run(capsys, "unfold", RNN, *extra)
    assert status == 2 and out == ""
    line = one_error_line(err)
    for word in words:
        assert word in line


def test_functions_only_with_equations(capsys):
    status, _, err = run(capsys, "unfold", ELMAN, "--functions", "f")
    assert status == 2 and "model file" in one_error_line(err)


def test_neither_file_nor_equation(capsys):
    status, _, err = run(capsys, "unfold", "elman.tml", "--steps", 2)
    assert status == 2 and "neither a model file" in one_error_line(err)


# ----------------------------------------------------------------------------------- solve
def test_solve_linear(capsys):
    status, out, _ = run(capsys, "solve", "h(t) = a*h(t-1) + u*x(t)")
    assert status == 0
    first = out.splitlines()[0]
    assert first.startswith("h(t) = a**t*h(0) + Sum(") and first.endswith("x(k), (k, 1, t))")
    assert "# method:" in out


def test_solve_latex(capsys):
    status, out, _ = run(capsys, "solve", "s(t) = s(t-1) + s(t-2)", "--latex")
    assert status == 0 and "s^{(t)}" in out and "$" not in out


@pytest.mark.parametrize("source", [RNN, ELMAN])
def test_solve_without_closed_form_exits_1(capsys, source):
    status, out, err = run(capsys, "solve", source)
    assert status == 1 and out == ""
    line = one_error_line(err)
    assert "no closed form" in line and "symrnn unfold" in line


# ------------------------------------------------------------------------------------ grad
def test_grad_by_equation(capsys):
    status, out, _ = run(capsys, "grad", RNN, "--steps", 3, "--loss", LOSS)
    assert status == 0
    assert out.startswith("L = (h(1) - y(1))**2/2 + (h(2) - y(2))**2/2 + (h(3) - y(3))**2/2")
    assert "dL/dh(3) = h(3) - y(3)" in out
    for key in ("dL/db = ", "dL/du = ", "dL/dw = "):
        assert key in out


def test_grad_by_model_file(capsys):
    status, out, _ = run(capsys, "grad", ELMAN, "--steps", 3, "--wrt", "w,u")
    assert status == 0
    assert "dL/do(3) = o(3) - y(3)" in out and "dL/dh(3) = v*dL/do(3)" in out
    gradient = out.split("Gradient")[1]
    assert "dL/dw = " in gradient and "dL/du = " in gradient and "dL/dv" not in gradient


def test_grad_resolved_matches_the_library(capsys):
    status, out, _ = run(capsys, "grad", LECTURE, "--resolved", "--wrt", "w")
    assert status == 0
    rnn = sr.cells.rnn()
    h, y = rnn.states[0], time_function("y")
    U = sr.unfold(rnn, 3)
    w = sp.Symbol("w", real=True)
    expected = sr.grad(U, sr.total_loss(U, (h(sr.t) - y(sr.t)) ** 2 / 2), wrt=[w])[w]
    assert f"dL/dw = {str_expr(expected)}" in out and "dL/dh(1)" not in out


def test_grad_wrt_initial_state_and_input(capsys):
    status, out, _ = run(capsys, "grad", LECTURE, "--wrt", "h(0),x(1)", "--latex")
    assert status == 0
    assert "\\frac{\\partial L}{\\partial h^{(0)}}" in out
    assert "\\frac{\\partial L}{\\partial x^{(1)}}" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["grad", RNN, "--steps", 3], ["needs a loss"]),
        (["grad", RNN, "--loss", LOSS], ["--steps N"]),
        (["grad", LECTURE, "--wrt", "q"], ["--wrt", "'q'", "b, u, w"]),
        (["grad", LECTURE, "--wrt", "w,,u"], ["empty name"]),
        (["grad", LECTURE, "--wrt", "h(2)"], ["computed by the chain"]),
        (["grad", LECTURE, "--resolved", "--steps", cli.MAX_RESOLVED_STEPS + 1], ["--resolved"]),
        (["grad", LECTURE, "--steps", cli.MAX_GRAD_STEPS + 1], ["1,000"]),
        (["grad", LECTURE, "--loss", "h(t+1)"], ["after step t"]),
    ],
)
def test_grad_errors(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    line = one_error_line(err)
    for word in words:
        assert word in line


# ----------------------------------------------------------------------------------- check
@pytest.mark.parametrize("source", [RNN, ELMAN])
def test_check_passes(capsys, source):
    status, out, _ = run(capsys, "check", source, "--steps", 3)
    assert status == 0
    assert out.splitlines()[0].startswith("verify ")
    assert "pass" in out and "OK" in out


def test_check_json(capsys):
    status, out, _ = run(capsys, "check", LECTURE, "--json")
    assert status == 0
    report = json.loads(out)
    assert report["ok"] is True and report["steps"] == 3 and report["rows"]


def test_check_uses_the_model_files_params(capsys, monkeypatch):
    seen = {}

    def fake_verify(rec, steps=5, loss=None, seed=0, **options):
        seen.update(options, steps=steps, loss=loss, seed=seed)
        return FakeReport(ok=True)

    monkeypatch.setattr(sr, "verify", fake_verify, raising=False)
    status, _, _ = run(capsys, "check", ELMAN, "--seed", 7)
    assert status == 0
    assert seen["steps"] == 4 and seen["seed"] == 7 and seen["loss"] is not None
    assert seen["ranges"]["w"] == (0.5, 0.5)


class FakeReport:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.compared = 1  # one comparison, passed or failed

    def __str__(self) -> str:
        return "check  compared  status\nfake   a vs b    " + ("pass" if self.ok else "FAIL")

    def to_dict(self) -> dict:
        return {"ok": self.ok}


@pytest.mark.parametrize("as_json", [False, True])
def test_check_exits_1_when_a_comparison_fails(capsys, monkeypatch, as_json):
    monkeypatch.setattr(sr, "verify", lambda rec, **kw: FakeReport(ok=False), raising=False)
    status, out, err = run(capsys, "check", RNN, *(["--json"] if as_json else []))
    assert status == 1 and err == ""
    assert ('"ok": false' in out) if as_json else out.rstrip().endswith("FAIL")


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "h(t) = tanh(w*h(t-1) +)"],
        ["check", RNN, "--steps", cli.MAX_CHECK_STEPS + 1],
        ["check", RNN, "--seed", "-1"],
        ["check", RNN, "--loss", "__import__('os')"],
    ],
)
def test_check_exits_2_on_bad_input(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    one_error_line(err)


# ----------------------------------------------------------------------------------- latex
def test_latex_document(capsys, tmp_path):
    target = tmp_path / "notes.tex"
    status, out, _ = run(capsys, "latex", ELMAN, "--steps", 3, "-o", target, "--document")
    assert status == 0 and str(target) in out
    text = target.read_text(encoding="utf-8")
    assert text.startswith("\\documentclass") and text.rstrip().endswith("\\end{document}")
    assert "h^{(3)}" in text


def test_latex_fragment_on_stdout(capsys):
    status, out, _ = run(capsys, "latex", RNN, "--steps", 2, "--loss", LOSS)
    assert status == 0
    assert "\\documentclass" not in out and "h^{(2)}" in out


def test_latex_markdown(capsys, tmp_path):
    target = tmp_path / "notes.md"
    status, _, _ = run(capsys, "latex", LECTURE, "-o", target)
    assert status == 0 and "$$" in target.read_text(encoding="utf-8")


@pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex not installed")
def test_latex_pdf(capsys, tmp_path):
    target = tmp_path / "notes.tex"
    status, out, err = run(capsys, "latex", LECTURE, "-o", target, "--pdf")
    assert status == 0, err
    assert target.read_text(encoding="utf-8").startswith("\\documentclass")
    assert (tmp_path / "notes.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pdf", "notes.tex"]


def test_latex_pdf_without_pdflatex_writes_nothing(capsys, tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "pdflatex" else real_which(name)
    )
    status, _, err = run(capsys, "latex", LECTURE, "-o", tmp_path / "notes.tex", "--pdf")
    assert status == 2
    line = one_error_line(err)
    assert "pdflatex is not installed" in line and "drop --pdf" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAS_PDFLATEX or shutil.which("dot") is None, reason="needs pdflatex, dot")
def test_latex_pdf_with_figures(capsys, tmp_path):
    target = tmp_path / "notes.tex"
    status, _, err = run(capsys, "latex", ELMAN, "--steps", 3, "-o", target, "--pdf", "--figures")
    assert status == 0, err
    text = target.read_text(encoding="utf-8")
    assert "\\usepackage{tikz}" in text and text.count("\\begin{tikzpicture}") == 3
    assert (tmp_path / "notes.pdf").read_bytes().startswith(b"%PDF")


def test_latex_figures_without_dot_exit_2_and_write_nothing(capsys, tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "dot" else real_which(name)
    )
    status, _, err = run(capsys, "latex", ELMAN, "-o", tmp_path / "notes.tex", "--figures")
    assert status == 2 and "'dot'" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_latex_pdf_needs_an_output(capsys):
    status, _, err = run(capsys, "latex", LECTURE, "--pdf")
    assert status == 2 and "-o FILE.tex" in one_error_line(err)


def test_latex_steps_limit(capsys):
    status, _, err = run(capsys, "latex", RNN, "--steps", cli.MAX_LATEX_STEPS + 1)
    assert status == 2 and "50" in one_error_line(err)


def test_latex_into_a_missing_folder(capsys, tmp_path):
    status, _, err = run(capsys, "latex", LECTURE, "-o", tmp_path / "no" / "notes.tex")
    assert status == 2 and "does not exist" in one_error_line(err)


# ----------------------------------------------------------------------------------- graph
@needs_graph
def test_graph_folded_dot(capsys, tmp_path):
    target = tmp_path / "rnn.dot"
    status, _, _ = run(capsys, "graph", RNN, "-o", target)
    assert status == 0 and target.read_text(encoding="ascii").startswith("digraph")


@needs_graph
def test_graph_unfolded_on_stdout(capsys):
    status, out, _ = run(capsys, "graph", ELMAN, "--unfold", 3)
    assert status == 0 and out.startswith("digraph")
    _, folded, _ = run(capsys, "graph", ELMAN, "--folded")
    assert folded != out


@needs_graph
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz not installed")
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_graph_rendered(capsys, tmp_path, suffix):
    target = tmp_path / f"rnn{suffix}"
    status, _, err = run(capsys, "graph", LECTURE, "--unfold", "-o", target)
    assert status == 0, err
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in data


@pytest.fixture
def equation_graphs(monkeypatch):
    """A stand-in for graph(Recurrence | Unfolded): the graph of its equations, recording calls."""
    from symrnn.graph import graph as real_graph

    calls = []

    def stand_in(obj, **options):  # options such as the model file's loss= are not drawn
        calls.append(obj)
        return real_graph(list(obj.equations))

    monkeypatch.setattr(sr, "graph", stand_in, raising=False)
    return calls


def test_graph_command_folded_and_unfolded(capsys, tmp_path, equation_graphs):
    status, out, _ = run(capsys, "graph", RNN)
    assert status == 0 and out.startswith("digraph")
    assert isinstance(equation_graphs[-1], sr.Recurrence)
    target = tmp_path / "rnn.dot"
    status, out, _ = run(capsys, "graph", LECTURE, "--unfold", "-o", target)
    assert status == 0 and f"wrote {target}" in out
    assert isinstance(equation_graphs[-1], sr.Unfolded) and equation_graphs[-1].steps == 3
    assert target.read_text(encoding="ascii").startswith("digraph")
    status, _, _ = run(capsys, "graph", LECTURE, "--unfold", 2, "-o", target)
    assert status == 0 and equation_graphs[-1].steps == 2


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz not installed")
def test_graph_command_renders(capsys, tmp_path, equation_graphs):
    target = tmp_path / "rnn.svg"
    status, _, err = run(capsys, "graph", RNN, "--unfold", 2, "-o", target)
    assert status == 0, err
    assert b"<svg" in target.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["rnn.svg"]


def test_graph_command_without_graphviz(capsys, tmp_path, equation_graphs, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    status, _, err = run(capsys, "graph", RNN, "-o", tmp_path / "rnn.png")
    assert status == 2 and "Graphviz" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["graph", RNN, "-o", "rnn.jpg"], ["unknown suffix", ".svg"]),
        (["graph", RNN, "--unfold"], ["--unfold N"]),
        (["graph", RNN, "--unfold", cli.MAX_GRAPH_STEPS + 1], ["at most 50"]),
        (["graph", RNN, "--unfold", 2, "--folded"], ["not allowed with"]),
    ],
)
def test_graph_errors(capsys, argv, words):
    status, _, err = run(capsys, *argv)
    assert status == 2
    line = one_error_line(err)
    for word in words:
        assert word in line


# --------------------------------------------------------------------------------- codegen
RUN_GENERATED = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sympy", "symrnn"):
                raise ImportError(f"{name} must not be imported by generated code")

    for name in ("sympy", "symrnn"):
        sys.modules[name] = None
    sys.meta_path.insert(0, Refuse())
    spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads(sys.argv[2])
    value, grads = module.value_and_grad(data["params"], data["inputs"])
    forward = module.forward(data["params"], data["inputs"])
    print(json.dumps({
        "value": float(value),
        "grads": {k: float(v) for k, v in grads.items()},
        "o": [float(v) for v in forward["o"]],
        "example": getattr(module, "EXAMPLE_PARAMS", None),
        "sympy_loaded": any(m.startswith(("sympy.", "mpmath")) for m in sys.modules),
    }))
    """
)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_codegen_module_runs_without_sympy(capsys, tmp_path, mode):
    target = tmp_path / "elman_numpy.py"
    status, out, err = run(capsys, "codegen", ELMAN, "--mode", mode, "-o", target)
    assert status == 0, err
    assert str(target) in out
    params = {"w": 0.5, "u": 1.0, "b": 0.1, "c": -0.2, "v": 2.0}
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4)
    data = {"params": params, "inputs": {"x": xs.tolist(), "y": ys.tolist()}}
    done = subprocess.run(
        [sys.executable, "-c", RUN_GENERATED, str(target), json.dumps(data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sympy_loaded"] is False
    assert result["example"] == {"w": 0.5, "u": 1.0, "b": 0.1, "c": 0.0, "v": 2.0}

    from symrnn.models import load_model

    model = load_model(ELMAN)
    F = sr.lambdify(model.recurrence, loss=model.loss)
    value, grads = F.value_and_grad(params, {"x": xs, "y": ys})
    assert np.isclose(result["value"], value, rtol=1e-12, atol=0)
    assert result["grads"].keys() == grads.keys()
    for name, g in grads.items():
        assert np.isclose(result["grads"][name], g, rtol=1e-12, atol=1e-15)
    assert np.allclose(result["o"], F.forward(params, {"x": xs, "y": ys})["o"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["scan", "unrolled"])
def test_codegen_takes_the_loss_parameters_too(capsys, tmp_path, mode):
    # Weight decay: lam is a symbol of the loss only; the module takes it and differentiates it.
    target = tmp_path / "decay_numpy.py"
    loss = "(h(t) - y(t))**2/2 + lam*w**2"
    argv = ["codegen", RNN, "--loss", loss, "--mode", mode, "--steps", 4, "-o", target]
    status, _, err = run(capsys, *argv)
    assert status == 0, err
    spec = importlib.util.spec_from_file_location("decay_numpy", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = {"w": 0.5, "u": 1.0, "b": 0.1, "lam": 0.3}
    data = {"x": np.array([0.5, -1.0, 0.25, 2.0]), "y": np.zeros(4)}
    value, grads = module.value_and_grad(params, data)
    # Independent route: the loss from the forward pass; dL/dlam = T w², dL/dw has 2 T lam w.
    hs = module.forward(params, data)["h"]
    assert value == pytest.approx(np.sum(hs**2) / 2 + 4 * 0.3 * 0.5**2, rel=1e-13)
    assert grads["lam"] == pytest.approx(4 * 0.5**2, rel=1e-13)
    no_decay = module.value_and_grad({**params, "lam": 0.0}, data)[1]["w"]
    assert grads["w"] == pytest.approx(no_decay + 2 * 4 * 0.3 * 0.5, rel=1e-12)


def test_check_differentiates_the_loss_parameters_in_generated_code(capsys):
    loss = "(h(t) - y(t))**2/2 + lam*h(t)**2"
    status, out, _ = run(capsys, "check", RNN, "--steps", 3, "--loss", loss, "--json")
    assert status == 0
    rows = {row["compared"]: row for row in json.loads(out)["rows"]}
    for mode in ("scan", "unrolled"):
        assert rows[f"{mode} code loss and gradient vs reverse mode"]["status"] == "pass"
    assert rows["reverse mode vs complex step"]["status"] == "pass"


def test_codegen_to_stdout(capsys):
    status, out, _ = run(capsys, "codegen", RNN, "--loss", LOSS)
    assert status == 0
    compile(out, "generated", "exec")
    assert "import numpy" in out and "EXAMPLE_PARAMS" not in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["codegen", RNN, "--mode", "unrolled"], ["--steps N"]),
        (["codegen", RNN, "--mode", "unrolled", "--steps", cli.MAX_UNROLLED_STEPS + 1], ["200"]),
        (["codegen", RNN, "--mode", "fast"], ["invalid choice"]),
        (["codegen", RNN, "--loss", "h(1)**2"], ["per-step template"]),
    ],
)
def test_codegen_errors(capsys, tmp_path, argv, words):
    status, _, err = run(capsys, *argv, "-o", tmp_path / "out.py")
    assert status == 2
    line = one_error_line(err)
    for word in words:
        assert word in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ demo
def test_demo(capsys, tmp_path):
    folder = tmp_path / "demo"
    status, out, err = run(capsys, "demo", "-o", folder)
    assert status == 0, err
    assert "Traceback" not in err
    written = {p.name for p in folder.iterdir()}
    expected = {"autonomous.tex", "driven.tex", "rnn.tex", "elman.tex", "notes.tex", "rnn_numpy.py"}
    assert expected <= written
    if HAS_PDFLATEX:
        assert (folder / "notes.pdf").read_bytes().startswith(b"%PDF")
    else:
        assert "skipped: PDF: pdflatex not installed" in out
    if graph_draws_recurrences():
        assert {"rnn_folded.dot", "rnn_unfolded.dot"} <= written
        if HAS_DOT:
            assert {"rnn_folded.svg", "rnn_unfolded.svg"} <= written
    notes = (folder / "notes.tex").read_text(encoding="utf-8")
    assert notes.count("\\begin{document}") == 1 and notes.rstrip().endswith("\\end{document}")
    compile((folder / "rnn_numpy.py").read_text(encoding="utf-8"), "rnn_numpy", "exec")
    # the summary: lecture unfoldings in plain text, gradient, BPTT, files, then the table
    assert "s^{(3)} = f(s^{(2)}; θ) = f(f(s^{(1)}; θ); θ)" in out
    assert "dL/dw = " in out and "dL/dh(t) = " in out
    for name in expected:
        assert f"  {name}" in out
    tail = out.rstrip().split("Verification")[-1]
    assert "check" in tail and "status" in tail and "OK:" in tail
    last_table = out.rstrip().split("\n\nverify ")[-1].splitlines()
    assert last_table[1].split()[:2] == ["check", "compared"]


def test_demo_into_a_file_is_an_error(capsys, tmp_path):
    path = tmp_path / "file"
    path.write_text("x", encoding="utf-8")
    status, _, err = run(capsys, "demo", "-o", path)
    assert status == 2 and "not a folder" in one_error_line(err)


def test_demo_degrades_without_optional_parts(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    status, out, err = run(capsys, "demo", "-o", tmp_path)
    assert status == 0 and err == ""
    assert "skipped: PDF: pdflatex not installed" in out
    if graph_draws_recurrences():
        assert "skipped: SVG drawings: Graphviz not installed" in out
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob("*.svg"))


# ---------------------------------------------------------------------- errors and debug
def test_internal_error_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(sys.modules["symrnn.unfold"], "unfold", broken)
    status, _, err = run(capsys, "unfold", RNN, "--steps", 2)
    assert status == 3
    line = one_error_line(err)
    assert "internal error" in line and "--debug" in line
    status, _, err = run(capsys, "unfold", RNN, "--steps", 2, "--debug")
    assert status == 3 and "Traceback" in err and "ZeroDivisionError: boom" in err
    status, _, err = run(capsys, "--debug", "unfold", RNN, "--steps", 2)
    assert status == 3 and "Traceback" in err


def test_failed_write_leaves_nothing(capsys, tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise sr.SymrnnError("generation failed; try again")

    monkeypatch.setattr(sys.modules["symrnn.numeric"], "generate_source", failing)
    status, _, err = run(capsys, "codegen", RNN, "-o", tmp_path / "out.py")
    assert status == 2 and "generation failed" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_output_path_is_a_folder(capsys, tmp_path):
    status, _, err = run(capsys, "codegen", RNN, "-o", tmp_path)
    assert status == 2 and "is a folder" in one_error_line(err)


# ------------------------------------------------------------------------------ end to end
def test_python_dash_m_symrnn(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", "unfold", RNN, "--steps", "3", "--closed-form"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("h(3) = tanh(b + w*tanh(")


def test_python_dash_m_symrnn_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", "unfold", "h(t) = h(t-1) +", "--steps", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stdout == ""
    one_error_line(done.stderr)


@pytest.mark.skipif(shutil.which("symrnn") is None, reason="console script not installed")
def test_console_script(tmp_path):
    done = subprocess.run(
        ["symrnn", "unfold", RNN, "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "h(2)" in done.stdout


# ------------------------------------------------------------------------------------ docs
def test_docs_have_a_section_per_command_and_state_the_limits():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"## `symrnn {command}`" in text
    from symrnn import parsing
    from symrnn.models import MAX_MODEL_BYTES
    from symrnn.unfold import MAX_STEPS

    for value in (
        cli.MAX_UNFOLD_STEPS,
        cli.MAX_CLOSED_FORM_STEPS,
        cli.MAX_GRAD_STEPS,
        cli.MAX_RESOLVED_STEPS,
        cli.MAX_CHECK_STEPS,
        cli.MAX_LATEX_STEPS,
        cli.MAX_GRAPH_STEPS,
        cli.MAX_UNROLLED_STEPS,
        MAX_STEPS,
        MAX_MODEL_BYTES,
        parsing.MAX_TEXT,
        parsing.MAX_DEPTH,
        parsing.MAX_EXPONENT,
        parsing.MAX_NUMBER_DIGITS,
    ):
        assert f"{value:,}" in text, value


def test_unfold_nested_is_the_lectures_form(capsys):
    lecture = ["unfold", "s(t) = f(s(t-1), theta)", "--functions", "f", "--steps", 3, "--nested"]
    status, out, _ = run(capsys, *lecture)
    assert status == 0
    assert (
        out.strip() == "s^{(3)} = f(s^{(2)}; θ) = f(f(s^{(1)}; θ); θ) = f(f(f(s^{(0)}; θ); θ); θ)"
    )
    status, out, _ = run(capsys, *lecture, "--latex")
    assert status == 0
    assert out.strip() == (
        r"s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta) = "
        r"f(f(f(s^{(0)}; \theta); \theta); \theta)"
    )
    status, out, _ = run(capsys, "unfold", LECTURE, "--steps", 4, "--nested", "--latex")
    assert status == 0 and out.startswith(r"\begin{aligned}h^{(4)} &= f(h^{(3)}, x^{(4)}; \theta)")
    assert r"f(f(f(f(h^{(0)}, x^{(1)}; \theta), x^{(2)}; \theta)" in out  # broken to fit a page
    status, _, err = run(capsys, "unfold", LECTURE, "--nested", "--closed-form")
    assert status == 2 and "not both" in err
