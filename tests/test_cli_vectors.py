"""Vector models on the command line: model files with sizes, cells by name, --size, weights."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symrnn as sr
from symrnn.cli import main
from symrnn.matrix_form import matrix_bptt
from symrnn.models import load_model

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
ELMAN = EXAMPLES / "elman_vector.toml"
WEIGHTS = EXAMPLES / "elman_weights.toml"
ELMAN_EQ = "h(t) = tanh(b + W @ h(t-1) + U @ x(t)); o(t) = c + V @ h(t)"
DECLARE = [
    "--size",
    "n=3,m=2,k=3",
    "--vectors",
    "h=n,x=m,o=k,y=k",
    "--matrices",
    "W=n:n,U=n:m,b=n,V=k:n,c=k",
]


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symrnn: error: ") and "Traceback" not in err
    return lines[0]


def cell_file(folder: Path, cell: str, n: int) -> Path:
    path = folder / f"{cell}_{n}.toml"
    path.write_text(
        f'cell = "{cell}"\nsizes = {{ n = {n}, m = 2 }}\nvectors = {{ y = "n" }}\n'
        'loss = "squared_error(h(t), y(t))"\nsteps = 3\n'
    )
    return path


# -------------------------------------------------------------------------------- check
@pytest.mark.parametrize("source", [ELMAN, WEIGHTS, EXAMPLES / "gru.toml", EXAMPLES / "lstm.toml"])
def test_check_passes_on_vector_model_files(capsys, source):
    status, out, err = run(capsys, "check", source, "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    passed = [row for row in report["rows"] if row["status"] == "pass"]
    assert len(passed) >= 8  # code, gradient and Jacobian rows ran, not only skips


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_check_passes_on_cells_of_size_3(capsys, tmp_path, cell):
    status, out, err = run(capsys, "check", cell_file(tmp_path, cell, 3))
    assert status == 0, err
    assert "OK:" in out and "FAIL" not in out


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_check_passes_on_cells_of_size_16(capsys, tmp_path, cell):
    # Beyond sr.verify's MAX_COMPONENT_PARAMETERS the check runs at matrix level (seconds).
    status, out, err = run(capsys, "check", cell_file(tmp_path, cell, 16))
    assert status == 0, err
    assert "OK:" in out and "matrix code vs complex step" in out


def test_check_uses_the_weights_of_the_params_file(capsys, monkeypatch):
    seen = {}
    real = sr.verify

    def spy(rec, **kwargs):
        seen.update(kwargs)
        return real(rec, **kwargs)

    monkeypatch.setattr(sr, "verify", spy)
    status, _, err = run(capsys, "check", WEIGHTS)
    assert status == 0, err
    arrays = np.load(EXAMPLES / "elman_weights.npz")
    W, b = arrays["W"], arrays["b"]
    assert seen["ranges"]["W_12"] == (W[0, 1], W[0, 1])
    assert seen["ranges"]["b_3"] == (b[2], b[2])
    assert not any(name.startswith("c_") for name in seen["ranges"])  # c is drawn at random


def test_verify_takes_ranges_by_matrix_entry():
    rec = sr.cells.elman(2, inputs=1)
    seen = []

    def gradient(params, inputs, init):
        # Only the values verify draws matter here; the gradient's own row is not asserted.
        seen.append(np.array(params["W"]))
        return {name: np.zeros_like(np.asarray(value)) for name, value in params.items()}

    sr.verify(rec, steps=2, ranges={"W_12": (0.25, 0.25)}, gradient=gradient)
    assert seen and all(np.all(w[..., 0, 1] == 0.25) for w in seen)
    assert not all(np.all(w[..., 0, 0] == 0.25) for w in seen)


# --------------------------------------------------------------------------------- grad
def test_grad_prints_the_matrix_form_for_vector_models(capsys):
    status, out, err = run(capsys, "grad", ELMAN)
    assert status == 0, err
    lines = out.splitlines()
    # the book's order (eq. 10.21): the term through h(t + 1) first, the direct term last
    assert "nabla_{h(t)} L = W.T*diag(1 - h(t + 1)**2)*nabla_{h(t + 1)} L + V.T*nabla_{o(t)} L" in (
        lines
    )
    assert "nabla_{W} L = Sum(diag(1 - h(t)**2)*nabla_{h(t)} L*h(t - 1).T, (t, 1, tau))" in lines
    expected = str(matrix_bptt(load_model(ELMAN).recurrence, loss_on=["o"])).splitlines()
    assert lines[-len(expected) :] == expected
    status, latex, _ = run(capsys, "grad", ELMAN, "--latex")
    assert status == 0 and latex.startswith("\\begin{aligned}") and "\\nabla" in latex


def test_grad_components_and_matrix_options(capsys):
    status, out, err = run(capsys, "grad", ELMAN, "--components", "--wrt", "W_12")
    assert status == 0, err
    assert "BPTT, last step first:" in out
    last = out.splitlines()[-1]  # later steps first, as the book orders the sum
    assert last.startswith("dL/dW_12 = ") and "(1 - h_1(1)**2)*h_2(0)*dL/dh_1(1)" in last
    status, _, err = run(capsys, "grad", ELMAN, "--wrt", "W_12")
    assert status == 2 and "--components" in one_error_line(err)
    status, _, err = run(capsys, "grad", "h(t) = w*h(t-1) + x(t)", "--matrix")
    assert status == 2 and "vector model" in one_error_line(err)
    status, _, err = run(capsys, "grad", ELMAN, "--matrix", "--components")
    assert status == 2


def test_grad_of_a_cell_on_the_command_line(capsys):
    status, out, err = run(capsys, "grad", "--cell", "lstm", "--size", "n=3,m=2")
    assert status == 0, err
    assert "nabla_{c(t)} L" in out and "nabla_{U_f} L" in out


# ---------------------------------------------------------------------- the other verbs
def test_every_verb_takes_a_vector_model(capsys, tmp_path):
    status, out, err = run(capsys, "unfold", ELMAN, "--steps", 1)
    assert status == 0, err
    assert out.startswith("h_1(1) = tanh(") and "o_3(1) = " in out
    status, out, err = run(capsys, "latex", ELMAN, "--steps", 2)
    assert status == 0 and "\\mathbf{h}" in out, err
    status, out, err = run(capsys, "graph", ELMAN)
    assert status == 0 and out.startswith("digraph"), err
    status, out, err = run(capsys, "codegen", ELMAN)
    assert status == 0 and "import numpy" in out, err
    status, out, err = run(
        capsys,
        "solve",
        "h(t) = A @ h(t-1) + B @ x(t)",
        *["--size", "n=2", "--vectors", "h=n,x=n", "--matrices", "A=n:n,B=n:n"],
    )
    assert status == 0, err
    assert out.startswith("h_1(t) = ") and "h_2(t) = " in out


def test_equations_with_sizes_on_the_command_line(capsys):
    loss = "softmax_cross_entropy(o(t), y(t))"
    status, out, err = run(capsys, "check", ELMAN_EQ, *DECLARE, "--loss", loss, "--steps", 3)
    assert status == 0, err
    assert "OK:" in out
    _, from_file, _ = run(capsys, "grad", ELMAN)
    status, out, err = run(capsys, "grad", ELMAN_EQ, *DECLARE, "--loss", loss)
    assert status == 0, err
    assert "nabla_{o(t)} L = nabla_{o(t)} L(t)" in out
    assert out == from_file  # the options declare what the file declares


def test_cell_on_the_command_line(capsys):
    status, out, err = run(capsys, "unfold", "--cell", "lstm", "--size", "n=2,m=1", "--steps", 1)
    assert status == 0, err
    assert "c_1(1) = " in out and "h_2(1) = " in out
    model_out = out
    status, out, _ = run(capsys, "unfold", EXAMPLES / "lstm.toml", "--steps", 1)
    assert status == 0 and "c_3(1) = " in out and model_out != out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["unfold", ELMAN, "--size", "n=3"], ["--size", "model file"]),
        (["unfold", ELMAN, "--cell", "lstm"], ["--cell", "not both"]),
        (["unfold", "--steps", "2"], ["--cell lstm"]),
        (["unfold", "--cell", "nope", "--size", "n=2", "--steps", "1"], ["cell must be"]),
        (["unfold", "--cell", "lstm", "--matrices", "W=n:n", "--steps", "1"], ["--matrices"]),
        (["unfold", ELMAN_EQ, "--size", "n3"], ["name=value"]),
        (["unfold", ELMAN_EQ, "--size", "n=3", "--steps", "1"], ["W @ h(t-1)"]),
        (["unfold", ELMAN_EQ, *DECLARE[:4], "--matrices", "W=n:n,U=m:n", "--steps", "1"], ["U"]),
        (["check", "--cell", "lstm", "--size", "n=2000"], ["1,024"]),
        (["check", "--cell", "lstm", "--size", "n=symbolic"], ["symbolic"]),
    ],
)
def test_command_line_errors(capsys, argv, words):
    status, _, err = run(capsys, *argv)
    line = one_error_line(err)
    assert status == 2
    for word in words:
        assert word in line, (word, line)


# ------------------------------------------------------------------------------ codegen
RUN_GENERATED = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys
    import numpy

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
    inputs = {k: numpy.array(v) for k, v in json.loads(sys.argv[2]).items()}
    params = module.PARAM_VALUES
    value, grads = module.value_and_grad(params, inputs)
    print(json.dumps({
        "params": {k: numpy.asarray(v).tolist() for k, v in params.items()},
        "value": float(value),
        "grads": {k: numpy.asarray(v).tolist() for k, v in grads.items()},
        "o": numpy.asarray(module.forward(params, inputs)["o"]).tolist(),
        "loaded": sorted(m for m, v in sys.modules.items() if v and m.startswith("sym")),
    }))
    """
)


def test_codegen_module_runs_with_numpy_only_and_matches_lambdify(capsys, tmp_path):
    target = tmp_path / "elman_numpy.py"
    status, _, err = run(capsys, "codegen", WEIGHTS, "--with-params", "-o", target)
    assert status == 0, err
    rng = np.random.default_rng(0)
    inputs = {"x": rng.uniform(-1, 1, (4, 2)), "y": rng.dirichlet(np.ones(3), 4)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_GENERATED,
            str(target),
            json.dumps({k: v.tolist() for k, v in inputs.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["loaded"] == []
    # the written values are the file's, exactly; c (not in the file) was drawn
    arrays = np.load(EXAMPLES / "elman_weights.npz")
    np.testing.assert_array_equal(result["params"]["W"], arrays["W"])
    np.testing.assert_array_equal(np.ravel(result["params"]["b"]), arrays["b"])
    assert np.shape(result["params"]["c"]) == (3,)

    model = load_model(WEIGHTS)
    params = {k: np.array(v) for k, v in result["params"].items()}
    F = sr.lambdify(model.recurrence_with_loss_params(), loss=model.loss)
    value, grads = F.value_and_grad(params, inputs)
    assert result["value"] == pytest.approx(float(value), rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(result["grads"][name], g, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(result["o"], F.forward(params, inputs)["o"], rtol=1e-12)
    # an independent route for one entry: central differences of the loss
    eps, bumped = 1e-6, {k: v.copy() for k, v in params.items()}
    bumped["W"][0, 1] += eps
    up = float(F.loss(bumped, inputs))
    bumped["W"][0, 1] -= 2 * eps
    down = float(F.loss(bumped, inputs))
    assert np.asarray(result["grads"]["W"])[0, 1] == pytest.approx(
        (up - down) / (2 * eps), rel=1e-6
    )


def test_codegen_writes_values_only_when_asked(capsys):
    status, out, _ = run(capsys, "codegen", WEIGHTS)
    assert status == 0 and "PARAM_VALUES" not in out
    status, out, _ = run(capsys, "codegen", WEIGHTS, "--with-params", "--seed", 4)
    assert status == 0 and "PARAM_VALUES = {" in out and "seed 4: c." in out
