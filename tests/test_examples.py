"""Every script in ``examples/`` runs to the end; the scripts check themselves with asserts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    if "pytorch" in script.name and importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (the script would only say so)")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def test_lecture_examples_write_the_golden_latex(tmp_path):
    script = Path(__file__).parent.parent / "examples" / "01_lecture_examples.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    for name in ("lecture_example1", "lecture_example2"):
        golden = Path(__file__).parent / "golden" / f"{name}.tex"
        assert (tmp_path / f"{name}.tex").read_text(encoding="utf-8") == golden.read_text(
            encoding="utf-8"
        )


MODEL_FILES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))


@pytest.mark.parametrize("model", MODEL_FILES, ids=lambda p: p.name)
def test_example_model_file_checks(model, tmp_path):
    # Every model file in examples/ is run as a user would: symrnn check, then generated code.
    for argv in (["check", str(model)], ["codegen", str(model), "-o", "out.py"]):
        result = subprocess.run(
            [sys.executable, "-m", "symrnn", *argv],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"{argv}: {result.stderr}"
    assert (tmp_path / "out.py").exists()
