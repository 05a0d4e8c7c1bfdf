"""The README's promises: its Python example runs, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands():
    first = blocks("console")[0].strip().splitlines()
    assert first[0].endswith("symrnn demo")
    assert "pytest" in first[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = blocks("console")[0].strip().splitlines()[1]
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_readme_python_example_runs():
    (code,) = blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the project's own README, not user input
    U, L = namespace["U"], namespace["L"]
    h, x = namespace["h"], namespace["x"]
    w, u, b = namespace["w"], namespace["u"], namespace["b"]
    # The comment in the README shows the closed form; check it is what the code gives.
    assert str(U.closed_form(2)) == "tanh(b + u*x(2) + w*tanh(b + u*x(1) + w*h(0)))"
    assert {str(k) for k in namespace["F"].param_shapes} == {"w", "u", "b"}
    del L, h, x, w, u, b
